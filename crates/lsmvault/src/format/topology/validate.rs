//! The checks of [`Topology::problems`]: each shard on its own (name,
//! group, location, pause method), the shards together (unique names and
//! locations), each group against its scheme. Every problem is collected,
//! not only the first, so one `--check` names all of them.

use std::collections::{BTreeMap, BTreeSet};

use super::{problem, Group, Role, Scheme, Shard, Topology, TopologyProblem, COMMAND_PLACEHOLDER};

/// Longest shard name: one path component on every common file system.
const MAX_SHARD_NAME_BYTES: usize = 255;

impl Topology {
    /// Every problem of the topology, in file order (empty: valid).
    pub fn problems(&self) -> Vec<TopologyProblem> {
        let mut problems = Vec::new();
        if self.name.trim().is_empty() || self.name.chars().any(char::is_control) {
            problems.push(problem(
                None,
                format!(
                    "cluster name {:?} is empty or has control characters",
                    self.name
                ),
                "give `name` a printable value",
            ));
        }
        if self.shards.is_empty() {
            problems.push(problem(
                None,
                "the cluster has no shards".to_string(),
                "add a [[shards]] table per database",
            ));
        }
        let mut names = BTreeSet::new();
        let mut locations = BTreeSet::new();
        for shard in &self.shards {
            if !names.insert(shard.name.as_str()) {
                problems.push(problem(
                    Some(&shard.name),
                    "the name is used by more than one shard".to_string(),
                    "give every shard its own name: restores write each into DIR/<name>",
                ));
            }
            if !locations.insert((shard.host.as_deref(), shard.path.as_str())) {
                problems.push(problem(
                    Some(&shard.name),
                    "its host and path are another shard's too".to_string(),
                    "every shard is a database directory of its own: fix `path` or `host`",
                ));
            }
            problems.extend(shard_problems(shard, &self.groups));
        }
        for (name, group) in &self.groups {
            if name.is_empty() || name.chars().any(char::is_control) {
                problems.push(problem(
                    None,
                    format!("group name {name:?} is empty or has control characters"),
                    "name each group with printable characters",
                ));
            }
            problems.extend(group_problems(name, group.scheme, &self.shards));
        }
        problems
    }
}

/// Why `name` cannot be a shard's directory name, if it cannot.
pub fn unusable_shard_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name == "." || name == ".." {
        Some("is `.` or `..`")
    } else if name.contains('/') || name.contains('\\') {
        Some("contains a slash")
    } else if name.chars().any(char::is_control) {
        Some("contains a control character")
    } else if name.len() > MAX_SHARD_NAME_BYTES {
        Some("is longer than 255 bytes")
    } else {
        None
    }
}

/// The problems of one shard on its own (its name, group, location, pause).
fn shard_problems(shard: &Shard, groups: &BTreeMap<String, Group>) -> Vec<TopologyProblem> {
    let name = Some(shard.name.as_str());
    let mut problems = Vec::new();
    if let Some(why) = unusable_shard_name(&shard.name) {
        problems.push(problem(
            name,
            format!("the name {why}, so it cannot be a directory name"),
            "use letters, digits, `-`, `_` or `.`: restores write each shard into DIR/<name>",
        ));
    }
    match groups.get(&shard.group) {
        None => problems.push(problem(
            name,
            format!("unknown group {:?}", shard.group),
            &format!(
                "declare it as [groups.{}] with a scheme, or use one of: {}",
                shard.group,
                groups.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )),
        Some(group) if shard.role == Role::Parity && group.scheme.parity_shards() == 0 => problems
            .push(problem(
                name,
                format!(
                    "role \"parity\" in group {:?}, whose scheme {} has no parity",
                    shard.group,
                    group.scheme.name()
                ),
                "use role = \"data\", or a raid5/raid6 group",
            )),
        Some(_) => {}
    }
    problems.extend(location_problems(shard));
    problems.extend(pause_problems(shard));
    problems
}

fn location_problems(shard: &Shard) -> Vec<TopologyProblem> {
    let name = Some(shard.name.as_str());
    let mut problems = Vec::new();
    if !shard.path.starts_with('/') {
        problems.push(problem(
            name,
            format!("path {:?} is not absolute", shard.path),
            "give the database directory's absolute path (on its host, if it has one)",
        ));
    }
    match (&shard.host, &shard.remote_command) {
        // A leading `-` would reach ssh as an option (`-oProxyCommand=...`).
        (Some(host), _)
            if host.is_empty()
                || host.starts_with('-')
                || host.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            problems.push(problem(
                name,
                format!(
                    "host {host:?} is empty, starts with `-` or has spaces or control characters"
                ),
                "give a host name or address as ssh takes it",
            ))
        }
        (None, Some(_)) => problems.push(problem(
            name,
            "remote_command without host".to_string(),
            "add `host`, or remove `remote_command` for a local shard",
        )),
        (Some(_), Some(template)) if !template.contains(COMMAND_PLACEHOLDER) => {
            problems.push(problem(
                name,
                format!("remote_command {template:?} lacks {COMMAND_PLACEHOLDER}"),
                "write it like \"ssh {host} {command}\"",
            ))
        }
        _ => {}
    }
    problems
}

fn pause_problems(shard: &Shard) -> Vec<TopologyProblem> {
    let name = Some(shard.name.as_str());
    let commands = shard.freeze.is_some() || shard.thaw.is_some();
    let methods = [
        commands,
        shard.pid_file.is_some(),
        shard.pause_file.is_some(),
    ];
    let mut problems = Vec::new();
    if shard.freeze.is_some() != shard.thaw.is_some() {
        problems.push(problem(
            name,
            "`freeze` without `thaw` (or the reverse)".to_string(),
            "give both commands: a freeze that is never undone leaves the writer paused",
        ));
    }
    if methods.iter().filter(|given| **given).count() > 1 {
        problems.push(problem(
            name,
            "more than one pause method (freeze/thaw, pid_file, pause_file)".to_string(),
            "keep exactly one of them",
        ));
    }
    for (key, value) in [("freeze", &shard.freeze), ("thaw", &shard.thaw)] {
        if value
            .as_deref()
            .is_some_and(|command| command.trim().is_empty())
        {
            problems.push(problem(
                name,
                format!("`{key}` is an empty command"),
                "give the command, or remove both `freeze` and `thaw`",
            ));
        }
    }
    for (key, value) in [
        ("pid_file", &shard.pid_file),
        ("pause_file", &shard.pause_file),
    ] {
        if value.as_deref().is_some_and(|path| !path.starts_with('/')) {
            problems.push(problem(
                name,
                format!("{key} is not an absolute path"),
                "give the file's absolute path (on the shard's host)",
            ));
        }
    }
    problems
}

/// The problems of group `name` as a whole: no shards, wrong parity count,
/// too few data shards.
fn group_problems(name: &str, scheme: Scheme, shards: &[Shard]) -> Vec<TopologyProblem> {
    let members: Vec<&Shard> = shards.iter().filter(|shard| shard.group == name).collect();
    let parity = members
        .iter()
        .filter(|shard| shard.role == Role::Parity)
        .count();
    let data = members.len() - parity;
    let group = |text: String, hint: &str| {
        problem(
            None,
            format!("group {name:?} ({}): {text}", scheme.name()),
            hint,
        )
    };
    let mut problems = Vec::new();
    if members.is_empty() {
        problems.push(group(
            "has no shards".to_string(),
            "remove the group, or set `group` on its shards",
        ));
        return problems;
    }
    let wanted = scheme.parity_shards();
    if wanted > 0 && parity != wanted {
        problems.push(group(
            format!("has {parity} parity shard(s), needs exactly {wanted}"),
            "set role = \"parity\" on exactly that many of its shards (raid5: 1, raid6: 2)",
        ));
    }
    if wanted > 0 && data < 2 {
        problems.push(group(
            format!("has {data} data shard(s), needs at least 2"),
            "with fewer data shards use scheme = \"replicated\"",
        ));
    }
    problems
}
