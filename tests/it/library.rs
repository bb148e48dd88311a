//! The library API end to end, on the in-memory backend and with two
//! `Repository` handles on one repository (as two processes would have).

use std::fs;
use std::sync::Arc;

use crate::common::*;
use lsmvault::backend::MemoryBackend;
use lsmvault::{
    BackupOptions, InitOptions, NoProgress, ReadData, Repository, RestoreOptions, VerifyOptions,
};

#[test]
fn memory_backend_round_trip_with_one_long_lived_handle() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 5_000_000)).unwrap();
    fs::write(source.join("CURRENT"), b"MANIFEST-000002\n").unwrap();

    let repository =
        Repository::init(Arc::new(MemoryBackend::new()), InitOptions::default()).unwrap();
    let first = repository
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(first.snapshot.stats.bytes_read, 5_000_016);
    fs::write(source.join("000003.sst"), seeded_bytes(3, 1_000_000)).unwrap();
    let second = repository
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(second.snapshot.parent, Some(first.id));
    assert_eq!(second.snapshot.stats.bytes_read, 1_000_000);

    for (outcome, expected_files) in [(&first, 2), (&second, 3)] {
        let target = work.path().join(outcome.id.short());
        let stats = repository
            .restore(
                &outcome.id.to_hex(),
                &target,
                &RestoreOptions::default(),
                &NoProgress,
            )
            .unwrap();
        assert_eq!(stats.files, expected_files);
        for entry in fs::read_dir(&target).unwrap() {
            let entry = entry.unwrap();
            assert_eq!(
                fs::read(entry.path()).unwrap(),
                fs::read(source.join(entry.file_name())).unwrap()
            );
        }
    }
    let report = repository
        .verify(
            &VerifyOptions {
                read_data: ReadData::All,
            },
            &NoProgress,
        )
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.snapshots, 2);
    assert_eq!(report.unreferenced_blobs, 0);
}

#[test]
fn a_handle_sees_snapshots_written_by_another_handle() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 3_000_000)).unwrap();
    let first_handle = Repository::init_local(&repo, InitOptions::default()).unwrap();
    // Load the first handle's index before the other handle writes anything.
    assert!(first_handle.index().unwrap().is_empty());
    let second_handle = Repository::open_local(&repo).unwrap();
    let written = second_handle
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    // The first handle takes the other's snapshot as parent, reads no file,
    // and restores it, although its cached index predates that snapshot.
    let outcome = first_handle
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(outcome.snapshot.parent, Some(written.id));
    assert_eq!(outcome.snapshot.stats.bytes_read, 0);
    let target = work.path().join("restored");
    first_handle
        .restore("latest", &target, &RestoreOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(
        fs::read(target.join("000001.sst")).unwrap(),
        seeded_bytes(1, 3_000_000)
    );
}

/// Appends to a file from inside the backup's progress callback, so the file
/// changes while it is being read.
struct Appender {
    path: std::path::PathBuf,
    remaining_appends: std::sync::atomic::AtomicUsize,
}

impl lsmvault::Progress for Appender {
    fn advance(&self, _bytes: u64) {
        use std::io::Write;
        use std::sync::atomic::Ordering;
        let take =
            self.remaining_appends
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                    left.checked_sub(1)
                });
        if take.is_ok() {
            let mut file = fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .unwrap();
            file.write_all(b"appended while being read").unwrap();
        }
    }
}

#[test]
fn a_file_changing_while_read_is_read_again_or_reported() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    let wal = source.join("000005.log");
    fs::write(&wal, seeded_bytes(5, 6_000_000)).unwrap();
    let repository =
        Repository::init(Arc::new(MemoryBackend::new()), InitOptions::default()).unwrap();

    // One change during the first read: the second read is stable and stored.
    let once = Appender {
        path: wal.clone(),
        remaining_appends: 1.into(),
    };
    let outcome = repository
        .backup(&source, &BackupOptions::default(), &once)
        .unwrap();
    assert!(
        outcome.snapshot.warnings.is_empty(),
        "{:?}",
        outcome.snapshot.warnings
    );
    assert!(outcome.snapshot.stats.bytes_read > 6_000_000);
    let target = work.path().join("once");
    repository
        .restore("latest", &target, &RestoreOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(
        fs::read(target.join("000005.log")).unwrap(),
        fs::read(&wal).unwrap()
    );

    // Changing during every read: reported, and the last read is stored whole.
    let always = Appender {
        path: wal.clone(),
        remaining_appends: usize::MAX.into(),
    };
    let outcome = repository
        .backup(
            &source,
            &BackupOptions {
                mode: lsmvault::BackupMode::Full,
                ..BackupOptions::default()
            },
            &always,
        )
        .unwrap();
    let warnings = outcome.snapshot.warnings.join("\n");
    assert!(warnings.contains("changed while being read"), "{warnings}");
    let target = work.path().join("always");
    repository
        .restore("latest", &target, &RestoreOptions::default(), &NoProgress)
        .unwrap();
    let restored = fs::read(target.join("000005.log")).unwrap();
    assert!(restored.len() > 6_000_000);
    assert_eq!(restored[..], fs::read(&wal).unwrap()[..restored.len()]);
}

/// Regression: a handle's cached index outlived another handle's prune. The
/// long-lived handle (as `wal archive --watch` keeps one) then took blobs of
/// deleted packs for stored, and wrote a snapshot that referenced them.
#[test]
fn a_handle_does_not_trust_its_cached_index_after_another_handle_pruned() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(7, 3_000_000)).unwrap();
    let long_lived = Repository::init_local(&repo, InitOptions::default()).unwrap();
    let first = long_lived
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    assert!(!long_lived.index().unwrap().is_empty());

    // Another handle forgets the only snapshot and prunes its data away.
    let other = Repository::open_local(&repo).unwrap();
    other.forget_snapshots(&[first.id.to_hex()], false).unwrap();
    let pruned = other
        .prune(&lsmvault::PruneOptions::default(), &NoProgress)
        .unwrap();
    assert!(pruned.packs_deleted > 0, "{pruned:?}");

    // The same content again, through the handle whose cache predates the prune.
    let second = long_lived
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    assert!(second.snapshot.stats.bytes_added >= 3_000_000);
    let report = Repository::open_local(&repo)
        .unwrap()
        .verify(
            &VerifyOptions {
                read_data: ReadData::All,
            },
            &NoProgress,
        )
        .unwrap();
    assert!(report.is_clean(), "{report:?}");
    let target = work.path().join("restored");
    long_lived
        .restore("latest", &target, &RestoreOptions::default(), &NoProgress)
        .unwrap();
    assert_eq!(
        fs::read(target.join("000001.sst")).unwrap(),
        seeded_bytes(7, 3_000_000)
    );
}
