//! [`PackWriter`]: new blobs are compressed, sealed and collected into packs;
//! full packs are published through a [`PackSink`] by a pool of upload
//! threads ([`super::upload_pool`]: several uploads at once, bytes in flight
//! bounded), so chunking and hashing continue while packs are fsync'd or
//! uploaded.
//!
//! Invariant: a blob's location is reported (for the index) only after its
//! pack was published, and a failed upload fails the whole write (nothing
//! of it is reported); the caller writes the index after
//! [`PackWriter::finish`].
//! The tree blobs of a published pack are then written through to the
//! repository's metadata cache, if it has one (backend first, then cache).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::backend::{spill, Backend, ObjectKind, SpillFile, WriteOutcome};
use crate::codec::adaptive::{AdaptiveLevel, Pressure};
use crate::codec::compression::Compression;
use crate::codec::crypto::{self, Keys};
use crate::error::Result;
use crate::format::index::{BlobLocation, Index};
use crate::format::pack::{BlobKind, Packer};
use crate::format::parity::GroupMember;
use crate::id::Id;
pub use crate::repo::upload_pool::PackSink;
use crate::repo::upload_pool::{upload_count, Published, UploadPool, PACK_MEMORY, SPILL_MEMORY};
use crate::repo::Repository;

/// The default [`PackSink`]: a create-if-absent write to the backend. A pack
/// that already exists under the name should have the same content, since
/// its name is its hash; it is read back to make sure, because a backup that
/// writes a damaged blob again can produce exactly the pack that holds the
/// damaged copy (plaintext packs are deterministic). A damaged one is
/// replaced: with content-addressed names that can only repair it.
pub struct BackendSink(pub Arc<dyn Backend>);

impl PackSink for BackendSink {
    fn publish(&self, id: &Id, bytes: Bytes) -> Result<()> {
        write_replacing_damaged(self.0.as_ref(), ObjectKind::Pack, &id.to_hex(), bytes)
    }

    /// As [`BackendSink::publish`]; an existing pack is checked in pieces
    /// ([`intact_in_pieces`]), so that eight uploads meeting existing packs
    /// (a plaintext backup run again after a kill) do not read eight whole
    /// packs into memory.
    fn publish_spilled(&self, id: &Id, spilled: &SpillFile) -> Result<()> {
        let name = id.to_hex();
        let backend = self.0.as_ref();
        let write = || backend.write_spilled(ObjectKind::Pack, &name, spilled);
        if write()? == WriteOutcome::AlreadyExisted
            && !intact_in_pieces(backend, &name, spilled.len())?
        {
            backend.delete(ObjectKind::Pack, &name)?;
            write()?;
        }
        Ok(())
    }
}

/// Bytes of an existing pack read at once to check it.
const CHECK_PIECE: u64 = 4 << 20;

/// Whether the pack `name` is exactly `length` bytes that hash to its name,
/// read in ranges of [`CHECK_PIECE`] bytes (one more range of one byte
/// proves it ends there).
fn intact_in_pieces(backend: &dyn Backend, name: &str, length: u64) -> Result<bool> {
    let mut hasher = blake3::Hasher::new();
    let mut offset = 0;
    while offset < length {
        let piece = CHECK_PIECE.min(length - offset);
        match backend.read_range(ObjectKind::Pack, name, offset, piece) {
            Ok(bytes) => hasher.update(&bytes),
            Err(error) if shows_damage(&error) => return Ok(false),
            Err(error) => return Err(error.into()),
        };
        offset += piece;
    }
    let ends_here = match backend.read_range(ObjectKind::Pack, name, length, 1) {
        Err(crate::backend::Error::ShortObject { .. }) => true,
        Ok(_) => false,
        Err(error) if shows_damage(&error) => false,
        Err(error) => return Err(error.into()),
    };
    Ok(ends_here && Id(*hasher.finalize().as_bytes()).to_hex() == name)
}

/// Whether a failed read of an existing pack proves it damaged (gone or
/// short). Any other failure (a timeout, a refused request) proves nothing:
/// replacing the pack on such evidence would delete an intact pack that
/// committed snapshots use, and a failing rewrite would leave it lost.
fn shows_damage(error: &crate::backend::Error) -> bool {
    matches!(
        error,
        crate::backend::Error::NotFound { .. } | crate::backend::Error::ShortObject { .. }
    )
}

/// Publishes `bytes` under `name`, the hash of `bytes`: create-if-absent,
/// and an existing object of that name that does not hash to it is damaged
/// and replaced (delete, then create: a crash in between leaves the object
/// missing, never partial). A content-addressed write
/// ([`Backend::write_content_addressed`]): an object store may upload a
/// large one in parts.
pub(crate) fn write_replacing_damaged(
    backend: &dyn Backend,
    kind: ObjectKind,
    name: &str,
    bytes: Bytes,
) -> Result<()> {
    if backend.write_content_addressed(kind, name, bytes.clone())? == WriteOutcome::AlreadyExisted {
        let intact = match backend.read(kind, name) {
            Ok(existing) => Id::of(&existing).to_hex() == name,
            Err(error) if shows_damage(&error) => false,
            Err(error) => return Err(error.into()),
        };
        if !intact {
            backend.delete(kind, name)?;
            backend.write_content_addressed(kind, name, bytes)?;
        }
    }
    Ok(())
}

/// What a [`PackWriter`] wrote.
#[derive(Debug, Default, Clone)]
pub struct WriteSummary {
    /// Where every new blob went (already published, not yet indexed).
    pub locations: Vec<BlobLocation>,
    /// Packs published.
    pub packs: u64,
    /// The packs published, in order, with their lengths (what parity
    /// groups are formed from).
    pub published: Vec<GroupMember>,
    /// Bytes of the published packs, headers and trailers included: what the
    /// repository grew by before its index files.
    pub pack_bytes: u64,
    /// Raw (decoded) bytes of the new blobs, before compression and sealing.
    pub blob_bytes: u64,
}

struct PackerState {
    packer: Packer,
    /// Blobs added by this writer (in any pack, finished or not).
    pending: HashSet<Id>,
}

/// Collects new blobs into packs and hands each full pack to its upload pool,
/// so chunking and hashing continue while packs are written.
///
/// Memory is bounded by [`PACK_MEMORY`]: the pack being filled plus the packs
/// handed over and not yet published (at least one of them). To a remote
/// backend, by [`SPILL_MEMORY`]: the pack being filled and the one being
/// spilled; packs in flight wait in spill files ([`super::upload_pool`]).
pub struct PackWriter<'repository> {
    repository: &'repository Repository,
    known: Arc<Index>,
    /// Read back and check a known blob before skipping it (`backup
    /// --verify-existing`): a damaged copy is then written again.
    verify_known: bool,
    /// The compression of new blobs; `auto`'s level follows the upload
    /// backlog ([`crate::codec::adaptive`]).
    level: AdaptiveLevel,
    state: Mutex<PackerState>,
    uploads: UploadPool,
}

impl<'repository> PackWriter<'repository> {
    /// A writer that skips blobs the repository's index already has.
    pub fn new(repository: &'repository Repository) -> Result<Self> {
        Self::with_known(repository, repository.index()?)
    }

    /// A writer that skips only the blobs in `known` (prune passes the blobs
    /// of the packs it keeps, so blobs of packs it repacks are written again).
    pub fn with_known(repository: &'repository Repository, known: Arc<Index>) -> Result<Self> {
        let sink = Arc::new(BackendSink(Arc::clone(&repository.backend)));
        Self::with_sink(repository, known, sink)
    }

    /// A writer that publishes its packs through `sink` instead of straight
    /// to the repository's backend (a wrapper adding parity or throttling).
    pub fn with_sink(
        repository: &'repository Repository,
        known: Arc<Index>,
        sink: Arc<dyn PackSink>,
    ) -> Result<Self> {
        let remote = repository.backend.is_remote();
        let uploads = upload_count(remote)?;
        if remote {
            let directory = spill::spill_directory();
            return Self::with_uploads(
                repository,
                known,
                sink,
                uploads,
                SPILL_MEMORY,
                Some(directory),
            );
        }
        let limit = PACK_MEMORY.saturating_sub(repository.config.pack_size.into());
        Self::with_uploads(repository, known, sink, uploads, limit, None)
    }

    /// Like [`PackWriter::with_sink`] with `uploads` upload threads holding at
    /// most `limit` bytes of finished packs, spilling them to files in
    /// `spill` if given (tests choose their own).
    pub(crate) fn with_uploads(
        repository: &'repository Repository,
        known: Arc<Index>,
        sink: Arc<dyn PackSink>,
        uploads: usize,
        limit: u64,
        spill: Option<std::path::PathBuf>,
    ) -> Result<Self> {
        let uploads = UploadPool::start(
            sink,
            repository.keys.clone(),
            repository.metadata_cache.clone(),
            uploads,
            limit,
            spill,
        )?;
        Ok(PackWriter {
            repository,
            known,
            verify_known: false,
            level: AdaptiveLevel::new(repository.compression),
            state: Mutex::new(PackerState {
                packer: Packer::with_capacity(packer_capacity(repository)),
                pending: HashSet::new(),
            }),
            uploads,
        })
    }

    fn state(&self) -> MutexGuard<'_, PackerState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn packer_capacity(&self) -> usize {
        packer_capacity(self.repository)
    }

    /// The keys blob ids are computed with.
    pub fn keys(&self) -> &Keys {
        &self.repository.keys
    }

    /// Compresses new blobs with `compression` instead of the repository's default.
    /// Version 1 repositories are never compressed.
    pub fn set_compression(&mut self, compression: Compression) {
        if self.repository.config.version > 1 {
            self.level = AdaptiveLevel::new(compression);
        }
    }

    /// Makes the writer read back and check (decode + id) every blob it
    /// would skip as known, once each, and store again those with no intact
    /// copy. Costs a read of every reused blob.
    pub fn set_verify_known(&mut self, verify: bool) {
        self.verify_known = verify;
    }

    /// Whether some known location of `id` reads back intact.
    fn known_copy_intact(&self, id: &Id) -> bool {
        self.known
            .locations(id)
            .any(|location| self.repository.read_blob_at(location).is_ok())
    }

    /// Adds a blob unless it is already stored; returns whether it was new.
    /// Compression runs in the calling thread, outside the writer's lock;
    /// encryption runs inside it, straight into the pack buffer (which saves
    /// a chunk-sized allocation and copy; AES-GCM at ~6 GiB/s per core is a
    /// small share next to chunking and hashing, but it is serialised).
    pub fn add(&self, id: Id, kind: BlobKind, data: &[u8]) -> Result<bool> {
        if (!self.verify_known && self.known.contains(&id)) || !self.state().pending.insert(id) {
            return Ok(false);
        }
        // `pending` now holds the id, so each known blob is checked once.
        if self.verify_known && self.known_copy_intact(&id) {
            return Ok(false);
        }
        let (in_flight, limit) = self.uploads.backlog();
        self.level.observe(Pressure::of_backlog(in_flight, limit));
        let (codec, compressed) = self.level.compression().encode(data);
        let full = {
            let mut state = self.state();
            state.packer.add_encoded(
                id,
                kind,
                codec,
                &compressed,
                data.len(),
                &self.repository.keys,
            )?;
            if state.packer.len() >= self.repository.config.pack_size as usize {
                // Reserved under the lock: adders wait here while the
                // budget is full, rather than each holding a full pack.
                let charged = state.packer.len() as u64;
                self.uploads.reserve(charged)?;
                let full = std::mem::replace(
                    &mut state.packer,
                    Packer::with_capacity(self.packer_capacity()),
                );
                Some((full, charged))
            } else {
                None
            }
        };
        if let Some((packer, charged)) = full {
            self.uploads.submit(packer, charged)?;
        }
        Ok(true)
    }

    /// Publishes the last pack and waits for all uploads; returns what was
    /// written (in hand-over order, whatever the number of uploads). The
    /// caller then writes the index for `locations`.
    pub fn finish(self) -> Result<WriteSummary> {
        let last = std::mem::take(&mut self.state().packer);
        if !last.is_empty() {
            let charged = last.len() as u64;
            self.uploads.reserve(charged)?;
            self.uploads.submit(last, charged)?;
        }
        Ok(summarize(self.uploads.join()?))
    }

    /// The highest zstd level a blob was compressed at so far.
    #[cfg(test)]
    fn peak_level(&self) -> i32 {
        self.level.peak()
    }

    /// The most bytes of finished packs that waited or were being published
    /// at once so far.
    #[cfg(test)]
    fn peak_bytes(&self) -> u64 {
        self.uploads.peak_bytes()
    }
}

/// The summary of the published packs, put back in hand-over order.
fn summarize(mut published: Vec<Published>) -> WriteSummary {
    published.sort_by_key(|pack| pack.sequence);
    let mut summary = WriteSummary::default();
    for pack in published {
        summary.packs += 1;
        summary.published.push(GroupMember {
            pack: pack.id,
            length: pack.length,
        });
        summary.pack_bytes += pack.length;
        for entry in pack.entries {
            summary.blob_bytes += u64::from(entry.raw_length);
            summary.locations.push(BlobLocation {
                pack: pack.id,
                entry,
            });
        }
    }
    summary
}

/// A pack closes at the first blob reaching the target size: room for the
/// target plus one largest chunk (and its seal).
fn packer_capacity(repository: &Repository) -> usize {
    repository.config.pack_size as usize
        + repository.config.chunker.max_size as usize
        + crypto::SEAL_OVERHEAD
}

#[cfg(test)]
mod tests;
