//! A topology from ThemisDB's environment variables (the RAID5/6 backup
//! guide in the project's seeds): `THEMIS_RAID_GROUP` (the group, e.g.
//! `raid5`), `THEMIS_SHARD_ID` (this machine's shard, e.g. `raid5-1`) and
//! `THEMIS_SHARDS` (every shard of the group, `host:port,host:port,...`).
//!
//! Where ThemisDB leaves things open, this module decides (docs/cluster.md
//! says the same):
//! - the group's name is `THEMIS_RAID_GROUP` lowercased; its scheme is the
//!   name's first word (`raid5`, `raid6`, `replicated`, `plain`; `raid5-east`
//!   is a raid5 group);
//! - a shard is named after its host (the port dropped); when two entries
//!   share a host, every shard is named `host-port` instead;
//! - the last entries are the parity shards (one for raid5, two for raid6),
//!   as in ThemisDB's manifest example;
//! - `THEMIS_SHARD_ID` names this machine's shard: an entry (`host:port`), a
//!   host, or a 1-based position as its last `-` word (`raid5-2`: the second
//!   entry). That shard is local; the others are reached through `host`;
//! - every shard's data is in the one `data_dir` the caller gives.

use super::{problem, Group, Role, Scheme, Shard, Topology, TopologyProblem};
use crate::error::Result;

/// The variables [`from_env`] reads, in the order it reads them.
pub const THEMIS_VARIABLES: [&str; 3] = ["THEMIS_RAID_GROUP", "THEMIS_SHARD_ID", "THEMIS_SHARDS"];

/// What the environment does not say.
#[derive(Debug, Clone, Default)]
pub struct EnvTopologyOptions {
    /// The cluster's name (default `themisdb-<group>`).
    pub name: Option<String>,
    /// The absolute path of every shard's database directory.
    pub data_dir: String,
    /// The remote shards' command template (default: `ssh {host} {command}`).
    pub remote_command: Option<String>,
}

/// What errors name as the topology's file.
const SOURCE: &str = "the THEMIS_* environment variables";

/// Builds (and validates) the topology the variables describe; `lookup`
/// reads one variable (`std::env::var(..).ok()` in the CLI).
pub fn from_env(
    lookup: impl Fn(&str) -> Option<String>,
    options: &EnvTopologyOptions,
) -> Result<Topology> {
    let fail = |problems: Vec<TopologyProblem>| super::invalid(SOURCE, &problems);
    let [group_variable, id_variable, shards_variable] = THEMIS_VARIABLES;
    let read = |variable: &str| {
        lookup(variable)
            .map(|value| value.trim().to_string())
            .filter(|value| !value.is_empty())
            .ok_or_else(|| {
                fail(vec![problem(
                    None,
                    format!("{variable} is not set"),
                    "set THEMIS_RAID_GROUP, THEMIS_SHARD_ID and THEMIS_SHARDS as ThemisDB does (docs/cluster.md)",
                )])
            })
    };
    let group = read(group_variable)?.to_ascii_lowercase();
    let shard_id = read(id_variable)?;
    let entries = parse_shards(&read(shards_variable)?).map_err(|bad| fail(vec![bad]))?;
    let scheme = scheme_of(&group).ok_or_else(|| {
        fail(vec![problem(
            None,
            format!("{group_variable}={group:?} names no known scheme"),
            "start it with raid5, raid6, replicated or plain",
        )])
    })?;
    let local = local_entry(&entries, &shard_id).ok_or_else(|| {
        let names: Vec<String> = entries.iter().map(|entry| entry.text.clone()).collect();
        fail(vec![problem(
            None,
            format!(
                "{id_variable}={shard_id:?} is none of THEMIS_SHARDS ({})",
                names.join(", ")
            ),
            "give an entry, its host, or its position (`raid5-2`: the second entry)",
        )])
    })?;
    let topology = build(group, scheme, &entries, local, options);
    topology.validate(SOURCE)?;
    Ok(topology)
}

/// One `THEMIS_SHARDS` entry.
struct Entry {
    text: String,
    host: String,
    port: Option<String>,
}

fn parse_shards(value: &str) -> std::result::Result<Vec<Entry>, TopologyProblem> {
    value
        .split(',')
        .map(str::trim)
        .map(|text| {
            if text.is_empty() {
                return Err(problem(
                    None,
                    format!("THEMIS_SHARDS={value:?} has an empty entry"),
                    "separate host:port entries by single commas",
                ));
            }
            let (host, port) = split_host_port(text);
            Ok(Entry {
                text: text.to_string(),
                host: host.to_string(),
                port: port.map(str::to_string),
            })
        })
        .collect()
}

/// `host:port`, `[v6::addr]:port`, or a bare host.
fn split_host_port(text: &str) -> (&str, Option<&str>) {
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            return (host, tail.strip_prefix(':'));
        }
    }
    match text.rsplit_once(':') {
        Some((host, port))
            if !host.contains(':')
                && !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit()) =>
        {
            (host, Some(port))
        }
        _ => (text, None),
    }
}

fn scheme_of(group: &str) -> Option<Scheme> {
    let word = group
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("");
    match word {
        "raid5" => Some(Scheme::Raid5),
        "raid6" => Some(Scheme::Raid6),
        "replicated" => Some(Scheme::Replicated),
        "plain" => Some(Scheme::Plain),
        _ => None,
    }
}

/// The position of the entry `shard_id` names (see the module docs).
fn local_entry(entries: &[Entry], shard_id: &str) -> Option<usize> {
    let by_name = entries
        .iter()
        .position(|entry| entry.text == shard_id || entry.host == shard_id);
    by_name.or_else(|| {
        let number: usize = shard_id.rsplit('-').next()?.parse().ok()?;
        (1..=entries.len()).contains(&number).then(|| number - 1)
    })
}

fn build(
    group: String,
    scheme: Scheme,
    entries: &[Entry],
    local: usize,
    options: &EnvTopologyOptions,
) -> Topology {
    let hosts_unique = entries.iter().enumerate().all(|(index, entry)| {
        entries[..index]
            .iter()
            .all(|other| other.host != entry.host)
    });
    let first_parity = entries.len().saturating_sub(scheme.parity_shards());
    let shards = entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let name = match (&entry.port, hosts_unique) {
                (Some(port), false) => format!("{}-{port}", entry.host),
                _ => entry.host.clone(),
            };
            let remote = index != local;
            Shard {
                name,
                group: group.clone(),
                role: if index >= first_parity {
                    Role::Parity
                } else {
                    Role::Data
                },
                path: options.data_dir.clone(),
                host: remote.then(|| entry.host.clone()),
                remote_command: options.remote_command.clone().filter(|_| remote),
                freeze: None,
                thaw: None,
                pid_file: None,
                pause_file: None,
            }
        })
        .collect();
    Topology {
        name: options
            .name
            .clone()
            .unwrap_or_else(|| format!("themisdb-{group}")),
        groups: [(group, Group { scheme })].into_iter().collect(),
        shards,
    }
}
