//! `repair snapshots` (like `restic repair snapshots`): rewrites each
//! snapshot that references lost data into a new snapshot without it.
//!
//! A blob is lost when no index file lists it, when every pack the index
//! names for it is missing (the packs are listed once), or, with
//! `read_data`, when no copy of it reads back and verifies. A file with any
//! lost chunk is dropped from the rewritten tree; a directory whose tree is
//! lost or unreadable becomes an empty directory. Everything dropped is
//! recorded, path and reason, in the new snapshot's `repaired` record
//! (snapshot format version 2, see `docs/format.md`), so the loss is never
//! silent. The original snapshot stays unless `forget` is set.
//!
//! The walk is the one [`TreeWalker`] (its bounds refuse cycles and tree
//! bombs); the rewrite then goes bottom up, once per distinct tree, so a
//! subtree shared by many snapshots or directories is rewritten once.
//!
//! Crash safety: new trees go to new packs, then their index, then the new
//! snapshot, and only then is the original deleted (with `forget`); an
//! interruption leaves the original (and perhaps the new snapshot beside
//! it) plus unreferenced packs for prune, never neither snapshot.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::Arc;

use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::format::index::Index;
use crate::format::pack::BlobKind;
use crate::format::snapshot::{
    DroppedPath, RepairRecord, Snapshot, SnapshotEntry, REPAIRED_SNAPSHOT_VERSION,
};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::lock::LockKind;
use crate::repo::snapshots::select_checked;
use crate::repo::tree_walker::TreeWalker;
use crate::repo::{DamagedObject, PackWriter, Repository, SelectedSnapshot};
use crate::time::Timestamp;

/// Options of [`Repository::repair_snapshots`].
#[derive(Debug, Clone, Default)]
pub struct RepairSnapshotsOptions {
    /// Selectors (ids, prefixes, `latest`, `latest:TAG`) of the snapshots
    /// to check; empty: every snapshot.
    pub snapshots: Vec<String>,
    /// Delete each original snapshot once its rewrite is written.
    pub forget: bool,
    /// Report what would be dropped; write and delete nothing.
    pub dry_run: bool,
    /// Also read every blob the snapshots reference and count one that does
    /// not read back and verify as lost (otherwise only missing index
    /// entries and packs are).
    pub read_data: bool,
}

/// One snapshot that references lost data.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedSnapshot {
    /// The snapshot that references lost data.
    pub original: Id,
    /// Its rewrite (`None` in a dry run).
    pub repaired: Option<Id>,
    /// What the rewrite drops (or, in a dry run, would drop), by path.
    pub dropped: Vec<DroppedPath>,
    /// Whether the original was deleted.
    pub forgotten: bool,
}

/// What [`Repository::repair_snapshots`] found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairSnapshotsReport {
    /// Snapshots checked.
    pub snapshots_checked: usize,
    /// Those that reference lost data, with their rewrites.
    pub repaired: Vec<RepairedSnapshot>,
    /// Snapshots whose trees cannot be walked at all (a cycle or a tree
    /// bomb): not rewritten, named with the reason.
    pub unrepairable: Vec<DamagedObject>,
    /// Snapshot files that cannot be read: nothing to rewrite them from
    /// (`forget` removes them).
    pub damaged_snapshot_files: Vec<DamagedObject>,
    /// Whether this was a dry run (nothing written or deleted).
    pub dry_run: bool,
}

impl Repository {
    /// Rewrites every selected snapshot that references lost data, under
    /// the exclusive lock (see the module documentation).
    pub fn repair_snapshots(
        &self,
        options: &RepairSnapshotsOptions,
        progress: &dyn Progress,
    ) -> Result<RepairSnapshotsReport> {
        let _lock = self.lock(LockKind::Exclusive, "repair snapshots")?;
        let mut report = RepairSnapshotsReport {
            dry_run: options.dry_run,
            ..RepairSnapshotsReport::default()
        };
        let (snapshots, earlier_repairs) = self.snapshots_to_repair(options, &mut report)?;
        let mut blobs = BlobStates::new(self, options.read_data)?;
        let writer = if options.dry_run {
            None
        } else {
            Some(PackWriter::with_known(
                self,
                Arc::new(blobs.present.clone()),
            )?)
        };
        let mut rewrite = Rewrite::default();
        let mut rewritten: Vec<(SnapshotEntry, Rc<RewrittenTree>)> = Vec::new();
        progress.start("checking snapshots", 0);
        for entry in snapshots {
            report.snapshots_checked += 1;
            let root = entry.snapshot.tree;
            match rewrite.tree(self, &mut blobs, writer.as_ref(), root) {
                Ok(tree) if tree.changed => rewritten.push((entry, tree)),
                Ok(_) => {}
                Err(error) if error.is_damage() => report.unrepairable.push(DamagedObject {
                    name: entry.id.to_hex(),
                    reason: error.to_string(),
                    code: error.code(),
                }),
                Err(error) => return Err(error),
            }
        }
        progress.finish();
        if let Some(writer) = writer {
            let summary = writer.finish()?;
            self.write_index(&summary.locations)?;
        }
        for (entry, tree) in rewritten {
            let earlier = earlier_repairs.get(&entry.id).copied();
            report
                .repaired
                .push(self.commit_rewrite(&entry, &tree, earlier, options)?);
        }
        Ok(report)
    }

    /// Writes the rewrite of `entry` (unless a dry run, or `earlier`, the
    /// rewrite an interrupted repair already wrote, exists) and forgets the
    /// original if asked: the new snapshot is published before the original
    /// is deleted.
    fn commit_rewrite(
        &self,
        entry: &SnapshotEntry,
        tree: &RewrittenTree,
        earlier: Option<Id>,
        options: &RepairSnapshotsOptions,
    ) -> Result<RepairedSnapshot> {
        let dropped: Vec<DroppedPath> = tree
            .dropped
            .iter()
            .map(|(path, reason)| DroppedPath {
                path: display_path(path),
                reason: reason.clone(),
            })
            .collect();
        let mut repaired = RepairedSnapshot {
            original: entry.id,
            repaired: None,
            dropped: dropped.clone(),
            forgotten: false,
        };
        if options.dry_run {
            return Ok(repaired);
        }
        repaired.repaired = Some(match earlier {
            Some(earlier) => earlier,
            None => self.write_snapshot(&repaired_snapshot(entry, tree.id, dropped))?,
        });
        if options.forget {
            self.backend()
                .delete(ObjectKind::Snapshot, &entry.id.to_hex())?;
            repaired.forgotten = true;
        }
        Ok(repaired)
    }

    /// The intact snapshots `options` selects, oldest first (damaged
    /// snapshot files are named in `report`), and the rewrites earlier
    /// repairs wrote, by the snapshot they were rewritten from.
    fn snapshots_to_repair(
        &self,
        options: &RepairSnapshotsOptions,
        report: &mut RepairSnapshotsReport,
    ) -> Result<(Vec<SnapshotEntry>, HashMap<Id, Id>)> {
        let (entries, damaged) = self.snapshots_checked()?;
        let earlier_repairs: HashMap<Id, Id> = entries
            .iter()
            .filter_map(|entry| {
                let record = entry.snapshot.repaired.as_ref()?;
                Some((record.original, entry.id))
            })
            .collect();
        if options.snapshots.is_empty() {
            report.damaged_snapshot_files = damaged;
            return Ok((entries, earlier_repairs));
        }
        let mut chosen = Vec::new();
        let mut seen = HashSet::new();
        for selector in &options.snapshots {
            match select_checked(&entries, &damaged, selector)? {
                SelectedSnapshot::Intact(entry) => {
                    if seen.insert(entry.id) {
                        chosen.push(*entry);
                    }
                }
                SelectedSnapshot::Damaged(damaged) => report.damaged_snapshot_files.push(damaged),
            }
        }
        Ok((chosen, earlier_repairs))
    }
}

/// The new snapshot: the original's fields with the new tree, version 2 and
/// the drops (added to those of an earlier repair).
fn repaired_snapshot(original: &SnapshotEntry, tree: Id, dropped: Vec<DroppedPath>) -> Snapshot {
    let mut all_dropped = original
        .snapshot
        .repaired
        .as_ref()
        .map(|earlier| earlier.dropped.clone())
        .unwrap_or_default();
    all_dropped.extend(dropped);
    Snapshot {
        version: REPAIRED_SNAPSHOT_VERSION,
        tree,
        repaired: Some(RepairRecord {
            original: original.id,
            time: Timestamp::now().to_string(),
            dropped: all_dropped,
        }),
        ..original.snapshot.clone()
    }
}

/// A relative path for the record (`.` for the root).
fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        ".".to_string()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

/// Whether each blob is still stored, decided once per blob.
struct BlobStates<'repository> {
    repository: &'repository Repository,
    /// Every indexed blob.
    indexed: Arc<Index>,
    /// The indexed blobs with at least one listed pack.
    present: Index,
    read_data: bool,
    /// Lost data blobs and why (`None`: stored).
    data: HashMap<Id, Option<String>>,
}

impl<'repository> BlobStates<'repository> {
    fn new(repository: &'repository Repository, read_data: bool) -> Result<Self> {
        let indexed = repository.index()?;
        let packs: HashSet<Id> = repository
            .backend()
            .list(ObjectKind::Pack)?
            .iter()
            .filter_map(|pack| Id::from_hex(&pack.name).ok())
            .collect();
        let mut present = (*indexed).clone();
        present.retain_present(|pack| packs.contains(pack));
        Ok(BlobStates {
            repository,
            indexed,
            present,
            read_data,
            data: HashMap::new(),
        })
    }

    /// Why a blob is lost without reading it, or `None`.
    fn missing(&self, id: &Id) -> Option<String> {
        if self.present.contains(id) {
            return None;
        }
        Some(match self.indexed.get(id) {
            Some(location) => format!("blob {id} is lost: its pack {} is missing", location.pack),
            None => format!("blob {id} is lost: no index file lists it"),
        })
    }

    /// Reads a blob from its present copies; the first error if none reads.
    fn read(&self, id: &Id) -> Result<Vec<u8>> {
        let mut first_error = None;
        for location in self.present.locations(id) {
            match self.repository.read_blob_at(location) {
                Ok(bytes) => return Ok(bytes),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| Error::corrupt(format!("blob {id}"), "no copy")))
    }

    /// Why a data blob is lost, or `None` when it is stored (and, with
    /// `read_data`, reads back and verifies).
    fn data_lost(&mut self, id: &Id) -> Result<Option<String>> {
        if let Some(known) = self.data.get(id) {
            return Ok(known.clone());
        }
        let lost = match self.missing(id) {
            Some(reason) => Some(reason),
            None if self.read_data => match self.read(id) {
                Ok(_) => None,
                Err(error) if error.is_damage() => {
                    Some(format!("blob {id} does not read back: {error}"))
                }
                Err(error) => return Err(error),
            },
            None => None,
        };
        self.data.insert(*id, lost.clone());
        Ok(lost)
    }

    /// A tree, or why it cannot be had.
    fn tree(&self, id: &Id) -> Result<std::result::Result<Tree, String>> {
        if let Some(reason) = self.missing(id) {
            return Ok(Err(reason));
        }
        match self.read(id).and_then(|bytes| Tree::decode(id, &bytes)) {
            Ok(tree) => Ok(Ok(tree)),
            Err(error) if error.is_damage() => Ok(Err(format!("tree {id} is unreadable: {error}"))),
            Err(error) => Err(error),
        }
    }
}

/// A tree after the rewrite: its new id, and what was dropped below it
/// (paths relative to it; the empty path is the tree itself).
struct RewrittenTree {
    id: Id,
    changed: bool,
    dropped: Vec<(Vec<u8>, String)>,
}

/// The rewrite of every tree met so far, shared by all snapshots.
#[derive(Default)]
struct Rewrite {
    /// The trees read (or why not), by id.
    trees: HashMap<Id, std::result::Result<Rc<Tree>, String>>,
    done: HashMap<Id, Rc<RewrittenTree>>,
}

impl Rewrite {
    /// Rewrites the tree `root` and everything below it (storing new trees
    /// through `writer`, unless a dry run).
    fn tree(
        &mut self,
        repository: &Repository,
        blobs: &mut BlobStates<'_>,
        writer: Option<&PackWriter<'_>>,
        root: Id,
    ) -> Result<Rc<RewrittenTree>> {
        self.read_trees(repository, blobs, root)?;
        // Bottom up, without recursion (trees nest up to the walker's depth
        // limit): a tree is built once all its subtrees are.
        let mut pending = vec![(root, false)];
        while let Some((id, subtrees_done)) = pending.pop() {
            if self.done.contains_key(&id) {
                continue;
            }
            let tree = match self.trees.get(&id) {
                Some(Ok(tree)) => Rc::clone(tree),
                Some(Err(reason)) => {
                    let reason = format!("directory kept empty: {reason}");
                    let empty = store_tree(writer, blobs, &Tree::default())?;
                    self.done.insert(
                        id,
                        Rc::new(RewrittenTree {
                            id: empty,
                            changed: true,
                            dropped: vec![(Vec::new(), reason)],
                        }),
                    );
                    continue;
                }
                None => {
                    return Err(Error::corrupt(
                        format!("tree {id}"),
                        "was not reached by the walk of its snapshot",
                    ))
                }
            };
            if !subtrees_done {
                pending.push((id, true));
                for entry in &tree.entries {
                    if let EntryKind::Directory { subtree } = &entry.kind {
                        if !self.done.contains_key(subtree) {
                            pending.push((*subtree, false));
                        }
                    }
                }
                continue;
            }
            let rewritten = self.rebuild(&tree, blobs, writer, id)?;
            self.done.insert(id, Rc::new(rewritten));
        }
        self.done
            .get(&root)
            .cloned()
            .ok_or_else(|| Error::corrupt(format!("tree {root}"), "was not rewritten"))
    }

    /// Reads every tree below `root` once, through the tree walker (which
    /// refuses cycles and tree bombs); a lost or unreadable tree is recorded
    /// with its reason and not entered.
    fn read_trees(
        &mut self,
        repository: &Repository,
        blobs: &BlobStates<'_>,
        root: Id,
    ) -> Result<()> {
        let trees = &mut self.trees;
        TreeWalker::new(repository).walk_with(
            &root,
            |id, _path| {
                if let Some(known) = trees.get(id) {
                    return Ok(known.as_ref().ok().cloned());
                }
                let read = blobs.tree(id)?.map(Rc::new);
                let loaded = read.as_ref().ok().cloned();
                trees.insert(*id, read);
                Ok(loaded)
            },
            |_path, _entry| Ok(true),
        )
    }

    /// The tree `id` without its lost files, its subtrees rewritten.
    fn rebuild(
        &self,
        tree: &Tree,
        blobs: &mut BlobStates<'_>,
        writer: Option<&PackWriter<'_>>,
        id: Id,
    ) -> Result<RewrittenTree> {
        let mut kept = Tree::default();
        let mut dropped = Vec::new();
        let mut changed = false;
        for entry in &tree.entries {
            let mut entry: Entry = entry.clone();
            match &mut entry.kind {
                EntryKind::File { chunks, .. } => {
                    if let Some(reason) = first_lost_chunk(blobs, chunks)? {
                        dropped.push((entry.name.clone(), format!("file dropped: {reason}")));
                        changed = true;
                        continue;
                    }
                }
                EntryKind::Directory { subtree } => {
                    let child = self.done.get(subtree).ok_or_else(|| {
                        Error::corrupt(format!("tree {subtree}"), "was not rewritten")
                    })?;
                    if child.changed {
                        changed = true;
                        *subtree = child.id;
                        for (path, reason) in &child.dropped {
                            let mut full = entry.name.clone();
                            if !path.is_empty() {
                                full.push(b'/');
                                full.extend_from_slice(path);
                            }
                            dropped.push((full, reason.clone()));
                        }
                    }
                }
                EntryKind::Symlink { .. } => {}
            }
            kept.entries.push(entry);
        }
        let new_id = if changed {
            store_tree(writer, blobs, &kept)?
        } else {
            id
        };
        Ok(RewrittenTree {
            id: new_id,
            changed,
            dropped,
        })
    }
}

/// Why the first lost chunk of a file is lost, or `None`.
fn first_lost_chunk(blobs: &mut BlobStates<'_>, chunks: &[Id]) -> Result<Option<String>> {
    for chunk in chunks {
        if let Some(reason) = blobs.data_lost(chunk)? {
            return Ok(Some(reason));
        }
    }
    Ok(None)
}

/// Stores a rewritten tree (nothing in a dry run) and returns its id.
fn store_tree(writer: Option<&PackWriter<'_>>, blobs: &BlobStates<'_>, tree: &Tree) -> Result<Id> {
    let bytes = tree.encode();
    let id = blobs.repository.keys().blob_id(&bytes);
    if let Some(writer) = writer {
        writer.add(id, BlobKind::Tree, &bytes)?;
    }
    Ok(id)
}
