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
//! [`LockGuard::confirm_live`]), every index file the backup saw or wrote
//! must still exist (a prune that deletes a blob replaces the index files
//! naming it), and so must every pack it wrote (a prune deletes packs no
//! index names yet, and may rewrite a lone index file under its old name).
//! All of it needs only list, create-if-absent and delete, so it holds on
//! object storage too (`docs/maintenance.md`). On object storage, while the
//! lock is younger than [`UNCONTESTED_FOR`] on this process's clock and on
//! the storage's (the times of the index files the backup wrote), none of
//! it can fail, and the check makes at most one listing; on a local or
//! mounted repository it always runs.
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
use crate::repo::lock::{LockGuard, UNCONTESTED_FOR};
use crate::repo::{Repository, WriteSummary};

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

/// What a writer's commit depends on: the index files it saw at its start
/// and wrote itself (any of them gone means a prune ran meanwhile) and the
/// packs it wrote (a prune can delete them as unindexed while rewriting a
/// lone index file to the same name, which deletes no index file).
pub struct CommitCheck {
    index_files: HashSet<String>,
    /// The index files this writer wrote: their storage times tell how old
    /// the lock is on the storage's clock.
    written_index: HashSet<String>,
    /// The packs this writer's index files name.
    packs: HashSet<Id>,
}

impl CommitCheck {
    /// Records the index files of `listed`, a listing taken once the lock
    /// was held (the one the index was loaded from).
    pub fn start(listed: &[ObjectInfo]) -> CommitCheck {
        CommitCheck {
            index_files: listed.iter().map(|file| file.name.clone()).collect(),
            written_index: HashSet::new(),
            packs: HashSet::new(),
        }
    }

    /// Adds what the writer stored: the packs of `summary` and the index
    /// files naming them.
    pub fn wrote(&mut self, summary: &WriteSummary, index_files: &[Id]) {
        self.packs
            .extend(summary.locations.iter().map(|location| location.pack));
        let names: Vec<String> = index_files.iter().map(Id::to_hex).collect();
        self.written_index.extend(names.iter().cloned());
        self.index_files.extend(names);
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

    /// Fails with [`Error::LockLost`] unless the lock is still live, every
    /// recorded index file still exists and every pack the writer wrote
    /// too (the full check: refresh and list the locks, then list the index
    /// files and the packs).
    ///
    /// On a repository that is not remote (a local disk, and any mount:
    /// rclone, s3fs and some SMB setups stamp mtimes with the client's
    /// clock, so "the storage's clock" would be this host's again) the full
    /// check always runs: it costs nothing there. On object storage it is
    /// skipped while the lock is younger than [`UNCONTESTED_FOR`] by this
    /// process's clock ([`LockGuard::uncontested`]) and, when the writer
    /// wrote index files, on the storage's clock too: one listing of the
    /// index files gives their storage times (a virtual machine paused by
    /// its hypervisor stops every clock of the guest, not the storage's).
    /// A writer that wrote nothing has no storage time without one more
    /// request, and goes by its own clock (`docs/maintenance.md`). Staleness
    /// being judged by the storage's clock, nobody can have taken a young
    /// lock for stale, so no exclusive lock was taken beside it and no prune
    /// ran since it was taken (a prune holding an older lock that looked
    /// stale stops before deleting, [`LockGuard::ensure_lease`]).
    pub fn confirm(&self, repository: &Repository, lock: &LockGuard) -> Result<()> {
        let backend = repository.backend();
        if !backend.is_remote() || !lock.uncontested() {
            return self.full_check(repository, lock);
        }
        if self.written_index.is_empty() {
            return Ok(());
        }
        let listed = backend.list(ObjectKind::Index)?;
        self.index_files_remain(&listed)?;
        let written_at = listed
            .iter()
            .filter(|file| self.written_index.contains(&file.name))
            .filter_map(|file| file.modified)
            .max();
        // An index file that existed before the lock (same name, same
        // content) says nothing about now: no storage time, full check.
        match written_at.and_then(|time| lock.storage_age(time)) {
            Some(age) if age < UNCONTESTED_FOR => Ok(()),
            _ => self.full_check(repository, lock),
        }
    }

    /// Confirms the lock ([`LockGuard::confirm_live`]), then lists the
    /// index files and, if the writer wrote any pack, the packs: all must
    /// still be there. The listings come after the lock's refresh, so a
    /// prune that finished before it is seen.
    fn full_check(&self, repository: &Repository, lock: &LockGuard) -> Result<()> {
        lock.confirm_live()?;
        self.index_files_remain(&repository.backend().list(ObjectKind::Index)?)?;
        if self.packs.is_empty() {
            return Ok(());
        }
        // From the storage, not the metadata cache: a cached pack listing
        // is trusted while the index listing looks unchanged, which is
        // exactly the case this looks for.
        repository.always_list_packs();
        let listed: HashSet<Id> = repository
            .backend()
            .list(ObjectKind::Pack)?
            .iter()
            .filter_map(|pack| Id::from_hex(&pack.name).ok())
            .collect();
        let mut gone = self.packs.iter().filter(|pack| !listed.contains(pack));
        if let Some(first) = gone.next() {
            return Err(Error::LockLost {
                reason: format!(
                    "{} pack(s) it wrote were deleted meanwhile (a prune ran), {} among them",
                    1 + gone.count(),
                    ObjectKind::Pack.describe(&first.to_hex())
                ),
            });
        }
        Ok(())
    }

    /// Fails unless every recorded index file is in `listed`.
    fn index_files_remain(&self, listed: &[ObjectInfo]) -> Result<()> {
        let now: HashSet<&str> = listed.iter().map(|file| file.name.as_str()).collect();
        let gone = self
            .index_files
            .iter()
            .filter(|name| !now.contains(name.as_str()))
            .count();
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
    use crate::backend::{Backend, CountingBackend, MemoryBackend, TimeShiftBackend};
    use crate::format::pack::BlobKind;
    use crate::repo::lock::{LockKind, STALE_AFTER};
    use crate::repo::{InitOptions, PackWriter};

    /// A repository on `backend` holding the index file `seen`, a shared
    /// lock on it and a commit check started from its listing.
    fn started(backend: Arc<dyn Backend>) -> (Repository, LockGuard, CommitCheck) {
        let repository = Repository::init(backend, InitOptions::default()).unwrap();
        repository
            .backend()
            .write_if_absent(ObjectKind::Index, "seen", b"an index file")
            .unwrap();
        let lock = repository.lock(LockKind::Shared, "backup").unwrap();
        let check = CommitCheck::start(&repository.list_index_files().unwrap());
        (repository, lock, check)
    }

    /// Stores one blob as a backup would: its pack, then an index file.
    fn write_one_blob(repository: &Repository, check: &mut CommitCheck, seed: u8) -> Id {
        let writer = PackWriter::new(repository).unwrap();
        let data = vec![seed; 4096];
        writer
            .add(writer.keys().blob_id(&data), BlobKind::Data, &data)
            .unwrap();
        let summary = writer.finish().unwrap();
        check.wrote(
            &summary,
            &repository.write_index(&summary.locations).unwrap(),
        );
        summary.locations[0].pack
    }

    #[test]
    fn the_commit_check_costs_nothing_on_object_storage_while_the_lock_is_young_and_checks_when_old(
    ) {
        let counting = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
        let backend = Arc::new(TimeShiftBackend::remote(counting.clone()));
        let (repository, lock, check) = started(backend);
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

    /// Review finding F6: on a local disk or a mount (rclone, s3fs, SMB)
    /// the "storage's clock" may be this client's: the full check always
    /// runs, even for a young lock.
    #[test]
    fn on_a_local_or_mounted_repository_the_commit_check_always_runs() {
        let (repository, lock, check) = started(Arc::new(MemoryBackend::new()));
        assert!(lock.uncontested());
        check.confirm(&repository, &lock).unwrap();
        repository
            .backend()
            .delete(ObjectKind::Index, "seen")
            .unwrap();
        let error = check.confirm(&repository, &lock).unwrap_err();
        assert!(
            matches!(&error, Error::LockLost { reason } if reason.contains("index file")),
            "{error}"
        );
    }

    /// Review finding F2: a virtual machine paused by its hypervisor stops
    /// every clock of the guest, so the lock looks young to the backup; the
    /// storage's time of the index file it wrote says otherwise.
    #[test]
    fn a_backup_in_a_paused_vm_is_caught_by_the_storage_time_of_its_index_file() {
        let counting = Arc::new(CountingBackend::new(Arc::new(MemoryBackend::new())));
        let backend = Arc::new(TimeShiftBackend::remote(counting.clone()));
        let (repository, lock, mut check) = started(backend.clone());
        // Not paused: one listing of the index files, and the commit goes on.
        write_one_blob(&repository, &mut check, 1);
        let before = counting.counts().requests;
        check.confirm(&repository, &lock).unwrap();
        assert_eq!(counting.counts().requests - before, 1, "one listing");
        // Paused for 35 minutes before writing its next index file, while a
        // prune deleted its new pack as unindexed (and the index files it
        // knows stayed: a lone one rewritten under its own name).
        backend.advance(STALE_AFTER + Duration::from_secs(300));
        let pack = write_one_blob(&repository, &mut check, 2);
        repository
            .backend()
            .delete(ObjectKind::Pack, &pack.to_hex())
            .unwrap();
        assert!(lock.uncontested(), "the guest's clocks did not move");
        let error = check.confirm(&repository, &lock).unwrap_err();
        assert!(
            matches!(&error, Error::LockLost { reason } if reason.contains("pack(s) it wrote")),
            "{error}"
        );
    }

    /// Review finding F3: a prune that deletes a backup's not yet indexed
    /// pack and rewrites a lone index file to the same name deletes no index
    /// file; the full check looks for the packs the backup wrote.
    #[test]
    fn the_full_check_fails_when_a_pack_the_backup_wrote_is_gone() {
        let (repository, lock, mut check) = started(Arc::new(MemoryBackend::new()));
        let pack = write_one_blob(&repository, &mut check, 1);
        check.confirm(&repository, &lock).unwrap();
        repository
            .backend()
            .delete(ObjectKind::Pack, &pack.to_hex())
            .unwrap();
        let error = check.confirm(&repository, &lock).unwrap_err();
        assert!(
            matches!(&error, Error::LockLost { reason } if reason.contains("1 pack(s) it wrote") && reason.contains(&pack.to_hex())),
            "{error}"
        );
        assert_eq!(error.code(), crate::ErrorCode::RepositoryLocked);
    }
}
