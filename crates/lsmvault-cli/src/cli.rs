//! The command line as clap parses it: the global flags, and one subcommand
//! whose arguments are defined beside its code in [`crate::commands`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands::{backup, checkpoint, diff, init, key, ls, restore, stats, tag, wal};

#[derive(Parser)]
#[command(
    name = "lsmvault",
    version,
    about = "Deduplicating snapshot store for LSM databases"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

// The flags every subcommand accepts (no doc comment: clap would take it for
// help text).
#[derive(Args)]
pub struct GlobalArgs {
    /// Repository location (a local directory).
    #[arg(long, short = 'r', global = true, env = "LSMVAULT_REPOSITORY")]
    pub repo: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Read the repository password from this file (or LSMVAULT_PASSWORD_FILE,
    /// LSMVAULT_PASSWORD; asked on a terminal otherwise).
    #[arg(long, global = true, env = "LSMVAULT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Wait up to this long (e.g. 30s, 10m) for another command's
    /// conflicting lock instead of failing at once.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub retry_lock: Option<Duration>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(init::InitArgs),
    /// Manage the keys (passwords) of an encrypted repository.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Back up a directory (e.g. a database checkpoint) into a new snapshot.
    Backup(backup::BackupArgs),
    /// List snapshots.
    Snapshots,
    /// List the files of a snapshot.
    Ls(ls::LsArgs),
    /// Restore a snapshot into a directory.
    Restore(restore::RestoreArgs),
    /// Checkpoint a live database directory: hard links for immutable files, copies for the rest.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Continuous WAL archiving.
    #[command(subcommand)]
    Wal(wal::WalCommand),
    /// Name the current point of a database (archives its WAL now): restore it with `restore --tag`.
    Tag(tag::TagArgs),
    /// Remove snapshots by retention policy (or by id).
    Forget(ForgetArgs),
    /// Delete data no snapshot references; repack mostly-unused packs.
    Prune {
        /// Repack packs with more than this percentage of unused bytes.
        #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
        max_unused: f64,
        /// Report only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Sizes, deduplication, and what forgetting each snapshot would free.
    Stats(stats::StatsArgs),
    /// Files and storage that differ between two snapshots.
    Diff(diff::DiffArgs),
    /// Remove stale locks (of crashed commands).
    Unlock {
        /// Remove every lock, also live ones.
        #[arg(long)]
        remove_all: bool,
    },
    /// Check the repository's structure, and with --read-data every byte.
    Verify {
        /// Read and re-hash every pack.
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Read subset N of M (e.g. 1/7); cycling N over 1..M covers every pack.
        #[arg(long, value_name = "N/M")]
        read_data_subset: Option<String>,
    },
}

#[derive(Args)]
pub struct ForgetArgs {
    /// Snapshots to remove (ids or unique prefixes) instead of a policy.
    pub snapshots: Vec<String>,
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    pub keep_yearly: Option<u32>,
    /// Keep everything within this span of the newest snapshot (e.g. 30d, 1y6m, 12h).
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
    /// Only consider snapshots with this tag (repeatable: all must match).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only consider snapshots of this source path.
    #[arg(long)]
    pub source: Option<String>,
    /// Only consider snapshots of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Only consider snapshots of this kind: full, incremental or differential.
    #[arg(long)]
    pub kind: Option<String>,
    /// Group snapshots by: host,source (default), host, source, or none.
    #[arg(long, default_value = "host,source")]
    pub group_by: String,
    /// Report only; remove nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow the policy to remove every snapshot of a group.
    #[arg(long)]
    pub allow_remove_all: bool,
    /// Run prune afterwards.
    #[arg(long)]
    pub prune: bool,
}
