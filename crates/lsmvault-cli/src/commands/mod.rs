//! One module per subcommand, after restic's `cmd_*.go`: each holds the
//! command's clap arguments and a `run` that calls the library and prints the
//! result. Commands do not call each other, except that `forget --prune`
//! runs prune's report.
//!
//! What every command shares is here: the [`Context`] of one run (global
//! flags, output mode, progress bars) and how a repository is located and
//! opened: every command gets its storage from [`Context::backend`], the one
//! place where a location becomes a backend.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lsmvault::backend::{self, Backend};
use lsmvault::{Error, Progress, Repository};

use crate::cli::GlobalArgs;
use crate::output::Output;
use crate::{password, progress};

pub mod backup;
pub mod checkpoint;
pub mod completions;
pub mod diff;
pub mod dump;
pub mod find;
pub mod forget;
pub mod init;
pub mod key;
pub mod ls;
pub mod migrate;
pub mod prune;
pub mod repair;
pub mod restore;
mod restore_plan;
pub mod snapshots;
pub mod stats;
pub mod tag;
pub mod unlock;
pub mod verify;
pub mod wal;

/// What one run of the program gives every command.
pub struct Context<'a> {
    global: &'a GlobalArgs,
    output: Output,
    progress: Box<dyn Progress>,
}

impl<'a> Context<'a> {
    pub fn new(global: &'a GlobalArgs) -> Context<'a> {
        Context {
            global,
            output: Output::new(global.json, global.quiet),
            progress: progress::reporter(!global.json && !global.quiet),
        }
    }

    pub fn output(&self) -> Output {
        self.output
    }

    pub fn progress(&self) -> &dyn Progress {
        self.progress.as_ref()
    }

    /// The `--password-file` and `--password-command` flags (or their
    /// environment variables); a blank command counts as none (an exported
    /// but empty `LSMVAULT_PASSWORD_COMMAND`, as restic reads it).
    pub fn password_sources(&self) -> password::Sources<'a> {
        password::Sources {
            file: self.global.password_file.as_deref(),
            command: self
                .global
                .password_command
                .as_deref()
                .filter(|command| !command.trim().is_empty()),
        }
    }

    /// How long to wait for a conflicting lock (`--retry-lock`; not at all by default).
    pub fn lock_retry(&self) -> Duration {
        self.global.retry_lock.unwrap_or_default()
    }

    /// The repository location (`--repo` or `LSMVAULT_REPOSITORY`), which
    /// every command but `checkpoint` needs before anything else.
    pub fn location(&self) -> Result<&'a Path, Error> {
        self.global.repo.as_deref().ok_or_else(|| {
            Error::InvalidArgument(
                "no repository given: pass --repo or set LSMVAULT_REPOSITORY".into(),
            )
        })
    }

    /// The storage of the repository location: an S3 bucket for
    /// `s3:http(s)://host[:port]/bucket[/prefix]` and `s3://bucket[/prefix]`,
    /// a local directory otherwise. Every command gets its backend here.
    pub fn backend(&self) -> Result<Arc<dyn Backend>, Error> {
        let location = self.location()?;
        match location.to_str() {
            Some(text) => {
                // A malformed S3 location is a bad argument, not an I/O
                // error; the reason names what is wrong without repeating
                // the location (it may hold credentials).
                if backend::s3::is_s3_location(text) {
                    backend::s3::S3Location::parse(text).map_err(|reason| {
                        Error::InvalidArgument(format!("repository location: {reason}"))
                    })?;
                }
                Ok(backend::open_location(text)?)
            }
            // Not UTF-8, so no `s3:` location: a local directory.
            None => Ok(Arc::new(backend::LocalBackend::new(location))),
        }
    }

    /// Opens the repository, asking for the password only if it is encrypted.
    pub fn open_repository(&self) -> Result<Repository, Error> {
        self.open_with(|backend, password| match password {
            None => Repository::open(backend),
            Some(password) => Repository::open_with_password(backend, password),
        })
    }

    /// Opens the repository to migrate it (an encrypted version 2 one
    /// included), asking for the password only if it is encrypted.
    pub fn open_repository_for_migration(&self) -> Result<Repository, Error> {
        self.open_with(Repository::open_for_migration)
    }

    /// Opens with `open` without a password, and again with one when the
    /// repository turns out to be encrypted.
    fn open_with(
        &self,
        open: impl Fn(Arc<dyn Backend>, Option<&str>) -> Result<Repository, Error>,
    ) -> Result<Repository, Error> {
        let backend = self.backend()?;
        let mut repository = match open(backend.clone(), None) {
            Err(Error::PasswordRequired { location: name }) => match password::repository_password(
                self.password_sources(),
                "repository password: ",
            )? {
                Some(password) => open(backend, Some(&password)),
                None => Err(Error::PasswordRequired { location: name }),
            },
            other => other,
        }?;
        repository.set_lock_retry(self.lock_retry());
        // A damaged index file is skipped by the library; say so once per file.
        repository.set_index_damage_hook(Box::new(|file| {
            eprintln!(
                "warning: skipped damaged index file {}: {}; its blobs are unindexed until `lsmvault repair index` rebuilds the index",
                file.name, file.reason
            );
        }));
        Ok(repository)
    }
}
