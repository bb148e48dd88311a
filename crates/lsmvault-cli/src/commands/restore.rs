//! `lsmvault restore`: a snapshot into a directory, or with `--at`, `--seq`
//! or `--tag` a database as it was at a point in time (a snapshot plus the
//! archived WAL up to that point).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use lsmvault::ops::restore::point_in_time::PointInTime;
use lsmvault::ops::restore::point_in_time::RecoveryReport;
use lsmvault::{Error, RestoreOptions, Timestamp};
use serde::Serialize;

use super::Context;
use crate::output::{human_bytes, short_id, warn_damaged};

#[derive(Args)]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, `latest` or `latest:TAG` (not with --at/--seq/--tag).
    #[arg(required_unless_present_any = ["at", "seq", "tag"], conflicts_with_all = ["at", "seq", "tag"])]
    snapshot: Option<String>,
    /// Directory to restore into (must be absent or empty, unless --delta).
    #[arg(long, short = 't')]
    target: PathBuf,
    /// Restore only the paths this glob selects, and what is below them
    /// (repeatable; `*` and `?` within a name, `**` any depth, e.g.
    /// `**/*.sst`). A pattern that selects nothing is an error.
    #[arg(long)]
    include: Vec<String>,
    /// Leave out the paths this glob selects, and what is below them (repeatable).
    #[arg(long)]
    exclude: Vec<String>,
    /// Keep files in the target that already match; rewrite the rest and
    /// remove what the snapshot does not have.
    #[arg(long)]
    delta: bool,
    /// Point in time, RFC 3339 with a zone (2026-11-23T14:32:05Z,
    /// 2026-11-23T15:32:05+01:00): the newest state known to have existed then.
    #[arg(long, conflicts_with_all = ["seq", "tag", "include", "exclude", "delta"])]
    at: Option<String>,
    /// Point in time as a sequence number: every write batch ending at or before it.
    #[arg(long, conflicts_with_all = ["tag", "include", "exclude", "delta"])]
    seq: Option<u64>,
    /// A restore point (`lsmvault tag`) or snapshot tag.
    #[arg(long, conflicts_with_all = ["include", "exclude", "delta"])]
    tag: Option<String>,
    /// The database (IDENTITY) to recover, when the repository holds
    /// several; with a snapshot selector, `latest` among its snapshots.
    #[arg(long)]
    database_id: Option<String>,
    /// Resolve `latest` among the snapshots of this host only.
    #[arg(long, conflicts_with_all = ["at", "seq", "tag"])]
    host: Option<String>,
    /// Resolve `latest` among the snapshots of this source path only.
    #[arg(long, conflicts_with_all = ["at", "seq", "tag"])]
    path: Option<String>,
    /// Write nothing: list what would be written (kept, rewritten, removed
    /// with --delta), and estimate the time from throughputs measured now.
    #[arg(long, conflicts_with_all = ["at", "seq", "tag"])]
    pub dry_run: bool,
}

impl RestoreArgs {
    /// The point in time asked for with `--at`, `--seq` or `--tag` (clap
    /// lets through at most one); `None` for a plain snapshot restore.
    fn point_in_time(&self) -> Result<Option<PointInTime>, Error> {
        if let Some(at) = &self.at {
            let time = Timestamp::parse(at)
                .map_err(|error| Error::InvalidArgument(format!("--at: {error}")))?;
            return Ok(Some(PointInTime::Time(time.system_time())));
        }
        if let Some(sequence) = self.seq {
            return Ok(Some(PointInTime::Sequence(sequence)));
        }
        Ok(self.tag.clone().map(PointInTime::Tag))
    }
}

pub fn run(context: &Context, args: &RestoreArgs) -> Result<ExitCode, Error> {
    // A missing --repo is reported before a malformed --at, as it always was.
    context.location()?;
    match args.point_in_time()? {
        Some(point) => restore_point_in_time(context, args, &point),
        None => restore_snapshot(context, args),
    }
}

fn restore_snapshot(context: &Context, args: &RestoreArgs) -> Result<ExitCode, Error> {
    let snapshot = args.snapshot.as_deref().unwrap_or("latest");
    let repository = context.open_repository()?;
    if snapshot == "latest" || snapshot.starts_with("latest:") {
        // `latest` chooses among intact snapshots; a damaged file's time is
        // unknown, so any of them may be newer than the one restored.
        let (_, damaged) = repository.snapshots_checked()?;
        warn_damaged(&damaged);
    }
    let options = RestoreOptions {
        delta: args.delta,
        include: args.include.clone(),
        exclude: args.exclude.clone(),
    };
    let filter = crate::filter::build(
        &[],
        args.host.as_deref(),
        args.path.as_deref(),
        args.database_id.as_deref(),
    );
    // Resolved under the filter, then named by full id.
    let chosen = if filter.is_empty() {
        snapshot.to_string()
    } else {
        repository
            .find_snapshot_filtered(snapshot, &filter)?
            .id
            .to_hex()
    };
    if args.dry_run {
        let plan = repository.restore_plan(&chosen, &args.target, &options)?;
        return super::restore_plan::show(context, &plan);
    }
    let stats = repository.restore(&chosen, &args.target, &options, context.progress())?;
    context.output().summary(&stats, |stats| {
        outln!(
            "restored snapshot {} to {}: {} files ({} hard links, {} kept), {} directories, {} symlinks, {} written in {:.2} s",
            short_id(&stats.snapshot),
            args.target.display(),
            stats.files,
            stats.hard_links,
            stats.files_kept,
            stats.directories,
            stats.symlinks,
            human_bytes(stats.bytes_written),
            stats.duration_seconds
        );
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The time `--at` was read as: the text as given and the instant in UTC.
#[derive(Serialize)]
struct ResolvedTime {
    given: String,
    utc: Timestamp,
}

/// A recovery report with the resolved `--at` time beside it (in JSON the
/// report's fields plus `at`).
#[derive(Serialize)]
struct ShownRecovery {
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<ResolvedTime>,
    #[serde(flatten)]
    report: RecoveryReport,
}

fn restore_point_in_time(
    context: &Context,
    args: &RestoreArgs,
    point: &PointInTime,
) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let report = repository.restore_point_in_time(
        point,
        args.database_id.as_deref(),
        &args.target,
        context.progress(),
    )?;
    warn_damaged(&report.damaged_snapshots);
    let shown = ShownRecovery {
        at: match point {
            PointInTime::Time(time) => Some(ResolvedTime {
                given: args.at.clone().unwrap_or_default(),
                utc: Timestamp::from(*time),
            }),
            _ => None,
        },
        report,
    };
    context.output().summary(&shown, |ShownRecovery { at, report }| {
        if let Some(at) = at {
            // Echo the instant the time resolved to, so a misread zone shows.
            outln!("--at {} is {} (UTC)", at.given, at.utc);
        }
        outln!(
            "restored database {} to {} at sequence {} (asked: {}): snapshot {} (sequence {}) + {} WAL segment(s)",
            report.database_id,
            args.target.display(),
            report.restored_sequence,
            report.target_sequence,
            short_id(&report.snapshot),
            report.snapshot_sequence,
            report.segments.len()
        );
        for segment in &report.segments {
            outln!(
                "  {} sequences {}..={} ({} bytes{})",
                segment.file_name,
                segment.first_sequence,
                segment.last_sequence,
                segment.bytes,
                if segment.cut { ", cut" } else { "" }
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
