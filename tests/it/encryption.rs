//! Encrypted repositories end to end: passwords and keys, nothing written in
//! plaintext, tampering of every object type detected and named.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::lsmvault_with_password as run;
use crate::common::*;

const PASSWORD: &str = "correct horse battery staple";
const MARKER: &str = "CANARY-7f3a9c-plaintext-must-not-leak";

fn run_ok(repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let output = run(repo, Some(PASSWORD), &all);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

struct Fixture {
    work: tempfile::TempDir,
    repo: PathBuf,
    source: PathBuf,
}

fn encrypted_fixture() -> Fixture {
    encrypted_fixture_with(&[])
}

/// An encrypted repository (`init` with `init_arguments` added) holding one
/// backup of a source full of a marker string.
fn encrypted_fixture_with(init_arguments: &[&str]) -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join(format!("db-{MARKER}"));
    fs::create_dir(&source).unwrap();
    // Compressible text full of the marker, a large random file, a file named by it.
    fs::write(
        source.join("MANIFEST-000001"),
        format!("{MARKER}\n").repeat(50_000),
    )
    .unwrap();
    let mut sst = seeded_bytes(1, 3_000_000);
    sst[1_000_000..1_000_000 + MARKER.len()].copy_from_slice(MARKER.as_bytes());
    fs::write(source.join("000002.sst"), sst).unwrap();
    fs::write(source.join(MARKER), MARKER).unwrap();
    let mut init_command = vec!["init", "--kdf-target-ms", "20"];
    init_command.extend_from_slice(init_arguments);
    let init = run(&repo, Some(PASSWORD), &init_command);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    run_ok(
        &repo,
        &["backup", source.to_str().unwrap(), "--tag", MARKER],
    );
    Fixture { work, repo, source }
}

fn every_file(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.into_path())
        .collect()
}

#[test]
fn nothing_is_written_in_plaintext_and_everything_restores() {
    // The default cipher, and the other one a repository may be created with.
    for (init_arguments, cipher) in [
        (&[][..], "aes-256-gcm-subkey"),
        (
            &["--cipher", "xchacha20-poly1305"][..],
            "xchacha20-poly1305",
        ),
    ] {
        nothing_in_plaintext_and_everything_restores(init_arguments, cipher);
    }
}

fn nothing_in_plaintext_and_everything_restores(init_arguments: &[&str], cipher: &str) {
    let fixture = encrypted_fixture_with(init_arguments);
    for path in every_file(&fixture.repo) {
        let bytes = fs::read(&path).unwrap();
        assert!(
            !bytes
                .windows(MARKER.len())
                .any(|window| window == MARKER.as_bytes()),
            "{} holds plaintext",
            path.display()
        );
    }
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture.repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["encryption"]["cipher"], cipher);
    let report = run_ok(&fixture.repo, &["verify", "--read-data"]);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let target = fixture.work.path().join("restored");
    run_ok(
        &fixture.repo,
        &[
            "restore",
            &format!("latest:{MARKER}"),
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(&fixture.source, &target);
    // Unchanged files are still recognised (keyed ids, same parent logic).
    let again = run_ok(&fixture.repo, &["backup", fixture.source.to_str().unwrap()]);
    assert_eq!(again["snapshot"]["stats"]["bytes_read"], 0);
}

#[test]
fn passwords_are_required_checked_and_managed() {
    let fixture = encrypted_fixture();
    let repo = &fixture.repo;
    // init refuses to create a plaintext repository silently.
    let other = fixture.work.path().join("other");
    let refused = run(&other, None, &["init"]);
    assert_eq!(refused.status.code(), Some(25));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("--no-encryption")
            || String::from_utf8_lossy(&refused.stderr).contains("LSMVAULT_PASSWORD")
    );
    assert!(!other.join("config").exists());

    assert_eq!(run(repo, None, &["snapshots"]).status.code(), Some(25));
    let wrong = run(repo, Some("wrong"), &["snapshots"]);
    assert_eq!(wrong.status.code(), Some(26));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("password"));

    // A password file works too.
    let password_file = fixture.work.path().join("password");
    fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    let from_file = Command::new(binary())
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "--password-file",
            password_file.to_str().unwrap(),
            "snapshots",
        ])
        .env_remove("LSMVAULT_PASSWORD")
        .output()
        .unwrap();
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );

    // A second key; then remove the first; the old password stops working.
    let added = Command::new(binary())
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "--json",
            "key",
            "add",
            "--kdf-target-ms",
            "20",
        ])
        .env("LSMVAULT_PASSWORD", PASSWORD)
        .env("LSMVAULT_NEW_PASSWORD", "second password")
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let keys = run_ok(repo, &["key", "list"]);
    assert_eq!(keys.as_array().unwrap().len(), 2);
    let first = keys
        .as_array()
        .unwrap()
        .iter()
        .find(|key| key["current"] == true)
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    // The key in use cannot be removed.
    assert_eq!(
        run(repo, Some(PASSWORD), &["key", "remove", &first])
            .status
            .code(),
        Some(22)
    );
    let removed = run(repo, Some("second password"), &["key", "remove", &first]);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert_eq!(
        run(repo, Some(PASSWORD), &["snapshots"]).status.code(),
        Some(26)
    );
    assert!(run(repo, Some("second password"), &["snapshots"])
        .status
        .success());

    // passwd replaces the key in use.
    let changed = Command::new(binary())
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "key",
            "passwd",
            "--kdf-target-ms",
            "20",
        ])
        .env("LSMVAULT_PASSWORD", "second password")
        .env("LSMVAULT_NEW_PASSWORD", "third password")
        .output()
        .unwrap();
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );
    assert_eq!(
        run(repo, Some("second password"), &["snapshots"])
            .status
            .code(),
        Some(26)
    );
    assert!(run(repo, Some("third password"), &["snapshots"])
        .status
        .success());
}

/// Flips one byte of `path` at `offset` (from the end when negative).
fn flip(path: &Path, offset: i64) {
    let mut bytes = fs::read(path).unwrap();
    let position = if offset < 0 {
        bytes.len() - offset.unsigned_abs() as usize
    } else {
        offset as usize
    };
    bytes[position] ^= 0x01;
    fs::write(path, bytes).unwrap();
}

fn objects(repo: &Path, directory: &str) -> Vec<PathBuf> {
    let mut found = every_file(&repo.join(directory));
    found.sort();
    found
}

#[test]
fn tampering_with_any_object_is_an_authentication_failure_naming_it() {
    // A blob inside a pack: verify --read-data names it, restore fails on it.
    let fixture = encrypted_fixture();
    let pack = objects(&fixture.repo, "data")[0].clone();
    flip(&pack, 100);
    let verify = run(
        &fixture.repo,
        Some(PASSWORD),
        &["--json", "verify", "--read-data"],
    );
    assert_eq!(verify.status.code(), Some(19));
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert!(
        report.to_string().contains("failed authentication"),
        "{report:#}"
    );

    // A pack header (just before the 12-byte trailer): found without reading data.
    let fixture = encrypted_fixture();
    let pack = objects(&fixture.repo, "data")[0].clone();
    flip(&pack, -20);
    let verify = run(&fixture.repo, Some(PASSWORD), &["--json", "verify"]);
    assert_eq!(verify.status.code(), Some(19));
    let name = pack.file_name().unwrap().to_str().unwrap();
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(
        text.contains(&format!("header of pack {name} failed authentication")),
        "{text}"
    );

    // An index file: every command that loads the index names it (and goes
    // on without it: here the only index file, so the restore then fails on
    // the blobs it described).
    let fixture = encrypted_fixture();
    let index = objects(&fixture.repo, "index")[0].clone();
    flip(&index, 40);
    let target = fixture.work.path().join("t");
    let restore = run(
        &fixture.repo,
        Some(PASSWORD),
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_eq!(restore.status.code(), Some(16), "{}", stderr_text(&restore));
    assert!(stderr_text(&restore).contains(&format!(
        "index file {} failed authentication",
        index.file_name().unwrap().to_str().unwrap()
    )));

    // A snapshot file: the listing goes on without it and names it
    // (issue 13: one damaged snapshot blocks nothing else).
    let fixture = encrypted_fixture();
    let snapshot = objects(&fixture.repo, "snapshots")[0].clone();
    flip(&snapshot, 30);
    let listed = run(&fixture.repo, Some(PASSWORD), &["snapshots"]);
    assert_eq!(listed.status.code(), Some(0));
    let name = snapshot.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr_text(&listed).contains(&format!("snapshot {name}"))
            && stderr_text(&listed).contains("failed authentication"),
        "{}",
        stderr_text(&listed)
    );
    // Selecting it fails naming it, as an authentication failure.
    let shown = run(&fixture.repo, Some(PASSWORD), &["ls", &name[..12]]);
    assert_eq!(shown.status.code(), Some(27), "{}", stderr_text(&shown));
    assert!(stderr_text(&shown).contains("failed authentication"));

    // Two packs' names swapped: verify --read-data finds both, restore fails.
    let fixture = encrypted_fixture();
    let packs = objects(&fixture.repo, "data");
    assert!(!packs.is_empty());
    // Add a second pack with other content so there are two to swap.
    let extra = fixture.work.path().join("extra");
    fs::create_dir(&extra).unwrap();
    fs::write(extra.join("000009.sst"), seeded_bytes(9, 2_000_000)).unwrap();
    run_ok(&fixture.repo, &["backup", extra.to_str().unwrap()]);
    let packs = objects(&fixture.repo, "data");
    assert!(packs.len() >= 2);
    let (a, b) = (&packs[0], &packs[1]);
    let swap = a.with_extension("swap");
    fs::rename(a, &swap).unwrap();
    fs::rename(b, a).unwrap();
    fs::rename(&swap, b).unwrap();
    let verify = run(
        &fixture.repo,
        Some(PASSWORD),
        &["--json", "verify", "--read-data"],
    );
    assert_eq!(verify.status.code(), Some(19));
    let report: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    let damaged: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|finding| finding["object"].as_str().unwrap().to_string())
        .collect();
    for pack in [a, b] {
        let name = pack.file_name().unwrap().to_str().unwrap();
        assert!(
            damaged.iter().any(|object| object.contains(name)),
            "{name} not in {damaged:?}"
        );
    }
    let target = fixture.work.path().join("swapped");
    let restore = run(
        &fixture.repo,
        Some(PASSWORD),
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert!(!restore.status.success());
}

/// Regression (issue 13, "also seen"): an empty password file was reported as
/// a wrong password; it is an invalid argument naming the file.
#[test]
fn an_empty_password_file_is_named_not_taken_for_a_wrong_password() {
    let fixture = encrypted_fixture();
    let empty = fixture.work.path().join("empty-password");
    fs::write(&empty, "\n").unwrap();
    let output = run(
        &fixture.repo,
        None,
        &["--password-file", empty.to_str().unwrap(), "snapshots"],
    );
    assert_eq!(output.status.code(), Some(22), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains(&format!("password file {} is empty", empty.display())),
        "{}",
        stderr_text(&output)
    );
}
