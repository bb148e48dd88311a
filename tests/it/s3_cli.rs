//! The CLI end to end over S3 (moto, `common::s3`): a real RocksDB backed up,
//! restored byte for byte and opened, verified, pruned; an encrypted
//! repository; a point-in-time restore from a WAL archived to S3; and the
//! failures a user meets: a missing bucket, a server that is down or goes
//! away mid-backup, a server that ignores conditional writes.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::s3::{location, lsmvault_s3, lsmvault_s3_command, lsmvault_s3_ok, Moto, Proxy};
use crate::common::{assert_same_tree, seeded_bytes, tools_available};
use crate::rocksdb::{assert_same_files, checkpoint, db_bench, scan, ROCKSDB_TOOLS};

fn json(location: &str, password: Option<&str>, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = lsmvault_s3_ok(location, password, &all);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

fn path(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

/// `verify --read-data` at `location` finds nothing; returns its report.
fn assert_verifies_clean(location: &str, password: Option<&str>) -> serde_json::Value {
    let report = json(location, password, &["verify", "--read-data"]);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    report
}

/// Restores the latest snapshot at `location` into `target`.
fn restore_latest(location: &str, password: Option<&str>, target: &Path) {
    lsmvault_s3_ok(
        location,
        password,
        &["restore", "latest", "--target", path(target)],
    );
}

/// Starts `backup SOURCE` into `location`, its output captured.
fn spawn_backup(location: &str, source: &Path) -> std::process::Child {
    lsmvault_s3_command(location, None, &["backup", path(source)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// A running moto (or `None`: the test is skipped), a plaintext repository
/// initialised in a fresh bucket of it, and a scratch directory.
fn moto_with_repository() -> Option<(Moto, String, tempfile::TempDir)> {
    let moto = Moto::start()?;
    let repo = moto.fresh_location();
    let out = lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    assert!(out.contains(&repo), "init names the location: {out}");
    Some((moto, repo, tempfile::tempdir().unwrap()))
}

/// A directory `work/name` holding `files`: (relative path, seed, length) of
/// seeded, incompressible content.
fn seeded_source(work: &Path, name: &str, files: &[(&str, u64, usize)]) -> std::path::PathBuf {
    let source = work.join(name);
    fs::create_dir_all(&source).unwrap();
    for (file, seed, length) in files {
        let file = source.join(file);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(file, seeded_bytes(*seed, *length)).unwrap();
    }
    source
}

/// Exits with `code`, and its stderr names every one of `expected`.
fn assert_fails(output: &std::process::Output, code: i32, expected: &[&str]) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    for text in expected {
        assert!(stderr.contains(text), "{text:?} not in: {stderr}");
    }
}

/// Two generations of a real RocksDB: backup, snapshots, restore of each
/// byte for byte and opened with `ldb scan`, verify --read-data, forget
/// --prune, and the survivor still restores.
#[test]
fn s3_rocksdb_backup_restore_verify_and_prune() {
    if !tools_available(&ROCKSDB_TOOLS) {
        return;
    }
    let Some((_moto, repo, work)) = moto_with_repository() else {
        return;
    };
    let db = work.path().join("db");
    db_bench(&db, &["--benchmarks=fillrandom", "--num=30000"]);
    let mut generations = Vec::new();
    for generation in 1..=2 {
        if generation > 1 {
            db_bench(
                &db,
                &[
                    "--benchmarks=overwrite",
                    "--use_existing_db=1",
                    "--writes=5000",
                    "--num=30000",
                ],
            );
        }
        let checkpoint_dir = work.path().join(format!("gen{generation}"));
        checkpoint(&db, &checkpoint_dir);
        let backup = json(&repo, None, &["backup", path(&checkpoint_dir)]);
        generations.push((backup["id"].as_str().unwrap().to_string(), checkpoint_dir));
    }
    let listed = json(&repo, None, &["snapshots"]);
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed:#}");
    for (id, checkpoint_dir) in &generations {
        let target = work.path().join(format!("restore-{id}"));
        lsmvault_s3_ok(&repo, None, &["restore", id, "--target", path(&target)]);
        assert_same_files(checkpoint_dir, &target);
        assert_eq!(scan(checkpoint_dir), scan(&target));
    }
    assert_verifies_clean(&repo, None);
    // Each generation is its own group (its own path): forget the first by id.
    lsmvault_s3_ok(&repo, None, &["forget", &generations[0].0, "--prune"]);
    assert_verifies_clean(&repo, None);
    let (last, checkpoint_dir) = generations.last().unwrap();
    assert_eq!(json(&repo, None, &["snapshots"])[0]["id"], last.as_str());
    let target = work.path().join("after-prune");
    restore_latest(&repo, None, &target);
    assert_eq!(scan(checkpoint_dir), scan(&target));
}

/// An encrypted repository on S3: init, backup, restore; a wrong password
/// is refused as on a local repository.
#[test]
fn s3_encrypted_repository_round_trips() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    let work = tempfile::tempdir().unwrap();
    let source = seeded_source(
        work.path(),
        "source",
        &[("a.sst", 1, 3 << 20), ("sub/b.log", 2, 100_000)],
    );
    let password = Some("s3 test password");
    lsmvault_s3_ok(&repo, password, &["init", "--kdf-target-ms", "20"]);
    lsmvault_s3_ok(&repo, password, &["backup", path(&source)]);
    let target = work.path().join("target");
    restore_latest(&repo, password, &target);
    assert_same_tree(&source, &target);
    let refused = lsmvault_s3(&repo, Some("wrong"), &["snapshots"]);
    assert_fails(&refused, 26, &[&repo]);
    assert_verifies_clean(&repo, password);
}

/// WAL archived to S3 with `wal archive`, then a point-in-time restore by
/// sequence number from it.
#[test]
fn s3_point_in_time_restore_from_an_archived_wal() {
    use lsmvault::lsm::log::encode_log;
    use lsmvault::lsm::write_batch::encode_write_batch;
    let Some((_moto, repo, work)) = moto_with_repository() else {
        return;
    };
    let db = crate::pitr::fake_database(
        work.path(),
        &[(5, (1..=30).map(|sequence| (sequence, 1)).collect())],
    );
    let backup = json(&repo, None, &["backup", path(&db)]);
    assert_eq!(backup["snapshot"]["database"]["last_sequence"], 30);
    let records: Vec<Vec<u8>> = (31..=60)
        .map(|sequence| encode_write_batch(sequence, 1, &[0x66; 300]))
        .collect();
    fs::write(db.join("000007.log"), encode_log(&records, None)).unwrap();
    json(&repo, None, &["wal", "archive", path(&db)]);
    let timeline = json(&repo, None, &["wal", "ls"]);
    assert_eq!(timeline[0]["windows"][0]["to_sequence"], 60, "{timeline:#}");
    let target = work.path().join("at-45");
    let report = json(
        &repo,
        None,
        &["restore", "--seq", "45", "--target", path(&target)],
    );
    assert_eq!(report["restored_sequence"], 45, "{report:#}");
    let cut = fs::read(target.join("000007.log")).unwrap();
    let (ranges, tail) = lsmvault::lsm::log::sequence_ranges(&cut, Some(7)).unwrap();
    assert!(tail.is_clean());
    assert_eq!(ranges.last().unwrap().first_sequence, 45);
}

/// A missing bucket (exit 39) and a server that is down (exit 38, within
/// seconds with few retries) are named: location, bucket, server, status.
#[test]
fn s3_missing_bucket_and_server_down_are_named() {
    let Some(mut moto) = Moto::start() else {
        return;
    };
    let missing = moto.location("no-such-bucket", "repo");
    for args in [&["init", "--no-encryption"][..], &["snapshots"][..]] {
        let output = lsmvault_s3(&missing, None, args);
        assert_fails(
            &output,
            39,
            &["bucket no-such-bucket", "NoSuchBucket", "hint:"],
        );
    }
    let repo = moto.fresh_location();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    moto.kill();
    let started = Instant::now();
    let output = lsmvault_s3(&repo, None, &["snapshots"]);
    assert_fails(&output, 38, &[&moto.endpoint(), "no answer", "hint:"]);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Nothing secret is shown: the test credentials never appear.
    assert!(!String::from_utf8_lossy(&output.stderr).contains("lsmvault-test-secret"));
}

/// A malformed S3 location is a bad argument (exit 22); credentials in it
/// are refused without being repeated.
#[test]
fn s3_malformed_locations_are_invalid_arguments() {
    let output = lsmvault_s3(
        "s3:http://key:hunter2@127.0.0.1:1/bucket",
        None,
        &["snapshots"],
    );
    assert_fails(&output, 22, &["AWS_ACCESS_KEY_ID"]);
    assert!(!String::from_utf8_lossy(&output.stderr).contains("hunter2"));
    let output = lsmvault_s3("s3://Not_A_Bucket/x", None, &["init", "--no-encryption"]);
    assert_fails(&output, 22, &["not a valid bucket name"]);
}

/// `init` refuses a server that ignores `If-None-Match: *` (a proxy strips
/// the header on the way to moto), exit 37, and leaves no repository.
#[test]
fn s3_init_refuses_a_server_without_conditional_writes() {
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket();
    let proxy = Proxy::start(moto.port(), true);
    let repo = location(&proxy.endpoint(), &bucket, "repo");
    let output = lsmvault_s3(&repo, None, &["init", "--no-encryption"]);
    assert_fails(&output, 37, &["conditional writes", &repo, "hint:"]);
    // Through the server itself: no repository there, and init works.
    let direct = moto.location(&bucket, "repo");
    assert_fails(&lsmvault_s3(&direct, None, &["snapshots"]), 10, &[]);
    lsmvault_s3_ok(&direct, None, &["init", "--no-encryption"]);
}

/// The attack: the server goes away in the middle of a backup. Killed for
/// real, moto loses its (in-memory) data, so the repository's consistency
/// is checked through a proxy that cuts every connection while moto keeps
/// running (as a real S3 server restarting keeps its objects): the backup
/// fails cleanly naming the endpoint (exit 38), the repository verifies
/// clean with only the earlier snapshot, and the next backup succeeds and
/// restores. Then moto itself is killed mid-backup: same clean failure.
#[test]
fn backup_fails_cleanly_when_moto_is_killed_mid_backup() {
    let Some(mut moto) = Moto::start() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let source = seeded_source(work.path(), "source", &[("small", 7, 1000)]);
    let bucket = moto.bucket();
    let mut proxy = Proxy::start(moto.port(), false);
    let repo = location(&proxy.endpoint(), &bucket, "repo");
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let first = json(&repo, None, &["backup", path(&source)]);
    // Enough new data (incompressible) for several packs and seconds of upload.
    for file in 0..6 {
        fs::write(
            source.join(format!("big-{file}")),
            seeded_bytes(100 + file, 16 << 20),
        )
        .unwrap();
    }
    // Cut once 20 MiB (more than one pack) went up: mid-backup, on any machine.
    let child = spawn_backup(&repo, &source);
    proxy.wait_for_upload(20 << 20);
    proxy.cut();
    let output = child.wait_with_output().unwrap();
    assert_fails(
        &output,
        38,
        &[&proxy.endpoint(), &format!("bucket {bucket}")],
    );
    proxy.resume();
    let snapshots = json(&repo, None, &["snapshots"]);
    assert_eq!(snapshots.as_array().unwrap().len(), 1, "{snapshots:#}");
    assert_eq!(snapshots[0]["id"], first["id"]);
    assert_verifies_clean(&repo, None);
    lsmvault_s3_ok(&repo, None, &["unlock"]);
    json(&repo, None, &["backup", path(&source)]);
    let target = work.path().join("target");
    restore_latest(&repo, None, &target);
    assert_same_tree(&source, &target);
    lsmvault_s3_ok(&repo, None, &["prune"]);
    let report = assert_verifies_clean(&repo, None);
    assert!(
        report["unindexed_packs"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{report:#}"
    );

    // moto itself killed mid-backup (its data is lost with it).
    let proxy = Proxy::start(moto.port(), false);
    let direct = location(&proxy.endpoint(), &moto.bucket(), "repo");
    lsmvault_s3_ok(&direct, None, &["init", "--no-encryption"]);
    let child = spawn_backup(&direct, &source);
    proxy.wait_for_upload(20 << 20);
    moto.kill();
    let output = child.wait_with_output().unwrap();
    assert_fails(&output, 38, &[&proxy.endpoint(), "hint:"]);
    moto.restart();
    let again = moto.fresh_location();
    lsmvault_s3_ok(&again, None, &["init", "--no-encryption"]);
    json(&again, None, &["backup", path(&source)]);
}

/// Four processes back up four different sources, which share one file,
/// into one S3 repository at once; then prune: every snapshot verifies and
/// restores, and the shared file is stored once.
#[test]
fn s3_four_clients_back_up_at_once_and_share_blobs_after_prune() {
    let Some((_moto, repo, work)) = moto_with_repository() else {
        return;
    };
    let shared = seeded_bytes(4242, 8 << 20);
    let sources: Vec<_> = (0..4u64)
        .map(|client| {
            let source = work.path().join(format!("db-{client}"));
            fs::create_dir_all(&source).unwrap();
            fs::write(source.join("shared.sst"), &shared).unwrap();
            fs::write(source.join("own.sst"), seeded_bytes(client + 1, 2 << 20)).unwrap();
            source
        })
        .collect();
    let children: Vec<_> = sources
        .iter()
        .map(|source| spawn_backup(&repo, source))
        .collect();
    for child in children {
        crate::common::assert_success(&child.wait_with_output().unwrap(), "a concurrent backup");
    }
    lsmvault_s3_ok(&repo, None, &["prune"]);
    assert_verifies_clean(&repo, None);
    let snapshots = json(&repo, None, &["snapshots"]);
    assert_eq!(snapshots.as_array().unwrap().len(), 4, "{snapshots:#}");
    for snapshot in snapshots.as_array().unwrap() {
        let id = snapshot["id"].as_str().unwrap();
        let target = work.path().join(format!("restore-{id}"));
        lsmvault_s3_ok(&repo, None, &["restore", id, "--target", path(&target)]);
        let source = Path::new(snapshot["snapshot"]["source"].as_str().unwrap());
        assert_same_tree(source, &target);
    }
    // 8 MiB shared + 4 × 2 MiB own, incompressible: stored once, not 4 times.
    let stored: u64 = lsmvault::backend::Backend::list(
        &Moto::backend(&repo),
        lsmvault::backend::ObjectKind::Pack,
    )
    .unwrap()
    .iter()
    .map(|pack| pack.size)
    .sum();
    assert!(
        stored < 18 << 20,
        "{stored} bytes of packs for 16 MiB of data"
    );
    assert!(stored >= 16 << 20, "{stored}");
}

/// The client killed (SIGKILL) in the middle of its uploads: S3 publishes
/// whole objects only, so the repository verifies clean, the dead client's
/// lock is stale (its pid is gone) and the next backup completes.
#[test]
fn backup_killed_mid_upload_leaves_the_s3_repository_consistent() {
    let Some(moto) = Moto::start() else { return };
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(&source).unwrap();
    for file in 0..4 {
        fs::write(
            source.join(format!("big-{file}")),
            seeded_bytes(300 + file, 16 << 20),
        )
        .unwrap();
    }
    let proxy = Proxy::start(moto.port(), false);
    let repo = location(&proxy.endpoint(), &moto.bucket(), "repo");
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let mut child = lsmvault_s3_command(&repo, None, &["backup", path(&source)])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    proxy.wait_for_upload(20 << 20);
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(json(&repo, None, &["snapshots"])
        .as_array()
        .unwrap()
        .is_empty());
    assert_verifies_clean(&repo, None);
    json(&repo, None, &["backup", path(&source)]);
    lsmvault_s3_ok(&repo, None, &["prune"]);
    let target = work.path().join("target");
    restore_latest(&repo, None, &target);
    assert_same_tree(&source, &target);
}

/// `copy` local → S3 → local: each hop restores byte for byte, and a second
/// copy over the same hop transfers nothing.
#[test]
fn copy_local_to_s3_and_back_transfers_only_what_is_missing() {
    let Some(moto) = Moto::start() else { return };
    let s3 = moto.fresh_location();
    let work = tempfile::tempdir().unwrap();
    let source = seeded_source(
        work.path(),
        "source",
        &[("000007.sst", 7, 3 << 20), ("sub/000008.log", 8, 200_000)],
    );
    let local = work.path().join("local");
    let back = work.path().join("back");
    for repo in [path(&local), path(&back), s3.as_str()] {
        lsmvault_s3_ok(repo, None, &["init", "--no-encryption"]);
    }
    lsmvault_s3_ok(path(&local), None, &["backup", path(&source)]);
    for (hop, (from, to)) in [(path(&local), s3.as_str()), (s3.as_str(), path(&back))]
        .into_iter()
        .enumerate()
    {
        let first = json(to, None, &["copy", "--from", from]);
        assert_eq!(first["copied"].as_array().unwrap().len(), 1, "{first:#}");
        assert!(
            first["bytes_copied"].as_u64().unwrap() > 3 << 20,
            "{first:#}"
        );
        let target = work.path().join(format!("restored-{hop}"));
        restore_latest(to, None, &target);
        assert_same_tree(&source, &target);
        let again = json(to, None, &["copy", "--from", from]);
        assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again:#}");
        for field in ["blobs_copied", "bytes_copied", "packs_written"] {
            assert_eq!(again[field], 0, "{field}: {again:#}");
        }
    }
}

/// A server failing one request in ten with 500 (issue 11's faults): every
/// command completes through the retries, or fails naming the storage
/// (exit 38); whatever happened, the repository read directly afterwards
/// verifies clean and every snapshot restores.
#[test]
fn one_request_in_ten_answered_500_never_corrupts_the_repository() {
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket();
    let proxy = crate::common::failing_proxy::FailingProxy::start(moto.port(), 10);
    let flaky = location(&proxy.endpoint(), &bucket, "repo");
    let direct = moto.location(&bucket, "repo");
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(&source).unwrap();
    let run = |args: &[&str]| {
        let output = lsmvault_s3_command(&flaky, None, args)
            .env("LSMVAULT_S3_RETRIES", "10")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        match output.status.code() {
            Some(0) => true,
            Some(38) => {
                assert!(stderr.contains(&bucket), "{stderr}");
                false
            }
            other => panic!("{args:?} exit {other:?}: {stderr}"),
        }
    };
    assert!(run(&["init", "--no-encryption"]), "init through retries");
    for generation in 0..3u64 {
        for file in 0..4u64 {
            fs::write(
                source.join(format!("{:06}.sst", generation * 10 + file)),
                seeded_bytes(generation * 10 + file, 1 << 20),
            )
            .unwrap();
        }
        let backed_up = run(&["backup", path(&source)]);
        run(&["snapshots"]);
        let target = work.path().join(format!("restored-{generation}"));
        if run(&["restore", "latest", "--target", path(&target)]) && backed_up {
            assert_same_tree(&source, &target);
        }
    }
    run(&["forget", "--keep-last", "2", "--prune"]);
    run(&["verify", "--read-data"]);
    let (requests, failed) = proxy.counts();
    assert!(failed >= 5, "{failed} of {requests} requests failed");
    // Read directly: consistent, and every snapshot restores.
    assert_verifies_clean(&direct, None);
    let snapshots = json(&direct, None, &["snapshots"]);
    for (number, snapshot) in snapshots.as_array().unwrap().iter().enumerate() {
        let id = snapshot["id"].as_str().unwrap();
        let target = work.path().join(format!("direct-{number}"));
        lsmvault_s3_ok(&direct, None, &["restore", id, "--target", path(&target)]);
    }
    eprintln!("{failed} of {requests} requests answered 500");
}
