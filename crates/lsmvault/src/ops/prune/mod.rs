//! `prune`: garbage collection. Delete and repack packs no snapshot needs,
//! consolidate the index. Split in two: `plan.rs` decides from the index, the
//! pack listing and the snapshots what to keep, repack and delete (all a
//! `--dry-run` does); `execute.rs` carries the plan out.
//!
//! Takes the exclusive lock (see [`crate::repo::lock`]): no backup, restore or
//! verify runs meanwhile, so a blob that is unreferenced when prune looks stays
//! unreferenced until prune ends, and nothing a reader needs disappears.
//! That holds only while the lock looks live to everyone: prune checks that
//! it cannot have looked stale (paused past the window), and stops
//! otherwise: by its own clock before each deletion
//! ([`LockGuard::ensure_held`]), and by the storage's view before steps 2,
//! 3 and 4 below ([`LockGuard::ensure_lease`]: a paused virtual machine
//! stops every clock of the guest, not the storage's).
//!
//! [`LockGuard::ensure_held`]: crate::repo::lock::LockGuard::ensure_held
//! [`LockGuard::ensure_lease`]: crate::repo::lock::LockGuard::ensure_lease
//!
//! Prune's order of work keeps every surviving snapshot complete if it is
//! killed at any point:
//! 1. repack: copy the still-used blobs of mostly-unused packs into new packs;
//!    in a repository with parity, write parity over the new packs, and new
//!    groups over the kept packs of every group that loses a member;
//! 2. write the new index files (kept packs + new packs);
//! 3. delete the old index files;
//! 4. delete the packs that are no longer indexed;
//! 5. delete the parity objects of the groups that lost members (and of
//!    the small groups merged into full ones, `regroup.rs`).
//!
//! Until step 3 the old index still serves; after it the new one does; packs
//! are deleted only once no index file names them, and never a pack the new
//! index names (a repacked pack can be byte-identical to, so named like, a
//! pack a killed prune left behind).

mod execute;
mod plan;
mod regroup;

use std::time::Instant;

use serde::Serialize;

use crate::error::Result;
use crate::progress::Progress;
use crate::repo::lock::LockKind;
use crate::repo::Repository;

/// Options for [`Repository::prune`].
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// Repack a pack when more than this percentage of its bytes is unused.
    /// A pack with no used blob is deleted whatever this says. Default 10.
    pub max_unused_percent: f64,
    /// Plan and report only: write, repack and delete nothing.
    pub dry_run: bool,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            max_unused_percent: 10.0,
            dry_run: false,
        }
    }
}

/// What `prune` found and did. Serialized as is for the CLI's `--json`
/// output.
///
/// In a dry run (and when there was nothing to do) every count is the plan's:
/// `packs_written` stays 0, `index_files_after` equals `index_files_before`,
/// and `bytes_after` / `bytes_freed` count only the packs that go whole
/// (unused and unindexed ones: what repacking would free is not known before
/// it runs). After a real run they are measured from the pack listing.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// True when the options asked for a dry run: nothing was changed.
    pub dry_run: bool,
    /// Snapshots in the repository, all of whose blobs were kept.
    pub snapshots: usize,
    /// Distinct blobs (data chunks and trees) that a snapshot or an archived
    /// WAL segment references.
    pub blobs_used: usize,
    /// Indexed blobs that nothing references: those of deleted and repacked
    /// packs go, those of kept packs stay until their pack crosses the
    /// threshold.
    pub blobs_unused: usize,
    /// Pack files listed before prune, unindexed ones included.
    pub packs_before: usize,
    /// Indexed packs without a used blob, deleted outright.
    pub packs_deleted: usize,
    /// Packs whose unused share exceeded
    /// [`PruneOptions::max_unused_percent`]: their used blobs were copied
    /// into new packs, then they were deleted.
    pub packs_repacked: usize,
    /// New packs written by repacking.
    pub packs_written: usize,
    /// Packs no index lists (left by interrupted backups), deleted.
    pub packs_unindexed: usize,
    /// Index files before prune.
    pub index_files_before: usize,
    /// Index files after prune: the consolidated ones that replaced them.
    pub index_files_after: usize,
    /// Total size of all packs before prune, in bytes as stored.
    pub bytes_before: u64,
    /// Total size of all packs after prune, in bytes as stored.
    pub bytes_after: u64,
    /// `bytes_before - bytes_after`: what prune gave back to storage.
    pub bytes_freed: u64,
    /// Wall-clock seconds the prune took, waiting for its lock included.
    pub duration_seconds: f64,
}

impl Repository {
    /// Deletes what no snapshot references; see the module documentation.
    pub fn prune(&self, options: &PruneOptions, progress: &dyn Progress) -> Result<PruneReport> {
        let started = Instant::now();
        let lock = self.lock(LockKind::Exclusive, "prune")?;
        let plan = plan::PrunePlan::build(self, options)?;
        let mut report = plan.report(options.dry_run);
        if !options.dry_run && !plan.is_empty() {
            execute::execute(self, &plan, &lock, progress, &mut report)?;
        } else if !options.dry_run && self.parity_config().is_some() {
            execute::merge_small_groups(self, &plan)?;
        }
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}
