//! Storage backends: where repository objects live.
//!
//! Everything above this module talks to storage only through [`Backend`], a
//! deliberately small trait that an object store (S3 and alike) can implement
//! without rename or directory operations. Objects are immutable: a name, once
//! written, always holds the same bytes (names are content hashes, except
//! `config`, written at init and replaced whole only by a format migration
//! ([`Backend::replace_config`]), and lock files, which are deleted, never
//! rewritten).
//!
//! Owns: the trait and its contract, the object namespaces and their keys
//! ([`ObjectKind::key`], the on-disk layout of every backend), the backend
//! [`Error`], the local, memory and S3 implementations, [`open_location`]
//! (a location string to a backend), the wrappers around any backend (the
//! metadata cache [`cache`], request counting [`counting`], bandwidth limits
//! [`throttle`], and for tests a storage clock that jumps, [`time_shift`]),
//! and — behind the `conformance` feature — the one test suite every
//! implementation runs (`backend::conformance`).

/// Inside `impl Backend for Wrapper`, defines the named [`Backend`] methods
/// as plain calls to `self.inner`: the wrappers ([`cache`], [`counting`],
/// [`throttle`]) spell out only the methods they change, and the list says
/// which ones pass through untouched.
///
/// Defined before the `mod` items below so that they can use it.
macro_rules! delegate_to_inner {
    ($($method:ident),+ $(,)?) => {
        $(delegate_to_inner!(@method $method);)+
    };
    (@method location) => {
        fn location(&self) -> String {
            self.inner.location()
        }
    };
    (@method is_remote) => {
        fn is_remote(&self) -> bool {
            self.inner.is_remote()
        }
    };
    (@method read_range) => {
        fn read_range(
            &self,
            kind: $crate::backend::ObjectKind,
            name: &str,
            offset: u64,
            length: u64,
        ) -> $crate::backend::Result<Vec<u8>> {
            self.inner.read_range(kind, name, offset, length)
        }
    };
    (@method replace_config) => {
        fn replace_config(&self, bytes: &[u8]) -> $crate::backend::Result<()> {
            self.inner.replace_config(bytes)
        }
    };
    (@method list) => {
        fn list(
            &self,
            kind: $crate::backend::ObjectKind,
        ) -> $crate::backend::Result<Vec<$crate::backend::ObjectInfo>> {
            self.inner.list(kind)
        }
    };
    (@method delete) => {
        fn delete(&self, kind: $crate::backend::ObjectKind, name: &str) -> $crate::backend::Result<()> {
            self.inner.delete(kind, name)
        }
    };
    (@method exists) => {
        fn exists(&self) -> $crate::backend::Result<bool> {
            self.inner.exists()
        }
    };
    (@method create) => {
        fn create(&self) -> $crate::backend::Result<()> {
            self.inner.create()
        }
    };
}

pub mod cache;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod counting;
mod error;
mod local;
mod memory;
pub mod s3;
pub mod spill;
pub mod throttle;
pub mod time_shift;

pub use cache::{CacheGate, CachingBackend, MetadataCache, OpenRecord};
pub use counting::{CountingBackend, RequestCounts};
pub(crate) use error::short_object_reason;
pub use error::{Error, Result, Source, Subject};
pub use local::LocalBackend;
pub use memory::MemoryBackend;
pub use s3::S3Backend;
pub use spill::SpillFile;
pub use throttle::ThrottledBackend;
pub use time_shift::TimeShiftBackend;

use std::sync::Arc;
use std::time::SystemTime;

/// The backend of a repository location: `s3:http(s)://host[:port]/bucket[/prefix]`
/// or `s3://bucket[/prefix]` is an [`S3Backend`] (see [`s3::S3Location`]);
/// anything else is a local directory ([`LocalBackend`]). No request is made
/// and nothing is created.
pub fn open_location(location: &str) -> Result<Arc<dyn Backend>> {
    if s3::is_s3_location(location) {
        Ok(Arc::new(S3Backend::open(location)?))
    } else {
        Ok(Arc::new(LocalBackend::new(location)))
    }
}

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
    /// Reed-Solomon parity shards over groups of packs (`parity/<id>`).
    Parity,
    /// Cluster snapshots (`clusters/<id>`): metadata, like snapshots.
    Cluster,
}

impl ObjectKind {
    /// Every kind, for code that walks all namespaces.
    pub const ALL: [ObjectKind; 9] = [
        ObjectKind::Config,
        ObjectKind::Pack,
        ObjectKind::Index,
        ObjectKind::Snapshot,
        ObjectKind::Lock,
        ObjectKind::Key,
        ObjectKind::Wal,
        ObjectKind::Parity,
        ObjectKind::Cluster,
    ];

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
            ObjectKind::Parity => "parity",
            ObjectKind::Cluster => "clusters",
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
            ObjectKind::Parity => format!("parity object {name}"),
            ObjectKind::Cluster => format!("cluster snapshot {name}"),
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

/// A listed object: its name, size in bytes and, where the storage says,
/// when it was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    /// The object's name within its kind, as [`Backend::read`] takes it: for
    /// content-addressed objects the 64-hex-digit id, without the namespace
    /// directory or a pack's `xx/` fan-out.
    pub name: String,
    /// The object's whole size in bytes as stored (sealed and compressed
    /// bytes, not the logical size of what it holds).
    pub size: u64,
    /// When the object was written, by the **storage's** clock (S3's
    /// `Last-Modified`, a local file's mtime, the memory backend's time of
    /// the write); `None` when the backend does not say. Objects are never
    /// rewritten, so this is their creation time. Locks judge staleness by
    /// it (`repo/lock`): one clock for every client, whatever theirs say.
    pub modified: Option<SystemTime>,
}

/// Repository storage.
///
/// Implementations must be safe to call from many threads and many processes
/// at once (the memory backend only from threads: it is per process). Every
/// method's contract below is checked by the `conformance` suite; an object is
/// addressed by its [`ObjectKind`] (a namespace) and its name, and the kinds
/// never see each other's objects.
pub trait Backend: Send + Sync {
    /// A human-readable location (path or URL) for messages.
    fn location(&self) -> String;

    /// Whether requests cross a network (an object store): the CLI then
    /// keeps a local metadata cache by default ([`cache`]). Wrappers pass
    /// their inner backend's answer on.
    fn is_remote(&self) -> bool {
        false
    }

    /// Returns the whole object.
    ///
    /// Fails with [`Error::NotFound`] when it does not exist. Never returns a
    /// partially written object (see [`Backend::write_if_absent`]).
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>>;

    /// Like [`Backend::read`], into `buffer` (replacing its content). A
    /// caller reading many packs passes one buffer, so its pages are
    /// allocated once, not per pack.
    fn read_into(&self, kind: ObjectKind, name: &str, buffer: &mut Vec<u8>) -> Result<()> {
        *buffer = self.read(kind, name)?;
        Ok(())
    }

    /// Returns exactly `length` bytes starting at `offset`.
    ///
    /// Fails with [`Error::ShortObject`] (rather than returning fewer bytes)
    /// when the object is shorter than `offset + length`: a short object is
    /// damage the caller must see. An empty range at or before the end
    /// (`offset <= size`, `length == 0`) returns no bytes; one starting past
    /// the end is short. Fails with [`Error::NotFound`] when the object does not
    /// exist.
    fn read_range(&self, kind: ObjectKind, name: &str, offset: u64, length: u64)
        -> Result<Vec<u8>>;

    /// Publishes `bytes` under `name` unless the name exists.
    ///
    /// Atomic and durable: once this returns, a reader sees either no object or
    /// all of `bytes`, never a prefix, and the object survives a crash. Never
    /// overwrites: if the object exists (written by anyone, in any process) it is
    /// left as it is and [`WriteOutcome::AlreadyExisted`] is returned. Of many
    /// concurrent writers of one name exactly one sees
    /// [`WriteOutcome::Created`], and the object holds its bytes. An error
    /// leaves no object (or, if the failure came after publication — a
    /// directory sync — the whole object).
    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome>;

    /// Like [`Backend::write_if_absent`], for a content-addressed object
    /// (`name` is the hash of `bytes`: any two writers of one name write the
    /// same bytes), handed over by value so an object store can send it
    /// without copying it. Atomic and durable like `write_if_absent`, and an
    /// existing object is left as it is ([`WriteOutcome::AlreadyExisted`]);
    /// but of concurrent writers of one name more than one may see
    /// [`WriteOutcome::Created`] (an object store may upload a large object
    /// in parts, which not every server can make conditional: the bytes are
    /// the same whoever wins). Wrappers forward it to their inner backend.
    fn write_content_addressed(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: bytes::Bytes,
    ) -> Result<WriteOutcome> {
        self.write_if_absent(kind, name, &bytes)
    }

    /// Like [`Backend::write_content_addressed`], for an object parked in a
    /// [`SpillFile`]: an object store streams it from the file in pieces, so
    /// an upload in flight holds no more than one piece in memory. The
    /// default reads the file whole and writes that (a local disk gains
    /// nothing from the detour). Wrappers forward it to their inner backend.
    fn write_spilled(
        &self,
        kind: ObjectKind,
        name: &str,
        spilled: &SpillFile,
    ) -> Result<WriteOutcome> {
        let bytes = spilled.read_object(kind, name)?;
        self.write_content_addressed(kind, name, bytes::Bytes::from(bytes))
    }

    /// Publishes `bytes` as the `config` object, replacing the one there (or
    /// creating it). The only write that replaces an object: a format
    /// migration rewrites `config` under the exclusive lock.
    ///
    /// Atomic and durable: a reader sees the old config whole or the new one
    /// whole, never a prefix, a mix or no config at all, and once this
    /// returns the new one survives a crash. A crash before it returns leaves
    /// either. An object store implements it with one plain PUT.
    fn replace_config(&self, bytes: &[u8]) -> Result<()>;

    /// Lists the objects of `kind` with their sizes, in no particular order.
    ///
    /// Shows only complete objects: never one being written (nor a temporary
    /// name), and the size listed is the object's whole size. An object
    /// published or deleted while the listing runs may or may not be shown.
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>>;

    /// Removes an object. Idempotent: removing an absent object is `Ok`.
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()>;

    /// Whether a repository (its `config`) exists at this location.
    fn exists(&self) -> Result<bool>;

    /// Prepares the location for a new repository (directories on a local
    /// disk; nothing on an object store). Idempotent; writes no object.
    fn create(&self) -> Result<()>;
}
