//! Pausing a live database's writer around a checkpoint: the user's freeze
//! and thaw shell commands, run with a timeout, and the guard that makes sure
//! the thaw runs exactly once.
//!
//! Invariant: once a freeze command has been started, its thaw command runs
//! exactly once before control leaves the checkpoint, whatever happens in
//! between: the freeze failing or timing out (it may have half-happened), a
//! link or copy failing, an [`Interrupt`], a panic (the guard's `Drop`). A
//! thaw that fails is an error of its own ([`Error::ThawFailed`]) that wins
//! over every earlier one, because a writer left paused is the worst outcome.

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

/// How long a freeze or thaw command may run by default before it is killed.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// How much of a failed command's stderr an error quotes.
const STDERR_TAIL_BYTES: usize = 512;

/// How much a command whose stdout is captured ([`shell_output`]) may
/// print before it is killed: a password is one line, and `yes` as a
/// password command must not fill the temporary directory for 30 seconds.
pub const STDOUT_LIMIT_BYTES: u64 = 64 * 1024;

/// How often a running command is polled for its end (and the interrupt).
const POLL_INTERVAL: Duration = Duration::from_millis(5);

/// How a shell command failed: its outcome in words and its stderr's tail.
#[derive(Debug)]
pub struct CommandFailure {
    /// How it ended, e.g. `exit status: 3` or `timed out after 30s`.
    pub outcome: String,
    /// The end of what it wrote on stderr, trimmed (empty when nothing).
    pub stderr: String,
}

/// Why a command stopped early.
enum Stopped {
    Failed(CommandFailure),
    Interrupted,
}

/// Runs the freeze command; on any failure the caller's [`Thaw`] guard still
/// runs the thaw. An interrupt kills the freeze command (the thaw follows).
pub fn freeze(command: &str, timeout: Duration, interrupt: &Interrupt) -> Result<()> {
    match run_shell(command, timeout, Some(interrupt), None, Terminal::Detached) {
        Ok(_) => Ok(()),
        Err(Stopped::Failed(failure)) => Err(Error::FreezeFailed {
            command: command.to_string(),
            outcome: failure.outcome,
            stderr: failure.stderr,
        }),
        Err(Stopped::Interrupted) => Err(Error::Interrupted {
            during: format!("the freeze command {command:?} ran"),
        }),
    }
}

/// The thaw command, armed before the freeze starts: [`Thaw::run`] runs it
/// and reports how it went; dropped without that (an early return, a
/// panic), it runs it on the way out.
pub struct Thaw {
    command: Option<String>,
    timeout: Duration,
    done: bool,
}

impl Thaw {
    /// Arms the thaw command (`None`: nothing to run).
    pub fn arm(command: Option<&str>, timeout: Duration) -> Self {
        Thaw {
            command: command.map(str::to_string),
            timeout,
            done: false,
        }
    }

    /// Runs the thaw command (once; later calls do nothing). `earlier` is
    /// what failed before it, if anything: it is returned as is when the
    /// thaw succeeds, and inside [`Error::ThawFailed`] when it does not.
    pub fn run(&mut self, earlier: Result<()>) -> Result<()> {
        if self.done {
            return earlier;
        }
        self.done = true;
        let Some(command) = &self.command else {
            return earlier;
        };
        // Never interrupted: an interrupt is exactly when the thaw matters.
        match run_shell(command, self.timeout, None, None, Terminal::Detached) {
            Ok(_) => earlier,
            Err(Stopped::Failed(failure)) => Err(Error::ThawFailed {
                command: command.clone(),
                outcome: failure.outcome,
                stderr: failure.stderr,
                earlier: earlier.err().map(Box::new),
            }),
            // Cannot happen (no interrupt is passed), but a thaw that did
            // not complete is a failed thaw.
            Err(Stopped::Interrupted) => Err(Error::ThawFailed {
                command: command.clone(),
                outcome: "interrupted".to_string(),
                stderr: String::new(),
                earlier: earlier.err().map(Box::new),
            }),
        }
    }
}

impl Drop for Thaw {
    fn drop(&mut self) {
        // Only on an early exit (a panic between freeze and thaw): there is
        // nobody to return a failure to, and the panic is already loud.
        let _ = self.run(Ok(()));
    }
}

/// Runs `sh -c command` as [`run_shell`] does and returns what it wrote on
/// stdout, with the tail of its stderr (the CLI's `--password-command`,
/// which has no writer to pause but needs the same timeout, process group
/// and stderr tail). Its stdout goes to an unlinked temporary file, read
/// from the start once it has ended; past [`STDOUT_LIMIT_BYTES`] the
/// command is killed and fails.
pub fn shell_output(
    command: &str,
    timeout: Duration,
    terminal: Terminal,
) -> std::result::Result<(Vec<u8>, String), CommandFailure> {
    let capture_failed = |error: std::io::Error| CommandFailure {
        outcome: format!("could not capture its stdout: {error}"),
        stderr: String::new(),
    };
    let mut stdout = unlinked_temporary().map_err(capture_failed)?;
    let handle = stdout.try_clone().map_err(capture_failed)?;
    let stderr = match run_shell(command, timeout, None, Some(handle), terminal) {
        Ok(stderr) => stderr,
        Err(Stopped::Failed(failure)) => return Err(failure),
        Err(Stopped::Interrupted) => {
            return Err(CommandFailure {
                outcome: "interrupted".to_string(),
                stderr: String::new(),
            })
        }
    };
    let mut bytes = Vec::new();
    stdout
        .seek(SeekFrom::Start(0))
        // Bounded even when it printed fast and exited between two polls.
        .and_then(|_| {
            (&mut stdout)
                .take(STDOUT_LIMIT_BYTES)
                .read_to_end(&mut bytes)
        })
        .map_err(|error| CommandFailure {
            outcome: format!("could not read its stdout: {error}"),
            stderr: String::new(),
        })?;
    Ok((bytes, stderr))
}

/// Where a command runs and where its stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// In a process group of its own (a terminal's Ctrl-C reaches lsmvault,
    /// which decides, not the command), its stderr kept for error messages.
    Detached,
    /// In lsmvault's process group, with lsmvault's stderr: a password
    /// command that asks on the terminal (pinentry-tty, `read </dev/tty`)
    /// must be in the terminal's foreground group, or SIGTTIN stops it, and
    /// its prompt must be seen.
    Shared,
}

/// Runs `sh -c command` (see [`Terminal`] for its process group and
/// stderr), its stdout discarded unless `stdout` is given. A detached
/// command's stderr is kept in an unlinked temporary file (a pipe could
/// block on a grandchild that keeps it open); when no such file can be made
/// (a full or missing temporary directory) the command still runs, with its
/// stderr discarded: a thaw must never be skipped for want of a log. Killed
/// (a detached one with its group) after `timeout`, when `interrupt`
/// triggers, or when the `stdout` file grows past [`STDOUT_LIMIT_BYTES`].
fn run_shell(
    command: &str,
    timeout: Duration,
    interrupt: Option<&Interrupt>,
    stdout: Option<File>,
    terminal: Terminal,
) -> std::result::Result<String, Stopped> {
    let failed =
        |outcome: String, stderr: String| Stopped::Failed(CommandFailure { outcome, stderr });
    let (stderr, mut stderr_file, not_captured) = match terminal {
        Terminal::Shared => (Stdio::inherit(), None, "(shown above)".to_string()),
        Terminal::Detached => {
            match unlinked_temporary().and_then(|file| Ok((file.try_clone()?, file))) {
                Ok((writer, reader)) => (Stdio::from(writer), Some(reader), String::new()),
                Err(error) => (
                    Stdio::null(),
                    None,
                    format!("(not captured: no temporary file: {error})"),
                ),
            }
        }
    };
    let mut stderr_text = move || {
        stderr_file
            .as_mut()
            .map_or_else(|| not_captured.clone(), tail)
    };
    // A second handle on the stdout file, to watch its size.
    let watched = stdout.as_ref().and_then(|file| file.try_clone().ok());
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(stdout.map_or_else(Stdio::null, Stdio::from))
        .stderr(stderr);
    if terminal == Terminal::Detached {
        shell.process_group(0);
    }
    let mut child = shell
        .spawn()
        .map_err(|error| failed(format!("could not start: {error}"), String::new()))?;
    let kill_group = |child: &mut std::process::Child| kill(child, terminal);
    let started = Instant::now();
    let ended: std::result::Result<ExitStatus, String> = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) => {}
            Err(error) => break Err(format!("could not wait for it: {error}")),
        }
        if interrupt.is_some_and(Interrupt::is_triggered) {
            kill_group(&mut child);
            return Err(Stopped::Interrupted);
        }
        let printed = watched
            .as_ref()
            .and_then(|file| file.metadata().ok())
            .map_or(0, |metadata| metadata.len());
        if printed > STDOUT_LIMIT_BYTES {
            kill_group(&mut child);
            break Err(format!(
                "killed: it printed more than {STDOUT_LIMIT_BYTES} bytes on stdout"
            ));
        }
        if started.elapsed() >= timeout {
            kill_group(&mut child);
            break Err(format!(
                "timed out after {}",
                humantime::format_duration(timeout)
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    match ended {
        Ok(status) if status.success() => Ok(stderr_text()),
        Ok(status) => Err(failed(status.to_string(), stderr_text())),
        Err(outcome) => Err(failed(outcome, stderr_text())),
    }
}

/// Kills the command (a detached one with everything it started), and reaps it.
fn kill(child: &mut std::process::Child, terminal: Terminal) {
    if let (Terminal::Detached, Ok(pid)) = (terminal, i32::try_from(child.id())) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A new temporary file, already unlinked (it vanishes with its handles).
fn unlinked_temporary() -> std::io::Result<File> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path =
        std::env::temp_dir().join(format!(".lsmvault-command-{}-{nanos}", std::process::id()));
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    fs::remove_file(&path)?;
    Ok(file)
}

/// The last [`STDERR_TAIL_BYTES`] of the captured stderr, trimmed.
fn tail(file: &mut File) -> String {
    let length = file.seek(SeekFrom::End(0)).unwrap_or(0);
    let start = length.saturating_sub(STDERR_TAIL_BYTES as u64);
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_ok() {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_freeze_names_its_status_and_stderr() {
        let error = freeze(
            "echo frozen-half >&2; exit 3",
            DEFAULT_COMMAND_TIMEOUT,
            &Interrupt::new(),
        )
        .unwrap_err();
        let message = error.to_string();
        assert_eq!(error.code(), crate::ErrorCode::FreezeFailed, "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(message.contains("frozen-half"), "{message}");
    }

    #[test]
    fn a_freeze_past_its_timeout_is_killed_with_what_it_started() {
        let started = Instant::now();
        let error = freeze(
            "sleep 30 & sleep 30",
            Duration::from_millis(200),
            &Interrupt::new(),
        )
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            error.to_string().contains("timed out after 200ms"),
            "{error}"
        );
    }

    #[test]
    fn an_interrupt_stops_a_running_freeze() {
        let interrupt = Interrupt::new();
        let trigger = interrupt.clone();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            trigger.trigger();
        });
        let error = freeze("sleep 30", DEFAULT_COMMAND_TIMEOUT, &interrupt).unwrap_err();
        stopper.join().unwrap();
        assert_eq!(error.code(), crate::ErrorCode::Interrupted, "{error}");
    }

    #[test]
    fn the_thaw_runs_exactly_once_even_on_a_panic() {
        let work = tempfile::tempdir().unwrap();
        let counter = work.path().join("thaws");
        let command = format!("echo thawed >> {}", counter.display());
        let thaws = || {
            fs::read_to_string(&counter)
                .unwrap_or_default()
                .lines()
                .count()
        };
        let mut thaw = Thaw::arm(Some(&command), DEFAULT_COMMAND_TIMEOUT);
        thaw.run(Ok(())).unwrap();
        thaw.run(Ok(())).unwrap();
        drop(thaw);
        assert_eq!(thaws(), 1);
        let panicked = std::panic::catch_unwind(|| {
            let _thaw = Thaw::arm(Some(&command), DEFAULT_COMMAND_TIMEOUT);
            panic!("a failure between freeze and thaw");
        });
        assert!(panicked.is_err());
        assert_eq!(thaws(), 2, "the guard's Drop thawed");
    }

    #[test]
    fn a_failing_thaw_wins_and_keeps_the_earlier_failure() {
        let mut thaw = Thaw::arm(
            Some("echo still-stopped >&2; exit 1"),
            DEFAULT_COMMAND_TIMEOUT,
        );
        let earlier = Err(Error::InvalidArgument("link failed".into()));
        let error = thaw.run(earlier).unwrap_err();
        let message = error.to_string();
        assert_eq!(error.code(), crate::ErrorCode::ThawFailed, "{message}");
        assert!(
            message.contains("the writer may still be frozen"),
            "{message}"
        );
        assert!(
            message.contains("still-stopped") && message.contains("link failed"),
            "{message}"
        );
    }
}
