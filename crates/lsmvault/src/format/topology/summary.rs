//! What `cluster topology --check` reports about a valid topology: its
//! groups (scheme, data and parity shards, how many losses each survives)
//! and its shards (where, how paused).

use serde::Serialize;

use super::{Location, PauseMethod, Role, Topology};

/// A topology in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologySummary {
    /// The cluster's name.
    pub name: String,
    /// Every group, by name.
    pub groups: Vec<GroupSummary>,
    /// Every shard, in file order.
    pub shards: Vec<ShardSummary>,
}

/// One group in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupSummary {
    /// Its name.
    pub name: String,
    /// Its scheme (`raid5`, `raid6`, `replicated`, `plain`).
    pub scheme: &'static str,
    /// Its data shards, in file order.
    pub data: Vec<String>,
    /// Its parity shards, in file order.
    pub parity: Vec<String>,
    /// How many of its shards may be lost with its data still recoverable.
    pub tolerated_failures: usize,
}

/// One shard in brief.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardSummary {
    /// Its name.
    pub name: String,
    /// Its group.
    pub group: String,
    /// `data` or `parity`.
    pub role: Role,
    /// `PATH` or `HOST:PATH`.
    pub location: String,
    /// How its writer is paused, in words (`none` when it is not).
    pub pause: String,
}

impl Topology {
    /// The topology in brief.
    pub fn summary(&self) -> TopologySummary {
        let names = |group: &str, role: Role| -> Vec<String> {
            self.group_shards(group)
                .filter(|shard| shard.role == role)
                .map(|shard| shard.name.clone())
                .collect()
        };
        let groups = self
            .groups
            .iter()
            .map(|(name, group)| GroupSummary {
                name: name.clone(),
                scheme: group.scheme.name(),
                data: names(name, Role::Data),
                parity: names(name, Role::Parity),
                tolerated_failures: group
                    .scheme
                    .tolerated_failures(self.group_shards(name).count()),
            })
            .collect();
        let shards = self
            .shards
            .iter()
            .map(|shard| ShardSummary {
                name: shard.name.clone(),
                group: shard.group.clone(),
                role: shard.role,
                location: match shard.location() {
                    Location::Local { path } => path.to_string(),
                    Location::Remote { host, path, .. } => format!("{host}:{path}"),
                },
                pause: shard.pause().to_string(),
            })
            .collect();
        TopologySummary {
            name: self.name.clone(),
            groups,
            shards,
        }
    }

    /// The shards whose writers are not paused ([`PauseMethod::None`]).
    pub fn unpaused_shards(&self) -> Vec<&str> {
        self.shards
            .iter()
            .filter(|shard| shard.pause() == PauseMethod::None)
            .map(|shard| shard.name.as_str())
            .collect()
    }
}
