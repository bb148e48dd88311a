//! `restore --dry-run`: what a restore would write, keep and remove, and how
//! long it would take (ThemisDB's "recovery time estimation").
//!
//! The plan is the real restore's plan (same selection, same hard-link
//! grouping, same `--delta` comparison against the target's files), and a
//! target the real restore would refuse is refused the same way. The
//! estimate divides the bytes to write by the slower of two throughputs
//! measured now: reading (and decoding, checking) a sample of the very
//! chunks the restore needs, in parallel as the restore reads them, and
//! writing and fsyncing a sample file on the target's file system.
//!
//! Invariant: nothing is written into the target. The write sample is an
//! unnamed file (`O_TMPFILE`) on the target's file system, never an entry of
//! the target (see [`measure_write`]); files the target already holds are
//! only read (with `--delta`, to compare them).

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::{check_target, matches_existing, plan_files, RestoreOptions};
use crate::codec::crypto::random_bytes;
use crate::error::{Error, IoContext, Result};
use crate::format::tree::EntryKind;
use crate::id::Id;
use crate::repo::tree_walker::WalkedEntry;
use crate::repo::Repository;

/// Raw bytes of chunks read to measure the repository's read throughput (at most).
pub const READ_SAMPLE_BYTES: u64 = 64 << 20;
/// Bytes written and fsynced to measure the target's write throughput.
pub const WRITE_SAMPLE_BYTES: u64 = 16 << 20;

/// One file of the plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedFile {
    /// Path relative to the target.
    pub path: String,
    /// File size in bytes.
    pub size: u64,
    /// `write` (new), `rewrite` (with `--delta`: something else is there),
    /// `keep` (with `--delta`: already identical) or `link` (a hard link to
    /// a file written earlier in the restore).
    pub action: &'static str,
}

/// One throughput measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    /// What was measured, e.g. the directory the write sample went into.
    pub what: String,
    /// Bytes moved.
    pub bytes: u64,
    /// Wall-clock time it took.
    pub seconds: f64,
    /// `bytes / seconds`.
    pub bytes_per_second: f64,
}

/// What a restore would do, and how long it would take.
#[derive(Debug, Clone, Serialize)]
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
    /// The repository's measured read throughput (chunks read, decoded, checked).
    pub read: Throughput,
    /// The target file system's measured write throughput (written and fsynced).
    pub write: Throughput,
    /// What the estimate is bound by: `read` or `write` (the slower path,
    /// for all bytes), or `largest_file` (within one file a restore reads a
    /// window of chunks, then writes it: the largest file alone takes its
    /// read time plus its write time, and dominates a restore of few files).
    pub bottleneck: &'static str,
    /// Estimated seconds: all bytes at the slower throughput, or the
    /// largest file read then written, whichever is longer.
    pub estimated_seconds: f64,
}

impl Repository {
    /// Plans the restore of the snapshot chosen by `selector` into `target`
    /// without writing into the target, and estimates its duration from
    /// throughputs measured now (see the module documentation).
    pub fn restore_plan(
        &self,
        selector: &str,
        target: impl AsRef<Path>,
        options: &RestoreOptions,
    ) -> Result<RestorePlan> {
        let target = target.as_ref();
        let _lock = self.lock_for_reading("restore --dry-run")?;
        let snapshot = self.find_snapshot(selector)?;
        let planned =
            self.walk_selected(&snapshot.snapshot.tree, &options.include, &options.exclude)?;
        let target_exists = check_target(target, options.delta)?;
        let (files, to_write) = self.classify_files(target, &planned, options.delta);
        let removed = if target_exists
            && options.delta
            && options.include.is_empty()
            && options.exclude.is_empty()
        {
            let wanted: HashSet<PathBuf> =
                planned.iter().map(|item| item.relative.clone()).collect();
            let mut removed = Vec::new();
            list_extraneous(target, Path::new(""), &wanted, &mut removed)?;
            removed
        } else {
            Vec::new()
        };
        let bytes_to_write: u64 = to_write
            .iter()
            .map(|&file| planned[file].entry.size())
            .sum();
        let read = self.measure_read(&planned, &to_write)?;
        let write = measure_write(target, target_exists)?;
        // Nothing to read (only empty files, or none): reading is no bottleneck.
        let (bottleneck, estimated_seconds) = estimate(&planned, &to_write, &read, &write);
        let count = |kind: &str| files.iter().filter(|file| file.action == kind).count() as u64;
        Ok(RestorePlan {
            snapshot: snapshot.id,
            target: target.to_path_buf(),
            target_exists,
            directories: planned
                .iter()
                .filter(|item| matches!(item.entry.kind, EntryKind::Directory { .. }))
                .count() as u64,
            symlinks: planned
                .iter()
                .filter(|item| matches!(item.entry.kind, EntryKind::Symlink { .. }))
                .count() as u64,
            files_to_write: count("write") + count("rewrite"),
            files_kept: count("keep"),
            hard_links: count("link"),
            files,
            removed,
            bytes_to_write,
            estimated_seconds,
            read,
            write,
            bottleneck,
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
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        (files, to_write)
    }

    /// Reads (decodes, checks) up to [`READ_SAMPLE_BYTES`] of the distinct
    /// chunks the files to write need, in parallel as a restore does.
    fn measure_read(&self, planned: &[WalkedEntry], to_write: &[usize]) -> Result<Throughput> {
        let index = self.index()?;
        let mut seen = HashSet::new();
        let mut sample = Vec::new();
        let mut planned_bytes = 0u64;
        'files: for &file in to_write {
            if let EntryKind::File { chunks, .. } = &planned[file].entry.kind {
                for chunk in chunks {
                    if planned_bytes >= READ_SAMPLE_BYTES {
                        break 'files;
                    }
                    if seen.insert(*chunk) {
                        sample.push(*chunk);
                        planned_bytes += index
                            .get(chunk)
                            .map_or(0, |location| u64::from(location.entry.raw_length));
                    }
                }
            }
        }
        let started = Instant::now();
        let bytes: u64 = sample
            .par_iter()
            .map(|chunk| self.read_blob(chunk).map(|blob| blob.len() as u64))
            .collect::<Result<Vec<u64>>>()?
            .iter()
            .sum();
        let seconds = started.elapsed().as_secs_f64();
        Ok(throughput(
            format!("{} chunk(s) of the repository", sample.len()),
            bytes,
            seconds,
        ))
    }
}

/// The estimate and what bounds it (see [`RestorePlan::bottleneck`]).
fn estimate(
    planned: &[WalkedEntry],
    to_write: &[usize],
    read: &Throughput,
    write: &Throughput,
) -> (&'static str, f64) {
    let seconds = |bytes: u64, rate: f64| if rate > 0.0 { bytes as f64 / rate } else { 0.0 };
    let total: u64 = to_write
        .iter()
        .map(|&file| planned[file].entry.size())
        .sum();
    let largest = to_write
        .iter()
        .map(|&file| planned[file].entry.size())
        .max()
        .unwrap_or(0);
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
    if serial > all {
        ("largest_file", serial)
    } else {
        (path, all)
    }
}

fn throughput(what: String, bytes: u64, seconds: f64) -> Throughput {
    Throughput {
        what,
        bytes,
        seconds,
        // A microsecond at least: a sample too fast to time is not infinitely fast.
        bytes_per_second: bytes as f64 / seconds.max(1e-6),
    }
}

/// The nearest existing ancestor of the target (not the target itself).
fn nearest_ancestor(target: &Path) -> Result<PathBuf> {
    let absolute =
        std::path::absolute(target).context(|| format!("resolving {}", target.display()))?;
    Ok(absolute
        .ancestors()
        .skip(1)
        .find(|path| path.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf())
}

/// Writes and fsyncs [`WRITE_SAMPLE_BYTES`] into an unnamed file on the
/// target's file system and times it. The file never has a name in the
/// target: an existing target gets an `O_TMPFILE` inode (no directory entry,
/// the directory's mtime unchanged); otherwise, or where `O_TMPFILE` is not
/// supported, the nearest existing ancestor gets one (or a named file
/// unlinked as soon as it is open), so nothing is left behind even if the
/// process is killed meanwhile.
fn measure_write(target: &Path, target_exists: bool) -> Result<Throughput> {
    let ancestor = nearest_ancestor(target)?;
    let in_target = if target_exists {
        tmpfile(target)
            .ok()
            .map(|file| (file, target.to_path_buf()))
    } else {
        None
    };
    let failed = |directory: &Path, error: std::io::Error| {
        Error::io(
            format!(
                "writing a {} MiB sample into {} to measure its write throughput",
                WRITE_SAMPLE_BYTES >> 20,
                directory.display()
            ),
            error,
        )
    };
    let mut block = vec![0u8; 1 << 20];
    random_bytes(&mut block)?;
    let started = Instant::now();
    let (mut file, directory) = match in_target {
        Some(opened) => opened,
        None => match unnamed_file(&ancestor) {
            Ok(file) => (file, ancestor),
            Err(error) => return Err(failed(&ancestor, error)),
        },
    };
    let failed = |error| failed(&directory, error);
    let mut written = 0;
    while written < WRITE_SAMPLE_BYTES {
        file.write_all(&block).map_err(failed)?;
        written += block.len() as u64;
    }
    file.sync_all().map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(throughput(
        format!(
            "{} (unnamed file, written and fsynced)",
            directory.display()
        ),
        WRITE_SAMPLE_BYTES,
        seconds,
    ))
}

/// An `O_TMPFILE` inode on `directory`'s file system: no name, no entry.
fn tmpfile(directory: &Path) -> std::io::Result<fs::File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_TMPFILE)
        .mode(0o600)
        .open(directory)
}

/// A new file in `directory` that has no name.
fn unnamed_file(directory: &Path) -> std::io::Result<fs::File> {
    match tmpfile(directory) {
        Ok(file) => Ok(file),
        // EOPNOTSUPP / EISDIR: the file system (or kernel) has no O_TMPFILE.
        Err(error) if error.kind() != std::io::ErrorKind::PermissionDenied => {
            let mut suffix = [0u8; 8];
            random_bytes(&mut suffix).map_err(std::io::Error::other)?;
            let name = format!(
                ".lsmvault-dry-run-{}-{}",
                std::process::id(),
                suffix
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            );
            let path = directory.join(name);
            let file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            fs::remove_file(&path)?;
            Ok(file)
        }
        Err(error) => Err(error),
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
