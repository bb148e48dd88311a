//! Copy: snapshots of one repository into another (`lsmvault copy`), moving
//! only the blobs the destination lacks.
//!
//! Order of work, per snapshot (oldest first), which is also the crash-safety
//! argument, the same as backup's:
//! 1. walk the snapshot's trees and store in the destination, through its
//!    [`PackWriter`], every blob it lacks (`blobs.rs`);
//! 2. write the destination's index files for them;
//! 3. confirm no prune ran in the destination meanwhile ([`CommitCheck`]);
//! 4. write the snapshot file — the commit point.
//!
//! A crash before step 4 leaves only unreferenced packs and index entries
//! (which prune removes, and which the next copy reuses); a destination
//! snapshot exists only once everything it references does. Each snapshot
//! commits on its own, so a failure stops at the snapshot it hit and the
//! ones copied before it stay. The archived WAL of the copied snapshots'
//! databases follows the snapshots (`wal.rs`), records after their blobs.
//!
//! Both repositories are locked shared for the whole copy (the source as a
//! reader: it may be read-only), so no prune runs in either.
//!
//! A snapshot counts as present in the destination when a destination
//! snapshot records it as its origin (`original`, see
//! [`Snapshot::original`]), is its origin, or has the same content (all
//! fields but `original` and `parent`; and but `tree` when ids differ).
//!
//! Blob ids: when both repositories compute them alike (both plaintext, or
//! the same master key) blobs are copied by id and a blob the destination
//! has is never downloaded; its trees are even read from the destination.
//! Otherwise (two encrypted repositories, or one encrypted and one not) every
//! blob is read from the source, hashed again under the destination's keys
//! and stored if missing; trees and whole-file digests are rebuilt with the
//! new ids. Chunks are not cut again: the destination keeps the source's
//! chunk boundaries.

mod blobs;
mod wal;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::format::snapshot::{Snapshot, SnapshotEntry};
use crate::id::Id;
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::repo::commit::{CommitCheck, StoredBlobs};
use crate::repo::lock::LockKind;
use crate::repo::{PackWriter, Repository, SnapshotFilter, WriteSummary};

use blobs::Transfer;

/// Options for [`Repository::copy_from`].
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// Snapshot selectors (ids, prefixes, `latest`, `latest:TAG`) of the
    /// source; empty: every snapshot `filter` passes.
    pub selectors: Vec<String>,
    /// Which source snapshots to consider (tags, host, path...); `latest`
    /// among the selectors is chosen among those it passes.
    pub filter: SnapshotFilter,
    /// Leave the WAL archive alone (by default the archived WAL of the
    /// copied snapshots' databases is copied too).
    pub skip_wal: bool,
    /// Polled between snapshots and blobs: once triggered the copy returns
    /// [`Error::Interrupted`] before its next snapshot is written.
    pub interrupt: Interrupt,
}

/// One source snapshot and its destination counterpart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopiedSnapshot {
    /// The snapshot's id in the source.
    pub source: Id,
    /// Its copy's id in the destination (written now or found there).
    pub destination: Id,
}

/// What a copy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CopyReport {
    /// Snapshots written into the destination, oldest first.
    pub copied: Vec<CopiedSnapshot>,
    /// Selected snapshots the destination already had (nothing was moved).
    pub already_present: Vec<CopiedSnapshot>,
    /// Whether ids were computed again for the destination (the two
    /// repositories hash blobs differently: everything is downloaded).
    pub ids_recomputed: bool,
    /// Blobs (chunks and trees) downloaded from the source.
    pub blobs_read: u64,
    /// Raw bytes of the blobs downloaded from the source.
    pub bytes_read: u64,
    /// Blobs stored in the destination that it did not have.
    pub blobs_copied: u64,
    /// Raw bytes of those blobs (before compression and sealing).
    pub bytes_copied: u64,
    /// Packs written into the destination.
    pub packs_written: u64,
    /// Bytes of those packs: what the destination grew by before index
    /// files, snapshots and WAL records.
    pub bytes_stored: u64,
    /// WAL records (segment versions and restore points) written into the
    /// destination.
    pub wal_records_copied: u64,
    /// Source snapshot files and WAL records that could not be read and
    /// were not copied, each named with why.
    pub warnings: Vec<String>,
}

impl CopyReport {
    fn add_written(&mut self, summary: &WriteSummary) {
        self.blobs_copied += summary.locations.len() as u64;
        self.bytes_copied += summary.blob_bytes;
        self.packs_written += summary.packs;
        self.bytes_stored += summary.pack_bytes;
    }
}

impl Repository {
    /// Copies snapshots of `source` that this repository lacks into it
    /// (see the module documentation), with the archived WAL of their
    /// databases.
    pub fn copy_from(
        &self,
        source: &Repository,
        options: &CopyOptions,
        progress: &dyn Progress,
    ) -> Result<CopyReport> {
        check_pair(source, self)?;
        let _source_lock = source.lock_for_reading("copy (source)")?;
        let lock = self.lock(LockKind::Shared, "copy")?;
        // One listing of the index files, under the lock: the index is
        // loaded from it and the commit check starts from it.
        let index_files = self.list_index_files()?;
        let mut commit_check = CommitCheck::start(&index_files);
        let stored = StoredBlobs::load(self, &index_files)?;
        let mut report = CopyReport::default();
        let selected = select(source, options, &mut report.warnings)?;
        let (destination_snapshots, _damaged) = self.snapshots_checked()?;

        let mut transfer = Transfer::new(source, self, Arc::clone(&stored.present));
        report.ids_recomputed = !transfer.same_ids();
        // Source id -> destination id, for parents: the origins the
        // destination records, then what this copy finds and writes.
        let mut copies: HashMap<Id, Id> = destination_snapshots
            .iter()
            .filter_map(|entry| entry.snapshot.original.map(|origin| (origin, entry.id)))
            .collect();
        for entry in &selected {
            let found = present(&destination_snapshots, entry, transfer.same_ids());
            let destination = match found {
                Some(found) => {
                    report.already_present.push(CopiedSnapshot {
                        source: entry.id,
                        destination: found,
                    });
                    found
                }
                None => {
                    let mut commit = wal::Commit {
                        check: &mut commit_check,
                        lock: &lock,
                    };
                    let (id, summary) = self.copy_snapshot(
                        &mut transfer,
                        entry,
                        &copies,
                        &mut commit,
                        options,
                        progress,
                    )?;
                    report.add_written(&summary);
                    report.copied.push(CopiedSnapshot {
                        source: entry.id,
                        destination: id,
                    });
                    id
                }
            };
            copies.insert(entry.id, destination);
        }
        let databases = databases_of(&selected);
        if !options.skip_wal && !databases.is_empty() {
            let commit = wal::Commit {
                check: &mut commit_check,
                lock: &lock,
            };
            progress.start("copying WAL", 0);
            let copied = wal::copy_wal(
                &mut transfer,
                &databases,
                commit,
                options,
                &mut report,
                progress,
            );
            progress.finish();
            copied?;
        }
        (report.blobs_read, report.bytes_read) = transfer.downloaded();
        Ok(report)
    }

    /// Stores what the destination lacks of one snapshot, indexes it and
    /// writes the snapshot (the commit point); returns its id and what was
    /// written.
    fn copy_snapshot(
        &self,
        transfer: &mut Transfer<'_>,
        entry: &SnapshotEntry,
        copies: &HashMap<Id, Id>,
        commit: &mut wal::Commit<'_>,
        options: &CopyOptions,
        progress: &dyn Progress,
    ) -> Result<(Id, WriteSummary)> {
        options.interrupt.check("copying snapshots")?;
        progress.start(&format!("copying {}", entry.id.short()), 0);
        let writer = PackWriter::with_known(self, transfer.present())?;
        let tree = transfer.tree(&writer, &entry.snapshot.tree, &options.interrupt, progress);
        let summary = tree.and_then(|tree| Ok((tree, writer.finish()?)));
        progress.finish();
        let (tree, summary) = summary?;
        self.protect_packs(&summary.published)?;
        commit
            .check
            .wrote(&summary, &self.write_index(&summary.locations)?);
        transfer.committed(&summary.locations);
        let snapshot = copied_snapshot(entry, tree, copies);
        options.interrupt.check("about to write the snapshot")?;
        let id = commit
            .check
            .commit(self, commit.lock, &snapshot, progress)?;
        Ok((id, summary))
    }
}

/// The database identities the snapshots record: whose WAL is copied.
fn databases_of(snapshots: &[SnapshotEntry]) -> HashSet<String> {
    snapshots
        .iter()
        .filter_map(|entry| entry.snapshot.database.as_ref()?.id.clone())
        .collect()
}

/// Refuses to copy a repository into itself, and a copy whose chunks the
/// destination would refuse to read (see [`check_chunk_limits`]).
fn check_pair(source: &Repository, destination: &Repository) -> Result<()> {
    if source.config().id == destination.config().id {
        return Err(Error::InvalidArgument(format!(
            "{} and {} are the same repository (id {}): copy needs two",
            source.backend().location(),
            destination.backend().location(),
            destination.config().id
        )));
    }
    check_chunk_limits(source, destination)
}

/// Refuses a copy whose chunks the destination would refuse to read: a
/// chunk is checked against the destination's largest chunk size.
fn check_chunk_limits(source: &Repository, destination: &Repository) -> Result<()> {
    let from = source.config().chunker.max_size;
    let to = destination.config().chunker.max_size;
    if from > to {
        return Err(Error::InvalidArgument(format!(
            "{} cuts chunks of up to {from} bytes, more than {} accepts ({to}): copy into a \
             repository initialised with chunker parameters at least as large",
            source.backend().location(),
            destination.backend().location()
        )));
    }
    Ok(())
}

/// The source snapshots to copy, oldest first: those the selectors name
/// (every intact one when none; damaged snapshot files go to `warnings`),
/// among those the filter passes.
fn select(
    source: &Repository,
    options: &CopyOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<SnapshotEntry>> {
    if options.selectors.is_empty() {
        // Every snapshot; a damaged snapshot file cannot be copied and
        // blocks none of the others (it is named in the warnings).
        let (entries, damaged) = source.snapshots_checked()?;
        warnings.extend(damaged.into_iter().map(|object| {
            format!(
                "snapshot file {} of the source was not copied: {}",
                object.name, object.reason
            )
        }));
        return Ok(entries
            .into_iter()
            .filter(|entry| options.filter.matches(entry))
            .collect());
    }
    let mut chosen: Vec<SnapshotEntry> = Vec::new();
    for selector in &options.selectors {
        let entry = source.find_snapshot_filtered(selector, &options.filter)?;
        if !chosen.iter().any(|known| known.id == entry.id) {
            chosen.push(entry);
        }
    }
    crate::format::snapshot::sort_by_time(&mut chosen);
    Ok(chosen)
}

/// The destination snapshot that already holds `entry`, if any.
fn present(destination: &[SnapshotEntry], entry: &SnapshotEntry, same_ids: bool) -> Option<Id> {
    let origin = entry.snapshot.original.unwrap_or(entry.id);
    let comparable = |snapshot: &Snapshot| {
        let mut snapshot = snapshot.clone();
        snapshot.original = None;
        snapshot.parent = None;
        if !same_ids {
            snapshot.tree = Id([0; 32]);
        }
        snapshot
    };
    let wanted = comparable(&entry.snapshot);
    destination
        .iter()
        .find(|candidate| {
            candidate.id == origin
                || candidate.snapshot.original == Some(origin)
                // The time (to the nanosecond) first: cheap, and rarely equal.
                || (candidate.snapshot.time == wanted.time
                    && comparable(&candidate.snapshot) == wanted)
        })
        .map(|candidate| candidate.id)
}

/// The destination's snapshot for `entry`: the source's fields with the
/// destination's root tree, the origin recorded and the parent mapped.
fn copied_snapshot(entry: &SnapshotEntry, tree: Id, copies: &HashMap<Id, Id>) -> Snapshot {
    let mut snapshot = entry.snapshot.clone();
    snapshot.tree = tree;
    snapshot.original = Some(entry.snapshot.original.unwrap_or(entry.id));
    snapshot.parent = entry
        .snapshot
        .parent
        .and_then(|parent| copies.get(&parent).copied());
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::snapshot::test_snapshot;

    fn entry(seed: u8, snapshot: Snapshot) -> SnapshotEntry {
        SnapshotEntry {
            id: Id([seed; 32]),
            snapshot,
        }
    }

    #[test]
    fn a_snapshot_is_present_by_origin_by_id_or_by_content() {
        let source = entry(1, test_snapshot("2026-01-01T00:00:00Z", &["a"]));
        let copies = HashMap::new();
        // Its copy records it as the origin (and has another tree).
        let copy = entry(2, copied_snapshot(&source, Id([7; 32]), &copies));
        assert_eq!(copy.snapshot.original, Some(source.id));
        assert_eq!(
            present(std::slice::from_ref(&copy), &source, true),
            Some(copy.id)
        );
        // Copying the copy back: the origin itself is there.
        assert_eq!(
            present(std::slice::from_ref(&source), &copy, false),
            Some(source.id)
        );
        // A copy of the copy keeps the first origin.
        let second = copied_snapshot(&copy, Id([8; 32]), &copies);
        assert_eq!(second.original, Some(source.id));
        // The same content: with the same ids the tree must agree too.
        let twin = entry(3, source.snapshot.clone());
        assert_eq!(
            present(std::slice::from_ref(&twin), &source, true),
            Some(twin.id)
        );
        let mut other_tree = twin.clone();
        other_tree.snapshot.tree = Id([9; 32]);
        assert_eq!(present(&[other_tree.clone()], &source, true), None);
        assert_eq!(present(&[other_tree], &source, false), Some(twin.id));
        // Anything else differing: not present.
        let mut later = twin;
        later.snapshot.time = "2026-01-02T00:00:00Z".into();
        assert_eq!(present(&[later], &source, false), None);
    }

    #[test]
    fn the_parent_is_the_destinations_copy_or_none() {
        let mut child = entry(1, test_snapshot("2026-01-02T00:00:00Z", &[]));
        child.snapshot.parent = Some(Id([5; 32]));
        let none = copied_snapshot(&child, Id([7; 32]), &HashMap::new());
        assert_eq!(none.parent, None);
        let copies = HashMap::from([(Id([5; 32]), Id([6; 32]))]);
        let mapped = copied_snapshot(&child, Id([7; 32]), &copies);
        assert_eq!(mapped.parent, Some(Id([6; 32])));
        assert_eq!(mapped.tree, Id([7; 32]));
    }
}
