//! Storage backends: where repository objects live.
//!
//! Everything above this module talks to storage only through [`Backend`], a
//! deliberately small trait that an object store (S3 and alike) can implement
//! without rename or directory operations. Objects are immutable: a name, once
//! written, always holds the same bytes (names are content hashes, except
//! `config` which is written once at init and lock files which are deleted,
//! never rewritten).

mod local;
mod memory;

pub use local::LocalBackend;
pub use memory::MemoryBackend;

use crate::error::Result;

/// The kinds of objects a repository holds; each lives in its own namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    /// The repository's `config` file (name is ignored).
    Config,
    /// Pack files with chunk and tree blobs (`data/xx/<id>`).
    Pack,
    /// Index files (`index/<id>`).
    Index,
    /// Snapshot files (`snapshots/<id>`).
    Snapshot,
    /// Lock files (`locks/<id>`).
    Lock,
    /// Key files of an encrypted repository (`keys/<id>`).
    Key,
    /// Archived WAL segment records and restore points (`wal/<id>`).
    Wal,
}

impl ObjectKind {
    /// The top-level directory / key prefix of this kind.
    pub fn directory(self) -> &'static str {
        match self {
            ObjectKind::Config => "",
            ObjectKind::Pack => "data",
            ObjectKind::Index => "index",
            ObjectKind::Snapshot => "snapshots",
            ObjectKind::Lock => "locks",
            ObjectKind::Key => "keys",
            ObjectKind::Wal => "wal",
        }
    }

    /// The key (relative path) of object `name` of this kind.
    ///
    /// Packs are fanned out over 256 subdirectories by the first two hex digits
    /// of their name so that no directory grows too large.
    pub fn key(self, name: &str) -> String {
        match self {
            ObjectKind::Config => "config".to_string(),
            ObjectKind::Pack => {
                let fan = name.get(..2).unwrap_or("00");
                format!("data/{fan}/{name}")
            }
            other => format!("{}/{name}", other.directory()),
        }
    }

    /// Human description of an object for error messages, e.g. `pack 1a2b…`.
    pub fn describe(self, name: &str) -> String {
        match self {
            ObjectKind::Config => "config".to_string(),
            ObjectKind::Pack => format!("pack {name}"),
            ObjectKind::Index => format!("index file {name}"),
            ObjectKind::Snapshot => format!("snapshot {name}"),
            ObjectKind::Lock => format!("lock {name}"),
            ObjectKind::Key => format!("key file {name}"),
            ObjectKind::Wal => format!("WAL record {name}"),
        }
    }
}

/// Whether [`Backend::write_if_absent`] created the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteOutcome {
    /// The object did not exist and now holds the given bytes.
    Created,
    /// An object of that name already existed; it was left untouched.
    AlreadyExisted,
}

/// A listed object: its name and size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
}

/// Repository storage. Implementations must be safe to call from many threads
/// and many processes at once.
pub trait Backend: Send + Sync {
    /// A human-readable location (path or URL) for messages.
    fn location(&self) -> String;

    /// Returns the whole object.
    ///
    /// Fails with [`crate::Error::Io`] of kind `NotFound` when it does not exist.
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>>;

    /// Like [`Backend::read`], into `buffer` (replacing its content). A
    /// caller reading many packs passes one buffer, so its pages are
    /// allocated once, not per pack.
    fn read_into(&self, kind: ObjectKind, name: &str, buffer: &mut Vec<u8>) -> Result<()> {
        *buffer = self.read(kind, name)?;
        Ok(())
    }

    /// Returns `length` bytes starting at `offset`.
    ///
    /// Fails with [`crate::Error::CorruptObject`] (rather than returning fewer
    /// bytes) when the object is shorter than `offset + length`: a short object
    /// is damage the caller must see.
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64)
        -> Result<Vec<u8>>;

    /// Publishes `bytes` under `name` unless the name exists.
    ///
    /// Atomic and durable: once this returns, a reader sees either no object or
    /// all of `bytes`, never a prefix, and the object survives a crash. Never
    /// overwrites: if the object exists (written by anyone, in any process) it is
    /// left as it is and [`WriteOutcome::AlreadyExisted`] is returned.
    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome>;

    /// Lists every complete object of `kind` (never a partially written one).
    /// The order is unspecified.
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>>;

    /// Removes an object. Removing an absent object is not an error.
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()>;

    /// Whether a repository (its `config`) exists at this location.
    fn exists(&self) -> Result<bool>;

    /// Prepares the location for a new repository (directories on a local
    /// disk; nothing on an object store). Idempotent.
    fn create(&self) -> Result<()>;
}

/// The error for an object shorter than a requested range: damage (a
/// truncated pack), not an I/O problem.
pub(crate) fn short_object(
    kind: ObjectKind,
    name: &str,
    offset: u64,
    length: usize,
) -> crate::Error {
    crate::Error::corrupt(
        kind.describe(name),
        format!("shorter than expected ({length} bytes at offset {offset} requested): truncated?"),
    )
}

/// Whether an error from a backend means "no such object".
pub fn is_not_found(error: &crate::Error) -> bool {
    matches!(error, crate::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
pub(crate) mod contract {
    //! One test suite that every backend implementation runs.
    use super::*;

    pub fn run_all(backend: &dyn Backend) {
        assert!(backend.list(ObjectKind::Pack).unwrap().is_empty());
        let name = "ab".repeat(32);
        assert_eq!(
            backend
                .write_if_absent(ObjectKind::Pack, &name, b"hello world")
                .unwrap(),
            WriteOutcome::Created
        );
        // Never overwrites.
        assert_eq!(
            backend
                .write_if_absent(ObjectKind::Pack, &name, b"other")
                .unwrap(),
            WriteOutcome::AlreadyExisted
        );
        assert_eq!(
            backend.read(ObjectKind::Pack, &name).unwrap(),
            b"hello world"
        );
        // read_into replaces whatever the buffer held.
        let mut buffer = b"leftover bytes of an earlier, longer pack".to_vec();
        backend
            .read_into(ObjectKind::Pack, &name, &mut buffer)
            .unwrap();
        assert_eq!(buffer, b"hello world");
        assert_eq!(
            backend.read_range(ObjectKind::Pack, &name, 6, 5).unwrap(),
            b"world"
        );
        assert_eq!(
            backend
                .read_range(ObjectKind::Pack, &name, 6, 6)
                .unwrap_err()
                .code(),
            crate::ErrorCode::CorruptObject
        );
        assert_eq!(
            backend
                .read_range(ObjectKind::Pack, &name, 20, 1)
                .unwrap_err()
                .code(),
            crate::ErrorCode::CorruptObject
        );
        assert!(backend
            .read_range(ObjectKind::Pack, &name, 11, 0)
            .unwrap()
            .is_empty());
        let listed = backend.list(ObjectKind::Pack).unwrap();
        assert_eq!(
            listed,
            vec![ObjectInfo {
                name: name.clone(),
                size: 11
            }]
        );
        // Namespaces are separate.
        assert!(backend.list(ObjectKind::Index).unwrap().is_empty());
        let missing = backend.read(ObjectKind::Index, &name).unwrap_err();
        assert!(is_not_found(&missing), "{missing}");
        backend.delete(ObjectKind::Pack, &name).unwrap();
        backend.delete(ObjectKind::Pack, &name).unwrap();
        assert!(backend.list(ObjectKind::Pack).unwrap().is_empty());
        backend
            .write_if_absent(ObjectKind::Config, "config", b"{}")
            .unwrap();
        assert_eq!(backend.read(ObjectKind::Config, "config").unwrap(), b"{}");
    }
}
