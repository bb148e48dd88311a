//! The archived timeline of each database: its segments (newest version of
//! each), the sequence ranges recoverable from each snapshot as far as the
//! WAL chain reaches, every gap and damaged tail, and its restore points.
//! Damaged snapshot files (they open no window) and WAL objects are left
//! out and returned beside the timelines so the caller can name them.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::error::Result;
use crate::format::snapshot::SnapshotEntry;
use crate::format::wal_object::{RestorePoint, SegmentRecord, WalObject};
use crate::id::Id;
use crate::repo::{DamagedObject, Repository};
use crate::time::Timestamp;

/// One segment in a [`Timeline`] (its newest archived version).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentSummary {
    /// The segment's file name (`000123.log`).
    pub file_name: String,
    /// Size of its newest archived version.
    pub size: u64,
    /// First sequence number it holds.
    pub first_sequence: Option<u64>,
    /// Last sequence number it holds.
    pub last_sequence: Option<u64>,
    /// How many versions (growth steps) were archived.
    pub versions: u64,
    /// When the newest version was archived.
    pub archived_at: Timestamp,
    /// `clean`, or how its readable part ends.
    pub tail: String,
}

/// A range of sequence numbers recoverable from one snapshot plus the WAL.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    /// First sequence number recoverable in the window.
    pub from_sequence: u64,
    /// Last sequence number recoverable in the window.
    pub to_sequence: u64,
    /// The snapshot the window starts from.
    pub snapshot: Id,
    /// When that snapshot was taken.
    pub snapshot_time: Timestamp,
}

/// The archive of one database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    /// The database the archive belongs to.
    pub database_id: String,
    /// Every archived segment, in file-number order.
    pub segments: Vec<SegmentSummary>,
    /// Ranges of sequence numbers a point-in-time restore can reach.
    pub windows: Vec<Window>,
    /// Every gap and damaged tail, named.
    pub gaps: Vec<String>,
    /// The gaps that are missing sequence numbers (not damaged tails).
    pub missing_sequences: Vec<MissingSequences>,
    /// Named restore points (`lsmvault tag`) of this database.
    pub restore_points: Vec<RestorePoint>,
}

/// Sequence numbers the archive of a database does not hold between two of
/// its batches: inside a segment, or between two segments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MissingSequences {
    /// First missing sequence number.
    pub first: u64,
    /// Last missing sequence number.
    pub last: u64,
    /// The gap in words, naming the segments around it.
    pub description: String,
}

/// The objects [`Repository::wal_timeline`] could not read, named.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SkippedObjects {
    /// Snapshot files: they open no window.
    pub snapshots: Vec<DamagedObject>,
    /// WAL objects: their segment versions and restore points are left out
    /// (the timeline falls back to an older version of a segment, or shows
    /// the gap).
    pub wal_objects: Vec<DamagedObject>,
}

/// Inclusive ranges of sequence numbers the archive holds without a gap.
type Intervals = Vec<(u64, u64)>;

impl Repository {
    /// The archived timeline of every database: segments, recoverable
    /// windows (from each snapshot as far as the WAL chain reaches) and gaps;
    /// beside it the snapshot files and WAL objects that could not be read.
    pub fn wal_timeline(&self) -> Result<(Vec<Timeline>, SkippedObjects)> {
        let (objects, damaged_wal_objects) = self.wal_objects_checked()?;
        let (snapshots, damaged) = self.snapshots_checked()?;
        let mut databases: BTreeMap<String, Timeline> = BTreeMap::new();
        for (_, object) in &objects {
            let id = match object {
                WalObject::Segment(record) => &record.database_id,
                WalObject::RestorePoint(point) => &point.database_id,
            };
            databases.entry(id.clone()).or_insert_with(|| Timeline {
                database_id: id.clone(),
                ..Timeline::default()
            });
        }
        for timeline in databases.values_mut() {
            let latest = self.latest_segments(&timeline.database_id)?;
            let versions = timeline.add_restore_points_and_count_versions(&objects);
            let intervals = timeline.add_segments(&latest, &versions);
            timeline.add_windows(&snapshots, &intervals);
        }
        let skipped = SkippedObjects {
            snapshots: damaged,
            wal_objects: damaged_wal_objects,
        };
        Ok((databases.into_values().collect(), skipped))
    }
}

/// The sequence numbers missing from an archive whose newest segment
/// versions are `latest` (what [`Repository::latest_segments`] returns).
pub(super) fn missing_sequences(latest: &BTreeMap<u64, SegmentRecord>) -> Vec<MissingSequences> {
    let mut timeline = Timeline::default();
    timeline.add_segments(latest, &BTreeMap::new());
    timeline.missing_sequences
}

impl Timeline {
    /// Adds this database's restore points; returns how many versions of
    /// each segment (by number) were archived.
    fn add_restore_points_and_count_versions(
        &mut self,
        objects: &[(Id, WalObject)],
    ) -> BTreeMap<u64, u64> {
        let mut versions: BTreeMap<u64, u64> = BTreeMap::new();
        for (_, object) in objects {
            match object {
                WalObject::Segment(record) if record.database_id == self.database_id => {
                    *versions.entry(record.segment).or_default() += 1;
                }
                WalObject::RestorePoint(point) if point.database_id == self.database_id => {
                    self.restore_points.push(point.clone());
                }
                _ => {}
            }
        }
        versions
    }

    /// Adds a summary of each segment (newest versions, in segment order) and
    /// the gaps: damaged tails, holes inside a segment, and sequence numbers
    /// missing between segments. Returns the contiguous sequence intervals
    /// over all segments, split at every hole.
    fn add_segments(
        &mut self,
        latest: &BTreeMap<u64, SegmentRecord>,
        versions: &BTreeMap<u64, u64>,
    ) -> Intervals {
        let mut intervals: Intervals = Vec::new();
        // The last segment that holds batches.
        let mut previous: Option<&SegmentRecord> = None;
        for record in latest.values() {
            self.segments.push(SegmentSummary {
                file_name: record.file_name.clone(),
                size: record.size,
                first_sequence: record.first_sequence,
                last_sequence: record.last_sequence,
                versions: versions.get(&record.segment).copied().unwrap_or(1),
                archived_at: Timestamp::parse_or_epoch(&record.archived_at),
                tail: record.tail.clone(),
            });
            if record.tail != "clean" {
                self.gaps
                    .push(format!("segment {}: {}", record.file_name, record.tail));
            }
            let (Some(first), Some(last)) = (record.first_sequence, record.last_sequence) else {
                continue;
            };
            let pieces = self.segment_pieces(record, first, last);
            if let (Some(before), Some(&(piece_start, _))) = (previous, pieces.first()) {
                self.gap_between(before, record, piece_start);
            }
            for piece in pieces {
                match intervals.last_mut() {
                    Some(last_interval) if piece.0 <= last_interval.1 + 1 => {
                        last_interval.1 = last_interval.1.max(piece.1)
                    }
                    _ => intervals.push(piece),
                }
            }
            previous = Some(record);
        }
        intervals
    }

    /// The sequence ranges one segment holds (`first..=last` split at its
    /// holes), adding a gap for each hole.
    fn segment_pieces(&mut self, record: &SegmentRecord, first: u64, last: u64) -> Intervals {
        let mut pieces = Vec::new();
        let mut start = first;
        for &(hole_start, hole_end) in &record.holes {
            self.add_missing(
                hole_start,
                hole_end,
                format!(
                    "sequences {hole_start}..={hole_end} missing inside segment {}",
                    record.file_name
                ),
            );
            pieces.push((start, hole_start - 1));
            start = hole_end + 1;
        }
        pieces.push((start, last));
        pieces
    }

    /// Adds a gap when `record`'s first batch (at `start`) does not follow
    /// the last batch of `before`.
    fn gap_between(&mut self, before: &SegmentRecord, record: &SegmentRecord, start: u64) {
        if let Some(before_last) = before.last_sequence {
            if start > before_last + 1 {
                let description = format!(
                    "sequences {}..={} missing between segments {} and {} (a segment was not archived, or writes bypassed the WAL)",
                    before_last + 1,
                    start - 1,
                    before.file_name,
                    record.file_name
                );
                self.add_missing(before_last + 1, start - 1, description);
            }
        }
    }

    fn add_missing(&mut self, first: u64, last: u64, description: String) {
        self.gaps.push(description.clone());
        self.missing_sequences.push(MissingSequences {
            first,
            last,
            description,
        });
    }

    /// From each snapshot of this database, as far as the chain reaches.
    fn add_windows(&mut self, snapshots: &[SnapshotEntry], intervals: &Intervals) {
        for entry in snapshots {
            let Some(state) = entry.snapshot.database.as_ref() else {
                continue;
            };
            let (Some(id), Some(sequence)) = (state.id.as_deref(), state.last_sequence) else {
                continue;
            };
            if id != self.database_id {
                continue;
            }
            let reach = intervals
                .iter()
                .find(|(start, end)| *start <= sequence + 1 && sequence < *end)
                .map_or(sequence, |(_, end)| *end);
            self.windows.push(Window {
                from_sequence: sequence,
                to_sequence: reach,
                snapshot: entry.id,
                snapshot_time: entry.snapshot.timestamp(),
            });
        }
    }
}
