//! `restore --dry-run` (issue 15): the plan of the real restore, its
//! refusals, and a time estimate from throughputs measured now, without
//! writing anything into the target.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{
    chunk_of, describe_tree, lsmvault, lsmvault_json, lsmvault_ok, seeded_bytes, stderr_text,
    three_pack_fixture, write_small_files,
};

/// Every path under `root` with its mtime in nanoseconds (directories included).
fn mtimes(root: &Path) -> Vec<(String, i64, i64)> {
    walkdir::WalkDir::new(root)
        .sort_by_file_name()
        .into_iter()
        .map(|entry| {
            let entry = entry.unwrap();
            let stat = fs::symlink_metadata(entry.path()).unwrap();
            (
                entry.path().display().to_string(),
                stat.mtime(),
                stat.mtime_nsec(),
            )
        })
        .collect()
}

/// The arguments of `restore latest -t TARGET EXTRA...`.
fn restore_latest<'a>(target: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["restore", "latest", "-t", target.to_str().unwrap()];
    args.extend_from_slice(extra);
    args
}

/// What the plan does to each file: `(action, path)`.
fn actions(plan: &serde_json::Value) -> Vec<(String, String)> {
    plan["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| {
            (
                file["action"].as_str().unwrap().to_string(),
                file["path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn restore_dry_run_into_a_new_target_lists_files_and_a_positive_estimate_writing_nothing() {
    let fixture = three_pack_fixture();
    let parent = fixture.root.join("restores");
    fs::create_dir(&parent).unwrap();
    let target = parent.join("not/yet/there");
    let plan = lsmvault_json(&fixture.repo, &restore_latest(&target, &["--dry-run"]));
    assert!(
        !parent.join("not").exists(),
        "the dry run created the target"
    );
    // The write sample went into the nearest existing ancestor, and is gone.
    assert_eq!(
        fs::read_dir(&parent).unwrap().count(),
        0,
        "a sample file was left"
    );
    assert_eq!(plan["target_exists"], false);
    assert_eq!(
        actions(&plan),
        [
            ("write".to_string(), "000001.sst".to_string()),
            ("write".to_string(), "000002.sst".to_string()),
            ("write".to_string(), "000003.sst".to_string()),
        ]
    );
    assert_eq!(plan["bytes_to_write"], 4_500_000);
    assert_eq!(plan["files_to_write"], 3);
    assert!(
        plan["estimated_seconds"].as_f64().unwrap() > 0.0,
        "{plan:#}"
    );
    for side in ["read", "write"] {
        assert!(plan[side]["bytes"].as_u64().unwrap() > 0, "{plan:#}");
        assert!(
            plan[side]["bytes_per_second"].as_f64().unwrap() > 0.0,
            "{plan:#}"
        );
    }
    // The write sample went to the nearest existing ancestor, and is gone.
    assert!(
        plan["write"]["what"].as_str().unwrap().contains("restores"),
        "{plan:#}"
    );
    // All bytes at the slower throughput, or the largest file (1.5 MB) read
    // then written, whichever is longer; plus three files at the measured
    // cost of one, and one sync.
    let rate = |side: &str| plan[side]["bytes_per_second"].as_f64().unwrap();
    let all = 4_500_000.0 / rate("read").min(rate("write"));
    let serial = 1_500_000.0 / rate("read") + 1_500_000.0 / rate("write");
    let per_file = &plan["per_file"];
    assert_eq!(per_file["files"], 64, "{plan:#}");
    let files = 3.0 * per_file["seconds_per_file"].as_f64().unwrap()
        + per_file["sync_seconds"].as_f64().unwrap();
    let estimated = plan["estimated_seconds"].as_f64().unwrap();
    assert!(
        (estimated - (plan["planning_seconds"].as_f64().unwrap() + all.max(serial) + files)).abs()
            < 1e-6 * estimated,
        "{plan:#}"
    );
    let bound = plan["bottleneck"].as_str().unwrap();
    assert_eq!(bound == "largest_file", serial > all, "{plan:#}");

    // Text: the measured figures beside the estimate; -q keeps the plan.
    let text = lsmvault_ok(
        &fixture.repo,
        &[
            "-q",
            "restore",
            "latest",
            "-t",
            target.to_str().unwrap(),
            "--dry-run",
        ],
    );
    for expected in [
        "write",
        "000002.sst",
        "measured read:",
        "measured write:",
        "measured per file:",
        "estimated restore time",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
    assert!(!parent.join("not").exists());
}

#[test]
fn restore_dry_run_refuses_a_non_empty_target_without_delta_and_plans_a_delta_untouched() {
    let fixture = three_pack_fixture();
    let target = fixture.root.join("target");
    lsmvault_ok(
        &fixture.repo,
        &["restore", "latest", "-t", target.to_str().unwrap()],
    );
    // Drift: one file changed, one removed, one extra file and directory.
    fs::write(target.join("000001.sst"), b"changed").unwrap();
    fs::remove_file(target.join("000003.sst")).unwrap();
    fs::write(target.join("extra.log"), b"not in the snapshot").unwrap();
    fs::create_dir(target.join("stray")).unwrap();
    let tree_before = describe_tree(&target);
    let mtimes_before = mtimes(&target);

    // Refused, as the real restore would refuse it.
    let refused = lsmvault(&fixture.repo, &restore_latest(&target, &["--dry-run"]));
    assert_eq!(
        refused.status.code(),
        Some(17),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--delta"));

    let plan = lsmvault_json(
        &fixture.repo,
        &restore_latest(&target, &["--dry-run", "--delta"]),
    );
    assert_eq!(
        actions(&plan),
        [
            ("rewrite".to_string(), "000001.sst".to_string()),
            ("keep".to_string(), "000002.sst".to_string()),
            ("write".to_string(), "000003.sst".to_string()),
        ]
    );
    assert_eq!(plan["removed"], serde_json::json!(["extra.log", "stray"]));
    // The write sample was an unnamed file on the target's file system.
    let measured_in = plan["write"]["what"].as_str().unwrap();
    assert!(
        measured_in.starts_with(target.to_str().unwrap()),
        "{measured_in}"
    );
    assert_eq!(plan["files_kept"], 1);
    assert_eq!(plan["bytes_to_write"], 3_000_000);
    assert!(plan["estimated_seconds"].as_f64().unwrap() > 0.0);
    assert_eq!(describe_tree(&target), tree_before, "the target changed");
    assert!(
        mtimes(&target) == mtimes_before,
        "something was written into the target"
    );
    let leftovers: Vec<_> = fs::read_dir(&fixture.root)
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().contains("dry-run"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // The real delta restore does what the plan said.
    let done = lsmvault_json(&fixture.repo, &restore_latest(&target, &["--delta"]));
    assert_eq!(done["files_kept"], 1);
    assert_eq!(done["entries_removed"], 2);
    assert_eq!(done["bytes_written"], plan["bytes_to_write"]);
}

#[test]
fn restore_dry_run_killed_at_random_points_leaves_nothing_behind() {
    let fixture = three_pack_fixture();
    let target = fixture.root.join("target");
    fs::create_dir(&target).unwrap();
    let before = fs::read_dir(&fixture.root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect::<std::collections::BTreeSet<_>>();
    let rounds = crate::common::iterations_from_env("LSMVAULT_DRY_RUN_KILLS", 6);
    for round in 0..rounds {
        for (target, delta) in [
            (&target, true),
            (&fixture.root.join("absent/deeper"), false),
        ] {
            let extra: &[&str] = if delta {
                &["--dry-run", "--delta"]
            } else {
                &["--dry-run"]
            };
            let args = restore_latest(target, extra);
            let mut child = crate::common::lsmvault_command(&fixture.repo, None, &args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5 + 17 * round % 90));
            let _ = child.kill();
            child.wait().unwrap();
        }
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0, "round {round}");
        let now: std::collections::BTreeSet<_> = fs::read_dir(&fixture.root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(now, before, "round {round}");
    }
    // A stale lock of a killed dry run does not block the next one.
    lsmvault_json(&fixture.repo, &restore_latest(&target, &["--dry-run"]));
}

#[test]
fn restore_dry_run_of_a_snapshot_with_a_damaged_chunk_names_the_damaged_file() {
    let fixture = three_pack_fixture();
    let (pack, offset) = chunk_of(&fixture.repo, "000002.sst");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset + 1000] ^= 0xff;
    fs::write(&pack, bytes).unwrap();
    let target = fixture.root.join("target");

    // The plan is shown (the damaged file marked) and the exit is the real
    // restore's, naming the file.
    let dry = lsmvault(
        &fixture.repo,
        &[
            "--json",
            "restore",
            "latest",
            "-t",
            target.to_str().unwrap(),
            "--dry-run",
        ],
    );
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&dry.stdout)));
    assert_eq!(
        actions(&plan),
        [
            ("write".to_string(), "000001.sst".to_string()),
            ("damaged".to_string(), "000002.sst".to_string()),
            ("write".to_string(), "000003.sst".to_string()),
        ]
    );
    let problem = plan["files"][1]["problem"].as_str().unwrap();
    assert!(problem.contains("chunk 1 of"), "{problem}");
    assert_eq!(plan["files_damaged"], 1, "{plan:#}");
    assert_eq!(plan["files_to_write"], 2, "{plan:#}");
    assert_eq!(plan["bytes_to_write"], 3_000_000, "{plan:#}");
    // The throughput counts the chunks that were read, not the damaged one.
    assert!(plan["read"]["bytes"].as_u64().unwrap() > 0, "{plan:#}");
    // (4.5 MB are the three files' chunks.)
    assert!(
        plan["read"]["bytes"].as_u64().unwrap() < 4_500_000,
        "{plan:#}"
    );
    assert!(!target.exists(), "the dry run created the target");
    let dry_stderr = stderr_text(&dry);
    assert!(dry_stderr.contains("000002.sst"), "{dry_stderr}");

    let text = lsmvault(&fixture.repo, &restore_latest(&target, &["--dry-run"]));
    let shown = String::from_utf8_lossy(&text.stdout);
    assert!(
        shown
            .lines()
            .any(|line| line.starts_with("damaged") && line.contains("000002.sst")),
        "{shown}"
    );

    let real = lsmvault(&fixture.repo, &restore_latest(&target, &[]));
    let real_stderr = stderr_text(&real);
    assert!(real_stderr.contains("000002.sst"), "{real_stderr}");
    assert_ne!(real.status.code(), Some(0));
    assert_eq!(dry.status.code(), real.status.code(), "{dry_stderr}");
    assert_eq!(text.status.code(), real.status.code());
}

/// Backs up `source` into a new plaintext repository `repo`, then returns
/// the dry run's estimate and a real restore's wall time into `target`, an
/// existing empty directory (so the dry run measures the directory the
/// files go to), each the smaller of two rounds.
fn estimate_and_real(repo: &Path, source: &Path, target: &Path) -> (f64, f64) {
    lsmvault_ok(repo, &["init", "--no-encryption"]);
    lsmvault_ok(repo, &["backup", source.to_str().unwrap()]);
    fs::create_dir(target).unwrap();
    let (mut estimate, mut real) = (f64::MAX, f64::MAX);
    for _ in 0..2 {
        let plan = lsmvault_json(repo, &restore_latest(target, &["--dry-run"]));
        estimate = estimate.min(plan["estimated_seconds"].as_f64().unwrap());
        let started = std::time::Instant::now();
        lsmvault_ok(repo, &restore_latest(target, &[]));
        real = real.min(started.elapsed().as_secs_f64());
        fs::remove_dir_all(target).unwrap();
        fs::create_dir(target).unwrap();
    }
    (estimate, real)
}

#[test]
fn restore_dry_run_estimate_counts_per_file_cost_and_stays_within_10x_of_a_real_restore() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path();
    // Many small files: per-file cost (create, metadata, sync) dominates.
    let small = root.join("small");
    write_small_files(&small, 2000, 200, 5);
    // One larger file and a few small ones: bytes dominate.
    let large = root.join("large");
    write_small_files(&large, 20, 200, 6);
    fs::write(large.join("000100.sst"), seeded_bytes(7, 24 << 20)).unwrap();
    for (name, source) in [("small", &small), ("large", &large)] {
        let (estimate, real) = estimate_and_real(
            &root.join(format!("repo-{name}")),
            source,
            &root.join(format!("target-{name}")),
        );
        // The machine is shared (two cores, other builds and a fuzzer): the
        // same restore took 0.9 s, then 3.6 s, seconds apart. Each figure is
        // the faster of two rounds, which drops most such spikes. The
        // estimate also runs low by itself here: its per-file samples are
        // unnamed (so a killed dry run leaves nothing), and a named file's
        // directory entry, in a directory filling up, is not measured; on
        // this disk that put 2000 small files 3.3x, 4.7x, and (with the
        // whole suite running beside it) 6.5x low. 10x either way still
        // catches what this test is about, an estimate that leaves out a
        // whole cost (per file: 0.04 s estimated against 1.8 s real, 45x);
        // it does not check the calibration, which this machine cannot.
        let factor = estimate.max(real) / estimate.min(real).max(1e-9);
        assert!(
            factor <= 10.0,
            "{name}: estimated {estimate:.3} s, real restore {real:.3} s ({factor:.1}x)"
        );
    }
}

#[test]
fn restore_dry_run_marks_every_file_that_shares_a_damaged_chunk() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = (work.path().join("repo"), work.path().join("db"));
    fs::create_dir(&source).unwrap();
    // Two identical files share their chunks; a third has its own.
    let shared = seeded_bytes(11, 300_000);
    fs::write(source.join("a.sst"), &shared).unwrap();
    fs::write(source.join("b.sst"), &shared).unwrap();
    fs::write(source.join("c.sst"), seeded_bytes(12, 300_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    let (pack, offset) = chunk_of(&repo, "a.sst");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset + 100] ^= 0xff;
    fs::write(&pack, bytes).unwrap();

    let target = work.path().join("target");
    let dry = lsmvault(
        &repo,
        &[
            "--json",
            "restore",
            "latest",
            "-t",
            target.to_str().unwrap(),
            "--dry-run",
        ],
    );
    let plan: serde_json::Value = serde_json::from_slice(&dry.stdout).unwrap();
    assert_eq!(
        actions(&plan),
        [
            ("damaged".to_string(), "a.sst".to_string()),
            ("damaged".to_string(), "b.sst".to_string()),
            ("write".to_string(), "c.sst".to_string()),
        ]
    );
    // The second names the first, whose error it shares.
    let second = plan["files"][1]["problem"].as_str().unwrap();
    assert!(
        second.contains("b.sst") && second.contains("a.sst"),
        "{second}"
    );
    assert_eq!(plan["files_damaged"], 2);
    let real = lsmvault(&repo, &restore_latest(&target, &[]));
    assert_eq!(
        dry.status.code(),
        real.status.code(),
        "{}",
        stderr_text(&dry)
    );
    for output in [&dry, &real] {
        let stderr = stderr_text(output);
        assert!(
            stderr.contains("2 file(s) could not be restored"),
            "{stderr}"
        );
        assert!(stderr.contains("a.sst"), "{stderr}");
    }
}
