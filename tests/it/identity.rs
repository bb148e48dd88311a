//! Database identity (issue 15, items 3 and 8): a backup's parent is a
//! snapshot of the same database, and a checkpoint without `IDENTITY` can be
//! named by the operator so point-in-time restores can start from it.

use std::fs;

use crate::common::*;

#[test]
fn each_backup_takes_its_own_databases_previous_snapshot_as_parent() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    // Sibling directories: the sibling heuristic must not cross identities.
    let databases = [work.path().join("alpha"), work.path().join("beta")];
    for (index, database) in databases.iter().enumerate() {
        fs::create_dir_all(database).unwrap();
        fs::write(database.join("IDENTITY"), format!("identity-{index}\n")).unwrap();
        fs::write(
            database.join("000010.sst"),
            seeded_bytes(index as u64, 20_000),
        )
        .unwrap();
    }
    let mut previous: [Option<String>; 2] = [None, None];
    for round in 0..3 {
        for (index, database) in databases.iter().enumerate() {
            fs::write(
                database.join(format!("0000{}.sst", 20 + round)),
                seeded_bytes(100 + round as u64, 1_000),
            )
            .unwrap();
            let path = database.to_str().unwrap();
            let arguments: Vec<&str> = if round == 0 && index == 0 {
                vec!["backup", "--init", "--no-encryption", path]
            } else {
                vec!["backup", path]
            };
            let text = lsmvault_ok(&repo, &arguments);
            let report = lsmvault_json(&repo, &["snapshots"]);
            let newest = report
                .as_array()
                .and_then(|list| list.last())
                .expect("a snapshot")
                .clone();
            let snapshot = newest.get("snapshot").unwrap_or(&newest);
            assert_eq!(snapshot["database"]["id"], format!("identity-{index}"));
            assert_eq!(snapshot["database"]["id_source"], "identity_file");
            let parent = snapshot["parent"].as_str().map(str::to_string);
            assert_eq!(parent, previous[index], "round {round}, database {index}");
            match &parent {
                Some(parent) => {
                    assert!(text.contains(&format!("parent {}", &parent[..8])), "{text}")
                }
                None => assert!(
                    text.contains("no parent (first backup of this database)"),
                    "{text}"
                ),
            }
            previous[index] = Some(newest["id"].as_str().expect("snapshot id").to_string());
        }
    }
}

/// Writes keys `keys` (as db_bench does: 8 bytes big endian, padded to 16)
/// with `ldb batchput`, one write batch per call of `per_batch` keys, and
/// archives the WAL after each call. `--try_load_options` keeps db_bench's
/// `WAL_ttl_seconds`, so a recovered WAL is archived, not deleted.
fn put_keys(
    repo: &std::path::Path,
    db: &std::path::Path,
    keys: std::ops::Range<u64>,
    per_batch: u64,
) {
    let all: Vec<u64> = keys.collect();
    for batch in all.chunks(per_batch as usize) {
        let mut command = std::process::Command::new("ldb");
        command.arg(format!("--db={}", db.display())).args([
            "--hex",
            "--try_load_options",
            "batchput",
        ]);
        for key in batch {
            command
                .arg(format!("0x{key:016X}{:016X}", 0))
                .arg("0x76616C7565");
        }
        let output = command.output().expect("running ldb");
        assert!(output.status.success(), "{output:?}");
        lsmvault_ok(repo, &["wal", "archive", db.to_str().unwrap()]);
    }
}

#[test]
fn a_checkpoint_without_identity_serves_point_in_time_restore_with_database_id() {
    if !tools_available(&["db_bench", "ldb"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("db");
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let output = std::process::Command::new("db_bench")
        .arg(format!("--db={}", db.display()))
        .args([
            "--benchmarks=fillseq",
            "--num=2000",
            "--value_size=100",
            "--wal_ttl_seconds=3600",
        ])
        .output()
        .expect("running db_bench");
    assert!(output.status.success(), "{output:?}");
    let checkpoint = work.path().join("ckpt-1");
    let output = std::process::Command::new("ldb")
        .arg(format!("--db={}", db.display()))
        .arg("checkpoint")
        .arg(format!("--checkpoint_dir={}", checkpoint.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let identity = fs::read_to_string(db.join("IDENTITY")).unwrap();
    let identity = identity.trim();

    let checkpoint_path = checkpoint.to_str().unwrap();
    let checkpoint_lacks_identity = !checkpoint.join("IDENTITY").exists();
    if checkpoint_lacks_identity {
        // RocksDB 7.x: neither IDENTITY nor a DB id in the MANIFEST. Backed up
        // as it is, the snapshot says it cannot start a point-in-time restore.
        let unnamed = lsmvault(&repo, &["backup", checkpoint_path]);
        assert!(unnamed.status.success(), "{unnamed:?}");
        let stderr = String::from_utf8_lossy(&unnamed.stderr);
        assert!(
            stderr.contains("cannot start a point-in-time restore") || stderr.contains("identity"),
            "{stderr}"
        );
    }
    let named = lsmvault_json(
        &repo,
        &["backup", checkpoint_path, "--database-id", identity],
    );
    let database = &named["snapshot"]["database"];
    assert_eq!(database["id"], identity);
    assert_eq!(database["id_source"], "operator");
    assert_eq!(database["last_sequence"], 2_000);

    // More writes to the database (keys 2000..5000, sequences 2001..=5000), archived.
    put_keys(&repo, &db, 2_000..5_000, 250);
    let target = 3_500u64;
    let restored = work.path().join("restored");
    let report = lsmvault_json(
        &repo,
        &[
            "restore",
            "--seq",
            &target.to_string(),
            "--target",
            restored.to_str().unwrap(),
        ],
    );
    assert_eq!(report["restored_sequence"], target, "{report:#}");
    // Every key up to the target sequence, none after it.
    let keys = crate::pitr::scan_keys(&restored);
    assert_eq!(keys, (0..target).collect::<Vec<u64>>());
}

#[test]
fn a_blank_database_id_is_refused_and_writes_no_snapshot() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let db = work.path().join("db");
    fs::create_dir_all(&db).unwrap();
    fs::write(db.join("CURRENT"), "MANIFEST-000001\n").unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    for blank in ["", "  ", " padded-id"] {
        let output = lsmvault(
            &repo,
            &["backup", db.to_str().unwrap(), "--database-id", blank],
        );
        assert_eq!(output.status.code(), Some(22), "{blank:?}: {output:?}");
    }
    assert!(snapshot_ids(&repo).is_empty());
    let text = lsmvault_ok(&repo, &["backup", "--full", db.to_str().unwrap()]);
    assert!(text.contains("no parent (--full)"), "{text}");
}
