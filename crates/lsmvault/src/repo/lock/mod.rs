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
//! A lock is stale, and ignored (and removed by `unlock`), when its newest
//! object was written more than [`STALE_AFTER`] before the judge's own object,
//! both times by the **storage's** clock (`listing.rs`), or when it belongs to
//! a process of this host that no longer runs. A lock object that does not
//! parse is nobody's live lock (holders refresh by writing a new well-formed
//! object): it is ignored by conflict checks and removed by `unlock`. A lock
//! of another format version is not corrupt and is refused. Holders refresh
//! their lock every [`REFRESH_EVERY`] by writing a new lock object and
//! deleting the old one.
//!
//! Invariant the commit check builds on ([`LockGuard::uncontested`]): since
//! staleness is judged by the storage's clock, a lock taken less than
//! [`UNCONTESTED_FOR`] ago on the storage's clock has looked live to every
//! other locker all along, so no conflicting lock was taken beside it. The
//! holder's own clock says so only if it was not paused unseen (a paused
//! virtual machine stops every clock of the guest), so the commit check
//! asks the storage where it can (`repo/commit.rs`). A holder whose lock may
//! have looked stale must not delete anything: [`LockGuard::ensure_held`]
//! (its own clock, no request) before each deletion, and
//! [`LockGuard::ensure_lease`] (the storage's view, `lease.rs`) before a
//! prune writes its index and before it deletes.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::backend::{Backend, ObjectKind};
use crate::error::{Error, Result};
use crate::format::snapshot::format_time;
use crate::id::Id;

mod clock;
mod lease;
mod listing;

pub use clock::LockClock;
use clock::Reading;
pub use lease::STORAGE_AHEAD_LIMIT;

pub use listing::{
    list_locks, list_locks_checked, list_locks_with, parse_lock, ListedLock, LockListing,
};

/// A lock whose newest object is older than this (storage's clock; the
/// `refreshed` field against the reader's clock where the storage gives no
/// times) is stale.
pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
/// Holders refresh their lock this often.
pub const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);
/// A lock whose first object's PUT began less than this ago (the holder's
/// monotonic clock) cannot have looked stale to anyone: its age on the
/// storage's clock is at most this, far inside [`STALE_AFTER`]. The 20
/// minutes between them absorb a storage clock that runs at another rate and
/// listings that lag. See `docs/maintenance.md` ("The commit check is free
/// while the lock is young").
pub const UNCONTESTED_FOR: Duration = Duration::from_secs(10 * 60);
/// A holder whose newest lock object was written longer ago than this, or
/// whose refreshes ever left such a gap (a paused process, a storage that
/// refused refreshes), may have looked stale to another client: with
/// [`LockGuard::ensure_held`] it stops before deleting anything. Two
/// refresh periods of slack for slow or retried refreshes, ten minutes of
/// margin to [`STALE_AFTER`].
pub const MAY_HAVE_LAPSED_AFTER: Duration = Duration::from_secs(20 * 60);

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
    /// Which process table `pid` belongs to: the boot id and the pid
    /// namespace of the holder (`BOOT_ID/pid:[INODE]`). Two machines, or a
    /// container and its host, can share a host name (cloned VMs, `docker
    /// --network host`, Kubernetes `hostNetwork`) while their pids name
    /// different processes; the dead-pid rule applies only to a lock whose
    /// namespace is the judge's. Absent in locks of earlier builds (then the
    /// host name alone decides, as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_namespace: Option<String>,
}

impl LockInfo {
    /// Whether the lock no longer protects anything, judged by its holder's
    /// clock (`refreshed`) against `now`: the rule for a storage that lists
    /// no modification times. Lockers judge by the storage's clock where it
    /// has one ([`LockListing::is_stale`]).
    pub fn is_stale(&self, this_host: &str, now: SystemTime) -> bool {
        let refreshed = humantime::parse_rfc3339(&self.refreshed).unwrap_or(SystemTime::UNIX_EPOCH);
        if now.duration_since(refreshed).unwrap_or_default() > STALE_AFTER {
            return true;
        }
        self.holder_is_dead(this_host)
    }

    /// Whether the holder is a process of this process table that no longer
    /// runs. Only then may a lock be taken for stale before its time: a pid
    /// of another machine or pid namespace says nothing here.
    pub(crate) fn holder_is_dead(&self, this_host: &str) -> bool {
        let same_table = self.host == this_host
            && self
                .process_namespace
                .as_ref()
                .is_none_or(|namespace| Some(namespace) == process_namespace().as_ref());
        same_table && !process_alive(self.pid, self.process_start)
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
///
/// Staleness is judged by the storage's clock, like every locker judges it:
/// `unlock` writes a short-lived probe lock (a shared lock, purpose
/// `unlock (probe)`), lists, and deletes it last. Judged by this process's
/// clock instead, a host whose clock runs ahead would remove live locks that
/// every locker still respects, and the commit check's shortcut
/// ([`LockGuard::uncontested`]) rests on no live lock being removed but by
/// `--remove-all`. A probe left by a killed `unlock` is an ordinary lock of
/// a dead process.
pub fn remove_locks(backend: &dyn Backend, all: bool) -> Result<RemovedLocks> {
    if all {
        return remove_all_locks(backend);
    }
    let mut removed = RemovedLocks::default();
    let host = host_name();
    let probe_info = new_info(LockKind::Shared, "unlock (probe)");
    let probe = random_name()?;
    write_lock(backend, &probe, &probe_info)?;
    let listed = list_locks_with(backend, &[(&probe, &probe_info)]);
    let judged = listed.and_then(|listing| {
        let now = SystemTime::now();
        for lock in &listing.locks {
            if lock.name != probe && listing.is_stale(lock, &host, now) {
                backend.delete(ObjectKind::Lock, &lock.name)?;
                removed.removed += 1;
            }
        }
        for name in listing.corrupt {
            backend.delete(ObjectKind::Lock, &name)?;
            removed.removed += 1;
            removed.corrupt.push(name);
        }
        Ok(())
    });
    backend.delete(ObjectKind::Lock, &probe)?;
    judged.map(|()| removed)
}

/// `unlock --remove-all`: every lock object goes, parsed or not.
fn remove_all_locks(backend: &dyn Backend) -> Result<RemovedLocks> {
    let mut removed = RemovedLocks::default();
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
    Ok(removed)
}

/// The content of a new lock of this process.
fn new_info(kind: LockKind, purpose: &str) -> LockInfo {
    let now = format_time(SystemTime::now());
    LockInfo {
        version: LOCK_VERSION,
        kind,
        host: host_name(),
        pid: std::process::id(),
        purpose: purpose.to_string(),
        created: now.clone(),
        refreshed: now,
        process_start: process_start_time(std::process::id()),
        process_namespace: process_namespace(),
    }
}

/// This process's boot id and pid namespace (see
/// [`LockInfo::process_namespace`]), or `None` without `/proc`.
pub(crate) fn process_namespace() -> Option<String> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(format!(
        "{}/{}",
        boot_id.trim(),
        namespace.to_string_lossy()
    ))
}

/// The lock object a guard holds now, and how its objects followed each other.
struct Held {
    name: String,
    info: LockInfo,
    clock: LockClock,
    /// When the PUT of the current object began.
    put_started: Reading,
    /// Set when an object of this lock was written [`MAY_HAVE_LAPSED_AFTER`]
    /// or more after the PUT of the one before began: the lock may have
    /// looked stale in between.
    lapsed: bool,
}

impl Held {
    /// Writes the next object of this lock (a refresh) and makes it the
    /// current one; returns the previous one's name and content, which the
    /// caller deletes (after looking, in [`LockGuard::confirm_live`]).
    fn write_successor(&mut self, backend: &dyn Backend) -> Result<(String, LockInfo)> {
        let mut info = self.info.clone();
        info.refreshed = format_time(SystemTime::now());
        let name = random_name()?;
        let started = self.clock.now();
        write_lock(backend, &name, &info)?;
        if self.clock.since(self.put_started) >= MAY_HAVE_LAPSED_AFTER {
            self.lapsed = true;
        }
        self.put_started = started;
        let old_name = std::mem::replace(&mut self.name, name);
        let old_info = std::mem::replace(&mut self.info, info);
        Ok((old_name, old_info))
    }

    /// Why this lock may have looked stale to another client, if it may.
    fn lapse(&self) -> Option<String> {
        let age = self.clock.since(self.put_started);
        if self.lapsed {
            Some("it was once not refreshed in time (the process was paused, or the storage refused the refresh)".into())
        } else if age >= MAY_HAVE_LAPSED_AFTER {
            Some(format!("it was last refreshed {} s ago", age.as_secs()))
        } else {
            None
        }
    }
}

/// A lock held until dropped; refreshed in the background meanwhile.
pub struct LockGuard {
    backend: Arc<dyn Backend>,
    held: Arc<Mutex<Held>>,
    clock: LockClock,
    /// When the PUT of the lock's first object began.
    acquired: Reading,
    /// When the storage wrote the lock's first object (its `modified` in
    /// the listing that took the lock; `None` if the backend gives no times).
    acquired_stored: Option<SystemTime>,
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
    /// conflicting lock. Requests: one PUT and one LIST (plus a GET per
    /// other lock listed; its own object is not read back), and a DELETE
    /// when it backs off.
    pub fn acquire(backend: Arc<dyn Backend>, kind: LockKind, purpose: &str) -> Result<LockGuard> {
        LockGuard::acquire_timed(backend, kind, purpose, LockClock::default())
    }

    /// [`LockGuard::acquire`], measuring the lock's age with `clock`.
    pub fn acquire_timed(
        backend: Arc<dyn Backend>,
        kind: LockKind,
        purpose: &str,
        clock: LockClock,
    ) -> Result<LockGuard> {
        let info = new_info(kind, purpose);
        let name = random_name()?;
        let acquired = clock.now();
        write_lock(backend.as_ref(), &name, &info)?;
        let checked = list_locks_with(backend.as_ref(), &[(&name, &info)]).and_then(|listing| {
            if !listing.contains(&name) {
                return Err(Error::RepositoryLocked {
                    holder: format!(
                        "its own {} was not listed right after it was written (removed at once by `unlock --remove-all`, or the storage's listing is not read-after-write consistent)",
                        ObjectKind::Lock.describe(&name)
                    ),
                });
            }
            match listing.conflicts(&[&name], kind).first() {
                Some(other) => Err(Error::RepositoryLocked {
                    holder: other.info.describe(),
                }),
                None => Ok(listing.storage_now),
            }
        });
        let acquired_stored = match checked {
            Ok(stored) => stored,
            Err(error) => {
                backend.delete(ObjectKind::Lock, &name)?;
                return Err(error);
            }
        };
        let held = Arc::new(Mutex::new(Held {
            name,
            info,
            clock: clock.clone(),
            put_started: acquired,
            lapsed: false,
        }));
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
            clock,
            acquired,
            acquired_stored,
            stop: Some(stop),
            refresher: Some(refresher),
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the lock was taken less than [`UNCONTESTED_FOR`] ago (the PUT
    /// of its first object began then, by this process's monotonic clock).
    /// Staleness being judged by the storage's clock, no other locker can
    /// have taken it for stale yet, so no exclusive lock was taken beside
    /// it, unless this process was paused unseen: a virtual machine paused
    /// by its hypervisor stops the boot clock and the wall clock alike, so
    /// [`CommitCheck::confirm`](crate::repo::commit::CommitCheck::confirm)
    /// also asks the storage's clock ([`LockGuard::storage_age`]) where it
    /// has a time for free. Blind to an operator's `unlock --remove-all`.
    pub fn uncontested(&self) -> bool {
        self.clock.since(self.acquired) < UNCONTESTED_FOR
    }

    /// Fails with [`Error::LockExpired`] when this lock may have looked
    /// stale to another client at some point (see [`MAY_HAVE_LAPSED_AFTER`]):
    /// a command about to delete calls it before each deletion, since
    /// another command may have taken a conflicting lock meanwhile and
    /// relied on what it would delete. No request.
    pub fn ensure_held(&self) -> Result<()> {
        let held = self.held();
        match held.lapse() {
            None => Ok(()),
            Some(reason) => Err(Error::LockExpired {
                lock: held.info.describe(),
                reason,
            }),
        }
    }

    /// Name of the lock object currently held.
    pub fn name(&self) -> String {
        self.held().name.clone()
    }
}

fn write_lock(backend: &dyn Backend, name: &str, info: &LockInfo) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(info)
        .map_err(|error| Error::InvalidArgument(error.to_string()))?;
    backend.write_if_absent(ObjectKind::Lock, name, &bytes)?;
    Ok(())
}

/// The periodic refresh: a new object, then the old one goes.
fn refresh(backend: &dyn Backend, held: &mut Held) -> Result<()> {
    let (old, _) = held.write_successor(backend)?;
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
            let clock = self.lock_clock.clone();
            match LockGuard::acquire_timed(Arc::clone(&self.backend), kind, purpose, clock) {
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

    /// The clock this handle's locks measure their age by: a test plays a
    /// paused process with [`LockClock::simulate_pause`].
    pub fn lock_clock(&self) -> &LockClock {
        &self.lock_clock
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
pub(crate) fn lock_retry_pause() -> Duration {
    let mut random = [0u8; 2];
    let jitter = crate::codec::crypto::random_bytes(&mut random)
        .map(|()| u64::from(u16::from_le_bytes(random)) % 500)
        .unwrap_or(250);
    Duration::from_millis(50 + jitter)
}

#[cfg(test)]
mod tests;
