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
