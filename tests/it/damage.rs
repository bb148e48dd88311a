//! Damaged repositories: verify names every problem and what it affects;
//! restore fails clearly for affected files and still restores the others;
//! a malicious tree cannot make restore write outside its target.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;
use lsmvault::format::pack::BlobKind;
use lsmvault::format::tree::{Entry, EntryKind, Metadata, Tree};
use lsmvault::{Id, NoProgress, PackWriter, Repository, RestoreOptions};

/// The pack holding the first chunk of `file` in the latest snapshot.
fn pack_of(repo: &Path, file: &str) -> PathBuf {
    chunk_of(repo, file).0
}

fn verify(repo: &Path, read_data: bool) -> (Option<i32>, serde_json::Value) {
    let mut args = vec!["--json", "verify"];
    if read_data {
        args.push("--read-data");
    }
    let output = lsmvault(repo, &args);
    (
        output.status.code(),
        serde_json::from_slice(&output.stdout).unwrap(),
    )
}

/// Restores the latest snapshot and checks that exactly the files `verify`
/// reported as affected fail (clearly, and are not left behind) while every
/// other file restores intact.
fn restore_expecting_damage(fixture: &Fixture, report: &serde_json::Value) {
    let mut damaged: Vec<String> = Vec::new();
    for finding in report["findings"].as_array().unwrap() {
        for affected in finding["affected"].as_array().unwrap() {
            let path = affected
                .as_str()
                .unwrap()
                .rsplit(": ")
                .next()
                .unwrap()
                .to_string();
            if !damaged.contains(&path) {
                damaged.push(path);
            }
        }
    }
    assert!(!damaged.is_empty() && damaged.len() < 3, "{damaged:?}");
    let target = fixture.root.join("restored");
    let output = lsmvault(
        &fixture.repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        matches!(output.status.code(), Some(15) | Some(16)),
        "{:?} {stderr}",
        output.status.code()
    );
    // A truncated pack loses its header, so verify (conservatively) lists every
    // file with a blob in it; restore fails only where a blob is really gone.
    let failed: Vec<&str> = ["000001.sst", "000002.sst", "000003.sst"]
        .into_iter()
        .filter(|name| !target.join(name).exists())
        .collect();
    assert!(!failed.is_empty(), "{stderr}");
    assert!(
        failed
            .iter()
            .all(|name| damaged.iter().any(|path| path == name)),
        "restore lost {failed:?}, verify named {damaged:?}"
    );
    assert!(
        stderr.contains(&format!("{} file(s) could not be restored", failed.len())),
        "{stderr}"
    );
    assert!(
        stderr.contains(failed[0]) && stderr.contains("hint:"),
        "{stderr}"
    );
    for name in ["000001.sst", "000002.sst", "000003.sst"] {
        if !failed.contains(&name) {
            assert_eq!(
                fs::read(target.join(name)).unwrap(),
                fs::read(fixture.source.join(name)).unwrap(),
                "{name} restores intact despite the damage elsewhere"
            );
        }
    }
}

fn finding_for<'a>(report: &'a serde_json::Value, object_prefix: &str) -> &'a serde_json::Value {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| {
            finding["object"]
                .as_str()
                .unwrap()
                .starts_with(object_prefix)
        })
        .unwrap_or_else(|| panic!("no finding for {object_prefix}: {report:#}"))
}

#[test]
fn flipped_byte_in_pack_is_found_by_read_data_and_pinned_to_one_file() {
    let fixture = three_pack_fixture();
    let (pack, offset) = chunk_of(&fixture.repo, "000002.sst");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset + 1000] ^= 0xff;
    fs::write(&pack, bytes).unwrap();

    let (code, report) = verify(&fixture.repo, true);
    assert_eq!(code, Some(19), "{report:#}");
    let finding = finding_for(&report, "blob ");
    assert!(finding["problem"].as_str().unwrap().contains("hashes to"));
    assert_eq!(
        finding["affected"].as_array().unwrap().len(),
        1,
        "{finding:#}"
    );
    assert!(finding["affected"][0]
        .as_str()
        .unwrap()
        .ends_with(": 000002.sst"));
    // The pack's name no longer matches its content either.
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    finding_for(&report, &format!("pack {pack_name}"));
    restore_expecting_damage(&fixture, &report);
}

#[test]
fn truncated_pack_is_found_without_reading_data() {
    let fixture = three_pack_fixture();
    let pack = pack_of(&fixture.repo, "000001.sst");
    let bytes = fs::read(&pack).unwrap();
    fs::write(&pack, &bytes[..bytes.len() / 2]).unwrap();
    let (code, report) = verify(&fixture.repo, false);
    assert_eq!(code, Some(19));
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    let finding = finding_for(&report, &format!("pack {pack_name}"));
    assert!(
        finding["problem"].as_str().unwrap().contains("trailer"),
        "{finding:#}"
    );
    assert!(
        finding["affected"].to_string().contains("000001.sst"),
        "{finding:#}"
    );
    restore_expecting_damage(&fixture, &report);
}

#[test]
fn deleted_pack_is_reported_with_the_files_it_takes() {
    let fixture = three_pack_fixture();
    let pack = pack_of(&fixture.repo, "000003.sst");
    fs::remove_file(&pack).unwrap();
    let (code, report) = verify(&fixture.repo, false);
    assert_eq!(code, Some(19));
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    let finding = finding_for(&report, &format!("pack {pack_name}"));
    assert!(finding["problem"].as_str().unwrap().contains("missing"));
    assert!(
        finding["affected"].to_string().contains("000003.sst"),
        "{finding:#}"
    );
    restore_expecting_damage(&fixture, &report);
}

#[test]
fn deleted_index_file_is_reported_as_unindexed_blobs() {
    let fixture = three_pack_fixture();
    let index_directory = fixture.repo.join("index");
    for file in fs::read_dir(&index_directory).unwrap() {
        fs::remove_file(file.unwrap().path()).unwrap();
    }
    let (code, report) = verify(&fixture.repo, false);
    assert_eq!(code, Some(19));
    let finding = finding_for(&report, "tree ");
    assert!(finding["problem"]
        .as_str()
        .unwrap()
        .contains("not in any index"));
    assert!(!report["unindexed_packs"].as_array().unwrap().is_empty());
    let target = fixture.root.join("restored");
    let output = lsmvault(
        &fixture.repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(16));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not in the index"));
}

#[test]
fn verify_subsets_cover_every_pack() {
    let fixture = three_pack_fixture();
    let (_, all) = verify(&fixture.repo, true);
    let mut read = 0;
    for n in 1..=3 {
        let subset = format!("{n}/3");
        let output = lsmvault(
            &fixture.repo,
            &["--json", "verify", "--read-data-subset", &subset],
        );
        assert!(output.status.success());
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        read += report["packs_read"].as_u64().unwrap();
    }
    assert_eq!(read, all["packs_read"].as_u64().unwrap());
    assert!(read >= 4);
    let bad = lsmvault(&fixture.repo, &["verify", "--read-data-subset", "4/3"]);
    assert_eq!(bad.status.code(), Some(22));
}

/// Writes a snapshot whose root tree holds a hostile entry name.
fn plant_hostile_snapshot(repo: &Path, name: &[u8]) {
    let repository = Repository::open_local(repo).unwrap();
    let writer = PackWriter::new(&repository).unwrap();
    let content = b"owned".to_vec();
    let chunk = Id::of(&content);
    writer.add(chunk, BlobKind::Data, &content).unwrap();
    let tree = Tree {
        entries: vec![Entry {
            name: name.to_vec(),
            kind: EntryKind::File {
                size: content.len() as u64,
                digest: chunk,
                chunks: vec![chunk],
            },
            metadata: Metadata {
                mode: 0o100644,
                links: 1,
                ..Metadata::default()
            },
        }],
    };
    let bytes = tree.encode();
    let tree_id = Id::of(&bytes);
    writer.add(tree_id, BlobKind::Tree, &bytes).unwrap();
    let summary = writer.finish().unwrap();
    repository.write_index(&summary.locations).unwrap();
    let mut snapshot = repository.find_snapshot("latest").unwrap().snapshot;
    snapshot.tree = tree_id;
    snapshot.time = "2099-01-01T00:00:00Z".into();
    repository.write_snapshot(&snapshot).unwrap();
}

#[test]
fn hostile_tree_names_never_escape_the_target() {
    for name in [&b"../escaped"[..], b"..", b"/tmp/abs", b"a/../../b"] {
        let fixture = three_pack_fixture();
        plant_hostile_snapshot(&fixture.repo, name);
        let target = fixture.root.join("inner/target");
        let output = lsmvault(
            &fixture.repo,
            &["restore", "latest", "--target", target.to_str().unwrap()],
        );
        assert_eq!(
            output.status.code(),
            Some(18),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        // Nothing at all was written: not outside, not inside.
        let outside: Vec<_> = walkdir::WalkDir::new(&fixture.root)
            .into_iter()
            .filter_map(|entry| entry.ok())
            .filter(|entry| {
                entry.file_name() == "escaped"
                    || entry.file_name() == "b"
                    || entry.file_name() == "abs"
            })
            .collect();
        assert!(outside.is_empty(), "{outside:?}");
        // Library API refuses the same way.
        let repository = Repository::open_local(&fixture.repo).unwrap();
        let error = repository
            .restore(
                "latest",
                fixture.root.join("t2"),
                &RestoreOptions::default(),
                &NoProgress,
            )
            .unwrap_err();
        assert_eq!(error.code(), lsmvault::ErrorCode::UnsafePath);
        // Verify reports the hostile tree as damage.
        let (code, _) = verify(&fixture.repo, false);
        assert_eq!(code, Some(19));
    }
}

#[test]
fn unsupported_repository_version_is_refused() {
    let fixture = three_pack_fixture();
    let config_path = fixture.repo.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["version"] = serde_json::json!(7);
    fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let output = lsmvault(&fixture.repo, &["snapshots"]);
    assert_eq!(output.status.code(), Some(12));
    assert!(String::from_utf8_lossy(&output.stderr).contains("version 7"));
}
