//! Commands running at the same time on one repository: two backup loops of
//! different sources, a `forget --keep-last 2 --prune` loop and a restore +
//! compare loop, for `LSMVAULT_CONCURRENCY_SECONDS` (default 45; the long run
//! is 600). Every command succeeds or fails with a lock error (exit 23); none
//! runs longer than the watchdog allows (a deadlock); at the end every
//! surviving snapshot restores byte-exact and `verify --read-data` is clean.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lsmvault::ErrorCode;

use crate::common::kill_loop::*;
use crate::common::*;

/// A command running longer than this is taken for a deadlock.
const WATCHDOG: Duration = Duration::from_secs(120);

/// Runs `command`, killing it and failing the test when it outlives [`WATCHDOG`].
fn run_with_watchdog(command: &mut Command, what: &str) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting lsmvault");
    let started = Instant::now();
    while child.try_wait().expect("polling lsmvault").is_none() {
        if started.elapsed() > WATCHDOG {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran for more than {WATCHDOG:?}: a deadlock");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.wait_with_output().expect("collecting output")
}

/// How often each kind of command succeeded and failed with a lock error.
#[derive(Debug, Default)]
struct Tally {
    succeeded: u64,
    locked: u64,
    /// Restores of a snapshot a forget removed between listing and restoring.
    vanished: u64,
}

/// Records `output` of `what` in `tally`; panics unless it succeeded or
/// failed with "locked" (or, when `vanished_ok`, "snapshot not found").
fn record(tally: &Mutex<Tally>, output: &Output, what: &str, vanished_ok: bool) -> bool {
    let code = output.status.code();
    let mut tally = tally.lock().unwrap();
    if output.status.success() {
        tally.succeeded += 1;
        return true;
    }
    if code == Some(ErrorCode::RepositoryLocked.exit_code()) {
        tally.locked += 1;
        return false;
    }
    if vanished_ok && code == Some(ErrorCode::SnapshotNotFound.exit_code()) {
        tally.vanished += 1;
        return false;
    }
    panic!(
        "{what} failed with {code:?}, not with a lock error\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Changes `source` for the next backup of loop `name`: one file replaced
/// (new content each time), one grown, one that stays.
fn change_source(source: &Path, round: u64, seed: u64) {
    fs::create_dir_all(source.join("sub")).unwrap();
    let stable = source.join("000001.sst");
    if !stable.exists() {
        fs::write(&stable, seeded_bytes(seed, 800_000)).unwrap();
    }
    let _ = fs::remove_file(source.join(format!("{:06}.sst", 100 + round.saturating_sub(1))));
    fs::write(
        source.join(format!("{:06}.sst", 100 + round)),
        seeded_bytes(seed * 1000 + round, 400_000),
    )
    .unwrap();
    fs::write(
        source.join("sub/LOG"),
        seeded_bytes(seed, 10_000 + 5_000 * (round as usize % 50)),
    )
    .unwrap();
}

#[test]
fn backups_forget_prune_and_restores_at_once_lose_nothing_and_never_deadlock() {
    let seconds: u64 = std::env::var("LSMVAULT_CONCURRENCY_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(45);
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let references_root = work.path().join("references");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    // Snapshot id → a copy of what it saved.
    let references: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let tallies: [Mutex<Tally>; 4] = Default::default();
    let [backups, forgets, restores, listings] = &tallies;
    let deadline = Instant::now() + Duration::from_secs(seconds);

    let backup_loop = |name: &str, seed: u64| {
        let source = work.path().join(name);
        let mut random = SeededRandom::new(seed);
        let mut round = 0;
        while Instant::now() < deadline {
            round += 1;
            change_source(&source, round, seed);
            let output = run_with_watchdog(
                &mut lsmvault_command(&repo, None, &["--json", "backup", source.to_str().unwrap()]),
                "backup",
            );
            if record(backups, &output, "backup", false) {
                let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
                let id = report["id"].as_str().unwrap().to_string();
                let reference = references_root.join(&id);
                fs::create_dir_all(&references_root).unwrap();
                copy_tree(&source, &reference);
                references.lock().unwrap().insert(id, reference);
            }
            // Pauses leave the exclusive lock of forget --prune a chance.
            std::thread::sleep(Duration::from_millis(50 + random.below(300)));
        }
    };
    std::thread::scope(|scope| {
        scope.spawn(|| backup_loop("source-a", 1));
        scope.spawn(|| backup_loop("source-b", 2));
        scope.spawn(|| {
            let mut random = SeededRandom::new(3);
            while Instant::now() < deadline {
                let output = run_with_watchdog(
                    &mut lsmvault_command(&repo, None, &["forget", "--keep-last", "2", "--prune"]),
                    "forget --prune",
                );
                record(forgets, &output, "forget --prune", false);
                std::thread::sleep(Duration::from_millis(100 + random.below(400)));
            }
        });
        scope.spawn(|| {
            let mut random = SeededRandom::new(4);
            let target = work.path().join("restore-loop");
            while Instant::now() < deadline {
                // Among the snapshots listed now (a forget may still remove
                // one before its restore starts: counted as vanished).
                let listing = run_with_watchdog(
                    &mut lsmvault_command(&repo, None, &["--json", "snapshots"]),
                    "snapshots",
                );
                if !record(listings, &listing, "snapshots", false) {
                    continue;
                }
                let listing: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
                let known: Vec<(String, PathBuf)> = listing
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(|entry| {
                        let id = entry["id"].as_str().unwrap();
                        let reference = references.lock().unwrap().get(id).cloned()?;
                        Some((id.to_string(), reference))
                    })
                    .collect();
                if known.is_empty() {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                let (id, reference) = &known[random.below(known.len() as u64) as usize];
                let _ = fs::remove_dir_all(&target);
                let output = run_with_watchdog(
                    &mut lsmvault_command(
                        &repo,
                        None,
                        &["restore", id, "--target", target.to_str().unwrap()],
                    ),
                    "restore",
                );
                if record(restores, &output, "restore", true) {
                    assert_same_tree(reference, &target);
                }
                std::thread::sleep(Duration::from_millis(random.below(100)));
            }
        });
    });

    // The survivors: the newest two of each source, each byte-exact.
    lsmvault_ok(&repo, &["forget", "--keep-last", "2", "--prune"]);
    let invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    let listed = invariants.listed_snapshots("end");
    let references = references.into_inner().unwrap();
    for id in &listed {
        let reference = references
            .get(id)
            .unwrap_or_else(|| panic!("snapshot {id} of no successful backup"));
        invariants.assert_restores("end", id, reference);
    }
    assert!(
        listed.len() <= 4 + 2,
        "forget --keep-last 2 left {listed:?}"
    );
    invariants.check_read_data("end");
    let summary = format!(
        "concurrency {seconds} s: backups {:?}, forget --prune {:?}, restores {:?}, listings {:?}, {} snapshots left\n",
        backups.lock().unwrap(),
        forgets.lock().unwrap(),
        restores.lock().unwrap(),
        listings.lock().unwrap(),
        listed.len()
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), summary.as_bytes());
    for (what, tally) in [
        ("backup", backups),
        ("forget --prune", forgets),
        ("restore", restores),
    ] {
        assert!(
            tally.lock().unwrap().succeeded > 0,
            "no {what} succeeded: {summary}"
        );
    }
}
