//! Continuous WAL archiving: every new or grown WAL segment of a database is
//! stored in the chunk store, with a record of what it holds.
//!
//! A segment's content goes through the same chunker and pack writer as
//! backups, so a segment that grew shares its prefix with the version archived
//! before. Each archived version gets a small record object in `wal/`
//! (sealed like snapshots in an encrypted repository) naming the database,
//! segment number, size, digest, chunks, first and last sequence number, how
//! its readable part ends (a torn or corrupt tail is reported, never fatal),
//! and the archive time. The (archive time, last sequence) pairs are what map
//! a wall-clock time to a sequence number for point-in-time recovery.
//!
//! Order of writes: packs, index, then the record (the commit point), as for
//! snapshots. Restore points (`lsmvault tag`) are records in the same place.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use crate::codec::chunker::CutFinder;
use crate::error::{Error, Result};
use crate::format::snapshot::format_time;
use crate::format::wal_object::{RestorePoint, SegmentRecord, WalObject};
use crate::lsm::log::{sequence_ranges, Tail};
use crate::progress::NoProgress;
use crate::repo::lock::LockKind;
use crate::repo::store::store_stream;
use crate::repo::{PackWriter, Repository};

/// One segment in a [`Timeline`] (its newest archived version).
#[derive(Debug, Clone, Serialize)]
pub struct SegmentSummary {
    pub file_name: String,
    pub size: u64,
    pub first_sequence: Option<u64>,
    pub last_sequence: Option<u64>,
    /// How many versions (growth steps) were archived.
    pub versions: u64,
    pub archived_at: String,
    pub tail: String,
}

/// A range of sequence numbers recoverable from one snapshot plus the WAL.
#[derive(Debug, Clone, Serialize)]
pub struct Window {
    pub from_sequence: u64,
    pub to_sequence: u64,
    pub snapshot: String,
    pub snapshot_time: String,
}

/// The archive of one database.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timeline {
    pub database_id: String,
    pub segments: Vec<SegmentSummary>,
    pub windows: Vec<Window>,
    /// Every gap and damaged tail, named.
    pub gaps: Vec<String>,
    pub restore_points: Vec<RestorePoint>,
}

/// Options for [`Repository::archive_wal`].
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// The database id to file segments under; default: the directory's
    /// `IDENTITY` (RocksDB). Required for databases without one (LevelDB).
    pub database_id: Option<String>,
}

/// One segment as handled by one archive run.
#[derive(Debug, Clone, Serialize)]
pub struct ArchivedSegment {
    pub file_name: String,
    /// `new`, `grown`, or `unchanged` (not stored again).
    pub status: &'static str,
    pub size: u64,
    pub first_sequence: Option<u64>,
    pub last_sequence: Option<u64>,
    pub tail: String,
}

/// What one archive run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveReport {
    pub database_id: String,
    pub segments: Vec<ArchivedSegment>,
    pub bytes_read: u64,
    /// Raw bytes of new chunks.
    pub bytes_added: u64,
    /// Bytes of packs written.
    pub bytes_stored: u64,
    pub duration_seconds: f64,
}

/// The database id of `directory`: the option, or its `IDENTITY`.
pub fn database_id(directory: &Path, explicit: Option<&str>) -> Result<String> {
    if let Some(id) = explicit {
        return Ok(id.to_string());
    }
    crate::lsm::manifest::DatabaseState::read(directory)
        .id
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} has no IDENTITY file: pass --database-id to name the database",
                directory.display()
            ))
        })
}

/// `*.log` files of the database directory and of its `archive/`.
fn segment_files(directory: &Path) -> Result<Vec<(PathBuf, String, u64)>> {
    let mut found = Vec::new();
    for place in [directory.to_path_buf(), directory.join("archive")] {
        let Ok(entries) = fs::read_dir(&place) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.ends_with(".log") || !entry.file_type().is_ok_and(|kind| kind.is_file()) {
                continue;
            }
            if let Some(number) = crate::lsm::file_class::file_number(&name) {
                found.push((entry.path(), name, number));
            }
        }
    }
    if found.is_empty() && !directory.is_dir() {
        return Err(Error::SourceNotFound {
            path: directory.to_path_buf(),
        });
    }
    found.sort_by_key(|(_, _, number)| *number);
    Ok(found)
}

/// Reads a listed segment. RocksDB moves a finished segment into `archive/`
/// at any moment (`WAL_ttl_seconds`), so one listed in the database
/// directory and gone from it is read from `archive/` (found in CI: skipping
/// it left the newest records of that run unarchived). `None`: the database
/// deleted it.
fn read_segment_file(directory: &Path, path: &Path, file_name: &str) -> Result<Option<Vec<u8>>> {
    let moved = directory.join("archive").join(file_name);
    for candidate in [path, moved.as_path()] {
        match fs::read(candidate) {
            Ok(bytes) => return Ok(Some(bytes)),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(Error::io(format!("reading {}", candidate.display()), error)),
        }
    }
    Ok(None)
}

fn describe_tail(tail: &Tail) -> String {
    match tail {
        Tail::Clean => "clean".to_string(),
        Tail::Torn { offset, reason } => format!("torn at offset {offset}: {reason}"),
        Tail::Corrupt { offset, reason } => format!("corrupt at offset {offset}: {reason}"),
    }
}

impl Repository {
    /// Archives every new or grown WAL segment of the database in `directory`.
    pub fn archive_wal(&self, directory: &Path, options: &ArchiveOptions) -> Result<ArchiveReport> {
        let started = std::time::Instant::now();
        let _lock = self.lock(LockKind::Shared, "wal archive")?;
        let database_id = database_id(directory, options.database_id.as_deref())?;
        let known = self.latest_segments(&database_id)?;
        let files = segment_files(directory)?;
        let finder = CutFinder::new(&self.config().chunker, self.keys().chunker_seed())?;
        let writer = PackWriter::new(self)?;
        let host = crate::repo::lock::host_name();
        let mut report = ArchiveReport {
            database_id: database_id.clone(),
            ..ArchiveReport::default()
        };
        let mut records = Vec::new();
        for (path, file_name, segment) in files {
            let Some(bytes) = read_segment_file(directory, &path, &file_name)? else {
                continue;
            };
            report.bytes_read += bytes.len() as u64;
            let previous = known.get(&segment);
            let digest_matches = |record: &SegmentRecord| {
                record.size == bytes.len() as u64 && record.digest == self.keys().blob_id(&bytes)
            };
            let (ranges, tail) = sequence_ranges(&bytes, Some(segment))?;
            let mut archived = ArchivedSegment {
                file_name: file_name.clone(),
                status: "unchanged",
                size: bytes.len() as u64,
                first_sequence: ranges.first().map(|range| range.first_sequence),
                last_sequence: ranges.iter().rev().find_map(|range| range.last_sequence()),
                tail: describe_tail(&tail),
            };
            if previous.is_some_and(digest_matches) {
                report.segments.push(archived);
                continue;
            }
            archived.status = if previous.is_some() { "grown" } else { "new" };
            // A segment that only grew keeps its archived chunks and stores just
            // the appended bytes; anything else (a recycled file) is chunked whole.
            let appended_to = previous.filter(|record| {
                let old = record.size as usize;
                old > 0 && bytes.len() > old && self.keys().blob_id(&bytes[..old]) == record.digest
            });
            let (mut chunks, tail_start) = match appended_to {
                Some(record) => (record.chunks.clone(), record.size as usize),
                None => (Vec::new(), 0),
            };
            let appended = &bytes[tail_start..];
            let stored = store_stream(
                appended,
                appended.len() as u64,
                &finder,
                &writer,
                &NoProgress,
            )?
            .map_err(|error| Error::io(format!("reading {}", path.display()), error))?;
            chunks.extend(stored.chunks);
            let digest = self.keys().blob_id(&bytes);
            records.push(SegmentRecord {
                database_id: database_id.clone(),
                segment,
                file_name,
                size: bytes.len() as u64,
                digest,
                chunks,
                first_sequence: archived.first_sequence,
                last_sequence: archived.last_sequence,
                batches: ranges.len() as u64,
                readable_end: ranges.last().map_or(0, |range| range.end_offset),
                holes: ranges
                    .windows(2)
                    .filter(|pair| pair[1].first_sequence > pair[0].next_sequence())
                    .map(|pair| (pair[0].next_sequence(), pair[1].first_sequence - 1))
                    .collect(),
                tail: archived.tail.clone(),
                archived_at: format_time(SystemTime::now()),
                host: host.clone(),
            });
            report.segments.push(archived);
        }
        let summary = writer.finish()?;
        self.write_index(&summary.locations)?;
        for record in records {
            self.write_wal_object(&WalObject::Segment(record))?;
        }
        report.bytes_added = summary.blob_bytes;
        report.bytes_stored = summary.pack_bytes;
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The archived timeline of every database: segments, recoverable
    /// windows (from each snapshot as far as the WAL chain reaches) and gaps.
    pub fn wal_timeline(&self) -> Result<Vec<Timeline>> {
        let objects = self.wal_objects()?;
        let snapshots = self.snapshots()?;
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
            let mut versions: BTreeMap<u64, u64> = BTreeMap::new();
            for (_, object) in &objects {
                match object {
                    WalObject::Segment(record) if record.database_id == timeline.database_id => {
                        *versions.entry(record.segment).or_default() += 1;
                    }
                    WalObject::RestorePoint(point) if point.database_id == timeline.database_id => {
                        timeline.restore_points.push(point.clone());
                    }
                    _ => {}
                }
            }
            // Contiguous sequence intervals over all segments, split at every hole.
            let mut intervals: Vec<(u64, u64)> = Vec::new();
            let mut previous: Option<&SegmentRecord> = None;
            for record in latest.values() {
                timeline.segments.push(SegmentSummary {
                    file_name: record.file_name.clone(),
                    size: record.size,
                    first_sequence: record.first_sequence,
                    last_sequence: record.last_sequence,
                    versions: versions.get(&record.segment).copied().unwrap_or(1),
                    archived_at: record.archived_at.clone(),
                    tail: record.tail.clone(),
                });
                if record.tail != "clean" {
                    timeline
                        .gaps
                        .push(format!("segment {}: {}", record.file_name, record.tail));
                }
                let (Some(first), Some(last)) = (record.first_sequence, record.last_sequence)
                else {
                    continue;
                };
                let mut pieces = Vec::new();
                let mut start = first;
                for &(hole_start, hole_end) in &record.holes {
                    timeline.gaps.push(format!(
                        "sequences {hole_start}..={hole_end} missing inside segment {}",
                        record.file_name
                    ));
                    pieces.push((start, hole_start - 1));
                    start = hole_end + 1;
                }
                pieces.push((start, last));
                if let (Some(before), Some(&(piece_start, _))) = (previous, pieces.first()) {
                    if let Some(before_last) = before.last_sequence {
                        if piece_start > before_last + 1 {
                            timeline.gaps.push(format!(
                                "sequences {}..={} missing between segments {} and {} (a segment was not archived, or writes bypassed the WAL)",
                                before_last + 1,
                                piece_start - 1,
                                before.file_name,
                                record.file_name
                            ));
                        }
                    }
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
            // From each snapshot of this database, as far as the chain reaches.
            for entry in &snapshots {
                let Some(state) = entry.snapshot.database.as_ref() else {
                    continue;
                };
                let (Some(id), Some(sequence)) = (state.id.as_deref(), state.last_sequence) else {
                    continue;
                };
                if id != timeline.database_id {
                    continue;
                }
                let reach = intervals
                    .iter()
                    .find(|(start, end)| *start <= sequence + 1 && sequence < *end)
                    .map_or(sequence, |(_, end)| *end);
                timeline.windows.push(Window {
                    from_sequence: sequence,
                    to_sequence: reach,
                    snapshot: entry.id.to_hex(),
                    snapshot_time: entry.snapshot.time.clone(),
                });
            }
        }
        Ok(databases.into_values().collect())
    }

    /// Archives the WAL now and records a named restore point at the newest
    /// archived sequence number.
    pub fn create_restore_point(
        &self,
        name: &str,
        directory: &Path,
        options: &ArchiveOptions,
    ) -> Result<RestorePoint> {
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
        let point = RestorePoint {
            name: name.to_string(),
            database_id: report.database_id,
            sequence,
            time: format_time(SystemTime::now()),
            host: crate::repo::lock::host_name(),
        };
        self.write_wal_object(&WalObject::RestorePoint(point.clone()))?;
        Ok(point)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_moved_into_archive_after_listing_is_read_from_there() {
        let directory = tempfile::tempdir().unwrap();
        let listed = directory.path().join("000005.log");
        fs::create_dir(directory.path().join("archive")).unwrap();
        fs::write(directory.path().join("archive/000005.log"), b"records").unwrap();
        let bytes = read_segment_file(directory.path(), &listed, "000005.log").unwrap();
        assert_eq!(bytes.as_deref(), Some(&b"records"[..]));
        // Deleted everywhere: skipped, not an error.
        let gone = directory.path().join("000006.log");
        assert!(read_segment_file(directory.path(), &gone, "000006.log")
            .unwrap()
            .is_none());
    }
}
