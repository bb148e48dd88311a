//! What state a database directory holds: its identity and the last
//! sequence number it contains (from the MANIFEST's version edits and the
//! records of its WAL segments).
//!
//! Only the version-edit fields that precede the file lists are decoded
//! (comparator, log numbers, next file number, last sequence, column-family
//! fields): RocksDB writes `kLastSequence` before any file entry, so an edit is
//! abandoned at the first tag this reader does not know, without guessing.

use std::fs;
use std::path::Path;

use crate::lsm::log::{read_log, sequence_ranges, RecordKind};
use crate::lsm::read_regular_file;

/// RocksDB's version-edit tag `kDbId`: the first forward-compatible tag,
/// `kTagSafeIgnoreMask (1 << 13) + 1`, followed by a length-prefixed id.
/// Written when `write_dbid_to_manifest` is set (the default from RocksDB 8.x).
const TAG_DB_ID: u64 = (1 << 13) + 1;

/// Where a snapshot's database identity came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentitySource {
    /// The directory's `IDENTITY` file.
    IdentityFile,
    /// The `kDbId` field of the MANIFEST (checkpoints without `IDENTITY`).
    Manifest,
    /// Given by the operator (`backup --database-id`).
    Operator,
}

/// Identity and sequence state of a database directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DatabaseState {
    /// The database's identity (RocksDB's `IDENTITY` UUID, or the MANIFEST's
    /// DB id, or the operator's `--database-id`), when known.
    pub id: Option<String>,
    /// Where [`DatabaseState::id`] came from (absent in snapshots written
    /// before it was recorded, which only read `IDENTITY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_source: Option<IdentitySource>,
    /// The newest sequence number the directory holds, when known.
    pub last_sequence: Option<u64>,
}

fn varint(bytes: &[u8], position: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*position)?;
        *position += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn skip_slice(bytes: &[u8], position: &mut usize) -> Option<()> {
    let length = usize::try_from(varint(bytes, position)?).ok()?;
    *position = position
        .checked_add(length)
        .filter(|end| *end <= bytes.len())?;
    Some(())
}

/// The `kLastSequence` of one version edit, if it has one before any tag
/// this reader does not decode.
fn edit_last_sequence(edit: &[u8]) -> Option<u64> {
    let mut position = 0;
    let mut last = None;
    while position < edit.len() {
        let tag = varint(edit, &mut position)?;
        match tag {
            1 | 201 | TAG_DB_ID => skip_slice(edit, &mut position)?,
            2 | 3 | 9 | 10 => {
                varint(edit, &mut position)?;
            }
            4 => last = Some(varint(edit, &mut position)?),
            5 => {
                varint(edit, &mut position)?;
                skip_slice(edit, &mut position)?;
            }
            200 | 203 | 300 => {
                varint(edit, &mut position)?;
            }
            202 => {}
            _ => break,
        }
    }
    last
}

/// The `kDbId` of one version edit, if it has one before any tag this reader
/// does not decode.
fn edit_db_id(edit: &[u8]) -> Option<String> {
    let mut position = 0;
    while position < edit.len() {
        let tag = varint(edit, &mut position)?;
        match tag {
            TAG_DB_ID => {
                let length = usize::try_from(varint(edit, &mut position)?).ok()?;
                let end = position
                    .checked_add(length)
                    .filter(|end| *end <= edit.len())?;
                let id = std::str::from_utf8(&edit[position..end]).ok()?.trim();
                return (!id.is_empty()).then(|| id.to_string());
            }
            1 | 201 => skip_slice(edit, &mut position)?,
            2 | 3 | 4 | 9 | 10 | 200 | 203 | 300 => {
                varint(edit, &mut position)?;
            }
            5 => {
                varint(edit, &mut position)?;
                skip_slice(edit, &mut position)?;
            }
            202 => {}
            _ => return None,
        }
    }
    None
}

/// The DB id a MANIFEST records (RocksDB's `kDbId`), if any.
pub fn manifest_db_id(manifest: &[u8]) -> Option<String> {
    read_log(manifest, None)
        .records
        .iter()
        .filter(|record| record.kind == RecordKind::Data)
        .find_map(|record| edit_db_id(&record.payload))
}

/// The largest last sequence number recorded in a MANIFEST's version edits.
pub fn manifest_last_sequence(manifest: &[u8]) -> Option<u64> {
    read_log(manifest, None)
        .records
        .iter()
        .filter(|record| record.kind == RecordKind::Data)
        .filter_map(|record| edit_last_sequence(&record.payload))
        .max()
}

impl DatabaseState {
    /// Reads `IDENTITY`, the MANIFEST named by `CURRENT`, and the `*.log`
    /// segments of `directory`. Missing or unreadable parts leave fields `None`.
    pub fn read(directory: &Path) -> DatabaseState {
        let identity_file = fs::read_to_string(directory.join("IDENTITY"))
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty());
        let manifest = fs::read_to_string(directory.join("CURRENT"))
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| name.starts_with("MANIFEST-") && !name.contains('/'))
            .and_then(|name| fs::read(directory.join(name)).ok());
        let manifest_sequence = manifest.as_deref().and_then(manifest_last_sequence);
        let (id, id_source) = match identity_file {
            Some(id) => (Some(id), Some(IdentitySource::IdentityFile)),
            None => match manifest.as_deref().and_then(manifest_db_id) {
                Some(id) => (Some(id), Some(IdentitySource::Manifest)),
                None => (None, None),
            },
        };
        let wal_sequence = fs::read_dir(directory)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
            // Never a symlink (to /dev/zero, say) or FIFO named like a segment.
            .filter_map(|entry| read_regular_file(&entry.path()).ok().flatten())
            .filter_map(|bytes| sequence_ranges(&bytes, None).ok())
            .flat_map(|(ranges, _)| ranges.into_iter().filter_map(|range| range.last_sequence()))
            .max();
        DatabaseState {
            id,
            id_source,
            last_sequence: manifest_sequence.max(wal_sequence),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lsm::log::encode_log;
    use proptest::prelude::*;

    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn edit(fields: &[(u64, Option<u64>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (tag, value) in fields {
            put_varint(&mut out, *tag);
            match (tag, value) {
                (1, _) => {
                    let name = b"leveldb.BytewiseComparator";
                    put_varint(&mut out, name.len() as u64);
                    out.extend_from_slice(name);
                }
                (_, Some(value)) => put_varint(&mut out, *value),
                (_, None) => {}
            }
        }
        out
    }

    #[test]
    fn last_sequence_is_the_largest_of_all_edits() {
        let manifest = encode_log(
            &[
                edit(&[(1, None), (2, Some(5)), (3, Some(7)), (4, Some(100))]),
                edit(&[
                    (2, Some(9)),
                    (9, Some(0)),
                    (3, Some(12)),
                    (4, Some(250)),
                    (103, Some(1)),
                ]),
                // An edit this reader stops in before any last sequence.
                edit(&[(103, Some(4)), (4, Some(999))]),
            ],
            None,
        );
        assert_eq!(manifest_last_sequence(&manifest), Some(250));
        assert_eq!(manifest_last_sequence(b"not a manifest"), None);
    }

    #[test]
    fn database_state_of_a_directory() {
        let work = tempfile::tempdir().unwrap();
        let db = work.path();
        fs::write(db.join("IDENTITY"), "c0ffee-uuid\n").unwrap();
        fs::write(db.join("CURRENT"), "MANIFEST-000005\n").unwrap();
        fs::write(
            db.join("MANIFEST-000005"),
            encode_log(&[edit(&[(4, Some(40))])], None),
        )
        .unwrap();
        let batch = crate::lsm::write_batch::encode_write_batch(41, 3, &[]);
        fs::write(db.join("000007.log"), encode_log(&[batch], None)).unwrap();
        let state = DatabaseState::read(db);
        assert_eq!(state.id.as_deref(), Some("c0ffee-uuid"));
        assert_eq!(state.last_sequence, Some(43));
        assert_eq!(
            DatabaseState::read(&db.join("missing")),
            DatabaseState::default()
        );
    }

    fn db_id_edit(id: &str) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, TAG_DB_ID);
        put_varint(&mut out, id.len() as u64);
        out.extend_from_slice(id.as_bytes());
        out
    }

    #[test]
    fn a_checkpoint_without_identity_is_identified_by_the_manifest_db_id() {
        let work = tempfile::tempdir().unwrap();
        let db = work.path();
        fs::write(db.join("CURRENT"), "MANIFEST-000005\n").unwrap();
        let mut first = db_id_edit("feed-uuid");
        first.extend_from_slice(&edit(&[(4, Some(40))]));
        fs::write(
            db.join("MANIFEST-000005"),
            encode_log(&[first, edit(&[(4, Some(44))])], None),
        )
        .unwrap();
        let state = DatabaseState::read(db);
        assert_eq!(state.id.as_deref(), Some("feed-uuid"));
        assert_eq!(state.id_source, Some(IdentitySource::Manifest));
        assert_eq!(
            state.last_sequence,
            Some(44),
            "kDbId is skipped, not a stop"
        );
        // An IDENTITY file wins over the MANIFEST.
        fs::write(db.join("IDENTITY"), "c0ffee-uuid\n").unwrap();
        let state = DatabaseState::read(db);
        assert_eq!(state.id.as_deref(), Some("c0ffee-uuid"));
        assert_eq!(state.id_source, Some(IdentitySource::IdentityFile));
        // A truncated id is no id.
        let mut truncated = db_id_edit("feed-uuid");
        truncated.truncate(6);
        assert_eq!(manifest_db_id(&encode_log(&[truncated], None)), None);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = edit_db_id(&bytes);
            let _ = edit_last_sequence(&bytes);
            let _ = manifest_last_sequence(&bytes);
        }
    }
}
