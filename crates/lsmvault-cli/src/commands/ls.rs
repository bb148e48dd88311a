//! `lsmvault ls`: the files of one snapshot, or of one path in it. For a
//! snapshot rewritten by `repair snapshots`, what the repair dropped follows
//! the listing (with `--json`: `{"entries": [...], "repaired": {...}}`
//! instead of the plain list).

use std::process::ExitCode;

use clap::Args;
use lsmvault::format::snapshot::RepairRecord;
use lsmvault::format::tree::EntryKind;
use lsmvault::{Error, WalkedEntry};

use super::Context;
use crate::filter::FilterArgs;
use crate::output::{print_json, printable_path, short_id};

#[derive(Args)]
pub struct LsArgs {
    /// Snapshot id, unique id prefix, `latest` or `latest:TAG`.
    snapshot: String,
    /// Only this path or glob (and what is below it); one that matches
    /// nothing is an error.
    path: Option<String>,
    /// Choose `latest` (or check the id) among these snapshots only.
    #[command(flatten)]
    filter: FilterArgs,
}

pub fn run(context: &Context, args: &LsArgs) -> Result<ExitCode, Error> {
    let repository = context.open_repository()?;
    let found = repository.find_snapshot_filtered(&args.snapshot, &args.filter.filter())?;
    let include: Vec<String> = args.path.iter().cloned().collect();
    let entries = repository.walk(&found.snapshot.tree, &include)?;
    let repaired = found.snapshot.repaired.as_ref();
    if context.output().is_json() {
        let list: Vec<_> = entries.iter().map(entry_json).collect();
        match repaired {
            None => print_json(&list)?,
            Some(record) => {
                print_json(&serde_json::json!({ "entries": list, "repaired": record }))?
            }
        }
    } else {
        for walked in &entries {
            print_entry(walked);
        }
        if let Some(record) = repaired {
            print_repair_record(record);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_repair_record(record: &RepairRecord) {
    outln!(
        "repaired snapshot (rewritten from {} at {}): {} path(s) dropped:",
        short_id(&record.original),
        record.time,
        record.dropped.len()
    );
    for dropped in &record.dropped {
        outln!("  dropped {}: {}", dropped.path, dropped.reason);
    }
}

fn entry_json(walked: &WalkedEntry) -> serde_json::Value {
    let metadata = &walked.entry.metadata;
    let (kind, detail) = match &walked.entry.kind {
        EntryKind::File {
            size,
            digest,
            chunks,
        } => (
            "file",
            serde_json::json!({ "size": size, "digest": digest, "chunks": chunks.len() }),
        ),
        EntryKind::Directory { subtree } => ("dir", serde_json::json!({ "subtree": subtree })),
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
        "detail": detail,
    })
}

/// One line as `ls -l` would start it: type and mode, size, path.
fn print_entry(walked: &WalkedEntry) {
    let metadata = &walked.entry.metadata;
    let (kind, suffix) = match &walked.entry.kind {
        EntryKind::File { .. } => ('-', String::new()),
        EntryKind::Directory { .. } => ('d', "/".to_string()),
        EntryKind::Symlink { target } => (
            'l',
            format!(" -> {}", printable_path(&String::from_utf8_lossy(target))),
        ),
    };
    outln!(
        "{kind}{:04o} {:>12} {}{}",
        metadata.mode & 0o7777,
        walked.entry.size(),
        printable_path(&walked.relative.display().to_string()),
        suffix
    );
}
