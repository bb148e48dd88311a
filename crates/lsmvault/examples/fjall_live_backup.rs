//! Online backup of a live fjall keyspace with the lsmvault library — what
//! fjall issue #52 ("Backup using Checkpointing") asks for, done from the
//! application that owns the keyspace:
//!
//! 1. pause the application's writers (they write through a gate, a
//!    `RwLock` they hold shared for each write; the backup takes it
//!    exclusively) and persist the journal, so every acknowledged write is
//!    in a journal file;
//! 2. checkpoint the directory with [`lsmvault::lsm::checkpoint`]: fjall's
//!    segments (`partitions/<name>/segments/<n>`) and sealed journals are
//!    immutable and hard-linked; the active journal and the small metadata
//!    files (`version`, `manifest`, `levels`, `config`) are copied;
//! 3. resume the writers ([`checkpoint_then`]'s `resume`, before the
//!    checkpoint is synced) — the pause lasts as long as the links and the
//!    copy of the active journal, whatever the keyspace's size;
//! 4. ingest the checkpoint into a repository (deduplicated against the
//!    previous generation: linked segments keep their inode and are not
//!    read again) and remove it.
//!
//! fjall's flushes and compactions run in background threads that the
//! writers' gate does not stop. A checkpoint taken while one of them
//! replaces files could hold a `levels` file naming a segment that was
//! deleted before it was linked; so the directory is listed before and after
//! the links (name, inode, size, mtime of every file) and the checkpoint is
//! taken again when anything changed in between.
//!
//! Finally every generation is restored into a new directory, opened with
//! fjall, and must hold exactly the writes acknowledged before its pause.
//!
//! ```sh
//! cargo run --release -p lsmvault --example fjall_live_backup [WORK_DIR]
//! ```
//! (`cargo test` runs it too, smaller.)

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use fjall::{Config, Keyspace, PartitionCreateOptions, PartitionHandle, PersistMode};
use lsmvault::lsm::checkpoint::{checkpoint_then, CheckpointOptions};
use lsmvault::lsm::file_class::FileClasses;
use lsmvault::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions};

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How big a run is.
struct Plan {
    writers: u64,
    generations: usize,
    writes_between_backups: u64,
}

/// One backed-up generation: its snapshot and how many keys it must hold.
struct Generation {
    snapshot: String,
    keys: u64,
    /// Each time the writers were paused for this generation (one per
    /// attempt; the last one is the checkpoint kept).
    pauses: Vec<Duration>,
    files_unmodified: u64,
    bytes_total: u64,
    bytes_added: u64,
}

/// fjall 2's directory: segments are immutable (linked); journals are its
/// write-ahead log (the newest, still written, is copied; sealed ones are
/// linked); the metadata files (`version`, `manifest`, `levels`, `config`)
/// are rewritten (copied). It has no lock file or info log.
fn fjall_classes() -> FileClasses {
    FileClasses {
        immutable: vec!["segments/*".to_string()],
        wal: vec!["journals/*".to_string()],
        skip: Vec::new(),
    }
}

fn key(number: u64) -> [u8; 8] {
    number.to_be_bytes()
}

fn value(number: u64) -> Vec<u8> {
    format!("value of key {number}: ").repeat(6).into_bytes()
}

/// Writers that insert keys 0, 1, 2, ... through the gate: while the backup
/// holds the gate, no write is in flight and exactly the keys below
/// `written` are in the keyspace.
struct Writers {
    gate: Arc<RwLock<()>>,
    written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<Result<(), fjall::Error>>>,
}

impl Writers {
    fn start(items: &PartitionHandle, count: u64) -> Writers {
        let gate = Arc::new(RwLock::new(()));
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..count)
            .map(|_| {
                let (gate, written, stop) = (gate.clone(), written.clone(), stop.clone());
                let items = items.clone();
                thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let _open = gate.read().unwrap_or_else(|poisoned| poisoned.into_inner());
                        let number = written.fetch_add(1, Ordering::SeqCst);
                        items.insert(key(number), value(number))?;
                    }
                    Ok(())
                })
            })
            .collect();
        Writers {
            gate,
            written,
            stop,
            threads,
        }
    }

    fn wait_for(&self, writes: u64) {
        while self.written.load(Ordering::SeqCst) < writes {
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn finish(self) -> Result<(), Failure> {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            thread.join().map_err(|_| "a writer panicked")??;
        }
        Ok(())
    }
}

/// Inode, size and mtime of every file under `directory`; `None` when
/// a file vanished while it was listed (a flush or compaction at work).
type Listing = BTreeMap<PathBuf, (u64, u64, i64, i64)>;

fn listing(directory: &Path) -> Result<Option<Listing>, Failure> {
    let vanished = |error: &walkdir::Error| {
        error
            .io_error()
            .is_some_and(|error| error.kind() == std::io::ErrorKind::NotFound)
    };
    let mut files = BTreeMap::new();
    for entry in walkdir::WalkDir::new(directory) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(error) if vanished(&error) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        // A directory's mtime moves with every file created in it.
        if entry.file_type().is_dir() {
            continue;
        }
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(error) if vanished(&error) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        files.insert(
            entry.path().to_path_buf(),
            (
                metadata.ino(),
                metadata.len(),
                metadata.mtime(),
                metadata.mtime_nsec(),
            ),
        );
    }
    Ok(Some(files))
}

/// Whether the checkpoint taken between the listings `before` and `after`
/// is consistent: no file was deleted or replaced (a compaction swapping
/// segments, a flush retiring a journal) and no metadata file changed. A
/// segment being written may grow meanwhile: it is not referenced by the
/// `levels` file copied, and fjall drops it when it opens the restored copy.
fn unchanged(before: Option<&Listing>, after: Option<&Listing>) -> bool {
    let (Some(before), Some(after)) = (before, after) else {
        return false;
    };
    before.iter().all(|(path, old)| {
        let in_progress_segment = path
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|directory| directory == "segments");
        after.get(path).is_some_and(|new| {
            if in_progress_segment {
                new.0 == old.0
            } else {
                new == old
            }
        })
    })
}

/// Pauses the writers, checkpoints the keyspace into `destination`, resumes
/// them. Retries, backing off so a running compaction can finish, while
/// background work changed the directory meanwhile. Returns the keys the
/// checkpoint holds and every pause.
fn checkpoint_online(
    keyspace: &Keyspace,
    writers: &Writers,
    source: &Path,
    destination: &Path,
) -> Result<(u64, Vec<Duration>), Failure> {
    let options = CheckpointOptions {
        classes: fjall_classes(),
        ..CheckpointOptions::default()
    };
    let mut pauses = Vec::new();
    let mut back_off = Duration::from_millis(10);
    for _attempt in 1..=50 {
        let paused = Instant::now();
        let closed = writers
            .gate
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let keys = writers.written.load(Ordering::SeqCst);
        keyspace.persist(PersistMode::SyncAll)?;
        let before = listing(source)?;
        // Checked and resumed right after the last link, before the
        // checkpoint's fsyncs: the writers wait for the links only.
        let mut stable = Ok(false);
        let mut pause = Duration::ZERO;
        let linked = checkpoint_then(source, destination, &options, || {
            stable = listing(source).map(|after| unchanged(before.as_ref(), after.as_ref()));
            drop(closed);
            pause = paused.elapsed();
        });
        let outcome = match linked {
            Ok(_) => (keys, stable?),
            // A flush deleted a journal it had just listed (the partial
            // checkpoint is already removed): try again.
            Err(lsmvault::Error::Io { source: error, .. })
                if error.kind() == std::io::ErrorKind::NotFound =>
            {
                (keys, false)
            }
            Err(error) => return Err(error.into()),
        };
        pauses.push(pause);
        match outcome {
            (keys, true) => return Ok((keys, pauses)),
            (_, false) => {
                if destination.exists() {
                    fs::remove_dir_all(destination)?;
                }
                thread::sleep(back_off);
                back_off = (back_off * 2).min(Duration::from_millis(500));
            }
        }
    }
    Err("the keyspace kept changing under 50 checkpoints in a row".into())
}

/// Opens a restored keyspace and checks it holds exactly keys `0..keys`.
fn check_restored(directory: &Path, keys: u64) -> Result<(), Failure> {
    let keyspace = Config::new(directory).open()?;
    let items = keyspace.open_partition("items", PartitionCreateOptions::default())?;
    let mut expected = 0u64;
    for item in items.iter() {
        let (stored_key, stored_value) = item?;
        let number = u64::from_be_bytes(stored_key.as_ref().try_into()?);
        if number != expected || stored_value.as_ref() != value(number).as_slice() {
            return Err(format!(
                "{}: key {number} where key {expected} (with its value) was expected",
                directory.display()
            )
            .into());
        }
        expected += 1;
    }
    if expected != keys {
        return Err(format!(
            "{}: {expected} keys restored, {keys} were acknowledged before the pause",
            directory.display()
        )
        .into());
    }
    Ok(())
}

/// The whole run in `work`: keyspace, repository, generations, restores.
fn run(work: &Path, plan: &Plan) -> Result<Vec<Generation>, Failure> {
    let source = work.join("keyspace");
    let repository = Repository::init_local(work.join("repository"), InitOptions::default())?;
    let keyspace = Config::new(&source).max_write_buffer_size(4 << 20).open()?;
    let items = keyspace.open_partition(
        "items",
        PartitionCreateOptions::default().max_memtable_size(256 << 10),
    )?;
    let writers = Writers::start(&items, plan.writers);
    let mut generations = Vec::new();
    for number in 1..=plan.generations {
        writers.wait_for(number as u64 * plan.writes_between_backups);
        let checkpoint_directory = work.join(format!("checkpoint-{number}"));
        let (keys, pauses) =
            checkpoint_online(&keyspace, &writers, &source, &checkpoint_directory)?;
        let options = BackupOptions {
            immutable_patterns: fjall_classes().immutable,
            source_label: Some(source.clone()),
            database_id: Some("fjall-example-keyspace".to_string()),
            tags: vec![format!("generation-{number}")],
            ..BackupOptions::default()
        };
        let outcome = repository.backup(&checkpoint_directory, &options, &NoProgress)?;
        fs::remove_dir_all(&checkpoint_directory)?;
        generations.push(Generation {
            snapshot: outcome.id.to_hex(),
            keys,
            pauses,
            files_unmodified: outcome.snapshot.stats.files_unmodified,
            bytes_total: outcome.snapshot.stats.bytes_total,
            bytes_added: outcome.snapshot.stats.bytes_added,
        });
    }
    writers.finish()?;
    drop(items);
    drop(keyspace);
    for (number, generation) in generations.iter().enumerate() {
        let target = work.join(format!("restored-{}", number + 1));
        repository.restore(
            &generation.snapshot,
            &target,
            &RestoreOptions::default(),
            &NoProgress,
        )?;
        check_restored(&target, generation.keys)?;
    }
    Ok(generations)
}

fn main() -> Result<(), Failure> {
    let temporary;
    let work = match std::env::args_os().nth(1) {
        Some(directory) => PathBuf::from(directory),
        None => {
            temporary = tempfile::tempdir()?;
            temporary.path().to_path_buf()
        }
    };
    let plan = Plan {
        writers: 4,
        generations: 4,
        writes_between_backups: 200_000,
    };
    let milliseconds = |pause: &Duration| pause.as_secs_f64() * 1000.0;
    for (number, generation) in run(&work, &plan)?.iter().enumerate() {
        let kept = generation.pauses.last().map_or(0.0, milliseconds);
        let total: f64 = generation.pauses.iter().map(milliseconds).sum();
        println!(
            "generation {}: snapshot {}, {} keys; writes paused {kept:.1} ms for the checkpoint kept, {total:.1} ms over {} attempt(s); {} files reused unread, {} of {} bytes new; restored and checked with fjall",
            number + 1,
            &generation.snapshot[..12],
            generation.keys,
            generation.pauses.len(),
            generation.files_unmodified,
            generation.bytes_added,
            generation.bytes_total,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_fjall_keyspace_backs_up_online_and_every_generation_restores_exactly() {
        let work = tempfile::tempdir().unwrap();
        let plan = Plan {
            writers: 2,
            generations: 3,
            writes_between_backups: 20_000,
        };
        let generations = run(work.path(), &plan).unwrap();
        assert_eq!(generations.len(), 3);
        for pair in generations.windows(2) {
            assert!(
                pair[1].keys > pair[0].keys,
                "writes continued between backups"
            );
        }
        assert!(generations[0].keys >= 20_000);
        assert!(generations
            .iter()
            .all(|generation| !generation.pauses.is_empty()));
    }
}
