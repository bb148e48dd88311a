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

pub mod live;

use std::collections::HashMap;
use std::fs::{self, File};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use rayon::prelude::*;

use crate::codec::chunker::CutFinder;
use crate::codec::compression::Compression;
use crate::error::{Error, IoContext, Result};
use crate::format::pack::BlobKind;
use crate::format::snapshot::{
    self, BackupStats, Snapshot, SnapshotEntry, SnapshotKind, SNAPSHOT_VERSION,
};
use crate::format::tree::{Entry, EntryKind, Metadata, Tree};
use crate::id::Id;
use crate::lsm::file_class::{matches_pattern, FileClasses};
use crate::lsm::manifest::DatabaseState;
use crate::progress::Progress;
use crate::repo::lock::{host_name, user_name, LockKind};
use crate::repo::store::{store_stream, StoredContent};
use crate::repo::tree_walker::TreeWalker;
use crate::repo::{PackWriter, Repository};

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
    pub tags: Vec<String>,
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
        }
    }
}

/// The result of a backup: the new snapshot.
#[derive(Debug, Clone)]
pub struct BackupOutcome {
    pub id: Id,
    pub snapshot: Snapshot,
}

/// How many warnings a snapshot file keeps (the count is always exact in stats).
const MAX_RECORDED_WARNINGS: usize = 1000;
/// How often a file that keeps changing while read is retried.
const CHANGED_FILE_RETRIES: usize = 3;

/// Parent-snapshot files, addressable by relative path and by (device, inode).
#[derive(Default)]
struct ParentFiles {
    by_path: HashMap<Vec<u8>, Entry>,
    by_inode: HashMap<(u64, u64), Entry>,
}

impl ParentFiles {
    fn load(repository: &Repository, root: &Id) -> Result<ParentFiles> {
        let mut files = ParentFiles::default();
        TreeWalker::new(repository).walk(root, |path, entry| {
            if let EntryKind::File { .. } = entry.kind {
                let inode = (entry.metadata.device, entry.metadata.inode);
                files.by_inode.insert(inode, entry.clone());
                files.by_path.insert(path.to_vec(), entry.clone());
            }
            Ok(true)
        })?;
        Ok(files)
    }
}

/// A scanned directory, before file contents are known.
struct ScannedDirectory {
    entries: Vec<ScannedEntry>,
}

struct ScannedEntry {
    name: Vec<u8>,
    metadata: Metadata,
    node: ScannedNode,
}

enum ScannedNode {
    Directory(ScannedDirectory),
    Symlink(Vec<u8>),
    /// Content taken from the parent snapshot without reading.
    Reused(EntryKind),
    /// Content to be read: index into the job list.
    Read(usize),
}

struct FileJob {
    path: PathBuf,
    size: u64,
}

/// What reading one file produced.
struct FileContent {
    kind: EntryKind,
    /// Metadata as of the read (the file may have changed since the scan).
    metadata: Metadata,
}

fn metadata_of(stat: &fs::Metadata) -> Metadata {
    Metadata {
        mode: stat.mode(),
        uid: stat.uid(),
        gid: stat.gid(),
        mtime_ns: stat
            .mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(stat.mtime_nsec()),
        ctime_ns: stat
            .ctime()
            .saturating_mul(1_000_000_000)
            .saturating_add(stat.ctime_nsec()),
        device: stat.dev(),
        inode: stat.ino(),
        links: stat.nlink(),
    }
}

/// State shared by the scan.
struct Scan<'a> {
    repository: &'a Repository,
    parent: &'a ParentFiles,
    immutable_patterns: &'a [String],
    jobs: Vec<FileJob>,
    warnings: Vec<String>,
    /// Entries left out because they could not be read.
    unreadable: u64,
    stats: BackupStats,
}

impl Scan<'_> {
    fn is_immutable(&self, name: &[u8]) -> bool {
        let name = String::from_utf8_lossy(name);
        self.immutable_patterns
            .iter()
            .any(|pattern| matches_pattern(pattern, &name))
    }

    /// The parent's entry for this file if its content can be reused unread.
    fn reusable(
        &self,
        relative: &[u8],
        name: &[u8],
        now: &Metadata,
        size: u64,
    ) -> Option<EntryKind> {
        let immutable = self.is_immutable(name);
        let same = |old: &Entry| {
            let before = &old.metadata;
            before.device == now.device
                && before.inode == now.inode
                && old.size() == size
                && before.mtime_ns == now.mtime_ns
                && (immutable || before.ctime_ns == now.ctime_ns)
        };
        let candidate = self
            .parent
            .by_path
            .get(relative)
            .filter(|old| same(old))
            .or_else(|| {
                self.parent
                    .by_inode
                    .get(&(now.device, now.inode))
                    .filter(|old| same(old))
            })?;
        // Never reuse content the repository no longer holds.
        let index = self.repository.index().ok()?;
        match &candidate.kind {
            EntryKind::File { chunks, .. } if chunks.iter().all(|chunk| index.contains(chunk)) => {
                Some(candidate.kind.clone())
            }
            _ => None,
        }
    }

    fn scan_directory(&mut self, path: &Path, relative: &[u8]) -> Result<ScannedDirectory> {
        let mut listing = Vec::new();
        for item in fs::read_dir(path).context(|| format!("listing {}", path.display()))? {
            match item {
                Ok(item) => listing.push(item.file_name()),
                Err(error) => self.unreadable(format!("listing {}: {error}", path.display())),
            }
        }
        listing.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut entries = Vec::with_capacity(listing.len());
        for name in listing {
            let child = path.join(&name);
            let name = name.as_bytes().to_vec();
            let mut child_relative = relative.to_vec();
            if !child_relative.is_empty() {
                child_relative.push(b'/');
            }
            child_relative.extend_from_slice(&name);
            let stat = match fs::symlink_metadata(&child) {
                Ok(stat) => stat,
                Err(error) => {
                    self.unreadable(format!("{}: {error}", child.display()));
                    continue;
                }
            };
            let metadata = metadata_of(&stat);
            let file_type = stat.file_type();
            let node = if file_type.is_dir() {
                match self.scan_directory(&child, &child_relative) {
                    Ok(directory) => {
                        self.stats.directories += 1;
                        ScannedNode::Directory(directory)
                    }
                    Err(error) => {
                        self.unreadable(error.to_string());
                        continue;
                    }
                }
            } else if file_type.is_symlink() {
                match fs::read_link(&child) {
                    Ok(target) => {
                        self.stats.symlinks += 1;
                        ScannedNode::Symlink(target.as_os_str().as_bytes().to_vec())
                    }
                    Err(error) => {
                        self.unreadable(format!("{}: {error}", child.display()));
                        continue;
                    }
                }
            } else if file_type.is_file() {
                let size = stat.len();
                match self.reusable(&child_relative, &name, &metadata, size) {
                    Some(kind) => {
                        self.stats.files += 1;
                        self.stats.files_unmodified += 1;
                        self.stats.bytes_total += size;
                        ScannedNode::Reused(kind)
                    }
                    None => {
                        if self.parent.by_path.contains_key(&child_relative) {
                            self.stats.files_changed += 1;
                        } else {
                            self.stats.files_new += 1;
                        }
                        self.jobs.push(FileJob { path: child, size });
                        ScannedNode::Read(self.jobs.len() - 1)
                    }
                }
            } else {
                self.warn(format!(
                    "{}: skipped (not a regular file, directory or symlink)",
                    child.display()
                ));
                continue;
            };
            entries.push(ScannedEntry {
                name,
                metadata,
                node,
            });
        }
        Ok(ScannedDirectory { entries })
    }

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

/// Reads, chunks and stores one file. `Ok(Err(warning))` means the file could
/// not be read (it is left out of the snapshot); `Err` is a repository failure.
fn read_file(
    job: &FileJob,
    finder: &CutFinder,
    writer: &PackWriter<'_>,
    progress: &dyn Progress,
) -> Result<std::result::Result<(FileContent, Option<String>), String>> {
    let mut changed_warning = None;
    for attempt in 0..=CHANGED_FILE_RETRIES {
        let file = match File::open(&job.path) {
            Ok(file) => file,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let before = match file.metadata() {
            Ok(stat) => stat,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let expected_size = before.len();
        let StoredContent {
            chunks,
            digest,
            size: read_bytes,
        } = match store_stream(&file, expected_size, finder, writer, progress)? {
            Ok(stored) => stored,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let after = match file.metadata() {
            Ok(stat) => stat,
            Err(error) => return Ok(Err(format!("{}: {error}", job.path.display()))),
        };
        let before_metadata = metadata_of(&before);
        let after_metadata = metadata_of(&after);
        let stable = read_bytes == expected_size
            && after.len() == expected_size
            && before_metadata.mtime_ns == after_metadata.mtime_ns;
        // No digest: it grew past one chunk while read; read it again.
        match digest {
            Some(digest) if stable || attempt == CHANGED_FILE_RETRIES => {
                if !stable {
                    changed_warning = Some(format!(
                        "{}: changed while being read ({} attempts); stored the last read",
                        job.path.display(),
                        attempt + 1
                    ));
                }
                return Ok(Ok((
                    FileContent {
                        kind: EntryKind::File {
                            size: read_bytes,
                            digest,
                            chunks,
                        },
                        metadata: after_metadata,
                    },
                    changed_warning,
                )));
            }
            _ => continue,
        }
    }
    Ok(Err(format!(
        "{}: kept changing while being read",
        job.path.display()
    )))
}

impl Repository {
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
        let source = source.as_ref();
        let source = fs::canonicalize(source)
            .ok()
            .filter(|path| path.is_dir())
            .ok_or_else(|| Error::SourceNotFound {
                path: source.to_path_buf(),
            })?;
        let source_text = match &options.source_label {
            Some(label) => fs::canonicalize(label)
                .unwrap_or_else(|_| label.clone())
                .display()
                .to_string(),
            None => source.display().to_string(),
        };
        let database = Some(DatabaseState::read(&source))
            .filter(|state| state.id.is_some() || state.last_sequence.is_some());
        let _lock = self.lock(LockKind::Shared, "backup")?;
        let finder = CutFinder::new(&self.config().chunker, self.keys().chunker_seed())?;

        let (parent, kind) = self.choose_parent(&source_text, options)?;
        let parent_files = match &parent {
            Some(parent) => ParentFiles::load(self, &parent.snapshot.tree)?,
            None => ParentFiles::default(),
        };

        progress.start("scanning", 0);
        let mut scan = Scan {
            repository: self,
            parent: &parent_files,
            immutable_patterns: &options.immutable_patterns,
            jobs: Vec::new(),
            warnings: Vec::new(),
            unreadable: 0,
            stats: BackupStats::default(),
        };
        let root = scan.scan_directory(&source, b"")?;
        progress.finish();
        let Scan {
            jobs,
            mut warnings,
            mut stats,
            mut unreadable,
            ..
        } = scan;

        let mut writer = PackWriter::new(self)?;
        if let Some(compression) = options.compression {
            writer.set_compression(compression);
        }
        let total: u64 = jobs.iter().map(|job| job.size).sum();
        progress.start("reading", total);
        // Largest files first, so one big file does not start last and run alone.
        let mut order: Vec<usize> = (0..jobs.len()).collect();
        order.sort_by_key(|&job| std::cmp::Reverse(jobs[job].size));
        let read_warnings = Mutex::new(Vec::new());
        let mut contents: Vec<Option<FileContent>> = (0..jobs.len()).map(|_| None).collect();
        let results: Vec<(usize, Option<FileContent>)> = order
            .par_iter()
            .map(|&job| {
                let outcome = read_file(&jobs[job], &finder, &writer, progress)?;
                let record = |warning| {
                    read_warnings
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner())
                        .push(warning)
                };
                Ok(match outcome {
                    Ok((content, warning)) => {
                        if let Some(warning) = warning {
                            record(warning);
                        }
                        (job, Some(content))
                    }
                    Err(warning) => {
                        record(warning);
                        (job, None)
                    }
                })
            })
            .collect::<Result<_>>()?;
        progress.finish();
        for (job, content) in results {
            match content {
                Some(content) => {
                    stats.files += 1;
                    stats.bytes_total += content.kind_size();
                    stats.bytes_read += content.kind_size();
                    contents[job] = Some(content);
                }
                None => unreadable += 1,
            }
        }
        for warning in read_warnings
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
        {
            if warnings.len() < MAX_RECORDED_WARNINGS {
                warnings.push(warning);
            }
        }

        let root_tree = build_tree(root, &mut contents, &writer)?;
        let summary = writer.finish()?;
        self.write_index(&summary.locations)?;

        stats.bytes_added = summary.blob_bytes;
        stats.bytes_stored = summary.pack_bytes;
        stats.blobs_added = summary.locations.len() as u64;
        stats.packs_written = summary.packs;
        stats.duration_seconds = started.elapsed().as_secs_f64();
        let snapshot = Snapshot {
            version: SNAPSHOT_VERSION,
            time: snapshot::format_time(start_time),
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
            database,
        };
        let id = self.write_snapshot(&snapshot)?;
        Ok(BackupOutcome { id, snapshot })
    }

    fn choose_parent(
        &self,
        source: &str,
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
        let snapshots = self.snapshots()?;
        let host = options.host.clone().unwrap_or_else(host_name);
        let wanted_kind = |entry: &&SnapshotEntry| {
            options.mode != BackupMode::Differential || entry.snapshot.kind == SnapshotKind::Full
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
        let parent = snapshots
            .iter()
            .rev()
            .filter(wanted_kind)
            .find(|entry| entry.snapshot.source == source)
            .or_else(|| snapshots.iter().rev().filter(wanted_kind).find(siblings))
            .cloned();
        let kind = match (&parent, options.mode) {
            (None, _) => SnapshotKind::Full,
            (Some(_), BackupMode::Differential) => SnapshotKind::Differential,
            (Some(_), _) => SnapshotKind::Incremental,
        };
        Ok((parent, kind))
    }
}

impl FileContent {
    fn kind_size(&self) -> u64 {
        match &self.kind {
            EntryKind::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// Encodes trees bottom-up, storing new ones; returns the root tree id.
fn build_tree(
    directory: ScannedDirectory,
    contents: &mut [Option<FileContent>],
    writer: &PackWriter<'_>,
) -> Result<Id> {
    let mut tree = Tree::default();
    for scanned in directory.entries {
        let (kind, metadata) = match scanned.node {
            ScannedNode::Directory(child) => (
                EntryKind::Directory {
                    subtree: build_tree(child, contents, writer)?,
                },
                scanned.metadata,
            ),
            ScannedNode::Symlink(target) => (EntryKind::Symlink { target }, scanned.metadata),
            ScannedNode::Reused(kind) => (kind, scanned.metadata),
            ScannedNode::Read(job) => match contents.get_mut(job).and_then(Option::take) {
                Some(content) => (content.kind, content.metadata),
                // Unreadable: already counted and warned about.
                None => continue,
            },
        };
        tree.entries.push(Entry {
            name: scanned.name,
            kind,
            metadata,
        });
    }
    let bytes = tree.encode();
    let id = writer.keys().blob_id(&bytes);
    writer.add(id, BlobKind::Tree, &bytes)?;
    Ok(id)
}
