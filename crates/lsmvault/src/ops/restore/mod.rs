//! Restore ("rehydrate") a snapshot into a directory.
//!
//! Every snapshot is a complete tree, so restore reads one tree and the chunks
//! it names, whatever generation it is: there is no chain to replay.
//!
//! Order of work: the plan (the snapshot's entries under `--include`), the
//! directories (parents first), the files (of each hard-linked group only the
//! first; their content read pack by pack in few large ranges, each chunk
//! once however many files use it: [`contents`]), the hard links, the symlinks, with
//! `--delta` the removal of what the snapshot does not have, directory
//! metadata (writing children changes a directory's mtime), and last one
//! sync of the target's file system ([`sync`]): nothing is reported
//! restored before it is on disk.
//!
//! Invariants:
//! - nothing is written outside the target: tree names are validated when
//!   decoded, new files are created with `O_EXCL` (never through an existing
//!   symlink), and with `--delta` an existing entry of the wrong type is
//!   removed (not followed) before its replacement is created;
//! - every chunk is checked against its id and every file against its
//!   whole-content digest; a file that fails is removed and reported, and the
//!   other files still restore; a hard link is made only to a file whose
//!   entry records the same content (size, digest, chunks): a group member
//!   recording another content is written from its own chunks and reported
//!   as a mismatch naming it, so the restore fails;
//! - memory is bounded whatever the files' sizes: content is read in
//!   ranges of packs, a bounded number of bytes at a time ([`contents`]).

mod contents;
pub mod dry_run;
pub mod point_in_time;
mod ranges;
mod sync;

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use filetime::FileTime;
use rayon::prelude::*;
use serde::Serialize;

use crate::codec::crypto::Keys;
use crate::error::{Error, IoContext, Result};
use crate::format::tree::{EntryKind, Metadata};
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::tree_walker::WalkedEntry;
use crate::repo::Repository;
use contents::{file_digest, Output};
use sync::TargetSync;

pub use contents::{DOWNLOADS_VARIABLE, REMOTE_DOWNLOADS};

/// Options for [`Repository::restore`].
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Keep existing files whose size and digest match; rewrite the rest and
    /// remove entries the snapshot does not have (pgBackRest's `--delta`).
    pub delta: bool,
    /// Restore only the paths these globs select (and everything below
    /// them); each must select something ([`crate::repo::path_pattern`]).
    pub include: Vec<String>,
    /// Leave out the paths these globs select (and everything below them).
    pub exclude: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreStats {
    /// The snapshot restored.
    pub snapshot: Id,
    /// Regular files written (hard links not counted).
    pub files: u64,
    /// Directories created.
    pub directories: u64,
    /// Symbolic links created.
    pub symlinks: u64,
    /// Hard links made to a file restored earlier in the same run.
    pub hard_links: u64,
    /// Bytes of file content written.
    pub bytes_written: u64,
    /// With `--delta`: files already correct in the target, left as they were.
    pub files_kept: u64,
    /// With `--delta`: entries removed because the snapshot does not have them.
    pub entries_removed: u64,
    /// Wall-clock time of the restore.
    pub duration_seconds: f64,
}

/// How the planned files are written: the first entry of each (device,
/// inode) group is written, the others are hard-linked to it afterwards.
struct FilePlan {
    /// Positions in the plan of the files to write.
    files: Vec<usize>,
    /// (position of a link, position of the file it links to).
    links: Vec<(usize, usize)>,
    /// (position, position of the group's first file) of the members of a
    /// hard-link group whose entry records another content than the first:
    /// linking them would give them content other than their recorded
    /// digest, so each is written from its own chunks and reported.
    mismatched: Vec<(usize, usize)>,
}

/// What writing the files did.
#[derive(Default)]
struct FilesWritten {
    /// Files restored (written or kept).
    files: u64,
    /// With `--delta`: files kept as they were.
    kept: u64,
    /// Bytes of content written.
    bytes: u64,
    /// Positions of the files that failed (their links are skipped).
    failed_positions: HashSet<usize>,
    /// Each failed file's path and error.
    failures: Vec<(PathBuf, Error)>,
}

impl Repository {
    /// Restores the snapshot chosen by `selector` (id, prefix, `latest`,
    /// `latest:TAG`) into `target`.
    pub fn restore(
        &self,
        selector: &str,
        target: impl AsRef<Path>,
        options: &RestoreOptions,
        progress: &dyn Progress,
    ) -> Result<RestoreStats> {
        let started = Instant::now();
        let target = target.as_ref();
        // Shared: a concurrent prune must not delete what this restore reads
        // (none on a read-only or full file system, see `lock_for_reading`).
        let _lock = self.lock_for_reading("restore")?;
        let snapshot = self.find_snapshot(selector)?;
        let planned =
            self.walk_selected(&snapshot.snapshot.tree, &options.include, &options.exclude)?;
        let readers = self.readers()?;
        prepare_target(target, options.delta)?;
        let mut sync = TargetSync::open(target)?;
        let mut stats = RestoreStats {
            snapshot: snapshot.id,
            ..RestoreStats::default()
        };
        // Directories first (parents before children), so files can be created in parallel.
        stats.directories = create_directories(target, &planned, options.delta, &mut sync)?;
        let plan = plan_files(&planned);
        let mut written =
            self.restore_files(target, &planned, plan.files, options, readers, progress)?;
        stats.files = written.files;
        stats.files_kept = written.kept;
        stats.bytes_written = written.bytes;
        report_mismatched_links(&planned, &plan.mismatched, &mut written.failures);
        let hard_links = create_hard_links(
            target,
            &planned,
            &plan.links,
            &written.failed_positions,
            options.delta,
        )?;
        stats.hard_links = hard_links;
        stats.files += hard_links;
        stats.symlinks = create_symlinks(target, &planned, options.delta)?;
        // A partial restore leaves what it did not select alone.
        if options.delta && options.include.is_empty() && options.exclude.is_empty() {
            let wanted: HashSet<PathBuf> =
                planned.iter().map(|item| item.relative.clone()).collect();
            stats.entries_removed = remove_extraneous(target, Path::new(""), &wanted)?;
        }
        apply_directory_metadata(target, &planned)?;
        // Durable before it says so, also when some files failed (the
        // others are restored and a rerun with --delta keeps them).
        sync.sync()?;
        stats.duration_seconds = started.elapsed().as_secs_f64();
        incomplete_unless_clean(stats, written.failures)
    }

    /// Writes the files (pack by pack, [`contents`]) and counts them; with `--delta` a file already correct is kept. A file that
    /// fails is removed and recorded; the others still restore.
    fn restore_files(
        &self,
        target: &Path,
        planned: &[WalkedEntry],
        mut files: Vec<usize>,
        options: &RestoreOptions,
        readers: usize,
        progress: &dyn Progress,
    ) -> Result<FilesWritten> {
        // Path order: a chunk's first file in this order gets its error.
        files.sort_by(|&a, &b| planned[a].relative.cmp(&planned[b].relative));
        let total: u64 = files.iter().map(|&file| planned[file].entry.size()).sum();
        progress.start("restoring", total);
        let prepared: Vec<Result<bool>> = files
            .par_iter()
            .map(|&file| {
                let item = &planned[file];
                prepare_file(
                    &target.join(&item.relative),
                    item,
                    options.delta,
                    self.keys(),
                    progress,
                )
            })
            .collect();
        let mut written = FilesWritten::default();
        let mut outputs = Vec::new();
        let mut positions = Vec::new();
        for (&file, prepared) in files.iter().zip(prepared) {
            let item = &planned[file];
            let path = target.join(&item.relative);
            match prepared {
                Ok(true) => {
                    written.files += 1;
                    written.kept += 1;
                }
                Ok(false) => {
                    outputs.push(Output::new(&item.relative, path, &item.entry));
                    positions.push(file);
                }
                Err(error) => {
                    let _ = fs::remove_file(&path);
                    written.failures.push((item.relative.clone(), error));
                    written.failed_positions.insert(file);
                }
            }
        }
        self.write_contents(&outputs, readers, progress)?;
        progress.finish();
        for (output, file) in outputs.into_iter().zip(positions) {
            let (relative, size) = (output.relative.to_path_buf(), output.entry.size());
            match output.into_failure() {
                None => {
                    written.files += 1;
                    written.bytes += size;
                }
                Some(error) => {
                    written.failures.push((relative, error));
                    written.failed_positions.insert(file);
                }
            }
        }
        Ok(written)
    }
}

/// Readies one file to be written: with `delta`, keeps it (returns true)
/// when it already has the entry's size and digest, else removes what is
/// there; then creates it empty (never through a symlink).
fn prepare_file(
    path: &Path,
    item: &WalkedEntry,
    delta: bool,
    keys: &Keys,
    progress: &dyn Progress,
) -> Result<bool> {
    let EntryKind::File { size, digest, .. } = &item.entry.kind else {
        return Ok(true); // only files are planned: nothing to write
    };
    if delta {
        if matches_existing(path, *size, digest, keys) {
            apply_metadata(path, &item.entry.metadata)?;
            progress.advance(*size);
            return Ok(true);
        }
        remove_unless(path, |_| false)?;
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
        .context(|| format!("creating {}", path.display()))?;
    Ok(false)
}

/// Creates the planned directories (parents come before children in the
/// plan); with `delta`, an existing one is kept and anything else in its
/// place removed. Returns how many there are.
fn create_directories(
    target: &Path,
    planned: &[WalkedEntry],
    delta: bool,
    sync: &mut TargetSync,
) -> Result<u64> {
    let mut directories = 0;
    for item in planned {
        if let EntryKind::Directory { .. } = item.entry.kind {
            let path = target.join(&item.relative);
            if delta {
                remove_unless(&path, |stat| stat.is_dir())?;
            }
            match fs::create_dir(&path) {
                Ok(()) => {}
                // An existing directory may be a mount point: its file
                // system is synced too.
                Err(error) if delta && error.kind() == std::io::ErrorKind::AlreadyExists => {
                    sync.add_directory(&path)?;
                }
                Err(error) => return Err(Error::io(format!("creating {}", path.display()), error)),
            }
            directories += 1;
        }
    }
    Ok(directories)
}

/// Sorts the planned files into those to write and hard links to them.
fn plan_files(planned: &[WalkedEntry]) -> FilePlan {
    let mut first_of_inode: HashMap<(u64, u64), usize> = HashMap::new();
    let mut plan = FilePlan {
        files: Vec::new(),
        links: Vec::new(),
        mismatched: Vec::new(),
    };
    for (position, item) in planned.iter().enumerate() {
        if let EntryKind::File { .. } = item.entry.kind {
            let metadata = &item.entry.metadata;
            if metadata.links > 1 {
                let key = (metadata.device, metadata.inode);
                if let Some(&first) = first_of_inode.get(&key) {
                    if same_content(&planned[first].entry.kind, &item.entry.kind) {
                        plan.links.push((position, first));
                        continue;
                    }
                    plan.mismatched.push((position, first));
                    plan.files.push(position);
                    continue;
                }
                first_of_inode.insert(key, position);
            }
            plan.files.push(position);
        }
    }
    plan
}

/// Whether two file entries record the same content (size, digest and chunks).
fn same_content(first: &EntryKind, other: &EntryKind) -> bool {
    match (first, other) {
        (
            EntryKind::File {
                size,
                digest,
                chunks,
            },
            EntryKind::File {
                size: other_size,
                digest: other_digest,
                chunks: other_chunks,
            },
        ) => size == other_size && digest == other_digest && chunks == other_chunks,
        _ => false,
    }
}

/// Adds a failure for each hard-link group member whose entry records
/// another content than the group's first file (a file that changed while
/// the backup read it, or a crafted tree). The member was written from its
/// own chunks (and checked against its own digest), not linked.
fn report_mismatched_links(
    planned: &[WalkedEntry],
    mismatched: &[(usize, usize)],
    failures: &mut Vec<(PathBuf, Error)>,
) {
    for &(position, first) in mismatched {
        let (item, original) = (&planned[position], &planned[first]);
        if failures.iter().any(|(path, _)| *path == item.relative) {
            continue; // already failed on its own content
        }
        let (
            EntryKind::File { size, digest, .. },
            EntryKind::File {
                size: first_size,
                digest: first_digest,
                ..
            },
        ) = (&item.entry.kind, &original.entry.kind)
        else {
            continue;
        };
        failures.push((
            item.relative.clone(),
            Error::ChecksumMismatch {
                object: format!(
                    "hard link {} to {} ({size} bytes recorded, the linked file {first_size}; restored from its own chunks, not linked)",
                    item.relative.display(),
                    original.relative.display()
                ),
                expected: digest.to_hex(),
                actual: first_digest.to_hex(),
            },
        ));
    }
}

/// Links each hard link to its written file (none to a file that failed);
/// returns how many links were made.
fn create_hard_links(
    target: &Path,
    planned: &[WalkedEntry],
    links: &[(usize, usize)],
    failed_positions: &HashSet<usize>,
    delta: bool,
) -> Result<u64> {
    let mut linked = 0;
    for &(position, first) in links {
        if failed_positions.contains(&first) {
            continue;
        }
        let path = target.join(&planned[position].relative);
        let original = target.join(&planned[first].relative);
        if delta {
            remove_unless(&path, |_| false)?;
        }
        fs::hard_link(&original, &path)
            .context(|| format!("linking {} to {}", path.display(), original.display()))?;
        linked += 1;
    }
    Ok(linked)
}

/// Creates the symlinks with their owner and times; returns how many.
fn create_symlinks(target: &Path, planned: &[WalkedEntry], delta: bool) -> Result<u64> {
    let mut symlinks = 0;
    for item in planned {
        if let EntryKind::Symlink { target: link } = &item.entry.kind {
            let path = target.join(&item.relative);
            if delta {
                remove_unless(&path, |_| false)?;
            }
            std::os::unix::fs::symlink(OsStr::from_bytes(link), &path)
                .context(|| format!("creating symlink {}", path.display()))?;
            apply_owner(&path, &item.entry.metadata)?;
            let mtime = file_time(item.entry.metadata.mtime_ns);
            filetime::set_symlink_file_times(&path, mtime, mtime)
                .context(|| format!("setting times of {}", path.display()))?;
            symlinks += 1;
        }
    }
    Ok(symlinks)
}

/// Directory metadata last (writing children changes a directory's mtime),
/// deepest first.
fn apply_directory_metadata(target: &Path, planned: &[WalkedEntry]) -> Result<()> {
    for item in planned.iter().rev() {
        if let EntryKind::Directory { .. } = item.entry.kind {
            let path = target.join(&item.relative);
            apply_metadata(&path, &item.entry.metadata)?;
        }
    }
    Ok(())
}

/// The stats when every file restored; otherwise the error of
/// [`first_failure`].
fn incomplete_unless_clean(
    stats: RestoreStats,
    failures: Vec<(PathBuf, Error)>,
) -> Result<RestoreStats> {
    match first_failure(failures, stats.files) {
        None => Ok(stats),
        Some(error) => Err(error),
    }
}

/// With failed files: an error naming the first failed path (in path
/// order), with its error, and how many failed (`restored` restored).
fn first_failure(mut failures: Vec<(PathBuf, Error)>, restored: u64) -> Option<Error> {
    if failures.is_empty() {
        return None;
    }
    failures.sort_by(|a, b| a.0.cmp(&b.0));
    let failed = failures.len();
    let (path, first) = failures.swap_remove(0);
    Some(Error::RestoreIncomplete {
        failed,
        restored,
        first_path: path,
        first: Box::new(first),
    })
}

/// Creates the target, or checks that it is an empty directory (any directory with `delta`).
fn prepare_target(target: &Path, delta: bool) -> Result<()> {
    if check_target(target, delta)? {
        return Ok(());
    }
    fs::create_dir_all(target).context(|| format!("creating {}", target.display()))
}

/// Whether the target exists; refuses one a restore must not write into
/// (not a directory, or not empty without `delta`). Writes nothing.
fn check_target(target: &Path, delta: bool) -> Result<bool> {
    match fs::symlink_metadata(target) {
        Ok(stat) if stat.is_dir() => {
            let mut listing =
                fs::read_dir(target).context(|| format!("listing {}", target.display()))?;
            if !delta && listing.next().is_some() {
                return Err(Error::TargetNotEmpty {
                    path: target.to_path_buf(),
                });
            }
            Ok(true)
        }
        Ok(_) => Err(Error::TargetNotEmpty {
            path: target.to_path_buf(),
        }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(Error::io(format!("inspecting {}", target.display()), error)),
    }
}

/// Removes whatever is at `path` (without following symlinks) unless `keep` accepts it.
fn remove_unless(path: &Path, keep: impl Fn(&fs::Metadata) -> bool) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(stat) if keep(&stat) => Ok(()),
        Ok(stat) if stat.is_dir() => {
            fs::remove_dir_all(path).context(|| format!("removing {}", path.display()))
        }
        Ok(_) => fs::remove_file(path).context(|| format!("removing {}", path.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(Error::io(format!("inspecting {}", path.display()), error)),
    }
}

/// Whether a regular file (not a symlink) at `path` has this size and digest.
fn matches_existing(path: &Path, size: u64, digest: &Id, keys: &Keys) -> bool {
    let Ok(stat) = fs::symlink_metadata(path) else {
        return false;
    };
    if !stat.is_file() || stat.len() != size {
        return false;
    }
    matches!(file_digest(path, keys), Ok((length, actual)) if length == size && actual == *digest)
}

/// Removes entries under `target` that the snapshot does not have; returns how many.
fn remove_extraneous(target: &Path, relative: &Path, wanted: &HashSet<PathBuf>) -> Result<u64> {
    let directory = target.join(relative);
    let mut removed = 0;
    for item in fs::read_dir(&directory).context(|| format!("listing {}", directory.display()))? {
        let item = item.context(|| format!("listing {}", directory.display()))?;
        let child = relative.join(item.file_name());
        let is_directory = item.file_type().map(|kind| kind.is_dir()).unwrap_or(false);
        if !wanted.contains(&child) {
            remove_unless(&target.join(&child), |_| false)?;
            removed += 1;
        } else if is_directory {
            removed += remove_extraneous(target, &child, wanted)?;
        }
    }
    Ok(removed)
}

pub(super) fn file_time(nanoseconds: i64) -> FileTime {
    FileTime::from_unix_time(
        nanoseconds.div_euclid(1_000_000_000),
        nanoseconds.rem_euclid(1_000_000_000) as u32,
    )
}

/// Restores owner (when running as root), permission bits and mtime.
pub(super) fn apply_metadata(path: &Path, metadata: &Metadata) -> Result<()> {
    apply_owner(path, metadata)?;
    fs::set_permissions(path, fs::Permissions::from_mode(metadata.mode & 0o7777))
        .context(|| format!("setting permissions of {}", path.display()))?;
    let mtime = file_time(metadata.mtime_ns);
    filetime::set_file_times(path, mtime, mtime)
        .context(|| format!("setting times of {}", path.display()))
}

fn apply_owner(path: &Path, metadata: &Metadata) -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::lchown(path, Some(metadata.uid), Some(metadata.gid))
            .context(|| format!("setting owner of {}", path.display()))?;
    }
    Ok(())
}
