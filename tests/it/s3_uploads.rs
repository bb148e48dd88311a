//! Pack uploads to S3 (moto): several packs in flight (`LSMVAULT_UPLOADS`),
//! each uploaded from its spill file in `$TMPDIR` (multipart above 6 MiB or
//! `LSMVAULT_S3_MULTIPART_THRESHOLD`); each backup restores byte for byte
//! and verifies clean. Attacks on the spill files: `kill -9` mid-upload
//! leaves none behind, a full `$TMPDIR` fails the backup cleanly.

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

/// The ETag of every pack of the repository at `repo`, by key (from the
/// listing: moto refuses an unsigned HEAD of some objects).
fn pack_etags(moto: &Moto, repo: &str) -> Vec<(String, String)> {
    let (bucket, prefix) = bucket_and_prefix(repo);
    let listing = moto.request(
        "GET",
        &format!("/{bucket}?list-type=2&prefix={prefix}/data/"),
    );
    let between = |text: &str, tag: &str| -> String {
        let open = format!("<{tag}>");
        let rest = &text[text.find(&open).expect("a listed object") + open.len()..];
        rest[..rest.find('<').unwrap()].to_string()
    };
    listing
        .split("<Contents>")
        .skip(1)
        .map(|object| (between(object, "Key"), between(object, "ETag")))
        .collect()
}

/// The number of parts of an object with this ETag (S3 marks an object
/// assembled from parts with an ETag ending in `-<parts>`), `None` for one
/// sent whole.
fn parts(etag: &str) -> Option<u32> {
    let etag = etag.trim_end_matches('"').trim_end_matches("&#34;");
    let (_, count) = etag.rsplit_once('-')?;
    count.parse().ok()
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
    for (key, etag) in pack_etags(&moto, &repo) {
        assert!(
            parts(&etag).is_some(),
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

/// The spill files (unlinked, so only seen through `/proc/PID/fd`) that
/// process `pid` has open in `directory`.
fn open_spill_files(pid: u32, directory: &Path) -> Vec<String> {
    let Ok(descriptors) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    let prefix = directory.to_string_lossy().to_string();
    descriptors
        .filter_map(|entry| fs::read_link(entry.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().to_string())
        .filter(|target| target.starts_with(&prefix))
        .collect()
}

/// Packs are spilled to `$TMPDIR` and sent from there: a 16 MiB pack in
/// parts of 5 to 6 MiB (three), a pack under 6 MiB whole; with a small
/// `LSMVAULT_S3_MULTIPART_THRESHOLD` small packs go in one part. Every
/// backup restores byte for byte, no multipart upload stays open and no
/// spill file is left in `$TMPDIR`.
#[test]
fn s3_spilled_packs_upload_from_their_files_and_restore_byte_for_byte() {
    let Some(moto) = Moto::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let spill = work.path().join("spill");
    fs::create_dir(&spill).unwrap();
    let source = source(work.path(), 2, 20);
    let tmpdir = [("TMPDIR", path(&spill))];
    let repo = round_trip(&moto, &source, work.path(), &tmpdir);
    let etags = pack_etags(&moto, &repo);
    // 40 MiB: two full packs of 16 MiB or more (3 parts each, 4 when the
    // chunk that filled it overshoots: chunk order depends on which reading
    // thread gets there first), the rest in one more.
    let full = etags
        .iter()
        .filter(|(_, etag)| parts(etag).is_some_and(|parts| parts >= 3))
        .count();
    assert!(full >= 2, "{etags:#?}");
    // One more small file: its pack (under 6 MiB) goes as one PUT.
    fs::write(source.join("small"), seeded_bytes(800, 1 << 20)).unwrap();
    run(&repo, &tmpdir, &["backup", path(&source)]);
    let etags = pack_etags(&moto, &repo);
    assert!(
        etags.iter().any(|(_, etag)| parts(etag).is_none()),
        "the small pack should go as one PUT: {etags:#?}"
    );
    let target = work.path().join("restore-with-small");
    run(
        &repo,
        &[],
        &["restore", "latest", "--target", path(&target)],
    );
    assert_same_tree(&source, &target);
    let (bucket, _) = bucket_and_prefix(&repo);
    let uploads = moto.request("GET", &format!("/{bucket}?uploads"));
    assert!(!uploads.contains("<Upload>"), "{uploads}");
    assert_eq!(fs::read_dir(&spill).unwrap().count(), 0);

    // 2 MiB packs above a 1 MiB threshold: one part each (the last part may
    // be under S3's 5 MiB floor).
    let repo = moto.fresh_location();
    let options = lsmvault::InitOptions {
        pack_size: 2 << 20,
        ..lsmvault::InitOptions::default()
    };
    lsmvault::Repository::init(std::sync::Arc::new(Moto::backend(&repo)), options).unwrap();
    let env = [
        ("TMPDIR", path(&spill)),
        ("LSMVAULT_S3_MULTIPART_THRESHOLD", "1048576"),
    ];
    run(&repo, &env, &["backup", path(&source)]);
    let target = work.path().join("restore-small-packs");
    run(
        &repo,
        &[],
        &["restore", "latest", "--target", path(&target)],
    );
    assert_same_tree(&source, &target);
    let etags = pack_etags(&moto, &repo);
    assert!(etags.len() >= 10, "{etags:#?}");
    let single_parts = etags.iter().filter(|(_, etag)| parts(etag) == Some(1));
    assert!(single_parts.count() >= 10, "{etags:#?}");
    assert_eq!(fs::read_dir(&spill).unwrap().count(), 0);
}

/// `kill -9` of a backup while packs upload from their spill files: the
/// files were open (seen in `/proc/PID/fd`) but never had a name, so
/// nothing is left in `$TMPDIR`; the repository verifies clean and the next
/// backup completes and restores byte for byte.
#[test]
fn s3_backup_killed_mid_upload_leaves_no_spill_file_behind() {
    let Some(moto) = Moto::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let spill = work.path().join("spill");
    fs::create_dir(&spill).unwrap();
    let source = source(work.path(), 3, 16);
    let repo = moto.fresh_location();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    // 4 MiB/s: 48 MiB take seconds to go up, so the kill lands mid-upload.
    let mut child = lsmvault_s3_command(
        &repo,
        None,
        &["--limit-upload", "4MiB", "backup", path(&source)],
    )
    .env("TMPDIR", &spill)
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let open = loop {
        let open = open_spill_files(child.id(), &spill);
        if !open.is_empty() {
            break open;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never had a spill file open in {}",
            spill.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // Open, yet without a name in the directory.
    assert!(
        open.iter().all(|target| target.ends_with("(deleted)")),
        "{open:?}"
    );
    assert_eq!(fs::read_dir(&spill).unwrap().count(), 0, "{open:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(fs::read_dir(&spill).unwrap().count(), 0);
    run(&repo, &[], &["unlock"]);
    let report = run(&repo, &[], &["--json", "verify", "--read-data"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    run(
        &repo,
        &[("TMPDIR", path(&spill))],
        &["backup", path(&source)],
    );
    let target = work.path().join("restore");
    run(
        &repo,
        &[],
        &["restore", "latest", "--target", path(&target)],
    );
    assert_same_tree(&source, &target);
}

/// A small tmpfs mounted on a fresh directory, unmounted on drop; `None`
/// when this process may not mount (not root, or no mount(8)).
struct SmallTmpfs(std::path::PathBuf);

impl SmallTmpfs {
    fn mount(at: &Path, size: &str) -> Option<SmallTmpfs> {
        fs::create_dir_all(at).ok()?;
        let mounted = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                path(at),
            ])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then(|| SmallTmpfs(at.to_path_buf()))
    }
}

impl Drop for SmallTmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// `$TMPDIR` too small for one pack: the backup fails with the no-space
/// exit code (the I/O family's), naming the directory and what to do;
/// the snapshot before it is intact, the repository verifies clean and a
/// backup with room completes and restores byte for byte.
#[test]
fn s3_backup_with_a_full_tmpdir_fails_cleanly_naming_it() {
    let Some(moto) = Moto::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let Some(full) = SmallTmpfs::mount(&work.path().join("full"), "4m") else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    let small = source(work.path(), 1, 1);
    let repo = moto.fresh_location();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    run(&repo, &[], &["backup", path(&small)]);
    fs::write(small.join("big"), seeded_bytes(900, 24 << 20)).unwrap();
    let output = lsmvault_s3_command(&repo, None, &["backup", path(&small)])
        .env("TMPDIR", &full.0)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(32), "{stderr}");
    for expected in [path(&full.0), "TMPDIR", "No space left"] {
        assert!(stderr.contains(expected), "{expected:?} not in: {stderr}");
    }
    let snapshots = run(&repo, &[], &["--json", "snapshots"]);
    let snapshots: serde_json::Value = serde_json::from_str(&snapshots).unwrap();
    assert_eq!(snapshots.as_array().unwrap().len(), 1, "{snapshots:#}");
    let report = run(&repo, &[], &["--json", "verify", "--read-data"]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    assert_eq!(fs::read_dir(&full.0).unwrap().count(), 0);
    run(&repo, &[], &["backup", path(&small)]);
    let target = work.path().join("restore");
    run(
        &repo,
        &[],
        &["restore", "latest", "--target", path(&target)],
    );
    assert_same_tree(&small, &target);
}
