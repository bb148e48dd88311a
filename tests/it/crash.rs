//! Crash safety: `backup` killed at random moments never damages the repository.
//!
//! Iterations: `LSMVAULT_KILL_ITERATIONS` (default 20, the CI size).

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn killed_backups_leave_every_earlier_snapshot_restorable() {
    let iterations: u64 = std::env::var("LSMVAULT_KILL_ITERATIONS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(20);
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("db");
    let repo = work.path().join("repo");
    fs::create_dir(&source).unwrap();
    for index in 0..6 {
        fs::write(
            source.join(format!("{index:06}.sst")),
            seeded_bytes(index + 1, 6_000_000),
        )
        .unwrap();
    }
    let first = lsmvault_json(
        &repo,
        &[
            "backup",
            "--init",
            "--no-encryption",
            source.to_str().unwrap(),
        ],
    );
    // What one round below costs when not interrupted: a full re-read.
    let started = Instant::now();
    lsmvault_ok(&repo, &["backup", "--full", source.to_str().unwrap()]);
    let full_backup_time = started.elapsed();
    let first_id = first["id"].as_str().unwrap().to_string();
    let expected = work.path().join("expected");
    lsmvault_ok(
        &repo,
        &["restore", &first_id, "--target", expected.to_str().unwrap()],
    );

    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut completed = 2;
    let mut killed = 0;
    let mut known = vec![first_id.clone()];
    for iteration in 0..iterations {
        // New content each round, so every backup has packs to write.
        fs::write(
            source.join(format!("new-{iteration:04}.sst")),
            seeded_bytes(1000 + iteration, 3_000_000),
        )
        .unwrap();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // Kill anywhere from immediately to past an uninterrupted round's end (a
        // round with new data takes a few times longer than this baseline).
        let limit = full_backup_time.as_micros() as u64 * 4 + 1;
        let delay = Duration::from_micros(state % limit);
        let mut child = Command::new(binary())
            .args([
                "--repo",
                repo.to_str().unwrap(),
                "backup",
                "--full",
                source.to_str().unwrap(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(
                    status.success(),
                    "iteration {iteration}: backup failed on its own"
                );
                completed += 1;
            }
            None => {
                child.kill().unwrap();
                child.wait().unwrap();
                killed += 1;
            }
        }
        // Structure check after every kill: no snapshot points at missing data.
        let output = lsmvault(&repo, &["--json", "verify"]);
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(
            output.status.success(),
            "iteration {iteration} (killed after {delay:?}): {report:#}"
        );
        // Earlier snapshots are all still there (a kill may also have landed
        // just after a snapshot was committed: then there is one more).
        let snapshots = lsmvault_json(&repo, &["snapshots"]);
        let ids: Vec<String> = snapshots
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["id"].as_str().unwrap().to_string())
            .collect();
        assert!(
            known.iter().all(|id| ids.contains(id)),
            "iteration {iteration}: a snapshot vanished"
        );
        assert!(ids.len() >= completed);
        known = ids;
    }
    assert!(
        killed > 0,
        "no backup was interrupted; the delays are too long"
    );

    // Every byte still checks out, and the first snapshot restores exactly.
    let report = lsmvault_json(&repo, &["verify", "--read-data"]);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let restored = work.path().join("restored");
    lsmvault_ok(
        &repo,
        &["restore", &first_id, "--target", restored.to_str().unwrap()],
    );
    assert_same_tree(&expected, &restored);
    eprintln!("{iterations} iterations: {killed} killed, {completed} completed");
}
