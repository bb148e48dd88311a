//! A live database is never left frozen, and nothing is left behind
//! (issue 15, items 1 and 4): `checkpoint` and `backup --live` with
//! `--freeze-cmd`/`--thaw-cmd` driving a fake writer (a shell loop that
//! appends to the database's active WAL, paused with SIGSTOP and resumed with
//! SIGCONT), through failing freezes, failing links, failing thaws, and
//! SIGINT/SIGTERM at random points.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    assert_same_tree, binary, iterations_from_env, lsmvault, lsmvault_command, lsmvault_ok,
    seeded_bytes, snapshot_ids, stderr_text,
};

/// A process that keeps writing to the database's active WAL until dropped.
struct Writer {
    child: Child,
}

impl Writer {
    fn start(db: &Path) -> Writer {
        let wal = db.join("000012.log");
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "while :; do echo record >> '{}'; sleep 0.01; done",
                wal.display()
            ))
            .spawn()
            .expect("starting the writer");
        Writer { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process state from /proc/PID/stat (`T`: stopped).
    fn state(&self) -> char {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 1..];
        after_name.trim_start().chars().next().unwrap()
    }

    fn assert_running(&self, context: &str) {
        // A SIGCONT is delivered at once, but give the scheduler a moment.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.state() == 'T' && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_ne!(self.state(), 'T', "the writer is left frozen: {context}");
    }

    fn freeze(&self) -> String {
        format!("kill -STOP {}", self.pid())
    }

    fn thaw(&self) -> String {
        format!("kill -CONT {}", self.pid())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.pid().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A work directory with a fake database `db` (an SST big enough for the
/// backup to take a moment, a MANIFEST, CURRENT, the active WAL), an
/// initialised plaintext repository `repo`, and a running writer.
struct LiveFixture {
    // Fields drop in order: the writer stops before its directory goes.
    writer: Writer,
    work: tempfile::TempDir,
    db: PathBuf,
    repo: PathBuf,
}

impl LiveFixture {
    fn new(sst_bytes: usize) -> LiveFixture {
        let work = tempfile::tempdir().unwrap();
        let db = work.path().join("db");
        fs::create_dir(&db).unwrap();
        fs::write(db.join("000010.sst"), seeded_bytes(10, sst_bytes)).unwrap();
        fs::write(db.join("000011.sst"), seeded_bytes(11, sst_bytes / 2)).unwrap();
        fs::write(db.join("MANIFEST-000005"), b"manifest").unwrap();
        fs::write(db.join("CURRENT"), b"MANIFEST-000005\n").unwrap();
        fs::write(db.join("000012.log"), b"").unwrap();
        let repo = work.path().join("repo");
        lsmvault_ok(&repo, &["init", "--no-encryption"]);
        let writer = Writer::start(&db);
        LiveFixture {
            writer,
            work,
            db,
            repo,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn db(&self) -> &str {
        self.db.to_str().unwrap()
    }

    /// `checkpoint db DESTINATION` (or `backup --live db` when `destination`
    /// is `None`) with the writer's freeze and thaw, plus `extra` arguments.
    fn command(&self, destination: Option<&Path>, extra: &[&str]) -> Vec<String> {
        let mut arguments: Vec<String> = match destination {
            Some(destination) => vec![
                "checkpoint".into(),
                self.db().into(),
                destination.display().to_string(),
            ],
            None => vec!["backup".into(), "--live".into(), self.db().into()],
        };
        arguments.extend(extra.iter().map(|argument| argument.to_string()));
        arguments
    }

    /// The hidden link directories beside the database.
    fn leftovers(&self) -> Vec<PathBuf> {
        fs::read_dir(self.work.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| {
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".lsmvault-live-")
            })
            .collect()
    }

    /// Lock objects, not counting a backend's temporary file (`.tmp-*`),
    /// which a process killed mid-write leaves and every listing ignores.
    fn lock_objects(&self) -> Vec<PathBuf> {
        let temporary = |path: &PathBuf| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        };
        self.locks()
            .into_iter()
            .filter(|path| !temporary(path))
            .collect()
    }

    /// Everything in `locks/`: a clean exit leaves nothing at all.
    fn locks(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.repo.join("locks")) {
            Ok(listing) => listing.map(|entry| entry.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn run(repo: &Path, arguments: &[String]) -> std::process::Output {
    let arguments: Vec<&str> = arguments.iter().map(String::as_str).collect();
    lsmvault(repo, &arguments)
}

#[test]
fn a_freeze_command_without_a_thaw_command_is_refused_before_anything_runs() {
    let fixture = LiveFixture::new(4096);
    let destination = fixture.path("ckpt");
    let freeze = fixture.writer.freeze();
    for arguments in [
        fixture.command(Some(&destination), &["--freeze-cmd", &freeze]),
        fixture.command(None, &["--freeze-cmd", &freeze]),
    ] {
        let output = run(&fixture.repo, &arguments);
        assert_eq!(output.status.code(), Some(2), "usage error: {arguments:?}");
        assert!(
            stderr_text(&output).contains("--thaw-cmd"),
            "{}",
            stderr_text(&output)
        );
        fixture.writer.assert_running("freeze without thaw");
    }
    assert!(!destination.exists());
    assert!(snapshot_ids(&fixture.repo).is_empty());
}

#[test]
fn sighup_and_sigquit_during_a_freeze_still_thaw_the_writer() {
    let fixture = LiveFixture::new(4096);
    let destination = fixture.path("ckpt");
    // The freeze stops the writer, then takes a while: the signal lands in it.
    let freeze = format!("{} && sleep 3", fixture.writer.freeze());
    let thaw = fixture.writer.thaw();
    for signal in ["HUP", "QUIT"] {
        let arguments = fixture.command(
            Some(&destination),
            &["--freeze-cmd", &freeze, "--thaw-cmd", &thaw],
        );
        let outcome = interrupt_after(
            &fixture.repo,
            &arguments,
            signal,
            Duration::from_millis(700),
        );
        assert!(outcome.starts_with("interrupted"), "SIG{signal}: {outcome}");
        fixture.writer.assert_running(&format!("after SIG{signal}"));
        assert!(!destination.exists());
    }
    assert!(fixture.locks().is_empty());
}

#[test]
fn a_missing_temporary_directory_still_runs_the_thaw() {
    let fixture = LiveFixture::new(4096);
    let destination = fixture.path("ckpt");
    let arguments = fixture.command(
        Some(&destination),
        &[
            "--freeze-cmd",
            &fixture.writer.freeze(),
            "--thaw-cmd",
            &fixture.writer.thaw(),
        ],
    );
    let output = lsmvault_command(&fixture.repo, None, &run_arguments(&arguments))
        .env("TMPDIR", fixture.path("no-such-temporary-directory"))
        .output()
        .unwrap();
    fixture
        .writer
        .assert_running(&format!("TMPDIR missing: {}", stderr_text(&output)));
}

#[test]
fn a_failing_freeze_is_thawed_and_named_with_its_status_and_stderr() {
    let fixture = LiveFixture::new(4096);
    let destination = fixture.path("ckpt");
    // The freeze half-happens (the writer is stopped), then fails.
    let freeze = format!(
        "{}; echo cannot-quiesce >&2; exit 7",
        fixture.writer.freeze()
    );
    let thaw = fixture.writer.thaw();
    for arguments in [
        fixture.command(
            Some(&destination),
            &["--freeze-cmd", &freeze, "--thaw-cmd", &thaw],
        ),
        fixture.command(None, &["--freeze-cmd", &freeze, "--thaw-cmd", &thaw]),
    ] {
        let output = run(&fixture.repo, &arguments);
        let message = stderr_text(&output);
        assert_eq!(output.status.code(), Some(30), "{message}");
        for expected in [
            "cannot-quiesce",
            "exit status: 7",
            "the thaw command was run",
        ] {
            assert!(message.contains(expected), "{expected:?} in {message}");
        }
        assert!(message.contains(&fixture.writer.freeze()), "{message}");
        fixture.writer.assert_running("after a failed freeze");
    }
    assert!(!destination.exists());
    assert!(fixture.leftovers().is_empty());
    assert!(fixture.locks().is_empty());
}

#[test]
fn a_freeze_past_its_timeout_is_killed_and_thawed() {
    let fixture = LiveFixture::new(4096);
    let freeze = format!("{}; sleep 20", fixture.writer.freeze());
    let thaw = fixture.writer.thaw();
    let started = Instant::now();
    let arguments = fixture.command(
        None,
        &[
            "--freeze-cmd",
            &freeze,
            "--thaw-cmd",
            &thaw,
            "--freeze-timeout",
            "300ms",
        ],
    );
    let output = run(&fixture.repo, &arguments);
    let message = stderr_text(&output);
    assert_eq!(output.status.code(), Some(30), "{message}");
    assert!(message.contains("timed out after 300ms"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "not waited for"
    );
    fixture.writer.assert_running("after a freeze timeout");
    assert!(fixture.leftovers().is_empty());
}

#[test]
fn a_failing_link_step_is_thawed() {
    let fixture = LiveFixture::new(4096);
    // The destination's parent does not exist: creating it fails after the freeze.
    let destination = fixture.path("missing/ckpt");
    let arguments = fixture.command(
        Some(&destination),
        &[
            "--freeze-cmd",
            &fixture.writer.freeze(),
            "--thaw-cmd",
            &fixture.writer.thaw(),
        ],
    );
    let output = run(&fixture.repo, &arguments);
    assert_eq!(output.status.code(), Some(21), "{}", stderr_text(&output));
    fixture.writer.assert_running("after a failed link step");
}

#[test]
fn a_failing_thaw_is_reported_loudly_with_what_to_run_by_hand() {
    let fixture = LiveFixture::new(4096);
    let destination = fixture.path("ckpt");
    let arguments = fixture.command(
        Some(&destination),
        &[
            "--freeze-cmd",
            &fixture.writer.freeze(),
            "--thaw-cmd",
            "echo no-such-writer >&2; exit 5",
        ],
    );
    let output = run(&fixture.repo, &arguments);
    let message = stderr_text(&output);
    assert_eq!(output.status.code(), Some(31), "{message}");
    assert!(
        message.contains(
            "the writer may still be frozen: run echo no-such-writer >&2; exit 5 by hand"
        ),
        "{message}"
    );
    assert!(message.contains("no-such-writer"), "{message}");
    assert_eq!(fixture.writer.state(), 'T', "the writer really is frozen");
    assert!(!destination.exists(), "no checkpoint is reported as taken");
}

#[test]
fn a_leftover_link_directory_of_a_killed_run_is_removed_by_the_next_live_backup() {
    let fixture = LiveFixture::new(4096);
    // What a `backup --live` killed with SIGKILL leaves: links to the SSTs.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let leftover = fixture.path(&format!(".lsmvault-live-{dead_pid}-1"));
    fs::create_dir(&leftover).unwrap();
    fs::hard_link(fixture.db.join("000010.sst"), leftover.join("000010.sst")).unwrap();
    // One of a process that still runs (another backup) is not touched.
    let running = fixture.path(&format!(".lsmvault-live-{}-1", std::process::id()));
    fs::create_dir(&running).unwrap();
    let arguments = fixture.command(
        None,
        &[
            "--freeze-cmd",
            &fixture.writer.freeze(),
            "--thaw-cmd",
            &fixture.writer.thaw(),
        ],
    );
    let output = run(&fixture.repo, &arguments);
    assert!(output.status.success(), "{}", stderr_text(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("removed the temporary checkpoint of an earlier run that was killed")
            && text.contains(&leftover.display().to_string()),
        "{text}"
    );
    assert!(!leftover.exists());
    assert_eq!(fixture.leftovers(), vec![running]);
}

#[test]
fn the_lock_of_a_backup_killed_with_sigkill_does_not_block_the_next_one() {
    let fixture = LiveFixture::new(6 << 20);
    // Kill -9 while the lock is held (retried if the backup was too quick).
    let mut stale = Vec::new();
    for _ in 0..20 {
        let mut child = Command::new(binary())
            .arg("--repo")
            .arg(&fixture.repo)
            .args(["backup", "--full", fixture.db()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while fixture.lock_objects().is_empty() && Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = child.kill();
        child.wait().unwrap();
        stale = fixture.lock_objects();
        if !stale.is_empty() {
            break;
        }
    }
    assert!(!stale.is_empty(), "no backup was killed holding its lock");
    // The dead process's lock (same host) is stale: ignored, not waited for.
    lsmvault_ok(&fixture.repo, &["backup", fixture.db()]);
    lsmvault_ok(&fixture.repo, &["unlock"]);
    assert!(
        fixture.lock_objects().is_empty(),
        "unlock removed the stale lock: {:?}",
        fixture.locks()
    );
}

/// One command killed by a signal after `delay`; returns how it ended.
fn interrupt_after(repo: &Path, arguments: &[String], signal: &str, delay: Duration) -> String {
    let child = Command::new(binary())
        .arg("--repo")
        .arg(repo)
        .args(arguments)
        .env_remove("LSMVAULT_REPOSITORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let output = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "exits promptly"
    );
    let message = stderr_text(&output);
    match (output.status.code(), output.status.signal()) {
        (Some(0), _) => "finished before the signal".into(),
        (Some(code), _) => {
            let expected = match signal {
                "HUP" => 129,
                "INT" => 130,
                "QUIT" => 131,
                _ => 143,
            };
            assert_eq!(code, expected, "SIG{signal}: {message}");
            assert!(message.contains("interrupted"), "{message}");
            let during = message.lines().next().unwrap_or_default();
            format!("interrupted ({code}): {during}")
        }
        // Before the handler was installed (while parsing): nothing had started.
        (None, Some(number)) => format!("killed by signal {number} before starting"),
        other => panic!("unexpected end {other:?}: {message}"),
    }
}

/// How long a command takes when left alone (it must succeed).
fn duration_of(repo: &Path, arguments: &[String]) -> Duration {
    let started = Instant::now();
    lsmvault_ok(repo, &run_arguments(arguments));
    started.elapsed()
}

#[test]
fn sigint_and_sigterm_at_random_points_never_leave_the_writer_frozen_or_leftovers() {
    let fixture = LiveFixture::new(6 << 20);
    // Stopping takes a moment so that signals also land inside the freeze.
    let freeze = format!("{} && sleep 0.1", fixture.writer.freeze());
    let thaw = fixture.writer.thaw();
    let pause = ["--freeze-cmd", &freeze, "--thaw-cmd", &thaw];
    let mut full_live = vec!["--full"];
    full_live.extend_from_slice(&pause);
    lsmvault_ok(&fixture.repo, &["backup", fixture.db(), "--tag", "before"]);
    let snapshot_copy = fixture.path("before-copy");
    lsmvault_ok(
        &fixture.repo,
        &[
            "restore",
            "latest:before",
            "--target",
            snapshot_copy.to_str().unwrap(),
        ],
    );
    // Signals land anywhere in the first 90% of an undisturbed run: startup,
    // the freeze command, linking, reading, just before the commit.
    let probe = fixture.path("ckpt-probe");
    let checkpoint_time = duration_of(&fixture.repo, &fixture.command(Some(&probe), &pause));
    let live_time = duration_of(&fixture.repo, &fixture.command(None, &full_live));
    let iterations = iterations_from_env("LSMVAULT_SIGNAL_ITERATIONS", 6);
    let mut seed: u64 = 0x5eed_1234;
    let mut endings = Vec::new();
    let mut interrupted = 0;
    let mut iteration = 0;
    // Until enough rounds ran and at least one was really interrupted.
    while iteration < iterations || (interrupted == 0 && iteration < 4 * iterations.max(1)) {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let signal = if iteration % 2 == 0 { "INT" } else { "TERM" };
        let destination = fixture.path(&format!("ckpt-{iteration}"));
        let live = (iteration / 2) % 2 == 1;
        let (arguments, typical) = if live {
            (fixture.command(None, &full_live), live_time)
        } else {
            (fixture.command(Some(&destination), &pause), checkpoint_time)
        };
        let delay = typical.mul_f64((seed % 900) as f64 / 1000.0);
        let ending = interrupt_after(&fixture.repo, &arguments, signal, delay);
        let context =
            format!("iteration {iteration}: {arguments:?} SIG{signal} after {delay:?}: {ending}");
        fixture.writer.assert_running(&context);
        assert!(
            fixture.leftovers().is_empty(),
            "{context}: {:?}",
            fixture.leftovers()
        );
        assert!(
            fixture.locks().is_empty(),
            "{context}: {:?}",
            fixture.locks()
        );
        if ending.starts_with("interrupted") {
            interrupted += 1;
            assert!(!destination.exists(), "{context}: partial checkpoint left");
        }
        endings.push(context);
        iteration += 1;
    }
    eprintln!("{}", endings.join("\n"));
    assert!(
        interrupted > 0,
        "no run was interrupted:\n{}",
        endings.join("\n")
    );
    // The earlier snapshot still restores, and the next runs succeed.
    let before = fixture.path("before");
    lsmvault_ok(
        &fixture.repo,
        &[
            "restore",
            "latest:before",
            "--target",
            before.to_str().unwrap(),
        ],
    );
    assert_same_tree(&snapshot_copy, &before);
    lsmvault_ok(
        &fixture.repo,
        &run_arguments(&fixture.command(None, &pause)),
    );
    let checkpoint = fixture.path("ckpt-after");
    lsmvault_ok(
        &fixture.repo,
        &run_arguments(&fixture.command(Some(&checkpoint), &pause)),
    );
    assert!(checkpoint.join("000010.sst").exists());
    fixture.writer.assert_running("after the last runs");
    assert!(fixture.leftovers().is_empty() && fixture.locks().is_empty());
}

#[test]
fn a_second_signal_during_the_cleanup_exits_at_once_and_the_thaw_still_completes() {
    let fixture = LiveFixture::new(4096);
    let freeze = format!("{}; sleep 20", fixture.writer.freeze());
    // A slow thaw: the second signal arrives while it runs.
    let thaw = format!("sleep 2; {}", fixture.writer.thaw());
    let destination = fixture.path("ckpt");
    let arguments = fixture.command(
        Some(&destination),
        &["--freeze-cmd", &freeze, "--thaw-cmd", &thaw],
    );
    let child = Command::new(binary())
        .arg("--repo")
        .arg(&fixture.repo)
        .args(&arguments)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let signal = |number: &str| {
        Command::new("kill")
            .args([number, &child.id().to_string()])
            .status()
            .unwrap()
    };
    std::thread::sleep(Duration::from_millis(300));
    signal("-INT");
    std::thread::sleep(Duration::from_millis(300));
    let second = Instant::now();
    signal("-INT");
    let output = child.wait_with_output().unwrap();
    assert!(
        second.elapsed() < Duration::from_millis(1500),
        "did not wait for the thaw"
    );
    assert_eq!(output.status.code(), Some(130), "{}", stderr_text(&output));
    // The thaw runs in its own process group: it finishes on its own.
    std::thread::sleep(Duration::from_millis(2500));
    fixture.writer.assert_running("the thaw outlived lsmvault");
}

fn run_arguments(arguments: &[String]) -> Vec<&str> {
    arguments.iter().map(String::as_str).collect()
}
