//! Issue 13, containment (items 1, 4 and 11): one damaged snapshot file, key
//! file or lock file is named and skipped, and every other command carries
//! on; prune refuses to delete data while a snapshot is unreadable; point-in-
//! time restore, `wal ls` and `restore latest` skip and name damaged snapshots.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::*;
use lsmvault::lsm::log::encode_log;
use lsmvault::lsm::write_batch::encode_write_batch;

const PASSWORD: &str = "containment test password";

/// A repository (plaintext or encrypted) with three snapshots of a small
/// source that changes between them.
struct Fixture {
    _work: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    source: PathBuf,
    encrypted: bool,
    /// Snapshot ids (64 hex digits), oldest first.
    snapshots: Vec<String>,
}

impl Fixture {
    fn new(encrypted: bool) -> Fixture {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().to_path_buf();
        let repo = root.join("repo");
        let source = root.join("db");
        fs::create_dir(&source).unwrap();
        let mut fixture = Fixture {
            _work: work,
            root,
            repo,
            source,
            encrypted,
            snapshots: Vec::new(),
        };
        let init: &[&str] = if encrypted {
            &["init", "--kdf-target-ms", "20"]
        } else {
            &["init", "--no-encryption"]
        };
        fixture.ok(init);
        for generation in 1..=3u64 {
            fs::write(
                fixture.source.join(format!("{generation:06}.sst")),
                seeded_bytes(generation, 200_000),
            )
            .unwrap();
            fixture.ok(&["backup", "--full", fixture.source.to_str().unwrap()]);
        }
        fixture.snapshots = fixture.snapshot_ids();
        assert_eq!(fixture.snapshots.len(), 3);
        fixture
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(binary());
        command
            .arg("--repo")
            .arg(&self.repo)
            .args(args)
            .env_remove("LSMVAULT_REPOSITORY")
            .env_remove("LSMVAULT_PASSWORD_FILE")
            .env_remove("LSMVAULT_NEW_PASSWORD");
        if self.encrypted {
            command.env("LSMVAULT_PASSWORD", PASSWORD);
        } else {
            command.env_remove("LSMVAULT_PASSWORD");
        }
        command.output().expect("running lsmvault")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "lsmvault {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
    }

    /// Intact snapshot ids, oldest first (from `snapshots --json` in either shape).
    fn snapshot_ids(&self) -> Vec<String> {
        let value = self.json(&["snapshots"]);
        let list = value.get("snapshots").unwrap_or(&value);
        list.as_array()
            .unwrap()
            .iter()
            .map(|entry| entry["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn snapshot_file(&self, id: &str) -> PathBuf {
        self.repo.join("snapshots").join(id)
    }

    /// Names of every object in a directory of the repository (recursively).
    fn objects(&self, directory: &str) -> Vec<String> {
        let mut names = Vec::new();
        let mut pending = vec![self.repo.join(directory)];
        while let Some(path) = pending.pop() {
            for entry in fs::read_dir(&path).unwrap() {
                let entry = entry.unwrap();
                if entry.file_type().unwrap().is_dir() {
                    pending.push(entry.path());
                } else {
                    names.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
        }
        names.sort();
        names
    }
}

fn flip_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

/// The exit code of a bit-flipped snapshot file: it no longer hashes to its
/// name (plaintext) or fails authentication (encrypted).
fn damage_code(encrypted: bool) -> i32 {
    if encrypted {
        27
    } else {
        15
    }
}

/// Item 1: with the middle snapshot bit-flipped, listing, restore of the
/// others, backup (parent choice), stats and forget keep working and name it.
fn damaged_snapshot_is_contained(encrypted: bool) {
    let fixture = Fixture::new(encrypted);
    let damaged = fixture.snapshots[1].clone();
    flip_byte(&fixture.snapshot_file(&damaged));

    // snapshots: the two intact ones, a warning naming the damaged one.
    let listing = fixture.run(&["snapshots"]);
    assert!(listing.status.success(), "{}", stderr_text(&listing));
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains("2 snapshot(s)"), "{text}");
    assert!(
        stderr_text(&listing).contains(&damaged),
        "{}",
        stderr_text(&listing)
    );
    let value = fixture.json(&["snapshots"]);
    assert_eq!(value["snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(value["damaged"][0]["name"], damaged.as_str());

    // restore of the other snapshots, by id prefix and by `latest`.
    for (selector, expected_files) in [(&fixture.snapshots[0][..10], 1), ("latest", 3)] {
        let target = fixture.root.join(format!("restore-{selector}"));
        fixture.ok(&["restore", selector, "--target", target.to_str().unwrap()]);
        assert_eq!(fs::read_dir(&target).unwrap().count(), expected_files);
    }
    // restore of the damaged one fails naming it.
    let target = fixture.root.join("restore-damaged");
    let refused = fixture.run(&[
        "restore",
        &damaged[..12],
        "--target",
        target.to_str().unwrap(),
    ]);
    assert_eq!(
        refused.status.code(),
        Some(damage_code(encrypted)),
        "{}",
        stderr_text(&refused)
    );
    assert!(
        stderr_text(&refused).contains(&damaged),
        "{}",
        stderr_text(&refused)
    );

    // backup (incremental: chooses a parent among the intact snapshots) and stats.
    fixture.ok(&["backup", fixture.source.to_str().unwrap()]);
    fixture.ok(&["diff", &fixture.snapshots[0], "latest"]);
    let stats = fixture.json(&["stats"]);
    assert_eq!(stats["snapshots"].as_array().unwrap().len(), 3);
    assert_eq!(stats["damaged_snapshots"][0]["name"], damaged.as_str());

    // forget by policy keeps the damaged one (its time is unknown) and names it.
    let report = fixture.json(&["forget", "--keep-last", "2"]);
    assert_eq!(report["removed"].as_array().unwrap().len(), 1);
    assert_eq!(report["damaged"][0]["name"], damaged.as_str());
    assert!(fixture.snapshot_file(&damaged).exists());

    // forget by a prefix of the damaged file's name removes it.
    fixture.ok(&["forget", &damaged[..10]]);
    assert!(!fixture.snapshot_file(&damaged).exists());
    let value = fixture.json(&["snapshots"]);
    assert_eq!(value.as_array().unwrap().len(), 2, "{value}");
}

#[test]
fn a_damaged_snapshot_file_blocks_no_other_command_plaintext() {
    damaged_snapshot_is_contained(false);
}

#[test]
fn a_damaged_snapshot_file_blocks_no_other_command_encrypted() {
    damaged_snapshot_is_contained(true);
}

/// Item 1, prune: the blobs a damaged snapshot needs are unknown, so prune
/// refuses (deleting nothing) and says to forget it; after `forget` it runs.
#[test]
fn prune_refuses_while_a_snapshot_file_is_damaged() {
    let fixture = Fixture::new(false);
    let damaged = fixture.snapshots[0].clone();
    // Make the oldest snapshot's only file unreferenced by the others, so a
    // prune that ignored the damaged snapshot would delete its data.
    fs::remove_file(fixture.source.join("000001.sst")).unwrap();
    fixture.ok(&["backup", "--full", fixture.source.to_str().unwrap()]);
    fixture.ok(&["forget", &fixture.snapshots[1], &fixture.snapshots[2]]);
    flip_byte(&fixture.snapshot_file(&damaged));
    let packs_before = fixture.objects("data");
    let index_before = fixture.objects("index");

    let refused = fixture.run(&["prune"]);
    assert_eq!(
        refused.status.code(),
        Some(damage_code(false)),
        "{}",
        stderr_text(&refused)
    );
    let message = stderr_text(&refused);
    assert!(message.contains(&damaged), "{message}");
    assert!(message.contains("forget"), "{message}");
    assert_eq!(fixture.objects("data"), packs_before);
    assert_eq!(fixture.objects("index"), index_before);

    // `forget --prune` of another snapshot forgets, then prune still refuses.
    let refused = fixture.run(&["forget", "--keep-last", "1", "--prune"]);
    assert_eq!(
        refused.status.code(),
        Some(damage_code(false)),
        "{}",
        stderr_text(&refused)
    );
    assert_eq!(fixture.objects("data"), packs_before);

    fixture.ok(&["forget", &damaged]);
    fixture.ok(&["prune"]);
    assert_ne!(fixture.objects("data"), packs_before);
    fixture.ok(&["verify", "--read-data"]);
}

/// Item 4: truncated, garbage and foreign-version key files sorting before
/// the real one do not stop the owner; `key list` shows them as damaged and
/// `key remove` deletes them; a wrong password names them.
#[test]
fn a_corrupt_key_file_does_not_lock_the_owner_out() {
    let fixture = Fixture::new(true);
    let keys = fixture.repo.join("keys");
    let real = fixture.objects("keys");
    assert_eq!(real.len(), 1);
    let real_bytes = fs::read(keys.join(&real[0])).unwrap();
    let truncated = format!("{}1", "0".repeat(63));
    let garbage = format!("{}2", "0".repeat(63));
    let newer = format!("{}3", "0".repeat(63));
    fs::write(keys.join(&truncated), &real_bytes[..real_bytes.len() / 3]).unwrap();
    fs::write(keys.join(&garbage), b"\x00\xffnot json at all").unwrap();
    let mut newer_file: serde_json::Value = serde_json::from_slice(&real_bytes).unwrap();
    newer_file["version"] = serde_json::json!(99);
    fs::write(keys.join(&newer), serde_json::to_vec(&newer_file).unwrap()).unwrap();

    // Opening still works, whatever the directory order.
    assert_eq!(fixture.snapshot_ids(), fixture.snapshots);
    fixture.ok(&["backup", fixture.source.to_str().unwrap()]);

    // key list shows the unparseable ones as damaged.
    let listing = fixture.json(&["key", "list"]);
    let damaged: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .filter(|key| key.get("damaged").is_some())
        .map(|key| key["name"].as_str().unwrap())
        .collect();
    assert_eq!(damaged, [truncated.as_str(), garbage.as_str()], "{listing}");
    let text = fixture.ok(&["key", "list"]);
    assert!(text.contains("DAMAGED"), "{text}");

    // A wrong password fails as such, naming the skipped key files.
    let mut command = Command::new(binary());
    let wrong = command
        .arg("--repo")
        .arg(&fixture.repo)
        .arg("snapshots")
        .env_remove("LSMVAULT_PASSWORD_FILE")
        .env("LSMVAULT_PASSWORD", "not the password")
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(26), "{}", stderr_text(&wrong));
    assert!(
        stderr_text(&wrong).contains(&truncated),
        "{}",
        stderr_text(&wrong)
    );

    // key remove deletes corrupt key files; the real key still opens.
    fixture.ok(&["key", "remove", &truncated]);
    fixture.ok(&["key", "remove", &garbage[..12]]);
    fixture.ok(&["key", "remove", &newer]);
    assert_eq!(fixture.objects("keys"), real);
    assert_eq!(fixture.snapshot_ids().len(), 4);
}

fn write_lock(fixture: &Fixture, name: &str, bytes: &[u8]) -> PathBuf {
    let path = fixture.repo.join("locks").join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Item 11: a lock object that does not parse is nobody's live lock:
/// locking commands ignore it; `unlock` removes it and names it.
#[test]
fn a_corrupt_lock_file_blocks_no_locking_command() {
    let fixture = Fixture::new(false);
    let name = "c".repeat(64);
    let lock = write_lock(&fixture, &name, b"{\"version\": 1, \"kind\": \"exclu");
    fixture.ok(&["backup", fixture.source.to_str().unwrap()]);
    let target = fixture.root.join("restored");
    fixture.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    fixture.ok(&["forget", "--keep-last", "3"]);
    fixture.ok(&["prune"]);
    fixture.ok(&["verify"]);
    assert!(lock.exists(), "only unlock removes it");

    let report = fixture.json(&["unlock"]);
    assert_eq!(report["removed"], 1);
    assert_eq!(report["corrupt"][0], name.as_str());
    assert!(!lock.exists());

    // --remove-all never fails on one either.
    let lock = write_lock(&fixture, &name, b"\x00garbage");
    let report = fixture.json(&["unlock", "--remove-all"]);
    assert_eq!(report["removed"], 1);
    assert_eq!(report["corrupt"][0], name.as_str());
    assert!(!lock.exists());
}

/// Item 11, the other side: a lock of a newer format is not corrupt, it
/// cannot be judged, so locking commands and `unlock` refuse it (exit 12);
/// only `unlock --remove-all` removes it.
#[test]
fn a_lock_of_a_newer_version_is_still_refused() {
    let fixture = Fixture::new(false);
    let lock = write_lock(
        &fixture,
        &"d".repeat(64),
        br#"{"version": 2, "kind": "exclusive", "future_field": true}"#,
    );
    for args in [
        vec!["backup", fixture.source.to_str().unwrap()],
        vec!["prune"],
        vec!["unlock"],
    ] {
        let refused = fixture.run(&args);
        assert_eq!(
            refused.status.code(),
            Some(12),
            "{args:?}: {}",
            stderr_text(&refused)
        );
        assert!(
            stderr_text(&refused).contains("version 2"),
            "{}",
            stderr_text(&refused)
        );
    }
    assert!(lock.exists());
    let report = fixture.json(&["unlock", "--remove-all"]);
    assert_eq!(report["removed"], 1);
    assert!(!lock.exists());
    fixture.ok(&["backup", fixture.source.to_str().unwrap()]);
}

/// Item 4, a key file from another repository under the same password: it
/// unwraps, but its master key opens none of this repository's objects, so
/// opening passes it over for the real key, whatever the directory order
/// (eight copies under different names: some list before the real key).
#[test]
fn a_key_file_of_another_repository_does_not_lock_the_owner_out() {
    let fixture = Fixture::new(true);
    let other = Fixture::new(true);
    let foreign = fs::read(other.repo.join("keys").join(&other.objects("keys")[0])).unwrap();
    for copy in 0..8u8 {
        let name = format!("{:02x}", copy * 32).repeat(32);
        fs::write(fixture.repo.join("keys").join(name), &foreign).unwrap();
    }
    assert_eq!(fixture.snapshot_ids(), fixture.snapshots);
    fixture.ok(&["backup", fixture.source.to_str().unwrap()]);
    let target = fixture.root.join("restored");
    fixture.ok(&["restore", "latest", "--target", target.to_str().unwrap()]);
    fixture.ok(&["verify", "--read-data"]);
}

/// Runs `lsmvault` and panics unless it succeeds; returns (stdout, stderr).
fn succeed(repo: &Path, args: &[&str]) -> (String, String) {
    let output = lsmvault(repo, args);
    let err = stderr_text(&output);
    assert!(output.status.success(), "lsmvault {args:?}: {err}");
    (String::from_utf8_lossy(&output.stdout).into_owned(), err)
}

/// Item 1, point-in-time restore: with the newer of two snapshots of a
/// database damaged, `restore --seq` starts from the intact one, replays the
/// WAL and names the damaged file; a target only the damaged one could serve
/// is refused naming it, writing nothing.
#[test]
fn point_in_time_restore_skips_and_names_a_damaged_snapshot_file() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = crate::pitr::fake_database(
        work.path(),
        &[(5, (1..=30).map(|sequence| (sequence, 1)).collect())],
    );
    let db_arg = db.to_str().unwrap();
    lsmvault_ok(&repo, &["backup", db_arg]);
    let records: Vec<Vec<u8>> = (31..=60)
        .map(|sequence| encode_write_batch(sequence, 1, &[0x66; 300]))
        .collect();
    fs::write(db.join("000007.log"), encode_log(&records, None)).unwrap();
    lsmvault_ok(&repo, &["wal", "archive", db_arg]);
    let newer = lsmvault_json(&repo, &["backup", db_arg]);
    assert_eq!(newer["snapshot"]["database"]["last_sequence"], 60);
    let ids: Vec<String> = lsmvault_json(&repo, &["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap().to_string())
        .collect();
    let (intact, damaged) = (&ids[0], &ids[1]);
    flip_byte(&repo.join("snapshots").join(damaged));

    // restore --seq: from the intact snapshot plus the WAL, naming the damaged one.
    let target = work.path().join("pitr");
    let args = ["--json", "restore", "--seq", "50", "--target"];
    let (out, err) = succeed(&repo, &[&args[..], &[target.to_str().unwrap()]].concat());
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["snapshot"], intact.as_str());
    assert_eq!(report["restored_sequence"], 50);
    assert_eq!(report["damaged_snapshots"][0]["name"], damaged.as_str());
    assert!(err.contains(damaged.as_str()), "{err}");
    // A target only the damaged snapshot could serve is refused naming it.
    let gone = work.path().join("gone");
    lsmvault_ok(&repo, &["forget", intact]);
    let refused = lsmvault(
        &repo,
        &["restore", "--seq", "60", "-t", gone.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(28), "{}", stderr_text(&refused));
    assert!(
        stderr_text(&refused).contains(damaged.as_str()),
        "{}",
        stderr_text(&refused)
    );
    assert!(!gone.exists());
}

/// Two snapshots of a fake database with archived WAL, the newer one
/// bit-flipped: (work dir, repository, intact id, damaged id).
fn pitr_with_newer_snapshot_damaged() -> (tempfile::TempDir, PathBuf, String, String) {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = crate::pitr::fake_database(
        work.path(),
        &[(5, (1..=30).map(|sequence| (sequence, 1)).collect())],
    );
    let db_arg = db.to_str().unwrap();
    lsmvault_ok(&repo, &["wal", "archive", db_arg]);
    lsmvault_ok(&repo, &["backup", db_arg]);
    fs::write(db.join("extra.sst"), seeded_bytes(9, 10_000)).unwrap();
    lsmvault_ok(&repo, &["backup", db_arg]);
    let ids: Vec<String> = lsmvault_json(&repo, &["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap().to_string())
        .collect();
    flip_byte(&repo.join("snapshots").join(&ids[1]));
    (work, repo, ids[0].clone(), ids[1].clone())
}

/// Item 1, the WAL timeline: the damaged snapshot opens no window and is
/// named on stderr (both output modes); the rest of the timeline is shown.
#[test]
fn wal_ls_skips_and_names_a_damaged_snapshot_file() {
    let (_work, repo, intact, damaged) = pitr_with_newer_snapshot_damaged();
    let (out, err) = succeed(&repo, &["--json", "wal", "ls"]);
    let timeline: serde_json::Value = serde_json::from_str(&out).unwrap();
    let windows = timeline[0]["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 1, "{timeline}");
    assert_eq!(windows[0]["snapshot"], intact.as_str());
    assert!(err.contains(damaged.as_str()), "{err}");
    let (text, err) = succeed(&repo, &["wal", "ls"]);
    assert!(text.contains("database fake-db-identity"), "{text}");
    assert!(err.contains(damaged.as_str()), "{err}");
}

/// Item 1, `restore latest`: it restores the newest intact snapshot and
/// names the damaged file it skipped (whose time is unknown, so it may be
/// newer); a restore by full id chooses nothing and warns about nothing.
#[test]
fn restore_latest_names_a_damaged_snapshot_file_it_skipped() {
    let (work, repo, intact, damaged) = pitr_with_newer_snapshot_damaged();
    let latest = work.path().join("latest");
    let (_, err) = succeed(
        &repo,
        &["restore", "latest", "-t", latest.to_str().unwrap()],
    );
    assert!(err.contains(damaged.as_str()), "{err}");
    assert!(latest.join("IDENTITY").exists());
    assert!(!latest.join("extra.sst").exists(), "the intact (older) one");
    let by_id = work.path().join("by-id");
    let (_, err) = succeed(&repo, &["restore", &intact, "-t", by_id.to_str().unwrap()]);
    assert!(!err.contains(damaged.as_str()), "{err}");
    assert!(by_id.join("IDENTITY").exists());
}
