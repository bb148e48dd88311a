//! What the metadata cache remembers about a repository beyond immutable
//! objects, so that a warm command need not ask the storage what cannot have
//! changed: which repository a location holds, the config and key file that
//! last opened it, and the listings of index, snapshot and pack files.
//!
//! Owns the `locations` space of the cache root (a location's BLAKE3 hash →
//! repository id; the location string itself, which may name credentials, is
//! never stored), the `state` space of a repository's cache directory, and
//! [`CacheGate`], which decides when those may be believed.
//!
//! Layout of `state/`: the config and key file (`config`, `key`) are the
//! repository's, whatever location it was opened at (the config is checked
//! under the key, or read from the storage for a plaintext repository, see
//! `repo/warm_open.rs`). The listings are the location's, in
//! `state/<BLAKE3 of the location>/`: two copies of one repository (a
//! replica, a `cp -a`, a mirrored bucket) share the id, but not what each
//! holds, so a pack missing at one location is never believed present
//! because the other has it. Listings an older version kept in `state/`
//! itself (of whichever location it last listed) are removed unread.
//!
//! Invariants:
//! - **The index listing is the witness.** Every prune replaces all index
//!   files, and index file names are content hashes (of sealed bytes, whose
//!   nonces are random), so a non-empty index listing equal to one seen
//!   before at the same location proves that no prune ran and that no
//!   other repository was made there since. A handle opened from the cached
//!   config and key file starts *unchecked*; the first index listing the
//!   command makes confirms it when it equals the cached one. Otherwise the
//!   config is read from the storage: equal to the cached one (and the
//!   cached key file still listed) confirms it; different drops the
//!   repository's cache and its location entry and fails with
//!   [`Error::CacheOutdated`].
//! - **Nothing sealed is written unchecked.** Every write and delete but a
//!   lock's (locks are plain JSON, sealed with no key) waits for the check,
//!   making an index listing first if the command has not made one.
//! - **Listings are tied to the index listing they were taken under** (its
//!   digest). A cached snapshot or pack listing is served only when the
//!   current index listing of this process has that digest and the handle is
//!   confirmed: no prune ran since, so every listed snapshot's blobs are
//!   stored and a listed pack was deleted, if at all, behind the
//!   repository's back (the pack listing also expires, see
//!   [`CacheGate::set_pack_listing_max_age`]). What this process writes is
//!   added to the listings it holds; a fresh index listing that differs from
//!   what it holds drops them.
//! - **An encrypted repository's listings are its own.** Each carries a
//!   keyed BLAKE3 hash under a key derived from the master key
//!   ([`CacheGate::bind_to_key`]) over the location's space, the entry's
//!   name and the listing; a listing whose hash does not verify is a miss.
//!   Whoever can write the cache, pointing a location at another
//!   repository's cache directory opened by the same password, cannot give
//!   it a listing that confirms the wrong repository there: the config is
//!   then read, differs, and the cache is dropped. (A plaintext repository's
//!   warm open reads the config anyway, see `repo/warm_open.rs`.)
//! - Like every cache entry, each state entry is checked against its hash: a
//!   damaged one is a miss, and the command asks the storage.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::MetadataCache;
use crate::backend::{Backend, Error, ObjectInfo, ObjectKind, Result};
use crate::id::Id;

/// The space of the cache root mapping location hashes to repository ids.
const LOCATIONS: &str = "locations";
/// The space of a repository's cache directory holding its state entries.
const STATE: &str = "state";
const CONFIG_ENTRY: &str = "config";
const KEY_ENTRY: &str = "key";
const INDEX_ENTRY: &str = "indexlisting";
const SNAPSHOTS_ENTRY: &str = "snapshotlisting";
const PACKS_ENTRY: &str = "packlisting";
/// The listing entries, kept per location (see the module docs).
const LISTING_ENTRIES: [&str; 3] = [INDEX_ENTRY, SNAPSHOTS_ENTRY, PACKS_ENTRY];

/// How long a cached pack listing is reused by default.
pub const DEFAULT_PACK_LISTING_MAX_AGE: Duration = Duration::from_secs(3600);

/// The config and key file a repository was last opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRecord {
    /// The `config` object's bytes.
    pub config: Vec<u8>,
    /// The key file's name and bytes (encrypted repositories).
    pub key: Option<(String, Vec<u8>)>,
}

fn location_key(location: &str) -> String {
    Id::of(location.as_bytes()).to_hex()
}

/// The space of a repository's cache directory holding the listings taken
/// at `location`.
fn listing_space(location: &str) -> String {
    format!("{STATE}/{}", location_key(location))
}

/// The id of the repository last opened at `location` through the cache in
/// `root`, if remembered.
pub fn repository_at(root: &Path, location: &str) -> Option<String> {
    let cache = MetadataCache::open(root)?;
    let bytes = cache.get(LOCATIONS, &location_key(location))?;
    String::from_utf8(bytes).ok()
}

/// Remembers that `location` holds repository `id`.
pub fn remember_repository(root: &Path, location: &str, id: &str) {
    if let Some(cache) = MetadataCache::open(root) {
        cache.put(LOCATIONS, &location_key(location), id.as_bytes());
    }
}

/// Forgets which repository `location` holds.
pub fn forget_location(root: &Path, location: &str) {
    if let Some(cache) = MetadataCache::open(root) {
        cache.remove(LOCATIONS, &location_key(location));
    }
}

/// Drops a repository's whole cache directory (it describes a repository no
/// longer there); a cache is safe to delete at any moment.
pub fn drop_cache(cache: &MetadataCache) {
    let _ = std::fs::remove_dir_all(cache.directory());
}

impl MetadataCache {
    /// The config and key file the repository was last opened with.
    pub fn open_record(&self) -> Option<OpenRecord> {
        let config = self.get(STATE, CONFIG_ENTRY)?;
        let key = match self.get(STATE, KEY_ENTRY) {
            None => None,
            Some(bytes) => {
                let split = bytes.iter().position(|byte| *byte == b'\n')?;
                let name = String::from_utf8(bytes[..split].to_vec()).ok()?;
                Some((name, bytes[split + 1..].to_vec()))
            }
        };
        Some(OpenRecord { config, key })
    }

    /// Remembers what the repository was opened with.
    pub fn remember_open(&self, record: &OpenRecord) {
        self.put(STATE, CONFIG_ENTRY, &record.config);
        match &record.key {
            Some((name, bytes)) => {
                let mut entry = Vec::with_capacity(name.len() + 1 + bytes.len());
                entry.extend_from_slice(name.as_bytes());
                entry.push(b'\n');
                entry.extend_from_slice(bytes);
                self.put(STATE, KEY_ENTRY, &entry);
            }
            None => self.remove(STATE, KEY_ENTRY),
        }
    }

    /// Forgets the key file the repository was opened with (it was removed).
    fn forget_key(&self) {
        self.remove(STATE, KEY_ENTRY);
    }

    /// Listing `entry` of `space`, if intact and, with a `key`, made under
    /// it.
    fn listing(&self, space: &str, entry: &str, key: Option<&[u8; 32]>) -> Option<StoredListing> {
        let listing: StoredListing = serde_json::from_slice(&self.get(space, entry)?).ok()?;
        match key {
            Some(key) => {
                (listing.mac == listing_mac(key, space, entry, &listing)?).then_some(listing)
            }
            None => Some(listing),
        }
    }

    fn put_listing(
        &self,
        space: &str,
        entry: &str,
        key: Option<&[u8; 32]>,
        mut listing: StoredListing,
    ) {
        if let Some(key) = key {
            let Some(mac) = listing_mac(key, space, entry, &listing) else {
                return;
            };
            listing.mac = mac;
        }
        if let Ok(bytes) = serde_json::to_vec(&listing) {
            self.put(space, entry, &bytes);
        }
    }

    /// Removes the listings an older version kept in `state/` itself: they
    /// do not say which location they were taken at.
    fn drop_unlocated_listings(&self) {
        for entry in LISTING_ENTRIES {
            self.remove(STATE, entry);
        }
    }
}

/// A listing as stored: names and sizes, sorted by name, with the digest of
/// the index listing it was taken under and when it was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct StoredListing {
    /// Digest of the index listing (empty for the index listing itself).
    index: String,
    /// Seconds since the epoch when the storage was listed.
    taken: u64,
    objects: BTreeMap<String, u64>,
    /// Keyed hash of the rest, for an encrypted repository (see the module
    /// docs); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mac: String,
}

type Objects = BTreeMap<String, u64>;

/// The keyed hash binding `listing` to the repository's key, the location's
/// space and the entry's name.
fn listing_mac(
    key: &[u8; 32],
    space: &str,
    entry: &str,
    listing: &StoredListing,
) -> Option<String> {
    let content = serde_json::to_vec(&(&listing.index, listing.taken, &listing.objects)).ok()?;
    let mut hasher = blake3::Hasher::new_keyed(key);
    for part in [space.as_bytes(), entry.as_bytes()] {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.update(&content);
    Some(hasher.finalize().to_hex().to_string())
}

fn objects(listed: &[ObjectInfo]) -> Objects {
    listed
        .iter()
        .map(|object| (object.name.clone(), object.size))
        .collect()
}

// The struct update keeps this compiling when a listing learns to tell more
// than name and size (none of which is cached).
#[allow(clippy::needless_update)]
fn infos(objects: &Objects) -> Vec<ObjectInfo> {
    objects
        .iter()
        .map(|(name, size)| ObjectInfo {
            name: name.clone(),
            size: *size,
            ..ObjectInfo::default()
        })
        .collect()
}

fn digest(index: &Objects) -> String {
    let mut text = String::new();
    for (name, size) in index {
        text.push_str(name);
        text.push(' ');
        text.push_str(&size.to_string());
        text.push('\n');
    }
    Id::of(text.as_bytes()).to_hex()
}

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}

/// Whether the handle may act on what it was opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trust {
    /// Opened from the cached config and key file; not yet checked.
    Unchecked,
    /// Opened from the storage, or checked since.
    Confirmed,
    /// The location holds another repository: nothing may be written.
    Outdated,
}

/// What this process knows of the storage's listings.
#[derive(Debug)]
struct Views {
    trust: Trust,
    /// The index files as last listed, with this process's own writes.
    index: Option<Objects>,
    /// The snapshot files under `index`, with this process's own writes.
    snapshots: Option<Objects>,
    /// The packs under `index` and when they were listed.
    packs: Option<(u64, Objects)>,
}

/// The checks and listings of one handle reading through a metadata cache
/// (see the module docs).
pub struct CacheGate {
    inner: Arc<dyn Backend>,
    cache: Arc<MetadataCache>,
    /// Where this location's listings are kept in `cache`.
    listings: String,
    root: PathBuf,
    /// What the handle was opened with.
    opened: OpenRecord,
    views: Mutex<Views>,
    /// Seconds a cached pack listing is reused; 0: never.
    pack_max_age: AtomicU64,
    /// Set by `--verify-existing`: list the packs whatever the cache holds.
    fresh_packs: AtomicBool,
    /// An encrypted repository's key for the listings (see the module docs).
    key: OnceLock<[u8; 32]>,
    /// Set for an encrypted repository until its key is bound: listings are
    /// held, not written (unkeyed they would be misses later).
    awaiting_key: AtomicBool,
}

impl CacheGate {
    /// A gate for a handle opened with `opened`: from the storage
    /// (`checked`) or from the cache.
    pub fn new(
        inner: Arc<dyn Backend>,
        cache: Arc<MetadataCache>,
        root: &Path,
        opened: OpenRecord,
        checked: bool,
    ) -> CacheGate {
        let max_age = if inner.is_remote() {
            DEFAULT_PACK_LISTING_MAX_AGE.as_secs()
        } else {
            0
        };
        cache.drop_unlocated_listings();
        CacheGate {
            listings: listing_space(&inner.location()),
            inner,
            cache,
            root: root.to_path_buf(),
            opened,
            views: Mutex::new(Views {
                trust: if checked {
                    Trust::Confirmed
                } else {
                    Trust::Unchecked
                },
                index: None,
                snapshots: None,
                packs: None,
            }),
            pack_max_age: AtomicU64::new(max_age),
            fresh_packs: AtomicBool::new(false),
            key: OnceLock::new(),
            awaiting_key: AtomicBool::new(false),
        }
    }

    /// The repository is encrypted: write no listing before
    /// [`CacheGate::bind_to_key`] (opening lists index files before the
    /// key is known).
    pub fn expect_key(&self) {
        if self.key.get().is_none() {
            self.awaiting_key.store(true, Ordering::Relaxed);
        }
    }

    /// Binds the listings this gate reads and writes to an encrypted
    /// repository's key (`MasterKey::cache_state_key`): a listing made
    /// under another key, or none, is a miss. Set once; a later call is
    /// ignored. The listings held so far are written under it.
    pub fn bind_to_key(&self, key: [u8; 32]) {
        if self.key.set(key).is_ok() {
            self.awaiting_key.store(false, Ordering::Relaxed);
            // What was listed while opening, keyed now.
            let views = self.views();
            self.persist(&views, &LISTING_ENTRIES);
        }
    }

    fn load(&self, entry: &str) -> Option<StoredListing> {
        self.cache.listing(&self.listings, entry, self.key.get())
    }

    fn store(&self, entry: &str, listing: StoredListing) {
        self.cache
            .put_listing(&self.listings, entry, self.key.get(), listing);
    }

    fn views(&self) -> MutexGuard<'_, Views> {
        self.views
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How long a cached pack listing is reused (zero: always list). Local
    /// repositories always list, whatever is set.
    pub fn set_pack_listing_max_age(&self, age: Duration) {
        if self.inner.is_remote() {
            self.pack_max_age.store(age.as_secs(), Ordering::Relaxed);
        }
    }

    /// Makes every pack listing of this handle ask the storage.
    pub fn always_list_packs(&self) {
        self.fresh_packs.store(true, Ordering::Relaxed);
    }

    /// Whether the handle was confirmed (opened from the storage, or its
    /// cached config checked).
    pub fn is_confirmed(&self) -> bool {
        self.views().trust == Trust::Confirmed
    }

    /// Makes sure the handle may act on what it was opened with: lists the
    /// index if this process has not, and fails with
    /// [`Error::CacheOutdated`] when the location holds another repository.
    pub fn confirm(&self) -> Result<()> {
        let mut views = self.views();
        match views.trust {
            Trust::Confirmed => Ok(()),
            Trust::Outdated => Err(self.outdated()),
            Trust::Unchecked => {
                let listed = self.inner.list(ObjectKind::Index)?;
                self.observe_index(&mut views, &listed)
            }
        }
    }

    fn outdated(&self) -> Error {
        Error::CacheOutdated {
            location: self.inner.location(),
        }
    }

    /// Records an index listing of the storage (see the module docs).
    pub fn index_listed(&self, listed: &[ObjectInfo]) -> Result<()> {
        let mut views = self.views();
        self.observe_index(&mut views, listed)
    }

    fn observe_index(&self, views: &mut Views, listed: &[ObjectInfo]) -> Result<()> {
        let listed = objects(listed);
        if views.trust == Trust::Unchecked {
            let cached = self.load(INDEX_ENTRY).map(|stored| stored.objects);
            if !listed.is_empty() && cached.as_ref() == Some(&listed) {
                views.trust = Trust::Confirmed;
            } else {
                views.trust = self.check_storage()?;
            }
        }
        if views.trust == Trust::Outdated {
            return Err(self.outdated());
        }
        if views.index.as_ref() != Some(&listed) {
            // Others wrote since: what this process held of the other
            // listings is not known to go with the new one.
            views.snapshots = None;
            views.packs = None;
            views.index = Some(listed);
            self.persist(views, &[INDEX_ENTRY]);
        }
        Ok(())
    }

    /// Reads the config (and the key files) from the storage: the same as
    /// opened confirms the handle; another drops the cache.
    fn check_storage(&self) -> Result<Trust> {
        // No config any more: the repository was deleted (the command run
        // again from the storage says so).
        let config = match self.inner.read(ObjectKind::Config, "config") {
            Err(error) if error.is_not_found() => None,
            other => Some(other?),
        };
        let mut same = config.as_ref() == Some(&self.opened.config);
        if let (true, Some((name, _))) = (same, &self.opened.key) {
            // The key file removed (its password revoked) does not open
            // from the cache any more: the command is run again from the
            // storage, which then judges the password.
            same = self
                .inner
                .list(ObjectKind::Key)?
                .iter()
                .any(|key| &key.name == name);
        }
        if same {
            return Ok(Trust::Confirmed);
        }
        forget_location(&self.root, &self.inner.location());
        drop_cache(&self.cache);
        Ok(Trust::Outdated)
    }

    /// Writes the `entries` this process holds back to the cache (each
    /// listing with the digest of the index listing it goes with).
    fn persist(&self, views: &Views, entries: &[&str]) {
        let Some(index) = &views.index else {
            return;
        };
        if self.awaiting_key.load(Ordering::Relaxed) {
            return;
        }
        let index_digest = digest(index);
        let listing = |index: String, taken: u64, objects: &Objects| StoredListing {
            index,
            taken,
            objects: objects.clone(),
            mac: String::new(),
        };
        if entries.contains(&INDEX_ENTRY) {
            self.store(INDEX_ENTRY, listing(String::new(), now_seconds(), index));
        }
        if let Some(snapshots) = views
            .snapshots
            .as_ref()
            .filter(|_| entries.contains(&SNAPSHOTS_ENTRY))
        {
            let stored = listing(index_digest.clone(), now_seconds(), snapshots);
            self.store(SNAPSHOTS_ENTRY, stored);
        }
        if let Some((taken, packs)) = views
            .packs
            .as_ref()
            .filter(|_| entries.contains(&PACKS_ENTRY))
        {
            self.store(PACKS_ENTRY, listing(index_digest, *taken, packs));
        }
    }

    /// A write or delete of `kind` is about to be made: anything but a
    /// lock waits for the check.
    pub fn before_change(&self, kind: ObjectKind) -> Result<()> {
        if kind == ObjectKind::Lock {
            return Ok(());
        }
        self.confirm()
    }

    /// The handle's key file was replaced by `name` (`key passwd`): the next
    /// warm open unwraps the new one with the new password. The old one
    /// was forgotten when it was deleted ([`CacheGate::deleted`]).
    pub fn key_replaced(&self, name: &str, bytes: &[u8]) {
        self.cache.remember_open(&OpenRecord {
            config: self.opened.config.clone(),
            key: Some((name.to_string(), bytes.to_vec())),
        });
    }

    /// This process created object `name` of `kind`.
    pub fn created(&self, kind: ObjectKind, name: &str, size: u64) {
        self.changed(kind, |objects| {
            objects.insert(name.to_string(), size);
        });
    }

    /// This process deleted object `name` of `kind`.
    pub fn deleted(&self, kind: ObjectKind, name: &str) {
        // The key file a warm open would use is gone (`key passwd`, `key
        // remove`): its password must not open from the cache any more.
        if kind == ObjectKind::Key
            && self
                .cache
                .open_record()
                .and_then(|record| record.key)
                .is_some_and(|(recorded, _)| recorded == name)
        {
            self.cache.forget_key();
        }
        self.changed(kind, |objects| {
            objects.remove(name);
        });
    }

    /// Applies this process's own change to the listing it holds. Packs
    /// are only noted (a backup writes many; they count once their index
    /// file is written); a new index file re-tags every listing held with
    /// the new index digest.
    fn changed(&self, kind: ObjectKind, change: impl FnOnce(&mut Objects)) {
        let mut views = self.views();
        let (target, entries): (Option<&mut Objects>, &[&str]) = match kind {
            ObjectKind::Index => (
                views.index.as_mut(),
                &[INDEX_ENTRY, SNAPSHOTS_ENTRY, PACKS_ENTRY],
            ),
            ObjectKind::Snapshot => (views.snapshots.as_mut(), &[SNAPSHOTS_ENTRY]),
            ObjectKind::Pack => (views.packs.as_mut().map(|(_, packs)| packs), &[]),
            _ => (None, &[]),
        };
        if let Some(objects) = target {
            change(objects);
            self.persist(&views, entries);
        }
    }

    /// A fresh listing of snapshots or packs was made.
    pub fn listed(&self, kind: ObjectKind, listed: &[ObjectInfo]) {
        let mut views = self.views();
        if views.index.is_none() {
            return;
        }
        let entry = match kind {
            ObjectKind::Snapshot => {
                views.snapshots = Some(objects(listed));
                SNAPSHOTS_ENTRY
            }
            ObjectKind::Pack => {
                views.packs = Some((now_seconds(), objects(listed)));
                PACKS_ENTRY
            }
            _ => return,
        };
        self.persist(&views, &[entry]);
    }

    /// The cached listing of snapshots or packs, if it may stand for the
    /// storage's now (see the module docs).
    pub fn cached_listing(&self, kind: ObjectKind) -> Option<Vec<ObjectInfo>> {
        let mut views = self.views();
        if views.trust != Trust::Confirmed {
            return None;
        }
        let index_digest = digest(views.index.as_ref()?);
        match kind {
            ObjectKind::Snapshot => {
                if let Some(held) = &views.snapshots {
                    return Some(infos(held));
                }
                let stored = self.load(SNAPSHOTS_ENTRY)?;
                (stored.index == index_digest).then_some(())?;
                views.snapshots = Some(stored.objects);
                views.snapshots.as_ref().map(infos)
            }
            ObjectKind::Pack => {
                let max_age = self.pack_max_age.load(Ordering::Relaxed);
                if max_age == 0 || self.fresh_packs.load(Ordering::Relaxed) {
                    return None;
                }
                let young = |taken: u64| {
                    let now = now_seconds();
                    // A listing "taken" in the future (a clock set back) is
                    // not believed.
                    taken <= now && now - taken < max_age
                };
                if let Some((taken, held)) = &views.packs {
                    return young(*taken).then(|| infos(held));
                }
                let stored = self.load(PACKS_ENTRY)?;
                (stored.index == index_digest && young(stored.taken)).then_some(())?;
                views.packs = Some((stored.taken, stored.objects));
                views.packs.as_ref().map(|(_, packs)| infos(packs))
            }
            _ => None,
        }
    }
}
