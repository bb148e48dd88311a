//! [`Transfer`]: the blobs of a snapshot's trees (and of WAL records) from
//! the source into the destination's pack writer.
//!
//! Invariants:
//! - every blob stored in the destination was read from the source through
//!   [`Repository::read_blob`], so it hashed to its source id; a damaged
//!   source blob fails the copy, naming it, before anything references it;
//! - with the same ids on both sides, a blob the destination has (listed in
//!   its index with its pack present, or stored earlier in this copy) is
//!   never downloaded, and a tree it has is read from the destination;
//! - with different ids, each file's content is read whole (chunk by chunk)
//!   and checked against its source digest, and its chunk ids and digest are
//!   computed with the destination's keys; trees are rebuilt from the
//!   translated entries. A file content translated once (by source digest
//!   and size) is remembered, so later snapshots of the same run do not
//!   download it again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::format::index::{BlobLocation, Index};
use crate::format::pack::BlobKind;
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::Id;
use crate::interrupt::Interrupt;
use crate::progress::Progress;
use crate::repo::{PackWriter, Repository};

/// A file's content in the destination: its digest and chunk ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Content {
    pub digest: Id,
    pub chunks: Vec<Id>,
}

/// Moves blobs from `source` to `destination` for the length of one copy.
pub(super) struct Transfer<'a> {
    pub source: &'a Repository,
    pub destination: &'a Repository,
    same_ids: bool,
    /// The destination's blobs at the start (pack present).
    present: Arc<Index>,
    /// Blobs this copy has stored and indexed in the destination.
    stored: HashSet<Id>,
    /// Source tree id -> destination tree id, for trees complete in the
    /// destination (written and indexed, or walked and found there).
    trees: HashMap<Id, Id>,
    /// Different ids only: (source digest, size) -> destination content.
    files: HashMap<(Id, u64), Content>,
    /// Trees done in the snapshot being copied, before its index is written.
    pending_trees: HashMap<Id, Id>,
    blobs_read: AtomicU64,
    bytes_read: AtomicU64,
}

impl<'a> Transfer<'a> {
    pub fn new(source: &'a Repository, destination: &'a Repository, present: Arc<Index>) -> Self {
        // Ids agree when both keys hash alike; one probe decides it (keyed
        // BLAKE3 under different keys never agrees, plain never agrees with keyed).
        let probe = b"lsmvault copy: do the two repositories compute blob ids alike?";
        let same_ids = source.keys().blob_id(probe) == destination.keys().blob_id(probe);
        Transfer {
            source,
            destination,
            same_ids,
            present,
            stored: HashSet::new(),
            trees: HashMap::new(),
            files: HashMap::new(),
            pending_trees: HashMap::new(),
            blobs_read: AtomicU64::new(0),
            bytes_read: AtomicU64::new(0),
        }
    }

    /// Whether both repositories compute the same id for the same bytes.
    pub fn same_ids(&self) -> bool {
        self.same_ids
    }

    /// Blobs and raw bytes downloaded from the source so far.
    pub fn downloaded(&self) -> (u64, u64) {
        (
            self.blobs_read.load(Ordering::Relaxed),
            self.bytes_read.load(Ordering::Relaxed),
        )
    }

    /// The destination's blobs with their pack present at the start.
    pub fn present(&self) -> Arc<Index> {
        Arc::clone(&self.present)
    }

    /// Whether the destination has blob `id` (destination ids).
    fn has(&self, id: &Id) -> bool {
        self.present.contains(id) || self.stored.contains(id)
    }

    /// The blobs of `locations` are now indexed in the destination, and so
    /// are the trees walked since the last call.
    pub fn committed(&mut self, locations: &[BlobLocation]) {
        self.stored
            .extend(locations.iter().map(|location| location.entry.id));
        self.trees.extend(self.pending_trees.drain());
    }

    /// Reads a blob from the source (checked against its id), counted.
    fn download(&self, id: &Id) -> Result<Vec<u8>> {
        let bytes = self.source.read_blob(id)?;
        self.blobs_read.fetch_add(1, Ordering::Relaxed);
        self.bytes_read
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// Makes the tree `id` of the source (and everything below it) complete
    /// in the destination's `writer`; returns its destination id.
    pub fn tree(
        &mut self,
        writer: &PackWriter<'_>,
        id: &Id,
        interrupt: &Interrupt,
        progress: &dyn Progress,
    ) -> Result<Id> {
        if let Some(done) = self.trees.get(id).or_else(|| self.pending_trees.get(id)) {
            return Ok(*done);
        }
        interrupt.check("copying trees")?;
        let translated = if self.same_ids {
            self.tree_by_id(writer, id, interrupt, progress)?
        } else {
            self.tree_rehashed(writer, id, interrupt, progress)?
        };
        self.pending_trees.insert(*id, translated);
        Ok(translated)
    }

    /// Same ids: the tree is read from the destination when it has it,
    /// else downloaded and stored as it is; missing chunks are copied.
    fn tree_by_id(
        &mut self,
        writer: &PackWriter<'_>,
        id: &Id,
        interrupt: &Interrupt,
        progress: &dyn Progress,
    ) -> Result<Id> {
        let (tree, download) = match self.has(id) {
            true => match self.destination.read_tree(id) {
                Ok(tree) => (tree, None),
                // The destination's copy is unreadable: store the source's.
                Err(_) => self.download_tree(id)?,
            },
            false => self.download_tree(id)?,
        };
        let mut missing: Vec<Id> = Vec::new();
        for entry in &tree.entries {
            match &entry.kind {
                EntryKind::File { chunks, .. } => missing.extend_from_slice(chunks),
                EntryKind::Directory { subtree } => {
                    self.tree(writer, subtree, interrupt, progress)?;
                }
                EntryKind::Symlink { .. } => {}
            }
        }
        self.copy_chunks(writer, &missing, interrupt, progress)?;
        if let Some(bytes) = download {
            writer.add(*id, BlobKind::Tree, &bytes)?;
        }
        Ok(*id)
    }

    fn download_tree(&self, id: &Id) -> Result<(Tree, Option<Vec<u8>>)> {
        let bytes = self.download(id)?;
        Ok((Tree::decode(id, &bytes)?, Some(bytes)))
    }

    /// Different ids: the tree is downloaded, its files translated, and
    /// the rebuilt tree stored under its destination id.
    fn tree_rehashed(
        &mut self,
        writer: &PackWriter<'_>,
        id: &Id,
        interrupt: &Interrupt,
        progress: &dyn Progress,
    ) -> Result<Id> {
        let (tree, _) = self.download_tree(id)?;
        // Files first, in parallel, each content once; what earlier
        // snapshots translated is reused.
        let mut seen = HashSet::new();
        let to_translate: Vec<&Entry> = tree
            .entries
            .iter()
            .filter(|entry| match &entry.kind {
                EntryKind::File { digest, size, .. } => {
                    !self.files.contains_key(&(*digest, *size)) && seen.insert((*digest, *size))
                }
                _ => false,
            })
            .collect();
        let translated: Vec<((Id, u64), Content)> = to_translate
            .par_iter()
            .map(|entry| {
                interrupt.check("copying files")?;
                self.translate_file(writer, entry, progress)
            })
            .collect::<Result<_>>()?;
        self.files.extend(translated);
        let mut entries = Vec::with_capacity(tree.entries.len());
        for entry in &tree.entries {
            let kind = match &entry.kind {
                EntryKind::File { size, digest, .. } => {
                    let content = self.files.get(&(*digest, *size)).ok_or_else(|| {
                        Error::corrupt(format!("tree {id}"), "a file was not translated")
                    })?;
                    EntryKind::File {
                        size: *size,
                        digest: content.digest,
                        chunks: content.chunks.clone(),
                    }
                }
                EntryKind::Directory { subtree } => EntryKind::Directory {
                    subtree: self.tree(writer, subtree, interrupt, progress)?,
                },
                EntryKind::Symlink { target } => EntryKind::Symlink {
                    target: target.clone(),
                },
            };
            entries.push(Entry {
                name: entry.name.clone(),
                kind,
                metadata: entry.metadata,
            });
        }
        let bytes = Tree { entries }.encode();
        let translated = self.destination.keys().blob_id(&bytes);
        if !self.has(&translated) {
            writer.add(translated, BlobKind::Tree, &bytes)?;
        }
        Ok(translated)
    }

    /// Reads a file's chunks from the source, checks the whole content
    /// against its source digest and size, and stores each chunk the
    /// destination lacks under its destination id.
    fn translate_file(
        &self,
        writer: &PackWriter<'_>,
        entry: &Entry,
        progress: &dyn Progress,
    ) -> Result<((Id, u64), Content)> {
        let EntryKind::File {
            size,
            digest,
            chunks,
        } = &entry.kind
        else {
            return Err(Error::corrupt(entry.display_name(), "not a file"));
        };
        let content = self.translate_content(writer, chunks, progress, |length, actual| {
            check_content(&entry.display_name(), *size, digest, length, actual)
        })?;
        Ok(((*digest, *size), content))
    }

    /// Translates a stream of source chunks (a file's or a WAL segment's):
    /// `check` gets the length read and the source digest of the whole.
    pub fn translate_content(
        &self,
        writer: &PackWriter<'_>,
        chunks: &[Id],
        progress: &dyn Progress,
        check: impl Fn(u64, &Id) -> Result<()>,
    ) -> Result<Content> {
        let mut source_hasher = self.source.keys().hasher();
        let mut destination_hasher = self.destination.keys().hasher();
        let mut translated = Vec::with_capacity(chunks.len());
        let mut length = 0u64;
        for chunk in chunks {
            let bytes = self.download(chunk)?;
            source_hasher.update(&bytes);
            destination_hasher.update(&bytes);
            length += bytes.len() as u64;
            let id = self.destination.keys().blob_id(&bytes);
            if !self.has(&id) {
                writer.add(id, BlobKind::Data, &bytes)?;
            }
            progress.advance(bytes.len() as u64);
            translated.push(id);
        }
        check(length, &Id(*source_hasher.finalize().as_bytes()))?;
        Ok(Content {
            digest: Id(*destination_hasher.finalize().as_bytes()),
            chunks: translated,
        })
    }

    /// Same ids: downloads (in parallel) and stores every chunk of `chunks`
    /// the destination lacks, each once.
    pub fn copy_chunks(
        &self,
        writer: &PackWriter<'_>,
        chunks: &[Id],
        interrupt: &Interrupt,
        progress: &dyn Progress,
    ) -> Result<()> {
        let mut missing: Vec<Id> = chunks.iter().filter(|id| !self.has(id)).copied().collect();
        missing.sort_unstable();
        missing.dedup();
        missing.par_iter().try_for_each(|chunk| {
            interrupt.check("copying chunks")?;
            let bytes = self.download(chunk)?;
            writer.add(*chunk, BlobKind::Data, &bytes)?;
            progress.advance(bytes.len() as u64);
            Ok(())
        })
    }
}

/// Fails unless a file read back whole has its recorded size and digest.
fn check_content(name: &str, size: u64, digest: &Id, length: u64, actual: &Id) -> Result<()> {
    let object = || format!("file {name} in the source");
    if length != size {
        return Err(Error::corrupt(
            object(),
            format!("its chunks hold {length} bytes, the tree records {size}"),
        ));
    }
    if actual != digest {
        return Err(Error::ChecksumMismatch {
            object: object(),
            expected: digest.to_hex(),
            actual: actual.to_hex(),
        });
    }
    Ok(())
}
