//! Unit tests of the lock protocol on the memory backend.

use super::*;
use crate::backend::{CountingBackend, MemoryBackend, ObjectInfo, TimeShiftBackend, WriteOutcome};

#[test]
fn shared_locks_coexist_and_exclusive_excludes() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let first = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup a").unwrap();
    let second = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup b").unwrap();
    let error = LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune").unwrap_err();
    assert!(
        matches!(&error, Error::RepositoryLocked { holder } if holder.contains("backup")),
        "{error}"
    );
    // The loser removed its own lock.
    assert_eq!(list_locks(backend.as_ref()).unwrap().len(), 2);
    drop(first);
    drop(second);
    assert!(list_locks(backend.as_ref()).unwrap().is_empty());
    let exclusive = LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune").unwrap();
    let error = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap_err();
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
        process_namespace: None,
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

/// A backend that lists no `modified` times: locks then fall back to the
/// holder's `refreshed` field against this process's clock.
struct WithoutTimes(MemoryBackend);

impl Backend for WithoutTimes {
    fn location(&self) -> String {
        self.0.location()
    }
    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>, crate::backend::Error> {
        self.0.read(kind, name)
    }
    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, crate::backend::Error> {
        self.0.read_range(kind, name, offset, length)
    }
    fn write_if_absent(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: &[u8],
    ) -> Result<WriteOutcome, crate::backend::Error> {
        self.0.write_if_absent(kind, name, bytes)
    }
    fn replace_config(&self, bytes: &[u8]) -> Result<(), crate::backend::Error> {
        self.0.replace_config(bytes)
    }
    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>, crate::backend::Error> {
        let mut listed = self.0.list(kind)?;
        for object in &mut listed {
            object.modified = None;
        }
        Ok(listed)
    }
    fn delete(&self, kind: ObjectKind, name: &str) -> Result<(), crate::backend::Error> {
        self.0.delete(kind, name)
    }
    fn exists(&self) -> Result<bool, crate::backend::Error> {
        self.0.exists()
    }
    fn create(&self) -> Result<(), crate::backend::Error> {
        self.0.create()
    }
}

/// A lock of another host; `refreshed` as given.
fn foreign(kind: LockKind, refreshed: SystemTime) -> LockInfo {
    LockInfo {
        version: LOCK_VERSION,
        kind,
        host: "elsewhere".into(),
        pid: 1,
        purpose: "prune".into(),
        created: format_time(refreshed),
        refreshed: format_time(refreshed),
        process_start: None,
        process_namespace: None,
    }
}

/// Sets the mtime of the local lock object `name` to `age` ago: its
/// `modified` on the storage's clock.
fn backdate(repository: &std::path::Path, name: &str, age: Duration) {
    let path = repository.join(ObjectKind::Lock.key(name));
    let time = filetime::FileTime::from_system_time(SystemTime::now() - age);
    filetime::set_file_mtime(path, time).unwrap();
}

fn local() -> (tempfile::TempDir, Arc<dyn Backend>) {
    let directory = tempfile::tempdir().unwrap();
    let backend = crate::backend::LocalBackend::new(directory.path());
    backend.create().unwrap();
    (directory, Arc::new(backend))
}

#[test]
fn a_lock_of_a_slow_clock_holder_is_live_while_its_object_is_fresh() {
    let (_directory, backend) = local();
    // Its holder's clock is two hours behind: `refreshed` says two hours ago.
    let slow = foreign(
        LockKind::Shared,
        SystemTime::now() - Duration::from_secs(2 * 3600),
    );
    write_lock(backend.as_ref(), "slow", &slow).unwrap();
    let error = LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune")
        .err()
        .unwrap();
    assert_eq!(error.code(), crate::ErrorCode::RepositoryLocked, "{error}");
    assert_eq!(remove_locks(backend.as_ref(), false).unwrap().removed, 0);
    assert_eq!(list_locks(backend.as_ref()).unwrap().len(), 1);
}

#[test]
fn a_lock_whose_object_is_old_is_stale_whatever_its_refreshed_field_says() {
    let (directory, backend) = local();
    // Its holder's clock is an hour ahead, and its object 31 minutes old.
    let fast = foreign(
        LockKind::Exclusive,
        SystemTime::now() + Duration::from_secs(3600),
    );
    write_lock(backend.as_ref(), "fast", &fast).unwrap();
    backdate(
        directory.path(),
        "fast",
        STALE_AFTER + Duration::from_secs(60),
    );
    drop(LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap());
    // A lock 29 minutes old is live.
    write_lock(backend.as_ref(), "recent", &fast).unwrap();
    backdate(
        directory.path(),
        "recent",
        STALE_AFTER - Duration::from_secs(60),
    );
    assert!(LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").is_err());
    let removed = remove_locks(backend.as_ref(), false).unwrap();
    assert_eq!(removed.removed, 1);
    let left: Vec<String> = list_locks(backend.as_ref())
        .unwrap()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(left, ["recent"], "unlock removed the old one and its probe");
}

#[test]
fn without_storage_times_the_refreshed_field_decides() {
    let backend: Arc<dyn Backend> = Arc::new(WithoutTimes(MemoryBackend::new()));
    let old = LockInfo {
        version: LOCK_VERSION,
        kind: LockKind::Exclusive,
        host: "elsewhere".into(),
        pid: 1,
        purpose: "prune".into(),
        created: "2020-01-01T00:00:00Z".into(),
        refreshed: "2020-01-01T00:00:00Z".into(),
        process_start: None,
        process_namespace: None,
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
        process_namespace: None,
    };
    assert!(!mine.is_stale(&host_name(), SystemTime::now()));
    if let Some(start) = mine.process_start {
        // The same pid, started at another time: another process.
        let reused = LockInfo {
            process_start: Some(start + 1),
            process_namespace: None,
            ..mine.clone()
        };
        assert!(reused.is_stale(&host_name(), SystemTime::now()));
    }
    // A lock of an earlier build (no start time): the pid decides.
    let earlier = LockInfo {
        process_start: None,
        process_namespace: None,
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
    let prune = foreign(LockKind::Exclusive, SystemTime::now());
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
    let candidate = foreign(LockKind::Exclusive, SystemTime::now());
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

#[test]
fn taking_and_confirming_a_lock_never_reads_its_own_object() {
    let counting = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
    let backend: Arc<dyn Backend> = Arc::clone(&counting) as Arc<dyn Backend>;
    let guard = LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap();
    let taken = counting.counts();
    assert_eq!(
        (
            taken.of(ObjectKind::Lock, "write_if_absent"),
            taken.of(ObjectKind::Lock, "list"),
            taken.of(ObjectKind::Lock, "read"),
        ),
        (1, 1, 0),
        "{taken:?}"
    );
    guard.confirm_live().unwrap();
    let confirmed = counting.counts();
    assert_eq!(
        confirmed.requests - taken.requests,
        3,
        "PUT, LIST, DELETE: {confirmed:?}"
    );
    assert_eq!(confirmed.of(ObjectKind::Lock, "read"), 0);
    drop(guard);
    assert_eq!(counting.counts().of(ObjectKind::Lock, "delete"), 2);
    assert!(list_locks(backend.as_ref()).unwrap().is_empty());
}

#[test]
fn a_young_lock_is_uncontested_and_a_paused_one_is_not() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let clock = LockClock::default();
    let guard = LockGuard::acquire_timed(
        Arc::clone(&backend),
        LockKind::Shared,
        "backup",
        clock.clone(),
    )
    .unwrap();
    assert!(guard.uncontested());
    clock.simulate_pause(UNCONTESTED_FOR);
    assert!(!guard.uncontested());
    // Refreshing does not make it young again: its life is what counts.
    guard.confirm_live().unwrap();
    assert!(!guard.uncontested());
}

#[test]
fn ensure_held_fails_once_the_lock_may_have_looked_stale() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let clock = LockClock::default();
    let guard = LockGuard::acquire_timed(
        Arc::clone(&backend),
        LockKind::Exclusive,
        "prune",
        clock.clone(),
    )
    .unwrap();
    guard.ensure_held().unwrap();
    // Refreshed in time, a long-held lock stays held.
    for _ in 0..5 {
        clock.simulate_pause(REFRESH_EVERY);
        refresh(backend.as_ref(), &mut guard.held()).unwrap();
        guard.ensure_held().unwrap();
    }
    clock.simulate_pause(MAY_HAVE_LAPSED_AFTER);
    let error = guard.ensure_held().unwrap_err();
    assert_eq!(error.code(), crate::ErrorCode::RepositoryLocked, "{error}");
    assert!(
        error.to_string().contains("exclusive lock of prune"),
        "{error}"
    );
    // The refresh after the pause does not hide the gap.
    refresh(backend.as_ref(), &mut guard.held()).unwrap();
    let error = guard.ensure_held().unwrap_err();
    assert!(
        error.to_string().contains("not refreshed in time"),
        "{error}"
    );
}

#[test]
fn unlock_judges_by_the_storage_clock_and_leaves_no_probe() {
    let counting = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
    let backend: Arc<dyn Backend> = Arc::clone(&counting) as Arc<dyn Backend>;
    // Refreshed "in 2020" by its holder's clock, written just now.
    let live = foreign(
        LockKind::Shared,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800),
    );
    write_lock(backend.as_ref(), "live", &live).unwrap();
    assert_eq!(remove_locks(backend.as_ref(), false).unwrap().removed, 0);
    let counts = counting.counts();
    // Its write, the probe's write and delete, one listing, one read (not the probe).
    assert_eq!(
        counts.of(ObjectKind::Lock, "write_if_absent"),
        2,
        "{counts:?}"
    );
    assert_eq!(counts.of(ObjectKind::Lock, "read"), 1, "{counts:?}");
    assert_eq!(list_locks(backend.as_ref()).unwrap().len(), 1);
}

#[test]
fn a_dead_process_lock_is_stale_at_once_by_the_storage_clock_too() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let dead = LockInfo {
        host: host_name(),
        pid: u32::MAX - 7,
        ..foreign(LockKind::Exclusive, SystemTime::now())
    };
    write_lock(backend.as_ref(), "dead", &dead).unwrap();
    drop(LockGuard::acquire(Arc::clone(&backend), LockKind::Shared, "backup").unwrap());
    assert_eq!(remove_locks(backend.as_ref(), false).unwrap().removed, 1);
}

/// A container run with the host's network (`docker --network host`) has
/// the host's name but its own pids: a live backup there must not look
/// dead to a prune on the host because the host has no process of that pid
/// (the free commit check would then let the backup commit over deleted
/// packs). The dead-pid rule applies only within one process table.
#[test]
fn a_dead_pid_of_another_pid_namespace_with_this_host_name_is_not_stale() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let now = format_time(SystemTime::now());
    let container = LockInfo {
        version: LOCK_VERSION,
        kind: LockKind::Shared,
        host: host_name(),
        pid: u32::MAX - 7,
        purpose: "backup".into(),
        created: now.clone(),
        refreshed: now,
        process_start: Some(42),
        process_namespace: Some("another-boot/pid:[4026531836]".into()),
    };
    assert!(!container.is_stale(&host_name(), SystemTime::now()));
    write_lock(backend.as_ref(), "container", &container).unwrap();
    let refused = LockGuard::acquire(Arc::clone(&backend), LockKind::Exclusive, "prune");
    assert!(
        matches!(refused, Err(Error::RepositoryLocked { .. })),
        "{refused:?}"
    );
    assert_eq!(remove_locks(backend.as_ref(), false).unwrap().removed, 0);
    // The same dead pid in this process table is stale at once, as before.
    let here = LockInfo {
        process_namespace: process_namespace(),
        ..container.clone()
    };
    assert!(here.process_namespace.is_some());
    assert!(here.is_stale(&host_name(), SystemTime::now()));
    // New locks record the namespace.
    assert_eq!(
        new_info(LockKind::Shared, "x").process_namespace,
        process_namespace()
    );
}

/// An exclusive lock (a prune's) on a storage whose clock can jump, with
/// its own clock; and the wrapper to move the storage's clock.
fn prune_lock(counting: bool) -> (Arc<TimeShiftBackend>, Arc<CountingBackend>, LockGuard) {
    let counted = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
    let inner: Arc<dyn Backend> = if counting {
        Arc::clone(&counted) as Arc<dyn Backend>
    } else {
        Arc::new(MemoryBackend::new())
    };
    let storage = Arc::new(TimeShiftBackend::new(inner));
    let backend: Arc<dyn Backend> = Arc::clone(&storage) as Arc<dyn Backend>;
    let guard = LockGuard::acquire(backend, LockKind::Exclusive, "prune").unwrap();
    (storage, counted, guard)
}

#[test]
fn ensure_lease_refreshes_in_three_requests_while_the_lock_is_held() {
    let (_, counting, guard) = prune_lock(true);
    let before = counting.counts();
    let name = guard.name();
    guard.ensure_lease().unwrap();
    let after = counting.counts();
    assert_eq!(after.requests - before.requests, 3, "PUT, LIST, DELETE");
    assert_ne!(guard.name(), name, "refreshed");
    assert_eq!(after.of(ObjectKind::Lock, "read"), 0);
    guard.ensure_lease().unwrap();
}

/// Review finding F2: a virtual machine paused by its hypervisor stops the
/// guest's boot clock and wall clock; only the storage's clock shows the
/// pause, even after the lock was refreshed once resumed.
#[test]
fn ensure_lease_sees_a_paused_vm_by_the_storage_clock() {
    let (storage, _, guard) = prune_lock(false);
    storage.advance(STALE_AFTER + Duration::from_secs(60));
    refresh(storage.as_ref(), &mut guard.held()).unwrap();
    guard.ensure_held().unwrap();
    let error = guard.ensure_lease().unwrap_err();
    assert!(matches!(error, Error::LockExpired { .. }), "{error}");
    assert_eq!(error.code(), crate::ErrorCode::RepositoryLocked);
    assert!(error.to_string().contains("was paused"), "{error}");
    // A shorter gap than any that can make the lock look stale is not one.
    let (storage, _, guard) = prune_lock(false);
    storage.advance(STORAGE_AHEAD_LIMIT - Duration::from_secs(30));
    guard.ensure_lease().unwrap();
}

/// A refresh gap on the storage's clock (the previous object old when the
/// new one was written) fails the lease even without a pause of this
/// process: the storage or the refresher stalled.
#[test]
fn ensure_lease_fails_when_the_storage_saw_a_refresh_gap() {
    let (storage, _, guard) = prune_lock(false);
    // As if the clock of this process had run on as well: no pause seen here.
    guard.clock.simulate_pause(REFRESH_EVERY);
    storage.advance(MAY_HAVE_LAPSED_AFTER);
    let error = guard.ensure_lease().unwrap_err();
    assert!(
        error
            .to_string()
            .contains("previous lock object was written"),
        "{error}"
    );
}

#[test]
fn ensure_lease_fails_when_a_conflicting_lock_appeared_or_its_object_is_gone() {
    let (storage, _, guard) = prune_lock(false);
    // A backup took its shared lock while the prune's looked stale.
    let backup = LockInfo {
        purpose: "backup".into(),
        ..foreign(LockKind::Shared, SystemTime::now())
    };
    write_lock(storage.as_ref(), "backup", &backup).unwrap();
    let error = guard.ensure_lease().unwrap_err();
    assert!(matches!(error, Error::LockExpired { .. }), "{error}");
    assert!(
        error.to_string().contains("shared lock of backup"),
        "{error}"
    );
    let (storage, _, guard) = prune_lock(false);
    storage.delete(ObjectKind::Lock, &guard.name()).unwrap();
    let error = guard.ensure_lease().unwrap_err();
    assert!(error.to_string().contains("is gone"), "{error}");
}

/// A backup asking for its lock (`--retry-lock`) writes its object, sees
/// the prune's lock and removes it again: not a conflicting lock taken.
#[test]
fn ensure_lease_ignores_a_candidate_that_backs_off() {
    let (storage, _, guard) = prune_lock(false);
    write_lock(
        storage.as_ref(),
        "candidate",
        &foreign(LockKind::Shared, SystemTime::now()),
    )
    .unwrap();
    let backing_off = {
        let storage = Arc::clone(&storage);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            storage.delete(ObjectKind::Lock, "candidate").unwrap();
        })
    };
    guard.ensure_lease().unwrap();
    backing_off.join().unwrap();
}
