//! `cluster backup` of shards on this machine: real RocksDB shards restored
//! member by member, the freeze barrier under writers that share one
//! counter (the cut must be one moment for all), failing, hanging and
//! interrupted freezes (everyone thawed, nothing written), and refusals
//! before anyone is paused.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::rocksdb::db_bench;

/// One shard of a test topology: its name, directory and pause method (TOML lines).
struct TestShard {
    name: String,
    path: PathBuf,
    pause: String,
}

/// A raid5 topology (the last shard is the parity shard) of `shards`.
fn topology(shards: &[TestShard]) -> String {
    let mut text = "name = \"orders\"\n[groups.east]\nscheme = \"raid5\"\n".to_string();
    for (index, shard) in shards.iter().enumerate() {
        let role = if index + 1 == shards.len() {
            "parity"
        } else {
            "data"
        };
        text.push_str(&format!(
            "[[shards]]\nname = \"{}\"\ngroup = \"east\"\nrole = \"{role}\"\npath = \"{}\"\n{}\n",
            shard.name,
            shard.path.display(),
            shard.pause
        ));
    }
    text
}

fn write_topology(work: &Path, shards: &[TestShard]) -> PathBuf {
    let file = work.join("topology.toml");
    fs::write(&file, topology(shards)).unwrap();
    file
}

/// `cluster backup --json` that must succeed; its report.
fn cluster_backup_json(repo: &Path, topology: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "cluster",
        "backup",
        "--topology",
        topology.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    lsmvault_json(repo, &args)
}

fn cluster_backup(repo: &Path, topology: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "cluster",
        "backup",
        "--topology",
        topology.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    lsmvault(repo, &args)
}

/// The staging checkpoints left in `directory` (there must be none).
fn staging_left(directory: &Path) -> Vec<String> {
    fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".lsmvault-live-"))
        .collect()
}

/// Nothing in the repository: no snapshot, no cluster snapshot.
fn assert_nothing_written(repo: &Path) {
    assert!(snapshot_ids(repo).is_empty(), "a snapshot was written");
    let clusters = lsmvault_json(repo, &["cluster", "ls"]);
    assert_eq!(clusters.as_array().unwrap().len(), 0, "{clusters}");
}

/// The state letter of `/proc/PID/stat`.
fn process_state(pid: u32) -> char {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after
        .split_whitespace()
        .next()
        .unwrap()
        .chars()
        .next()
        .unwrap()
}

/// Waits (up to 2 s) until process `pid` is not stopped.
fn assert_running(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while process_state(pid) == 'T' {
        assert!(Instant::now() < deadline, "process {pid} was left stopped");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A writer process that appends, under an flock of one shared counter
/// file, the counter's next value to `shard/counter.log`: every value is
/// written by exactly one shard, in global order. Killed when dropped.
struct CounterWriter(Child);

impl Drop for CounterWriter {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const WRITER: &str = r#"
import fcntl, os, sys, time
counter, log = sys.argv[1], sys.argv[2]
out = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
with open(counter, "a+") as c:
    while True:
        fcntl.flock(c, fcntl.LOCK_EX)
        c.seek(0)
        n = int(c.read() or "0") + 1
        c.seek(0)
        c.truncate()
        c.write(str(n))
        c.flush()
        os.write(out, b"%d\n" % n)
        fcntl.flock(c, fcntl.LOCK_UN)
        time.sleep(0.0005)
"#;

fn start_counter_writer(counter: &Path, shard: &Path) -> CounterWriter {
    fs::create_dir_all(shard).unwrap();
    let child = Command::new("python3")
        .args(["-c", WRITER])
        .arg(counter)
        .arg(shard.join("counter.log"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    CounterWriter(child)
}

fn values(log: &Path) -> Vec<u64> {
    fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|line| line.parse().ok())
        .collect()
}

/// Three shards, each with a counter writer paused through its pid file.
fn writer_shards(work: &Path) -> (Vec<TestShard>, Vec<CounterWriter>) {
    let counter = work.join("counter");
    let mut shards = Vec::new();
    let mut writers = Vec::new();
    for name in ["s1", "s2", "s3"] {
        let path = work.join(name);
        let writer = start_counter_writer(&counter, &path);
        let pid_file = work.join(format!("{name}.pid"));
        fs::write(&pid_file, writer.0.id().to_string()).unwrap();
        writers.push(writer);
        shards.push(TestShard {
            name: name.to_string(),
            path,
            pause: format!("pid_file = \"{}\"", pid_file.display()),
        });
    }
    for shard in &shards {
        let log = shard.path.join("counter.log");
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(&log).map_or(0, |text| text.len()) < 10 {
            assert!(
                Instant::now() < deadline,
                "writer of {} did not start",
                shard.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    (shards, writers)
}

fn init(work: &Path) -> PathBuf {
    let repo = work.join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    repo
}

/// Three RocksDB shards filled by db_bench, paused by a pause file, by
/// freeze/thaw commands and not at all.
fn rocksdb_shards(work: &Path) -> Vec<TestShard> {
    let marker = work.join("s2.frozen");
    let pauses = [
        format!("pause_file = \"{}\"", work.join("s1.PAUSE").display()),
        format!(
            "freeze = \"touch {0}\"\nthaw = \"rm {0}\"",
            marker.display()
        ),
        String::new(),
    ];
    ["s1", "s2", "s3"]
        .into_iter()
        .zip(pauses)
        .enumerate()
        .map(|(index, (name, pause))| {
            let path = work.join(name);
            db_bench(
                &path,
                &[
                    "--benchmarks=fillrandom",
                    "--num=20000",
                    &format!("--seed={}", index + 1),
                ],
            );
            TestShard {
                name: name.to_string(),
                path,
                pause,
            }
        })
        .collect()
}

fn scan_all(db: &Path) -> String {
    run_tool(
        Command::new("ldb")
            .arg(format!("--db={}", db.display()))
            .args(["scan", "--hex"]),
    )
}

#[test]
fn cluster_backup_of_three_rocksdb_shards_is_complete_and_each_member_restores() {
    if !tools_available(&["db_bench", "ldb"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let shards = rocksdb_shards(work.path());
    let topology = write_topology(work.path(), &shards);
    let report = cluster_backup_json(&repo, &topology, &["--tag", "nightly"]);
    let listed = lsmvault_json(&repo, &["cluster", "ls"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], report["id"]);
    assert_eq!(listed[0]["complete"], true, "{listed:?}");
    assert_eq!(listed[0]["member_count"], 3);
    assert_eq!(listed[0]["tag"], "nightly");
    assert!(!work.path().join("s1.PAUSE").exists() && !work.path().join("s2.frozen").exists());
    assert!(staging_left(work.path()).is_empty());
    for (index, shard) in shards.iter().enumerate() {
        let member = &report["shards"][index];
        assert_eq!(member["shard"], shard.name.as_str());
        assert!(member["sequence"].as_u64().unwrap() >= 20000, "{member}");
        assert!(member["pause"]["link_seconds"].as_f64().unwrap() > 0.0);
        let snapshot = member["snapshot"].as_str().unwrap();
        assert_eq!(listed[0]["members"][index]["snapshot"], snapshot);
        let target = work.path().join(format!("restored-{}", shard.name));
        lsmvault_ok(
            &repo,
            &["restore", snapshot, "--target", target.to_str().unwrap()],
        );
        // Idle databases: the checkpoint holds exactly what they hold.
        assert_eq!(scan_all(&target), scan_all(&shard.path), "{}", shard.name);
        let listed = lsmvault_json(&repo, &["snapshots"]);
        let entry = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["id"] == snapshot)
            .unwrap_or_else(|| panic!("{snapshot} not listed: {listed}"));
        let tags = entry["snapshot"]["tags"].to_string();
        for tag in [
            "cluster:orders",
            &format!("shard:{}", shard.name),
            "nightly",
        ] {
            assert!(tags.contains(tag), "{tags}");
        }
    }
}

#[test]
fn a_second_cluster_backup_after_churn_dedups_and_chains_each_shard() {
    if !tools_available(&["db_bench", "ldb"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let shards = rocksdb_shards(work.path());
    let topology = write_topology(work.path(), &shards);
    let backup = |repo: &Path| -> serde_json::Value { cluster_backup_json(repo, &topology, &[]) };
    let added = |report: &serde_json::Value| -> u64 {
        report["shards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|shard| shard["stats"]["bytes_added"].as_u64().unwrap())
            .sum()
    };
    let first = backup(&repo);
    db_bench(
        &shards[0].path,
        &["--benchmarks=overwrite", "--num=500", "--use_existing_db=1"],
    );
    let second = backup(&repo);
    assert_ne!(first["id"], second["id"]);
    assert!(
        added(&second) * 5 < added(&first),
        "second backup added {} bytes, the first {}",
        added(&second),
        added(&first)
    );
    for index in 0..3 {
        assert_eq!(
            second["shards"][index]["parent"], first["shards"][index]["snapshot"],
            "each member's parent is the shard's previous member"
        );
    }
    let listed = lsmvault_json(&repo, &["cluster", "ls"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["complete"] == true));
}

#[test]
fn the_cut_is_one_moment_for_every_shard() {
    if !tools_available(&["python3"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let (mut shards, writers) = writer_shards(work.path());
    // The last shard's freeze starts late: without the barrier the others
    // would be checkpointed and writing again before it is paused.
    let pid = writers[2].0.id();
    shards[2].pause = format!(
        "freeze = \"sleep 0.2; kill -STOP {pid}; until [ \\\"$(cut -d' ' -f3 /proc/{pid}/stat)\\\" = T ]; do sleep 0.001; done\"\nthaw = \"kill -CONT {pid}\""
    );
    let topology = write_topology(work.path(), &shards);
    let report = cluster_backup_json(&repo, &topology, &[]);
    // Let every writer append after the thaw.
    std::thread::sleep(Duration::from_millis(300));
    let mut in_backup = Vec::new();
    let mut after = Vec::new();
    for (index, shard) in shards.iter().enumerate() {
        let target = work.path().join(format!("restored-{}", shard.name));
        let snapshot = report["shards"][index]["snapshot"].as_str().unwrap();
        lsmvault_ok(
            &repo,
            &["restore", snapshot, "--target", target.to_str().unwrap()],
        );
        let backed_up = values(&target.join("counter.log"));
        let now = values(&shard.path.join("counter.log"));
        assert_eq!(&now[..backed_up.len()], backed_up.as_slice(), "a prefix");
        assert!(!backed_up.is_empty() && now.len() > backed_up.len());
        assert_running(writers[index].0.id());
        after.extend_from_slice(&now[backed_up.len()..]);
        in_backup.extend(backed_up);
    }
    let newest_in_backup = in_backup.iter().max().unwrap();
    let oldest_after = after.iter().min().unwrap();
    assert!(
        newest_in_backup < oldest_after,
        "a shard's checkpoint holds {newest_in_backup}, written after another shard's first write past the cut ({oldest_after})"
    );
}

/// Runs a cluster backup of the writer shards with `last`'s pause replaced
/// by `pause`, expecting `code`; then every writer runs, nothing was
/// written, no staging is left. Returns stderr.
fn failing_backup(pause: &str, extra: &[&str], code: i32) -> String {
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let (mut shards, writers) = writer_shards(work.path());
    shards[2].pause = pause.to_string();
    let topology = write_topology(work.path(), &shards);
    let started = Instant::now();
    let output = cluster_backup(&repo, &topology, extra);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(output.status.code(), Some(code), "{}", stderr_text(&output));
    for writer in &writers {
        assert_running(writer.0.id());
    }
    assert_nothing_written(&repo);
    assert!(staging_left(work.path()).is_empty());
    stderr_text(&output)
}

#[test]
fn a_failing_freeze_thaws_every_shard_and_writes_nothing() {
    if !tools_available(&["python3"]) {
        return;
    }
    let stderr = failing_backup("freeze = \"false\"\nthaw = \"true\"", &[], 30);
    assert!(
        stderr.contains("shard \"s3\" failed while freezing"),
        "{stderr}"
    );
    assert!(
        stderr.contains("no cluster snapshot was written"),
        "{stderr}"
    );
    // A pid file naming a process that is gone.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let pid_file = std::env::temp_dir().join(format!("lsmvault-gone-{pid}.pid"));
    fs::write(&pid_file, pid.to_string()).unwrap();
    let stderr = failing_backup(&format!("pid_file = \"{}\"", pid_file.display()), &[], 30);
    fs::remove_file(&pid_file).unwrap();
    assert!(stderr.contains("SIGSTOP of the pid in"), "{stderr}");
}

#[test]
fn a_freeze_past_the_timeout_thaws_every_shard_and_writes_nothing() {
    if !tools_available(&["python3"]) {
        return;
    }
    let started = Instant::now();
    let stderr = failing_backup(
        "freeze = \"sleep 30\"\nthaw = \"true\"",
        &["--freeze-timeout", "300ms"],
        30,
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(stderr.contains("timed out after 300ms"), "{stderr}");
}

/// Starts a cluster backup, runs `meanwhile` once `marker` exists, then
/// sends it SIGINT.
fn interrupted_backup(
    repo: &Path,
    topology: &Path,
    marker: &Path,
    meanwhile: impl FnOnce(),
) -> Output {
    let child = lsmvault_command(
        repo,
        None,
        &[
            "cluster",
            "backup",
            "--topology",
            topology.to_str().unwrap(),
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the freeze never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    meanwhile();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn sigint_during_the_freeze_thaws_every_shard_and_a_concurrent_backup_is_refused() {
    if !tools_available(&["python3"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let (mut shards, writers) = writer_shards(work.path());
    let marker = work.path().join("freezing");
    let thawed = work.path().join("thawed");
    shards[2].pause = format!(
        "freeze = \"touch {}; sleep 30\"\nthaw = \"touch {}\"",
        marker.display(),
        thawed.display()
    );
    let topology = write_topology(work.path(), &shards);
    // Meanwhile a second cluster backup of the same shards is refused
    // before it pauses (and so thaws) anyone.
    let output = interrupted_backup(&repo, &topology, &marker, || {
        let second = cluster_backup(&repo, &topology, &[]);
        let stderr = stderr_text(&second);
        assert_eq!(second.status.code(), Some(21), "{stderr}");
        assert!(
            stderr.contains("another cluster backup is pausing"),
            "{stderr}"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_state(writers[0].0.id()) != 'T' {
            assert!(Instant::now() < deadline, "the first backup paused s1");
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert!(thawed.exists(), "the interrupted freeze was thawed");
    for writer in &writers {
        assert_running(writer.0.id());
    }
    assert_nothing_written(&repo);
    assert!(staging_left(work.path()).is_empty());
}

#[test]
fn sigint_once_the_cut_is_taken_writes_no_cluster_snapshot() {
    if !tools_available(&["python3"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let (mut shards, writers) = writer_shards(work.path());
    // The last thaw sends the signal, once the others' pause files are
    // gone (their checkpoints are linked): the cut is complete, the member
    // backups have not started.
    let pauses: Vec<PathBuf> = (0..2)
        .map(|index| work.path().join(format!("PAUSE{index}")))
        .collect();
    for (shard, pause) in shards.iter_mut().zip(&pauses) {
        shard.pause = format!("pause_file = \"{}\"", pause.display());
    }
    let marker = work.path().join("thawing");
    shards[2].pause = format!(
        "freeze = \"true\"\nthaw = \"while [ -e {} ] || [ -e {} ]; do sleep 0.01; done; touch {}; kill -INT $PPID\"",
        pauses[0].display(),
        pauses[1].display(),
        marker.display()
    );
    let topology = write_topology(work.path(), &shards);
    let output = cluster_backup(&repo, &topology, &[]);
    assert!(marker.exists());
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("no cluster snapshot was written"),
        "{}",
        stderr_text(&output)
    );
    for writer in &writers {
        assert_running(writer.0.id());
    }
    assert!(pauses.iter().all(|pause| !pause.exists()));
    assert_nothing_written(&repo);
    assert!(staging_left(work.path()).is_empty());
}

#[test]
fn a_missing_shard_directory_or_a_remote_shard_is_refused_before_anyone_is_paused() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let frozen = work.path().join("frozen");
    let pause = format!(
        "freeze = \"touch {0}\"\nthaw = \"rm -f {0}\"",
        frozen.display()
    );
    let mut shards: Vec<TestShard> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| {
            let path = work.path().join(name);
            fs::create_dir(&path).unwrap();
            fs::write(path.join("data"), name).unwrap();
            TestShard {
                name: name.to_string(),
                path,
                pause: pause.clone(),
            }
        })
        .collect();
    shards[1].path = work.path().join("missing");
    let topology = write_topology(work.path(), &shards);
    let output = cluster_backup(&repo, &topology, &[]);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(20), "{stderr}");
    assert!(
        stderr.contains("shard \"s2\"") && stderr.contains("missing"),
        "{stderr}"
    );
    assert!(stderr.contains("nobody was paused"), "{stderr}");
    assert!(!frozen.exists());
    shards[1].path = work.path().join("s2");
    shards[1].pause = "host = \"db2.example.net\"".to_string();
    let topology = write_topology(work.path(), &shards);
    let output = cluster_backup(&repo, &topology, &[]);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(22), "{stderr}");
    assert!(
        stderr.contains("remote shards") && stderr.contains("come next"),
        "{stderr}"
    );
    assert_nothing_written(&repo);
    assert!(staging_left(work.path()).is_empty());
}

#[test]
fn a_staging_checkpoint_left_by_a_killed_run_is_removed_and_reported() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let shards: Vec<TestShard> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| {
            let path = work.path().join(name);
            fs::create_dir(&path).unwrap();
            fs::write(path.join("000010.sst"), name).unwrap();
            TestShard {
                name: name.to_string(),
                path,
                pause: String::new(),
            }
        })
        .collect();
    // Named as a run of a process that no longer exists would name it.
    let leftover = work.path().join(".lsmvault-live-999999999-1");
    fs::create_dir(&leftover).unwrap();
    fs::write(leftover.join("000010.sst"), "old").unwrap();
    let topology = write_topology(work.path(), &shards);
    let report = cluster_backup_json(&repo, &topology, &[]);
    assert_eq!(
        report["leftovers_removed"][0],
        leftover.to_str().unwrap(),
        "{report}"
    );
    assert!(staging_left(work.path()).is_empty());
    assert_eq!(snapshot_ids(&repo).len(), 3);
}

#[test]
fn a_pause_file_inside_a_shard_is_left_out_of_its_member_snapshot() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let shards: Vec<TestShard> = ["s1", "s2", "s3"]
        .iter()
        .map(|name| {
            let path = work.path().join(name);
            fs::create_dir_all(path.join("run")).unwrap();
            fs::write(path.join("000010.sst"), name).unwrap();
            // s1: at the top of the shard; s2: in a subdirectory; s3: beside.
            let pause = match *name {
                "s1" => path.join("PAUSE"),
                "s2" => path.join("run/PAUSE"),
                _ => work.path().join("s3.PAUSE"),
            };
            TestShard {
                name: name.to_string(),
                path,
                pause: format!("pause_file = \"{}\"", pause.display()),
            }
        })
        .collect();
    let topology = write_topology(work.path(), &shards);
    let report = cluster_backup_json(&repo, &topology, &[]);
    for index in 0..3 {
        let snapshot = report["shards"][index]["snapshot"].as_str().unwrap();
        let paths = listed_paths(&repo, snapshot);
        assert!(
            paths.iter().any(|path| path.ends_with("000010.sst")),
            "{paths:?}"
        );
        assert!(
            !paths.iter().any(|path| path.ends_with("PAUSE")),
            "{paths:?}"
        );
    }
    assert!(!shards[0].path.join("PAUSE").exists());
    assert!(!shards[1].path.join("run/PAUSE").exists());
}

/// A shard directory that happens to be named like a staging checkpoint of
/// a dead process is the user's database, not a leftover: it is backed up,
/// never removed (found by the report-only attack of this command).
#[test]
fn a_shard_directory_named_like_a_staging_checkpoint_is_never_deleted() {
    let work = tempfile::tempdir().unwrap();
    let repo = init(work.path());
    let shards: Vec<TestShard> = ["s1", ".lsmvault-live-999999999-1", "s3"]
        .iter()
        .enumerate()
        .map(|(index, directory)| {
            let path = work.path().join(directory);
            fs::create_dir(&path).unwrap();
            fs::write(path.join("000010.sst"), directory).unwrap();
            TestShard {
                name: format!("s{}", index + 1),
                path,
                pause: String::new(),
            }
        })
        .collect();
    let topology = write_topology(work.path(), &shards);
    let report = cluster_backup_json(&repo, &topology, &[]);
    assert!(
        report["leftovers_removed"]
            .as_array()
            .is_none_or(|removed| removed.is_empty()),
        "{report}"
    );
    assert_eq!(
        fs::read_to_string(shards[1].path.join("000010.sst")).unwrap(),
        ".lsmvault-live-999999999-1"
    );
    assert_eq!(snapshot_ids(&repo).len(), 3);
}
