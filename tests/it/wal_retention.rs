//! Retention covers the WAL archive (issue 15 item 5): `forget` removes the
//! WAL records and restore points no kept snapshot's point-in-time window can
//! use, `--keep-pitr` limits how far back recovery reaches, and prune then
//! frees their chunks. Synthetic logs (fast, exact sequences) with restores
//! checked byte for byte against the segments written.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::kill_loop::{kill_iterations, time_ok, KillLoop, Run};
use crate::common::*;
use crate::pitr::fake_database;
use lsmvault::lsm::log::{encode_log, sequence_ranges};
use lsmvault::lsm::write_batch::encode_write_batch;

/// Bytes of operations in each write batch (incompressible).
const BATCH_BYTES: usize = 2_000;

/// A repository with the archive of one synthetic database.
struct Archive {
    _work: tempfile::TempDir,
    work: PathBuf,
    repo: PathBuf,
    /// Every segment as written, by file name (the database deletes them).
    originals: PathBuf,
    /// Snapshot ids, oldest first.
    snapshots: Vec<String>,
}

/// `segments` WAL segments (numbers 5, 7, 9, ...) of 30 sequences each
/// (1..=30, 31..=60, ...), and a snapshot after each but the last (last
/// sequences 30, 60, 90, ...). Each segment is deleted from the database
/// once the next one exists, as RocksDB does after a flush: only the archive
/// (and the snapshot taken while it was live) holds it. With `tags`, a
/// restore point `t<sequence>` beside each snapshot.
fn archive(segments: u64, tags: bool) -> Archive {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().to_path_buf();
    let (repo, originals) = (root.join("repo"), root.join("originals"));
    lsmvault_ok(&repo, &["init", "--no-encryption", "--compression", "off"]);
    fs::create_dir_all(&originals).unwrap();
    let db = fake_database(&root, &[]);
    let mut snapshots = Vec::new();
    for index in 0..segments {
        let number = 5 + 2 * index;
        let name = format!("{number:06}.log");
        next_segment(&db, number, index * 30 + 1..=index * 30 + 30);
        fs::copy(db.join(&name), originals.join(&name)).unwrap();
        lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
        if index + 1 < segments {
            lsmvault_ok(&repo, &["backup", db.to_str().unwrap()]);
            let ids = snapshot_ids(&repo);
            let new = ids.into_iter().find(|id| !snapshots.contains(id)).unwrap();
            snapshots.push(new);
            if tags {
                let name = format!("t{}", index * 30 + 30);
                lsmvault_ok(&repo, &["tag", &name, db.to_str().unwrap()]);
            }
        }
    }
    Archive {
        _work: work,
        work: root,
        repo,
        originals,
        snapshots,
    }
}

impl Archive {
    /// `restore --seq sequence` into a new directory; the output and the directory.
    fn restore_seq(&self, sequence: u64) -> (std::process::Output, PathBuf) {
        self.restore(
            &["--seq", &sequence.to_string()],
            &format!("seq-{sequence}"),
        )
    }

    fn restore(&self, point: &[&str], name: &str) -> (std::process::Output, PathBuf) {
        let target = self.work.join("restores").join(name);
        let _ = fs::remove_dir_all(&target);
        let mut args = vec!["--json", "restore"];
        args.extend_from_slice(point);
        args.extend_from_slice(&["--target", target.to_str().unwrap()]);
        (lsmvault(&self.repo, &args), target)
    }

    /// Restores to `sequence` and checks the replayed segment is the
    /// original cut exactly after that batch (and earlier ones whole).
    fn assert_restores_to(&self, sequence: u64) {
        let (output, target) = self.restore_seq(sequence);
        let text = assert_success(&output, &format!("restore --seq {sequence}"));
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(report["restored_sequence"], sequence, "{report:#}");
        let index = (sequence - 1) / 30;
        let name = format!("{:06}.log", 5 + 2 * index);
        let original = fs::read(self.originals.join(&name)).unwrap();
        let (ranges, _) = sequence_ranges(&original, None).unwrap();
        let end = ranges
            .iter()
            .find(|range| range.last_sequence() == Some(sequence))
            .unwrap()
            .end_offset as usize;
        let restored = fs::read(target.join(&name)).unwrap();
        assert_eq!(restored, &original[..end], "{name} restored to {sequence}");
    }

    /// `restore --seq sequence` is refused as out of reach (exit 28).
    fn assert_refused(&self, sequence: u64) {
        let (output, target) = self.restore_seq(sequence);
        assert_eq!(
            output.status.code(),
            Some(28),
            "restore --seq {sequence}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!target.exists());
    }

    /// The archived segments (`wal ls`), by file name.
    fn archived_segments(&self) -> Vec<String> {
        let timeline = lsmvault_json(&self.repo, &["wal", "ls"]);
        timeline[0]["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|segment| segment["file_name"].as_str().unwrap().to_string())
            .collect()
    }

    fn wal_objects(&self) -> std::collections::BTreeSet<PathBuf> {
        files_under(&self.repo.join("wal"))
    }
}

/// The WAL part of a forget report, for the only database.
fn wal_part(report: &serde_json::Value) -> &serde_json::Value {
    &report["wal"]["databases"][0]
}

fn names(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .map(|name| name.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forget_removes_wal_no_kept_snapshot_can_reach() {
    let archive = archive(4, false);
    for sequence in [45, 75, 105] {
        archive.assert_restores_to(sequence);
    }
    // Without the WAL records, prune frees nothing of the forgotten first
    // snapshot: it held only segment 5, which the archive also held.
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-last", "2", "--prune"]);
    let wal = wal_part(&report["forget"]);
    assert_eq!(wal["earliest_sequence"], 60, "{report:#}");
    assert_eq!(
        names(&wal["segments_removed"]),
        ["000005.log", "000007.log"]
    );
    assert_eq!(wal["versions_removed"], 2);
    assert!(wal["bytes_removed"].as_u64().unwrap() > 2 * 30 * BATCH_BYTES as u64);
    // Segment 5 is gone with its snapshot and its record: at least its
    // bytes are freed (segment 7 stays in the kept second snapshot).
    let freed = report["prune"]["bytes_freed"].as_u64().unwrap();
    assert!(freed >= 30 * BATCH_BYTES as u64, "{report:#}");
    assert_eq!(archive.archived_segments(), ["000009.log", "000011.log"]);
    // Inside the kept windows every restore still works, byte for byte;
    // the cut itself is the second snapshot; before it is refused.
    for sequence in [61, 75, 90, 91, 105, 120] {
        archive.assert_restores_to(sequence);
    }
    let (output, _) = archive.restore_seq(60);
    assert_success(&output, "restore --seq 60 (the kept snapshot itself)");
    for sequence in [15, 45, 59] {
        archive.assert_refused(sequence);
    }
    let verify = lsmvault_json(&archive.repo, &["verify", "--read-data"]);
    assert!(
        verify["findings"].as_array().unwrap().is_empty(),
        "{verify:#}"
    );
    // A second run finds nothing more to remove.
    let again = lsmvault_json(&archive.repo, &["forget", "--keep-last", "2"]);
    assert_eq!(wal_part(&again)["versions_removed"], 0, "{again:#}");
}

/// Moves the times of every object in `repo/<kind>` that `pick` selects
/// back by `back`, renaming each to the hash of its new bytes (plaintext
/// repository): a backup or an archive run `back` ago.
fn backdate(
    repo: &Path,
    kind: &str,
    field: &str,
    back: Duration,
    pick: impl Fn(&serde_json::Value) -> bool,
) {
    for entry in fs::read_dir(repo.join(kind)).unwrap() {
        let path = entry.unwrap().path();
        let mut object: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        if !pick(&object) {
            continue;
        }
        let time = humantime::parse_rfc3339(object[field].as_str().unwrap()).unwrap() - back;
        object[field] = humantime::format_rfc3339_nanos(time).to_string().into();
        let bytes = serde_json::to_vec(&object).unwrap();
        fs::remove_file(&path).unwrap();
        fs::write(
            repo.join(kind).join(lsmvault::Id::of(&bytes).to_hex()),
            bytes,
        )
        .unwrap();
    }
}

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn keep_pitr_limits_how_far_back_recovery_reaches() {
    let archive = archive(4, false);
    // Snapshots 72 h, 48 h and 90 min ago; segments archived just after each
    // (71 h, 47 h, 80 min ago); the last one now.
    let snapshot_ages = [72 * HOUR, 48 * HOUR, Duration::from_secs(90 * 60)];
    let segment_ages = [71 * HOUR, 47 * HOUR, Duration::from_secs(80 * 60)];
    let sequence_of = |object: &serde_json::Value, key: &str| object[key].as_u64();
    for (index, back) in snapshot_ages.iter().enumerate() {
        let last = (index as u64 + 1) * 30;
        backdate(&archive.repo, "snapshots", "time", *back, |snapshot| {
            sequence_of(&snapshot["database"], "last_sequence") == Some(last)
        });
    }
    for (index, back) in segment_ages.iter().enumerate() {
        let last = (index as u64 + 1) * 30;
        backdate(&archive.repo, "wal", "archived_at", *back, |record| {
            sequence_of(record, "last_sequence") == Some(last)
        });
    }
    let before = snapshot_ids(&archive.repo);
    // Alone, --keep-pitr removes no snapshot. Two days back from the newest
    // write (now) is covered from the snapshot of 48 h ago (sequence 60).
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-pitr", "2d"]);
    assert_eq!(wal_part(&report)["earliest_sequence"], 60, "{report:#}");
    assert_eq!(snapshot_ids(&archive.repo), before);
    assert_eq!(archive.archived_segments(), ["000009.log", "000011.log"]);
    archive.assert_restores_to(61);
    archive.assert_refused(45);
    // The first snapshot is still restorable as it is.
    let (output, _) = archive.restore_seq(30);
    assert_success(&output, "restore --seq 30: the first snapshot as it is");
    // One day back: still the 48 h snapshot (none is newer and that old).
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-pitr", "1d"]);
    assert_eq!(wal_part(&report)["versions_removed"], 0, "{report:#}");
    // One hour back: from the snapshot of 90 min ago (sequence 90). Any
    // instant within the hour is still recoverable, by time too.
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-pitr", "1h"]);
    assert_eq!(wal_part(&report)["earliest_sequence"], 90, "{report:#}");
    assert_eq!(archive.archived_segments(), ["000011.log"]);
    archive.assert_refused(75);
    archive.assert_restores_to(100);
    let instant = humantime::format_rfc3339(SystemTime::now() - HOUR / 2).to_string();
    let (output, _) = archive.restore(&["--at", &instant], "half-an-hour-ago");
    let text = assert_success(&output, "restore --at half an hour ago");
    let recovered: serde_json::Value = serde_json::from_str(&text).unwrap();
    // Half an hour ago the newest state known is the snapshot of 90 min ago.
    assert_eq!(recovered["restored_sequence"], 90, "{recovered:#}");
    assert!(
        recovered.to_string().contains("restored_sequence"),
        "{recovered:#}"
    );
    // A bad duration is refused before anything is touched.
    let output = lsmvault(&archive.repo, &["forget", "--keep-pitr", "soon"]);
    assert_eq!(output.status.code(), Some(22), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--keep-pitr"));
}

/// Writes segment `number` of `db` holding `sequences`, and removes the
/// previous one (`number - 2`), as a database does after a flush.
fn next_segment(db: &Path, number: u64, sequences: std::ops::RangeInclusive<u64>) {
    let records: Vec<Vec<u8>> = sequences
        .map(|sequence| encode_write_batch(sequence, 1, &seeded_bytes(sequence, BATCH_BYTES)))
        .collect();
    fs::write(
        db.join(format!("{number:06}.log")),
        encode_log(&records, None),
    )
    .unwrap();
    let _ = fs::remove_file(db.join(format!("{:06}.log", number - 2)));
}

#[test]
fn an_encrypted_repository_forgets_its_wal_records_too() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let run = |args: &[&str]| {
        let output = lsmvault_with_password(&repo, Some("wal retention"), args);
        assert_success(&output, &format!("{args:?}"))
    };
    run(&["init", "--kdf-target-ms", "20"]);
    let db = fake_database(work.path(), &[]);
    let db_text = db.to_str().unwrap();
    for (number, first) in [(5u64, 1u64), (7, 31), (9, 61)] {
        next_segment(&db, number, first..=first + 29);
        run(&["wal", "archive", db_text]);
        if number < 9 {
            run(&["backup", db_text]);
        }
    }
    let text = run(&["--json", "forget", "--keep-last", "1", "--prune"]);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    let wal = wal_part(&report["forget"]);
    assert_eq!(
        names(&wal["segments_removed"]),
        ["000005.log", "000007.log"],
        "{report:#}"
    );
    assert!(report["prune"]["bytes_freed"].as_u64().unwrap() >= 30 * BATCH_BYTES as u64);
    let target = work.path().join("restored");
    let text = run(&[
        "--json",
        "restore",
        "--seq",
        "75",
        "--target",
        target.to_str().unwrap(),
    ]);
    let recovered: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(recovered["restored_sequence"], 75);
    let refused = lsmvault_with_password(
        &repo,
        Some("wal retention"),
        &[
            "restore",
            "--seq",
            "45",
            "--target",
            work.path().join("refused").to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(28), "{refused:?}");
    let verify: serde_json::Value =
        serde_json::from_str(&run(&["--json", "verify", "--read-data"])).unwrap();
    assert!(
        verify["findings"].as_array().unwrap().is_empty(),
        "{verify:#}"
    );
}

#[test]
fn forget_dry_run_reports_wal_it_would_remove() {
    let archive = archive(4, true);
    let objects = archive.wal_objects();
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-last", "2", "--dry-run"]);
    let wal = wal_part(&report);
    assert_eq!(
        names(&wal["segments_removed"]),
        ["000005.log", "000007.log"]
    );
    assert_eq!(names(&wal["restore_points_removed"]), ["t30"]);
    assert_eq!(wal["earliest_sequence"], 60);
    assert!(wal["earliest_time"].is_string(), "{report:#}");
    assert_eq!(archive.wal_objects(), objects, "a dry run removes nothing");
    assert_eq!(snapshot_ids(&archive.repo).len(), 3);
    let text = lsmvault_ok(&archive.repo, &["forget", "--keep-last", "2", "--dry-run"]);
    assert_contains_all(
        &text,
        &[
            "WAL archive of database fake-db-identity",
            "would remove 2 segment(s) (2 version(s)",
            "1 restore point(s)",
            "000005.log, 000007.log",
            "earliest recoverable: sequence 60",
        ],
    );
    assert_eq!(archive.wal_objects(), objects);
    // A dry run by id reports the same way (the second snapshot is then the
    // oldest kept one).
    let first = archive.snapshots[0].clone();
    let report = lsmvault_json(&archive.repo, &["forget", &first, "--dry-run"]);
    assert_eq!(wal_part(&report)["earliest_sequence"], 60);
    assert_eq!(
        names(&wal_part(&report)["segments_removed"]),
        ["000005.log", "000007.log"]
    );
    assert_eq!(archive.wal_objects(), objects);
}

#[test]
fn a_database_without_kept_snapshots_keeps_its_archive() {
    let archive = archive(3, false);
    // A second database, archived and never backed up.
    let other = archive.work.join("other");
    fs::create_dir_all(&other).unwrap();
    let records: Vec<Vec<u8>> = (1..=20)
        .map(|sequence| encode_write_batch(sequence, 1, &seeded_bytes(1_000 + sequence, 500)))
        .collect();
    fs::write(other.join("000003.log"), encode_log(&records, None)).unwrap();
    lsmvault_ok(
        &archive.repo,
        &[
            "wal",
            "archive",
            other.to_str().unwrap(),
            "--database-id",
            "other-db",
        ],
    );
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-last", "1", "--prune"]);
    let databases = report["forget"]["wal"]["databases"].as_array().unwrap();
    let other_part = databases
        .iter()
        .find(|database| database["database_id"] == "other-db")
        .unwrap();
    assert!(other_part["earliest_sequence"].is_null(), "{report:#}");
    assert_eq!(other_part["versions_removed"], 0);
    assert!(other_part["reason"]
        .as_str()
        .unwrap()
        .contains("no kept snapshot"));
    let fake = databases
        .iter()
        .find(|database| database["database_id"] == "fake-db-identity")
        .unwrap();
    assert_eq!(fake["earliest_sequence"], 60);
    let timeline = lsmvault_json(&archive.repo, &["wal", "ls"]);
    let other_timeline = timeline
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["database_id"] == "other-db")
        .unwrap();
    assert_eq!(other_timeline["segments"].as_array().unwrap().len(), 1);
    // Its content survived the prune.
    let verify = lsmvault_json(&archive.repo, &["verify", "--read-data"]);
    assert!(
        verify["findings"].as_array().unwrap().is_empty(),
        "{verify:#}"
    );
    let text = lsmvault_ok(&archive.repo, &["forget", "--keep-last", "1"]);
    assert!(
        text.contains("WAL archive of database other-db:\n  kept whole: no kept snapshot"),
        "{text}"
    );
}

#[test]
fn a_damaged_snapshot_file_keeps_the_archive_until_it_is_forgotten() {
    let archive = archive(3, false);
    let objects = archive.wal_objects();
    let first = archive.snapshots[0].clone();
    fs::write(archive.repo.join("snapshots").join(&first), b"garbage").unwrap();
    // Its database and sequence are unknown: nothing is judged.
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-last", "1"]);
    let skipped = report["wal"]["skipped"].as_str().unwrap_or_default();
    assert!(skipped.contains("1 damaged snapshot file"), "{report:#}");
    assert_eq!(archive.wal_objects(), objects);
    // Forgetting it by id lets retention judge the archive again.
    let report = lsmvault_json(&archive.repo, &["forget", &first]);
    assert!(report["wal"]["skipped"].is_null(), "{report:#}");
    assert_eq!(
        names(&wal_part(&report)["segments_removed"]),
        ["000005.log", "000007.log"]
    );
    archive.assert_restores_to(75);
}

#[test]
fn restore_points_before_the_cut_are_removed() {
    let archive = archive(4, true);
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-last", "2"]);
    // t60 names the second snapshot's own state: it stays restorable.
    assert_eq!(
        names(&wal_part(&report)["restore_points_removed"]),
        ["t30"],
        "{report:#}"
    );
    let timeline = lsmvault_json(&archive.repo, &["wal", "ls"]);
    let points: Vec<&str> = timeline[0]["restore_points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|point| point["name"].as_str().unwrap())
        .collect();
    assert_eq!(points.len(), 2);
    assert!(
        points.contains(&"t60") && points.contains(&"t90"),
        "{points:?}"
    );
    for (name, sequence) in [("t60", 60), ("t90", 90)] {
        let (output, _) = archive.restore(&["--tag", name], name);
        let text = assert_success(&output, &format!("restore --tag {name}"));
        let recovered: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(recovered["restored_sequence"], sequence);
    }
    let (output, target) = archive.restore(&["--tag", "t30"], "t30");
    assert!(!output.status.success(), "t30 is gone");
    assert!(!target.exists());
}

/// Forget runs over a repository of this many snapshots (and one segment
/// more); the policy keeps the last two.
const KILL_SEGMENTS: u64 = 7;

/// The `wal/` objects (plaintext) a complete forget removed from `before`
/// to leave `after`, in forget's order: restore points, then segments
/// oldest first.
fn removed_in_order(before: &Path, after: &Path) -> Vec<PathBuf> {
    let kept = files_under(after);
    let mut removed: Vec<(u64, PathBuf)> = files_under(before)
        .into_iter()
        .filter(|name| !kept.contains(name))
        .map(|name| {
            let object: serde_json::Value =
                serde_json::from_slice(&fs::read(before.join(&name)).unwrap()).unwrap();
            (object["segment"].as_u64().unwrap_or(0), name)
        })
        .collect();
    removed.sort();
    removed.into_iter().map(|(_, name)| name).collect()
}

/// What must hold however a `forget --keep-last 2` of an [`archive`] of
/// [`KILL_SEGMENTS`] ended: the kept snapshots and every sequence of their
/// windows restore, verify is clean, and a rerun (with prune) leaves exactly
/// what an uninterrupted run leaves.
fn assert_forget_recovers(template: &Archive, repo: &Path, timed: &Path, context: &str) {
    let kept: Vec<String> = template.snapshots[template.snapshots.len() - 2..].to_vec();
    let listed = snapshot_ids(repo);
    for id in &kept {
        assert!(listed.contains(id), "{context}: {id} vanished");
    }
    let killed = Archive {
        _work: tempfile::tempdir().unwrap(),
        work: template.work.join("scratch"),
        repo: repo.to_path_buf(),
        originals: template.originals.clone(),
        snapshots: kept.clone(),
    };
    let cut = (KILL_SEGMENTS - 2) * 30;
    for sequence in [cut + 1, cut + 45, KILL_SEGMENTS * 30] {
        killed.assert_restores_to(sequence);
    }
    let verify = lsmvault_json(repo, &["verify"]);
    assert!(
        verify["findings"].as_array().unwrap().is_empty(),
        "{context}: {verify:#}"
    );
    lsmvault_ok(repo, &["forget", "--keep-last", "2", "--prune"]);
    assert_eq!(
        files_under(&repo.join("wal")),
        files_under(&timed.join("wal")),
        "{context}"
    );
    assert_eq!(snapshot_ids(repo), kept, "{context}");
    let verify = lsmvault_json(repo, &["verify", "--read-data"]);
    assert!(
        verify["findings"].as_array().unwrap().is_empty(),
        "{context}: {verify:#}"
    );
}

#[test]
fn forget_killed_midway_loses_nothing() {
    let template = archive(KILL_SEGMENTS, true);
    let forget = ["forget", "--keep-last", "2"];
    let fresh = |name: &str| {
        let repo = template.work.join(name);
        let _ = fs::remove_dir_all(&repo);
        copy_tree(&template.repo, &repo);
        repo
    };
    let timed = fresh("timed");
    let typical = time_ok(&mut lsmvault_command(&timed, None, &forget));
    // Chosen kill points: after the snapshot files went, and after half of
    // the WAL records went too (restore points first, then segments oldest
    // first, as forget removes them).
    let removed = removed_in_order(&template.repo.join("wal"), &timed.join("wal"));
    assert!(removed.len() >= 6, "{removed:?}");
    for (point, wal_removed) in [
        ("snapshots removed", 0),
        ("half the WAL removed", removed.len() / 2),
    ] {
        let repo = fresh("killed");
        for id in &template.snapshots[..template.snapshots.len() - 2] {
            fs::remove_file(repo.join("snapshots").join(id)).unwrap();
        }
        for name in &removed[..wal_removed] {
            fs::remove_file(repo.join("wal").join(name)).unwrap();
        }
        assert_forget_recovers(&template, &repo, &timed, point);
    }
    // Random kill points.
    let mut kill_loop = KillLoop::new("forget (WAL retention)", 0x5eed_0a11, typical, 1);
    for iteration in 0..kill_iterations(4) {
        let repo = fresh("killed");
        let run = kill_loop.run(&mut lsmvault_command(&repo, None, &forget));
        let context = format!("iteration {iteration} ({run:?})");
        if let Run::Finished(output) = &run {
            assert_success(output, &context);
        }
        assert_forget_recovers(&template, &repo, &timed, &context);
    }
    kill_loop.finish();
}

#[test]
fn forget_and_wal_archive_at_once_never_lose_a_kept_window() {
    let archive = archive(3, false);
    let db = archive.work.join("fakedb");
    let db_text = db.to_str().unwrap();
    let rounds = iterations_from_env("LSMVAULT_WAL_RETENTION_ROUNDS", 5);
    std::thread::scope(|scope| {
        // The database: a new segment, archived and backed up, each round.
        scope.spawn(|| {
            for round in 0..rounds {
                let number = 11 + 2 * round;
                let name = format!("{number:06}.log");
                next_segment(&db, number, (round + 3) * 30 + 1..=(round + 3) * 30 + 30);
                fs::copy(db.join(&name), archive.originals.join(&name)).unwrap();
                lsmvault_ok(
                    &archive.repo,
                    &["--retry-lock", "2m", "wal", "archive", db_text],
                );
                lsmvault_ok(&archive.repo, &["--retry-lock", "2m", "backup", db_text]);
            }
        });
        // Retention at the same time: the exclusive lock keeps them apart.
        scope.spawn(|| {
            for _ in 0..rounds {
                lsmvault_ok(
                    &archive.repo,
                    &[
                        "--retry-lock",
                        "2m",
                        "forget",
                        "--keep-last",
                        "2",
                        "--prune",
                    ],
                );
            }
        });
    });
    let report = lsmvault_json(&archive.repo, &["forget", "--keep-last", "2", "--prune"]);
    let cut = wal_part(&report["forget"])["earliest_sequence"]
        .as_u64()
        .unwrap();
    let newest = (rounds + 3) * 30;
    assert_eq!(cut, newest - 30, "{report:#}");
    let timeline = lsmvault_json(&archive.repo, &["wal", "ls"]);
    assert!(
        timeline[0]["gaps"].as_array().unwrap().is_empty(),
        "{timeline:#}"
    );
    for sequence in [cut + 1, cut + 17, newest] {
        archive.assert_restores_to(sequence);
    }
    archive.assert_refused(cut - 1);
    let verify = lsmvault_json(&archive.repo, &["verify", "--read-data"]);
    assert!(
        verify["findings"].as_array().unwrap().is_empty(),
        "{verify:#}"
    );
}
