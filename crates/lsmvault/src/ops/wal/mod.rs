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
//!
//! # Where things are
//! - Archiving a database directory ([`Repository::archive_wal`](crate::Repository::archive_wal)): `archive.rs`.
//! - The archived timeline, its recoverable windows and gaps
//!   ([`Repository::wal_timeline`](crate::Repository::wal_timeline)): `timeline.rs`.
//! - Named restore points ([`Repository::create_restore_point`](crate::Repository::create_restore_point)):
//!   `restore_point.rs`.

mod archive;
mod restore_point;
mod timeline;

pub use archive::{database_id, ArchiveOptions, ArchiveReport, ArchivedSegment};
pub use timeline::{SegmentSummary, SkippedObjects, Timeline, Window};
