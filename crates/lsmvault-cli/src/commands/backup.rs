//! `lsmvault backup`: a new snapshot of a directory, or with `--live` of a
//! checkpoint taken of a live database first. An incomplete snapshot (some
//! files unreadable) is kept, warned about, and ends with its own exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use lsmvault::lsm::checkpoint::CheckpointReport;
use lsmvault::{
    BackupMode, BackupOptions, BackupOutcome, Error, ErrorCode, InitOptions, Repository, Timestamp,
};

use super::checkpoint::FreezeArgs;
use super::Context;
use crate::output::{human_bytes, short_id};
use crate::{exit, password, signals};

#[derive(Args)]
pub struct BackupArgs {
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
    /// Read back and check every blob the backup would reuse (and every
    /// file, none taken from the parent unread); write again those that are
    /// damaged. Without it, only blobs whose pack is missing are rewritten.
    #[arg(long)]
    verify_existing: bool,
    /// The database's identity, for directories that record none (RocksDB
    /// checkpoints without IDENTITY): lets `restore --seq/--at` start from
    /// this snapshot. Use the live database's IDENTITY.
    #[arg(long)]
    database_id: Option<String>,
    /// Leave out paths this glob matches, relative to SOURCE (repeatable;
    /// `*.log` at any depth, `/archive` or `db/tmp/*` from SOURCE's root,
    /// `**` any depth); an excluded directory is not read at all.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Read exclude globs from FILE, one per line (`#` comments and blank
    /// lines ignored; repeatable).
    #[arg(long, value_name = "FILE")]
    exclude_file: Vec<PathBuf>,
    /// Date the snapshot at this time instead of now (RFC 3339 with a zone,
    /// e.g. 2026-12-01T02:00:00Z): for a checkpoint taken earlier.
    #[arg(long, value_name = "TIME")]
    time: Option<String>,
    #[command(flatten)]
    freeze: FreezeArgs,
}

impl BackupArgs {
    /// `--exclude` patterns, then those of each `--exclude-file`.
    fn excludes(&self) -> Result<Vec<String>, Error> {
        let mut patterns = self.exclude.clone();
        for path in &self.exclude_file {
            let text = std::fs::read_to_string(path).map_err(|error| {
                Error::io(format!("reading exclude file {}", path.display()), error)
            })?;
            patterns.extend(exclude_lines(&text));
        }
        lsmvault::ops::backup::check_excludes(&patterns)?;
        Ok(patterns)
    }

    fn options(&self, interrupt: &lsmvault::Interrupt) -> Result<BackupOptions, Error> {
        Ok(BackupOptions {
            excludes: self.excludes()?,
            tags: self.tag.clone(),
            mode: if self.full {
                BackupMode::Full
            } else if self.differential {
                BackupMode::Differential
            } else {
                BackupMode::Incremental
            },
            parent: self.parent.clone(),
            host: self.host.clone(),
            compression: self.compression.as_deref().map(str::parse).transpose()?,
            verify_existing: self.verify_existing,
            database_id: self.database_id.clone(),
            time: self
                .time
                .as_deref()
                .map(|text| {
                    Timestamp::parse(text)
                        .map(Timestamp::system_time)
                        .map_err(|error| Error::InvalidArgument(format!("--time: {error}")))
                })
                .transpose()?,
            interrupt: interrupt.clone(),
            ..BackupOptions::default()
        })
    }
}

pub fn run(context: &Context, args: &BackupArgs) -> Result<ExitCode, Error> {
    let interrupt = signals::install();
    // Options first: a bad exclude file fails before a repository is
    // opened (or created by --init).
    let options = args.options(&interrupt)?;
    let repository = open_or_create(context, args)?;
    let progress = context.progress();
    let (outcome, live) = if args.live {
        let checkpoint = args.freeze.options(&interrupt);
        let (outcome, report) =
            repository.backup_live(&args.source, &checkpoint, &options, progress)?;
        (outcome, Some(report))
    } else {
        (repository.backup(&args.source, &options, progress)?, None)
    };
    let snapshot = &outcome.snapshot;
    let report = serde_json::json!({
        "id": outcome.id,
        "snapshot": snapshot,
        "checkpoint": live,
        "blobs_rewritten": outcome.blobs_rewritten,
    });
    context
        .output()
        .summary(&report, |_| print_text(&outcome, live.as_ref(), args.full))?;
    for warning in &snapshot.warnings {
        eprintln!("warning: {warning}");
    }
    if snapshot.incomplete {
        eprintln!(
            "warning: snapshot {} is incomplete: some files could not be read",
            short_id(&outcome.id)
        );
        return Ok(exit::exit_code(ErrorCode::IncompleteBackup));
    }
    Ok(ExitCode::SUCCESS)
}

/// The patterns of an exclude file: one per line, surrounding blanks
/// trimmed, blank lines and `#` comments skipped (as restic's).
fn exclude_lines(text: &str) -> impl Iterator<Item = String> + '_ {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
}

/// The repository, created first with `--init` when there is none.
fn open_or_create(context: &Context, args: &BackupArgs) -> Result<Repository, Error> {
    match context.open_repository() {
        Err(Error::RepositoryNotFound { .. }) if args.init => {
            let location = context.location()?;
            let options = InitOptions {
                password: password::new_repository_password(
                    context.password_sources(),
                    args.no_encryption,
                    location,
                )?,
                ..InitOptions::default()
            };
            let mut repository = Repository::init(context.backend()?, options)?;
            repository.set_lock_retry(context.lock_retry());
            Ok(repository)
        }
        other => other,
    }
}

fn print_text(outcome: &BackupOutcome, live: Option<&CheckpointReport>, full: bool) {
    if let Some(report) = live {
        for leftover in &report.leftovers_removed {
            outln!(
                "removed the temporary checkpoint of an earlier run that was killed: {}",
                leftover.display()
            );
        }
        outln!(
            "live checkpoint: {} linked, {} copied; writes paused {:.1} ms",
            report.linked,
            report.copied,
            report.pause_seconds * 1000.0
        );
    }
    let snapshot = &outcome.snapshot;
    let stats = &snapshot.stats;
    outln!(
        "snapshot {} ({}) of {}",
        short_id(&outcome.id),
        snapshot.kind,
        snapshot.source
    );
    match &snapshot.parent {
        Some(parent) => outln!("parent {}", short_id(parent)),
        None if full => outln!("no parent (--full)"),
        None => outln!("no parent (first backup of this database)"),
    }
    outln!(
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
    if !snapshot.excludes.is_empty() {
        outln!(
            "excluded: {} entries ({} pattern(s); a directory counts once)",
            stats.excluded,
            snapshot.excludes.len()
        );
    }
    if outcome.blobs_rewritten > 0 {
        outln!(
            "healed: {} blobs written again (their pack was missing or damaged)",
            outcome.blobs_rewritten
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclude_files_skip_comments_and_blank_lines_and_trim() {
        let text = "# caches\n\n  *.tmp  \n/archive\r\n   # indented comment\nLOG*\n";
        let lines: Vec<String> = exclude_lines(text).collect();
        assert_eq!(lines, ["*.tmp", "/archive", "LOG*"]);
    }
}
