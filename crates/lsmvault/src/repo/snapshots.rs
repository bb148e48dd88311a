//! Snapshot files: listing, reading (checked against their names), selecting
//! (`latest`, `latest:TAG`, id prefixes) and publishing them.

use rayon::prelude::*;

use crate::backend::ObjectKind;
use crate::codec::crypto::SealKind;
use crate::error::Result;
use crate::format::snapshot::{self, Snapshot, SnapshotEntry};
use crate::id::Id;
use crate::repo::{check_name, Repository};

impl Repository {
    /// Every snapshot, oldest first.
    pub fn snapshots(&self) -> Result<Vec<SnapshotEntry>> {
        let files = self.backend.list(ObjectKind::Snapshot)?;
        let mut entries: Vec<SnapshotEntry> = files
            .par_iter()
            .map(|file| self.read_snapshot(&file.name))
            .collect::<Result<_>>()?;
        snapshot::sort_by_time(&mut entries);
        Ok(entries)
    }

    /// Reads one snapshot file by its full name, checking its id.
    pub fn read_snapshot(&self, name: &str) -> Result<SnapshotEntry> {
        let bytes = self.backend.read(ObjectKind::Snapshot, name)?;
        let json = self
            .keys
            .open(SealKind::Snapshot, &bytes, || format!("snapshot {name}"))?;
        let id = check_name(ObjectKind::Snapshot, name, &bytes)?;
        Ok(SnapshotEntry {
            id,
            snapshot: Snapshot::decode(name, &json)?,
        })
    }

    /// Resolves an id, unique prefix, `latest` or `latest:TAG`.
    pub fn find_snapshot(&self, selector: &str) -> Result<SnapshotEntry> {
        let snapshots = self.snapshots()?;
        snapshot::select(&snapshots, selector).cloned()
    }

    /// Publishes a snapshot file (the commit point of a backup).
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<Id> {
        let bytes = self
            .keys
            .seal(SealKind::Snapshot, &snapshot.encode())?
            .into_owned();
        let id = Id::of(&bytes);
        self.backend
            .write_if_absent(ObjectKind::Snapshot, &id.to_hex(), &bytes)?;
        Ok(id)
    }
}
