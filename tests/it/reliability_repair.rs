//! Issue 13 items 2, 5 and 6: one damaged index file is skipped and named
//! (and `repair index` rebuilds the index from the pack headers), a config
//! edited to drop encryption is refused, and restore verifies every file,
//! hard-link groups included.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::common::lsmvault_with_password as run;
use crate::common::*;

const PASSWORD: &str = "reliability repair password";

#[test]
fn config_edited_to_plaintext_in_an_encrypted_repository_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(5, 200_000)).unwrap();
    assert_success(
        &run(&repo, Some(PASSWORD), &["init", "--kdf-target-ms", "20"]),
        "init",
    );
    assert_success(
        &run(&repo, Some(PASSWORD), &["backup", source.to_str().unwrap()]),
        "backup",
    );
    // The attacker drops the encryption section of `config` and its
    // authenticator (the plaintext form has none).
    let config_path = repo.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["encryption"] = serde_json::Value::Null;
    config.as_object_mut().unwrap().remove("authenticator");
    fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let before = files_under(&repo);

    fs::write(source.join("000002.sst"), seeded_bytes(6, 200_000)).unwrap();
    for password in [None, Some(PASSWORD)] {
        let output = run(&repo, password, &["backup", source.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(29), "{stderr}");
        assert!(stderr.contains("config"), "{stderr}");
        assert!(stderr.contains("the config was altered"), "{stderr}");
        assert!(stderr.contains("hint:"), "{stderr}");
    }
    assert_eq!(
        files_under(&repo),
        before,
        "the refused backup wrote something"
    );
    let snapshots = run(&repo, None, &["snapshots"]);
    assert_eq!(snapshots.status.code(), Some(29));
}

/// Names of the objects in one directory of the repository (e.g. `index`).
fn object_names(repo: &Path, directory: &str) -> BTreeSet<String> {
    fs::read_dir(repo.join(directory))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn flip_bit(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    let at = offset.min(bytes.len() - 1);
    bytes[at] ^= 0x10;
    fs::write(path, bytes).unwrap();
}

/// A plaintext repository with two snapshots of two sources whose data
/// share nothing, each described by its own index file; returns the work
/// directory, the repository, the two sources and the second backup's index file.
fn two_sources_two_index_files() -> (tempfile::TempDir, PathBuf, PathBuf, PathBuf, String) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let (first, second) = (work.path().join("first"), work.path().join("second"));
    for (seed, source) in [(11, &first), (12, &second)] {
        fs::create_dir(source).unwrap();
        fs::write(source.join("000001.sst"), seeded_bytes(seed, 300_000)).unwrap();
        fs::write(
            source.join("MANIFEST-000002"),
            seeded_bytes(seed + 100, 5_000),
        )
        .unwrap();
    }
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(
        &repo,
        &["backup", first.to_str().unwrap(), "--tag", "first"],
    );
    let before = object_names(&repo, "index");
    lsmvault_ok(
        &repo,
        &["backup", second.to_str().unwrap(), "--tag", "second"],
    );
    let added: Vec<String> = object_names(&repo, "index")
        .difference(&before)
        .cloned()
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    let damaged = added[0].clone();
    (work, repo, first, second, damaged)
}

#[test]
fn damaged_index_file_is_skipped_and_named_and_other_snapshots_restore() {
    let (work, repo, first, second, damaged) = two_sources_two_index_files();
    flip_bit(&repo.join("index").join(&damaged), 40);

    // The first snapshot's data is described by an intact index file.
    let target = work.path().join("restored-first");
    let output = lsmvault(
        &repo,
        &[
            "restore",
            "latest:first",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: skipped damaged index file"),
        "{stderr}"
    );
    assert!(stderr.contains(&damaged), "{stderr}");
    assert_same_tree(&first, &target);

    // The second snapshot's blobs are unindexed: restore fails naming a blob.
    let target = work.path().join("restored-second");
    let output = lsmvault(
        &repo,
        &[
            "restore",
            "latest:second",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("blob "), "{stderr}");
    assert!(
        stderr.contains("1 damaged index file(s) were skipped"),
        "{stderr}"
    );

    // A backup stores the unindexed blobs again; after it everything restores
    // and prune runs (it drops the damaged index file).
    let output = lsmvault(
        &repo,
        &["--json", "backup", second.to_str().unwrap(), "--full"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["snapshot"]["stats"]["blobs_added"].as_u64().unwrap() > 0);
    let target = work.path().join("restored-second-again");
    lsmvault_ok(
        &repo,
        &[
            "restore",
            report["id"].as_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(&second, &target);
    lsmvault_ok(&repo, &["prune"]);
    assert!(!object_names(&repo, "index").contains(&damaged));
    let target = work.path().join("restored-first-after-prune");
    let output = lsmvault(
        &repo,
        &[
            "restore",
            "latest:first",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).is_empty());
    assert_same_tree(&first, &target);
}

/// Rewrites the latest snapshot of `repo` so that `link` (a hard link of
/// another file in the root directory) records the content of `other`:
/// what a backup of a file that grew while it was read, or a crafted tree,
/// leaves. Returns the new snapshot's id.
fn record_other_content_for_link(repo: &Path, link: &str, other: &str) -> String {
    use lsmvault::format::pack::BlobKind;
    use lsmvault::format::tree::EntryKind;

    let repository = lsmvault::Repository::open_local(repo).unwrap();
    let latest = repository.find_snapshot("latest").unwrap();
    let mut tree = repository.read_tree(&latest.snapshot.tree).unwrap();
    let other_kind = tree
        .entries
        .iter()
        .find(|entry| entry.name == other.as_bytes())
        .unwrap()
        .kind
        .clone();
    assert!(matches!(other_kind, EntryKind::File { .. }));
    let entry = tree
        .entries
        .iter_mut()
        .find(|entry| entry.name == link.as_bytes())
        .unwrap();
    assert!(entry.metadata.links > 1);
    entry.kind = other_kind;
    let bytes = tree.encode();
    let writer = lsmvault::PackWriter::new(&repository).unwrap();
    let id = writer.keys().blob_id(&bytes);
    writer.add(id, BlobKind::Tree, &bytes).unwrap();
    let summary = writer.finish().unwrap();
    repository.write_index(&summary.locations).unwrap();
    let mut snapshot = latest.snapshot.clone();
    snapshot.tree = id;
    snapshot.time = "2100-01-01T00:00:00Z".into();
    repository.write_snapshot(&snapshot).unwrap().to_hex()
}

#[test]
fn restore_fails_naming_a_hard_link_whose_entry_records_other_content() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("a.sst"), seeded_bytes(21, 100_000)).unwrap();
    fs::hard_link(source.join("a.sst"), source.join("b.sst")).unwrap();
    fs::write(source.join("c.sst"), seeded_bytes(22, 150_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    let id = record_other_content_for_link(&repo, "b.sst", "c.sst");

    let target = work.path().join("restored");
    let output = lsmvault(
        &repo,
        &["restore", &id, "--target", target.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(15), "{stderr}");
    assert!(stderr.contains("b.sst"), "{stderr}");
    assert!(stderr.contains("hard link"), "{stderr}");
    // Every file that is there holds the content its entry records.
    assert_eq!(
        fs::read(target.join("a.sst")).unwrap(),
        seeded_bytes(21, 100_000)
    );
    assert_eq!(
        fs::read(target.join("c.sst")).unwrap(),
        seeded_bytes(22, 150_000)
    );
    if let Ok(content) = fs::read(target.join("b.sst")) {
        assert_eq!(content, seeded_bytes(22, 150_000));
    }
}

/// Every pack's object name (the file names under `data/xx/`).
fn pack_files(repo: &Path) -> Vec<PathBuf> {
    files_under(&repo.join("data"))
        .into_iter()
        .map(|relative| repo.join("data").join(relative))
        .collect()
}

#[test]
fn repair_index_rebuilds_the_index_from_pack_headers() {
    let (work, repo, first, second, damaged) = two_sources_two_index_files();
    flip_bit(&repo.join("index").join(&damaged), 40);
    let old_index_files = object_names(&repo, "index");

    let report = lsmvault_json(&repo, &["repair", "index"]);
    assert_eq!(
        report["packs_read"].as_u64().unwrap() as usize,
        pack_files(&repo).len()
    );
    assert!(report["blobs_indexed"].as_u64().unwrap() >= 6, "{report}");
    assert!(report["index_files_written"].as_u64().unwrap() >= 1);
    assert_eq!(report["damaged_packs"].as_array().unwrap().len(), 0);
    let new_index_files = object_names(&repo, "index");
    assert!(!new_index_files.contains(&damaged));
    assert!(new_index_files.is_disjoint(&old_index_files));

    for (tag, source) in [("first", &first), ("second", &second)] {
        let target = work.path().join(format!("restored-{tag}"));
        let output = lsmvault(
            &repo,
            &[
                "restore",
                &format!("latest:{tag}"),
                "--target",
                target.to_str().unwrap(),
            ],
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains("warning"), "{stderr}");
        assert_same_tree(source, &target);
    }
    lsmvault_ok(&repo, &["verify", "--read-data"]);
    // Running it again changes nothing but the names it reports.
    let again = lsmvault_json(&repo, &["repair", "index"]);
    assert_eq!(again["blobs_indexed"], report["blobs_indexed"]);
}

#[test]
fn repair_index_skips_and_names_a_damaged_pack_and_keeps_its_old_entries() {
    let (work, repo, first, second, _) = two_sources_two_index_files();
    let packs = pack_files(&repo);
    assert!(packs.len() >= 2, "{packs:?}");
    // Destroy the trailer of one pack: its header can no longer be found.
    let victim = &packs[0];
    let mut bytes = fs::read(victim).unwrap();
    let end = bytes.len();
    bytes[end - 1] ^= 0xff;
    fs::write(victim, bytes).unwrap();
    let victim_name = victim.file_name().unwrap().to_string_lossy().into_owned();

    let output = lsmvault(&repo, &["--json", "repair", "index"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let damaged = report["damaged_packs"].as_array().unwrap();
    assert_eq!(damaged.len(), 1, "{report}");
    assert_eq!(damaged[0]["name"], victim_name.as_str());
    assert!(damaged[0]["reason"]
        .as_str()
        .unwrap()
        .contains(&victim_name));
    assert!(
        report["blobs_kept_from_old_index"].as_u64().unwrap() > 0,
        "{report}"
    );
    assert_eq!(
        report["packs_read"].as_u64().unwrap() as usize,
        packs.len() - 1
    );
    // The text form names the pack too.
    let text = lsmvault_ok(&repo, &["repair", "index"]);
    assert!(
        text.contains(&format!("skipped damaged pack {victim_name}")),
        "{text}"
    );

    // Blob reads check each blob: the intact blobs of the damaged pack
    // still restore through the entries kept, since only its trailer was hit.
    for (tag, source) in [("first", &first), ("second", &second)] {
        let target = work.path().join(format!("restored-{tag}"));
        let output = lsmvault(
            &repo,
            &[
                "restore",
                &format!("latest:{tag}"),
                "--target",
                target.to_str().unwrap(),
            ],
        );
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_same_tree(source, &target);
    }
}

#[test]
fn repair_index_rebuilds_a_lost_index_of_an_encrypted_repository() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(31, 400_000)).unwrap();
    fs::write(source.join("CURRENT"), b"MANIFEST-000002\n").unwrap();
    assert_success(
        &run(&repo, Some(PASSWORD), &["init", "--kdf-target-ms", "20"]),
        "init",
    );
    assert_success(
        &run(&repo, Some(PASSWORD), &["backup", source.to_str().unwrap()]),
        "backup",
    );
    // Every index file lost.
    for name in object_names(&repo, "index") {
        fs::remove_file(repo.join("index").join(name)).unwrap();
    }
    let target = work.path().join("before-repair");
    let output = run(
        &repo,
        Some(PASSWORD),
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert!(!output.status.success());

    let output = run(&repo, Some(PASSWORD), &["--json", "repair", "index"]);
    assert_success(&output, "repair index");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        report["packs_read"].as_u64().unwrap() as usize,
        pack_files(&repo).len()
    );
    assert_eq!(report["index_files_removed"], 0);
    let target = work.path().join("after-repair");
    assert_success(
        &run(
            &repo,
            Some(PASSWORD),
            &["restore", "latest", "--target", target.to_str().unwrap()],
        ),
        "restore",
    );
    assert_same_tree(&source, &target);
    assert_success(
        &run(&repo, Some(PASSWORD), &["verify", "--read-data"]),
        "verify",
    );
}
