//! `stats` that separates deduplication from compression, shell
//! completions and manual pages (issue 15), driven through the CLI.

use std::fs;

use crate::common::{lsmvault, lsmvault_json, lsmvault_ok, seeded_bytes, write_small_files};

#[test]
fn stats_separates_deduplication_from_compression_and_shows_pack_bytes() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = (work.path().join("repo"), work.path().join("db"));
    fs::create_dir(&source).unwrap();
    // Text compresses about tenfold; random bytes not at all.
    let text: Vec<u8> = (0..400_000u32)
        .flat_map(|line| format!("key{line:08} value{}\n", line % 7).into_bytes())
        .take(2_000_000)
        .collect();
    fs::write(source.join("000001.log"), &text).unwrap();
    fs::write(source.join("000002.sst"), seeded_bytes(2, 1_000_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    lsmvault_ok(&repo, &["backup", "--full", source.to_str().unwrap()]);

    let stats = lsmvault_json(&repo, &["stats"]);
    let number = |field: &str| stats[field].as_f64().unwrap();
    assert_eq!(number("logical_bytes"), 2.0 * 3_000_000.0);
    // Two snapshots of the same files: deduplication halves, compression shrinks the text.
    assert!(
        number("raw_bytes") >= 3_000_000.0 && number("raw_bytes") < 3_010_000.0,
        "{stats:#}"
    );
    assert!(
        (number("deduplication_ratio") - 2.0).abs() < 0.01,
        "{stats:#}"
    );
    assert!(number("compression_ratio") > 1.5, "{stats:#}");
    assert!(number("stored_bytes") < number("raw_bytes"));
    assert_eq!(number("encryption_overhead_bytes"), 0.0);
    let overall = number("logical_bytes") / number("stored_bytes");
    assert!((number("total_ratio") - overall).abs() < 1e-9);
    assert!(number("pack_bytes") >= number("stored_bytes"));
    assert!(number("repository_bytes") > number("pack_bytes"));

    let text = lsmvault_ok(&repo, &["stats"]);
    for expected in [
        "after deduplication (ratio 2.00)",
        "after compression (ratio",
        "in 1 packs",
    ] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
}

#[test]
fn stats_deduplication_ratio_ignores_tree_blobs() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = (work.path().join("repo"), work.path().join("db"));
    // 2000 distinct 100-byte files: nothing deduplicates, but the tree
    // listing them (names, sizes, digests, metadata) outweighs their content.
    write_small_files(&source, 2000, 100, 4);
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);

    let stats = lsmvault_json(&repo, &["stats"]);
    let number = |field: &str| stats[field].as_f64().unwrap();
    assert_eq!(number("logical_bytes"), 200_000.0, "{stats:#}");
    // Distinct contents: deduplication saves nothing, the ratio is 1.
    assert!(
        (number("deduplication_ratio") - 1.0).abs() < 1e-9,
        "{stats:#}"
    );
    assert_eq!(number("data_bytes"), 200_000.0, "{stats:#}");
    // The trees are reported on their own, and raw_bytes keeps counting them.
    assert!(number("tree_bytes") > 50_000.0, "{stats:#}");
    assert_eq!(
        number("raw_bytes"),
        number("data_bytes") + number("tree_bytes"),
        "{stats:#}"
    );

    let text = lsmvault_ok(&repo, &["stats"]);
    for expected in ["after deduplication (ratio 1.00)", "metadata (trees):"] {
        assert!(text.contains(expected), "{expected}: {text}");
    }
}

#[test]
fn stats_of_an_encrypted_repository_counts_the_encryption_overhead() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = (work.path().join("repo"), work.path().join("db"));
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000002.sst"), seeded_bytes(2, 100_000)).unwrap();
    let run = |args: &[&str]| {
        let output = crate::common::lsmvault_command(&repo, Some("pw"), args)
            .output()
            .unwrap();
        crate::common::assert_success(&output, &format!("{args:?}"))
    };
    run(&["init"]);
    run(&["backup", source.to_str().unwrap()]);
    let stats: serde_json::Value = serde_json::from_str(&run(&["--json", "stats"])).unwrap();
    // One chunk and one tree, each sealed with a 24-byte nonce and a 16-byte tag.
    assert_eq!(stats["encryption_overhead_bytes"], 80, "{stats:#}");
    assert!(
        stats["compression_ratio"].as_f64().unwrap() < 1.0,
        "{stats:#}"
    );
}

#[test]
fn completions_for_every_shell_and_a_man_page_for_every_command() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("unused");
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = lsmvault_ok(&repo, &["completions", shell]);
        for expected in ["lsmvault", "restore", "dry-run", "find"] {
            assert!(script.contains(expected), "{shell}: no {expected}");
        }
    }
    assert_eq!(
        lsmvault(&repo, &["completions", "tcsh"]).status.code(),
        Some(2)
    );

    let pages = work.path().join("man/man1");
    let report = lsmvault_json(&repo, &["man", "--out", pages.to_str().unwrap()]);
    let written = report.as_array().unwrap().len();
    for page in [
        "lsmvault.1",
        "lsmvault-backup.1",
        "lsmvault-restore.1",
        "lsmvault-find.1",
        "lsmvault-key.1",
        "lsmvault-key-add.1",
        "lsmvault-wal-archive.1",
    ] {
        let text = fs::read_to_string(pages.join(page)).unwrap_or_else(|_| panic!("no {page}"));
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    assert_eq!(fs::read_dir(&pages).unwrap().count(), written);
    let restore = fs::read_to_string(pages.join("lsmvault-restore.1")).unwrap();
    assert!(restore.contains("dry\\-run"), "{restore}");
    assert!(!pages.join("lsmvault-help.1").exists());
}
