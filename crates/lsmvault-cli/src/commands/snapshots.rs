//! `lsmvault snapshots`: the repository's snapshots, oldest first. Damaged
//! snapshot files are named (a warning per file on stderr; with `--json` the
//! output is `{"snapshots": [...], "damaged": [...]}` when there are any, the
//! plain list otherwise). A snapshot rewritten by `repair snapshots` is
//! marked `(repaired: N dropped)`; its JSON carries the `repaired` record.
//! The filter flags (`--tag`, `--host`, `--path`, `--database-id`) narrow
//! the list; one that matches nothing lists nothing (exit 0, as restic).

use std::process::ExitCode;

use clap::Args;
use lsmvault::{Error, SnapshotEntry};

use super::Context;
use crate::filter::FilterArgs;
use crate::output::{human_bytes, print_json, short_id, table_time, warn_damaged};

#[derive(Args)]
pub struct SnapshotsArgs {
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(context: &Context, args: &SnapshotsArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let (mut snapshots, damaged) = repository.snapshots_checked()?;
    let filter = args.filter.filter();
    snapshots.retain(|entry| filter.matches(entry));
    if context.output().is_json() {
        let list: Vec<_> = snapshots
            .iter()
            .map(|entry| serde_json::json!({ "id": entry.id, "snapshot": entry.snapshot }))
            .collect();
        if damaged.is_empty() {
            print_json(&list)?;
        } else {
            print_json(&serde_json::json!({ "snapshots": list, "damaged": damaged }))?;
        }
    } else {
        print_table(&snapshots);
        if snapshots.is_empty() && !filter.is_empty() {
            outln!("(no snapshot matches {})", filter.describe());
        }
    }
    warn_damaged(&damaged);
    Ok(ExitCode::SUCCESS)
}

fn print_table(snapshots: &[SnapshotEntry]) {
    outln!(
        "{:<10} {:<23} {:<12} {:<12} {:>10}  source [tags]",
        "id",
        "time",
        "kind",
        "host",
        "size"
    );
    for entry in snapshots {
        let snapshot = &entry.snapshot;
        let tags = if snapshot.tags.is_empty() {
            String::new()
        } else {
            format!(" [{}]", snapshot.tags.join(","))
        };
        let repaired = snapshot
            .repaired
            .as_ref()
            .map(|record| format!(" (repaired: {} dropped)", record.dropped.len()))
            .unwrap_or_default();
        outln!(
            "{:<10} {:<23} {:<12} {:<12} {:>10}  {}{}{}{}",
            short_id(&entry.id),
            table_time(snapshot.timestamp()),
            snapshot.kind.to_string(),
            snapshot.host,
            human_bytes(snapshot.stats.bytes_total),
            snapshot.source,
            tags,
            if snapshot.incomplete {
                " (incomplete)"
            } else {
                ""
            },
            repaired
        );
    }
    outln!("{} snapshot(s)", snapshots.len());
}
