//! Issue 13, items 3 and 9: backups that do not trust the index blindly.
//! A blob whose pack is lost (or, with `--verify-existing`, damaged) is
//! written again by the next backup, and the new copy is the one readers
//! and prune use; a backup whose lock was lost, or that a prune ran beside,
//! writes no snapshot.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::common::*;
use lsmvault::backend::ObjectKind;
use lsmvault::format::tree::EntryKind;
use lsmvault::{
    BackupOptions, Error, ErrorCode, InitOptions, NoProgress, Progress, PruneOptions, Repository,
};

/// A repository with one snapshot of three 1.5 MB files in 1 MiB packs, so
/// each file's data sits in its own packs.
struct Fixture {
    _work: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    source: PathBuf,
}

fn fixture() -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().to_path_buf();
    let repo = root.join("repo");
    let source = root.join("db");
    fs::create_dir(&source).unwrap();
    for (index, name) in ["000001.sst", "000002.sst", "000003.sst"]
        .iter()
        .enumerate()
    {
        fs::write(source.join(name), seeded_bytes(index as u64 + 1, 1_500_000)).unwrap();
    }
    Repository::init_local(
        &repo,
        InitOptions {
            pack_size: 1024 * 1024,
            ..InitOptions::default()
        },
    )
    .unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    Fixture {
        _work: work,
        root,
        repo,
        source,
    }
}

/// The pack file and offset of the first chunk of `file` in the latest snapshot.
fn chunk_of(repo: &Path, file: &str) -> (PathBuf, usize) {
    let repository = Repository::open_local(repo).unwrap();
    let snapshot = repository.find_snapshot("latest").unwrap();
    let tree = repository.read_tree(&snapshot.snapshot.tree).unwrap();
    let entry = tree
        .entries
        .iter()
        .find(|entry| entry.name == file.as_bytes())
        .unwrap();
    let EntryKind::File { chunks, .. } = &entry.kind else {
        panic!("not a file")
    };
    let location = *repository.index().unwrap().get(&chunks[0]).unwrap();
    let pack = location.pack.to_hex();
    (
        repo.join("data").join(&pack[..2]).join(pack),
        location.entry.offset as usize,
    )
}

/// Restores `selector` into a new directory and checks it equals the source.
fn assert_restores(fixture: &Fixture, selector: &str, name: &str) {
    let target = fixture.root.join(name);
    lsmvault_ok(
        &fixture.repo,
        &["restore", selector, "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&fixture.source, &target);
}

fn snapshot_ids(repo: &Path) -> Vec<String> {
    let listing = lsmvault_json(repo, &["snapshots"]);
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|snapshot| snapshot["id"].as_str().unwrap().to_string())
        .collect()
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
    let fixture = fixture();
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
    let fixture = fixture();
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
    let fixture = fixture();
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

/// At the "committing" phase of a backup, simulates what happens while a
/// backup is paused past the lock staleness window: its lock is removed as
/// stale and a prune runs; with `restore_lock` the lock object then comes
/// back (the paused refresher wrote it again).
struct StaleAtCommit {
    repo: PathBuf,
    restore_lock: bool,
    done: AtomicBool,
}

impl Progress for StaleAtCommit {
    fn start(&self, phase: &str, _total_bytes: u64) {
        if phase != "committing" || self.done.swap(true, Ordering::SeqCst) {
            return;
        }
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
        let report = other.prune(&PruneOptions::default(), &NoProgress).unwrap();
        assert!(
            report.packs_unindexed + report.packs_deleted > 0,
            "{report:?}"
        );
        if self.restore_lock {
            for (name, bytes) in locks {
                backend
                    .write_if_absent(ObjectKind::Lock, &name, &bytes)
                    .unwrap();
            }
        }
    }
}

fn backup_with_stale_lock(restore_lock: bool) -> (Fixture, Error) {
    let fixture = fixture();
    fs::write(
        fixture.source.join("000004.sst"),
        seeded_bytes(9, 1_500_000),
    )
    .unwrap();
    let hook = StaleAtCommit {
        repo: fixture.repo.clone(),
        restore_lock,
        done: AtomicBool::new(false),
    };
    let repository = Repository::open_local(&fixture.repo).unwrap();
    let before = snapshot_ids(&fixture.repo);
    let error = repository
        .backup(&fixture.source, &BackupOptions::default(), &hook)
        .unwrap_err();
    assert!(hook.done.load(Ordering::SeqCst));
    assert_eq!(error.code(), ErrorCode::RepositoryLocked, "{error}");
    // Nothing half-written is visible, the earlier snapshot is intact, and
    // the next backup succeeds and restores.
    assert_eq!(snapshot_ids(&fixture.repo), before);
    let output = lsmvault(&fixture.repo, &["verify", "--read-data"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    lsmvault_ok(&fixture.repo, &["backup", fixture.source.to_str().unwrap()]);
    assert_restores(&fixture, "latest", "next");
    (fixture, error)
}

#[test]
fn a_backup_whose_lock_was_removed_as_stale_does_not_commit() {
    let (_, error) = backup_with_stale_lock(false);
    assert!(
        matches!(&error, Error::LockLost { reason } if reason.contains("gone")),
        "{error}"
    );
}

#[test]
fn a_backup_does_not_commit_after_a_prune_ran_beside_it() {
    let (_, error) = backup_with_stale_lock(true);
    assert!(
        matches!(&error, Error::LockLost { reason } if reason.contains("index file")),
        "{error}"
    );
}
