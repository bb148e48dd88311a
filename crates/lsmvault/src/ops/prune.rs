//! `forget` (remove snapshot files by policy or by id) and `prune` (garbage
//! collection: delete and repack packs no snapshot needs, consolidate the index).
//!
//! Both take the exclusive lock (see [`crate::repo::lock`]): no backup, restore or
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

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::format::index::{BlobLocation, Index};
use crate::format::pack::{self, PackEntry};
use crate::format::wal_object::WalObject;
use crate::id::Id;
use crate::ops::retention::{self, GroupBy, GroupDecision, RetentionPolicy, SnapshotFilter};
use crate::progress::Progress;
use crate::repo::lock::LockKind;
use crate::repo::{PackWriter, Repository};

/// Options for [`Repository::forget`].
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    pub policy: RetentionPolicy,
    pub filter: SnapshotFilter,
    pub group_by: GroupBy,
    /// Report only; remove nothing.
    pub dry_run: bool,
    /// Allow a policy to remove every snapshot of a group.
    pub allow_remove_all: bool,
}

/// What `forget` decided (and did, unless it was a dry run).
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    pub groups: Vec<GroupDecision>,
    pub removed: Vec<String>,
    pub dry_run: bool,
}

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
    /// Removes the snapshots a retention policy does not keep.
    pub fn forget(&self, options: &ForgetOptions) -> Result<ForgetReport> {
        if options.policy.is_empty() {
            return Err(Error::InvalidArgument(
                "no keep rule given: pass --keep-last, --keep-daily, --keep-within, ... (or snapshot ids)"
                    .into(),
            ));
        }
        let _lock = if options.dry_run {
            None
        } else {
            Some(self.lock(LockKind::Exclusive, "forget")?)
        };
        let snapshots = self.snapshots()?;
        let groups = retention::decide_all(
            &snapshots,
            &options.filter,
            options.group_by,
            &options.policy,
        );
        if !options.allow_remove_all {
            if let Some(group) = groups
                .iter()
                .find(|group| group.snapshots.iter().all(|decision| !decision.keep))
            {
                return Err(Error::PolicyRemovesAll {
                    group: group.group.clone(),
                    count: group.snapshots.len(),
                });
            }
        }
        let removed: Vec<String> = groups
            .iter()
            .flat_map(|group| group.snapshots.iter())
            .filter(|decision| !decision.keep)
            .map(|decision| decision.id.clone())
            .collect();
        if !options.dry_run {
            for id in &removed {
                self.backend().delete(ObjectKind::Snapshot, id)?;
            }
        }
        Ok(ForgetReport {
            groups,
            removed,
            dry_run: options.dry_run,
        })
    }

    /// Removes the given snapshots (ids or unique prefixes).
    pub fn forget_snapshots(&self, selectors: &[String], dry_run: bool) -> Result<Vec<String>> {
        let _lock = if dry_run {
            None
        } else {
            Some(self.lock(LockKind::Exclusive, "forget")?)
        };
        let snapshots = self.snapshots()?;
        let ids: Vec<String> = selectors
            .iter()
            .map(|selector| {
                crate::format::snapshot::select(&snapshots, selector).map(|entry| entry.id.to_hex())
            })
            .collect::<Result<_>>()?;
        if !dry_run {
            for id in &ids {
                self.backend().delete(ObjectKind::Snapshot, id)?;
            }
        }
        Ok(ids)
    }

    /// Deletes what no snapshot references; see the module documentation.
    pub fn prune(&self, options: &PruneOptions, progress: &dyn Progress) -> Result<PruneReport> {
        let started = Instant::now();
        let _lock = self.lock(LockKind::Exclusive, "prune")?;
        let mut report = PruneReport {
            dry_run: options.dry_run,
            ..PruneReport::default()
        };

        // What is used: every blob of every snapshot.
        let snapshots = self.snapshots()?;
        report.snapshots = snapshots.len();
        let index = self.refresh_index()?;
        let mut used = HashSet::new();
        let roots: Vec<Id> = snapshots.iter().map(|entry| entry.snapshot.tree).collect();
        self.referenced_blobs(&roots, &mut used)?;
        // Archived WAL segments are kept as long as their records exist.
        for (_, object) in self.wal_objects()? {
            if let WalObject::Segment(record) = object {
                used.extend(record.chunks);
            }
        }
        report.blobs_used = used.len();

        // What is stored: every index file and pack.
        let index_files = self.backend().list(ObjectKind::Index)?;
        report.index_files_before = index_files.len();
        let mut pack_entries: HashMap<Id, Vec<PackEntry>> = HashMap::new();
        for file in &index_files {
            for location in self.read_index_file(&file.name)? {
                pack_entries
                    .entry(location.pack)
                    .or_default()
                    .push(location.entry);
            }
        }
        let listed_packs = self.backend().list(ObjectKind::Pack)?;
        report.packs_before = listed_packs.len();
        report.bytes_before = listed_packs.iter().map(|pack| pack.size).sum();
        let pack_sizes: HashMap<String, u64> = listed_packs
            .iter()
            .map(|pack| (pack.name.clone(), pack.size))
            .collect();
        for blob in &used {
            let present = index
                .get(blob)
                .is_some_and(|location| pack_sizes.contains_key(&location.pack.to_hex()));
            if !present {
                return Err(Error::corrupt(
                    format!("blob {blob}"),
                    "a snapshot needs it but its pack is missing or unindexed; prune refuses to run (see `lsmvault verify`)",
                ));
            }
        }
        report.blobs_unused = index.len() - used.len().min(index.len());

        // Per pack: the bytes of blobs used *from this pack* (a blob stored
        // twice counts where the index resolves it).
        let mut keep: Vec<Id> = Vec::new();
        let mut repack: Vec<Id> = Vec::new();
        let mut delete: Vec<Id> = Vec::new();
        for (pack, entries) in &pack_entries {
            if !pack_sizes.contains_key(&pack.to_hex()) {
                continue; // missing pack: its index entries are dropped below
            }
            let total: u64 = entries
                .iter()
                .map(|entry| u64::from(entry.stored_length))
                .sum();
            let used_here: u64 = entries
                .iter()
                .filter(|entry| {
                    used.contains(&entry.id)
                        && index
                            .get(&entry.id)
                            .is_some_and(|location| location.pack == *pack)
                })
                .map(|entry| u64::from(entry.stored_length))
                .sum();
            if used_here == 0 {
                delete.push(*pack);
            } else if (total - used_here) as f64 > total as f64 * options.max_unused_percent / 100.0
            {
                repack.push(*pack);
            } else {
                keep.push(*pack);
            }
        }
        let unindexed: Vec<String> = listed_packs
            .iter()
            .filter(|pack| {
                Id::from_hex(&pack.name).map_or(true, |id| !pack_entries.contains_key(&id))
            })
            .map(|pack| pack.name.clone())
            .collect();
        report.packs_deleted = delete.len();
        report.packs_repacked = repack.len();
        report.packs_unindexed = unindexed.len();

        let nothing_to_do = delete.is_empty()
            && repack.is_empty()
            && unindexed.is_empty()
            && index_files.len() <= 1
            && pack_entries
                .keys()
                .all(|pack| pack_sizes.contains_key(&pack.to_hex()));
        if options.dry_run || nothing_to_do {
            let freed: u64 = delete
                .iter()
                .map(|pack| pack_sizes[&pack.to_hex()])
                .chain(unindexed.iter().map(|name| pack_sizes[name]))
                .sum();
            report.bytes_freed = freed;
            report.bytes_after = report.bytes_before - freed;
            report.index_files_after = index_files.len();
            report.duration_seconds = started.elapsed().as_secs_f64();
            return Ok(report);
        }

        // 1. Repack: the kept packs' blobs count as stored, the repacked ones do not.
        let mut kept_index = Index::new();
        let mut kept_locations: Vec<BlobLocation> = Vec::new();
        for pack in &keep {
            for entry in &pack_entries[pack] {
                let location = BlobLocation {
                    pack: *pack,
                    entry: *entry,
                };
                kept_index.insert(location);
                kept_locations.push(location);
            }
        }
        let repack_bytes: u64 = repack.iter().map(|pack| pack_sizes[&pack.to_hex()]).sum();
        progress.start("repacking", repack_bytes);
        let writer = PackWriter::with_known(self, Arc::new(kept_index))?;
        repack.par_iter().try_for_each(|pack| {
            let name = pack.to_hex();
            let bytes = self.backend().read(ObjectKind::Pack, &name)?;
            for entry in pack::parse_pack(&name, &bytes, self.keys())? {
                let wanted = used.contains(&entry.id)
                    && index
                        .get(&entry.id)
                        .is_some_and(|location| location.pack == *pack);
                if !wanted {
                    continue;
                }
                let start = entry.offset as usize;
                let stored = bytes
                    .get(start..start + entry.stored_length as usize)
                    .ok_or_else(|| {
                        Error::corrupt(format!("pack {name}"), "blob outside the pack")
                    })?;
                // Decoding checks the blob against its id: never copy damage.
                let raw = pack::decode_blob(&entry, stored, self.keys(), || {
                    format!("blob {} in pack {name}", entry.id)
                })?;
                writer.add(entry.id, entry.kind, &raw)?;
            }
            progress.advance(bytes.len() as u64);
            Ok::<(), Error>(())
        })?;
        let written = writer.finish()?;
        progress.finish();
        report.packs_written = written.packs as usize;

        // 2. New index: kept packs plus the new ones.
        kept_locations.extend(written.locations.iter().copied());
        let new_index_files: HashSet<String> = self
            .write_index(&kept_locations)?
            .into_iter()
            .map(|id| id.to_hex())
            .collect();
        report.index_files_after = new_index_files.len();

        // 3. Old index files go; 4. then the packs they alone named.
        for file in &index_files {
            if !new_index_files.contains(&file.name) {
                self.backend().delete(ObjectKind::Index, &file.name)?;
            }
        }
        // A pack the new index names is never deleted, whatever it was
        // classified as: repacking is deterministic in a plaintext
        // repository, so the pack just written can carry the name of an
        // unused or unindexed pack that an earlier, killed prune wrote.
        let indexed_packs: HashSet<String> = kept_locations
            .iter()
            .map(|location| location.pack.to_hex())
            .collect();
        for name in delete
            .iter()
            .chain(&repack)
            .map(Id::to_hex)
            .chain(unindexed.iter().cloned())
            .filter(|name| !indexed_packs.contains(name))
        {
            self.backend().delete(ObjectKind::Pack, &name)?;
        }
        self.refresh_index()?;
        report.bytes_after = self
            .backend()
            .list(ObjectKind::Pack)?
            .iter()
            .map(|pack| pack.size)
            .sum();
        report.bytes_freed = report.bytes_before.saturating_sub(report.bytes_after);
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }
}
