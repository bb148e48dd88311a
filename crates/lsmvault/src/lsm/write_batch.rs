//! The header of a LevelDB/RocksDB `WriteBatch`: what one WAL data record carries.
//!
//! Every data record of a write-ahead log (see [`super::log`]) is one
//! serialized write batch:
//!
//! ```text
//! sequence: u64 LE | count: u32 LE | operations...
//! ```
//!
//! The batch's operations take the sequence numbers `sequence ..= sequence + count - 1`;
//! the next batch normally starts at `sequence + count` (writes with `disableWAL` and
//! file ingestion consume sequence numbers without a WAL record, so holes are legitimate).
//!
//! This module owns only the 12-byte header: it does not decode the operations.
//! Invariant: a [`WriteBatchHeader`] returned by [`parse_write_batch`] never covers a
//! sequence number above [`MAX_SEQUENCE_NUMBER`], so its arithmetic cannot overflow.

use crate::error::{Error, Result};

/// Size of the write batch header: sequence (8 bytes) and count (4 bytes).
pub const WRITE_BATCH_HEADER_SIZE: usize = 12;

/// The largest sequence number LevelDB and RocksDB use (`kMaxSequenceNumber`,
/// 2^56 - 1: internal keys pack it with an 8-bit value type into 64 bits).
pub const MAX_SEQUENCE_NUMBER: u64 = (1 << 56) - 1;

/// The sequence number range of one write batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WriteBatchHeader {
    /// Sequence number of the batch's first counted operation.
    pub sequence: u64,
    /// Number of counted operations (Put, Delete, Merge, ...; LogData, no-ops and
    /// two-phase-commit markers are not counted), hence of sequence numbers taken.
    pub count: u32,
}

impl WriteBatchHeader {
    /// The last sequence number the batch takes, `sequence + count - 1`; `None` for an
    /// empty batch (`count == 0`), which takes no sequence number.
    pub fn last_sequence(&self) -> Option<u64> {
        if self.count == 0 {
            None
        } else {
            Some(self.next_sequence() - 1)
        }
    }

    /// The sequence number right after the batch, `sequence + count`: where the next
    /// batch starts when there is no hole. Defined for empty batches too.
    pub fn next_sequence(&self) -> u64 {
        // Cannot overflow: parse_write_batch bounds it by MAX_SEQUENCE_NUMBER + 1.
        self.sequence.saturating_add(u64::from(self.count))
    }
}

/// Reads the 12-byte header of a serialized write batch (a WAL data record's payload).
///
/// Errors (as [`Error::CorruptObject`]) when the payload ends before the header does
/// (the message names the offset where it ends), or when the batch would take a
/// sequence number above [`MAX_SEQUENCE_NUMBER`].
pub fn parse_write_batch(payload: &[u8]) -> Result<WriteBatchHeader> {
    let (Some(sequence_bytes), Some(count_bytes)) = (
        payload.get(0..8).and_then(|b| <[u8; 8]>::try_from(b).ok()),
        payload.get(8..12).and_then(|b| <[u8; 4]>::try_from(b).ok()),
    ) else {
        return Err(Error::corrupt(
            "write batch",
            format!(
                "payload ends at offset {}, inside the {WRITE_BATCH_HEADER_SIZE}-byte header \
                 (sequence u64, count u32)",
                payload.len()
            ),
        ));
    };
    let header = WriteBatchHeader {
        sequence: u64::from_le_bytes(sequence_bytes),
        count: u32::from_le_bytes(count_bytes),
    };
    let next = u128::from(header.sequence) + u128::from(header.count);
    if header.sequence > MAX_SEQUENCE_NUMBER || next > u128::from(MAX_SEQUENCE_NUMBER) + 1 {
        return Err(Error::corrupt(
            "write batch",
            format!(
                "sequence {} with count {} exceeds the largest sequence number {MAX_SEQUENCE_NUMBER}",
                header.sequence, header.count
            ),
        ));
    }
    Ok(header)
}

/// Serializes a write batch header followed by `operations` (test and tooling helper:
/// the inverse of [`parse_write_batch`]; `operations` are not validated).
pub fn encode_write_batch(sequence: u64, count: u32, operations: &[u8]) -> Vec<u8> {
    let mut batch = Vec::with_capacity(WRITE_BATCH_HEADER_SIZE + operations.len());
    batch.extend_from_slice(&sequence.to_le_bytes());
    batch.extend_from_slice(&count.to_le_bytes());
    batch.extend_from_slice(operations);
    batch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn parses_sequence_and_count() {
        let batch = encode_write_batch(42, 3, b"\x01\x01k\x01v");
        let header = parse_write_batch(&batch).unwrap();
        assert_eq!(
            header,
            WriteBatchHeader {
                sequence: 42,
                count: 3
            }
        );
        assert_eq!(header.last_sequence(), Some(44));
        assert_eq!(header.next_sequence(), 45);
    }

    #[test]
    fn header_only_batch_parses() {
        let header = parse_write_batch(&encode_write_batch(7, 1, b"")).unwrap();
        assert_eq!(header.last_sequence(), Some(7));
    }

    #[test]
    fn empty_batch_takes_no_sequence_number() {
        let header = parse_write_batch(&encode_write_batch(10, 0, b"")).unwrap();
        assert_eq!(header.last_sequence(), None);
        assert_eq!(header.next_sequence(), 10);
        let at_zero = parse_write_batch(&encode_write_batch(0, 0, b"")).unwrap();
        assert_eq!(at_zero.last_sequence(), None);
        assert_eq!(at_zero.next_sequence(), 0);
    }

    #[test]
    fn too_short_payload_is_an_error_naming_the_offset() {
        for length in [0usize, 1, 7, 8, 11] {
            let payload = vec![0u8; length];
            let error = parse_write_batch(&payload).unwrap_err();
            assert_eq!(error.code(), ErrorCode::CorruptObject);
            let message = error.to_string();
            assert!(
                message.contains(&format!("ends at offset {length}")),
                "{message}"
            );
        }
    }

    #[test]
    fn sequence_beyond_the_maximum_is_an_error() {
        assert!(parse_write_batch(&encode_write_batch(MAX_SEQUENCE_NUMBER, 1, b"")).is_ok());
        assert!(parse_write_batch(&encode_write_batch(MAX_SEQUENCE_NUMBER, 2, b"")).is_err());
        assert!(parse_write_batch(&encode_write_batch(MAX_SEQUENCE_NUMBER + 1, 0, b"")).is_err());
        assert!(parse_write_batch(&encode_write_batch(u64::MAX, u32::MAX, b"")).is_err());
        let last = parse_write_batch(&encode_write_batch(MAX_SEQUENCE_NUMBER, 1, b"")).unwrap();
        assert_eq!(last.last_sequence(), Some(MAX_SEQUENCE_NUMBER));
    }
}
