//! `restore --dry-run`: what a restore would write, keep and remove, and how
//! long it would take (ThemisDB's "recovery time estimation").
//!
//! The plan is the real restore's plan (same selection, same hard-link
//! grouping, same `--delta` comparison against the target's files), and a
//! target the real restore would refuse is refused the same way. The
//! estimate is measured now (see [`measure`]): reading (decoding, checking)
//! a sample of the very chunks the restore needs, in parallel as the
//! restore reads them; writing and fsyncing a sample file on the target's
//! file system; and creating small files there as the restore creates each
//! file (with the metadata of a file to restore), and the sync at the end. Bytes go at the slower of
//! the two throughputs, and each file adds its measured cost.
//!
//! A chunk of the sample that fails to read marks the files that need it
//! `damaged` (as does a chunk of any file that no index lists): the plan
//! still lists everything, and [`RestorePlan::take_failure`] gives the error
//! the real restore would end with, naming the first such file. Damage in
//! chunks outside the sample is not seen (`verify --read-data` reads all).
//!
//! Invariant: nothing is written into the target. No sample has a name
//! in it (see [`measure`]); files the target already holds are only read
//! (with `--delta`, to compare them).

pub mod measure;

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::{check_target, first_failure, matches_existing, plan_files, RestoreOptions};
use crate::error::{Error, IoContext, Result};
use crate::format::tree::EntryKind;
use crate::id::Id;
use crate::repo::file_content::naming_file;
use crate::repo::tree_walker::WalkedEntry;
use crate::repo::Repository;
use measure::{measure_file_cost, measure_write, throughput, SampleDirectory};
pub use measure::{FileCost, Throughput, FILE_SAMPLE_COUNT, WRITE_SAMPLE_BYTES};

/// Raw bytes of chunks read to measure the repository's read throughput (at most).
pub const READ_SAMPLE_BYTES: u64 = 64 << 20;

/// One file of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Path relative to the target.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// `write` (new), `rewrite` (with `--delta`: something else is there),
    /// `keep` (with `--delta`: already identical), `link` (a hard link to
    /// a file written earlier in the restore) or `damaged` (a chunk it
    /// needs could not be read: the restore would fail on it, and make no
    /// hard link to it).
    pub action: &'static str,
    /// For a `damaged` file: what is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What a restore would do, and how long it would take.
#[derive(Debug, Serialize)]
pub struct RestorePlan {
    /// The snapshot that would be restored.
    pub snapshot: Id,
    /// The target as given.
    pub target: PathBuf,
    /// Whether the target exists now.
    pub target_exists: bool,
    /// Every regular file of the selection, in path order.
    pub files: Vec<PlannedFile>,
    /// With `--delta` (and no `--include`/`--exclude`): entries of the
    /// target that the snapshot does not have, which would be removed.
    pub removed: Vec<String>,
    /// Directories and symlinks that would be created (or kept).
    pub directories: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Files written (new or rewritten) and their bytes.
    pub files_to_write: u64,
    /// Bytes of the files to write: what the estimate is for.
    pub bytes_to_write: u64,
    /// With `--delta`: files already identical in the target.
    pub files_kept: u64,
    /// Hard links to files written earlier in the restore.
    pub hard_links: u64,
    /// Files (and hard links to them) the restore would fail on: a chunk
    /// they need could not be read. Not in `files_to_write` nor the estimate.
    pub files_damaged: u64,
    /// The repository's measured read throughput (chunks read, decoded,
    /// checked; damaged ones left out).
    pub read: Throughput,
    /// The target file system's measured write throughput (written and fsynced).
    pub write: Throughput,
    /// The measured cost of each file beyond its bytes (create, metadata, sync).
    pub per_file: FileCost,
    /// What the byte part of the estimate is bound by: `read` or `write`
    /// (the slower path, for all bytes), or `largest_file` (within one file
    /// a restore reads a window of chunks, then writes it: the largest file
    /// alone takes its read time plus its write time, and dominates a
    /// restore of few files).
    pub bottleneck: &'static str,
    /// Estimated seconds: the planning, plus all bytes at the slower
    /// throughput or the largest file read then written, whichever is
    /// longer, plus the files to write times the cost of one, plus one sync.
    pub estimated_seconds: f64,
    /// What this dry run took to select the snapshot, walk its tree and
    /// compare with the target (hashing its files with `--delta`): work the
    /// restore repeats before it writes.
    pub planning_seconds: f64,
    /// The error the real restore would end with (see [`Self::take_failure`]).
    #[serde(skip)]
    failures: Vec<(PathBuf, Error)>,
}

/// The chunks that failed to read, with their errors.
type DamagedChunks = HashMap<Id, Error>;

impl RestorePlan {
    /// The error the real restore would end with when files are damaged
    /// (`RestoreIncomplete` naming the first in path order, with that
    /// file's error and exit code); `None` when every file would restore.
    /// Given once: the plan keeps no copy.
    pub fn take_failure(&mut self) -> Option<Error> {
        let restored = self.files_to_write + self.files_kept + self.hard_links;
        first_failure(std::mem::take(&mut self.failures), restored)
    }
}

impl Repository {
    /// Plans the restore of the snapshot chosen by `selector` into `target`
    /// without writing into the target, and estimates its duration from
    /// costs measured now (see the module documentation).
    pub fn restore_plan(
        &self,
        selector: &str,
        target: impl AsRef<Path>,
        options: &RestoreOptions,
    ) -> Result<RestorePlan> {
        let started = Instant::now();
        let target = target.as_ref();
        let _lock = self.lock_for_reading("restore --dry-run")?;
        let snapshot = self.find_snapshot(selector)?;
        let planned =
            self.walk_selected(&snapshot.snapshot.tree, &options.include, &options.exclude)?;
        let target_exists = check_target(target, options.delta)?;
        let (mut files, to_write) = self.classify_files(target, &planned, options.delta);
        let removed = planned_removals(target, target_exists, &planned, options)?;
        // The restore does all this again (with --delta, hashing the files
        // already there too).
        let planning_seconds = started.elapsed().as_secs_f64();
        let (read, damaged) = self.measure_read(&planned, &to_write)?;
        let failures = mark_damaged(target, &planned, &mut files, damaged);
        let damaged: HashSet<&Path> = failures.iter().map(|(path, _)| path.as_path()).collect();
        let to_write: Vec<usize> = to_write
            .into_iter()
            .filter(|&file| !damaged.contains(planned[file].relative.as_path()))
            .collect();
        let samples = SampleDirectory::new(target, target_exists)?;
        let write = measure_write(&samples)?;
        let per_file = measure_per_file(&samples, &planned, &to_write);
        let (bottleneck, data_seconds) = estimate(&planned, &to_write, &read, &write, &per_file);
        let estimated_seconds = planning_seconds + data_seconds;
        let count = |kind: &str| files.iter().filter(|file| file.action == kind).count() as u64;
        Ok(RestorePlan {
            snapshot: snapshot.id,
            target: target.to_path_buf(),
            target_exists,
            directories: count_entries(&planned, true),
            symlinks: count_entries(&planned, false),
            files_to_write: count("write") + count("rewrite"),
            bytes_to_write: to_write
                .iter()
                .map(|&file| planned[file].entry.size())
                .sum(),
            files_kept: count("keep"),
            hard_links: count("link"),
            files_damaged: count("damaged"),
            files,
            removed,
            estimated_seconds,
            planning_seconds,
            read,
            write,
            per_file,
            bottleneck,
            failures,
        })
    }

    /// Each planned file with what the restore would do to it, in path
    /// order, and the positions of the files it would write.
    fn classify_files(
        &self,
        target: &Path,
        planned: &[WalkedEntry],
        delta: bool,
    ) -> (Vec<PlannedFile>, Vec<usize>) {
        let plan = plan_files(planned);
        let linked: HashSet<usize> = plan.links.iter().map(|&(link, _)| link).collect();
        let mut files = Vec::new();
        let mut to_write = Vec::new();
        for (position, item) in planned.iter().enumerate() {
            let EntryKind::File { size, digest, .. } = &item.entry.kind else {
                continue;
            };
            let path = target.join(&item.relative);
            let action = if linked.contains(&position) {
                "link"
            } else if delta && matches_existing(&path, *size, digest, self.keys()) {
                "keep"
            } else if delta && fs::symlink_metadata(&path).is_ok() {
                "rewrite"
            } else {
                "write"
            };
            if matches!(action, "write" | "rewrite") {
                to_write.push(position);
            }
            files.push(PlannedFile {
                path: item.relative.display().to_string(),
                size: *size,
                action,
                problem: None,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        (files, to_write)
    }

    /// Reads (decodes, checks) up to [`READ_SAMPLE_BYTES`] of the distinct
    /// chunks the files to write need, in parallel as a restore does, and
    /// times the chunks that read. Returns the throughput and the chunks
    /// that failed: of the sample, and any chunk no index lists.
    fn measure_read(
        &self,
        planned: &[WalkedEntry],
        to_write: &[usize],
    ) -> Result<(Throughput, DamagedChunks)> {
        let (sample, unindexed) = self.read_sample(planned, to_write)?;
        let started = Instant::now();
        let outcomes: Vec<(Id, Result<u64>)> = sample
            .par_iter()
            .map(|chunk| (*chunk, self.read_blob(chunk).map(|blob| blob.len() as u64)))
            .collect();
        let seconds = started.elapsed().as_secs_f64();
        let mut damaged = DamagedChunks::new();
        let mut bytes = 0;
        let mut read = 0;
        for (chunk, outcome) in outcomes {
            match outcome {
                Ok(length) => {
                    bytes += length;
                    read += 1;
                }
                Err(error) => {
                    damaged.insert(chunk, error);
                }
            }
        }
        for chunk in unindexed {
            if let Err(error) = self.read_blob(&chunk) {
                damaged.insert(chunk, error);
            }
        }
        let what = format!("{read} chunk(s) of the repository");
        Ok((throughput(what, bytes, seconds), damaged))
    }

    /// The distinct chunks to read as the sample (up to
    /// [`READ_SAMPLE_BYTES`]), and the chunks beyond it that no index lists.
    fn read_sample(
        &self,
        planned: &[WalkedEntry],
        to_write: &[usize],
    ) -> Result<(Vec<Id>, Vec<Id>)> {
        let index = self.index()?;
        let mut seen = HashSet::new();
        let (mut sample, mut unindexed) = (Vec::new(), Vec::new());
        let mut sampled_bytes = 0u64;
        for &file in to_write {
            let EntryKind::File { chunks, .. } = &planned[file].entry.kind else {
                continue;
            };
            for chunk in chunks {
                if !seen.insert(*chunk) {
                    continue;
                }
                match index.get(chunk) {
                    None => unindexed.push(*chunk),
                    Some(_) if sampled_bytes >= READ_SAMPLE_BYTES => {}
                    Some(location) => {
                        sample.push(*chunk);
                        sampled_bytes += u64::from(location.entry.raw_length);
                    }
                }
            }
        }
        Ok((sample, unindexed))
    }
}

/// Directories (`true`) or symlinks (`false`) of the plan.
fn count_entries(planned: &[WalkedEntry], directories: bool) -> u64 {
    planned
        .iter()
        .filter(|item| match item.entry.kind {
            EntryKind::Directory { .. } => directories,
            EntryKind::Symlink { .. } => !directories,
            EntryKind::File { .. } => false,
        })
        .count() as u64
}

/// The cost of each file, measured with the metadata of the first file to
/// write (nothing to measure without one). Where the sample cannot be made,
/// the per-file part is left out of the estimate, and says why.
fn measure_per_file(
    samples: &SampleDirectory,
    planned: &[WalkedEntry],
    to_write: &[usize],
) -> FileCost {
    match to_write.first() {
        Some(&file) => measure_file_cost(samples, &planned[file].entry.metadata)
            .unwrap_or_else(|error| FileCost::unmeasured(format!("not measured: {error}"))),
        None => FileCost::unmeasured("nothing to write".to_string()),
    }
}

/// With `--delta` (and no `--include`/`--exclude`) into an existing target:
/// the entries the restore would remove.
fn planned_removals(
    target: &Path,
    target_exists: bool,
    planned: &[WalkedEntry],
    options: &RestoreOptions,
) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    if target_exists && options.delta && options.include.is_empty() && options.exclude.is_empty() {
        let wanted: HashSet<PathBuf> = planned.iter().map(|item| item.relative.clone()).collect();
        list_extraneous(target, Path::new(""), &wanted, &mut removed)?;
    }
    Ok(removed)
}

/// Marks `damaged` each file to write that needs a damaged chunk (and the
/// hard links to it), with the error the restore would report for it;
/// returns those errors by relative path (links left out, as the restore
/// leaves them out). Files are taken in the restore's path order, so the
/// first (whose error the restore ends with) gets its chunk's own error; a
/// later file needing the same chunk gets one that names it.
fn mark_damaged(
    target: &Path,
    planned: &[WalkedEntry],
    files: &mut [PlannedFile],
    mut damaged: DamagedChunks,
) -> Vec<(PathBuf, Error)> {
    let mut failures = Vec::new();
    if damaged.is_empty() {
        return failures;
    }
    let by_path: HashMap<String, usize> = files
        .iter()
        .enumerate()
        .map(|(number, file)| (file.path.clone(), number))
        .collect();
    let listed = |position: usize| by_path.get(&planned[position].relative.display().to_string());
    let mut positions: Vec<usize> = (0..planned.len()).collect();
    positions.sort_by(|&a, &b| planned[a].relative.cmp(&planned[b].relative));
    let mut first_user: HashMap<Id, PathBuf> = HashMap::new();
    let mut failed = HashSet::new();
    for position in positions {
        let item = &planned[position];
        let (EntryKind::File { chunks, .. }, Some(&number)) = (&item.entry.kind, listed(position))
        else {
            continue;
        };
        if !matches!(files[number].action, "write" | "rewrite") {
            continue;
        }
        let Some((chunk_number, chunk)) = chunks
            .iter()
            .enumerate()
            .find(|(_, chunk)| damaged.contains_key(*chunk) || first_user.contains_key(*chunk))
        else {
            continue;
        };
        let file = format!("restored file {}", target.join(&item.relative).display());
        let error = match damaged.remove(chunk) {
            Some(error) => naming_file(error, &file, chunk_number, chunks.len()),
            None => Error::CorruptObject {
                object: format!(
                    "blob {chunk} (chunk {} of {} of {file})",
                    chunk_number + 1,
                    chunks.len()
                ),
                reason: format!("could not be read (see {})", first_user[chunk].display()),
            },
        };
        first_user
            .entry(*chunk)
            .or_insert_with(|| item.relative.clone());
        files[number].action = "damaged";
        files[number].problem = Some(error.to_string());
        failed.insert(position);
        failures.push((item.relative.clone(), error));
    }
    for (link, first) in plan_files(planned).links {
        if let (true, Some(&number)) = (failed.contains(&first), listed(link)) {
            files[number].action = "damaged";
            files[number].problem = Some(format!(
                "hard link to {}, which is damaged",
                planned[first].relative.display()
            ));
        }
    }
    failures
}

/// The estimate and what bounds its byte part (see [`RestorePlan::bottleneck`]).
fn estimate(
    planned: &[WalkedEntry],
    to_write: &[usize],
    read: &Throughput,
    write: &Throughput,
    per_file: &FileCost,
) -> (&'static str, f64) {
    let seconds = |bytes: u64, rate: f64| if rate > 0.0 { bytes as f64 / rate } else { 0.0 };
    let sizes = || to_write.iter().map(|&file| planned[file].entry.size());
    let (total, largest) = (sizes().sum::<u64>(), sizes().max().unwrap_or(0));
    // Nothing read (only empty files, or none): reading is no bottleneck.
    let read_rate = if read.bytes > 0 {
        read.bytes_per_second
    } else {
        f64::MAX
    };
    let (path, rate) = if read_rate <= write.bytes_per_second {
        ("read", read_rate)
    } else {
        ("write", write.bytes_per_second)
    };
    let all = seconds(total, rate);
    let serial = seconds(largest, read_rate) + seconds(largest, write.bytes_per_second);
    let files = to_write.len() as f64 * per_file.seconds_per_file + per_file.sync_seconds;
    if serial > all {
        ("largest_file", serial + files)
    } else {
        (path, all + files)
    }
}

/// Adds the entries under `target` that the snapshot does not have (what a
/// delta restore would remove), without removing anything.
fn list_extraneous(
    target: &Path,
    relative: &Path,
    wanted: &HashSet<PathBuf>,
    removed: &mut Vec<String>,
) -> Result<()> {
    let directory = target.join(relative);
    let mut children: Vec<_> = fs::read_dir(&directory)
        .context(|| format!("listing {}", directory.display()))?
        .collect::<std::io::Result<_>>()
        .context(|| format!("listing {}", directory.display()))?;
    children.sort_by_key(|item| item.file_name());
    for item in children {
        let child = relative.join(item.file_name());
        let is_directory = item.file_type().map(|kind| kind.is_dir()).unwrap_or(false);
        if !wanted.contains(&child) {
            removed.push(child.display().to_string());
        } else if is_directory {
            list_extraneous(target, &child, wanted, removed)?;
        }
    }
    Ok(())
}
