//! [`SpillFile`]: an object's bytes parked in an unlinked temporary file
//! while it is uploaded, so that an upload in flight holds no heap memory
//! beyond the piece being sent (restic's design for packs).
//!
//! Owns: where spill files go ([`spill_directory`]), writing one and reading
//! it back in pieces.
//!
//! Invariants:
//! - A spill file has no name from the moment it exists
//!   (`tempfile::tempfile_in`: `O_TMPFILE` on Linux, else created and
//!   unlinked at once): a crash, `kill -9` or SIGINT leaves nothing behind,
//!   the kernel frees the blocks when the last descriptor closes.
//! - It is a buffer, not a copy to keep: never fsync'd, and its content is
//!   fixed once written (readers use positioned reads, so several threads may
//!   read one file at once).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{Error, ObjectKind, Result, Subject};

/// The directory spill files go to: `$TMPDIR`, else `/tmp`.
pub fn spill_directory() -> PathBuf {
    std::env::temp_dir()
}

/// An unlinked temporary file holding one object's bytes (see the module docs).
#[derive(Debug)]
pub struct SpillFile {
    file: File,
    length: u64,
    directory: PathBuf,
}

impl SpillFile {
    /// Writes `bytes` to a new unlinked file in `directory`. The error is
    /// the operating system's (ENOSPC for a full file system); the caller
    /// names the directory.
    pub fn write(directory: &Path, bytes: &[u8]) -> std::io::Result<SpillFile> {
        let mut file = tempfile::tempfile_in(directory)?;
        file.write_all(bytes)?;
        Ok(SpillFile {
            file,
            length: bytes.len() as u64,
            directory: directory.to_path_buf(),
        })
    }

    /// The object's length in bytes.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// The directory the file was made in (for messages).
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Exactly `length` bytes from `offset` (a range past the end fails
    /// with `UnexpectedEof`).
    pub fn read_at(&self, offset: u64, length: usize) -> std::io::Result<Vec<u8>> {
        let mut buffer = vec![0; length];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(buffer)
    }

    /// The whole object, in memory (for backends that take it whole).
    pub fn read_all(&self) -> std::io::Result<Vec<u8>> {
        let length = usize::try_from(self.length).map_err(std::io::Error::other)?;
        self.read_at(0, length)
    }

    /// The whole object, as a backend error naming it if the file fails.
    pub(crate) fn read_object(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        self.read_all().map_err(|source| {
            Error::other(
                Subject::Object {
                    kind,
                    name: name.to_string(),
                },
                format!("reading {} of {}", self.describe(), kind.describe(name)),
                source,
            )
        })
    }

    /// A description for messages: `a temporary file in DIR`.
    pub fn describe(&self) -> String {
        format!(
            "the spilled copy in an unlinked temporary file in {}",
            self.directory.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spill_file_reads_back_what_was_written_in_pieces_and_whole() {
        let directory = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..100_000u32).map(|value| (value % 251) as u8).collect();
        let spilled = SpillFile::write(directory.path(), &bytes).unwrap();
        assert_eq!(spilled.len(), bytes.len() as u64);
        assert_eq!(spilled.read_all().unwrap(), bytes);
        assert_eq!(spilled.read_at(99_990, 10).unwrap(), bytes[99_990..]);
        assert_eq!(spilled.read_at(12_345, 0).unwrap(), Vec::<u8>::new());
        let past = spilled.read_at(99_995, 10).unwrap_err();
        assert_eq!(past.kind(), std::io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn a_spill_file_has_no_name_in_its_directory_even_while_open() {
        let directory = tempfile::tempdir().unwrap();
        let spilled = SpillFile::write(directory.path(), b"pack bytes").unwrap();
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0);
        assert_eq!(spilled.read_all().unwrap(), b"pack bytes");
        drop(spilled);
        assert_eq!(std::fs::read_dir(directory.path()).unwrap().count(), 0);
    }

    #[test]
    fn spilling_into_a_missing_directory_fails_with_the_os_error() {
        let directory = tempfile::tempdir().unwrap();
        let missing = directory.path().join("missing");
        let error = SpillFile::write(&missing, b"x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound);
    }
}
