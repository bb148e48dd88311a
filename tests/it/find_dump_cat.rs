//! `find`, `dump` and `cat` (issue 15, "what restic users reach for"),
//! driven through the CLI: which snapshots hold a file or an SST number, one
//! file to stdout (checked), raw objects for debugging; and the attacks on
//! them: a damaged chunk, snapshots sharing a tree, unknown and ambiguous ids.

use std::fs;
use std::path::Path;

use crate::common::{
    chunk_of, lsmvault, lsmvault_command, lsmvault_json, lsmvault_ok, seeded_bytes, snapshot_ids,
    stderr_text, three_pack_fixture,
};

#[test]
fn find_names_each_snapshot_holding_a_glob_or_sst_number_walking_a_shared_tree_once() {
    let fixture = three_pack_fixture();
    let source = fixture.source.to_str().unwrap();
    // The same tree twice (nothing changed), then a new table file.
    lsmvault_ok(&fixture.repo, &["backup", source]);
    fs::write(fixture.source.join("000123.sst"), b"table 123").unwrap();
    fs::create_dir(fixture.source.join("archive")).unwrap();
    fs::write(fixture.source.join("archive/000002.sst"), b"an old copy").unwrap();
    lsmvault_ok(&fixture.repo, &["backup", source]);
    let ids = snapshot_ids(&fixture.repo);
    assert_eq!(ids.len(), 3);

    let report = lsmvault_json(&fixture.repo, &["find", "--sst", "2"]);
    assert_eq!(report["snapshots_searched"], 3);
    assert_eq!(
        report["trees_walked"], 2,
        "two snapshots share one tree: {report:#}"
    );
    let found: Vec<(String, String)> = report["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|found| {
            (
                found["snapshot"].as_str().unwrap().to_string(),
                found["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (ids[0].clone(), "000002.sst".to_string()),
            (ids[1].clone(), "000002.sst".to_string()),
            (ids[2].clone(), "000002.sst".to_string()),
            (ids[2].clone(), "archive/000002.sst".to_string()),
        ]
    );
    let first = &report["matches"][0];
    assert_eq!(first["size"], 1_500_000);
    assert_eq!(first["type"], "file");
    assert_eq!(first["matched"], "sst 2");
    assert!(first["mtime"].as_str().unwrap().ends_with('Z'));

    // A glob by name, restricted to one snapshot; a path glob from the root.
    let newest = lsmvault_json(
        &fixture.repo,
        &["find", "0001*.sst", "--snapshot", "latest"],
    );
    let paths: Vec<&str> = newest["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|found| found["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["000123.sst"]);
    let by_path = lsmvault_json(&fixture.repo, &["find", "archive/*"]);
    assert_eq!(by_path["matches"].as_array().unwrap().len(), 1);

    // Text: one line per match with the short id; nothing found is not an error.
    let text = lsmvault_ok(&fixture.repo, &["find", "--sst", "123"]);
    assert!(
        text.contains(&ids[2][..8]) && text.contains("000123.sst"),
        "{text}"
    );
    let none = lsmvault_json(&fixture.repo, &["find", "no-such-file"]);
    assert_eq!(none["matches"].as_array().unwrap().len(), 0);
    // A pattern leaving the snapshot is refused; so is a call with nothing to find.
    assert_eq!(
        lsmvault(&fixture.repo, &["find", "../x"]).status.code(),
        Some(22)
    );
    assert_eq!(lsmvault(&fixture.repo, &["find"]).status.code(), Some(2));
}

#[test]
fn dump_streams_one_file_byte_exact_and_refuses_directories_and_missing_paths() {
    let fixture = three_pack_fixture();
    fs::create_dir(fixture.source.join("sub")).unwrap();
    fs::write(fixture.source.join("sub/CURRENT"), b"MANIFEST-000005\n").unwrap();
    std::os::unix::fs::symlink("000001.sst", fixture.source.join("link")).unwrap();
    lsmvault_ok(&fixture.repo, &["backup", fixture.source.to_str().unwrap()]);

    let output = lsmvault(&fixture.repo, &["dump", "latest", "000003.sst"]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert_eq!(
        output.stdout,
        fs::read(fixture.source.join("000003.sst")).unwrap()
    );
    let nested = lsmvault(&fixture.repo, &["dump", "latest", "/sub/CURRENT"]);
    assert_eq!(nested.stdout, b"MANIFEST-000005\n");

    for (path, says) in [
        ("sub", "is a directory"),
        ("missing.sst", "does not exist"),
        ("sub/missing", "does not exist"),
        ("000001.sst/x", "is not a directory"),
        ("link", "symbolic link"),
        ("/", "root directory"),
    ] {
        let output = lsmvault(&fixture.repo, &["dump", "latest", path]);
        let stderr = stderr_text(&output);
        assert_eq!(output.status.code(), Some(35), "{path}: {stderr}");
        assert!(output.stdout.is_empty(), "{path}");
        assert!(stderr.contains(says), "{path}: {stderr}");
        assert!(
            stderr.contains("lsmvault ls SNAPSHOT DIR"),
            "{path}: {stderr}"
        );
    }
}

#[test]
fn dump_of_a_file_whose_chunk_is_damaged_fails_naming_the_file() {
    let fixture = three_pack_fixture();
    let (pack, offset) = chunk_of(&fixture.repo, "000002.sst");
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset + 1000] ^= 0xff;
    fs::write(&pack, bytes).unwrap();

    let output = lsmvault(&fixture.repo, &["dump", "latest", "000002.sst"]);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(15), "{stderr}");
    assert!(stderr.contains("file 000002.sst"), "{stderr}");
    assert!(stderr.contains("chunk 1 of"), "{stderr}");
    // What was written before the damage is no longer than the file's start.
    let original = fs::read(fixture.source.join("000002.sst")).unwrap();
    assert!(original.starts_with(&output.stdout));
    // The other files still dump.
    let intact = lsmvault(&fixture.repo, &["dump", "latest", "000001.sst"]);
    assert!(intact.status.success(), "{}", stderr_text(&intact));
}

/// The full id of the one object in `directory` (a flat object directory).
fn only_object(directory: &Path) -> String {
    let mut names: Vec<String> = fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.swap_remove(0)
}

#[test]
fn cat_shows_each_object_kind_and_refuses_unknown_and_ambiguous_ids() {
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = (work.path().join("repo"), work.path().join("db"));
    fs::create_dir(&source).unwrap();
    fs::write(source.join("CURRENT"), b"MANIFEST-000001\n").unwrap();
    for number in 1..=20u64 {
        let name = format!("{number:06}.sst");
        fs::write(source.join(name), seeded_bytes(number, 3000)).unwrap();
    }
    let run = |args: &[&str]| lsmvault_command(&repo, Some("pw"), args).output().unwrap();
    let ok = |args: &[&str]| {
        let output = run(args);
        assert!(
            output.status.success(),
            "{args:?}: {}",
            stderr_text(&output)
        );
        output.stdout
    };
    let json = |args: &[&str]| -> serde_json::Value { serde_json::from_slice(&ok(args)).unwrap() };
    ok(&["init"]);
    ok(&["backup", source.to_str().unwrap()]);

    let config = json(&["cat", "config"]);
    assert_eq!(config["encryption"]["kdf"], "argon2id");
    let snapshot = json(&["cat", "snapshot", "latest"]);
    let snapshot_id = snapshot["id"].as_str().unwrap().to_string();
    assert_eq!(
        json(&["cat", "snapshot", &snapshot_id[..6]])["id"],
        snapshot_id.as_str()
    );
    let tree_id = snapshot["snapshot"]["tree"].as_str().unwrap().to_string();
    let tree = json(&["cat", "tree", &tree_id[..10]]);
    assert_eq!(tree["tree"]["entries"].as_array().unwrap().len(), 21);

    // An index file lists the blobs; a blob's content is raw bytes.
    let index_id = only_object(&repo.join("index"));
    let index = json(&["cat", "index", &index_id[..8]]);
    let blobs = index["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 22, "21 chunks and one tree");
    let current_digest = json(&["--json", "ls", "latest", "CURRENT"])[0]["detail"]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(ok(&["cat", "blob", &current_digest]), b"MANIFEST-000001\n");
    // A pack shows its header (decrypted).
    let pack_id = blobs[0]["pack"].as_str().unwrap();
    let pack = json(&["cat", "pack", pack_id]);
    let in_pack = blobs.iter().filter(|blob| blob["pack"] == pack_id).count();
    assert_eq!(pack["blobs"].as_array().unwrap().len(), in_pack);
    assert!(pack["size"].as_u64().unwrap() > 20 * 3000);
    // A key file as stored: its master key stays wrapped.
    let key_id = only_object(&repo.join("keys"));
    let key = json(&["cat", "key", &key_id[..8]]);
    assert!(key["key"]["wrapped"].as_str().unwrap().len() > 64);

    // A lock, while it is held.
    {
        let repository = lsmvault::Repository::open_local_with_password(&repo, "pw").unwrap();
        let guard = repository
            .lock(lsmvault::repo::lock::LockKind::Shared, "cat test")
            .unwrap();
        let lock = json(&["cat", "lock", &guard.name()[..10]]);
        assert_eq!(lock["lock"]["purpose"], "cat test", "{lock:#}");
    }

    // Unknown ids exit 35 naming the kind; ambiguous prefixes 14; not hex 22.
    let unknown = run(&["cat", "index", "ffffffffffff"]);
    assert_eq!(unknown.status.code(), Some(35), "{}", stderr_text(&unknown));
    assert!(stderr_text(&unknown).contains("no index file matches"));
    assert_eq!(
        run(&["cat", "snapshot", "ffffffffffff"]).status.code(),
        Some(13)
    );
    assert_eq!(run(&["cat", "lock", "ab"]).status.code(), Some(35));
    assert_eq!(run(&["cat", "wal", "ab"]).status.code(), Some(35));
    assert_eq!(run(&["cat", "blob", "xyz"]).status.code(), Some(22));
    let first_digits: Vec<char> = blobs
        .iter()
        .map(|blob| blob["id"].as_str().unwrap().chars().next().unwrap())
        .collect();
    let shared = first_digits
        .iter()
        .find(|digit| first_digits.iter().filter(|other| other == digit).count() > 1)
        .expect("22 ids share a first hex digit");
    let ambiguous = run(&["cat", "blob", &shared.to_string()]);
    assert_eq!(
        ambiguous.status.code(),
        Some(14),
        "{}",
        stderr_text(&ambiguous)
    );
    assert!(stderr_text(&ambiguous).contains("blob prefix"));
    // `config` takes no id; the others need one.
    assert_eq!(run(&["cat", "config", "ab"]).status.code(), Some(22));
    assert_eq!(run(&["cat", "index"]).status.code(), Some(2));
}

#[test]
fn dump_of_a_file_contradicting_its_digest_fails_after_the_output_naming_the_file() {
    use crate::reliability_bounds::{fixture, plant_contradicting_files};
    let fixture = fixture();
    plant_contradicting_files(&fixture.repo);
    let good = lsmvault(&fixture.repo, &["dump", "latest", "good"]);
    assert!(good.status.success(), "{}", stderr_text(&good));
    assert_eq!(good.stdout, b"first chunksecond chunk");
    for (file, output) in [
        ("two-chunks", &b"first chunksecond chunk"[..]),
        ("one-chunk", b"first chunk"),
        ("short", b"first chunk"),
    ] {
        let dumped = lsmvault(&fixture.repo, &["dump", "latest", file]);
        let stderr = stderr_text(&dumped);
        assert_eq!(dumped.status.code(), Some(15), "{file}: {stderr}");
        // Streamed: the bytes came out before the digest could be checked.
        assert_eq!(dumped.stdout, output, "{file}");
        assert!(
            stderr.contains(&format!("file {file} of snapshot")),
            "{stderr}"
        );
        assert!(stderr.contains("the output is damaged"), "{stderr}");
    }
}

#[test]
fn find_over_a_tree_dag_bomb_is_refused_quickly_naming_the_tree() {
    use crate::reliability_bounds::{bounded, fixture, plant_dag_bomb};
    let fixture = fixture();
    let root = plant_dag_bomb(&fixture.repo);
    let limit = std::time::Duration::from_secs(60);
    let output = bounded(&fixture.repo, &["find", "leaf"], limit);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(16), "{stderr}");
    assert!(stderr.contains(&root.to_hex()), "{stderr}");
    // The intact snapshot alone is still searchable.
    let first = snapshot_ids(&fixture.repo)[0].clone();
    let report = lsmvault_json(&fixture.repo, &["find", "CURRENT", "--snapshot", &first]);
    assert_eq!(report["matches"].as_array().unwrap().len(), 1);
}

#[test]
fn rocksdb_find_by_sst_number_and_dump_an_sst_that_sst_dump_verifies() {
    use crate::common::run_tool;
    use crate::rocksdb::{checkpoint, db_bench, ROCKSDB_TOOLS};
    if !crate::common::tools_available(&ROCKSDB_TOOLS) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (db, repo) = (work.path().join("db"), work.path().join("repo"));
    lsmvault::Repository::init_local(&repo, lsmvault::InitOptions::default()).unwrap();
    db_bench(&db, &["--benchmarks=fillrandom"]);
    let first = work.path().join("ckpt-1");
    checkpoint(&db, &first);
    lsmvault_ok(&repo, &["backup", first.to_str().unwrap()]);
    db_bench(&db, &["--benchmarks=overwrite", "--use_existing_db=1"]);
    let second = work.path().join("ckpt-2");
    checkpoint(&db, &second);
    lsmvault_ok(&repo, &["backup", second.to_str().unwrap()]);
    let ids = snapshot_ids(&repo);

    let tables = |directory: &Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(directory)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sst"))
            .collect();
        names.sort();
        names
    };
    let (old, new) = (tables(&first), tables(&second));
    assert!(!old.is_empty() && !new.is_empty());
    for name in old.iter().chain(&new) {
        let number: u64 = name.trim_end_matches(".sst").parse().unwrap();
        let report = lsmvault_json(&repo, &["find", "--sst", &number.to_string()]);
        let holders: Vec<&str> = report["matches"]
            .as_array()
            .unwrap()
            .iter()
            .map(|found| found["snapshot"].as_str().unwrap())
            .collect();
        let mut expected = Vec::new();
        if old.contains(name) {
            expected.push(ids[0].as_str());
        }
        if new.contains(name) {
            expected.push(ids[1].as_str());
        }
        assert_eq!(holders, expected, "{name}");
    }

    // A WAL record, archived from the live database.
    lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let record = only_object(&repo.join("wal"));
    let shown = lsmvault_json(&repo, &["cat", "wal", &record[..12]]);
    assert_eq!(shown["id"], record.as_str());
    assert_eq!(shown["record"]["type"], "segment", "{shown:#}");

    // One SST out through dump: byte-exact, and sst_dump verifies its checksums.
    let name = &new[0];
    let output = lsmvault(&repo, &["dump", "latest", name]);
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert_eq!(output.stdout, fs::read(second.join(name)).unwrap());
    let dumped = work.path().join(name);
    fs::write(&dumped, &output.stdout).unwrap();
    run_tool(
        std::process::Command::new("sst_dump")
            .arg(format!("--file={}", dumped.display()))
            .arg("--command=verify"),
    );
}

/// Runs `lsmvault ARGS | head -c 1`: the reader closes the pipe after one
/// byte. Returns the exit code and stderr of lsmvault.
fn into_closed_pipe(repo: &Path, args: &[&str]) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = lsmvault_command(repo, None, args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 1];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // Dropping our end closes the pipe while lsmvault still writes.
    let output = child.wait_with_output().unwrap();
    (output.status.code(), stderr_text(&output))
}

#[test]
fn output_into_a_closed_pipe_ends_quietly_with_141_never_a_panic() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    // More listing than a pipe buffer holds, and a file larger than one.
    for number in 0..3000 {
        fs::write(source.join(format!("{number:06}.sst")), number.to_string()).unwrap();
    }
    fs::write(source.join("big"), seeded_bytes(9, 4_000_000)).unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    for args in [
        &["ls", "latest"][..],
        &["--json", "ls", "latest"],
        &["find", "*.sst"],
        &["--json", "find", "*.sst"],
        &["dump", "latest", "big"],
        &["--json", "dump", "latest", "big"],
        &["completions", "bash"],
    ] {
        let (code, stderr) = into_closed_pipe(&repo, args);
        assert_eq!(code, Some(141), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(!stderr.contains("error"), "{args:?}: {stderr}");
    }
    assert_eq!(fs::read_dir(repo.join("locks")).unwrap().count(), 0);
}

#[test]
fn dump_reaches_a_file_whose_name_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    let name = std::ffi::OsStr::from_bytes(b"a\xffb.sst");
    fs::write(source.join(name), b"bytes of a strange name").unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    let output = lsmvault_command(&repo, None, &["dump", "latest"])
        .arg(name)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_text(&output));
    assert_eq!(output.stdout, b"bytes of a strange name");
}

#[test]
fn names_with_a_newline_stay_on_one_line_in_text_output() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = work.path().join("db");
    fs::create_dir(&source).unwrap();
    fs::write(source.join("two\nlines.sst"), b"x").unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    let listing = lsmvault_ok(&repo, &["ls", "latest"]);
    assert!(listing.contains("two\\nlines.sst"), "{listing}");
    assert!(
        !listing.lines().any(|line| line == "lines.sst"),
        "{listing}"
    );
    let found = lsmvault_ok(&repo, &["find", "two*"]);
    assert!(found.contains("two\\nlines.sst"), "{found}");
    // JSON keeps the name as it is.
    let json = lsmvault_json(&repo, &["ls", "latest"]);
    assert_eq!(json[0]["path"], "two\nlines.sst");
}
