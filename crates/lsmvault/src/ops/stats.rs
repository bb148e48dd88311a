//! `stats` (how big snapshots are, and what forgetting one would free) and
//! `diff` (what changed between two snapshots, in files and in storage).
//!
//! Both are read-only: they take no lock, so they never block a backup, and
//! a concurrent prune can at worst make them fail with a missing-blob error.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;

use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::Result;
use crate::format::index::Index;
use crate::format::pack::BlobKind;
use crate::format::snapshot::SnapshotEntry;
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::Id;
use crate::repo::snapshots::select_checked;
use crate::repo::tree_walker::TreeWalker;
use crate::repo::{DamagedObject, Repository};
use crate::time::Timestamp;

/// Figures for one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotSize {
    /// The snapshot's id.
    pub id: Id,
    /// When the snapshot was taken.
    pub time: Timestamp,
    /// The directory the snapshot was taken of.
    pub source: String,
    /// Regular files in the snapshot.
    pub files: u64,
    /// Sum of the file sizes (what a restore writes).
    pub logical_bytes: u64,
    /// Distinct blobs (chunks and trees) it references.
    pub blobs: u64,
    /// Stored bytes of those blobs.
    pub stored_bytes: u64,
    /// Stored bytes no other snapshot references: what forgetting it (and
    /// pruning) would free.
    pub unique_bytes: u64,
}

/// Figures for a selection of snapshots and for the repository.
#[derive(Debug, Clone, Serialize)]
pub struct RepositoryStats {
    /// One entry per selected snapshot, oldest first.
    pub snapshots: Vec<SnapshotSize>,
    /// Sum of the selected snapshots' logical sizes (file sizes: what a
    /// restore of each would write).
    pub logical_bytes: u64,
    /// Raw (decoded) bytes of the distinct blobs (chunks and trees) the
    /// selection references: what is left after deduplication, before
    /// compression (`data_bytes + tree_bytes`).
    pub raw_bytes: u64,
    /// The part of `raw_bytes` in data blobs (file chunks): the file
    /// content left after deduplication.
    pub data_bytes: u64,
    /// The part of `raw_bytes` in tree blobs (directory listings: names,
    /// sizes, digests, metadata), which deduplication does not produce.
    pub tree_bytes: u64,
    /// Stored bytes of the distinct blobs the selection references: after
    /// compression, including the encryption overhead.
    pub stored_bytes: u64,
    /// The part of `stored_bytes` that is encryption overhead (nonce and tag
    /// of each sealed blob; 0 in a plaintext repository).
    pub encryption_overhead_bytes: u64,
    /// `logical_bytes / data_bytes`: what deduplication saves (tree blobs
    /// left out: they are metadata, not deduplicated file content).
    pub deduplication_ratio: f64,
    /// `raw_bytes / stored_bytes`: what compression saves (below 1 when
    /// encryption overhead outweighs it).
    pub compression_ratio: f64,
    /// `logical_bytes / stored_bytes`: both together.
    pub total_ratio: f64,
    /// Bytes of every pack file on disk (headers and blobs no snapshot
    /// references included: `prune` removes those).
    pub pack_bytes: u64,
    /// Bytes of every pack, index file, snapshot file and parity object.
    pub repository_bytes: u64,
    /// Bytes of the parity objects (included in `repository_bytes`).
    pub parity_bytes: u64,
    /// Pack files.
    pub packs: u64,
    /// Index files.
    pub index_files: u64,
    /// Indexed data blobs (file chunks).
    pub data_blobs: u64,
    /// Indexed tree blobs (directory listings).
    pub tree_blobs: u64,
    /// Snapshot files that could not be read: left out of every figure
    /// (a blob only they use counts as unique to an intact snapshot).
    pub damaged_snapshots: Vec<DamagedObject>,
}

/// One changed path.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Change {
    /// The entry's path relative to the snapshot root.
    pub path: String,
    /// `added`, `removed`, `modified` (content), `type` (file <-> dir ...), `metadata`.
    pub change: &'static str,
    /// File size in the older snapshot (0 if absent there).
    pub size_before: u64,
    /// File size in the newer snapshot (0 if absent there).
    pub size_after: u64,
    /// Raw bytes of this file's chunks that the first snapshot does not have.
    pub new_bytes: u64,
}

/// What differs between two snapshots.
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The older snapshot of the comparison.
    pub from: Id,
    /// The newer snapshot of the comparison.
    pub to: Id,
    /// Entries only the newer snapshot has.
    pub added: usize,
    /// Entries only the older snapshot has.
    pub removed: usize,
    /// Entries whose content or type changed.
    pub modified: usize,
    /// Every changed entry, by path.
    pub changes: Vec<Change>,
    /// Raw bytes of blobs `to` references and `from` does not.
    pub blob_bytes_added: u64,
    /// Raw bytes of blobs `from` references and `to` does not.
    pub blob_bytes_removed: u64,
}

/// Decoded trees, read once per command.
struct TreeCache<'a> {
    repository: &'a Repository,
    trees: HashMap<Id, Rc<Tree>>,
}

impl TreeCache<'_> {
    /// Every blob under `root` (including the trees), and the file count and size.
    fn blobs(&mut self, root: &Id) -> Result<(HashSet<Id>, u64, u64)> {
        let mut blobs = HashSet::from([*root]);
        let (mut files, mut bytes) = (0, 0);
        let repository = self.repository;
        let trees = &mut self.trees;
        let load = |id: &Id, _: &[u8]| -> Result<Option<Rc<Tree>>> {
            if let Some(tree) = trees.get(id) {
                return Ok(Some(Rc::clone(tree)));
            }
            let tree = Rc::new(repository.read_tree(id)?);
            trees.insert(*id, Rc::clone(&tree));
            Ok(Some(tree))
        };
        TreeWalker::new(repository).walk_with(root, load, |_, entry| {
            match &entry.kind {
                EntryKind::Directory { subtree } => {
                    blobs.insert(*subtree);
                }
                EntryKind::File { size, chunks, .. } => {
                    files += 1;
                    bytes += size;
                    blobs.extend(chunks.iter().copied());
                }
                EntryKind::Symlink { .. } => {}
            }
            Ok(true)
        })?;
        Ok((blobs, files, bytes))
    }
}

fn stored_size(index: &Index, blobs: &HashSet<Id>) -> u64 {
    blobs
        .iter()
        .filter_map(|blob| index.get(blob))
        .map(|location| u64::from(location.entry.stored_length))
        .sum()
}

/// The figures of one snapshot that references `blobs` (holding `files`
/// files of `bytes` bytes); `references` counts, per blob, the snapshots of
/// the whole repository that reference it.
fn snapshot_size(
    entry: &SnapshotEntry,
    blobs: &HashSet<Id>,
    files: u64,
    bytes: u64,
    references: &HashMap<Id, u32>,
    index: &Index,
) -> SnapshotSize {
    let unique: HashSet<Id> = blobs
        .iter()
        .filter(|blob| references.get(blob) == Some(&1))
        .copied()
        .collect();
    SnapshotSize {
        id: entry.id,
        time: entry.snapshot.timestamp(),
        source: entry.snapshot.source.clone(),
        files,
        logical_bytes: bytes,
        blobs: blobs.len() as u64,
        stored_bytes: stored_size(index, blobs),
        unique_bytes: stored_size(index, &unique),
    }
}

/// `numerator / denominator`, 0 when there is nothing to divide by.
fn ratio(numerator: u64, denominator: u64) -> f64 {
    if denominator == 0 {
        0.0
    } else {
        numerator as f64 / denominator as f64
    }
}

fn raw_size(index: &Index, blobs: impl Iterator<Item = Id>) -> u64 {
    blobs
        .filter_map(|blob| {
            index
                .get(&blob)
                .map(|location| u64::from(location.entry.raw_length))
        })
        .sum()
}

/// The figures of each selected snapshot, their logical bytes and the
/// distinct blobs they reference together.
fn size_selection(
    selected: &[SnapshotEntry],
    per_snapshot: &SnapshotBlobs,
    references: &HashMap<Id, u32>,
    index: &Index,
) -> Selection {
    let mut selection = Selection {
        sizes: Vec::new(),
        logical_bytes: 0,
        blobs: HashSet::new(),
    };
    for entry in selected {
        let (blobs, files, bytes) = &per_snapshot[&entry.id];
        selection.sizes.push(snapshot_size(
            entry, blobs, *files, *bytes, references, index,
        ));
        selection.logical_bytes += bytes;
        selection.blobs.extend(blobs.iter().copied());
    }
    selection
}

/// Per snapshot of the repository: the blobs it references, its file count
/// and file bytes.
type SnapshotBlobs = HashMap<Id, (HashSet<Id>, u64, u64)>;

/// What the selected snapshots add up to.
struct Selection {
    sizes: Vec<SnapshotSize>,
    logical_bytes: u64,
    /// The distinct blobs they reference.
    blobs: HashSet<Id>,
}

/// Raw and stored bytes of a set of distinct blobs.
struct BlobBytes {
    /// Raw bytes of the data blobs (file chunks).
    data: u64,
    /// Raw bytes of the tree blobs (directory listings).
    trees: u64,
    stored: u64,
    encryption_overhead: u64,
}

/// The repository's files.
struct RepositoryFiles {
    pack_bytes: u64,
    repository_bytes: u64,
    parity_bytes: u64,
    packs: u64,
    index_files: u64,
}

impl Repository {
    /// Sizes of the selected snapshots (all when `selectors` is empty).
    pub fn stats(&self, selectors: &[String]) -> Result<RepositoryStats> {
        let (all, damaged_snapshots) = self.snapshots_checked()?;
        let selected: Vec<SnapshotEntry> = if selectors.is_empty() {
            all.clone()
        } else {
            selectors
                .iter()
                .map(|selector| select_checked(&all, &damaged_snapshots, selector)?.intact())
                .collect::<Result<_>>()?
        };
        let index = self.index()?;
        let (per_snapshot, references) = self.blobs_of_snapshots(&all)?;
        let selection = size_selection(&selected, &per_snapshot, &references, &index);
        let bytes = self.blob_bytes(&index, &selection.blobs);
        let files = self.repository_files()?;
        let tree_blobs = index
            .iter()
            .filter(|location| location.entry.kind == BlobKind::Tree)
            .count() as u64;
        let logical_bytes = selection.logical_bytes;
        let raw_bytes = bytes.data + bytes.trees;
        Ok(RepositoryStats {
            snapshots: selection.sizes,
            logical_bytes,
            raw_bytes,
            data_bytes: bytes.data,
            tree_bytes: bytes.trees,
            stored_bytes: bytes.stored,
            encryption_overhead_bytes: bytes.encryption_overhead,
            // File bytes against chunk bytes: trees hold names and metadata,
            // which deduplication does not produce (many small files would
            // otherwise show a "ratio" far below 1).
            deduplication_ratio: ratio(logical_bytes, bytes.data),
            compression_ratio: ratio(raw_bytes, bytes.stored),
            total_ratio: ratio(logical_bytes, bytes.stored),
            pack_bytes: files.pack_bytes,
            repository_bytes: files.repository_bytes,
            parity_bytes: files.parity_bytes,
            packs: files.packs,
            index_files: files.index_files,
            data_blobs: index.len() as u64 - tree_blobs,
            tree_blobs,
            damaged_snapshots,
        })
    }

    /// The blobs of each snapshot in `all`, and how many of them reference
    /// each blob (over the whole repository, for the unique bytes).
    fn blobs_of_snapshots(
        &self,
        all: &[SnapshotEntry],
    ) -> Result<(SnapshotBlobs, HashMap<Id, u32>)> {
        let mut cache = TreeCache {
            repository: self,
            trees: HashMap::new(),
        };
        let mut references: HashMap<Id, u32> = HashMap::new();
        let mut per_snapshot = HashMap::new();
        for entry in all {
            let (blobs, files, bytes) = cache.blobs(&entry.snapshot.tree)?;
            for blob in &blobs {
                *references.entry(*blob).or_default() += 1;
            }
            per_snapshot.insert(entry.id, (blobs, files, bytes));
        }
        Ok((per_snapshot, references))
    }

    /// Raw bytes (data and trees apart) and stored bytes of `blobs`.
    fn blob_bytes(&self, index: &Index, blobs: &HashSet<Id>) -> BlobBytes {
        let (mut data, mut trees) = (0, 0);
        for location in blobs.iter().filter_map(|blob| index.get(blob)) {
            let raw = u64::from(location.entry.raw_length);
            match location.entry.kind {
                BlobKind::Tree => trees += raw,
                BlobKind::Data => data += raw,
            }
        }
        let encryption_overhead = if self.is_encrypted() {
            let indexed = blobs.iter().filter(|blob| index.contains(blob)).count();
            (indexed * crate::codec::crypto::SEAL_OVERHEAD) as u64
        } else {
            0
        };
        BlobBytes {
            data,
            trees,
            stored: stored_size(index, blobs),
            encryption_overhead,
        }
    }

    /// Sizes and counts of the packs, index, snapshot and parity files.
    fn repository_files(&self) -> Result<RepositoryFiles> {
        let list = |kind| self.backend().list(kind);
        let packs = list(ObjectKind::Pack)?;
        let index_files = list(ObjectKind::Index)?;
        let snapshot_files = list(ObjectKind::Snapshot)?;
        let parity_bytes: u64 = list(ObjectKind::Parity)?
            .iter()
            .map(|object| object.size)
            .sum();
        Ok(RepositoryFiles {
            pack_bytes: packs.iter().map(|object| object.size).sum(),
            repository_bytes: packs
                .iter()
                .chain(&index_files)
                .chain(&snapshot_files)
                .map(|object| object.size)
                .sum::<u64>()
                + parity_bytes,
            parity_bytes,
            packs: packs.len() as u64,
            index_files: index_files.len() as u64,
        })
    }

    /// What changed from snapshot `from` to snapshot `to`.
    pub fn diff(&self, from: &str, to: &str) -> Result<DiffReport> {
        // A damaged snapshot file elsewhere does not stop a diff of two
        // intact ones (selecting a damaged one fails naming it).
        let from = self.find_snapshot(from)?;
        let to = self.find_snapshot(to)?;
        let index = self.index()?;
        let mut cache = TreeCache {
            repository: self,
            trees: HashMap::new(),
        };
        let (from_blobs, _, _) = cache.blobs(&from.snapshot.tree)?;
        let (to_blobs, _, _) = cache.blobs(&to.snapshot.tree)?;
        let before = flatten(self, &from.snapshot.tree)?;
        let after = flatten(self, &to.snapshot.tree)?;
        let changes = compare_entries(&before, &after, |entry| {
            new_chunk_bytes(&index, &from_blobs, entry)
        });
        let count = |kind: &str| {
            changes
                .iter()
                .filter(|change| change.change == kind)
                .count()
        };
        Ok(DiffReport {
            from: from.id,
            to: to.id,
            added: count("added"),
            removed: count("removed"),
            modified: count("modified") + count("type"),
            blob_bytes_added: raw_size(&index, to_blobs.difference(&from_blobs).copied()),
            blob_bytes_removed: raw_size(&index, from_blobs.difference(&to_blobs).copied()),
            changes,
        })
    }
}

/// Every entry under `root`, by its path.
fn flatten(repository: &Repository, root: &Id) -> Result<BTreeMap<String, Entry>> {
    Ok(repository
        .walk(root, &[])?
        .into_iter()
        .map(|walked| (walked.relative.display().to_string(), walked.entry))
        .collect())
}

/// The changes from `before` to `after`, in path order; `new_bytes` gives a
/// changed or added entry's bytes that the first snapshot does not have.
fn compare_entries(
    before: &BTreeMap<String, Entry>,
    after: &BTreeMap<String, Entry>,
    new_bytes: impl Fn(&Entry) -> u64,
) -> Vec<Change> {
    let mut changes = Vec::new();
    for (path, old) in before {
        match after.get(path) {
            None => changes.push(Change {
                path: path.clone(),
                change: "removed",
                size_before: old.size(),
                size_after: 0,
                new_bytes: 0,
            }),
            Some(new) => {
                if let Some(change) = classify_change(old, new) {
                    changes.push(Change {
                        path: path.clone(),
                        change,
                        size_before: old.size(),
                        size_after: new.size(),
                        new_bytes: new_bytes(new),
                    });
                }
            }
        }
    }
    for (path, new) in after {
        if !before.contains_key(path) {
            changes.push(Change {
                path: path.clone(),
                change: "added",
                size_before: 0,
                size_after: new.size(),
                new_bytes: new_bytes(new),
            });
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

/// How an entry present in both snapshots changed: `modified` (content or
/// link target), `type` (file <-> directory ...), `metadata` (mode, mtime,
/// owner), or `None`.
fn classify_change(old: &Entry, new: &Entry) -> Option<&'static str> {
    match (&old.kind, &new.kind) {
        (EntryKind::File { digest: a, .. }, EntryKind::File { digest: b, .. }) if a != b => {
            Some("modified")
        }
        (EntryKind::Symlink { target: a }, EntryKind::Symlink { target: b }) if a != b => {
            Some("modified")
        }
        (EntryKind::File { .. }, EntryKind::File { .. })
        | (EntryKind::Symlink { .. }, EntryKind::Symlink { .. })
        | (EntryKind::Directory { .. }, EntryKind::Directory { .. }) => {
            let (a, b) = (&old.metadata, &new.metadata);
            (a.mode != b.mode || a.mtime_ns != b.mtime_ns || a.uid != b.uid || a.gid != b.gid)
                .then_some("metadata")
        }
        _ => Some("type"),
    }
}

/// Raw bytes of a file's distinct chunks that `from_blobs` does not have.
fn new_chunk_bytes(index: &Index, from_blobs: &HashSet<Id>, entry: &Entry) -> u64 {
    match &entry.kind {
        EntryKind::File { chunks, .. } => raw_size(
            index,
            chunks
                .iter()
                .collect::<HashSet<_>>()
                .into_iter()
                .filter(|chunk| !from_blobs.contains(chunk))
                .copied(),
        ),
        _ => 0,
    }
}
