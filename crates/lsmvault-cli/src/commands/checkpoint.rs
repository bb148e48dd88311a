//! `lsmvault checkpoint`: a consistent copy of a live database directory
//! (hard links for immutable files, copies for the rest), optionally with
//! writes paused by user commands. The only command without a repository.
//!
//! Also holds the `--freeze-cmd`/`--thaw-cmd` flags, which `backup --live`
//! shares.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use lsmvault::lsm::checkpoint::{checkpoint, CheckpointOptions};
use lsmvault::{Error, Interrupt};

use super::Context;
use crate::output::human_bytes;
use crate::signals;

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
    /// Shell command that pauses writes (e.g. `kill -STOP $(pidof writer)`), run
    /// before linking. Needs --thaw-cmd.
    #[arg(long, value_name = "CMD", requires = "thaw_cmd")]
    freeze_cmd: Option<String>,
    /// Shell command that resumes writes, run right after; also when the
    /// freeze or the linking fails, or on SIGINT/SIGTERM.
    #[arg(long, value_name = "CMD")]
    thaw_cmd: Option<String>,
    /// How long the freeze (or thaw) command may run before it is killed
    /// and counted as failed (the library's `DEFAULT_COMMAND_TIMEOUT`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          default_value = "30s")]
    freeze_timeout: Duration,
    /// Accept a destination on another file system than the database: every
    /// file is then copied (not linked) while writes are paused.
    #[arg(long)]
    allow_copy: bool,
}

impl FreezeArgs {
    pub fn options(&self, interrupt: &Interrupt) -> CheckpointOptions {
        CheckpointOptions {
            freeze_command: self.freeze_cmd.clone(),
            thaw_command: self.thaw_cmd.clone(),
            command_timeout: self.freeze_timeout,
            allow_copy: self.allow_copy,
            interrupt: interrupt.clone(),
            ..CheckpointOptions::default()
        }
    }
}

pub fn run(context: &Context, args: &CheckpointArgs) -> Result<ExitCode, Error> {
    let interrupt = signals::install();
    let report = checkpoint(
        &args.source,
        &args.destination,
        &args.freeze.options(&interrupt),
    )?;
    context.output().summary(&report, |report| {
        outln!(
            "checkpoint of {} in {}: {} linked, {} copied ({}), {} skipped; writes paused {:.1} ms",
            args.source.display(),
            report.destination.display(),
            report.linked,
            report.copied,
            human_bytes(report.bytes_copied),
            report.skipped,
            report.pause_seconds * 1000.0
        );
        if report.cross_device_copies > 0 {
            outln!(
                "copied while frozen (another file system, --allow-copy): {} files that would have been linked; {} copied in all",
                report.cross_device_copies,
                human_bytes(report.bytes_copied)
            );
        }
    })?;
    Ok(ExitCode::SUCCESS)
}
