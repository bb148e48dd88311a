//! The blob index: which pack holds which blob, and where.
//!
//! On disk it is a set of immutable index files, each written after the packs
//! it describes, so every index entry points at a pack that was published
//! before it. In memory it is one map from blob id to its preferred location;
//! when two packs hold the same blob (two concurrent backups stored it, or a
//! backup wrote again a blob whose pack was lost or damaged) the other
//! locations are kept too, so a reader can fall back to them and the
//! repository (backup, prune) can choose the one that is really there.
//!
//! Index file layout (little-endian; `docs/format.md` is the reference):
//!
//! ```text
//! "LSMVINDX" | version u32 | count u32 | count x entry(80 bytes) | blake3(all before)
//! entry = id [32] | pack [32] | offset u32 | stored_length u32 | raw_length u32
//!         | kind u8 | codec u8 | reserved u16
//! ```

use std::collections::HashMap;

use crate::codec::crypto::{Keys, SealKind};
use crate::error::{Error, Result};
use crate::format::framing::{Framing, VersionWidth};
use crate::format::pack::{BlobKind, Codec, PackEntry};
use crate::id::Id;

/// Index file format version: the `u32` after the magic. Readers refuse any other.
pub const INDEX_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"LSMVINDX";
const ENTRY_LENGTH: usize = 80;
/// The entry count, after magic and version.
const FIXED_LENGTH: usize = 4;
const FRAMING: Framing = Framing {
    magic: MAGIC,
    version: INDEX_VERSION,
    version_width: VersionWidth::U32,
    checksum_length: 32,
    subject: None,
};

/// Where a blob lives: one entry of an index file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Id of the pack (`data/xx/<id>`) holding the blob.
    pub pack: Id,
    /// The blob as that pack lists it: id, kind, codec, offset in the pack,
    /// stored and raw length.
    pub entry: PackEntry,
}

/// In-memory map of every indexed blob.
#[derive(Debug, Default, Clone)]
pub struct Index {
    blobs: HashMap<Id, BlobLocation>,
    /// Further distinct locations of blobs stored more than once (rare: kept
    /// apart so the common case costs one map entry per blob).
    others: HashMap<Id, Vec<BlobLocation>>,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where blob `id` is stored, when an indexed pack holds it.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Whether blob `id` is indexed (a writer then does not store it again).
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of distinct blobs indexed.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether no blob is indexed.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Records every blob of `pack`. An id already present keeps its first
    /// location as the preferred one; see [`Index::insert`].
    pub fn add_pack(&mut self, pack: Id, entries: &[PackEntry]) {
        for entry in entries {
            self.insert(BlobLocation {
                pack,
                entry: *entry,
            });
        }
    }

    /// Records one blob's location. An id already present keeps its first
    /// location as the preferred one ([`Index::get`]); a different further
    /// location is kept as an alternative ([`Index::locations`]).
    pub fn insert(&mut self, location: BlobLocation) {
        let id = location.entry.id;
        match self.blobs.get(&id) {
            None => {
                self.blobs.insert(id, location);
            }
            Some(first) if *first == location => {}
            Some(_) => {
                let others = self.others.entry(id).or_default();
                if !others.contains(&location) {
                    others.push(location);
                }
            }
        }
    }

    /// Makes `location` the preferred location of its blob (recording it
    /// if it is new); the previous preferred one becomes an alternative.
    /// Used for a location known good: just written, or just read and checked.
    pub fn promote(&mut self, location: BlobLocation) {
        let id = location.entry.id;
        let Some(previous) = self.blobs.insert(id, location) else {
            return;
        };
        if previous == location {
            return;
        }
        let others = self.others.entry(id).or_default();
        others.retain(|other| *other != location);
        others.push(previous);
    }

    /// Every known location of blob `id`, the preferred one first.
    pub fn locations(&self, id: &Id) -> impl Iterator<Item = &BlobLocation> {
        self.blobs
            .get(id)
            .into_iter()
            .chain(self.others.get(id).into_iter().flatten())
    }

    /// Whether some blob has more than one location.
    pub fn has_duplicates(&self) -> bool {
        !self.others.is_empty()
    }

    /// For each blob stored more than once whose preferred location's pack
    /// fails `present`, prefers its first location whose pack passes.
    pub fn prefer_present(&mut self, present: impl Fn(&Id) -> bool) {
        let mut better = Vec::new();
        for (id, alternatives) in &self.others {
            let first_present = self.blobs.get(id).is_some_and(|first| present(&first.pack));
            if !first_present {
                if let Some(found) = alternatives.iter().find(|other| present(&other.pack)) {
                    better.push(*found);
                }
            }
        }
        for location in better {
            self.promote(location);
        }
    }

    /// Keeps only locations in packs for which `present` holds, preferring
    /// for each blob its first present location; blobs with no present
    /// location are dropped. Returns how many blobs were dropped.
    pub fn retain_present(&mut self, present: impl Fn(&Id) -> bool) -> usize {
        let before = self.blobs.len();
        let mut others = std::mem::take(&mut self.others);
        self.blobs.retain(|id, first| {
            let alternatives = others.remove(id).unwrap_or_default();
            let mut kept = std::iter::once(*first)
                .chain(alternatives)
                .filter(|location| present(&location.pack));
            match kept.next() {
                Some(preferred) => {
                    *first = preferred;
                    let rest: Vec<BlobLocation> = kept.collect();
                    if !rest.is_empty() {
                        others.insert(*id, rest);
                    }
                    true
                }
                None => false,
            }
        });
        self.others = others;
        before - self.blobs.len()
    }

    /// Every indexed blob's location, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &BlobLocation> {
        self.blobs.values()
    }
}

/// Serializes (and, when encrypted, seals) index entries into one index
/// file; returns (name, bytes).
pub fn encode_index_file(locations: &[BlobLocation], keys: &Keys) -> Result<(Id, Vec<u8>)> {
    let mut bytes = FRAMING.start(FIXED_LENGTH + locations.len() * ENTRY_LENGTH);
    bytes.extend_from_slice(&(locations.len() as u32).to_le_bytes());
    for location in locations {
        let entry = &location.entry;
        bytes.extend_from_slice(&entry.id.0);
        bytes.extend_from_slice(&location.pack.0);
        bytes.extend_from_slice(&entry.offset.to_le_bytes());
        bytes.extend_from_slice(&entry.stored_length.to_le_bytes());
        bytes.extend_from_slice(&entry.raw_length.to_le_bytes());
        bytes.push(entry.kind as u8);
        bytes.push(entry.codec as u8);
        bytes.extend_from_slice(&0u16.to_le_bytes());
    }
    FRAMING.finish(&mut bytes);
    let stored = keys.seal(SealKind::Index, &bytes)?.into_owned();
    Ok((Id::of(&stored), stored))
}

/// Parses one index file, checking magic, version and checksum.
pub fn decode_index_file(name: &str, stored: &[u8], keys: &Keys) -> Result<Vec<BlobLocation>> {
    let object = || format!("index file {name}");
    let bytes = keys.open(SealKind::Index, stored, object)?;
    let body = FRAMING.open(bytes.as_ref(), FIXED_LENGTH, object)?;
    let corrupt = |reason: String| Error::corrupt(object(), reason);
    let count = u32::from_le_bytes([body[0], body[1], body[2], body[3]]) as usize;
    let listed = &body[FIXED_LENGTH..];
    if listed.len() != count.saturating_mul(ENTRY_LENGTH) {
        return Err(corrupt(format!(
            "lists {count} entries but holds {} bytes of entries",
            listed.len()
        )));
    }
    listed
        .chunks_exact(ENTRY_LENGTH)
        .map(|raw| {
            let word =
                |at: usize| u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], raw[at + 3]]);
            let mut id = [0u8; 32];
            id.copy_from_slice(&raw[..32]);
            let mut pack = [0u8; 32];
            pack.copy_from_slice(&raw[32..64]);
            let kind = BlobKind::from_byte(raw[76])
                .ok_or_else(|| corrupt(format!("unknown blob kind {}", raw[76])))?;
            let codec = Codec::from_byte(raw[77])
                .ok_or_else(|| corrupt(format!("unknown codec {}", raw[77])))?;
            Ok(BlobLocation {
                pack: Id(pack),
                entry: PackEntry {
                    id: Id(id),
                    kind,
                    codec,
                    offset: word(64),
                    stored_length: word(68),
                    raw_length: word(72),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn location(seed: u8, offset: u32, length: u32, tree: bool) -> BlobLocation {
        BlobLocation {
            pack: Id([seed.wrapping_add(1); 32]),
            entry: PackEntry {
                id: Id([seed; 32]),
                kind: if tree { BlobKind::Tree } else { BlobKind::Data },
                codec: Codec::None,
                offset,
                stored_length: length,
                raw_length: length,
            },
        }
    }

    proptest! {
        #[test]
        fn index_file_round_trip(entries in proptest::collection::vec((any::<u8>(), any::<u32>(), any::<u32>(), any::<bool>()), 0..50)) {
            let locations: Vec<BlobLocation> = entries.iter().map(|(seed, offset, length, tree)| location(*seed, *offset, *length, *tree)).collect();
            let (name, bytes) = encode_index_file(&locations, &Keys::plaintext()).unwrap();
            prop_assert_eq!(name, Id::of(&bytes));
            prop_assert_eq!(decode_index_file("x", &bytes, &Keys::plaintext()).unwrap(), locations);
        }

        #[test]
        fn any_flipped_byte_is_detected(flip in 0usize..1000) {
            let (_, mut bytes) = encode_index_file(&[location(1, 0, 5, false), location(2, 5, 9, true)], &Keys::plaintext()).unwrap();
            let position = flip % bytes.len();
            bytes[position] ^= 1;
            prop_assert!(decode_index_file("x", &bytes, &Keys::plaintext()).is_err());
        }
    }

    #[test]
    fn first_location_wins() {
        let mut index = Index::new();
        let first = location(1, 0, 5, false);
        let mut second = first;
        second.pack = Id([9; 32]);
        index.insert(first);
        index.insert(second);
        assert_eq!(index.get(&first.entry.id).unwrap().pack, first.pack);
        assert_eq!(index.len(), 1);
        let all: Vec<Id> = index.locations(&first.entry.id).map(|l| l.pack).collect();
        assert_eq!(all, vec![first.pack, second.pack]);
    }

    #[test]
    fn promoted_and_present_locations_win() {
        let mut index = Index::new();
        let first = location(1, 0, 5, false);
        let mut second = first;
        second.pack = Id([9; 32]);
        index.insert(first);
        index.insert(second);
        index.promote(second);
        assert_eq!(index.get(&first.entry.id).unwrap().pack, second.pack);
        assert_eq!(index.locations(&first.entry.id).count(), 2);
        index.promote(first);
        let dropped = index.retain_present(|pack| *pack == second.pack);
        assert_eq!(dropped, 0);
        assert_eq!(index.get(&first.entry.id).unwrap().pack, second.pack);
        assert!(!index.has_duplicates());
        assert_eq!(index.retain_present(|_| false), 1);
        assert!(index.is_empty());
    }
}

#[cfg(test)]
mod encrypted_tests {
    use super::*;
    use crate::codec::crypto::{Cipher, MasterKey};

    #[test]
    fn encrypted_index_round_trips_and_hides_ids() {
        let keys = MasterKey::generate().unwrap().keys(Cipher::default());
        let location = BlobLocation {
            pack: Id([7; 32]),
            entry: PackEntry {
                id: Id([9; 32]),
                kind: BlobKind::Data,
                codec: Codec::Zstd,
                offset: 0,
                stored_length: 10,
                raw_length: 20,
            },
        };
        let (name, bytes) = encode_index_file(&[location], &keys).unwrap();
        assert_eq!(name, Id::of(&bytes));
        assert!(!bytes.windows(32).any(|window| window == [9u8; 32]));
        assert_eq!(
            decode_index_file("x", &bytes, &keys).unwrap(),
            vec![location]
        );
        let mut tampered = bytes.clone();
        tampered[30] ^= 1;
        assert!(matches!(
            decode_index_file("x", &tampered, &keys),
            Err(Error::AuthenticationFailed { .. })
        ));
    }
}
