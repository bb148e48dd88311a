//! Backup's scan: walk the source directory, and decide per file whether the
//! parent snapshot already has its content ("link-dest") or it must be read.
//!
//! A file is reused unread when the parent has an entry, at the same relative
//! path or with the same (device, inode) — hard-linked SSTs keep their inode
//! across checkpoint directories — whose size and mtime match, and whose ctime
//! matches too unless the file is immutable (making a hard link changes
//! ctime), and whose chunks the repository still holds. Entries that cannot
//! be read are left out with a warning; the snapshot is then incomplete.
//! Entries an exclude pattern covers are left out before they are even
//! stat'ed (a directory is not descended), counted in `stats.excluded`; a
//! pattern that covered nothing is a warning (a typo, or a restic-style
//! absolute path, which here is anchored at the source root).
//! The WAL holding directory of `wal archive --watch` (`.lsmvault-wal-hold`
//! directly in the source) is left out silently: it holds links to WAL
//! files, archived elsewhere.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Tally;
use crate::error::Error;
use crate::error::{IoContext, Result};
use crate::format::index::Index;
use crate::format::tree::{Entry, EntryKind, Metadata};
use crate::id::Id;
use crate::lsm::file_class::{matches_any_in_directory, WAL_HOLD_DIRECTORY};
use crate::repo::path_pattern::PathPattern;
use crate::repo::tree_walker::TreeWalker;
use crate::repo::Repository;

/// Parent-snapshot files, addressable by relative path and by (device, inode).
#[derive(Default)]
pub(super) struct ParentFiles {
    by_path: HashMap<Vec<u8>, Entry>,
    by_inode: HashMap<(u64, u64), Entry>,
}

impl ParentFiles {
    pub(super) fn load(repository: &Repository, root: &Id) -> Result<ParentFiles> {
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
pub(super) struct ScannedDirectory {
    pub(super) entries: Vec<ScannedEntry>,
}

pub(super) struct ScannedEntry {
    pub(super) name: Vec<u8>,
    pub(super) metadata: Metadata,
    pub(super) node: ScannedNode,
}

pub(super) enum ScannedNode {
    Directory(ScannedDirectory),
    Symlink(Vec<u8>),
    /// Content taken from the parent snapshot without reading.
    Reused(EntryKind),
    /// Content to be read: index into the job list.
    Read(usize),
}

/// A file whose content must be read.
pub(super) struct FileJob {
    pub(super) path: PathBuf,
    pub(super) size: u64,
}

/// What the scan produced.
pub(super) struct ScannedSource {
    pub(super) root: ScannedDirectory,
    /// The files to read, indexed by [`ScannedNode::Read`].
    pub(super) jobs: Vec<FileJob>,
}

pub(super) fn metadata_of(stat: &fs::Metadata) -> Metadata {
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

/// Parses the backup's exclude patterns. Refused (before anything is
/// read): `..` (a pattern names paths inside the source) and a pattern that
/// names the source directory itself (`/`, `.`, blank), which would exclude
/// everything.
pub(super) fn parse_excludes(patterns: &[String]) -> Result<Vec<PathPattern>> {
    patterns
        .iter()
        .map(|text| {
            let refuse = |why: &str| {
                Error::InvalidArgument(format!(
                    "exclude pattern {text:?} {why}: patterns name paths inside the source directory"
                ))
            };
            let pattern = PathPattern::parse(text).map_err(|_| refuse("contains '..'"))?;
            if pattern.is_root() {
                return Err(refuse("names the source directory itself"));
            }
            Ok(pattern)
        })
        .collect()
}

/// Scans `source`, counting directories, symlinks, reused and excluded
/// entries into `tally`. Fails only when `source` itself cannot be listed.
pub(super) fn scan_source(
    stored: Option<&Index>,
    parent: &ParentFiles,
    immutable_patterns: &[String],
    repository_directory: Option<(u64, u64)>,
    excludes: &[PathPattern],
    source: &Path,
    tally: &mut Tally,
) -> Result<ScannedSource> {
    let mut scan = Scan {
        stored,
        parent,
        immutable_patterns,
        repository_directory,
        excludes,
        exclude_hits: vec![0; excludes.len()],
        jobs: Vec::new(),
        tally,
    };
    let root = scan.scan_directory(source, b"")?;
    for (pattern, hits) in excludes.iter().zip(&scan.exclude_hits) {
        if *hits == 0 {
            scan.tally.warn(format!(
                "exclude pattern {:?} matched nothing (patterns are relative to the source directory)",
                pattern.text
            ));
        }
    }
    Ok(ScannedSource {
        root,
        jobs: scan.jobs,
    })
}

/// State shared by the scan.
struct Scan<'a> {
    /// The blobs known to be stored (their pack listed); `None`: reuse
    /// nothing from the parent (`--verify-existing` reads every file).
    stored: Option<&'a Index>,
    parent: &'a ParentFiles,
    immutable_patterns: &'a [String],
    /// The repository's own directory (device, inode) when the source
    /// contains it: left out, never backed up into itself.
    repository_directory: Option<(u64, u64)>,
    /// The backup's exclude patterns, and how many entries each covered.
    excludes: &'a [PathPattern],
    exclude_hits: Vec<u64>,
    jobs: Vec<FileJob>,
    tally: &'a mut Tally,
}

impl Scan<'_> {
    /// Whether an exclude pattern covers the entry at `relative` (counted
    /// against the first pattern that does).
    fn is_excluded(&mut self, relative: &[u8]) -> bool {
        if self.excludes.is_empty() {
            return false;
        }
        let components: Vec<&[u8]> = relative.split(|&byte| byte == b'/').collect();
        let Some(index) = self
            .excludes
            .iter()
            .position(|pattern| pattern.covers(&components))
        else {
            return false;
        };
        self.exclude_hits[index] += 1;
        self.tally.stats.excluded += 1;
        true
    }

    /// Whether the file at `relative` (its path in the source, ending in
    /// `name`) is immutable by its name or, for patterns like `segments/*`,
    /// by the directory it is in.
    fn is_immutable(&self, relative: &[u8], name: &[u8]) -> bool {
        let relative = String::from_utf8_lossy(relative);
        let directory = relative
            .rsplit_once('/')
            .map(|(parent, _)| parent.rsplit('/').next().unwrap_or(parent));
        matches_any_in_directory(
            self.immutable_patterns,
            directory,
            &String::from_utf8_lossy(name),
        )
    }

    /// The parent's entry for this file if its content can be reused unread.
    fn reusable(
        &self,
        relative: &[u8],
        name: &[u8],
        now: &Metadata,
        size: u64,
    ) -> Option<EntryKind> {
        let immutable = self.is_immutable(relative, name);
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
        let index = self.stored?;
        match &candidate.kind {
            EntryKind::File { chunks, .. } if chunks.iter().all(|chunk| index.contains(chunk)) => {
                Some(candidate.kind.clone())
            }
            _ => None,
        }
    }

    /// Scans one directory, its entries in byte order of their names.
    fn scan_directory(&mut self, path: &Path, relative: &[u8]) -> Result<ScannedDirectory> {
        let mut listing = Vec::new();
        for item in fs::read_dir(path).context(|| format!("listing {}", path.display()))? {
            match item {
                Ok(item) => listing.push(item.file_name()),
                Err(error) => self
                    .tally
                    .unreadable(format!("listing {}: {error}", path.display())),
            }
        }
        listing.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        let mut entries = Vec::with_capacity(listing.len());
        for name in listing {
            if let Some(entry) = self.scan_entry(path, relative, name) {
                entries.push(entry);
            }
        }
        Ok(ScannedDirectory { entries })
    }

    /// Scans one entry of the directory at `path`; `None` when it is left
    /// out (excluded, unreadable, or not a regular file, directory or
    /// symlink), with a warning where the user should know.
    fn scan_entry(&mut self, path: &Path, relative: &[u8], name: OsString) -> Option<ScannedEntry> {
        let child = path.join(&name);
        let name = name.as_bytes().to_vec();
        let mut child_relative = relative.to_vec();
        if !child_relative.is_empty() {
            child_relative.push(b'/');
        }
        child_relative.extend_from_slice(&name);
        if self.is_excluded(&child_relative) {
            return None;
        }
        let stat = match fs::symlink_metadata(&child) {
            Ok(stat) => stat,
            Err(error) => {
                self.tally
                    .unreadable(format!("{}: {error}", child.display()));
                return None;
            }
        };
        if stat.is_dir() && self.is_left_out_directory(&child, &child_relative, &stat) {
            return None;
        }
        let metadata = metadata_of(&stat);
        let node = self.scan_node(child, &child_relative, &name, &metadata, &stat)?;
        Some(ScannedEntry {
            name,
            metadata,
            node,
        })
    }

    /// Whether the directory `child` is one no backup holds: the repository
    /// itself (with a warning), or the WAL watcher's holding directory.
    fn is_left_out_directory(
        &mut self,
        child: &Path,
        relative: &[u8],
        stat: &fs::Metadata,
    ) -> bool {
        if self.repository_directory == Some((stat.dev(), stat.ino())) {
            self.tally.warn(format!(
                "{} is the repository itself: left out of the backup",
                child.display()
            ));
            return true;
        }
        // `wal archive --watch`'s hard links to WAL files, in the database
        // directory (the source root): no part of the database (the segments
        // are in the WAL archive already). A directory of that name deeper
        // down is someone's data and is backed up.
        relative == WAL_HOLD_DIRECTORY.as_bytes()
    }

    /// The content of the entry `child` by its type; `None` (with a
    /// warning) when it cannot be read or is of no type a snapshot holds.
    fn scan_node(
        &mut self,
        child: PathBuf,
        relative: &[u8],
        name: &[u8],
        metadata: &Metadata,
        stat: &fs::Metadata,
    ) -> Option<ScannedNode> {
        let file_type = stat.file_type();
        if file_type.is_dir() {
            match self.scan_directory(&child, relative) {
                Ok(directory) => {
                    self.tally.stats.directories += 1;
                    Some(ScannedNode::Directory(directory))
                }
                Err(error) => {
                    self.tally.unreadable(error.to_string());
                    None
                }
            }
        } else if file_type.is_symlink() {
            match fs::read_link(&child) {
                Ok(target) => {
                    self.tally.stats.symlinks += 1;
                    Some(ScannedNode::Symlink(target.as_os_str().as_bytes().to_vec()))
                }
                Err(error) => {
                    self.tally
                        .unreadable(format!("{}: {error}", child.display()));
                    None
                }
            }
        } else if file_type.is_file() {
            Some(self.scan_file(child, relative, name, metadata, stat.len()))
        } else {
            self.tally.warn(format!(
                "{}: skipped (not a regular file, directory or symlink)",
                child.display()
            ));
            None
        }
    }

    /// A regular file: reused from the parent, or queued to be read.
    fn scan_file(
        &mut self,
        path: PathBuf,
        relative: &[u8],
        name: &[u8],
        metadata: &Metadata,
        size: u64,
    ) -> ScannedNode {
        let reused = self.reusable(relative, name, metadata, size);
        let stats = &mut self.tally.stats;
        match reused {
            Some(kind) => {
                stats.files += 1;
                stats.files_unmodified += 1;
                stats.bytes_total += size;
                ScannedNode::Reused(kind)
            }
            None => {
                if self.parent.by_path.contains_key(relative) {
                    stats.files_changed += 1;
                } else {
                    stats.files_new += 1;
                }
                self.jobs.push(FileJob { path, size });
                ScannedNode::Read(self.jobs.len() - 1)
            }
        }
    }
}
