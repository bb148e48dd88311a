//! `lsmvault wal archive` and `lsmvault wal ls`: continuous archiving of a
//! database's write-ahead log, and the archived timeline that point-in-time
//! restores draw on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use lsmvault::backend::LocalBackend;
use lsmvault::ops::wal::{ArchiveOptions, ArchiveReport, Round, Timeline, WalPickup, WatchOptions};
use lsmvault::{Error, Repository};

use super::Context;
use crate::output::{human_bytes, print_json_line, short_id, time_to_seconds, warn_damaged};
use crate::signals;

#[derive(Subcommand)]
pub enum WalCommand {
    /// Archive every new or grown WAL segment of a database (`*.log`, `archive/*.log`).
    Archive {
        /// The live database directory.
        database: PathBuf,
        /// Keep archiving every INTERVAL (e.g. 10s, 1m) until SIGINT/SIGTERM,
        /// hard-linking each new WAL file into the holding directory the
        /// moment it appears (inotify), so the database deleting it loses nothing.
        #[arg(long, value_name = "INTERVAL")]
        watch: Option<String>,
        /// The WAL holding directory (default DBDIR/.lsmvault-wal-hold; must
        /// be on the database's file system).
        #[arg(long, value_name = "DIR")]
        hold_dir: Option<PathBuf>,
        /// The database id, for databases without an IDENTITY file.
        #[arg(long)]
        database_id: Option<String>,
    },
    /// The archived timeline: segments, recoverable windows, gaps.
    Ls,
}

pub fn run(context: &Context, command: &WalCommand) -> Result<ExitCode, Error> {
    match command {
        WalCommand::Archive {
            database,
            watch,
            hold_dir,
            database_id,
        } => {
            let options = ArchiveOptions {
                database_id: database_id.clone(),
                hold_dir: hold_dir.clone(),
                ..ArchiveOptions::default()
            };
            archive(context, database, watch.as_deref(), options)
        }
        WalCommand::Ls => list(context),
    }
}

/// Archives once, or with `watch` every interval until SIGINT or SIGTERM
/// (then once more, and exits 130 / 143). A round that finds a new gap
/// fails (exit 34) after printing what it archived.
fn archive(
    context: &Context,
    database: &Path,
    watch: Option<&str>,
    options: ArchiveOptions,
) -> Result<ExitCode, Error> {
    let interval = watch.map(parse_interval).transpose()?;
    // Holding new WAL files starts before the repository is opened (a
    // password's key derivation takes a while): a restarted watcher is
    // blind for as short a time as possible.
    // Each repository has its own part of the holding directory, named by
    // its id: read from the config now, checked once it is opened.
    let pickup = interval
        .map(|_| {
            let backend = LocalBackend::new(context.location()?);
            let repository_id = Repository::unverified_id(&backend)?;
            WalPickup::start(database, options.hold_dir.as_deref(), &repository_id)
        })
        .transpose()?;
    let repository = match context.open_repository() {
        Ok(repository) => repository,
        Err(error) => {
            if let Some(pickup) = pickup {
                pickup.abandon();
            }
            return Err(error);
        }
    };
    let print = |report: &ArchiveReport| -> Result<(), Error> {
        // On stderr in both output modes.
        for warning in &report.warnings {
            eprintln!("warning: {warning}");
        }
        // One JSON line per round, so that a watching archiver's output streams.
        if context.output().is_json() {
            print_json_line(report)?;
        } else {
            print_archive_report(report, context.output().prints_summary());
        }
        Ok(())
    };
    let (Some(interval), Some(pickup)) = (interval, pickup) else {
        let options = ArchiveOptions {
            release_held: true,
            ..options
        };
        let report = repository.archive_wal(database, &options)?;
        print(&report)?;
        report.check_gaps()?;
        return Ok(ExitCode::SUCCESS);
    };
    let watch = WatchOptions {
        interval,
        interrupt: signals::install(),
    };
    repository.watch_wal(
        database,
        &options,
        pickup,
        &watch,
        &mut |round| match round {
            Round::Archived(report) => print(report),
            Round::Skipped(error) => {
                let next = humantime::format_duration(interval);
                eprintln!("warning: archive round skipped, retried in {next}: {error}");
                Ok(())
            }
        },
    )?;
    // Only a signal ends a watcher without an error.
    Ok(signals::stopped_exit_code())
}

fn parse_interval(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text).map_err(|error| {
        Error::InvalidArgument(format!("--watch \"{text}\": {error} (e.g. 10s, 1m)"))
    })
}

/// The archive round as text; `summary` false (`-q`) keeps only the warnings.
fn print_archive_report(report: &ArchiveReport, summary: bool) {
    for segment in report
        .segments
        .iter()
        .filter(|segment| segment.status != "unchanged")
    {
        let sequences = match (segment.first_sequence, segment.last_sequence) {
            (Some(first), Some(last)) => format!("sequences {first}..={last}"),
            _ => "no write batches".to_string(),
        };
        if summary {
            outln!(
                "{} {} ({} bytes, {sequences}, tail {})",
                segment.status,
                segment.file_name,
                segment.size,
                segment.tail
            );
        }
        if segment.tail != "clean" {
            eprintln!("warning: {}: {}", segment.file_name, segment.tail);
        }
    }
    if !summary {
        return;
    }
    if report.held_released > 0 {
        outln!(
            "released {} held WAL link(s) whose content is archived",
            report.held_released
        );
    }
    outln!(
        "archived database {}: {} read, {} new, {} stored in {:.2} s",
        report.database_id,
        human_bytes(report.bytes_read),
        human_bytes(report.bytes_added),
        human_bytes(report.bytes_stored),
        report.duration_seconds
    );
}

fn list(context: &Context) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let (timelines, skipped) = repository.wal_timeline()?;
    // On stderr in both output modes: the JSON on stdout keeps its shape.
    warn_damaged(&skipped.snapshots);
    for object in &skipped.wal_objects {
        eprintln!(
            "warning: WAL record {} is damaged and was skipped: {} (`lsmvault wal archive` archives its segment again while the database still has it)",
            object.name, object.reason
        );
    }
    context.output().show(&timelines, |timelines| {
        for timeline in timelines {
            print_timeline(timeline);
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

// Times here keep their `T` and `Z` (RFC 3339, unlike the snapshot tables):
// the timeline has always been printed that way, and `restore --at` takes
// them as they are.
fn print_timeline(timeline: &Timeline) {
    outln!("database {}:", timeline.database_id);
    for segment in &timeline.segments {
        outln!(
            "  {:<14} {:>12} sequences {:>10} ..= {:<10} {} version(s), last {} ({})",
            segment.file_name,
            human_bytes(segment.size),
            segment
                .first_sequence
                .map_or("-".into(), |value| value.to_string()),
            segment
                .last_sequence
                .map_or("-".into(), |value| value.to_string()),
            segment.versions,
            time_to_seconds(segment.archived_at),
            segment.tail
        );
    }
    for window in &timeline.windows {
        outln!(
            "  recoverable: sequences {} ..= {} from snapshot {} ({})",
            window.from_sequence,
            window.to_sequence,
            short_id(&window.snapshot),
            time_to_seconds(window.snapshot_time)
        );
    }
    for gap in &timeline.gaps {
        outln!("  GAP: {gap}");
    }
    for point in &timeline.restore_points {
        outln!(
            "  restore point \"{}\" at sequence {} ({})",
            point.name,
            point.sequence,
            point.time
        );
    }
}
