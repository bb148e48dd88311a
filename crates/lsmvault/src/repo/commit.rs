//! A writer's distrust of the index: what it may reuse, and whether it may
//! still commit (backup and copy both write blobs, then a snapshot).
//!
//! At the start, one listing of the packs decides which indexed blobs are
//! really stored: a blob whose every pack is gone counts as absent, so the
//! backup writes it again and the repository heals (`--verify-existing`
//! goes further and reads every reused blob, see [`PackWriter`]).
//!
//! The writer lists the index files once, after taking its lock: that one
//! listing is both what its index is loaded from ([`StoredBlobs::load`]) and
//! what its commit check records ([`CommitCheck::start`]).
//!
//! Just before the snapshot is written, [`CommitCheck::confirm`] makes sure
//! no prune ran since the start: the backup's lock must still be live (see
//! [`LockGuard::confirm_live`]) and every index file the backup saw or wrote
//! must still exist, since a prune that deletes anything replaces all index
//! files. Both need only list, create-if-absent and delete, so they hold on
//! object storage too (`docs/maintenance.md`). While the lock is younger than
//! [`UNCONTESTED_FOR`](crate::repo::lock::UNCONTESTED_FOR) neither can fail, and the check makes no request (see
//! [`LockGuard::uncontested`]).
//!
//! [`PackWriter`]: crate::repo::PackWriter

use std::collections::HashSet;
use std::sync::Arc;

use crate::backend::{ObjectInfo, ObjectKind};
use crate::error::{Error, Result};
use crate::format::index::Index;
use crate::format::snapshot::Snapshot;
use crate::id::Id;
use crate::progress::Progress;
use crate::repo::lock::LockGuard;
use crate::repo::Repository;

/// The index as the backup trusts it.
pub struct StoredBlobs {
    /// Every indexed blob, wherever its pack is.
    pub indexed: Arc<Index>,
    /// The blobs with at least one listed pack, preferring that location:
    /// what the backup may reuse without writing (the index itself, not a
    /// copy, when every pack is there).
    pub present: Arc<Index>,
    /// Indexed blobs whose every pack is missing.
    pub missing: usize,
}

impl StoredBlobs {
    /// Loads the index from `index_files` (the listing the caller took
    /// after its lock, see [`Repository::list_index_files`]) and lists the
    /// packs once.
    pub fn load(repository: &Repository, index_files: &[ObjectInfo]) -> Result<StoredBlobs> {
        let indexed = repository.load_index_from(index_files)?;
        let packs: HashSet<Id> = repository
            .backend()
            .list(ObjectKind::Pack)?
            .iter()
            .filter_map(|pack| Id::from_hex(&pack.name).ok())
            .collect();
        let all_there = !indexed.has_duplicates()
            && indexed
                .iter()
                .all(|location| packs.contains(&location.pack));
        let (present, missing) = if all_there {
            (Arc::clone(&indexed), 0)
        } else {
            let mut present = (*indexed).clone();
            let missing = present.retain_present(|pack| packs.contains(pack));
            (Arc::new(present), missing)
        };
        Ok(StoredBlobs {
            indexed,
            present,
            missing,
        })
    }
}

/// The index files a backup saw at its start and wrote itself; any of them
/// gone before the snapshot is written means a prune ran meanwhile.
pub struct CommitCheck {
    index_files: HashSet<String>,
}

impl CommitCheck {
    /// Records the index files of `listed`, a listing taken once the lock
    /// was held (the one the index was loaded from).
    pub fn start(listed: &[ObjectInfo]) -> CommitCheck {
        CommitCheck {
            index_files: listed.iter().map(|file| file.name.clone()).collect(),
        }
    }

    /// Adds the index files the backup wrote.
    pub fn wrote(&mut self, files: &[Id]) {
        self.index_files.extend(files.iter().map(Id::to_hex));
    }

    /// The commit point: writes `snapshot` only if no prune can have deleted
    /// what it references (see [`CommitCheck::confirm`]). The "committing"
    /// progress phase starts just before the check.
    pub fn commit(
        &self,
        repository: &Repository,
        lock: &LockGuard,
        snapshot: &Snapshot,
        progress: &dyn Progress,
    ) -> Result<Id> {
        progress.start("committing", 0);
        let confirmed = self.confirm(repository, lock);
        progress.finish();
        confirmed?;
        repository.write_snapshot(snapshot)
    }

    /// Fails with [`Error::LockLost`] unless the lock is still live and
    /// every recorded index file still exists.
    ///
    /// Skipped, with no request, while the lock is younger than
    /// [`UNCONTESTED_FOR`](crate::repo::lock::UNCONTESTED_FOR) ([`LockGuard::uncontested`]): staleness being
    /// judged by the storage's clock, nobody can have taken it for stale,
    /// so no exclusive lock was taken beside it and no prune ran since it
    /// was taken (a prune holding an older lock that looked stale stops
    /// before deleting, [`LockGuard::ensure_held`]). What this cannot see is
    /// an operator's `unlock --remove-all` of the live lock.
    pub fn confirm(&self, repository: &Repository, lock: &LockGuard) -> Result<()> {
        if lock.uncontested() {
            return Ok(());
        }
        lock.confirm_live()?;
        let now: HashSet<String> = repository
            .backend()
            .list(ObjectKind::Index)?
            .into_iter()
            .map(|file| file.name)
            .collect();
        let gone = self.index_files.difference(&now).count();
        if gone > 0 {
            return Err(Error::LockLost {
                reason: format!(
                    "{gone} index file(s) it saw or wrote were deleted meanwhile (a prune ran)"
                ),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::{Backend, CountingBackend, MemoryBackend};
    use crate::repo::lock::{LockKind, UNCONTESTED_FOR};
    use crate::repo::InitOptions;

    #[test]
    fn the_commit_check_costs_nothing_while_the_lock_is_young_and_checks_when_old() {
        let counting = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
        let backend: Arc<dyn Backend> = Arc::clone(&counting) as Arc<dyn Backend>;
        let repository = Repository::init(backend, InitOptions::default()).unwrap();
        repository
            .backend()
            .write_if_absent(ObjectKind::Index, "seen", b"an index file")
            .unwrap();
        let lock = repository.lock(LockKind::Shared, "backup").unwrap();
        let check = CommitCheck::start(&repository.list_index_files().unwrap());
        let before = counting.counts().requests;
        check.confirm(&repository, &lock).unwrap();
        assert_eq!(
            counting.counts().requests,
            before,
            "a young lock: no request"
        );
        // A prune ran while the (paused) backup's lock looked stale.
        repository
            .backend()
            .delete(ObjectKind::Index, "seen")
            .unwrap();
        check.confirm(&repository, &lock).unwrap();
        repository
            .lock_clock()
            .simulate_pause(UNCONTESTED_FOR + Duration::from_secs(1));
        let error = check.confirm(&repository, &lock).unwrap_err();
        assert!(
            matches!(&error, Error::LockLost { reason } if reason.contains("index file")),
            "{error}"
        );
    }
}
