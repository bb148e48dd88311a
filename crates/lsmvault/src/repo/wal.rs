//! Reading and writing `wal/` objects (archived WAL segment versions and
//! restore points) and the archived content of a segment.
//!
//! Invariants: an object is opened (authenticated, when encrypted) and
//! checked against its name before it is parsed; an archived segment's
//! content is returned only when its length and digest match its record.
//! Callers publish a record only after the blobs it names are indexed.

use std::collections::BTreeMap;

use rayon::prelude::*;

use crate::backend::ObjectKind;
use crate::codec::crypto::SealKind;
use crate::error::Result;
use crate::format::wal_object::{SegmentRecord, WalObject};
use crate::id::Id;
use crate::repo::{check_name, Repository};

impl Repository {
    /// Every WAL object (segment versions and restore points), with its id.
    pub fn wal_objects(&self) -> Result<Vec<(Id, WalObject)>> {
        let listed = self.backend().list(ObjectKind::Wal)?;
        listed
            .par_iter()
            .map(|object| {
                let stored = self.backend().read(ObjectKind::Wal, &object.name)?;
                let describe = || ObjectKind::Wal.describe(&object.name);
                let json = self.keys().open(SealKind::WalRecord, &stored, describe)?;
                let id = check_name(ObjectKind::Wal, &object.name, &stored)?;
                Ok((id, WalObject::decode(&json, describe)?))
            })
            .collect()
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

    /// The newest archived version of each segment of `database_id`, by segment number.
    pub fn latest_segments(&self, database_id: &str) -> Result<BTreeMap<u64, SegmentRecord>> {
        let mut latest: BTreeMap<u64, SegmentRecord> = BTreeMap::new();
        for (_, object) in self.wal_objects()? {
            if let WalObject::Segment(record) = object {
                if record.database_id != database_id {
                    continue;
                }
                let newer = latest.get(&record.segment).is_none_or(|known| {
                    (record.size, &record.archived_at) > (known.size, &known.archived_at)
                });
                if newer {
                    latest.insert(record.segment, record);
                }
            }
        }
        Ok(latest)
    }

    /// The content of an archived segment version, checked against its digest.
    pub fn read_segment(&self, record: &SegmentRecord) -> Result<Vec<u8>> {
        let mut content = Vec::with_capacity(record.size as usize);
        for chunk in &record.chunks {
            content.extend_from_slice(&self.read_blob(chunk)?);
        }
        record.check_content(content.len() as u64, &self.keys().blob_id(&content))?;
        Ok(content)
    }
}
