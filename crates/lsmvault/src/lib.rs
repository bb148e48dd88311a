//! lsmvault: a deduplicating snapshot store for LSM databases.
//!
//! Backups of RocksDB / LevelDB / fjall checkpoints go into a content-addressed
//! repository (FastCDC chunks, BLAKE3 ids, pack files); every snapshot is a
//! complete tree, so any generation restores in one step. Files the parent
//! snapshot already holds (same device, inode, size and mtime) are not read
//! again, which makes a backup of a hard-linked checkpoint cost metadata only.
//!
//! ```
//! use lsmvault::{BackupOptions, InitOptions, NoProgress, Repository, RestoreOptions};
//!
//! # fn main() -> Result<(), lsmvault::Error> {
//! let work = tempfile::tempdir().unwrap();
//! let source = work.path().join("db");
//! std::fs::create_dir(&source).unwrap();
//! std::fs::write(source.join("000001.sst"), b"sorted string table").unwrap();
//!
//! let repository = Repository::init_local(work.path().join("repo"), InitOptions::default())?;
//! let first = repository.backup(&source, &BackupOptions::default(), &NoProgress)?;
//! // Nothing changed: the second backup reads no file content.
//! let second = repository.backup(&source, &BackupOptions::default(), &NoProgress)?;
//! assert_eq!(second.snapshot.stats.bytes_read, 0);
//! assert_eq!(second.snapshot.parent, Some(first.id));
//!
//! let target = work.path().join("restored");
//! repository.restore("latest", &target, &RestoreOptions::default(), &NoProgress)?;
//! assert_eq!(std::fs::read(target.join("000001.sst")).unwrap(), b"sorted string table");
//! assert!(repository.verify(&Default::default(), &NoProgress)?.is_clean());
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

pub mod backend;
pub mod codec;
mod error;
pub mod format;
mod id;
mod interrupt;
pub mod lsm;
pub mod ops;
mod progress;
pub mod repo;
mod time;

pub use error::{Error, ErrorCode, Result};
pub use format::config::{Config, ParityConfig};
pub use format::snapshot::{BackupStats, Snapshot, SnapshotEntry, SnapshotKind};
pub use id::Id;
pub use interrupt::Interrupt;
pub use ops::backup::{BackupMode, BackupOptions, BackupOutcome};
pub use ops::copy::{CopiedSnapshot, CopyOptions, CopyReport};
pub use ops::forget::{ForgetIdsReport, ForgetOptions, ForgetReport};
pub use ops::migrate::MigrateReport;
pub use ops::prune::{PruneOptions, PruneReport};
pub use ops::repair::{
    DamagedPack, LostPack, ParityChange, RebuiltPack, RepairIndexReport, RepairPacksOptions,
    RepairPacksReport, RepairSnapshotsOptions, RepairSnapshotsReport, RepairedSnapshot,
};
pub use ops::restore::{RestoreOptions, RestoreStats};
pub use ops::stats::{Change, DiffReport, RepositoryStats, SnapshotSize};
pub use ops::verify::{Finding, ReadData, VerifyOptions, VerifyReport};
pub use progress::{NoProgress, Progress};
pub use repo::tree_walker::{TreeWalker, WalkedEntry};
pub use repo::{InitOptions, PackWriter, Repository, WriteSummary};
pub use time::Timestamp;
