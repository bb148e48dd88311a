//! Cluster snapshot objects (`clusters/`): publishing, listing and reading
//! them (checked against their names, opened when encrypted).
//!
//! Containment, as for snapshots: a damaged cluster snapshot blocks no
//! other; listings return it beside the intact ones, named with why.
//! Publishing is the commit point of a cluster backup: the caller writes
//! the cluster snapshot last, after every member snapshot.

use crate::backend::ObjectKind;
use crate::codec::crypto::SealKind;
use crate::error::{Error, Result};
use crate::format::cluster::{self, ClusterEntry, ClusterSnapshot};
use crate::id::Id;
use crate::repo::{check_name, DamagedObject, Repository};

/// Intact cluster snapshots (oldest first) and the damaged ones (by name).
pub type CheckedClusterSnapshots = (Vec<ClusterEntry>, Vec<DamagedObject>);

impl Repository {
    /// Publishes a cluster snapshot (the commit point of a cluster backup).
    pub fn write_cluster_snapshot(&self, snapshot: &ClusterSnapshot) -> Result<Id> {
        let stored = self
            .keys()
            .seal(SealKind::ClusterSnapshot, &snapshot.encode())?
            .into_owned();
        let id = Id::of(&stored);
        self.backend()
            .write_if_absent(ObjectKind::Cluster, &id.to_hex(), &stored)?;
        Ok(id)
    }

    /// Every intact cluster snapshot, oldest first, and beside them the
    /// damaged ones (or of a newer version), named with why. Fails only
    /// when the storage does. A repository written by a build without
    /// cluster snapshots has none.
    pub fn cluster_snapshots_checked(&self) -> Result<CheckedClusterSnapshots> {
        let (mut entries, damaged) =
            self.read_every_object(ObjectKind::Cluster, |name| self.read_cluster_snapshot(name))?;
        // Under a key from the metadata cache, another repository's objects
        // would all look damaged: make sure the location is still ours.
        if !damaged.is_empty() {
            self.confirm_cache()?;
        }
        cluster::sort_by_time(&mut entries);
        Ok((entries, damaged))
    }

    /// Reads one cluster snapshot by its full name: opened, checked against
    /// the name, parsed.
    pub fn read_cluster_snapshot(&self, name: &str) -> Result<ClusterEntry> {
        let stored = self.backend().read(ObjectKind::Cluster, name)?;
        let describe = || ObjectKind::Cluster.describe(name);
        let json = self
            .keys()
            .open(SealKind::ClusterSnapshot, &stored, describe)?;
        let id = check_name(ObjectKind::Cluster, name, &stored)?;
        Ok(ClusterEntry {
            id,
            snapshot: ClusterSnapshot::decode(name, &json)?,
        })
    }

    /// The cluster snapshot whose id starts with `prefix` (hex, any case).
    /// Fails with [`Error::SnapshotNotFound`] when none does,
    /// [`Error::AmbiguousPrefix`] when several do, and
    /// [`Error::DamagedSnapshot`] when the one it names cannot be read.
    pub fn find_cluster_snapshot(&self, prefix: &str) -> Result<ClusterEntry> {
        let wanted = prefix.to_ascii_lowercase();
        let hex = !wanted.is_empty() && wanted.bytes().all(|byte| byte.is_ascii_hexdigit());
        let listed = self.backend().list(ObjectKind::Cluster)?;
        let matches: Vec<&str> = listed
            .iter()
            .map(|object| object.name.as_str())
            .filter(|name| hex && name.to_ascii_lowercase().starts_with(&wanted))
            .collect();
        match matches.as_slice() {
            [] => Err(Error::SnapshotNotFound {
                selector: format!("cluster snapshot {prefix}"),
            }),
            [name] => self.read_cluster_snapshot(name).map_err(|error| {
                if error.is_damage() {
                    Error::DamagedSnapshot {
                        name: name.to_string(),
                        reason: error.to_string(),
                        code: error.code(),
                    }
                } else {
                    error
                }
            }),
            several => Err(Error::AmbiguousPrefix {
                prefix: prefix.to_string(),
                candidates: several
                    .iter()
                    .map(|name| name.chars().take(8).collect::<String>())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }
}
