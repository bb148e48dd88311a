//! Parity objects (`parity/<id>`): one Reed-Solomon parity shard of a group
//! of packs, named like every object by the BLAKE3 hash of its bytes.
//!
//! Layout (little-endian), see `docs/format.md`:
//!
//! ```text
//! "LSMVPRTY" | version u16 = 1
//! | member count u16 | parity count u16 | shard index u16
//! | stripe size u32 | shard length u64
//! | member count × (pack id [32] | pack length u64)
//! | blake3(everything before)[..16]
//! | shard bytes (shard length)
//! ```
//!
//! The header is framed on its own (`framing.rs`) so that a structure check
//! reads only the first [`MAX_HEADER_LENGTH`] bytes. The packs of a group
//! are zero-padded to the shard length (the longest member rounded up to
//! [`SHARD_ALIGNMENT`]) and coded in stripes of `stripe size` bytes: bytes
//! `[s, s + stripe)` of every member and of every parity shard form one
//! Reed-Solomon code word.
//!
//! Invariant: a decoded header's counts are within the configuration's
//! bounds, its shard index is below its parity count, every member length
//! fits the shard length, the shard length is exactly the aligned longest
//! member, and (for a whole object) the object holds exactly the shard after
//! the header. Nothing is allocated from a declared length.

use std::collections::HashSet;

use super::config::{MAX_PARITY_DATA_PACKS, MAX_PARITY_SHARDS};
use super::framing::{Framing, VersionWidth};
use crate::codec::erasure::{aligned, supports, SHARD_ALIGNMENT};
use crate::error::{Error, Result};
use crate::id::Id;

const FRAMING: Framing = Framing {
    magic: b"LSMVPRTY",
    version: 1,
    version_width: VersionWidth::U16,
    checksum_length: 16,
    subject: Some("header"),
};

/// Bytes of the header's fixed fields (after magic and version).
const FIXED_BODY: usize = 2 + 2 + 2 + 4 + 8;
/// Bytes per group member in the header.
const MEMBER_BYTES: usize = 32 + 8;
/// The longest header any parity object can have.
pub const MAX_HEADER_LENGTH: usize =
    10 + FIXED_BODY + MEMBER_BYTES * MAX_PARITY_DATA_PACKS as usize + 16;
/// The stripe size this build writes (1 MiB): what one coding step holds
/// per shard in memory.
pub const DEFAULT_STRIPE_SIZE: u32 = 1024 * 1024;

/// One pack of a parity group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupMember {
    /// The pack's id (its name).
    pub pack: Id,
    /// The pack's length in bytes.
    pub length: u64,
}

/// The header of one parity object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParityHeader {
    /// The group's packs, in coding order (data shard `i` is member `i`).
    pub members: Vec<GroupMember>,
    /// How many parity shards the group has.
    pub parity_count: u16,
    /// Which of them this object holds (`0..parity_count`).
    pub shard_index: u16,
    /// Bytes per coding stripe (a multiple of [`SHARD_ALIGNMENT`]).
    pub stripe_size: u32,
    /// Bytes of the shard: the longest member, aligned.
    pub shard_length: u64,
}

impl ParityHeader {
    /// The header of shard `shard_index` of a group of `members`.
    pub fn new(members: Vec<GroupMember>, parity_count: u16, shard_index: u16) -> ParityHeader {
        let longest = members.iter().map(|member| member.length).max();
        ParityHeader {
            parity_count,
            shard_index,
            stripe_size: DEFAULT_STRIPE_SIZE,
            shard_length: aligned(longest.unwrap_or(0)),
            members,
        }
    }

    /// The group this shard belongs to: the hash of the header with the
    /// shard index left out, equal for every shard of one group.
    pub fn group_id(&self) -> Id {
        let group = ParityHeader {
            shard_index: 0,
            ..self.clone()
        };
        Id::of(&group.encode_header())
    }

    /// Bytes of this header as written.
    pub fn header_length(&self) -> usize {
        header_length(self.members.len())
    }

    fn encode_header(&self) -> Vec<u8> {
        let mut bytes = FRAMING.start(FIXED_BODY + MEMBER_BYTES * self.members.len());
        bytes.extend_from_slice(&(self.members.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&self.parity_count.to_le_bytes());
        bytes.extend_from_slice(&self.shard_index.to_le_bytes());
        bytes.extend_from_slice(&self.stripe_size.to_le_bytes());
        bytes.extend_from_slice(&self.shard_length.to_le_bytes());
        for member in &self.members {
            bytes.extend_from_slice(&member.pack.0);
            bytes.extend_from_slice(&member.length.to_le_bytes());
        }
        FRAMING.finish(&mut bytes);
        bytes
    }

    /// The whole object: header, then `shard` (of `shard_length` bytes).
    pub fn encode(&self, shard: &[u8]) -> Vec<u8> {
        let mut bytes = self.encode_header();
        bytes.extend_from_slice(shard);
        bytes
    }
}

fn header_length(members: usize) -> usize {
    FRAMING.prefix_length() + FIXED_BODY + MEMBER_BYTES * members + 16
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Parses and checks the header at the start of `bytes` (a whole object or
/// at least its first [`MAX_HEADER_LENGTH`] bytes); `name` names the object
/// in errors.
pub fn decode_header(name: &str, bytes: &[u8]) -> Result<ParityHeader> {
    let object = || format!("parity object {name}");
    let corrupt = |reason: String| Error::corrupt(object(), reason);
    let count_at = FRAMING.prefix_length();
    if bytes.len() < header_length(0) {
        return Err(corrupt(format!("{} bytes is too short", bytes.len())));
    }
    // Read before the checksum is checked, to know where the header ends;
    // bounded first, so a damaged count cannot send the check anywhere.
    let member_count = u16_at(bytes, count_at) as usize;
    if member_count == 0 || member_count > MAX_PARITY_DATA_PACKS as usize {
        return Err(corrupt(format!(
            "header declares {member_count} packs (1..={MAX_PARITY_DATA_PACKS})"
        )));
    }
    let length = header_length(member_count);
    let header = bytes
        .get(..length)
        .ok_or_else(|| corrupt(format!("{} bytes is too short for its header", bytes.len())))?;
    let body = FRAMING.open(header, FIXED_BODY + MEMBER_BYTES * member_count, object)?;
    let parity_count = u16_at(body, 2);
    let shard_index = u16_at(body, 4);
    let stripe_size = u32_at(body, 6);
    let shard_length = u64_at(body, 10);
    let members: Vec<GroupMember> = body[FIXED_BODY..]
        .chunks_exact(MEMBER_BYTES)
        .map(|member| {
            let mut pack = [0u8; 32];
            pack.copy_from_slice(&member[..32]);
            GroupMember {
                pack: Id(pack),
                length: u64_at(member, 32),
            }
        })
        .collect();
    let parsed = ParityHeader {
        members,
        parity_count,
        shard_index,
        stripe_size,
        shard_length,
    };
    check_header(&parsed).map_err(corrupt)?;
    Ok(parsed)
}

/// The header's fields agree with each other and with the bounds.
fn check_header(header: &ParityHeader) -> std::result::Result<(), String> {
    let parity = u32::from(header.parity_count);
    if !(1..=MAX_PARITY_SHARDS).contains(&parity) {
        return Err(format!(
            "header declares {parity} parity shards (1..={MAX_PARITY_SHARDS})"
        ));
    }
    if header.shard_index >= header.parity_count {
        return Err(format!(
            "shard index {} is not below the parity count {}",
            header.shard_index, header.parity_count
        ));
    }
    if header.stripe_size == 0 || header.stripe_size as usize % SHARD_ALIGNMENT != 0 {
        return Err(format!(
            "stripe size {} is not a positive multiple of {SHARD_ALIGNMENT}",
            header.stripe_size
        ));
    }
    let longest = header.members.iter().map(|member| member.length).max();
    if Some(header.shard_length) != longest.map(aligned) {
        return Err(format!(
            "shard length {} is not the longest pack aligned",
            header.shard_length
        ));
    }
    let distinct: HashSet<Id> = header.members.iter().map(|member| member.pack).collect();
    if distinct.len() != header.members.len() {
        return Err("a pack is listed twice".into());
    }
    if !supports(header.members.len(), header.parity_count.into()) {
        return Err(format!(
            "{}+{} cannot be coded",
            header.members.len(),
            header.parity_count
        ));
    }
    Ok(())
}

/// Parses a whole parity object: its header, and the shard that must fill
/// the rest of the object exactly.
pub fn decode<'a>(name: &str, bytes: &'a [u8]) -> Result<(ParityHeader, &'a [u8])> {
    let header = decode_header(name, bytes)?;
    let shard = &bytes[header.header_length()..];
    if shard.len() as u64 != header.shard_length {
        return Err(Error::corrupt(
            format!("parity object {name}"),
            format!(
                "holds {} shard bytes, its header declares {}",
                shard.len(),
                header.shard_length
            ),
        ));
    }
    Ok((header, shard))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> ParityHeader {
        ParityHeader::new(
            vec![
                GroupMember {
                    pack: Id([1; 32]),
                    length: 100,
                },
                GroupMember {
                    pack: Id([2; 32]),
                    length: 130,
                },
            ],
            2,
            1,
        )
    }

    #[test]
    fn round_trips_and_names_its_group() {
        let header = header();
        assert_eq!(header.shard_length, 192);
        let bytes = header.encode(&[7u8; 192]);
        let (decoded, shard) = decode("x", &bytes).unwrap();
        assert_eq!(decoded, header);
        assert_eq!(shard, &[7u8; 192]);
        let other_shard = ParityHeader {
            shard_index: 0,
            ..header.clone()
        };
        assert_eq!(other_shard.group_id(), header.group_id());
        assert!(decode_header("x", &bytes[..header.header_length()]).is_ok());
    }

    proptest::proptest! {
        /// Well-framed headers (a valid checksum) with arbitrary fields:
        /// the checks past the checksum refuse them, never panic.
        #[test]
        fn headers_with_a_valid_checksum_and_any_fields_never_panic(
            lengths in proptest::collection::vec(proptest::prelude::any::<u64>(), 0..70),
            parity_count in proptest::prelude::any::<u16>(),
            shard_index in proptest::prelude::any::<u16>(),
            stripe_size in proptest::prelude::any::<u32>(),
            shard_length in proptest::prelude::any::<u64>(),
            shard in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        ) {
            let header = ParityHeader {
                members: lengths
                    .iter()
                    .enumerate()
                    .map(|(index, length)| GroupMember {
                        pack: Id([(index % 3) as u8; 32]),
                        length: *length % 512,
                    })
                    .collect(),
                parity_count: parity_count % 20,
                shard_index: shard_index % 20,
                stripe_size: stripe_size % 1024,
                shard_length: shard_length % 1024,
            };
            let bytes = header.encode(&shard);
            if let Ok((decoded, decoded_shard)) = decode("x", &bytes) {
                proptest::prop_assert_eq!(decoded_shard.len() as u64, decoded.shard_length);
                proptest::prop_assert!(decoded.shard_index < decoded.parity_count);
            }
            let _ = decode_header("x", &bytes);
        }
    }

    #[test]
    fn a_shard_of_the_wrong_length_or_a_damaged_header_is_refused() {
        let header = header();
        let bytes = header.encode(&[7u8; 192]);
        assert!(decode("x", &bytes[..bytes.len() - 1]).is_err());
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert!(decode("x", &flipped).is_err());
        let mut huge = bytes.clone();
        huge[10] = 0xff;
        huge[11] = 0xff;
        assert!(decode("x", &huge)
            .unwrap_err()
            .to_string()
            .contains("65535"));
    }
}
