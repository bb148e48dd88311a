//! Verify's check of one pack: its header against the index entries and,
//! when the pack is read whole (`--read-data`), its name and every blob's
//! content.
//!
//! Whole packs are read into one buffer per thread (a fresh 16 MiB buffer per
//! pack cost a page fault per 4 KiB); [`release_pack_buffers`] gives those
//! buffers back when the pass is over.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use crate::backend::ObjectKind;
use crate::error::Result;
use crate::format::pack::{self, PackEntry};
use crate::id::Id;
use crate::repo::{check_name, Repository};

thread_local! {
    /// The buffer whole packs are read into by this thread.
    static PACK_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// What one pack's check found (problems that do not stop the check).
#[derive(Default)]
pub(super) struct PackCheck {
    /// The pack's content does not hash to its name.
    pub(super) name_problem: Option<String>,
    /// The pack is a well-formed pack, but another one (its header lists
    /// none of the blobs the index places in it): every blob the index
    /// places in it is lost with it.
    pub(super) replaced: Option<String>,
    /// Blobs that are damaged or misplaced, with the problem.
    pub(super) damaged_blobs: Vec<(Id, String)>,
}

/// Frees the pack buffer of every thread of the pool. The pool's threads
/// outlive a verify (an embedding program keeps them), so their buffers would
/// otherwise stay allocated.
pub(super) fn release_pack_buffers() {
    rayon::broadcast(|_| PACK_BUFFER.with(|cell| cell.take()));
}

impl Repository {
    /// Checks one pack: header against the index entries, and with
    /// `read_whole` the pack's name and every blob's content. An error means
    /// the pack as a whole could not be read or parsed.
    pub(super) fn check_pack(
        &self,
        name: &str,
        size: u64,
        expected: &[PackEntry],
        read_whole: bool,
    ) -> Result<PackCheck> {
        let mut pack_buffer = PACK_BUFFER.with(|cell| cell.take());
        let checked = self.check_pack_with(name, size, expected, read_whole, &mut pack_buffer);
        PACK_BUFFER.with(|cell| cell.replace(pack_buffer));
        checked
    }

    fn check_pack_with(
        &self,
        name: &str,
        size: u64,
        expected: &[PackEntry],
        read_whole: bool,
        pack_buffer: &mut Vec<u8>,
    ) -> Result<PackCheck> {
        let mut check = PackCheck::default();
        let (entries, whole) = if read_whole {
            self.backend()
                .read_into(ObjectKind::Pack, name, pack_buffer)?;
            let bytes: &[u8] = pack_buffer;
            // A wrong name alone (a renamed or swapped pack) is reported, but the
            // blobs are still checked one by one so damage is pinned to them.
            check.name_problem = check_name(ObjectKind::Pack, name, bytes)
                .err()
                .map(|error| error.to_string());
            (pack::parse_pack(name, bytes, self.keys())?, Some(bytes))
        } else {
            (self.read_pack_header(name, size)?, None)
        };
        compare_with_index(&entries, expected, &mut check);
        let wrong_hash = whole.map(Id::of).filter(|actual| actual.to_hex() != name);
        check.replaced = replaced_by_another(&entries, expected, wrong_hash);
        if let Some(bytes) = whole {
            for entry in &entries {
                let start = entry.offset as usize;
                let stored = &bytes[start..start + entry.stored_length as usize];
                let object = || format!("blob {}", entry.id);
                if let Err(error) = self
                    .check_declared_length(entry, object)
                    .and_then(|()| pack::decode_blob(entry, stored, self.keys(), object))
                {
                    check.damaged_blobs.push((entry.id, error.to_string()));
                }
            }
        }
        Ok(check)
    }
}

/// Why a pack that parsed is taken for another pack under this name, if it
/// is: its header lists none of the blobs the index places in it. A
/// well-formed pack under a wrong name was replaced or swapped, not
/// truncated or bit-flipped (whose header still lists its blobs, or does not
/// parse). `wrong_hash` is what its content hashes to, when it was read
/// whole and that is not its name.
fn replaced_by_another(
    entries: &[PackEntry],
    expected: &[PackEntry],
    wrong_hash: Option<Id>,
) -> Option<String> {
    let listed: HashSet<Id> = entries.iter().map(|entry| entry.id).collect();
    if expected.is_empty() || expected.iter().any(|entry| listed.contains(&entry.id)) {
        return None;
    }
    let hash = wrong_hash
        .map(|actual| format!("its content hashes to {actual}, not to its name, and "))
        .unwrap_or_default();
    Some(format!(
        "{hash}its header lists none of the {} blob(s) the index places in it: another pack's content under this name (replaced or swapped?)",
        expected.len()
    ))
}

/// Each blob the index places in this pack must be in its header, at the
/// indexed place and size.
fn compare_with_index(entries: &[PackEntry], expected: &[PackEntry], check: &mut PackCheck) {
    let by_id: HashMap<Id, &PackEntry> = entries.iter().map(|entry| (entry.id, entry)).collect();
    for wanted in expected {
        match by_id.get(&wanted.id) {
            Some(found) if *found == wanted => {}
            Some(_) => check.damaged_blobs.push((
                wanted.id,
                "index and pack header disagree on its place or size".into(),
            )),
            None => check.damaged_blobs.push((
                wanted.id,
                "indexed, but the pack header does not list it".into(),
            )),
        }
    }
}
