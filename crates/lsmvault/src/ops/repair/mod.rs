//! `repair`: rebuilding what can be derived again from what the repository
//! still holds. `repair index` rebuilds the blob index from the pack headers
//! (every pack lists its blobs in its header, so the index files are a cache
//! of them), like `restic repair index`; `repair packs` (`packs.rs`) rebuilds
//! lost and damaged packs from parity.
//!
//! Crash safety: the new index files are written before any old one is
//! deleted, so an interruption leaves the old and new files side by side
//! (the index is their union), never a pack without an index entry that the
//! old index had.

mod packs;

use std::collections::HashSet;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::Result;
use crate::format::index::BlobLocation;
use crate::format::pack::PackEntry;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::lock::LockKind;
use crate::repo::Repository;

pub use packs::{LostPack, ParityChange, RebuiltPack, RepairPacksOptions, RepairPacksReport};

/// A pack whose trailer or header could not be read: its blobs stay unindexed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedPack {
    /// The pack's object name.
    pub name: String,
    /// Why it was skipped, naming the pack.
    pub reason: String,
}

/// What [`Repository::repair_index`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairIndexReport {
    /// Packs whose header was read and indexed.
    pub packs_read: usize,
    /// Blob entries written to the new index files (a blob stored in two
    /// packs counts twice).
    pub blobs_indexed: usize,
    /// Index files written.
    pub index_files_written: usize,
    /// Old index files deleted after the new ones were written.
    pub index_files_removed: usize,
    /// Packs skipped because their trailer or header is damaged.
    pub damaged_packs: Vec<DamagedPack>,
    /// Entries for blobs of damaged packs carried over from intact old index
    /// files (a damaged header does not mean damaged blobs; reads check each).
    pub blobs_kept_from_old_index: usize,
}

impl Repository {
    /// Rebuilds the index from the header of every pack, under the exclusive
    /// lock: writes new index files for every blob the packs list, then
    /// deletes the old index files. Damaged packs are skipped and reported.
    pub fn repair_index(&self, progress: &dyn Progress) -> Result<RepairIndexReport> {
        let _lock = self.lock(LockKind::Exclusive, "repair index")?;
        let old_index_files = self.backend().list(ObjectKind::Index)?;
        let packs = self.backend().list(ObjectKind::Pack)?;
        progress.start("reading pack headers", 0);
        let headers: Vec<(String, Result<Vec<PackEntry>>)> = packs
            .par_iter()
            .map(|pack| {
                (
                    pack.name.clone(),
                    self.read_pack_header(&pack.name, pack.size),
                )
            })
            .collect();
        progress.finish();

        let mut report = RepairIndexReport::default();
        let mut locations = Vec::new();
        for (name, header) in headers {
            let pack = match (Id::from_hex(&name), header) {
                (Ok(pack), Ok(entries)) => (pack, entries),
                (Err(_), _) => {
                    report.damaged_packs.push(DamagedPack {
                        reason: format!("pack {name}: its name is not a pack id"),
                        name,
                    });
                    continue;
                }
                // A damaged pack is skipped; a storage failure stops the
                // rebuild (deleting old index files after an incomplete one
                // would lose entries).
                (_, Err(error)) if error.is_damage() => {
                    report.damaged_packs.push(DamagedPack {
                        name,
                        reason: error.to_string(),
                    });
                    continue;
                }
                (_, Err(error)) => return Err(error),
            };
            report.packs_read += 1;
            let (pack, entries) = pack;
            locations.extend(
                entries
                    .into_iter()
                    .map(|entry| BlobLocation { pack, entry }),
            );
        }
        report.damaged_packs.sort_by(|a, b| a.name.cmp(&b.name));
        report.blobs_kept_from_old_index =
            self.keep_old_entries(&report.damaged_packs, &mut locations)?;
        report.blobs_indexed = locations.len();
        let written = self.write_index(&locations)?;
        report.index_files_written = written.len();
        let kept: HashSet<String> = written.iter().map(|id| id.to_hex()).collect();
        for old in old_index_files
            .iter()
            .filter(|old| !kept.contains(&old.name))
        {
            self.backend().delete(ObjectKind::Index, &old.name)?;
            report.index_files_removed += 1;
        }
        Ok(report)
    }
}

impl Repository {
    /// Adds to `locations` what the intact old index files say about the
    /// blobs of `damaged` packs; returns how many entries that was.
    fn keep_old_entries(
        &self,
        damaged: &[DamagedPack],
        locations: &mut Vec<BlobLocation>,
    ) -> Result<usize> {
        let damaged: HashSet<Id> = damaged
            .iter()
            .filter_map(|pack| Id::from_hex(&pack.name).ok())
            .collect();
        if damaged.is_empty() {
            return Ok(0);
        }
        let before = locations.len();
        let old = self.read_index_files()?;
        locations.extend(
            old.readable
                .into_iter()
                .flat_map(|(_, entries)| entries)
                .filter(|location| damaged.contains(&location.pack)),
        );
        Ok(locations.len() - before)
    }
}
