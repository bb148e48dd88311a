//! [`TreeWalker`]: the one walk over a snapshot's trees that every operation
//! uses (backup's parent lookup, restore, `ls`, verify, prune, stats, diff).
//!
//! Order: depth first, a directory before its children, siblings in the
//! order the tree stores them (by name). Paths are the entries' raw names
//! joined by `/`, relative to the root (the root itself has the empty path).
//! A walker can remember the trees it has walked, so that many snapshots
//! sharing subtrees cost each subtree once.
//!
//! Bounds, because a tree is data an attacker may have written: a tree that
//! contains itself (a cycle on the current path) is refused, and so is a walk
//! that nests deeper than [`MAX_DEPTH`] or visits far more entries than the distinct trees it read hold (a DAG of
//! 41 trees, each referencing the next twice, has 2^40 paths). Both fail with
//! `CorruptObject` naming the tree, instead of running forever.

use std::borrow::Borrow;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::error::{Error, Result};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::Id;
use crate::repo::path_pattern::PathPattern;
use crate::repo::Repository;

/// Walks trees of one repository.
pub struct TreeWalker<'repository> {
    repository: &'repository Repository,
    /// With [`TreeWalker::once_per_tree`]: trees already walked (by any walk of this walker).
    walked: Option<HashSet<Id>>,
}

impl<'repository> TreeWalker<'repository> {
    /// A walker that reads trees from `repository` and walks every subtree
    /// each time it is reached.
    pub fn new(repository: &'repository Repository) -> Self {
        TreeWalker {
            repository,
            walked: None,
        }
    }

    /// Walk each distinct tree only once over all walks of this walker: a
    /// subtree seen before (in this or an earlier walk) is not entered again.
    pub fn once_per_tree(mut self) -> Self {
        self.walked = Some(HashSet::new());
        self
    }

    /// Walks `root`, calling `visit` with each entry's path and the entry.
    /// For a directory, `visit` returns whether to enter it.
    pub fn walk(
        &mut self,
        root: &Id,
        mut visit: impl FnMut(&[u8], &Entry) -> Result<bool>,
    ) -> Result<()> {
        let repository = self.repository;
        if self.walked.is_some() {
            // Each tree is read once anyway: nothing to cache.
            return self.walk_with(root, |id, _| repository.read_tree(id).map(Some), &mut visit);
        }
        // A subtree reached by several paths (identical directories) is read
        // once, as long as the cache stays within its budget.
        let mut cache: HashMap<Id, Rc<Tree>> = HashMap::new();
        let mut cached_entries = 0usize;
        let load = |id: &Id, _: &[u8]| -> Result<Option<Rc<Tree>>> {
            if let Some(tree) = cache.get(id) {
                return Ok(Some(Rc::clone(tree)));
            }
            let tree = Rc::new(repository.read_tree(id)?);
            if cached_entries + tree.entries.len() <= TREE_CACHE_ENTRIES {
                cached_entries += tree.entries.len();
                cache.insert(*id, Rc::clone(&tree));
            }
            Ok(Some(tree))
        };
        self.walk_with(root, load, &mut visit)
    }

    /// Like [`TreeWalker::walk`], with trees obtained from `load` (given the
    /// tree's id and its path): verify reads trees itself, records what it
    /// finds, and answers `None` for a tree it cannot read so the walk goes
    /// on without it.
    pub fn walk_with<LoadedTree: Borrow<Tree>>(
        &mut self,
        root: &Id,
        mut load: impl FnMut(&Id, &[u8]) -> Result<Option<LoadedTree>>,
        mut visit: impl FnMut(&[u8], &Entry) -> Result<bool>,
    ) -> Result<()> {
        let mut bounds = WalkBounds::new(*root);
        // Each pending tree carries its depth, so the trees on the path to it
        // are the first `depth` of `bounds.path`.
        let mut pending: Vec<(Vec<u8>, Id, usize)> = vec![(Vec::new(), *root, 0)];
        while let Some((prefix, tree_id, depth)) = pending.pop() {
            if let Some(walked) = self.walked.as_mut() {
                if !walked.insert(tree_id) {
                    continue;
                }
            }
            bounds.enter(&tree_id, depth, &prefix)?;
            let Some(tree) = load(&tree_id, &prefix)? else {
                continue;
            };
            let entries = &tree.borrow().entries;
            bounds.count(&tree_id, entries.len(), &prefix)?;
            let mut subdirectories = Vec::new();
            for entry in entries {
                let path = child_path(&prefix, &entry.name);
                let enter = visit(&path, entry)?;
                if let (EntryKind::Directory { subtree }, true) = (&entry.kind, enter) {
                    subdirectories.push((path, *subtree, depth + 1));
                }
            }
            // Reversed so that popping visits directories in name order.
            pending.extend(subdirectories.into_iter().rev());
        }
        Ok(())
    }
}

/// Every walk visits at least this many entries before [`MAX_EXPANSION`]
/// applies: far more than any one database directory holds, few enough that
/// a hostile tree is refused within seconds.
pub const MIN_WALK_ENTRIES: u64 = 1 << 18;

/// How deep directories may nest. Paths are held whole, so a chain of n
/// directories costs n^2 bytes of paths; a real source this deep cannot be
/// reached through paths of `PATH_MAX` (4096 bytes) anyway.
pub const MAX_DEPTH: usize = 4096;

/// How many tree entries one [`TreeWalker::walk`] keeps in its cache of trees
/// already read (about 10 MiB).
const TREE_CACHE_ENTRIES: usize = 1 << 16;

/// Beyond [`MIN_WALK_ENTRIES`], a walk may visit at most this many entries per
/// entry of the distinct trees it has read. Identical subdirectories share
/// one tree blob, so a real snapshot visits a tree once per copy of the
/// directory; a tree DAG built to be reached by 2^40 paths has a ratio of
/// billions, a source with up to this many copies of every directory passes.
pub const MAX_EXPANSION: u64 = 64;

/// What one walk has seen, to refuse trees that contain themselves, nest
/// deeper than [`MAX_DEPTH`], or are reached by more paths than a real
/// snapshot could hold.
struct WalkBounds {
    root: Id,
    /// The trees on the path to the tree being read, root first.
    path: Vec<Id>,
    on_path: HashSet<Id>,
    /// Distinct trees read, and the sum of their entry counts.
    distinct: HashSet<Id>,
    distinct_entries: u64,
    /// Entries visited, counting a tree once per path that reaches it.
    visited: u64,
}

impl WalkBounds {
    fn new(root: Id) -> Self {
        WalkBounds {
            root,
            path: Vec::new(),
            on_path: HashSet::new(),
            distinct: HashSet::new(),
            distinct_entries: 0,
            visited: 0,
        }
    }

    /// Enters `tree` at `depth`: refuses it if it is its own ancestor or too deep.
    fn enter(&mut self, tree: &Id, depth: usize, prefix: &[u8]) -> Result<()> {
        for left in self.path.drain(depth.min(self.path.len())..) {
            self.on_path.remove(&left);
        }
        if depth > MAX_DEPTH {
            return Err(Error::corrupt(
                format!("tree {}", self.root),
                format!(
                    "nests directories more than {MAX_DEPTH} deep (tree {tree} at {}...)",
                    display_path(&prefix[..prefix.len().min(200)])
                ),
            ));
        }
        if !self.on_path.insert(*tree) {
            return Err(Error::corrupt(
                format!("tree {tree}"),
                format!(
                    "contains itself (a cycle at {}, under root tree {})",
                    display_path(prefix),
                    self.root
                ),
            ));
        }
        self.path.push(*tree);
        Ok(())
    }

    /// Counts the `entries` of `tree`; refuses the walk once it visits more
    /// entries than the distinct trees it read can account for.
    fn count(&mut self, tree: &Id, entries: usize, prefix: &[u8]) -> Result<()> {
        let entries = entries as u64;
        if self.distinct.insert(*tree) {
            self.distinct_entries = self.distinct_entries.saturating_add(entries);
        }
        self.visited = self.visited.saturating_add(entries);
        let limit = MIN_WALK_ENTRIES.max(self.distinct_entries.saturating_mul(MAX_EXPANSION));
        if self.visited > limit {
            return Err(Error::corrupt(
                format!("tree {}", self.root),
                format!(
                    "reaches more than {limit} entries through {} distinct trees of {} entries \
                     (tree {tree} again at {}): its trees reference each other more often \
                     than a real snapshot's directories could",
                    self.distinct.len(),
                    self.distinct_entries,
                    display_path(prefix)
                ),
            ));
        }
        Ok(())
    }
}

/// A walk path for messages: `/` for the root.
fn display_path(path: &[u8]) -> String {
    if path.is_empty() {
        "/".into()
    } else {
        String::from_utf8_lossy(path).into_owned()
    }
}

/// `prefix/name`, or `name` at the root.
fn child_path(prefix: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
    path.extend_from_slice(prefix);
    if !path.is_empty() {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// One entry of a flattened snapshot tree, with its path relative to the root.
#[derive(Debug, Clone)]
pub struct WalkedEntry {
    /// The entry's path relative to the snapshot root.
    pub relative: PathBuf,
    /// The tree entry itself.
    pub entry: Entry,
}

impl Repository {
    /// Flattens the tree `root`, parents before children, keeping only the
    /// entries the `include` patterns select (all when empty) and the
    /// directories leading to them. Serves both `restore --include` and
    /// `ls PATH`; an include pattern that selects nothing is an error
    /// naming it (a typo must not restore or list nothing, successfully).
    pub fn walk(&self, root: &Id, include: &[String]) -> Result<Vec<WalkedEntry>> {
        self.walk_selected(root, include, &[])
    }

    /// [`Repository::walk`] that also leaves out every entry an `exclude`
    /// pattern covers (and what is below it). Patterns are globs
    /// ([`PathPattern`]).
    pub fn walk_selected(
        &self,
        root: &Id,
        include: &[String],
        exclude: &[String],
    ) -> Result<Vec<WalkedEntry>> {
        let parse = |patterns: &[String]| -> Result<Vec<PathPattern>> {
            patterns
                .iter()
                .map(|text| PathPattern::parse(text))
                .collect()
        };
        let (includes, excludes) = (parse(include)?, parse(exclude)?);
        let mut matched = vec![false; includes.len()];
        // Each entry with whether a pattern selected it (not merely on the way).
        let mut planned: Vec<(WalkedEntry, bool)> = Vec::new();
        TreeWalker::new(self).walk(root, |path, entry| {
            let relative = PathBuf::from(OsStr::from_bytes(path));
            let components = components_of(&relative);
            if excludes.iter().any(|pattern| pattern.covers(&components)) {
                return Ok(false);
            }
            let is_directory = matches!(entry.kind, EntryKind::Directory { .. });
            let mut inside = includes.is_empty();
            for (pattern, matched) in includes.iter().zip(matched.iter_mut()) {
                if pattern.covers(&components) {
                    *matched = true;
                    inside = true;
                }
            }
            let on_the_way =
                is_directory && includes.iter().any(|pattern| pattern.leads_to(&components));
            let wanted = inside || on_the_way;
            if wanted {
                let walked = WalkedEntry {
                    relative,
                    entry: entry.clone(),
                };
                planned.push((walked, inside));
            }
            Ok(wanted)
        })?;
        // A directory that was only on the way stays only if something under
        // it was selected: `**/x` looks into every directory, but must not
        // restore every directory empty.
        let needed: HashSet<PathBuf> = planned
            .iter()
            .filter(|(_, inside)| *inside && !includes.is_empty())
            .flat_map(|(walked, _)| walked.relative.ancestors().map(Path::to_path_buf))
            .collect();
        let planned: Vec<WalkedEntry> = planned
            .into_iter()
            .filter(|(walked, inside)| *inside || needed.contains(&walked.relative))
            .map(|(walked, _)| walked)
            .collect();
        let unmatched: Vec<&str> = includes
            .iter()
            .zip(&matched)
            .filter(|(_, matched)| !**matched)
            .map(|(pattern, _)| pattern.text.as_str())
            .collect();
        if !unmatched.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "no path in the snapshot matches {}",
                unmatched
                    .iter()
                    .map(|text| format!("\"{text}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(planned)
    }

    /// Adds every blob (trees and chunks) the given root trees reference to
    /// `blobs`. A tree already in `blobs` is not walked again, so callers can
    /// share the work across snapshots.
    pub fn referenced_blobs(&self, roots: &[Id], blobs: &mut HashSet<Id>) -> Result<()> {
        let mut walker = TreeWalker::new(self);
        for root in roots {
            if !blobs.insert(*root) {
                continue;
            }
            walker.walk(root, |_, entry| match &entry.kind {
                EntryKind::Directory { subtree } => Ok(blobs.insert(*subtree)),
                EntryKind::File { chunks, .. } => {
                    blobs.extend(chunks.iter().copied());
                    Ok(false)
                }
                EntryKind::Symlink { .. } => Ok(false),
            })?;
        }
        Ok(())
    }
}

/// The components of a relative path, as bytes.
fn components_of(relative: &Path) -> Vec<&[u8]> {
    relative
        .components()
        .map(|component| component.as_os_str().as_bytes())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, MemoryBackend};
    use crate::format::tree::Metadata;
    use crate::repo::InitOptions;
    use std::sync::Arc;

    fn repository() -> Repository {
        let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
        Repository::init(backend, InitOptions::default()).unwrap()
    }

    fn directory(name: &str, subtree: Id) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind: EntryKind::Directory { subtree },
            metadata: Metadata::default(),
        }
    }

    /// Walks `root` over the trees in `trees`; returns the entries visited.
    fn walk_over(trees: &HashMap<Id, Tree>, root: Id) -> Result<u64> {
        let repository = repository();
        let mut visited = 0u64;
        TreeWalker::new(&repository).walk_with(
            &root,
            |id, _| Ok(trees.get(id)),
            |_, _| {
                visited += 1;
                Ok(true)
            },
        )?;
        Ok(visited)
    }

    #[test]
    fn a_tree_containing_itself_is_refused() {
        let looping = Id([7; 32]);
        let trees = HashMap::from([(
            looping,
            Tree {
                entries: vec![directory("again", looping)],
            },
        )]);
        let error = walk_over(&trees, looping).unwrap_err();
        assert_eq!(error.code(), crate::error::ErrorCode::CorruptObject);
        let message = error.to_string();
        assert!(message.contains(&format!("tree {looping}")), "{message}");
        assert!(message.contains("contains itself"), "{message}");
    }

    #[test]
    fn directories_nested_deeper_than_the_limit_are_refused() {
        let chain = |levels: usize| {
            let mut trees = HashMap::new();
            let mut below = Id([0; 32]);
            trees.insert(below, Tree { entries: vec![] });
            for level in 1..=levels {
                let mut id = Id([0; 32]);
                id.0[..8].copy_from_slice(&(level as u64).to_le_bytes());
                trees.insert(
                    id,
                    Tree {
                        entries: vec![directory("d", below)],
                    },
                );
                below = id;
            }
            (trees, below)
        };
        let (trees, root) = chain(MAX_DEPTH);
        assert_eq!(walk_over(&trees, root).unwrap(), MAX_DEPTH as u64);
        let (trees, root) = chain(MAX_DEPTH + 1);
        let message = walk_over(&trees, root).unwrap_err().to_string();
        assert!(
            message.contains(&format!("tree {root} is corrupt")),
            "{message}"
        );
        assert!(message.contains("more than 4096 deep"), "{message}");
    }

    #[test]
    fn shared_subtrees_are_walked_once_per_path_within_bounds() {
        // 16 levels of two references each: 2^17 - 2 entries, under the floor.
        let mut trees = HashMap::new();
        let mut below = Id([0; 32]);
        trees.insert(below, Tree { entries: vec![] });
        for level in 1..=16u8 {
            let id = Id([level; 32]);
            trees.insert(
                id,
                Tree {
                    entries: vec![directory("a", below), directory("b", below)],
                },
            );
            below = id;
        }
        assert_eq!(walk_over(&trees, below).unwrap(), (1 << 17) - 2);
    }

    #[test]
    fn a_dag_with_more_paths_than_its_trees_hold_is_refused() {
        let mut trees = HashMap::new();
        let mut below = Id([0; 32]);
        trees.insert(below, Tree { entries: vec![] });
        for level in 1..=40u8 {
            let id = Id([level; 32]);
            trees.insert(
                id,
                Tree {
                    entries: vec![directory("a", below), directory("b", below)],
                },
            );
            below = id;
        }
        let error = walk_over(&trees, below).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("tree {below} is corrupt")),
            "{message}"
        );
        assert!(message.contains("more than 262144 entries"), "{message}");
    }
}
