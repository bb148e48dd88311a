//! `lsmvault copy --from SRC [--to DST] [SNAPSHOT...]`: copies the source's
//! snapshots (all, or those named, narrowed by the filter flags) that the
//! destination does not have yet, moving only the blobs it lacks, and the
//! archived WAL of their databases (`--skip-wal`: not). The destination is
//! `--to`, or `--repo` when it is not given, and takes the usual password
//! flags; the source has its own (`--from-password-file`,
//! `--from-password-command`, `LSMVAULT_FROM_PASSWORD`). The global
//! `--limit-upload` / `--limit-download` apply to both repositories.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use lsmvault::{CopyOptions, CopyReport, Error};

use super::Context;
use crate::filter::FilterArgs;
use crate::output::{human_bytes, short_id};
use crate::{password, signals};

#[derive(Args)]
pub struct CopyArgs {
    /// Snapshots to copy (ids, prefixes, `latest`, `latest:TAG`); all when none.
    snapshots: Vec<String>,
    /// The repository to copy from.
    #[arg(long, value_name = "SRC", env = "LSMVAULT_FROM_REPOSITORY")]
    from: PathBuf,
    /// The repository to copy into (default: --repo).
    #[arg(long, value_name = "DST")]
    to: Option<PathBuf>,
    /// Read the source repository's password from this file.
    #[arg(long, value_name = "FILE", env = "LSMVAULT_FROM_PASSWORD_FILE")]
    from_password_file: Option<PathBuf>,
    /// Run this shell command for the source repository's password (first
    /// line of its stdout); not together with --from-password-file.
    #[arg(long, value_name = "CMD", env = "LSMVAULT_FROM_PASSWORD_COMMAND")]
    from_password_command: Option<String>,
    /// Copy only the snapshots, not the archived WAL of their databases.
    #[arg(long)]
    skip_wal: bool,
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(context: &Context, args: &CopyArgs) -> Result<ExitCode, Error> {
    let interrupt = signals::install();
    let destination_location = match &args.to {
        Some(location) => location.as_path(),
        None => context.location().map_err(|_| {
            Error::InvalidArgument(
                "no destination given: pass --to (or --repo, or set LSMVAULT_REPOSITORY)".into(),
            )
        })?,
    };
    let source_sources = password::Sources {
        file: args.from_password_file.as_deref(),
        command: args
            .from_password_command
            .as_deref()
            .filter(|command| !command.trim().is_empty()),
        variable: "LSMVAULT_FROM_PASSWORD",
    };
    let source = context.open_other(
        context.backend_at(&args.from)?,
        source_sources,
        "source repository password: ",
    )?;
    let destination = context.open_other(
        context.backend_at(destination_location)?,
        context.password_sources(),
        "repository password: ",
    )?;
    let options = CopyOptions {
        selectors: args.snapshots.clone(),
        filter: args.filter.filter(),
        skip_wal: args.skip_wal,
        interrupt,
    };
    let report = destination.copy_from(&source, &options, context.progress())?;
    for warning in &report.warnings {
        eprintln!("warning: {warning}");
    }
    context
        .output()
        .summary(&report, |report| print_text(report, args))?;
    Ok(ExitCode::SUCCESS)
}

fn print_text(report: &CopyReport, args: &CopyArgs) {
    for copied in &report.copied {
        println!(
            "copied snapshot {} to {}",
            short_id(&copied.source),
            short_id(&copied.destination)
        );
    }
    for present in &report.already_present {
        println!(
            "snapshot {} is already in the destination as {}",
            short_id(&present.source),
            short_id(&present.destination)
        );
    }
    println!(
        "{} snapshot(s) copied, {} already there from {}; {} blob(s) ({}) stored in {} pack(s), {} read from the source{}",
        report.copied.len(),
        report.already_present.len(),
        args.from.display(),
        report.blobs_copied,
        human_bytes(report.bytes_copied),
        report.packs_written,
        human_bytes(report.bytes_read),
        if report.ids_recomputed {
            " (ids recomputed: the repositories hash blobs differently)"
        } else {
            ""
        }
    );
    if report.wal_records_copied > 0 {
        println!("{} WAL record(s) copied", report.wal_records_copied);
    }
}
