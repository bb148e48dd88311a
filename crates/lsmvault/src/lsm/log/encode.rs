//! The reference writer of the log format, for tests, fuzz seeds and verification:
//! it fragments and pads exactly as RocksDB's `log::Writer` does, so a real
//! RocksDB WAL re-encodes to the same bytes.

use super::checksum::{crc32c, crc32c_extend, mask_crc};
use super::record::record_type;
use super::{BLOCK_SIZE, LEGACY_HEADER_SIZE, RECYCLABLE_HEADER_SIZE};

/// Encodes `records` as a log, fragmenting them across blocks exactly as RocksDB's
/// `log::Writer::AddRecord` does: zero-filled block trailers shorter than a header,
/// FULL or FIRST/MIDDLE.../LAST fragments (an empty FIRST fragment when a block has room
/// for a header only). With `recyclable_log_number`, every record has the 11-byte
/// recyclable header carrying that number (RocksDB with `recycle_log_file_num > 0`).
pub fn encode_log(records: &[Vec<u8>], recyclable_log_number: Option<u32>) -> Vec<u8> {
    let mut writer = LogWriter::new(recyclable_log_number);
    for record in records {
        writer.add_record(record);
    }
    writer.bytes
}

/// A log being written. The tests forge logs through it (physical records of any
/// type, preallocated blocks, a change of header format midway).
pub(super) struct LogWriter {
    pub(super) bytes: Vec<u8>,
    /// Where the next physical record starts in the current block.
    pub(super) block_offset: usize,
    /// With a number, records get the recyclable header carrying it.
    pub(super) recyclable_log_number: Option<u32>,
}

impl LogWriter {
    pub(super) fn new(recyclable_log_number: Option<u32>) -> Self {
        LogWriter {
            bytes: Vec::new(),
            block_offset: 0,
            recyclable_log_number,
        }
    }

    fn header_size(&self) -> usize {
        if self.recyclable_log_number.is_some() {
            RECYCLABLE_HEADER_SIZE
        } else {
            LEGACY_HEADER_SIZE
        }
    }

    pub(super) fn fill_block(&mut self) {
        let leftover = BLOCK_SIZE - self.block_offset;
        self.bytes.resize(self.bytes.len() + leftover, 0);
        self.block_offset = 0;
    }

    pub(super) fn add_record(&mut self, payload: &[u8]) {
        let (full, first, middle, last) = if self.recyclable_log_number.is_some() {
            (
                record_type::RECYCLABLE_FULL,
                record_type::RECYCLABLE_FIRST,
                record_type::RECYCLABLE_MIDDLE,
                record_type::RECYCLABLE_LAST,
            )
        } else {
            (
                record_type::FULL,
                record_type::FIRST,
                record_type::MIDDLE,
                record_type::LAST,
            )
        };
        let mut left = payload;
        let mut begin = true;
        loop {
            if BLOCK_SIZE - self.block_offset < self.header_size() {
                self.fill_block();
            }
            let available = BLOCK_SIZE - self.block_offset - self.header_size();
            let (fragment, rest) = left.split_at(left.len().min(available));
            let end = rest.is_empty();
            let kind = match (begin, end) {
                (true, true) => full,
                (true, false) => first,
                (false, true) => last,
                (false, false) => middle,
            };
            self.emit_physical_record(kind, fragment);
            left = rest;
            begin = false;
            if end {
                break;
            }
        }
    }

    /// Appends one physical record; the header format follows from the type, as in
    /// RocksDB's `EmitPhysicalRecord`. The caller guarantees it fits in the block.
    pub(super) fn emit_physical_record(&mut self, kind: u8, fragment: &[u8]) {
        debug_assert!(fragment.len() <= usize::from(u16::MAX));
        let length = fragment.len() as u16;
        let mut checked = vec![kind];
        if record_type::is_recyclable(kind) {
            let number = self.recyclable_log_number.unwrap_or_default();
            checked.extend_from_slice(&number.to_le_bytes());
        }
        let crc = crc32c_extend(crc32c(&checked), fragment);
        self.bytes.extend_from_slice(&mask_crc(crc).to_le_bytes());
        self.bytes.extend_from_slice(&length.to_le_bytes());
        self.bytes.extend_from_slice(&checked);
        self.bytes.extend_from_slice(fragment);
        self.block_offset += 6 + checked.len() + fragment.len();
    }

    /// Appends a single-physical-record meta record, switching to a new block first if
    /// it does not fit (RocksDB's `MaybeSwitchToNewBlock`).
    #[cfg(test)]
    pub(super) fn add_meta_record(&mut self, kind: u8, payload: &[u8]) {
        let header_size = if record_type::is_recyclable(kind) {
            RECYCLABLE_HEADER_SIZE
        } else {
            LEGACY_HEADER_SIZE
        };
        if BLOCK_SIZE - self.block_offset < header_size + payload.len() {
            self.fill_block();
        }
        self.emit_physical_record(kind, payload);
    }
}
