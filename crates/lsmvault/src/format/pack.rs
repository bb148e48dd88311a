//! Pack files: many blobs (chunks and trees) in one object, with a header at the
//! end that lists every blob, so the index can be rebuilt from packs alone.
//!
//! Layout (all integers little-endian; `docs/format.md` is the reference):
//!
//! ```text
//! blob 0 | blob 1 | ... | blob n-1 | header | header_length u32 | "LSMVPACK"
//! header = "LSMVPKHD" | version u16 | flags u16 | count u32
//!          | count x entry(48 bytes) | blake3(header so far)[0..16]
//! entry  = kind u8 | codec u8 | reserved u16 | stored_length u32 | raw_length u32
//!          | reserved u32 | id [32]
//! ```
//!
//! Blob offsets are implicit: blob i starts where blob i-1 ends. The pack's name
//! is the BLAKE3 hash of all its bytes. The packer here is sans-I/O: it only
//! builds bytes; the caller decides where they go.

use std::borrow::Cow;

pub use crate::codec::compression::Codec;
use crate::codec::crypto::{Keys, SealKind};
use crate::error::{Error, Result};
use crate::format::framing::{Framing, VersionWidth};
use crate::id::Id;

/// Pack format version: the `u16` after the header magic. Readers refuse any other.
pub const PACK_VERSION: u16 = 1;
const HEADER_MAGIC: &[u8; 8] = b"LSMVPKHD";
const TRAILER_MAGIC: &[u8; 8] = b"LSMVPACK";
const ENTRY_LENGTH: usize = 48;
/// Flags and blob count, after magic and version.
const HEADER_FIXED_LENGTH: usize = 2 + 4;
const HEADER_FRAMING: Framing = Framing {
    magic: HEADER_MAGIC,
    version: PACK_VERSION as u32,
    version_width: VersionWidth::U16,
    checksum_length: 16,
    subject: Some("header"),
};
/// Length of the fixed trailer (`header_length` + magic).
pub const TRAILER_LENGTH: usize = 4 + 8;

/// What a blob holds: the `kind` byte of pack header and index entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum BlobKind {
    /// A chunk of file content.
    Data = 0,
    /// A serialized tree (directory listing).
    Tree = 1,
}

impl BlobKind {
    pub(crate) fn from_byte(byte: u8) -> Option<BlobKind> {
        match byte {
            0 => Some(BlobKind::Data),
            1 => Some(BlobKind::Tree),
            _ => None,
        }
    }
}

/// One blob as listed in a pack header (offset derived from its predecessors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// The blob's id: BLAKE3 of its raw (decoded) content, keyed in an
    /// encrypted repository; checked on every read.
    pub id: Id,
    /// Whether the blob is a chunk of file content or a tree.
    pub kind: BlobKind,
    /// How the stored bytes decode to the raw content (applied inside the
    /// seal in an encrypted repository).
    pub codec: Codec,
    /// Byte offset of the blob from the start of the pack. The pack header
    /// does not store it (it is the sum of the preceding `stored_length`s);
    /// index entries do.
    pub offset: u32,
    /// Bytes the blob occupies in the pack: after compression, and including
    /// the 40 bytes of nonce and tag in an encrypted repository.
    pub stored_length: u32,
    /// Bytes of the decoded content (equal to `stored_length` for a plaintext
    /// blob stored as is). Decoding checks it, and refuses a compressed blob
    /// claiming more than [`MAX_BLOB_SIZE`](crate::codec::compression::MAX_BLOB_SIZE).
    pub raw_length: u32,
}

/// Builds one pack in memory.
#[derive(Debug, Default)]
pub struct Packer {
    bytes: Vec<u8>,
    entries: Vec<PackEntry>,
    /// The pack's name, hashed as blobs arrive (in the threads that add them),
    /// so finishing a pack does not hash 16 MiB on the writer thread.
    hasher: blake3::Hasher,
}

/// A finished pack: its name, bytes and the blobs it holds.
#[derive(Debug)]
pub struct FinishedPack {
    /// The pack's name: plain BLAKE3 of all of `bytes` (unkeyed, also in an
    /// encrypted repository).
    pub id: Id,
    /// The complete pack file: blobs, header (sealed when encrypted), trailer.
    pub bytes: Vec<u8>,
    /// The blobs it holds, in pack order, with their offsets.
    pub entries: Vec<PackEntry>,
}

impl Packer {
    /// An empty packer whose buffer grows as blobs arrive (see
    /// [`Packer::with_capacity`] for full-size packs).
    pub fn new() -> Self {
        Self::default()
    }

    /// A packer whose buffer never reallocates below `capacity` bytes (a
    /// doubling 16 MiB buffer would briefly need 48 MiB).
    pub fn with_capacity(capacity: usize) -> Self {
        Packer {
            bytes: Vec::with_capacity(capacity),
            ..Packer::default()
        }
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no blob was added yet (an empty blob counts as added, though
    /// it leaves [`Packer::len`] at 0).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a blob stored as is.
    pub fn add(&mut self, id: Id, kind: BlobKind, data: &[u8]) -> Result<()> {
        self.add_encoded(id, kind, Codec::None, data, data.len(), &Keys::plaintext())
    }

    /// Appends a blob already encoded with `codec` (`raw_length`: its decoded
    /// size), sealing it with `keys` straight into the pack buffer.
    pub fn add_encoded(
        &mut self,
        id: Id,
        kind: BlobKind,
        codec: Codec,
        encoded: &[u8],
        raw_length: usize,
        keys: &Keys,
    ) -> Result<()> {
        let too_large = || Error::InvalidArgument(format!("blob {id} exceeds 4 GiB"));
        let offset = u32::try_from(self.bytes.len()).map_err(|_| too_large())?;
        let raw_length = u32::try_from(raw_length).map_err(|_| too_large())?;
        let stored_length =
            u32::try_from(keys.sealed_length(encoded.len())).map_err(|_| too_large())?;
        offset.checked_add(stored_length).ok_or_else(too_large)?;
        keys.seal_append(SealKind::Blob, encoded, &mut self.bytes)?;
        debug_assert_eq!(self.bytes.len() - offset as usize, stored_length as usize);
        self.hasher.update(&self.bytes[offset as usize..]);
        self.entries.push(PackEntry {
            id,
            kind,
            codec,
            offset,
            stored_length,
            raw_length,
        });
        Ok(())
    }

    /// Appends the header (sealed in an encrypted repository) and trailer,
    /// and names the pack.
    pub fn finish(self, keys: &Keys) -> Result<FinishedPack> {
        let Packer {
            mut bytes,
            entries,
            mut hasher,
        } = self;
        let plain_header = encode_header(&entries);
        let header = keys.seal(SealKind::PackHeader, &plain_header)?;
        let start = bytes.len();
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(TRAILER_MAGIC);
        hasher.update(&bytes[start..]);
        Ok(FinishedPack {
            id: Id(*hasher.finalize().as_bytes()),
            bytes,
            entries,
        })
    }
}

fn encode_header(entries: &[PackEntry]) -> Vec<u8> {
    let mut header = HEADER_FRAMING.start(HEADER_FIXED_LENGTH + entries.len() * ENTRY_LENGTH);
    header.extend_from_slice(&0u16.to_le_bytes()); // flags: bit 0 reserved for "encrypted"
    header.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for entry in entries {
        header.push(entry.kind as u8);
        header.push(entry.codec as u8);
        header.extend_from_slice(&0u16.to_le_bytes());
        header.extend_from_slice(&entry.stored_length.to_le_bytes());
        header.extend_from_slice(&entry.raw_length.to_le_bytes());
        header.extend_from_slice(&0u32.to_le_bytes());
        header.extend_from_slice(&entry.id.0);
    }
    HEADER_FRAMING.finish(&mut header);
    header
}

/// Reads the header length from a pack's last [`TRAILER_LENGTH`] bytes.
pub fn parse_trailer(pack_name: &str, trailer: &[u8]) -> Result<u32> {
    let corrupt = |reason: &str| Error::corrupt(format!("pack {pack_name}"), reason);
    if trailer.len() != TRAILER_LENGTH {
        return Err(corrupt("shorter than a pack trailer"));
    }
    if &trailer[4..] != TRAILER_MAGIC {
        return Err(corrupt("trailer magic missing (truncated or not a pack)"));
    }
    Ok(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ]))
}

/// Opens (when encrypted) and parses a pack header, checking magic, version,
/// checksum, and that the blobs it lists fit in `data_length` bytes (the pack
/// size minus header and trailer).
pub fn parse_header(
    pack_name: &str,
    stored_header: &[u8],
    data_length: u64,
    keys: &Keys,
) -> Result<Vec<PackEntry>> {
    let corrupt = |reason: String| Error::corrupt(format!("pack {pack_name}"), reason);
    let header = keys.open(SealKind::PackHeader, stored_header, || {
        format!("header of pack {pack_name}")
    })?;
    let body = HEADER_FRAMING.open(header.as_ref(), HEADER_FIXED_LENGTH, || {
        format!("pack {pack_name}")
    })?;
    let count = u32::from_le_bytes([body[2], body[3], body[4], body[5]]) as usize;
    let listed = &body[HEADER_FIXED_LENGTH..];
    if listed.len() != count.saturating_mul(ENTRY_LENGTH) {
        return Err(corrupt(format!(
            "header lists {count} blobs but holds {} bytes of entries",
            listed.len()
        )));
    }
    let mut entries = Vec::with_capacity(count);
    let mut offset: u64 = 0;
    for raw in listed.chunks_exact(ENTRY_LENGTH) {
        let word = |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
        let kind = BlobKind::from_byte(raw[0])
            .ok_or_else(|| corrupt(format!("unknown blob kind {}", raw[0])))?;
        let codec =
            Codec::from_byte(raw[1]).ok_or_else(|| corrupt(format!("unknown codec {}", raw[1])))?;
        let stored_length = word(4);
        let mut id = [0u8; 32];
        id.copy_from_slice(&raw[16..48]);
        entries.push(PackEntry {
            id: Id(id),
            kind,
            codec,
            offset: u32::try_from(offset).map_err(|_| corrupt("blob offset overflow".into()))?,
            stored_length,
            raw_length: word(8),
        });
        offset += u64::from(stored_length);
    }
    if offset != data_length {
        return Err(corrupt(format!(
            "header lists {offset} bytes of blobs, the pack holds {data_length}"
        )));
    }
    Ok(entries)
}

/// Parses a whole pack held in memory.
pub fn parse_pack(pack_name: &str, pack: &[u8], keys: &Keys) -> Result<Vec<PackEntry>> {
    let corrupt = |reason: &str| Error::corrupt(format!("pack {pack_name}"), reason);
    let trailer_start = pack
        .len()
        .checked_sub(TRAILER_LENGTH)
        .ok_or_else(|| corrupt("shorter than a pack trailer"))?;
    let header_length = parse_trailer(pack_name, &pack[trailer_start..])? as usize;
    let header_start = trailer_start
        .checked_sub(header_length)
        .ok_or_else(|| corrupt("header length exceeds the pack"))?;
    parse_header(
        pack_name,
        &pack[header_start..trailer_start],
        header_start as u64,
        keys,
    )
}

/// Decodes a blob's stored bytes into its raw content and checks it against
/// its id. Owned input of a plaintext, uncompressed blob is returned without
/// a copy (restore reads every chunk through here).
pub fn decode_blob<'a>(
    entry: &PackEntry,
    stored: impl Into<Cow<'a, [u8]>>,
    keys: &Keys,
    object: impl Fn() -> String,
) -> Result<Vec<u8>> {
    let opened = keys.open(SealKind::Blob, stored, &object)?;
    let raw =
        crate::codec::compression::decode(entry.codec, opened, entry.raw_length as usize, &object)?;
    check_blob(keys, entry.id, &raw, object)?;
    Ok(raw.into_owned())
}

/// Fails unless `raw` hashes to `id` (keyed in an encrypted repository).
pub fn check_blob(keys: &Keys, id: Id, raw: &[u8], object: impl Fn() -> String) -> Result<()> {
    let actual = keys.blob_id(raw);
    if actual == id {
        Ok(())
    } else {
        Err(Error::ChecksumMismatch {
            object: object(),
            expected: id.to_hex(),
            actual: actual.to_hex(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn pack_round_trip(blobs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..2000), 0..20)) {
            let mut packer = Packer::new();
            for (index, blob) in blobs.iter().enumerate() {
                let kind = if index % 3 == 0 { BlobKind::Tree } else { BlobKind::Data };
                packer.add(Id::of(blob), kind, blob).unwrap();
            }
            let pack = packer.finish(&Keys::plaintext()).unwrap();
            prop_assert_eq!(pack.id, Id::of(&pack.bytes));
            let parsed = parse_pack("test", &pack.bytes, &Keys::plaintext()).unwrap();
            prop_assert_eq!(&parsed, &pack.entries);
            for (entry, blob) in parsed.iter().zip(&blobs) {
                let start = entry.offset as usize;
                let stored = &pack.bytes[start..start + entry.stored_length as usize];
                prop_assert_eq!(&decode_blob(entry, stored, &Keys::plaintext(), || "blob".into()).unwrap(), blob);
            }
        }

        /// Any single flipped byte in header or trailer is detected, never misparsed.
        #[test]
        fn header_damage_detected(flip in 0usize..200) {
            let mut packer = Packer::new();
            packer.add(Id::of(b"one"), BlobKind::Data, b"one").unwrap();
            packer.add(Id::of(b"two"), BlobKind::Tree, b"two").unwrap();
            let mut bytes = packer.finish(&Keys::plaintext()).unwrap().bytes;
            let data_length = 6;
            let position = data_length + flip % (bytes.len() - data_length);
            bytes[position] ^= 0x40;
            prop_assert!(parse_pack("test", &bytes, &Keys::plaintext()).is_err());
        }
    }

    #[test]
    fn truncated_pack_is_corrupt() {
        let mut packer = Packer::new();
        packer.add(Id::of(b"x"), BlobKind::Data, b"x").unwrap();
        let bytes = packer.finish(&Keys::plaintext()).unwrap().bytes;
        for length in 0..bytes.len() {
            assert!(
                parse_pack("test", &bytes[..length], &Keys::plaintext()).is_err(),
                "length {length}"
            );
        }
    }

    #[test]
    fn damaged_blob_fails_its_checksum() {
        let entry = PackEntry {
            id: Id::of(b"abc"),
            kind: BlobKind::Data,
            codec: Codec::None,
            offset: 0,
            stored_length: 3,
            raw_length: 3,
        };
        let error =
            decode_blob(&entry, b"abd", &Keys::plaintext(), || "blob x".into()).unwrap_err();
        assert!(matches!(error, Error::ChecksumMismatch { .. }), "{error}");
    }
}

#[cfg(test)]
mod encrypted_tests {
    use super::*;
    use crate::codec::compression::Compression;
    use crate::codec::crypto::{Cipher, MasterKey};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Every blob round-trips under both codecs and both encryption modes,
        /// and a flipped byte anywhere in an encrypted pack is an authentication
        /// failure (header) or fails its blob (data).
        #[test]
        fn packs_round_trip_with_compression_and_encryption(
            blobs in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..5000), 1..8),
            encrypted in any::<bool>(),
            compress in any::<bool>(),
            flip in any::<usize>(),
        ) {
            let keys = if encrypted { MasterKey::generate().unwrap().keys(Cipher::default()) } else { Keys::plaintext() };
            let compression = if compress { Compression::Zstd { level: 3 } } else { Compression::Off };
            let mut packer = Packer::new();
            for blob in &blobs {
                let (codec, compressed) = compression.encode(blob);
                packer.add_encoded(keys.blob_id(blob), BlobKind::Data, codec, &compressed, blob.len(), &keys).unwrap();
            }
            let pack = packer.finish(&keys).unwrap();
            let entries = parse_pack("p", &pack.bytes, &keys).unwrap();
            prop_assert_eq!(&entries, &pack.entries);
            for (entry, blob) in entries.iter().zip(&blobs) {
                let start = entry.offset as usize;
                let stored = &pack.bytes[start..start + entry.stored_length as usize];
                prop_assert_eq!(&decode_blob(entry, stored, &keys, || "b".into()).unwrap(), blob);
            }
            if encrypted {
                let mut tampered = pack.bytes.clone();
                let position = flip % tampered.len();
                tampered[position] ^= 0x10;
                let detected = match parse_pack("p", &tampered, &keys) {
                    Err(_) => true,
                    Ok(entries) => entries.iter().any(|entry| {
                        let start = entry.offset as usize;
                        let stored = &tampered[start..start + entry.stored_length as usize];
                        matches!(decode_blob(entry, stored, &keys, || "b".into()), Err(Error::AuthenticationFailed { .. }))
                    }),
                };
                prop_assert!(detected, "flip at {} not detected", position);
                // Another repository's key opens nothing.
                let other = MasterKey::generate().unwrap().keys(Cipher::default());
                let refused = matches!(parse_pack("p", &pack.bytes, &other), Err(Error::AuthenticationFailed { .. }));
                prop_assert!(refused);
            }
        }
    }
}
