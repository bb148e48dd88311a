//! Whether a sequence number of a database can be restored, and how: the
//! base snapshot (the newest of that database at or before the target) and
//! the archived segment versions that continue its sequence chain without a
//! gap up to the target.
//!
//! This is the one reachability rule: point-in-time restore plans its
//! replay with it, and `tag` refuses a restore point it would refuse, so the
//! two can never disagree. Every refusal is
//! [`Error::PointInTimeUnavailable`], naming the sequence numbers involved;
//! nothing here writes.

use crate::error::{Error, Result};
use crate::format::snapshot::SnapshotEntry;
use crate::format::wal_object::{SegmentRecord, WalObject};
use crate::lsm::log::{sequence_ranges, RecordRange};
use crate::repo::Repository;

/// One archived segment version to write into the target.
pub struct PlannedSegment {
    /// The archived version to write.
    pub record: SegmentRecord,
    /// Where to cut it: the end of the last batch kept.
    pub end: u64,
    /// First sequence number of the batches kept.
    pub first_sequence: u64,
    /// Last sequence number of the batches kept.
    pub last_sequence: u64,
}

/// The replay from a snapshot towards the target, built segment by segment.
pub struct ReplayPlan {
    /// The last sequence number the base snapshot holds.
    pub snapshot_sequence: u64,
    /// The sequence number asked for.
    pub target_sequence: u64,
    /// The sequence number the next batch must start at for the chain to hold.
    expected: u64,
    /// The last sequence number the planned segments reach.
    pub restored: u64,
    /// The segment versions to write, oldest first.
    pub segments: Vec<PlannedSegment>,
}

impl ReplayPlan {
    /// Adds the batches of one segment that continue the chain up to the
    /// target. Returns whether the target is reached (later segments are
    /// not needed); a gap before the target is an error.
    fn add_segment(&mut self, record: SegmentRecord, ranges: &[RecordRange]) -> Result<bool> {
        // (first sequence kept, cut offset) once a batch of this segment is kept.
        let mut kept: Option<(u64, u64)> = None;
        let mut reached = false;
        for range in ranges {
            let Some(last) = range.last_sequence() else {
                continue;
            };
            if last <= self.snapshot_sequence {
                continue;
            }
            if range.first_sequence > self.expected {
                if self.target_sequence >= self.expected {
                    return Err(unavailable(format!(
                        "sequence {} falls into a gap of the archive: sequences {}..={} are missing before segment {} (missing segment or a write without WAL)",
                        self.target_sequence,
                        self.expected,
                        range.first_sequence - 1,
                        record.file_name
                    )));
                }
                break;
            }
            if last > self.target_sequence {
                reached = true;
                break;
            }
            let first = kept.map_or(range.first_sequence, |(first, _)| first);
            kept = Some((first, range.end_offset));
            self.expected = range.next_sequence();
            self.restored = last;
        }
        if let Some((first_sequence, end)) = kept {
            self.segments.push(PlannedSegment {
                record,
                end,
                first_sequence,
                last_sequence: self.restored,
            });
        }
        Ok(reached)
    }

    /// Refuses a replay that stops short of the target: a gap after the last
    /// planned batch, or a target after the newest archived write.
    fn check_reaches_target(&self, objects: &[WalObject], database: &str) -> Result<()> {
        let target_sequence = self.target_sequence;
        if self.restored >= target_sequence || self.expected > target_sequence {
            return Ok(());
        }
        let newest = objects
            .iter()
            .filter_map(|object| match object {
                WalObject::Segment(record) if record.database_id == database => {
                    record.last_sequence
                }
                _ => None,
            })
            .max()
            .unwrap_or(self.snapshot_sequence);
        if newest >= target_sequence {
            return Err(unavailable(format!(
                "sequence {target_sequence} falls into a gap of the archive after sequence {}",
                self.restored
            )));
        }
        Err(unavailable(format!(
            "sequence {target_sequence} is after the newest archived write of database {database} (sequence {newest})"
        )))
    }
}

/// The newest snapshot of `database` at or before the target, with its sequence number.
pub fn base_snapshot<'a>(
    snapshots: &'a [SnapshotEntry],
    database: &str,
    target_sequence: u64,
) -> Result<(u64, &'a SnapshotEntry)> {
    let base = snapshots
        .iter()
        .filter_map(|entry| {
            let state = entry.snapshot.database.as_ref()?;
            let sequence = state.last_sequence?;
            (state.id.as_deref() == Some(database) && sequence <= target_sequence)
                .then_some((sequence, entry))
        })
        .max_by(|a, b| {
            a.0.cmp(&b.0)
                .then(a.1.snapshot.system_time().cmp(&b.1.snapshot.system_time()))
        });
    if let Some(base) = base {
        return Ok(base);
    }
    let first = snapshots
        .iter()
        .filter_map(|entry| {
            let state = entry.snapshot.database.as_ref()?;
            (state.id.as_deref() == Some(database)).then_some(state.last_sequence?)
        })
        .min();
    Err(unavailable(match first {
        Some(first) => format!(
            "sequence {target_sequence} is before the first snapshot of database {database} (it holds sequence {first})"
        ),
        None => format!("no snapshot of database {database} records its sequence number"),
    }))
}

fn unavailable(reason: String) -> Error {
    Error::PointInTimeUnavailable { reason }
}

impl Repository {
    /// The base snapshot and the replay that restore `target_sequence` of
    /// `database`, or why it cannot be restored (no snapshot at or before
    /// it, a gap between the snapshot and it, or after the newest archived
    /// write). `snapshots` and `objects`: every readable snapshot and WAL object.
    pub fn plan_point_in_time<'a>(
        &self,
        database: &str,
        target_sequence: u64,
        snapshots: &'a [SnapshotEntry],
        objects: &[WalObject],
    ) -> Result<(&'a SnapshotEntry, ReplayPlan)> {
        let (snapshot_sequence, base) = base_snapshot(snapshots, database, target_sequence)?;
        let plan = self.plan_replay(database, snapshot_sequence, target_sequence)?;
        plan.check_reaches_target(objects, database)?;
        Ok((base, plan))
    }

    /// Walks the newest version of each archived segment after the snapshot,
    /// up to the target. Only one segment's content is held at a time: it is
    /// parsed here, dropped, and streamed again into the target later.
    pub fn plan_replay(
        &self,
        database: &str,
        snapshot_sequence: u64,
        target_sequence: u64,
    ) -> Result<ReplayPlan> {
        let mut plan = ReplayPlan {
            snapshot_sequence,
            target_sequence,
            expected: snapshot_sequence + 1,
            restored: snapshot_sequence,
            segments: Vec::new(),
        };
        for record in self.latest_segments(database)?.into_values() {
            if record
                .last_sequence
                .is_none_or(|last| last <= snapshot_sequence)
                || plan.expected > target_sequence
            {
                continue;
            }
            let content = self.read_segment(&record)?;
            let (ranges, _) = sequence_ranges(&content, Some(record.segment))?;
            if plan.add_segment(record, &ranges)? {
                break;
            }
        }
        Ok(plan)
    }
}
