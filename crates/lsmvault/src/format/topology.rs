//! Cluster topology files: which shards make up a cluster, where each one's
//! data is, how its writes are paused, and how shards form groups with a
//! redundancy scheme (RAID5/6 parity, replication, none). Pure data and
//! validation: nothing here runs a command or touches a shard.
//!
//! The file is TOML (docs/cluster.md has the format and a full example);
//! the same structure, as JSON, is embedded in every cluster snapshot
//! ([`super::cluster`]), so a snapshot says what the cluster was.
//!
//! Invariant: a [`Topology`] handed out by [`Topology::parse`] or
//! [`from_env`] (or checked by [`Topology::validate`]) has at least one
//! shard, unique shard names that are each usable as one directory name
//! (restores write `DIR/<shard>`), one shard per host and path, absolute
//! paths, every shard in a declared group, every group with shards, each
//! group's parity count what its scheme demands, and at most one complete
//! pause method per shard (see `validate.rs` for every check). Unknown keys are refused rather than ignored: a
//! misspelt `pid_fle` must not silently leave a shard unpaused.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod env;
mod parse;
mod summary;
mod validate;

pub use env::{from_env, EnvTopologyOptions, THEMIS_VARIABLES};
pub use summary::{GroupSummary, ShardSummary, TopologySummary};
pub use validate::unusable_shard_name;

/// How command templates name the host and the command to run there.
pub const HOST_PLACEHOLDER: &str = "{host}";
/// See [`HOST_PLACEHOLDER`].
pub const COMMAND_PLACEHOLDER: &str = "{command}";
/// The template of a shard with a `host` and no `remote_command`.
pub const DEFAULT_REMOTE_COMMAND: &str = "ssh {host} {command}";

/// A cluster: its name, its groups by name, its shards in file order (a
/// shard's position within its group is its index, as ThemisDB numbers them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// The cluster's name (listed by `cluster ls`).
    pub name: String,
    /// Every group, by name.
    pub groups: BTreeMap<String, Group>,
    /// Every shard.
    pub shards: Vec<Shard>,
}

/// A group of shards that protect each other's data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// How the group's shards relate.
    pub scheme: Scheme,
}

/// A group's redundancy scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// n ≥ 2 data shards and exactly one parity shard: survives one loss.
    Raid5,
    /// n ≥ 2 data shards and exactly two parity shards: survives two losses.
    Raid6,
    /// Every shard holds all the group's data: survives all but one loss.
    Replicated,
    /// Shards hold disjoint data without redundancy: survives no loss.
    Plain,
}

impl Scheme {
    /// How many parity shards the scheme requires (0: the scheme has no parity role).
    pub fn parity_shards(self) -> usize {
        match self {
            Scheme::Raid5 => 1,
            Scheme::Raid6 => 2,
            Scheme::Replicated | Scheme::Plain => 0,
        }
    }

    /// How many of a group's `shards` may be lost with its data still recoverable.
    pub fn tolerated_failures(self, shards: usize) -> usize {
        match self {
            Scheme::Raid5 | Scheme::Raid6 => self.parity_shards(),
            Scheme::Replicated => shards.saturating_sub(1),
            Scheme::Plain => 0,
        }
    }

    /// The scheme's name as written in the file.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Raid5 => "raid5",
            Scheme::Raid6 => "raid6",
            Scheme::Replicated => "replicated",
            Scheme::Plain => "plain",
        }
    }
}

/// What a shard holds within its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Data (in replicated and plain groups, every shard).
    Data,
    /// Parity over the group's data shards (raid5, raid6).
    Parity,
}

/// One shard: a database directory, local or on a host, and how its writer
/// is paused. Paths are strings: the file is UTF-8, and a remote path is
/// never a path of this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shard {
    /// Unique within the cluster; the directory name a restore gives it.
    pub name: String,
    /// The name of its group (a key of [`Topology::groups`]).
    pub group: String,
    /// Data or parity.
    pub role: Role,
    /// Absolute path of the database directory (on `host`, when given).
    pub path: String,
    /// The host the database runs on; absent: this machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How a command runs on `host`: a template with `{command}` and
    /// usually `{host}` (default [`DEFAULT_REMOTE_COMMAND`]). Only with `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_command: Option<String>,
    /// Shell command that pauses the shard's writes (with `thaw`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze: Option<String>,
    /// Shell command that resumes them (with `freeze`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thaw: Option<String>,
    /// Built-in pause: SIGSTOP / SIGCONT of the process whose pid this file holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_file: Option<String>,
    /// Built-in pause: this file is created to pause the writer (which
    /// watches for it) and removed to resume it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_file: Option<String>,
}

/// Where a shard's data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location<'a> {
    /// A directory of this machine.
    Local {
        /// The database directory.
        path: &'a str,
    },
    /// A directory on a host, reached through a command template.
    Remote {
        /// The host.
        host: &'a str,
        /// The database directory there.
        path: &'a str,
        /// The template (`{host}`, `{command}`).
        template: &'a str,
    },
}

impl Location<'_> {
    /// The command line that runs `command` where the shard is: `command`
    /// itself locally, the template filled in remotely (`{command}` is
    /// substituted verbatim: the caller quotes it for the remote shell).
    pub fn command(&self, command: &str) -> String {
        match self {
            Location::Local { .. } => command.to_string(),
            Location::Remote { host, template, .. } => template
                .replace(HOST_PLACEHOLDER, host)
                .replace(COMMAND_PLACEHOLDER, command),
        }
    }
}

/// How a shard's writer is paused around its checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseMethod<'a> {
    /// Not paused: the cut is consistent only if its writer is idle.
    None,
    /// The user's shell commands (run as `checkpoint --freeze-cmd/--thaw-cmd` are).
    Commands {
        /// Pauses writes.
        freeze: &'a str,
        /// Resumes them.
        thaw: &'a str,
    },
    /// SIGSTOP / SIGCONT of the pid in this file.
    PidFile(&'a str),
    /// Create / remove this file.
    PauseFile(&'a str),
}

impl std::fmt::Display for PauseMethod<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PauseMethod::None => formatter.write_str("none"),
            PauseMethod::Commands { .. } => formatter.write_str("freeze/thaw commands"),
            PauseMethod::PidFile(path) => write!(formatter, "SIGSTOP/SIGCONT of pid_file {path}"),
            PauseMethod::PauseFile(path) => write!(formatter, "pause_file {path}"),
        }
    }
}

impl Shard {
    /// Where the shard's data is.
    pub fn location(&self) -> Location<'_> {
        match &self.host {
            None => Location::Local { path: &self.path },
            Some(host) => Location::Remote {
                host,
                path: &self.path,
                template: self
                    .remote_command
                    .as_deref()
                    .unwrap_or(DEFAULT_REMOTE_COMMAND),
            },
        }
    }

    /// How its writer is paused (validation made the fields unambiguous).
    pub fn pause(&self) -> PauseMethod<'_> {
        match (&self.freeze, &self.thaw, &self.pid_file, &self.pause_file) {
            (Some(freeze), Some(thaw), _, _) => PauseMethod::Commands { freeze, thaw },
            (_, _, Some(path), _) => PauseMethod::PidFile(path),
            (_, _, _, Some(path)) => PauseMethod::PauseFile(path),
            _ => PauseMethod::None,
        }
    }
}

/// One thing wrong with a topology: the shard it concerns, if one, what is
/// wrong and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopologyProblem {
    /// The shard (or group, when `group` says so) the problem is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// What is wrong.
    pub problem: String,
    /// What to change.
    pub hint: String,
}

impl std::fmt::Display for TopologyProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(shard) = &self.shard {
            write!(formatter, "shard {shard:?}: ")?;
        }
        write!(formatter, "{} (hint: {})", self.problem, self.hint)
    }
}

fn problem(shard: Option<&str>, problem: String, hint: &str) -> TopologyProblem {
    TopologyProblem {
        shard: shard.map(str::to_string),
        problem,
        hint: hint.to_string(),
    }
}

/// [`Error::InvalidTopology`] for `file` with `problems`.
pub fn invalid(file: &str, problems: &[TopologyProblem]) -> Error {
    Error::InvalidTopology {
        file: file.to_string(),
        problems: problems.iter().map(ToString::to_string).collect(),
    }
}

impl Topology {
    /// Parses and validates a topology file's text; `file` names it in
    /// errors. Shards and groups are read one by one, so that a missing or
    /// unknown key names the shard (or group) it is in.
    pub fn parse(file: &str, text: &str) -> Result<Topology> {
        let table: toml::Table = toml::from_str(text).map_err(|error| {
            let line = error
                .span()
                .map(|span| 1 + text.get(..span.start).unwrap_or("").matches('\n').count());
            let at = line.map_or(String::new(), |line| format!("line {line}: "));
            invalid(
                file,
                &[problem(
                    None,
                    format!("{at}{}", error.message().trim_end()),
                    "the file is TOML; docs/cluster.md has a full example",
                )],
            )
        })?;
        let (topology, problems) = parse::from_table(table);
        match topology {
            Some(topology) if problems.is_empty() => {
                topology.validate(file)?;
                Ok(topology)
            }
            _ => Err(invalid(file, &problems)),
        }
    }

    /// The TOML text of the topology (what `parse` reads back to the same value).
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self)
            .map_err(|error| Error::InvalidArgument(format!("topology as TOML: {error}")))
    }

    /// Fails with [`Error::InvalidTopology`] naming every problem.
    pub fn validate(&self, file: &str) -> Result<()> {
        let problems = self.problems();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(invalid(file, &problems))
        }
    }

    /// The shards of group `name`, in file order.
    pub fn group_shards<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Shard> + 'a {
        self.shards.iter().filter(move |shard| shard.group == name)
    }
}

#[cfg(test)]
mod tests;
