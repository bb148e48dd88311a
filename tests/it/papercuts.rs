//! What a restic user trips over (issue 15, items 6, 9, 10): times with
//! zones, private repository files, and the small refusals and messages.

use std::fs;
use std::time::{Duration, SystemTime};

use crate::common::*;
use crate::pitr::fake_database;

/// `when` written as local time at `offset_minutes` east of UTC, RFC 3339.
fn with_offset(when: SystemTime, offset_minutes: i64, lowercase: bool) -> String {
    let shift = Duration::from_secs(offset_minutes.unsigned_abs() * 60);
    let wall = if offset_minutes >= 0 {
        when + shift
    } else {
        when - shift
    };
    let sign = if offset_minutes < 0 { '-' } else { '+' };
    let text = format!(
        "{}{sign}{:02}:{:02}",
        humantime::format_rfc3339_millis(wall)
            .to_string()
            .trim_end_matches('Z'),
        offset_minutes.abs() / 60,
        offset_minutes.abs() % 60
    );
    if lowercase {
        text.to_lowercase()
    } else {
        text
    }
}

#[test]
fn restore_at_takes_rfc3339_offsets_and_echoes_the_instant_in_utc() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(
        work.path(),
        &[(5, (1..=30).map(|sequence| (sequence, 1)).collect())],
    );
    lsmvault_ok(&repo, &["backup", db.to_str().unwrap()]);
    let later = SystemTime::now() + Duration::from_secs(2);
    let utc = humantime::format_rfc3339_millis(later).to_string();
    for (index, given) in [
        with_offset(later, 60, false),
        with_offset(later, -330, false),
        with_offset(later, 0, true),
        utc.replace('Z', "z").replace('T', "t"),
    ]
    .into_iter()
    .enumerate()
    {
        let target = work.path().join(format!("at-{index}"));
        let text = lsmvault_ok(
            &repo,
            &[
                "restore",
                "--at",
                &given,
                "--target",
                target.to_str().unwrap(),
            ],
        );
        // Both forms are echoed: as given, and the same instant in UTC.
        let utc_nanos = utc.trim_end_matches('Z').to_string() + "000000Z";
        assert!(
            text.contains(&format!("--at {given} is {utc_nanos} (UTC)")),
            "{given}: {text}"
        );
        assert!(text.contains("at sequence 30"), "{text}");
        let json = lsmvault_json(
            &repo,
            &[
                "restore",
                "--at",
                &given,
                "--target",
                work.path().join(format!("json-{index}")).to_str().unwrap(),
            ],
        );
        assert_eq!(json["at"]["given"], given.as_str());
        assert_eq!(json["at"]["utc"], utc_nanos.as_str());
        assert_eq!(json["restored_sequence"], 30);
    }
    // No zone: refused, not guessed, and nothing written.
    let target = work.path().join("no-zone");
    let output = lsmvault(
        &repo,
        &[
            "restore",
            "--at",
            "2026-11-23T14:32:05",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no time zone") && stderr.contains("+01:00"),
        "{stderr}"
    );
    assert!(!target.exists());
    // An offset that moves the time before the snapshot is refused, where the
    // same wall-clock time read as UTC would have been accepted.
    let wall = humantime::format_rfc3339_seconds(later + Duration::from_secs(3600)).to_string();
    let behind = wall.replace('Z', "+05:00");
    let output = lsmvault(
        &repo,
        &[
            "restore",
            "--at",
            &behind,
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert!(
        !output.status.success(),
        "{behind} is four hours ago, before the snapshot"
    );
    let _ = fs::remove_dir_all(&target);
}

/// The permission bits of `path`.
fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn repository_files_are_private_and_an_open_init_directory_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("data"), seeded_bytes(1, 100_000)).unwrap();
    // A repository in a new directory, and one in an existing 0755 directory.
    let fresh = work.path().join("fresh/nested/repo");
    let existing = work.path().join("existing");
    fs::create_dir(&existing).unwrap();
    fs::set_permissions(&existing, fs::Permissions::from_mode(0o755)).unwrap();
    for repo in [&fresh, &existing] {
        let output = lsmvault(repo, &["init", "--no-encryption"]);
        assert!(output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            stderr.contains("readable by group or others"),
            repo == &existing,
            "{stderr}"
        );
        lsmvault_ok(repo, &["backup", source.to_str().unwrap()]);
        for entry in walkdir::WalkDir::new(repo).min_depth(1) {
            let entry = entry.unwrap();
            let mode = mode_of(entry.path());
            if entry.file_type().is_dir() {
                assert_eq!(mode, 0o700, "{}", entry.path().display());
            } else {
                assert_eq!(mode, 0o400, "{}", entry.path().display());
            }
        }
        // Objects of every kind were checked, not an empty tree.
        assert!(repo.join("config").is_file() && mode_of(&repo.join("config")) == 0o400);
        assert!(fs::read_dir(repo.join("snapshots")).unwrap().count() == 1);
    }
    // The existing directory keeps its mode; a new one (and the parents
    // init created) is the owner's alone.
    assert_eq!(mode_of(&existing), 0o755);
    assert_eq!(mode_of(&fresh), 0o700);
    assert_eq!(mode_of(&work.path().join("fresh")), 0o700);
    // A closed existing directory is not warned about.
    let closed = work.path().join("closed");
    fs::create_dir(&closed).unwrap();
    fs::set_permissions(&closed, fs::Permissions::from_mode(0o700)).unwrap();
    let output = lsmvault(&closed, &["init", "--no-encryption"]);
    assert!(output.status.success());
    assert!(!String::from_utf8_lossy(&output.stderr).contains("warning"));
}

#[test]
fn a_backup_of_a_directory_holding_the_repository_leaves_the_repository_out() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("data"), seeded_bytes(2, 50_000)).unwrap();
    let repo = source.join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    // `backup .` from the directory above the repository.
    let output = std::process::Command::new(binary())
        .current_dir(&source)
        .args(["--repo", "repo", "backup", "."])
        .env_remove("LSMVAULT_REPOSITORY")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("is the repository itself: left out"),
        "{}",
        stderr_text(&output)
    );
    assert_eq!(listed_paths(&repo, "latest"), ["data"]);
    // Twice: the second backup does not pick up the first one's packs either.
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    assert_eq!(listed_paths(&repo, "latest"), ["data"]);
    // A source inside the repository is refused.
    let output = lsmvault(&repo, &["backup", repo.join("data").to_str().unwrap()]);
    assert_eq!(
        output.status.code(),
        Some(lsmvault::ErrorCode::InvalidArgument.exit_code())
    );
    assert!(stderr_text(&output).contains("inside the repository"));
}

/// A repository with one snapshot of a small database-like tree.
fn globbed_fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    fs::create_dir_all(source.join("db/sub")).unwrap();
    for name in [
        "db/000001.sst",
        "db/000002.sst",
        "db/MANIFEST-000001",
        "db/sub/000003.log",
        "README",
    ] {
        fs::write(source.join(name), name).unwrap();
    }
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    (work, repo)
}

#[test]
fn restore_include_and_exclude_take_globs_and_an_unmatched_include_fails_naming_it() {
    let (work, repo) = globbed_fixture();
    let restore = |name: &str, filters: &[&str]| {
        let target = work.path().join(name);
        let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
        args.extend_from_slice(filters);
        (lsmvault(&repo, &args), target)
    };
    let (output, target) = restore("sst", &["--include", "**/*.sst"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let files: Vec<_> = files_under(&target).into_iter().collect();
    assert_eq!(
        files,
        [
            std::path::PathBuf::from("db/000001.sst"),
            "db/000002.sst".into()
        ]
    );
    // `**` looks into every directory but restores none it selected nothing in.
    assert!(!target.join("db/sub").exists());
    let (output, target) = restore("no-sst", &["--exclude", "*.sst", "--exclude", "db/sub"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let files: Vec<_> = files_under(&target).into_iter().collect();
    assert_eq!(
        files,
        [
            std::path::PathBuf::from("README"),
            "db/MANIFEST-000001".into()
        ]
    );
    let (output, target) = restore("manifest", &["--include", "db/MANIFEST-??????"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert_eq!(files_under(&target).len(), 1);
    // A pattern that matches nothing fails, names it, and writes nothing.
    let (output, target) = restore(
        "typo",
        &["--include", "db/*.sst", "--include", "db/00001.sst"],
    );
    assert_eq!(
        output.status.code(),
        Some(lsmvault::ErrorCode::InvalidArgument.exit_code())
    );
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("\"db/00001.sst\"") && !stderr.contains("\"db/*.sst\""),
        "{stderr}"
    );
    assert!(!target.exists());
}

#[test]
fn ls_of_a_path_the_snapshot_lacks_fails_naming_it() {
    let (_work, repo) = globbed_fixture();
    let output = lsmvault(&repo, &["ls", "latest", "nonexistent"]);
    assert!(!output.status.success());
    assert!(
        stderr_text(&output).contains("\"nonexistent\""),
        "{}",
        stderr_text(&output)
    );
    assert!(output.stdout.is_empty());
    // A path and a glob that exist list what they select.
    let text = lsmvault_ok(&repo, &["ls", "latest", "db/sub"]);
    assert!(text.contains("000003.log"), "{text}");
    let text = lsmvault_ok(&repo, &["ls", "latest", "db/*.sst"]);
    assert!(
        text.contains("000001.sst") && !text.contains("MANIFEST"),
        "{text}"
    );
}

#[test]
fn wal_output_never_shows_rust_debug_text() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(
        work.path(),
        &[
            (5, (1..=30).map(|sequence| (sequence, 1)).collect()),
            (6, Vec::new()),
        ],
    );
    let text = lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
    assert!(text.contains("sequences 1..=30"), "{text}");
    assert!(
        text.contains("000006.log") && text.contains("no write batches"),
        "{text}"
    );
    // A restore point needs a snapshot to start from.
    lsmvault_ok(&repo, &["backup", db.to_str().unwrap()]);
    lsmvault_ok(&repo, &["tag", "before", db.to_str().unwrap()]);
    let listing = lsmvault_ok(&repo, &["wal", "ls"]);
    for text in [&text, &listing] {
        assert!(!text.contains("Some(") && !text.contains("None"), "{text}");
    }
    assert!(listing.contains("restore point \"before\""), "{listing}");
}

#[test]
fn tag_names_are_not_empty_and_a_reused_name_needs_force_and_then_the_newer_wins() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(
        work.path(),
        &[(5, (1..=30).map(|sequence| (sequence, 1)).collect())],
    );
    let database = db.to_str().unwrap();
    lsmvault_ok(&repo, &["backup", database]);
    for empty in ["", "  "] {
        let output = lsmvault(&repo, &["tag", empty, database]);
        assert!(!output.status.success());
        assert!(
            stderr_text(&output).contains("not empty"),
            "{}",
            stderr_text(&output)
        );
    }
    lsmvault_ok(&repo, &["tag", "release", database]);
    // The database moves on to sequence 40.
    let fresh = fake_database(
        &work.path().join("later"),
        &[(7, (31..=40).map(|sequence| (sequence, 1)).collect())],
    );
    fs::copy(fresh.join("000007.log"), db.join("000007.log")).unwrap();
    let output = lsmvault(&repo, &["tag", "release", database]);
    assert!(!output.status.success());
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("already exists")
            && stderr.contains("sequence 30")
            && stderr.contains("--force"),
        "{stderr}"
    );
    let restore = |name: &str| {
        let target = work.path().join(name);
        lsmvault_json(
            &repo,
            &[
                "restore",
                "--tag",
                "release",
                "--target",
                target.to_str().unwrap(),
            ],
        )
    };
    assert_eq!(
        restore("first")["restored_sequence"],
        30,
        "the refused tag changed nothing"
    );
    let forced = lsmvault_json(&repo, &["tag", "--force", "release", database]);
    assert_eq!(forced["sequence"], 40);
    assert_eq!(
        restore("second")["restored_sequence"],
        40,
        "the newer point wins"
    );
}

#[test]
fn a_database_id_prefix_resolves_when_unique_and_is_named_when_unknown_or_ambiguous() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let batches: Vec<(u64, u32)> = (1..=30).map(|sequence| (sequence, 1)).collect();
    let first = fake_database(&work.path().join("first"), &[(5, batches.clone())]);
    let second = fake_database(&work.path().join("second"), &[(5, batches)]);
    fs::write(second.join("IDENTITY"), "fake-db-other\n").unwrap();
    for db in [&first, &second] {
        lsmvault_ok(&repo, &["backup", db.to_str().unwrap()]);
    }
    let restore = |id: &str, name: &str| {
        let target = work.path().join(name);
        lsmvault(
            &repo,
            &[
                "--json",
                "restore",
                "--seq",
                "30",
                "--database-id",
                id,
                "--target",
                target.to_str().unwrap(),
            ],
        )
    };
    let output = restore("fake-db-i", "prefix");
    assert!(output.status.success(), "{}", stderr_text(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["database_id"], "fake-db-identity");
    let output = restore("nonsense", "unknown");
    let stderr = stderr_text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("unknown database id \"nonsense\"") && stderr.contains("fake-db-other"),
        "{stderr}"
    );
    let output = restore("fake-db", "ambiguous");
    let stderr = stderr_text(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("ambiguous") && stderr.contains("fake-db-identity, fake-db-other"),
        "{stderr}"
    );
}

#[test]
fn checkpoint_and_wrong_password_messages_speak_of_what_the_user_can_do() {
    let work = tempfile::tempdir().unwrap();
    // checkpoint into an existing directory: its own words, not restore's.
    let db = fake_database(work.path(), &[]);
    let destination = work.path().join("exists");
    fs::create_dir(&destination).unwrap();
    let output = lsmvault(
        &work.path().join("unused"),
        &[
            "checkpoint",
            db.to_str().unwrap(),
            destination.to_str().unwrap(),
        ],
    );
    assert_eq!(
        output.status.code(),
        Some(lsmvault::ErrorCode::TargetNotEmpty.exit_code())
    );
    let stderr = stderr_text(&output);
    assert!(stderr.contains("checkpoint destination"), "{stderr}");
    assert!(
        !stderr.contains("restore target") && !stderr.contains("--delta"),
        "{stderr}"
    );
    // A wrong password's hint does not send the user to commands that need it.
    let repo = work.path().join("repo");
    let init = lsmvault_with_password(&repo, Some("right"), &["init", "--kdf-target-ms", "20"]);
    assert!(init.status.success(), "{}", stderr_text(&init));
    let output = lsmvault_with_password(&repo, Some("wrong"), &["snapshots"]);
    assert_eq!(
        output.status.code(),
        Some(lsmvault::ErrorCode::WrongPassword.exit_code())
    );
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("hint:") && !stderr.contains("key list"),
        "{stderr}"
    );
}

#[test]
fn quiet_prints_only_errors_warnings_and_what_was_asked_for() {
    let (work, repo) = globbed_fixture();
    let source = work.path().join("source");
    let quiet = |args: &[&str]| {
        let mut all = vec!["-q"];
        all.extend_from_slice(args);
        lsmvault(&repo, &all)
    };
    // Actions: nothing at all.
    for args in [
        vec!["backup", source.to_str().unwrap()],
        vec![
            "restore",
            "latest",
            "--target",
            work.path().join("quiet").to_str().unwrap(),
        ],
        vec!["forget", "--keep-last", "5"],
        vec!["prune"],
        vec!["unlock"],
    ] {
        let output = quiet(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            stderr_text(&output)
        );
        assert!(
            output.stdout.is_empty() && output.stderr.is_empty(),
            "{args:?}: {output:?}"
        );
    }
    // What was asked for: listings, JSON, a dry run's plan.
    for args in [
        vec!["snapshots"],
        vec!["ls", "latest"],
        vec!["stats"],
        vec!["--json", "backup", source.to_str().unwrap()],
        vec!["forget", "--keep-last", "1", "--dry-run"],
    ] {
        let output = quiet(&args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            stderr_text(&output)
        );
        assert!(!output.stdout.is_empty(), "{args:?} printed nothing");
    }
    // Errors still reach stderr.
    let output = quiet(&["ls", "latest", "nonexistent"]);
    assert!(stderr_text(&output).contains("error:"));
    // Warnings too: a backup of a source holding the repository.
    let output = std::process::Command::new(binary())
        .args(["-q", "--repo"])
        .arg(&repo)
        .arg("backup")
        .arg(work.path())
        .env_remove("LSMVAULT_REPOSITORY")
        .output()
        .unwrap();
    assert!(
        output.stdout.is_empty() && stderr_text(&output).contains("warning:"),
        "{output:?}"
    );
}

/// Review of issue 15: only the holding directory of `wal archive --watch`
/// in the source root is left out; a directory of that name deeper down is
/// someone's data.
#[test]
fn a_directory_named_like_the_wal_holding_directory_below_the_root_is_backed_up() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = work.path().join("db");
    let deeper = source.join("archive/.lsmvault-wal-hold");
    fs::create_dir_all(&deeper).unwrap();
    fs::write(deeper.join("notes.txt"), b"kept").unwrap();
    fs::create_dir_all(source.join(".lsmvault-wal-hold")).unwrap();
    fs::write(source.join(".lsmvault-wal-hold/000007.log"), b"held").unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    let paths = listed_paths(&repo, "latest");
    assert!(
        paths.contains(&"archive/.lsmvault-wal-hold/notes.txt".to_string()),
        "{paths:?}"
    );
    assert!(
        !paths
            .iter()
            .any(|path| path.starts_with(".lsmvault-wal-hold")),
        "{paths:?}"
    );
}
