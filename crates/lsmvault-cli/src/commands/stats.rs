//! `lsmvault stats`: sizes and deduplication of snapshots, and what
//! forgetting each one would free.

use std::process::ExitCode;

use clap::Args;
use lsmvault::{Error, RepositoryStats};

use super::Context;
use crate::output::warn_damaged;
use crate::output::{human_bytes, short_id, table_time};

#[derive(Args)]
pub struct StatsArgs {
    /// Snapshots to report (all when none).
    snapshots: Vec<String>,
}

pub fn run(context: &Context, args: &StatsArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let stats = repository.stats(&args.snapshots)?;
    context.output().show(&stats, print_text)?;
    Ok(ExitCode::SUCCESS)
}

fn print_text(stats: &RepositoryStats) {
    outln!(
        "{:<10} {:<23} {:>8} {:>12} {:>12} {:>12}",
        "id",
        "time",
        "files",
        "logical",
        "stored",
        "unique"
    );
    for size in &stats.snapshots {
        outln!(
            "{:<10} {:<23} {:>8} {:>12} {:>12} {:>12}",
            short_id(&size.id),
            table_time(size.time),
            size.files,
            human_bytes(size.logical_bytes),
            human_bytes(size.stored_bytes),
            human_bytes(size.unique_bytes)
        );
    }
    outln!(
        "selection: {} logical -> {} unique after deduplication (ratio {:.2}) -> {} stored after compression (ratio {:.2}{}); {:.2} overall",
        human_bytes(stats.logical_bytes),
        human_bytes(stats.raw_bytes),
        stats.deduplication_ratio,
        human_bytes(stats.stored_bytes),
        stats.compression_ratio,
        if stats.encryption_overhead_bytes > 0 {
            format!(
                ", of which {} encryption overhead",
                human_bytes(stats.encryption_overhead_bytes)
            )
        } else {
            String::new()
        },
        stats.total_ratio
    );
    outln!(
        "repository: {} ({} in {} packs), {} index files; {} data blobs, {} tree blobs",
        human_bytes(stats.repository_bytes),
        human_bytes(stats.pack_bytes),
        stats.packs,
        stats.index_files,
        stats.data_blobs,
        stats.tree_blobs
    );
    if stats.parity_bytes > 0 {
        outln!("parity: {}", human_bytes(stats.parity_bytes));
    }
    warn_damaged(&stats.damaged_snapshots);
}
