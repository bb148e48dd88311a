//! The checksum of a physical record: CRC32C (Castagnoli), stored masked.
//!
//! LevelDB and RocksDB store `mask_crc(crc32c(type byte [+ log number] + payload))`;
//! the mask keeps a CRC of data that itself holds CRCs from being weak. The CRC
//! itself comes from the `crc32c` crate (hardware instructions where the processor
//! has them, a table-driven fallback elsewhere); the masking is the log format's
//! and stays here.

/// The CRC32C (Castagnoli) of `data`, as LevelDB's and RocksDB's `crc32c::Value`.
pub fn crc32c(data: &[u8]) -> u32 {
    ::crc32c::crc32c(data)
}

/// Continues a CRC32C computation (`crc` is a previous result, 0 to start), as
/// LevelDB's and RocksDB's `crc32c::Extend`.
pub(super) fn crc32c_extend(crc: u32, data: &[u8]) -> u32 {
    ::crc32c::crc32c_append(crc, data)
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
