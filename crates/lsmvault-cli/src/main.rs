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
use lsmvault::format::tree::EntryKind;
use lsmvault::ops::recovery::PointInTime;
use lsmvault::ops::retention::{parse_duration, GroupBy, RetentionPolicy, SnapshotFilter};
use lsmvault::ops::wal_archive::ArchiveOptions;
use lsmvault::{
    Error, ForgetOptions, Progress, PruneOptions, ReadData, Repository, RestoreOptions,
    SnapshotKind, VerifyOptions,
};

use crate::cli::{Cli, Command, ForgetArgs, WalCommand};
use crate::commands::Context;
use crate::output::{
    human_bytes, print_json, print_json_line, short_id, table_time, time_to_seconds, to_json,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    allocator::tune(&cli.command);
    let context = Context::new(&cli.global);
    let outcome = match &cli.command {
        Command::Init(args) => commands::init::run(&context, args),
        Command::Key(command) => commands::key::run(&context, command),
        Command::Backup(args) => commands::backup::run(&context, args),
        Command::Checkpoint(args) => commands::checkpoint::run(&context, args),
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
        Command::Snapshots => {
            let repository = context.open_repository()?;
            let snapshots = repository.snapshots()?;
            if json {
                let list: Vec<_> = snapshots
                    .iter()
                    .map(|entry| serde_json::json!({ "id": entry.id, "snapshot": entry.snapshot }))
                    .collect();
                print_json(&list)?;
            } else {
                println!(
                    "{:<10} {:<20} {:<12} {:<12} {:>10}  source [tags]",
                    "id", "time", "kind", "host", "size"
                );
                for entry in &snapshots {
                    let snapshot = &entry.snapshot;
                    let tags = if snapshot.tags.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", snapshot.tags.join(","))
                    };
                    println!(
                        "{:<10} {:<20} {:<12} {:<12} {:>10}  {}{}{}",
                        short_id(&entry.id.to_hex()),
                        table_time(&snapshot.time),
                        snapshot.kind.to_string(),
                        snapshot.host,
                        human_bytes(snapshot.stats.bytes_total),
                        snapshot.source,
                        tags,
                        if snapshot.incomplete {
                            " (incomplete)"
                        } else {
                            ""
                        }
                    );
                }
                println!("{} snapshot(s)", snapshots.len());
            }
        }
        Command::Ls { snapshot, path } => {
            let repository = context.open_repository()?;
            let found = repository.find_snapshot(snapshot)?;
            let include: Vec<String> = path.iter().cloned().collect();
            let entries = repository.walk(&found.snapshot.tree, &include)?;
            if json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|walked| {
                        let metadata = &walked.entry.metadata;
                        let (kind, extra) = match &walked.entry.kind {
                            EntryKind::File { size, digest, chunks } => (
                                "file",
                                serde_json::json!({ "size": size, "digest": digest, "chunks": chunks.len() }),
                            ),
                            EntryKind::Directory { subtree } => {
                                ("dir", serde_json::json!({ "subtree": subtree }))
                            }
                            EntryKind::Symlink { target } => (
                                "symlink",
                                serde_json::json!({ "target": String::from_utf8_lossy(target) }),
                            ),
                        };
                        serde_json::json!({
                            "path": walked.relative.display().to_string(),
                            "type": kind,
                            "mode": format!("{:o}", metadata.mode & 0o7777),
                            "mtime_ns": metadata.mtime_ns,
                            "links": metadata.links,
                            "detail": extra,
                        })
                    })
                    .collect();
                print_json(&list)?;
            } else {
                for walked in &entries {
                    let metadata = &walked.entry.metadata;
                    let (kind, suffix) = match &walked.entry.kind {
                        EntryKind::File { .. } => ('-', String::new()),
                        EntryKind::Directory { .. } => ('d', "/".to_string()),
                        EntryKind::Symlink { target } => {
                            ('l', format!(" -> {}", String::from_utf8_lossy(target)))
                        }
                    };
                    println!(
                        "{kind}{:04o} {:>12} {}{}",
                        metadata.mode & 0o7777,
                        walked.entry.size(),
                        walked.relative.display(),
                        suffix
                    );
                }
            }
        }
        Command::Restore {
            target,
            at: Some(_),
            ..
        }
        | Command::Restore {
            target,
            seq: Some(_),
            ..
        }
        | Command::Restore {
            target,
            tag: Some(_),
            ..
        } => {
            let Command::Restore {
                at,
                seq,
                tag,
                database_id,
                ..
            } = command
            else {
                unreachable!("matched above")
            };
            let point = match (at, seq, tag) {
                (Some(at), _, _) => {
                    PointInTime::Time(humantime::parse_rfc3339_weak(at).map_err(|error| {
                        Error::InvalidArgument(format!(
                            "--at {at:?}: {error} (expected e.g. 2026-11-23T14:32:05Z)"
                        ))
                    })?)
                }
                (_, Some(seq), _) => PointInTime::Sequence(*seq),
                (_, _, Some(tag)) => PointInTime::Tag(tag.clone()),
                _ => unreachable!("one of --at, --seq, --tag is present"),
            };
            let repository = context.open_repository()?;
            let report = repository.restore_point_in_time(
                &point,
                database_id.as_deref(),
                target,
                progress,
            )?;
            if json {
                print_json(&report)?;
            } else {
                println!(
                    "restored database {} to {} at sequence {} (asked: {}): snapshot {} (sequence {}) + {} WAL segment(s)",
                    report.database_id,
                    target.display(),
                    report.restored_sequence,
                    report.target_sequence,
                    short_id(&report.snapshot),
                    report.snapshot_sequence,
                    report.segments.len()
                );
                for segment in &report.segments {
                    println!(
                        "  {} sequences {}..={} ({} bytes{})",
                        segment.file_name,
                        segment.first_sequence,
                        segment.last_sequence,
                        segment.bytes,
                        if segment.cut { ", cut" } else { "" }
                    );
                }
            }
        }
        Command::Restore {
            snapshot,
            target,
            include,
            delta,
            ..
        } => {
            let snapshot = snapshot.as_deref().unwrap_or("latest");
            let repository = context.open_repository()?;
            let options = RestoreOptions {
                delta: *delta,
                include: include.clone(),
            };
            let stats = repository.restore(snapshot, target, &options, progress)?;
            if json {
                print_json(&stats)?;
            } else {
                println!(
                    "restored snapshot {} to {}: {} files ({} hard links, {} kept), {} directories, {} symlinks, {} written in {:.2} s",
                    short_id(&stats.snapshot),
                    target.display(),
                    stats.files,
                    stats.hard_links,
                    stats.files_kept,
                    stats.directories,
                    stats.symlinks,
                    human_bytes(stats.bytes_written),
                    stats.duration_seconds
                );
            }
        }
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
        Command::Stats { snapshots } => {
            let repository = context.open_repository()?;
            let stats = repository.stats(snapshots)?;
            if json {
                print_json(&stats)?;
            } else {
                println!(
                    "{:<10} {:<20} {:>8} {:>12} {:>12} {:>12}",
                    "id", "time", "files", "logical", "stored", "unique"
                );
                for size in &stats.snapshots {
                    println!(
                        "{:<10} {:<20} {:>8} {:>12} {:>12} {:>12}",
                        short_id(&size.id),
                        table_time(&size.time),
                        size.files,
                        human_bytes(size.logical_bytes),
                        human_bytes(size.stored_bytes),
                        human_bytes(size.unique_bytes)
                    );
                }
                println!(
                    "selection: {} logical, {} stored, deduplication ratio {:.2}",
                    human_bytes(stats.logical_bytes),
                    human_bytes(stats.stored_bytes),
                    stats.deduplication_ratio
                );
                println!(
                    "repository: {} in {} packs, {} index files; {} data blobs, {} tree blobs",
                    human_bytes(stats.repository_bytes),
                    stats.packs,
                    stats.index_files,
                    stats.data_blobs,
                    stats.tree_blobs
                );
            }
        }
        Command::Diff { from, to } => {
            let repository = context.open_repository()?;
            let report = repository.diff(from, to)?;
            if json {
                print_json(&report)?;
            } else {
                for change in &report.changes {
                    let sign = match change.change {
                        "added" => "+",
                        "removed" => "-",
                        "metadata" => "U",
                        _ => "M",
                    };
                    println!(
                        "{sign} {:<50} {:>12} -> {:>12}  ({} new in storage)",
                        change.path,
                        human_bytes(change.size_before),
                        human_bytes(change.size_after),
                        human_bytes(change.new_bytes)
                    );
                }
                println!(
                    "{} added, {} removed, {} modified; storage: {} added, {} no longer referenced",
                    report.added,
                    report.removed,
                    report.modified,
                    human_bytes(report.blob_bytes_added),
                    human_bytes(report.blob_bytes_removed)
                );
            }
        }
        Command::Wal(WalCommand::Archive {
            database,
            watch,
            database_id,
        }) => {
            let repository = context.open_repository()?;
            let options = ArchiveOptions {
                database_id: database_id.clone(),
            };
            let interval = watch
                .as_deref()
                .map(|text| {
                    humantime::parse_duration(text).map_err(|error| {
                        Error::InvalidArgument(format!("--watch {text:?}: {error} (e.g. 10s, 1m)"))
                    })
                })
                .transpose()?;
            loop {
                let report = repository.archive_wal(database, &options)?;
                if json {
                    print_json_line(&report)?;
                } else {
                    for segment in report
                        .segments
                        .iter()
                        .filter(|segment| segment.status != "unchanged")
                    {
                        println!(
                            "{} {} ({} bytes, sequences {:?}..={:?}, tail {})",
                            segment.status,
                            segment.file_name,
                            segment.size,
                            segment.first_sequence,
                            segment.last_sequence,
                            segment.tail
                        );
                        if segment.tail != "clean" {
                            eprintln!("warning: {}: {}", segment.file_name, segment.tail);
                        }
                    }
                    println!(
                        "archived database {}: {} read, {} new, {} stored in {:.2} s",
                        report.database_id,
                        human_bytes(report.bytes_read),
                        human_bytes(report.bytes_added),
                        human_bytes(report.bytes_stored),
                        report.duration_seconds
                    );
                }
                match interval {
                    Some(interval) => std::thread::sleep(interval),
                    None => break,
                }
            }
        }
        Command::Wal(WalCommand::Ls) => {
            let repository = context.open_repository()?;
            let timelines = repository.wal_timeline()?;
            if json {
                print_json(&timelines)?;
            } else {
                for timeline in &timelines {
                    println!("database {}:", timeline.database_id);
                    for segment in &timeline.segments {
                        println!(
                            "  {:<14} {:>12} sequences {:>10} ..= {:<10} {} version(s), last {} ({})",
                            segment.file_name,
                            human_bytes(segment.size),
                            segment.first_sequence.map_or("-".into(), |value| value.to_string()),
                            segment.last_sequence.map_or("-".into(), |value| value.to_string()),
                            segment.versions,
                            time_to_seconds(&segment.archived_at),
                            segment.tail
                        );
                    }
                    for window in &timeline.windows {
                        println!(
                            "  recoverable: sequences {} ..= {} from snapshot {} ({})",
                            window.from_sequence,
                            window.to_sequence,
                            short_id(&window.snapshot),
                            time_to_seconds(&window.snapshot_time)
                        );
                    }
                    for gap in &timeline.gaps {
                        println!("  GAP: {gap}");
                    }
                    for point in &timeline.restore_points {
                        println!(
                            "  restore point {:?} at sequence {} ({})",
                            point.name, point.sequence, point.time
                        );
                    }
                }
            }
        }
        Command::Tag {
            name,
            database,
            database_id,
        } => {
            let repository = context.open_repository()?;
            let point = repository.create_restore_point(
                name,
                database,
                &ArchiveOptions {
                    database_id: database_id.clone(),
                },
            )?;
            if json {
                print_json(&point)?;
            } else {
                println!(
                    "restore point {:?} of database {} at sequence {}",
                    point.name, point.database_id, point.sequence
                );
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
        Command::Init(_) | Command::Key(_) | Command::Backup(_) | Command::Checkpoint(_) => {
            unreachable!("dispatched by main")
        }
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
