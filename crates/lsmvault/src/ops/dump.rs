//! `dump`: one file of a snapshot, streamed to a writer.
//!
//! Read-only and lock-free, like `ls`. Everything is read through
//! the repository's verified readers: every chunk is checked against its id
//! as it is read, and a dumped file against its whole-content digest at the
//! end. Since the content is streamed (a window of a few chunks in memory,
//! fetched in parallel, written in order), a
//! digest mismatch is known only after the bytes were written: the error
//! then comes after the output, naming the file, and the caller must treat
//! what it received as damaged.

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::tree::{Entry, EntryKind};
use crate::id::Id;
use crate::repo::Repository;

/// How many chunks are fetched and checked in parallel.
const CHUNK_WINDOW: usize = 4;

/// What a dump wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DumpReport {
    /// The snapshot the file came from.
    pub snapshot: Id,
    /// The file's path in the snapshot, as found.
    pub path: String,
    /// Bytes written (the file's size).
    pub bytes: u64,
}

impl Repository {
    /// Writes the content of the regular file `path` of the snapshot chosen
    /// by `selector` to `out`, chunk by chunk, and checks it against the
    /// digest its tree entry records. A missing path, a directory or a
    /// symlink is [`Error::PathNotFound`]; a damaged chunk or a content that
    /// does not match its digest is an error naming the file (possibly after
    /// part or all of the content was written).
    pub fn dump(&self, selector: &str, path: &str, out: &mut dyn Write) -> Result<DumpReport> {
        let snapshot = self.find_snapshot(selector)?;
        let not_found = |problem: String| Error::PathNotFound {
            snapshot: snapshot.id.short(),
            path: path.to_string(),
            problem,
        };
        let entry = self.lookup(&snapshot.snapshot.tree, path, &not_found)?;
        let (size, digest, chunks) = match &entry.kind {
            EntryKind::File {
                size,
                digest,
                chunks,
            } => (size, digest, chunks),
            EntryKind::Directory { .. } => {
                return Err(not_found("is a directory, not a file".into()))
            }
            EntryKind::Symlink { target } => {
                return Err(not_found(format!(
                    "is a symbolic link (to {}), not a file",
                    String::from_utf8_lossy(target)
                )))
            }
        };
        let about = || format!("file {path} of snapshot {}", snapshot.id.short());
        let keys = self.keys();
        let mut hasher = (chunks.len() > 1).then(|| keys.hasher());
        let mut written = 0u64;
        // A few chunks are fetched in parallel (as restore does), then written
        // in order: memory stays a bounded window, never the whole file.
        for (window_number, window) in chunks.chunks(CHUNK_WINDOW).enumerate() {
            let blobs: Vec<Vec<u8>> = window
                .par_iter()
                .enumerate()
                .map(|(offset, chunk)| {
                    let number = window_number * CHUNK_WINDOW + offset;
                    self.read_blob(chunk)
                        .map_err(|error| naming_file(error, &about(), number, chunks.len()))
                })
                .collect::<Result<_>>()?;
            for blob in &blobs {
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(blob);
                }
                out.write_all(blob).map_err(|error| {
                    Error::io(format!("writing {} to the output", about()), error)
                })?;
                written += blob.len() as u64;
            }
        }
        out.flush()
            .map_err(|error| Error::io(format!("writing {} to the output", about()), error))?;
        let actual = match (chunks.as_slice(), hasher) {
            ([only], _) => *only,
            (_, Some(hasher)) => Id(*hasher.finalize().as_bytes()),
            (_, None) => keys.blob_id(b""),
        };
        if actual != *digest || written != *size {
            return Err(Error::ChecksumMismatch {
                object: format!(
                    "{} ({written} of {size} bytes written: the output is damaged)",
                    about()
                ),
                expected: digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(DumpReport {
            snapshot: snapshot.id,
            path: path.to_string(),
            bytes: written,
        })
    }

    /// The entry at `path` under the tree `root`, descending one tree per
    /// component (no walk of the whole snapshot). The root itself is a
    /// directory without an entry: asking for it is `not_found`'s
    /// "is a directory".
    fn lookup(&self, root: &Id, path: &str, not_found: &dyn Fn(String) -> Error) -> Result<Entry> {
        let mut names = Vec::new();
        for component in Path::new(path).components() {
            match component {
                Component::Normal(name) => names.push(name.as_bytes()),
                Component::RootDir | Component::CurDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "path {path:?} must not contain '..'"
                    )))
                }
            }
        }
        let Some((last, parents)) = names.split_last() else {
            return Err(not_found(
                "is the snapshot's root directory, not a file".into(),
            ));
        };
        let mut tree = *root;
        for (depth, name) in parents.iter().enumerate() {
            let entry = self.child(&tree, name, &names[..=depth], not_found)?;
            match entry.kind {
                EntryKind::Directory { subtree } => tree = subtree,
                _ => {
                    return Err(not_found(format!(
                        "does not exist ({} is not a directory)",
                        join(&names[..=depth])
                    )))
                }
            }
        }
        self.child(&tree, last, &names, not_found)
    }

    /// The entry `name` of tree `tree` (reached by `walked`).
    fn child(
        &self,
        tree: &Id,
        name: &[u8],
        walked: &[&[u8]],
        not_found: &dyn Fn(String) -> Error,
    ) -> Result<Entry> {
        let entries = self.read_tree(tree)?.entries;
        match entries.into_iter().find(|entry| entry.name == name) {
            Some(entry) => Ok(entry),
            None if walked.len() == 1 => Err(not_found("does not exist".into())),
            None => Err(not_found(format!(
                "does not exist (no {} in the snapshot)",
                join(walked)
            ))),
        }
    }
}

fn join(names: &[&[u8]]) -> String {
    names
        .iter()
        .map(|name| String::from_utf8_lossy(name))
        .collect::<Vec<_>>()
        .join("/")
}

/// Adds the file (and which of its chunks) to a reading error's object, so
/// that a damaged chunk names what it breaks.
fn naming_file(error: Error, file: &str, number: usize, count: usize) -> Error {
    let within = |object: String| format!("{object} (chunk {} of {count} of {file})", number + 1);
    match error {
        Error::CorruptObject { object, reason } => Error::CorruptObject {
            object: within(object),
            reason,
        },
        Error::ChecksumMismatch {
            object,
            expected,
            actual,
        } => Error::ChecksumMismatch {
            object: within(object),
            expected,
            actual,
        },
        Error::AuthenticationFailed { object } => Error::AuthenticationFailed {
            object: within(object),
        },
        other => other,
    }
}
