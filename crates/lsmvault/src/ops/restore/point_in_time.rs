//! Point-in-time recovery: restore the newest snapshot at or before a
//! target, add the archived WAL segments that follow it, and cut the last one
//! after the last whole write batch at or before the target.
//!
//! A target is a sequence number, a time (mapped to the newest sequence number
//! known to have existed then, from snapshot times and WAL archive times), or
//! a named restore point. The restored directory ends exactly at a record
//! boundary, which every RocksDB recovery mode reads as a clean end of log.
//! Gaps in the sequence chain (a missing segment, a hole) and targets before
//! the first snapshot or after the newest archived write are refused.
//!
//! Steps: resolve the target to a database and sequence number, choose the
//! base snapshot, plan the segment versions to replay (every refusal happens
//! here, before anything is written), restore the snapshot, write the planned
//! segments, and remove later segments the snapshot brought along.
//!
//! Containment: damaged snapshot files are left out (never chosen as a base,
//! their times and sequences are unknown) and named in the report; a target
//! only they could have served is refused naming them.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Instant, SystemTime};

use serde::Serialize;

use super::RestoreOptions;
use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::SnapshotEntry;
use crate::format::wal_object::{RestorePoint, SegmentRecord, WalObject};
use crate::id::Id;
use crate::lsm::file_class;
use crate::progress::Progress;
use crate::repo::replay::PlannedSegment;
use crate::repo::{DamagedObject, Repository};

/// Where to recover to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointInTime {
    /// The state after the last write batch whose sequence range ends at or before it.
    Sequence(u64),
    /// The newest state known to have existed at this time.
    Time(SystemTime),
    /// A restore point (`lsmvault tag`) or, failing that, the newest snapshot with this tag.
    Tag(String),
}

/// One WAL segment written into the restored directory.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveredSegment {
    /// The segment's file name in the restored directory (`000123.log`).
    pub file_name: String,
    /// Bytes written (the segment cut at the target).
    pub bytes: u64,
    /// First sequence number the written part holds.
    pub first_sequence: u64,
    /// Last sequence number the written part holds.
    pub last_sequence: u64,
    /// Whether the segment was cut before its end.
    pub cut: bool,
}

/// What a point-in-time restore used and produced.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    /// The database recovered (its RocksDB identity or the given id).
    pub database_id: String,
    /// The snapshot the recovery started from.
    pub snapshot: Id,
    /// The last sequence number the starting snapshot holds.
    pub snapshot_sequence: u64,
    /// The sequence number asked for (after mapping a time or a restore point).
    pub target_sequence: u64,
    /// The last sequence number the restored directory holds.
    pub restored_sequence: u64,
    /// WAL segments written after the snapshot was restored, oldest first.
    pub segments: Vec<RecoveredSegment>,
    /// Wall-clock time of the whole recovery.
    pub duration_seconds: f64,
    /// Snapshot files that could not be read and were left out when
    /// choosing the base snapshot (omitted from JSON when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged_snapshots: Vec<DamagedObject>,
}

/// What a [`PointInTime`] resolves to.
enum ResolvedTarget {
    /// Replay the WAL of `database` up to `sequence`.
    Sequence { database: String, sequence: u64 },
    /// A snapshot tag (no restore point of that name): the snapshot as it is.
    TaggedSnapshot(Box<SnapshotEntry>),
}

/// The newest restore point called `name` (of `database_id`, when given).
fn newest_restore_point<'a>(
    objects: &'a [WalObject],
    name: &str,
    database_id: Option<&str>,
) -> Option<&'a RestorePoint> {
    objects
        .iter()
        .filter_map(|object| match object {
            WalObject::RestorePoint(point) if point.name == *name => Some(point),
            _ => None,
        })
        .filter(|point| database_id.is_none_or(|id| id == point.database_id))
        .max_by(|a, b| a.time.cmp(&b.time))
}

/// The newest sequence number of `database` known to have existed at `time`:
/// from WAL archive times and snapshot times.
fn sequence_at_time(
    database: &str,
    time: SystemTime,
    snapshots: &[SnapshotEntry],
    objects: &[WalObject],
) -> Result<u64> {
    let from_wal = objects.iter().filter_map(|object| match object {
        WalObject::Segment(record) if record.database_id == database => {
            let archived = humantime::parse_rfc3339(&record.archived_at).ok()?;
            (archived <= time).then_some(record.last_sequence?)
        }
        _ => None,
    });
    let from_snapshots = snapshots.iter().filter_map(|entry| {
        let state = entry.snapshot.database.as_ref()?;
        (state.id.as_deref() == Some(database) && entry.snapshot.system_time() <= time)
            .then_some(state.last_sequence?)
    });
    from_wal.chain(from_snapshots).max().ok_or_else(|| {
        unavailable(format!(
            "{} is before the first snapshot and the first archived WAL of database {database}",
            humantime::format_rfc3339(time)
        ))
    })
}

/// Adds the damaged snapshot files to a "no usable snapshot" refusal: one of
/// them may be the base the target needed.
fn name_skipped(error: Error, damaged: &[DamagedObject]) -> Error {
    match error {
        Error::PointInTimeUnavailable { reason } if !damaged.is_empty() => {
            let names: Vec<&str> = damaged.iter().map(|object| object.name.as_str()).collect();
            unavailable(format!(
                "{reason}; damaged snapshot file(s) skipped: {}",
                names.join(", ")
            ))
        }
        other => other,
    }
}

/// Removes the WAL segments numbered after `last_number` that the snapshot
/// brought: they would replay writes past the target.
fn remove_later_segments(target: &Path, last_number: u64) -> Result<()> {
    for entry in fs::read_dir(target).context(|| format!("listing {}", target.display()))? {
        let entry = entry.context(|| format!("listing {}", target.display()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log")
            && file_class::file_number(&name).is_some_and(|number| number > last_number)
        {
            fs::remove_file(entry.path())
                .context(|| format!("removing {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Every database id the snapshots and the WAL archive name.
fn known_databases(snapshots: &[SnapshotEntry], objects: &[WalObject]) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = snapshots
        .iter()
        .filter_map(|entry| entry.snapshot.database.as_ref()?.id.clone())
        .collect();
    known.extend(objects.iter().map(|object| match object {
        WalObject::Segment(record) => record.database_id.clone(),
        WalObject::RestorePoint(point) => point.database_id.clone(),
    }));
    known
}

/// `given` as one of the `known` database ids: itself, or the one id it is
/// a prefix of; an unknown or ambiguous id is an error that lists the ids.
fn resolve_database_id(given: &str, known: &BTreeSet<String>) -> Result<String> {
    if known.contains(given) {
        return Ok(given.to_string());
    }
    let matching: Vec<&String> = known.iter().filter(|id| id.starts_with(given)).collect();
    let list = |ids: Vec<&String>| {
        ids.into_iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matching.as_slice() {
        [only] => Ok((*only).clone()),
        [] if known.is_empty() => Err(Error::InvalidArgument(format!(
            "unknown database id \"{given}\": the repository knows no database"
        ))),
        [] => Err(Error::InvalidArgument(format!(
            "unknown database id \"{given}\" (known: {})",
            list(known.iter().collect())
        ))),
        _ => Err(Error::InvalidArgument(format!(
            "database id \"{given}\" is ambiguous: it is a prefix of {}",
            list(matching)
        ))),
    }
}

fn unavailable(reason: String) -> Error {
    Error::PointInTimeUnavailable { reason }
}

impl Repository {
    /// The database a point-in-time restore is about: the given one (an id
    /// or a unique prefix of one), or the only one the repository knows.
    fn recovery_database(
        &self,
        explicit: Option<&str>,
        snapshots: &[SnapshotEntry],
        objects: &[WalObject],
    ) -> Result<String> {
        let known = known_databases(snapshots, objects);
        if let Some(id) = explicit {
            return resolve_database_id(id, &known);
        }
        match known.len() {
            1 => Ok(known.into_iter().next().unwrap_or_default()),
            0 => Err(unavailable(
                "the repository has no snapshot of a database with an IDENTITY and no archived WAL"
                    .into(),
            )),
            _ => Err(Error::InvalidArgument(format!(
                "several databases in the repository ({}): pass --database-id",
                known.into_iter().collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    /// Restores the state at `point` into `target` (a new or empty directory).
    pub fn restore_point_in_time(
        &self,
        point: &PointInTime,
        database_id: Option<&str>,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<RecoveryReport> {
        let started = Instant::now();
        // Damaged snapshot files are skipped, never chosen: see the module docs.
        let (snapshots, damaged) = self.snapshots_checked()?;
        let objects: Vec<WalObject> = self
            .wal_objects()?
            .into_iter()
            .map(|(_, object)| object)
            .collect();
        // A prefix resolves to the full id before anything filters by it.
        let database_id = database_id
            .map(|id| resolve_database_id(id, &known_databases(&snapshots, &objects)))
            .transpose()?;
        let (database, target_sequence) =
            match self.resolve_target(point, database_id.as_deref(), &snapshots, &objects)? {
                ResolvedTarget::Sequence { database, sequence } => (database, sequence),
                ResolvedTarget::TaggedSnapshot(entry) => {
                    let report = self.restore_tagged_snapshot(&entry, target, progress, started)?;
                    return Ok(RecoveryReport {
                        damaged_snapshots: damaged,
                        ..report
                    });
                }
            };
        // The one reachability rule (`tag` applies it too).
        let (base, plan) = self
            .plan_point_in_time(&database, target_sequence, &snapshots, &objects)
            .map_err(|error| name_skipped(error, &damaged))?;
        let snapshot_sequence = plan.snapshot_sequence;

        self.restore(
            &base.id.to_hex(),
            target,
            &RestoreOptions::default(),
            progress,
        )?;
        let segments = self.write_segments(target, &plan.segments)?;
        if let Some(last) = plan.segments.last() {
            remove_later_segments(target, last.record.segment)?;
        }
        Ok(RecoveryReport {
            database_id: database,
            snapshot: base.id,
            snapshot_sequence,
            target_sequence,
            restored_sequence: plan.restored,
            segments,
            duration_seconds: started.elapsed().as_secs_f64(),
            damaged_snapshots: damaged,
        })
    }

    /// The database and sequence number `point` names, or the snapshot a
    /// tag names when no restore point has that name.
    fn resolve_target(
        &self,
        point: &PointInTime,
        database_id: Option<&str>,
        snapshots: &[SnapshotEntry],
        objects: &[WalObject],
    ) -> Result<ResolvedTarget> {
        match point {
            PointInTime::Tag(name) => match newest_restore_point(objects, name, database_id) {
                Some(point) => Ok(ResolvedTarget::Sequence {
                    database: point.database_id.clone(),
                    sequence: point.sequence,
                }),
                None => Ok(ResolvedTarget::TaggedSnapshot(Box::new(
                    self.find_snapshot(&format!("latest:{name}"))?,
                ))),
            },
            PointInTime::Sequence(sequence) => Ok(ResolvedTarget::Sequence {
                database: self.recovery_database(database_id, snapshots, objects)?,
                sequence: *sequence,
            }),
            PointInTime::Time(time) => {
                let database = self.recovery_database(database_id, snapshots, objects)?;
                let sequence = sequence_at_time(&database, *time, snapshots, objects)?;
                Ok(ResolvedTarget::Sequence { database, sequence })
            }
        }
    }

    /// A snapshot tag: that snapshot, as it is, with no WAL replayed.
    fn restore_tagged_snapshot(
        &self,
        entry: &SnapshotEntry,
        target: &Path,
        progress: &dyn Progress,
        started: Instant,
    ) -> Result<RecoveryReport> {
        let state = entry.snapshot.database.clone().unwrap_or_default();
        let sequence = state.last_sequence.unwrap_or(0);
        self.restore(
            &entry.id.to_hex(),
            target,
            &RestoreOptions::default(),
            progress,
        )?;
        Ok(RecoveryReport {
            database_id: state.id.unwrap_or_default(),
            snapshot: entry.id,
            snapshot_sequence: sequence,
            target_sequence: sequence,
            restored_sequence: sequence,
            segments: Vec::new(),
            duration_seconds: started.elapsed().as_secs_f64(),
            damaged_snapshots: Vec::new(),
        })
    }

    /// Writes each planned segment, cut after its last kept batch, into `target`.
    fn write_segments(
        &self,
        target: &Path,
        segments: &[PlannedSegment],
    ) -> Result<Vec<RecoveredSegment>> {
        let mut recovered = Vec::with_capacity(segments.len());
        for segment in segments {
            let record = &segment.record;
            let path = target.join(&record.file_name);
            let mut file =
                fs::File::create(&path).context(|| format!("creating {}", path.display()))?;
            self.write_segment_prefix(record, segment.end, &mut file, &path)?;
            file.sync_all()
                .context(|| format!("writing {}", path.display()))?;
            recovered.push(RecoveredSegment {
                file_name: record.file_name.clone(),
                bytes: segment.end,
                first_sequence: segment.first_sequence,
                last_sequence: segment.last_sequence,
                cut: segment.end < record.size,
            });
        }
        Ok(recovered)
    }

    /// Writes the first `end` bytes of an archived segment version to `file`,
    /// one chunk in memory at a time; the whole version is still read and
    /// checked against its digest.
    fn write_segment_prefix(
        &self,
        record: &SegmentRecord,
        end: u64,
        file: &mut fs::File,
        path: &Path,
    ) -> Result<()> {
        if end > record.size {
            return Err(Error::corrupt(
                format!("WAL segment {}", record.file_name),
                "cut beyond its end",
            ));
        }
        let mut hasher = self.keys().hasher();
        let mut offset = 0u64;
        for chunk in &record.chunks {
            let bytes = self.read_blob(chunk)?;
            hasher.update(&bytes);
            let wanted = end.saturating_sub(offset).min(bytes.len() as u64) as usize;
            file.write_all(&bytes[..wanted])
                .context(|| format!("writing {}", path.display()))?;
            offset += bytes.len() as u64;
        }
        record.check_content(offset, &Id(*hasher.finalize().as_bytes()))?;
        Ok(())
    }
}
