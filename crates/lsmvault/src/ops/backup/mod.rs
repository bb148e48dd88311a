//! Backup: turn a directory into a snapshot, reading only what changed.
//!
//! Order of work, which is also the crash-safety argument:
//! 1. scan the source and decide per file whether the parent snapshot already
//!    has it ("link-dest": same device, inode, size, mtime — and ctime, except
//!    for immutable files, because making a hard link changes ctime);
//! 2. read the other files in parallel, chunk, hash, and hand new chunks to the
//!    [`PackWriter`], which publishes full packs from its own thread;
//! 3. encode trees bottom-up (new trees go into packs too);
//! 4. write the index files for every new blob;
//! 5. write the snapshot file — the commit point.
//!
//! A crash before step 5 leaves only unreferenced packs and index entries,
//! which garbage collection removes; earlier snapshots are never touched.
//!
//! Step 1 is `scan.rs`, steps 2 and 3 are `store.rs`; this file chooses the
//! parent snapshot and does steps 4 and 5.

pub mod cluster;
mod heal;
pub mod live;
mod scan;
mod store;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::codec::chunker::CutFinder;
use crate::codec::compression::Compression;
use crate::error::{Error, Result};
use crate::format::snapshot::{
    self, BackupStats, Snapshot, SnapshotEntry, SnapshotKind, SNAPSHOT_VERSION,
};
use crate::id::Id;
use crate::interrupt::Interrupt;
use crate::lsm::file_class::FileClasses;
use crate::lsm::manifest::{DatabaseState, IdentitySource};
use crate::progress::Progress;
use crate::repo::lock::{host_name, user_name, LockKind};
use crate::repo::{PackWriter, Repository};

use crate::repo::commit::{CommitCheck, StoredBlobs};
use scan::{scan_source, ParentFiles, ScannedSource};
use store::{build_tree, read_files};

/// How the parent snapshot (the source of unchanged files) is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackupMode {
    /// Parent: the newest snapshot of the same source.
    #[default]
    Incremental,
    /// Parent: the newest full snapshot of the same source.
    Differential,
    /// No parent: every file is read (and still deduplicated).
    Full,
}

/// Options for [`Repository::backup`].
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// Tags recorded in the snapshot (select it later as `latest:TAG`).
    pub tags: Vec<String>,
    /// How much of the source is read again: see [`BackupMode`].
    pub mode: BackupMode,
    /// An explicit parent snapshot selector, overriding `mode`'s choice.
    pub parent: Option<String>,
    /// File-name patterns (as in [`FileClasses`]) of files that are never
    /// modified in place, whose ctime therefore must not veto a metadata match.
    pub immutable_patterns: Vec<String>,
    /// Host name to record (defaults to this machine's).
    pub host: Option<String>,
    /// Compression of new blobs (defaults to the repository's).
    pub compression: Option<Compression>,
    /// Source path to record instead of the directory read (`backup --live`
    /// reads a temporary checkpoint but records the database's path).
    pub source_label: Option<PathBuf>,
    /// The database's identity, for directories that record none (RocksDB
    /// 7.x checkpoints have no `IDENTITY` and no DB id in the MANIFEST):
    /// recorded as given by the operator, so `restore --seq/--at` can start
    /// from the snapshot. Overrides an identity the directory records.
    pub database_id: Option<String>,
    /// Read back and check (decode + id) every blob the backup would reuse,
    /// and write again those with no intact copy; no file is taken from the
    /// parent unread. Without it only blobs whose pack is missing from the
    /// pack listing are written again.
    pub verify_existing: bool,
    /// Globs of paths to leave out, relative to the source directory (see
    /// [`PathPattern`](crate::repo::path_pattern::PathPattern): `*.log` at
    /// any depth, `/archive` or `db/tmp/*` anchored at the source root, `**`
    /// any depth). An excluded directory is not descended. Recorded in the
    /// snapshot; a pattern that matches nothing is a warning.
    pub excludes: Vec<String>,
    /// The snapshot's time instead of the backup's start (restic's
    /// `backup --time`): a backup of a checkpoint taken earlier, or an
    /// import, is dated when its data is from, which retention goes by.
    pub time: Option<SystemTime>,
    /// Polled between files and before the snapshot is written: once
    /// triggered the backup returns [`Error::Interrupted`], writing no
    /// snapshot and releasing its lock.
    pub interrupt: Interrupt,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            tags: Vec::new(),
            mode: BackupMode::Incremental,
            parent: None,
            immutable_patterns: FileClasses::default().immutable,
            host: None,
            compression: None,
            source_label: None,
            database_id: None,
            verify_existing: false,
            excludes: Vec::new(),
            time: None,
            interrupt: Interrupt::default(),
        }
    }
}

/// The result of a backup: the new snapshot.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    /// Id of the snapshot written (the name of its file under `snapshots/`).
    pub id: Id,
    /// The snapshot as written.
    pub snapshot: Snapshot,
    /// Blobs the index already listed that were written again because their
    /// pack was missing (or, with [`BackupOptions::verify_existing`],
    /// damaged). The snapshot's warnings say so too.
    pub blobs_rewritten: u64,
}

/// How many warnings a snapshot file keeps (the count is always exact in stats).
const MAX_RECORDED_WARNINGS: usize = 1000;

/// What the scan and the reads count as they go; recorded in the snapshot.
#[derive(Default)]
struct Tally {
    stats: BackupStats,
    /// The first [`MAX_RECORDED_WARNINGS`] warnings.
    warnings: Vec<String>,
    /// Entries left out because they could not be read.
    unreadable: u64,
}

impl Tally {
    /// Something could not be read: it is left out and the snapshot is incomplete.
    fn unreadable(&mut self, message: String) {
        self.unreadable += 1;
        self.warn(message);
    }

    fn warn(&mut self, message: String) {
        if self.warnings.len() < MAX_RECORDED_WARNINGS {
            self.warnings.push(message);
        }
    }
}

/// The source directory to read, and the source path to record.
fn resolve_source(source: &Path, options: &BackupOptions) -> Result<(PathBuf, String)> {
    let canonical = fs::canonicalize(source)
        .ok()
        .filter(|path| path.is_dir())
        .ok_or_else(|| Error::SourceNotFound {
            path: source.to_path_buf(),
        })?;
    let recorded = match &options.source_label {
        Some(label) => fs::canonicalize(label)
            .unwrap_or_else(|_| label.clone())
            .display()
            .to_string(),
        None => canonical.display().to_string(),
    };
    Ok((canonical, recorded))
}

/// The identity and sequence state of `source` to record, with the
/// operator's `--database-id` (if any) replacing what the directory records.
/// An empty (or blank) id is refused: it would match no WAL archive.
fn database_state(source: &Path, operator_id: Option<&str>) -> Result<Option<DatabaseState>> {
    let mut state = DatabaseState::read(source);
    if let Some(id) = operator_id {
        if id.trim().is_empty() || id.trim() != id {
            return Err(Error::InvalidArgument(format!(
                "--database-id {id:?}: give the database's IDENTITY, without surrounding blanks"
            )));
        }
        state.id = Some(id.to_string());
        state.id_source = Some(IdentitySource::Operator);
    }
    Ok(Some(state).filter(|state| state.id.is_some() || state.last_sequence.is_some()))
}

/// Checks exclude patterns as [`Repository::backup`] will (no `..`, none
/// naming the source directory itself), for a front end to refuse them
/// before it creates or opens anything.
pub fn check_excludes(patterns: &[String]) -> Result<()> {
    scan::parse_excludes(patterns).map(|_| ())
}

impl Repository {
    /// The (device, inode) of this repository's directory when it lies
    /// inside `source` (`backup .` from above the repository): the scan
    /// leaves it out, as restic does, with a warning, instead of backing the
    /// repository up into itself. A source inside the repository is refused.
    fn directory_within(&self, source: &Path) -> Result<Option<(u64, u64)>> {
        let Ok(repository) = fs::canonicalize(self.backend().location()) else {
            return Ok(None);
        };
        if source.starts_with(&repository) {
            return Err(Error::InvalidArgument(format!(
                "{} is inside the repository {}: back up a database directory, not the repository",
                source.display(),
                repository.display()
            )));
        }
        if !repository.starts_with(source) {
            return Ok(None);
        }
        Ok(fs::metadata(&repository)
            .ok()
            .map(|stat| (stat.dev(), stat.ino())))
    }

    /// Backs up the directory `source` into a new snapshot.
    ///
    /// Unreadable files are skipped with a warning and the snapshot is marked
    /// incomplete (see [`Snapshot::incomplete`]); repository failures abort the
    /// backup without writing a snapshot.
    pub fn backup(
        &self,
        source: impl AsRef<Path>,
        options: &BackupOptions,
        progress: &dyn Progress,
    ) -> Result<BackupOutcome> {
        let started = Instant::now();
        let start_time = SystemTime::now();
        let (source, source_text) = resolve_source(source.as_ref(), options)?;
        let excludes = scan::parse_excludes(&options.excludes)?;
        let repository_directory = self.directory_within(&source)?;
        let database = database_state(&source, options.database_id.as_deref())?;
        if options.verify_existing {
            self.always_list_packs();
        }
        let lock = self.lock(LockKind::Shared, "backup")?;
        // One listing of the index files, under the lock: the index is
        // loaded from it and the commit check starts from it.
        let index_files = self.list_index_files()?;
        let mut commit_check = CommitCheck::start(&index_files);
        let stored = StoredBlobs::load(self, &index_files)?;
        let finder = CutFinder::new(&self.config().chunker, self.keys().chunker_seed())?;

        let identity = database.as_ref().and_then(|state| state.id.as_deref());
        let (parent, kind) = self.choose_parent(&source_text, identity, options)?;
        let mut tally = Tally::default();
        if identity.is_none() && source.join("CURRENT").is_file() {
            tally.warn(
                "the database records no identity (no IDENTITY file, no DB id in its MANIFEST): \
                 this snapshot cannot start a point-in-time restore; pass --database-id"
                    .to_string(),
            );
        }
        // `--verify-existing` reads every file: the parent's list is not needed.
        let parent_files = match parent.as_ref().filter(|_| !options.verify_existing) {
            Some(parent) => self.parent_files(&parent.snapshot.tree, &mut tally)?,
            None => ParentFiles::default(),
        };
        progress.start("scanning", 0);
        let reusable = (!options.verify_existing).then_some(stored.present.as_ref());
        let ScannedSource { root, jobs } = scan_source(
            reusable,
            &parent_files,
            &options.immutable_patterns,
            repository_directory,
            &excludes,
            &source,
            &mut tally,
        )?;
        progress.finish();
        options.interrupt.check("scanning the source")?;

        let mut writer = PackWriter::with_known(self, Arc::clone(&stored.present))?;
        writer.set_verify_known(options.verify_existing);
        if let Some(compression) = options.compression {
            writer.set_compression(compression);
        }
        let mut contents = read_files(
            &jobs,
            &finder,
            &writer,
            &options.interrupt,
            progress,
            &mut tally,
        )?;
        let root_tree = build_tree(root, &mut contents, &mut store::LinkGroups::new(), &writer)?;
        let summary = writer.finish()?;
        self.protect_packs(&summary.published)?;
        commit_check.wrote(&summary, &self.write_index(&summary.locations)?);
        let blobs_rewritten = heal::report_rewritten(&stored, &summary.locations, &mut tally);

        let Tally {
            mut stats,
            warnings,
            unreadable,
        } = tally;
        stats.bytes_added = summary.blob_bytes;
        stats.bytes_stored = summary.pack_bytes;
        stats.blobs_added = summary.locations.len() as u64;
        stats.packs_written = summary.packs;
        stats.duration_seconds = started.elapsed().as_secs_f64();
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            time: snapshot::format_time(options.time.unwrap_or(start_time)),
            host: options.host.clone().unwrap_or_else(host_name),
            user: user_name(),
            source: source_text,
            tags: options.tags.clone(),
            parent: parent.map(|parent| parent.id),
            kind,
            tree: root_tree,
            incomplete: unreadable > 0,
            warnings,
            stats,
            program: format!("lsmvault {}", env!("CARGO_PKG_VERSION")),
            excludes: options.excludes.clone(),
            database,
            repaired: None,
            original: None,
        };
        options.interrupt.check("about to write the snapshot")?;
        let id = commit_check.commit(self, &lock, &snapshot, progress)?;
        Ok(BackupOutcome {
            id,
            snapshot,
            blobs_rewritten,
        })
    }

    /// The parent's files by path and inode. A parent whose trees cannot be
    /// read (their pack lost or damaged) is no reason to fail: every file is
    /// then read, which also heals the repository.
    fn parent_files(&self, root: &Id, tally: &mut Tally) -> Result<ParentFiles> {
        match ParentFiles::load(self, root) {
            Ok(files) => Ok(files),
            Err(error) if error.is_damage() => {
                tally.warn(format!(
                    "the parent snapshot cannot be read ({error}): every file is read again"
                ));
                Ok(ParentFiles::default())
            }
            Err(error) => Err(error),
        }
    }

    /// The parent snapshot (the source of unchanged files) and the kind of
    /// the new snapshot.
    ///
    /// Without an explicit parent, only snapshots of the same database are
    /// candidates: of the same identity when the source has one, else of no
    /// identity (the same source path, or a sibling checkpoint directory).
    /// A parent of another database would only cost re-reads, but labels the
    /// snapshot incremental on an unrelated chain.
    fn choose_parent(
        &self,
        source: &str,
        identity: Option<&str>,
        options: &BackupOptions,
    ) -> Result<(Option<SnapshotEntry>, SnapshotKind)> {
        if let Some(selector) = &options.parent {
            return Ok((
                Some(self.find_snapshot(selector)?),
                SnapshotKind::Incremental,
            ));
        }
        if options.mode == BackupMode::Full {
            return Ok((None, SnapshotKind::Full));
        }
        // A damaged snapshot is no candidate: a parent only saves re-reading
        // files, so choosing among the intact ones is always safe.
        let (snapshots, _damaged) = self.snapshots_for_parent()?;
        let host = options.host.clone().unwrap_or_else(host_name);
        let same_database = |entry: &SnapshotEntry| {
            entry
                .snapshot
                .database
                .as_ref()
                .and_then(|state| state.id.as_deref())
                == identity
        };
        let wanted_kind = |entry: &&SnapshotEntry| {
            same_database(entry)
                && (options.mode != BackupMode::Differential
                    || entry.snapshot.kind == SnapshotKind::Full)
        };
        // Checkpoints are usually taken into a new directory each time
        // (`/backups/ckpt-7`, `/backups/ckpt-8`): when this source has no
        // snapshot yet, the newest sibling directory's snapshot from this host
        // is the parent. A wrong guess costs nothing but a re-read, because a
        // file is reused only when device, inode, size and mtime all match.
        let siblings = |entry: &&SnapshotEntry| {
            entry.snapshot.host == host
                && Path::new(&entry.snapshot.source).parent() == Path::new(source).parent()
        };
        let candidates = || snapshots.iter().rev().filter(wanted_kind);
        let parent = match identity {
            // The same database wherever its directory is now.
            Some(_) => candidates()
                .find(|entry| entry.snapshot.source == source)
                .or_else(|| candidates().next()),
            None => candidates()
                .find(|entry| entry.snapshot.source == source)
                .or_else(|| candidates().find(siblings)),
        }
        .cloned();
        let kind = match (&parent, options.mode) {
            (None, _) => SnapshotKind::Full,
            (Some(_), BackupMode::Differential) => SnapshotKind::Differential,
            (Some(_), _) => SnapshotKind::Incremental,
        };
        Ok((parent, kind))
    }
}
