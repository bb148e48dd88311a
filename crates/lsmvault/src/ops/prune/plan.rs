//! What a prune would do: which packs to keep, repack and delete, decided
//! from the snapshots, the WAL archive, the index files and the pack listing.
//! Reads only; a `--dry-run` stops here.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::backend::{ObjectInfo, ObjectKind};
use crate::error::{Error, Result};
use crate::format::index::Index;
use crate::format::pack::PackEntry;
use crate::format::wal_object::WalObject;
use crate::id::Id;
use crate::repo::Repository;

use super::{PruneOptions, PruneReport};

/// The decisions of one prune, made under its exclusive lock.
pub(super) struct PrunePlan {
    /// How many snapshots the repository holds.
    pub snapshots: usize,
    /// Every blob a snapshot or an archived WAL segment references.
    pub used: HashSet<Id>,
    /// The index as loaded from every index file.
    pub index: Arc<Index>,
    /// Names of the index files present when the plan was made.
    pub index_files: Vec<String>,
    /// What the index files say each pack holds.
    pub pack_entries: HashMap<Id, Vec<PackEntry>>,
    /// Size of every listed pack whose name is a pack id.
    pub pack_sizes: HashMap<Id, u64>,
    /// Indexed packs to keep as they are: at most the allowed share unused.
    pub keep: Vec<Id>,
    /// Indexed packs to repack (copy their used blobs, then delete): more
    /// than the allowed share unused.
    pub repack: Vec<Id>,
    /// Indexed packs without a used blob, to delete.
    pub delete: Vec<Id>,
    /// Listed packs no index file names (left by interrupted backups), with
    /// their sizes; by name, since a stray object's name need not be an id.
    pub unindexed: Vec<(String, u64)>,
    /// Packs holding a damaged copy of a used blob stored twice: repacked
    /// (or deleted) whatever their unused share, so the damaged copy goes.
    pub damaged: HashSet<Id>,
    /// How many packs the listing held, unindexed ones included.
    pub packs_before: usize,
    /// Their total size in bytes as stored.
    pub bytes_before: u64,
}

impl PrunePlan {
    /// Decides what to do; refuses when a snapshot needs a blob whose pack is
    /// missing (deleting anything then could only make matters worse).
    pub fn build(repository: &Repository, options: &PruneOptions) -> Result<PrunePlan> {
        let snapshots = repository.snapshots()?;
        let index = repository.refresh_index()?;
        let used = used_blobs(repository, &snapshots)?;

        // Damaged index files are skipped (the handle names them): their
        // packs are then unindexed, and a used blob only they described makes
        // the check below refuse.
        let index_files = repository.read_index_files()?;
        let mut pack_entries: HashMap<Id, Vec<PackEntry>> = HashMap::new();
        for (_, locations) in &index_files.readable {
            for location in locations.iter().copied() {
                pack_entries
                    .entry(location.pack)
                    .or_default()
                    .push(location.entry);
            }
        }
        let listed_packs = repository.backend().list(ObjectKind::Pack)?;
        let (pack_sizes, unindexed) = classify_listed(&listed_packs, &pack_entries);
        let mut index = (*index).clone();
        index.prefer_present(|pack| pack_sizes.contains_key(pack));
        let damaged = choose_copies(repository, &used, &mut index, &pack_sizes);
        let index = Arc::new(index);
        for blob in &used {
            let present = index
                .get(blob)
                .is_some_and(|location| pack_sizes.contains_key(&location.pack));
            if !present {
                return Err(Error::corrupt(
                    format!("blob {blob}"),
                    "a snapshot needs it but its pack is missing or unindexed; prune refuses to run (verify names every damaged object)",
                ));
            }
        }
        let mut plan = PrunePlan {
            snapshots: snapshots.len(),
            used,
            index,
            index_files: index_files
                .readable
                .into_iter()
                .map(|(name, _)| name)
                .chain(index_files.damaged.into_iter().map(|file| file.name))
                .collect(),
            pack_entries,
            pack_sizes,
            keep: Vec::new(),
            repack: Vec::new(),
            delete: Vec::new(),
            unindexed,
            damaged,
            packs_before: listed_packs.len(),
            bytes_before: listed_packs.iter().map(|pack| pack.size).sum(),
        };
        plan.classify_indexed(options.max_unused_percent);
        Ok(plan)
    }

    /// Whether a blob is used *from this pack* (a blob stored twice counts
    /// where the index resolves it).
    pub fn used_from(&self, pack: &Id, entry: &PackEntry) -> bool {
        self.used.contains(&entry.id)
            && self
                .index
                .get(&entry.id)
                .is_some_and(|location| location.pack == *pack)
    }

    /// Sorts every indexed, present pack into keep, repack or delete by the
    /// share of its bytes still used.
    fn classify_indexed(&mut self, max_unused_percent: f64) {
        let (mut keep, mut repack, mut delete) = (Vec::new(), Vec::new(), Vec::new());
        for (pack, entries) in &self.pack_entries {
            if !self.pack_sizes.contains_key(pack) {
                continue; // missing pack: its index entries are dropped
            }
            let total: u64 = entries
                .iter()
                .map(|entry| u64::from(entry.stored_length))
                .sum();
            let used_here: u64 = entries
                .iter()
                .filter(|entry| self.used_from(pack, entry))
                .map(|entry| u64::from(entry.stored_length))
                .sum();
            if used_here == 0 {
                delete.push(*pack);
            } else if self.damaged.contains(pack)
                || (total - used_here) as f64 > total as f64 * max_unused_percent / 100.0
            {
                repack.push(*pack);
            } else {
                keep.push(*pack);
            }
        }
        (self.keep, self.repack, self.delete) = (keep, repack, delete);
    }

    /// Whether there is nothing to do: no pack to delete or repack, no stray
    /// pack, one index file at most, and no index entry of a missing pack.
    pub fn is_empty(&self) -> bool {
        self.delete.is_empty()
            && self.repack.is_empty()
            && self.unindexed.is_empty()
            && self.index_files.len() <= 1
            && self
                .pack_entries
                .keys()
                .all(|pack| self.pack_sizes.contains_key(pack))
    }

    /// Size of an indexed pack (zero if it was not listed).
    pub fn size_of(&self, pack: &Id) -> u64 {
        self.pack_sizes.get(pack).copied().unwrap_or(0)
    }

    /// The report of the plan: complete for a dry run or when there is
    /// nothing to do; execution fills in what it wrote.
    pub fn report(&self, dry_run: bool) -> PruneReport {
        let freed: u64 = self
            .delete
            .iter()
            .map(|pack| self.size_of(pack))
            .sum::<u64>()
            + self.unindexed.iter().map(|(_, size)| size).sum::<u64>();
        PruneReport {
            dry_run,
            snapshots: self.snapshots,
            blobs_used: self.used.len(),
            blobs_unused: self.index.len() - self.used.len().min(self.index.len()),
            packs_before: self.packs_before,
            packs_deleted: self.delete.len(),
            packs_repacked: self.repack.len(),
            packs_unindexed: self.unindexed.len(),
            index_files_before: self.index_files.len(),
            index_files_after: self.index_files.len(),
            bytes_before: self.bytes_before,
            bytes_after: self.bytes_before - freed,
            bytes_freed: freed,
            ..PruneReport::default()
        }
    }
}

/// For every used blob stored in more than one present pack (a backup wrote
/// it again after finding its pack missing or damaged), makes the first copy
/// that reads back intact the one kept; returns the packs whose copy did not.
/// Copies are rare, so reading them costs little; reading them is what keeps
/// prune from keeping a damaged copy and deleting the good one.
fn choose_copies(
    repository: &Repository,
    used: &HashSet<Id>,
    index: &mut Index,
    pack_sizes: &HashMap<Id, u64>,
) -> HashSet<Id> {
    let mut damaged = HashSet::new();
    if !index.has_duplicates() {
        return damaged;
    }
    let mut chosen = Vec::new();
    for blob in used {
        let present: Vec<_> = index
            .locations(blob)
            .filter(|location| pack_sizes.contains_key(&location.pack))
            .copied()
            .collect();
        if present.len() < 2 {
            continue;
        }
        let mut failed = Vec::new();
        for location in present {
            if repository.read_blob_at(&location).is_ok() {
                chosen.push(location);
                // Only with an intact copy to keep is a damaged one dropped:
                // with none, prune leaves the blob as it is (verify names it).
                damaged.extend(failed.drain(..));
                break;
            }
            failed.push(location.pack);
        }
    }
    for location in chosen {
        index.promote(location);
    }
    damaged
}

/// Every blob of every snapshot, and the chunks of archived WAL segments
/// (kept as long as their records exist).
fn used_blobs(
    repository: &Repository,
    snapshots: &[crate::format::snapshot::SnapshotEntry],
) -> Result<HashSet<Id>> {
    let mut used = HashSet::new();
    let roots: Vec<Id> = snapshots.iter().map(|entry| entry.snapshot.tree).collect();
    repository.referenced_blobs(&roots, &mut used)?;
    for (_, object) in repository.wal_objects()? {
        if let WalObject::Segment(record) = object {
            used.extend(record.chunks);
        }
    }
    Ok(used)
}

/// Splits the pack listing into the sizes of packs named by an id and the
/// packs no index file names.
fn classify_listed(
    listed: &[ObjectInfo],
    pack_entries: &HashMap<Id, Vec<PackEntry>>,
) -> (HashMap<Id, u64>, Vec<(String, u64)>) {
    let mut sizes = HashMap::new();
    let mut unindexed = Vec::new();
    for pack in listed {
        match Id::from_hex(&pack.name) {
            Ok(id) if pack_entries.contains_key(&id) => {
                sizes.insert(id, pack.size);
            }
            _ => unindexed.push((pack.name.clone(), pack.size)),
        }
    }
    (sizes, unindexed)
}
