//! Crash safety of every command that writes: each is killed with SIGKILL at
//! random moments (the shared harness, `common::kill_loop`), and after every
//! kill the snapshots that must survive restore byte-exact, `verify` is clean,
//! the password opens, and the next uninterrupted run of the command succeeds.
//!
//! Iterations: `LSMVAULT_KILL_ITERATIONS` (each loop's default is its CI size;
//! the whole module takes well under a minute in a debug build).

use std::fs;
use std::path::Path;
use std::time::Duration;

use lsmvault::lsm::log::encode_log;
use lsmvault::lsm::write_batch::encode_write_batch;
use lsmvault::{InitOptions, Repository};

use crate::common::kill_loop::*;
use crate::common::*;

/// A plaintext repository in small packs, so prunes and repairs have many to handle.
fn init_small_packs(repo: &Path) {
    Repository::init_local(
        repo,
        InitOptions {
            pack_size: 1024 * 1024,
            ..InitOptions::default()
        },
    )
    .unwrap();
}

/// Generation `generation` of a small database: two files that stay, one that
/// each generation replaces, one that grows, and a subdirectory.
fn write_generation(source: &Path, generation: u64) {
    fs::create_dir_all(source.join("archive")).unwrap();
    for stable in 0..2 {
        let path = source.join(format!("00000{stable}.sst"));
        if !path.exists() {
            fs::write(path, seeded_bytes(stable + 1, 700_000)).unwrap();
        }
    }
    if generation > 0 {
        let _ = fs::remove_file(source.join(format!("{:06}.sst", 100 + generation - 1)));
    }
    fs::write(
        source.join(format!("{:06}.sst", 100 + generation)),
        seeded_bytes(100 + generation, 1_100_000),
    )
    .unwrap();
    fs::write(
        source.join("archive/000009.log"),
        seeded_bytes(7, 50_000 + 20_000 * generation as usize),
    )
    .unwrap();
    fs::write(
        source.join("CURRENT"),
        format!("MANIFEST-{generation:06}\n"),
    )
    .unwrap();
}

/// Backs up `source` (uninterrupted) and keeps a `cp -a` copy of what it
/// saved as the snapshot's reference; returns the snapshot id.
fn backup_with_reference(
    repo: &Path,
    password: Option<&str>,
    source: &Path,
    references: &Path,
) -> (String, std::path::PathBuf) {
    let output = lsmvault_command(
        repo,
        password,
        &["--json", "backup", source.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_success(&output, "backup");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let id = report["id"].as_str().unwrap().to_string();
    fs::create_dir_all(references).unwrap();
    let reference = references.join(&id);
    copy_tree(source, &reference);
    (id, reference)
}

#[test]
fn killed_forget_prune_keeps_every_snapshot_the_policy_keeps() {
    let iterations = kill_iterations(8);
    let work = tempfile::tempdir().unwrap();
    let (repo, source, references) = (
        work.path().join("repo"),
        work.path().join("db"),
        work.path().join("references"),
    );
    init_small_packs(&repo);
    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    // Newest last: the policy keeps the last two.
    let mut kept: Vec<String> = Vec::new();
    let forget = ["forget", "--keep-last", "2", "--prune"];
    let mut typical = Duration::ZERO;
    for generation in 0..3 {
        write_generation(&source, generation);
        let (id, reference) = backup_with_reference(&repo, None, &source, &references);
        invariants.snapshots.insert(id.clone(), reference);
        kept.push(id);
    }
    typical = typical.max(time_ok(&mut lsmvault_command(&repo, None, &forget)));
    invariants.snapshots.remove(&kept.remove(0));

    let mut kill_loop = KillLoop::new("forget --prune", 0x5eed_f0e7, typical, 2);
    for iteration in 0..iterations {
        write_generation(&source, 3 + iteration);
        let (id, reference) = backup_with_reference(&repo, None, &source, &references);
        invariants.snapshots.insert(id.clone(), reference);
        kept.push(id);
        // The oldest of three may vanish now; the two newest must not.
        let forgotten = kept.remove(0);
        invariants.snapshots.remove(&forgotten);
        let run = kill_loop.run(&mut lsmvault_command(&repo, None, &forget));
        let context = format!("iteration {iteration} ({run:?})");
        if let Run::Finished(output) = &run {
            assert_success(output, &context);
        }
        invariants.check(&context, true);
        // The next run finishes the job: the forgotten snapshot is gone.
        time_ok(&mut lsmvault_command(&repo, None, &forget));
        let listed = invariants.listed_snapshots(&context);
        assert!(
            !listed.contains(&forgotten),
            "{context}: {forgotten} survived a rerun"
        );
        assert_eq!(listed.len(), 2, "{context}: {listed:?}");
    }
    invariants.check("end", true);
    invariants.check_read_data("end");
    kill_loop.finish();
}

/// One change of the key set, as `key add`, `key passwd` or `key remove`.
#[derive(Debug, Clone, Copy)]
enum KeyChange {
    Add,
    ChangePassword,
    Remove,
}

/// Whether `password` opens the repository.
fn opens(repo: &Path, password: &str) -> bool {
    let output = lsmvault_command(repo, Some(password), &["--json", "key", "list"])
        .output()
        .unwrap();
    if !output.status.success() {
        let code = output.status.code();
        // Only "wrong password" may fail it; anything else is damage.
        assert_eq!(
            code,
            Some(lsmvault::ErrorCode::WrongPassword.exit_code()),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    output.status.success()
}

/// The name of the key `password` opens.
fn key_of(repo: &Path, password: &str) -> String {
    let output = lsmvault_command(repo, Some(password), &["--json", "key", "list"])
        .output()
        .unwrap();
    assert_success(&output, "key list");
    let keys: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    keys.as_array()
        .unwrap()
        .iter()
        .find(|key| key["current"] == true)
        .map(|key| key["name"].as_str().unwrap().to_string())
        .unwrap()
}

/// The command of one key change: `user` opens, `other` is the new password
/// (add, passwd) or the password whose key is removed.
fn key_change_command(
    repo: &Path,
    change: KeyChange,
    user: &str,
    other: &str,
) -> std::process::Command {
    let mut command = match change {
        KeyChange::Add => {
            lsmvault_command(repo, Some(user), &["key", "add", "--kdf-target-ms", "20"])
        }
        KeyChange::ChangePassword => lsmvault_command(
            repo,
            Some(user),
            &["key", "passwd", "--kdf-target-ms", "20"],
        ),
        KeyChange::Remove => {
            lsmvault_command(repo, Some(user), &["key", "remove", &key_of(repo, other)])
        }
    };
    command.env("LSMVAULT_NEW_PASSWORD", other);
    command
}

#[test]
fn killed_key_changes_never_lock_the_owner_out() {
    let iterations = kill_iterations(12);
    let work = tempfile::tempdir().unwrap();
    let (repo, source, references) = (
        work.path().join("repo"),
        work.path().join("db"),
        work.path().join("references"),
    );
    let init = lsmvault_command(&repo, Some("first"), &["init", "--kdf-target-ms", "20"])
        .output()
        .unwrap();
    assert_success(&init, "init");
    write_generation(&source, 0);
    let (id, reference) = backup_with_reference(&repo, Some("first"), &source, &references);
    let mut invariants = Invariants::new(&repo, Some("first"), &work.path().join("scratch"));
    invariants.snapshots.insert(id, reference);
    // Every password known to open, oldest first.
    let mut passwords = vec!["first".to_string()];
    let typical = time_ok(&mut key_change_command(
        &repo,
        KeyChange::Add,
        "first",
        "second",
    ));
    passwords.push("second".into());

    let mut kill_loop = KillLoop::new("key add/passwd/remove", 0x6e7_5eed, typical, 2);
    for iteration in 0..iterations {
        let change = match kill_loop.random().below(3) {
            _ if passwords.len() >= 4 => KeyChange::Remove,
            0 => KeyChange::Add,
            1 => KeyChange::ChangePassword,
            _ if passwords.len() >= 2 => KeyChange::Remove,
            _ => KeyChange::Add,
        };
        let user = passwords[kill_loop.random().below(passwords.len() as u64) as usize].clone();
        let other = match change {
            KeyChange::Remove => passwords
                .iter()
                .find(|password| **password != user)
                .unwrap()
                .clone(),
            _ => format!("password-{iteration}"),
        };
        let run = kill_loop.run(&mut key_change_command(&repo, change, &user, &other));
        let context = format!("iteration {iteration}: {change:?} ({run:?})");
        if let Run::Finished(output) = &run {
            assert_success(output, &context);
        }
        // Every password that opened before still opens, except the one the
        // change replaces or removes; of that pair, at least one opens.
        let mut candidates = passwords.clone();
        if !candidates.contains(&other) {
            candidates.push(other.clone());
        }
        let mut still_open = Vec::new();
        for password in &candidates {
            let affected = *password == other
                || (matches!(change, KeyChange::ChangePassword) && *password == user);
            if opens(&repo, password) {
                still_open.push(password.clone());
            } else {
                assert!(affected, "{context}: {password} no longer opens");
            }
        }
        assert!(
            still_open
                .iter()
                .any(|password| *password == user || *password == other),
            "{context}: neither {user} nor {other} opens"
        );
        passwords = still_open;
        invariants.password = Some(passwords[0].clone());
        invariants.check(&context, true);
        // The next run of the same change succeeds.
        let user = passwords[0].clone();
        let next = match change {
            KeyChange::Remove if passwords.len() < 2 => continue,
            KeyChange::Remove => passwords[1].clone(),
            _ => format!("password-{iteration}-rerun"),
        };
        time_ok(&mut key_change_command(&repo, change, &user, &next));
        match change {
            KeyChange::Add => passwords.push(next),
            KeyChange::ChangePassword => {
                passwords.retain(|password| *password != user);
                passwords.push(next);
            }
            KeyChange::Remove => passwords.retain(|password| *password != next),
        }
        for password in &passwords {
            assert!(
                opens(&repo, password),
                "{context}: {password} after the rerun"
            );
        }
        invariants.password = Some(passwords[0].clone());
    }
    invariants.check("end", true);
    kill_loop.finish();
}

/// Appends `count` one-operation write batches from `first_sequence` to WAL
/// segment `number` of `database` (rewriting it, as a growing log looks).
fn write_segment(database: &Path, number: u64, sequences: std::ops::RangeInclusive<u64>) {
    let records: Vec<Vec<u8>> = sequences
        .map(|sequence| encode_write_batch(sequence, 1, &seeded_bytes(sequence, 300)))
        .collect();
    fs::write(
        database.join(format!("{number:06}.log")),
        encode_log(&records, None),
    )
    .unwrap();
}

/// The last archived sequence and the gaps `wal ls` reports.
fn archived_timeline(repo: &Path) -> (u64, serde_json::Value) {
    let listing = lsmvault_json(repo, &["wal", "ls"]);
    let database = &listing[0];
    let last = database["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|segment| segment["last_sequence"].as_u64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    (last, database["gaps"].clone())
}

#[test]
fn killed_wal_archive_loses_no_segment_and_a_rerun_completes_the_timeline() {
    let iterations = kill_iterations(10);
    let work = tempfile::tempdir().unwrap();
    let (repo, database, references) = (
        work.path().join("repo"),
        work.path().join("db"),
        work.path().join("references"),
    );
    init_small_packs(&repo);
    fs::create_dir_all(&database).unwrap();
    fs::write(database.join("IDENTITY"), "kill-loop-db\n").unwrap();
    fs::write(database.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    fs::write(database.join("MANIFEST-000001"), encode_log(&[], None)).unwrap();
    write_segment(&database, 5, 1..=400);
    let (id, reference) = backup_with_reference(&repo, None, &database, &references);
    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    invariants.snapshots.insert(id, reference);
    let archive = ["wal", "archive", database.to_str().unwrap()];
    let (mut segment, mut segment_first, mut last_sequence) = (6, 401, 1200);
    write_segment(&database, segment, segment_first..=last_sequence);
    let typical = time_ok(&mut lsmvault_command(&repo, None, &archive));

    let mut kill_loop = KillLoop::new("wal archive", 0xa7c4_1fe5, typical, 2);
    for iteration in 0..iterations {
        // Half the rounds grow the current segment, half start a new one.
        if kill_loop.random().below(2) == 0 {
            segment += 1;
            segment_first = last_sequence + 1;
        }
        last_sequence += 800;
        write_segment(&database, segment, segment_first..=last_sequence);
        let run = kill_loop.run(&mut lsmvault_command(&repo, None, &archive));
        let context = format!("iteration {iteration} ({run:?})");
        if let Run::Finished(output) = &run {
            assert_success(output, &context);
        }
        invariants.check(&context, true);
        time_ok(&mut lsmvault_command(&repo, None, &archive));
        let (archived, gaps) = archived_timeline(&repo);
        assert_eq!(archived, last_sequence, "{context}");
        assert_eq!(gaps, serde_json::json!([]), "{context}");
    }
    invariants.check("end", true);
    invariants.check_read_data("end");
    kill_loop.finish();
}

#[test]
fn killed_restore_delta_leaves_a_target_a_rerun_fixes() {
    let iterations = kill_iterations(10);
    let work = tempfile::tempdir().unwrap();
    let (repo, source, references) = (
        work.path().join("repo"),
        work.path().join("db"),
        work.path().join("references"),
    );
    init_small_packs(&repo);
    // Two snapshots that differ in replaced, grown and removed files.
    let mut snapshots = Vec::new();
    for generation in [0, 3] {
        write_generation(&source, generation);
        snapshots.push(backup_with_reference(&repo, None, &source, &references));
    }
    let target = work.path().join("target");
    let restore = |id: &str| {
        lsmvault_command(
            &repo,
            None,
            &[
                "restore",
                id,
                "--delta",
                "--target",
                target.to_str().unwrap(),
            ],
        )
    };
    let typical = time_ok(&mut restore(&snapshots[0].0));
    let mut kill_loop = KillLoop::new("restore --delta", 0xde17_a5ee, typical, 2);
    for iteration in 0..iterations {
        // Each round moves the target to the other snapshot.
        let (id, reference) = &snapshots[(iteration as usize + 1) % 2];
        let run = kill_loop.run(&mut restore(id));
        let context = format!("iteration {iteration} ({run:?})");
        if let Run::Finished(output) = &run {
            assert_success(output, &context);
        }
        time_ok(&mut restore(id));
        assert_same_tree(reference, &target);
    }
    let invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    invariants.check("end", false);
    kill_loop.finish();
}

#[test]
fn killed_repair_index_leaves_every_snapshot_restorable() {
    let iterations = kill_iterations(10);
    let work = tempfile::tempdir().unwrap();
    let (repo, source, references) = (
        work.path().join("repo"),
        work.path().join("db"),
        work.path().join("references"),
    );
    init_small_packs(&repo);
    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    for generation in 0..3 {
        write_generation(&source, generation);
        let (id, reference) = backup_with_reference(&repo, None, &source, &references);
        invariants.snapshots.insert(id, reference);
    }
    let repair = ["repair", "index"];
    let typical = time_ok(&mut lsmvault_command(&repo, None, &repair));
    let mut kill_loop = KillLoop::new("repair index", 0x4e9a_14ed, typical, 2);
    for iteration in 0..iterations {
        // Half the rounds start from a lost index file, so the repair has
        // something to rebuild.
        if kill_loop.random().below(2) == 0 {
            let index = fs::read_dir(repo.join("index"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            fs::remove_file(index).unwrap();
            time_ok(&mut lsmvault_command(&repo, None, &repair));
            let index = fs::read_dir(repo.join("index"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path();
            fs::remove_file(index).unwrap();
        }
        let run = kill_loop.run(&mut lsmvault_command(&repo, None, &repair));
        let context = format!("iteration {iteration} ({run:?})");
        if let Run::Finished(output) = &run {
            assert_success(output, &context);
        }
        time_ok(&mut lsmvault_command(&repo, None, &repair));
        invariants.check(&context, true);
    }
    invariants.check_read_data("end");
    kill_loop.finish();
}

/// When process `pid` started (`/proc/<pid>/stat` field 22), as lsmvault records it.
pub(crate) fn start_time_of(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

/// Regression, found by the 1,000-iteration kill loops (pid_max 32,768 here):
/// the exclusive lock of a killed `forget --prune` or `repair index` looked
/// live once another process got its pid, and blocked every command for 30
/// minutes. Locks now record their holder's start time.
#[test]
fn a_killed_commands_lock_does_not_block_once_its_pid_is_reused() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    // A live process of this host standing in for the one that reused the pid.
    let mut other = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = other.id();
    let host = nix::unistd::gethostname()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let now = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    let lock = |start: u64| {
        serde_json::json!({
            "version": 1, "kind": "exclusive", "host": host, "pid": pid,
            "purpose": "prune", "created": now, "refreshed": now, "process_start": start,
        })
        .to_string()
    };
    let locks = repo.join("locks");
    // The killed holder started at another time than the process now at its pid.
    fs::write(locks.join("killed"), lock(start_time_of(pid) + 1)).unwrap();
    lsmvault_ok(&repo, &["verify"]);
    // The same pid and start time: the holder itself, live; it still blocks.
    fs::write(locks.join("killed"), lock(start_time_of(pid))).unwrap();
    let output = lsmvault(&repo, &["verify"]);
    assert_eq!(
        output.status.code(),
        Some(lsmvault::ErrorCode::RepositoryLocked.exit_code())
    );
    let _ = other.kill();
    let _ = other.wait();
}
