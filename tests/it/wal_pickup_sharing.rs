//! The WAL holding directory shared: two repositories archiving one
//! database (a local and an offsite copy), a second watcher of one
//! database into one repository, and what else a database directory may
//! hold that looks like a WAL file (a directory, `app.log`, a symlink or a
//! FIFO named `000007.log`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::pitr::fake_database;
use crate::wal_pickup::{held_for, wait_for, write_segment, Watcher, HOLD};

/// Every link named `name` anywhere in the holding directory of `db`.
fn links_named(db: &Path, name: &str) -> Vec<PathBuf> {
    let root = db.join(HOLD);
    let mut places = vec![root.clone()];
    if let Ok(entries) = fs::read_dir(&root) {
        places.extend(entries.flatten().map(|entry| entry.path()));
    }
    places
        .into_iter()
        .map(|place| place.join(name))
        .filter(|path| path.is_file())
        .collect()
}

/// The gaps `wal ls` shows for the only database of `repo`.
fn gaps(repo: &Path) -> serde_json::Value {
    lsmvault_json(repo, &["wal", "ls"])[0]["gaps"].clone()
}

/// Regression: a one-shot archive into repository B released the link a
/// watcher into A held of a WAL file the database had deleted (the only
/// copy): A's next round then found a gap.
#[test]
fn two_repositories_archiving_one_database_never_release_each_others_links() {
    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    lsmvault_ok(&a, &["init", "--no-encryption"]);
    lsmvault_ok(&b, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let database = db.to_str().unwrap();
    let watcher = Watcher::start_every(&a, &db, "60s", &[]);
    std::thread::sleep(Duration::from_millis(1500));
    let segment = write_segment(&db, 7, 31..=40);
    wait_for(&held_for(&a, &db).join("000007.log"));
    fs::remove_file(&segment).unwrap();
    write_segment(&db, 9, 41..=50);

    // B reads A's link (B has no gap either) and removes none of A's.
    let report = lsmvault_json(&b, &["wal", "archive", database]);
    assert_eq!(report["held_released"], 0, "{report:#}");
    assert_eq!(gaps(&b), serde_json::json!([]));
    for name in ["000005.log", "000007.log", "000009.log"] {
        assert!(held_for(&a, &db).join(name).exists(), "{name}: {report:#}");
    }
    let output = watcher.stop("-INT");
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert_eq!(gaps(&a), serde_json::json!([]));
    assert!(!db.join(HOLD).exists(), "links left after a clean stop");
}

/// Regression: a second watcher of one database into one repository took
/// over the holding directory and, on its clean stop, removed it under the
/// first, whose links then failed as "file gone": a gap. Refused now; a
/// watcher into another repository (an offsite copy) holds on its own.
#[test]
fn a_second_watcher_on_one_database_is_refused_and_never_blinds_the_first() {
    let work = tempfile::tempdir().unwrap();
    let (repo, offsite) = (work.path().join("repo"), work.path().join("offsite"));
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&offsite, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let first = Watcher::start(&repo, &db, &[]);
    wait_for(&held_for(&repo, &db).join("000005.log"));

    let second = Watcher::start(&repo, &db, &[]);
    let output = second.wait_at_most(Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(44), "{}", stderr_text(&output));
    let message = stderr_text(&output);
    for part in [first.pid().to_string().as_str(), "--hold-dir", HOLD] {
        assert!(message.contains(part), "{part}: {message}");
    }

    let other = Watcher::start(&offsite, &db, &[]);
    wait_for(&held_for(&offsite, &db).join("000005.log"));
    std::thread::sleep(Duration::from_millis(500));
    let output = other.stop("-INT");
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert!(!held_for(&offsite, &db).exists());
    assert!(held_for(&repo, &db).join("000005.log").exists());

    // The first watcher still holds what appears, after both stopped.
    let segment = write_segment(&db, 7, 31..=40);
    wait_for(&held_for(&repo, &db).join("000007.log"));
    fs::remove_file(&segment).unwrap();
    write_segment(&db, 9, 41..=50);
    std::thread::sleep(Duration::from_millis(700));
    let output = first.stop("-INT");
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert_eq!(gaps(&repo), serde_json::json!([]));
    assert!(!db.join(HOLD).exists(), "links left after a clean stop");
}

/// Regression: `mkdir DBDIR/notes.log` ended the watcher (EPERM from
/// hard-linking a directory, exit 21) and an `app.log` was linked and never
/// released.
#[test]
fn a_directory_or_an_unnumbered_log_in_the_database_directory_is_not_held() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let mut watcher = Watcher::start(&repo, &db, &[]);
    wait_for(&held_for(&repo, &db).join("000005.log"));
    fs::create_dir(db.join("notes.log")).unwrap();
    fs::write(db.join("app.log"), b"an application's own log").unwrap();
    fs::create_dir(db.join("000011.log")).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(watcher.is_running(), "the watcher ended");
    assert!(links_named(&db, "app.log").is_empty());
    let output = watcher.stop("-INT");
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert!(!db.join(HOLD).exists(), "links left after a clean stop");
    assert!(db.join("app.log").is_file() && db.join("notes.log").is_dir());
}

/// Regression: segments were read with `fs::read`, which follows a symlink
/// (to `/dev/zero`: memory without end) and blocks on a FIFO. Such a file
/// is skipped with a warning; the segment is read from where it is a file.
#[test]
fn a_symlink_or_fifo_named_like_a_wal_segment_is_skipped_with_a_warning_not_read() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let archive = db.join("archive");
    fs::create_dir(&archive).unwrap();
    write_segment(&archive, 7, 31..=40);
    write_segment(&archive, 9, 41..=50);
    std::os::unix::fs::symlink("/dev/zero", db.join("000007.log")).unwrap();
    let fifo = std::process::Command::new("mkfifo")
        .arg(db.join("000009.log"))
        .status()
        .unwrap();
    assert!(fifo.success());

    let mut child = lsmvault_command(&repo, None, &["--json", "wal", "archive"])
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("wal archive hung on a symlink or FIFO");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let message = stderr_text(&output);
    assert_eq!(output.status.code(), Some(0), "{message}");
    for name in ["000007.log", "000009.log"] {
        let path = db.join(name);
        assert!(
            message.contains(&format!("warning: {}", path.display())),
            "{name}: {message}"
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["warnings"].as_array().unwrap().len(),
        2,
        "{report:#}"
    );
    assert_eq!(gaps(&repo), serde_json::json!([]));
    let segments = lsmvault_json(&repo, &["wal", "ls"])[0]["segments"].clone();
    assert_eq!(segments.as_array().unwrap().len(), 3, "{segments:#}");
}
