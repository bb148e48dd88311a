//! How `restore --dry-run` shows its plan: one line per file (with
//! `--delta` what is kept, rewritten and removed), the totals, and the time
//! estimate beside the throughputs it was computed from. The plan is what
//! was asked for, so `-q` does not hide it. With damaged files the plan is
//! still shown (they are marked), then the error the real restore would end
//! with is reported on stderr, with its exit code (in `--json` too: stdout
//! stays the one plan object).

use std::process::ExitCode;

use lsmvault::ops::restore::dry_run::{RestorePlan, Throughput};
use lsmvault::Error;

use super::Context;
use crate::output::{human_bytes, short_id};

pub fn show(context: &Context, mut plan: RestorePlan) -> Result<ExitCode, Error> {
    context.output().show(&plan, print_text)?;
    match plan.take_failure() {
        None => Ok(ExitCode::SUCCESS),
        Some(error) => {
            crate::exit::print_error(&error);
            Ok(crate::exit::exit_code(error.code()))
        }
    }
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
        if let Some(problem) = &file.problem {
            outln!("{:<8} {:>12}   {problem}", "", "");
        }
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
    outln!(
        "measured per file: {:.2} ms ({} files in {:.3} s, {}); sync at the end: {:.3} s",
        plan.per_file.seconds_per_file * 1000.0,
        plan.per_file.files,
        plan.per_file.seconds,
        plan.per_file.what,
        plan.per_file.sync_seconds
    );
    let bound = match plan.bottleneck {
        "largest_file" => "its largest file read, then written".to_string(),
        path => format!("the {path} throughput (the slower)"),
    };
    outln!(
        "estimated restore time: {:.2} s: planning {:.2} s, bytes bound by {bound}, {} file(s) at the per-file cost, the sync",
        plan.estimated_seconds,
        plan.planning_seconds,
        plan.files_to_write
    );
    if plan.files_damaged > 0 {
        outln!(
            "damaged: {} file(s) the restore would fail on (left out of the estimate)",
            plan.files_damaged
        );
    }
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
