//! The ways a writer on this machine is paused around a checkpoint, as one
//! guard: the user's freeze/thaw commands ([`super::pause`]), SIGSTOP /
//! SIGCONT of the process a pid file names, or a pause file the writer
//! watches. A cluster backup freezes many shards this way at once.
//!
//! Invariant: once [`PauseGuard::freeze`] has been called, the matching
//! resume happens exactly once — by [`PauseGuard::thaw`], or by the guard's
//! `Drop` on an early exit — whether the freeze succeeded, failed, timed out
//! or was interrupted (a freeze may have half-happened: SIGSTOP sent but
//! not yet effective, a freeze command killed midway). A SIGCONT goes only
//! to the pid that received the SIGSTOP, never to a pid read again later.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::error::{Error, Result};
use crate::interrupt::Interrupt;

use super::pause::{freeze, Thaw};

/// How often a stopped process's state is polled while waiting for it to stop.
const STOP_POLL: Duration = Duration::from_millis(1);

/// How a writer is paused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriterPause {
    /// Not paused (the writer must be idle for the cut to be consistent).
    None,
    /// Shell commands, run as `checkpoint --freeze-cmd/--thaw-cmd` run them.
    Commands {
        /// Pauses the writer; must return once it is paused.
        freeze: String,
        /// Resumes it.
        thaw: String,
    },
    /// SIGSTOP / SIGCONT of the pid this file holds (frozen once the
    /// process is seen stopped in `/proc/PID/stat`).
    PidFile(PathBuf),
    /// This file is created to pause the writer and removed to resume it.
    PauseFile(PathBuf),
}

/// What must be undone once a freeze has started.
enum Undo {
    Nothing,
    Command(Thaw),
    Continue(Pid),
    Remove(PathBuf),
}

/// A writer's pause: [`PauseGuard::freeze`], then [`PauseGuard::thaw`]
/// exactly once (or the `Drop` does it).
pub struct PauseGuard {
    method: WriterPause,
    thaw_timeout: Duration,
    undo: Undo,
}

impl PauseGuard {
    /// A guard for `method`; thaw commands may run for `thaw_timeout`.
    pub fn new(method: WriterPause, thaw_timeout: Duration) -> Self {
        PauseGuard {
            method,
            thaw_timeout,
            undo: Undo::Nothing,
        }
    }

    /// Pauses the writer within `timeout`. Whatever it returns, the thaw is
    /// armed for what was started (call [`PauseGuard::thaw`]).
    pub fn freeze(&mut self, timeout: Duration, interrupt: &Interrupt) -> Result<()> {
        match self.method.clone() {
            WriterPause::None => Ok(()),
            WriterPause::Commands {
                freeze: command,
                thaw,
            } => {
                self.undo = Undo::Command(Thaw::arm(Some(&thaw), self.thaw_timeout));
                freeze(&command, timeout, interrupt)
            }
            WriterPause::PidFile(file) => {
                let pid = read_pid(&file)?;
                let what = stop_what(&file);
                kill(pid, Signal::SIGSTOP)
                    .map_err(|errno| freeze_failed(&what, format!("kill: {errno}")))?;
                self.undo = Undo::Continue(pid);
                wait_stopped(pid, &what, timeout, interrupt)
            }
            WriterPause::PauseFile(path) => {
                // Only a file this run created is removed at the thaw: an
                // existing one (a mistyped path naming a database file such
                // as CURRENT, or a pause someone else holds) is neither
                // truncated nor deleted, and a file that could not be
                // created leaves nothing to undo.
                let what = format!("creating the pause file {}", path.display());
                match fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                {
                    Ok(_) => {
                        self.undo = Undo::Remove(path.clone());
                        Ok(())
                    }
                    Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                        Err(freeze_failed(
                            &what,
                            "it already exists: lsmvault neither overwrites nor removes a \
                             file it did not create (remove it if a killed run left it, or \
                             correct pause_file if it names another file)"
                                .to_string(),
                        ))
                    }
                    Err(error) => Err(freeze_failed(&what, error.to_string())),
                }
            }
        }
    }

    /// Resumes the writer (once; later calls do nothing).
    pub fn thaw(&mut self) -> Result<()> {
        self.thaw_after(Ok(()))
    }

    /// Resumes the writer (once; later calls return `earlier`). `earlier`
    /// is what failed before, if anything: returned as is when the thaw
    /// succeeds, inside [`Error::ThawFailed`] when it does not.
    pub fn thaw_after(&mut self, earlier: Result<()>) -> Result<()> {
        let failed = |command: String, outcome: String, earlier: Result<()>| Error::ThawFailed {
            command,
            outcome,
            stderr: String::new(),
            earlier: earlier.err().map(Box::new),
        };
        match std::mem::replace(&mut self.undo, Undo::Nothing) {
            Undo::Nothing => earlier,
            Undo::Command(mut thaw) => thaw.run(earlier),
            Undo::Continue(pid) => match kill(pid, Signal::SIGCONT) {
                Ok(()) => earlier,
                Err(errno) => Err(failed(
                    format!("kill -CONT {pid}"),
                    format!("kill: {errno}"),
                    earlier,
                )),
            },
            Undo::Remove(path) => match fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(failed(
                    format!("rm {}", path.display()),
                    error.to_string(),
                    earlier,
                )),
                _ => earlier,
            },
        }
    }
}

impl Drop for PauseGuard {
    fn drop(&mut self) {
        // Only on an early exit (a panic): nobody to report a failure to.
        let _ = self.thaw();
    }
}

fn stop_what(file: &std::path::Path) -> String {
    format!("SIGSTOP of the pid in {}", file.display())
}

fn freeze_failed(what: &str, outcome: String) -> Error {
    Error::FreezeFailed {
        command: what.to_string(),
        outcome,
        stderr: String::new(),
    }
}

/// The pid a pid file holds (its first word).
fn read_pid(file: &std::path::Path) -> Result<Pid> {
    let what = stop_what(file);
    let text = fs::read_to_string(file)
        .map_err(|error| freeze_failed(&what, format!("cannot read the pid file: {error}")))?;
    text.split_whitespace()
        .next()
        .and_then(|word| word.parse::<i32>().ok())
        .filter(|pid| *pid > 1)
        .map(Pid::from_raw)
        .ok_or_else(|| freeze_failed(&what, format!("the pid file holds no pid: {text:?}")))
        .and_then(|pid| {
            // Stopping itself, lsmvault would never thaw anyone.
            if pid == Pid::this() {
                Err(freeze_failed(
                    &what,
                    format!("pid {pid} is lsmvault itself"),
                ))
            } else {
                Ok(pid)
            }
        })
}

/// Waits until `pid` is stopped (state `T` in `/proc/PID/stat`): SIGSTOP
/// is asynchronous, and a write in progress finishes first.
fn wait_stopped(pid: Pid, what: &str, timeout: Duration, interrupt: &Interrupt) -> Result<()> {
    let started = Instant::now();
    loop {
        match process_state(pid) {
            Some('T') => return Ok(()),
            Some('Z') | None => return Err(freeze_failed(what, "the process is gone".into())),
            Some(_) => {}
        }
        if interrupt.is_triggered() {
            return Err(Error::Interrupted {
                during: format!("waiting for process {pid} to stop"),
            });
        }
        if started.elapsed() >= timeout {
            return Err(freeze_failed(
                what,
                format!(
                    "timed out after {}: the process did not stop",
                    humantime::format_duration(timeout)
                ),
            ));
        }
        std::thread::sleep(STOP_POLL);
    }
}

/// The state letter of `/proc/PID/stat` (field 3), `None` when it is gone.
fn process_state(pid: Pid) -> Option<char> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_pid_file_stops_and_continues_its_process() {
        let work = tempfile::tempdir().unwrap();
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let file = work.path().join("pid");
        fs::write(&file, format!("{}\n", child.id())).unwrap();
        let pid = Pid::from_raw(child.id() as i32);
        let mut guard = PauseGuard::new(WriterPause::PidFile(file), Duration::from_secs(5));
        guard
            .freeze(Duration::from_secs(5), &Interrupt::new())
            .unwrap();
        assert_eq!(process_state(pid), Some('T'));
        guard.thaw().unwrap();
        guard.thaw().unwrap();
        for _ in 0..100 {
            if process_state(pid) != Some('T') {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(process_state(pid), Some('T'));
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_pid_file_of_a_dead_process_or_no_pid_fails_the_freeze() {
        let work = tempfile::tempdir().unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let file = work.path().join("pid");
        let itself = std::process::id().to_string();
        for text in [dead.to_string(), "garbage".to_string(), itself] {
            fs::write(&file, &text).unwrap();
            let mut guard =
                PauseGuard::new(WriterPause::PidFile(file.clone()), Duration::from_secs(5));
            let error = guard
                .freeze(Duration::from_secs(1), &Interrupt::new())
                .unwrap_err();
            assert_eq!(error.code(), crate::ErrorCode::FreezeFailed, "{error}");
            guard.thaw().unwrap();
        }
    }

    #[test]
    fn an_existing_file_named_as_the_pause_file_is_neither_truncated_nor_removed() {
        let directory = tempfile::tempdir().unwrap();
        let file = directory.path().join("CURRENT");
        fs::write(&file, b"MANIFEST-000005\n").unwrap();
        let mut guard = PauseGuard::new(WriterPause::PauseFile(file.clone()), Duration::ZERO);
        let error = guard
            .freeze(Duration::from_secs(1), &Interrupt::new())
            .unwrap_err();
        assert!(error.to_string().contains("already exists"), "{error}");
        guard.thaw().unwrap();
        drop(guard);
        assert_eq!(fs::read(&file).unwrap(), b"MANIFEST-000005\n");
    }

    #[test]
    fn a_pause_file_that_cannot_be_created_leaves_nothing_to_thaw() {
        let directory = tempfile::tempdir().unwrap();
        let not_a_directory = directory.path().join("file");
        fs::write(&not_a_directory, b"x").unwrap();
        let mut guard = PauseGuard::new(
            WriterPause::PauseFile(not_a_directory.join("PAUSE")),
            Duration::ZERO,
        );
        assert!(guard
            .freeze(Duration::from_secs(1), &Interrupt::new())
            .is_err());
        guard.thaw().unwrap();
    }

    #[test]
    fn a_pause_file_exists_exactly_while_frozen_even_when_dropped() {
        let work = tempfile::tempdir().unwrap();
        let file = work.path().join("PAUSE");
        let mut guard = PauseGuard::new(WriterPause::PauseFile(file.clone()), Duration::ZERO);
        guard.freeze(Duration::ZERO, &Interrupt::new()).unwrap();
        assert!(file.exists());
        drop(guard);
        assert!(!file.exists());
    }
}
