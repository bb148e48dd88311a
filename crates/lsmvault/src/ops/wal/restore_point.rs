//! Named restore points (`lsmvault tag`): the newest archived sequence number
//! of a database under a name, which point-in-time recovery accepts as a target.
//!
//! A name is not empty and names one restore point: `restore --tag` resolves
//! a name to the newest point called so, so a second point of the same name
//! would silently shadow the first. Reusing a name takes `replace` (the
//! CLI's `--force`), and then the newer point wins. A point is written only
//! when point-in-time restore can reach it (a snapshot of the database at or
//! before it and no gap in between): the same rule restore applies.

use std::path::Path;
use std::time::SystemTime;

use super::ArchiveOptions;
use crate::backend::ObjectKind;
use crate::error::{Error, Result};
use crate::format::snapshot::format_time;
use crate::format::wal_object::{RestorePoint, WalObject};
use crate::id::Id;
use crate::repo::Repository;

/// How often `tag` withdraws its point and tries again when other runs wrote
/// a point of the same name at the same moment.
const CLAIM_ATTEMPTS: usize = 20;

/// The refusal of a name another restore point already has.
fn name_taken(point: &RestorePoint) -> Error {
    Error::InvalidArgument(format!(
        "restore point \"{}\" already exists (database {}, sequence {}, {}): choose another name, or --force to make the new point win",
        point.name, point.database_id, point.sequence, point.time
    ))
}

impl Repository {
    /// Archives the WAL now and records a named restore point at the newest
    /// archived sequence number. A name already in use (by any database) is
    /// refused unless `replace`, with which the new point shadows the old.
    pub fn create_restore_point(
        &self,
        name: &str,
        directory: &Path,
        options: &ArchiveOptions,
        replace: bool,
    ) -> Result<RestorePoint> {
        if name.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "a restore point needs a name that is not empty".into(),
            ));
        }
        if !replace {
            if let Some((_, point)) = self.first_point_named(name)? {
                return Err(name_taken(&point));
            }
        }
        let report = self.archive_wal(directory, options)?;
        let sequence = self
            .latest_segments(&report.database_id)?
            .values()
            .filter_map(|record| record.last_sequence)
            .max()
            .ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "{} has no archived write batches: nothing to name",
                    directory.display()
                ))
            })?;
        self.check_restorable(&report.database_id, sequence)?;
        let point = RestorePoint {
            name: name.to_string(),
            database_id: report.database_id,
            sequence,
            time: format_time(SystemTime::now()),
            host: crate::repo::lock::host_name(),
        };
        if replace {
            self.write_wal_object(&WalObject::RestorePoint(point.clone()))?;
            return Ok(point);
        }
        self.claim_name(point)
    }

    /// Writes `point` so that, of several `tag NAME` run at once, exactly one
    /// keeps the name: as with locks, each writes its point and then lists,
    /// and only one that sees no other point of that name wins. Points are
    /// never replaced, so a later writer always sees the winner's point and
    /// loses; writers that see each other all withdraw theirs and try again
    /// after a random pause, and a retry that finds a point of the name is
    /// refused. (Deciding by the `time` field instead let a writer whose
    /// clock read earlier but whose write landed later win a second time.)
    fn claim_name(&self, point: RestorePoint) -> Result<RestorePoint> {
        for _ in 0..CLAIM_ATTEMPTS {
            if let Some((_, first)) = self.first_point_named(&point.name)? {
                return Err(name_taken(&first));
            }
            let ours = self.write_wal_object(&WalObject::RestorePoint(point.clone()))?;
            let others = self
                .points_named(&point.name)?
                .into_iter()
                .filter(|(id, _)| *id != ours)
                .count();
            if others == 0 {
                return Ok(point);
            }
            self.backend().delete(ObjectKind::Wal, &ours.to_hex())?;
            std::thread::sleep(crate::repo::lock::lock_retry_pause());
        }
        Err(Error::InvalidArgument(format!(
            "restore point \"{}\" was contended by other `tag` runs {CLAIM_ATTEMPTS} times: run it again",
            point.name
        )))
    }

    /// Every point called `name`, with its id.
    fn points_named(&self, name: &str) -> Result<Vec<(Id, RestorePoint)>> {
        Ok(self
            .wal_objects()?
            .into_iter()
            .filter_map(|(id, object)| match object {
                WalObject::RestorePoint(point) if point.name == name => Some((id, point)),
                _ => None,
            })
            .collect())
    }

    /// The earliest point called `name` (by time, then id), with its id.
    fn first_point_named(&self, name: &str) -> Result<Option<(Id, RestorePoint)>> {
        Ok(self
            .points_named(name)?
            .into_iter()
            .min_by(|(a_id, a), (b_id, b)| (&a.time, a_id).cmp(&(&b.time, b_id))))
    }

    /// Refuses a restore point `restore --tag` would refuse: the same
    /// reachability rule ([`Repository::plan_point_in_time`]), so the two
    /// never disagree.
    fn check_restorable(&self, database: &str, sequence: u64) -> Result<()> {
        let (snapshots, _) = self.snapshots_checked()?;
        let objects: Vec<WalObject> = self
            .wal_objects()?
            .into_iter()
            .map(|(_, object)| object)
            .collect();
        match self.plan_point_in_time(database, sequence, &snapshots, &objects) {
            Ok(_) => Ok(()),
            Err(Error::PointInTimeUnavailable { reason }) => Err(Error::PointInTimeUnavailable {
                reason: format!(
                    "no restore point written: `restore --tag` could not return to sequence {sequence}: {reason}"
                ),
            }),
            Err(other) => Err(other),
        }
    }
}
