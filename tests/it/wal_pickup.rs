//! `wal archive --watch` against a database that deletes its WAL files at
//! once (RocksDB's default options): every WAL file is held (hard-linked)
//! the moment it appears, gaps end the watcher with exit 34, `tag` refuses a
//! point `restore --tag` could not reach, and the holding directory stays
//! out of checkpoints and backups.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::*;
use crate::pitr::{fake_database, scan_keys};
use lsmvault::lsm::log::encode_log;
use lsmvault::lsm::write_batch::encode_write_batch;

pub(crate) const HOLD: &str = ".lsmvault-wal-hold";

/// A running `db_bench fillseq` (key i gets sequence i + 1), killed if the
/// test fails first.
struct Writer(Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// db_bench with RocksDB's default WAL options (no `--wal_ttl_seconds`:
/// obsolete WAL files are deleted at once) and a 256 KiB memtable, so the
/// run switches WAL files every ~1750 keys; `extra` adds options.
fn start_writer(db: &Path, keys: u32, bytes_per_second: u32, extra: &[&str]) -> Writer {
    Command::new("db_bench")
        .arg(format!("--db={}", db.display()))
        .args([
            "--benchmarks=fillseq",
            "--value_size=100",
            "--write_buffer_size=262144",
            "--compression_type=none",
        ])
        .arg(format!("--benchmark_write_rate_limit={bytes_per_second}"))
        .arg(format!("--num={keys}"))
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Writer)
        .expect("starting db_bench")
}

/// A running `wal archive --watch`, killed if the test fails first.
pub(crate) struct Watcher {
    child: Option<Child>,
}

impl Watcher {
    pub(crate) fn start(repo: &Path, db: &Path, extra: &[&str]) -> Watcher {
        Watcher::start_every(repo, db, "300ms", extra)
    }

    /// A watcher archiving every `interval`.
    pub(crate) fn start_every(repo: &Path, db: &Path, interval: &str, extra: &[&str]) -> Watcher {
        let mut args = vec!["wal", "archive", "--watch", interval, db.to_str().unwrap()];
        args.extend_from_slice(extra);
        let child = lsmvault_command(repo, None, &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting the watcher");
        Watcher { child: Some(child) }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Sends `signal` (e.g. `-INT`, `-KILL`) and waits for the exit.
    pub(crate) fn stop(mut self, signal: &str) -> Output {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait()
    }

    /// Whether the watcher still runs.
    pub(crate) fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_none())
    }

    /// Waits for the watcher to end on its own (at most `limit`).
    pub(crate) fn wait_at_most(mut self, limit: Duration) -> Output {
        let started = Instant::now();
        while self
            .child
            .as_mut()
            .is_some_and(|child| child.try_wait().unwrap().is_none())
        {
            assert!(started.elapsed() < limit, "the watcher did not end");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.wait()
    }

    fn wait(&mut self) -> Output {
        self.child
            .take()
            .unwrap()
            .wait_with_output()
            .expect("waiting for the watcher")
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until the writer has written: db_bench opens a fillseq database
/// twice (it destroys the first, with its IDENTITY), and writes only to the
/// second, so a non-empty WAL file means the database id is settled.
fn wait_for_writes(db: &Path) {
    for _ in 0..400 {
        let written = fs::read_dir(db).is_ok_and(|entries| {
            entries.flatten().any(|entry| {
                entry.file_name().to_string_lossy().ends_with(".log")
                    && entry.metadata().is_ok_and(|stat| stat.len() > 0)
            })
        });
        if written {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} was not written to", db.display());
}

pub(crate) fn wait_for(path: &Path) {
    for _ in 0..200 {
        if path.exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} did not appear", path.display());
}

/// The repository's id (its `config`): the name of its part of the holding
/// directory.
pub(crate) fn repository_id(repo: &Path) -> String {
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    config["id"].as_str().unwrap().to_string()
}

/// Where the watchers into `repo` hold the WAL files of `db`.
pub(crate) fn held_for(repo: &Path, db: &Path) -> PathBuf {
    db.join(HOLD).join(repository_id(repo))
}

fn wait_for_a_link(hold: &Path) {
    for _ in 0..400 {
        let linked = fs::read_dir(hold).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        });
        if linked {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing was held in {}", hold.display());
}

/// A seed from the clock, printed so a failure can be replayed.
fn seed() -> u64 {
    let seed = std::env::var("WAL_PICKUP_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |elapsed| elapsed.as_nanos() as u64)
        });
    eprintln!("WAL_PICKUP_SEED={seed}");
    seed
}

/// `count` pseudo-random numbers in `low..=high`.
fn random_in(seed: u64, count: usize, low: u64, high: u64) -> Vec<u64> {
    seeded_bytes(seed, count * 8)
        .chunks_exact(8)
        .take(count)
        .map(|bytes| low + u64::from_le_bytes(bytes.try_into().unwrap()) % (high - low + 1))
        .collect()
}

/// Restores sequence `sequence` (or the restore point `tag`) and checks with
/// `ldb scan` that exactly keys 0..sequence are there.
fn restore_and_scan(repo: &Path, work: &Path, sequence: u64, tag: Option<&str>) {
    let target = work.join(format!("restored-{sequence}-{}", tag.unwrap_or("seq")));
    let sequence_text = sequence.to_string();
    let mut args = vec!["restore", "--target", target.to_str().unwrap()];
    match tag {
        Some(tag) => args.extend(["--tag", tag]),
        None => args.extend(["--seq", &sequence_text]),
    }
    let report = lsmvault_json(repo, &args);
    assert_eq!(report["restored_sequence"], sequence, "{report:#}");
    let keys = scan_keys(&target);
    assert_eq!(keys.len() as u64, sequence, "restored {sequence}");
    assert!(keys
        .iter()
        .enumerate()
        .all(|(index, key)| *key == index as u64));
    fs::remove_dir_all(&target).unwrap();
}

/// A live backup of the running writer, frozen with SIGSTOP/SIGCONT;
/// returns the snapshot's sequence number.
fn live_backup(repo: &Path, db: &Path, pid: u32) -> u64 {
    let live = lsmvault_json(
        repo,
        &[
            "backup",
            "--live",
            db.to_str().unwrap(),
            "--freeze-cmd",
            &format!("kill -STOP {pid}"),
            "--thaw-cmd",
            &format!("kill -CONT {pid}"),
        ],
    );
    eprintln!("live backup: {}", live["snapshot"]["database"]);
    live["snapshot"]["database"]["last_sequence"]
        .as_u64()
        .unwrap()
}

#[test]
fn wal_watch_keeps_every_record_with_rocksdb_default_options() {
    if !tools_available(&["db_bench", "ldb"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (db, repo) = (work.path().join("db"), work.path().join("repo"));
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    // 60 000 keys, ~35 WAL files, a few seconds.
    let mut writer = start_writer(&db, 60_000, 1_500_000, &[]);
    wait_for_writes(&db);
    let watcher = Watcher::start(&repo, &db, &[]);
    // Watching (a first link made) before the snapshot's sequence number.
    wait_for_a_link(&held_for(&repo, &db));
    let snapshot_sequence = live_backup(&repo, &db, writer.0.id());
    let mut tags = Vec::new();
    for index in 0..3 {
        std::thread::sleep(Duration::from_millis(700));
        let name = format!("during-{index}");
        let point = lsmvault_json(&repo, &["tag", &name, db.to_str().unwrap()]);
        tags.push((name, point["sequence"].as_u64().unwrap()));
    }
    assert!(writer.0.wait().unwrap().success());
    let output = watcher.stop("-INT");
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert!(!db.join(HOLD).exists(), "links left after a clean stop");

    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    assert_eq!(timeline[0]["gaps"], serde_json::json!([]), "{timeline:#}");
    let segments = timeline[0]["segments"].as_array().unwrap().len();
    assert!(segments >= 20, "only {segments} WAL files archived");
    let newest = timeline[0]["windows"][0]["to_sequence"].as_u64().unwrap();
    assert_eq!(newest, 60_000, "{timeline:#}");
    eprintln!("{segments} WAL files, snapshot at {snapshot_sequence}, tags {tags:?}");

    for (name, sequence) in &tags {
        restore_and_scan(&repo, work.path(), *sequence, Some(name));
    }
    for sequence in random_in(seed(), 5, snapshot_sequence, newest) {
        restore_and_scan(&repo, work.path(), sequence, None);
    }
}

/// Writes segment `number` of `db` holding one batch per sequence number.
pub(crate) fn write_segment(
    db: &Path,
    number: u64,
    sequences: std::ops::RangeInclusive<u64>,
) -> PathBuf {
    let records: Vec<Vec<u8>> = sequences
        .map(|sequence| encode_write_batch(sequence, 1, &[0x42; 200]))
        .collect();
    let path = db.join(format!("{number:06}.log"));
    fs::write(&path, encode_log(&records, None)).unwrap();
    path
}

#[test]
fn a_wal_file_deleted_before_archiving_is_a_gap_reported_at_once() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let database = db.to_str().unwrap();

    // One-shot: segment 7 (31..=40) was deleted before anything archived it.
    lsmvault_ok(&repo, &["wal", "archive", database]);
    write_segment(&db, 9, 41..=50);
    let output = lsmvault(&repo, &["wal", "archive", database]);
    assert_eq!(output.status.code(), Some(34), "{}", stderr_text(&output));
    let message = stderr_text(&output);
    assert!(
        message.contains("31..=40") && message.contains("fake-db-identity"),
        "{message}"
    );
    assert!(message.contains("docs/pitr.md"), "{message}");
    // What the round archived is committed; the old gap is not reported again.
    lsmvault_ok(&repo, &["wal", "archive", database]);
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    assert_eq!(timeline[0]["segments"].as_array().unwrap().len(), 2);
    assert!(timeline[0]["gaps"].to_string().contains("31..=40"));

    // Watching: a watcher started after the old gap runs on; a new gap
    // (segment 11 never appeared) ends it at the next round with exit 34.
    let watcher = Watcher::start(&repo, &db, &[]);
    std::thread::sleep(Duration::from_millis(800));
    write_segment(&db, 13, 61..=70);
    let output = watcher.wait_at_most(Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(34), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("51..=60"),
        "{}",
        stderr_text(&output)
    );
    assert!(
        !stderr_text(&output).contains("31..=40"),
        "{}",
        stderr_text(&output)
    );
}

#[test]
fn tag_in_a_gap_fails() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    lsmvault_ok(&repo, &["backup", db.to_str().unwrap()]);
    lsmvault_ok(&repo, &["tag", "before-the-gap", db.to_str().unwrap()]);
    // Sequences 31..=40 never reach the archive.
    write_segment(&db, 9, 41..=50);
    let output = lsmvault(&repo, &["tag", "after-the-gap", db.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(28), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("31..=40"),
        "{}",
        stderr_text(&output)
    );
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    let points = timeline[0]["restore_points"].as_array().unwrap();
    assert_eq!(points.len(), 1, "no restore point written: {timeline:#}");
    assert_eq!(points[0]["name"], "before-the-gap");
}

#[test]
fn tag_without_a_snapshot_fails() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let output = lsmvault(
        &repo,
        &["tag", "nothing-to-start-from", db.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(28), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("no snapshot"),
        "{}",
        stderr_text(&output)
    );
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    assert_eq!(timeline[0]["restore_points"], serde_json::json!([]));
}

#[test]
fn held_links_of_a_killed_watcher_are_archived_and_removed() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let watcher = Watcher::start(&repo, &db, &[]);
    std::thread::sleep(Duration::from_millis(500));
    // Segment 7 appears, is linked at once, then the watcher dies before a
    // round archived it, and the database deletes the file.
    let segment = write_segment(&db, 7, 31..=40);
    wait_for(&held_for(&repo, &db).join("000007.log"));
    let killed = watcher.stop("-KILL");
    assert_eq!(killed.status.code(), None);
    fs::remove_file(&segment).unwrap();
    write_segment(&db, 9, 41..=50);

    // A one-shot archive reads the link (the only copy), then removes it.
    let report = lsmvault_json(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let names: Vec<&str> = report["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|segment| segment["file_name"].as_str())
        .collect();
    assert!(names.contains(&"000007.log"), "{report:#}");
    assert!(!db.join(HOLD).exists(), "{report:#}");
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    assert_eq!(timeline[0]["gaps"], serde_json::json!([]), "{timeline:#}");
}

#[test]
fn hold_dir_on_another_filesystem_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = crate::resource_faults::Mount::tmpfs(&work.path().join("fs"), "4m") else {
        return;
    };
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let hold = mount.point.join("hold");
    let watcher = Watcher::start(&repo, &db, &["--hold-dir", hold.to_str().unwrap()]);
    let output = watcher.wait_at_most(Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(22), "{}", stderr_text(&output));
    let message = stderr_text(&output);
    for part in [
        db.to_str().unwrap(),
        hold.to_str().unwrap(),
        "another file system",
        "hint: pass a --hold-dir",
    ] {
        assert!(message.contains(part), "{part}: {message}");
    }
    assert!(lsmvault_json(&repo, &["wal", "ls"]) == serde_json::json!([]));
}

#[test]
fn checkpoint_skips_the_holding_directory() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    fs::create_dir(db.join(HOLD)).unwrap();
    fs::hard_link(db.join("000005.log"), db.join(HOLD).join("000005.log")).unwrap();

    let checkpoint = work.path().join("checkpoint");
    lsmvault_ok(
        &repo,
        &[
            "checkpoint",
            db.to_str().unwrap(),
            checkpoint.to_str().unwrap(),
        ],
    );
    assert!(checkpoint.join("000005.log").exists());
    assert!(!checkpoint.join(HOLD).exists());
    for args in [
        vec!["backup", db.to_str().unwrap()],
        vec!["backup", "--live", db.to_str().unwrap()],
    ] {
        lsmvault_ok(&repo, &args);
        let listing = lsmvault_ok(&repo, &["ls", "latest"]);
        assert!(listing.contains("000005.log"), "{listing}");
        assert!(!listing.contains(HOLD), "{args:?}: {listing}");
    }
    // The links stay for the watcher that made them.
    assert!(db.join(HOLD).join("000005.log").exists());
}

/// kill -9 of the watcher at random moments while a writer runs: with
/// WAL_ttl_seconds the database keeps every WAL file (in archive/), so any
/// gap would be the archiver's fault; after a clean stop no link is left.
#[test]
fn a_watcher_killed_at_random_moments_loses_nothing() {
    let Some(outcome) = kill_watchers_while_writing(&["--wal_ttl_seconds=3600"]) else {
        return;
    };
    assert_eq!(outcome.gaps, serde_json::json!([]), "{outcome:?}");
}

/// The same with RocksDB's default options: a WAL file created and deleted
/// while no watcher ran (between a kill and the restart) is lost, but never
/// silently: every gap `wal ls` shows lies within a range some watcher
/// named on stderr (its exit 34).
#[test]
fn a_watcher_killed_at_random_moments_reports_every_gap_it_could_not_prevent() {
    let Some(outcome) = kill_watchers_while_writing(&[]) else {
        return;
    };
    let reported: Vec<(u64, u64)> = outcome
        .stderr
        .iter()
        .flat_map(|text| sequence_ranges_in(text))
        .collect();
    let missing = outcome.missing.as_array().unwrap();
    for gap in missing {
        let (first, last) = (
            gap["first"].as_u64().unwrap(),
            gap["last"].as_u64().unwrap(),
        );
        assert!(
            reported
                .iter()
                .any(|(low, high)| *low <= first && last <= *high),
            "gap {first}..={last} was never reported: {outcome:#?}"
        );
    }
    let stopped_on_a_gap = outcome.exit_codes.iter().filter(|code| **code == Some(34));
    eprintln!(
        "{} gap(s), {} watcher(s) exited 34, reported ranges {reported:?}",
        missing.len(),
        stopped_on_a_gap.count()
    );
}

/// Every `FIRST..=LAST` in `text`.
fn sequence_ranges_in(text: &str) -> Vec<(u64, u64)> {
    let number = |digits: &str| digits.parse::<u64>().ok();
    text.match_indices("..=")
        .filter_map(|(at, _)| {
            let before = &text[..at];
            let start = before
                .rfind(|c: char| !c.is_ascii_digit())
                .map_or(0, |index| index + 1);
            let after = &text[at + 3..];
            let end = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            Some((number(&before[start..])?, number(&after[..end])?))
        })
        .collect()
}

#[derive(Debug)]
struct KillOutcome {
    /// `wal ls`'s gaps once everything is archived.
    gaps: serde_json::Value,
    /// The same as `wal ls`'s `missing_sequences` (`first`, `last`).
    missing: serde_json::Value,
    /// The watchers' exit codes (`None`: killed; 34: a gap).
    exit_codes: Vec<Option<i32>>,
    /// What each watcher wrote to stderr.
    stderr: Vec<String>,
}

/// A db_bench writer with `options`, watchers killed with SIGKILL at random
/// moments and restarted at once, then a last one stopped with SIGTERM:
/// checks the clean stop (exit 143, no links left, every write archived).
fn kill_watchers_while_writing(options: &[&str]) -> Option<KillOutcome> {
    if !tools_available(&["db_bench"]) {
        return None;
    }
    let kills = iterations_from_env("WAL_PICKUP_KILLS", 6) as usize;
    let work = tempfile::tempdir().unwrap();
    let (db, repo) = (work.path().join("db"), work.path().join("repo"));
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let mut writer = start_writer(&db, 50_000, 1_500_000, options);
    wait_for_writes(&db);
    let (mut exit_codes, mut stderr) = (Vec::new(), Vec::new());
    for pause in random_in(seed(), kills, 50, 700) {
        let watcher = Watcher::start(&repo, &db, &[]);
        std::thread::sleep(Duration::from_millis(pause));
        let output = watcher.stop("-KILL");
        exit_codes.push(output.status.code());
        stderr.push(stderr_text(&output));
    }
    // Restarted at once (the writer still runs); a watcher that stops on a
    // gap (34) is restarted as a supervisor would.
    loop {
        let watcher = Watcher::start(&repo, &db, &[]);
        if writer.0.try_wait().unwrap().is_none() {
            assert!(writer.0.wait().unwrap().success());
        }
        std::thread::sleep(Duration::from_millis(700));
        let output = watcher.stop("-TERM");
        stderr.push(stderr_text(&output));
        if output.status.code() == Some(34) {
            exit_codes.push(Some(34));
            continue;
        }
        assert_eq!(output.status.code(), Some(143), "{}", stderr_text(&output));
        break;
    }
    assert!(!db.join(HOLD).exists(), "links left after a clean stop");
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    let last = timeline[0]["segments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|segment| segment["last_sequence"].as_u64())
        .max();
    assert_eq!(last, Some(50_000), "{timeline:#}");
    Some(KillOutcome {
        gaps: timeline[0]["gaps"].clone(),
        missing: timeline[0]["missing_sequences"].clone(),
        exit_codes,
        stderr,
    })
}

/// An exclusive lock (a prune) during a watch: the rounds are skipped with
/// a warning, not fatal, and the links keep being made meanwhile, so a WAL
/// file deleted while the repository was locked is archived afterwards.
#[test]
fn a_locked_repository_skips_rounds_and_the_watcher_keeps_holding() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let watcher = Watcher::start(&repo, &db, &[]);
    wait_for(&held_for(&repo, &db).join("000005.log"));
    // A live process of this host holds an exclusive lock.
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = holder.id();
    let now = humantime::format_rfc3339(SystemTime::now()).to_string();
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let lock = serde_json::json!({
        "version": 1, "kind": "exclusive", "host": host, "pid": pid, "purpose": "prune",
        "created": now, "refreshed": now,
        "process_start": crate::kill_loops::start_time_of(pid),
    });
    let lock_file = repo.join("locks").join("prune-in-progress");
    fs::write(&lock_file, lock.to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(400));
    let segment = write_segment(&db, 7, 31..=40);
    wait_for(&held_for(&repo, &db).join("000007.log"));
    fs::remove_file(&segment).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    fs::remove_file(&lock_file).unwrap();
    let _ = holder.kill();
    let _ = holder.wait();
    std::thread::sleep(Duration::from_millis(700));
    let output = watcher.stop("-INT");
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("round skipped"),
        "{}",
        stderr_text(&output)
    );
    let timeline = lsmvault_json(&repo, &["wal", "ls"]);
    assert_eq!(timeline[0]["gaps"], serde_json::json!([]), "{timeline:#}");
    assert_eq!(timeline[0]["segments"][1]["file_name"], "000007.log");
    assert!(!db.join(HOLD).exists());
}

/// The links are made before the repository is opened (a restarted
/// watcher is blind for less time); a watcher that then cannot open it
/// removes them again, and a missing database directory is not created.
#[test]
fn a_watcher_that_cannot_start_leaves_no_links() {
    let work = tempfile::tempdir().unwrap();
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let missing_repo = work.path().join("no-repo");
    let watcher = Watcher::start(&missing_repo, &db, &[]);
    let output = watcher.wait_at_most(Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(10), "{}", stderr_text(&output));
    assert!(!db.join(HOLD).exists(), "links left behind");

    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let missing_db = work.path().join("no-db");
    let watcher = Watcher::start(&repo, &missing_db, &[]);
    let output = watcher.wait_at_most(Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(20), "{}", stderr_text(&output));
    assert!(!missing_db.exists());
}

/// Regression (found attacking `--hold-dir`): the database directory as
/// the holding directory made a one-shot archive "release" — delete — the
/// database's own WAL files. Refused, as is a directory of foreign `*.log`s.
#[test]
fn the_database_directory_is_refused_as_holding_directory() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    fs::create_dir(db.join("archive")).unwrap();
    let foreign = work.path().join("foreign");
    fs::create_dir(&foreign).unwrap();
    fs::write(foreign.join("000001.log"), b"not ours").unwrap();
    for hold in [db.clone(), db.join("archive"), foreign.clone()] {
        let hold = hold.to_str().unwrap();
        let database = db.to_str().unwrap();
        for args in [
            vec!["wal", "archive", database, "--hold-dir", hold],
            vec![
                "wal",
                "archive",
                "--watch",
                "1s",
                database,
                "--hold-dir",
                hold,
            ],
        ] {
            let output = lsmvault(&repo, &args);
            assert_eq!(
                output.status.code(),
                Some(22),
                "{args:?}: {}",
                stderr_text(&output)
            );
            assert!(
                stderr_text(&output).contains("holding directory"),
                "{}",
                stderr_text(&output)
            );
        }
    }
    assert!(db.join("000005.log").exists());
    assert!(foreign.join("000001.log").exists());
}
