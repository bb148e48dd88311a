//! Reader (and a reference writer) of the LevelDB/RocksDB log format: the write-ahead
//! log (`NNNNNN.log`; MANIFEST files use the same framing).
//!
//! This module owns the physical framing only: blocks, record headers, checksums,
//! fragment reassembly and the classification of where and why a log stops. It is pure
//! (it reads a byte slice, no I/O) and never panics on hostile input. What a data
//! record's payload means is [`super::write_batch`]'s business.
//!
//! # Format
//! - A log is a sequence of [`BLOCK_SIZE`] (32 KiB) blocks; the last one may be partial.
//! - A physical record is a header, little-endian `crc: u32 | length: u16 | type: u8`
//!   ([`LEGACY_HEADER_SIZE`], 7 bytes), followed by `length` payload bytes. Recyclable
//!   types (5–8, 11, 131; RocksDB with `recycle_log_file_num > 0`) add the low 32 bits of
//!   the log number ([`RECYCLABLE_HEADER_SIZE`], 11 bytes).
//! - The CRC32C (Castagnoli) covers the type byte, the log number of recyclable types,
//!   and the payload; it is stored masked ([`mask_crc`]).
//! - A physical record never crosses a block boundary: a logical record is split into
//!   FIRST, MIDDLE..., LAST fragments (or is one FULL record). When fewer bytes than a
//!   header remain in a block, the writer fills them with zeros and the reader skips them.
//! - Type 0 with length 0 is preallocated, never written space: the rest of its block is
//!   skipped.
//! - Meta records, one physical record each: SetCompressionType (9, must come first),
//!   user-defined timestamp sizes (10/11), predecessor WAL info (130/131). Unknown types
//!   with bit 7 set may be ignored; other unknown types are corruption.
//!
//! # Where reading stops
//! [`read_log`] follows RocksDB's `kPointInTimeRecovery`: nothing after the first problem
//! is trusted. Problems are reported as data in [`LogReadOutcome::tail`], never as an error:
//! - [`Tail::Clean`]: the log ends at a record boundary (or in skipped padding), or at the
//!   first record left over from a recycled file's previous life
//!   ([`LogReadOutcome::stale_data_offset`]): a checksum-valid recyclable record of another
//!   log number, or a legacy-format record after recyclable ones. (Stale data met inside
//!   a fragmented record makes the tail [`Tail::Torn`]: the writer died mid-record.)
//! - [`Tail::Torn`]: the log ends inside a header, a record body, or a fragmented record:
//!   what a writer that died mid-write leaves.
//! - [`Tail::Corrupt`]: a checksum mismatch, a length that does not fit its block, a bad
//!   fragment sequence, an unknown record type, a recyclable record in a legacy-format
//!   log, a misplaced SetCompressionType record. The checksum is verified before a
//!   record's log number is trusted, so damage never reads as a clean end.
//!
//! # Invariants of a [`LogReadOutcome`]
//! - Records are in file order; each has `start_offset < end_offset <= bytes.len()`, and
//!   each starts at or after the previous one's end.
//! - Each record's `end_offset` is a safe truncation point: the prefix of the file up to
//!   it reads back as exactly the records up to and including that one, with a clean
//!   tail. [`LogReadOutcome::last_record_end`] is the largest such point.
//! - The tail's offset (if any) is at or after [`LogReadOutcome::last_record_end`]: it is
//!   where the unfinished or damaged data begins (the first fragment of an abandoned
//!   fragmented record, or the offending physical record).
//!
//! [`encode_log`] writes the format exactly as RocksDB's `log::Writer` does, for tests,
//! fuzz seeds and verification.
//!
//! # Where things are
//! - [`record_type`], header parsing and checksum verification of one physical record:
//!   `record.rs`; the CRC32C and its masking: `checksum.rs`.
//! - Reassembly of logical records and the classification of the tail ([`read_log`]):
//!   `reader.rs`.
//! - The write batch sequence range of each data record ([`sequence_ranges`]):
//!   `sequence.rs`.
//! - The reference writer ([`encode_log`]): `encode.rs`.

#[cfg(any(test, feature = "conformance"))]
pub mod checks;
mod checksum;
mod encode;
mod reader;
mod record;
mod sequence;

#[cfg(test)]
mod tests;

pub use checksum::{crc32c, mask_crc, unmask_crc};
pub use encode::encode_log;
pub use reader::{read_log, LogReadOutcome, LogicalRecord, RecordKind, Tail};
pub use record::record_type;
pub use sequence::{sequence_ranges, RecordRange};

/// Size of a log block.
pub const BLOCK_SIZE: usize = 32 * 1024;
/// Size of a legacy header: crc (4), length (2), type (1).
pub const LEGACY_HEADER_SIZE: usize = 7;
/// Size of a recyclable header: a legacy header and the low 32 bits of the log number.
pub const RECYCLABLE_HEADER_SIZE: usize = 11;
