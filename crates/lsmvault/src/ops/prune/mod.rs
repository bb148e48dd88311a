//! `prune`: garbage collection. Delete and repack packs no snapshot needs,
//! consolidate the index. Split in two: `plan.rs` decides from the index, the
//! pack listing and the snapshots what to keep, repack and delete (all a
//! `--dry-run` does); `execute.rs` carries the plan out.
//!
//! Takes the exclusive lock (see [`crate::repo::lock`]): no backup, restore or
//! verify runs meanwhile, so a blob that is unreferenced when prune looks stays
//! unreferenced until prune ends, and nothing a reader needs disappears.
//!
//! Prune's order of work keeps every surviving snapshot complete if it is
//! killed at any point:
//! 1. repack: copy the still-used blobs of mostly-unused packs into new packs;
//! 2. write the new index files (kept packs + new packs);
//! 3. delete the old index files;
//! 4. delete the packs that are no longer indexed.
//!
//! Until step 3 the old index still serves; after it the new one does; packs
//! are deleted only once no index file names them, and never a pack the new
//! index names (a repacked pack can be byte-identical to, so named like, a
//! pack a killed prune left behind).

mod execute;
mod plan;

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
    pub max_unused_percent: f64,
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

/// What `prune` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub snapshots: usize,
    pub blobs_used: usize,
    pub blobs_unused: usize,
    pub packs_before: usize,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    pub packs_written: usize,
    /// Packs no index lists (left by interrupted backups), deleted.
    pub packs_unindexed: usize,
    pub index_files_before: usize,
    pub index_files_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub bytes_freed: u64,
    pub duration_seconds: f64,
}

impl Repository {
    /// Deletes what no snapshot references; see the module documentation.
    pub fn prune(&self, options: &PruneOptions, progress: &dyn Progress) -> Result<PruneReport> {
        let started = Instant::now();
        let _lock = self.lock(LockKind::Exclusive, "prune")?;
        let plan = plan::PrunePlan::build(self, options)?;
        let mut report = plan.report(options.dry_run);
        if !options.dry_run && !plan.is_empty() {
            execute::execute(self, &plan, progress, &mut report)?;
        }
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}
