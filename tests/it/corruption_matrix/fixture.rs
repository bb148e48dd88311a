//! The matrix's base repository: three snapshots A, B, C of three source
//! directories that share `shared.sst` (stored once, in A's packs) and each
//! hold an `own.sst` and a one-chunk `sub/x.txt` of their own (stored in one
//! pack per snapshot); two archived WAL segments; in an encrypted repository
//! a second key file; two stale lock files of a crashed command elsewhere.
//!
//! `sub/x.txt` has the same size and mtime in every snapshot, so B's and C's
//! `sub` tree blobs and `x.txt` chunks have the same stored length: one can
//! be written over the other inside its pack (replacement and swap of blobs).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::common::*;
use lsmvault::backend::ObjectKind;
use lsmvault::codec::chunker::ChunkerParams;
use lsmvault::format::index::BlobLocation;
use lsmvault::format::tree::EntryKind;
use lsmvault::format::wal_object::WalObject;
use lsmvault::{Id, InitOptions, Repository};

/// The password of the key every command of the matrix uses.
pub const PASSWORD: &str = "corruption matrix password";
/// The password of the second key file (the one key cells damage).
pub const SECOND_PASSWORD: &str = "corruption matrix second password";

/// One base repository, copied by every cell.
pub struct Base {
    _work: tempfile::TempDir,
    pub repo: PathBuf,
    pub encrypted: bool,
    /// The source directories of A, B, C, as they were backed up.
    pub sources: Vec<PathBuf>,
    /// Snapshot ids of A, B, C (64 hex digits).
    pub snapshots: Vec<String>,
    /// The fake database whose WAL segments 5 and 6 are archived.
    pub database: PathBuf,
    /// The objects cells damage: [of B, of C] (or [target, other]).
    pub targets: Targets,
}

/// Names and places of the objects the cells damage.
pub struct Targets {
    /// Root tree ids (hex) of A, B, C.
    pub root_trees: Vec<String>,
    /// The index files written by the backups of B and C.
    pub index_files: [String; 2],
    /// The `sub` tree blobs of B and C.
    pub trees: [BlobLocation; 2],
    /// The chunks of `sub/x.txt` of B and C.
    pub chunks: [BlobLocation; 2],
    /// The packs holding B's and C's own blobs (hex).
    pub packs: [String; 2],
    /// The second key file (damaged) and the owner's (the other), when encrypted.
    pub keys: Option<[String; 2]>,
    /// The WAL objects of segments 5 and 6.
    pub wal: [String; 2],
    /// Two stale lock files.
    pub locks: [String; 2],
    /// The `config` of another repository of the same kind.
    pub other_config: Vec<u8>,
}

/// Small chunks (64 / 128 / 256 KiB) and 1 MiB packs: every snapshot's own
/// data is a few chunks in a pack of its own.
fn init_options(encrypted: bool) -> InitOptions {
    InitOptions {
        chunker: ChunkerParams {
            min_size: 64 * 1024,
            avg_size: 128 * 1024,
            max_size: 256 * 1024,
            ..ChunkerParams::default()
        },
        pack_size: 1024 * 1024,
        password: encrypted.then(|| PASSWORD.to_string()),
        kdf_target: Duration::from_millis(10),
        ..InitOptions::default()
    }
}

fn open(repo: &Path, encrypted: bool) -> Repository {
    if encrypted {
        Repository::open_local_with_password(repo, PASSWORD).unwrap()
    } else {
        Repository::open_local(repo).unwrap()
    }
}

/// Writes the source directory of snapshot `index` (0 = A).
fn write_source(root: &Path, index: u64) -> PathBuf {
    let source = root.join(format!("source-{index}"));
    fs::create_dir_all(source.join("sub")).unwrap();
    fs::write(source.join("shared.sst"), seeded_bytes(100, 1_200_000)).unwrap();
    fs::write(source.join("own.sst"), seeded_bytes(10 + index, 700_000)).unwrap();
    let small = source.join("sub").join("x.txt");
    fs::write(&small, seeded_bytes(20 + index, 50_000)).unwrap();
    let fixed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(&small)
        .unwrap()
        .set_modified(fixed)
        .unwrap();
    source
}

/// A stale shared lock of a command that crashed on another host long ago.
fn stale_lock(purpose: &str) -> Vec<u8> {
    serde_json::to_vec_pretty(&serde_json::json!({
        "version": 1, "kind": "shared", "host": "matrix-elsewhere", "pid": 4242,
        "purpose": purpose, "created": "2020-01-01T00:00:00Z",
        "refreshed": "2020-01-01T00:00:00Z"
    }))
    .unwrap()
}

impl Base {
    pub fn new(encrypted: bool) -> Base {
        let work = tempfile::tempdir().unwrap();
        let repo = work.path().join("repo");
        Repository::init_local(&repo, init_options(encrypted)).unwrap();
        let password = encrypted.then_some(PASSWORD);
        let mut sources = Vec::new();
        let mut snapshots = Vec::new();
        for index in 0..3 {
            let source = write_source(work.path(), index);
            let output = lsmvault_with_password(
                &repo,
                password,
                &["--json", "backup", "--full", source.to_str().unwrap()],
            );
            assert!(output.status.success(), "{output:?}");
            let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
            snapshots.push(report["id"].as_str().unwrap().to_string());
            sources.push(source);
        }
        let database = crate::pitr::fake_database(
            work.path(),
            &[
                (5, (1..=30).map(|sequence| (sequence, 1)).collect()),
                (6, (31..=60).map(|sequence| (sequence, 1)).collect()),
            ],
        );
        let archived = lsmvault_with_password(
            &repo,
            password,
            &["wal", "archive", database.to_str().unwrap()],
        );
        assert!(archived.status.success(), "{archived:?}");
        let locks = ["e".repeat(64), "f".repeat(64)];
        for (name, purpose) in locks.iter().zip(["backup", "restore"]) {
            let path = repo.join("locks").join(name);
            fs::write(&path, stale_lock(purpose)).unwrap();
            // Stale by the storage's clock too (locks are judged by their
            // object's mtime): written when its holder said, in 2020.
            filetime::set_file_mtime(&path, filetime::FileTime::from_unix_time(1_577_836_800, 0))
                .unwrap();
        }
        let other = work.path().join("other");
        Repository::init_local(&other, init_options(encrypted)).unwrap();
        let other_config = fs::read(other.join("config")).unwrap();

        let repository = open(&repo, encrypted);
        let keys = encrypted.then(|| {
            let owner = repository.list_keys().unwrap()[0].name.clone();
            let second = repository
                .add_key(SECOND_PASSWORD, Duration::from_millis(10))
                .unwrap();
            [second, owner]
        });
        let targets = Targets::find(&repository, &snapshots, keys, locks, other_config);
        Base {
            _work: work,
            repo,
            encrypted,
            sources,
            snapshots,
            database,
            targets,
        }
    }
}

impl Targets {
    fn find(
        repository: &Repository,
        snapshots: &[String],
        keys: Option<[String; 2]>,
        locks: [String; 2],
        other_config: Vec<u8>,
    ) -> Targets {
        let index = repository.index().unwrap();
        let locate = |id: &Id| *index.get(id).unwrap();
        let mut root_trees = Vec::new();
        let mut trees = Vec::new();
        let mut chunks = Vec::new();
        // Every blob each snapshot needs, to check that B's and C's packs hold
        // nothing another snapshot needs.
        let mut needs: Vec<Vec<Id>> = Vec::new();
        for id in snapshots {
            let root = repository.find_snapshot(id).unwrap().snapshot.tree;
            root_trees.push(root.to_hex());
            let mut needed = vec![root];
            let mut sub = None;
            for entry in repository.read_tree(&root).unwrap().entries {
                match entry.kind {
                    EntryKind::Directory { subtree } => sub = Some(subtree),
                    EntryKind::File { chunks, .. } => needed.extend(chunks),
                    EntryKind::Symlink { .. } => {}
                }
            }
            let sub = sub.unwrap();
            needed.push(sub);
            let small = repository.read_tree(&sub).unwrap().entries.remove(0);
            let EntryKind::File { chunks: small, .. } = small.kind else {
                panic!("sub/x.txt is not a file")
            };
            assert_eq!(small.len(), 1, "x.txt is one chunk");
            needed.extend(&small);
            trees.push(locate(&sub));
            chunks.push(locate(&small[0]));
            needs.push(needed);
        }
        let packs = [trees[1].pack, trees[2].pack];
        for (own, pack) in [1, 2].into_iter().zip(packs) {
            assert_eq!(
                chunks[own].pack, pack,
                "x.txt and sub of one snapshot share a pack"
            );
            for (other, needed) in needs.iter().enumerate() {
                let uses = needed.iter().any(|blob| locate(blob).pack == pack);
                assert_eq!(
                    uses,
                    other == own,
                    "pack {pack} holds only snapshot {own}'s blobs"
                );
            }
        }
        for kind in [&trees, &chunks] {
            assert_eq!(
                kind[1].entry.stored_length, kind[2].entry.stored_length,
                "B's and C's blobs have the same stored length"
            );
        }
        let index_file_of = |blob: &Id| {
            repository
                .backend()
                .list(ObjectKind::Index)
                .unwrap()
                .into_iter()
                .map(|file| file.name)
                .find(|name| {
                    repository
                        .read_index_file(name)
                        .unwrap()
                        .iter()
                        .any(|location| location.entry.id == *blob)
                })
                .unwrap()
        };
        let mut wal = [String::new(), String::new()];
        for (id, object) in repository.wal_objects().unwrap() {
            if let WalObject::Segment(record) = object {
                wal[(record.segment - 5) as usize] = id.to_hex();
            }
        }
        assert!(wal.iter().all(|name| !name.is_empty()), "{wal:?}");
        Targets {
            root_trees,
            index_files: [
                index_file_of(&chunks[1].entry.id),
                index_file_of(&chunks[2].entry.id),
            ],
            trees: [trees[1], trees[2]],
            chunks: [chunks[1], chunks[2]],
            packs: [packs[0].to_hex(), packs[1].to_hex()],
            keys,
            wal,
            locks,
            other_config,
        }
    }
}

/// The path of pack `name` in `repo`.
pub fn pack_path(repo: &Path, name: &str) -> PathBuf {
    repo.join("data").join(&name[..2]).join(name)
}
