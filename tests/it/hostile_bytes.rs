//! Every parser of repository data, fed mutations of real objects: bit flips,
//! truncations, inserted and overwritten runs, in plaintext and encrypted
//! repositories. None may panic; each returns a value or an error. This is the
//! stable-toolchain companion of the cargo-fuzz targets in `fuzz/` (which need
//! nightly): CI runs a few hundred cases, `LSMVAULT_HOSTILE_CASES=100000` runs
//! more.

use std::fs;
use std::path::{Path, PathBuf};

use lsmvault::codec::crypto::{KeyFile, Keys, SealKind};
use lsmvault::format::config::Config;
use lsmvault::format::index::decode_index_file;
use lsmvault::format::pack::{
    decode_blob, parse_header, parse_pack, parse_trailer, TRAILER_LENGTH,
};
use lsmvault::format::parity;
use lsmvault::format::snapshot::Snapshot;
use lsmvault::format::tree::Tree;
use lsmvault::format::wal_object::WalObject;
use lsmvault::repo::lock::LockInfo;
use lsmvault::{BackupOptions, Id, InitOptions, NoProgress, ParityConfig, Repository};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestRunner};

use crate::common::*;

/// A small repository with every kind of object, and its keys.
struct Fixture {
    _work: tempfile::TempDir,
    objects: Vec<PathBuf>,
    keys: Keys,
}

fn fixture(password: Option<&str>) -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("db");
    fs::create_dir_all(source.join("sub")).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 300_000)).unwrap();
    fs::write(source.join("sub/MANIFEST-000002"), b"manifest").unwrap();
    let options = InitOptions {
        password: password.map(str::to_string),
        kdf_target: std::time::Duration::from_millis(1),
        // Parity objects too (a group of the one pack, with two shards).
        parity: Some(ParityConfig {
            data_packs: 2,
            parity_packs: 2,
        }),
        ..InitOptions::default()
    };
    let repository = Repository::init_local(work.path().join("repo"), options).unwrap();
    repository
        .backup(&source, &BackupOptions::default(), &NoProgress)
        .unwrap();
    let objects = walkdir::WalkDir::new(work.path().join("repo"))
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.into_path())
        .collect();
    Fixture {
        keys: repository.keys().clone(),
        objects,
        _work: work,
    }
}

/// One mutation of an object's bytes.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Truncate { keep: usize },
    Insert { at: usize, bytes: Vec<u8> },
    Overwrite { at: usize, bytes: Vec<u8> },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let position = any::<usize>();
    let run = prop::collection::vec(any::<u8>(), 1..16);
    prop_oneof![
        (position, 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        position.prop_map(|keep| Mutation::Truncate { keep }),
        (position, run.clone()).prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (position, run).prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
    ]
}

fn apply(original: &[u8], mutations: &[Mutation]) -> Vec<u8> {
    let mut bytes = original.to_vec();
    for mutation in mutations {
        let length = bytes.len().max(1);
        match mutation {
            Mutation::FlipBit { at, bit } => {
                if !bytes.is_empty() {
                    let at = at % bytes.len();
                    bytes[at] ^= 1 << bit;
                }
            }
            Mutation::Truncate { keep } => bytes.truncate(keep % length),
            Mutation::Insert { at, bytes: run } => {
                let at = at % length;
                let at = at.min(bytes.len());
                bytes.splice(at..at, run.iter().copied());
            }
            Mutation::Overwrite { at, bytes: run } => {
                for (offset, byte) in run.iter().enumerate() {
                    if let Some(slot) = bytes.get_mut((at % length) + offset) {
                        *slot = *byte;
                    }
                }
            }
        }
    }
    bytes
}

/// Feeds `bytes`, read as the object at `path`, to every parser that reads
/// that kind of object (and, for a pack, to the blob decoder of every entry
/// it still lists).
fn parse_all(path: &Path, bytes: &[u8], keys: &Keys) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let kind = path
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let id = Id::of(bytes);
    match kind.as_str() {
        "snapshots" => {
            if let Ok(json) = keys.open(SealKind::Snapshot, bytes, || name.clone()) {
                let _ = Snapshot::decode(&name, &json);
            }
            let _ = Snapshot::decode(&name, bytes);
        }
        "index" => {
            let _ = decode_index_file(&name, bytes, keys);
        }
        "parity" => {
            let _ = parity::decode_header(&name, bytes);
            let _ = parity::decode(&name, bytes);
        }
        "keys" => {
            if let Ok(file) = serde_json::from_slice::<KeyFile>(bytes) {
                // Only cheap parameters: argon2 with large ones is slow by design.
                if file.kdf_params.memory_kib <= 1024 && file.kdf_params.iterations <= 4 {
                    let _ = file.unwrap_key(b"password", &name);
                }
            }
        }
        "repo" => {
            if let Ok(config) = Config::decode(bytes, "hostile") {
                let _ = config.binding("hostile");
                let _ = config.check_parameters();
                let _ = config.default_compression();
                let _ = config.cipher("hostile");
            }
            let _ = serde_json::from_slice::<LockInfo>(bytes);
            let _ = WalObject::decode(bytes, || name.clone());
        }
        _ => {
            // Packs live under data/xx/.
            if let Some(start) = bytes.len().checked_sub(TRAILER_LENGTH) {
                let _ = parse_trailer(&name, &bytes[start..]);
            }
            let _ = parse_header(&name, bytes, bytes.len() as u64, keys);
            if let Ok(entries) = parse_pack(&name, bytes, keys) {
                for entry in entries {
                    let start = entry.offset as usize;
                    if let Some(stored) = bytes.get(start..start + entry.stored_length as usize) {
                        if let Ok(raw) = decode_blob(&entry, stored, keys, || name.clone()) {
                            let _ = Tree::decode(&entry.id, &raw);
                        }
                    }
                }
            }
            let _ = Tree::decode(&id, bytes);
        }
    }
}

fn run_cases(fixture: &Fixture) {
    let cases = std::env::var("LSMVAULT_HOSTILE_CASES")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(64);
    for path in &fixture.objects {
        let original = fs::read(path).unwrap();
        // Unmutated objects parse (the fixture itself is sound).
        parse_all(path, &original, &fixture.keys);
        // A runner per object: one runner counts its cases over all its runs
        // (regression: a shared runner ran the cases on the first object only).
        let mut runner = TestRunner::new(RunnerConfig {
            cases,
            failure_persistence: None,
            ..RunnerConfig::default()
        });
        let tried = std::cell::Cell::new(0u32);
        runner
            .run(&prop::collection::vec(mutation(), 1..4), |mutations| {
                tried.set(tried.get() + 1);
                parse_all(path, &apply(&original, &mutations), &fixture.keys);
                Ok(())
            })
            .unwrap_or_else(|failure| panic!("{}: {failure}", path.display()));
        assert_eq!(tried.get(), cases, "{}", path.display());
    }
}

#[test]
fn parsers_survive_mutated_objects_of_a_plaintext_repository() {
    let fixture = fixture(None);
    assert!(fixture.objects.len() >= 4, "{:?}", fixture.objects);
    assert!(
        fixture
            .objects
            .iter()
            .any(|path| path.parent().unwrap().ends_with("parity")),
        "{:?}",
        fixture.objects
    );
    run_cases(&fixture);
}

#[test]
fn parsers_survive_mutated_objects_of_an_encrypted_repository() {
    let fixture = fixture(Some("password"));
    assert!(fixture.keys.is_encrypted());
    run_cases(&fixture);
}
