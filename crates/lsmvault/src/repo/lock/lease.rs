//! Re-checking a held lock against the storage: a backup's check before it
//! commits ([`LockGuard::confirm_live`]) and a prune's lease check before it
//! writes its index and deletes ([`LockGuard::ensure_lease`]).
//!
//! Both refresh the lock (write its next object), list the locks once, and
//! delete the previous object. A command that starts after the refresh sees
//! the lock live and waits; what the listing shows tells whether the lock
//! may have looked stale before: its previous object gone (removed as
//! stale), or a conflicting lock beside it that stays there (a candidate
//! that backs off is not counted, see [`CANDIDATE_LOCK_PAUSES`]).
//!
//! The holder's own clock ([`LockClock`](super::LockClock)) cannot see
//! every pause: a virtual machine paused by its hypervisor stops both its
//! boot clock and its wall clock. The storage's clock runs on, so the lease
//! check compares how long ago the lock was taken on both clocks: the
//! storage's running ahead by more than [`STORAGE_AHEAD_LIMIT`] means a
//! pause this process did not see. Invariant: the lease check looks only at
//! objects written by the storage, and the window it leaves is the time
//! between its listing and the caller's next request.

use std::time::{Duration, SystemTime};

use super::{
    list_locks_with, LockGuard, LockInfo, LockKind, LockListing, MAY_HAVE_LAPSED_AFTER,
    UNCONTESTED_FOR,
};
use crate::backend::ObjectKind;
use crate::error::{Error, Result};

/// The most the storage's clock may run ahead of this process's, between
/// the lock's first object and a lease check, before the lease check takes
/// it for a pause the process did not see (a paused virtual machine). A
/// lock can look stale only after a gap of [`STALE_AFTER`](super::STALE_AFTER)
/// between two of its objects, that is a pause of 25 minutes or more; clock
/// rates differ by far less than 10 minutes over any run.
pub const STORAGE_AHEAD_LIMIT: Duration = UNCONTESTED_FOR;

/// How long [`LockGuard::confirm_live`] and [`LockGuard::ensure_lease`]
/// watch a conflicting lock object before they believe the lock was taken:
/// a candidate that saw this lock removes its object within one write, one
/// listing and one delete.
const CANDIDATE_LOCK_PAUSES: [Duration; 2] = [Duration::from_millis(500), Duration::from_secs(2)];

/// A refresh made for a check: the listing taken between writing the new
/// object and deleting the previous one.
struct Refreshed {
    listing: LockListing,
    previous: String,
    own: String,
    info: LockInfo,
}

impl LockGuard {
    /// How much later than the lock's first object the storage wrote an
    /// object it lists as written at `stored`: the lock's age on the
    /// storage's clock then. `None` when the backend gives no times, or when
    /// `stored` is earlier (the object was not written under this lock).
    pub fn storage_age(&self, stored: SystemTime) -> Option<Duration> {
        stored.duration_since(self.acquired_stored?).ok()
    }

    /// Writes the next object of the lock, lists the locks, deletes the
    /// previous object. Requests: PUT, LIST, DELETE (and a GET per other
    /// lock listed).
    fn refresh_and_list(&self) -> Result<Refreshed> {
        let mut held = self.held();
        let (previous, previous_info) = held.write_successor(self.backend.as_ref())?;
        let own = held.name.clone();
        let listing = list_locks_with(
            self.backend.as_ref(),
            &[(&previous, &previous_info), (&own, &held.info)],
        );
        self.backend.delete(ObjectKind::Lock, &previous)?;
        let info = held.info.clone();
        drop(held);
        Ok(Refreshed {
            listing: listing?,
            previous,
            own,
            info,
        })
    }

    /// Re-checks, before a commit, that this lock still protects its holder,
    /// with one listing: the lock is refreshed (a new object is written),
    /// the locks are listed, then the previous object is deleted. In that
    /// listing the previous object must still be there (a lock that went
    /// stale may have been removed by `unlock`), and no live exclusive lock
    /// may be beside it (a prune that took its lock while this one looked
    /// stale). A prune starting after the new object was written sees it
    /// live and waits. Fails with [`Error::LockLost`]. Requests: PUT, LIST,
    /// DELETE (and a GET per other lock listed); the listing is repeated only
    /// while an exclusive lock object is in it (see below).
    ///
    /// This does not see a prune that already finished: the caller checks
    /// that the index files it saw and the packs it wrote are still there,
    /// see [`CommitCheck`](crate::repo::commit::CommitCheck).
    pub fn confirm_live(&self) -> Result<()> {
        let refreshed = self.refresh_and_list()?;
        if !refreshed.listing.contains(&refreshed.previous) {
            return Err(Error::LockLost {
                reason: format!(
                    "its lock object {} is gone (removed as stale?)",
                    ObjectKind::Lock.describe(&refreshed.previous)
                ),
            });
        }
        match self.persisting_conflict(&refreshed, LockKind::Shared)? {
            Some(info) => Err(Error::LockLost {
                reason: format!("an {} was taken meanwhile", info.describe()),
            }),
            None => Ok(()),
        }
    }

    /// The lease check of a command about to write its new index or delete
    /// (prune): [`LockGuard::ensure_held`] by this process's clock, then the
    /// storage's view, after a refresh and one listing. Fails with
    /// [`Error::LockExpired`] when the previous lock object is gone, when
    /// the storage's clock ran more than [`STORAGE_AHEAD_LIMIT`] ahead of
    /// this process's since the lock was taken (a paused virtual machine),
    /// when the previous object was written [`MAY_HAVE_LAPSED_AFTER`] or more
    /// before the new one, or when a conflicting lock is (and stays) beside
    /// it. Requests: PUT, LIST, DELETE (and a GET per other lock listed).
    pub fn ensure_lease(&self) -> Result<()> {
        self.ensure_held()?;
        let refreshed = self.refresh_and_list()?;
        let expired = |reason: String| Error::LockExpired {
            lock: refreshed.info.describe(),
            reason,
        };
        if !refreshed.listing.contains(&refreshed.previous) {
            return Err(expired(format!(
                "its lock object {} is gone (removed as stale?)",
                ObjectKind::Lock.describe(&refreshed.previous)
            )));
        }
        if let Some(reason) = self.lapse_seen_by_storage(&refreshed) {
            return Err(expired(reason));
        }
        match self.persisting_conflict(&refreshed, refreshed.info.kind)? {
            Some(info) => Err(expired(format!(
                "a conflicting {} was taken meanwhile",
                info.describe()
            ))),
            None => Ok(()),
        }
    }

    /// Why the storage's times say this lock may have looked stale, if they
    /// do (see [`LockGuard::ensure_lease`]).
    fn lapse_seen_by_storage(&self, refreshed: &Refreshed) -> Option<String> {
        let now = refreshed.listing.storage_now?;
        let previous = refreshed
            .listing
            .locks
            .iter()
            .find(|lock| lock.name == refreshed.previous)
            .and_then(|lock| lock.modified);
        if let Some(previous) = previous {
            let gap = now.duration_since(previous).unwrap_or_default();
            if gap >= MAY_HAVE_LAPSED_AFTER {
                return Some(format!(
                    "by the storage's clock its previous lock object was written {} s before its refresh",
                    gap.as_secs()
                ));
            }
        }
        let on_storage = self.storage_age(now)?;
        let here = self.clock.since(self.acquired);
        (on_storage > here + STORAGE_AHEAD_LIMIT).then(|| {
            format!(
                "the storage's clock says it was taken {} s ago, this process's clock {} s: the process or its virtual machine was paused",
                on_storage.as_secs(),
                here.as_secs()
            )
        })
    }

    /// A live lock beside this one that conflicts with a lock of `kind`
    /// and is still there, the same holder (host, pid, creation time), after
    /// the round trip a candidate takes to back off: an object that goes
    /// away again was a command asking for its lock (with `--retry-lock`,
    /// again and again), which saw this one and backed off.
    fn persisting_conflict(
        &self,
        refreshed: &Refreshed,
        kind: LockKind,
    ) -> Result<Option<LockInfo>> {
        let own_names = [refreshed.own.as_str(), refreshed.previous.as_str()];
        let mut seen = conflict_infos(&refreshed.listing, &own_names, kind);
        for pause in CANDIDATE_LOCK_PAUSES {
            if seen.is_empty() {
                return Ok(None);
            }
            std::thread::sleep(pause);
            let now_seen = self.live_conflicts(kind)?;
            seen.retain(|holder| now_seen.iter().any(|other| same_holder(holder, other)));
        }
        Ok(seen.into_iter().next())
    }

    /// The live locks other than this one's that conflict with a lock of
    /// `kind`, from a new listing.
    fn live_conflicts(&self, kind: LockKind) -> Result<Vec<LockInfo>> {
        let (name, info) = {
            let held = self.held();
            (held.name.clone(), held.info.clone())
        };
        let listing = list_locks_with(self.backend.as_ref(), &[(&name, &info)])?;
        Ok(conflict_infos(&listing, &[&name], kind))
    }
}

/// The live locks of `listing` but the caller's `own` objects that
/// conflict with a lock of `kind`.
fn conflict_infos(listing: &LockListing, own: &[&str], kind: LockKind) -> Vec<LockInfo> {
    listing
        .conflicts(own, kind)
        .into_iter()
        .map(|lock| lock.info.clone())
        .collect()
}

/// Whether two lock objects belong to one holder: refreshing writes a new
/// object under a new name but keeps host, pid and creation time.
fn same_holder(a: &LockInfo, b: &LockInfo) -> bool {
    a.host == b.host && a.pid == b.pid && a.created == b.created
}
