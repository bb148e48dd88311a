//! Named restore points under concurrency (review of issue 15): `tag NAME`
//! checks that the name is free, then writes; two runs at once must not
//! both get the name.

use std::process::Stdio;

use crate::common::*;
use crate::pitr::fake_database;

#[test]
fn concurrent_tags_of_one_name_leave_exactly_one_point() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = fake_database(work.path(), &[(5, (1..=30).map(|s| (s, 1)).collect())]);
    let db = db.to_str().unwrap();
    lsmvault_ok(&repo, &["backup", db]);
    lsmvault_ok(&repo, &["wal", "archive", db]);
    for round in 0..3 {
        let name = format!("release-{round}");
        let children: Vec<_> = (0..6)
            .map(|_| {
                lsmvault_command(&repo, None, &["--retry-lock", "1m", "tag", &name, db])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut succeeded = 0;
        for child in children {
            let output = child.wait_with_output().unwrap();
            match output.status.code() {
                Some(0) => succeeded += 1,
                Some(22) => assert!(
                    stderr_text(&output).contains("already exists"),
                    "{}",
                    stderr_text(&output)
                ),
                other => panic!("tag exit {other:?}: {}", stderr_text(&output)),
            }
        }
        assert_eq!(succeeded, 1, "round {round}: one run gets the name");
        let timeline = lsmvault_json(&repo, &["wal", "ls"]);
        let points: Vec<&serde_json::Value> = timeline[0]["restore_points"]
            .as_array()
            .unwrap_or_else(|| panic!("no restore_points: {timeline}"))
            .iter()
            .filter(|point| point["name"] == name.as_str())
            .collect();
        assert_eq!(points.len(), 1, "round {round}: {timeline}");
    }
}
