//! The sequence numbers of a WAL's records: the write batch header of each trusted
//! data record, with the record's offsets, so the WAL archive and point-in-time
//! recovery can cut a log at a sequence number.

use crate::error::{Error, Result};
use crate::lsm::write_batch::{parse_write_batch, WriteBatchHeader};

use super::reader::{read_log, Tail};

/// The sequence numbers of one WAL data record (one write batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordRange {
    /// Offset of the record's first physical record.
    pub start_offset: u64,
    /// Offset just after the record: a safe truncation point.
    pub end_offset: u64,
    /// The batch's first sequence number.
    pub first_sequence: u64,
    /// How many sequence numbers the batch takes.
    pub count: u32,
}

impl RecordRange {
    /// The batch's last sequence number; `None` for an empty batch.
    pub fn last_sequence(&self) -> Option<u64> {
        self.header().last_sequence()
    }

    /// `first_sequence + count`: where the next batch starts when there is no hole.
    pub fn next_sequence(&self) -> u64 {
        self.header().next_sequence()
    }

    fn header(&self) -> WriteBatchHeader {
        WriteBatchHeader {
            sequence: self.first_sequence,
            count: self.count,
        }
    }
}

/// Reads a WAL and returns the sequence range of each trusted data record, and how the
/// trusted part ends.
///
/// A data record too short for a write batch header (or beyond the largest sequence
/// number) ends the trusted part with a [`Tail::Corrupt`] at that record. Continuity is
/// not checked: holes are legitimate (`disableWAL` writes, file ingestion).
///
/// Fails only for a log whose SetCompressionType record names a compression (RocksDB
/// `wal_compression`): its data records would need decompressing first.
pub fn sequence_ranges(bytes: &[u8], log_number: Option<u64>) -> Result<(Vec<RecordRange>, Tail)> {
    let outcome = read_log(bytes, log_number);
    if let Some(compression) = outcome.compression_type().filter(|&kind| kind != 0) {
        return Err(Error::UnsupportedVersion {
            object: "WAL compression (SetCompressionType record): reading compressed WAL \
                     records"
                .to_string(),
            found: compression,
            supported: 0,
        });
    }
    let mut ranges = Vec::new();
    for record in outcome.data_records() {
        match parse_write_batch(&record.payload) {
            Ok(header) => ranges.push(RecordRange {
                start_offset: record.start_offset,
                end_offset: record.end_offset,
                first_sequence: header.sequence,
                count: header.count,
            }),
            Err(error) => {
                let tail = Tail::Corrupt {
                    offset: record.start_offset,
                    reason: format!(
                        "data record at offset {} is not a write batch: {error}",
                        record.start_offset
                    ),
                };
                return Ok((ranges, tail));
            }
        }
    }
    Ok((ranges, outcome.tail))
}
