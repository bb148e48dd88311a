//! Issue 13: an encrypted repository's `config` is bound to the master key
//! (format version 3). Any edit, or another repository's config, is refused
//! before anything is written; an encrypted version 2 repository (no
//! authenticator) is refused until `lsmvault migrate` binds it, and a
//! migrate killed at any point leaves version 2 (migrate again) or a working
//! version 3.
//!
//! Iterations of the kill loop: `LSMVAULT_KILL_ITERATIONS` (default 10).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::kill_loop::{kill_iterations, time_ok, KillLoop, Run};
use crate::common::lsmvault_with_password as run;
use crate::common::*;

const PASSWORD: &str = "config authentication password";
/// Exit code of `Error::ConfigNotAuthentic`.
const CONFIG_NOT_AUTHENTIC: i32 = 29;
/// Exit code of "unsupported version", which an unmigrated repository gets.
const UNSUPPORTED_VERSION: i32 = 12;

/// An encrypted repository with one snapshot of a small source.
struct Encrypted {
    _work: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
    source: PathBuf,
}

fn encrypted_repository() -> Encrypted {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().to_path_buf();
    let repo = root.join("repo");
    let source = root.join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(11, 300_000)).unwrap();
    fs::write(source.join("MANIFEST-000002"), seeded_bytes(12, 4_000)).unwrap();
    init_encrypted(&repo);
    assert_success(
        &run(&repo, Some(PASSWORD), &["backup", source.to_str().unwrap()]),
        "backup",
    );
    Encrypted {
        _work: work,
        root,
        repo,
        source,
    }
}

fn init_encrypted(repo: &Path) {
    assert_success(
        &run(repo, Some(PASSWORD), &["init", "--kdf-target-ms", "20"]),
        "init",
    );
}

fn read_config(repo: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap()
}

fn write_config(repo: &Path, config: &serde_json::Value) {
    fs::write(
        repo.join("config"),
        serde_json::to_vec_pretty(config).unwrap(),
    )
    .unwrap();
}

/// The JSON pointer of every leaf of `value` (found by walking it, so a
/// field added to the config later is covered without naming it).
fn leaves(value: &serde_json::Value, path: String, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                leaves(child, format!("{path}/{key}"), out);
            }
        }
        _ => out.push(path),
    }
}

/// `leaf` changed to another value of its type that this build still
/// parses (numbers one lower, the other cipher, strings extended).
fn edited(path: &str, leaf: &serde_json::Value) -> serde_json::Value {
    match leaf {
        serde_json::Value::Number(number) => (number.as_u64().unwrap() - 1).into(),
        serde_json::Value::String(_) if path == "/encryption/cipher" => "xchacha20-poly1305".into(),
        serde_json::Value::String(text) if path == "/authenticator" => {
            let flipped = if text.starts_with('0') { "1" } else { "0" };
            format!("{flipped}{}", &text[1..]).into()
        }
        serde_json::Value::String(text) => format!("{text}x").into(),
        other => panic!("{path}: unexpected leaf {other}"),
    }
}

/// Runs `backup` and `snapshots` against the edited repository: both are
/// refused with `code`, naming the config, and nothing is written.
fn assert_refused(fixture: &Encrypted, code: i32, what: &str) {
    let before = files_under(&fixture.repo);
    for args in [
        vec!["backup", fixture.source.to_str().unwrap()],
        vec!["snapshots"],
    ] {
        let output = run(&fixture.repo, Some(PASSWORD), &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{what}: {args:?}: {stderr}"
        );
        assert!(stderr.contains("config"), "{what}: {stderr}");
        assert!(stderr.contains("hint:"), "{what}: {stderr}");
    }
    assert_eq!(
        files_under(&fixture.repo),
        before,
        "{what}: a refused command wrote something"
    );
}

#[test]
fn every_edited_config_field_of_an_encrypted_repository_is_refused() {
    let fixture = encrypted_repository();
    let original = read_config(&fixture.repo);
    assert_eq!(original["version"], 3);
    assert_eq!(original["authenticator"].as_str().unwrap().len(), 64);
    let mut paths = Vec::new();
    leaves(&original, String::new(), &mut paths);
    assert!(paths.len() >= 13, "{paths:?}");
    for path in &paths {
        let mut config = original.clone();
        let leaf = config.pointer_mut(path).unwrap();
        *leaf = edited(path, leaf);
        write_config(&fixture.repo, &config);
        // The chunker's algorithm has one possible value: any other does not
        // parse, and is refused as a corrupt config instead.
        let code = if path == "/chunker/algorithm" {
            16
        } else {
            CONFIG_NOT_AUTHENTIC
        };
        assert_refused(&fixture, code, path);
    }
    // Fields removed, or one added, are edits too.
    for (field, code) in [
        ("authenticator", CONFIG_NOT_AUTHENTIC),
        ("encryption", CONFIG_NOT_AUTHENTIC),
    ] {
        let mut config = original.clone();
        config.as_object_mut().unwrap().remove(field);
        if field == "encryption" {
            config["encryption"] = serde_json::Value::Null;
        }
        write_config(&fixture.repo, &config);
        assert_refused(&fixture, code, field);
    }
    let mut config = original.clone();
    config["parity_smuggled"] = serde_json::json!({ "data": 10 });
    write_config(&fixture.repo, &config);
    assert_refused(&fixture, 16, "an unknown field");

    // Whitespace is not part of what is authenticated.
    fs::write(
        fixture.repo.join("config"),
        serde_json::to_vec(&original).unwrap(),
    )
    .unwrap();
    assert_success(
        &run(&fixture.repo, Some(PASSWORD), &["snapshots"]),
        "snapshots with the compact original config",
    );
}

#[test]
fn another_encrypted_repositorys_config_is_refused() {
    let fixture = encrypted_repository();
    let other = fixture.root.join("other");
    init_encrypted(&other);
    fs::copy(other.join("config"), fixture.repo.join("config")).unwrap();
    assert_refused(
        &fixture,
        CONFIG_NOT_AUTHENTIC,
        "another repository's config",
    );
    let output = run(&fixture.repo, Some(PASSWORD), &["snapshots"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("it was altered, or it belongs to another repository"),
        "{stderr}"
    );
    // `migrate` binds nothing that is already bound.
    let output = run(&fixture.repo, Some(PASSWORD), &["migrate"]);
    assert_eq!(output.status.code(), Some(CONFIG_NOT_AUTHENTIC));
}

/// Rewrites the config of a fresh repository to the version 2 form older
/// builds wrote (no authenticator).
fn downgrade_to_version_2(repo: &Path) {
    let mut config = read_config(repo);
    config["version"] = 2.into();
    config.as_object_mut().unwrap().remove("authenticator");
    write_config(repo, &config);
}

#[test]
fn an_encrypted_version_2_repository_is_refused_until_migrated() {
    let fixture = encrypted_repository();
    let first = fixture.root.join("first");
    assert_success(
        &run(
            &fixture.repo,
            Some(PASSWORD),
            &["restore", "latest", "--target", first.to_str().unwrap()],
        ),
        "restore before",
    );
    downgrade_to_version_2(&fixture.repo);
    for (args, password) in [
        (vec!["snapshots"], Some(PASSWORD)),
        (vec!["snapshots"], None),
        (
            vec!["backup", fixture.source.to_str().unwrap()],
            Some(PASSWORD),
        ),
        (vec!["verify"], Some(PASSWORD)),
    ] {
        let output = run(&fixture.repo, password, &args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(UNSUPPORTED_VERSION), "{stderr}");
        assert!(stderr.contains("not bound to the master key"), "{stderr}");
        assert!(stderr.contains("lsmvault migrate"), "{stderr}");
    }
    // `unlock` acts on nothing the config says: it works before migration
    // (a lock of a migrate killed elsewhere must be removable).
    assert_success(
        &run(&fixture.repo, Some(PASSWORD), &["unlock"]),
        "unlock before migrate",
    );
    // Without the password, migrate cannot bind anything.
    let output = run(&fixture.repo, None, &["migrate"]);
    assert_eq!(output.status.code(), Some(25));
    assert_eq!(read_config(&fixture.repo)["version"], 2);

    let printed = assert_success(&run(&fixture.repo, Some(PASSWORD), &["migrate"]), "migrate");
    assert!(printed.contains("format version 2 -> 3"), "{printed}");
    assert!(printed.contains("\"chunker\""), "{printed}");
    let config = read_config(&fixture.repo);
    assert_eq!(config["version"], 3);
    assert_eq!(config["authenticator"].as_str().unwrap().len(), 64);
    let again = assert_success(
        &run(&fixture.repo, Some(PASSWORD), &["migrate"]),
        "migrate again",
    );
    assert!(again.contains("nothing to migrate"), "{again}");

    let restored = fixture.root.join("restored");
    assert_success(
        &run(
            &fixture.repo,
            Some(PASSWORD),
            &["restore", "latest", "--target", restored.to_str().unwrap()],
        ),
        "restore after migrate",
    );
    assert_same_tree(&first, &restored);
    fs::write(fixture.source.join("000003.sst"), seeded_bytes(13, 200_000)).unwrap();
    assert_success(
        &run(
            &fixture.repo,
            Some(PASSWORD),
            &["backup", fixture.source.to_str().unwrap()],
        ),
        "backup after migrate",
    );
    let latest = fixture.root.join("latest");
    assert_success(
        &run(
            &fixture.repo,
            Some(PASSWORD),
            &["restore", "latest", "--target", latest.to_str().unwrap()],
        ),
        "restore of the backup after migrate",
    );
    assert_same_tree(&fixture.source, &latest);
    assert_success(
        &run(&fixture.repo, Some(PASSWORD), &["verify", "--read-data"]),
        "verify after migrate",
    );
}

#[test]
fn migrate_refuses_a_version_2_config_that_does_not_open_the_repository() {
    let fixture = encrypted_repository();
    downgrade_to_version_2(&fixture.repo);
    let mut config = read_config(&fixture.repo);
    config["encryption"]["cipher"] = "xchacha20-poly1305".into();
    write_config(&fixture.repo, &config);
    let before = fs::read(fixture.repo.join("config")).unwrap();
    let output = run(&fixture.repo, Some(PASSWORD), &["migrate"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(CONFIG_NOT_AUTHENTIC), "{stderr}");
    assert!(stderr.contains("opens none"), "{stderr}");
    assert_eq!(fs::read(fixture.repo.join("config")).unwrap(), before);
}

#[test]
fn plaintext_repositories_are_version_3_without_an_authenticator_and_version_2_ones_open() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(21, 100_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let config = read_config(&repo);
    assert_eq!(config["version"], 3);
    assert!(config.get("authenticator").is_none(), "{config}");
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    let mut config = config;
    config["version"] = 2.into();
    write_config(&repo, &config);
    lsmvault_ok(&repo, &["snapshots"]);
    let printed = lsmvault_ok(&repo, &["migrate"]);
    assert!(printed.contains("nothing to migrate"), "{printed}");
    assert_eq!(read_config(&repo)["version"], 2);
    // An authenticator in a plaintext config is an edit (encryption removed).
    config["authenticator"] = "0".repeat(64).into();
    write_config(&repo, &config);
    let output = lsmvault(&repo, &["snapshots"]);
    assert_eq!(output.status.code(), Some(CONFIG_NOT_AUTHENTIC));
}

#[test]
fn migrate_killed_at_random_points_leaves_version_2_or_a_working_version_3() {
    let iterations = kill_iterations(10);
    let fixture = encrypted_repository();
    let expected = fixture.root.join("expected");
    assert_success(
        &run(
            &fixture.repo,
            Some(PASSWORD),
            &["restore", "latest", "--target", expected.to_str().unwrap()],
        ),
        "restore before",
    );
    downgrade_to_version_2(&fixture.repo);
    let version_2 = fs::read(fixture.repo.join("config")).unwrap();
    let migrate = || lsmvault_command(&fixture.repo, Some(PASSWORD), &["migrate"]);
    // The kills spread over an uninterrupted migrate's runtime.
    let typical = time_ok(&mut migrate());
    let mut kills = KillLoop::new("migrate", 0x2545_f491_4f6c_dd1d, typical, 2);
    let (mut left_version_2, mut left_version_3) = (0, 0);
    for iteration in 0..iterations {
        fs::write(fixture.repo.join("config"), &version_2).unwrap();
        if let Run::Finished(output) = kills.run(&mut migrate()) {
            assert_success(&output, &format!("iteration {iteration}: migrate"));
        }
        let config = read_config(&fixture.repo);
        match config["version"].as_u64() {
            Some(2) => {
                left_version_2 += 1;
                assert_eq!(
                    fs::read(fixture.repo.join("config")).unwrap(),
                    version_2,
                    "iteration {iteration}: a version 2 config that is not the original"
                );
                let output = run(&fixture.repo, Some(PASSWORD), &["snapshots"]);
                assert_eq!(output.status.code(), Some(UNSUPPORTED_VERSION));
            }
            Some(3) => {
                left_version_3 += 1;
                assert_success(
                    &run(&fixture.repo, Some(PASSWORD), &["snapshots"]),
                    &format!("iteration {iteration}: snapshots after a killed migrate"),
                );
            }
            other => panic!("iteration {iteration}: config version {other:?}"),
        }
    }
    kills.finish();
    eprintln!("migrate kill loop: {left_version_2} left version 2, {left_version_3} version 3");
    // Whatever a kill left, migrate finishes the job and the data restores.
    assert_success(
        &run(&fixture.repo, Some(PASSWORD), &["migrate"]),
        "migrate after the kills",
    );
    let restored = fixture.root.join("restored");
    assert_success(
        &run(
            &fixture.repo,
            Some(PASSWORD),
            &["restore", "latest", "--target", restored.to_str().unwrap()],
        ),
        "restore after the kills",
    );
    assert_same_tree(&expected, &restored);
}
