//! [`TreeWalker`]: the one walk over a snapshot's trees that every operation
//! uses (backup's parent lookup, restore, `ls`, verify, prune, stats, diff).
//!
//! Order: depth first, a directory before its children, siblings in the
//! order the tree stores them (by name). Paths are the entries' raw names
//! joined by `/`, relative to the root (the root itself has the empty path).
//! A walker can remember the trees it has walked, so that many snapshots
//! sharing subtrees cost each subtree once.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::format::tree::{Entry, EntryKind, Tree};
use crate::id::Id;
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
        self.walk_with(root, |id, _| repository.read_tree(id).map(Some), &mut visit)
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
        let mut pending: Vec<(Vec<u8>, Id)> = vec![(Vec::new(), *root)];
        while let Some((prefix, tree_id)) = pending.pop() {
            if let Some(walked) = self.walked.as_mut() {
                if !walked.insert(tree_id) {
                    continue;
                }
            }
            let Some(tree) = load(&tree_id, &prefix)? else {
                continue;
            };
            let mut subdirectories = Vec::new();
            for entry in &tree.borrow().entries {
                let path = child_path(&prefix, &entry.name);
                let enter = visit(&path, entry)?;
                if let (EntryKind::Directory { subtree }, true) = (&entry.kind, enter) {
                    subdirectories.push((path, *subtree));
                }
            }
            // Reversed so that popping visits directories in name order.
            pending.extend(subdirectories.into_iter().rev());
        }
        Ok(())
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
    /// entries under the `include` paths (all when empty) and the directories
    /// leading to them. Serves both `restore --include` and `ls PATH`.
    pub fn walk(&self, root: &Id, include: &[String]) -> Result<Vec<WalkedEntry>> {
        let includes: Vec<Vec<Vec<u8>>> = include
            .iter()
            .map(|path| include_components(path))
            .collect::<Result<_>>()?;
        let mut planned = Vec::new();
        TreeWalker::new(self).walk(root, |path, entry| {
            let relative = PathBuf::from(OsStr::from_bytes(path));
            let is_directory = matches!(entry.kind, EntryKind::Directory { .. });
            let wanted = selected(&relative, &includes)
                && (is_directory || inside_include(&relative, &includes));
            if wanted {
                planned.push(WalkedEntry {
                    relative,
                    entry: entry.clone(),
                });
            }
            Ok(wanted)
        })?;
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

/// Splits a user's include path into components, refusing `..`.
fn include_components(path: &str) -> Result<Vec<Vec<u8>>> {
    let mut components = Vec::new();
    for component in Path::new(path).components() {
        match component {
            Component::Normal(name) => components.push(name.as_bytes().to_vec()),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(Error::InvalidArgument(format!(
                    "include path {path:?} must not contain '..'"
                )))
            }
        }
    }
    Ok(components)
}

/// The components of a relative path, as bytes.
fn components_of(relative: &Path) -> Vec<&[u8]> {
    relative
        .components()
        .map(|component| component.as_os_str().as_bytes())
        .collect()
}

/// Whether `relative` is selected: inside an include path, or a directory on the way to one.
fn selected(relative: &Path, includes: &[Vec<Vec<u8>>]) -> bool {
    if includes.is_empty() {
        return true;
    }
    let components = components_of(relative);
    includes.iter().any(|include| {
        let shared = include.len().min(components.len());
        include[..shared]
            .iter()
            .zip(&components[..shared])
            .all(|(a, b)| a.as_slice() == *b)
    })
}

/// Whether `relative` is inside (or equal to) an include path (not merely on the way).
fn inside_include(relative: &Path, includes: &[Vec<Vec<u8>>]) -> bool {
    if includes.is_empty() {
        return true;
    }
    let components = components_of(relative);
    includes.iter().any(|include| {
        components.len() >= include.len()
            && include
                .iter()
                .zip(&components)
                .all(|(a, b)| a.as_slice() == *b)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_selection() {
        let includes = vec![include_components("db/sub").unwrap()];
        assert!(selected(Path::new("db"), &includes));
        assert!(!inside_include(Path::new("db"), &includes));
        assert!(selected(Path::new("db/sub/x"), &includes));
        assert!(inside_include(Path::new("db/sub/x"), &includes));
        assert!(!selected(Path::new("db/other"), &includes));
        assert!(!selected(Path::new("other"), &includes));
        assert!(include_components("../etc").is_err());
        assert_eq!(
            include_components("./a//b/").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }
}
