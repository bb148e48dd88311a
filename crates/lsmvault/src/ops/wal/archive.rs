//! Archiving a database directory's WAL: every `*.log` segment (in the
//! directory and in its `archive/`) that is new or has grown since its last
//! archived version is stored, and gets a record.
//!
//! A segment that only grew keeps the chunks of its archived version and
//! stores just the appended bytes; anything else (a recycled file) is chunked
//! whole. Records are written after the packs and the index, so a record
//! never names a chunk the repository does not hold.

use std::collections::{BTreeMap, BTreeSet};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::codec::chunker::CutFinder;
use crate::error::{Error, Result};
use crate::format::snapshot::format_time;
use crate::format::wal_object::{SegmentRecord, WalObject};
use crate::id::Id;
use crate::lsm::log::{sequence_ranges, RecordRange, Tail};
use crate::lsm::read_regular_file;
use crate::progress::NoProgress;
use crate::repo::lock::LockKind;
use crate::repo::store::store_stream;
use crate::repo::wal::keep_newest;
use crate::repo::{PackWriter, Repository, WriteSummary};

use super::hold::{log_files, Holding};
use super::timeline::{missing_sequences, MissingSequences};

/// Options for [`Repository::archive_wal`].
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    /// The database id to file segments under; default: the directory's
    /// `IDENTITY` (RocksDB). Required for databases without one (LevelDB).
    pub database_id: Option<String>,
    /// The WAL holding directory (see [`Holding`]); default
    /// `DBDIR/.lsmvault-wal-hold`. Its links are always read.
    pub hold_dir: Option<PathBuf>,
    /// Hard-link every WAL file into the holding directory before reading
    /// (a watcher's rounds), creating it.
    pub hold_new: bool,
    /// After the round, also release the links of files the database still
    /// has (a one-shot archive, a watcher's last round); otherwise only
    /// those whose file was gone before they were read.
    pub release_held: bool,
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
    /// Sequence numbers missing from the archive after this run that were
    /// not missing before it (see [`ArchiveReport::check_gaps`]).
    pub new_gaps: Vec<MissingSequences>,
    /// Links of the holding directory removed after this run.
    pub held_released: u64,
    /// Files skipped, each with why (a symlink or FIFO named like a WAL
    /// segment is never read).
    pub warnings: Vec<String>,
}

impl ArchiveReport {
    /// [`Error::WalGap`] when this run found new gaps: the database deleted
    /// a WAL file (or part of one) before it was archived.
    pub fn check_gaps(&self) -> Result<()> {
        if self.new_gaps.is_empty() {
            return Ok(());
        }
        Err(Error::WalGap {
            database: self.database_id.clone(),
            gaps: self
                .new_gaps
                .iter()
                .map(|gap| gap.description.clone())
                .collect(),
        })
    }
}

/// The gaps of `after` not inside a gap of `before` (a gap that shrank as a
/// late segment was archived is not new).
fn new_gaps(before: &[MissingSequences], after: Vec<MissingSequences>) -> Vec<MissingSequences> {
    after
        .into_iter()
        .filter(|gap| {
            !before
                .iter()
                .any(|old| old.first <= gap.first && gap.last <= old.last)
        })
        .collect()
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

/// One segment of the database as found on disk: where to read it, in
/// order of preference.
struct FoundSegment {
    number: u64,
    file_name: String,
    /// The holding link first (same inode as the database's file while it
    /// has it, the only copy after it deleted it), then the database
    /// directory, then `archive/`.
    candidates: Vec<PathBuf>,
}

/// Every `*.log` of the database directory, its `archive/` and the holding
/// directory (every repository's part), by segment number, newest first.
fn segment_files(directory: &Path, holding: &Holding) -> Result<Vec<FoundSegment>> {
    let mut found: BTreeMap<u64, FoundSegment> = BTreeMap::new();
    let mut places = holding.link_places();
    places.extend([directory.to_path_buf(), directory.join("archive")]);
    for place in &places {
        for (_, file_name, number) in log_files(place) {
            found.entry(number).or_insert_with(|| FoundSegment {
                number,
                candidates: places.iter().map(|place| place.join(&file_name)).collect(),
                file_name,
            });
        }
    }
    if found.is_empty() && !directory.is_dir() {
        return Err(Error::SourceNotFound {
            path: directory.to_path_buf(),
        });
    }
    Ok(found.into_values().rev().collect())
}

/// Reads a listed segment from the first of its places that has it: RocksDB
/// moves a finished segment into `archive/` at any moment (`WAL_ttl_seconds`)
/// and deletes it at any moment (found in CI: skipping a moved one left the
/// newest records of that run unarchived). `None`: deleted everywhere. A
/// place where it is no regular file (a symlink, say to `/dev/zero`, a
/// FIFO) is skipped with a warning in `warnings`, never read.
fn read_segment_file(
    candidates: &[PathBuf],
    warnings: &mut Vec<String>,
) -> Result<Option<(PathBuf, Vec<u8>)>> {
    for candidate in candidates {
        match read_regular_file(candidate) {
            Ok(Some(bytes)) => return Ok(Some((candidate.clone(), bytes))),
            Ok(None) => warnings.push(format!(
                "{}: not a regular file (a symlink, FIFO or device named like a WAL segment), skipped",
                candidate.display()
            )),
            Err(error) if error.kind() == ErrorKind::NotFound => continue,
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
    /// Archives every new or grown WAL segment of the database in
    /// `directory` (and its `archive/` and holding directory), newest
    /// first: once a newer segment exists, RocksDB writes no more to the
    /// older ones, so they are read at their final size and a round never
    /// shows a gap that the next one would close.
    pub fn archive_wal(&self, directory: &Path, options: &ArchiveOptions) -> Result<ArchiveReport> {
        let started = Instant::now();
        let _lock = self.lock(LockKind::Shared, "wal archive")?;
        let database_id = database_id(directory, options.database_id.as_deref())?;
        let holding = self.open_holding(directory, options)?;
        // Before anything is read: these links' content is final.
        let orphaned = holding.orphaned();
        let known = self.latest_segments(&database_id)?;
        let files = segment_files(directory, &holding)?;
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
        let (records, read) = self.archive_segment_files(&run, files, &known, &mut report)?;
        let summary = run.writer.finish()?;
        let latest = self.commit_segments(&summary, records, &known)?;
        // Committed: the links whose final content this run archived can go.
        report.held_released = holding.release(&read, &orphaned, options.release_held)?;
        report.new_gaps = self.gaps_opened(&report.database_id, &known, &latest)?;
        report.bytes_added = summary.blob_bytes;
        report.bytes_stored = summary.pack_bytes;
        report.duration_seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The holding directory of the database in `directory`, checked, and
    /// with `options.hold_new` reopened and holding every segment there.
    fn open_holding(&self, directory: &Path, options: &ArchiveOptions) -> Result<Holding> {
        let holding = Holding::new(directory, options.hold_dir.as_deref(), &self.config().id)?;
        holding.check()?;
        if options.hold_new {
            holding.reopen()?;
            holding.hold_all()?;
        }
        Ok(holding)
    }

    /// Stores every segment of `files` (newest first) that `known` (the
    /// newest archived version of each) does not hold as it is now, into
    /// `report`. Returns the records to write and the names of the files
    /// read.
    fn archive_segment_files(
        &self,
        run: &ArchiveRun<'_>,
        files: Vec<FoundSegment>,
        known: &BTreeMap<u64, SegmentRecord>,
        report: &mut ArchiveReport,
    ) -> Result<(Vec<SegmentRecord>, BTreeSet<String>)> {
        let mut records = Vec::new();
        let mut read = BTreeSet::new();
        for found in files {
            let Some((path, bytes)) = read_segment_file(&found.candidates, &mut report.warnings)?
            else {
                continue;
            };
            report.bytes_read += bytes.len() as u64;
            let previous = known.get(&found.number);
            let (archived, record) = self.archive_segment(
                run,
                &path,
                found.file_name.clone(),
                found.number,
                &bytes,
                previous,
            )?;
            read.insert(found.file_name);
            records.extend(record);
            report.segments.push(archived);
        }
        report.segments.reverse();
        Ok((records, read))
    }

    /// Commits the run: its packs protected and indexed, then its segment
    /// records written. Returns `known` updated with them.
    fn commit_segments(
        &self,
        summary: &WriteSummary,
        records: Vec<SegmentRecord>,
        known: &BTreeMap<u64, SegmentRecord>,
    ) -> Result<BTreeMap<u64, SegmentRecord>> {
        self.protect_packs(&summary.published)?;
        self.write_index(&summary.locations)?;
        let mut latest = known.clone();
        for record in records {
            self.write_wal_object(&WalObject::Segment(record.clone()))?;
            keep_newest(&mut latest, record);
        }
        Ok(latest)
    }

    /// The gaps in the archived timeline that `latest` has and `known` (the
    /// timeline before this run) had not.
    fn gaps_opened(
        &self,
        database_id: &str,
        known: &BTreeMap<u64, SegmentRecord>,
        latest: &BTreeMap<u64, SegmentRecord>,
    ) -> Result<Vec<MissingSequences>> {
        let before = missing_sequences(known);
        let gaps = new_gaps(&before, missing_sequences(latest));
        if gaps.is_empty() {
            return Ok(gaps);
        }
        // Another run (a `tag`, a one-shot archive) may have archived
        // the missing part meanwhile: the repository decides.
        let stored = missing_sequences(&self.latest_segments(database_id)?);
        Ok(new_gaps(&before, stored))
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
    use std::fs;

    #[test]
    fn a_segment_is_read_from_the_first_place_that_has_it() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path();
        fs::create_dir(db.join("archive")).unwrap();
        fs::write(db.join("archive/000005.log"), b"records").unwrap();
        let holding = Holding::new(db, None, "0123abcd").unwrap();
        let found = segment_files(db, &holding).unwrap();
        assert_eq!(found.len(), 1);
        // Listed in archive/ only; the holding link and the database
        // directory come first when they have it.
        let mut warnings = Vec::new();
        let read =
            |warnings: &mut Vec<String>| read_segment_file(&found[0].candidates, warnings).unwrap();
        let (path, bytes) = read(&mut warnings).unwrap();
        assert_eq!(bytes, b"records");
        assert_eq!(path, db.join("archive/000005.log"));
        let _owner = holding.create().unwrap();
        fs::write(holding.path().join("000005.log"), b"held").unwrap();
        let (_, bytes) = read(&mut warnings).unwrap();
        assert_eq!(bytes, b"held");
        // Deleted everywhere: skipped, not an error.
        for place in [holding.path(), &db.join("archive")] {
            fs::remove_file(place.join("000005.log")).unwrap();
        }
        assert!(read(&mut warnings).is_none());
        assert!(warnings.is_empty());
        // A symlink is skipped with a warning, the next place read.
        std::os::unix::fs::symlink("/dev/zero", db.join("000005.log")).unwrap();
        fs::write(db.join("archive/000005.log"), b"records").unwrap();
        let (path, _) = read(&mut warnings).unwrap();
        assert_eq!(path, db.join("archive/000005.log"));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
    }

    #[test]
    fn another_repositorys_links_are_read_after_this_ones() {
        let directory = tempfile::tempdir().unwrap();
        let db = directory.path();
        let mine = Holding::new(db, None, "aaaa").unwrap();
        let theirs = Holding::new(db, None, "bbbb").unwrap();
        let _owner = theirs.create().unwrap();
        fs::write(theirs.path().join("000007.log"), b"theirs").unwrap();
        let found = segment_files(db, &mine).unwrap();
        let (path, bytes) = read_segment_file(&found[0].candidates, &mut Vec::new())
            .unwrap()
            .unwrap();
        assert_eq!(
            (path, bytes),
            (theirs.path().join("000007.log"), b"theirs".to_vec())
        );
    }

    #[test]
    fn only_gaps_outside_the_old_ones_are_new() {
        let gap = |first, last| MissingSequences {
            first,
            last,
            description: format!("{first}..={last}"),
        };
        let before = [gap(10, 20)];
        assert!(new_gaps(&before, vec![gap(12, 20)]).is_empty());
        assert_eq!(
            new_gaps(&before, vec![gap(10, 20), gap(30, 31)]),
            [gap(30, 31)]
        );
        assert_eq!(new_gaps(&before, vec![gap(5, 20)]), [gap(5, 20)]);
    }
}
