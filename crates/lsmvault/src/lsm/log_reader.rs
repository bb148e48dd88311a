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

use crate::error::{Error, Result};

use super::write_batch::{parse_write_batch, WriteBatchHeader};

/// Size of a log block.
pub const BLOCK_SIZE: usize = 32 * 1024;
/// Size of a legacy header: crc (4), length (2), type (1).
pub const LEGACY_HEADER_SIZE: usize = 7;
/// Size of a recyclable header: a legacy header and the low 32 bits of the log number.
pub const RECYCLABLE_HEADER_SIZE: usize = 11;

/// The physical record types of the format (`RecordType` in RocksDB's `db/log_format.h`).
pub mod record_type {
    /// Preallocated, never written space.
    pub const ZERO: u8 = 0;
    /// A whole logical record in one physical record.
    pub const FULL: u8 = 1;
    /// First fragment of a logical record.
    pub const FIRST: u8 = 2;
    /// Inner fragment of a logical record.
    pub const MIDDLE: u8 = 3;
    /// Last fragment of a logical record.
    pub const LAST: u8 = 4;
    /// [`FULL`] with a recyclable (11-byte) header.
    pub const RECYCLABLE_FULL: u8 = 5;
    /// [`FIRST`] with a recyclable header.
    pub const RECYCLABLE_FIRST: u8 = 6;
    /// [`MIDDLE`] with a recyclable header.
    pub const RECYCLABLE_MIDDLE: u8 = 7;
    /// [`LAST`] with a recyclable header.
    pub const RECYCLABLE_LAST: u8 = 8;
    /// The compression of the following records (always a legacy header; first record).
    pub const SET_COMPRESSION_TYPE: u8 = 9;
    /// User-defined timestamp sizes of column families.
    pub const USER_DEFINED_TIMESTAMP_SIZE: u8 = 10;
    /// [`USER_DEFINED_TIMESTAMP_SIZE`] with a recyclable header.
    pub const RECYCLABLE_USER_DEFINED_TIMESTAMP_SIZE: u8 = 11;
    /// The predecessor WAL's number, size and last sequence number.
    pub const PREDECESSOR_WAL_INFO: u8 = 130;
    /// [`PREDECESSOR_WAL_INFO`] with a recyclable header.
    pub const RECYCLABLE_PREDECESSOR_WAL_INFO: u8 = 131;
    /// Unknown types with this bit set may be ignored by a reader.
    pub const SAFE_TO_IGNORE_MASK: u8 = 0x80;

    /// Whether a record of this type has the 11-byte recyclable header.
    pub fn is_recyclable(record_type: u8) -> bool {
        matches!(
            record_type,
            RECYCLABLE_FULL
                ..=RECYCLABLE_LAST
                    | RECYCLABLE_USER_DEFINED_TIMESTAMP_SIZE
                    | RECYCLABLE_PREDECESSOR_WAL_INFO
        )
    }
}

// ---------------------------------------------------------------------------------------
// CRC32C (Castagnoli), slice-by-8.

const CRC32C_POLYNOMIAL_REFLECTED: u32 = 0x82f6_3b78;
const CRC32C_TABLES: [[u32; 256]; 8] = crc32c_tables();

const fn crc32c_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ CRC32C_POLYNOMIAL_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        tables[0][byte] = crc;
        byte += 1;
    }
    let mut byte = 0;
    while byte < 256 {
        let mut table = 1;
        while table < 8 {
            let previous = tables[table - 1][byte];
            tables[table][byte] = (previous >> 8) ^ tables[0][(previous & 0xff) as usize];
            table += 1;
        }
        byte += 1;
    }
    tables
}

/// Continues a CRC32C computation (`crc` is a previous result, 0 to start).
fn crc32c_extend(crc: u32, data: &[u8]) -> u32 {
    let t = &CRC32C_TABLES;
    let mut crc = !crc;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            continue; // unreachable: chunks_exact yields 8-byte chunks
        };
        let low = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) ^ crc;
        let high = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
        crc = t[7][(low & 0xff) as usize]
            ^ t[6][((low >> 8) & 0xff) as usize]
            ^ t[5][((low >> 16) & 0xff) as usize]
            ^ t[4][(low >> 24) as usize]
            ^ t[3][(high & 0xff) as usize]
            ^ t[2][((high >> 8) & 0xff) as usize]
            ^ t[1][((high >> 16) & 0xff) as usize]
            ^ t[0][(high >> 24) as usize];
    }
    for &byte in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ u32::from(byte)) & 0xff) as usize];
    }
    !crc
}

/// The CRC32C (Castagnoli) of `data`, as LevelDB's and RocksDB's `crc32c::Value`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c_extend(0, data)
}

const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// Masks a CRC for storage, as LevelDB/RocksDB do (a CRC of data that itself holds
/// CRCs is otherwise weak): rotate right by 15 bits and add a constant.
pub fn mask_crc(crc: u32) -> u32 {
    crc.rotate_right(15).wrapping_add(CRC_MASK_DELTA)
}

/// Inverse of [`mask_crc`].
pub fn unmask_crc(masked: u32) -> u32 {
    masked.wrapping_sub(CRC_MASK_DELTA).rotate_left(15)
}

// ---------------------------------------------------------------------------------------
// Reader.

/// What a logical record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordKind {
    /// A data record (FULL, or FIRST..LAST reassembled): a serialized write batch in a
    /// WAL, a version edit in a MANIFEST. Compressed if the log starts with a
    /// [`RecordKind::SetCompressionType`] record naming a compression.
    Data,
    /// Type 9: the compression of the following data records (payload: u32 LE, a
    /// RocksDB `CompressionType`, e.g. 7 for zstd).
    SetCompressionType,
    /// Types 10/11: user-defined timestamp sizes of column families.
    UserDefinedTimestampSize,
    /// Types 130/131: the predecessor WAL's number, size and last sequence number.
    PredecessorWalInfo,
    /// An unknown type with bit 7 set, which readers may ignore.
    Ignorable {
        /// The physical record type.
        record_type: u8,
    },
}

/// One logical record read from a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalRecord {
    /// Offset of the header of the record's first physical record.
    pub start_offset: u64,
    /// Offset just after the record's last physical record: a safe truncation point.
    pub end_offset: u64,
    /// What the record is.
    pub kind: RecordKind,
    /// The payload, reassembled from its fragments.
    pub payload: Vec<u8>,
}

/// How the readable part of a log ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tail {
    /// At a record boundary or in skipped padding, or at stale data of a recycled file.
    Clean,
    /// Inside a header, a record body, or a fragmented record: an interrupted write.
    Torn {
        /// Where the incomplete data begins.
        offset: u64,
        /// What was incomplete, naming offsets.
        reason: String,
    },
    /// At damaged data; nothing from `offset` on is trusted.
    Corrupt {
        /// Where the untrusted data begins (the offending physical record, or the first
        /// fragment of the fragmented record it interrupts).
        offset: u64,
        /// What is wrong, naming offsets.
        reason: String,
    },
}

impl Tail {
    /// Whether the log ended cleanly.
    pub fn is_clean(&self) -> bool {
        matches!(self, Tail::Clean)
    }

    /// Where the torn or corrupt data begins; `None` for a clean tail.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Tail::Clean => None,
            Tail::Torn { offset, .. } | Tail::Corrupt { offset, .. } => Some(*offset),
        }
    }
}

/// Everything [`read_log`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReadOutcome {
    /// The trusted logical records, in file order.
    pub records: Vec<LogicalRecord>,
    /// How the trusted part ends.
    pub tail: Tail,
    /// Offset of the first record left over from a recycled file's previous life (a
    /// recyclable record of another log number, or a legacy-format record after
    /// recyclable ones), where reading stopped; `None` when there was none.
    pub stale_data_offset: Option<u64>,
}

impl LogReadOutcome {
    /// End of the last trusted record (0 if none): the largest safe truncation point.
    pub fn last_record_end(&self) -> u64 {
        self.records.last().map_or(0, |record| record.end_offset)
    }

    /// The data records (write batches in a WAL).
    pub fn data_records(&self) -> impl Iterator<Item = &LogicalRecord> {
        self.records
            .iter()
            .filter(|record| record.kind == RecordKind::Data)
    }

    /// The compression the log's SetCompressionType record names (RocksDB
    /// `CompressionType`; 0 is none), or `None` without such a record. A record too
    /// short to hold the u32 reads as `None` too.
    pub fn compression_type(&self) -> Option<u32> {
        self.records
            .iter()
            .find(|record| record.kind == RecordKind::SetCompressionType)
            .and_then(|record| record.payload.get(0..4))
            .and_then(|bytes| <[u8; 4]>::try_from(bytes).ok())
            .map(u32::from_le_bytes)
    }
}

/// Reads a whole log file's content.
///
/// `log_number` is the file's number (`000123.log` → 123). Recyclable records whose
/// log number differs from its low 32 bits are stale data of the file's previous life:
/// reading stops there, cleanly. Without it, the log number of the first recyclable
/// record is taken as the file's (pass it whenever the file name is known: a file whose
/// new life wrote nothing yet would otherwise be read as live).
///
/// Never fails and never panics: problems end the reading and are described by the
/// outcome's [`Tail`]; see the module documentation.
pub fn read_log(bytes: &[u8], log_number: Option<u64>) -> LogReadOutcome {
    let mut reader = Reader {
        bytes,
        // The header stores the low 32 bits only: the truncation is the format's.
        expected_log_number: log_number.map(|number| number as u32),
        format: None,
        pending: None,
        records: Vec::new(),
        compression_record_seen: false,
        stale_data_offset: None,
    };
    let tail = reader.run();
    LogReadOutcome {
        records: reader.records,
        tail,
        stale_data_offset: reader.stale_data_offset.map(offset64),
    }
}

/// The header format a log's live records use, fixed by its first record of a type
/// that has both forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderFormat {
    Legacy,
    Recyclable,
}

/// A fragmented record whose LAST fragment has not been read yet.
struct Pending {
    start: usize,
    payload: Vec<u8>,
}

struct Reader<'a> {
    bytes: &'a [u8],
    expected_log_number: Option<u32>,
    format: Option<HeaderFormat>,
    pending: Option<Pending>,
    records: Vec<LogicalRecord>,
    compression_record_seen: bool,
    stale_data_offset: Option<usize>,
}

fn offset64(offset: usize) -> u64 {
    offset as u64
}

fn array_at<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    bytes
        .get(offset..end)
        .and_then(|slice| <[u8; N]>::try_from(slice).ok())
}

/// Whether a legacy type has a recyclable counterpart that a recycling writer would use.
fn has_recyclable_variant(kind: u8) -> bool {
    matches!(
        kind,
        record_type::FULL
            ..=record_type::LAST
                | record_type::USER_DEFINED_TIMESTAMP_SIZE
                | record_type::PREDECESSOR_WAL_INFO
    )
}

fn describe_type(record_type: u8) -> String {
    let name = match record_type {
        record_type::ZERO => "zero",
        record_type::FULL | record_type::RECYCLABLE_FULL => "full",
        record_type::FIRST | record_type::RECYCLABLE_FIRST => "first",
        record_type::MIDDLE | record_type::RECYCLABLE_MIDDLE => "middle",
        record_type::LAST | record_type::RECYCLABLE_LAST => "last",
        record_type::SET_COMPRESSION_TYPE => "SetCompressionType",
        record_type::USER_DEFINED_TIMESTAMP_SIZE
        | record_type::RECYCLABLE_USER_DEFINED_TIMESTAMP_SIZE => "user-defined timestamp size",
        record_type::PREDECESSOR_WAL_INFO | record_type::RECYCLABLE_PREDECESSOR_WAL_INFO => {
            "predecessor WAL info"
        }
        _ => "unknown",
    };
    format!("{name} (type {record_type})")
}

impl Reader<'_> {
    /// Where untrusted data begins when a problem is found at `physical`.
    fn stop_offset(&self, physical: usize) -> u64 {
        offset64(
            self.pending
                .as_ref()
                .map_or(physical, |pending| pending.start),
        )
    }

    fn torn(&self, physical: usize, reason: String) -> Tail {
        Tail::Torn {
            offset: self.stop_offset(physical),
            reason,
        }
    }

    fn corrupt(&self, physical: usize, reason: String) -> Tail {
        Tail::Corrupt {
            offset: self.stop_offset(physical),
            reason,
        }
    }

    /// Stops at stale data of a recycled file found at `physical`.
    fn stale(&mut self, physical: usize, what: String) -> Tail {
        self.stale_data_offset = Some(physical);
        match &self.pending {
            None => Tail::Clean,
            Some(pending) => Tail::Torn {
                offset: offset64(pending.start),
                reason: format!(
                    "fragmented record starting at offset {} ends at {what} at offset {physical} \
                     (stale data of a recycled log file)",
                    pending.start
                ),
            },
        }
    }

    /// A record that is not a continuation fragment ends any pending fragmented record.
    /// An empty pending one is dropped, as RocksDB does (old writers could leave an
    /// empty FIRST fragment at a block's end); a non-empty one is corruption.
    fn end_pending(&mut self, physical: usize, record_type: u8) -> std::result::Result<(), Tail> {
        match self.pending.take() {
            Some(pending) if !pending.payload.is_empty() => {
                let reason = format!(
                    "fragmented record starting at offset {} has no last fragment: a {} \
                     record follows at offset {physical}",
                    pending.start,
                    describe_type(record_type)
                );
                self.pending = Some(pending);
                Err(self.corrupt(physical, reason))
            }
            _ => Ok(()),
        }
    }

    fn push(&mut self, start: usize, end: usize, kind: RecordKind, payload: Vec<u8>) {
        self.records.push(LogicalRecord {
            start_offset: offset64(start),
            end_offset: offset64(end),
            kind,
            payload,
        });
    }

    fn run(&mut self) -> Tail {
        let mut position = 0usize;
        loop {
            match self.step(position) {
                Ok(next) => position = next,
                Err(tail) => return tail,
            }
        }
    }

    /// Reads the physical record (or padding) at `position`; returns where the next
    /// one starts, or how reading ends.
    fn step(&mut self, position: usize) -> std::result::Result<usize, Tail> {
        let length_of_file = self.bytes.len();
        if position >= length_of_file {
            return Err(match &self.pending {
                None => Tail::Clean,
                Some(pending) => self.torn(
                    position,
                    format!(
                        "log ends at offset {length_of_file} inside the fragmented record \
                         starting at offset {}",
                        pending.start
                    ),
                ),
            });
        }
        let block_end = (position / BLOCK_SIZE + 1) * BLOCK_SIZE;
        let block_complete = length_of_file >= block_end;
        let left_in_block = block_end - position;
        if left_in_block < LEGACY_HEADER_SIZE {
            if block_complete {
                return Ok(block_end); // the zero trailer of a block
            }
            return Err(self.torn(
                position,
                format!(
                    "log ends at offset {length_of_file} inside the padding or header at \
                     offset {position}"
                ),
            ));
        }
        let Some(header) = array_at::<LEGACY_HEADER_SIZE>(self.bytes, position) else {
            return Err(self.torn(
                position,
                format!("truncated header at offset {position}: the log ends at {length_of_file}"),
            ));
        };
        let stored_crc = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
        let length = usize::from(u16::from_le_bytes([header[4], header[5]]));
        let kind_byte = header[6];
        let recyclable = record_type::is_recyclable(kind_byte);
        let header_size = if recyclable {
            RECYCLABLE_HEADER_SIZE
        } else {
            LEGACY_HEADER_SIZE
        };

        let mut record_log_number = None;
        if recyclable {
            if left_in_block < RECYCLABLE_HEADER_SIZE {
                if block_complete {
                    // RocksDB skips a block trailer too short for the header it starts.
                    return Ok(block_end);
                }
                return Err(self.torn(
                    position,
                    format!(
                        "truncated recyclable header at offset {position}: the log ends at \
                         {length_of_file}"
                    ),
                ));
            }
            let Some(long_header) = array_at::<RECYCLABLE_HEADER_SIZE>(self.bytes, position) else {
                return Err(self.torn(
                    position,
                    format!(
                        "truncated recyclable header at offset {position}: the log ends at \
                         {length_of_file}"
                    ),
                ));
            };
            record_log_number = Some(u32::from_le_bytes([
                long_header[7],
                long_header[8],
                long_header[9],
                long_header[10],
            ]));
        }

        if kind_byte == record_type::ZERO && length == 0 {
            if let Some(pending) = &self.pending {
                let rest_is_zero = self
                    .bytes
                    .get(position..)
                    .is_some_and(|rest| rest.iter().all(|&byte| byte == 0));
                let reason = format!(
                    "fragmented record starting at offset {} is followed by preallocated \
                     (zero) space at offset {position}",
                    pending.start
                );
                return Err(if rest_is_zero {
                    self.torn(position, reason)
                } else {
                    self.corrupt(position, reason)
                });
            }
            return Ok(block_end); // preallocated space: skip the rest of the block
        }

        let record_end = position + header_size + length;
        if record_end > block_end {
            return Err(self.corrupt(
                position,
                format!(
                    "{} record at offset {position} has length {length}, which does not fit \
                     in its block ending at offset {block_end}",
                    describe_type(kind_byte)
                ),
            ));
        }
        let Some(checked) = self.bytes.get(position + 6..record_end) else {
            return Err(self.torn(
                position,
                format!(
                    "truncated record body: the {} record at offset {position} needs {} \
                     bytes, the log ends at {length_of_file}",
                    describe_type(kind_byte),
                    header_size + length
                ),
            ));
        };
        // The checksum is verified before the log number is trusted, so damage to a
        // live record's header reads as corruption, not as a clean end at stale data.
        let actual_crc = crc32c(checked);
        let expected_crc = unmask_crc(stored_crc);
        if actual_crc != expected_crc {
            let recycled_note = if self.format == Some(HeaderFormat::Recyclable) {
                " (in a recycled log file, an interrupted overwrite of older data looks the same)"
            } else {
                ""
            };
            return Err(self.corrupt(
                position,
                format!(
                    "checksum mismatch in the {} record at offset {position} (length \
                     {length}): stored {expected_crc:#010x}, computed {actual_crc:#010x}\
                     {recycled_note}",
                    describe_type(kind_byte)
                ),
            ));
        }
        let fragment = checked.get(header_size - 6..).unwrap_or_default();

        if let Some(number) = record_log_number {
            if self.format == Some(HeaderFormat::Legacy) {
                return Err(self.corrupt(
                    position,
                    format!(
                        "recyclable {} record at offset {position} in a log whose records \
                         have legacy headers",
                        describe_type(kind_byte)
                    ),
                ));
            }
            let expected = *self.expected_log_number.get_or_insert(number);
            if number != expected {
                return Err(self.stale(
                    position,
                    format!(
                        "a {} record of log number {number} (expected {expected})",
                        describe_type(kind_byte)
                    ),
                ));
            }
        } else if self.format == Some(HeaderFormat::Recyclable) && has_recyclable_variant(kind_byte)
        {
            // A recycling writer uses recyclable headers for these types: this record
            // is left over from a legacy-format previous life of the file.
            return Err(self.stale(
                position,
                format!(
                    "a legacy-format {} record after recyclable ones",
                    describe_type(kind_byte)
                ),
            ));
        }

        if has_recyclable_variant(kind_byte) {
            self.format = Some(HeaderFormat::Legacy);
        } else if recyclable {
            self.format = Some(HeaderFormat::Recyclable);
        }

        match kind_byte {
            record_type::FULL | record_type::RECYCLABLE_FULL => {
                self.end_pending(position, kind_byte)?;
                self.push(position, record_end, RecordKind::Data, fragment.to_vec());
            }
            record_type::FIRST | record_type::RECYCLABLE_FIRST => {
                self.end_pending(position, kind_byte)?;
                self.pending = Some(Pending {
                    start: position,
                    payload: fragment.to_vec(),
                });
            }
            record_type::MIDDLE | record_type::RECYCLABLE_MIDDLE => match &mut self.pending {
                Some(pending) => pending.payload.extend_from_slice(fragment),
                None => {
                    return Err(self.corrupt(
                        position,
                        format!("middle fragment at offset {position} without a first fragment"),
                    ))
                }
            },
            record_type::LAST | record_type::RECYCLABLE_LAST => match self.pending.take() {
                Some(mut pending) => {
                    pending.payload.extend_from_slice(fragment);
                    self.push(pending.start, record_end, RecordKind::Data, pending.payload);
                }
                None => {
                    return Err(self.corrupt(
                        position,
                        format!("last fragment at offset {position} without a first fragment"),
                    ))
                }
            },
            record_type::SET_COMPRESSION_TYPE => {
                if self.compression_record_seen {
                    return Err(self.corrupt(
                        position,
                        format!("second SetCompressionType record at offset {position}"),
                    ));
                }
                if !self.records.is_empty() || self.pending.is_some() {
                    return Err(self.corrupt(
                        position,
                        format!(
                            "SetCompressionType record at offset {position} is not the first \
                             record"
                        ),
                    ));
                }
                self.compression_record_seen = true;
                let kind = RecordKind::SetCompressionType;
                self.push(position, record_end, kind, fragment.to_vec());
            }
            record_type::USER_DEFINED_TIMESTAMP_SIZE
            | record_type::RECYCLABLE_USER_DEFINED_TIMESTAMP_SIZE => {
                self.end_pending(position, kind_byte)?;
                let kind = RecordKind::UserDefinedTimestampSize;
                self.push(position, record_end, kind, fragment.to_vec());
            }
            record_type::PREDECESSOR_WAL_INFO | record_type::RECYCLABLE_PREDECESSOR_WAL_INFO => {
                self.end_pending(position, kind_byte)?;
                let kind = RecordKind::PredecessorWalInfo;
                self.push(position, record_end, kind, fragment.to_vec());
            }
            other if other & record_type::SAFE_TO_IGNORE_MASK != 0 => {
                self.end_pending(position, kind_byte)?;
                let kind = RecordKind::Ignorable { record_type: other };
                self.push(position, record_end, kind, fragment.to_vec());
            }
            other => {
                return Err(self.corrupt(
                    position,
                    format!("unknown record type {other} at offset {position}"),
                ))
            }
        }
        Ok(record_end)
    }
}

// ---------------------------------------------------------------------------------------
// Sequence ranges.

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

// ---------------------------------------------------------------------------------------
// Writer.

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

struct LogWriter {
    bytes: Vec<u8>,
    block_offset: usize,
    recyclable_log_number: Option<u32>,
}

impl LogWriter {
    fn new(recyclable_log_number: Option<u32>) -> Self {
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

    fn fill_block(&mut self) {
        let leftover = BLOCK_SIZE - self.block_offset;
        self.bytes.resize(self.bytes.len() + leftover, 0);
        self.block_offset = 0;
    }

    fn add_record(&mut self, payload: &[u8]) {
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
    fn emit_physical_record(&mut self, kind: u8, fragment: &[u8]) {
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
    fn add_meta_record(&mut self, kind: u8, payload: &[u8]) {
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

#[cfg(test)]
mod tests {
    use super::record_type::*;
    use super::*;
    use crate::error::ErrorCode;
    use crate::lsm::write_batch::encode_write_batch;
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

    /// The invariants the module documentation promises, for any input.
    fn check_invariants(bytes: &[u8], outcome: &LogReadOutcome) {
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

    /// The last record's end is a safe cut: the prefix up to it reads back as the same
    /// records with a clean tail.
    fn check_last_end_is_a_safe_cut(
        bytes: &[u8],
        outcome: &LogReadOutcome,
        log_number: Option<u64>,
    ) {
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

    /// Reads `bytes[..cut]` and checks it yields exactly the records of `full` that end
    /// at or before the cut, with a clean or torn tail (clean at a record end).
    fn check_truncation(bytes: &[u8], full: &LogReadOutcome, cut: usize, log_number: Option<u64>) {
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

    fn crc32c_bitwise(data: &[u8]) -> u32 {
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
            0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14,
            0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(crc32c(&iscsi_read), 0xd996_3a56);
        assert_eq!(crc32c(b""), 0);
    }

    #[test]
    fn crc32c_slicing_matches_the_bitwise_definition_and_extends() {
        let data = payload(300, 1);
        for length in 0..data.len() {
            assert_eq!(crc32c(&data[..length]), crc32c_bitwise(&data[..length]));
        }
        for split in 0..=data.len() {
            let (head, tail) = data.split_at(split);
            assert_eq!(crc32c_extend(crc32c(head), tail), crc32c(&data));
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

    // --- real RocksDB ---------------------------------------------------------------

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
        let output = match command.output() {
            Ok(output) => output,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "db_bench is not installed: install the rocksdb-tools package \
                 (apt-get install rocksdb-tools); this test reads a WAL written by real RocksDB"
            ),
            Err(error) => panic!("cannot run db_bench: {error}"),
        };
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
}
