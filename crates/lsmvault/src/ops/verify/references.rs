//! Verify's reference checks: every tree and chunk a snapshot needs, and
//! every chunk an archived WAL segment needs, is indexed; the snapshots and
//! files that need a damaged object are listed under its finding.
//!
//! Trees are read from the locations the index files gave (not through the
//! repository's index), each once however many snapshots share it; a tree
//! that cannot be read is a finding and the walk goes on without it. A walk
//! the tree walker refuses (a tree containing itself, or reached by more paths
//! than a real snapshot holds) is a finding, and verify goes on with the next
//! snapshot.
//!
//! Each file entry is checked against its chunks: always its size against
//! the sum of their indexed raw lengths, and when its chunks' packs are read
//! (`--read-data`) its whole-file digest against the chunks' content, read in
//! order. Content shared by many entries is checked once.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use super::{Findings, ReadData};
use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::format::index::BlobLocation;
use crate::format::snapshot::SnapshotEntry;
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::format::wal_object::WalObject;
use crate::id::Id;
use crate::repo::tree_walker::TreeWalker;
use crate::repo::Repository;

/// A tree as first read: decoded, or why it could not be.
type LoadedTree = std::result::Result<Rc<Tree>, String>;

/// The reference walk over snapshots and WAL records.
pub(super) struct ReferenceCheck<'a> {
    repository: &'a Repository,
    /// Where the index files place each blob.
    locations: &'a HashMap<Id, BlobLocation>,
    /// Every blob some snapshot or archived segment needs.
    referenced: HashSet<Id>,
    /// Every tree met so far.
    trees: HashMap<Id, LoadedTree>,
    /// Which packs' contents are read: files whose chunks all lie in them get
    /// their digest checked.
    read_data: ReadData,
    /// File contents (digest and chunk list, hashed together) already checked.
    files_checked: HashSet<Id>,
}

impl<'a> ReferenceCheck<'a> {
    pub(super) fn new(
        repository: &'a Repository,
        locations: &'a HashMap<Id, BlobLocation>,
        read_data: ReadData,
    ) -> Self {
        ReferenceCheck {
            repository,
            locations,
            referenced: HashSet::new(),
            trees: HashMap::new(),
            read_data,
            files_checked: HashSet::new(),
        }
    }

    /// How many distinct trees the snapshots reference.
    pub(super) fn trees_read(&self) -> usize {
        self.trees.len()
    }

    /// How many indexed blobs nothing checked so far references.
    pub(super) fn unreferenced_blobs(&self) -> usize {
        self.locations
            .keys()
            .filter(|id| !self.referenced.contains(id))
            .count()
    }

    /// Walks every snapshot; returns how many snapshot files there are. A
    /// snapshot file that cannot be read is a finding.
    pub(super) fn check_snapshots(&mut self, findings: &mut Findings) -> Result<usize> {
        let snapshot_files = self.repository.backend().list(ObjectKind::Snapshot)?;
        for file in &snapshot_files {
            match self.repository.read_snapshot(&file.name) {
                Ok(entry) => self.check_snapshot(&entry, findings)?,
                Err(error) => findings.add(format!("snapshot {}", file.name), error.to_string()),
            }
        }
        Ok(snapshot_files.len())
    }

    fn check_snapshot(&mut self, entry: &SnapshotEntry, findings: &mut Findings) -> Result<()> {
        let label = format!("snapshot {}", entry.id.short());
        let repository = self.repository;
        // The walker holds both callbacks at once; each borrows the state
        // only while it runs.
        let state = RefCell::new((self, findings));
        let load = |tree_id: &Id, path: &[u8]| -> Result<Option<Rc<Tree>>> {
            let (check, findings) = &mut *state.borrow_mut();
            Ok(check.load_tree(tree_id, path, &label, findings))
        };
        let visit = |path: &[u8], child: &Entry| -> Result<bool> {
            let (check, findings) = &mut *state.borrow_mut();
            check.reference_file(path, child, &label, findings);
            Ok(true)
        };
        let walked = TreeWalker::new(repository).walk_with(&entry.snapshot.tree, load, visit);
        let (_, findings) = state.into_inner();
        match walked {
            Ok(()) => Ok(()),
            // The walker refused this snapshot's trees: a finding for the tree
            // it names; the other snapshots are still checked.
            Err(Error::CorruptObject { object, reason }) => {
                findings.add(object.clone(), reason);
                if let Some(finding) = findings.by_object.get_mut(&object) {
                    finding.affected.push(label);
                }
                Ok(())
            }
            Err(other) => Err(other),
        }
    }

    /// The tree `tree_id` at `path` of snapshot `label`, read on first use;
    /// `None` (and a finding) when it cannot be read.
    fn load_tree(
        &mut self,
        tree_id: &Id,
        path: &[u8],
        label: &str,
        findings: &mut Findings,
    ) -> Option<Rc<Tree>> {
        self.referenced.insert(*tree_id);
        let path = String::from_utf8_lossy(path);
        let where_ = || format!("{label}: {}", if path.is_empty() { "/" } else { &path });
        let location = self.locations.get(tree_id);
        findings.reference(*tree_id, location.is_some(), "tree", where_);
        let repository = self.repository;
        let tree = self
            .trees
            .entry(*tree_id)
            .or_insert_with(|| read_tree(repository, tree_id, location));
        match tree {
            Ok(tree) => Some(Rc::clone(tree)),
            Err(problem) => {
                if !findings.damaged_blobs.contains_key(tree_id) {
                    let problem = problem.clone();
                    findings.add_blob(*tree_id, format!("tree {tree_id}"), problem);
                    findings.affect(tree_id, where_);
                }
                None
            }
        }
    }

    /// Records the chunks of a file entry as needed by `label: path`.
    fn reference_file(&mut self, path: &[u8], child: &Entry, label: &str, findings: &mut Findings) {
        if let EntryKind::File {
            chunks,
            size,
            digest,
        } = &child.kind
        {
            let child_path = String::from_utf8_lossy(path);
            for chunk in chunks {
                self.referenced.insert(*chunk);
                findings.reference(*chunk, self.locations.contains_key(chunk), "blob", || {
                    format!("{label}: {child_path}")
                });
            }
            let who = format!("{label}: {child_path}");
            if let Some(problem) = self.check_file_content(*size, digest, chunks, findings) {
                findings.add(format!("file {who}"), problem);
                if let Some(finding) = findings.by_object.get_mut(&format!("file {who}")) {
                    finding.affected.push(who);
                }
            }
        }
    }

    /// What contradicts a file entry's `size` and `digest` in its chunks, if
    /// anything: the size is checked from the index; the digest by reading
    /// the chunks when their packs are read. Chunks that are unindexed or
    /// already damaged are findings of their own and skip the check.
    fn check_file_content(
        &mut self,
        size: u64,
        digest: &Id,
        chunks: &[Id],
        findings: &Findings,
    ) -> Option<String> {
        let mut content = blake3::Hasher::new();
        content.update(&digest.0);
        let mut locations = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            content.update(&chunk.0);
            if findings.damaged_blobs.contains_key(chunk) {
                return None;
            }
            locations.push(self.locations.get(chunk)?);
        }
        if !self
            .files_checked
            .insert(Id(*content.finalize().as_bytes()))
        {
            return None;
        }
        let held: u64 = locations
            .iter()
            .map(|location| u64::from(location.entry.raw_length))
            .sum();
        if held != size {
            return Some(format!(
                "its entry says {size} bytes, its {} chunks hold {held}",
                chunks.len()
            ));
        }
        // A one-chunk file's digest is its chunk's id (whose content the pack
        // pass checks with `--read-data`): comparing them needs no reading.
        if let [only] = locations.as_slice() {
            return (only.entry.id != *digest).then(|| {
                format!(
                    "its digest is {digest}, but its one chunk is {}",
                    only.entry.id
                )
            });
        }
        if !locations
            .iter()
            .all(|location| self.read_data.includes(&location.pack))
        {
            return None;
        }
        self.digest_problem(digest, &locations)
    }

    /// Hashes the chunks at `locations` in order; what is wrong if that is not `digest`.
    fn digest_problem(&self, digest: &Id, locations: &[&BlobLocation]) -> Option<String> {
        let mut hasher = self.repository.keys().hasher();
        for location in locations {
            match self.repository.read_blob_at(location) {
                Ok(bytes) => {
                    hasher.update(&bytes);
                }
                Err(error) => return Some(format!("reading its chunks: {error}")),
            }
        }
        let actual = Id(*hasher.finalize().as_bytes());
        (actual != *digest).then(|| {
            format!(
                "its digest is {digest}, its {} chunks' content hashes to {actual}",
                locations.len()
            )
        })
    }

    /// Checks that every chunk of every archived WAL segment version
    /// resolves; returns how many versions there are. Each WAL record that
    /// cannot be read is a finding, and the others are still checked; WAL
    /// records that cannot be listed are one finding.
    pub(super) fn check_wal_archive(&mut self, findings: &mut Findings) -> usize {
        let objects = match self.repository.wal_objects_checked() {
            Ok((objects, damaged)) => {
                for object in damaged {
                    findings.add(format!("WAL record {}", object.name), object.reason);
                }
                objects
            }
            Err(error) => {
                findings.add("WAL records".into(), error.to_string());
                return 0;
            }
        };
        let mut segments = 0;
        for (_, object) in objects {
            let WalObject::Segment(record) = object else {
                continue;
            };
            segments += 1;
            for chunk in &record.chunks {
                self.referenced.insert(*chunk);
                findings.reference(*chunk, self.locations.contains_key(chunk), "blob", || {
                    format!(
                        "WAL segment {} of database {}",
                        record.file_name, record.database_id
                    )
                });
            }
        }
        segments
    }
}

/// Reads and decodes a tree from its indexed location.
fn read_tree(repository: &Repository, tree_id: &Id, location: Option<&BlobLocation>) -> LoadedTree {
    match location {
        Some(location) => repository
            .read_blob_at(location)
            .and_then(|bytes| Tree::decode(tree_id, &bytes))
            .map(Rc::new)
            .map_err(|error| error.to_string()),
        None => Err("unreadable".into()),
    }
}
