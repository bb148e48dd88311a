//! Reading and writing `wal/` objects (archived WAL segment versions and
//! restore points) and the archived content of a segment.
//!
//! Invariants: an object is opened (authenticated, when encrypted) and
//! checked against its name before it is parsed; a damaged object is named
//! and skipped by verify, the timeline and archiving, while prune (which
//! must know every chunk the archive needs) and point-in-time restore refuse
//! naming it; an archived segment's content is returned only when its
//! length and digest match its record.
//! Callers publish a record only after the blobs it names are indexed.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::backend::ObjectKind;
use crate::codec::compression::MAX_BLOB_SIZE;
use crate::codec::crypto::SealKind;
use crate::error::{Error, Result};
use crate::format::wal_object::{SegmentRecord, WalObject};
use crate::id::Id;
use crate::repo::{check_name, DamagedObject, Repository};

/// WAL objects that could be read, with their ids, and those that could not.
pub type CheckedWalObjects = (Vec<(Id, WalObject)>, Vec<DamagedObject>);

impl Repository {
    /// Every WAL object (segment versions and restore points), with its id;
    /// fails on the first that cannot be read. For callers that must know
    /// every chunk the archive needs (prune, point-in-time restore); the
    /// others use [`Repository::wal_objects_checked`]. An object deleted
    /// between the listing and its read (a `tag` that lost a race for its
    /// name removes its point; forget trims the archive) is simply gone.
    pub fn wal_objects(&self) -> Result<Vec<(Id, WalObject)>> {
        let listed = self.backend().list(ObjectKind::Wal)?;
        let read: Vec<Option<(Id, WalObject)>> = listed
            .par_iter()
            .map(|object| match self.read_wal_object(&object.name) {
                Err(Error::Backend(crate::backend::Error::NotFound { .. })) => Ok(None),
                other => other.map(Some),
            })
            .collect::<Result<_>>()?;
        Ok(read.into_iter().flatten().collect())
    }

    /// Every WAL object that can be read, and beside them those that cannot
    /// (damaged, or of a newer version), named with why: one damaged record
    /// takes down neither the timeline nor the archiving of the others.
    pub fn wal_objects_checked(&self) -> Result<CheckedWalObjects> {
        self.read_every_object(ObjectKind::Wal, |name| self.read_wal_object(name))
    }

    /// Reads, opens, checks against its name and parses one WAL object.
    pub(crate) fn read_wal_object(&self, name: &str) -> Result<(Id, WalObject)> {
        let stored = self.backend().read(ObjectKind::Wal, name)?;
        let describe = || ObjectKind::Wal.describe(name);
        let json = self.keys().open(SealKind::WalRecord, &stored, describe)?;
        let id = check_name(ObjectKind::Wal, name, &stored)?;
        let object = WalObject::decode(&json, describe)?;
        if let WalObject::Segment(record) = &object {
            check_declared_size(record, &describe())?;
        }
        Ok((id, object))
    }

    /// Publishes a WAL object (after the blobs it names are indexed).
    pub fn write_wal_object(&self, object: &WalObject) -> Result<Id> {
        let json = object.encode()?;
        let stored = self.keys().seal(SealKind::WalRecord, &json)?.into_owned();
        let id = Id::of(&stored);
        self.backend()
            .write_if_absent(ObjectKind::Wal, &id.to_hex(), &stored)?;
        Ok(id)
    }

    /// The newest readable archived version of each segment of
    /// `database_id`, by segment number. A damaged version is passed over:
    /// archiving writes the segment again, and the timeline falls back to
    /// an older version or shows the gap.
    pub fn latest_segments(&self, database_id: &str) -> Result<BTreeMap<u64, SegmentRecord>> {
        let mut latest: BTreeMap<u64, SegmentRecord> = BTreeMap::new();
        for (_, object) in self.wal_objects_checked()?.0 {
            if let WalObject::Segment(record) = object {
                if record.database_id == database_id {
                    keep_newest(&mut latest, record);
                }
            }
        }
        Ok(latest)
    }

    /// The content of an archived segment version, checked against its digest.
    pub fn read_segment(&self, record: &SegmentRecord) -> Result<Vec<u8>> {
        // The declared size is checked against the chunk count when the
        // record is read; the chunks' real lengths decide the rest.
        let expected = usize::try_from(record.size).unwrap_or(usize::MAX);
        let mut content = Vec::with_capacity(expected.min(PREALLOCATE_AT_MOST));
        for chunk in &record.chunks {
            content.extend_from_slice(&self.read_blob(chunk)?);
        }
        record.check_content(content.len() as u64, &self.keys().blob_id(&content))?;
        Ok(content)
    }
}

/// The most a segment read reserves before its chunks are read.
const PREALLOCATE_AT_MOST: usize = 64 << 20;

/// A record declaring more bytes than its chunks can hold is damaged (or
/// crafted: its size would otherwise win [`keep_newest`] and be allocated).
fn check_declared_size(record: &SegmentRecord, object: &str) -> Result<()> {
    let most = (record.chunks.len() as u64).saturating_mul(MAX_BLOB_SIZE as u64);
    if record.size > most {
        return Err(Error::corrupt(
            object.to_string(),
            format!(
                "declares {} bytes in {} chunks (at most {most})",
                record.size,
                record.chunks.len()
            ),
        ));
    }
    Ok(())
}

/// Adds `record` to the newest versions by segment number unless a version
/// already there is newer: the longest, the latest archived among equals.
pub fn keep_newest(latest: &mut BTreeMap<u64, SegmentRecord>, record: SegmentRecord) {
    let newer = latest
        .get(&record.segment)
        .is_none_or(|known| (record.size, &record.archived_at) > (known.size, &known.archived_at));
    if newer {
        latest.insert(record.segment, record);
    }
}
