//! Listing the lock objects and judging them: which parse, which are
//! corrupt, which are stale — by the storage's clock.
//!
//! A listing made by a holder (or a prober) that has just written its own
//! lock object carries "now" on the storage's clock: the `modified` time of
//! that object ([`LockListing::storage_now`]). Another lock is stale when its
//! newest object was written more than [`STALE_AFTER`] before that, whatever
//! the clocks of the holders and the reader say; only when the backend reports
//! no `modified` does the holder's `refreshed` field, read against this
//! process's clock, decide as before ([`LockInfo::is_stale`]). A lock of a
//! process of this host that no longer runs is stale at once.
//!
//! The caller's own lock objects are never read back: it knows their content
//! (one GET less per lock taken or confirmed on object storage).

use std::time::SystemTime;

use serde::Deserialize;

use super::{host_name, LockInfo, LockKind, LOCK_VERSION, STALE_AFTER};
use crate::backend::{Backend, ObjectKind};
use crate::error::{Error, Result};

/// One lock object that parses, as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ListedLock {
    /// Its object name under `locks/`.
    pub name: String,
    /// Its content.
    pub info: LockInfo,
    /// When the storage wrote it (`None` if the backend does not say).
    pub modified: Option<SystemTime>,
}

/// The lock objects of a repository, sorted into those that parse and those
/// that do not.
#[derive(Debug, Default)]
pub struct LockListing {
    /// Every lock that parses (the caller's own included, not read back).
    pub locks: Vec<ListedLock>,
    /// Object names of the locks that do not parse (truncated, garbage).
    /// A corrupt lock is nobody's live lock: a live holder refreshes by
    /// writing a new, well-formed object, so the corrupt one can only be
    /// debris. Conflict checks ignore them; `unlock` removes them.
    pub corrupt: Vec<String>,
    /// "Now" on the storage's clock: the `modified` time of the newest of
    /// the caller's own objects in this listing, written just before it.
    /// `None` when the caller has none listed or the backend gives no times.
    pub storage_now: Option<SystemTime>,
}

impl LockListing {
    /// Whether the object `name` is in the listing (parsed or not).
    pub fn contains(&self, name: &str) -> bool {
        self.locks.iter().any(|lock| lock.name == name) || self.corrupt.iter().any(|n| n == name)
    }

    /// Whether `lock` is stale; see the module docs.
    pub fn is_stale(&self, lock: &ListedLock, this_host: &str, client_now: SystemTime) -> bool {
        let too_old = match (self.storage_now, lock.modified) {
            (Some(now), Some(modified)) => {
                now.duration_since(modified).unwrap_or_default() > STALE_AFTER
            }
            // No storage times: the holder's clock against ours.
            _ => return lock.info.is_stale(this_host, client_now),
        };
        too_old || lock.info.holder_is_dead(this_host)
    }

    /// The live locks other than the caller's `own` objects that conflict
    /// with a lock of `kind`: any other live lock for an exclusive one, a
    /// live exclusive one for a shared one.
    pub fn conflicts(&self, own: &[&str], kind: LockKind) -> Vec<&ListedLock> {
        let host = host_name();
        let client_now = SystemTime::now();
        self.locks
            .iter()
            .filter(|lock| {
                !own.contains(&lock.name.as_str())
                    && (kind == LockKind::Exclusive || lock.info.kind == LockKind::Exclusive)
                    && !self.is_stale(lock, &host, client_now)
            })
            .collect()
    }
}

/// Every lock in the repository with its object name; corrupt ones are
/// skipped (see [`list_locks_checked`] to learn their names).
pub fn list_locks(backend: &dyn Backend) -> Result<Vec<(String, LockInfo)>> {
    Ok(list_locks_checked(backend)?
        .locks
        .into_iter()
        .map(|lock| (lock.name, lock.info))
        .collect())
}

/// Every lock of the repository, the corrupt ones named apart. Fails only on
/// a lock of another format version (it can be judged neither stale nor
/// compatible, and is not damage) or when the backend fails.
pub fn list_locks_checked(backend: &dyn Backend) -> Result<LockListing> {
    list_locks_with(backend, &[])
}

/// Like [`list_locks_checked`] for a caller that holds the lock objects
/// `own` (name and content): they are not read back, and the newest of them
/// listed gives [`LockListing::storage_now`].
pub fn list_locks_with(backend: &dyn Backend, own: &[(&str, &LockInfo)]) -> Result<LockListing> {
    let mut listing = LockListing::default();
    for object in backend.list(ObjectKind::Lock)? {
        if let Some((_, info)) = own.iter().find(|(name, _)| *name == object.name) {
            listing.storage_now = listing.storage_now.max(object.modified);
            listing.locks.push(ListedLock {
                name: object.name,
                info: (*info).clone(),
                modified: object.modified,
            });
            continue;
        }
        // A lock deleted between list and read was released: skip it.
        let Ok(bytes) = backend.read(ObjectKind::Lock, &object.name) else {
            continue;
        };
        match parse_lock(&object.name, &bytes)? {
            Some(info) => listing.locks.push(ListedLock {
                name: object.name,
                info,
                modified: object.modified,
            }),
            None => listing.corrupt.push(object.name),
        }
    }
    Ok(listing)
}

/// Only the version field, read first: a lock of a newer format may have
/// other fields, and must be refused as newer, not taken for corrupt.
#[derive(Deserialize)]
struct LockVersion {
    version: u32,
}

/// Parses a lock object: `Ok(None)` when it is corrupt, an error when it is
/// of another version.
pub fn parse_lock(name: &str, bytes: &[u8]) -> Result<Option<LockInfo>> {
    if let Ok(probe) = serde_json::from_slice::<LockVersion>(bytes) {
        if probe.version != LOCK_VERSION {
            return Err(Error::UnsupportedVersion {
                object: ObjectKind::Lock.describe(name),
                found: probe.version,
                supported: LOCK_VERSION,
            });
        }
    }
    Ok(serde_json::from_slice::<LockInfo>(bytes).ok())
}
