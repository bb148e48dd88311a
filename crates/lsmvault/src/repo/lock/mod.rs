//! Repository locks: shared for commands that add or read data (backup,
//! WAL archiving, restore, verify), exclusive for commands that delete data
//! (forget, prune).
//!
//! A lock is a small JSON object `locks/<random id>`. Taking a lock is
//! "write my lock, then list all locks": a shared lock fails if it sees a live
//! exclusive lock, an exclusive lock fails if it sees any other live lock, and
//! the loser removes its own lock. Because each side writes before it looks,
//! two conflicting lockers can both lose but never both win. This needs only
//! create-if-absent, list and delete, so it holds on object storage too (no
//! rename, no atomic directory operation).
//!
//! A lock is stale, and ignored (and removed by `unlock`), when it was not
//! refreshed for [`STALE_AFTER`], or when it belongs to a process of this host
//! that no longer runs. A lock object that does not parse is nobody's live
//! lock (holders refresh by writing a new well-formed object): it is ignored
//! by conflict checks and removed by `unlock`. A lock of another format
//! version is not corrupt and is refused. Holders refresh their lock every [`REFRESH_EVERY`] by
//! writing a new lock object and deleting the old one.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, ObjectKind};
use crate::error::{Error, Result};
use crate::format::snapshot::format_time;
use crate::id::Id;

/// A lock whose `refreshed` time is older than this is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Holders refresh their lock this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

/// Shared or exclusive; stored as the `kind` field of a lock object
/// (`"shared"` / `"exclusive"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockKind {
    /// For commands that add or read data (backup, WAL archiving, restore,
    /// verify): any number coexist, but none beside a live exclusive lock.
    Shared,
    /// For commands that delete data (forget, prune): no other live lock of
    /// either kind may exist beside it.
    Exclusive,
}

/// Version of the lock object format written by this build, and the only
/// one it reads: [`list_locks`] refuses a lock of any other version, since it
/// can judge it neither stale nor compatible.
pub const LOCK_VERSION: u32 = 1;

/// The content of a lock object: pretty-printed JSON under `locks/<random
/// id>`, never encrypted (see `docs/format.md`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Format version of lock objects ([`LOCK_VERSION`]).
    pub version: u32,
    /// Whether the holder shares the repository or needs it alone.
    pub kind: LockKind,
    /// Host name of the machine the holder runs on; with `pid`, how a lock
    /// of a dead process on this host is recognised as stale.
    pub host: String,
    /// Process id of the holder on `host`.
    pub pid: u32,
    /// Which command holds it (`backup`, `prune`, ...; never a path, since lock
    /// objects are not encrypted).
    pub purpose: String,
    /// When the lock was first taken (RFC 3339).
    pub created: String,
    /// When it was last refreshed (RFC 3339).
    pub refreshed: String,
    /// When the holder process started, in clock ticks after boot (field 22
    /// of Linux's `/proc/<pid>/stat`): with `host` and `pid`, tells the
    /// holder from a later process that reused its pid. Absent where `/proc`
    /// is not available and in locks of earlier builds (then the pid alone
    /// decides, as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_start: Option<u64>,
}

impl LockInfo {
    /// Whether the lock no longer protects anything.
    pub fn is_stale(&self, this_host: &str, now: SystemTime) -> bool {
        let refreshed = humantime::parse_rfc3339(&self.refreshed).unwrap_or(SystemTime::UNIX_EPOCH);
        if now.duration_since(refreshed).unwrap_or_default() > STALE_AFTER {
            return true;
        }
        self.host == this_host && !process_alive(self.pid, self.process_start)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock of {} (pid {} on {}, since {})",
            match self.kind {
                LockKind::Shared => "shared",
                LockKind::Exclusive => "exclusive",
            },
            self.purpose,
            self.pid,
            self.host,
            self.created
        )
    }
}

/// Whether process `pid` of this host still exists and, when the lock
/// recorded its start time, is the same process: a killed command's pid is
/// reused by another process sooner or later (after 32,768 processes on a
/// default Linux), and its lock must not look live then.
pub(crate) fn process_alive(pid: u32, recorded_start: Option<u64>) -> bool {
    let Ok(raw_pid) = i32::try_from(pid) else {
        return false;
    };
    // Signal 0 checks existence; EPERM means it exists but is not ours.
    let exists = match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw_pid), None) {
        Ok(()) => true,
        Err(errno) => errno == nix::errno::Errno::EPERM,
    };
    match (exists, recorded_start, process_start_time(pid)) {
        (false, _, _) => false,
        (true, Some(recorded), Some(current)) => recorded == current,
        // Nothing to compare: the pid decides.
        (true, _, _) => true,
    }
}

/// When process `pid` started, in clock ticks after boot (`/proc/<pid>/stat`
/// field 22), or `None` without `/proc`.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: the
    // fields after the last `)` start with field 3.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// The name of the user running this process (its uid when it has none).
pub(crate) fn user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|user| user.name)
        .unwrap_or_else(|| nix::unistd::getuid().to_string())
}

/// This machine's host name, as recorded in snapshots and locks.
pub(crate) fn host_name() -> String {
    nix::unistd::gethostname()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn random_name() -> Result<String> {
    let mut bytes = [0u8; 32];
    crate::codec::crypto::random_bytes(&mut bytes)?;
    Ok(Id(bytes).to_hex())
}

/// The lock objects of a repository, sorted into those that parse and those
/// that do not.
#[derive(Debug, Default)]
pub struct LockListing {
    /// Every lock that parses, with its object name.
    pub locks: Vec<(String, LockInfo)>,
    /// Object names of the locks that do not parse (truncated, garbage).
    /// A corrupt lock is nobody's live lock: a live holder refreshes by
    /// writing a new, well-formed object, so the corrupt one can only be
    /// debris. Conflict checks ignore them; `unlock` removes them.
    pub corrupt: Vec<String>,
}

/// Every lock in the repository with its object name; corrupt ones are
/// skipped (see [`list_locks_checked`] to learn their names).
pub fn list_locks(backend: &dyn Backend) -> Result<Vec<(String, LockInfo)>> {
    Ok(list_locks_checked(backend)?.locks)
}

/// Every lock of the repository, the corrupt ones named apart. Fails only on
/// a lock of another format version (it can be judged neither stale nor
/// compatible, and is not damage) or when the backend fails.
pub fn list_locks_checked(backend: &dyn Backend) -> Result<LockListing> {
    let mut listing = LockListing::default();
    for object in backend.list(ObjectKind::Lock)? {
        // A lock deleted between list and read was released: skip it.
        let Ok(bytes) = backend.read(ObjectKind::Lock, &object.name) else {
            continue;
        };
        match parse_lock(&object.name, &bytes)? {
            Some(info) => listing.locks.push((object.name, info)),
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

/// What [`remove_locks`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemovedLocks {
    /// How many locks were removed, corrupt ones included.
    pub removed: usize,
    /// Object names of the corrupt locks among them.
    pub corrupt: Vec<String>,
}

/// Removes stale and corrupt locks (every lock with `all`, whatever it
/// holds: it never needs to parse one, so nothing can make it fail but the
/// backend).
pub fn remove_locks(backend: &dyn Backend, all: bool) -> Result<RemovedLocks> {
    let mut removed = RemovedLocks::default();
    if all {
        for object in backend.list(ObjectKind::Lock)? {
            let corrupt = backend
                .read(ObjectKind::Lock, &object.name)
                .map(|bytes| matches!(parse_lock(&object.name, &bytes), Ok(None)))
                .unwrap_or(false);
            backend.delete(ObjectKind::Lock, &object.name)?;
            removed.removed += 1;
            if corrupt {
                removed.corrupt.push(object.name);
            }
        }
        return Ok(removed);
    }
    let host = host_name();
    let now = SystemTime::now();
    let listing = list_locks_checked(backend)?;
    for (name, info) in listing.locks {
        if info.is_stale(&host, now) {
            backend.delete(ObjectKind::Lock, &name)?;
            removed.removed += 1;
        }
    }
    for name in listing.corrupt {
        backend.delete(ObjectKind::Lock, &name)?;
        removed.removed += 1;
        removed.corrupt.push(name);
    }
    Ok(removed)
}

struct Held {
    name: String,
    info: LockInfo,
}

/// A lock held until dropped; refreshed in the background meanwhile.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    held: Arc<Mutex<Held>>,
    stop: Option<Sender<()>>,
    refresher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LockGuard {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("LockGuard")
    }
}

impl LockGuard {
    /// Takes a lock, or fails with [`Error::RepositoryLocked`] naming the
    /// conflicting lock.
    pub fn acquire(backend: Arc<dyn Backend>, kind: LockKind, purpose: &str) -> Result<LockGuard> {
        let host = host_name();
        let now = format_time(SystemTime::now());
        let info = LockInfo {
            version: LOCK_VERSION,
            kind,
            host: host.clone(),
            pid: std::process::id(),
            purpose: purpose.to_string(),
            created: now.clone(),
            refreshed: now,
            process_start: process_start_time(std::process::id()),
        };
        let name = random_name()?;
        write_lock(backend.as_ref(), &name, &info)?;
        let conflict = list_locks(backend.as_ref()).map(|locks| {
            let now = SystemTime::now();
            locks.into_iter().find(|(other, other_info)| {
                other != &name
                    && !other_info.is_stale(&host, now)
                    && (kind == LockKind::Exclusive || other_info.kind == LockKind::Exclusive)
            })
        });
        match conflict {
            Ok(None) => {}
            Ok(Some((_, other))) => {
                backend.delete(ObjectKind::Lock, &name)?;
                return Err(Error::RepositoryLocked {
                    holder: other.describe(),
                });
            }
            Err(error) => {
                backend.delete(ObjectKind::Lock, &name)?;
                return Err(error);
            }
        }
        let held = Arc::new(Mutex::new(Held { name, info }));
        let (stop, stopped) = channel::<()>();
        let refresher = {
            let backend = Arc::clone(&backend);
            let held = Arc::clone(&held);
            std::thread::Builder::new()
                .name("lsmvault-lock-refresh".into())
                .spawn(move || loop {
                    match stopped.recv_timeout(REFRESH_EVERY) {
                        Err(RecvTimeoutError::Timeout) => {
                            let mut held =
                                held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                            // A failed refresh keeps the old lock, which stays
                            // valid until it goes stale: try again next round.
                            let _ = refresh(backend.as_ref(), &mut held);
                        }
                        _ => return,
                    }
                })
                .map_err(|error| Error::io("starting the lock refresh thread", error))?
        };
        Ok(LockGuard {
            backend,
            held,
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }

    /// Re-checks, before a commit, that this lock still protects its holder:
    /// its object must still exist (a lock that went stale may have been
    /// removed by `unlock`), and no live exclusive lock may exist beside it
    /// (a prune that took its lock while this one looked stale). The lock is
    /// refreshed first, so a prune starting after this check sees it live and
    /// waits. Fails with [`Error::LockLost`].
    ///
    /// This does not see a prune that already finished: the caller checks
    /// that the index files it saw are still there (every prune that deletes
    /// anything deletes them), see `docs/maintenance.md`.
    pub fn confirm_live(&self) -> Result<()> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let locks = list_locks(self.backend.as_ref())?;
        if !locks.iter().any(|(name, _)| *name == held.name) {
            return Err(Error::LockLost {
                reason: format!(
                    "its lock object {} is gone (removed as stale?)",
                    ObjectKind::Lock.describe(&held.name)
                ),
            });
        }
        refresh(self.backend.as_ref(), &mut held)?;
        let own = held.name.clone();
        drop(held);
        // An exclusive lock object is not yet an exclusive lock: a prune that
        // asks (with `--retry-lock`, again and again) writes its object, sees
        // this shared lock, and removes its object again. Only one that is
        // still there, the same holder (host, pid, creation time), after that
        // round trip could take has really been taken.
        let mut seen = self.live_exclusive_locks(&own)?;
        for pause in CANDIDATE_LOCK_PAUSES {
            if seen.is_empty() {
                return Ok(());
            }
            std::thread::sleep(pause);
            let now_seen = self.live_exclusive_locks(&own)?;
            seen.retain(|holder| now_seen.iter().any(|other| same_holder(holder, other)));
        }
        match seen.first() {
            Some(info) => Err(Error::LockLost {
                reason: format!("an {} was taken meanwhile", info.describe()),
            }),
            None => Ok(()),
        }
    }

    /// The live exclusive locks other than `own`.
    fn live_exclusive_locks(&self, own: &str) -> Result<Vec<LockInfo>> {
        let host = host_name();
        let now = SystemTime::now();
        Ok(list_locks(self.backend.as_ref())?
            .into_iter()
            .filter(|(name, info)| {
                name != own && info.kind == LockKind::Exclusive && !info.is_stale(&host, now)
            })
            .map(|(_, info)| info)
            .collect())
    }

    /// Name of the lock object currently held.
    pub fn name(&self) -> String {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .name
            .clone()
    }
}

/// How long [`LockGuard::confirm_live`] watches an exclusive lock object
/// before it believes the lock was taken: a candidate that saw a shared lock
/// removes its object within one write, one listing and one delete.
const CANDIDATE_LOCK_PAUSES: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];

/// Whether two lock objects belong to one holder: refreshing writes a new
/// object under a new name but keeps host, pid and creation time.
fn same_holder(a: &LockInfo, b: &LockInfo) -> bool {
    a.host == b.host && a.pid == b.pid && a.created == b.created
}

fn write_lock(backend: &dyn Backend, name: &str, info: &LockInfo) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(info)
        .map_err(|error| Error::InvalidArgument(error.to_string()))?;
    backend.write_if_absent(ObjectKind::Lock, name, &bytes)?;
    Ok(())
}

fn refresh(backend: &dyn Backend, held: &mut Held) -> Result<()> {
    let mut info = held.info.clone();
    info.refreshed = format_time(SystemTime::now());
    let name = random_name()?;
    write_lock(backend, &name, &info)?;
    let old = std::mem::replace(&mut held.name, name);
    held.info = info;
    Ok(backend.delete(ObjectKind::Lock, &old)?)
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(refresher) = self.refresher.take() {
            let _ = refresher.join();
        }
        let name = self.name();
        // If this fails the lock goes stale (dead pid / no refresh) and is ignored.
        let _ = self.backend.delete(ObjectKind::Lock, &name);
    }
}

impl crate::repo::Repository {
    /// Takes a repository lock held until the guard is dropped.
    ///
    /// The cached index is dropped once the lock is held: a prune may have
    /// run since it was loaded (between two commands of a long-lived handle),
    /// and a blob of a pack it deleted must not pass for stored. While the
    /// lock is held no prune runs, so the index loaded next stays valid
    /// (other backups only add to it).
    pub fn lock(&self, kind: LockKind, purpose: &str) -> Result<LockGuard> {
        let started = std::time::Instant::now();
        let guard = loop {
            match LockGuard::acquire(Arc::clone(&self.backend), kind, purpose) {
                Err(Error::RepositoryLocked { .. }) if started.elapsed() < self.lock_retry => {
                    std::thread::sleep(lock_retry_pause());
                }
                other => break other?,
            }
        };
        *self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        Ok(guard)
    }

    /// A shared lock for a command that only reads (restore, verify), or
    /// none when the lock object cannot be written because the repository's
    /// file system is read-only or full: restoring from read-only media or
    /// from a full backup disk must work. Nothing can delete through a
    /// read-only mount; a prune through another mount (or one already
    /// running on the full one) could still delete packs meanwhile, and the
    /// reader then fails on the missing data (every blob is checked against
    /// its id): it never restores wrong data.
    pub fn lock_for_reading(&self, purpose: &str) -> Result<Option<LockGuard>> {
        use crate::ErrorCode;
        match self.lock(LockKind::Shared, purpose) {
            Ok(guard) => Ok(Some(guard)),
            Err(error)
                if matches!(
                    error.code(),
                    ErrorCode::ReadOnlyFilesystem | ErrorCode::NoSpace
                ) =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// Makes every command of this handle wait up to `wait` for a
    /// conflicting lock to go away (restic's `--retry-lock`): a prune
    /// started next to nightly backups then runs when they finish.
    pub fn set_lock_retry(&mut self, wait: Duration) {
        self.lock_retry = wait;
    }

    /// Removes the stale and corrupt locks of this repository (every lock,
    /// live ones too, with `all`); says how many were removed and which were
    /// corrupt. Callers go through the repository rather than its backend, as
    /// for every other operation.
    pub fn remove_locks(&self, all: bool) -> Result<RemovedLocks> {
        remove_locks(self.backend().as_ref(), all)
    }
}

/// A random pause of 50-550 ms between lock attempts, so that two commands
/// that refused each other do not retry in lockstep.
fn lock_retry_pause() -> Duration {
    let mut random = [0u8; 2];
    let jitter = crate::codec::crypto::random_bytes(&mut random)
        .map(|()| u64::from(u16::from_le_bytes(random)) % 500)
        .unwrap_or(250);
    Duration::from_millis(50 + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MemoryBackend;

    #[test]
    fn shared_locks_coexist_and_exclusive_excludes() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let first = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup a").unwrap();
        let second =
            LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup b").unwrap();
        let error =
            LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune").unwrap_err();
        assert!(
            matches!(&error, Error::RepositoryLocked { holder } if holder.contains("backup")),
            "{error}"
        );
        // The loser removed its own lock.
        assert_eq!(list_locks(backend.as_ref()).unwrap().len(), 2);
        drop(first);
        drop(second);
        assert!(list_locks(backend.as_ref()).unwrap().is_empty());
        let exclusive =
            LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune").unwrap();
        let error =
            LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap_err();
        assert!(
            matches!(&error, Error::RepositoryLocked { holder } if holder.contains("prune")),
            "{error}"
        );
        drop(exclusive);
        assert!(list_locks(backend.as_ref()).unwrap().is_empty());
    }

    #[test]
    fn a_lock_of_an_unknown_version_is_refused() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let newer = LockInfo {
            version: LOCK_VERSION + 1,
            kind: LockKind::Shared,
            host: host_name(),
            pid: std::process::id(),
            purpose: "backup".into(),
            created: format_time(SystemTime::now()),
            refreshed: format_time(SystemTime::now()),
            process_start: None,
        };
        write_lock(backend.as_ref(), "newer", &newer).unwrap();
        let error = list_locks(backend.as_ref()).unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::UnsupportedVersion);
        let error = LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune")
            .err()
            .unwrap();
        assert_eq!(error.code(), crate::ErrorCode::UnsupportedVersion);
    }

    #[test]
    fn a_corrupt_lock_is_ignored_and_removed() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        backend
            .write_if_absent(ObjectKind::Lock, "torn", b"{\"version\": 1, \"ki")
            .unwrap();
        let listing = list_locks_checked(backend.as_ref()).unwrap();
        assert!(listing.locks.is_empty());
        assert_eq!(listing.corrupt, ["torn"]);
        // Exclusive locking is not blocked by it.
        drop(LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune").unwrap());
        let removed = remove_locks(backend.as_ref(), false).unwrap();
        assert_eq!(removed.removed, 1);
        assert_eq!(removed.corrupt, ["torn"]);
        assert!(backend.list(ObjectKind::Lock).unwrap().is_empty());
    }

    #[test]
    fn stale_locks_are_ignored_and_removed() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let old = LockInfo {
            version: LOCK_VERSION,
            kind: LockKind::Exclusive,
            host: "elsewhere".into(),
            pid: 1,
            purpose: "prune".into(),
            created: "2020-01-01T00:00:00Z".into(),
            refreshed: "2020-01-01T00:00:00Z".into(),
            process_start: None,
        };
        write_lock(backend.as_ref(), "old", &old).unwrap();
        // A dead process of this host, refreshed just now.
        let now = format_time(SystemTime::now());
        let dead = LockInfo {
            host: host_name(),
            pid: u32::MAX - 7,
            created: now.clone(),
            refreshed: now,
            ..old.clone()
        };
        write_lock(backend.as_ref(), "dead", &dead).unwrap();
        // A live lock of another host is not stale.
        let live = LockInfo {
            kind: LockKind::Shared,
            refreshed: format_time(SystemTime::now()),
            ..old.clone()
        };
        assert!(!live.is_stale(&host_name(), SystemTime::now()));
        let guard = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap();
        drop(guard);
        assert_eq!(remove_locks(backend.as_ref(), false).unwrap().removed, 2);
        assert!(list_locks(backend.as_ref()).unwrap().is_empty());
    }

    #[test]
    fn a_lock_whose_pid_was_reused_by_another_process_is_stale() {
        let now = format_time(SystemTime::now());
        let me = std::process::id();
        let mine = LockInfo {
            version: LOCK_VERSION,
            kind: LockKind::Exclusive,
            host: host_name(),
            pid: me,
            purpose: "prune".into(),
            created: now.clone(),
            refreshed: now,
            process_start: process_start_time(me),
        };
        assert!(!mine.is_stale(&host_name(), SystemTime::now()));
        if let Some(start) = mine.process_start {
            // The same pid, started at another time: another process.
            let reused = LockInfo {
                process_start: Some(start + 1),
                ..mine.clone()
            };
            assert!(reused.is_stale(&host_name(), SystemTime::now()));
        }
        // A lock of an earlier build (no start time): the pid decides.
        let earlier = LockInfo {
            process_start: None,
            ..mine
        };
        assert!(!earlier.is_stale(&host_name(), SystemTime::now()));
    }

    #[test]
    fn confirm_live_fails_once_the_lock_is_gone_or_an_exclusive_lock_appeared() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let guard = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap();
        guard.confirm_live().unwrap();
        // Confirming refreshed the lock: still exactly one, under a new name.
        assert_eq!(list_locks(backend.as_ref()).unwrap().len(), 1);
        backend.delete(ObjectKind::Lock, &guard.name()).unwrap();
        let error = guard.confirm_live().unwrap_err();
        assert!(
            matches!(&error, Error::LockLost { reason } if reason.contains("gone")),
            "{error}"
        );
        let guard = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap();
        let now = format_time(SystemTime::now());
        let prune = LockInfo {
            version: LOCK_VERSION,
            kind: LockKind::Exclusive,
            host: "elsewhere".into(),
            pid: 1,
            purpose: "prune".into(),
            created: now.clone(),
            refreshed: now,
            process_start: None,
        };
        write_lock(backend.as_ref(), "prune", &prune).unwrap();
        let error = guard.confirm_live().unwrap_err();
        assert_eq!(error.code(), crate::ErrorCode::RepositoryLocked);
        assert!(
            error.to_string().contains("exclusive lock of prune"),
            "{error}"
        );
    }

    /// Review of issue 15 (a `prune --retry-lock` racing backups failed one
    /// of them): an exclusive lock object that its writer removes again
    /// (it saw this shared lock) is a candidate, not a lock taken.
    #[test]
    fn confirm_live_ignores_an_exclusive_candidate_that_backs_off() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let guard = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap();
        // A prune's object, written just before it lists the locks, sees
        // this shared lock and is removed again (200 ms later: a slow store).
        let now = format_time(SystemTime::now());
        let candidate = LockInfo {
            version: LOCK_VERSION,
            kind: LockKind::Exclusive,
            host: "elsewhere".into(),
            pid: 1,
            purpose: "prune".into(),
            created: now.clone(),
            refreshed: now,
            process_start: None,
        };
        write_lock(backend.as_ref(), "candidate", &candidate).unwrap();
        let backing_off = {
            let backend = Arc::clone(&backend);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                backend.delete(ObjectKind::Lock, "candidate").unwrap();
            })
        };
        guard.confirm_live().unwrap();
        backing_off.join().unwrap();
    }

    #[test]
    fn refresh_replaces_the_lock_object() {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        let guard = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap();
        let before = guard.name();
        {
            let mut held = guard.held.lock().unwrap();
            refresh(backend.as_ref(), &mut held).unwrap();
        }
        let locks = list_locks(backend.as_ref()).unwrap();
        assert_eq!(locks.len(), 1);
        assert_ne!(locks[0].0, before);
        assert_eq!(locks[0].0, guard.name());
    }
}
