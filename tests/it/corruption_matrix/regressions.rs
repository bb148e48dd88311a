//! Regressions the corruption matrix found, one test each: a pack replaced
//! by another or two packs swapped were reported as truncated; a key file
//! whose salt or wrapped key was damaged passed verify; a deleted config was
//! reported as "no repository" (and `init` wrote a new one over the old
//! objects); one damaged WAL record took down verify's WAL check, `wal ls`
//! and `wal archive`.

use std::fs;
use std::path::{Path, PathBuf};

use super::fixture;
use crate::common::*;

/// Applies `act` to two packs of [`three_pack_fixture`] (the one holding the
/// first chunk of `000001.sst` and another); returns the fixture and the two
/// pack names.
fn fixture_with_two_packs(act: impl Fn(&Path, &Path)) -> (Fixture, String, String) {
    let fixture = three_pack_fixture();
    let (first, _) = chunk_of(&fixture.repo, "000001.sst");
    let mut packs: Vec<PathBuf> = walkdir::WalkDir::new(fixture.repo.join("data"))
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .filter(|path| path.is_file() && *path != first)
        .collect();
    packs.sort();
    let second = packs.remove(0);
    act(&first, &second);
    let name = |path: &Path| path.file_name().unwrap().to_string_lossy().into_owned();
    let names = (name(&first), name(&second));
    (fixture, names.0, names.1)
}

/// Verify (both modes) and restore name `pack` as another pack's content
/// ("replaced or swapped?"), never as a truncated pack.
/// Returns how many affected paths the findings on `pack` listed.
fn assert_named_replaced_or_swapped(fixture: &Fixture, pack: &str) -> usize {
    let mut affected = 0;
    for args in [
        &["--json", "verify"][..],
        &["--json", "verify", "--read-data"],
    ] {
        let output = lsmvault(&fixture.repo, args);
        assert_eq!(output.status.code(), Some(19), "{output:?}");
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let finding = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|finding| finding["object"] == format!("pack {pack}").as_str())
            .unwrap_or_else(|| panic!("{args:?} does not name pack {pack}: {report}"));
        let problem = finding["problem"].as_str().unwrap();
        assert!(problem.contains("replaced or swapped?"), "{problem}");
        // What needs it is named, unless only a tree in the other damaged
        // pack led to its blobs (then that pack's finding names the snapshot).
        affected += finding["affected"].as_array().unwrap().len();
    }
    let target = fixture.root.join(format!("restored-{pack}"));
    let restore = lsmvault(
        &fixture.repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&restore.stderr);
    assert_eq!(restore.status.code(), Some(16), "{stderr}");
    assert!(stderr.contains("replaced or swapped?"), "{stderr}");
    assert!(!stderr.contains("truncated"), "{stderr}");
    affected
}

#[test]
fn two_swapped_packs_are_named_as_replaced_or_swapped_not_truncated() {
    let (fixture, first, second) = fixture_with_two_packs(|first, second| {
        let parked = first.with_extension("parked");
        fs::rename(first, &parked).unwrap();
        fs::rename(second, first).unwrap();
        fs::rename(&parked, second).unwrap();
    });
    let affected = assert_named_replaced_or_swapped(&fixture, &first)
        + assert_named_replaced_or_swapped(&fixture, &second);
    assert!(affected > 0, "the snapshot needing them is named");
}

#[test]
fn a_pack_replaced_by_another_pack_is_named_as_replaced_or_swapped() {
    let (fixture, first, _) = fixture_with_two_packs(|first, second| {
        fs::copy(second, first).unwrap();
    });
    let affected = assert_named_replaced_or_swapped(&fixture, &first);
    assert!(affected > 0, "the snapshot needing it is named");
}

/// A key file whose salt or wrapped key is no longer hex of the right
/// length parses as JSON, but is damaged: verify names it and `key list`
/// marks it, while the owner's key opens as before.
#[test]
fn verify_names_a_key_file_whose_salt_or_wrapped_key_is_damaged() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let owner = Some(fixture::PASSWORD);
    let init = lsmvault_with_password(&repo, owner, &["init", "--kdf-target-ms", "10"]);
    assert!(init.status.success(), "{init:?}");
    let repository =
        lsmvault::Repository::open_local_with_password(&repo, fixture::PASSWORD).unwrap();
    for (field, edit) in [("salt", 0usize), ("wrapped", 1)] {
        let name = repository
            .add_key(
                fixture::SECOND_PASSWORD,
                std::time::Duration::from_millis(10),
            )
            .unwrap();
        let path = repo.join("keys").join(&name);
        let mut file: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let text = file[field].as_str().unwrap().to_string();
        file[field] = serde_json::json!(if edit == 0 {
            // One digit flipped by 0x40: no longer hex.
            let mut bytes = text.into_bytes();
            bytes[3] ^= 0x40;
            String::from_utf8(bytes).unwrap()
        } else {
            // Cut short: still hex.
            text[..text.len() - 8].to_string()
        });
        fs::write(&path, serde_json::to_vec_pretty(&file).unwrap()).unwrap();

        let verify = lsmvault_with_password(&repo, owner, &["verify"]);
        let stdout = String::from_utf8_lossy(&verify.stdout);
        assert_eq!(verify.status.code(), Some(19), "{field}: {stdout}");
        assert!(
            stdout.contains(&format!("key file {name}")),
            "{field}: {stdout}"
        );
        let listing = lsmvault_with_password(&repo, owner, &["key", "list"]);
        assert!(
            String::from_utf8_lossy(&listing.stdout).contains("DAMAGED"),
            "{listing:?}"
        );
        let second = lsmvault_with_password(&repo, Some(fixture::SECOND_PASSWORD), &["snapshots"]);
        assert_eq!(second.status.code(), Some(26), "{second:?}");
        let removed = lsmvault_with_password(&repo, owner, &["key", "remove", &name]);
        assert!(removed.status.success(), "{removed:?}");
    }
    let clean = lsmvault_with_password(&repo, owner, &["verify"]);
    assert!(clean.status.success(), "{clean:?}");
}

/// A repository whose `config` is gone is refused with an error that names
/// `config` (exit 10), not only "no repository"; `init` there refuses too
/// (exit 11) rather than write a new config over the old objects.
#[test]
fn a_repository_without_its_config_is_refused_naming_config() {
    let fixture = three_pack_fixture();
    fs::remove_file(fixture.repo.join("config")).unwrap();
    for args in [&["snapshots"][..], &["verify"]] {
        let output = lsmvault(&fixture.repo, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(10), "{stderr}");
        assert!(stderr.contains("`config`"), "{stderr}");
    }
    let init = lsmvault(&fixture.repo, &["init", "--no-encryption"]);
    assert_eq!(init.status.code(), Some(11), "{init:?}");
    assert!(!fixture.repo.join("config").exists());
}

/// One damaged WAL record takes down neither verify's check of the others,
/// nor `wal ls`, nor archiving (which archives its segment again); prune,
/// which must know every chunk the archive needs, refuses naming it.
#[test]
fn a_damaged_wal_record_is_named_and_skipped_by_verify_wal_ls_and_archive() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let database = crate::pitr::fake_database(
        work.path(),
        &[
            (5, (1..=30).map(|sequence| (sequence, 1)).collect()),
            (6, (31..=60).map(|sequence| (sequence, 1)).collect()),
        ],
    );
    let database = database.to_str().unwrap();
    lsmvault_ok(&repo, &["wal", "archive", database]);
    let records: Vec<PathBuf> = fs::read_dir(repo.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(records.len(), 2);
    let damaged = &records[0];
    let name = damaged.file_name().unwrap().to_string_lossy().into_owned();
    let mut bytes = fs::read(damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(damaged, bytes).unwrap();

    let verify = lsmvault(&repo, &["--json", "verify"]);
    assert_eq!(verify.status.code(), Some(19), "{verify:?}");
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(
        report["findings"][0]["object"],
        format!("WAL record {name}").as_str()
    );
    assert_eq!(
        report["wal_segments"], 1,
        "the intact record is still checked"
    );

    let listing = lsmvault(&repo, &["--json", "wal", "ls"]);
    let stderr = String::from_utf8_lossy(&listing.stderr);
    assert!(listing.status.success(), "{stderr}");
    assert!(stderr.contains(&name), "{stderr}");
    let timeline: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    assert_eq!(
        timeline[0]["segments"].as_array().unwrap().len(),
        1,
        "{timeline}"
    );

    let archive = lsmvault_json(&repo, &["wal", "archive", database]);
    let new: Vec<&serde_json::Value> = archive["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|segment| segment["status"] == "new")
        .collect();
    assert_eq!(
        new.len(),
        1,
        "the damaged record's segment archived again: {archive}"
    );
    let listing = lsmvault_json(&repo, &["wal", "ls"]);
    assert_eq!(
        listing[0]["segments"].as_array().unwrap().len(),
        2,
        "{listing}"
    );

    let prune = lsmvault(&repo, &["prune"]);
    assert_ne!(prune.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&prune.stderr).contains(&name),
        "{prune:?}"
    );
}
