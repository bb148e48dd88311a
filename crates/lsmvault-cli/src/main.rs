//! The `lsmvault` command: parses arguments, calls the library, prints results.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use lsmvault::format::tree::EntryKind;
use lsmvault::lsm::checkpoint::{checkpoint, CheckpointOptions};
use lsmvault::ops::forget::retention::{parse_duration, GroupBy, RetentionPolicy, SnapshotFilter};
use lsmvault::ops::restore::point_in_time::PointInTime;
use lsmvault::ops::wal::ArchiveOptions;
use lsmvault::{
    BackupMode, BackupOptions, Error, ErrorCode, ForgetOptions, InitOptions, Progress,
    PruneOptions, ReadData, Repository, RestoreOptions, SnapshotKind, VerifyOptions,
};

#[derive(Parser)]
#[command(
    name = "lsmvault",
    version,
    about = "Deduplicating snapshot store for LSM databases"
)]
struct Cli {
    /// Repository location (a local directory).
    #[arg(long, short = 'r', global = true, env = "LSMVAULT_REPOSITORY")]
    repo: Option<PathBuf>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    /// Read the repository password from this file (or LSMVAULT_PASSWORD_FILE,
    /// LSMVAULT_PASSWORD; asked on a terminal otherwise).
    #[arg(long, global = true, env = "LSMVAULT_PASSWORD_FILE")]
    password_file: Option<PathBuf>,
    /// Wait up to this long (e.g. 30s, 10m) for another command's
    /// conflicting lock instead of failing at once.
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration)]
    retry_lock: Option<Duration>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new repository.
    Init(InitArgs),
    /// Manage the keys (passwords) of an encrypted repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Back up a directory (e.g. a database checkpoint) into a new snapshot.
    Backup(BackupArgs),
    /// List snapshots.
    Snapshots,
    /// List the files of a snapshot.
    Ls {
        /// Snapshot id, unique id prefix, `latest` or `latest:TAG`.
        snapshot: String,
        /// Only this path (and what is below it).
        path: Option<String>,
    },
    /// Restore a snapshot into a directory.
    Restore {
        /// Snapshot id, unique id prefix, `latest` or `latest:TAG` (not with --at/--seq/--tag).
        #[arg(required_unless_present_any = ["at", "seq", "tag"], conflicts_with_all = ["at", "seq", "tag"])]
        snapshot: Option<String>,
        /// Directory to restore into (must be absent or empty, unless --delta).
        #[arg(long, short = 't')]
        target: PathBuf,
        /// Restore only this path (repeatable).
        #[arg(long)]
        include: Vec<String>,
        /// Keep files in the target that already match; rewrite the rest and
        /// remove what the snapshot does not have.
        #[arg(long)]
        delta: bool,
        /// Point in time (RFC 3339, e.g. 2026-11-23T14:32:05Z): the newest state known to have existed then.
        #[arg(long, conflicts_with_all = ["seq", "tag", "include", "delta"])]
        at: Option<String>,
        /// Point in time as a sequence number: every write batch ending at or before it.
        #[arg(long, conflicts_with_all = ["tag", "include", "delta"])]
        seq: Option<u64>,
        /// A restore point (`lsmvault tag`) or snapshot tag.
        #[arg(long, conflicts_with_all = ["include", "delta"])]
        tag: Option<String>,
        /// The database (IDENTITY) to recover, when the repository holds several.
        #[arg(long)]
        database_id: Option<String>,
    },
    /// Checkpoint a live database directory: hard links for immutable files, copies for the rest.
    Checkpoint(CheckpointArgs),
    /// Continuous WAL archiving.
    #[command(subcommand)]
    Wal(WalCommand),
    /// Name the current point of a database (archives its WAL now): restore it with `restore --tag`.
    Tag {
        /// The restore point's name.
        name: String,
        /// The live database directory.
        database: PathBuf,
        /// The database id, for databases without an IDENTITY file.
        #[arg(long)]
        database_id: Option<String>,
    },
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
    Stats {
        /// Snapshots to report (all when none).
        snapshots: Vec<String>,
    },
    /// Files and storage that differ between two snapshots.
    Diff { from: String, to: String },
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
struct CheckpointArgs {
    /// The live database directory.
    source: PathBuf,
    /// Where the checkpoint goes (must not exist; same file system for links).
    destination: PathBuf,
    #[command(flatten)]
    freeze: FreezeArgs,
}

#[derive(Args, Clone)]
struct FreezeArgs {
    /// Shell command that pauses writes (e.g. `kill -STOP $(pidof writer)`), run before linking.
    #[arg(long, value_name = "CMD")]
    freeze_cmd: Option<String>,
    /// Shell command that resumes writes, run right after.
    #[arg(long, value_name = "CMD")]
    thaw_cmd: Option<String>,
}

impl FreezeArgs {
    fn options(&self) -> CheckpointOptions {
        CheckpointOptions {
            freeze_command: self.freeze_cmd.clone(),
            thaw_command: self.thaw_cmd.clone(),
            ..CheckpointOptions::default()
        }
    }
}

#[derive(Subcommand)]
enum WalCommand {
    /// Archive every new or grown WAL segment of a database (`*.log`, `archive/*.log`).
    Archive {
        /// The live database directory.
        database: PathBuf,
        /// Keep archiving every INTERVAL (e.g. 10s, 1m) until interrupted.
        #[arg(long, value_name = "INTERVAL")]
        watch: Option<String>,
        /// The database id, for databases without an IDENTITY file.
        #[arg(long)]
        database_id: Option<String>,
    },
    /// The archived timeline: segments, recoverable windows, gaps.
    Ls,
}

#[derive(Args)]
struct InitArgs {
    /// Default compression of new blobs: auto, off, auto:N or zstd:N.
    #[arg(long, default_value = "auto")]
    compression: String,
    /// Create a plaintext repository (without it, init requires a password).
    #[arg(long)]
    no_encryption: bool,
    /// Milliseconds one password check should take (argon2id is tuned to it).
    #[arg(long, default_value_t = 500, value_name = "MS")]
    kdf_target_ms: u64,
    /// AEAD of an encrypted repository: aes-256-gcm-subkey (fast with AES
    /// hardware) or xchacha20-poly1305.
    #[arg(long, default_value = "aes-256-gcm-subkey")]
    cipher: String,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List the key files.
    List,
    /// Add a key: a new password for the same repository (from
    /// LSMVAULT_NEW_PASSWORD, --new-password-file, or asked).
    Add(NewPasswordArgs),
    /// Remove a key file (not the one in use).
    Remove {
        /// Key name (or a prefix of at least 8 digits).
        key: String,
    },
    /// Change the password of the key in use.
    Passwd(NewPasswordArgs),
}

#[derive(Args)]
struct NewPasswordArgs {
    /// Read the new password from this file.
    #[arg(long, env = "LSMVAULT_NEW_PASSWORD_FILE")]
    new_password_file: Option<PathBuf>,
    /// Milliseconds one password check should take.
    #[arg(long, default_value_t = 500, value_name = "MS")]
    kdf_target_ms: u64,
}

#[derive(Args)]
struct ForgetArgs {
    /// Snapshots to remove (ids or unique prefixes) instead of a policy.
    snapshots: Vec<String>,
    #[arg(long, value_name = "N")]
    keep_last: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_hourly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_daily: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_weekly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_monthly: Option<u32>,
    #[arg(long, value_name = "N")]
    keep_yearly: Option<u32>,
    /// Keep everything within this span of the newest snapshot (e.g. 30d, 1y6m, 12h).
    #[arg(long, value_name = "DURATION")]
    keep_within: Option<String>,
    /// Keep snapshots with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Only consider snapshots with this tag (repeatable: all must match).
    #[arg(long)]
    tag: Vec<String>,
    /// Only consider snapshots of this source path.
    #[arg(long)]
    source: Option<String>,
    /// Only consider snapshots of this host.
    #[arg(long)]
    host: Option<String>,
    /// Only consider snapshots of this kind: full, incremental or differential.
    #[arg(long)]
    kind: Option<String>,
    /// Group snapshots by: host,source (default), host, source, or none.
    #[arg(long, default_value = "host,source")]
    group_by: String,
    /// Report only; remove nothing.
    #[arg(long)]
    dry_run: bool,
    /// Allow the policy to remove every snapshot of a group.
    #[arg(long)]
    allow_remove_all: bool,
    /// Run prune afterwards.
    #[arg(long)]
    prune: bool,
}

#[derive(Args)]
struct BackupArgs {
    /// Directory to back up.
    source: PathBuf,
    /// Tag the snapshot (repeatable).
    #[arg(long)]
    tag: Vec<String>,
    /// Read every file again (still deduplicated).
    #[arg(long, conflicts_with_all = ["differential", "parent"])]
    full: bool,
    /// Take unchanged files from the newest full snapshot of this source.
    #[arg(long, conflicts_with = "parent")]
    differential: bool,
    /// Take unchanged files from this snapshot.
    #[arg(long)]
    parent: Option<String>,
    /// Create the repository first if it does not exist.
    #[arg(long)]
    init: bool,
    /// With --init: create a plaintext repository.
    #[arg(long, requires = "init")]
    no_encryption: bool,
    /// Host name to record.
    #[arg(long)]
    host: Option<String>,
    /// Compression of new blobs: auto, off, auto:N or zstd:N (default: the repository's).
    #[arg(long)]
    compression: Option<String>,
    /// SOURCE is a live database: checkpoint it into a temporary directory
    /// next to it first (hard links), back that up, remove it.
    #[arg(long)]
    live: bool,
    #[command(flatten)]
    freeze: FreezeArgs,
}

/// Progress bars on a terminal; nothing otherwise.
struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl Progress for BarProgress {
    fn start(&self, phase: &str, total_bytes: u64) {
        let bar = if total_bytes > 0 {
            let bar = ProgressBar::new(total_bytes);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_message(phase.to_string());
        *self
            .bar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
        {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self
            .bar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }
}

/// Multi-MiB buffers (packs, chunker windows, decompressed chunks) are
/// allocated and freed all the time. Served as fresh mappings, or from heap
/// memory that glibc hands back to the kernel as soon as it is free, every
/// 4 KiB page of them costs a page fault and a zeroing when next used:
/// measured on an 0.85 GB checkpoint, that was most of the system time of
/// `verify --read-data` (267 000 faults, 0.6 s of 1.2 s CPU) and of a restore.
/// So freed heap memory is kept for reuse, and chunk-sized buffers stay in the
/// heap. Pack-sized buffers stay mappings returned when freed, except in a
/// restore (which reads chunk by chunk, so it holds no pack buffer and its
/// peak stays at ~37 MiB): heap arenas kept a verify's 16-20 MiB pack buffers
/// at their fragmented peak, 75 MiB on a repository of zstd SSTs, above the
/// 64 MiB target. Peak RSS of each command is in docs/benchmarks.md.
fn tune_allocator(command: &Command) {
    let mmap_threshold = match command {
        Command::Restore { .. } => RESTORE_MMAP_THRESHOLD,
        _ => DEFAULT_MMAP_THRESHOLD,
    };
    // SAFETY: mallopt only changes allocator tuning; called before any thread starts.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, mmap_threshold);
        nix::libc::mallopt(nix::libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Above the largest chunk (4 MiB) with room for what a chunk grows by on
/// its way into a pack (zstd's worst-case bound, ~16 KiB; the seal's nonce
/// and tag, 40 bytes): chunks and their compressed forms stay in the heap,
/// pack-sized buffers do not. At exactly 4 MiB + 1, every incompressible
/// maximum-size chunk's zstd output buffer was a fresh mapping.
const DEFAULT_MMAP_THRESHOLD: i32 = 4 * 1024 * 1024 + 64 * 1024;
/// glibc's maximum mmap threshold on 64-bit (`DEFAULT_MMAP_THRESHOLD_MAX`).
const RESTORE_MMAP_THRESHOLD: i32 = 32 * 1024 * 1024;
/// Free memory at the top of a heap kept before it is returned.
const TRIM_THRESHOLD: i32 = 256 * 1024 * 1024;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tune_allocator(&cli.command);
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            let code = error.code();
            if cli.json {
                let report = serde_json::json!({
                    "error": { "code": code.name(), "exit_code": code.exit_code(),
                               "message": error.to_string(), "hint": error.hint() }
                });
                println!("{report}");
            }
            eprintln!("error: {error}");
            eprintln!("hint: {}", error.hint());
            ExitCode::from(code.exit_code() as u8)
        }
    }
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| Error::InvalidArgument(error.to_string()))?;
    println!("{text}");
    Ok(())
}

fn parse_subset(text: &str) -> Result<ReadData, Error> {
    let invalid = || {
        Error::InvalidArgument(format!(
            "--read-data-subset {text:?}: expected N/M with 1 <= N <= M"
        ))
    };
    let (n, m) = text.split_once('/').ok_or_else(invalid)?;
    let n: u32 = n.trim().parse().map_err(|_| invalid())?;
    let m: u32 = m.trim().parse().map_err(|_| invalid())?;
    if n == 0 || m == 0 || n > m {
        return Err(invalid());
    }
    Ok(ReadData::Subset { n, m })
}

fn run(cli: &Cli) -> Result<ExitCode, Error> {
    let show_bars = !cli.json && !cli.quiet && std::io::stderr().is_terminal();
    let bars = BarProgress {
        bar: Mutex::new(None),
    };
    let progress: &dyn Progress = if show_bars {
        &bars
    } else {
        &lsmvault::NoProgress
    };
    if let Command::Checkpoint(args) = &cli.command {
        let report = checkpoint(&args.source, &args.destination, &args.freeze.options())?;
        if cli.json {
            print_json(&report)?;
        } else {
            println!(
                "checkpoint of {} in {}: {} linked, {} copied ({}), {} skipped; writes paused {:.1} ms",
                args.source.display(),
                report.destination.display(),
                report.linked,
                report.copied,
                human_bytes(report.bytes_copied),
                report.skipped,
                report.pause_seconds * 1000.0
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let repo = cli.repo.clone().ok_or_else(|| {
        Error::InvalidArgument("no repository given: pass --repo or set LSMVAULT_REPOSITORY".into())
    })?;
    match &cli.command {
        Command::Init(args) => {
            let options = InitOptions {
                compression: args.compression.parse()?,
                password: init_password(cli, args.no_encryption, &repo)?,
                kdf_target: Duration::from_millis(args.kdf_target_ms),
                cipher: args.cipher.parse()?,
                ..InitOptions::default()
            };
            let repository = Repository::init_local(&repo, options)?;
            if cli.json {
                print_json(repository.config())?;
            } else {
                println!(
                    "created repository {} at {}",
                    repository.config().id,
                    repo.display()
                );
            }
        }
        Command::Backup(args) => {
            let repository = match open_repository(cli, &repo) {
                Err(Error::RepositoryNotFound { .. }) if args.init => {
                    let options = InitOptions {
                        password: init_password(cli, args.no_encryption, &repo)?,
                        ..InitOptions::default()
                    };
                    let mut repository = Repository::init_local(&repo, options)?;
                    repository.set_lock_retry(cli.retry_lock.unwrap_or_default());
                    repository
                }
                other => other?,
            };
            let options = BackupOptions {
                tags: args.tag.clone(),
                mode: if args.full {
                    BackupMode::Full
                } else if args.differential {
                    BackupMode::Differential
                } else {
                    BackupMode::Incremental
                },
                parent: args.parent.clone(),
                host: args.host.clone(),
                compression: args.compression.as_deref().map(str::parse).transpose()?,
                ..BackupOptions::default()
            };
            let (outcome, live) = if args.live {
                let (outcome, report) = repository.backup_live(
                    &args.source,
                    &args.freeze.options(),
                    &options,
                    progress,
                )?;
                (outcome, Some(report))
            } else {
                (repository.backup(&args.source, &options, progress)?, None)
            };
            let snapshot = &outcome.snapshot;
            if cli.json {
                print_json(
                    &serde_json::json!({ "id": outcome.id, "snapshot": snapshot, "checkpoint": live }),
                )?;
            } else {
                if let Some(report) = &live {
                    println!(
                        "live checkpoint: {} linked, {} copied; writes paused {:.1} ms",
                        report.linked,
                        report.copied,
                        report.pause_seconds * 1000.0
                    );
                }
                let stats = &snapshot.stats;
                println!(
                    "snapshot {} ({}) of {}",
                    outcome.id.short(),
                    snapshot.kind,
                    snapshot.source
                );
                println!(
                    "files: {} new, {} changed, {} unmodified; {} read, {} added in {} blobs / {} packs; {:.2} s",
                    stats.files_new,
                    stats.files_changed,
                    stats.files_unmodified,
                    human_bytes(stats.bytes_read),
                    human_bytes(stats.bytes_added),
                    stats.blobs_added,
                    stats.packs_written,
                    stats.duration_seconds
                );
            }
            for warning in &snapshot.warnings {
                eprintln!("warning: {warning}");
            }
            if snapshot.incomplete {
                eprintln!(
                    "warning: snapshot {} is incomplete: some files could not be read",
                    outcome.id.short()
                );
                return Ok(ExitCode::from(ErrorCode::IncompleteBackup.exit_code() as u8));
            }
        }
        Command::Snapshots => {
            let repository = open_repository(cli, &repo)?;
            let snapshots = repository.snapshots()?;
            if cli.json {
                let list: Vec<_> = snapshots
                    .iter()
                    .map(|entry| serde_json::json!({ "id": entry.id, "snapshot": entry.snapshot }))
                    .collect();
                print_json(&list)?;
            } else {
                println!(
                    "{:<10} {:<20} {:<12} {:<12} {:>10}  source [tags]",
                    "id", "time", "kind", "host", "size"
                );
                for entry in &snapshots {
                    let snapshot = &entry.snapshot;
                    let tags = if snapshot.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", snapshot.tags.join(","))
                    };
                    println!(
                        "{:<10} {:<20} {:<12} {:<12} {:>10}  {}{}{}",
                        entry.id.short(),
                        snapshot
                            .time
                            .get(..19)
                            .unwrap_or(&snapshot.time)
                            .replace('T', " "),
                        snapshot.kind.to_string(),
                        snapshot.host,
                        human_bytes(snapshot.stats.bytes_total),
                        snapshot.source,
                        tags,
                        if snapshot.incomplete {
                            " (incomplete)"
                        } else {
                            ""
                        }
                    );
                }
                println!("{} snapshot(s)", snapshots.len());
            }
        }
        Command::Ls { snapshot, path } => {
            let repository = open_repository(cli, &repo)?;
            let found = repository.find_snapshot(snapshot)?;
            let include: Vec<String> = path.iter().cloned().collect();
            let entries = repository.walk(&found.snapshot.tree, &include)?;
            if cli.json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|walked| {
                        let metadata = &walked.entry.metadata;
                        let (kind, extra) = match &walked.entry.kind {
                            EntryKind::File { size, digest, chunks } => (
                                "file",
                                serde_json::json!({ "size": size, "digest": digest, "chunks": chunks.len() }),
                            ),
                            EntryKind::Directory { subtree } => {
                                ("dir", serde_json::json!({ "subtree": subtree }))
                            }
                            EntryKind::Symlink { target } => (
                                "symlink",
                                serde_json::json!({ "target": String::from_utf8_lossy(target) }),
                            ),
                        };
                        serde_json::json!({
                            "path": walked.relative.display().to_string(),
                            "type": kind,
                            "mode": format!("{:o}", metadata.mode & 0o7777),
                            "mtime_ns": metadata.mtime_ns,
                            "links": metadata.links,
                            "detail": extra,
                        })
                    })
                    .collect();
                print_json(&list)?;
            } else {
                for walked in &entries {
                    let metadata = &walked.entry.metadata;
                    let (kind, suffix) = match &walked.entry.kind {
                        EntryKind::File { .. } => ('-', String::new()),
                        EntryKind::Directory { .. } => ('d', "/".to_string()),
                        EntryKind::Symlink { target } => {
                            ('l', format!(" -> {}", String::from_utf8_lossy(target)))
                        }
                    };
                    println!(
                        "{kind}{:04o} {:>12} {}{}",
                        metadata.mode & 0o7777,
                        walked.entry.size(),
                        walked.relative.display(),
                        suffix
                    );
                }
            }
        }
        Command::Restore {
            target,
            at: Some(_),
            ..
        }
        | Command::Restore {
            target,
            seq: Some(_),
            ..
        }
        | Command::Restore {
            target,
            tag: Some(_),
            ..
        } => {
            let Command::Restore {
                at,
                seq,
                tag,
                database_id,
                ..
            } = &cli.command
            else {
                unreachable!("matched above")
            };
            let point = match (at, seq, tag) {
                (Some(at), _, _) => {
                    PointInTime::Time(humantime::parse_rfc3339_weak(at).map_err(|error| {
                        Error::InvalidArgument(format!(
                            "--at {at:?}: {error} (expected e.g. 2026-11-23T14:32:05Z)"
                        ))
                    })?)
                }
                (_, Some(seq), _) => PointInTime::Sequence(*seq),
                (_, _, Some(tag)) => PointInTime::Tag(tag.clone()),
                _ => unreachable!("one of --at, --seq, --tag is present"),
            };
            let repository = open_repository(cli, &repo)?;
            let report = repository.restore_point_in_time(
                &point,
                database_id.as_deref(),
                target,
                progress,
            )?;
            if cli.json {
                print_json(&report)?;
            } else {
                println!(
                    "restored database {} to {} at sequence {} (asked: {}): snapshot {} (sequence {}) + {} WAL segment(s)",
                    report.database_id,
                    target.display(),
                    report.restored_sequence,
                    report.target_sequence,
                    &report.snapshot[..8],
                    report.snapshot_sequence,
                    report.segments.len()
                );
                for segment in &report.segments {
                    println!(
                        "  {} sequences {}..={} ({} bytes{})",
                        segment.file_name,
                        segment.first_sequence,
                        segment.last_sequence,
                        segment.bytes,
                        if segment.cut { ", cut" } else { "" }
                    );
                }
            }
        }
        Command::Restore {
            snapshot,
            target,
            include,
            delta,
            ..
        } => {
            let snapshot = snapshot.as_deref().unwrap_or("latest");
            let repository = open_repository(cli, &repo)?;
            let options = RestoreOptions {
                delta: *delta,
                include: include.clone(),
            };
            let stats = repository.restore(snapshot, target, &options, progress)?;
            if cli.json {
                print_json(&stats)?;
            } else {
                println!(
                    "restored snapshot {} to {}: {} files ({} hard links, {} kept), {} directories, {} symlinks, {} written in {:.2} s",
                    &stats.snapshot[..8],
                    target.display(),
                    stats.files,
                    stats.hard_links,
                    stats.files_kept,
                    stats.directories,
                    stats.symlinks,
                    human_bytes(stats.bytes_written),
                    stats.duration_seconds
                );
            }
        }
        Command::Forget(args) => {
            let repository = open_repository(cli, &repo)?;
            let forgotten = forget(&repository, args, cli.json)?;
            if args.prune && !args.dry_run {
                let pruned = prune(&repository, &PruneOptions::default(), cli.json, progress)?;
                if cli.json {
                    print_json(&serde_json::json!({ "forget": forgotten, "prune": pruned }))?;
                }
            } else if cli.json {
                print_json(&forgotten)?;
            }
        }
        Command::Prune {
            max_unused,
            dry_run,
        } => {
            let repository = open_repository(cli, &repo)?;
            let options = PruneOptions {
                max_unused_percent: *max_unused,
                dry_run: *dry_run,
            };
            let pruned = prune(&repository, &options, cli.json, progress)?;
            if cli.json {
                print_json(&pruned)?;
            }
        }
        Command::Stats { snapshots } => {
            let repository = open_repository(cli, &repo)?;
            let stats = repository.stats(snapshots)?;
            if cli.json {
                print_json(&stats)?;
            } else {
                println!(
                    "{:<10} {:<20} {:>8} {:>12} {:>12} {:>12}",
                    "id", "time", "files", "logical", "stored", "unique"
                );
                for size in &stats.snapshots {
                    println!(
                        "{:<10} {:<20} {:>8} {:>12} {:>12} {:>12}",
                        &size.id[..8],
                        size.time.get(..19).unwrap_or(&size.time).replace('T', " "),
                        size.files,
                        human_bytes(size.logical_bytes),
                        human_bytes(size.stored_bytes),
                        human_bytes(size.unique_bytes)
                    );
                }
                println!(
                    "selection: {} logical, {} stored, deduplication ratio {:.2}",
                    human_bytes(stats.logical_bytes),
                    human_bytes(stats.stored_bytes),
                    stats.deduplication_ratio
                );
                println!(
                    "repository: {} in {} packs, {} index files; {} data blobs, {} tree blobs",
                    human_bytes(stats.repository_bytes),
                    stats.packs,
                    stats.index_files,
                    stats.data_blobs,
                    stats.tree_blobs
                );
            }
        }
        Command::Diff { from, to } => {
            let repository = open_repository(cli, &repo)?;
            let report = repository.diff(from, to)?;
            if cli.json {
                print_json(&report)?;
            } else {
                for change in &report.changes {
                    let sign = match change.change {
                        "added" => "+",
                        "removed" => "-",
                        "metadata" => "U",
                        _ => "M",
                    };
                    println!(
                        "{sign} {:<50} {:>12} -> {:>12}  ({} new in storage)",
                        change.path,
                        human_bytes(change.size_before),
                        human_bytes(change.size_after),
                        human_bytes(change.new_bytes)
                    );
                }
                println!(
                    "{} added, {} removed, {} modified; storage: {} added, {} no longer referenced",
                    report.added,
                    report.removed,
                    report.modified,
                    human_bytes(report.blob_bytes_added),
                    human_bytes(report.blob_bytes_removed)
                );
            }
        }
        Command::Key(command) => {
            let mut repository = open_repository(cli, &repo)?;
            match command {
                KeyCommand::List => {
                    let keys = repository.list_keys()?;
                    if cli.json {
                        print_json(&keys)?;
                    } else {
                        for key in &keys {
                            println!(
                                "{} {} {}@{} {}",
                                if key.current { "*" } else { " " },
                                &key.name[..12],
                                key.user,
                                key.host,
                                key.created
                            );
                        }
                    }
                }
                KeyCommand::Add(args) => {
                    let password = new_password(args)?;
                    let name =
                        repository.add_key(&password, Duration::from_millis(args.kdf_target_ms))?;
                    report_key(cli.json, "added", &name)?;
                }
                KeyCommand::Remove { key } => {
                    repository.remove_key(key)?;
                    report_key(cli.json, "removed", key)?;
                }
                KeyCommand::Passwd(args) => {
                    let password = new_password(args)?;
                    let name = repository
                        .change_password(&password, Duration::from_millis(args.kdf_target_ms))?;
                    report_key(cli.json, "changed password; new key", &name)?;
                }
            }
        }
        Command::Checkpoint(_) => unreachable!("handled before the repository is needed"),
        Command::Wal(WalCommand::Archive {
            database,
            watch,
            database_id,
        }) => {
            let repository = open_repository(cli, &repo)?;
            let options = ArchiveOptions {
                database_id: database_id.clone(),
            };
            let interval = watch
                .as_deref()
                .map(|text| {
                    humantime::parse_duration(text).map_err(|error| {
                        Error::InvalidArgument(format!("--watch {text:?}: {error} (e.g. 10s, 1m)"))
                    })
                })
                .transpose()?;
            loop {
                let report = repository.archive_wal(database, &options)?;
                if cli.json {
                    println!("{}", serde_json::to_string(&report).unwrap_or_default());
                } else {
                    for segment in report
                        .segments
                        .iter()
                        .filter(|segment| segment.status != "unchanged")
                    {
                        println!(
                            "{} {} ({} bytes, sequences {:?}..={:?}, tail {})",
                            segment.status,
                            segment.file_name,
                            segment.size,
                            segment.first_sequence,
                            segment.last_sequence,
                            segment.tail
                        );
                        if segment.tail != "clean" {
                            eprintln!("warning: {}: {}", segment.file_name, segment.tail);
                        }
                    }
                    println!(
                        "archived database {}: {} read, {} new, {} stored in {:.2} s",
                        report.database_id,
                        human_bytes(report.bytes_read),
                        human_bytes(report.bytes_added),
                        human_bytes(report.bytes_stored),
                        report.duration_seconds
                    );
                }
                match interval {
                    Some(interval) => std::thread::sleep(interval),
                    None => break,
                }
            }
        }
        Command::Wal(WalCommand::Ls) => {
            let repository = open_repository(cli, &repo)?;
            let timelines = repository.wal_timeline()?;
            if cli.json {
                print_json(&timelines)?;
            } else {
                for timeline in &timelines {
                    println!("database {}:", timeline.database_id);
                    for segment in &timeline.segments {
                        println!(
                            "  {:<14} {:>12} sequences {:>10} ..= {:<10} {} version(s), last {} ({})",
                            segment.file_name,
                            human_bytes(segment.size),
                            segment.first_sequence.map_or("-".into(), |value| value.to_string()),
                            segment.last_sequence.map_or("-".into(), |value| value.to_string()),
                            segment.versions,
                            segment.archived_at.get(..19).unwrap_or(&segment.archived_at),
                            segment.tail
                        );
                    }
                    for window in &timeline.windows {
                        println!(
                            "  recoverable: sequences {} ..= {} from snapshot {} ({})",
                            window.from_sequence,
                            window.to_sequence,
                            &window.snapshot[..8],
                            window
                                .snapshot_time
                                .get(..19)
                                .unwrap_or(&window.snapshot_time)
                        );
                    }
                    for gap in &timeline.gaps {
                        println!("  GAP: {gap}");
                    }
                    for point in &timeline.restore_points {
                        println!(
                            "  restore point {:?} at sequence {} ({})",
                            point.name, point.sequence, point.time
                        );
                    }
                }
            }
        }
        Command::Tag {
            name,
            database,
            database_id,
        } => {
            let repository = open_repository(cli, &repo)?;
            let point = repository.create_restore_point(
                name,
                database,
                &ArchiveOptions {
                    database_id: database_id.clone(),
                },
            )?;
            if cli.json {
                print_json(&point)?;
            } else {
                println!(
                    "restore point {:?} of database {} at sequence {}",
                    point.name, point.database_id, point.sequence
                );
            }
        }
        Command::Unlock { remove_all } => {
            let repository = open_repository(cli, &repo)?;
            let removed =
                lsmvault::repo::lock::remove_locks(repository.backend().as_ref(), *remove_all)?;
            if cli.json {
                print_json(&serde_json::json!({ "removed": removed }))?;
            } else {
                println!("removed {removed} lock(s)");
            }
        }
        Command::Verify {
            read_data,
            read_data_subset,
        } => {
            let repository = open_repository(cli, &repo)?;
            let read = match (read_data, read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(subset)) => parse_subset(subset)?,
                (false, None) => ReadData::None,
            };
            let report = repository.verify(&VerifyOptions { read_data: read }, progress)?;
            if cli.json {
                print_json(&report)?;
            } else {
                println!(
                    "checked {} snapshot(s), {} tree(s), {} pack(s) ({} read in full, {}), {} blob(s)",
                    report.snapshots,
                    report.trees,
                    report.packs,
                    report.packs_read,
                    human_bytes(report.bytes_read),
                    report.blobs
                );
                if !report.unindexed_packs.is_empty() {
                    println!(
                        "{} pack(s) not in any index (left by an interrupted backup; garbage collection removes them)",
                        report.unindexed_packs.len()
                    );
                }
                if report.unreferenced_blobs > 0 {
                    println!(
                        "{} indexed blob(s) no snapshot uses",
                        report.unreferenced_blobs
                    );
                }
                for finding in &report.findings {
                    println!("DAMAGED {}: {}", finding.object, finding.problem);
                    for affected in &finding.affected {
                        println!("    affects {affected}");
                    }
                }
            }
            if !report.is_clean() {
                let error = Error::VerifyFailed {
                    damaged: report.findings.len(),
                };
                eprintln!("error: {error}");
                eprintln!("hint: {}", error.hint());
                return Ok(ExitCode::from(error.code().exit_code() as u8));
            }
            if !cli.json {
                println!("no problems found");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `forget`; prints text unless `json`; returns the report as JSON.
fn forget(
    repository: &Repository,
    args: &ForgetArgs,
    json: bool,
) -> Result<serde_json::Value, Error> {
    if !args.snapshots.is_empty() {
        let removed = repository.forget_snapshots(&args.snapshots, args.dry_run)?;
        if !json {
            for id in &removed {
                println!(
                    "{} {}",
                    if args.dry_run {
                        "would remove"
                    } else {
                        "removed"
                    },
                    &id[..8]
                );
            }
        }
        return Ok(serde_json::json!({ "removed": removed, "dry_run": args.dry_run }));
    }
    let kind = match args.kind.as_deref() {
        None => None,
        Some("full") => Some(SnapshotKind::Full),
        Some("incremental") => Some(SnapshotKind::Incremental),
        Some("differential") => Some(SnapshotKind::Differential),
        Some(other) => {
            return Err(Error::InvalidArgument(format!(
                "--kind {other:?}: expected full, incremental or differential"
            )))
        }
    };
    let options = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: args.keep_last,
            keep_hourly: args.keep_hourly,
            keep_daily: args.keep_daily,
            keep_weekly: args.keep_weekly,
            keep_monthly: args.keep_monthly,
            keep_yearly: args.keep_yearly,
            keep_within: args
                .keep_within
                .as_deref()
                .map(parse_duration)
                .transpose()?,
            keep_tags: args.keep_tag.clone(),
        },
        filter: SnapshotFilter {
            tags: args.tag.clone(),
            source: args.source.clone(),
            host: args.host.clone(),
            kind,
        },
        group_by: GroupBy::parse(&args.group_by)?,
        dry_run: args.dry_run,
        allow_remove_all: args.allow_remove_all,
    };
    let report = repository.forget(&options)?;
    let value =
        serde_json::to_value(&report).map_err(|error| Error::InvalidArgument(error.to_string()))?;
    if json {
        return Ok(value);
    }
    for group in &report.groups {
        println!("{}:", group.group);
        for decision in &group.snapshots {
            let action = match (decision.keep, report.dry_run) {
                (true, _) => format!("keep   ({})", decision.reasons.join(", ")),
                (false, true) => "would remove".to_string(),
                (false, false) => "remove".to_string(),
            };
            println!(
                "  {} {}  {}",
                &decision.id[..8],
                decision
                    .time
                    .get(..19)
                    .unwrap_or(&decision.time)
                    .replace('T', " "),
                action
            );
        }
    }
    println!(
        "{} snapshot(s) {}",
        report.removed.len(),
        if report.dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
    Ok(value)
}

fn prune(
    repository: &Repository,
    options: &PruneOptions,
    json: bool,
    progress: &dyn Progress,
) -> Result<serde_json::Value, Error> {
    let report = repository.prune(options, progress)?;
    let value =
        serde_json::to_value(&report).map_err(|error| Error::InvalidArgument(error.to_string()))?;
    if json {
        return Ok(value);
    }
    println!(
        "{}{} snapshot(s) use {} blob(s); {} unused",
        if report.dry_run { "dry run: " } else { "" },
        report.snapshots,
        report.blobs_used,
        report.blobs_unused
    );
    println!(
        "packs: {} before, {} deleted, {} repacked into {}, {} unindexed deleted; index files {} -> {}",
        report.packs_before,
        report.packs_deleted,
        report.packs_repacked,
        report.packs_written,
        report.packs_unindexed,
        report.index_files_before,
        report.index_files_after
    );
    println!(
        "{} {} ({} -> {}) in {:.2} s",
        if report.dry_run {
            "would free"
        } else {
            "freed"
        },
        human_bytes(report.bytes_freed),
        human_bytes(report.bytes_before),
        human_bytes(report.bytes_after),
        report.duration_seconds
    );
    Ok(value)
}

/// The repository password from --password-file / LSMVAULT_PASSWORD_FILE,
/// LSMVAULT_PASSWORD, or a terminal prompt; `None` when there is none.
fn password(cli: &Cli, prompt: &str) -> Result<Option<String>, Error> {
    if let Some(path) = &cli.password_file {
        let text = std::fs::read_to_string(path).map_err(|error| {
            Error::io(format!("reading password file {}", path.display()), error)
        })?;
        return Ok(Some(text.trim_end_matches(['\n', '\r']).to_string()));
    }
    if let Ok(text) = std::env::var("LSMVAULT_PASSWORD") {
        return Ok(Some(text));
    }
    if std::io::stdin().is_terminal() {
        let text = rpassword::prompt_password(prompt)
            .map_err(|error| Error::io("reading the password from the terminal", error))?;
        return Ok(Some(text));
    }
    Ok(None)
}

/// Opens the repository, asking for the password only if it is encrypted.
fn open_repository(cli: &Cli, repo: &Path) -> Result<Repository, Error> {
    let mut repository = match Repository::open_local(repo) {
        Err(Error::PasswordRequired { location }) => {
            match password(cli, "repository password: ")? {
                Some(password) => Repository::open_local_with_password(repo, &password),
                None => Err(Error::PasswordRequired { location }),
            }
        }
        other => other,
    }?;
    repository.set_lock_retry(cli.retry_lock.unwrap_or_default());
    Ok(repository)
}

/// The password a new repository is encrypted with; `None` only with --no-encryption.
fn init_password(cli: &Cli, no_encryption: bool, repo: &Path) -> Result<Option<String>, Error> {
    if no_encryption {
        return Ok(None);
    }
    let missing = || Error::PasswordRequired {
        location: repo.display().to_string(),
    };
    let first = password(cli, "new repository password: ")?.ok_or_else(missing)?;
    if cli.password_file.is_none()
        && std::env::var_os("LSMVAULT_PASSWORD").is_none()
        && rpassword::prompt_password("repeat the password: ")
            .map_err(|error| Error::io("reading the password from the terminal", error))?
            != first
    {
        return Err(Error::InvalidArgument("the passwords do not match".into()));
    }
    if first.is_empty() {
        return Err(Error::InvalidArgument(
            "an empty password is not allowed".into(),
        ));
    }
    Ok(Some(first))
}

fn new_password(args: &NewPasswordArgs) -> Result<String, Error> {
    let text = if let Some(path) = &args.new_password_file {
        std::fs::read_to_string(path)
            .map_err(|error| Error::io(format!("reading password file {}", path.display()), error))?
            .trim_end_matches(['\n', '\r'])
            .to_string()
    } else if let Ok(text) = std::env::var("LSMVAULT_NEW_PASSWORD") {
        text
    } else if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("new password: ")
            .map_err(|error| Error::io("reading the password from the terminal", error))?;
        let second = rpassword::prompt_password("repeat the new password: ")
            .map_err(|error| Error::io("reading the password from the terminal", error))?;
        if first != second {
            return Err(Error::InvalidArgument("the passwords do not match".into()));
        }
        first
    } else {
        return Err(Error::InvalidArgument(
            "no new password: set LSMVAULT_NEW_PASSWORD or pass --new-password-file".into(),
        ));
    };
    if text.is_empty() {
        return Err(Error::InvalidArgument(
            "an empty password is not allowed".into(),
        ));
    }
    Ok(text)
}

fn report_key(json: bool, action: &str, name: &str) -> Result<(), Error> {
    if json {
        print_json(&serde_json::json!({ "action": action, "key": name }))
    } else {
        println!("{action} {}", name.get(..12).unwrap_or(name));
        Ok(())
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
