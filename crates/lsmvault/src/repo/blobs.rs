//! Reading blobs and trees: every blob is located through the index, read
//! with one ranged read of its pack, decoded and checked against its id.
//!
//! Invariant: no bytes leave this module that did not hash to the id asked
//! for. A blob the index names in a pack that is gone is reported as a
//! corrupt pack naming both, never as a plain "not found". A declared
//! length is never believed before the pack's real size confirms it (the
//! backend checks the range before allocating), so an index entry claiming
//! 4 GiB fails at once, naming the blob and its pack; nor is a declared raw
//! length beyond what a blob of its kind can have (a decompression bomb).
//!
//! Tree blobs read by id ([`Repository::read_blob`], [`Repository::read_tree`])
//! through a handle opened with a metadata cache come from the cache first
//! (as stored: sealed and compressed, so an encrypted repository's trees stay
//! encrypted on the local disk), decoded and checked like any blob; an entry
//! that fails is removed and the blob read from its pack, then cached. A read
//! at a known location ([`Repository::read_blob_at`]: verify, prune, repair,
//! `backup --verify-existing`) always reads the pack.

use std::sync::Arc;

use crate::backend::cache::{MetadataCache, TREES};
use crate::backend::{self, ObjectKind};
use crate::codec::compression::MAX_BLOB_SIZE;
use crate::error::{Error, Result};
use crate::format::index::BlobLocation;
use crate::format::pack::{self, BlobKind, PackEntry, TRAILER_LENGTH};
use crate::format::tree::Tree;
use crate::id::Id;
use crate::repo::Repository;

impl Repository {
    /// Reads just a pack's trailer and header (two range reads) and parses
    /// the header's entries; `size` is the pack's size as listed. Verify
    /// checks the index against it and `repair index` rebuilds the index
    /// from it.
    pub fn read_pack_header(&self, name: &str, size: u64) -> Result<Vec<PackEntry>> {
        let backend = self.backend();
        if size < TRAILER_LENGTH as u64 {
            return Err(Error::corrupt(
                format!("pack {name}"),
                "shorter than a pack trailer",
            ));
        }
        let trailer = backend.read_range(
            ObjectKind::Pack,
            name,
            size - TRAILER_LENGTH as u64,
            TRAILER_LENGTH as u64,
        )?;
        let header_length = u64::from(pack::parse_trailer(name, &trailer)?);
        let header_start = (size - TRAILER_LENGTH as u64)
            .checked_sub(header_length)
            .ok_or_else(|| {
                Error::corrupt(format!("pack {name}"), "header length exceeds the pack")
            })?;
        let header = backend.read_range(ObjectKind::Pack, name, header_start, header_length)?;
        pack::parse_header(name, &header, header_start, self.keys())
    }

    /// Reads a blob, decodes it and checks it against its id. When the blob
    /// is stored more than once and its preferred location fails (pack lost
    /// or damaged), the other locations are tried before the first error is
    /// returned.
    pub fn read_blob(&self, id: &Id) -> Result<Vec<u8>> {
        let mut index = self.index()?;
        if !index.contains(id) {
            // Another process may have indexed it since the index was loaded.
            index = self.refresh_index()?;
        }
        let mut first_error = None;
        for location in index.locations(id) {
            match self.read_blob_caching(location) {
                Ok(bytes) => return Ok(bytes),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        Err(first_error.unwrap_or_else(|| self.unindexed_blob(id)))
    }

    /// The error for a blob no index file lists; when damaged index files
    /// were skipped it may have been in one of them, so it says so.
    fn unindexed_blob(&self, id: &Id) -> Error {
        let damaged = self.damaged_index_files().len();
        let reason = if damaged == 0 {
            "not in the index (its pack is missing or unindexed)".to_string()
        } else {
            format!(
                "not in the index (its pack is missing or unindexed; {damaged} damaged index file(s) were skipped; repairing the index rebuilds it from the packs)"
            )
        };
        Error::corrupt(format!("blob {id}"), reason)
    }

    /// Reads a blob from a known location and checks it against its id,
    /// always from its pack: verify, prune, repair and `backup
    /// --verify-existing` judge the copy in the repository, never a cached one.
    pub fn read_blob_at(&self, location: &BlobLocation) -> Result<Vec<u8>> {
        self.check_declared_length(&location.entry, || describe_blob(location))?;
        let stored = self.read_stored_blob(location)?;
        self.decode_stored_blob(location, stored)
    }

    /// [`Repository::read_blob_at`], but a tree is served from the metadata
    /// cache when there, and cached when read from its pack.
    fn read_blob_caching(&self, location: &BlobLocation) -> Result<Vec<u8>> {
        let Some(cache) = self.tree_cache(&location.entry) else {
            return self.read_blob_at(location);
        };
        self.check_declared_length(&location.entry, || describe_blob(location))?;
        if let Some(raw) = self.cached_tree(cache, location) {
            return Ok(raw);
        }
        let stored = self.read_stored_blob(location)?;
        let raw = self.decode_stored_blob(location, stored.clone())?;
        cache.put(TREES, &location.entry.id.to_hex(), &stored);
        Ok(raw)
    }

    /// Opens, decompresses and checks a blob's stored bytes.
    fn decode_stored_blob(&self, location: &BlobLocation, stored: Vec<u8>) -> Result<Vec<u8>> {
        pack::decode_blob(&location.entry, stored, &self.keys, || {
            describe_blob(location)
        })
        .map_err(|error| self.diagnose_unreadable_blob(location, error))
    }

    /// The metadata cache, if this handle has one and `entry` is a tree.
    fn tree_cache(&self, entry: &PackEntry) -> Option<&Arc<MetadataCache>> {
        self.metadata_cache
            .as_ref()
            .filter(|_| entry.kind == BlobKind::Tree)
    }

    /// A tree from the cache, decoded and checked; an entry that fails is
    /// removed (the caller then reads the pack).
    fn cached_tree(&self, cache: &MetadataCache, location: &BlobLocation) -> Option<Vec<u8>> {
        let name = location.entry.id.to_hex();
        let stored = cache.get(TREES, &name)?;
        let decoded = pack::decode_blob(&location.entry, stored, &self.keys, || {
            format!("cached tree {name}")
        });
        if decoded.is_err() {
            cache.remove(TREES, &name);
        }
        decoded.ok()
    }

    /// A blob's stored (sealed, compressed) bytes, read from its pack.
    fn read_stored_blob(&self, location: &BlobLocation) -> Result<Vec<u8>> {
        let entry = &location.entry;
        let pack_name = location.pack.to_hex();
        self.backend
            .read_range(
                ObjectKind::Pack,
                &pack_name,
                u64::from(entry.offset),
                u64::from(entry.stored_length),
            )
            .map_err(|error| match error {
                backend::Error::NotFound { .. } => Error::corrupt(
                    format!("pack {pack_name}"),
                    format!("missing, but the index says it holds blob {}", entry.id),
                ),
                // The backend checked the declared range against the pack's
                // real size before allocating; name the blob that declared it.
                backend::Error::ShortObject { offset, length, .. } => Error::corrupt(
                    format!("blob {} in pack {pack_name}", entry.id),
                    format!(
                        "the index says {length} bytes at offset {offset}, past the end of \
                         the pack (a truncated pack or a forged index entry)"
                    ),
                ),
                other => other.into(),
            })
            .map_err(|error| self.diagnose_unreadable_blob(location, error))
    }

    /// Says what is wrong when a blob cannot be read where the index places
    /// it: if its pack is a well-formed pack that hashes to another name and
    /// does not list the blob, the pack was replaced or swapped (not
    /// truncated, as a short read alone suggests). Reads the whole pack (as
    /// `verify --read-data` does), on this error path only; any other case
    /// keeps `error`.
    fn diagnose_unreadable_blob(&self, location: &BlobLocation, error: Error) -> Error {
        let pack_name = location.pack.to_hex();
        let Ok(bytes) = self.backend.read(ObjectKind::Pack, &pack_name) else {
            return error;
        };
        let actual = Id::of(&bytes);
        if actual == location.pack {
            return error;
        }
        match pack::parse_pack(&pack_name, &bytes, &self.keys) {
            Ok(entries) if !entries.iter().any(|entry| entry.id == location.entry.id) => {
                Error::corrupt(
                    format!("pack {pack_name}"),
                    format!(
                        "its content hashes to {actual}, not to its name, and it does not list \
                         blob {}: another pack's content under this name (replaced or swapped?)",
                        location.entry.id
                    ),
                )
            }
            _ => error,
        }
    }

    /// Refuses a blob whose declared raw length no blob of its kind in this
    /// repository can have, before anything is read or decompressed: a chunk
    /// is at most the chunker's maximum (a zstd bomb declaring 256 MiB would
    /// otherwise be decompressed into a buffer of that size), a tree at most
    /// [`MAX_BLOB_SIZE`].
    pub(crate) fn check_declared_length(
        &self,
        entry: &PackEntry,
        object: impl Fn() -> String,
    ) -> Result<()> {
        let (limit, what) = match entry.kind {
            BlobKind::Data => (self.config().chunker.max_size as usize, "the largest chunk"),
            BlobKind::Tree => (MAX_BLOB_SIZE, "the largest blob"),
        };
        if entry.raw_length as usize > limit {
            return Err(Error::corrupt(
                object(),
                format!(
                    "declares {} raw bytes, more than {what} this repository can hold ({limit})",
                    entry.raw_length
                ),
            ));
        }
        Ok(())
    }

    /// Reads and decodes a tree (from the metadata cache when the handle has
    /// one and the tree is there).
    pub fn read_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(id)?;
        Tree::decode(id, &bytes)
    }
}

/// `blob <id> in pack <name>`, for errors.
fn describe_blob(location: &BlobLocation) -> String {
    format!("blob {} in pack {}", location.entry.id, location.pack)
}
