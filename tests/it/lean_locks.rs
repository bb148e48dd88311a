//! Issue 11, last part (R1): locks judged by the storage's clock, and a
//! commit check that costs nothing while it cannot matter
//! (`docs/maintenance.md`, "Clock skew between nodes" and "The commit check
//! is cheap while the lock is young, on object storage").
//!
//! - a lock whose holder's clock is hours slow stays live while its object
//!   is fresh; one whose object is old is stale whatever it says;
//! - an unchanged backup over S3 with a warm cache takes its lock in three
//!   requests (write, list, delete; its own lock is never read back) and
//!   lists the index once (`LSMVAULT_REQUEST_STATS`);
//! - a prune paused past the window stops before deleting;
//! - prune racing backups (`LSMVAULT_LEAN_LOCKS_SECONDS`, default 6) never
//!   leaves a snapshot referencing a deleted pack.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use lsmvault::backend::{Backend, ObjectKind};
use lsmvault::repo::lock::{LockClock, MAY_HAVE_LAPSED_AFTER, STALE_AFTER};
use lsmvault::{Error, ErrorCode, NoProgress, Progress, PruneOptions, Repository};

use crate::common::s3::{lsmvault_s3, lsmvault_s3_command, lsmvault_s3_ok, Moto};
use crate::common::*;

/// Writes a lock object of a holder on another host, as that holder's clock
/// says (`refreshed`), into a local repository.
fn write_foreign_lock(repo: &Path, name: &str, kind: &str, refreshed: SystemTime) {
    let time = humantime::format_rfc3339_seconds(refreshed).to_string();
    let lock = serde_json::json!({
        "version": 1, "kind": kind, "host": "elsewhere", "pid": 4242,
        "purpose": "backup", "created": time, "refreshed": time,
    });
    fs::write(
        repo.join("locks").join(name),
        serde_json::to_vec_pretty(&lock).unwrap(),
    )
    .unwrap();
}

/// Makes the storage say the lock object `name` was written `age` ago.
fn backdate(repo: &Path, name: &str, age: Duration) {
    let time = filetime::FileTime::from_system_time(SystemTime::now() - age);
    filetime::set_file_mtime(repo.join("locks").join(name), time).unwrap();
}

fn lock_name(seed: u8) -> String {
    format!("{seed:02x}").repeat(32)
}

/// A repository with one snapshot of a small source.
fn repository_with_a_snapshot(work: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let repo = work.join("repo");
    let source = work.join("source");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 300_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    (repo, source)
}

#[test]
fn a_slow_clock_holders_lock_is_live_while_its_object_is_fresh_and_stale_once_old() {
    let work = tempfile::tempdir().unwrap();
    let (repo, _source) = repository_with_a_snapshot(work.path());
    let slow = lock_name(1);
    // Its holder's clock is two hours behind, but it wrote its object now.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    write_foreign_lock(&repo, &slow, "shared", two_hours_ago);
    let refused = lsmvault(&repo, &["prune"]);
    assert_eq!(
        refused.status.code(),
        Some(ErrorCode::RepositoryLocked.exit_code()),
        "{refused:?}"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("shared lock of backup (pid 4242 on elsewhere"),
        "{stderr}"
    );
    assert_eq!(lsmvault_json(&repo, &["unlock"])["removed"], 0);
    // 29 minutes old on the storage's clock: still live.
    backdate(&repo, &slow, STALE_AFTER - Duration::from_secs(60));
    assert_eq!(
        lsmvault(&repo, &["prune"]).status.code(),
        Some(ErrorCode::RepositoryLocked.exit_code())
    );
    // 31 minutes: stale, however recent its holder's clock says it is.
    backdate(&repo, &slow, STALE_AFTER + Duration::from_secs(60));
    let fast = lock_name(2);
    let in_an_hour = SystemTime::now() + Duration::from_secs(3600);
    write_foreign_lock(&repo, &fast, "exclusive", in_an_hour);
    backdate(&repo, &fast, STALE_AFTER + Duration::from_secs(60));
    lsmvault_ok(&repo, &["prune"]);
    lsmvault_ok(
        &repo,
        &["backup", work.path().join("source").to_str().unwrap()],
    );
    assert_eq!(lsmvault_json(&repo, &["unlock"])["removed"], 2);
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0);
}

/// The request counts a command printed on stderr.
fn request_stats(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.starts_with("{\"request_stats\""))
        .unwrap_or_else(|| panic!("no request stats in stderr:\n{stderr}"));
    serde_json::from_str::<serde_json::Value>(line).unwrap()["request_stats"].clone()
}

/// How many lock objects the repository holds.
fn lock_objects(backend: &dyn Backend) -> usize {
    backend.list(ObjectKind::Lock).unwrap().len()
}

fn count(stats: &serde_json::Value, kind: &str, method: &str) -> u64 {
    stats["by_kind"][kind][method].as_u64().unwrap_or(0)
}

#[test]
fn an_unchanged_backup_over_s3_takes_its_lock_in_three_requests_and_lists_the_index_once() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("a.sst"), seeded_bytes(1, 300_000)).unwrap();
    fs::write(source.join("b.sst"), seeded_bytes(2, 200_000)).unwrap();
    let cache = work.path().join("cache");
    let backup = [
        "--cache-dir",
        cache.to_str().unwrap(),
        "backup",
        "-q",
        source.to_str().unwrap(),
    ];
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    lsmvault_s3_ok(&repo, None, &backup);
    lsmvault_s3_ok(&repo, None, &backup);
    let output = lsmvault_s3_command(&repo, None, &backup)
        .env("LSMVAULT_REQUEST_STATS", "1")
        .env_remove("LSMVAULT_CACHE_DIR")
        .output()
        .unwrap();
    assert_success(&output, "the unchanged backup");
    let stats = request_stats(&output);
    let locks = ["write_if_absent", "list", "read", "delete"].map(|m| count(&stats, "locks", m));
    assert_eq!(locks, [1, 1, 0, 1], "write, list, read, delete: {stats}");
    assert_eq!(count(&stats, "index", "list"), 1, "{stats}");
    assert_eq!(count(&stats, "index", "read"), 0, "{stats}");
    assert_eq!(count(&stats, "snapshots", "write_if_absent"), 1, "{stats}");
    eprintln!("unchanged backup over S3, warm cache: {stats}");
    // The lock is gone and the snapshots are all there.
    assert_eq!(lock_objects(&Moto::backend(&repo)), 0);
    let listed = lsmvault_s3_ok(&repo, None, &["--json", "snapshots"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);
}

/// What the storage-side checks cost over S3 (review findings F2/F3): a
/// backup that wrote data lists the index files once more before it
/// commits (the storage time of its index file), and a prune checks its
/// lease three times (refresh, listing, delete each).
#[test]
fn over_s3_a_backup_with_new_data_lists_the_index_twice_and_prune_checks_its_lease_three_times() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("a.sst"), seeded_bytes(1, 300_000)).unwrap();
    let cache = work.path().join("cache");
    let cache = cache.to_str().unwrap();
    let backup = [
        "--cache-dir",
        cache,
        "backup",
        "-q",
        source.to_str().unwrap(),
    ];
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    lsmvault_s3_ok(&repo, None, &backup);
    // New data, and the old file's data no longer in the newest snapshot.
    fs::remove_file(source.join("a.sst")).unwrap();
    fs::write(source.join("b.sst"), seeded_bytes(2, 200_000)).unwrap();
    let stats_of = |args: &[&str]| {
        let output = lsmvault_s3_command(&repo, None, args)
            .env("LSMVAULT_REQUEST_STATS", "1")
            .env_remove("LSMVAULT_CACHE_DIR")
            .output()
            .unwrap();
        assert_success(&output, &args.join(" "));
        request_stats(&output)
    };
    let stats = stats_of(&backup);
    eprintln!("backup with new data over S3, warm cache: {stats}");
    let locks = ["write_if_absent", "list", "read", "delete"].map(|m| count(&stats, "locks", m));
    assert_eq!(locks, [1, 1, 0, 1], "{stats}");
    assert_eq!(count(&stats, "index", "list"), 2, "{stats}");
    lsmvault_s3_ok(&repo, None, &["forget", "--keep-last", "1"]);
    let stats = stats_of(&["--cache-dir", cache, "prune"]);
    eprintln!("prune over S3: {stats}");
    let locks = ["write_if_absent", "list", "delete"].map(|m| count(&stats, "locks", m));
    assert_eq!(locks, [4, 4, 4], "taking, 3 lease checks, release: {stats}");
    lsmvault_s3_ok(&repo, None, &["verify", "--read-data"]);
}

/// Pauses the prune's lock clock past the window once its repacking starts
/// (after its plan, before any deletion), as a stopped process would be.
struct PauseAtRepack {
    clock: LockClock,
    paused: AtomicBool,
}

impl Progress for PauseAtRepack {
    fn start(&self, phase: &str, _total_bytes: u64) {
        if phase == "repacking" && !self.paused.swap(true, Ordering::SeqCst) {
            self.clock
                .simulate_pause(MAY_HAVE_LAPSED_AFTER + Duration::from_secs(60));
        }
    }
}

#[test]
fn a_prune_paused_past_the_window_stops_before_deleting_anything() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = repository_with_a_snapshot(work.path());
    fs::write(source.join("000002.sst"), seeded_bytes(2, 300_000)).unwrap();
    fs::remove_file(source.join("000001.sst")).unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    lsmvault_ok(&repo, &["forget", "--keep-last", "1"]);
    let packs_before = files_under(&repo.join("data")).len();
    let repository = Repository::open_local(&repo).unwrap();
    let hook = PauseAtRepack {
        clock: repository.lock_clock().clone(),
        paused: AtomicBool::new(false),
    };
    let error = repository
        .prune(&PruneOptions::default(), &hook)
        .unwrap_err();
    assert!(hook.paused.load(Ordering::SeqCst), "prune had work to do");
    assert!(matches!(error, Error::LockExpired { .. }), "{error}");
    assert_eq!(error.code(), ErrorCode::RepositoryLocked);
    drop(repository);
    // Nothing was deleted; the repository is whole, and a prune that is not
    // paused finishes the work.
    assert!(files_under(&repo.join("data")).len() >= packs_before);
    let report = lsmvault_json(&repo, &["verify", "--read-data"]);
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let pruned = Repository::open_local(&repo)
        .unwrap()
        .prune(&PruneOptions::default(), &NoProgress)
        .unwrap();
    assert!(pruned.packs_deleted > 0, "{pruned:?}");
    let target = work.path().join("restored");
    lsmvault_ok(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&source, &target);
}

/// Exit code 0 or 23 (a lock conflict), nothing else.
fn succeeded_or_locked(output: &Output, what: &str) -> bool {
    if output.status.success() {
        return true;
    }
    assert_eq!(
        output.status.code(),
        Some(ErrorCode::RepositoryLocked.exit_code()),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

/// Backups (whose commit check is skipped: their locks are young) and
/// `forget --prune` race for `LSMVAULT_LEAN_LOCKS_SECONDS` through `run`
/// (`lsmvault ARGS` on one repository); every command ends with 0 or 23, and
/// the repository verifies clean with its data read: no snapshot references a
/// pack a prune deleted. Returns how many backups and prunes succeeded.
fn race_prune_and_backups(
    work: &Path,
    source: &Path,
    run: &(dyn Fn(&[&str]) -> Output + Sync),
) -> (u64, u64) {
    let seconds: u64 = std::env::var("LSMVAULT_LEAN_LOCKS_SECONDS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(6);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut backups, mut prunes) = (0, 0);
    std::thread::scope(|scope| {
        let backing_up = scope.spawn(|| {
            let mut round = 0u64;
            let mut done = 0;
            while Instant::now() < deadline {
                round += 1;
                // A new file each round, the previous one gone: every prune
                // has packs to delete.
                let _ = fs::remove_file(source.join(format!("{:06}.sst", round + 99)));
                let name = format!("{:06}.sst", round + 100);
                fs::write(source.join(name), seeded_bytes(round + 10, 200_000)).unwrap();
                let output = run(&["backup", "-q", source.to_str().unwrap()]);
                if succeeded_or_locked(&output, "backup") {
                    done += 1;
                }
            }
            done
        });
        let mut pruned = 0;
        while Instant::now() < deadline {
            let output = run(&["forget", "--keep-last", "1", "--prune", "-q"]);
            if succeeded_or_locked(&output, "forget --prune") {
                pruned += 1;
            }
        }
        prunes = pruned;
        backups = backing_up.join().unwrap();
    });
    eprintln!("{seconds} s: {backups} backups and {prunes} forget --prune succeeded");
    assert!(
        backups > 0 && prunes > 0,
        "{backups} backups, {prunes} prunes"
    );
    let verified = run(&["--json", "verify", "--read-data"]);
    let report: serde_json::Value =
        serde_json::from_str(&assert_success(&verified, "verify --read-data")).unwrap();
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let target = work.join("restored");
    assert_success(
        &run(&["restore", "latest", "--target", target.to_str().unwrap()]),
        "restore latest",
    );
    (backups, prunes)
}

#[test]
fn prune_racing_backups_never_leaves_a_snapshot_referencing_a_deleted_pack() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = repository_with_a_snapshot(work.path());
    race_prune_and_backups(work.path(), &source, &|args| lsmvault(&repo, args));
}

/// The same race over S3 (moto): locks judged by `Last-Modified`.
#[test]
fn over_s3_prune_racing_backups_never_leaves_a_snapshot_referencing_a_deleted_pack() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 300_000)).unwrap();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    race_prune_and_backups(work.path(), &source, &|args| lsmvault_s3(&repo, None, args));
}

/// Prune and unlock over S3 judge a lock by S3's `Last-Modified`: a lock
/// whose holder's clock is two hours slow, written just now, holds off a
/// prune; `unlock` leaves it (and its own probe gone).
#[test]
fn over_s3_a_fresh_lock_object_holds_off_prune_whatever_its_holder_clock_says() {
    let Some(moto) = Moto::start() else { return };
    let repo = moto.fresh_location();
    lsmvault_s3_ok(&repo, None, &["init", "--no-encryption"]);
    let backend = Moto::backend(&repo);
    let time = humantime::format_rfc3339_seconds(SystemTime::now() - Duration::from_secs(7200));
    let lock = serde_json::json!({
        "version": 1, "kind": "shared", "host": "elsewhere", "pid": 4242,
        "purpose": "backup", "created": time.to_string(), "refreshed": time.to_string(),
    });
    backend
        .write_if_absent(
            ObjectKind::Lock,
            &lock_name(3),
            &serde_json::to_vec(&lock).unwrap(),
        )
        .unwrap();
    let refused = lsmvault_s3(&repo, None, &["prune"]);
    assert_eq!(
        refused.status.code(),
        Some(ErrorCode::RepositoryLocked.exit_code()),
        "{refused:?}"
    );
    let unlocked = lsmvault_s3_ok(&repo, None, &["--json", "unlock"]);
    let unlocked: serde_json::Value = serde_json::from_str(&unlocked).unwrap();
    assert_eq!(unlocked["removed"], 0, "{unlocked}");
    assert_eq!(
        lock_objects(&backend),
        1,
        "the probe is gone, the lock stays"
    );
}
