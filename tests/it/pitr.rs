//! Live checkpoints, WAL archiving and point-in-time recovery, with a real
//! RocksDB writer (Debian's `db_bench`) and with synthetic logs for the edge
//! cases (torn tails, gaps, growth).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::common::*;
use lsmvault::lsm::log::encode_log;
use lsmvault::lsm::write_batch::encode_write_batch;

/// Kills the writer if the test fails before it finishes.
pub(crate) struct Writer(pub(crate) Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A rate-limited `db_bench fillseq` writer on a fresh database (key i gets
/// sequence i + 1), running for several seconds.
pub(crate) fn start_writer(db: &Path, keys: u32) -> Writer {
    Command::new("db_bench")
        .arg(format!("--db={}", db.display()))
        .args([
            "--benchmarks=fillseq",
            "--value_size=100",
            "--wal_ttl_seconds=3600",
            // A small memtable so the run rotates WAL segments (older ones go to archive/).
            "--write_buffer_size=4194304",
            "--benchmark_write_rate_limit=3000000",
            "--compression_type=snappy",
        ])
        .arg(format!("--num={keys}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Writer)
        .expect("starting db_bench")
}

/// Keys of a database as the integers db_bench wrote (first 8 bytes, big endian).
pub(crate) fn scan_keys(db: &Path) -> Vec<u64> {
    let output = Command::new("ldb")
        .arg(format!("--db={}", db.display()))
        .args(["scan", "--hex"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| u64::from_str_radix(&line[2..18], 16).unwrap())
        .collect()
}

pub(crate) fn wait_for(path: &Path) {
    for _ in 0..100 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{} did not appear", path.display());
}

#[test]
fn rocksdb_point_in_time_recovery_by_sequence_time_and_tag() {
    if !tools_available(&["db_bench", "ldb"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("db");
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    // About 6 s of writes at 3 MB/s.
    let mut writer = start_writer(&db, 150_000);
    wait_for(&db.join("CURRENT"));
    std::thread::sleep(Duration::from_millis(500));
    let pid = writer.0.id();

    // A live checkpoint of the running database; SIGSTOP/SIGCONT as freeze/thaw.
    let checkpoint = work.path().join("checkpoint");
    let output = lsmvault_json(
        &repo,
        &[
            "checkpoint",
            db.to_str().unwrap(),
            checkpoint.to_str().unwrap(),
            "--freeze-cmd",
            &format!("kill -STOP {pid}"),
            "--thaw-cmd",
            &format!("kill -CONT {pid}"),
        ],
    );
    assert!(output["pause_seconds"].as_f64().unwrap() > 0.0);
    let live = lsmvault_json(
        &repo,
        &[
            "backup",
            "--live",
            db.to_str().unwrap(),
            "--freeze-cmd",
            &format!("kill -STOP {pid}"),
            "--thaw-cmd",
            &format!("kill -CONT {pid}"),
        ],
    );
    let snapshot_sequence = live["snapshot"]["database"]["last_sequence"]
        .as_u64()
        .unwrap();
    assert!(snapshot_sequence > 0);
    assert_eq!(
        live["snapshot"]["source"].as_str().unwrap(),
        fs::canonicalize(&db).unwrap().to_str().unwrap(),
        "the snapshot records the live path, not the temporary checkpoint"
    );
    eprintln!(
        "live checkpoint paused writes for {:.1} ms",
        live["checkpoint"]["pause_seconds"].as_f64().unwrap() * 1000.0
    );

    // Archive while it writes; remember a moment between two archive runs.
    let mut archived: Vec<u64> = Vec::new();
    let mut moment = None;
    for round in 0..4 {
        std::thread::sleep(Duration::from_millis(700));
        let report = lsmvault_json(&repo, &["wal", "archive", db.to_str().unwrap()]);
        let last = report["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|segment| segment["last_sequence"].as_u64())
            .max()
            .unwrap();
        eprintln!("archive round {round}: {report}");
        archived.push(last);
        if round == 1 {
            // Known by now: everything any archive run so far has seen.
            let known = archived.iter().copied().max().unwrap_or(last);
            moment = Some((SystemTime::now(), known));
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let point = lsmvault_json(&repo, &["tag", "before-migration", db.to_str().unwrap()]);
    let tagged_sequence = point["sequence"].as_u64().unwrap();
    assert!(writer.0.wait().unwrap().success());
    lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    let newest = timeline[0]["windows"][0]["to_sequence"].as_u64().unwrap();
    assert!(newest >= tagged_sequence, "{timeline:#}");
    assert!(
        timeline[0]["gaps"].as_array().unwrap().is_empty(),
        "{timeline:#}"
    );

    // By sequence: everything up to the target, nothing after it.
    let target_sequence = snapshot_sequence + (newest - snapshot_sequence) / 2;
    let by_sequence = work.path().join("by-sequence");
    let report = lsmvault_json(
        &repo,
        &[
            "restore",
            "--seq",
            &target_sequence.to_string(),
            "--target",
            by_sequence.to_str().unwrap(),
        ],
    );
    assert_eq!(report["restored_sequence"], target_sequence, "{report:#}");
    let keys = scan_keys(&by_sequence);
    assert_eq!(keys.len() as u64, target_sequence);
    assert_eq!(keys.last().copied(), Some(target_sequence - 1));
    assert!(keys
        .iter()
        .enumerate()
        .all(|(index, key)| *key == index as u64));

    // By time: the newest state known at that moment.
    let (when, known) = moment.unwrap();
    let by_time = work.path().join("by-time");
    let at = humantime::format_rfc3339_nanos(when).to_string();
    let report = lsmvault_json(
        &repo,
        &[
            "restore",
            "--at",
            &at,
            "--target",
            by_time.to_str().unwrap(),
        ],
    );
    assert_eq!(
        report["restored_sequence"],
        known,
        "at {at}: {report:#}\n{:#}",
        lsmvault_json(&repo, &["wal", "ls"])
    );
    assert_eq!(scan_keys(&by_time).len() as u64, known);

    // By restore point.
    let by_tag = work.path().join("by-tag");
    let report = lsmvault_json(
        &repo,
        &[
            "restore",
            "--tag",
            "before-migration",
            "--target",
            by_tag.to_str().unwrap(),
        ],
    );
    assert_eq!(report["restored_sequence"], tagged_sequence);
    assert_eq!(scan_keys(&by_tag).len() as u64, tagged_sequence);

    // Before the first snapshot, and after the archive: refused, nothing written.
    for sequence in [snapshot_sequence - 1, newest + 1_000_000] {
        let refused_target = work.path().join(format!("refused-{sequence}"));
        let output = lsmvault(
            &repo,
            &[
                "restore",
                "--seq",
                &sequence.to_string(),
                "--target",
                refused_target.to_str().unwrap(),
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(28),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(!refused_target.exists());
    }
    // The checkpoint taken with `lsmvault checkpoint` opens too.
    assert!(!scan_keys(&checkpoint).is_empty());
    let report = lsmvault_json(&repo, &["verify", "--read-data"]);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert!(report["wal_segments"].as_u64().unwrap() >= 4);
}

/// A fake database directory with an IDENTITY, a MANIFEST and WAL segments
/// made of write batches (each batch `(sequence, count)`).
pub(crate) fn fake_database(root: &Path, segments: &[(u64, Vec<(u64, u32)>)]) -> PathBuf {
    let db = root.join("fakedb");
    fs::create_dir_all(&db).unwrap();
    fs::write(db.join("IDENTITY"), "fake-db-identity\n").unwrap();
    fs::write(db.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    fs::write(db.join("MANIFEST-000001"), encode_log(&[], None)).unwrap();
    for (number, batches) in segments {
        let records: Vec<Vec<u8>> = batches
            .iter()
            .map(|(sequence, count)| encode_write_batch(*sequence, *count, &vec![0x55; 300]))
            .collect();
        fs::write(
            db.join(format!("{number:06}.log")),
            encode_log(&records, None),
        )
        .unwrap();
    }
    db
}

#[test]
fn gaps_and_torn_tails_are_named_and_refused() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    // Segment 5: sequences 1..=30. The snapshot holds that state.
    let db = fake_database(
        work.path(),
        &[(5, (1..=30).map(|sequence| (sequence, 1)).collect())],
    );
    let backup = lsmvault_json(&repo, &["backup", db.to_str().unwrap()]);
    assert_eq!(backup["snapshot"]["database"]["last_sequence"], 30);
    // Segment 7 continues at 31..=40, then a hole (41..=49), then 50..=60;
    // segment 9 starts at 70 (61..=69 missing: a segment never archived).
    let records_7: Vec<Vec<u8>> = (31..=40)
        .chain(50..=60)
        .map(|sequence| encode_write_batch(sequence, 1, &[0x66; 300]))
        .collect();
    fs::write(db.join("000007.log"), encode_log(&records_7, None)).unwrap();
    let records_9: Vec<Vec<u8>> = (70..=80)
        .map(|sequence| encode_write_batch(sequence, 1, &[7; 300]))
        .collect();
    let mut torn = encode_log(&records_9, None);
    torn.truncate(torn.len() - 100);
    fs::write(db.join("000009.log"), &torn).unwrap();

    // The gaps are new to the archive: committed, then exit 34 naming them.
    let archive = lsmvault(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&archive.stderr);
    assert_eq!(archive.status.code(), Some(34), "{stderr}");
    assert!(stderr.contains("torn"), "a torn tail is reported: {stderr}");
    assert!(
        stderr.contains("41..=49") && stderr.contains("61..=69"),
        "{stderr}"
    );
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    let gaps = timeline[0]["gaps"].to_string();
    assert!(
        gaps.contains("41..=49") && gaps.contains("000007.log"),
        "{gaps}"
    );
    assert!(
        gaps.contains("61..=69") && gaps.contains("000009.log"),
        "{gaps}"
    );
    assert!(gaps.contains("torn"), "{gaps}");
    assert_eq!(timeline[0]["windows"][0]["to_sequence"], 40);

    for (sequence, expected_code) in [(45u64, Some(28)), (65, Some(28)), (35, Some(0))] {
        let target = work.path().join(format!("restore-{sequence}"));
        let output = lsmvault(
            &repo,
            &[
                "--json",
                "restore",
                "--seq",
                &sequence.to_string(),
                "--target",
                target.to_str().unwrap(),
            ],
        );
        assert_eq!(
            output.status.code(),
            expected_code,
            "{sequence}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        if expected_code == Some(0) {
            let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            assert_eq!(report["restored_sequence"], 35);
            // The cut segment ends exactly after batch 35 and reads back cleanly.
            let cut = fs::read(target.join("000007.log")).unwrap();
            let (ranges, tail) = lsmvault::lsm::log::sequence_ranges(&cut, Some(7)).unwrap();
            assert!(tail.is_clean());
            assert_eq!(ranges.last().unwrap().first_sequence, 35);
            assert!(!target.join("000009.log").exists());
        } else {
            assert!(String::from_utf8_lossy(&output.stderr).contains("gap"));
        }
    }
}

#[test]
fn a_grown_segment_adds_only_its_growth() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption", "--compression", "off"]);
    // About 64 MiB of write batches of incompressible values.
    let value = seeded_bytes(3, 64 * 1024 * 1024);
    let batch = |sequence: u64| {
        encode_write_batch(
            sequence,
            1,
            &value[(sequence as usize * 4001) % (60 << 20)..][..4000],
        )
    };
    let mut records: Vec<Vec<u8>> = (1..=16_500).map(batch).collect();
    let db = fake_database(work.path(), &[]);
    fs::write(db.join("000012.log"), encode_log(&records, None)).unwrap();
    let first = lsmvault_json(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let first_size = first["segments"][0]["size"].as_u64().unwrap();
    assert!(first_size > 64_000_000, "{first_size}");
    // Grow by about 1 MiB.
    records.extend((16_501..=16_762).map(batch));
    fs::write(db.join("000012.log"), encode_log(&records, None)).unwrap();
    let second = lsmvault_json(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let grown = second["segments"][0]["size"].as_u64().unwrap() - first_size;
    let added = second["bytes_added"].as_u64().unwrap();
    eprintln!("a {first_size}-byte WAL grew by {grown} bytes: {added} bytes added");
    assert_eq!(second["segments"][0]["status"], "grown");
    assert!(
        added >= grown && added < grown + 64 * 1024,
        "added {added} for growth {grown}"
    );
    // Unchanged: nothing stored.
    let third = lsmvault_json(&repo, &["wal", "archive", db.to_str().unwrap()]);
    assert_eq!(third["bytes_added"], 0);
    assert_eq!(third["segments"][0]["status"], "unchanged");
}
