//! The samples `restore --dry-run` times on the target's file system: a
//! large write (bytes per second, written and fsynced) and a batch of small
//! files (seconds per file: create, write, metadata as the restore does
//! them; then one sync, as the restore's).
//!
//! Invariants: no sample ever has a name in the target. The large write is
//! an unnamed file (`O_TMPFILE`: no directory entry, the directory's mtime
//! unchanged), in the target when it exists, else in its nearest existing
//! ancestor (where `O_TMPFILE` is not supported, a named file there that is
//! unlinked as soon as it is open), as are the small files of the per-file
//! cost, so nothing is left behind even if the process is killed meanwhile.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::super::file_time;
use crate::codec::crypto::random_bytes;
use crate::error::{Error, IoContext, Result};
use crate::format::tree::Metadata;

/// Bytes written and fsynced to measure the target's write throughput.
pub const WRITE_SAMPLE_BYTES: u64 = 16 << 20;
/// Small files created to measure the cost of one file.
pub const FILE_SAMPLE_COUNT: usize = 64;
/// Size of each small sample file.
const FILE_SAMPLE_BYTES: usize = 4096;

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

/// The measured cost of the restored files beyond their bytes.
#[derive(Debug, Clone, Serialize)]
pub struct FileCost {
    /// Where the sample files were created.
    pub what: String,
    /// How many sample files.
    pub files: u64,
    /// Wall-clock time to create, write and set up the sample files.
    pub seconds: f64,
    /// `seconds / files`: what each file adds to a restore.
    pub seconds_per_file: f64,
    /// Wall-clock time of the one `syncfs` after them: a restore syncs once
    /// at its end, so this counts once, not per file (it is mostly the
    /// file system's journal commit, and other writers' dirty data).
    pub sync_seconds: f64,
}

impl FileCost {
    /// Nothing measured (`why`), nothing added to the estimate.
    pub(super) fn unmeasured(why: String) -> Self {
        FileCost {
            what: why,
            files: 0,
            seconds: 0.0,
            seconds_per_file: 0.0,
            sync_seconds: 0.0,
        }
    }
}

pub(super) fn throughput(what: String, bytes: u64, seconds: f64) -> Throughput {
    Throughput {
        what,
        bytes,
        seconds,
        // A microsecond at least: a sample too fast to time is not infinitely fast.
        bytes_per_second: bytes as f64 / seconds.max(1e-6),
    }
}

/// Where samples go: the target when it exists and takes `O_TMPFILE`,
/// otherwise the nearest existing ancestor.
pub(super) struct SampleDirectory {
    target: Option<PathBuf>,
    /// The nearest existing ancestor of the target (not the target).
    ancestor: PathBuf,
}

impl SampleDirectory {
    pub(super) fn new(target: &Path, target_exists: bool) -> Result<Self> {
        let in_target = target_exists && tmpfile(target).is_ok();
        Ok(SampleDirectory {
            target: in_target.then(|| target.to_path_buf()),
            ancestor: nearest_ancestor(target)?,
        })
    }

    fn directory(&self) -> &Path {
        self.target.as_deref().unwrap_or(&self.ancestor)
    }

    /// A new file without a name in the sample directory.
    fn open(&self) -> std::io::Result<File> {
        match &self.target {
            Some(target) => tmpfile(target),
            None => unnamed_file(&self.ancestor),
        }
    }

    fn failed(&self, what: &str, error: std::io::Error) -> Error {
        Error::io(
            format!("{what} in {} to measure it", self.directory().display()),
            error,
        )
    }
}

/// Writes and fsyncs [`WRITE_SAMPLE_BYTES`] into an unnamed file and times it.
pub(super) fn measure_write(samples: &SampleDirectory) -> Result<Throughput> {
    let failed = |error| {
        samples.failed(
            &format!("writing a {} MiB sample", WRITE_SAMPLE_BYTES >> 20),
            error,
        )
    };
    let mut block = vec![0u8; 1 << 20];
    random_bytes(&mut block)?;
    let started = Instant::now();
    let mut file = samples.open().map_err(failed)?;
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
            samples.directory().display()
        ),
        WRITE_SAMPLE_BYTES,
        seconds,
    ))
}

/// Creates [`FILE_SAMPLE_COUNT`] small unnamed files in parallel, as a
/// restore writes its files, in the sample directory (the target itself
/// when it exists: a new file's cost depends much on the directory it is
/// created in, see docs/benchmarks.md): each created, written and given
/// `metadata` as [`apply_metadata`](super::super::apply_metadata) gives it (owner when root, mode, times;
/// through the descriptor, the file having no name), and times that; then
/// syncs the file system once (as the restore does at its end) and times
/// that apart. Not measured: the directory entry a real file gets.
pub(super) fn measure_file_cost(
    samples: &SampleDirectory,
    metadata: &Metadata,
) -> Result<FileCost> {
    let failed = |error| samples.failed("creating small sample files", error);
    let mut content = vec![0u8; FILE_SAMPLE_BYTES];
    random_bytes(&mut content)?;
    let started = Instant::now();
    // Kept open until synced: an unnamed file is freed when closed.
    let files: Vec<File> = (0..FILE_SAMPLE_COUNT)
        .into_par_iter()
        .map(|_| sample_file(samples, &content, metadata))
        .collect::<std::io::Result<_>>()
        .map_err(failed)?;
    let seconds = started.elapsed().as_secs_f64();
    let syncing = Instant::now();
    if let Some(file) = files.first() {
        nix::unistd::syncfs(file.as_raw_fd()).map_err(|errno| failed(errno.into()))?;
    }
    let sync_seconds = syncing.elapsed().as_secs_f64();
    drop(files);
    Ok(FileCost {
        what: format!(
            "{} ({FILE_SAMPLE_COUNT} unnamed {FILE_SAMPLE_BYTES}-byte files, then synced)",
            samples.directory().display()
        ),
        files: FILE_SAMPLE_COUNT as u64,
        seconds,
        seconds_per_file: seconds / FILE_SAMPLE_COUNT as f64,
        sync_seconds,
    })
}

/// One per-file sample: created, written, and given the restore's metadata.
fn sample_file(
    samples: &SampleDirectory,
    content: &[u8],
    metadata: &Metadata,
) -> std::io::Result<File> {
    let mut file = samples.open()?;
    file.write_all(content)?;
    if nix::unistd::geteuid().is_root() {
        std::os::unix::fs::fchown(&file, Some(metadata.uid), Some(metadata.gid))?;
    }
    file.set_permissions(fs::Permissions::from_mode(metadata.mode & 0o7777))?;
    let mtime = file_time(metadata.mtime_ns);
    filetime::set_file_handle_times(&file, Some(mtime), Some(mtime))?;
    Ok(file)
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

/// An `O_TMPFILE` inode on `directory`'s file system: no name, no entry.
fn tmpfile(directory: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(nix::libc::O_TMPFILE)
        .mode(0o600)
        .open(directory)
}

/// A new file in `directory` that has no name.
fn unnamed_file(directory: &Path) -> std::io::Result<File> {
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
