//! The `lsmvault` command: parses arguments, calls the library, prints results.

mod allocator;
mod cli;
mod commands;
mod exit;
mod output;
mod password;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use lsmvault::ops::retention::{parse_duration, GroupBy, RetentionPolicy, SnapshotFilter};
use lsmvault::{
    Error, ForgetOptions, Progress, PruneOptions, ReadData, Repository, SnapshotKind, VerifyOptions,
};

use crate::cli::{Cli, Command, ForgetArgs};
use crate::commands::Context;
use crate::output::{human_bytes, print_json, short_id, table_time, to_json};

fn main() -> ExitCode {
    let cli = Cli::parse();
    allocator::tune(&cli.command);
    let context = Context::new(&cli.global);
    let outcome = match &cli.command {
        Command::Init(args) => commands::init::run(&context, args),
        Command::Key(command) => commands::key::run(&context, command),
        Command::Backup(args) => commands::backup::run(&context, args),
        Command::Checkpoint(args) => commands::checkpoint::run(&context, args),
        Command::Snapshots => commands::snapshots::run(&context),
        Command::Ls(args) => commands::ls::run(&context, args),
        Command::Restore(args) => commands::restore::run(&context, args),
        Command::Wal(command) => commands::wal::run(&context, command),
        Command::Tag(args) => commands::tag::run(&context, args),
        Command::Stats(args) => commands::stats::run(&context, args),
        Command::Diff(args) => commands::diff::run(&context, args),
        other => run(&context, other),
    };
    outcome.unwrap_or_else(|error| exit::report_failure(&error, cli.global.json))
}

fn parse_subset(text: &str) -> Result<ReadData, Error> {
    let invalid = || {
        Error::InvalidArgument(format!(
            "--read-data-subset {text:?}: expected N/M with 1 <= N <= M"
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

fn run(context: &Context, command: &Command) -> Result<ExitCode, Error> {
    context.location()?;
    let progress = context.progress();
    let json = context.output().is_json();
    match command {
        Command::Forget(args) => {
            let repository = context.open_repository()?;
            let forgotten = forget(&repository, args, json)?;
            if args.prune && !args.dry_run {
                let pruned = prune(&repository, &PruneOptions::default(), json, progress)?;
                if json {
                    print_json(&serde_json::json!({ "forget": forgotten, "prune": pruned }))?;
                }
            } else if json {
                print_json(&forgotten)?;
            }
        }
        Command::Prune {
            max_unused,
            dry_run,
        } => {
            let repository = context.open_repository()?;
            let options = PruneOptions {
                max_unused_percent: *max_unused,
                dry_run: *dry_run,
            };
            let pruned = prune(&repository, &options, json, progress)?;
            if json {
                print_json(&pruned)?;
            }
        }
        Command::Unlock { remove_all } => {
            let repository = context.open_repository()?;
            let removed = repository.remove_locks(*remove_all)?;
            if json {
                print_json(&serde_json::json!({ "removed": removed }))?;
            } else {
                println!("removed {removed} lock(s)");
            }
        }
        Command::Verify {
            read_data,
            read_data_subset,
        } => {
            let repository = context.open_repository()?;
            let read = match (read_data, read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(subset)) => parse_subset(subset)?,
                (false, None) => ReadData::None,
            };
            let report = repository.verify(&VerifyOptions { read_data: read }, progress)?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "checked {} snapshot(s), {} tree(s), {} pack(s) ({} read in full, {}), {} blob(s)",
                    report.snapshots,
                    report.trees,
                    report.packs,
                    report.packs_read,
                    human_bytes(report.bytes_read),
                    report.blobs
                );
                if !report.unindexed_packs.is_empty() {
                    println!(
                        "{} pack(s) not in any index (left by an interrupted backup; garbage collection removes them)",
                        report.unindexed_packs.len()
                    );
                }
                if report.unreferenced_blobs > 0 {
                    println!(
                        "{} indexed blob(s) no snapshot uses",
                        report.unreferenced_blobs
                    );
                }
                for finding in &report.findings {
                    println!("DAMAGED {}: {}", finding.object, finding.problem);
                    for affected in &finding.affected {
                        println!("    affects {affected}");
                    }
                }
            }
            if !report.is_clean() {
                let error = Error::VerifyFailed {
                    damaged: report.findings.len(),
                };
                exit::print_error(&error);
                return Ok(exit::exit_code(error.code()));
            }
            if !json {
                println!("no problems found");
            }
        }
        _ => unreachable!("dispatched by main"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `forget`; prints text unless `json`; returns the report as JSON.
fn forget(
    repository: &Repository,
    args: &ForgetArgs,
    json: bool,
) -> Result<serde_json::Value, Error> {
    if !args.snapshots.is_empty() {
        let removed = repository.forget_snapshots(&args.snapshots, args.dry_run)?;
        if !json {
            for id in &removed {
                println!(
                    "{} {}",
                    if args.dry_run {
                        "would remove"
                    } else {
                        "removed"
                    },
                    short_id(id)
                );
            }
        }
        return Ok(serde_json::json!({ "removed": removed, "dry_run": args.dry_run }));
    }
    let kind = match args.kind.as_deref() {
        None => None,
        Some("full") => Some(SnapshotKind::Full),
        Some("incremental") => Some(SnapshotKind::Incremental),
        Some("differential") => Some(SnapshotKind::Differential),
        Some(other) => {
            return Err(Error::InvalidArgument(format!(
                "--kind {other:?}: expected full, incremental or differential"
            )))
        }
    };
    let options = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: args.keep_last,
            keep_hourly: args.keep_hourly,
            keep_daily: args.keep_daily,
            keep_weekly: args.keep_weekly,
            keep_monthly: args.keep_monthly,
            keep_yearly: args.keep_yearly,
            keep_within: args
                .keep_within
                .as_deref()
                .map(parse_duration)
                .transpose()?,
            keep_tags: args.keep_tag.clone(),
        },
        filter: SnapshotFilter {
            tags: args.tag.clone(),
            source: args.source.clone(),
            host: args.host.clone(),
            kind,
        },
        group_by: GroupBy::parse(&args.group_by)?,
        dry_run: args.dry_run,
        allow_remove_all: args.allow_remove_all,
    };
    let report = repository.forget(&options)?;
    let value = to_json(&report)?;
    if json {
        return Ok(value);
    }
    for group in &report.groups {
        println!("{}:", group.group);
        for decision in &group.snapshots {
            let action = match (decision.keep, report.dry_run) {
                (true, _) => format!("keep   ({})", decision.reasons.join(", ")),
                (false, true) => "would remove".to_string(),
                (false, false) => "remove".to_string(),
            };
            println!(
                "  {} {}  {}",
                short_id(&decision.id),
                table_time(&decision.time),
                action
            );
        }
    }
    println!(
        "{} snapshot(s) {}",
        report.removed.len(),
        if report.dry_run {
            "would be removed"
        } else {
            "removed"
        }
    );
    Ok(value)
}

fn prune(
    repository: &Repository,
    options: &PruneOptions,
    json: bool,
    progress: &dyn Progress,
) -> Result<serde_json::Value, Error> {
    let report = repository.prune(options, progress)?;
    let value = to_json(&report)?;
    if json {
        return Ok(value);
    }
    println!(
        "{}{} snapshot(s) use {} blob(s); {} unused",
        if report.dry_run { "dry run: " } else { "" },
        report.snapshots,
        report.blobs_used,
        report.blobs_unused
    );
    println!(
        "packs: {} before, {} deleted, {} repacked into {}, {} unindexed deleted; index files {} -> {}",
        report.packs_before,
        report.packs_deleted,
        report.packs_repacked,
        report.packs_written,
        report.packs_unindexed,
        report.index_files_before,
        report.index_files_after
    );
    println!(
        "{} {} ({} -> {}) in {:.2} s",
        if report.dry_run {
            "would free"
        } else {
            "freed"
        },
        human_bytes(report.bytes_freed),
        human_bytes(report.bytes_before),
        human_bytes(report.bytes_after),
        report.duration_seconds
    );
    Ok(value)
}
