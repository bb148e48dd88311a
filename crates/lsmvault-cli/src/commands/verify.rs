//! `lsmvault verify`: checks the repository's structure and, with
//! `--read-data` or `--read-data-subset`, every byte of (some of) its packs.
//!
//! Damage is printed as findings (what is damaged, what it affects) and ends
//! the command with the verify-failed exit code; the JSON report is printed
//! either way.

use std::process::ExitCode;

use clap::Args;
use lsmvault::{Error, ReadData, VerifyOptions, VerifyReport};

use super::Context;
use crate::exit;
use crate::output::human_bytes;

#[derive(Args)]
pub struct VerifyArgs {
    /// Read and re-hash every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Read subset N of M (e.g. 1/7); cycling N over 1..M covers every pack.
    #[arg(long, value_name = "N/M")]
    read_data_subset: Option<String>,
}

pub fn run(context: &Context, args: &VerifyArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let read_data = match (args.read_data, &args.read_data_subset) {
        (true, _) => ReadData::All,
        (false, Some(subset)) => parse_subset(subset)?,
        (false, None) => ReadData::None,
    };
    let report = repository.verify(&VerifyOptions { read_data }, context.progress())?;
    context.output().show(&report, print_text)?;
    if !report.is_clean() {
        // Not returned as an error: the report is already out, and with
        // --json an error object would follow it on stdout.
        let error = Error::VerifyFailed {
            damaged: report.findings.len(),
        };
        exit::print_error(&error);
        return Ok(exit::exit_code(error.code()));
    }
    if !context.output().is_json() {
        outln!("no problems found");
    }
    Ok(ExitCode::SUCCESS)
}

/// `N/M` with 1 <= N <= M.
fn parse_subset(text: &str) -> Result<ReadData, Error> {
    let invalid = || {
        Error::InvalidArgument(format!(
            "--read-data-subset \"{text}\": expected N/M with 1 <= N <= M"
        ))
    };
    let (n, m) = text.split_once('/').ok_or_else(invalid)?;
    let n: u32 = n.trim().parse().map_err(|_| invalid())?;
    let m: u32 = m.trim().parse().map_err(|_| invalid())?;
    if n == 0 || m == 0 || n > m {
        return Err(invalid());
    }
    Ok(ReadData::Subset { n, m })
}

fn print_text(report: &VerifyReport) {
    outln!(
        "checked {} snapshot(s), {} tree(s), {} pack(s) ({} read in full, {}), {} blob(s)",
        report.snapshots,
        report.trees,
        report.packs,
        report.packs_read,
        human_bytes(report.bytes_read),
        report.blobs
    );
    if !report.unindexed_packs.is_empty() {
        outln!(
            "{} pack(s) not in any index (left by an interrupted backup; garbage collection removes them)",
            report.unindexed_packs.len()
        );
    }
    if report.unreferenced_blobs > 0 {
        outln!(
            "{} indexed blob(s) no snapshot uses",
            report.unreferenced_blobs
        );
    }
    for finding in &report.findings {
        outln!("DAMAGED {}: {}", finding.object, finding.problem);
        if let Some(parity) = &finding.parity {
            outln!("    {parity}");
        }
        for affected in &finding.affected {
            outln!("    affects {affected}");
        }
    }
}
