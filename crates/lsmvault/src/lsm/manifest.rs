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

/// Identity and sequence state of a database directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct DatabaseState {
    /// RocksDB's `IDENTITY` (a UUID), when the directory has one.
    pub id: Option<String>,
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
            1 | 201 => skip_slice(edit, &mut position)?,
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
        let id = fs::read_to_string(directory.join("IDENTITY"))
            .ok()
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty());
        let manifest_sequence = fs::read_to_string(directory.join("CURRENT"))
            .ok()
            .map(|name| name.trim().to_string())
            .filter(|name| name.starts_with("MANIFEST-") && !name.contains('/'))
            .and_then(|name| fs::read(directory.join(name)).ok())
            .and_then(|bytes| manifest_last_sequence(&bytes));
        let wal_sequence = fs::read_dir(directory)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
            .filter_map(|entry| fs::read(entry.path()).ok())
            .filter_map(|bytes| sequence_ranges(&bytes, None).ok())
            .flat_map(|(ranges, _)| ranges.into_iter().filter_map(|range| range.last_sequence()))
            .max();
        DatabaseState {
            id,
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

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = edit_last_sequence(&bytes);
            let _ = manifest_last_sequence(&bytes);
        }
    }
}
