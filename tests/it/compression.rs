//! Compression end to end: auto compresses what shrinks and stores the rest
//! raw; `off` and per-backup overrides; version 1 repositories stay uncompressed.

use std::fs;

use crate::common::*;

fn source_with_text_and_noise(root: &std::path::Path) {
    fs::create_dir_all(root).unwrap();
    let text: Vec<u8> = (0..200_000)
        .flat_map(|index| format!("key{index:08} value-{}\n", index % 97).into_bytes())
        .collect();
    fs::write(root.join("MANIFEST-000001"), &text).unwrap();
    fs::write(root.join("000002.sst"), seeded_bytes(2, 3_000_000)).unwrap();
}

fn stored_and_added(backup: &serde_json::Value) -> (u64, u64) {
    let stats = &backup["snapshot"]["stats"];
    (
        stats["bytes_stored"].as_u64().unwrap(),
        stats["bytes_added"].as_u64().unwrap(),
    )
}

#[test]
fn auto_compresses_text_not_noise_and_restores_exactly() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("db");
    source_with_text_and_noise(&source);
    let text_size = fs::metadata(source.join("MANIFEST-000001")).unwrap().len();

    let auto_repo = work.path().join("auto");
    lsmvault_ok(&auto_repo, &["init", "--no-encryption"]);
    let auto = lsmvault_json(&auto_repo, &["backup", source.to_str().unwrap()]);
    let (stored, added) = stored_and_added(&auto);
    // Noise is stored raw (3 MB), text shrinks to a fraction.
    assert!(
        stored < 3_000_000 + text_size / 4,
        "stored {stored} of {added}"
    );
    assert!(stored > 3_000_000, "noise cannot shrink: {stored}");

    let off_repo = work.path().join("off");
    lsmvault_ok(
        &off_repo,
        &["init", "--no-encryption", "--compression", "off"],
    );
    let off = lsmvault_json(&off_repo, &["backup", source.to_str().unwrap()]);
    assert!(stored_and_added(&off).0 >= added, "{off:#}");

    for repo in [&auto_repo, &off_repo] {
        let report = lsmvault_json(repo, &["verify", "--read-data"]);
        assert!(
            report["findings"].as_array().unwrap().is_empty(),
            "{report:#}"
        );
        let target = work.path().join(format!(
            "restored-{}",
            repo.file_name().unwrap().to_str().unwrap()
        ));
        lsmvault_ok(
            repo,
            &["restore", "latest", "--target", target.to_str().unwrap()],
        );
        assert_same_tree(&source, &target);
    }

    // A per-backup override: zstd:19 into the "off" repository.
    fs::write(source.join("MANIFEST-000003"), b"x".repeat(1_000_000)).unwrap();
    let strong = lsmvault_json(
        &off_repo,
        &[
            "backup",
            "--compression",
            "zstd:19",
            source.to_str().unwrap(),
        ],
    );
    assert!(stored_and_added(&strong).0 < 10_000, "{strong:#}");
    let target = work.path().join("restored-strong");
    lsmvault_ok(
        &off_repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&source, &target);

    assert_eq!(
        lsmvault(
            &auto_repo,
            &["backup", "--compression", "lz4", source.to_str().unwrap()]
        )
        .status
        .code(),
        Some(22)
    );
}

#[test]
fn version_1_repositories_open_and_stay_uncompressed() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    source_with_text_and_noise(&source);
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let config_path = repo.join("config");
    let mut config: serde_json::Value =
        serde_json::from_slice(&fs::read(&config_path).unwrap()).unwrap();
    config["version"] = serde_json::json!(1);
    config["compression"] = serde_json::json!("none");
    fs::write(&config_path, serde_json::to_vec(&config).unwrap()).unwrap();
    let backup = lsmvault_json(
        &repo,
        &[
            "backup",
            "--compression",
            "zstd:3",
            source.to_str().unwrap(),
        ],
    );
    let (stored, added) = stored_and_added(&backup);
    assert!(
        stored >= added,
        "a version 1 repository must not get compressed blobs"
    );
    let target = work.path().join("restored");
    lsmvault_ok(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&source, &target);
}
