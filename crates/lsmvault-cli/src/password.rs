//! Where passwords come from.
//!
//! The repository password: `--password-file` (or `LSMVAULT_PASSWORD_FILE`)
//! or `--password-command` (or `LSMVAULT_PASSWORD_COMMAND`) — clap folds
//! each variable into its flag, and the two together are refused, as restic
//! refuses them — then `LSMVAULT_PASSWORD`, then a prompt when stdin is a
//! terminal. A new key's password: `--new-password-file` (or
//! `LSMVAULT_NEW_PASSWORD_FILE`), then `LSMVAULT_NEW_PASSWORD`, then a prompt.
//! The source of `copy` has its own: `--from-password-file`,
//! `--from-password-command`, `LSMVAULT_FROM_PASSWORD` (same order).
//!
//! A password command runs as restic's: `sh -c CMD`, stdin closed, killed
//! after [`PASSWORD_COMMAND_TIMEOUT`] (or `LSMVAULT_PASSWORD_COMMAND_TIMEOUT`);
//! the first line of its stdout is the password. Anything else (a non-zero
//! exit, a timeout, an empty first line) is [`Error::PasswordCommandFailed`],
//! naming the command, how it ended and the end of its stderr.
//!
//! Invariants: a password that is about to encrypt something (a new
//! repository, a new key) is never empty, and when it was typed it was typed
//! twice and both agree. A password file's trailing line ending is not part
//! of the password.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use lsmvault::lsm::pause::{shell_output, Terminal};
use lsmvault::Error;

/// How long a password command may run before it is killed (restic waits
/// as long; a command that asks a vault over the network needs a while).
pub const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The explicit places the global flags name for the repository password.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sources<'a> {
    /// `--password-file` / `LSMVAULT_PASSWORD_FILE`.
    pub file: Option<&'a Path>,
    /// `--password-command` / `LSMVAULT_PASSWORD_COMMAND`.
    pub command: Option<&'a str>,
    /// The environment variable holding the password itself
    /// (`LSMVAULT_PASSWORD`; `LSMVAULT_FROM_PASSWORD` for `copy --from`);
    /// empty: none.
    pub variable: &'a str,
}

/// Where a password was found; only a typed one is asked for again to confirm it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    File,
    Command,
    Environment,
    Terminal,
}

/// The password of an existing repository, asking with `prompt` on a
/// terminal; `None` when there is none to be had.
pub fn repository_password(sources: Sources, prompt: &str) -> Result<Option<String>, Error> {
    Ok(find_repository_password(sources, prompt)?.map(|(password, _)| password))
}

/// The password a new repository is encrypted with; `None` only with
/// `no_encryption`. `location` names the repository in the error when
/// there is no password.
pub fn new_repository_password(
    sources: Sources,
    no_encryption: bool,
    location: &Path,
) -> Result<Option<String>, Error> {
    if no_encryption {
        return Ok(None);
    }
    let (password, source) = find_repository_password(sources, "new repository password: ")?
        .ok_or_else(|| Error::PasswordRequired {
            location: location.display().to_string(),
        })?;
    if source == Source::Terminal {
        confirm(&password, "repeat the password: ")?;
    }
    reject_empty(password).map(Some)
}

/// The password of a new key (`key add`, `key passwd`).
pub fn new_key_password(file: Option<&Path>) -> Result<String, Error> {
    let password = if let Some(path) = file {
        read_password_file(path)?
    } else if let Ok(text) = std::env::var("LSMVAULT_NEW_PASSWORD") {
        text
    } else if std::io::stdin().is_terminal() {
        let first = prompt("new password: ")?;
        confirm(&first, "repeat the new password: ")?;
        first
    } else {
        return Err(Error::InvalidArgument(
            "no new password: set LSMVAULT_NEW_PASSWORD or pass --new-password-file".into(),
        ));
    };
    reject_empty(password)
}

fn find_repository_password(
    sources: Sources,
    prompt_text: &str,
) -> Result<Option<(String, Source)>, Error> {
    match (sources.file, sources.command) {
        (Some(path), Some(command)) => {
            return Err(Error::InvalidArgument(format!(
                "both a password file ({}) and a password command ({command:?}) are given \
                 (flags or LSMVAULT_PASSWORD_FILE / LSMVAULT_PASSWORD_COMMAND): keep one",
                path.display()
            )))
        }
        (Some(path), None) => return Ok(Some((read_password_file(path)?, Source::File))),
        (None, Some(command)) => {
            return Ok(Some((run_password_command(command)?, Source::Command)))
        }
        (None, None) => {}
    }
    if let Some(text) = Some(sources.variable)
        .filter(|variable| !variable.is_empty())
        .and_then(|variable| std::env::var(variable).ok())
    {
        return Ok(Some((text, Source::Environment)));
    }
    if std::io::stdin().is_terminal() {
        return Ok(Some((prompt(prompt_text)?, Source::Terminal)));
    }
    Ok(None)
}

fn read_password_file(path: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| Error::io(format!("reading password file {}", path.display()), error))?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        // Said as what it is: an empty file, not a wrong password (no key
        // file is ever made with an empty password).
        return Err(Error::InvalidArgument(format!(
            "password file {} is empty",
            path.display()
        )));
    }
    Ok(password.to_string())
}

/// Runs the password command; the first line of its stdout is the password.
fn run_password_command(command: &str) -> Result<String, Error> {
    let failed = |outcome: String, stderr: String| Error::PasswordCommandFailed {
        command: command.to_string(),
        outcome,
        stderr,
    };
    // On a terminal the command may ask there itself (pinentry-tty, `read
    // </dev/tty`): it then runs in our foreground process group and shows its
    // stderr. From cron or a script its stderr is kept for the error message.
    let terminal = if std::io::stdin().is_terminal() {
        Terminal::Shared
    } else {
        Terminal::Detached
    };
    let (stdout, stderr) = shell_output(command, command_timeout()?, terminal)
        .map_err(|failure| failed(failure.outcome, failure.stderr))?;
    let text = String::from_utf8_lossy(&stdout);
    let first = text.lines().next().unwrap_or_default();
    let password = first.strip_suffix('\r').unwrap_or(first);
    if password.is_empty() {
        return Err(failed(
            "it exited 0 but printed no password on the first line of its stdout".into(),
            stderr,
        ));
    }
    Ok(password.to_string())
}

/// [`PASSWORD_COMMAND_TIMEOUT`], or `LSMVAULT_PASSWORD_COMMAND_TIMEOUT`
/// (e.g. `2m`, `500ms`) when set.
fn command_timeout() -> Result<Duration, Error> {
    match std::env::var("LSMVAULT_PASSWORD_COMMAND_TIMEOUT") {
        Err(_) => Ok(PASSWORD_COMMAND_TIMEOUT),
        Ok(text) => humantime::parse_duration(&text).map_err(|error| {
            Error::InvalidArgument(format!(
                "LSMVAULT_PASSWORD_COMMAND_TIMEOUT={text:?}: {error} (e.g. 30s, 2m)"
            ))
        }),
    }
}

fn prompt(text: &str) -> Result<String, Error> {
    rpassword::prompt_password(text)
        .map_err(|error| Error::io("reading the password from the terminal", error))
}

/// Asks for `first` again; a typo in a new password would lock the user out.
fn confirm(first: &str, repeat_prompt: &str) -> Result<(), Error> {
    if prompt(repeat_prompt)? != first {
        return Err(Error::InvalidArgument("the passwords do not match".into()));
    }
    Ok(())
}

fn reject_empty(password: String) -> Result<String, Error> {
    if password.is_empty() {
        return Err(Error::InvalidArgument(
            "an empty password is not allowed".into(),
        ));
    }
    Ok(password)
}
