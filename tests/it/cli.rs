//! End-to-end tests of the CLI on generated trees.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::common::*;

/// A tree with the awkward cases: empty files, a large file, many small files,
/// unicode and odd names, symlinks (dangling too), hard links, permissions,
/// nested and empty directories.
fn build_awkward_tree(root: &Path, large_file_mib: usize, small_files: usize) {
    fs::create_dir_all(root.join("nested/deeper/deepest")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("many")).unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    fs::write(root.join("nested/deeper/deepest/empty-too"), b"").unwrap();
    fs::write(
        root.join("large.bin"),
        seeded_bytes(42, large_file_mib * 1024 * 1024 + 12345),
    )
    .unwrap();
    for index in 0..small_files {
        fs::write(
            root.join("many").join(format!("{index:05}.txt")),
            format!("small file {index}\n").repeat(index % 7 + 1),
        )
        .unwrap();
    }
    for name in [
        "ünïcødé ✓.txt",
        "spaces in name",
        "-starts-with-dash",
        "new\nline",
        "back\\slash",
        "...",
        "日本語のファイル",
    ] {
        fs::write(root.join(name), name.as_bytes()).unwrap();
    }
    // A name that is not valid UTF-8.
    use std::os::unix::ffi::OsStrExt;
    fs::write(
        root.join(std::ffi::OsStr::from_bytes(b"latin1-\xe9")),
        b"bytes",
    )
    .unwrap();
    symlink("large.bin", root.join("link-to-large")).unwrap();
    symlink("/nonexistent/target", root.join("dangling-link")).unwrap();
    symlink("../..", root.join("nested/up-link")).unwrap();
    fs::write(root.join("hard-a"), seeded_bytes(7, 300_000)).unwrap();
    fs::hard_link(root.join("hard-a"), root.join("nested/hard-b")).unwrap();
    fs::hard_link(root.join("hard-a"), root.join("hard-c")).unwrap();
    fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(root.join("script.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(root.join("private"), b"secret").unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::set_permissions(
        root.join("nested/deeper"),
        fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    filetime::set_file_mtime(
        root.join("empty"),
        filetime::FileTime::from_unix_time(1_000_000_000, 123_456_789),
    )
    .unwrap();
}

#[test]
fn awkward_tree_round_trips_and_second_backup_reads_nothing() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let repo = work.path().join("repo");
    build_awkward_tree(&source, 200, 10_000);
    lsmvault_ok(&repo, &["init", "--no-encryption"]);

    let first = lsmvault_json(
        &repo,
        &["backup", source.to_str().unwrap(), "--tag", "first"],
    );
    let stats = &first["snapshot"]["stats"];
    assert_eq!(first["snapshot"]["kind"], "full");
    assert_eq!(stats["files"], 10_000 + 16);
    assert!(stats["bytes_read"].as_u64().unwrap() > 200 * 1024 * 1024);

    let second = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
    let stats = &second["snapshot"]["stats"];
    assert_eq!(second["snapshot"]["kind"], "incremental");
    assert_eq!(second["snapshot"]["parent"], first["id"]);
    assert_eq!(
        stats["bytes_read"], 0,
        "unchanged files must not be read: {stats}"
    );
    assert_eq!(stats["files_unmodified"], 10_000 + 16);
    assert_eq!(stats["bytes_added"], 0);
    assert_eq!(stats["packs_written"], 0);

    for selector in ["latest", "latest:first"] {
        let target = work
            .path()
            .join(format!("restore-{}", selector.replace(':', "-")));
        let restored = lsmvault_json(
            &repo,
            &["restore", selector, "--target", target.to_str().unwrap()],
        );
        assert_eq!(restored["hard_links"], 2);
        assert_same_tree(&source, &target);
    }
    let report = lsmvault_json(&repo, &["verify", "--read-data"]);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["snapshots"], 2);
}

#[test]
fn changed_and_new_files_are_read_and_unchanged_are_not() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("db");
    let repo = work.path().join("repo");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 3_000_000)).unwrap();
    fs::write(source.join("000002.log"), seeded_bytes(2, 2_000_000)).unwrap();
    fs::write(source.join("MANIFEST-000003"), b"manifest v1").unwrap();
    lsmvault_ok(
        &repo,
        &[
            "backup",
            "--init",
            "--no-encryption",
            source.to_str().unwrap(),
        ],
    );

    // The WAL grows, the MANIFEST is rewritten, a new SST appears.
    let mut wal = seeded_bytes(2, 2_000_000);
    wal.extend(seeded_bytes(3, 500_000));
    fs::write(source.join("000002.log"), &wal).unwrap();
    fs::write(source.join("MANIFEST-000003"), b"manifest v2").unwrap();
    fs::write(source.join("000004.sst"), seeded_bytes(4, 1_000_000)).unwrap();
    let second = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
    let stats = &second["snapshot"]["stats"];
    assert_eq!(stats["files_unmodified"], 1, "{stats}");
    assert_eq!(stats["files_changed"], 2, "{stats}");
    assert_eq!(stats["files_new"], 1, "{stats}");
    assert_eq!(stats["bytes_read"], 2_500_000 + 11 + 1_000_000);
    // The grown WAL shares its prefix through content-defined chunking.
    assert!(
        stats["bytes_added"].as_u64().unwrap() < 1_000_000 + 11 + 2_000_000,
        "{stats}"
    );

    let target = work.path().join("restored");
    lsmvault_ok(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_same_tree(&source, &target);

    // --full reads everything again but stores nothing new.
    let full = lsmvault_json(&repo, &["backup", "--full", source.to_str().unwrap()]);
    assert_eq!(full["snapshot"]["kind"], "full");
    assert_eq!(full["snapshot"]["stats"]["bytes_read"], 6_500_011);
    assert_eq!(full["snapshot"]["stats"]["bytes_added"], 0);
    assert_eq!(full["snapshot"]["parent"], serde_json::Value::Null);

    // --differential takes the newest full snapshot as parent.
    fs::write(source.join("000005.sst"), seeded_bytes(5, 10_000)).unwrap();
    let differential = lsmvault_json(
        &repo,
        &["backup", "--differential", source.to_str().unwrap()],
    );
    assert_eq!(differential["snapshot"]["kind"], "differential");
    assert_eq!(differential["snapshot"]["parent"], full["id"]);
    assert_eq!(differential["snapshot"]["stats"]["bytes_read"], 10_000);
}

/// A checkpoint into a new directory hard-links the SSTs: their ctime changes,
/// their inode does not. They must not be read again.
#[test]
fn hard_linked_checkpoint_in_new_directory_is_not_reread() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let generation_1 = work.path().join("checkpoints/gen1");
    let generation_2 = work.path().join("checkpoints/gen2");
    fs::create_dir_all(&generation_1).unwrap();
    fs::create_dir_all(&generation_2).unwrap();
    fs::write(generation_1.join("000010.sst"), seeded_bytes(10, 2_000_000)).unwrap();
    fs::write(generation_1.join("000011.sst"), seeded_bytes(11, 2_000_000)).unwrap();
    fs::write(generation_1.join("CURRENT"), b"MANIFEST-000012\n").unwrap();
    let first = lsmvault_json(
        &repo,
        &[
            "backup",
            "--init",
            "--no-encryption",
            generation_1.to_str().unwrap(),
        ],
    );

    std::thread::sleep(std::time::Duration::from_millis(20));
    fs::hard_link(
        generation_1.join("000010.sst"),
        generation_2.join("000010.sst"),
    )
    .unwrap();
    fs::hard_link(
        generation_1.join("000011.sst"),
        generation_2.join("000011.sst"),
    )
    .unwrap();
    fs::write(generation_2.join("000013.sst"), seeded_bytes(13, 500_000)).unwrap();
    fs::write(generation_2.join("CURRENT"), b"MANIFEST-000014\n").unwrap();
    let second = lsmvault_json(&repo, &["backup", generation_2.to_str().unwrap()]);
    let stats = &second["snapshot"]["stats"];
    assert_eq!(
        second["snapshot"]["kind"], "incremental",
        "sibling checkpoint is the parent"
    );
    assert_eq!(stats["files_unmodified"], 2, "{stats}");
    assert_eq!(stats["bytes_read"], 500_000 + 16, "{stats}");

    // A mutable file with a new ctime is read again even though size and mtime match.
    let third = lsmvault_json(&repo, &["backup", generation_2.to_str().unwrap()]);
    assert_eq!(third["snapshot"]["stats"]["bytes_read"], 0);
    let mtime = filetime::FileTime::from_last_modification_time(
        &fs::metadata(generation_2.join("CURRENT")).unwrap(),
    );
    fs::set_permissions(
        generation_2.join("CURRENT"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    filetime::set_file_mtime(generation_2.join("CURRENT"), mtime).unwrap();
    let fourth = lsmvault_json(&repo, &["backup", generation_2.to_str().unwrap()]);
    assert_eq!(fourth["snapshot"]["stats"]["bytes_read"], 16);

    // Restoring the first snapshot of generation 1 and the sibling-parented
    // generation 2 gives each its own content.
    for (snapshot, expected) in [(&first, &generation_1), (&second, &generation_2)] {
        let target = work.path().join(format!(
            "restored-{}",
            expected.file_name().unwrap().to_str().unwrap()
        ));
        lsmvault_ok(
            &repo,
            &[
                "restore",
                snapshot["id"].as_str().unwrap(),
                "--target",
                target.to_str().unwrap(),
            ],
        );
        let mut expected_files: Vec<_> = fs::read_dir(expected)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        expected_files.sort();
        for name in &expected_files {
            assert_eq!(
                fs::read(target.join(name)).unwrap(),
                fs::read(expected.join(name)).unwrap(),
                "{name:?}"
            );
        }
        assert_eq!(fs::read_dir(&target).unwrap().count(), expected_files.len());
    }
}

#[test]
fn restore_refuses_non_empty_target_and_delta_repairs_it() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let repo = work.path().join("repo");
    build_awkward_tree(&source, 5, 50);
    lsmvault_ok(
        &repo,
        &[
            "backup",
            "--init",
            "--no-encryption",
            source.to_str().unwrap(),
        ],
    );
    let target = work.path().join("target");
    fs::create_dir(&target).unwrap();
    fs::write(target.join("stray"), b"x").unwrap();

    let refused = lsmvault(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_eq!(refused.status.code(), Some(17));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not empty"));
    assert_eq!(
        fs::read(target.join("stray")).unwrap(),
        b"x",
        "nothing touched"
    );

    // Delta: restore once, damage some files, restore again with --delta.
    fs::remove_file(target.join("stray")).unwrap();
    lsmvault_ok(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    fs::write(target.join("many/00003.txt"), b"damaged").unwrap();
    fs::remove_file(target.join("large.bin")).unwrap();
    fs::remove_file(target.join("private")).unwrap();
    symlink("/etc/passwd", target.join("private")).unwrap();
    fs::write(target.join("extra-file"), b"not in snapshot").unwrap();
    let delta = lsmvault_json(
        &repo,
        &[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--delta",
        ],
    );
    assert_eq!(delta["entries_removed"], 1, "{delta}");
    let files = delta["files"].as_u64().unwrap();
    let kept = delta["files_kept"].as_u64().unwrap();
    assert_eq!(
        files - kept - delta["hard_links"].as_u64().unwrap(),
        3,
        "{delta}"
    );
    assert_same_tree(&source, &target);
    assert!(!fs::read_to_string("/etc/passwd").unwrap().is_empty());
}

#[test]
fn include_restores_only_selected_paths() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("source");
    let repo = work.path().join("repo");
    build_awkward_tree(&source, 1, 10);
    lsmvault_ok(
        &repo,
        &[
            "backup",
            "--init",
            "--no-encryption",
            source.to_str().unwrap(),
        ],
    );
    let target = work.path().join("target");
    lsmvault_ok(
        &repo,
        &[
            "restore",
            "latest",
            "--target",
            target.to_str().unwrap(),
            "--include",
            "nested/deeper",
            "--include",
            "private",
        ],
    );
    let restored = describe_tree(&target);
    let paths: Vec<&str> = restored.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "nested",
            "nested/deeper",
            "nested/deeper/deepest",
            "nested/deeper/deepest/empty-too",
            "private"
        ]
    );
    let listed = lsmvault_json(&repo, &["ls", "latest", "nested"]);
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["path"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"nested/hard-b") && names.contains(&"nested/up-link"),
        "{names:?}"
    );
    assert!(!names.iter().any(|name| name.starts_with("many")));
}

#[test]
fn snapshot_selection_errors_have_distinct_exit_codes() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let missing = lsmvault(&repo, &["snapshots"]);
    assert_eq!(missing.status.code(), Some(10));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains(repo.to_str().unwrap()) && stderr.contains("hint:"),
        "{stderr}"
    );

    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    assert_eq!(
        lsmvault(&repo, &["init", "--no-encryption"]).status.code(),
        Some(11)
    );
    assert_eq!(
        lsmvault(
            &repo,
            &["backup", work.path().join("nope").to_str().unwrap()]
        )
        .status
        .code(),
        Some(20)
    );
    let source = work.path().join("s");
    fs::create_dir(&source).unwrap();
    // Enough snapshots that two share a first hex digit.
    let mut ids = Vec::new();
    for index in 0..20 {
        fs::write(source.join("f"), format!("{index}")).unwrap();
        let out = lsmvault_json(
            &repo,
            &[
                "backup",
                source.to_str().unwrap(),
                "--tag",
                &format!("t{index}"),
            ],
        );
        ids.push(out["id"].as_str().unwrap().to_string());
    }
    let first_digits: Vec<char> = ids.iter().map(|id| id.chars().next().unwrap()).collect();
    let shared = first_digits
        .iter()
        .find(|digit| first_digits.iter().filter(|other| other == digit).count() > 1)
        .unwrap()
        .to_string();
    let target = work.path().join("t");
    let ambiguous = lsmvault(
        &repo,
        &["restore", &shared, "--target", target.to_str().unwrap()],
    );
    assert_eq!(ambiguous.status.code(), Some(14));
    let unknown = lsmvault(&repo, &["ls", "latest:no-such-tag"]);
    assert_eq!(unknown.status.code(), Some(13));
    let listed = lsmvault_json(&repo, &["ls", "latest:t3"]);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let snapshots = lsmvault_json(&repo, &["snapshots"]);
    assert_eq!(snapshots.as_array().unwrap().len(), 20);
    // Unique prefix.
    let prefix = &ids[5][..12];
    lsmvault_ok(
        &repo,
        &["restore", prefix, "--target", target.to_str().unwrap()],
    );
    assert_eq!(fs::read_to_string(target.join("f")).unwrap(), "5");

    // The repository may come from the environment.
    let output = std::process::Command::new(binary())
        .args(["snapshots", "--json"])
        .env("LSMVAULT_REPOSITORY", &repo)
        .output()
        .unwrap();
    assert!(output.status.success());
}

/// Runs lsmvault as an unprivileged user when the tests run as root (root reads
/// mode-000 files anyway), so that permission errors really happen.
fn lsmvault_unprivileged(args: &[&str]) -> std::process::Output {
    let mut command = if nix::unistd::geteuid().is_root() {
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(binary());
        command
    } else {
        std::process::Command::new(binary())
    };
    command
        .args(args)
        .env_remove("LSMVAULT_REPOSITORY")
        .output()
        .expect("running lsmvault")
}

#[test]
fn unreadable_file_makes_an_incomplete_snapshot_with_exit_code_3() {
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o777)).unwrap();
    let source = work.path().join("source");
    let repo = work.path().join("repo");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("good"), b"good").unwrap();
    // A FIFO is skipped with a warning (not an error).
    let fifo = std::process::Command::new("mkfifo")
        .arg(source.join("fifo"))
        .status()
        .unwrap();
    assert!(fifo.success());
    fs::write(source.join("secret"), b"x").unwrap();
    fs::set_permissions(source.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let locked = source.join("locked-dir");
    fs::create_dir(&locked).unwrap();
    fs::write(locked.join("inside"), b"x").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let output = lsmvault_unprivileged(&[
        "--repo",
        repo.to_str().unwrap(),
        "--json",
        "backup",
        "--init",
        "--no-encryption",
        source.to_str().unwrap(),
    ]);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{error}: {}", String::from_utf8_lossy(&output.stderr)));
    let warnings = result["snapshot"]["warnings"].to_string();
    assert_eq!(output.status.code(), Some(3), "{warnings}");
    assert_eq!(result["snapshot"]["incomplete"], true);
    assert!(
        warnings.contains("fifo") && warnings.contains("secret") && warnings.contains("locked-dir"),
        "{warnings}"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("incomplete"));

    // The snapshot exists and restores what could be read.
    let target = work.path().join("t");
    lsmvault_ok(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert_eq!(fs::read(target.join("good")).unwrap(), b"good");
    assert!(!target.join("secret").exists());
}

#[test]
fn two_backups_at_once_both_succeed() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let sources: Vec<_> = (0..2)
        .map(|index| {
            let source = work.path().join(format!("source{index}"));
            fs::create_dir(&source).unwrap();
            // Shared content (dedup across concurrent writers) and private content.
            fs::write(source.join("shared.sst"), seeded_bytes(99, 20_000_000)).unwrap();
            fs::write(source.join("own.sst"), seeded_bytes(index + 1, 10_000_000)).unwrap();
            source
        })
        .collect();
    let children: Vec<_> = sources
        .iter()
        .map(|source| {
            std::process::Command::new(binary())
                .args([
                    "--repo",
                    repo.to_str().unwrap(),
                    "backup",
                    source.to_str().unwrap(),
                ])
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let report = lsmvault_json(&repo, &["verify", "--read-data"]);
    assert_eq!(report["findings"].as_array().unwrap().len(), 0, "{report}");
    for source in &sources {
        let target = work.path().join(format!(
            "restored-{}",
            source.file_name().unwrap().to_str().unwrap()
        ));
        let snapshots = lsmvault_json(&repo, &["snapshots"]);
        let id = snapshots
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| {
                entry["snapshot"]["source"]
                    .as_str()
                    .unwrap()
                    .ends_with(source.file_name().unwrap().to_str().unwrap())
            })
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        lsmvault_ok(
            &repo,
            &["restore", &id, "--target", target.to_str().unwrap()],
        );
        assert_same_tree(source, &target);
    }
}

/// Progress bars are drawn on a terminal only: not with `--json`, `--quiet`,
/// or when stderr is not a terminal. `script` (util-linux) provides the pty.
#[test]
fn progress_bars_only_on_a_terminal() {
    assert!(have("script"), "script (util-linux) is needed for a pty");
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(11, 60_000_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let on_terminal = |flags: &str| {
        let command = format!(
            "{} --repo {} {flags} backup --full {}",
            binary().display(),
            repo.display(),
            source.display()
        );
        let output = std::process::Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .output()
            .unwrap();
        assert!(output.status.success(), "{command}: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let drawn = on_terminal("");
    assert!(
        drawn.contains("reading ["),
        "no bar on a terminal: {drawn:?}"
    );
    for flags in ["--json", "--quiet"] {
        let plain = on_terminal(flags);
        assert!(
            !plain.contains("reading ["),
            "{flags} drew a bar: {plain:?}"
        );
    }
    let piped = lsmvault(&repo, &["backup", "--full", source.to_str().unwrap()]);
    assert!(piped.status.success());
    assert!(!String::from_utf8_lossy(&piped.stderr).contains("reading ["));
}
