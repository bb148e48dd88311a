//! `lsmvault find`: which snapshots hold a path matching a glob, or a table
//! file of a given number (`--sst 123`). One line per match; `--json` gives
//! the whole report.

use std::process::ExitCode;

use clap::Args;
use lsmvault::ops::find::{FindOptions, FindReport};
use lsmvault::Error;

use super::Context;
use crate::output::{human_bytes, printable_path, short_id, warn_damaged};

#[derive(Args)]
pub struct FindArgs {
    /// Globs to look for: without `/` a name at any depth (`*.sst`,
    /// `MANIFEST-*`), with `/` a path from the snapshot root (`db/CURRENT`);
    /// `*` and `?` within a name, `**` any depth.
    #[arg(required_unless_present = "sst", value_name = "PATTERN")]
    patterns: Vec<String>,
    /// A RocksDB/LevelDB table file number: 123 finds `000123.sst` (repeatable).
    #[arg(long, value_name = "N")]
    sst: Vec<u64>,
    /// Search only this snapshot (id, prefix, `latest`, `latest:TAG`; repeatable).
    #[arg(long = "snapshot", short = 's', value_name = "SNAPSHOT")]
    snapshots: Vec<String>,
}

pub fn run(context: &Context, args: &FindArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let report = repository.find(&FindOptions {
        patterns: args.patterns.clone(),
        sst_numbers: args.sst.clone(),
        snapshots: args.snapshots.clone(),
    })?;
    warn_damaged(&report.damaged_snapshots);
    context.output().show(&report, print_text)?;
    if context.output().prints_summary() {
        eprintln!(
            "{} match(es) in {} snapshot(s) searched ({} distinct tree(s) walked)",
            report.matches.len(),
            report.snapshots_searched,
            report.trees_walked
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &FindReport) {
    if report.matches.is_empty() {
        return;
    }
    outln!(
        "{:<10} {:<20} {:>12} {:<20} path",
        "snapshot",
        "time",
        "size",
        "mtime"
    );
    for found in &report.matches {
        let suffix = match found.kind {
            "dir" => "/",
            "symlink" => " (symlink)",
            _ => "",
        };
        outln!(
            "{:<10} {:<20} {:>12} {:<20} {}{suffix}",
            short_id(&found.snapshot),
            found.time.to_seconds_string(),
            human_bytes(found.size),
            found.mtime.to_seconds_string(),
            printable_path(&found.path)
        );
    }
}
