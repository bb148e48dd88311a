//! `lsmvault repair index`: rebuilds the index from the pack headers (after
//! an index file was damaged or lost), like `restic repair index`.
//! `lsmvault repair snapshots`: rewrites the snapshots that reference lost
//! data without it, naming what each rewrite drops, like `restic repair
//! snapshots`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use lsmvault::{Error, RepairIndexReport, RepairSnapshotsOptions, RepairSnapshotsReport};

use super::Context;
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

pub fn run(context: &Context, command: &RepairCommand) -> Result<ExitCode, Error> {
    let mut repository = context.open_repository()?;
    // The old index files are about to be replaced: a damaged one is
    // expected here, and not worth a warning.
    repository.set_index_damage_hook(Box::new(|_| {}));
    match command {
        RepairCommand::Index => {
            let report = repository.repair_index(context.progress())?;
            context.output().show(&report, print_index_report)?;
        }
        RepairCommand::Snapshots(args) => {
            let options = RepairSnapshotsOptions {
                snapshots: args.snapshots.clone(),
                forget: args.forget,
                dry_run: args.dry_run,
                read_data: args.read_data,
            };
            let report = repository.repair_snapshots(&options, context.progress())?;
            context.output().show(&report, print_snapshots_report)?;
            warn_damaged(&report.damaged_snapshot_files);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_index_report(report: &RepairIndexReport) {
    println!(
        "read {} pack header(s); indexed {} blob(s) in {} new index file(s); removed {} old index file(s)",
        report.packs_read,
        report.blobs_indexed,
        report.index_files_written,
        report.index_files_removed
    );
    if report.blobs_kept_from_old_index > 0 {
        println!(
            "kept {} entries of damaged packs from intact old index files",
            report.blobs_kept_from_old_index
        );
    }
    for pack in &report.damaged_packs {
        println!("skipped damaged pack {}: {}", pack.name, pack.reason);
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
        println!(
            "snapshot {} {outcome}; {would} {} path(s):",
            short_id(&repaired.original),
            repaired.dropped.len()
        );
        for dropped in &repaired.dropped {
            println!("  {would} {}: {}", dropped.path, dropped.reason);
        }
    }
    for snapshot in &report.unrepairable {
        println!(
            "cannot repair snapshot {}: {}",
            snapshot.name, snapshot.reason
        );
    }
    println!(
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
