//! Restores from S3 (moto, `common::s3`) read pack by pack: few large ranged
//! GETs, each shared chunk once, and still the precise errors of a damaged
//! pack (request counts from `LSMVAULT_REQUEST_STATS=1`).

use std::fs;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use lsmvault::backend::{Backend, LocalBackend, ObjectKind};
use lsmvault::codec::chunker::ChunkerParams;
use lsmvault::codec::compression::Compression;
use lsmvault::format::tree::EntryKind;
use lsmvault::{InitOptions, Repository};

use crate::common::s3::{lsmvault_s3, lsmvault_s3_command, lsmvault_s3_ok, Moto};
use crate::common::{assert_same_tree, seeded_bytes};

/// Small chunks in 1 MiB packs: many chunks per pack, several packs.
fn small_chunks() -> InitOptions {
    InitOptions {
        chunker: ChunkerParams {
            min_size: 16 * 1024,
            avg_size: 32 * 1024,
            max_size: 64 * 1024,
            ..ChunkerParams::default()
        },
        pack_size: 1024 * 1024,
        compression: Compression::Off,
        kdf_target: Duration::from_millis(1),
        ..InitOptions::default()
    }
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// `restore latest` from `repo` into `target` with request counts: the
/// output and the (whole, ranged) reads of packs it made.
fn counted_restore(repo: &str, target: &Path, extra: &[&str]) -> (Output, (u64, u64)) {
    let mut args = vec!["--no-cache", "--json", "restore", "latest", "--target"];
    args.push(path(target));
    args.extend_from_slice(extra);
    let output = lsmvault_s3_command(repo, None, &args)
        .env("LSMVAULT_REQUEST_STATS", "1")
        .output()
        .expect("running lsmvault");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.starts_with("{\"request_stats\""))
        .unwrap_or_else(|| panic!("no request stats in stderr:\n{stderr}"));
    let counts: serde_json::Value = serde_json::from_str(line).unwrap();
    let reads = &counts["request_stats"]["by_kind"]["data"];
    let count = |method: &str| reads[method].as_u64().unwrap_or(0);
    (output, (count("read"), count("read_range")))
}

/// A snapshot of several files over several packs, with chunks shared
/// between files (the same file twice) and within one (a block repeated):
/// restored byte for byte with at most one GET per pack plus one per tree,
/// far fewer than one per chunk; a `--delta` restore over it reads no
/// chunk at all.
#[test]
fn s3_restore_reads_each_pack_range_once_and_each_shared_chunk_once() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    let backend: Arc<dyn Backend> = Arc::new(Moto::backend(&repo));
    Repository::init(Arc::clone(&backend), small_chunks()).unwrap();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(source.join("sub")).unwrap();
    let shared = seeded_bytes(1, 2_500_000);
    fs::write(source.join("a.sst"), &shared).unwrap();
    fs::write(source.join("sub/a-again.sst"), &shared).unwrap();
    fs::write(
        source.join("repeats.log"),
        seeded_bytes(2, 300_000).repeat(4),
    )
    .unwrap();
    fs::write(source.join("small"), b"a few bytes").unwrap();
    fs::write(source.join("empty"), b"").unwrap();
    lsmvault_s3_ok(&repo, None, &["backup", path(&source)]);

    let packs = backend.list(ObjectKind::Pack).unwrap().len() as u64;
    let repository = Repository::open(Arc::clone(&backend)).unwrap();
    let chunks = repository.index().unwrap().len() as u64;
    assert!(
        packs >= 3 && chunks > 4 * packs,
        "{packs} packs, {chunks} blobs"
    );

    let target = work.path().join("target");
    let (output, (whole, reads)) = counted_restore(&repo, &target, &[]);
    crate::common::assert_success(&output, "restore");
    assert_eq!(whole, 0, "no pack is read whole");
    assert_same_tree(&source, &target);
    // Two trees (the root and sub/) are read alone.
    assert!(
        reads <= packs + 2,
        "{reads} ranged reads of packs for {packs} packs ({chunks} blobs)"
    );

    let (output, (_, reads)) = counted_restore(&repo, &target, &["--delta"]);
    let stdout = crate::common::assert_success(&output, "restore --delta");
    let stats: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(stats["files_kept"], 5, "{stats:#}");
    assert_eq!(stats["bytes_written"], 0, "{stats:#}");
    assert!(
        reads <= 2,
        "a delta restore of a correct target read {reads} ranges"
    );
    assert_same_tree(&source, &target);

    // One download at a time restores the same.
    let one = work.path().join("one-download");
    let status = lsmvault_s3_command(&repo, None, &["restore", "latest", "--target", path(&one)])
        .env("LSMVAULT_DOWNLOADS", "1")
        .status()
        .unwrap();
    assert!(status.success(), "restore with LSMVAULT_DOWNLOADS=1");
    assert_same_tree(&source, &one);
}

/// A download count that is no number from 1 to 256 is refused, naming the
/// variable, before the target is created.
#[test]
fn s3_restore_refuses_a_bad_download_count_before_touching_the_target() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let work = tempfile::tempdir().unwrap();
    fs::write(work.path().join("file"), b"content").unwrap();
    lsmvault_s3_ok(&repo, None, &["backup", path(work.path())]);
    let target = work.path().join("target");
    for bad in ["0", "many", "1000"] {
        let output = lsmvault_s3_command(
            &repo,
            None,
            &["restore", "latest", "--target", path(&target)],
        )
        .env("LSMVAULT_DOWNLOADS", bad)
        .output()
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{bad}: {stderr}");
        assert!(stderr.contains("LSMVAULT_DOWNLOADS"), "{bad}: {stderr}");
        assert!(!target.exists(), "{bad}: the target was created");
    }
}

/// A pack damaged in the middle of a range read whole: the restore names
/// the damaged blob and its pack and the file it breaks, fails with a
/// non-zero exit, and restores every other file; a second file sharing the
/// damaged chunk (read once) fails too.
#[test]
fn s3_restore_of_a_pack_damaged_mid_range_names_blob_and_pack() {
    let Some(moto) = Moto::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("local");
    let source = work.path().join("source");
    fs::create_dir_all(&source).unwrap();
    for (seed, name) in [(1, "000001.sst"), (2, "000002.sst"), (3, "000003.sst")] {
        fs::write(source.join(name), seeded_bytes(seed, 1_500_000)).unwrap();
    }
    // Shares every chunk with 000002.sst: the damaged chunk breaks both.
    fs::write(source.join("copy-of-2.sst"), seeded_bytes(2, 1_500_000)).unwrap();
    Repository::init_local(&local, small_chunks()).unwrap();
    crate::common::lsmvault_ok(&local, &["backup", path(&source)]);

    // The third chunk of 000002.sst, between others in its pack.
    let repository = Repository::open_local(&local).unwrap();
    let snapshot = repository.find_snapshot("latest").unwrap();
    let tree = repository.read_tree(&snapshot.snapshot.tree).unwrap();
    let entry = tree
        .entries
        .iter()
        .find(|entry| entry.name == b"000002.sst");
    let Some(EntryKind::File { chunks, .. }) = entry.map(|entry| &entry.kind) else {
        panic!("000002.sst is not in the snapshot")
    };
    let index = repository.index().unwrap();
    let damaged = *index.get(&chunks[2]).unwrap();
    let neighbours = index
        .iter()
        .filter(|location| location.pack == damaged.pack)
        .map(|location| location.entry.offset)
        .collect::<Vec<_>>();
    assert!(
        neighbours
            .iter()
            .any(|&offset| offset < damaged.entry.offset)
            && neighbours
                .iter()
                .any(|&offset| offset > damaged.entry.offset),
        "the damaged chunk is not in the middle of its pack"
    );

    // The repository moved to S3 object by object, that pack damaged.
    let repo = moto.fresh_location();
    let s3 = Moto::backend(&repo);
    let from = LocalBackend::new(&local);
    for kind in ObjectKind::ALL {
        for object in from.list(kind).unwrap() {
            let mut bytes = from.read(kind, &object.name).unwrap();
            if kind == ObjectKind::Pack && object.name == damaged.pack.to_hex() {
                let middle = damaged.entry.offset + damaged.entry.stored_length / 2;
                bytes[middle as usize] ^= 0x10;
            }
            s3.write_if_absent(kind, &object.name, &bytes).unwrap();
        }
    }

    let target = work.path().join("target");
    let (output, _) = counted_restore(&repo, &target, &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_ne!(output.status.code(), Some(0));
    for expected in [
        damaged.entry.id.to_hex(),
        damaged.pack.to_hex(),
        "000002.sst".to_string(),
        "chunk 3 of".to_string(),
    ] {
        assert!(stderr.contains(&expected), "{expected} not in: {stderr}");
    }
    assert!(
        !target.join("000002.sst").exists(),
        "the damaged file was left"
    );
    for name in ["000001.sst", "000003.sst"] {
        assert_eq!(
            fs::read(target.join(name)).unwrap(),
            fs::read(source.join(name)).unwrap(),
            "{name}"
        );
    }
    // The damage is the repository's, not the transfer's: it stays.
    let again = lsmvault_s3(
        &repo,
        None,
        &[
            "restore",
            "latest",
            "--target",
            path(&work.path().join("again")),
        ],
    );
    assert!(!again.status.success());
}
