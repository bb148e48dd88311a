//! Review of issue 11, findings F2 and F6: a virtual machine paused by its
//! hypervisor (`virsh suspend`, a snapshot, a migration blackout) stops both
//! the guest's `CLOCK_BOOTTIME` and its wall clock, while the storage's clock
//! runs on (`docs/maintenance.md`, "The commit check is cheap while the lock
//! is young, on object storage").
//!
//! Played with `backend::TimeShiftBackend`: at the pause, the storage's clock
//! jumps 35 minutes forward for every object written from then on, and no
//! clock of this process moves. Meanwhile another client (another handle on
//! the same storage) takes the paused command's lock for stale and runs:
//!
//! - a backup that wrote data, over S3: the storage time of its index file
//!   shows the pause, the full check finds the prune, no snapshot;
//! - an unchanged backup on a local repository: the full check always runs
//!   there (mounts may stamp mtimes with the client's clock), no snapshot;
//! - a prune: its lease check before writing its index sees the storage's
//!   clock far ahead of its own and stops before deleting anything;
//! - (finding F3) a backup over S3 with a warm metadata cache whose new pack
//!   is deleted before it commits: the full check lists the packs from the
//!   storage, not the cache.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use lsmvault::backend::{Backend, LocalBackend, TimeShiftBackend};
use lsmvault::repo::lock::STALE_AFTER;
use lsmvault::{BackupOptions, Error, ErrorCode, NoProgress, Progress, PruneOptions, Repository};

use crate::common::s3::{lsmvault_s3_ok, Moto};
use crate::common::*;

/// How long the virtual machine stays paused.
const PAUSE: Duration = Duration::from_secs(35 * 60);

/// Pauses "the virtual machine" once `phase` starts: the storage's clock
/// jumps, then `meanwhile` runs as another client would during the pause.
struct PauseAt<F: Fn()> {
    phase: &'static str,
    storage: Arc<TimeShiftBackend>,
    meanwhile: F,
    paused: AtomicBool,
}

impl<F: Fn() + Sync + Send> Progress for PauseAt<F> {
    fn start(&self, phase: &str, _total_bytes: u64) {
        if phase == self.phase && !self.paused.swap(true, Ordering::SeqCst) {
            self.storage.advance(PAUSE);
            (self.meanwhile)();
        }
    }
}

/// A source whose one file a forgotten snapshot stored: a backup of it
/// reuses blobs that no snapshot references, which a prune deletes.
fn forgotten_source(work: &Path, backup_and_forget: impl Fn(&[&str])) -> std::path::PathBuf {
    let source = work.join("source");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 300_000)).unwrap();
    backup_and_forget(&["backup", "-q", source.to_str().unwrap()]);
    backup_and_forget(&["forget", "latest"]);
    source
}

/// Backs up `source` through `storage` with the VM paused once scanning
/// starts; during the pause a prune runs on another handle.
fn backup_paused_while_a_prune_runs(storage: &Arc<TimeShiftBackend>, source: &Path) -> Error {
    let backend: Arc<dyn Backend> = Arc::clone(storage) as Arc<dyn Backend>;
    let repository = Repository::open(Arc::clone(&backend)).unwrap();
    let pruned = AtomicBool::new(false);
    let hook = PauseAt {
        phase: "scanning",
        storage: Arc::clone(storage),
        meanwhile: || {
            let other = Repository::open(Arc::clone(&backend)).unwrap();
            let report = other.prune(&PruneOptions::default(), &NoProgress).unwrap();
            pruned.store(report.packs_deleted > 0, Ordering::SeqCst);
        },
        paused: AtomicBool::new(false),
    };
    let error = repository
        .backup(source, &BackupOptions::default(), &hook)
        .unwrap_err();
    assert!(hook.paused.load(Ordering::SeqCst));
    assert!(
        pruned.load(Ordering::SeqCst),
        "the prune took the backup's lock for stale and deleted packs"
    );
    error
}

fn assert_lock_lost(error: &Error) {
    assert!(matches!(error, Error::LockLost { .. }), "{error}");
    assert_eq!(error.code(), ErrorCode::RepositoryLocked);
    assert!(
        error.to_string().contains("no snapshot was written"),
        "{error}"
    );
}

#[test]
fn a_backup_in_a_paused_vm_over_s3_fails_instead_of_committing_what_a_prune_deleted() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    let work = tempfile::tempdir().unwrap();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let source = forgotten_source(work.path(), |args| {
        lsmvault_s3_ok(&repo, None, args);
    });
    // New data too: the backup writes a pack and an index file.
    fs::write(source.join("000002.sst"), seeded_bytes(2, 200_000)).unwrap();
    let storage = Arc::new(TimeShiftBackend::new(Arc::new(Moto::backend(&repo))));
    assert!(storage.is_remote());
    let error = backup_paused_while_a_prune_runs(&storage, &source);
    assert_lock_lost(&error);
    let listed = lsmvault_s3_ok(&repo, None, &["--json", "snapshots"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 0, "no snapshot: {listed}");
    lsmvault_s3_ok(&repo, None, &["verify", "--read-data"]);
    // Run again, it completes.
    lsmvault_s3_ok(&repo, None, &["backup", "-q", source.to_str().unwrap()]);
    lsmvault_s3_ok(&repo, None, &["verify", "--read-data"]);
}

#[test]
fn an_unchanged_backup_in_a_paused_vm_on_a_local_repository_gets_the_full_check() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = forgotten_source(work.path(), |args| {
        lsmvault_ok(&repo, args);
    });
    let storage = Arc::new(TimeShiftBackend::new(Arc::new(LocalBackend::new(&repo))));
    let error = backup_paused_while_a_prune_runs(&storage, &source);
    assert_lock_lost(&error);
    assert!(snapshot_ids(&repo).is_empty());
    lsmvault_ok(&repo, &["verify", "--read-data"]);
    lsmvault_ok(&repo, &["backup", "-q", source.to_str().unwrap()]);
    lsmvault_ok(&repo, &["verify", "--read-data"]);
}

#[test]
fn a_prune_in_a_paused_vm_stops_before_writing_its_index_or_deleting() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = forgotten_source(work.path(), |args| {
        lsmvault_ok(&repo, args);
    });
    let files_before = files_under(&repo.join("data")).len();
    let index_before = files_under(&repo.join("index"));
    let storage = Arc::new(TimeShiftBackend::new(Arc::new(LocalBackend::new(&repo))));
    let backend: Arc<dyn Backend> = Arc::clone(&storage) as Arc<dyn Backend>;
    let repository = Repository::open(Arc::clone(&backend)).unwrap();
    // During the pause a backup takes the prune's lock for stale and reuses
    // the forgotten snapshot's blobs the prune is about to delete.
    let hook = PauseAt {
        phase: "repacking",
        storage: Arc::clone(&storage),
        meanwhile: || {
            let other = Repository::open(Arc::clone(&backend)).unwrap();
            other
                .backup(&source, &BackupOptions::default(), &NoProgress)
                .unwrap();
        },
        paused: AtomicBool::new(false),
    };
    let error = repository
        .prune(&PruneOptions::default(), &hook)
        .unwrap_err();
    assert!(hook.paused.load(Ordering::SeqCst), "prune had work to do");
    assert!(matches!(error, Error::LockExpired { .. }), "{error}");
    assert_eq!(error.code(), ErrorCode::RepositoryLocked);
    assert!(error.to_string().contains("storage's clock"), "{error}");
    drop(repository);
    // It wrote no index and deleted nothing: the backup's snapshot is whole.
    assert!(files_under(&repo.join("data")).len() >= files_before);
    let index_after = files_under(&repo.join("index"));
    assert!(index_before.iter().all(|file| index_after.contains(file)));
    assert_eq!(snapshot_ids(&repo).len(), 1);
    lsmvault_ok(&repo, &["verify", "--read-data"]);
    lsmvault_ok(&repo, &["prune"]);
    lsmvault_ok(&repo, &["verify", "--read-data"]);
    let restored = work.path().join("restored");
    lsmvault_ok(
        &repo,
        &["restore", "latest", "--target", restored.to_str().unwrap()],
    );
    assert_eq!(
        fs::read(restored.join("000001.sst")).unwrap(),
        seeded_bytes(1, 300_000)
    );
}

/// `STALE_AFTER` is what the pause must exceed for the other client to
/// take the lock for stale.
#[test]
fn the_pause_played_here_is_longer_than_the_staleness_window() {
    assert!(PAUSE > STALE_AFTER);
}

/// Review finding F3 through the metadata cache: the full check must list
/// the packs from the storage. Here the backup's new pack is deleted at
/// its commit point, the index files untouched (a prune that deleted it as
/// unindexed and rewrote a lone plaintext index file under its own name),
/// and the backup's own clock says it was paused (so the full check runs).
#[test]
fn over_s3_with_a_warm_cache_a_backup_whose_new_pack_is_gone_writes_no_snapshot() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let source = work.path().join("source");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 300_000)).unwrap();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let backup = [
        "--cache-dir",
        cache.to_str().unwrap(),
        "backup",
        "-q",
        source.to_str().unwrap(),
    ];
    lsmvault_s3_ok(&repo, None, &backup);
    lsmvault_s3_ok(&repo, None, &backup);
    fs::write(source.join("000002.sst"), seeded_bytes(2, 200_000)).unwrap();
    let raw: Arc<dyn Backend> = Arc::new(Moto::backend(&repo));
    let packs = |backend: &dyn Backend| -> Vec<String> {
        let listed = backend.list(lsmvault::backend::ObjectKind::Pack).unwrap();
        listed.into_iter().map(|pack| pack.name).collect()
    };
    let packs_before = packs(raw.as_ref());
    let repository =
        Repository::open_asking(Arc::clone(&raw), Some(cache.as_path()), &|| Ok(None)).unwrap();
    let hook = PauseAt {
        phase: "committing",
        // Not the backup's backend: this pause shows on its own clock.
        storage: Arc::new(TimeShiftBackend::new(Arc::clone(&raw))),
        meanwhile: || {
            repository.lock_clock().simulate_pause(PAUSE);
            for pack in packs(raw.as_ref()) {
                if !packs_before.contains(&pack) {
                    raw.delete(lsmvault::backend::ObjectKind::Pack, &pack)
                        .unwrap();
                }
            }
        },
        paused: AtomicBool::new(false),
    };
    let error = repository
        .backup(&source, &BackupOptions::default(), &hook)
        .unwrap_err();
    assert!(hook.paused.load(Ordering::SeqCst));
    assert_lock_lost(&error);
    assert!(error.to_string().contains("pack(s) it wrote"), "{error}");
    let listed = lsmvault_s3_ok(&repo, None, &["--json", "snapshots"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}
