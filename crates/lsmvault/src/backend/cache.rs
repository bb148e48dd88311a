//! The local metadata cache: copies of immutable repository metadata on the
//! local disk, so commands against a remote repository do not download what
//! they already have.
//!
//! Owns the cache directory of one repository
//! (`$XDG_CACHE_HOME/lsmvault/<repository id>/` by default; the caller picks
//! it) and [`CachingBackend`], the wrapper that serves reads of index, snapshot,
//! cluster snapshot and key files from it. Tree blobs are cached by the repository layer
//! (`repo/blobs.rs`) in the [`TREES`] space of the same [`MetadataCache`],
//! since they live inside packs.
//!
//! Invariants:
//! - **Nothing is trusted.** Every entry holds the BLAKE3 hash of its content
//!   in front of it and is checked on every read; an entry of a
//!   content-named kind (index, snapshot, cluster snapshot) must also hash to
//!   its name. A
//!   damaged entry is removed and reads as a miss, so the object is fetched
//!   from the backend again. Callers check what they read as always (names,
//!   authentication, blob ids).
//! - **Only immutable objects.** Index, snapshot, cluster snapshot and key
//!   files never change
//!   under a name; `config` (replaced by a migration), locks, packs, WAL and
//!   parity objects pass through uncached.
//! - **Safe to delete at any moment, and never a cause of failure.** Entries
//!   are written to a temporary name and renamed (readers see a whole entry
//!   or none, and processes sharing the directory cannot tear each other's
//!   entries); a cache that cannot be written (full disk, read-only,
//!   permission denied) stops being written for the rest of the process,
//!   and one that cannot be read is a miss. No cache error reaches a caller.
//! - **The backend is the truth.** Writes go to the backend first, then to
//!   the cache; deletes remove the cache entry after the backend object;
//!   listings go to the backend, and cached entries of that kind that are no
//!   longer listed (pruned, forgotten elsewhere) are dropped. The one
//!   exception is the pack listing, served from the cache within the limits
//!   [`state`] sets out (its [`CacheGate`] also holds back every write of a
//!   handle opened from the cached config until the config is confirmed).

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Backend, ObjectInfo, ObjectKind, Result, WriteOutcome};
use crate::id::Id;

pub mod state;

pub use state::{CacheGate, OpenRecord};

/// The cache space of tree blobs (as stored in their pack: sealed and
/// compressed), keyed by blob id.
pub const TREES: &str = "trees";

/// Length of the content hash in front of every entry.
const HASH_LENGTH: usize = 32;

/// A temporary file older than this was left by a crashed process.
const STALE_TEMPORARY: Duration = Duration::from_secs(3600);

/// The cache directory of one repository.
#[derive(Debug)]
pub struct MetadataCache {
    directory: PathBuf,
    /// Cleared at the first failed write: the cache is then read-only for
    /// the rest of the process (a full disk stays full).
    writable: AtomicBool,
    /// Makes temporary names unique within the process.
    temporaries: AtomicU64,
}

/// Whether `name` is safe as a file name in the cache (object names are hex
/// ids; anything else is passed through uncached).
fn cacheable_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.bytes().all(|byte| byte.is_ascii_alphanumeric())
}

impl MetadataCache {
    /// The cache in `directory` (created if missing), or `None` when it
    /// cannot be created: the caller then works without a cache.
    pub fn open(directory: impl Into<PathBuf>) -> Option<Arc<MetadataCache>> {
        let directory = directory.into();
        // Private to the user: a plaintext repository's snapshot files and
        // trees name the files backed up (directories that exist keep
        // their mode).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&directory)
            .ok()?;
        Some(Arc::new(MetadataCache {
            directory,
            writable: AtomicBool::new(true),
            temporaries: AtomicU64::new(0),
        }))
    }

    /// The repository's cache directory, `root/<repository id>`, or `None`
    /// when the id is not a plain name (it comes from an unauthenticated
    /// config) or the directory cannot be created.
    pub fn for_repository(root: &Path, repository_id: &str) -> Option<Arc<MetadataCache>> {
        if !cacheable_name(repository_id) {
            return None;
        }
        MetadataCache::open(root.join(repository_id))
    }

    /// Where the entries live.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn space_directory(&self, space: &str) -> PathBuf {
        self.directory.join(space)
    }

    /// Tree blobs are numerous: they are fanned out over 256 directories
    /// like packs.
    fn path(&self, space: &str, name: &str) -> PathBuf {
        let directory = self.space_directory(space);
        if space == TREES {
            directory.join(name.get(..2).unwrap_or("00")).join(name)
        } else {
            directory.join(name)
        }
    }

    /// The content of entry `name` in `space`, if present and intact. A
    /// damaged entry is removed.
    pub fn get(&self, space: &str, name: &str) -> Option<Vec<u8>> {
        if !cacheable_name(name) {
            return None;
        }
        let path = self.path(space, name);
        let mut bytes = fs::read(&path).ok()?;
        let intact =
            bytes.len() >= HASH_LENGTH && bytes[..HASH_LENGTH] == Id::of(&bytes[HASH_LENGTH..]).0;
        if !intact {
            let _ = fs::remove_file(&path);
            return None;
        }
        bytes.drain(..HASH_LENGTH);
        Some(bytes)
    }

    /// Stores `bytes` as entry `name` of `space` (replacing it). Never
    /// fails: a cache that cannot be written is left alone from then on.
    pub fn put(&self, space: &str, name: &str, bytes: &[u8]) {
        if !cacheable_name(name) || !self.writable.load(Ordering::Relaxed) {
            return;
        }
        let path = self.path(space, name);
        let written = self.write_atomically(&path, bytes).or_else(|error| {
            // The directory was deleted under us (the cache is safe to
            // delete at any moment): make it again, once.
            if error.kind() != ErrorKind::NotFound {
                return Err(error);
            }
            fs::create_dir_all(path.parent().unwrap_or(&self.directory))?;
            self.write_atomically(&path, bytes)
        });
        if written.is_err() {
            self.writable.store(false, Ordering::Relaxed);
        }
    }

    fn write_atomically(&self, path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        let directory = path.parent().unwrap_or(&self.directory);
        let temporary = directory.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            self.temporaries.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = fs::File::create(&temporary)?;
            file.write_all(&Id::of(bytes).0)?;
            file.write_all(bytes)?;
            // No fsync: a torn entry after a crash fails its hash and is
            // dropped; the cache is a copy.
            drop(file);
            fs::rename(&temporary, path)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        result
    }

    /// Removes entry `name` of `space`, if there.
    pub fn remove(&self, space: &str, name: &str) {
        if cacheable_name(name) {
            let _ = fs::remove_file(self.path(space, name));
        }
    }

    /// Removes every entry of `space` whose name `keep` refuses, and
    /// temporary files left by crashed processes.
    pub fn retain(&self, space: &str, keep: impl Fn(&str) -> bool) {
        let directory = self.space_directory(space);
        if space == TREES {
            let Ok(fans) = fs::read_dir(&directory) else {
                return;
            };
            for fan in fans.flatten() {
                retain_in(&fan.path(), &keep);
            }
        } else {
            retain_in(&directory, &keep);
        }
    }
}

fn retain_in(directory: &Path, keep: &impl Fn(&str) -> bool) {
    let Ok(entries) = fs::read_dir(directory) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let drop = if name.starts_with(".tmp-") {
            is_stale(&entry)
        } else {
            !keep(name)
        };
        if drop {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn is_stale(entry: &fs::DirEntry) -> bool {
    entry
        .metadata()
        .and_then(|metadata| metadata.modified())
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok())
        .is_some_and(|age| age > STALE_TEMPORARY)
}

/// Whether objects of `kind` are cached: the immutable metadata.
fn is_cached(kind: ObjectKind) -> bool {
    matches!(
        kind,
        ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Key | ObjectKind::Cluster
    )
}

/// Whether `bytes` can be the object `name` of `kind`: index, snapshot and
/// cluster snapshot files are named by their hash; key files have random names.
fn fits_name(kind: ObjectKind, name: &str, bytes: &[u8]) -> bool {
    let content_named = matches!(
        kind,
        ObjectKind::Index | ObjectKind::Snapshot | ObjectKind::Cluster
    );
    !content_named || Id::of(bytes).to_hex() == name
}

/// A backend whose reads of index, snapshot and key files are served from a
/// [`MetadataCache`] when it holds them (see the module docs for what is
/// checked and when the backend is asked).
pub struct CachingBackend {
    inner: Arc<dyn Backend>,
    cache: Arc<MetadataCache>,
    /// The repository handle's checks and listings, when it has them.
    gate: Option<Arc<CacheGate>>,
}

impl CachingBackend {
    /// Serves `inner`'s metadata from `cache`.
    pub fn new(inner: Arc<dyn Backend>, cache: Arc<MetadataCache>) -> CachingBackend {
        CachingBackend {
            inner,
            cache,
            gate: None,
        }
    }

    /// Like [`CachingBackend::new`], with the checks and cached listings of
    /// `gate` (see [`state`]).
    pub fn with_gate(
        inner: Arc<dyn Backend>,
        cache: Arc<MetadataCache>,
        gate: Arc<CacheGate>,
    ) -> CachingBackend {
        CachingBackend {
            inner,
            cache,
            gate: Some(gate),
        }
    }

    fn before_change(&self, kind: ObjectKind) -> Result<()> {
        match &self.gate {
            Some(gate) => gate.before_change(kind),
            None => Ok(()),
        }
    }

    /// The cache this backend reads from.
    pub fn cache(&self) -> &Arc<MetadataCache> {
        &self.cache
    }

    fn cached(&self, kind: ObjectKind, name: &str) -> Option<Vec<u8>> {
        let bytes = self.cache.get(kind.directory(), name)?;
        // An entry under another object's name (copied there by hand) is
        // not served.
        if !fits_name(kind, name, &bytes) {
            self.cache.remove(kind.directory(), name);
            return None;
        }
        Some(bytes)
    }

    /// Caches an object read from or written to the backend, unless it is
    /// visibly damaged (the reader will say so; the next read asks the
    /// backend again).
    fn store(&self, kind: ObjectKind, name: &str, bytes: &[u8]) {
        if fits_name(kind, name, bytes) {
            self.cache.put(kind.directory(), name, bytes);
        }
    }
}

impl Backend for CachingBackend {
    delegate_to_inner!(location, is_remote, read_range, exists, create);

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        if !is_cached(kind) {
            return self.inner.read(kind, name);
        }
        if let Some(bytes) = self.cached(kind, name) {
            return Ok(bytes);
        }
        let bytes = self.inner.read(kind, name)?;
        self.store(kind, name, &bytes);
        Ok(bytes)
    }

    fn read_into(&self, kind: ObjectKind, name: &str, buffer: &mut Vec<u8>) -> Result<()> {
        if is_cached(kind) {
            *buffer = self.read(kind, name)?;
            return Ok(());
        }
        self.inner.read_into(kind, name, buffer)
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        self.before_change(kind)?;
        let outcome = self.inner.write_if_absent(kind, name, bytes)?;
        if let (Some(gate), WriteOutcome::Created) = (&self.gate, outcome) {
            gate.created(kind, name, bytes.len() as u64);
        }
        if !is_cached(kind) {
            return Ok(outcome);
        }
        match outcome {
            WriteOutcome::Created => self.store(kind, name, bytes),
            // The object there may differ from a cached copy: a damaged
            // index file that a backup is about to read back and replace
            // (`repo/index_cache.rs`) must be read from the backend.
            WriteOutcome::AlreadyExisted => self.cache.remove(kind.directory(), name),
        }
        Ok(outcome)
    }

    /// Packs (never cached) go straight to the inner backend, by value;
    /// cached kinds take the `write_if_absent` path above. Either way the
    /// gate hears of the write, as from `write_if_absent`: a pack missing
    /// from the cached pack listing would count as lost to the next backup,
    /// which would upload its blobs again.
    fn write_content_addressed(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: bytes::Bytes,
    ) -> Result<WriteOutcome> {
        if is_cached(kind) {
            return self.write_if_absent(kind, name, &bytes);
        }
        self.before_change(kind)?;
        let length = bytes.len() as u64;
        let outcome = self.inner.write_content_addressed(kind, name, bytes)?;
        if let (Some(gate), WriteOutcome::Created) = (&self.gate, outcome) {
            gate.created(kind, name, length);
        }
        Ok(outcome)
    }

    /// Like [`Backend::write_content_addressed`] above, from a spill file.
    fn write_spilled(
        &self,
        kind: ObjectKind,
        name: &str,
        spilled: &super::SpillFile,
    ) -> Result<WriteOutcome> {
        if is_cached(kind) {
            let bytes = spilled.read_object(kind, name)?;
            return self.write_if_absent(kind, name, &bytes);
        }
        self.before_change(kind)?;
        let outcome = self.inner.write_spilled(kind, name, spilled)?;
        if let (Some(gate), WriteOutcome::Created) = (&self.gate, outcome) {
            gate.created(kind, name, spilled.len());
        }
        Ok(outcome)
    }

    fn replace_config(&self, bytes: &[u8]) -> Result<()> {
        self.before_change(ObjectKind::Config)?;
        self.inner.replace_config(bytes)
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        if let Some(gate) = &self.gate {
            if kind == ObjectKind::Pack {
                if let Some(cached) = gate.cached_listing(kind) {
                    return Ok(cached);
                }
            }
        }
        let listed = self.inner.list(kind)?;
        if let Some(gate) = &self.gate {
            match kind {
                ObjectKind::Index => gate.index_listed(&listed)?,
                _ => gate.listed(kind, &listed),
            }
        }
        if is_cached(kind) {
            let names: HashSet<&str> = listed.iter().map(|object| object.name.as_str()).collect();
            self.cache
                .retain(kind.directory(), |name| names.contains(name));
        }
        Ok(listed)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        self.before_change(kind)?;
        self.inner.delete(kind, name)?;
        if let Some(gate) = &self.gate {
            gate.deleted(kind, name);
        }
        if is_cached(kind) {
            self.cache.remove(kind.directory(), name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
