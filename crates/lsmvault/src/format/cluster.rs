//! Cluster snapshot objects: the commit point of a cluster backup (and the
//! record of a cluster-wide restore point).
//!
//! A cluster snapshot is a small JSON document, sealed like a snapshot and
//! stored under the BLAKE3 hash of its stored bytes in `clusters/`. It
//! names the cluster's topology as it was, and per shard the member
//! snapshot, the database's last sequence number and how long that shard's
//! writes were paused. It is written after every member snapshot is
//! durable, so one that exists had all its members written (a later
//! `forget` of a member is what `cluster verify` reports).
//!
//! Invariant: a decoded cluster snapshot is of a known version, its
//! topology is valid, and it has at most one member per shard of that
//! topology (and none of another).

use std::collections::BTreeSet;
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use super::topology::{Role, Topology};
use crate::error::{Error, Result};
use crate::id::Id;
use crate::time::Timestamp;

/// Cluster snapshot format version (the `version` field); readers refuse any other.
pub const CLUSTER_SNAPSHOT_VERSION: u32 = 1;

/// 10000-01-01T00:00:00Z in seconds since the epoch: times from there on
/// cannot be printed as RFC 3339.
const LAST_PRINTABLE_SECOND: u64 = 253_402_300_800;

/// How long one shard's writes were paused, in its three steps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseFigures {
    /// Seconds from starting the freeze until it reported the writer paused
    /// (in a cluster backup: until every shard had, the barrier).
    pub freeze_seconds: f64,
    /// Seconds taking the hard-link checkpoint (or reading the sequence number).
    pub link_seconds: f64,
    /// Seconds the thaw took.
    pub thaw_seconds: f64,
}

impl PauseFigures {
    /// The shard's whole pause.
    pub fn total_seconds(&self) -> f64 {
        self.freeze_seconds + self.link_seconds + self.thaw_seconds
    }
}

/// One shard's part of a cluster snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterMember {
    /// The shard's name in the topology.
    pub shard: String,
    /// Its group (as in the topology, repeated for readers of this alone).
    pub group: String,
    /// Its role (likewise).
    pub role: Role,
    /// The member snapshot holding the shard's data (absent for a restore
    /// point that copied no data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Id>,
    /// The database's last sequence number at the cut, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// How long the shard's writes were paused.
    pub pause: PauseFigures,
}

/// The contents of a cluster snapshot object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// [`CLUSTER_SNAPSHOT_VERSION`].
    pub version: u32,
    /// The cluster's name (the topology's).
    pub cluster: String,
    /// When the cut was taken (RFC 3339, UTC, nanoseconds).
    pub time: Timestamp,
    /// The name given to this cut (`cluster backup --tag`, `cluster tag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The topology as it was.
    pub topology: Topology,
    /// One per shard that took part, in topology order.
    pub members: Vec<ClusterMember>,
    /// Seconds from the first freeze starting until the last thaw ended:
    /// the longest any write could have waited.
    pub pause_seconds: f64,
    /// Name and version of the program that wrote it (`lsmvault 0.1.0`).
    pub program: String,
}

/// A cluster snapshot with its id (the hash of its stored bytes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterEntry {
    /// Its id.
    pub id: Id,
    /// Its contents.
    #[serde(flatten)]
    pub snapshot: ClusterSnapshot,
}

impl ClusterSnapshot {
    /// A cluster snapshot of `topology` taken at `time`, written by this build.
    pub fn new(topology: Topology, time: Timestamp, members: Vec<ClusterMember>) -> Self {
        ClusterSnapshot {
            version: CLUSTER_SNAPSHOT_VERSION,
            cluster: topology.name.clone(),
            time,
            tag: None,
            topology,
            members,
            pause_seconds: 0.0,
            program: format!("lsmvault {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// The pretty-printed JSON of the object, before sealing.
    pub fn encode(&self) -> Vec<u8> {
        // Plain data with string keys always serializes.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses a cluster snapshot's JSON (already opened when encrypted),
    /// refusing an unknown version and a member the topology does not
    /// have; `name` identifies it in errors.
    pub fn decode(name: &str, bytes: &[u8]) -> Result<ClusterSnapshot> {
        #[derive(Deserialize)]
        struct VersionOnly {
            version: u32,
        }
        let object = || format!("cluster snapshot {name}");
        let version: VersionOnly = serde_json::from_slice(bytes)
            .map_err(|error| Error::corrupt(object(), error.to_string()))?;
        if version.version != CLUSTER_SNAPSHOT_VERSION {
            return Err(Error::UnsupportedVersion {
                object: object(),
                found: version.version,
                supported: CLUSTER_SNAPSHOT_VERSION,
            });
        }
        let snapshot: ClusterSnapshot = serde_json::from_slice(bytes)
            .map_err(|error| Error::corrupt(object(), error.to_string()))?;
        snapshot
            .check()
            .map_err(|reason| Error::corrupt(object(), reason))?;
        Ok(snapshot)
    }

    /// What makes a parsed object inconsistent, if anything.
    fn check(&self) -> std::result::Result<(), String> {
        if let Some(problem) = self.topology.problems().first() {
            return Err(format!("its topology is invalid: {problem}"));
        }
        // RFC 3339 text can name times that `Timestamp` reads but cannot
        // print (before 1970, after 9999): encoding such an object again,
        // or listing it with --json, would panic.
        let since_epoch = self.time.system_time().duration_since(UNIX_EPOCH);
        if !since_epoch.is_ok_and(|since| since.as_secs() < LAST_PRINTABLE_SECOND) {
            return Err("time is before 1970 or after 9999".to_string());
        }
        if self.cluster != self.topology.name {
            return Err(format!(
                "cluster {:?} is not its topology's name {:?}",
                self.cluster, self.topology.name
            ));
        }
        let mut seen = BTreeSet::new();
        for member in &self.members {
            let shard = self
                .topology
                .shards
                .iter()
                .find(|shard| shard.name == member.shard)
                .ok_or_else(|| format!("member {:?} is no shard of its topology", member.shard))?;
            if !seen.insert(member.shard.as_str()) {
                return Err(format!("shard {:?} has two members", member.shard));
            }
            if shard.group != member.group || shard.role != member.role {
                return Err(format!(
                    "member {:?}: group or role differs from its topology's",
                    member.shard
                ));
            }
        }
        Ok(())
    }

    /// The groups every one of whose shards has a member snapshot, and
    /// those that lack some (by name): the completeness the listing shows.
    pub fn complete_groups(&self) -> (Vec<&str>, Vec<&str>) {
        let has_member = |shard: &str| {
            self.members
                .iter()
                .any(|member| member.shard == shard && member.snapshot.is_some())
        };
        self.topology
            .groups
            .keys()
            .map(String::as_str)
            .partition(|group| {
                self.topology
                    .group_shards(group)
                    .all(|shard| has_member(&shard.name))
            })
    }
}

/// Sorts cluster snapshots oldest first (ties by id), as listings show them.
pub fn sort_by_time(entries: &mut [ClusterEntry]) {
    entries.sort_by_key(|entry| (entry.snapshot.time, entry.id));
}

#[cfg(test)]
mod tests;
