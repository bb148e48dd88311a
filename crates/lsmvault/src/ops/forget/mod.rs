//! `forget`: remove snapshot files, chosen by a retention policy
//! ([`retention`]) or by id, then the WAL records no kept snapshot's
//! point-in-time window can use ([`wal_retention`]). Only snapshot files and
//! `wal/` records go; the data they alone referenced stays until `prune`.
//! Snapshot files go first: killed in between, the next forget finds the
//! same WAL records unreachable and removes them.
//!
//! Takes the exclusive lock (unless it is a dry run), like prune: no backup
//! may pick a snapshot as its parent while it disappears.

pub mod retention;
pub mod wal_retention;

use std::time::Duration;

use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::lock::LockKind;
use crate::repo::snapshots::select_checked;
use crate::repo::{DamagedObject, Repository, SelectedSnapshot};
use retention::{GroupBy, GroupDecision, RetentionPolicy, SnapshotFilter};
use wal_retention::WalRetentionReport;

/// Options for [`Repository::forget`].
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Which snapshots of each group to keep; must have at least one rule
    /// unless `keep_pitr` is set (then, empty, it removes no snapshot).
    pub policy: RetentionPolicy,
    /// Which snapshots the policy applies to; the others are never removed.
    pub filter: SnapshotFilter,
    /// How the filtered snapshots are grouped; each group is decided alone.
    pub group_by: GroupBy,
    /// Report only; remove nothing.
    pub dry_run: bool,
    /// Allow a policy to remove every snapshot of a group.
    pub allow_remove_all: bool,
    /// How far back point-in-time recovery must reach from the newest
    /// archived write; `None`: every kept snapshot's whole window. See
    /// [`wal_retention`].
    pub keep_pitr: Option<Duration>,
}

/// What `forget` decided (and did, unless it was a dry run). Serialized as
/// is for the CLI's `--json` output.
#[derive(Debug, Clone, Serialize)]
pub struct ForgetReport {
    /// The decision for every snapshot that passed the filter, group by
    /// group in order of their labels.
    pub groups: Vec<GroupDecision>,
    /// Ids of the snapshots (their files) removed, or that a dry run
    /// would remove.
    pub removed: Vec<Id>,
    /// True when nothing was removed because the options asked for a dry run.
    pub dry_run: bool,
    /// Snapshot files that could not be read: no policy judged them, they
    /// were kept (`forget ID` removes one).
    pub damaged: Vec<DamagedObject>,
    /// The WAL records removed (or that a dry run would remove).
    pub wal: WalRetentionReport,
}

/// What `forget` by id did (or would do).
#[derive(Debug, Clone, Serialize)]
pub struct ForgetIdsReport {
    /// Ids of the snapshots (their files) removed, or that a dry run would remove.
    pub removed: Vec<Id>,
    /// True when nothing was removed because a dry run was asked for.
    pub dry_run: bool,
    /// The WAL records removed (or that a dry run would remove).
    pub wal: WalRetentionReport,
}

impl Repository {
    /// Removes the snapshots a retention policy does not keep.
    pub fn forget(&self, options: &ForgetOptions) -> Result<ForgetReport> {
        if options.policy.is_empty() && options.keep_pitr.is_none() {
            return Err(Error::InvalidArgument(
                "the retention policy has no keep rule: it would keep nothing".into(),
            ));
        }
        let _lock = if options.dry_run {
            None
        } else {
            Some(self.lock(LockKind::Exclusive, "forget")?)
        };
        // Damaged snapshots are kept: their times are unknown, so no policy
        // can judge them; they are reported for the user to forget by id.
        let (snapshots, damaged) = self.snapshots_checked()?;
        // `keep_pitr` alone judges only the archive: no group, nothing removed.
        let groups = if options.policy.is_empty() {
            Vec::new()
        } else {
            retention::decide_all(
                &snapshots,
                &options.filter,
                options.group_by,
                &options.policy,
            )
        };
        if !options.allow_remove_all {
            if let Some(group) = groups
                .iter()
                .find(|group| group.snapshots.iter().all(|decision| !decision.keep))
            {
                return Err(Error::PolicyRemovesAll {
                    group: group.group.clone(),
                    count: group.snapshots.len(),
                });
            }
        }
        let removed: Vec<Id> = groups
            .iter()
            .flat_map(|group| group.snapshots.iter())
            .filter(|decision| !decision.keep)
            .map(|decision| decision.id)
            .collect();
        if !options.dry_run {
            self.delete_snapshots(&removed)?;
        }
        let kept = without(snapshots, &removed);
        let wal = self.forget_wal(&kept, &damaged, options.keep_pitr, options.dry_run)?;
        Ok(ForgetReport {
            groups,
            removed,
            dry_run: options.dry_run,
            damaged,
            wal,
        })
    }

    /// Removes the given snapshots (ids or unique prefixes), damaged
    /// snapshot files included (by their full name or a unique prefix of
    /// it): removing a damaged snapshot is how a user clears it.
    pub fn forget_snapshots(&self, selectors: &[String], dry_run: bool) -> Result<Vec<Id>> {
        Ok(self.forget_ids(selectors, dry_run, None)?.removed)
    }

    /// [`Repository::forget_snapshots`], then WAL retention against the
    /// snapshots that stay (`keep_pitr` as in [`ForgetOptions`]).
    pub fn forget_ids(
        &self,
        selectors: &[String],
        dry_run: bool,
        keep_pitr: Option<Duration>,
    ) -> Result<ForgetIdsReport> {
        let _lock = if dry_run {
            None
        } else {
            Some(self.lock(LockKind::Exclusive, "forget")?)
        };
        let (snapshots, damaged) = self.snapshots_checked()?;
        let ids: Vec<Id> = selectors
            .iter()
            .map(
                |selector| match select_checked(&snapshots, &damaged, selector)? {
                    SelectedSnapshot::Intact(entry) => Ok(entry.id),
                    SelectedSnapshot::Damaged(object) => Id::from_hex(&object.name),
                },
            )
            .collect::<Result<_>>()?;
        if !dry_run {
            self.delete_snapshots(&ids)?;
        }
        let kept = without(snapshots, &ids);
        // A damaged file forgotten here no longer holds the archive back.
        let damaged: Vec<DamagedObject> = damaged
            .into_iter()
            .filter(|object| !ids.iter().any(|id| id.to_hex() == object.name))
            .collect();
        let wal = self.forget_wal(&kept, &damaged, keep_pitr, dry_run)?;
        Ok(ForgetIdsReport {
            removed: ids,
            dry_run,
            wal,
        })
    }

    fn delete_snapshots(&self, ids: &[Id]) -> Result<()> {
        for id in ids {
            self.backend().delete(ObjectKind::Snapshot, &id.to_hex())?;
        }
        Ok(())
    }
}

/// The snapshots that stay once `removed` are gone.
fn without(
    snapshots: Vec<crate::format::snapshot::SnapshotEntry>,
    removed: &[Id],
) -> Vec<crate::format::snapshot::SnapshotEntry> {
    snapshots
        .into_iter()
        .filter(|entry| !removed.contains(&entry.id))
        .collect()
}
