//! Trees: one directory's listing, stored as a content-addressed blob.
//!
//! A tree blob is one version byte followed by the postcard encoding of
//! [`Tree`]. Entries are sorted by name (bytewise), so the same directory state
//! always encodes to the same bytes and an unchanged subtree is stored once.
//!
//! Names are raw bytes (Unix file names need not be UTF-8). A name is a single
//! path component: never empty, `.` or `..`, and never holding `/` or NUL;
//! [`validate_name`] enforces this on every tree read, which is what keeps
//! restore inside its target.
//!
//! Hard links are file entries with `links > 1`: entries of one snapshot that
//! share `(device, inode)` were one file, and restore links them again.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::id::Id;

/// Current tree blob format version (the first byte of every tree blob).
pub const TREE_VERSION: u8 = 1;

/// One directory's listing: the content of a tree blob.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Tree {
    /// The directory's entries, sorted bytewise by name, names unique
    /// (checked by [`Tree::decode`]).
    pub entries: Vec<Entry>,
}

/// One name in a directory with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// One path component as raw bytes (see [`validate_name`]).
    pub name: Vec<u8>,
    /// What the entry is, and where its content lives.
    pub kind: EntryKind,
    /// Its file-system metadata at backup time.
    pub metadata: Metadata,
}

/// File-system metadata kept for every entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Metadata {
    /// Permission bits and type bits as `st_mode`.
    pub mode: u32,
    /// Owner's user id; restored only when restoring as root.
    pub uid: u32,
    /// Owner's group id; restored only when restoring as root.
    pub gid: u32,
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Status-change time in nanoseconds since the Unix epoch (change detection only).
    pub ctime_ns: i64,
    /// `st_dev` of the source file. With `inode`, it matches an unchanged
    /// file against the parent snapshot and groups hard links; never restored.
    pub device: u64,
    /// `st_ino` of the source file (see `device`); never restored.
    pub inode: u64,
    /// Number of hard links the source file had.
    pub links: u64,
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file (postcard variant 0).
    File {
        /// Content length in bytes.
        size: u64,
        /// BLAKE3 of the whole content (keyed in an encrypted repository):
        /// checked after restore. For a one-chunk file it equals the chunk id.
        digest: Id,
        /// Ids of the content's data blobs, in order; empty for an empty file.
        chunks: Vec<Id>,
    },
    /// A subdirectory (postcard variant 1).
    Directory {
        /// Id of the tree blob listing the subdirectory.
        subtree: Id,
    },
    /// A symbolic link (postcard variant 2).
    Symlink {
        /// The link's target as `readlink` returned it (raw bytes).
        target: Vec<u8>,
    },
}

impl Entry {
    /// The entry name for messages (lossy UTF-8).
    pub fn display_name(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// The file's content size in bytes; 0 for directories and symlinks.
    pub fn size(&self) -> u64 {
        match &self.kind {
            EntryKind::File { size, .. } => *size,
            _ => 0,
        }
    }
}

/// Fails unless `name` is one safe path component.
pub fn validate_name(name: &[u8]) -> Result<()> {
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') || name.contains(&0)
    {
        Err(Error::UnsafePath {
            name: String::from_utf8_lossy(name).into_owned(),
        })
    } else {
        Ok(())
    }
}

impl Tree {
    /// Encodes the tree (entries must already be sorted by name).
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = vec![TREE_VERSION];
        // Serializing plain structs into a Vec cannot fail.
        bytes.extend(postcard::to_stdvec(self).unwrap_or_default());
        bytes
    }

    /// Decodes and validates a tree blob (names safe, sorted, unique).
    pub fn decode(id: &Id, bytes: &[u8]) -> Result<Tree> {
        let object = || format!("tree {id}");
        let (version, body) = bytes
            .split_first()
            .ok_or_else(|| Error::corrupt(object(), "empty tree blob"))?;
        if *version != TREE_VERSION {
            return Err(Error::UnsupportedVersion {
                object: object(),
                found: (*version).into(),
                supported: TREE_VERSION.into(),
            });
        }
        let tree: Tree = postcard::from_bytes(body)
            .map_err(|error| Error::corrupt(object(), error.to_string()))?;
        for pair in tree.entries.windows(2) {
            if pair[0].name >= pair[1].name {
                return Err(Error::corrupt(object(), "entries not sorted or not unique"));
            }
        }
        for entry in &tree.entries {
            validate_name(&entry.name)?;
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arbitrary_entry() -> impl Strategy<Value = Entry> {
        let kind = prop_oneof![
            (
                any::<u64>(),
                any::<[u8; 32]>(),
                proptest::collection::vec(any::<[u8; 32]>(), 0..5)
            )
                .prop_map(|(size, digest, chunks)| EntryKind::File {
                    size,
                    digest: Id(digest),
                    chunks: chunks.into_iter().map(Id).collect()
                }),
            any::<[u8; 32]>().prop_map(|subtree| EntryKind::Directory {
                subtree: Id(subtree)
            }),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|target| EntryKind::Symlink { target }),
        ];
        let name = proptest::collection::vec(1u8..=255, 1..20)
            .prop_filter("one safe component", |name| validate_name(name).is_ok());
        (
            name,
            kind,
            any::<(u32, u32, u32, i64, i64, u64, u64, u64)>(),
        )
            .prop_map(
                |(name, kind, (mode, uid, gid, mtime_ns, ctime_ns, device, inode, links))| Entry {
                    name,
                    kind,
                    metadata: Metadata {
                        mode,
                        uid,
                        gid,
                        mtime_ns,
                        ctime_ns,
                        device,
                        inode,
                        links,
                    },
                },
            )
    }

    proptest! {
        #[test]
        fn tree_round_trip(mut entries in proptest::collection::vec(arbitrary_entry(), 0..20)) {
            entries.sort_by(|a, b| a.name.cmp(&b.name));
            entries.dedup_by(|a, b| a.name == b.name);
            let tree = Tree { entries };
            let bytes = tree.encode();
            let id = Id::of(&bytes);
            prop_assert_eq!(Tree::decode(&id, &bytes).unwrap(), tree);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Tree::decode(&Id::of(&bytes), &bytes);
        }
    }

    #[test]
    fn unsafe_names_are_refused() {
        for name in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
            assert!(
                matches!(validate_name(name), Err(Error::UnsafePath { .. })),
                "{name:?}"
            );
        }
        validate_name("ünïcødé ✓".as_bytes()).unwrap();
        validate_name(b"...").unwrap();
        let evil = Tree {
            entries: vec![Entry {
                name: b"..".to_vec(),
                kind: EntryKind::Symlink {
                    target: b"/etc".to_vec(),
                },
                metadata: Metadata::default(),
            }],
        };
        let bytes = evil.encode();
        let error = Tree::decode(&Id::of(&bytes), &bytes).unwrap_err();
        assert!(matches!(error, Error::UnsafePath { .. }), "{error}");
    }
}
