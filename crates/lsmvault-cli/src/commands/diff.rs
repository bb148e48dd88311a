//! `lsmvault diff`: the files, and the storage, that differ between two snapshots.

use std::process::ExitCode;

use clap::Args;
use lsmvault::{DiffReport, Error};

use super::Context;
use crate::filter::FilterArgs;
use crate::output::human_bytes;

#[derive(Args)]
pub struct DiffArgs {
    from: String,
    to: String,
    /// Resolve `latest` (or check the ids) among these snapshots only.
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(context: &Context, args: &DiffArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let filter = args.filter.filter();
    // Resolved here under the filter, then named by full id: `diff` itself
    // knows no filter.
    let resolve = |selector: &str| -> Result<String, Error> {
        if filter.is_empty() {
            return Ok(selector.to_string());
        }
        Ok(repository
            .find_snapshot_filtered(selector, &filter)?
            .id
            .to_hex())
    };
    let report = repository.diff(&resolve(&args.from)?, &resolve(&args.to)?)?;
    context.output().show(&report, print_text)?;
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &DiffReport) {
    for change in &report.changes {
        let sign = match change.change {
            "added" => "+",
            "removed" => "-",
            "metadata" => "U",
            _ => "M",
        };
        outln!(
            "{sign} {:<50} {:>12} -> {:>12}  ({} new in storage)",
            change.path,
            human_bytes(change.size_before),
            human_bytes(change.size_after),
            human_bytes(change.new_bytes)
        );
    }
    outln!(
        "{} added, {} removed, {} modified; storage: {} added, {} no longer referenced",
        report.added,
        report.removed,
        report.modified,
        human_bytes(report.blob_bytes_added),
        human_bytes(report.blob_bytes_removed)
    );
}
