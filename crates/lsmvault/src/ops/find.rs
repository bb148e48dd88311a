//! `find`: which snapshots hold an entry whose path matches a glob, or a
//! RocksDB/LevelDB table file of a given number (`--sst 123`: `000123.sst`,
//! `000123.ldb`).
//!
//! Read-only and lock-free, like `stats`. Each distinct root tree is walked
//! once whatever number of snapshots share it (nightly checkpoints of an idle
//! database all point at one tree), and each tree blob is read and decoded
//! once per run within a bounded cache; the walks go through
//! [`TreeWalker`], so its bounds (cycles, depth, expansion) hold here too.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

use crate::error::Result;
use crate::format::tree::{EntryKind, Tree};
use crate::id::Id;
use crate::lsm::file_class::file_number;
use crate::repo::path_pattern::PathPattern;
use crate::repo::snapshots::select_checked;
use crate::repo::tree_walker::TreeWalker;
use crate::repo::{DamagedObject, Repository};
use crate::time::Timestamp;

/// What to look for, and where.
#[derive(Debug, Clone, Default)]
pub struct FindOptions {
    /// Globs ([`PathPattern`]): a pattern without `/` matches an entry's
    /// name at any depth, one with `/` its path from the snapshot root.
    pub patterns: Vec<String>,
    /// Table file numbers: `123` finds `000123.sst` (and `.ldb`).
    pub sst_numbers: Vec<u64>,
    /// Snapshot selectors to search (every intact snapshot when empty).
    pub snapshots: Vec<String>,
}

/// One entry found in one snapshot.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FoundEntry {
    /// The snapshot holding it.
    pub snapshot: Id,
    /// When the snapshot was taken.
    pub time: Timestamp,
    /// The entry's path relative to the snapshot root.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// File size in bytes (0 for directories and symlinks).
    pub size: u64,
    /// The entry's modification time.
    pub mtime: Timestamp,
    /// What it matched: the pattern as given, or `sst N`.
    pub matched: String,
}

/// What `find` found.
#[derive(Debug, Clone, Serialize)]
pub struct FindReport {
    /// Every match, by snapshot (oldest first), then path.
    pub matches: Vec<FoundEntry>,
    /// Snapshots searched.
    pub snapshots_searched: usize,
    /// Distinct root trees walked (snapshots sharing a tree share a walk).
    pub trees_walked: usize,
    /// Snapshot files that could not be read (left out of the search).
    pub damaged_snapshots: Vec<DamagedObject>,
}

/// How many tree entries the run keeps decoded in its cache (about 40 MiB).
const TREE_CACHE_ENTRIES: usize = 1 << 18;

/// A match found under one root tree, before it is tied to snapshots.
#[derive(Debug, Clone)]
struct TreeMatch {
    path: String,
    kind: &'static str,
    size: u64,
    mtime_ns: i64,
    matched: String,
}

/// The compiled search: patterns and table numbers.
struct Search {
    patterns: Vec<PathPattern>,
    sst_numbers: Vec<u64>,
}

impl Search {
    /// What `path` (with `name` as its last component) matches, if anything.
    fn matched(&self, path: &[u8], name: &[u8], is_file: bool) -> Option<String> {
        let components: Vec<&[u8]> = path.split(|&byte| byte == b'/').collect();
        if let Some(pattern) = self.patterns.iter().find(|p| p.matches(&components)) {
            return Some(pattern.text.clone());
        }
        let name = std::str::from_utf8(name).ok()?;
        let is_table = name.ends_with(".sst") || name.ends_with(".ldb");
        let digits = name.len().saturating_sub(4);
        if !is_file || !is_table || !name[..digits].bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let number = file_number(name)?;
        self.sst_numbers
            .contains(&number)
            .then(|| format!("sst {number}"))
    }
}

impl Repository {
    /// Searches the selected snapshots (all when none are given) for entries
    /// matching `options`. A pattern is checked when parsed (`..` refused);
    /// finding nothing is not an error (the report is empty).
    pub fn find(&self, options: &FindOptions) -> Result<FindReport> {
        let search = Search {
            patterns: options
                .patterns
                .iter()
                .map(|text| PathPattern::parse(text))
                .collect::<Result<_>>()?,
            sst_numbers: options.sst_numbers.clone(),
        };
        let (all, damaged_snapshots) = self.snapshots_checked()?;
        let mut selected = options
            .snapshots
            .iter()
            .map(|selector| select_checked(&all, &damaged_snapshots, selector)?.intact())
            .collect::<Result<Vec<_>>>()?;
        if options.snapshots.is_empty() {
            selected = all;
        }
        selected.sort_by_key(|entry| (entry.snapshot.timestamp(), entry.id));
        selected.dedup_by_key(|entry| entry.id);
        let mut trees = TreeCache::new(self);
        let mut by_root: HashMap<Id, Rc<Vec<TreeMatch>>> = HashMap::new();
        let mut matches = Vec::new();
        for entry in &selected {
            let root = entry.snapshot.tree;
            let found = match by_root.get(&root) {
                Some(found) => Rc::clone(found),
                None => {
                    let found = Rc::new(trees.search(&root, &search)?);
                    by_root.insert(root, Rc::clone(&found));
                    found
                }
            };
            matches.extend(found.iter().map(|item| FoundEntry {
                snapshot: entry.id,
                time: entry.snapshot.timestamp(),
                path: item.path.clone(),
                kind: item.kind,
                size: item.size,
                mtime: timestamp_of_nanoseconds(item.mtime_ns),
                matched: item.matched.clone(),
            }));
        }
        Ok(FindReport {
            matches,
            snapshots_searched: selected.len(),
            trees_walked: by_root.len(),
            damaged_snapshots,
        })
    }
}

/// Decoded trees of one run, bounded by [`TREE_CACHE_ENTRIES`].
struct TreeCache<'a> {
    repository: &'a Repository,
    trees: HashMap<Id, Rc<Tree>>,
    entries: usize,
}

impl<'a> TreeCache<'a> {
    fn new(repository: &'a Repository) -> Self {
        TreeCache {
            repository,
            trees: HashMap::new(),
            entries: 0,
        }
    }

    /// Every entry under `root` that `search` matches, in walk order.
    fn search(&mut self, root: &Id, search: &Search) -> Result<Vec<TreeMatch>> {
        let repository = self.repository;
        let (trees, cached) = (&mut self.trees, &mut self.entries);
        let load = |id: &Id, _: &[u8]| -> Result<Option<Rc<Tree>>> {
            if let Some(tree) = trees.get(id) {
                return Ok(Some(Rc::clone(tree)));
            }
            let tree = Rc::new(repository.read_tree(id)?);
            if *cached + tree.entries.len() <= TREE_CACHE_ENTRIES {
                *cached += tree.entries.len();
                trees.insert(*id, Rc::clone(&tree));
            }
            Ok(Some(tree))
        };
        let mut found = Vec::new();
        TreeWalker::new(repository).walk_with(root, load, |path, entry| {
            let (kind, size) = match &entry.kind {
                EntryKind::File { size, .. } => ("file", *size),
                EntryKind::Directory { .. } => ("dir", 0),
                EntryKind::Symlink { .. } => ("symlink", 0),
            };
            if let Some(matched) = search.matched(path, &entry.name, kind == "file") {
                found.push(TreeMatch {
                    path: String::from_utf8_lossy(path).into_owned(),
                    kind,
                    size,
                    mtime_ns: entry.metadata.mtime_ns,
                    matched,
                });
            }
            Ok(true)
        })?;
        Ok(found)
    }
}

/// A tree entry's mtime (nanoseconds since the epoch, negative before it).
fn timestamp_of_nanoseconds(nanoseconds: i64) -> Timestamp {
    let magnitude = Duration::from_nanos(nanoseconds.unsigned_abs());
    let time = if nanoseconds >= 0 {
        UNIX_EPOCH.checked_add(magnitude)
    } else {
        UNIX_EPOCH.checked_sub(magnitude)
    };
    Timestamp::from(time.unwrap_or(UNIX_EPOCH))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(patterns: &[&str], numbers: &[u64]) -> Search {
        Search {
            patterns: patterns
                .iter()
                .map(|text| PathPattern::parse(text).unwrap())
                .collect(),
            sst_numbers: numbers.to_vec(),
        }
    }

    #[test]
    fn sst_numbers_match_table_files_only() {
        let by_number = search(&[], &[123]);
        let hit = |path: &str, is_file| {
            let name = path.rsplit('/').next().unwrap();
            by_number.matched(path.as_bytes(), name.as_bytes(), is_file)
        };
        assert_eq!(hit("db/000123.sst", true).as_deref(), Some("sst 123"));
        assert_eq!(hit("000123.ldb", true).as_deref(), Some("sst 123"));
        assert_eq!(hit("123.sst", true).as_deref(), Some("sst 123"));
        assert_eq!(hit("000123.sst", false), None);
        assert_eq!(hit("000123.log", true), None);
        assert_eq!(hit("000124.sst", true), None);
        assert_eq!(hit("x000123.sst", true), None);
        assert_eq!(hit("000123.sst.tmp", true), None);
    }

    #[test]
    fn patterns_match_names_anywhere_and_paths_from_the_root() {
        let by_name = search(&["MANIFEST-*"], &[]);
        assert!(by_name
            .matched(b"db/MANIFEST-000005", b"MANIFEST-000005", true)
            .is_some());
        let by_path = search(&["db/CURRENT"], &[]);
        assert!(by_path.matched(b"db/CURRENT", b"CURRENT", true).is_some());
        assert!(by_path.matched(b"x/db/CURRENT", b"CURRENT", true).is_none());
    }

    #[test]
    fn mtimes_before_and_after_the_epoch() {
        assert_eq!(timestamp_of_nanoseconds(1_500_000_000).unix_seconds(), 1.5);
        assert_eq!(
            timestamp_of_nanoseconds(-2_000_000_000).unix_seconds(),
            -2.0
        );
    }
}
