//! The blob index of an open repository: loaded from every index file on
//! first use, extended by this handle's own writes, reloaded when a lookup
//! misses (another process may have written since) and dropped whenever a
//! lock is taken (a prune may have run since it was loaded).
//!
//! Which location of a blob stored twice serves: one this handle wrote
//! itself, else one whose pack exists (see `load_index`); readers fall back
//! to the others when the preferred one fails (`blobs.rs`).

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;

use crate::backend::ObjectKind;
use crate::error::Result;
use crate::format::index::{decode_index_file, encode_index_file, BlobLocation, Index};
use crate::id::Id;
use crate::repo::{check_name, Repository};

/// Index files hold at most this many entries, so each stays a few MiB.
const INDEX_ENTRIES_PER_FILE: usize = 50_000;

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
        let loaded = Arc::new(self.load_index()?);
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

    fn load_index(&self) -> Result<Index> {
        let files = self.backend.list(ObjectKind::Index)?;
        let decoded: Vec<Vec<BlobLocation>> = files
            .par_iter()
            .map(|file| self.read_index_file(&file.name))
            .collect::<Result<_>>()?;
        let mut index = Index::new();
        for location in decoded.into_iter().flatten() {
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
        Ok(index)
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

    /// Writes index files for `locations` (after their packs were published).
    pub fn write_index(&self, locations: &[BlobLocation]) -> Result<Vec<Id>> {
        let written = locations
            .chunks(INDEX_ENTRIES_PER_FILE)
            .map(|part| {
                let (id, bytes) = encode_index_file(part, &self.keys)?;
                self.backend
                    .write_if_absent(ObjectKind::Index, &id.to_hex(), &bytes)?;
                Ok(id)
            })
            .collect::<Result<Vec<Id>>>()?;
        self.remember(locations);
        Ok(written)
    }
}
