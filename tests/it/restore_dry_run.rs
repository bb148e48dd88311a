//! `restore --dry-run` (issue 15): the plan of the real restore, its
//! refusals, and a time estimate from throughputs measured now, without
//! writing anything into the target.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::common::{describe_tree, lsmvault, lsmvault_json, lsmvault_ok, three_pack_fixture};

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
    // then written, whichever is longer.
    let rate = |side: &str| plan[side]["bytes_per_second"].as_f64().unwrap();
    let all = 4_500_000.0 / rate("read").min(rate("write"));
    let serial = 1_500_000.0 / rate("read") + 1_500_000.0 / rate("write");
    let estimated = plan["estimated_seconds"].as_f64().unwrap();
    assert!(
        (estimated - all.max(serial)).abs() < 1e-6 * estimated,
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
