//! `lsmvault prune`: deletes data no snapshot references and repacks packs
//! that are mostly unused. `forget --prune` runs the same report.

use std::process::ExitCode;

use clap::Args;
use lsmvault::{Error, Progress, PruneOptions, PruneReport, Repository};

use super::Context;
use crate::output::{human_bytes, print_json, to_json, Output};

#[derive(Args)]
pub struct PruneArgs {
    /// Repack packs with more than this percentage of unused bytes.
    #[arg(long, default_value_t = 10.0, value_name = "PERCENT")]
    max_unused: f64,
    /// Report only.
    #[arg(long)]
    dry_run: bool,
}

pub fn run(context: &Context, args: &PruneArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let options = PruneOptions {
        max_unused_percent: args.max_unused,
        dry_run: args.dry_run,
    };
    let pruned = prune(&repository, &options, context.output(), context.progress())?;
    if context.output().is_json() {
        print_json(&pruned)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prunes; prints the report as text unless `output` is JSON; returns it as
/// JSON for the caller to print (alone, or with what ran before).
pub fn prune(
    repository: &Repository,
    options: &PruneOptions,
    output: Output,
    progress: &dyn Progress,
) -> Result<serde_json::Value, Error> {
    let report = repository.prune(options, progress)?;
    let value = to_json(&report)?;
    if output.prints_summary() || (options.dry_run && !output.is_json()) {
        print_text(&report);
    }
    Ok(value)
}

fn print_text(report: &PruneReport) {
    outln!(
        "{}{} snapshot(s) use {} blob(s); {} unused",
        if report.dry_run { "dry run: " } else { "" },
        report.snapshots,
        report.blobs_used,
        report.blobs_unused
    );
    outln!(
        "packs: {} before, {} deleted, {} repacked into {}, {} unindexed deleted; index files {} -> {}",
        report.packs_before,
        report.packs_deleted,
        report.packs_repacked,
        report.packs_written,
        report.packs_unindexed,
        report.index_files_before,
        report.index_files_after
    );
    outln!(
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
}
