//! `lsmvault repair index`: rebuilds the index from the pack headers (after
//! an index file was damaged or lost), like `restic repair index`.
//! `lsmvault repair snapshots`: rewrites the snapshots that reference lost
//! data without it, naming what each rewrite drops, like `restic repair
//! snapshots`.
//! `lsmvault repair packs`: rebuilds lost and damaged packs from parity;
//! for packs it cannot rebuild it names the snapshots and files that lose
//! data (from a verify run after the repair).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use lsmvault::{
    Error, ErrorCode, Finding, ReadData, RepairIndexReport, RepairPacksOptions, RepairPacksReport,
    RepairSnapshotsOptions, RepairSnapshotsReport, Repository, VerifyOptions,
};
use serde::Serialize;

use super::Context;
use crate::exit;
use crate::output::{short_id, warn_damaged};

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the header of every pack: writes new index
    /// files, then deletes the old ones; damaged packs are skipped and named.
    Index,
    /// Rewrite every snapshot (or those given) that references lost data:
    /// files with a lost chunk are dropped, unreadable directories kept
    /// empty, and the new snapshot records every dropped path and why.
    Snapshots(RepairSnapshotsArgs),
    /// Rebuild lost or damaged packs from their parity group (repositories
    /// created with `init --parity`), rewrite lost parity objects, and name
    /// what cannot be rebuilt with the snapshots and files it affects.
    Packs {
        /// Report what would be rebuilt; write and delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Args)]
pub struct RepairSnapshotsArgs {
    /// Snapshot ids, unique prefixes, `latest` or `latest:TAG` (default: all).
    snapshots: Vec<String>,
    /// Delete each original once its rewrite is written.
    #[arg(long)]
    forget: bool,
    /// Only say what would be dropped; write and delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Also read every referenced blob: one that does not read back and
    /// verify counts as lost (otherwise only missing index entries and packs).
    #[arg(long)]
    read_data: bool,
}

/// `repair packs` output: the library's report, and the verify findings
/// about the packs it could not rebuild (with their snapshots and files).
#[derive(Serialize)]
struct PacksOutput {
    #[serde(flatten)]
    report: RepairPacksReport,
    lost_affects: Vec<Finding>,
}

pub fn run(context: &Context, command: &RepairCommand) -> Result<ExitCode, Error> {
    let mut repository = context.open_repository()?;
    // The old index files are about to be replaced: a damaged one is
    // expected here, and not worth a warning.
    repository.set_index_damage_hook(Box::new(|_| {}));
    match command {
        RepairCommand::Index => {
            let report = repository.repair_index(context.progress())?;
            context.output().summary(&report, print_index_report)?;
        }
        RepairCommand::Snapshots(args) => {
            let options = RepairSnapshotsOptions {
                snapshots: args.snapshots.clone(),
                forget: args.forget,
                dry_run: args.dry_run,
                read_data: args.read_data,
            };
            let report = repository.repair_snapshots(&options, context.progress())?;
            context.output().summary(&report, print_snapshots_report)?;
            warn_damaged(&report.damaged_snapshot_files);
        }
        RepairCommand::Packs { dry_run } => {
            let options = RepairPacksOptions { dry_run: *dry_run };
            let report = repository.repair_packs(&options, context.progress())?;
            let lost_affects = findings_of_lost_packs(&repository, &report, context)?;
            let lost = report.lost.len();
            let output = PacksOutput {
                report,
                lost_affects,
            };
            context.output().summary(&output, print_packs_report)?;
            if lost > 0 {
                eprintln!("error: {lost} pack(s) could not be rebuilt from parity");
                return Ok(exit::exit_code(ErrorCode::VerifyFailed));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The verify findings that name a pack `repair packs` could not rebuild,
/// each with the snapshots and files that lose data. A pack that is present
/// but damaged is only found by reading it, so then verify reads every pack.
fn findings_of_lost_packs(
    repository: &Repository,
    report: &RepairPacksReport,
    context: &Context,
) -> Result<Vec<Finding>, Error> {
    if report.lost.is_empty() {
        return Ok(Vec::new());
    }
    let read_data = if report.lost.iter().any(|pack| pack.problem != "missing") {
        ReadData::All
    } else {
        ReadData::None
    };
    let verified = repository.verify(&VerifyOptions { read_data }, context.progress())?;
    Ok(verified
        .findings
        .into_iter()
        .filter(|finding| {
            report
                .lost
                .iter()
                .any(|pack| finding.object.ends_with(&format!("pack {}", pack.pack)))
        })
        .collect())
}

fn print_packs_report(output: &PacksOutput) {
    let report = &output.report;
    let would = if report.dry_run {
        "would rebuild"
    } else {
        "rebuilt"
    };
    outln!(
        "checked {} pack(s) and {} parity object(s) in {} group(s)",
        report.packs_checked,
        report.parity_objects_checked,
        report.groups
    );
    for pack in &report.rebuilt {
        outln!(
            "{would} pack {} ({}) from group {}",
            pack.pack,
            pack.problem,
            pack.group
        );
    }
    for change in &report.parity_rewritten {
        outln!("rewrote parity object {}: {}", change.name, change.reason);
    }
    for change in &report.parity_removed {
        outln!(
            "removed damaged parity object {}: {}",
            change.name,
            change.reason
        );
    }
    if report.packs_protected > 0 {
        outln!(
            "protected {} pack(s) no parity group covered",
            report.packs_protected
        );
    }
    for pack in &report.lost {
        outln!(
            "LOST pack {} ({}): {}; {} blob(s)",
            pack.pack,
            pack.problem,
            pack.reason,
            pack.blobs.len()
        );
        for blob in &pack.blobs {
            outln!("    blob {blob}");
        }
    }
    for finding in &output.lost_affects {
        for affected in &finding.affected {
            outln!("    {} affects {affected}", finding.object);
        }
    }
    if report.rebuilt.is_empty() && report.lost.is_empty() && report.parity_rewritten.is_empty() {
        outln!("nothing to repair");
    }
}

fn print_index_report(report: &RepairIndexReport) {
    outln!(
        "read {} pack header(s); indexed {} blob(s) in {} new index file(s); removed {} old index file(s)",
        report.packs_read,
        report.blobs_indexed,
        report.index_files_written,
        report.index_files_removed
    );
    if report.blobs_kept_from_old_index > 0 {
        outln!(
            "kept {} entries of damaged packs from intact old index files",
            report.blobs_kept_from_old_index
        );
    }
    for pack in &report.damaged_packs {
        outln!("skipped damaged pack {}: {}", pack.name, pack.reason);
    }
}

fn print_snapshots_report(report: &RepairSnapshotsReport) {
    let would = if report.dry_run {
        "would drop"
    } else {
        "dropped"
    };
    for repaired in &report.repaired {
        let outcome = match (&repaired.repaired, repaired.forgotten) {
            (None, _) => "would be rewritten (dry run)".to_string(),
            (Some(id), false) => format!("rewritten as {}", short_id(id)),
            (Some(id), true) => format!("rewritten as {} and forgotten", short_id(id)),
        };
        outln!(
            "snapshot {} {outcome}; {would} {} path(s):",
            short_id(&repaired.original),
            repaired.dropped.len()
        );
        for dropped in &repaired.dropped {
            outln!("  {would} {}: {}", dropped.path, dropped.reason);
        }
    }
    for snapshot in &report.unrepairable {
        outln!(
            "cannot repair snapshot {}: {}",
            snapshot.name,
            snapshot.reason
        );
    }
    outln!(
        "checked {} snapshot(s); {} reference lost data{}",
        report.snapshots_checked,
        report.repaired.len(),
        if report.dry_run {
            " (dry run: nothing written)"
        } else {
            ""
        }
    );
}
