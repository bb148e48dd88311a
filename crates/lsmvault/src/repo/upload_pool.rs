//! [`UploadPool`]: the threads that publish a [`PackWriter`]'s finished
//! packs, several at once, with the bytes in flight bounded.
//!
//! Owns: the [`PackSink`] trait (where packs go), the number of uploads ([`upload_count`], [`UPLOADS_VARIABLE`]), the
//! byte budget ([`Budget`]) and the worker loop. One upload at a time leaves
//! a remote link idle while a pack is sealed, signed and acknowledged, so a
//! remote backend gets [`REMOTE_UPLOADS`] uploads; a local disk is bound by
//! fsync and gets [`LOCAL_UPLOADS`].
//!
//! To a remote backend, packs are spilled (restic's design): the thread that
//! hands a full pack over seals it, writes it to an unlinked temporary file
//! in the spill directory ([`SpillFile`], `$TMPDIR`) and frees its buffer
//! before waiting for an idle worker, and the worker uploads from the file
//! ([`PackSink::publish_spilled`]; the S3 backend reads it a part at a
//! time). The byte budget then bounds only packs on their way to a file, so
//! the number of uploads in flight is bounded by the workers alone, not by
//! memory. A local backend writes each pack file straight from memory (a
//! spill file would be one more copy of it on the same kind of disk).
//!
//! Invariants:
//! - At most `uploads` packs are being published (one per worker; the
//!   hand-over channel has no buffer), and the packs handed over and not yet
//!   published hold at most [`Budget`]'s limit in bytes, except that one
//!   pack always may go (a pack larger than the limit is sent alone).
//! - A pack is reported ([`Published`]) only once its sink returned `Ok`.
//!   The first failure stops everything: no further pack is handed over,
//!   the workers drop (never publish) the packs they receive after it, and
//!   [`UploadPool::finish`] returns that error, so the caller indexes
//!   nothing of this writer; uploads already running finish first.
//! - Every pack carries the sequence number of its hand-over: the caller
//!   puts the reports back into that order, so the summary is the same
//!   whatever the number of uploads.
//!
//! [`PackWriter`]: super::PackWriter

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use bytes::Bytes;

use std::path::PathBuf;

use crate::backend::cache::{MetadataCache, TREES};
use crate::backend::{ObjectKind, SpillFile};
use crate::codec::crypto::Keys;
use crate::error::{Error, ErrorCode, Result};
use crate::format::pack::{BlobKind, PackEntry, Packer};
use crate::id::Id;

/// Where finished packs go. The repository's own sink publishes each pack to
/// its backend; a wrapper (parity over packs, throttling) implements it around
/// another sink.
///
/// Called from several upload threads at once.
pub trait PackSink: Send + Sync {
    /// Publishes one finished pack under its id. When it returns `Ok` the pack
    /// is durable: the index that names it may be written next. The bytes
    /// come by value (cheap to clone, shared with the tree cache), so an
    /// object store can send them without a copy.
    fn publish(&self, id: &Id, bytes: Bytes) -> Result<()>;

    /// Like [`PackSink::publish`], for a pack parked in a spill file. The
    /// default reads it whole and publishes that.
    fn publish_spilled(&self, id: &Id, spilled: &SpillFile) -> Result<()> {
        let bytes = spilled
            .read_object(ObjectKind::Pack, &id.to_hex())
            .map_err(Error::from)?;
        self.publish(id, Bytes::from(bytes))
    }
}

/// Overrides the number of packs published at once (1 to [`MAX_UPLOADS`]).
pub const UPLOADS_VARIABLE: &str = "LSMVAULT_UPLOADS";
/// Uploads at once to a remote backend ([`crate::backend::Backend::is_remote`]).
pub const REMOTE_UPLOADS: usize = 8;
/// Uploads at once to a local backend: fsync-bound, two overlap one pack's
/// sync with the next one's write.
pub const LOCAL_UPLOADS: usize = 2;
/// The most [`UPLOADS_VARIABLE`] may ask for: one thread each, and the byte
/// budget bounds the packs in flight long before.
pub const MAX_UPLOADS: usize = 64;
/// Bytes of pack buffers a writer to a local backend holds at most: the pack
/// being filled (its target size) and the packs handed over and not yet
/// published. (To a remote backend packs are spilled: see the module docs
/// and [`SPILL_MEMORY`].) With
/// 16 MiB packs that is three in flight: measured, a backup to S3 then
/// peaks at ~97 MiB RSS (96 MiB, with adders not yet waiting for the budget,
/// peaked at 130 MiB, above the 128 MiB target), and three keep a 100 Mbit/s
/// link 86% busy (docs/benchmarks.md, "Parallel pack uploads").
pub const PACK_MEMORY: u64 = 80 << 20;
/// Bytes of finished packs a spilling writer holds besides the one being
/// filled: none but the one being sealed and written to its spill file (a
/// budget of 0 lets one pack at a time through).
pub const SPILL_MEMORY: u64 = 0;

/// The number of uploads at once: [`UPLOADS_VARIABLE`] if set, else
/// [`REMOTE_UPLOADS`] or [`LOCAL_UPLOADS`].
pub fn upload_count(remote: bool) -> Result<usize> {
    match std::env::var(UPLOADS_VARIABLE) {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(count) if (1..=MAX_UPLOADS).contains(&count) => Ok(count),
            _ => Err(Error::InvalidArgument(format!(
                "{UPLOADS_VARIABLE}={value:?} is not a count of uploads from 1 to \
                 {MAX_UPLOADS} (unset it for the default: {REMOTE_UPLOADS} to object storage, \
                 {LOCAL_UPLOADS} to a local directory)"
            ))),
        },
        Err(_) => Ok(if remote {
            REMOTE_UPLOADS
        } else {
            LOCAL_UPLOADS
        }),
    }
}

/// Bytes handed over and not yet published, bounded by `limit`.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    state: Mutex<BudgetState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct BudgetState {
    in_flight: u64,
    /// Bytes in flight at most so far (for tests and figures).
    peak: u64,
    failed: bool,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Budget {
        Budget {
            limit,
            state: Mutex::new(BudgetState::default()),
            changed: Condvar::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, BudgetState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits until `bytes` fit (or nothing is in flight) and takes them;
    /// `false` once an upload failed.
    fn acquire(&self, bytes: u64) -> bool {
        let mut state = self.state();
        while !state.failed && state.in_flight > 0 && state.in_flight + bytes > self.limit {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        if state.failed {
            return false;
        }
        state.in_flight += bytes;
        state.peak = state.peak.max(state.in_flight);
        true
    }

    fn release(&self, bytes: u64) {
        let mut state = self.state();
        state.in_flight = state.in_flight.saturating_sub(bytes);
        self.changed.notify_all();
    }

    fn fail(&self) {
        self.state().failed = true;
        self.changed.notify_all();
    }

    fn failed(&self) -> bool {
        self.state().failed
    }

    /// Bytes in flight now, and the limit.
    fn backlog(&self) -> (u64, u64) {
        (self.state().in_flight, self.limit)
    }

    /// The most bytes that were in flight at once.
    #[cfg(test)]
    fn peak(&self) -> u64 {
        self.state().peak
    }
}

/// One published pack, as a worker reports it.
#[derive(Debug)]
pub(crate) struct Published {
    /// Its hand-over order.
    pub sequence: u64,
    pub id: Id,
    pub length: u64,
    pub entries: Vec<PackEntry>,
}

struct Job {
    sequence: u64,
    pack: Pack,
    /// Bytes of the budget this job holds until it is published (0 for a
    /// spilled pack: its buffer was freed when it was spilled).
    charged: u64,
}

/// A pack on its way to a worker.
enum Pack {
    /// Still in memory; the worker seals it. (Boxed: the hasher in a
    /// packer is large, and the enum travels through the channel.)
    Filled(Box<Packer>),
    /// Sealed and parked in a spill file.
    Spilled {
        id: Id,
        entries: Vec<PackEntry>,
        file: SpillFile,
    },
}

/// What every worker shares.
struct Context {
    sink: Arc<dyn PackSink>,
    keys: Keys,
    tree_cache: Option<Arc<MetadataCache>>,
    budget: Arc<Budget>,
    receiver: Mutex<Receiver<Job>>,
}

type Worker = JoinHandle<Result<Vec<Published>>>;

/// Threads publishing finished packs (see the module docs).
pub(crate) struct UploadPool {
    sender: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<Worker>>,
    /// Held for the whole of a join, so that a second joiner waits for the
    /// first and then repeats its failure (`Error::Repeated`) instead of
    /// guessing.
    joined: Mutex<Option<(ErrorCode, String)>>,
    budget: Arc<Budget>,
    sequence: AtomicU64,
    keys: Keys,
    /// Where packs are spilled before they are handed over, if they are.
    spill: Option<PathBuf>,
    uploads: usize,
}

impl UploadPool {
    /// Starts `uploads` workers publishing through `sink`, holding at most
    /// `limit` bytes of handed-over packs; with `spill`, packs are spilled
    /// to files in that directory before they are handed over.
    pub(crate) fn start(
        sink: Arc<dyn PackSink>,
        keys: Keys,
        tree_cache: Option<Arc<MetadataCache>>,
        uploads: usize,
        limit: u64,
        spill: Option<PathBuf>,
    ) -> Result<UploadPool> {
        let (sender, receiver) = sync_channel::<Job>(0);
        let budget = Arc::new(Budget::new(limit));
        let context = Arc::new(Context {
            sink,
            keys: keys.clone(),
            tree_cache,
            budget: Arc::clone(&budget),
            receiver: Mutex::new(receiver),
        });
        let pool = UploadPool {
            sender: Mutex::new(Some(sender)),
            workers: Mutex::new(Vec::new()),
            joined: Mutex::new(None),
            budget,
            sequence: AtomicU64::new(0),
            keys,
            spill,
            uploads: uploads.max(1),
        };
        for number in 0..uploads.max(1) {
            let context = Arc::clone(&context);
            let worker = std::thread::Builder::new()
                .name(format!("lsmvault-upload-{number}"))
                .spawn(move || upload(&context))
                .map_err(|error| Error::io("starting a pack upload thread", error))?;
            pool.workers().push(worker);
        }
        Ok(pool)
    }

    fn workers(&self) -> MutexGuard<'_, Vec<Worker>> {
        self.workers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Waits for room for `bytes` in the budget and takes it, before the
    /// pack is taken out of the writer: a pack waiting for a worker is
    /// counted too. After a failed upload, returns that failure (once all
    /// workers stopped).
    pub(crate) fn reserve(&self, bytes: u64) -> Result<()> {
        if self.budget.acquire(bytes) {
            Ok(())
        } else {
            Err(self.failure())
        }
    }

    /// Hands a full pack, for which `charged` bytes were reserved, to an
    /// idle worker, waiting for one. A spilling pool first seals the pack
    /// and writes it to a spill file in this thread, and gives the budget
    /// back before it waits.
    pub(crate) fn submit(&self, packer: Packer, charged: u64) -> Result<()> {
        let (pack, charged) = match &self.spill {
            None => (Pack::Filled(Box::new(packer)), charged),
            Some(directory) => {
                let spilled = self.spill(packer, directory);
                self.budget.release(charged);
                (spilled?, 0)
            }
        };
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        let job = Job {
            sequence: self.sequence.fetch_add(1, Ordering::SeqCst),
            pack,
            charged,
        };
        if sender.is_some_and(|sender| sender.send(job).is_ok()) {
            return Ok(());
        }
        self.budget.release(charged);
        Err(self.failure())
    }

    /// Seals `packer` and writes it to a new spill file in `directory`.
    fn spill(&self, packer: Packer, directory: &std::path::Path) -> Result<Pack> {
        let finished = packer.finish(&self.keys)?;
        let file = SpillFile::write(directory, &finished.bytes).map_err(|error| {
            Error::io(
                format!(
                    "writing pack {} ({} bytes) to a temporary file in {} (packs wait there \
                     while they upload: one per upload in flight, {} at most, and one per \
                     thread adding blobs; point TMPDIR at a file system with room, or set \
                     {UPLOADS_VARIABLE} lower)",
                    finished.id,
                    finished.bytes.len(),
                    directory.display(),
                    self.uploads,
                ),
                error,
            )
        })?;
        Ok(Pack::Spilled {
            id: finished.id,
            entries: finished.entries,
            file,
        })
    }

    /// An upload failed (or every worker stopped): its error is the answer.
    fn failure(&self) -> Error {
        self.join().err().unwrap_or_else(stopped)
    }

    /// Waits for every upload; the packs published, in no particular order,
    /// or the first failure.
    pub(crate) fn join(&self) -> Result<Vec<Published>> {
        let mut joined = self
            .joined
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let workers = std::mem::take(&mut *self.workers());
        if workers.is_empty() {
            // Another thread joined first and returned the failure.
            let (code, message) = joined.clone().unwrap_or_else(|| {
                (
                    ErrorCode::Other,
                    "pack writer: a pack upload failed (reported by another thread)".into(),
                )
            });
            return Err(Error::Repeated { code, message });
        }
        let mut published = Vec::new();
        let mut failure = None;
        for worker in workers {
            match worker.join() {
                Ok(Ok(packs)) => published.extend(packs),
                Ok(Err(error)) => failure = failure.or(Some(error)),
                Err(_) => {
                    failure = failure.or(Some(Error::io(
                        "pack writer",
                        std::io::Error::other("a pack upload thread panicked"),
                    )))
                }
            }
        }
        match failure {
            Some(error) => {
                *joined = Some((error.code(), error.to_string()));
                Err(error)
            }
            None => Ok(published),
        }
    }

    /// Bytes handed over and not yet published now, and the budget's limit
    /// (the backlog the adaptive compression level follows).
    pub(crate) fn backlog(&self) -> (u64, u64) {
        self.budget.backlog()
    }

    /// The most bytes that were handed over and not yet published at once.
    #[cfg(test)]
    pub(crate) fn peak_bytes(&self) -> u64 {
        self.budget.peak()
    }
}

fn stopped() -> Error {
    Error::io(
        "pack writer",
        std::io::Error::other("the pack upload threads stopped unexpectedly"),
    )
}

/// Marks the budget failed if its worker panics, so that adders waiting for
/// room wake up and report the panic instead of waiting for ever.
struct FailOnPanic<'a>(&'a Budget);

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.fail();
        }
    }
}

/// A worker: takes packs until the channel closes, seals and publishes
/// each; after any failure (its own or another worker's) drops the rest.
fn upload(context: &Context) -> Result<Vec<Published>> {
    let _guard = FailOnPanic(&context.budget);
    let mut published = Vec::new();
    loop {
        let job = {
            let receiver = context
                .receiver
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match receiver.recv() {
                Ok(job) => job,
                Err(_) => return Ok(published),
            }
        };
        let charged = job.charged;
        let outcome = if context.budget.failed() {
            Ok(None)
        } else {
            publish(context, job).map(Some)
        };
        context.budget.release(charged);
        match outcome {
            Ok(Some(pack)) => published.push(pack),
            Ok(None) => {}
            Err(error) => {
                context.budget.fail();
                return Err(error);
            }
        }
    }
}

fn publish(context: &Context, job: Job) -> Result<Published> {
    let packer = match job.pack {
        Pack::Filled(packer) => packer,
        Pack::Spilled { id, entries, file } => {
            context.sink.publish_spilled(&id, &file)?;
            if let Some(cache) = &context.tree_cache {
                cache_spilled_trees(cache, &entries, &file);
            }
            return Ok(Published {
                sequence: job.sequence,
                id,
                length: file.len(),
                entries,
            });
        }
    };
    let finished = (*packer).finish(&context.keys)?;
    let length = finished.bytes.len() as u64;
    // Shared, not copied, between the upload and the tree cache.
    let bytes = Bytes::from(finished.bytes);
    context.sink.publish(&finished.id, bytes.clone())?;
    if let Some(cache) = &context.tree_cache {
        cache_trees(cache, &finished.entries, &bytes);
    }
    Ok(Published {
        sequence: job.sequence,
        id: finished.id,
        length,
        entries: finished.entries,
    })
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

/// [`cache_trees`] for a spilled pack: each tree blob read from its file.
fn cache_spilled_trees(cache: &MetadataCache, entries: &[PackEntry], file: &SpillFile) {
    for entry in entries.iter().filter(|entry| entry.kind == BlobKind::Tree) {
        if let Ok(stored) = file.read_at(u64::from(entry.offset), entry.stored_length as usize) {
            cache.put(TREES, &entry.id.to_hex(), &stored);
        }
    }
}
