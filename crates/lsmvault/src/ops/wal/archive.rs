//! Archiving a database directory's WAL: every `*.log` segment (in the
//! directory and in its `archive/`) that is new or has grown since its last
//! archived version is stored, and gets a record.
//!
//! A segment that only grew keeps the chunks of its archived version and
//! stores just the appended bytes; anything else (a recycled file) is chunked
//! whole. Records are written after the packs and the index, so a record
//! never names a chunk the repository does not hold.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::codec::chunker::CutFinder;
use crate::error::{Error, Result};
use crate::format::snapshot::format_time;
use crate::format::wal_object::{SegmentRecord, WalObject};
use crate::id::Id;
use crate::lsm::log::{sequence_ranges, RecordRange, Tail};
use crate::progress::NoProgress;
use crate::repo::lock::LockKind;
use crate::repo::store::store_stream;
use crate::repo::{PackWriter, Repository};

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
    /// The segment's file name (`000123.log`).
    pub file_name: String,
    /// `new`, `grown`, or `unchanged` (not stored again).
    pub status: &'static str,
    /// Its size when read.
    pub size: u64,
    /// First sequence number of its readable write batches.
    pub first_sequence: Option<u64>,
    /// Last sequence number of its readable write batches.
    pub last_sequence: Option<u64>,
    /// `clean`, or how the readable part ends (torn or corrupt, with the offset).
    pub tail: String,
}

/// What one archive run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ArchiveReport {
    /// The database the segments were filed under.
    pub database_id: String,
    /// Every segment looked at, in file-number order.
    pub segments: Vec<ArchivedSegment>,
    /// Bytes of segment files read.
    pub bytes_read: u64,
    /// Raw bytes of new chunks.
    pub bytes_added: u64,
    /// Bytes of packs written.
    pub bytes_stored: u64,
    /// Wall-clock time of the run.
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

/// What every segment of one archive run shares.
struct ArchiveRun<'a> {
    database_id: String,
    finder: CutFinder,
    writer: PackWriter<'a>,
    host: String,
}

impl Repository {
    /// Archives every new or grown WAL segment of the database in `directory`.
    pub fn archive_wal(&self, directory: &Path, options: &ArchiveOptions) -> Result<ArchiveReport> {
        let started = Instant::now();
        let _lock = self.lock(LockKind::Shared, "wal archive")?;
        let database_id = database_id(directory, options.database_id.as_deref())?;
        let known = self.latest_segments(&database_id)?;
        let files = segment_files(directory)?;
        let run = ArchiveRun {
            database_id: database_id.clone(),
            finder: CutFinder::new(&self.config().chunker, self.keys().chunker_seed())?,
            writer: PackWriter::new(self)?,
            host: crate::repo::lock::host_name(),
        };
        let mut report = ArchiveReport {
            database_id,
            ..ArchiveReport::default()
        };
        let mut records = Vec::new();
        for (path, file_name, segment) in files {
            let Some(bytes) = read_segment_file(directory, &path, &file_name)? else {
                continue;
            };
            report.bytes_read += bytes.len() as u64;
            let previous = known.get(&segment);
            let (archived, record) =
                self.archive_segment(&run, &path, file_name, segment, &bytes, previous)?;
            records.extend(record);
            report.segments.push(archived);
        }
        let summary = run.writer.finish()?;
        self.protect_packs(&summary.published)?;
        self.write_index(&summary.locations)?;
        for record in records {
            self.write_wal_object(&WalObject::Segment(record))?;
        }
        report.bytes_added = summary.blob_bytes;
        report.bytes_stored = summary.pack_bytes;
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Archives one segment's current content unless `previous` (its newest
    /// archived version) already holds exactly it. Returns what the run
    /// reports about it and the record to write, if any.
    fn archive_segment(
        &self,
        run: &ArchiveRun<'_>,
        path: &Path,
        file_name: String,
        segment: u64,
        bytes: &[u8],
        previous: Option<&SegmentRecord>,
    ) -> Result<(ArchivedSegment, Option<SegmentRecord>)> {
        let digest_matches = |record: &SegmentRecord| {
            record.size == bytes.len() as u64 && record.digest == self.keys().blob_id(bytes)
        };
        let (ranges, tail) = sequence_ranges(bytes, Some(segment))?;
        let mut archived = ArchivedSegment {
            file_name: file_name.clone(),
            status: "unchanged",
            size: bytes.len() as u64,
            first_sequence: ranges.first().map(|range| range.first_sequence),
            last_sequence: ranges.iter().rev().find_map(|range| range.last_sequence()),
            tail: describe_tail(&tail),
        };
        if previous.is_some_and(digest_matches) {
            return Ok((archived, None));
        }
        archived.status = if previous.is_some() { "grown" } else { "new" };
        let chunks = self.store_segment(run, path, bytes, previous)?;
        let record = SegmentRecord {
            database_id: run.database_id.clone(),
            segment,
            file_name,
            size: bytes.len() as u64,
            digest: self.keys().blob_id(bytes),
            chunks,
            first_sequence: archived.first_sequence,
            last_sequence: archived.last_sequence,
            batches: ranges.len() as u64,
            readable_end: ranges.last().map_or(0, |range| range.end_offset),
            holes: holes(&ranges),
            tail: archived.tail.clone(),
            archived_at: format_time(SystemTime::now()),
            host: run.host.clone(),
        };
        Ok((archived, Some(record)))
    }

    /// Stores a segment's content and returns its chunks. A segment that only
    /// grew keeps its archived chunks and stores just the appended bytes;
    /// anything else (a recycled file) is chunked whole.
    fn store_segment(
        &self,
        run: &ArchiveRun<'_>,
        path: &Path,
        bytes: &[u8],
        previous: Option<&SegmentRecord>,
    ) -> Result<Vec<Id>> {
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
            &run.finder,
            &run.writer,
            &NoProgress,
        )?
        .map_err(|error| Error::io(format!("reading {}", path.display()), error))?;
        chunks.extend(stored.chunks);
        Ok(chunks)
    }
}

/// Sequence numbers missing between consecutive batches of one segment, as
/// inclusive (first, last) ranges.
fn holes(ranges: &[RecordRange]) -> Vec<(u64, u64)> {
    ranges
        .windows(2)
        .filter(|pair| pair[1].first_sequence > pair[0].next_sequence())
        .map(|pair| (pair[0].next_sequence(), pair[1].first_sequence - 1))
        .collect()
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
