//! Pack uploads to S3 (moto): several packs in flight (`LSMVAULT_UPLOADS`)
//! and multipart uploads above `LSMVAULT_S3_MULTIPART_THRESHOLD`; each
//! backup restores byte for byte and verifies clean.

use std::fs;
use std::path::Path;

use crate::common::s3::{lsmvault_s3_command, lsmvault_s3_ok, Moto};
use crate::common::{assert_same_tree, assert_success, seeded_bytes};

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// `files` files of `mib` MiB of incompressible bytes under `root/source`.
fn source(root: &Path, files: u64, mib: usize) -> std::path::PathBuf {
    let source = root.join("source");
    fs::create_dir_all(&source).unwrap();
    for file in 0..files {
        fs::write(
            source.join(format!("file-{file}")),
            seeded_bytes(700 + file, mib << 20),
        )
        .unwrap();
    }
    source
}

/// Runs `lsmvault ARGS` on `repo` with `env` set; stdout.
fn run(repo: &str, env: &[(&str, &str)], args: &[&str]) -> String {
    let mut command = lsmvault_s3_command(repo, None, args);
    command.envs(env.iter().copied());
    assert_success(
        &command.output().expect("running lsmvault"),
        &format!("lsmvault {args:?} with {env:?}"),
    )
}

/// Backs `source` up into a fresh repository with `env`, restores it and
/// checks it byte for byte and with `verify --read-data`; the repository.
fn round_trip(moto: &Moto, source: &Path, work: &Path, env: &[(&str, &str)]) -> String {
    let repo = moto.fresh_location();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let backup = run(&repo, env, &["--json", "backup", path(source)]);
    let backup: serde_json::Value = serde_json::from_str(&backup).unwrap();
    let target = work.join(format!("restore-{}", repo.replace(['/', ':'], "_")));
    run(
        &repo,
        &[],
        &["restore", "latest", "--target", path(&target)],
    );
    assert_same_tree(source, &target);
    let report = run(&repo, &[], &["--json", "verify", "--read-data"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#} after {backup:#}"
    );
    repo
}

/// The keys of the packs of the repository at `repo` (as moto lists them).
fn pack_keys(moto: &Moto, repo: &str) -> Vec<String> {
    let (bucket, prefix) = bucket_and_prefix(repo);
    let listing = moto.request(
        "GET",
        &format!("/{bucket}?list-type=2&prefix={prefix}/data/"),
    );
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_string()))
        .collect()
}

fn bucket_and_prefix(repo: &str) -> (String, String) {
    let path = repo.rsplit("127.0.0.1:").next().unwrap();
    let mut parts = path.splitn(3, '/').skip(1);
    (
        parts.next().unwrap().to_string(),
        parts.next().unwrap().to_string(),
    )
}

/// Many packs, uploaded one at a time (the old behaviour) and eight at a
/// time: both restore byte for byte and verify clean.
#[test]
fn s3_backup_with_many_packs_in_flight_restores_byte_for_byte() {
    let Some(moto) = Moto::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let source = source(work.path(), 3, 12);
    for uploads in ["1", "8"] {
        let repo = round_trip(
            &moto,
            &source,
            work.path(),
            &[("LSMVAULT_UPLOADS", uploads)],
        );
        let keys = pack_keys(&moto, &repo);
        assert!(keys.len() >= 2, "{uploads} uploads: {keys:?}");
    }
}

/// Above a 1 MiB threshold every pack goes in parts (S3 marks an object
/// assembled from parts with an ETag ending in `-<parts>`), restores byte
/// for byte, and no multipart upload is left open.
#[test]
fn s3_packs_above_the_multipart_threshold_upload_in_parts() {
    let Some(moto) = Moto::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let source = source(work.path(), 2, 20);
    let env = [("LSMVAULT_S3_MULTIPART_THRESHOLD", "1048576")];
    let repo = round_trip(&moto, &source, work.path(), &env);
    let (bucket, _) = bucket_and_prefix(&repo);
    let keys = pack_keys(&moto, &repo);
    assert!(!keys.is_empty());
    for key in &keys {
        let head = moto.request("HEAD", &format!("/{bucket}/{key}"));
        let etag = head
            .lines()
            .find(|line| line.to_ascii_lowercase().starts_with("etag:"))
            .unwrap_or_else(|| panic!("no ETag for {key}: {head}"));
        assert!(
            etag.trim_end()
                .trim_end_matches('"')
                .rsplit_once('-')
                .is_some(),
            "{key} was not uploaded in parts: {etag}"
        );
    }
    let uploads = moto.request("GET", &format!("/{bucket}?uploads"));
    assert!(!uploads.contains("<Upload>"), "{uploads}");
    // A second backup of the same data finds every pack (HEAD): nothing new.
    let again = run(&repo, &env, &["--json", "backup", path(&source)]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(pack_keys(&moto, &repo).len(), keys.len(), "{again:#}");
}

/// A threshold that is not a byte count is refused before any request.
#[test]
fn s3_invalid_upload_settings_are_refused() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let work = tempfile::tempdir().unwrap();
    let source = source(work.path(), 1, 1);
    for (variable, value) in [
        ("LSMVAULT_S3_MULTIPART_THRESHOLD", "64 megs"),
        ("LSMVAULT_UPLOADS", "0"),
        ("LSMVAULT_UPLOADS", "100000"),
    ] {
        let output = lsmvault_s3_command(&repo, None, &["backup", path(&source)])
            .env(variable, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{variable}={value}: {stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
}
