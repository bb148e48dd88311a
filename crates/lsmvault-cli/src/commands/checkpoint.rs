//! `lsmvault checkpoint`: a consistent copy of a live database directory
//! (hard links for immutable files, copies for the rest), optionally with
//! writes paused by user commands. The only command without a repository.
//!
//! Also holds the `--freeze-cmd`/`--thaw-cmd` flags, which `backup --live`
//! shares.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use lsmvault::lsm::checkpoint::{checkpoint, CheckpointOptions};
use lsmvault::Error;

use super::Context;
use crate::output::human_bytes;

#[derive(Args)]
pub struct CheckpointArgs {
    /// The live database directory.
    source: PathBuf,
    /// Where the checkpoint goes (must not exist; same file system for links).
    destination: PathBuf,
    #[command(flatten)]
    freeze: FreezeArgs,
}

#[derive(Args, Clone)]
pub struct FreezeArgs {
    /// Shell command that pauses writes (e.g. `kill -STOP $(pidof writer)`), run before linking.
    #[arg(long, value_name = "CMD")]
    freeze_cmd: Option<String>,
    /// Shell command that resumes writes, run right after.
    #[arg(long, value_name = "CMD")]
    thaw_cmd: Option<String>,
}

impl FreezeArgs {
    pub fn options(&self) -> CheckpointOptions {
        CheckpointOptions {
            freeze_command: self.freeze_cmd.clone(),
            thaw_command: self.thaw_cmd.clone(),
            ..CheckpointOptions::default()
        }
    }
}

pub fn run(context: &Context, args: &CheckpointArgs) -> Result<ExitCode, Error> {
    let report = checkpoint(&args.source, &args.destination, &args.freeze.options())?;
    context.output().summary(&report, |report| {
        println!(
            "checkpoint of {} in {}: {} linked, {} copied ({}), {} skipped; writes paused {:.1} ms",
            args.source.display(),
            report.destination.display(),
            report.linked,
            report.copied,
            human_bytes(report.bytes_copied),
            report.skipped,
            report.pause_seconds * 1000.0
        );
    })?;
    Ok(ExitCode::SUCCESS)
}
