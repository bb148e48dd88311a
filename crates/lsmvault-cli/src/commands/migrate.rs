//! `lsmvault migrate`: binds an encrypted version 2 repository's config to
//! its master key (format version 3), printing what it binds.

use std::process::ExitCode;

use lsmvault::{Error, MigrateReport};

use super::Context;

pub fn run(context: &Context) -> Result<ExitCode, Error> {
    let mut repository = context.open_repository_for_migration()?;
    let report = repository.migrate()?;
    context.output().summary(&report, print_report)?;
    Ok(ExitCode::SUCCESS)
}

fn print_report(report: &MigrateReport) {
    if let Some(reason) = &report.nothing_to_do {
        outln!(
            "nothing to migrate (format version {}): {reason}",
            report.from_version
        );
        return;
    }
    outln!(
        "the master key opened {} of {} snapshot and index file(s)",
        report.objects_opened,
        report.objects_checked
    );
    for name in &report.objects_not_opened {
        outln!("  did not open: {name} (damaged? `lsmvault verify` names what it affects)");
    }
    outln!(
        "bound the config to the master key: format version {} -> {}",
        report.from_version,
        report.to_version
    );
    // The whole config as written, so every field (present and future) is shown.
    match serde_json::to_string_pretty(&report.config) {
        Ok(text) => outln!("{text}"),
        Err(error) => outln!("(the config cannot be shown: {error})"),
    }
}
