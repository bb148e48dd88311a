//! The log reader's contract as assertions, for tests: the unit tests
//! (synthetic logs) and the integration tests (WALs of real RocksDB) check the
//! same properties with the same code. Compiled for tests and with the
//! `conformance` feature only.

use super::{read_log, LogReadOutcome, LogicalRecord, Tail};

/// The invariants the module documentation promises, for any input.
pub fn check_invariants(bytes: &[u8], outcome: &LogReadOutcome) {
    let length = bytes.len() as u64;
    let mut previous_end = 0;
    for record in &outcome.records {
        assert!(record.start_offset >= previous_end, "{record:?}");
        assert!(record.start_offset < record.end_offset, "{record:?}");
        assert!(record.end_offset <= length, "{record:?}");
        previous_end = record.end_offset;
    }
    assert_eq!(outcome.last_record_end(), previous_end);
    if let Some(offset) = outcome.tail.offset() {
        assert!(
            offset >= previous_end && offset < length,
            "{:?}",
            outcome.tail
        );
    }
    if let Some(offset) = outcome.stale_data_offset {
        assert!(offset >= previous_end && offset < length);
        assert!(!matches!(outcome.tail, Tail::Corrupt { .. }));
    }
}

/// Reads `bytes[..cut]` and checks it yields exactly the records of `full` that end
/// at or before the cut, with a clean or torn tail (clean at a record end).
pub fn check_truncation(bytes: &[u8], full: &LogReadOutcome, cut: usize, log_number: Option<u64>) {
    let prefix = &bytes[..cut];
    let outcome = read_log(prefix, log_number);
    check_invariants(prefix, &outcome);
    let expected: Vec<&LogicalRecord> = full
        .records
        .iter()
        .take_while(|record| record.end_offset <= cut as u64)
        .collect();
    assert_eq!(outcome.records.len(), expected.len(), "cut at {cut}");
    assert!(
        outcome.records.iter().zip(&expected).all(|(a, b)| a == *b),
        "cut at {cut}: a record differs"
    );
    match &outcome.tail {
        Tail::Clean => {}
        Tail::Torn { offset, .. } => assert!(*offset < cut as u64),
        Tail::Corrupt { .. } => panic!("cut at {cut}: {:?}", outcome.tail),
    }
    if cut == 0
        || full
            .records
            .iter()
            .any(|record| record.end_offset == cut as u64)
    {
        assert_eq!(outcome.tail, Tail::Clean, "cut at record end {cut}");
    }
}
