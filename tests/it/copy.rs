//! `lsmvault copy`: snapshots from one repository into another, byte-exact,
//! moving only what the destination lacks; between repositories that hash
//! blobs differently (plaintext and encrypted, two keys); damage in the
//! source; kill -9 at random points; the archived WAL for point-in-time
//! restore from the copy.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::kill_loop::{kill_iterations, time_ok, KillLoop, Run};
use crate::common::*;
use crate::pitr::fake_database;

const MIB: usize = 1024 * 1024;

/// `lsmvault copy --from FROM` into `to`, with the passwords of both (or
/// none) in `LSMVAULT_PASSWORD` and `LSMVAULT_FROM_PASSWORD`.
fn copy_command(
    to: &Path,
    to_password: Option<&str>,
    from: &Path,
    from_password: Option<&str>,
    extra: &[&str],
) -> Command {
    let mut args = vec!["--json", "copy", "--from", from.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut command = lsmvault_command(to, to_password, &args);
    command
        .env_remove("LSMVAULT_FROM_PASSWORD_FILE")
        .env_remove("LSMVAULT_FROM_PASSWORD_COMMAND")
        .env_remove("LSMVAULT_FROM_REPOSITORY");
    match from_password {
        Some(password) => command.env("LSMVAULT_FROM_PASSWORD", password),
        None => command.env_remove("LSMVAULT_FROM_PASSWORD"),
    };
    command
}

/// Runs [`copy_command`] to its end.
fn copy_output(
    to: &Path,
    to_password: Option<&str>,
    from: &Path,
    from_password: Option<&str>,
    extra: &[&str],
) -> std::process::Output {
    copy_command(to, to_password, from, from_password, extra)
        .output()
        .unwrap()
}

fn copy_ok(
    to: &Path,
    to_password: Option<&str>,
    from: &Path,
    from_password: Option<&str>,
) -> serde_json::Value {
    let output = copy_output(to, to_password, from, from_password, &[]);
    let stdout = assert_success(&output, "copy");
    serde_json::from_str(&stdout).unwrap()
}

fn run_ok(repo: &Path, password: Option<&str>, args: &[&str]) -> String {
    let output = lsmvault_command(repo, password, args).output().unwrap();
    assert_success(&output, &format!("{args:?}"))
}

fn init(repo: &Path, password: Option<&str>) {
    match password {
        Some(_) => run_ok(repo, password, &["init", "--kdf-target-ms", "20"]),
        None => run_ok(repo, None, &["init", "--no-encryption"]),
    };
}

fn backup(repo: &Path, password: Option<&str>, source: &Path, extra: &[&str]) -> String {
    let mut args = vec!["--json", "backup", source.to_str().unwrap()];
    args.extend_from_slice(extra);
    let report: serde_json::Value = serde_json::from_str(&run_ok(repo, password, &args)).unwrap();
    report["id"].as_str().unwrap().to_string()
}

/// The snapshots of `repo` as (id, source path, original), oldest first.
fn listing(repo: &Path, password: Option<&str>) -> Vec<(String, String, Option<String>)> {
    let text = run_ok(repo, password, &["--json", "snapshots"]);
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["id"].as_str().unwrap().to_string(),
                entry["snapshot"]["source"].as_str().unwrap().to_string(),
                entry["snapshot"]["original"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn assert_restores(repo: &Path, password: Option<&str>, id: &str, expected: &Path, scratch: &Path) {
    let _ = fs::remove_dir_all(scratch);
    run_ok(
        repo,
        password,
        &["restore", id, "--target", scratch.to_str().unwrap()],
    );
    assert_same_tree(expected, scratch);
    fs::remove_dir_all(scratch).unwrap();
}

fn verify_read_data(repo: &Path, password: Option<&str>) {
    let text = run_ok(repo, password, &["--json", "verify", "--read-data"]);
    let report: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
}

/// Two databases-to-be: `one` (two random files, a small, an empty file and
/// a subdirectory) and `two` (one file shared with `one`, one of its own).
fn sources(root: &Path) -> (PathBuf, PathBuf) {
    let one = root.join("one");
    fs::create_dir_all(one.join("archive")).unwrap();
    fs::write(one.join("000001.sst"), seeded_bytes(1, 2 * MIB)).unwrap();
    fs::write(one.join("archive/000002.sst"), seeded_bytes(2, 3 * MIB / 2)).unwrap();
    fs::write(one.join("CURRENT"), "MANIFEST-000003\n").unwrap();
    fs::write(one.join("LOCK"), "").unwrap();
    std::os::unix::fs::symlink("000001.sst", one.join("link")).unwrap();
    let two = root.join("two");
    fs::create_dir_all(&two).unwrap();
    fs::copy(one.join("000001.sst"), two.join("000001.sst")).unwrap();
    fs::write(two.join("000009.sst"), seeded_bytes(9, MIB)).unwrap();
    (one, two)
}

/// Plaintext `from` holding a backup of [`sources`]' `one` (snapshot
/// `first`) then of `two` (`second`), and an empty plaintext `to`, all in
/// `work`.
struct TwoBackups {
    work: tempfile::TempDir,
    one: PathBuf,
    two: PathBuf,
    from: PathBuf,
    to: PathBuf,
    first: String,
    second: String,
}

/// [`TwoBackups`], each backup given its `extra` flags (tags).
fn two_backups(first_extra: &[&str], second_extra: &[&str]) -> TwoBackups {
    let work = tempfile::tempdir().unwrap();
    let (one, two) = sources(work.path());
    let from = work.path().join("from");
    let to = work.path().join("to");
    init(&from, None);
    let first = backup(&from, None, &one, first_extra);
    let second = backup(&from, None, &two, second_extra);
    init(&to, None);
    TwoBackups {
        work,
        one,
        two,
        from,
        to,
        first,
        second,
    }
}

/// Overwrites `file`, a read-only repository object, with `bytes` (damage).
fn damage(file: &Path, bytes: &[u8]) {
    let mut permissions = fs::metadata(file).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    fs::set_permissions(file, permissions).unwrap();
    fs::write(file, bytes).unwrap();
}

#[test]
fn a_copy_restores_byte_exact_and_a_second_copy_moves_nothing() {
    let fixture = two_backups(&["--tag", "a"], &[]);
    let (from, to) = (&fixture.from, &fixture.to);

    let report = copy_ok(to, None, from, None);
    assert_eq!(report["copied"].as_array().unwrap().len(), 2, "{report:#}");
    assert_eq!(report["ids_recomputed"], false);
    // The shared file travels once.
    let unique = (2 * MIB + 3 * MIB / 2 + MIB) as u64;
    let read = report["bytes_read"].as_u64().unwrap();
    assert!(read >= unique && read < unique + 64 * 1024, "{read}");

    let copied = listing(to, None);
    assert_eq!(copied.len(), 2);
    assert_eq!(
        copied[0].2.as_deref(),
        Some(fixture.first.as_str()),
        "origin recorded"
    );
    assert_eq!(copied[1].2.as_deref(), Some(fixture.second.as_str()));
    let scratch = fixture.work.path().join("scratch");
    assert_restores(to, None, &copied[0].0, &fixture.one, &scratch);
    assert_restores(to, None, &copied[1].0, &fixture.two, &scratch);
    verify_read_data(to, None);

    let again = copy_ok(to, None, from, None);
    assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again:#}");
    assert_eq!(again["already_present"].as_array().unwrap().len(), 2);
    for field in [
        "blobs_read",
        "bytes_read",
        "blobs_copied",
        "bytes_copied",
        "packs_written",
    ] {
        assert_eq!(again[field], 0, "{field}: {again:#}");
    }
    assert_eq!(listing(to, None).len(), 2);
}

#[test]
fn only_the_blobs_the_destination_lacks_travel() {
    let work = tempfile::tempdir().unwrap();
    let (one, two) = sources(work.path());
    let from = work.path().join("from");
    let to = work.path().join("to");
    init(&from, None);
    backup(&from, None, &two, &[]);
    init(&to, None);
    // The destination has `one` (and so 000001.sst) from a backup of its own.
    backup(&to, None, &one, &[]);

    let report = copy_ok(&to, None, &from, None);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1, "{report:#}");
    // Only 000009.sst (1 MiB) and the root tree travel.
    let read = report["bytes_read"].as_u64().unwrap();
    assert!(
        read >= MIB as u64 && read < (MIB + 16 * 1024) as u64,
        "{read}"
    );
    // What was read is exactly what was stored: nothing it had travelled.
    assert_eq!(report["blobs_read"], report["blobs_copied"], "{report:#}");
    assert_eq!(report["bytes_read"], report["bytes_copied"], "{report:#}");
    let copied = listing(&to, None);
    let copy = copied.iter().find(|entry| entry.2.is_some()).unwrap();
    assert_restores(&to, None, &copy.0, &two, &work.path().join("scratch"));
    verify_read_data(&to, None);
}

#[test]
fn plaintext_to_encrypted_and_between_two_keys_round_trip() {
    let work = tempfile::tempdir().unwrap();
    let (one, two) = sources(work.path());
    let plain = work.path().join("plain");
    let first_key = work.path().join("first");
    let second_key = work.path().join("second");
    init(&plain, None);
    let original = backup(&plain, None, &one, &[]);
    backup(&plain, None, &two, &[]);
    init(&first_key, Some("first"));
    init(&second_key, Some("second"));

    let report = copy_ok(&first_key, Some("first"), &plain, None);
    assert_eq!(report["ids_recomputed"], true);
    assert_eq!(report["copied"].as_array().unwrap().len(), 2);
    let report = copy_ok(&second_key, Some("second"), &first_key, Some("first"));
    assert_eq!(report["ids_recomputed"], true);
    assert_eq!(report["copied"].as_array().unwrap().len(), 2);
    // Along a chain of copies the origin stays the first backup's id.
    let copied = listing(&second_key, Some("second"));
    assert_eq!(copied[0].2.as_deref(), Some(original.as_str()));
    let scratch = work.path().join("scratch");
    assert_restores(&second_key, Some("second"), &copied[0].0, &one, &scratch);
    assert_restores(&second_key, Some("second"), &copied[1].0, &two, &scratch);
    verify_read_data(&second_key, Some("second"));
    verify_read_data(&first_key, Some("first"));

    // Nothing moves again, from either repository of the chain; and back
    // into the plaintext one, whose snapshots are the origins.
    for (from, password) in [(&first_key, Some("first")), (&plain, None)] {
        let again = copy_ok(&second_key, Some("second"), from, password);
        assert_eq!(again["copied"].as_array().unwrap().len(), 0, "{again:#}");
        assert_eq!(again["bytes_read"], 0);
    }
    let back = copy_ok(&plain, None, &second_key, Some("second"));
    assert_eq!(back["copied"].as_array().unwrap().len(), 0, "{back:#}");
    assert_eq!(listing(&plain, None).len(), 2);
}

#[test]
fn a_damaged_source_blob_fails_the_copy_naming_it_and_writes_no_snapshot() {
    let fixture = three_pack_fixture();
    let (pack, offset) = chunk_of(&fixture.repo, "000002.sst");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset + 100] ^= 0xff;
    damage(&pack, &bytes);

    let to = fixture.root.join("to");
    init(&to, None);
    let output = copy_output(&to, None, &fixture.repo, None, &[]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let pack_name = pack.file_name().unwrap().to_str().unwrap();
    assert!(
        stderr.contains("blob") && stderr.contains(pack_name),
        "{stderr}"
    );
    assert!(listing(&to, None).is_empty(), "no snapshot written");
    run_ok(&to, None, &["verify"]);
}

#[test]
fn a_copy_killed_at_random_points_leaves_the_destination_consistent() {
    kill_loop_into(None, 0xc0_9e5eed);
}

#[test]
fn a_copy_recomputing_ids_killed_at_random_points_leaves_the_destination_consistent() {
    kill_loop_into(Some("destination"), 0x4e_4a5eed);
}

/// Copies three snapshots from a plaintext repository into a fresh
/// destination (encrypted with `password`, or plaintext), killing each copy
/// at a random point: what the destination lists restores byte-exact,
/// verify passes, and the next copy completes.
fn kill_loop_into(password: Option<&str>, seed: u64) {
    let work = tempfile::tempdir().unwrap();
    let (one, two) = sources(work.path());
    let three = work.path().join("three");
    fs::create_dir(&three).unwrap();
    fs::write(three.join("000011.sst"), seeded_bytes(11, 3 * MIB)).unwrap();
    let from = work.path().join("from");
    init(&from, None);
    let mut expected = std::collections::BTreeMap::new();
    for source in [&one, &two, &three] {
        expected.insert(backup(&from, None, source, &[]), source.clone());
    }
    let empty = work.path().join("empty");
    init(&empty, password);
    let to = work.path().join("to");
    copy_tree(&empty, &to);
    let typical = time_ok(&mut copy_command(&to, password, &from, None, &[]));
    let scratch = work.path().join("scratch");
    let mut kill_loop = KillLoop::new("copy", seed, typical, 2);
    for iteration in 0..kill_iterations(4) {
        fs::remove_dir_all(&to).unwrap();
        copy_tree(&empty, &to);
        if let Run::Finished(output) =
            kill_loop.run(&mut copy_command(&to, password, &from, None, &[]))
        {
            assert_success(&output, "copy");
        }
        let context = format!("iteration {iteration}");
        // Whatever was committed is whole; nothing partial is listed.
        run_ok(&to, password, &["verify"]);
        for (id, _, origin) in listing(&to, password) {
            let origin = origin.unwrap_or_else(|| panic!("{context}: {id} has no origin"));
            assert_restores(&to, password, &id, &expected[&origin], &scratch);
        }
        // The next copy completes.
        copy_ok(&to, password, &from, None);
        assert_eq!(listing(&to, password).len(), 3, "{context}");
    }
    verify_read_data(&to, password);
    kill_loop.finish();
}

#[test]
fn the_wal_archive_travels_and_point_in_time_restore_works_from_the_copy() {
    use lsmvault::lsm::log::encode_log;
    use lsmvault::lsm::write_batch::encode_write_batch;
    let work = tempfile::tempdir().unwrap();
    let from = work.path().join("from");
    let to = work.path().join("to");
    init(&from, None);
    // Segment 5 holds sequences 1..=30 (the snapshot), segment 7 31..=60.
    let db = fake_database(
        work.path(),
        &[(5, (1..=30).map(|sequence| (sequence, 1)).collect())],
    );
    backup(&from, None, &db, &[]);
    let records: Vec<Vec<u8>> = (31..=60)
        .map(|sequence| encode_write_batch(sequence, 1, &seeded_bytes(sequence, 500)))
        .collect();
    fs::write(db.join("000007.log"), encode_log(&records, None)).unwrap();
    run_ok(&from, None, &["wal", "archive", db.to_str().unwrap()]);
    init(&to, Some("key"));

    let report = copy_ok(&to, Some("key"), &from, None);
    assert!(
        report["wal_records_copied"].as_u64().unwrap() >= 2,
        "{report:#}"
    );
    let again = copy_ok(&to, Some("key"), &from, None);
    assert_eq!(again["wal_records_copied"], 0, "{again:#}");
    assert_eq!(again["bytes_read"], 0, "{again:#}");

    let restore = |repo: &Path, password: Option<&str>, target: &Path| {
        run_ok(
            repo,
            password,
            &[
                "restore",
                "--seq",
                "45",
                "--target",
                target.to_str().unwrap(),
            ],
        );
    };
    let expected = work.path().join("expected");
    let actual = work.path().join("actual");
    restore(&from, None, &expected);
    restore(&to, Some("key"), &actual);
    // The same files with the same bytes (the cut segment's mtime is the
    // restore's).
    assert_eq!(files_under(&expected), files_under(&actual));
    for file in files_under(&expected) {
        assert_eq!(
            fs::read(expected.join(&file)).unwrap(),
            fs::read(actual.join(&file)).unwrap(),
            "{}",
            file.display()
        );
    }
    assert!(expected.join("000007.log").is_file());
    verify_read_data(&to, Some("key"));
}

#[test]
fn copy_refuses_the_same_repository_and_names_a_missing_source() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    init(&repo, None);
    let output = copy_output(&repo, None, &repo, None, &[]);
    assert_eq!(output.status.code(), Some(22));
    assert!(String::from_utf8_lossy(&output.stderr).contains("same repository"));
    let missing = work.path().join("missing");
    let output = copy_output(&repo, None, &missing, None, &[]);
    assert_eq!(output.status.code(), Some(10));
    assert!(String::from_utf8_lossy(&output.stderr).contains("missing"));
}

#[test]
fn the_source_password_comes_from_its_own_flags_never_the_destinations() {
    let work = tempfile::tempdir().unwrap();
    let from = work.path().join("from");
    let to = work.path().join("to");
    init(&from, Some("same"));
    init(&to, Some("same"));
    // LSMVAULT_PASSWORD opens the destination only.
    let output = copy_output(&to, Some("same"), &from, None, &[]);
    assert_eq!(output.status.code(), Some(25));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(from.to_str().unwrap()), "{stderr}");
    assert!(stderr.contains("--from-password-file"), "{stderr}");
    // A password file for the source.
    let file = work.path().join("from.pass");
    fs::write(&file, "same\n").unwrap();
    let output = copy_output(
        &to,
        Some("same"),
        &from,
        None,
        &["--from-password-file", file.to_str().unwrap()],
    );
    assert_success(&output, "copy with --from-password-file");
    let output = copy_output(&to, Some("same"), &from, Some("wrong"), &[]);
    assert_eq!(output.status.code(), Some(26));
}

#[test]
fn an_interrupted_copy_exits_130_releases_its_locks_and_commits_nothing() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(21, 8 * MIB)).unwrap();
    let from = work.path().join("from");
    let to = work.path().join("to");
    init(&from, None);
    backup(&from, None, &source, &[]);
    init(&to, None);
    // At 2 MiB/s the copy takes about 4 s: SIGINT lands in the middle.
    let child = copy_command(&to, None, &from, None, &["--limit-download", "2MiB"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(listing(&to, None).is_empty());
    for repo in [&from, &to] {
        assert!(
            files_under(&repo.join("locks")).is_empty(),
            "{}",
            repo.display()
        );
    }
    run_ok(&to, None, &["verify"]);
    let report = copy_ok(&to, None, &from, None);
    assert_eq!(report["copied"].as_array().unwrap().len(), 1);
}

#[test]
fn named_snapshots_and_filters_choose_what_is_copied() {
    // `_work` keeps the temporary directory alive (`..` would drop it).
    let TwoBackups {
        work: _work,
        from,
        to,
        first,
        second,
        ..
    } = two_backups(&["--tag", "a"], &["--tag", "b"]);
    let copied = |report: &serde_json::Value| -> Vec<String> {
        report["copied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["source"].as_str().unwrap().to_string())
            .collect()
    };
    let run = |extra: &[&str]| -> serde_json::Value {
        let output = copy_output(&to, None, &from, None, extra);
        serde_json::from_str(&assert_success(&output, &format!("copy {extra:?}"))).unwrap()
    };
    assert_eq!(copied(&run(&["--tag", "b"])), vec![second.clone()]);
    assert_eq!(copied(&run(&[&first[..8]])), vec![first.clone()]);
    assert!(
        copied(&run(&["latest"])).is_empty(),
        "latest is there already"
    );
    let output = copy_output(&to, None, &from, None, &["latest:nope"]);
    assert_eq!(
        output.status.code(),
        Some(13),
        "an unknown snapshot is named"
    );
}

#[test]
fn a_damaged_source_snapshot_file_is_named_and_the_others_are_copied() {
    // `_work` keeps the temporary directory alive (`..` would drop it).
    let TwoBackups {
        work: _work,
        from,
        to,
        first: damaged,
        second: intact,
        ..
    } = two_backups(&[], &[]);
    damage(&from.join("snapshots").join(&damaged), b"{ not a snapshot");
    let output = copy_output(&to, None, &from, None, &[]);
    let report: serde_json::Value = serde_json::from_str(&assert_success(&output, "copy")).unwrap();
    assert_eq!(report["copied"][0]["source"], intact.as_str(), "{report:#}");
    assert_eq!(report["copied"].as_array().unwrap().len(), 1);
    assert!(report["warnings"][0].as_str().unwrap().contains(&damaged));
    assert!(String::from_utf8_lossy(&output.stderr).contains(&damaged));
}
