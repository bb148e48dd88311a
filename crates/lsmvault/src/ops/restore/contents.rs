//! Writing the restored files' content pack by pack, not file by file.
//!
//! The chunks every file needs are looked up in the index once; a chunk
//! used by several files (or several times by one) is read once and written
//! to every offset that needs it. The chunks are grouped by pack and read in
//! few large ranges ([`super::ranges`]): on an object store one ranged GET
//! per range instead of one per chunk. Readers fetch ranges concurrently —
//! [`REMOTE_DOWNLOADS`] of them (or [`DOWNLOADS_VARIABLE`]) on a remote
//! backend, where the time goes into the network, as many as rayon has
//! threads on a local one — and each range's chunks are decrypted,
//! decompressed and written on rayon.
//!
//! Invariants:
//! - every chunk is checked against its id before a byte of it is written;
//!   a chunk that fails in its range (damaged, short, missing pack) is read
//!   again alone through [`Repository::read_blob`], which tries its other
//!   locations and names the blob and its pack in its error, so a damaged
//!   range costs a few requests more but never a less precise error;
//! - a file is checked whole (size and digest, read back from the disk) once
//!   its last chunk is written, while it is in the page cache; a file that
//!   fails anywhere is removed at the end and reported, the others restore;
//! - memory is bounded: at most [`BYTES_IN_FLIGHT`] bytes of ranges are held
//!   at once (a range longer than that is read alone), plus one decoded
//!   chunk per rayon thread; the plan itself holds one entry per distinct
//!   chunk and per chunk occurrence.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use rayon::prelude::*;

use crate::backend::ObjectKind;
use crate::codec::crypto::Keys;
use crate::error::{Error, IoContext, Result};
use crate::format::index::BlobLocation;
use crate::format::pack;
use crate::format::tree::{Entry, EntryKind};
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::file_content::naming_file;
use crate::repo::Repository;

use super::ranges::{plan_ranges, ReadRange, Wanted};

/// Names the number of concurrent downloads of a restore from a remote
/// repository (default [`REMOTE_DOWNLOADS`]).
pub const DOWNLOADS_VARIABLE: &str = "LSMVAULT_DOWNLOADS";
/// Concurrent downloads from a remote repository unless
/// [`DOWNLOADS_VARIABLE`] says otherwise: enough to fill a link whose
/// round trips would leave one request idle most of the time.
pub const REMOTE_DOWNLOADS: usize = 8;
/// The most bytes of ranges held at once, whatever the number of readers
/// (the CLI has buffers this large mapped and returned when freed).
const BYTES_IN_FLIGHT: u64 = 64 << 20;

/// One file being written.
pub(super) struct Output<'a> {
    /// Relative to the target (reported in failures).
    pub(super) relative: &'a Path,
    /// Where it is written.
    pub(super) path: PathBuf,
    pub(super) entry: &'a Entry,
    /// Chunk occurrences not written yet; the file is checked at zero.
    remaining: AtomicUsize,
    state: Mutex<OutputState>,
}

#[derive(Default)]
struct OutputState {
    /// The first problem met; the file is removed at the end.
    failure: Option<Error>,
    /// Checked whole and its metadata applied.
    finished: bool,
}

impl<'a> Output<'a> {
    /// A file created (empty) at `path`, to be written from `entry`.
    pub(super) fn new(relative: &'a Path, path: PathBuf, entry: &'a Entry) -> Output<'a> {
        Output {
            relative,
            path,
            entry,
            remaining: AtomicUsize::new(0),
            state: Mutex::new(OutputState::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, OutputState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn failed(&self) -> bool {
        self.state().failure.is_some()
    }

    /// Records `error` unless the file already failed.
    fn fail(&self, error: Error) {
        self.state().failure.get_or_insert(error);
    }

    /// `restored file <path>`, for errors.
    fn describe(&self) -> String {
        format!("restored file {}", self.path.display())
    }

    /// The error for the chunk `number` of this file.
    fn chunk_error(&self, error: Error, number: usize) -> Error {
        naming_file(error, &self.describe(), number, chunks(self.entry).len())
    }

    /// Writes `bytes` at `offset` (opening the file again: a restore of
    /// thousands of files cannot keep them all open).
    fn write_at(&self, bytes: &[u8], offset: u64) -> Result<()> {
        let writing = |error| Error::io(format!("writing {}", self.describe()), error);
        let file = OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&self.path)
            .map_err(writing)?;
        file.write_all_at(bytes, offset).map_err(writing)
    }

    /// Checks the whole file against its entry's size and digest and
    /// applies its metadata, unless it failed or is already finished.
    fn finish(&self, keys: &Keys) {
        if self.failed() || self.state().finished {
            return;
        }
        let finished = self
            .check_whole(keys)
            .and_then(|()| super::apply_metadata(&self.path, &self.entry.metadata));
        let mut state = self.state();
        match finished {
            Ok(()) => state.finished = true,
            Err(error) => {
                state.failure.get_or_insert(error);
            }
        }
    }

    fn check_whole(&self, keys: &Keys) -> Result<()> {
        let EntryKind::File { size, digest, .. } = &self.entry.kind else {
            return Ok(());
        };
        let (written, actual) = file_digest(&self.path, keys)
            .context(|| format!("reading back {}", self.describe()))?;
        if actual != *digest || written != *size {
            return Err(Error::ChecksumMismatch {
                object: format!(
                    "{} ({written} of {size} bytes written: the output is damaged)",
                    self.describe()
                ),
                expected: digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(())
    }

    /// The failure, if any (the file is then removed), once every read is done.
    pub(super) fn into_failure(self) -> Option<Error> {
        let failure = self
            .state
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .failure;
        if failure.is_some() {
            let _ = fs::remove_file(&self.path);
        }
        failure
    }
}

/// The chunks of a file entry (none for anything else).
fn chunks(entry: &Entry) -> &[Id] {
    match &entry.kind {
        EntryKind::File { chunks, .. } => chunks,
        _ => &[],
    }
}

/// The length and keyed digest of the file at `path`.
pub(super) fn file_digest(path: &Path, keys: &Keys) -> std::io::Result<(u64, Id)> {
    let mut file = File::open(path)?;
    let mut hasher = keys.hasher();
    let mut buffer = vec![0u8; 1 << 20];
    let mut length = 0u64;
    loop {
        match file.read(&mut buffer)? {
            0 => break,
            count => {
                hasher.update(&buffer[..count]);
                length += count as u64;
            }
        }
    }
    Ok((length, Id(*hasher.finalize().as_bytes())))
}

/// Where one occurrence of a chunk goes.
struct Target {
    /// Position in the outputs.
    file: usize,
    /// Byte offset in the file.
    offset: u64,
    /// Which chunk of the file it is (for errors).
    number: usize,
}

/// A distinct chunk to read and every place it is written to (in the
/// outputs' order).
struct Needed {
    location: BlobLocation,
    targets: Vec<Target>,
}

/// The bytes of ranges held at once: a reader takes a range's length (at
/// most the whole budget) before reading and gives it back when the range
/// is written.
struct Budget {
    available: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    fn take(&self, wanted: u64) -> u64 {
        let wanted = wanted.min(BYTES_IN_FLIGHT);
        let mut available = self
            .available
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while *available < wanted {
            available = self
                .freed
                .wait(available)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        *available -= wanted;
        wanted
    }

    fn give_back(&self, taken: u64) {
        *self
            .available
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) += taken;
        self.freed.notify_all();
    }
}

impl Repository {
    /// Writes the content of every output (files created empty, in path
    /// order), records each file's failure in it, and checks and finishes
    /// the others, with `readers` ranges read at once. An error is one no
    /// file could be restored past (the index cannot be loaded).
    pub(super) fn write_contents(
        &self,
        outputs: &[Output],
        readers: usize,
        progress: &dyn Progress,
    ) -> Result<()> {
        let needed = self.plan_chunks(outputs)?;
        let ranges = plan_ranges(needed.iter().enumerate().map(|(tag, blob)| Wanted {
            pack: blob.location.pack,
            offset: u64::from(blob.location.entry.offset),
            length: u64::from(blob.location.entry.stored_length),
            tag,
        }));
        let budget = Budget {
            available: Mutex::new(BYTES_IN_FLIGHT),
            freed: Condvar::new(),
        };
        let next = AtomicUsize::new(0);
        let read_ranges = || {
            while let Some(range) = ranges.get(next.fetch_add(1, Ordering::Relaxed)) {
                let taken = budget.take(range.length);
                self.write_range(range, &needed, outputs, progress);
                budget.give_back(taken);
            }
        };
        std::thread::scope(|scope| {
            // A reader that cannot start leaves its share to the others.
            for _ in 1..readers.min(ranges.len()) {
                let _ = std::thread::Builder::new()
                    .name("lsmvault-restore-read".into())
                    .spawn_scoped(scope, read_ranges);
            }
            read_ranges();
        });
        // Files without chunks, and any not finished by their last chunk.
        outputs
            .par_iter()
            .for_each(|output| output.finish(self.keys()));
        Ok(())
    }

    /// How many ranges are read at once ([`DOWNLOADS_VARIABLE`] checked
    /// before the target is touched).
    pub(super) fn readers(&self) -> Result<usize> {
        if !self.backend().is_remote() {
            return Ok(rayon::current_num_threads());
        }
        match std::env::var(DOWNLOADS_VARIABLE) {
            Err(_) => Ok(REMOTE_DOWNLOADS),
            Ok(value) => match value.trim().parse::<usize>() {
                Ok(count) if (1..=256).contains(&count) => Ok(count),
                _ => Err(Error::InvalidArgument(format!(
                    "{DOWNLOADS_VARIABLE}={value:?} is not a number of downloads from 1 to 256"
                ))),
            },
        }
    }

    /// The distinct chunks of the outputs with their locations and targets,
    /// in the order the outputs first need them. A file with a chunk no
    /// index lists fails (with the error reading it alone gives).
    fn plan_chunks(&self, outputs: &[Output]) -> Result<Vec<Needed>> {
        let mut index = self.index()?;
        let all_indexed = |index: &crate::format::index::Index| {
            outputs
                .iter()
                .all(|output| chunks(output.entry).iter().all(|id| index.contains(id)))
        };
        if !all_indexed(&index) {
            // Another process may have indexed them since the index was loaded.
            index = self.refresh_index()?;
        }
        let mut needed: Vec<Needed> = Vec::new();
        let mut position: HashMap<Id, usize> = HashMap::new();
        for (file, output) in outputs.iter().enumerate() {
            let mut offset = 0u64;
            let mut planned = 0;
            for (number, id) in chunks(output.entry).iter().enumerate() {
                let Some(location) = index.get(id) else {
                    let error = match self.read_blob(id) {
                        Err(error) => error,
                        Ok(_) => Error::corrupt(
                            format!("blob {id}"),
                            "not in the index when the restore was planned",
                        ),
                    };
                    output.fail(output.chunk_error(error, number));
                    break;
                };
                let slot = *position.entry(*id).or_insert_with(|| {
                    needed.push(Needed {
                        location: *location,
                        targets: Vec::new(),
                    });
                    needed.len() - 1
                });
                needed[slot].targets.push(Target {
                    file,
                    offset,
                    number,
                });
                offset += u64::from(location.entry.raw_length);
                planned += 1;
            }
            output.remaining.store(planned, Ordering::Relaxed);
        }
        Ok(needed)
    }

    /// Reads one range and writes each of its chunks wherever it goes.
    fn write_range(
        &self,
        range: &ReadRange,
        needed: &[Needed],
        outputs: &[Output],
        progress: &dyn Progress,
    ) {
        let pack_name = range.pack.to_hex();
        let bytes = self
            .backend()
            .read_range(ObjectKind::Pack, &pack_name, range.offset, range.length)
            .ok();
        range.blobs.par_iter().for_each(|&tag| {
            let blob = &needed[tag];
            let from_range = bytes
                .as_deref()
                .and_then(|bytes| self.cut_blob(bytes, range.offset, &blob.location));
            // Damaged in the range, or the range unreadable: read it alone,
            // from any of its locations, for the precise error.
            let raw = match from_range {
                Some(raw) => Ok(raw),
                None => self.read_blob(&blob.location.entry.id),
            };
            match raw {
                Ok(raw) => self.write_chunk(blob, &raw, outputs, progress),
                Err(error) => fail_targets(blob, error, outputs),
            }
        });
    }

    /// The blob at `location`, cut from `bytes` (the range read from
    /// `start`), decoded and checked; `None` when anything is wrong.
    fn cut_blob(&self, bytes: &[u8], start: u64, location: &BlobLocation) -> Option<Vec<u8>> {
        let entry = &location.entry;
        let describe = || format!("blob {} in pack {}", entry.id, location.pack);
        self.check_declared_length(entry, describe).ok()?;
        let from = usize::try_from(u64::from(entry.offset).checked_sub(start)?).ok()?;
        let stored = bytes.get(from..from.checked_add(entry.stored_length as usize)?)?;
        let raw = pack::decode_blob(entry, stored, self.keys(), describe).ok()?;
        (raw.len() as u64 == u64::from(entry.raw_length)).then_some(raw)
    }

    /// Writes a checked chunk to each of its targets; a file whose last
    /// chunk this was is checked and finished.
    fn write_chunk(&self, blob: &Needed, raw: &[u8], outputs: &[Output], progress: &dyn Progress) {
        for target in &blob.targets {
            let output = &outputs[target.file];
            if !output.failed() {
                match output.write_at(raw, target.offset) {
                    Ok(()) => progress.advance(raw.len() as u64),
                    Err(error) => output.fail(error),
                }
            }
            if output.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                output.finish(self.keys());
            }
        }
    }
}

/// Records a chunk's reading error in every file that needs it: the first
/// (in path order) gets the error itself, the others a copy.
fn fail_targets(blob: &Needed, error: Error, outputs: &[Output]) {
    let mut copies: Vec<Error> = blob.targets[1..]
        .iter()
        .map(|_| duplicate(&error))
        .collect();
    let mut error = Some(error);
    for target in &blob.targets {
        let output = &outputs[target.file];
        let Some(this) = error.take().or_else(|| copies.pop()) else {
            break;
        };
        output.fail(output.chunk_error(this, target.number));
    }
}

/// A copy of a recorded failure for another file: the variants reading a
/// chunk gives keep their kind (and so their exit code), anything else is
/// described in words.
fn duplicate(error: &Error) -> Error {
    match error {
        Error::ChecksumMismatch {
            object,
            expected,
            actual,
        } => Error::ChecksumMismatch {
            object: object.clone(),
            expected: expected.clone(),
            actual: actual.clone(),
        },
        Error::CorruptObject { object, reason } => Error::CorruptObject {
            object: object.clone(),
            reason: reason.clone(),
        },
        Error::AuthenticationFailed { object } => Error::AuthenticationFailed {
            object: object.clone(),
        },
        Error::Io { context, source } => Error::Io {
            context: context.clone(),
            source: std::io::Error::new(source.kind(), source.to_string()),
        },
        other => Error::corrupt("a chunk", other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    fn budget() -> Budget {
        Budget {
            available: Mutex::new(BYTES_IN_FLIGHT),
            freed: Condvar::new(),
        }
    }

    #[test]
    fn a_range_longer_than_the_budget_takes_all_of_it_and_no_more() {
        let budget = budget();
        assert_eq!(budget.take(4 * BYTES_IN_FLIGHT), BYTES_IN_FLIGHT);
        budget.give_back(BYTES_IN_FLIGHT);
        assert_eq!(budget.take(16 << 20), 16 << 20);
    }

    #[test]
    fn a_reader_waits_until_enough_bytes_are_given_back() {
        let budget = budget();
        let held = budget.take(BYTES_IN_FLIGHT - (8 << 20));
        let got = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let taken = budget.take(16 << 20);
                got.store(true, Ordering::SeqCst);
                budget.give_back(taken);
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(!got.load(Ordering::SeqCst), "took more than was left");
            budget.give_back(held);
        });
        assert!(got.load(Ordering::SeqCst));
        assert_eq!(budget.take(BYTES_IN_FLIGHT), BYTES_IN_FLIGHT);
    }
}
