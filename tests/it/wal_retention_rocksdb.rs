//! WAL retention against a real RocksDB writer (`db_bench`), checked with
//! `ldb scan`: after `forget` every kept snapshot's window still recovers
//! exactly the keys written up to the target.

use std::path::Path;
use std::time::Duration;

use crate::common::*;
use crate::pitr::{scan_keys, start_writer, wait_for};

/// Restores `--seq sequence` of a db_bench database and checks with `ldb
/// scan` that exactly the keys written up to it are there.
fn assert_rocksdb_restores_to(repo: &Path, target: &Path, sequence: u64) {
    let report = lsmvault_json(
        repo,
        &[
            "restore",
            "--seq",
            &sequence.to_string(),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(report["restored_sequence"], sequence, "{report:#}");
    let keys = scan_keys(target);
    assert_eq!(keys.len() as u64, sequence, "restore --seq {sequence}");
    assert!(keys
        .iter()
        .enumerate()
        .all(|(index, key)| *key == index as u64));
}

#[test]
fn rocksdb_forget_keeps_every_kept_window_recoverable() {
    if !tools_available(&["db_bench", "ldb"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (db, repo) = (work.path().join("db"), work.path().join("repo"));
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let mut writer = start_writer(&db, 150_000);
    wait_for(&db.join("CURRENT"));
    let pid = writer.0.id();
    let (freeze, thaw) = (format!("kill -STOP {pid}"), format!("kill -CONT {pid}"));
    // Three live backups about 1.5 s apart (the writer rotates its WAL
    // about every 1.4 s), archiving the WAL in between.
    let mut sequences = Vec::new();
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1_500));
        lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
        let live = lsmvault_json(
            &repo,
            &[
                "backup",
                "--live",
                db.to_str().unwrap(),
                "--freeze-cmd",
                &freeze,
                "--thaw-cmd",
                &thaw,
            ],
        );
        sequences.push(
            live["snapshot"]["database"]["last_sequence"]
                .as_u64()
                .unwrap(),
        );
    }
    assert!(writer.0.wait().unwrap().success());
    lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    let newest = timeline[0]["windows"][0]["to_sequence"].as_u64().unwrap();

    let report = lsmvault_json(&repo, &["forget", "--keep-last", "2", "--prune"]);
    let wal = &report["forget"]["wal"]["databases"][0];
    assert_eq!(wal["earliest_sequence"], sequences[1], "{report:#}");
    eprintln!(
        "forget --keep-last 2: {} segment(s), {} bytes of WAL removed; prune freed {} bytes",
        wal["segments_removed"].as_array().unwrap().len(),
        wal["bytes_removed"],
        report["prune"]["bytes_freed"]
    );
    assert!(
        !wal["segments_removed"].as_array().unwrap().is_empty(),
        "a segment lies wholly before the second snapshot: {report:#}"
    );
    let middle = sequences[1] + (sequences[2] - sequences[1]) / 2;
    for (index, sequence) in [sequences[1] + 1, middle, sequences[2] + 1, newest]
        .into_iter()
        .filter(|sequence| *sequence <= newest)
        .enumerate()
    {
        assert_rocksdb_restores_to(
            &repo,
            &work.path().join(format!("restored-{index}")),
            sequence,
        );
    }
    // The database still keeps its old segments (WAL_ttl_seconds): the next
    // archive run stores them again and the next forget removes them again.
    let removed = wal["segments_removed"].clone();
    lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let again = lsmvault_json(&repo, &["forget", "--keep-last", "2"]);
    assert_eq!(
        again["wal"]["databases"][0]["segments_removed"], removed,
        "{again:#}"
    );
    let refused = work.path().join("refused");
    let output = lsmvault(
        &repo,
        &[
            "restore",
            "--seq",
            &(sequences[0] + 1).to_string(),
            "--target",
            refused.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(28), "{output:?}");
    let verify = lsmvault_json(&repo, &["verify", "--read-data"]);
    assert!(
        verify["findings"].as_array().unwrap().is_empty(),
        "{verify:#}"
    );
}
