//! Where passwords come from.
//!
//! The repository password: `--password-file` (or `LSMVAULT_PASSWORD_FILE`,
//! which clap folds into the flag), then `LSMVAULT_PASSWORD`, then a prompt
//! when stdin is a terminal. A new key's password: `--new-password-file` (or
//! `LSMVAULT_NEW_PASSWORD_FILE`), then `LSMVAULT_NEW_PASSWORD`, then a prompt.
//!
//! Invariants: a password that is about to encrypt something (a new
//! repository, a new key) is never empty, and when it was typed it was typed
//! twice and both agree. A password file's trailing line ending is not part
//! of the password.

use std::io::IsTerminal;
use std::path::Path;

use lsmvault::Error;

/// Where a password was found; only a typed one is asked for again to confirm it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    File,
    Environment,
    Terminal,
}

/// The password of an existing repository, asking with `prompt` on a
/// terminal; `None` when there is none to be had.
pub fn repository_password(file: Option<&Path>, prompt: &str) -> Result<Option<String>, Error> {
    Ok(find_repository_password(file, prompt)?.map(|(password, _)| password))
}

/// The password a new repository is encrypted with; `None` only with
/// `no_encryption`. `location` names the repository in the error when
/// there is no password.
pub fn new_repository_password(
    file: Option<&Path>,
    no_encryption: bool,
    location: &Path,
) -> Result<Option<String>, Error> {
    if no_encryption {
        return Ok(None);
    }
    let (password, source) = find_repository_password(file, "new repository password: ")?
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
    file: Option<&Path>,
    prompt_text: &str,
) -> Result<Option<(String, Source)>, Error> {
    if let Some(path) = file {
        return Ok(Some((read_password_file(path)?, Source::File)));
    }
    if let Ok(text) = std::env::var("LSMVAULT_PASSWORD") {
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
