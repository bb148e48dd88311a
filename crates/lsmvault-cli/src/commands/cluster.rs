//! `lsmvault cluster ...`: backups of a database spread over shards.
//! This slice has the topology (`cluster topology --from-env` builds one
//! from ThemisDB's variables, `--check` validates and summarises a file)
//! the listing of cluster snapshots (`cluster ls`) and `cluster backup` of
//! shards on this machine; docs/cluster.md describes them.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand};
use lsmvault::format::cluster::ClusterEntry;
use lsmvault::format::topology::{self, EnvTopologyOptions, Topology, TopologySummary};
use lsmvault::Error;
use serde::Serialize;

use lsmvault::ops::backup::cluster::{ClusterBackupOptions, ClusterBackupOutcome};
use lsmvault::BackupOptions;

use super::Context;
use crate::output::{human_bytes, print_json, short_id, table_time};
use crate::signals;

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Write a topology from ThemisDB's THEMIS_* variables (--from-env), or
    /// validate and summarise a topology file (--check FILE).
    Topology(TopologyArgs),
    /// List the cluster snapshots: id, time, cluster, tag, members, complete groups.
    Ls,
    /// Back up every shard of a topology at one consistent cut: all writers
    /// paused together, hard-link checkpoints, thaw, then every shard backed
    /// up and the cluster snapshot written last (shards on this machine).
    Backup(BackupArgs),
}

#[derive(Args)]
pub struct BackupArgs {
    /// The topology file (docs/cluster.md).
    #[arg(long, value_name = "FILE")]
    topology: PathBuf,
    /// Name this cut (recorded in the cluster snapshot and tagged on every member snapshot).
    #[arg(long)]
    tag: Option<String>,
    /// How long each shard's freeze may take; past it everyone is thawed
    /// and nothing is written.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          default_value = "5s")]
    freeze_timeout: Duration,
    /// Host name to record in the member snapshots.
    #[arg(long)]
    host: Option<String>,
}

#[derive(Args)]
#[command(group(ArgGroup::new("mode").required(true).args(["from_env", "check"])))]
pub struct TopologyArgs {
    /// Build the topology from THEMIS_RAID_GROUP, THEMIS_SHARD_ID and
    /// THEMIS_SHARDS (printed as TOML, or written to --out).
    #[arg(long, requires = "data_dir")]
    from_env: bool,
    /// Validate this topology file and summarise it (exit 22 naming every problem).
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
    /// With --from-env: every shard's database directory (absolute; on its host).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<String>,
    /// With --from-env: the cluster's name (default `themisdb-<group>`).
    #[arg(long, value_name = "NAME", requires = "from_env")]
    name: Option<String>,
    /// With --from-env: how commands reach the other shards' hosts
    /// (default `ssh {host} {command}`).
    #[arg(long, value_name = "TEMPLATE", requires = "from_env")]
    remote_command: Option<String>,
    /// With --from-env: write the TOML to FILE (never over an existing file without --force).
    #[arg(long, value_name = "FILE", requires = "from_env")]
    out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long, requires = "out")]
    force: bool,
}

pub fn run(context: &Context, command: &ClusterCommand) -> Result<ExitCode, Error> {
    match command {
        ClusterCommand::Topology(args) => match &args.check {
            Some(file) => check(context, file),
            None => from_env(context, args),
        },
        ClusterCommand::Ls => list(context),
        ClusterCommand::Backup(args) => backup(context, args),
    }
}

/// Reads and validates a topology file (a file that is not UTF-8 is an
/// invalid topology, not an I/O error).
pub fn read_topology(file: &Path) -> Result<Topology, Error> {
    let bytes = fs::read(file)
        .map_err(|error| Error::io(format!("reading topology file {}", file.display()), error))?;
    let name = file.display().to_string();
    let text = String::from_utf8(bytes).map_err(|error| Error::InvalidTopology {
        file: name.clone(),
        problems: vec![format!(
            "byte {} is not UTF-8 (hint: TOML files are UTF-8 text)",
            error.utf8_error().valid_up_to()
        )],
    })?;
    Topology::parse(&name, &text)
}

fn check(context: &Context, file: &Path) -> Result<ExitCode, Error> {
    let topology = read_topology(file)?;
    let summary = topology.summary();
    context.output().show(&summary, print_summary)?;
    let unpaused = topology.unpaused_shards();
    if !unpaused.is_empty() {
        eprintln!(
            "warning: shard(s) {} have no pause method (freeze/thaw, pid_file, pause_file): a cluster backup is a consistent cut only if their writers are idle",
            unpaused.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(summary: &TopologySummary) {
    outln!(
        "cluster {}: {} group(s), {} shard(s)",
        summary.name,
        summary.groups.len(),
        summary.shards.len()
    );
    for group in &summary.groups {
        let parity = if group.parity.is_empty() {
            String::new()
        } else {
            format!("; parity {}", group.parity.join(", "))
        };
        outln!(
            "group {} ({}): data {}{}; survives {} lost shard(s)",
            group.name,
            group.scheme,
            group.data.join(", "),
            parity,
            group.tolerated_failures
        );
    }
    for shard in &summary.shards {
        outln!(
            "shard {} [{} {}] {} (pause: {})",
            shard.name,
            shard.group,
            match shard.role {
                topology::Role::Data => "data",
                topology::Role::Parity => "parity",
            },
            shard.location,
            shard.pause
        );
    }
}

/// What `--from-env --json` prints.
#[derive(Serialize)]
struct FromEnvReport {
    /// The file written, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    out: Option<String>,
    /// The TOML text.
    toml: String,
    summary: TopologySummary,
}

fn from_env(context: &Context, args: &TopologyArgs) -> Result<ExitCode, Error> {
    let options = EnvTopologyOptions {
        name: args.name.clone(),
        data_dir: args.data_dir.clone().unwrap_or_default(),
        remote_command: args.remote_command.clone(),
    };
    let topology = topology::from_env(|name| std::env::var(name).ok(), &options)?;
    let text = format!(
        "# Written by `lsmvault cluster topology --from-env` from {}.\n# Add a pause method to each shard (freeze/thaw, pid_file or pause_file; docs/cluster.md).\n{}",
        topology::THEMIS_VARIABLES.join(", "),
        topology.to_toml()?
    );
    if let Some(out) = &args.out {
        write_new(out, &text, args.force)?;
    }
    let report = FromEnvReport {
        out: args.out.as_ref().map(|out| out.display().to_string()),
        toml: text,
        summary: topology.summary(),
    };
    context.output().show(&report, |report| match &report.out {
        Some(out) if context.output().prints_summary() => outln!(
            "wrote the topology of cluster {} ({} shard(s)) to {out}",
            report.summary.name,
            report.summary.shards.len()
        ),
        Some(_) => {}
        None => crate::output::write_stdout(report.toml.as_bytes()),
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Writes `text` to `path`, which must not exist unless `force`.
fn write_new(path: &Path, text: &str, force: bool) -> Result<(), Error> {
    let mut options = OpenOptions::new();
    options.write(true);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let context = || format!("writing topology file {}", path.display());
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            Error::InvalidArgument(format!(
                "{} exists; pass --force to replace it",
                path.display()
            ))
        } else {
            Error::io(context(), error)
        }
    })?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| Error::io(context(), error))
}

/// One line of `cluster ls --json`.
#[derive(Serialize)]
struct ListedCluster<'a> {
    #[serde(flatten)]
    entry: &'a ClusterEntry,
    /// How many members it has.
    member_count: usize,
    /// Whether every group has a member snapshot for each of its shards.
    complete: bool,
    /// The groups that lack some.
    incomplete_groups: Vec<&'a str>,
}

fn list(context: &Context) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let (entries, damaged) = repository.cluster_snapshots_checked()?;
    let listed: Vec<ListedCluster> = entries
        .iter()
        .map(|entry| {
            let (_, incomplete_groups) = entry.snapshot.complete_groups();
            ListedCluster {
                entry,
                member_count: entry.snapshot.members.len(),
                complete: incomplete_groups.is_empty(),
                incomplete_groups,
            }
        })
        .collect();
    if context.output().is_json() {
        if damaged.is_empty() {
            print_json(&listed)?;
        } else {
            print_json(&serde_json::json!({ "clusters": listed, "damaged": damaged }))?;
        }
    } else {
        print_table(&listed);
    }
    for object in &damaged {
        eprintln!(
            "warning: cluster snapshot {} cannot be read and was skipped: {} (its member snapshots are untouched)",
            object.name, object.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_table(listed: &[ListedCluster]) {
    outln!(
        "{:<10} {:<23} {:<16} {:<12} {:>7}  groups",
        "id",
        "time",
        "cluster",
        "tag",
        "members"
    );
    for item in listed {
        let snapshot = &item.entry.snapshot;
        let groups = if item.complete {
            "complete".to_string()
        } else {
            format!("incomplete: {}", item.incomplete_groups.join(", "))
        };
        outln!(
            "{:<10} {:<23} {:<16} {:<12} {:>7}  {}",
            short_id(&item.entry.id),
            table_time(snapshot.time),
            snapshot.cluster,
            snapshot.tag.as_deref().unwrap_or("-"),
            item.member_count,
            groups
        );
    }
    outln!("{} cluster snapshot(s)", listed.len());
}

fn backup(context: &Context, args: &BackupArgs) -> Result<ExitCode, Error> {
    let interrupt = signals::install();
    // The topology first: a bad file fails before the repository is opened.
    let topology = read_topology(&args.topology)?;
    let repository = context.open_repository()?;
    let options = ClusterBackupOptions {
        tag: args.tag.clone(),
        freeze_timeout: args.freeze_timeout,
        backup: BackupOptions {
            host: args.host.clone(),
            interrupt,
            ..BackupOptions::default()
        },
        ..ClusterBackupOptions::default()
    };
    let outcome = repository.cluster_backup(&topology, &options)?;
    context.output().summary(&outcome, print_backup)?;
    Ok(ExitCode::SUCCESS)
}

fn print_backup(outcome: &ClusterBackupOutcome) {
    for leftover in &outcome.leftovers_removed {
        outln!(
            "removed the staging checkpoint of an earlier run that was killed: {}",
            leftover.display()
        );
    }
    let ms = |seconds: f64| seconds * 1000.0;
    for shard in &outcome.shards {
        let stats = &shard.stats;
        let sequence = shard
            .sequence
            .map_or(String::new(), |sequence| format!(", sequence {sequence}"));
        outln!(
            "shard {}: snapshot {}{}; files {} new, {} changed, {} unmodified; {} added; paused {:.1} ms (freeze {:.1} / link {:.1} / thaw {:.1})",
            shard.shard,
            short_id(&shard.snapshot),
            sequence,
            stats.files_new,
            stats.files_changed,
            stats.files_unmodified,
            human_bytes(stats.bytes_added),
            ms(shard.pause.total_seconds()),
            ms(shard.pause.freeze_seconds),
            ms(shard.pause.link_seconds),
            ms(shard.pause.thaw_seconds)
        );
    }
    let longest = outcome
        .shards
        .iter()
        .map(|shard| shard.pause.total_seconds())
        .fold(0.0, f64::max);
    outln!(
        "cluster snapshot {} of {} ({} shard(s)); write pause {:.1} ms (longest shard {:.1} ms)",
        short_id(&outcome.id),
        outcome.cluster.cluster,
        outcome.shards.len(),
        ms(outcome.cluster.pause_seconds),
        ms(longest)
    );
}
