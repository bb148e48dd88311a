//! `backup --live`: a hard-link checkpoint of a running database taken next
//! to it, backed up, and removed whatever happened.
//!
//! The temporary checkpoint is a hidden directory beside the source,
//! `.lsmvault-live-PID-NANOS`; it holds hard links to the database's SSTs,
//! so while it exists the space of SSTs the database deleted is not freed.
//! It is owned by a guard that removes it on every way out (error,
//! [`Interrupt`](crate::Interrupt), panic). Only a process killed outright
//! (SIGKILL, a crash) leaves one behind: the next `backup --live` beside the
//! same directory removes those whose process no longer runs, and reports
//! them.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};
use crate::lsm::checkpoint::{checkpoint, CheckpointOptions, CheckpointReport};
use crate::ops::backup::{BackupOptions, BackupOutcome};
use crate::progress::Progress;
use crate::repo::lock::process_alive;
use crate::repo::Repository;

/// The name prefix of the temporary checkpoints.
pub(super) const TEMPORARY_PREFIX: &str = ".lsmvault-live-";

/// The temporary checkpoint directory, removed when dropped.
pub(super) struct TemporaryCheckpoint {
    pub(super) path: PathBuf,
    pub(super) removed: bool,
}

impl TemporaryCheckpoint {
    /// Removes the directory now, reporting a failure.
    pub(super) fn remove(mut self) -> Result<()> {
        self.removed = true;
        remove_if_present(&self.path)
            .context(|| format!("removing the temporary checkpoint {}", self.path.display()))
    }
}

impl Drop for TemporaryCheckpoint {
    fn drop(&mut self) {
        if !self.removed {
            let _ = remove_if_present(&self.path);
        }
    }
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match fs::remove_dir_all(path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The pid in a temporary checkpoint's name (`.lsmvault-live-PID-NANOS`).
fn owner_pid(name: &str) -> Option<u32> {
    let (pid, nanos) = name.strip_prefix(TEMPORARY_PREFIX)?.split_once('-')?;
    nanos.parse::<u128>().ok()?;
    pid.parse().ok()
}

/// Removes the temporary checkpoints in `parent` whose process is gone,
/// returning their paths. A directory that cannot be removed is left for
/// the next run (its removal is not this backup's job). A directory that is
/// (or holds) one of the `protected` canonical paths, the databases being
/// backed up, is never removed, whatever its name: a shard directory that
/// happens to be named like a checkpoint is the user's data.
pub(super) fn remove_leftovers(parent: &Path, protected: &[PathBuf]) -> Vec<PathBuf> {
    let Ok(listing) = fs::read_dir(parent) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in listing.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(owner_pid) else {
            continue;
        };
        let is_directory = entry.file_type().is_ok_and(|kind| kind.is_dir());
        let path = entry.path();
        if protected.iter().any(|kept| kept.starts_with(&path)) {
            continue;
        }
        if is_directory
            && pid != std::process::id()
            && !process_alive(pid, None)
            && fs::remove_dir_all(&path).is_ok()
        {
            removed.push(path);
        }
    }
    removed.sort();
    removed
}

impl Repository {
    /// `backup --live`: checkpoints `source` into a temporary directory next
    /// to it (same file system, so immutable files are hard links), backs the
    /// checkpoint up recording `source` as the snapshot's source, and removes
    /// the temporary directory whatever happened. Temporary directories of
    /// earlier runs that were killed are removed first (named in the
    /// report's `leftovers_removed`). The backup options' interrupt is the
    /// checkpoint's too.
    pub fn backup_live(
        &self,
        source: &Path,
        checkpoint_options: &CheckpointOptions,
        backup_options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<(BackupOutcome, CheckpointReport)> {
        let source = fs::canonicalize(source).map_err(|_| Error::SourceNotFound {
            path: source.to_path_buf(),
        })?;
        let parent = source.parent().ok_or_else(|| Error::SourceNotFound {
            path: source.clone(),
        })?;
        let leftovers_removed = remove_leftovers(parent, std::slice::from_ref(&source));
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let temporary = TemporaryCheckpoint {
            path: parent.join(format!("{TEMPORARY_PREFIX}{}-{nanos}", std::process::id())),
            removed: false,
        };
        let checkpoint_options = CheckpointOptions {
            interrupt: backup_options.interrupt.clone(),
            ..checkpoint_options.clone()
        };
        let outcome =
            checkpoint(&source, &temporary.path, &checkpoint_options).and_then(|report| {
                let options = BackupOptions {
                    source_label: Some(source.clone()),
                    ..backup_options.clone()
                };
                self.backup(&temporary.path, &options, progress)
                    .map(|outcome| (outcome, report))
            });
        let removed = temporary.remove();
        let (outcome, mut report) = outcome?;
        removed?;
        report.leftovers_removed = leftovers_removed;
        Ok((outcome, report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_temporary_checkpoints_carry_an_owner() {
        assert_eq!(owner_pid(".lsmvault-live-123-456789"), Some(123));
        assert_eq!(owner_pid(".lsmvault-live-123"), None);
        assert_eq!(owner_pid(".lsmvault-live-abc-1"), None);
        assert_eq!(owner_pid("lsmvault-live-1-2"), None);
        assert_eq!(owner_pid(".lsmvault-live-1-2x"), None);
    }
}
