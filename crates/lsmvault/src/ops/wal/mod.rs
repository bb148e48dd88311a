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
//! snapshots. A round that leaves the archive with sequence numbers missing
//! that were not missing before it reports them ([`crate::Error::WalGap`])
//! after committing. Restore points (`lsmvault tag`) are records in the same place.
//!
//! # Where things are
//! - Archiving a database directory ([`Repository::archive_wal`](crate::Repository::archive_wal)): `archive.rs`.
//! - The archived timeline, its recoverable windows and gaps
//!   ([`Repository::wal_timeline`](crate::Repository::wal_timeline)): `timeline.rs`.
//! - The WAL holding directory (hard links that keep a WAL file's data after
//!   the database deletes it): `hold.rs`.
//! - Watching a database ([`Repository::watch_wal`](crate::Repository::watch_wal)):
//!   inotify, a link per new WAL file, a round every interval, gaps reported
//!   at once: `watch.rs`.
//! - Named restore points ([`Repository::create_restore_point`](crate::Repository::create_restore_point)):
//!   `restore_point.rs`.

mod archive;
mod hold;
mod restore_point;
mod timeline;
mod watch;

pub use archive::{database_id, ArchiveOptions, ArchiveReport, ArchivedSegment};
pub use hold::Holding;
pub use timeline::{MissingSequences, SegmentSummary, SkippedObjects, Timeline, Window};
pub use watch::{Round, WalPickup, WatchOptions};
