//! `backup --live`: a hard-link checkpoint of a running database taken next
//! to it, backed up, and removed whatever happened.

use std::fs;
use std::path::Path;

use crate::error::{Error, IoContext, Result};
use crate::lsm::checkpoint::{checkpoint, CheckpointOptions, CheckpointReport};
use crate::ops::backup::{BackupOptions, BackupOutcome};
use crate::progress::Progress;
use crate::repo::Repository;

impl Repository {
    /// `backup --live`: checkpoints `source` into a temporary directory next
    /// to it (same file system, so immutable files are hard links), backs the
    /// checkpoint up recording `source` as the snapshot's source, and removes
    /// the temporary directory whatever happened.
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
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let temporary = parent.join(format!(".lsmvault-live-{}-{nanos}", std::process::id()));
        let outcome = checkpoint(&source, &temporary, checkpoint_options).and_then(|report| {
            let options = BackupOptions {
                source_label: Some(source.clone()),
                ..backup_options.clone()
            };
            self.backup(&temporary, &options, progress)
                .map(|outcome| (outcome, report))
        });
        let removed = fs::remove_dir_all(&temporary);
        let outcome = outcome?;
        removed.context(|| format!("removing the temporary checkpoint {}", temporary.display()))?;
        Ok(outcome)
    }
}
