//! Issue 13: `lsmvault repair snapshots` rewrites the snapshots that
//! reference lost data. Files with a lost chunk are dropped, unreadable
//! directories kept empty, and every drop is recorded in the new snapshot
//! (shown by `snapshots` and `ls`), so the loss is never silent; what
//! remains restores. Killed at random points, it leaves the original or its
//! rewrite (or both), and a second run finishes the job.
//!
//! Iterations of the kill loop: `LSMVAULT_KILL_ITERATIONS` (default 8).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::kill_loop::{kill_iterations, time_ok, KillLoop, Run};
use crate::common::lsmvault_with_password as run;
use crate::common::*;
use lsmvault::format::tree::EntryKind;
use lsmvault::Id;
use lsmvault::Repository;

const PASSWORD: &str = "repair snapshots password";

/// The top-level files of the latest snapshot with a chunk in `pack`, and
/// whether the root tree lives there.
fn files_in_pack(repository: &Repository, pack: &Id) -> (BTreeSet<String>, bool) {
    let snapshot = repository.find_snapshot("latest").unwrap();
    let index = repository.index().unwrap();
    let root_there = index.get(&snapshot.snapshot.tree).unwrap().pack == *pack;
    let tree = repository.read_tree(&snapshot.snapshot.tree).unwrap();
    let files = tree
        .entries
        .iter()
        .filter(|entry| match &entry.kind {
            EntryKind::File { chunks, .. } => chunks
                .iter()
                .any(|chunk| index.get(chunk).unwrap().pack == *pack),
            _ => false,
        })
        .map(|entry| entry.display_name())
        .collect();
    (files, root_there)
}

/// Deletes the pack of the first chunk of one of `candidates` that does not
/// hold the root tree; returns the names of the files it takes.
fn lose_a_data_pack(repo: &Path, password: Option<&str>, candidates: &[&str]) -> BTreeSet<String> {
    let repository = match password {
        Some(password) => Repository::open_local_with_password(repo, password).unwrap(),
        None => Repository::open_local(repo).unwrap(),
    };
    let snapshot = repository.find_snapshot("latest").unwrap();
    let tree = repository.read_tree(&snapshot.snapshot.tree).unwrap();
    let index = repository.index().unwrap();
    for candidate in candidates {
        let entry = tree
            .entries
            .iter()
            .find(|entry| entry.name == candidate.as_bytes())
            .unwrap();
        let EntryKind::File { chunks, .. } = &entry.kind else {
            panic!("not a file")
        };
        let pack = index.get(&chunks[0]).unwrap().pack;
        let (files, root_there) = files_in_pack(&repository, &pack);
        if !root_there {
            let name = pack.to_hex();
            fs::remove_file(repo.join("data").join(&name[..2]).join(&name)).unwrap();
            return files;
        }
    }
    panic!("every candidate's pack holds the root tree");
}

/// Files under `root`, as relative path strings.
fn file_names(root: &Path) -> BTreeSet<String> {
    files_under(root)
        .into_iter()
        .map(|path| path.to_string_lossy().into_owned())
        .collect()
}

/// Restores `selector` and checks that it holds exactly the source's files
/// but `lost`, each identical to the source.
fn assert_restores_all_but(
    repo: &Path,
    password: Option<&str>,
    selector: &str,
    source: &Path,
    target: &Path,
    lost: &BTreeSet<String>,
) {
    assert_success(
        &run(
            repo,
            password,
            &["restore", selector, "--target", target.to_str().unwrap()],
        ),
        "restore of the repaired snapshot",
    );
    let expected: BTreeSet<String> = file_names(source).difference(lost).cloned().collect();
    assert_eq!(file_names(target), expected);
    for name in &expected {
        assert_eq!(
            fs::read(source.join(name)).unwrap(),
            fs::read(target.join(name)).unwrap(),
            "{name} restored differently"
        );
    }
}

#[test]
fn repair_snapshots_after_a_lost_pack_keeps_every_file_not_lost_and_names_the_others() {
    let fixture = three_pack_fixture();
    let original = snapshot_ids(&fixture.repo)[0].clone();
    let lost = lose_a_data_pack(&fixture.repo, None, &["000002.sst", "000001.sst"]);
    assert!(!lost.is_empty() && lost.len() < 3, "{lost:?}");

    // A dry run names the loss and writes nothing.
    let before = files_under(&fixture.repo);
    let dry = lsmvault_ok(&fixture.repo, &["repair", "snapshots", "--dry-run"]);
    for name in &lost {
        assert!(
            dry.contains(&format!("would drop {name}: file dropped")),
            "{dry}"
        );
    }
    assert!(dry.contains("dry run: nothing written"), "{dry}");
    assert_eq!(
        files_under(&fixture.repo),
        before,
        "a dry run wrote something"
    );

    // Without --forget the original stays beside its rewrite.
    let report = lsmvault_json(&fixture.repo, &["repair", "snapshots", &original]);
    let repaired = report["repaired"][0]["repaired"]
        .as_str()
        .unwrap()
        .to_string();
    let dropped: BTreeSet<String> = report["repaired"][0]["dropped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|dropped| dropped["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(dropped, lost);
    let ids = snapshot_ids(&fixture.repo);
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&original) && ids.contains(&repaired));
    // `latest` is the rewrite (same time as the original).
    assert_eq!(ids.last(), Some(&repaired));

    let listing = lsmvault_ok(&fixture.repo, &["snapshots"]);
    assert!(
        listing.contains(&format!("(repaired: {} dropped)", lost.len())),
        "{listing}"
    );
    let ls = lsmvault_ok(&fixture.repo, &["ls", &repaired]);
    for name in &lost {
        assert!(
            ls.contains(&format!("dropped {name}: file dropped")),
            "{ls}"
        );
    }
    let ls_json = lsmvault_json(&fixture.repo, &["ls", &repaired]);
    assert_eq!(
        ls_json["repaired"]["original"].as_str(),
        Some(original.as_str())
    );
    assert_restores_all_but(
        &fixture.repo,
        None,
        &repaired,
        &fixture.source,
        &fixture.root.join("restored"),
        &lost,
    );

    // The repaired snapshot references nothing lost: a second repair leaves
    // it; forgetting the original and pruning leaves a clean repository.
    let again = lsmvault_json(&fixture.repo, &["repair", "snapshots", &repaired]);
    assert_eq!(again["repaired"].as_array().unwrap().len(), 0, "{again}");
    lsmvault_ok(&fixture.repo, &["forget", &original]);
    lsmvault_ok(&fixture.repo, &["prune", "--max-unused", "0"]);
    let verify = lsmvault(&fixture.repo, &["verify", "--read-data"]);
    assert_eq!(
        verify.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert_restores_all_but(
        &fixture.repo,
        None,
        "latest",
        &fixture.source,
        &fixture.root.join("after-prune"),
        &lost,
    );
}

#[test]
fn repair_snapshots_keeps_a_directory_whose_tree_is_damaged_as_an_empty_one() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir_all(source.join("archive")).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(31, 200_000)).unwrap();
    fs::write(source.join("archive/000002.sst"), seeded_bytes(32, 100_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    // Flip a byte inside the stored bytes of the `archive` tree blob.
    {
        let repository = Repository::open_local(&repo).unwrap();
        let snapshot = repository.find_snapshot("latest").unwrap();
        let root = repository.read_tree(&snapshot.snapshot.tree).unwrap();
        let EntryKind::Directory { subtree } = &root
            .entries
            .iter()
            .find(|entry| entry.name == b"archive")
            .unwrap()
            .kind
        else {
            panic!("not a directory")
        };
        let location = *repository.index().unwrap().get(subtree).unwrap();
        let pack = location.pack.to_hex();
        let path = repo.join("data").join(&pack[..2]).join(&pack);
        let mut bytes = fs::read(&path).unwrap();
        bytes[location.entry.offset as usize + 2] ^= 0x40;
        fs::write(&path, bytes).unwrap();
    }
    let report = lsmvault_json(&repo, &["repair", "snapshots", "--forget"]);
    let dropped = &report["repaired"][0]["dropped"];
    assert_eq!(dropped.as_array().unwrap().len(), 1, "{report}");
    assert_eq!(dropped[0]["path"], "archive");
    assert!(
        dropped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("directory kept empty"),
        "{report}"
    );
    assert_eq!(report["repaired"][0]["forgotten"], true);
    assert_eq!(snapshot_ids(&repo).len(), 1);
    let target = work.path().join("restored");
    lsmvault_ok(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert!(target.join("archive").is_dir());
    assert_eq!(fs::read_dir(target.join("archive")).unwrap().count(), 0);
    assert_eq!(
        fs::read(target.join("000001.sst")).unwrap(),
        fs::read(source.join("000001.sst")).unwrap()
    );
}

#[test]
fn repair_snapshots_with_read_data_drops_a_file_whose_chunk_is_damaged() {
    let fixture = three_pack_fixture();
    let (pack, offset) = chunk_of(&fixture.repo, "000003.sst");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset + 100] ^= 0x01;
    fs::write(&pack, bytes).unwrap();
    // Without --read-data only missing blobs count: nothing to repair.
    let quick = lsmvault_json(&fixture.repo, &["repair", "snapshots"]);
    assert_eq!(quick["repaired"].as_array().unwrap().len(), 0, "{quick}");
    let report = lsmvault_json(
        &fixture.repo,
        &["repair", "snapshots", "--read-data", "--forget"],
    );
    let dropped = &report["repaired"][0]["dropped"];
    assert_eq!(dropped.as_array().unwrap().len(), 1, "{report}");
    assert_eq!(dropped[0]["path"], "000003.sst");
    assert!(
        dropped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("does not read back"),
        "{report}"
    );
    let lost = BTreeSet::from(["000003.sst".to_string()]);
    assert_restores_all_but(
        &fixture.repo,
        None,
        "latest",
        &fixture.source,
        &fixture.root.join("restored"),
        &lost,
    );
}

#[test]
fn repair_snapshots_of_an_encrypted_repository_records_the_loss_sealed() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    for (index, name) in ["000001.sst", "000002.sst", "000003.sst"]
        .iter()
        .enumerate()
    {
        fs::write(
            source.join(name),
            seeded_bytes(40 + index as u64, 1_500_000),
        )
        .unwrap();
    }
    Repository::init_local(
        &repo,
        lsmvault::InitOptions {
            pack_size: 1024 * 1024,
            password: Some(PASSWORD.into()),
            kdf_target: Duration::from_millis(20),
            ..lsmvault::InitOptions::default()
        },
    )
    .unwrap();
    assert_success(
        &run(&repo, Some(PASSWORD), &["backup", source.to_str().unwrap()]),
        "backup",
    );
    let lost = lose_a_data_pack(&repo, Some(PASSWORD), &["000002.sst", "000001.sst"]);
    let printed = assert_success(
        &run(&repo, Some(PASSWORD), &["repair", "snapshots", "--forget"]),
        "repair snapshots",
    );
    assert!(printed.contains("and forgotten"), "{printed}");
    let ls = assert_success(&run(&repo, Some(PASSWORD), &["ls", "latest"]), "ls");
    for name in &lost {
        assert!(ls.contains(&format!("dropped {name}")), "{ls}");
    }
    // The record is inside the sealed snapshot file, not readable without the key.
    for entry in fs::read_dir(repo.join("snapshots")).unwrap() {
        let bytes = fs::read(entry.unwrap().path()).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("dropped"));
    }
    assert_restores_all_but(
        &repo,
        Some(PASSWORD),
        "latest",
        &source,
        &work.path().join("restored"),
        &lost,
    );
}

#[test]
fn repair_snapshots_killed_at_random_points_keeps_the_original_or_its_rewrite() {
    let iterations = kill_iterations(8);
    let fixture = three_pack_fixture();
    let original = snapshot_ids(&fixture.repo)[0].clone();
    let lost = lose_a_data_pack(&fixture.repo, None, &["000002.sst", "000001.sst"]);
    let pristine = fixture.root.join("pristine");
    copy_tree(&fixture.repo, &pristine);
    let repair = || lsmvault_command(&fixture.repo, None, &["repair", "snapshots", "--forget"]);
    // The kills spread over an uninterrupted repair's runtime.
    let typical = time_ok(&mut repair());
    let mut kills = KillLoop::new("repair snapshots", 0x9e37_79b9_7f4a_7c15, typical, 2);
    let (mut original_only, mut both, mut rewrite_only) = (0, 0, 0);
    for iteration in 0..iterations {
        fs::remove_dir_all(&fixture.repo).unwrap();
        copy_tree(&pristine, &fixture.repo);
        if let Run::Finished(output) = kills.run(&mut repair()) {
            assert_success(&output, &format!("iteration {iteration}: repair"));
        }
        let ids = snapshot_ids(&fixture.repo);
        match (ids.contains(&original), ids.len()) {
            (true, 1) => original_only += 1,
            (true, 2) => both += 1,
            (false, 1) => rewrite_only += 1,
            other => panic!("iteration {iteration}: snapshots {ids:?} ({other:?})"),
        }
        // A second run finishes: one snapshot, the rewrite, restoring all but the loss.
        lsmvault_ok(&fixture.repo, &["repair", "snapshots", "--forget"]);
        let ids = snapshot_ids(&fixture.repo);
        assert_eq!(ids.len(), 1, "iteration {iteration}: {ids:?}");
        assert_ne!(ids[0], original);
        assert_restores_all_but(
            &fixture.repo,
            None,
            "latest",
            &fixture.source,
            &fixture.root.join(format!("restored-{iteration}")),
            &lost,
        );
    }
    kills.finish();
    eprintln!(
        "repair snapshots kill loop: {original_only} left the original, {both} both, {rewrite_only} the rewrite"
    );
}

/// Copies a directory tree (a repository) file by file.
fn copy_tree(from: &Path, to: &Path) {
    for relative in files_under(from) {
        let target: PathBuf = to.join(&relative);
        fs::create_dir_all(target.parent().unwrap()).unwrap();
        fs::copy(from.join(&relative), &target).unwrap();
    }
    // Empty directories (the pack fan-out, `locks/`) matter to a repository too.
    for entry in walkdir::WalkDir::new(from).min_depth(1) {
        let entry = entry.unwrap();
        if entry.file_type().is_dir() {
            fs::create_dir_all(to.join(entry.path().strip_prefix(from).unwrap())).unwrap();
        }
    }
}
