//! The fuzz corpus as a regression suite on the stable toolchain: every file
//! under `fuzz/corpus/<target>/` is fed to the same harness the cargo-fuzz
//! target runs (`fuzz/src/lib.rs`, included here), so a crashing input added
//! to the corpus fails `cargo test` without nightly.
//!
//! The seed corpus holds real objects of a small plaintext repository made by
//! the CLI; `LSMVAULT_WRITE_FUZZ_CORPUS=1 cargo test --test it
//! fuzz_corpus -- --ignored` writes it again (see docs/reliability.md).

#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};

use lsmvault::format::tree::EntryKind;
use lsmvault::lsm::log::encode_log;
use lsmvault::lsm::write_batch::encode_write_batch;
use lsmvault::repo::lock::{LockInfo, LockKind, LOCK_VERSION};
use lsmvault::{Id, InitOptions, Repository};

use crate::common::*;

fn corpus_root() -> PathBuf {
    source_root().join("fuzz/corpus")
}

fn files_of(directory: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(directory)
        .unwrap_or_else(|error| panic!("{}: {error}", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

#[test]
fn every_fuzz_corpus_file_replays_through_its_parser_without_panicking() {
    let mut replayed = 0;
    for (target, harness) in harness::TARGETS {
        let files = files_of(&corpus_root().join(target));
        assert!(!files.is_empty(), "fuzz/corpus/{target} has no seed");
        for file in files {
            let bytes = fs::read(&file).unwrap();
            let outcome = std::panic::catch_unwind(|| harness(&bytes));
            assert!(outcome.is_ok(), "{target} panicked on {}", file.display());
            replayed += 1;
        }
    }
    // Every corpus directory belongs to a target (a renamed target would
    // otherwise leave its corpus silently unreplayed).
    for entry in fs::read_dir(corpus_root()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            harness::TARGETS.iter().any(|(target, _)| *target == name),
            "fuzz/corpus/{name} is no fuzz target"
        );
    }
    eprintln!("replayed {replayed} corpus files");
}

/// Writes `bytes` as `fuzz/corpus/<target>/<name>`.
fn seed(target: &str, name: &str, bytes: &[u8]) {
    let directory = corpus_root().join(target);
    fs::create_dir_all(&directory).unwrap();
    fs::write(directory.join(name), bytes).unwrap();
}

/// Seeds of the cluster parsers: topology files (the example of
/// docs/cluster.md, one with many problems) and, in `repo`, a cluster
/// snapshot of that example (no command writes one yet: the library does).
fn cluster_seeds(repo: &Path) {
    use lsmvault::format::cluster::{ClusterMember, ClusterSnapshot, PauseFigures};
    use lsmvault::format::topology::Topology;
    let docs = fs::read_to_string(source_root().join("docs/cluster.md")).unwrap();
    let example = docs
        .split("```toml\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    seed("topology", "docs-example", example.as_bytes());
    seed(
        "topology",
        "invalid-many",
        b"name = \"x\"\n[groups.g]\nscheme = \"raid5\"\n[[shards]]\nname = \"..\"\ngroup = \"h\"\nrole = \"parity\"\npath = \"rel\"\nfreeze = \"a\"\npid_file = \"/p\"\npathh = 1\n",
    );
    let topology = Topology::parse("docs/cluster.md", example).unwrap();
    let members = topology
        .shards
        .iter()
        .skip(1)
        .map(|shard| ClusterMember {
            shard: shard.name.clone(),
            group: shard.group.clone(),
            role: shard.role,
            snapshot: Some(Id::of(shard.name.as_bytes())),
            sequence: Some(42),
            pause: PauseFigures::default(),
        })
        .collect();
    let mut snapshot = ClusterSnapshot::new(topology, lsmvault::Timestamp::now(), members);
    snapshot.tag = Some("nightly".to_string());
    let repository = Repository::open_local(repo).unwrap();
    repository.write_cluster_snapshot(&snapshot).unwrap();
}

/// Every file of a repository directory (`data` holds one more level).
fn objects_under(directory: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(directory)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .filter(|path| path.is_file())
        .collect()
}

fn short_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy()[..16.min(path.file_name().unwrap().len())]
        .to_string()
}

/// Regenerates the seed corpus (run by hand, see the module docs): a fake
/// database with WAL segments, backed up, archived and tagged by the CLI into
/// a plaintext repository; its objects (packs up to 64 KiB) are the seeds, plus
/// a key file of an encrypted repository and a lock as the CLI writes them.
#[test]
#[ignore = "writes fuzz/corpus; run by hand with LSMVAULT_WRITE_FUZZ_CORPUS=1"]
fn write_fuzz_corpus_from_a_real_repository() {
    if std::env::var("LSMVAULT_WRITE_FUZZ_CORPUS").as_deref() != Ok("1") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let db = work.path().join("db");
    fs::create_dir_all(db.join("sub")).unwrap();
    fs::write(db.join("IDENTITY"), "fuzz-corpus-db\n").unwrap();
    fs::write(db.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    fs::write(db.join("MANIFEST-000001"), encode_log(&[], None)).unwrap();
    fs::write(db.join("000010.sst"), seeded_bytes(1, 3000)).unwrap();
    fs::write(db.join("sub/OPTIONS-000003"), b"[Version]\n").unwrap();
    std::os::unix::fs::symlink("000010.sst", db.join("link")).unwrap();
    let batches = |range: std::ops::RangeInclusive<u64>| -> Vec<Vec<u8>> {
        range
            .map(|sequence| encode_write_batch(sequence, 1, &[0x42; 40]))
            .collect()
    };
    let log = encode_log(&batches(1..=6), None);
    fs::write(db.join("000005.log"), &log).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption", "--parity", "2+1"]);
    lsmvault_ok(&repo, &["backup", db.to_str().unwrap()]);
    fs::write(db.join("000007.log"), encode_log(&batches(7..=9), Some(7))).unwrap();
    lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
    lsmvault_ok(&repo, &["tag", "before-upgrade", db.to_str().unwrap()]);

    // Regenerating keeps the regression inputs fuzzing found
    // (`regression-*`), which no repository would write.
    for (target, _) in harness::TARGETS {
        let directory = corpus_root().join(target);
        if !directory.is_dir() {
            continue;
        }
        for file in files_of(&directory) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if !name.starts_with("regression-") {
                fs::remove_file(&file).unwrap();
            }
        }
    }
    seed("config", "config", &fs::read(repo.join("config")).unwrap());
    cluster_seeds(&repo);
    for (target, directory) in [
        ("index", "index"),
        ("snapshot", "snapshots"),
        ("wal_object", "wal"),
        ("parity", "parity"),
        ("cluster_snapshot", "clusters"),
    ] {
        for object in objects_under(&repo.join(directory)) {
            seed(target, &short_name(&object), &fs::read(&object).unwrap());
        }
    }
    for pack in objects_under(&repo.join("data")) {
        let bytes = fs::read(&pack).unwrap();
        if bytes.len() <= 64 * 1024 {
            seed("pack", &short_name(&pack), &bytes);
        }
    }
    // Every tree of every snapshot, raw (as the pack holds it decoded).
    let repository = Repository::open_local(&repo).unwrap();
    let mut pending: Vec<Id> = repository
        .snapshots()
        .unwrap()
        .iter()
        .map(|entry| entry.snapshot.tree)
        .collect();
    while let Some(id) = pending.pop() {
        let tree = repository.read_tree(&id).unwrap();
        for entry in &tree.entries {
            if let EntryKind::Directory { subtree } = entry.kind {
                pending.push(subtree);
            }
        }
        seed("tree", &id.to_hex()[..16], &tree.encode());
    }
    // The WAL reader's first byte selects the log number (see the harness).
    seed(
        "wal_reader",
        "plain-log",
        &[[0u8].as_slice(), &log].concat(),
    );
    let recyclable = fs::read(db.join("000007.log")).unwrap();
    seed(
        "wal_reader",
        "recyclable-log-7",
        &[[0x87u8].as_slice(), &recyclable].concat(),
    );
    // Inputs the harness encodes as logs of valid records (its first byte:
    // 0x40 recyclable, 0x20 torn; see fuzz/src/lib.rs).
    seed("wal_reader", "encoded-lines", b"\x00abc\n\nxyz\n");
    seed(
        "wal_reader",
        "encoded-recyclable",
        b"\x45first\nsecond record\n",
    );
    seed("wal_reader", "encoded-torn", b"\x25one\ntwo\nthree\xff");
    seed("manifest", "empty-manifest", &encode_log(&[], None));
    // A real RocksDB MANIFEST and WAL segment, when db_bench is installed.
    if have("db_bench") {
        let rocksdb = work.path().join("rocksdb");
        let status = std::process::Command::new("db_bench")
            .arg(format!("--db={}", rocksdb.display()))
            .args(["--benchmarks=fillseq", "--num=20", "--value_size=20"])
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        for file in objects_under(&rocksdb) {
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if name.starts_with("MANIFEST-") {
                seed("manifest", "rocksdb", &fs::read(&file).unwrap());
            } else if name.ends_with(".log") {
                let bytes = fs::read(&file).unwrap();
                seed(
                    "wal_reader",
                    "rocksdb",
                    &[[0u8].as_slice(), &bytes].concat(),
                );
            }
        }
    }

    // A key file as `init` writes it, and the same with argon2 parameters
    // cheap enough for the harness to unwrap (the MAC then fails).
    let encrypted = work.path().join("encrypted");
    Repository::init_local(
        &encrypted,
        InitOptions {
            password: Some("password".into()),
            kdf_target: std::time::Duration::from_millis(1),
            ..InitOptions::default()
        },
    )
    .unwrap();
    for key in objects_under(&encrypted.join("keys")) {
        let bytes = fs::read(&key).unwrap();
        seed("key_file", "init", &bytes);
        let mut file: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        file["kdf_params"]["memory_kib"] = 64.into();
        file["kdf_params"]["iterations"] = 1.into();
        seed(
            "key_file",
            "cheap",
            &serde_json::to_vec_pretty(&file).unwrap(),
        );
    }
    let lock = LockInfo {
        version: LOCK_VERSION,
        kind: LockKind::Exclusive,
        host: "host".into(),
        pid: 4242,
        purpose: "prune".into(),
        created: "2026-12-02T22:00:00.123456789Z".into(),
        refreshed: "2026-12-02T22:05:00Z".into(),
        process_start: Some(123_456),
        process_namespace: None,
    };
    seed(
        "lock",
        "exclusive",
        &serde_json::to_vec_pretty(&lock).unwrap(),
    );
}
