//! Tests of the log reader and writer: round trips, layout, damage, truncation,
//! recycled files, preallocated space, meta records, sequence ranges, properties.

use super::checks::{check_invariants, check_truncation};
use super::checksum::crc32c_extend;
use super::encode::LogWriter;
use super::record_type::*;
use super::*;
use crate::error::ErrorCode;
use crate::lsm::write_batch::{encode_write_batch, parse_write_batch};
use proptest::prelude::*;
use proptest::sample::Index;

/// The two header formats: legacy, and recyclable with log number 7.
const FORMATS: [Option<u32>; 2] = [None, Some(7)];

fn header_size(format: Option<u32>) -> usize {
    if format.is_some() {
        RECYCLABLE_HEADER_SIZE
    } else {
        LEGACY_HEADER_SIZE
    }
}

/// Deterministic pseudo-random bytes (xorshift), so large payloads are cheap to make.
fn payload(length: usize, seed: u64) -> Vec<u8> {
    let mut state = (seed ^ 0x9e37_79b9_7f4a_7c15 ^ length as u64) | 1;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn data_payloads(outcome: &LogReadOutcome) -> Vec<Vec<u8>> {
    outcome
        .data_records()
        .map(|record| record.payload.clone())
        .collect()
}

fn forged(physical_records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut writer = LogWriter::new(None);
    for (kind, fragment) in physical_records {
        writer.emit_physical_record(*kind, fragment);
    }
    writer.bytes
}

/// The last record's end is a safe cut: the prefix up to it reads back as the same
/// records with a clean tail.
fn check_last_end_is_a_safe_cut(bytes: &[u8], outcome: &LogReadOutcome, log_number: Option<u64>) {
    let prefix = read_log(&bytes[..outcome.last_record_end() as usize], log_number);
    assert_eq!(prefix.tail, Tail::Clean);
    assert!(
        prefix.records == outcome.records,
        "the prefix reads differently"
    );
}

fn assert_round_trip(records: &[Vec<u8>], format: Option<u32>) -> (Vec<u8>, LogReadOutcome) {
    let bytes = encode_log(records, format);
    let outcome = read_log(&bytes, format.map(u64::from));
    assert_eq!(outcome.tail, Tail::Clean);
    assert_eq!(outcome.stale_data_offset, None);
    assert_eq!(outcome.records.len(), records.len());
    assert!(outcome
        .records
        .iter()
        .all(|record| record.kind == RecordKind::Data));
    assert!(data_payloads(&outcome) == records, "payloads differ");
    assert_eq!(outcome.last_record_end(), bytes.len() as u64);
    check_invariants(&bytes, &outcome);
    assert!(
        read_log(&bytes, None) == outcome,
        "reading without a log number differs"
    );
    (bytes, outcome)
}

fn expect_corrupt(tail: &Tail, offset: u64, reason_part: &str) {
    match tail {
        Tail::Corrupt {
            offset: found,
            reason,
        } => {
            assert_eq!(*found, offset, "{reason}");
            assert!(reason.contains(reason_part), "{reason}");
        }
        other => panic!("expected a corrupt tail at {offset}, got {other:?}"),
    }
}

fn expect_torn(tail: &Tail, offset: u64, reason_part: &str) {
    match tail {
        Tail::Torn {
            offset: found,
            reason,
        } => {
            assert_eq!(*found, offset, "{reason}");
            assert!(reason.contains(reason_part), "{reason}");
        }
        other => panic!("expected a torn tail at {offset}, got {other:?}"),
    }
}

// --- checksums ------------------------------------------------------------------

/// CRC32C by its definition, one bit at a time: the reference the `crc32c` crate's
/// result is checked against (with the RFC 3720 vectors below).
fn crc32c_bitwise(data: &[u8]) -> u32 {
    const CRC32C_POLYNOMIAL_REFLECTED: u32 = 0x82f6_3b78;
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC32C_POLYNOMIAL_REFLECTED
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn crc32c_matches_known_vectors() {
    // RFC 3720 (iSCSI) test vectors, as in LevelDB's crc32c_test.
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    assert_eq!(crc32c(&[0u8; 32]), 0x8a91_36aa);
    assert_eq!(crc32c(&[0xffu8; 32]), 0x62a8_ab43);
    let ascending: Vec<u8> = (0..32).collect();
    assert_eq!(crc32c(&ascending), 0x46dd_794e);
    let descending: Vec<u8> = (0..32).rev().collect();
    assert_eq!(crc32c(&descending), 0x113f_db5c);
    let iscsi_read: [u8; 48] = [
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
        0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00,
    ];
    assert_eq!(crc32c(&iscsi_read), 0xd996_3a56);
    assert_eq!(crc32c(b""), 0);
}

#[test]
fn crc32c_matches_the_bitwise_definition_and_extends() {
    let data = payload(300, 1);
    for length in 0..data.len() {
        assert_eq!(crc32c(&data[..length]), crc32c_bitwise(&data[..length]));
    }
    for split in 0..=data.len() {
        let (head, tail) = data.split_at(split);
        assert_eq!(crc32c_extend(crc32c(head), tail), crc32c(&data));
    }
    // Long and unaligned inputs take the crate's multi-stream hardware path.
    let long = payload(3 * BLOCK_SIZE + 13, 2);
    for start in [0, 1, 3, 7] {
        assert_eq!(crc32c(&long[start..]), crc32c_bitwise(&long[start..]));
    }
}

#[test]
fn crc_masking_round_trips_and_changes_the_value() {
    for crc in [0u32, 1, 0xdead_beef, u32::MAX, crc32c(b"foo")] {
        assert_eq!(unmask_crc(mask_crc(crc)), crc);
        assert_eq!(unmask_crc(unmask_crc(mask_crc(mask_crc(crc)))), crc);
    }
    let crc = crc32c(b"foo");
    assert_ne!(mask_crc(crc), crc);
    assert_ne!(mask_crc(mask_crc(crc)), crc);
    assert_eq!(mask_crc(0), 0xa282_ead8);
    assert_eq!(mask_crc(1 << 15), 0xa282_ead9);
}

// --- round trips and layout -----------------------------------------------------

#[test]
fn an_empty_log_reads_clean() {
    let outcome = read_log(&[], Some(3));
    assert!(outcome.records.is_empty());
    assert!(outcome.tail.is_clean());
    assert_eq!(outcome.last_record_end(), 0);
    assert!(encode_log(&[], None).is_empty());
}

#[test]
fn records_of_interesting_sizes_round_trip() {
    for format in FORMATS {
        let h = header_size(format);
        let sizes = [
            0,
            1,
            100,
            BLOCK_SIZE - h,
            BLOCK_SIZE - h + 1,
            BLOCK_SIZE,
            3 * BLOCK_SIZE + 5,
            100_000,
            usize::from(u16::MAX) + 1,
            0,
        ];
        for (seed, &size) in sizes.iter().enumerate() {
            assert_round_trip(&[payload(size, seed as u64)], format);
        }
        let all: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(seed, &size)| payload(size, seed as u64))
            .collect();
        assert_round_trip(&all, format);
    }
}

#[test]
fn a_record_spanning_blocks_is_first_middle_and_last_fragments() {
    for format in FORMATS {
        let h = header_size(format);
        let (bytes, outcome) = assert_round_trip(&[payload(3 * BLOCK_SIZE, 3)], format);
        let (first, middle, last) = if format.is_some() {
            (RECYCLABLE_FIRST, RECYCLABLE_MIDDLE, RECYCLABLE_LAST)
        } else {
            (FIRST, MIDDLE, LAST)
        };
        assert_eq!(bytes[6], first);
        assert_eq!(bytes[BLOCK_SIZE + 6], middle);
        assert_eq!(bytes[2 * BLOCK_SIZE + 6], middle);
        assert_eq!(bytes[3 * BLOCK_SIZE + 6], last);
        assert_eq!(bytes.len(), 3 * BLOCK_SIZE + 4 * h);
        assert_eq!(outcome.records[0].start_offset, 0);
        if let Some(number) = format {
            assert_eq!(bytes[BLOCK_SIZE + 7..BLOCK_SIZE + 11], number.to_le_bytes());
        }
    }
}

#[test]
fn many_small_records_round_trip_and_every_end_is_a_safe_cut() {
    for format in FORMATS {
        let records: Vec<Vec<u8>> = (0..3000).map(|i| payload(i % 97, i as u64)).collect();
        let (bytes, outcome) = assert_round_trip(&records, format);
        assert!(bytes.len() > 4 * BLOCK_SIZE);
        for (index, record) in outcome.records.iter().enumerate().step_by(37) {
            let prefix = read_log(&bytes[..record.end_offset as usize], format.map(u64::from));
            assert_eq!(prefix.tail, Tail::Clean);
            assert!(prefix.records[..] == outcome.records[..=index]);
        }
    }
}

#[test]
fn block_trailers_shorter_than_a_header_are_zero_padding() {
    for format in FORMATS {
        let h = header_size(format);
        for trailer in 1..h {
            let records = vec![payload(BLOCK_SIZE - h - trailer, 1), payload(10, 2)];
            let (bytes, outcome) = assert_round_trip(&records, format);
            assert_eq!(outcome.records[0].end_offset, (BLOCK_SIZE - trailer) as u64);
            assert!(bytes[BLOCK_SIZE - trailer..BLOCK_SIZE]
                .iter()
                .all(|&byte| byte == 0));
            assert_eq!(outcome.records[1].start_offset, BLOCK_SIZE as u64);
            // Cut inside the padding: the next record's write was under way.
            let torn = read_log(&bytes[..BLOCK_SIZE - 1], format.map(u64::from));
            assert_eq!(torn.records.len(), 1);
            assert!(!matches!(torn.tail, Tail::Corrupt { .. }));
        }
    }
}

#[test]
fn a_record_can_end_exactly_at_a_block_boundary() {
    for format in FORMATS {
        let h = header_size(format);
        let records = vec![payload(BLOCK_SIZE - h, 1), payload(5, 2)];
        let (bytes, outcome) = assert_round_trip(&records, format);
        assert_eq!(outcome.records[0].end_offset, BLOCK_SIZE as u64);
        assert_eq!(outcome.records[1].start_offset, BLOCK_SIZE as u64);
        let prefix = read_log(&bytes[..BLOCK_SIZE], format.map(u64::from));
        assert_eq!(prefix.tail, Tail::Clean);
        assert_eq!(prefix.records.len(), 1);
    }
}

#[test]
fn a_block_with_room_for_a_header_only_gets_an_empty_first_fragment() {
    for format in FORMATS {
        let h = header_size(format);
        let (full, first) = if format.is_some() {
            (RECYCLABLE_FULL, RECYCLABLE_FIRST)
        } else {
            (FULL, FIRST)
        };
        let second_start = BLOCK_SIZE - h;
        let records = vec![payload(BLOCK_SIZE - 2 * h, 1), payload(50, 2)];
        let (bytes, outcome) = assert_round_trip(&records, format);
        assert_eq!(outcome.records[1].start_offset, second_start as u64);
        assert_eq!(bytes[second_start + 4..second_start + 7], [0, 0, first]);
        // An empty record in the same place is one empty FULL record.
        let records = vec![payload(BLOCK_SIZE - 2 * h, 1), Vec::new(), payload(3, 3)];
        let (bytes, outcome) = assert_round_trip(&records, format);
        assert_eq!(outcome.records[1].end_offset, BLOCK_SIZE as u64);
        assert_eq!(bytes[second_start + 4..second_start + 7], [0, 0, full]);
    }
}

// --- damage ---------------------------------------------------------------------

#[test]
fn a_checksum_mismatch_stops_at_the_damaged_record() {
    for format in FORMATS {
        let records: Vec<Vec<u8>> = (0..10).map(|i| payload(1000, i)).collect();
        let (clean_bytes, clean) = assert_round_trip(&records, format);
        let start = clean.records[5].start_offset;
        // Damage the payload, the stored checksum, the type, the log number.
        let mut positions = vec![
            start as usize + header_size(format) + 10,
            start as usize,
            start as usize + 6,
        ];
        if format.is_some() {
            positions.push(start as usize + 8);
        }
        for position in positions {
            let mut bytes = clean_bytes.clone();
            bytes[position] ^= 0x40;
            let outcome = read_log(&bytes, format.map(u64::from));
            assert!(outcome.records[..] == clean.records[..5]);
            expect_corrupt(&outcome.tail, start, "checksum mismatch");
            assert_eq!(outcome.stale_data_offset, None);
            check_invariants(&bytes, &outcome);
        }
    }
}

#[test]
fn a_damaged_middle_fragment_discards_the_whole_record() {
    for format in FORMATS {
        let records = vec![payload(100, 1), payload(100_000, 2), payload(10, 3)];
        let (mut bytes, clean) = assert_round_trip(&records, format);
        bytes[2 * BLOCK_SIZE + 100] ^= 1;
        let outcome = read_log(&bytes, format.map(u64::from));
        assert!(outcome.records[..] == clean.records[..1]);
        expect_corrupt(&outcome.tail, clean.records[1].start_offset, "middle (type");
    }
}

#[test]
fn a_length_that_does_not_fit_its_block_is_corrupt() {
    let records = vec![payload(10, 1), payload(100, 2)];
    let second = LEGACY_HEADER_SIZE + 10;
    let mut bytes = encode_log(&records, None);
    bytes[second + 4..second + 6].copy_from_slice(&40_000u16.to_le_bytes());
    bytes.resize(50_000, 0xaa);
    let outcome = read_log(&bytes, None);
    assert_eq!(data_payloads(&outcome), records[..1]);
    expect_corrupt(&outcome.tail, second as u64, "does not fit");
    // A length that fits its block but runs past the end of the file: a torn write.
    let mut bytes = encode_log(&records, None);
    bytes[second + 4..second + 6].copy_from_slice(&200u16.to_le_bytes());
    let outcome = read_log(&bytes, None);
    assert_eq!(data_payloads(&outcome), records[..1]);
    expect_torn(&outcome.tail, second as u64, "truncated record body");
}

#[test]
fn bad_fragment_sequences_are_corrupt() {
    // (physical records, records read before the problem, tail offset, reason)
    type Case<'a> = (&'a [(u8, &'a [u8])], usize, u64, &'a str);
    let cases: [Case; 5] = [
        (&[(FULL, b"a"), (MIDDLE, b"b")], 1, 8, "middle fragment"),
        (&[(FULL, b"a"), (LAST, b"b")], 1, 8, "last fragment"),
        (
            &[(FULL, b"a"), (FIRST, b"b"), (FULL, b"c")],
            1,
            8,
            "no last fragment",
        ),
        (
            &[(FIRST, b"b"), (FIRST, b"c"), (LAST, b"d")],
            0,
            0,
            "no last fragment",
        ),
        (
            &[(FIRST, b"b"), (200, b"c"), (LAST, b"d")],
            0,
            0,
            "no last fragment",
        ),
    ];
    for (physical_records, good, offset, reason) in cases {
        let bytes = forged(physical_records);
        let outcome = read_log(&bytes, None);
        assert_eq!(outcome.records.len(), good, "{physical_records:?}");
        expect_corrupt(&outcome.tail, offset, reason);
    }
}

#[test]
fn an_empty_unfinished_first_fragment_is_dropped_silently() {
    // Old LevelDB writers could leave an empty FIRST fragment at a block's end.
    let outcome = read_log(&forged(&[(FIRST, b""), (FULL, b"x")]), None);
    assert_eq!(data_payloads(&outcome), [b"x".to_vec()]);
    assert_eq!(outcome.records[0].start_offset, 7);
    assert!(outcome.tail.is_clean());
    let outcome = read_log(&forged(&[(FIRST, b"a"), (MIDDLE, b""), (LAST, b"b")]), None);
    assert_eq!(data_payloads(&outcome), [b"ab".to_vec()]);
}

#[test]
fn unknown_record_types_are_corrupt_unless_ignorable() {
    let outcome = read_log(
        &forged(&[(FULL, b"a"), (12, b"future"), (FULL, b"b")]),
        None,
    );
    assert_eq!(data_payloads(&outcome), [b"a".to_vec()]);
    expect_corrupt(&outcome.tail, 8, "unknown record type 12");

    let outcome = read_log(
        &forged(&[(FULL, b"a"), (200, b"skip me"), (FULL, b"b")]),
        None,
    );
    assert!(outcome.tail.is_clean());
    assert_eq!(data_payloads(&outcome), [b"a".to_vec(), b"b".to_vec()]);
    assert_eq!(
        outcome.records[1].kind,
        RecordKind::Ignorable { record_type: 200 }
    );
    assert_eq!(outcome.records[1].payload, b"skip me");
}

// --- truncation -----------------------------------------------------------------

#[test]
fn a_truncated_last_record_is_torn() {
    for format in FORMATS {
        let h = header_size(format);
        let records = vec![payload(100, 1), payload(200, 2), payload(300, 3)];
        let (bytes, clean) = assert_round_trip(&records, format);
        let last = clean.records[2].start_offset as usize;
        for cut in [bytes.len() - 1, last + h, last + h + 1] {
            let outcome = read_log(&bytes[..cut], format.map(u64::from));
            assert!(outcome.records[..] == clean.records[..2]);
            expect_torn(&outcome.tail, last as u64, "truncated record body");
        }
    }
}

#[test]
fn a_log_cut_inside_a_header_is_torn() {
    for format in FORMATS {
        let h = header_size(format);
        let records = vec![payload(100, 1), payload(200, 2)];
        let (bytes, clean) = assert_round_trip(&records, format);
        let last = clean.records[1].start_offset as usize;
        for cut in last + 1..last + h {
            let outcome = read_log(&bytes[..cut], format.map(u64::from));
            assert!(outcome.records[..] == clean.records[..1]);
            expect_torn(&outcome.tail, last as u64, "header");
        }
    }
}

#[test]
fn a_log_cut_inside_a_fragmented_record_is_torn() {
    for format in FORMATS {
        let records = vec![payload(100, 1), payload(100_000, 2)];
        let (bytes, clean) = assert_round_trip(&records, format);
        let start = clean.records[1].start_offset;
        for cut in [
            BLOCK_SIZE,
            2 * BLOCK_SIZE,
            2 * BLOCK_SIZE + 3,
            3 * BLOCK_SIZE + 20,
        ] {
            let outcome = read_log(&bytes[..cut], format.map(u64::from));
            assert!(outcome.records[..] == clean.records[..1]);
            expect_torn(&outcome.tail, start, "");
        }
    }
}

#[test]
fn cuts_near_every_boundary_yield_a_prefix_of_the_records() {
    for format in FORMATS {
        let h = header_size(format);
        let records = vec![
            payload(BLOCK_SIZE - h - 3, 1),
            payload(0, 2),
            payload(70_000, 3),
            payload(BLOCK_SIZE - 2 * h, 4),
            payload(17, 5),
            payload(5, 6),
        ];
        let (bytes, full) = assert_round_trip(&records, format);
        let mut points: Vec<usize> = (0..=bytes.len()).step_by(BLOCK_SIZE).collect();
        for record in &full.records {
            points.push(record.start_offset as usize);
            points.push(record.end_offset as usize);
        }
        let mut cuts: Vec<usize> = points
            .iter()
            .flat_map(|&point| point.saturating_sub(14)..=point + 14)
            .filter(|&cut| cut <= bytes.len())
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            check_truncation(&bytes, &full, cut, format.map(u64::from));
        }
    }
}

// --- recycled files -------------------------------------------------------------

#[test]
fn stale_records_of_a_recycled_file_end_the_log_cleanly() {
    let sizes = [100, 5000, 40_000, 10, 300, 70_000, 20];
    let old: Vec<Vec<u8>> = (0..sizes.len())
        .map(|i| payload(sizes[i], 100 + i as u64))
        .collect();
    let new: Vec<Vec<u8>> = (0..4).map(|i| payload(sizes[i], 200 + i as u64)).collect();
    let old_bytes = encode_log(&old, Some(6));
    let new_bytes = encode_log(&new, Some(7));
    let mut file = old_bytes.clone();
    file[..new_bytes.len()].copy_from_slice(&new_bytes);
    for log_number in [Some(7), Some(7 + (1 << 32)), None] {
        let outcome = read_log(&file, log_number);
        assert_eq!(data_payloads(&outcome), new);
        assert_eq!(outcome.tail, Tail::Clean);
        assert_eq!(outcome.stale_data_offset, Some(new_bytes.len() as u64));
        check_invariants(&file, &outcome);
    }
    // Read as the previous life's number: the first record is already stale.
    let outcome = read_log(&file, Some(5));
    assert!(outcome.records.is_empty());
    assert_eq!(outcome.tail, Tail::Clean);
    assert_eq!(outcome.stale_data_offset, Some(0));
}

#[test]
fn a_recycled_file_whose_new_life_died_inside_a_fragmented_record_is_torn() {
    let sizes = [100, 5000, 70_000, 20];
    let old: Vec<Vec<u8>> = (0..sizes.len())
        .map(|i| payload(sizes[i], 100 + i as u64))
        .collect();
    let new: Vec<Vec<u8>> = (0..3).map(|i| payload(sizes[i], 200 + i as u64)).collect();
    let old_bytes = encode_log(&old, Some(6));
    let new_bytes = encode_log(&new, Some(7));
    let new_read = read_log(&new_bytes, Some(7));
    let interrupted = new_read.records[2].start_offset;
    // The new life wrote the FIRST fragment of its third record, then died.
    let cut = (interrupted as usize / BLOCK_SIZE + 1) * BLOCK_SIZE;
    let mut file = old_bytes;
    file[..cut].copy_from_slice(&new_bytes[..cut]);
    let outcome = read_log(&file, Some(7));
    assert_eq!(data_payloads(&outcome), new[..2]);
    expect_torn(&outcome.tail, interrupted, "stale data");
    assert_eq!(outcome.stale_data_offset, Some(cut as u64));
}

#[test]
fn legacy_records_after_recyclable_ones_are_stale() {
    let mut writer = LogWriter::new(Some(9));
    writer.add_record(b"live");
    let stale_at = writer.bytes.len() as u64;
    writer.recyclable_log_number = None;
    writer.add_record(b"previous life");
    let outcome = read_log(&writer.bytes, Some(9));
    assert_eq!(data_payloads(&outcome), [b"live".to_vec()]);
    assert_eq!(outcome.tail, Tail::Clean);
    assert_eq!(outcome.stale_data_offset, Some(stale_at));
}

#[test]
fn a_recyclable_record_after_legacy_ones_is_corrupt() {
    let mut writer = LogWriter::new(None);
    writer.add_record(b"legacy");
    let second = writer.bytes.len() as u64;
    writer.recyclable_log_number = Some(3);
    writer.add_record(b"recyclable");
    let outcome = read_log(&writer.bytes, None);
    assert_eq!(data_payloads(&outcome), [b"legacy".to_vec()]);
    expect_corrupt(&outcome.tail, second, "legacy headers");
}

// --- preallocated space ---------------------------------------------------------

#[test]
fn preallocated_zero_blocks_are_skipped() {
    for format in FORMATS {
        let records = vec![payload(1000, 1), payload(2000, 2), payload(70_000, 3)];
        let mut writer = LogWriter::new(format);
        writer.add_record(&records[0]);
        writer.fill_block();
        writer.bytes.resize(writer.bytes.len() + BLOCK_SIZE, 0);
        writer.add_record(&records[1]);
        writer.add_record(&records[2]);
        let bytes = writer.bytes;
        let outcome = read_log(&bytes, format.map(u64::from));
        assert_eq!(data_payloads(&outcome), records);
        assert_eq!(outcome.records[1].start_offset, 2 * BLOCK_SIZE as u64);
        assert_eq!(outcome.tail, Tail::Clean);
        check_invariants(&bytes, &outcome);
        // Preallocated space at the end of the file is a clean end too.
        for extra in [LEGACY_HEADER_SIZE, 100, 3 * BLOCK_SIZE] {
            let mut preallocated = bytes.clone();
            preallocated.resize(bytes.len() + extra, 0);
            let outcome = read_log(&preallocated, format.map(u64::from));
            assert_eq!(data_payloads(&outcome), records);
            assert_eq!(outcome.tail, Tail::Clean);
        }
    }
}

#[test]
fn a_fragmented_record_followed_by_preallocated_space_is_torn() {
    let records = vec![payload(100, 1), payload(100_000, 2)];
    let (bytes, clean) = assert_round_trip(&records, None);
    let start = clean.records[1].start_offset;
    let mut file = bytes[..BLOCK_SIZE].to_vec(); // up to the end of the FIRST fragment
    file.resize(3 * BLOCK_SIZE, 0);
    let outcome = read_log(&file, None);
    assert_eq!(data_payloads(&outcome), records[..1]);
    expect_torn(&outcome.tail, start, "preallocated");
    // Written data after the zeros: the zeros are a hole, not an unwritten tail.
    file.extend(encode_log(&[b"later".to_vec()], None));
    let outcome = read_log(&file, None);
    assert_eq!(data_payloads(&outcome), records[..1]);
    expect_corrupt(&outcome.tail, start, "preallocated");
}

#[test]
fn a_zero_type_with_a_length_is_checked_like_any_record() {
    let mut bytes = encode_log(&[b"a".to_vec()], None);
    bytes.extend_from_slice(&[0, 0, 0, 0, 5, 0, 0, 1, 2, 3, 4, 5]);
    let outcome = read_log(&bytes, None);
    assert_eq!(data_payloads(&outcome), [b"a".to_vec()]);
    expect_corrupt(&outcome.tail, 8, "checksum mismatch");
}

// --- meta records ---------------------------------------------------------------

#[test]
fn meta_records_are_returned_with_their_kind() {
    for format in FORMATS {
        let (timestamp_size, predecessor) = if format.is_some() {
            (
                RECYCLABLE_USER_DEFINED_TIMESTAMP_SIZE,
                RECYCLABLE_PREDECESSOR_WAL_INFO,
            )
        } else {
            (USER_DEFINED_TIMESTAMP_SIZE, PREDECESSOR_WAL_INFO)
        };
        let mut writer = LogWriter::new(format);
        writer.add_meta_record(SET_COMPRESSION_TYPE, &0u32.to_le_bytes());
        writer.add_meta_record(predecessor, b"predecessor");
        writer.add_meta_record(timestamp_size, b"timestamps");
        writer.add_record(&encode_write_batch(1, 1, b"op"));
        let outcome = read_log(&writer.bytes, format.map(u64::from));
        assert!(outcome.tail.is_clean());
        let kinds: Vec<RecordKind> = outcome.records.iter().map(|record| record.kind).collect();
        assert_eq!(
            kinds,
            [
                RecordKind::SetCompressionType,
                RecordKind::PredecessorWalInfo,
                RecordKind::UserDefinedTimestampSize,
                RecordKind::Data
            ]
        );
        assert_eq!(outcome.records[1].payload, b"predecessor");
        assert_eq!(outcome.compression_type(), Some(0));
        let (ranges, tail) = sequence_ranges(&writer.bytes, format.map(u64::from)).unwrap();
        assert!(tail.is_clean());
        assert_eq!(ranges.len(), 1);
        assert_eq!(ranges[0].start_offset, outcome.records[3].start_offset);
    }
}

#[test]
fn set_compression_type_must_be_the_first_and_only_one() {
    let mut writer = LogWriter::new(None);
    writer.add_record(b"data");
    let second = writer.bytes.len() as u64;
    writer.add_meta_record(SET_COMPRESSION_TYPE, &7u32.to_le_bytes());
    expect_corrupt(
        &read_log(&writer.bytes, None).tail,
        second,
        "not the first record",
    );

    let mut writer = LogWriter::new(None);
    writer.add_meta_record(SET_COMPRESSION_TYPE, &7u32.to_le_bytes());
    let second = writer.bytes.len() as u64;
    writer.add_meta_record(SET_COMPRESSION_TYPE, &7u32.to_le_bytes());
    expect_corrupt(
        &read_log(&writer.bytes, None).tail,
        second,
        "second SetCompressionType",
    );
}

#[test]
fn a_compressed_wal_reads_but_its_sequence_ranges_are_unsupported() {
    let mut writer = LogWriter::new(None);
    writer.add_meta_record(SET_COMPRESSION_TYPE, &7u32.to_le_bytes());
    writer.add_record(b"zstd frame");
    let outcome = read_log(&writer.bytes, None);
    assert!(outcome.tail.is_clean());
    assert_eq!(outcome.compression_type(), Some(7));
    assert_eq!(data_payloads(&outcome), [b"zstd frame".to_vec()]);
    let error = sequence_ranges(&writer.bytes, None).unwrap_err();
    assert_eq!(error.code(), ErrorCode::UnsupportedVersion);
}

// --- sequence ranges ------------------------------------------------------------

#[test]
fn sequence_ranges_follow_the_write_batches() {
    for format in FORMATS {
        let batches = vec![
            encode_write_batch(1, 3, &payload(10, 1)),
            encode_write_batch(4, 1, &payload(50_000, 2)),
            encode_write_batch(5, 0, b""),
            encode_write_batch(10, 2, b""),
        ];
        let bytes = encode_log(&batches, format);
        let outcome = read_log(&bytes, format.map(u64::from));
        let (ranges, tail) = sequence_ranges(&bytes, format.map(u64::from)).unwrap();
        assert!(tail.is_clean());
        let firsts: Vec<u64> = ranges.iter().map(|range| range.first_sequence).collect();
        let lasts: Vec<Option<u64>> = ranges.iter().map(RecordRange::last_sequence).collect();
        let nexts: Vec<u64> = ranges.iter().map(RecordRange::next_sequence).collect();
        assert_eq!(firsts, [1, 4, 5, 10]);
        assert_eq!(lasts, [Some(3), Some(4), None, Some(11)]);
        assert_eq!(nexts, [4, 5, 5, 12]);
        for (range, record) in ranges.iter().zip(&outcome.records) {
            assert_eq!(range.start_offset, record.start_offset);
            assert_eq!(range.end_offset, record.end_offset);
        }
    }
}

#[test]
fn a_data_record_too_short_for_a_write_batch_ends_the_ranges() {
    let records = vec![
        encode_write_batch(1, 1, b"x"),
        b"short".to_vec(),
        encode_write_batch(2, 1, b"y"),
    ];
    let bytes = encode_log(&records, None);
    let outcome = read_log(&bytes, None);
    let (ranges, tail) = sequence_ranges(&bytes, None).unwrap();
    assert_eq!(ranges.len(), 1);
    expect_corrupt(&tail, outcome.records[1].start_offset, "ends at offset 5");
}

// --- properties -----------------------------------------------------------------

fn record_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => (0usize..64, any::<u64>()),
        3 => (0usize..4_000, any::<u64>()),
        1 => (BLOCK_SIZE - 40..BLOCK_SIZE + 40, any::<u64>()),
        1 => (0usize..120_000, any::<u64>()),
    ]
    .prop_map(|(length, seed)| payload(length, seed))
}

fn records_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(record_strategy(), 0..10)
}

fn format_strategy() -> impl Strategy<Value = Option<u32>> {
    prop_oneof![Just(None), any::<u32>().prop_map(Some)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_records_round_trip(records in records_strategy(), format in format_strategy()) {
        assert_round_trip(&records, format);
    }

    #[test]
    fn any_truncation_yields_a_prefix_of_the_records(
        records in records_strategy(),
        format in format_strategy(),
        cuts in prop::collection::vec(any::<Index>(), 1..16),
    ) {
        let bytes = encode_log(&records, format);
        let full = read_log(&bytes, format.map(u64::from));
        for cut in cuts {
            check_truncation(&bytes, &full, cut.index(bytes.len() + 1), format.map(u64::from));
        }
    }

    #[test]
    fn damaged_logs_never_yield_a_record_that_was_not_written(
        records in records_strategy(),
        format in format_strategy(),
        damage in prop::collection::vec((any::<Index>(), any::<u8>()), 1..6),
    ) {
        let mut bytes = encode_log(&records, format);
        prop_assume!(!bytes.is_empty());
        for (index, value) in damage {
            let position = index.index(bytes.len());
            bytes[position] = value;
        }
        let outcome = read_log(&bytes, format.map(u64::from));
        check_invariants(&bytes, &outcome);
        check_last_end_is_a_safe_cut(&bytes, &outcome, format.map(u64::from));
        let mut originals = records.iter();
        for record in outcome.data_records() {
            prop_assert!(
                originals.any(|original| *original == record.payload),
                "record at {} was never written", record.start_offset
            );
        }
        let _ = sequence_ranges(&bytes, format.map(u64::from));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2_000),
        log_number in any::<Option<u64>>(),
    ) {
        let outcome = read_log(&bytes, log_number);
        check_invariants(&bytes, &outcome);
        check_last_end_is_a_safe_cut(&bytes, &outcome, log_number);
        let _ = sequence_ranges(&bytes, log_number);
        let _ = parse_write_batch(&bytes);
    }

    #[test]
    fn plausible_headers_never_panic(
        physical in prop::collection::vec(
            (prop_oneof![0u8..=12, Just(130u8), Just(131u8), any::<u8>()],
             prop::collection::vec(any::<u8>(), 0..40),
             any::<bool>()),
            0..40),
        block_offset in 0usize..BLOCK_SIZE,
    ) {
        // Valid checksums on arbitrary type sequences, starting anywhere in a block.
        let mut writer = LogWriter::new(Some(1));
        writer.bytes.resize(block_offset, 0);
        writer.block_offset = block_offset;
        for (kind, fragment, pad) in &physical {
            if *pad {
                writer.fill_block();
            }
            writer.add_meta_record(*kind, fragment);
        }
        let outcome = read_log(&writer.bytes, Some(1));
        check_invariants(&writer.bytes, &outcome);
        check_last_end_is_a_safe_cut(&writer.bytes, &outcome, Some(1));
        let _ = sequence_ranges(&writer.bytes, None);
    }
}

// The same reader on WALs written by real RocksDB (`db_bench`): tests/it/rocksdb_wal.rs.
