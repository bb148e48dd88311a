//! Issue 13, items 3 and 9: backups that do not trust the index blindly.
//! A blob whose pack is lost (or, with `--verify-existing`, damaged) is
//! written again by the next backup, and the new copy is the one readers
//! and prune use; a backup whose lock was lost, or that a prune ran beside,
//! writes no snapshot.

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::common::*;
use lsmvault::backend::ObjectKind;
use lsmvault::repo::lock::{LockClock, LockGuard, LockKind, STALE_AFTER};
use lsmvault::{
    BackupMode, BackupOptions, Error, ErrorCode, InitOptions, NoProgress, Progress, PruneOptions,
    ReadData, Repository, RestoreOptions, VerifyOptions,
};

/// Restores `selector` into a new directory and checks it equals the source.
fn assert_restores(fixture: &Fixture, selector: &str, name: &str) {
    let target = fixture.root.join(name);
    lsmvault_ok(
        &fixture.repo,
        &["restore", selector, "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&fixture.source, &target);
}

/// Prunes, then checks that `verify --read-data` finds nothing and that
/// every snapshot restores.
fn assert_clean_after_prune(fixture: &Fixture) {
    lsmvault_ok(&fixture.repo, &["prune", "--max-unused", "0"]);
    let output = lsmvault(&fixture.repo, &["verify", "--read-data"]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "verify after prune: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    for (number, id) in snapshot_ids(&fixture.repo).iter().enumerate() {
        assert_restores(fixture, id, &format!("after-prune-{number}"));
    }
}

#[test]
fn backup_after_a_lost_pack_writes_its_blobs_again_and_restores() {
    let fixture = three_pack_fixture();
    let (pack, _) = chunk_of(&fixture.repo, "000002.sst");
    fs::remove_file(&pack).unwrap();

    let output = lsmvault(
        &fixture.repo,
        &["backup", "--full", fixture.source.to_str().unwrap()],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("healed:"), "{stdout}");
    assert!(
        stderr.contains("warning:") && stderr.contains("written again"),
        "{stderr}"
    );
    // The new snapshot restores at once, before any prune.
    assert_restores(&fixture, "latest", "healed");
    assert_clean_after_prune(&fixture);
}

#[test]
fn incremental_backup_after_a_lost_pack_does_not_reuse_its_files() {
    let fixture = three_pack_fixture();
    let (pack, _) = chunk_of(&fixture.repo, "000001.sst");
    fs::remove_file(&pack).unwrap();
    let report = lsmvault_json(&fixture.repo, &["backup", fixture.source.to_str().unwrap()]);
    assert!(report["blobs_rewritten"].as_u64().unwrap() > 0, "{report}");
    // The files with a chunk in the lost pack are read again, not reused.
    assert!(
        report["snapshot"]["stats"]["files_unmodified"]
            .as_u64()
            .unwrap()
            < 3,
        "{report}"
    );
    assert_restores(&fixture, "latest", "healed");
    assert_clean_after_prune(&fixture);
}

#[test]
fn backup_verify_existing_rewrites_damaged_blobs() {
    let fixture = three_pack_fixture();
    let (pack, offset) = chunk_of(&fixture.repo, "000003.sst");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset + 100] ^= 0x40;
    fs::write(&pack, &bytes).unwrap();

    // The cheap check sees the pack listed, so a plain backup reuses it.
    let plain = lsmvault_json(
        &fixture.repo,
        &["backup", "--full", fixture.source.to_str().unwrap()],
    );
    assert_eq!(plain["blobs_rewritten"], 0, "{plain}");

    let checked = lsmvault_json(
        &fixture.repo,
        &[
            "backup",
            "--verify-existing",
            fixture.source.to_str().unwrap(),
        ],
    );
    assert_eq!(checked["blobs_rewritten"], 1, "{checked}");
    assert_restores(&fixture, "latest", "healed");
    // Prune keeps the intact copy and drops the damaged one: every earlier
    // snapshot (same blob ids) restores again.
    assert_clean_after_prune(&fixture);
}

/// What happens, at the "committing" phase of a backup, to simulate a backup
/// paused past the lock staleness window (its lock clock jumps by the
/// window too: a backup that knows its lock is young skips the check).
#[derive(Clone, Copy, PartialEq)]
enum WhilePaused {
    /// Its lock is removed as stale and a prune runs.
    LockRemovedAndPruned,
    /// The same, then its lock object comes back (the paused refresher
    /// wrote it again when the process resumed).
    PrunedAndLockBack,
    /// A prune took its exclusive lock (while the backup's looked stale) and
    /// still holds it.
    PruneHoldsItsLock,
}

struct PauseAtCommit {
    repo: PathBuf,
    what: WhilePaused,
    done: AtomicBool,
    held: Mutex<Option<LockGuard>>,
    /// The backup's lock clock: it is paused past the window.
    clock: LockClock,
}

impl Progress for PauseAtCommit {
    fn start(&self, phase: &str, _total_bytes: u64) {
        if phase != "committing" || self.done.swap(true, Ordering::SeqCst) {
            return;
        }
        self.clock
            .simulate_pause(STALE_AFTER + std::time::Duration::from_secs(60));
        let other = Repository::open_local(&self.repo).unwrap();
        let backend = other.backend();
        let locks: Vec<(String, Vec<u8>)> = backend
            .list(ObjectKind::Lock)
            .unwrap()
            .into_iter()
            .map(|lock| {
                let bytes = backend.read(ObjectKind::Lock, &lock.name).unwrap();
                (lock.name, bytes)
            })
            .collect();
        assert_eq!(locks.len(), 1, "the backup holds one lock");
        assert_eq!(other.remove_locks(true).unwrap().removed, 1);
        if self.what == WhilePaused::PruneHoldsItsLock {
            *self.held.lock().unwrap() = Some(other.lock(LockKind::Exclusive, "prune").unwrap());
        } else {
            let report = other.prune(&PruneOptions::default(), &NoProgress).unwrap();
            assert!(report.packs_deleted > 0, "{report:?}");
        }
        if self.what != WhilePaused::LockRemovedAndPruned {
            for (name, bytes) in locks {
                backend
                    .write_if_absent(ObjectKind::Lock, &name, &bytes)
                    .unwrap();
            }
        }
    }
}

/// Runs a backup paused at its commit as `what` says; checks that it fails
/// with the lock error, leaves no snapshot, and that the next backup works.
fn backup_paused_at_commit(what: WhilePaused) -> Error {
    let fixture = three_pack_fixture();
    fs::write(
        fixture.source.join("000004.sst"),
        seeded_bytes(9, 1_500_000),
    )
    .unwrap();
    let repository = Repository::open_local(&fixture.repo).unwrap();
    let hook = PauseAtCommit {
        repo: fixture.repo.clone(),
        what,
        done: AtomicBool::new(false),
        held: Mutex::new(None),
        clock: repository.lock_clock().clone(),
    };
    let before = snapshot_ids(&fixture.repo);
    let error = repository
        .backup(&fixture.source, &BackupOptions::default(), &hook)
        .unwrap_err();
    assert!(hook.done.load(Ordering::SeqCst));
    assert_eq!(error.code(), ErrorCode::RepositoryLocked, "{error}");
    drop(hook);
    // Nothing half-written is visible, the earlier snapshot is intact, and
    // the next backup succeeds and restores.
    assert_eq!(snapshot_ids(&fixture.repo), before);
    let output = lsmvault(&fixture.repo, &["verify", "--read-data"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    lsmvault_ok(&fixture.repo, &["backup", fixture.source.to_str().unwrap()]);
    assert_restores(&fixture, "latest", "next");
    error
}

#[test]
fn a_backup_whose_lock_was_removed_as_stale_does_not_commit() {
    let error = backup_paused_at_commit(WhilePaused::LockRemovedAndPruned);
    assert!(
        matches!(&error, Error::LockLost { reason } if reason.contains("gone")),
        "{error}"
    );
}

#[test]
fn a_backup_does_not_commit_after_a_prune_ran_beside_it() {
    let error = backup_paused_at_commit(WhilePaused::PrunedAndLockBack);
    assert!(
        matches!(&error, Error::LockLost { reason } if reason.contains("index file")),
        "{error}"
    );
}

#[test]
fn a_backup_does_not_commit_while_a_prune_holds_its_lock() {
    let error = backup_paused_at_commit(WhilePaused::PruneHoldsItsLock);
    assert!(
        matches!(&error, Error::LockLost { reason } if reason.contains("exclusive lock of prune")),
        "{error}"
    );
}

#[test]
fn encrypted_backup_after_a_lost_pack_writes_its_blobs_again_and_restores() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = (work.path().join("repo"), work.path().join("db"));
    fs::create_dir(&source).unwrap();
    for seed in 1..=3u64 {
        let name = format!("00000{seed}.sst");
        fs::write(source.join(name), seeded_bytes(seed, 1_500_000)).unwrap();
    }
    let repository = Repository::init_local(
        &repo,
        InitOptions {
            pack_size: 1024 * 1024,
            password: Some("heal".into()),
            kdf_target: std::time::Duration::from_millis(10),
            ..InitOptions::default()
        },
    )
    .unwrap();
    let first = repository
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    let lost = repository.index().unwrap().iter().next().unwrap().pack;
    repository
        .backend()
        .delete(ObjectKind::Pack, &lost.to_hex())
        .unwrap();

    let repository = Repository::open_local_with_password(&repo, "heal").unwrap();
    let full = BackupOptions {
        mode: BackupMode::Full,
        ..BackupOptions::default()
    };
    let healed = repository.backup(&source, &full, &NoProgress).unwrap();
    assert!(healed.blobs_rewritten > 0);
    assert!(healed
        .snapshot
        .warnings
        .iter()
        .any(|warning| warning.contains("written again")));

    let repository = Repository::open_local_with_password(&repo, "heal").unwrap();
    repository
        .prune(&PruneOptions::default(), &NoProgress)
        .unwrap();
    let report = repository
        .verify(
            &VerifyOptions {
                read_data: ReadData::All,
            },
            &NoProgress,
        )
        .unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    for (number, id) in [first.id, healed.id].iter().enumerate() {
        let target = work.path().join(format!("restored-{number}"));
        repository
            .restore(
                &id.to_hex(),
                &target,
                &RestoreOptions::default(),
                &NoProgress,
            )
            .unwrap();
        assert_same_tree(&source, &target);
    }
}
