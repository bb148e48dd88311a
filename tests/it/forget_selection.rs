//! Which snapshots `forget` selects (review of issue 15): `latest` under a
//! filter, the default grouping of a database cloned onto another host,
//! and the warning for repeated `--tag`.

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::*;

/// A plain directory `work/name` holding one file.
fn directory_with(work: &Path, name: &str, content: &[u8]) -> PathBuf {
    let directory = work.join(name);
    fs::create_dir_all(&directory).unwrap();
    fs::write(directory.join("000001.sst"), content).unwrap();
    directory
}

/// Backs `source` up with extra flags; returns the new snapshot's id.
fn backup(repo: &Path, source: &Path, flags: &[&str]) -> String {
    let mut args = vec!["backup"];
    args.extend_from_slice(flags);
    args.push(source.to_str().unwrap());
    lsmvault_json(repo, &args)["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn removed(report: &serde_json::Value) -> Vec<String> {
    report["removed"]
        .as_array()
        .unwrap_or_else(|| panic!("no removed list: {report}"))
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forget_latest_with_a_host_filter_removes_that_hosts_newest_snapshot() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = directory_with(work.path(), "db", b"one");
    let production = backup(&repo, &source, &["--host", "prod1"]);
    let staging = backup(&repo, &source, &["--host", "staging1"]);
    let report = lsmvault_json(&repo, &["forget", "latest", "--host", "prod1", "--dry-run"]);
    assert_eq!(removed(&report), [production], "not {staging}");
    // A policy beside ids is refused, not silently ignored.
    let both = lsmvault(&repo, &["forget", "latest", "--keep-last", "1"]);
    assert_eq!(both.status.code(), Some(22), "{}", stderr_text(&both));
    assert_eq!(snapshot_ids(&repo).len(), 2);
    lsmvault_ok(&repo, &["forget", "latest", "--host", "prod1"]);
    assert_eq!(snapshot_ids(&repo), [staging]);
}

#[test]
fn forget_by_default_keeps_each_hosts_newest_of_a_cloned_database() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    // A staging clone restored from production keeps its IDENTITY.
    let production = directory_with(work.path(), "prod/db", b"production");
    let staging = directory_with(work.path(), "staging/db", b"staging");
    let mut newest = Vec::new();
    for (host, source) in [("prod", &production), ("staging", &staging)] {
        let flags = ["--host", host, "--database-id", "same-identity"];
        backup(&repo, source, &flags);
        fs::write(source.join("000002.sst"), host).unwrap();
        newest.push(backup(&repo, source, &flags));
    }
    let report = lsmvault_json(&repo, &["forget", "--keep-last", "1"]);
    let groups = report["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 2, "one group per host: {report}");
    let mut left = snapshot_ids(&repo);
    left.sort();
    newest.sort();
    assert_eq!(left, newest, "each host keeps its newest");
    // Grouping by identity alone is still there for those who want it.
    let merged = lsmvault_json(
        &repo,
        &[
            "forget",
            "--keep-last",
            "1",
            "--group-by",
            "database",
            "--dry-run",
        ],
    );
    assert_eq!(merged["groups"].as_array().unwrap().len(), 1, "{merged}");
}

#[test]
fn forget_warns_that_repeated_tags_select_snapshots_with_any_of_them() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = directory_with(work.path(), "db", b"one");
    backup(&repo, &source, &["--tag", "nightly"]);
    backup(&repo, &source, &["--tag", "db1"]);
    let either = lsmvault(
        &repo,
        &[
            "forget",
            "--tag",
            "nightly",
            "--tag",
            "db1",
            "--keep-last",
            "1",
            "--dry-run",
        ],
    );
    let warning = stderr_text(&either);
    assert!(either.status.success(), "{warning}");
    assert!(warning.contains("ANY of these tags"), "{warning}");
    assert!(warning.contains("--tag nightly,db1"), "{warning}");
    let both = lsmvault(
        &repo,
        &[
            "forget",
            "--tag",
            "nightly,db1",
            "--keep-last",
            "1",
            "--dry-run",
        ],
    );
    assert!(!stderr_text(&both).contains("ANY"));
}
