//! The blob index of an open repository: loaded from every index file on
//! first use, extended by this handle's own writes, reloaded when a lookup
//! misses (another process may have written since) and dropped whenever a
//! lock is taken (a prune may have run since it was loaded).
//!
//! A damaged index file does not take the index down: loading skips it,
//! records it (see [`Repository::damaged_index_files`]) and tells the
//! handle's damage hook; the blobs it described are then unindexed, so reads
//! of them fail naming the blob and backups store them again.
//!
//! Loading also drops the metadata cache's trees that the index no longer
//! names (a prune deleted them).
//!
//! Which location of a blob stored twice serves: one this handle wrote
//! itself, else one whose pack exists (see `load_index`); readers fall back
//! to the others when the preferred one fails (`blobs.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;

use serde::Serialize;

use crate::backend::cache::TREES;
use crate::backend::{ObjectInfo, ObjectKind, WriteOutcome};
use crate::error::{Error, Result};
use crate::format::index::{decode_index_file, encode_index_file, BlobLocation, Index};
use crate::id::Id;
use crate::repo::{check_name, Repository};

/// Index files hold at most this many entries, so each stays a few MiB.
const INDEX_ENTRIES_PER_FILE: usize = 50_000;

/// An index file that could not be read and was left out of the index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedIndexFile {
    /// The index file's object name under `index/`.
    pub name: String,
    /// Why it was skipped (the error's message, naming the file).
    pub reason: String,
}

/// Called with each damaged index file the first time a handle skips it
/// (the CLI prints a warning).
pub type IndexDamageHook = Box<dyn Fn(&DamagedIndexFile) + Send + Sync>;

/// Every index file's entries, read one by one, and those that were damaged.
#[derive(Debug, Default)]
pub struct IndexFiles {
    /// Each readable index file's name and entries.
    pub readable: Vec<(String, Vec<BlobLocation>)>,
    /// The index files skipped because they are damaged.
    pub damaged: Vec<DamagedIndexFile>,
}

/// Whether an error reading an index file means the file itself is damaged
/// (skip it) rather than the storage failing (fail the command). A file
/// deleted between listing and reading (a concurrent prune) is skipped too:
/// prune writes the index files replacing it first.
fn is_damage_or_gone(error: &Error) -> bool {
    error.is_damage()
        || matches!(
            error,
            Error::Backend(crate::backend::Error::NotFound { .. })
        )
}

impl Repository {
    /// The blob index, loaded from every index file on first use.
    pub fn index(&self) -> Result<Arc<Index>> {
        let cached = self
            .index
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match cached {
            Some(index) => Ok(index),
            None => self.refresh_index(),
        }
    }

    /// Reloads the index from every index file (to see other processes' writes).
    pub fn refresh_index(&self) -> Result<Arc<Index>> {
        let files = self.list_index_files()?;
        self.load_index_from(&files)
    }

    /// Lists the index files (one request; through the metadata cache,
    /// which drops its entries of files no longer listed).
    pub fn list_index_files(&self) -> Result<Vec<ObjectInfo>> {
        Ok(self.backend.list(ObjectKind::Index)?)
    }

    /// (Re)loads the index from the index files of `files`, a listing the
    /// caller already holds ([`Repository::list_index_files`]): a writer
    /// lists once, after taking its lock, and both loads its index and
    /// records what it saw for its commit check from that one listing.
    pub fn load_index_from(&self, files: &[ObjectInfo]) -> Result<Arc<Index>> {
        let loaded = Arc::new(self.load_index(files)?);
        *self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::clone(&loaded));
        Ok(loaded)
    }

    /// Adds this process's newly indexed blobs to the cached index.
    pub(crate) fn remember(&self, locations: &[BlobLocation]) {
        let mut cached = self
            .index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(index) = cached.as_mut() {
            let index = Arc::make_mut(index);
            // Just written, so known good: these win over an older location
            // of the same blob (whose pack may be why it was written again).
            for location in locations {
                index.promote(*location);
            }
        }
    }

    fn load_index(&self, listed: &[ObjectInfo]) -> Result<Index> {
        let files = self.read_listed_index_files(listed)?;
        let mut index = Index::new();
        for location in files.readable.into_iter().flat_map(|(_, entries)| entries) {
            index.insert(location);
        }
        // A blob stored twice (a backup healed it after its pack was lost):
        // prefer the location whose pack exists. One listing, and only then.
        if index.has_duplicates() {
            let packs: HashSet<String> = self
                .backend
                .list(ObjectKind::Pack)?
                .into_iter()
                .map(|pack| pack.name)
                .collect();
            index.prefer_present(|pack| packs.contains(&pack.to_hex()));
        }
        // Cached trees the index no longer names were pruned: drop them (the
        // metadata cache's rule for listed objects, applied to blobs).
        if let Some(cache) = &self.metadata_cache {
            cache.retain(TREES, |name| {
                Id::from_hex(name).is_ok_and(|id| index.contains(&id))
            });
        }
        Ok(index)
    }

    /// Reads every index file (in parallel), skipping and recording the
    /// damaged ones; fails only when the storage itself fails.
    pub fn read_index_files(&self) -> Result<IndexFiles> {
        self.read_listed_index_files(&self.list_index_files()?)
    }

    /// [`Repository::read_index_files`] of the files in a listing.
    fn read_listed_index_files(&self, files: &[ObjectInfo]) -> Result<IndexFiles> {
        let results: Vec<(String, Result<Vec<BlobLocation>>)> = files
            .par_iter()
            .map(|file| (file.name.clone(), self.read_index_file(&file.name)))
            .collect();
        let mut read = IndexFiles::default();
        for (name, result) in results {
            match result {
                Ok(entries) => read.readable.push((name, entries)),
                Err(error) if is_damage_or_gone(&error) => read.damaged.push(DamagedIndexFile {
                    name,
                    reason: error.to_string(),
                }),
                Err(error) => return Err(error),
            }
        }
        self.record_index_damage(&read.damaged);
        Ok(read)
    }

    /// The index files skipped as damaged by this handle since it was opened.
    pub fn damaged_index_files(&self) -> Vec<DamagedIndexFile> {
        self.index_damage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Sets the hook told about each damaged index file the first time this
    /// handle skips it.
    pub fn set_index_damage_hook(&mut self, hook: IndexDamageHook) {
        self.index_damage_hook = Some(hook);
    }

    fn record_index_damage(&self, damaged: &[DamagedIndexFile]) {
        let mut seen = self
            .index_damage
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for file in damaged {
            if seen.iter().any(|known| known.name == file.name) {
                continue;
            }
            if let Some(hook) = &self.index_damage_hook {
                hook(file);
            }
            seen.push(file.clone());
        }
    }

    /// Reads and checks one index file.
    pub fn read_index_file(&self, name: &str) -> Result<Vec<BlobLocation>> {
        let bytes = self.backend.read(ObjectKind::Index, name)?;
        // Decoding first: in an encrypted repository a changed byte is then
        // reported as the authentication failure it is.
        let locations = decode_index_file(name, &bytes, &self.keys)?;
        check_name(ObjectKind::Index, name, &bytes)?;
        Ok(locations)
    }

    /// Publishes one index file. Index files are named by their content, so
    /// a plaintext backup that stores the same blobs again (after a damaged
    /// index file left them unindexed) produces the very name of the damaged
    /// file: an existing file of that name is kept only if it reads back
    /// intact, and otherwise replaced (what it described is unindexed
    /// anyway, so a crash between delete and write loses nothing).
    fn publish_index_file(&self, name: &str, bytes: &[u8]) -> Result<()> {
        if self
            .backend
            .write_if_absent(ObjectKind::Index, name, bytes)?
            == WriteOutcome::Created
        {
            return Ok(());
        }
        match self.read_index_file(name) {
            Ok(_) => Ok(()),
            Err(error) if is_damage_or_gone(&error) => {
                self.backend.delete(ObjectKind::Index, name)?;
                self.backend
                    .write_if_absent(ObjectKind::Index, name, bytes)?;
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// Writes index files for `locations` (after their packs were published).
    pub fn write_index(&self, locations: &[BlobLocation]) -> Result<Vec<Id>> {
        let written = locations
            .chunks(INDEX_ENTRIES_PER_FILE)
            .map(|part| {
                let (id, bytes) = encode_index_file(part, &self.keys)?;
                self.publish_index_file(&id.to_hex(), &bytes)?;
                Ok(id)
            })
            .collect::<Result<Vec<Id>>>()?;
        self.remember(locations);
        Ok(written)
    }
}
