//! [`PackWriter`]: new blobs are compressed, sealed and collected into packs;
//! each full pack is published from a dedicated I/O thread through a
//! [`PackSink`], so chunking and hashing continue while a pack is fsync'd.
//!
//! Invariant: a blob's location is reported (for the index) only after its
//! pack was published; the caller writes the index after [`PackWriter::finish`].
//! The tree blobs of a published pack are then written through to the
//! repository's metadata cache, if it has one (backend first, then cache).

use std::collections::HashSet;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::backend::cache::{MetadataCache, TREES};
use crate::backend::{Backend, ObjectKind, WriteOutcome};
use crate::codec::compression::Compression;
use crate::codec::crypto::{self, Keys};
use crate::error::{Error, Result};
use crate::format::index::{BlobLocation, Index};
use crate::format::pack::{BlobKind, PackEntry, Packer};
use crate::format::parity::GroupMember;
use crate::id::Id;
use crate::repo::Repository;

/// Where finished packs go. The repository's own sink publishes each pack to
/// its backend; a wrapper (parity over packs, throttling) implements it around
/// another sink.
pub trait PackSink: Send + Sync {
    /// Publishes one finished pack under its id. When it returns `Ok` the pack
    /// is durable: the index that names it may be written next.
    fn publish(&self, id: &Id, bytes: &[u8]) -> Result<()>;
}

/// The default [`PackSink`]: a create-if-absent write to the backend. A pack
/// that already exists under the name should have the same content, since
/// its name is its hash; it is read back to make sure, because a backup that
/// writes a damaged blob again can produce exactly the pack that holds the
/// damaged copy (plaintext packs are deterministic). A damaged one is
/// replaced: with content-addressed names that can only repair it.
pub struct BackendSink(pub Arc<dyn Backend>);

impl PackSink for BackendSink {
    fn publish(&self, id: &Id, bytes: &[u8]) -> Result<()> {
        write_replacing_damaged(self.0.as_ref(), ObjectKind::Pack, &id.to_hex(), bytes)
    }
}

/// Publishes `bytes` under `name`, the hash of `bytes`: create-if-absent,
/// and an existing object of that name that does not hash to it is damaged
/// and replaced (delete, then create: a crash in between leaves the object
/// missing, never partial).
pub(crate) fn write_replacing_damaged(
    backend: &dyn Backend,
    kind: ObjectKind,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    if backend.write_if_absent(kind, name, bytes)? == WriteOutcome::AlreadyExisted {
        let intact = match backend.read(kind, name) {
            Ok(existing) => Id::of(&existing).to_hex() == name,
            Err(_) => false,
        };
        if !intact {
            backend.delete(kind, name)?;
            backend.write_if_absent(kind, name, bytes)?;
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

/// Collects new blobs into packs and publishes each full pack from a dedicated
/// I/O thread, so chunking and hashing continue while a pack is fsync'd.
///
/// Memory is bounded by two packs: the one being filled and the one being
/// written (the hand-over channel has no buffer).
pub struct PackWriter<'repository> {
    repository: &'repository Repository,
    known: Arc<Index>,
    /// Read back and check a known blob before skipping it (`backup
    /// --verify-existing`): a damaged copy is then written again.
    verify_known: bool,
    compression: Compression,
    state: Mutex<PackerState>,
    sender: Mutex<Option<SyncSender<Packer>>>,
    thread: Mutex<Option<JoinHandle<Result<WriteSummary>>>>,
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
        let (sender, receiver) = sync_channel::<Packer>(0);
        let keys = repository.keys.clone();
        let tree_cache = repository.metadata_cache.clone();
        let thread = std::thread::Builder::new()
            .name("lsmvault-pack-writer".into())
            .spawn(move || write_packs(sink.as_ref(), &keys, tree_cache.as_deref(), receiver))
            .map_err(|error| Error::io("starting the pack writer thread", error))?;
        Ok(PackWriter {
            repository,
            known,
            verify_known: false,
            compression: repository.compression,
            state: Mutex::new(PackerState {
                packer: Packer::with_capacity(packer_capacity(repository)),
                pending: HashSet::new(),
            }),
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
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
            self.compression = compression;
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
        let (codec, compressed) = self.compression.encode(data);
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
                Some(std::mem::replace(
                    &mut state.packer,
                    Packer::with_capacity(self.packer_capacity()),
                ))
            } else {
                None
            }
        };
        if let Some(packer) = full {
            self.send(packer)?;
        }
        Ok(true)
    }

    fn send(&self, packer: Packer) -> Result<()> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        match sender {
            Some(sender) if sender.send(packer).is_ok() => Ok(()),
            // The writer thread stopped early: its error is reported by `finish`.
            _ => Err(self.join_writer().err().unwrap_or_else(|| {
                Error::io(
                    "pack writer",
                    std::io::Error::other("the pack writer stopped unexpectedly"),
                )
            })),
        }
    }

    fn join_writer(&self) -> Result<WriteSummary> {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        match thread {
            Some(thread) => thread.join().unwrap_or_else(|_| {
                Err(Error::io(
                    "pack writer",
                    std::io::Error::other("the pack writer thread panicked"),
                ))
            }),
            None => Err(Error::io(
                "pack writer",
                std::io::Error::other("the pack writer already finished"),
            )),
        }
    }

    /// Publishes the last pack and waits for all writes; returns what was written.
    /// The caller then writes the index for `locations`.
    pub fn finish(self) -> Result<WriteSummary> {
        let last = std::mem::take(&mut self.state().packer);
        if !last.is_empty() {
            self.send(last)?;
        }
        self.join_writer()
    }
}

/// Writes the tree blobs of a published pack to the metadata cache, as
/// stored in the pack (readers decode and check them like any blob).
fn cache_trees(cache: &MetadataCache, entries: &[PackEntry], pack: &[u8]) {
    for entry in entries.iter().filter(|entry| entry.kind == BlobKind::Tree) {
        let start = entry.offset as usize;
        if let Some(stored) = pack.get(start..start + entry.stored_length as usize) {
            cache.put(TREES, &entry.id.to_hex(), stored);
        }
    }
}

/// A pack closes at the first blob reaching the target size: room for the
/// target plus one largest chunk (and its seal).
fn packer_capacity(repository: &Repository) -> usize {
    repository.config.pack_size as usize
        + repository.config.chunker.max_size as usize
        + crypto::SEAL_OVERHEAD
}

fn write_packs(
    sink: &dyn PackSink,
    keys: &Keys,
    tree_cache: Option<&MetadataCache>,
    receiver: Receiver<Packer>,
) -> Result<WriteSummary> {
    let mut summary = WriteSummary::default();
    let mut failure = None;
    for packer in receiver {
        if failure.is_some() {
            break;
        }
        let finished = match packer.finish(keys) {
            Ok(finished) => finished,
            Err(error) => {
                failure = Some(error);
                break;
            }
        };
        match sink.publish(&finished.id, &finished.bytes) {
            Ok(_) => {
                summary.packs += 1;
                summary.published.push(GroupMember {
                    pack: finished.id,
                    length: finished.bytes.len() as u64,
                });
                summary.pack_bytes += finished.bytes.len() as u64;
                if let Some(cache) = tree_cache {
                    cache_trees(cache, &finished.entries, &finished.bytes);
                }
                for entry in &finished.entries {
                    summary.blob_bytes += u64::from(entry.raw_length);
                    summary.locations.push(BlobLocation {
                        pack: finished.id,
                        entry: *entry,
                    });
                }
            }
            Err(error) => failure = Some(error),
        }
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}
