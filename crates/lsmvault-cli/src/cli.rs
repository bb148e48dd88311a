//! The command line as clap parses it: the global flags, and one subcommand
//! whose arguments are defined beside its code in [`crate::commands`].

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::commands::{
    backup, checkpoint, cluster, completions, copy, diff, dump, find, forget, init, key, ls, prune,
    repair, restore, snapshots, stats, tag, unlock, verify, wal,
};

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
    /// Quiet: only errors, warnings and what was asked for (listings,
    /// --json, a --dry-run's plan); no progress bars and no summaries.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Read the repository password from this file (or LSMVAULT_PASSWORD_FILE,
    /// LSMVAULT_PASSWORD; asked on a terminal otherwise).
    #[arg(long, global = true, env = "LSMVAULT_PASSWORD_FILE")]
    pub password_file: Option<PathBuf>,
    /// Run this shell command for the repository password (first line of
    /// its stdout; killed after 30s); not together with --password-file.
    #[arg(
        long,
        global = true,
        value_name = "CMD",
        env = "LSMVAULT_PASSWORD_COMMAND"
    )]
    pub password_command: Option<String>,
    /// Wait up to this long (e.g. 30s, 10m) for another command's
    /// conflicting lock instead of failing at once.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub retry_lock: Option<Duration>,
    /// Keep the local metadata cache (index, snapshot, key files, trees) in
    /// this directory, one subdirectory per repository id; enables it for a
    /// local repository too (default for a remote one:
    /// $XDG_CACHE_HOME/lsmvault, else ~/.cache/lsmvault).
    #[arg(long, global = true, value_name = "DIR", env = "LSMVAULT_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use no local metadata cache: read every object from the repository
    /// (wins over --cache-dir and LSMVAULT_CACHE_DIR).
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Limit uploads to the repository to this many bytes per second, all
    /// threads together (e.g. 50MiB, 10MB, 800KiB, or plain bytes).
    #[arg(long, global = true, value_name = "RATE", value_parser = parse_rate)]
    pub limit_upload: Option<u64>,
    /// Limit downloads from the repository to this many bytes per second,
    /// all threads together (e.g. 50MiB, 10MB, 800KiB, or plain bytes).
    #[arg(long, global = true, value_name = "RATE", value_parser = parse_rate)]
    pub limit_download: Option<u64>,
}

/// A `--limit-upload` / `--limit-download` rate (see [`lsmvault::backend::throttle::parse_rate`]).
fn parse_rate(text: &str) -> Result<u64, String> {
    lsmvault::backend::throttle::parse_rate(text)
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
    /// List snapshots (--tag, --host, --path, --database-id filter them).
    Snapshots(snapshots::SnapshotsArgs),
    /// List the files of a snapshot.
    Ls(ls::LsArgs),
    /// Restore a snapshot into a directory.
    Restore(restore::RestoreArgs),
    /// Checkpoint a live database directory: hard links for immutable files, copies for the rest.
    Checkpoint(checkpoint::CheckpointArgs),
    /// Continuous WAL archiving.
    #[command(subcommand)]
    Wal(wal::WalCommand),
    /// Cluster backups: topologies of sharded databases (RAID5/6 groups), cluster snapshots.
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Name the current point of a database (archives its WAL now): restore it with `restore --tag`.
    Tag(tag::TagArgs),
    /// Remove snapshots by retention policy (or by id).
    Forget(forget::ForgetArgs),
    /// Delete data no snapshot references; repack mostly-unused packs.
    Prune(prune::PruneArgs),
    /// Rebuild what can be derived again (`repair index`: the index from the
    /// pack headers), save what can be saved (`repair snapshots`) and rebuild
    /// lost or damaged packs from parity (`repair packs`).
    #[command(subcommand)]
    Repair(repair::RepairCommand),
    /// Sizes, deduplication, and what forgetting each snapshot would free.
    Stats(stats::StatsArgs),
    /// Files and storage that differ between two snapshots.
    Diff(diff::DiffArgs),
    /// Copy snapshots from another repository (--from) into this one
    /// (or --to), moving only the blobs it lacks.
    Copy(copy::CopyArgs),
    /// Bind an encrypted repository's config to its master key (format version 2 to 3).
    Migrate,
    /// Remove stale locks (of crashed commands).
    Unlock(unlock::UnlockArgs),
    /// Check the repository's structure, and with --read-data every byte.
    Verify(verify::VerifyArgs),
    /// Which snapshots hold a file matching a glob, or a table file number (--sst).
    Find(find::FindArgs),
    /// Write one file of a snapshot to stdout (streamed, checked against its digest).
    Dump(dump::DumpArgs),
    /// Show one repository object, decoded, for debugging.
    Cat(dump::CatArgs),
    /// Write a shell completion script to stdout.
    Completions(completions::CompletionsArgs),
    /// Write manual pages (one per command) into a directory.
    Man(completions::ManArgs),
}
