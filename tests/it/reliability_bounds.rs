//! Issue 13, items 7, 8 and 10: readers bound what a repository tells them.
//! A tree DAG reached by 2^40 paths is refused (restore, `ls`) and reported
//! by verify, which goes on with the other snapshots; an index entry declaring
//! a 4 GiB blob fails at once without allocating it; verify reports file
//! entries whose size or digest contradicts their chunks.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;
use lsmvault::format::index::BlobLocation;
use lsmvault::format::pack::BlobKind;
use lsmvault::format::tree::{Entry, EntryKind, Metadata, Tree};
use lsmvault::{Id, InitOptions, PackWriter, Repository};

/// Exit code of `CorruptObject`.
const CORRUPT: i32 = 16;
/// Exit code of `VerifyFailed`.
const VERIFY_FAILED: i32 = 19;

/// A plaintext repository with one real snapshot of two files.
pub(crate) fn fixture() -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().to_path_buf();
    let repo = root.join("repo");
    let source = root.join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 300_000)).unwrap();
    fs::write(source.join("CURRENT"), b"MANIFEST-000002\n").unwrap();
    Repository::init_local(&repo, InitOptions::default()).unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    Fixture {
        _work: work,
        root,
        repo,
        source,
    }
}

fn metadata(mode: u32) -> Metadata {
    Metadata {
        mode,
        links: 1,
        ..Metadata::default()
    }
}

fn directory(name: &str, subtree: Id) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        kind: EntryKind::Directory { subtree },
        metadata: metadata(0o040755),
    }
}

fn file(name: &str, size: u64, digest: Id, chunks: Vec<Id>) -> Entry {
    Entry {
        name: name.as_bytes().to_vec(),
        kind: EntryKind::File {
            size,
            digest,
            chunks,
        },
        metadata: metadata(0o100644),
    }
}

/// Adds `tree` to `writer`; returns its id.
fn add_tree(writer: &PackWriter, tree: Tree) -> Id {
    let bytes = tree.encode();
    let id = Id::of(&bytes);
    writer.add(id, BlobKind::Tree, &bytes).unwrap();
    id
}

/// Writes a newer snapshot (like the latest, but with root `tree_id`),
/// after `writer`'s blobs are indexed.
fn commit_snapshot(repository: &Repository, writer: PackWriter, tree_id: Id) {
    let summary = writer.finish().unwrap();
    repository.write_index(&summary.locations).unwrap();
    let mut snapshot = repository.find_snapshot("latest").unwrap().snapshot;
    snapshot.tree = tree_id;
    snapshot.time = "2099-01-01T00:00:00Z".into();
    repository.write_snapshot(&snapshot).unwrap();
}

/// Plants a snapshot whose 41 trees each reference the one below twice
/// (2^40 paths to the leaf tree); returns the root tree's id.
pub(crate) fn plant_dag_bomb(repo: &Path) -> Id {
    let repository = Repository::open_local(repo).unwrap();
    let writer = PackWriter::new(&repository).unwrap();
    let content = b"leaf".to_vec();
    let chunk = Id::of(&content);
    writer.add(chunk, BlobKind::Data, &content).unwrap();
    let mut below = add_tree(
        &writer,
        Tree {
            entries: vec![file("leaf", 4, chunk, vec![chunk])],
        },
    );
    for _ in 0..40 {
        below = add_tree(
            &writer,
            Tree {
                entries: vec![directory("a", below), directory("b", below)],
            },
        );
    }
    commit_snapshot(&repository, writer, below);
    below
}

/// Runs the CLI, failing the test if it takes longer than `limit`.
pub(crate) fn bounded(repo: &Path, args: &[&str], limit: Duration) -> Output {
    let started = Instant::now();
    let output = Command::new("timeout")
        .arg(limit.as_secs().to_string())
        .arg(binary())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("LSMVAULT_REPOSITORY")
        .output()
        .expect("running lsmvault under timeout");
    assert_ne!(
        output.status.code(),
        Some(124),
        "lsmvault {args:?} ran for {:?} without finishing",
        started.elapsed()
    );
    output
}

#[test]
fn tree_dag_bomb_is_refused_by_ls_and_restore_and_reported_by_verify() {
    let fixture = fixture();
    let intact = Repository::open_local(&fixture.repo)
        .unwrap()
        .find_snapshot("latest")
        .unwrap()
        .id
        .to_hex();
    let root = plant_dag_bomb(&fixture.repo).to_hex();
    let limit = Duration::from_secs(120);

    let listed = bounded(&fixture.repo, &["ls", "latest"], limit);
    assert_eq!(
        listed.status.code(),
        Some(CORRUPT),
        "{}",
        stderr_text(&listed)
    );
    assert!(
        stderr_text(&listed).contains(&format!("tree {root}")),
        "{}",
        stderr_text(&listed)
    );

    let target = fixture.root.join("target");
    let restored = bounded(
        &fixture.repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
        limit,
    );
    assert_eq!(
        restored.status.code(),
        Some(CORRUPT),
        "{}",
        stderr_text(&restored)
    );
    assert!(
        stderr_text(&restored).contains(&format!("tree {root}")),
        "{}",
        stderr_text(&restored)
    );
    assert!(
        stderr_text(&restored).contains("hint:"),
        "{}",
        stderr_text(&restored)
    );

    // Verify names the bomb's root, lists the snapshot, and still checks
    // the intact snapshot (no finding about it).
    let verified = bounded(&fixture.repo, &["--json", "verify"], limit);
    assert_eq!(
        verified.status.code(),
        Some(VERIFY_FAILED),
        "{}",
        stderr_text(&verified)
    );
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    let report = report.get("report").unwrap_or(&report);
    assert_eq!(report["snapshots"], 2, "{report}");
    let findings = report["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 1, "{report}");
    assert_eq!(findings[0]["object"], format!("tree {root}"), "{report}");
    assert!(findings[0]["affected"][0]
        .as_str()
        .unwrap()
        .starts_with("snapshot "));
    assert!(!findings[0]["affected"][0]
        .as_str()
        .unwrap()
        .contains(&intact[..8]));

    // The intact snapshot still restores.
    let good = fixture.root.join("good");
    lsmvault_ok(
        &fixture.repo,
        &["restore", &intact, "--target", good.to_str().unwrap()],
    );
    assert_same_tree(&fixture.source, &good);
}

/// `repair snapshots` cannot rewrite a snapshot whose trees its walk
/// refuses: it names it (and rewrites nothing) instead of running forever.
#[test]
fn tree_dag_bomb_is_named_by_repair_snapshots_not_walked_forever() {
    let fixture = fixture();
    plant_dag_bomb(&fixture.repo);
    let repaired = bounded(
        &fixture.repo,
        &["--json", "repair", "snapshots"],
        Duration::from_secs(120),
    );
    assert_eq!(
        repaired.status.code(),
        Some(0),
        "{}",
        stderr_text(&repaired)
    );
    let report: serde_json::Value = serde_json::from_slice(&repaired.stdout).unwrap();
    assert_eq!(report["snapshots_checked"], 2, "{report}");
    assert_eq!(report["repaired"].as_array().unwrap().len(), 0, "{report}");
    let unrepairable = report["unrepairable"].as_array().unwrap();
    assert_eq!(unrepairable.len(), 1, "{report}");
    assert!(
        unrepairable[0]["reason"]
            .as_str()
            .unwrap()
            .contains("tree "),
        "{report}"
    );
}

/// Replaces every index file by one that lists the same blobs, except that
/// the first chunk of `000001.sst` declares a stored length of almost 4 GiB.
/// Returns that chunk's id and pack.
fn forge_huge_stored_length(repo: &Path) -> (Id, Id) {
    let repository = Repository::open_local(repo).unwrap();
    let snapshot = repository.find_snapshot("latest").unwrap();
    let tree = repository.read_tree(&snapshot.snapshot.tree).unwrap();
    let chunk = tree
        .entries
        .iter()
        .find_map(|entry| match &entry.kind {
            EntryKind::File { chunks, .. } if entry.name == b"000001.sst" => Some(chunks[0]),
            _ => None,
        })
        .unwrap();
    let mut locations: Vec<BlobLocation> = repository.index().unwrap().iter().copied().collect();
    let forged = locations
        .iter_mut()
        .find(|location| location.entry.id == chunk)
        .unwrap();
    forged.entry.stored_length = u32::MAX - 64;
    let pack = forged.pack;
    for index_file in fs::read_dir(repo.join("index")).unwrap() {
        fs::remove_file(index_file.unwrap().path()).unwrap();
    }
    repository.write_index(&locations).unwrap();
    (chunk, pack)
}

#[test]
fn declared_stored_length_beyond_the_pack_fails_fast_without_allocating_it() {
    let fixture = fixture();
    let (chunk, pack) = forge_huge_stored_length(&fixture.repo);
    let target = fixture.root.join("target");
    // 1 GB of address space: allocating the declared 4 GiB would abort.
    let script = format!(
        "ulimit -v 1000000; exec '{}' --repo '{}' restore latest --target '{}'",
        binary().display(),
        fixture.repo.display(),
        target.display()
    );
    let started = Instant::now();
    let output = Command::new("sh")
        .args(["-c", &script])
        .env_remove("LSMVAULT_REPOSITORY")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let message = stderr_text(&output);
    assert_eq!(output.status.code(), Some(CORRUPT), "{message}");
    assert!(
        message.contains(&format!("blob {chunk} in pack {pack}")),
        "{message}"
    );
    assert!(message.contains("past the end of the pack"), "{message}");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
    // Verify names the same blob and pack.
    let verified = lsmvault(&fixture.repo, &["verify"]);
    assert_eq!(verified.status.code(), Some(VERIFY_FAILED));
}

/// Plants a snapshot of three files whose entries contradict their chunks:
/// `short` claims one byte more than its chunk, `one-chunk` a digest other
/// than its chunk's id, `two-chunks` a digest other than its content's.
pub(crate) fn plant_contradicting_files(repo: &Path) {
    let repository = Repository::open_local(repo).unwrap();
    let writer = PackWriter::new(&repository).unwrap();
    let first = b"first chunk".to_vec();
    let second = b"second chunk".to_vec();
    let (first_id, second_id) = (Id::of(&first), Id::of(&second));
    writer.add(first_id, BlobKind::Data, &first).unwrap();
    writer.add(second_id, BlobKind::Data, &second).unwrap();
    let both = [first.clone(), second.clone()].concat();
    let tree = Tree {
        entries: vec![
            file(
                "good",
                both.len() as u64,
                Id::of(&both),
                vec![first_id, second_id],
            ),
            file("one-chunk", first.len() as u64, second_id, vec![first_id]),
            file("short", first.len() as u64 + 1, first_id, vec![first_id]),
            file(
                "two-chunks",
                both.len() as u64,
                Id::of(&first),
                vec![first_id, second_id],
            ),
        ],
    };
    let tree_id = add_tree(&writer, tree);
    commit_snapshot(&repository, writer, tree_id);
}

/// The objects of `verify`'s findings.
fn finding_objects(repo: &Path, read_data: bool) -> Vec<String> {
    let mut args = vec!["--json", "verify"];
    if read_data {
        args.push("--read-data");
    }
    let output = lsmvault(repo, &args);
    assert_eq!(
        output.status.code(),
        Some(VERIFY_FAILED),
        "{}",
        stderr_text(&output)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let report = report.get("report").unwrap_or(&report);
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| {
            let object = finding["object"].as_str().unwrap().to_string();
            assert_eq!(finding["affected"][0], object.trim_start_matches("file "));
            object
        })
        .collect()
}

#[test]
fn verify_reports_file_entries_whose_size_or_digest_contradicts_their_chunks() {
    let fixture = fixture();
    plant_contradicting_files(&fixture.repo);
    let snapshot = Repository::open_local(&fixture.repo)
        .unwrap()
        .find_snapshot("latest")
        .unwrap()
        .id
        .short();
    let named = |path: &str| format!("file snapshot {snapshot}: {path}");
    // Size and a one-chunk digest are checked from the index alone.
    assert_eq!(
        finding_objects(&fixture.repo, false),
        vec![named("one-chunk"), named("short")]
    );
    // Reading the data also checks the digest of a file of many chunks.
    assert_eq!(
        finding_objects(&fixture.repo, true),
        vec![named("one-chunk"), named("short"), named("two-chunks")]
    );
}

#[test]
fn chunk_declaring_more_than_the_largest_chunk_is_refused_before_decompressing() {
    let fixture = fixture();
    let repository = Repository::open_local(&fixture.repo).unwrap();
    let max_chunk = repository.config().chunker.max_size as usize;
    // Compresses to a few hundred bytes; restore would inflate it 16 times.
    let bomb = vec![0u8; 2 * max_chunk];
    let bomb_id = Id::of(&bomb);
    let writer = PackWriter::new(&repository).unwrap();
    writer.add(bomb_id, BlobKind::Data, &bomb).unwrap();
    let size = (16 * bomb.len()) as u64;
    let tree_id = add_tree(
        &writer,
        Tree {
            entries: vec![file("bomb", size, Id::of(b"unused"), vec![bomb_id; 16])],
        },
    );
    commit_snapshot(&repository, writer, tree_id);

    let target = fixture.root.join("target");
    let output = lsmvault(
        &fixture.repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    let message = stderr_text(&output);
    assert_eq!(output.status.code(), Some(CORRUPT), "{message}");
    assert!(
        message.contains(&format!("blob {bomb_id} in pack")),
        "{message}"
    );
    assert!(
        message.contains(&format!("declares {} raw bytes", bomb.len())),
        "{message}"
    );
    // verify --read-data names it too.
    let verified = lsmvault(&fixture.repo, &["--json", "verify", "--read-data"]);
    assert_eq!(verified.status.code(), Some(VERIFY_FAILED));
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(report.contains(&format!("blob {bomb_id}")), "{report}");
    assert!(report.contains("more than the largest chunk"), "{report}");
}

/// Review of issue 15: a WAL record declaring 2^62 bytes aborted `restore
/// --seq` (it was preallocated, and the largest declared size wins among a
/// segment's versions). It is now a damaged record, named and passed over.
#[test]
fn a_wal_record_declaring_four_exabytes_is_named_as_damaged_never_allocated() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = crate::pitr::fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let db = db.to_str().unwrap();
    lsmvault_ok(&repo, &["backup", db]);
    lsmvault_ok(&repo, &["wal", "archive", db]);
    let records: Vec<_> = fs::read_dir(repo.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    let mut record: serde_json::Value =
        serde_json::from_slice(&fs::read(&records[0]).unwrap()).unwrap();
    record["size"] = serde_json::json!(1u64 << 62);
    let crafted = serde_json::to_vec(&record).unwrap();
    fs::remove_file(&records[0]).unwrap();
    let name = Id::of(&crafted).to_hex();
    fs::write(repo.join("wal").join(&name), &crafted).unwrap();
    for args in [&["wal", "ls"][..], &["restore", "--seq", "20", "--target"]] {
        let mut args = args.to_vec();
        let target = work.path().join("restored");
        if args[0] == "restore" {
            args.push(target.to_str().unwrap());
        }
        let output = lsmvault(&repo, &args);
        let stderr = stderr_text(&output);
        assert!(output.status.code().is_some(), "{args:?} died: {stderr}");
        assert!(!stderr.contains("memory allocation"), "{stderr}");
        assert!(
            stderr.contains(&name[..8]),
            "{args:?} names the record: {stderr}"
        );
        assert!(stderr.contains("declares"), "{stderr}");
    }
}
