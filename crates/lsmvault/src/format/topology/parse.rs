//! From a parsed TOML table to a [`Topology`], one group and one shard at a
//! time: serde's messages (`missing field `path``, `unknown field `pathh``)
//! do not say where they are, so each is tied to the shard or group it
//! concerns (a shard without a usable `name` is named by its position).

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::{Table, Value};

use super::{problem, Group, Shard, Topology, TopologyProblem};

/// The hints of a key that is missing, unknown or of the wrong type: at
/// the top, in a shard, in a group.
const KEYS_HINT: &str =
    "the file has `name`, [groups.NAME] tables and [[shards]] tables (docs/cluster.md)";
const SHARD_HINT: &str = "a shard has `name`, `group`, `role` (data or parity) and `path`, optionally `host`, `remote_command` and one pause method (docs/cluster.md)";
const GROUP_HINT: &str = "a group has only `scheme`: raid5, raid6, replicated or plain";

/// The topology, when every part of it could be read, and the problems of
/// the parts that could not.
pub(super) fn from_table(mut table: Table) -> (Option<Topology>, Vec<TopologyProblem>) {
    let mut problems = Vec::new();
    let shards =
        take(&mut table, "shards", &mut problems).and_then(|value| shards(value, &mut problems));
    let groups =
        take(&mut table, "groups", &mut problems).and_then(|value| groups(value, &mut problems));
    let name = take(&mut table, "name", &mut problems).and_then(|value| match value {
        Value::String(name) => Some(name),
        other => {
            problems.push(problem(
                None,
                format!("`name` is a {}, not a string", other.type_str()),
                KEYS_HINT,
            ));
            None
        }
    });
    for key in table.keys() {
        problems.push(problem(None, format!("unknown key `{key}`"), KEYS_HINT));
    }
    match (name, groups, shards) {
        (Some(name), Some(groups), Some(shards)) => (
            Some(Topology {
                name,
                groups,
                shards,
            }),
            problems,
        ),
        _ => (None, problems),
    }
}

fn take(table: &mut Table, key: &str, problems: &mut Vec<TopologyProblem>) -> Option<Value> {
    let value = table.remove(key);
    if value.is_none() {
        problems.push(problem(None, format!("missing `{key}`"), KEYS_HINT));
    }
    value
}

fn shards(value: Value, problems: &mut Vec<TopologyProblem>) -> Option<Vec<Shard>> {
    let Value::Array(items) = value else {
        problems.push(problem(
            None,
            "`shards` is not a list of [[shards]] tables".to_string(),
            KEYS_HINT,
        ));
        return None;
    };
    let before = problems.len();
    let mut shards = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        let label = match item.get("name").and_then(Value::as_str) {
            Some(name) => name.to_string(),
            None => format!("#{}", index + 1),
        };
        match Shard::deserialize(item) {
            Ok(shard) => shards.push(shard),
            Err(error) => problems.push(problem(
                Some(&label),
                error.message().trim_end().to_string(),
                SHARD_HINT,
            )),
        }
    }
    (problems.len() == before).then_some(shards)
}

fn groups(value: Value, problems: &mut Vec<TopologyProblem>) -> Option<BTreeMap<String, Group>> {
    let Value::Table(table) = value else {
        problems.push(problem(
            None,
            "`groups` is not a table of [groups.NAME] tables".to_string(),
            KEYS_HINT,
        ));
        return None;
    };
    let before = problems.len();
    let mut groups = BTreeMap::new();
    for (name, item) in table {
        match Group::deserialize(item) {
            Ok(group) => {
                groups.insert(name, group);
            }
            Err(error) => problems.push(problem(
                None,
                format!("group {name:?}: {}", error.message().trim_end()),
                GROUP_HINT,
            )),
        }
    }
    (problems.len() == before).then_some(groups)
}
