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

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use serde::Serialize;

use super::RestoreOptions;
use crate::error::{Error, IoContext, Result};
use crate::format::snapshot::SnapshotEntry;
use crate::format::wal_object::{SegmentRecord, WalObject};
use crate::id::Id;
use crate::lsm::log::sequence_ranges;
use crate::progress::Progress;
use crate::repo::Repository;

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
    pub file_name: String,
    pub bytes: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
    /// Whether the segment was cut before its end.
    pub cut: bool,
}

/// What a point-in-time restore used and produced.
#[derive(Debug, Clone, Serialize)]
pub struct RecoveryReport {
    pub database_id: String,
    pub snapshot: String,
    pub snapshot_sequence: u64,
    /// The sequence number asked for (after mapping a time or a restore point).
    pub target_sequence: u64,
    /// The last sequence number the restored directory holds.
    pub restored_sequence: u64,
    pub segments: Vec<RecoveredSegment>,
    pub duration_seconds: f64,
}

fn unavailable(reason: String) -> Error {
    Error::PointInTimeUnavailable { reason }
}

impl Repository {
    /// The database a point-in-time restore is about: the given one, or the
    /// only one the repository knows.
    fn recovery_database(
        &self,
        explicit: Option<&str>,
        snapshots: &[SnapshotEntry],
        objects: &[WalObject],
    ) -> Result<String> {
        if let Some(id) = explicit {
            return Ok(id.to_string());
        }
        let mut known: BTreeSet<String> = snapshots
            .iter()
            .filter_map(|entry| entry.snapshot.database.as_ref()?.id.clone())
            .collect();
        known.extend(objects.iter().map(|object| match object {
            WalObject::Segment(record) => record.database_id.clone(),
            WalObject::RestorePoint(point) => point.database_id.clone(),
        }));
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
        let started = std::time::Instant::now();
        let snapshots = self.snapshots()?;
        let objects: Vec<WalObject> = self
            .wal_objects()?
            .into_iter()
            .map(|(_, object)| object)
            .collect();
        let (database, target_sequence) = match point {
            PointInTime::Tag(name) => {
                let restore_point = objects
                    .iter()
                    .filter_map(|object| match object {
                        WalObject::RestorePoint(point) if point.name == *name => Some(point),
                        _ => None,
                    })
                    .filter(|point| database_id.is_none_or(|id| id == point.database_id))
                    .max_by(|a, b| a.time.cmp(&b.time));
                match restore_point {
                    Some(point) => (point.database_id.clone(), point.sequence),
                    None => {
                        // A snapshot tag: that snapshot, as it is.
                        let entry = self.find_snapshot(&format!("latest:{name}"))?;
                        let state = entry.snapshot.database.clone().unwrap_or_default();
                        let sequence = state.last_sequence.unwrap_or(0);
                        self.restore(
                            &entry.id.to_hex(),
                            target,
                            &RestoreOptions::default(),
                            progress,
                        )?;
                        return Ok(RecoveryReport {
                            database_id: state.id.unwrap_or_default(),
                            snapshot: entry.id.to_hex(),
                            snapshot_sequence: sequence,
                            target_sequence: sequence,
                            restored_sequence: sequence,
                            segments: Vec::new(),
                            duration_seconds: started.elapsed().as_secs_f64(),
                        });
                    }
                }
            }
            PointInTime::Sequence(sequence) => (
                self.recovery_database(database_id, &snapshots, &objects)?,
                *sequence,
            ),
            PointInTime::Time(time) => {
                let database = self.recovery_database(database_id, &snapshots, &objects)?;
                let from_wal = objects.iter().filter_map(|object| match object {
                    WalObject::Segment(record) if record.database_id == database => {
                        let archived = humantime::parse_rfc3339(&record.archived_at).ok()?;
                        (archived <= *time).then_some(record.last_sequence?)
                    }
                    _ => None,
                });
                let from_snapshots = snapshots.iter().filter_map(|entry| {
                    let state = entry.snapshot.database.as_ref()?;
                    (state.id.as_deref() == Some(database.as_str())
                        && entry.snapshot.system_time() <= *time)
                        .then_some(state.last_sequence?)
                });
                let sequence = from_wal.chain(from_snapshots).max().ok_or_else(|| {
                    unavailable(format!(
                        "{} is before the first snapshot and the first archived WAL of database {database}",
                        humantime::format_rfc3339(*time)
                    ))
                })?;
                (database, sequence)
            }
        };

        // The newest snapshot at or before the target.
        let base = snapshots
            .iter()
            .filter_map(|entry| {
                let state = entry.snapshot.database.as_ref()?;
                let sequence = state.last_sequence?;
                (state.id.as_deref() == Some(database.as_str()) && sequence <= target_sequence)
                    .then_some((sequence, entry))
            })
            .max_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(a.1.snapshot.system_time().cmp(&b.1.snapshot.system_time()))
            });
        let Some((snapshot_sequence, base)) = base else {
            let first = snapshots
                .iter()
                .filter_map(|entry| {
                    let state = entry.snapshot.database.as_ref()?;
                    (state.id.as_deref() == Some(database.as_str())).then_some(state.last_sequence?)
                })
                .min();
            return Err(unavailable(match first {
                Some(first) => format!(
                    "sequence {target_sequence} is before the first snapshot of database {database} (it holds sequence {first})"
                ),
                None => format!("no snapshot of database {database} records its sequence number"),
            }));
        };

        // Walk the archived records after the snapshot, up to the target.
        // (record, cut offset, first and last sequence kept). Only one
        // segment's content is held at a time: it is parsed here, dropped,
        // and streamed again into the target below.
        let mut segments: Vec<(SegmentRecord, u64, u64, u64)> = Vec::new();
        let mut expected = snapshot_sequence + 1;
        let mut restored = snapshot_sequence;
        'segments: for record in self.latest_segments(&database)?.into_values() {
            if record
                .last_sequence
                .is_none_or(|last| last <= snapshot_sequence)
                || expected > target_sequence
            {
                continue;
            }
            let content = self.read_segment(&record)?;
            let (ranges, _) = sequence_ranges(&content, Some(record.segment))?;
            let mut cut = None;
            let mut first_included = None;
            for range in ranges {
                let Some(last) = range.last_sequence() else {
                    continue;
                };
                if last <= snapshot_sequence {
                    continue;
                }
                if range.first_sequence > expected {
                    if target_sequence >= expected {
                        return Err(unavailable(format!(
                            "sequence {target_sequence} falls into a gap of the archive: sequences {expected}..={} are missing before segment {} (missing segment or a write without WAL)",
                            range.first_sequence - 1,
                            record.file_name
                        )));
                    }
                    break;
                }
                if last > target_sequence {
                    if let Some(end) = cut {
                        segments.push((record, end, first_included.unwrap_or(last), restored));
                    }
                    break 'segments;
                }
                first_included.get_or_insert(range.first_sequence);
                cut = Some(range.end_offset);
                expected = range.next_sequence();
                restored = last;
            }
            if let Some(end) = cut {
                let first = first_included.unwrap_or(restored);
                segments.push((record, end, first, restored));
            }
        }
        if restored < target_sequence && expected <= target_sequence {
            let newest = objects
                .iter()
                .filter_map(|object| match object {
                    WalObject::Segment(record) if record.database_id == database => {
                        record.last_sequence
                    }
                    _ => None,
                })
                .max()
                .unwrap_or(snapshot_sequence);
            if newest >= target_sequence {
                return Err(unavailable(format!(
                    "sequence {target_sequence} falls into a gap of the archive after sequence {restored}"
                )));
            }
            return Err(unavailable(format!(
                "sequence {target_sequence} is after the newest archived write of database {database} (sequence {newest})"
            )));
        }

        self.restore(
            &base.id.to_hex(),
            target,
            &RestoreOptions::default(),
            progress,
        )?;
        let mut report = RecoveryReport {
            database_id: database,
            snapshot: base.id.to_hex(),
            snapshot_sequence,
            target_sequence,
            restored_sequence: restored,
            segments: Vec::new(),
            duration_seconds: 0.0,
        };
        let last_number = segments.last().map(|(record, ..)| record.segment);
        for (record, end, first, last) in &segments {
            let path = target.join(&record.file_name);
            let mut file =
                fs::File::create(&path).context(|| format!("creating {}", path.display()))?;
            self.write_segment_prefix(record, *end, &mut file, &path)?;
            file.sync_all()
                .context(|| format!("writing {}", path.display()))?;
            report.segments.push(RecoveredSegment {
                file_name: record.file_name.clone(),
                bytes: *end,
                first_sequence: *first,
                last_sequence: *last,
                cut: *end < record.size,
            });
        }
        // Later segments the snapshot may hold would replay writes past the target.
        if let Some(last_number) = last_number {
            for entry in fs::read_dir(target).context(|| format!("listing {}", target.display()))? {
                let entry = entry.context(|| format!("listing {}", target.display()))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.ends_with(".log")
                    && crate::lsm::file_class::file_number(&name)
                        .is_some_and(|number| number > last_number)
                {
                    fs::remove_file(entry.path())
                        .context(|| format!("removing {}", entry.path().display()))?;
                }
            }
        }
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
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
        let actual = Id(*hasher.finalize().as_bytes());
        if offset != record.size || actual != record.digest {
            return Err(Error::ChecksumMismatch {
                object: format!(
                    "archived WAL segment {} of database {}",
                    record.file_name, record.database_id
                ),
                expected: record.digest.to_hex(),
                actual: actual.to_hex(),
            });
        }
        Ok(())
    }
}
