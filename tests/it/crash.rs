//! Crash safety: `backup` killed at random moments never damages the repository.
//!
//! Iterations: `LSMVAULT_KILL_ITERATIONS` (default 20, the CI size); the loop
//! runs on the shared harness, `common::kill_loop`.

use std::fs;
use std::time::Instant;

use crate::common::kill_loop::*;
use crate::common::*;

#[test]
fn killed_backups_leave_every_earlier_snapshot_restorable() {
    let iterations = kill_iterations(20);
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

    // Kill anywhere from immediately to past an uninterrupted round's end (a
    // round with new data takes a few times longer than this baseline).
    let mut kill_loop = KillLoop::new("backup", 0x9e37_79b9_7f4a_7c15, full_backup_time, 4);
    let mut completed = 2;
    let mut known = vec![first_id.clone()];
    for iteration in 0..iterations {
        // New content each round, so every backup has packs to write.
        fs::write(
            source.join(format!("new-{iteration:04}.sst")),
            seeded_bytes(1000 + iteration, 3_000_000),
        )
        .unwrap();
        let backup = ["backup", "--full", source.to_str().unwrap()];
        let run = kill_loop.run(&mut lsmvault_command(&repo, None, &backup));
        let delay = format!("{run:?}");
        if let Run::Finished(output) = &run {
            assert_success(output, &format!("iteration {iteration}: backup"));
            completed += 1;
        }
        // Structure check after every kill: no snapshot points at missing data.
        let output = lsmvault(&repo, &["--json", "verify"]);
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(
            output.status.success(),
            "iteration {iteration} ({delay}): {report:#}"
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
    kill_loop.finish();

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
}
