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

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::tree::{Entry, EntryKind};
use crate::id::Id;
use crate::repo::file_content::FileContent;
use crate::repo::Repository;

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
    /// part or all of the content was written). Holds a shared lock (none
    /// on read-only storage), so a concurrent prune cannot delete what a
    /// long dump has yet to read.
    pub fn dump(&self, selector: &str, path: &Path, out: &mut dyn Write) -> Result<DumpReport> {
        let _lock = self.lock_for_reading("dump")?;
        let snapshot = self.find_snapshot(selector)?;
        let not_found = |problem: String| Error::PathNotFound {
            snapshot: snapshot.id.short(),
            path: path.display().to_string(),
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
        let about = || {
            format!(
                "file {} of snapshot {}",
                path.display(),
                snapshot.id.short()
            )
        };
        let content = FileContent {
            size: *size,
            digest,
            chunks,
        };
        let written = self.write_file_content(content, &about, out, &mut |_| {})?;
        Ok(DumpReport {
            snapshot: snapshot.id,
            path: path.display().to_string(),
            bytes: written,
        })
    }

    /// The entry at `path` under the tree `root`, descending one tree per
    /// component (no walk of the whole snapshot). The root itself is a
    /// directory without an entry: asking for it is `not_found`'s
    /// "is a directory".
    fn lookup(&self, root: &Id, path: &Path, not_found: &dyn Fn(String) -> Error) -> Result<Entry> {
        let mut names = Vec::new();
        for component in path.components() {
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
