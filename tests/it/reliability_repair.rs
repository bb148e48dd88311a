//! Issue 13 items 2, 5 and 6: one damaged index file is skipped and named
//! (and `repair index` rebuilds the index from the pack headers), a config
//! edited to drop encryption is refused, and restore verifies every file,
//! hard-link groups included.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;

const PASSWORD: &str = "reliability repair password";

/// Runs lsmvault on `repo` with `password` (or none) in the environment.
fn run(repo: &Path, password: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(binary());
    command
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("LSMVAULT_REPOSITORY")
        .env_remove("LSMVAULT_PASSWORD_FILE")
        .env_remove("LSMVAULT_NEW_PASSWORD");
    match password {
        Some(password) => command.env("LSMVAULT_PASSWORD", password),
        None => command.env_remove("LSMVAULT_PASSWORD"),
    };
    command.output().expect("running lsmvault")
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every file under `root`, relative to it.
fn files_under(root: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(directory) = pending.pop() {
        for entry in fs::read_dir(&directory).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.insert(path.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    found
}

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
    // The attacker drops the encryption section of `config`.
    let config_path = repo.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["encryption"] = serde_json::Value::Null;
    fs::write(&config_path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    let before = files_under(&repo);

    fs::write(source.join("000002.sst"), seeded_bytes(6, 200_000)).unwrap();
    for password in [None, Some(PASSWORD)] {
        let output = run(&repo, password, &["backup", source.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(27), "{stderr}");
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
    assert_eq!(snapshots.status.code(), Some(27));
}
