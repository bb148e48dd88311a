//! `forget`: remove snapshot files, chosen by a retention policy
//! ([`retention`]) or by id. Only snapshot files go; the data they alone
//! referenced stays until `prune`.
//!
//! Takes the exclusive lock (unless it is a dry run), like prune: no backup
//! may pick a snapshot as its parent while it disappears.

pub mod retention;

use serde::Serialize;

use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::id::Id;
use crate::repo::lock::LockKind;
use crate::repo::snapshots::select_checked;
use crate::repo::{DamagedObject, Repository, SelectedSnapshot};
use retention::{GroupBy, GroupDecision, RetentionPolicy, SnapshotFilter};

/// Options for [`Repository::forget`].
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Which snapshots of each group to keep; must have at least one rule.
    pub policy: RetentionPolicy,
    /// Which snapshots the policy applies to; the others are never removed.
    pub filter: SnapshotFilter,
    /// How the filtered snapshots are grouped; each group is decided alone.
    pub group_by: GroupBy,
    /// Report only; remove nothing.
    pub dry_run: bool,
    /// Allow a policy to remove every snapshot of a group.
    pub allow_remove_all: bool,
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
}

impl Repository {
    /// Removes the snapshots a retention policy does not keep.
    pub fn forget(&self, options: &ForgetOptions) -> Result<ForgetReport> {
        if options.policy.is_empty() {
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
        let groups = retention::decide_all(
            &snapshots,
            &options.filter,
            options.group_by,
            &options.policy,
        );
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
        Ok(ForgetReport {
            groups,
            removed,
            dry_run: options.dry_run,
            damaged,
        })
    }

    /// Removes the given snapshots (ids or unique prefixes), damaged
    /// snapshot files included (by their full name or a unique prefix of
    /// it): removing a damaged snapshot is how a user clears it.
    pub fn forget_snapshots(&self, selectors: &[String], dry_run: bool) -> Result<Vec<Id>> {
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
        Ok(ids)
    }

    fn delete_snapshots(&self, ids: &[Id]) -> Result<()> {
        for id in ids {
            self.backend().delete(ObjectKind::Snapshot, &id.to_hex())?;
        }
        Ok(())
    }
}
