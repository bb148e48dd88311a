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
