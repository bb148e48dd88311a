//! `lsmvault repair index`: rebuilds the index from the pack headers (after
//! an index file was damaged or lost), like `restic repair index`.

use std::process::ExitCode;

use clap::Subcommand;
use lsmvault::{Error, RepairIndexReport};

use super::Context;

#[derive(Subcommand)]
pub enum RepairCommand {
    /// Rebuild the index from the header of every pack: writes new index
    /// files, then deletes the old ones; damaged packs are skipped and named.
    Index,
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
