//! `--limit-upload` / `--limit-download`: the global flags slow a real
//! backup and restore down to the rate (checked with a lower bound only: a
//! slow machine may take longer), and a bad rate is refused clearly.

use std::fs;
use std::time::Instant;

use crate::common::*;

const MIB: usize = 1024 * 1024;

#[test]
fn backup_and_restore_keep_to_the_limits() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    // 8 MiB that neither compresses nor deduplicates.
    fs::write(source.join("000007.sst"), seeded_bytes(11, 8 * MIB)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);

    let started = Instant::now();
    lsmvault_ok(
        &repo,
        &["--limit-upload", "4MiB", "backup", source.to_str().unwrap()],
    );
    let backup_seconds = started.elapsed().as_secs_f64();
    // 8 MiB at 4 MiB/s, less the bucket's 1 MiB burst: at least 1.75 s.
    assert!(backup_seconds >= 1.5, "backup took {backup_seconds:.2}s");

    let target = work.path().join("restored");
    let started = Instant::now();
    lsmvault_ok(
        &repo,
        &[
            "--limit-download",
            "4MiB",
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let restore_seconds = started.elapsed().as_secs_f64();
    assert!(restore_seconds >= 1.5, "restore took {restore_seconds:.2}s");
    assert_same_tree(&source, &target);
}

#[test]
fn a_bad_rate_is_refused_before_anything_runs() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    for bad in ["fast", "0", "1.5MiB", "10XB"] {
        let output = lsmvault(&repo, &["--limit-upload", bad, "init", "--no-encryption"]);
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--limit-upload"), "{bad}: {stderr}");
        assert!(stderr.contains("e.g. 50MiB"), "{bad}: {stderr}");
        assert!(!repo.exists(), "nothing is created on a bad flag");
    }
}
