//! Fuzzes the WAL reader and the write batch header parser on arbitrary bytes.
//!
//! Run with `cargo +nightly fuzz run wal_reader` from the repository root. Besides
//! "never panics", it checks the reader's documented invariants: records in file order
//! within the input, and a tail that starts at or after the last trusted record.
//! Seed idea: `lsmvault::lsm::log::encode_log` output of a few records.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsmvault::lsm::log::{read_log, sequence_ranges};
use lsmvault::lsm::write_batch::parse_write_batch;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the log number: none, or a small one (so recyclable
    // records can match it).
    let (log_number, bytes) = match data.split_first() {
        Some((&selector, rest)) if selector & 0x80 != 0 => (Some(u64::from(selector & 0x7f)), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };

    let outcome = read_log(bytes, log_number);
    let length = bytes.len() as u64;
    let mut previous_end = 0;
    for record in &outcome.records {
        assert!(record.start_offset >= previous_end);
        assert!(record.start_offset < record.end_offset);
        assert!(record.end_offset <= length);
        previous_end = record.end_offset;
        let _ = parse_write_batch(&record.payload);
    }
    if let Some(offset) = outcome.tail.offset() {
        assert!(offset >= previous_end && offset < length);
    }

    // Every record end is a safe truncation point: the prefix reads back cleanly.
    if let Some(last) = outcome.records.last() {
        let prefix = read_log(&bytes[..last.end_offset as usize], log_number);
        assert!(prefix.tail.is_clean());
        assert_eq!(prefix.records, outcome.records);
    }

    let _ = sequence_ranges(bytes, log_number);
    let _ = parse_write_batch(bytes);
});
