//! The habits restic users bring (issue 15): `--password-command`,
//! `backup --exclude/--exclude-file`, snapshot filters (`--tag --host
//! --path --database-id`), `forget` grouping by database identity, and
//! times printed with their zone. Each drives the CLI end to end.

use std::fs;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::*;

const PASSWORD: &str = "restic habits";

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
    assert_eq!(failed.status.code(), Some(36), "{}", stderr(&failed));
    let message = stderr(&failed);
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
    assert_eq!(wrong.status.code(), Some(26), "{}", stderr(&wrong));
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
    assert_eq!(hung.status.code(), Some(36), "{}", stderr(&hung));
    assert!(
        stderr(&hung).contains("timed out after 500ms"),
        "{}",
        stderr(&hung)
    );
    assert!(stderr(&hung).contains("waiting"), "{}", stderr(&hung));

    let silent = with_command(&repo, "true", &short);
    assert_eq!(silent.status.code(), Some(36), "{}", stderr(&silent));
    assert!(
        stderr(&silent).contains("printed no password"),
        "{}",
        stderr(&silent)
    );

    let only_stderr = with_command(&repo, &format!("echo '{PASSWORD}' >&2"), &short);
    assert_eq!(
        only_stderr.status.code(),
        Some(36),
        "{}",
        stderr(&only_stderr)
    );
    assert!(stderr(&only_stderr).contains("printed no password"));
    assert!(
        stderr(&only_stderr).contains(PASSWORD),
        "the stderr tail is quoted"
    );

    // An empty first line is no password, even with one on the second.
    let blank_first = with_command(&repo, &format!("printf '\\n{PASSWORD}\\n'"), &short);
    assert_eq!(
        blank_first.status.code(),
        Some(36),
        "{}",
        stderr(&blank_first)
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
        stderr(&bad_timeout)
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
    assert_eq!(both.status.code(), Some(22), "{}", stderr(&both));
    assert!(stderr(&both).contains("keep one"), "{}", stderr(&both));
    // Also when one comes from the environment.
    let mut mixed = lsmvault_command(&repo, None, &["--password-command", "echo x", "snapshots"]);
    mixed.env("LSMVAULT_PASSWORD_FILE", &file);
    let mixed = mixed.output().unwrap();
    assert_eq!(mixed.status.code(), Some(22), "{}", stderr(&mixed));
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
