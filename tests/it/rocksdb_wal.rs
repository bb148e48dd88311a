//! The log reader (`lsmvault::lsm::log`) on WALs written by real RocksDB
//! (Debian's `db_bench`, package rocksdb-tools): it reads them to a clean end, finds
//! one write batch per key, re-encodes them to the same bytes, and reads every cut
//! of them as a prefix of the records. Skipped without `db_bench` (see
//! [`tools_available`]); the synthetic cases are the library's unit tests.

use lsmvault::lsm::log::checks::check_truncation;
use lsmvault::lsm::log::{
    encode_log, read_log, sequence_ranges, LogReadOutcome, RecordKind, Tail, BLOCK_SIZE,
};
use lsmvault::ErrorCode;

use crate::common::tools_available;

fn data_payloads(outcome: &LogReadOutcome) -> Vec<Vec<u8>> {
    outcome
        .data_records()
        .map(|record| record.payload.clone())
        .collect()
}

/// Runs Debian's `db_bench` (package rocksdb-tools): fillseq of 5000 keys, one key
/// per batch, with a memtable too large to flush, so the WAL survives the exit.
/// Returns the directory (kept alive), the WAL's number and its content.
fn db_bench_wal(extra_arguments: &[&str]) -> (tempfile::TempDir, u64, Vec<u8>) {
    let directory = tempfile::tempdir().expect("temporary directory");
    let database = directory.path().join("db");
    let mut command = std::process::Command::new("db_bench");
    command
        .arg(format!("--db={}", database.display()))
        .args([
            "--benchmarks=fillseq",
            "--num=5000",
            "--value_size=100",
            "--disable_auto_compactions=1",
            "--write_buffer_size=67108864",
            "--sync=0",
        ])
        .args(extra_arguments);
    let output = command.output().expect("running db_bench");
    assert!(
        output.status.success(),
        "db_bench failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut wals = Vec::new();
    for entry in std::fs::read_dir(&database).expect("database directory") {
        let path = entry.expect("directory entry").path();
        let name = path
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("");
        if let Some(number) = name.strip_suffix(".log").and_then(|stem| stem.parse().ok()) {
            wals.push((number, path));
        }
    }
    assert_eq!(
        wals.len(),
        1,
        "expected one WAL in {}: {wals:?}",
        database.display()
    );
    let (number, path) = wals.remove(0);
    let bytes = std::fs::read(&path).expect("read the WAL");
    assert!(
        !bytes.is_empty(),
        "db_bench left an empty WAL (did it flush the memtable at exit?)"
    );
    (directory, number, bytes)
}

#[test]
fn reads_a_real_rocksdb_wal() {
    if !tools_available(&["db_bench"]) {
        return;
    }
    let (_directory, log_number, bytes) = db_bench_wal(&[]);
    let outcome = read_log(&bytes, Some(log_number));
    assert_eq!(outcome.tail, Tail::Clean);
    assert_eq!(outcome.last_record_end(), bytes.len() as u64);
    assert_eq!(outcome.compression_type(), None);
    assert_eq!(outcome.data_records().count(), outcome.records.len());

    let (ranges, tail) = sequence_ranges(&bytes, Some(log_number)).unwrap();
    assert_eq!(tail, Tail::Clean);
    assert_eq!(ranges.len(), 5000, "fillseq writes one key per batch");
    let mut expected_first = 1;
    for range in &ranges {
        assert_eq!(range.first_sequence, expected_first, "{range:?}");
        assert_eq!(range.count, 1);
        expected_first = range.next_sequence();
    }
    assert_eq!(expected_first, 5001);
    for record in outcome.data_records() {
        // Put (tag 1) of a 16-byte key and a 100-byte value.
        assert_eq!(record.payload.get(12..14), Some(&[1u8, 16][..]));
    }

    // Our writer fragments and pads exactly as RocksDB's does.
    let payloads = data_payloads(&outcome);
    assert!(
        encode_log(&payloads, None) == bytes,
        "re-encoding differs from RocksDB's WAL"
    );

    // Every record end is a safe cut; any other cut is torn, never wrong.
    for range in ranges.iter().step_by(613) {
        let prefix = &bytes[..range.end_offset as usize];
        let (cut_ranges, cut_tail) = sequence_ranges(prefix, Some(log_number)).unwrap();
        assert_eq!(cut_tail, Tail::Clean);
        assert_eq!(cut_ranges.last(), Some(range));
    }
    let mut cuts: Vec<usize> = (1..=bytes.len() / BLOCK_SIZE)
        .flat_map(|block| block * BLOCK_SIZE - 8..=block * BLOCK_SIZE + 8)
        .collect();
    cuts.extend([1, 6, 7, bytes.len() - 1]);
    for cut in cuts {
        check_truncation(&bytes, &outcome, cut, Some(log_number));
    }
}

#[test]
fn reads_a_real_zstd_compressed_rocksdb_wal() {
    if !tools_available(&["db_bench"]) {
        return;
    }
    let (_directory, log_number, bytes) = db_bench_wal(&["--wal_compression=zstd"]);
    let outcome = read_log(&bytes, Some(log_number));
    assert_eq!(outcome.tail, Tail::Clean);
    assert_eq!(outcome.records[0].kind, RecordKind::SetCompressionType);
    assert_eq!(outcome.compression_type(), Some(7), "RocksDB's kZSTD");
    assert_eq!(outcome.data_records().count(), 5000);
    for record in outcome.data_records() {
        assert_eq!(record.payload.get(..4), Some(&[0x28, 0xb5, 0x2f, 0xfd][..]));
    }
    let error = sequence_ranges(&bytes, Some(log_number)).unwrap_err();
    assert_eq!(error.code(), ErrorCode::UnsupportedVersion);
}
