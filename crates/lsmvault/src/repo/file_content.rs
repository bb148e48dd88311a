//! Writing a file entry's content out of the repository: its chunks are
//! read a few at a time in parallel and written in order, so memory stays
//! a bounded window whatever the file's size, and the whole file is checked
//! against the digest and size its tree entry records.
//!
//! Invariant: a caller learns of every difference between what was written
//! and what the snapshot recorded (a damaged chunk, a short or long file, a
//! digest that does not match, as a crafted tree can arrange), as an error
//! naming the file, even when all the bytes were already written.

use std::io::Write;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::Repository;

/// How many chunks of one file are read in parallel.
const CHUNK_WINDOW: usize = 4;

/// What a tree entry records about a regular file's content.
#[derive(Debug, Clone, Copy)]
pub struct FileContent<'a> {
    /// The file's size in bytes.
    pub size: u64,
    /// The keyed hash of the whole content (the chunk's id when there is one chunk).
    pub digest: &'a Id,
    /// The chunks, in order.
    pub chunks: &'a [Id],
}

impl Repository {
    /// Writes `content` to `out` and checks it; `file` names the file in
    /// errors ("restored file db/000012.sst"), `on_written` is told the size
    /// of each chunk as it is written. Returns the number of bytes written.
    pub fn write_file_content(
        &self,
        content: FileContent<'_>,
        file: &(dyn Fn() -> String + Sync),
        out: &mut dyn Write,
        on_written: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let FileContent {
            size,
            digest,
            chunks,
        } = content;
        let keys = self.keys();
        let mut hasher = (chunks.len() > 1).then(|| keys.hasher());
        let mut written = 0u64;
        let writing = |error| Error::io(format!("writing {}", file()), error);
        for (window_number, window) in chunks.chunks(CHUNK_WINDOW).enumerate() {
            let blobs: Vec<Vec<u8>> = window
                .par_iter()
                .enumerate()
                .map(|(offset, chunk)| {
                    let number = window_number * CHUNK_WINDOW + offset;
                    self.read_blob(chunk)
                        .map_err(|error| naming_file(error, &file(), number, chunks.len()))
                })
                .collect::<Result<_>>()?;
            for blob in &blobs {
                if let Some(hasher) = hasher.as_mut() {
                    hasher.update(blob);
                }
                out.write_all(blob).map_err(writing)?;
                written += blob.len() as u64;
                on_written(blob.len() as u64);
            }
        }
        out.flush().map_err(writing)?;
        let actual = match (chunks, hasher) {
            ([only], _) => *only,
            (_, Some(hasher)) => Id(*hasher.finalize().as_bytes()),
            (_, None) => keys.blob_id(b""),
        };
        if actual != *digest || written != size {
            return Err(Error::ChecksumMismatch {
                object: format!(
                    "{} ({written} of {size} bytes written: the output is damaged)",
                    file()
                ),
                expected: digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(written)
    }
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
