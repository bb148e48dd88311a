//! The checksum of a physical record: CRC32C (Castagnoli), stored masked.
//!
//! LevelDB and RocksDB store `mask_crc(crc32c(type byte [+ log number] + payload))`;
//! the mask keeps a CRC of data that itself holds CRCs from being weak.

pub(super) const CRC32C_POLYNOMIAL_REFLECTED: u32 = 0x82f6_3b78;
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
pub(super) fn crc32c_extend(crc: u32, data: &[u8]) -> u32 {
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
