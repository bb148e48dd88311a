//! One physical record: its type, its header, and the checks that need nothing but
//! the bytes at its position (block bounds, length, checksum).
//!
//! [`parse_physical`] reads what is at one position of a log: block padding,
//! preallocated space, or a checksum-verified physical record, or why none can be
//! read there (the log ends, or the bytes are damaged). Whether the record fits the
//! records before it (fragment order, log number, header format) is the reader's
//! business ([`super::reader`]).

use super::checksum::{crc32c, unmask_crc};
use super::{BLOCK_SIZE, LEGACY_HEADER_SIZE, RECYCLABLE_HEADER_SIZE};

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

fn array_at<const N: usize>(bytes: &[u8], offset: usize) -> Option<[u8; N]> {
    let end = offset.checked_add(N)?;
    bytes
        .get(offset..end)
        .and_then(|slice| <[u8; N]>::try_from(slice).ok())
}

/// Whether a legacy type has a recyclable counterpart that a recycling writer would use.
pub(super) fn has_recyclable_variant(kind: u8) -> bool {
    matches!(
        kind,
        record_type::FULL
            ..=record_type::LAST
                | record_type::USER_DEFINED_TIMESTAMP_SIZE
                | record_type::PREDECESSOR_WAL_INFO
    )
}

pub(super) fn describe_type(record_type: u8) -> String {
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

/// What is at a position of a log, as far as the physical framing tells.
#[derive(Debug)]
pub(super) enum Physical<'a> {
    /// A block trailer too short for a header (zero padding): reading resumes at
    /// `next`, the start of the next block.
    Padding { next: usize },
    /// A zero type with a zero length: preallocated, never written space up to
    /// `next`, the end of its block.
    Preallocated { next: usize },
    /// A physical record whose checksum matches.
    Record(PhysicalRecord<'a>),
}

/// A checksum-verified physical record.
#[derive(Debug)]
pub(super) struct PhysicalRecord<'a> {
    /// The type byte (see [`record_type`]).
    pub(super) record_type: u8,
    /// The low 32 bits of the log number, for recyclable types.
    pub(super) log_number: Option<u32>,
    /// The payload.
    pub(super) fragment: &'a [u8],
    /// Offset just after the record.
    pub(super) end: usize,
}

/// Why no physical record can be read at a position; each names offsets.
#[derive(Debug)]
pub(super) enum FramingProblem {
    /// The log ends inside the header or the body: an interrupted write.
    Torn(String),
    /// A length that does not fit its block.
    Corrupt(String),
    /// The stored checksum does not match the record.
    ChecksumMismatch(String),
}

/// Reads what is at `position` (which must be before the end of `bytes`).
///
/// The checksum is verified before anything in the header is trusted beyond the
/// length, so damage to a live record's header reads as a problem, never as a record
/// of another type or log number.
pub(super) fn parse_physical(
    bytes: &[u8],
    position: usize,
) -> Result<Physical<'_>, FramingProblem> {
    let length_of_file = bytes.len();
    let block_end = (position / BLOCK_SIZE + 1) * BLOCK_SIZE;
    let block_complete = length_of_file >= block_end;
    let left_in_block = block_end - position;
    if left_in_block < LEGACY_HEADER_SIZE {
        if block_complete {
            return Ok(Physical::Padding { next: block_end }); // the zero trailer of a block
        }
        return Err(FramingProblem::Torn(format!(
            "log ends at offset {length_of_file} inside the padding or header at offset \
             {position}"
        )));
    }
    let Some(header) = array_at::<LEGACY_HEADER_SIZE>(bytes, position) else {
        return Err(FramingProblem::Torn(format!(
            "truncated header at offset {position}: the log ends at {length_of_file}"
        )));
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

    let mut log_number = None;
    if recyclable {
        let truncated = || {
            FramingProblem::Torn(format!(
                "truncated recyclable header at offset {position}: the log ends at \
                 {length_of_file}"
            ))
        };
        if left_in_block < RECYCLABLE_HEADER_SIZE {
            if block_complete {
                // RocksDB skips a block trailer too short for the header it starts.
                return Ok(Physical::Padding { next: block_end });
            }
            return Err(truncated());
        }
        let Some(long_header) = array_at::<RECYCLABLE_HEADER_SIZE>(bytes, position) else {
            return Err(truncated());
        };
        log_number = Some(u32::from_le_bytes([
            long_header[7],
            long_header[8],
            long_header[9],
            long_header[10],
        ]));
    }

    if kind_byte == record_type::ZERO && length == 0 {
        return Ok(Physical::Preallocated { next: block_end });
    }

    let record_end = position + header_size + length;
    if record_end > block_end {
        return Err(FramingProblem::Corrupt(format!(
            "{} record at offset {position} has length {length}, which does not fit in its \
             block ending at offset {block_end}",
            describe_type(kind_byte)
        )));
    }
    // The checksum covers the type byte, the log number of recyclable types, and the
    // payload: everything after the crc and the length.
    let Some(checked) = bytes.get(position + 6..record_end) else {
        return Err(FramingProblem::Torn(format!(
            "truncated record body: the {} record at offset {position} needs {} bytes, the \
             log ends at {length_of_file}",
            describe_type(kind_byte),
            header_size + length
        )));
    };
    let actual_crc = crc32c(checked);
    let expected_crc = unmask_crc(stored_crc);
    if actual_crc != expected_crc {
        return Err(FramingProblem::ChecksumMismatch(format!(
            "checksum mismatch in the {} record at offset {position} (length {length}): \
             stored {expected_crc:#010x}, computed {actual_crc:#010x}",
            describe_type(kind_byte)
        )));
    }
    Ok(Physical::Record(PhysicalRecord {
        record_type: kind_byte,
        log_number,
        fragment: checked.get(header_size - 6..).unwrap_or_default(),
        end: record_end,
    }))
}
