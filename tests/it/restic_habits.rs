//! The habits restic users bring (issue 15): `--password-command`,
//! `backup --exclude/--exclude-file`, snapshot filters (`--tag --host
//! --path --database-id`), `forget` grouping by database identity, and
//! times printed with their zone. Each drives the CLI end to end.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::*;

const PASSWORD: &str = "restic habits";

/// An encrypted repository (password [`PASSWORD`]) in `work/repo`.
fn encrypted_repository(work: &Path) -> std::path::PathBuf {
    let repo = work.join("repo");
    let init = lsmvault_with_password(&repo, Some(PASSWORD), &["init", "--kdf-target-ms", "20"]);
    assert_success(&init, "init");
    repo
}

/// `lsmvault snapshots` with only `--password-command CMD` as the password
/// source, plus `environment`.
fn with_command(repo: &Path, command: &str, environment: &[(&str, &str)]) -> Output {
    let mut run = lsmvault_command(repo, None, &["--password-command", command, "snapshots"]);
    for (name, value) in environment {
        run.env(name, value);
    }
    run.output().expect("running lsmvault")
}

#[test]
fn password_command_supplies_the_password_and_its_failures_are_named() {
    let work = tempfile::tempdir().unwrap();
    let repo = encrypted_repository(work.path());
    // Its first line is the password; what follows is ignored.
    let good = with_command(&repo, &format!("printf '{PASSWORD}\\nsecond line\\n'"), &[]);
    assert_success(&good, "password command");
    // The environment variable works as the flag does.
    let mut by_env = lsmvault_command(&repo, None, &["snapshots"]);
    by_env.env("LSMVAULT_PASSWORD_COMMAND", format!("echo '{PASSWORD}'"));
    assert_success(&by_env.output().unwrap(), "LSMVAULT_PASSWORD_COMMAND");

    // A non-zero exit: the command, its status and the end of its stderr.
    let failed = with_command(&repo, "echo vault sealed >&2; exit 3", &[]);
    assert_eq!(failed.status.code(), Some(36), "{}", stderr_text(&failed));
    let message = stderr_text(&failed);
    assert!(
        message.contains("echo vault sealed >&2; exit 3"),
        "{message}"
    );
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(message.contains("vault sealed"), "{message}");
    assert!(
        message.contains("hint: run the password command by hand"),
        "{message}"
    );

    // A wrong password from the command is a wrong password (26), not a command failure.
    let wrong = with_command(&repo, "echo not-it", &[]);
    assert_eq!(wrong.status.code(), Some(26), "{}", stderr_text(&wrong));
}

#[test]
fn password_command_that_hangs_prints_nothing_or_only_to_stderr_fails_with_36() {
    let work = tempfile::tempdir().unwrap();
    let repo = encrypted_repository(work.path());
    let short = [("LSMVAULT_PASSWORD_COMMAND_TIMEOUT", "500ms")];
    let started = Instant::now();
    // A grandchild holding stdout open must not keep lsmvault waiting either.
    let hung = with_command(&repo, "sleep 60 & echo waiting >&2; sleep 60", &short);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout was not enforced"
    );
    assert_eq!(hung.status.code(), Some(36), "{}", stderr_text(&hung));
    assert!(
        stderr_text(&hung).contains("timed out after 500ms"),
        "{}",
        stderr_text(&hung)
    );
    assert!(
        stderr_text(&hung).contains("waiting"),
        "{}",
        stderr_text(&hung)
    );

    let silent = with_command(&repo, "true", &short);
    assert_eq!(silent.status.code(), Some(36), "{}", stderr_text(&silent));
    assert!(
        stderr_text(&silent).contains("printed no password"),
        "{}",
        stderr_text(&silent)
    );

    let only_stderr = with_command(&repo, &format!("echo '{PASSWORD}' >&2"), &short);
    assert_eq!(
        only_stderr.status.code(),
        Some(36),
        "{}",
        stderr_text(&only_stderr)
    );
    assert!(stderr_text(&only_stderr).contains("printed no password"));
    assert!(
        stderr_text(&only_stderr).contains(PASSWORD),
        "the stderr tail is quoted"
    );

    // An empty first line is no password, even with one on the second.
    let blank_first = with_command(&repo, &format!("printf '\\n{PASSWORD}\\n'"), &short);
    assert_eq!(
        blank_first.status.code(),
        Some(36),
        "{}",
        stderr_text(&blank_first)
    );

    // `yes` never ends and prints without bound: killed, not filling /tmp.
    let started = Instant::now();
    let endless = with_command(&repo, "yes", &[]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "not killed early"
    );
    assert_eq!(endless.status.code(), Some(36), "{}", stderr_text(&endless));
    assert!(
        stderr_text(&endless).contains("more than 65536 bytes"),
        "{}",
        stderr_text(&endless)
    );

    let bad_timeout = with_command(
        &repo,
        "true",
        &[("LSMVAULT_PASSWORD_COMMAND_TIMEOUT", "soon")],
    );
    assert_eq!(
        bad_timeout.status.code(),
        Some(22),
        "{}",
        stderr_text(&bad_timeout)
    );
}

#[test]
fn password_file_and_password_command_together_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let repo = encrypted_repository(work.path());
    let file = work.path().join("password");
    fs::write(&file, PASSWORD).unwrap();
    let file_text = file.to_str().unwrap();
    let both = lsmvault_command(
        &repo,
        None,
        &[
            "--password-file",
            file_text,
            "--password-command",
            "echo x",
            "snapshots",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(both.status.code(), Some(22), "{}", stderr_text(&both));
    assert!(
        stderr_text(&both).contains("keep one"),
        "{}",
        stderr_text(&both)
    );
    // Also when one comes from the environment.
    let mut mixed = lsmvault_command(&repo, None, &["--password-command", "echo x", "snapshots"]);
    mixed.env("LSMVAULT_PASSWORD_FILE", &file);
    let mixed = mixed.output().unwrap();
    assert_eq!(mixed.status.code(), Some(22), "{}", stderr_text(&mixed));
    // An exported but empty variable is no command.
    let mut empty = lsmvault_command(&repo, Some(PASSWORD), &["snapshots"]);
    empty.env("LSMVAULT_PASSWORD_COMMAND", "");
    assert_success(&empty.output().unwrap(), "empty LSMVAULT_PASSWORD_COMMAND");
    // The command beats LSMVAULT_PASSWORD, as a password file does.
    let mut over_env = lsmvault_command(
        &repo,
        Some("wrong"),
        &[
            "--password-command",
            &format!("echo '{PASSWORD}'"),
            "snapshots",
        ],
    );
    assert_success(
        &over_env.output().unwrap(),
        "command over LSMVAULT_PASSWORD",
    );
    // `init` takes its password from the command too.
    let second = work.path().join("second");
    let init = lsmvault_command(
        &second,
        None,
        &[
            "--password-command",
            "echo s3cret",
            "init",
            "--kdf-target-ms",
            "20",
        ],
    )
    .output()
    .unwrap();
    assert_success(&init, "init with a password command");
    let listed = lsmvault_with_password(&second, Some("s3cret"), &["snapshots"]);
    assert_success(&listed, "snapshots with the command's password");
}

/// A plaintext repository in `work/repo` and a small source directory
/// `work/NAME` holding `files`.
fn plain_source(work: &Path, name: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
    let source = work.join(name);
    for (path, content) in files {
        let path = source.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }
    source
}

#[test]
fn snapshot_filters_tag_host_path_and_database_id_on_snapshots_ls_restore_diff_and_forget() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let one = plain_source(
        work.path(),
        "one",
        &[("a", b"one"), ("IDENTITY", b"db-one\n")],
    );
    let two = plain_source(work.path(), "two", &[("b", b"two")]);
    let (one_text, two_text) = (one.to_str().unwrap(), two.to_str().unwrap());
    let backup = |source: &str, host: &str, tags: &str| -> String {
        let report = lsmvault_json(&repo, &["backup", source, "--host", host, "--tag", tags]);
        report["id"].as_str().unwrap().to_string()
    };
    // `--tag` at backup is repeatable; here one tag each, two for the last.
    let first = backup(one_text, "db1", "nightly");
    let second = backup(two_text, "db2", "nightly");
    let third = lsmvault_json(
        &repo,
        &[
            "backup", one_text, "--host", "db1", "--tag", "weekly", "--tag", "nightly",
        ],
    )["id"]
        .as_str()
        .unwrap()
        .to_string();

    let listed = |args: &[&str]| {
        let mut all = vec!["snapshots"];
        all.extend_from_slice(args);
        listed_ids(&lsmvault_json(&repo, &all))
    };
    assert_eq!(listed(&[]), [first.clone(), second.clone(), third.clone()]);
    assert_eq!(listed(&["--host", "db2"]), vec![second.clone()]);
    assert_eq!(
        listed(&["--path", one_text]),
        [first.clone(), third.clone()]
    );
    assert_eq!(
        listed(&["--path", &format!("{one_text}/")]),
        [first.clone(), third.clone()]
    );
    assert_eq!(
        listed(&["--database-id", "db-one"]),
        [first.clone(), third.clone()]
    );
    // restic's tag lists: `a,b` needs both, repeated flags need either.
    assert_eq!(listed(&["--tag", "weekly,nightly"]), vec![third.clone()]);
    assert_eq!(listed(&["--tag", "weekly", "--tag", "nightly"]).len(), 3);
    assert_eq!(
        listed(&["--tag", "nightly", "--host", "db1"]),
        [first.clone(), third.clone()]
    );
    // `--tag ''` (an unset variable in a script) means "no tag", never "any".
    assert!(listed(&["--tag", ""]).is_empty());
    let unset = lsmvault_json(
        &repo,
        &["forget", "--keep-last", "1", "--tag", "", "--dry-run"],
    );
    assert_eq!(unset["removed"], serde_json::json!([]), "{unset}");
    // A filter that matches nothing: an empty list, exit 0, said in text.
    assert!(listed(&["--host", "nowhere"]).is_empty());
    let text = lsmvault_ok(&repo, &["snapshots", "--host", "nowhere"]);
    assert!(
        text.contains("0 snapshot(s)") && text.contains("no snapshot matches host nowhere"),
        "{text}"
    );
    // Times in the table carry their zone.
    let table = lsmvault_ok(&repo, &["snapshots"]);
    assert!(table.lines().nth(1).unwrap().contains(" UTC "), "{table}");

    // `ls latest --host db2`: the newest snapshot of that host.
    let files = lsmvault_json(&repo, &["ls", "latest", "--host", "db2"]);
    let paths: Vec<&str> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["b"]);
    let missing = lsmvault(&repo, &["ls", "latest", "--host", "nowhere"]);
    assert_eq!(missing.status.code(), Some(13), "{}", stderr_text(&missing));
    assert!(
        stderr_text(&missing).contains("latest with host nowhere"),
        "{}",
        stderr_text(&missing)
    );
    // An id names its snapshot whatever the filter (as in restic).
    let by_id = lsmvault_json(&repo, &["ls", &second[..12], "--host", "db1"]);
    assert_eq!(by_id[0]["path"], "b");
    // `latest:TAG` is filtered too.
    let tagged = lsmvault_json(&repo, &["ls", "latest:nightly", "--host", "db2"]);
    assert_eq!(tagged[0]["path"], "b");

    // `restore latest --host db2` restores two's files; no match is exit 13.
    let target = work.path().join("restored");
    lsmvault_ok(
        &repo,
        &[
            "restore",
            "latest",
            "--host",
            "db2",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_eq!(fs::read(target.join("b")).unwrap(), b"two");
    let nowhere = work.path().join("nowhere");
    let failed = lsmvault(
        &repo,
        &[
            "restore",
            "latest",
            "--path",
            "/no/such",
            "--target",
            nowhere.to_str().unwrap(),
        ],
    );
    assert_eq!(failed.status.code(), Some(13), "{}", stderr_text(&failed));
    assert!(!nowhere.exists(), "nothing restored");

    // `diff` resolves `latest` under the filter: host db1's latest is `third`.
    let diff = lsmvault_json(&repo, &["diff", &first, "latest", "--host", "db1"]);
    assert_eq!(diff["added"], 0, "{diff}");
    let across = lsmvault_json(&repo, &["diff", &first, "latest", "--host", "db2"]);
    assert!(across["added"].as_u64().unwrap() >= 1, "{across}");

    // `forget --path` (and its old name `--source`) only judges those snapshots.
    let dry = lsmvault_json(
        &repo,
        &[
            "forget",
            "--keep-last",
            "1",
            "--path",
            one_text,
            "--dry-run",
        ],
    );
    assert_eq!(dry["removed"], serde_json::json!([first]), "{dry}");
    let by_source = lsmvault_json(&repo, &["forget", "--keep-last", "1", "--source", one_text]);
    assert_eq!(
        by_source["removed"],
        serde_json::json!([first]),
        "{by_source}"
    );
    assert_eq!(listed(&[]), [second, third]);
}

#[test]
fn forget_keep_daily_keeps_three_days_of_nine_dated_checkpoint_directories() {
    if !tools_available(&["db_bench", "ldb"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let db = work.path().join("db");
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db_flag = format!("--db={}", db.display());
    run_tool(Command::new("db_bench").args([&db_flag, "--benchmarks=fillseq", "--num=500"]));
    let identity = fs::read_to_string(db.join("IDENTITY")).unwrap();
    let identity = identity.trim();
    // Nine nightly checkpoints, each into a directory named by its date and
    // backed up dated that night (what a cron job restoring history does).
    for day in 1..=9 {
        let key = format!("night-{day}");
        run_tool(Command::new("ldb").args([&db_flag, "put", &key, "value"]));
        let directory = work.path().join(format!("ckpt/2026-12-0{day}"));
        fs::create_dir_all(directory.parent().unwrap()).unwrap();
        run_tool(Command::new("ldb").args([
            db_flag.clone(),
            "checkpoint".into(),
            format!("--checkpoint_dir={}", directory.display()),
        ]));
        let time = format!("2026-12-0{day}T02:00:00Z");
        lsmvault_ok(
            &repo,
            &[
                "backup",
                directory.to_str().unwrap(),
                "--database-id",
                identity,
                "--time",
                &time,
            ],
        );
    }
    let listing = lsmvault_json(&repo, &["snapshots"]);
    assert_eq!(
        listing[0]["snapshot"]["time"],
        "2026-12-01T02:00:00.000000000Z"
    );
    // Grouped as before (by host and source) each directory is its own group
    // and nothing goes: the surprise.
    let old = lsmvault_json(
        &repo,
        &[
            "forget",
            "--keep-daily",
            "3",
            "--group-by",
            "host,source",
            "--dry-run",
        ],
    );
    assert_eq!(old["groups"].as_array().unwrap().len(), 9);
    assert_eq!(old["removed"].as_array().unwrap().len(), 0);
    // By default one database is one group: three days kept, six removed.
    let text = lsmvault_ok(&repo, &["forget", "--keep-daily", "3"]);
    assert!(
        text.contains(&format!("database {identity}, host ")),
        "{text}"
    );
    assert!(
        text.contains("2026-12-09 02:00:00 UTC"),
        "times carry their zone: {text}"
    );
    assert!(text.contains("6 snapshot(s) removed"), "{text}");
    let kept: Vec<String> = lsmvault_json(&repo, &["snapshots"])
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["snapshot"]["source"].as_str().unwrap().to_string())
        .collect();
    let days: Vec<&str> = kept
        .iter()
        .map(|source| &source[source.len() - 10..])
        .collect();
    assert_eq!(days, ["2026-12-07", "2026-12-08", "2026-12-09"]);
}

#[test]
fn backup_exclude_and_exclude_file_leave_paths_out_record_them_and_count_them() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let source = plain_source(
        work.path(),
        "db",
        &[
            ("000010.sst", b"sst"),
            ("LOG", b"log"),
            ("LOG.old.1", b"old log"),
            ("archive/000001.sst", b"old"),
            ("archive/deep/000002.sst", b"older"),
            (
                "sub/archive/keep.sst",
                b"kept: /archive is anchored at the root",
            ),
            ("sub/scratch.tmp", b"tmp"),
        ],
    );
    // A FIFO inside an excluded directory: it would be warned about if the
    // scan looked inside, which it must not.
    let fifo = source.join("archive/deep/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let exclude_file = work.path().join("excludes");
    fs::write(
        &exclude_file,
        "# old generations\n/archive\n\n  **/*.tmp  \n# a pattern that matches nothing\nnot-there-*\n",
    )
    .unwrap();
    let output = lsmvault(
        &repo,
        &[
            "backup",
            source.to_str().unwrap(),
            "--exclude",
            "LOG*",
            "--exclude-file",
            exclude_file.to_str().unwrap(),
        ],
    );
    let text = assert_success(&output, "backup with excludes");
    // 4 entries: LOG, LOG.old.1, archive/ (once, with all below it), sub/scratch.tmp.
    assert!(text.contains("excluded: 4 entries (4 pattern(s)"), "{text}");
    let warnings = stderr_text(&output);
    assert!(
        warnings.contains("exclude pattern \"not-there-*\" matched nothing"),
        "{warnings}"
    );
    assert!(
        !warnings.contains("pipe"),
        "the excluded directory was descended: {warnings}"
    );
    assert_eq!(
        listed_paths(&repo, "latest"),
        ["000010.sst", "sub", "sub/archive", "sub/archive/keep.sst"]
    );
    let listing = lsmvault_json(&repo, &["snapshots"]);
    let snapshot = &listing[0]["snapshot"];
    assert_eq!(
        snapshot["excludes"],
        serde_json::json!(["LOG*", "/archive", "**/*.tmp", "not-there-*"])
    );
    assert_eq!(snapshot["stats"]["excluded"], 4);
    assert_eq!(snapshot["incomplete"], false);
    // A backup without excludes records none (the field is absent).
    let plain = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
    assert!(plain["snapshot"].get("excludes").is_none(), "{plain}");
    assert!(listed_paths(&repo, "latest").contains(&"LOG".to_string()));
}

#[test]
fn exclude_patterns_with_dot_dot_or_naming_the_root_and_missing_exclude_files_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let source = plain_source(work.path(), "db", &[("a", b"a")]);
    let source_text = source.to_str().unwrap();
    let refused = |extra: &[&str], code: i32, needle: &str| {
        let mut args = vec!["backup", "--init", "--no-encryption", source_text];
        args.extend_from_slice(extra);
        let output = lsmvault(&repo, &args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{extra:?}: {}",
            stderr_text(&output)
        );
        assert!(
            stderr_text(&output).contains(needle),
            "{extra:?}: {}",
            stderr_text(&output)
        );
    };
    refused(&["--exclude", "../secret"], 22, "contains '..'");
    refused(&["--exclude", "db/../../x"], 22, "contains '..'");
    refused(&["--exclude", "/"], 22, "names the source directory itself");
    refused(&["--exclude", "."], 22, "names the source directory itself");
    let bad_file = work.path().join("bad-excludes");
    fs::write(&bad_file, "# fine\n*.tmp\n../../etc\n").unwrap();
    refused(
        &["--exclude-file", bad_file.to_str().unwrap()],
        22,
        "\"../../etc\"",
    );
    let missing = work.path().join("no-such-excludes");
    refused(
        &["--exclude-file", missing.to_str().unwrap()],
        21,
        missing.to_str().unwrap(),
    );
    // Refused before anything was written: not even the repository --init would create.
    assert!(!repo.exists());
    // An absolute file-system path (restic's habit) is anchored at the
    // source root here, so it matches nothing: kept, and warned about.
    let absolute = format!("{source_text}/a");
    let output = lsmvault(
        &repo,
        &[
            "backup",
            "--init",
            "--no-encryption",
            source_text,
            "--exclude",
            &absolute,
        ],
    );
    assert_success(&output, "backup with an absolute exclude");
    assert!(
        stderr_text(&output).contains("matched nothing"),
        "{}",
        stderr_text(&output)
    );
    assert_eq!(listed_paths(&repo, "latest"), ["a"]);
}

#[test]
fn backup_live_honours_excludes() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let db = plain_source(
        work.path(),
        "db",
        &[
            ("000010.sst", b"sst"),
            ("MANIFEST-000005", b"manifest"),
            ("CURRENT", b"MANIFEST-000005\n"),
            ("000012.log", b""),
            ("OPTIONS-000007", b"options"),
        ],
    );
    let output = lsmvault(
        &repo,
        &[
            "backup",
            "--live",
            db.to_str().unwrap(),
            "--exclude",
            "OPTIONS-*",
        ],
    );
    let text = assert_success(&output, "backup --live --exclude");
    assert!(text.contains("excluded: 1 entries"), "{text}");
    let paths = listed_paths(&repo, "latest");
    assert!(paths.contains(&"000010.sst".to_string()), "{paths:?}");
    assert!(
        !paths.iter().any(|path| path.starts_with("OPTIONS")),
        "{paths:?}"
    );
    let listing = lsmvault_json(&repo, &["snapshots"]);
    assert_eq!(
        listing[0]["snapshot"]["source"],
        db.canonicalize().unwrap().to_str().unwrap()
    );
    assert_eq!(
        listing[0]["snapshot"]["excludes"],
        serde_json::json!(["OPTIONS-*"])
    );
}
