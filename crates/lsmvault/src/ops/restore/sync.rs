//! Making a restore durable before it reports success.
//!
//! A restore that says "restored" and then loses power must not leave empty
//! or truncated files behind (file systems write data back lazily, and a
//! database started on such a copy sees damaged tables). So before it returns,
//! the restore syncs every file system it wrote to: one `syncfs(2)` per file
//! system, not an `fsync` per file. On ext4, for 2000 small files and a few
//! large ones, an fsync per file (and directory) cost several times the whole
//! rest of the restore, `syncfs` one journal commit (figures in
//! docs/benchmarks.md, "restore durability").
//!
//! Invariants:
//! - the descriptor each `syncfs` goes through is opened before the first
//!   file is written: Linux reports a write-back error to `syncfs` only when
//!   it happened after that descriptor was opened, so an error while writing
//!   any restored file back fails the restore;
//! - every file system the restore writes to is synced: the target's, and
//!   (with `--delta`, into an existing tree) that of any directory mounted
//!   below it;
//! - files `--delta` keeps are not rewritten, so need no sync of their own.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// One open directory per file system the restore writes to.
pub(super) struct TargetSync {
    /// (device, the directory opened on it, its path for errors).
    file_systems: Vec<(u64, File, PathBuf)>,
}

impl TargetSync {
    /// Opens the target (which exists); call before any file is written into it.
    pub(super) fn open(target: &Path) -> Result<Self> {
        let mut sync = TargetSync {
            file_systems: Vec::new(),
        };
        sync.add_directory(target)?;
        Ok(sync)
    }

    /// Notes a directory the restore writes into; a new file system (a
    /// mount point below the target) gets its own descriptor.
    pub(super) fn add_directory(&mut self, directory: &Path) -> Result<()> {
        let opened = File::open(directory)
            .context(|| format!("opening {} to sync it later", directory.display()))?;
        let device = opened
            .metadata()
            .context(|| format!("inspecting {}", directory.display()))?
            .dev();
        if self
            .file_systems
            .iter()
            .all(|(known, _, _)| *known != device)
        {
            self.file_systems
                .push((device, opened, directory.to_path_buf()));
        }
        Ok(())
    }

    /// Writes back every file system the restore wrote to, and waits.
    pub(super) fn sync(self) -> Result<()> {
        for (_, directory, path) in &self.file_systems {
            nix::unistd::syncfs(directory.as_raw_fd()).map_err(|errno| {
                Error::io(
                    format!(
                        "syncing the file system of {} (what the restore wrote may not be on disk)",
                        path.display()
                    ),
                    std::io::Error::from(errno),
                )
            })?;
        }
        Ok(())
    }
}
