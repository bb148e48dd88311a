//! How `restore --dry-run` shows its plan: one line per file (with
//! `--delta` what is kept, rewritten and removed), the totals, and the time
//! estimate beside the throughputs it was computed from. The plan is what
//! was asked for, so `-q` does not hide it.

use std::process::ExitCode;

use lsmvault::ops::restore::dry_run::{RestorePlan, Throughput};
use lsmvault::Error;

use super::Context;
use crate::output::{human_bytes, short_id};

pub fn show(context: &Context, plan: &RestorePlan) -> Result<ExitCode, Error> {
    context.output().show(plan, print_text)?;
    Ok(ExitCode::SUCCESS)
}

fn print_text(plan: &RestorePlan) {
    outln!(
        "dry run: restore of snapshot {} into {}{} (nothing written)",
        short_id(&plan.snapshot),
        plan.target.display(),
        if plan.target_exists {
            ""
        } else {
            " (does not exist yet)"
        }
    );
    for file in &plan.files {
        outln!(
            "{:<8} {:>12} {}",
            file.action,
            human_bytes(file.size),
            file.path
        );
    }
    for removed in &plan.removed {
        outln!("{:<8} {:>12} {}", "remove", "", removed);
    }
    outln!(
        "would write {} file(s), {}; keep {}; link {}; remove {}; {} director(ies), {} symlink(s)",
        plan.files_to_write,
        human_bytes(plan.bytes_to_write),
        plan.files_kept,
        plan.hard_links,
        plan.removed.len(),
        plan.directories,
        plan.symlinks
    );
    outln!("measured read:  {}", rate(&plan.read));
    outln!("measured write: {}", rate(&plan.write));
    let bound = match plan.bottleneck {
        "largest_file" => "its largest file read, then written".to_string(),
        path => format!("the {path} throughput (the slower)"),
    };
    outln!(
        "estimated restore time: {:.2} s, bound by {bound}",
        plan.estimated_seconds
    );
}

fn rate(measured: &Throughput) -> String {
    format!(
        "{}/s ({} in {:.3} s, {})",
        human_bytes(measured.bytes_per_second as u64),
        human_bytes(measured.bytes),
        measured.seconds,
        measured.what
    )
}
