//! One module per subcommand, after restic's `cmd_*.go`: each holds the
//! command's clap arguments and a `run` that calls the library and prints the
//! result. Commands do not call each other, except that `forget --prune`
//! runs prune's report.
//!
//! What every command shares is here: the [`Context`] of one run (global
//! flags, output mode, progress bars) and how a repository is located and
//! opened.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use lsmvault::backend::{Backend, LocalBackend, ThrottledBackend};
use lsmvault::{Error, Progress, Repository};

use crate::cli::GlobalArgs;
use crate::output::Output;
use crate::{password, progress};

pub mod backup;
pub mod checkpoint;
pub mod completions;
pub mod copy;
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
            variable: "LSMVAULT_PASSWORD",
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

    /// The storage of the repository (`--repo`): the one place every
    /// command gets its backend from, with `--limit-upload` and
    /// `--limit-download` applied.
    pub fn backend(&self) -> Result<Arc<dyn Backend>, Error> {
        self.backend_at(self.location()?)
    }

    /// The storage at `location` (the repository's, or another one such as
    /// `copy --from`), with the global limits applied. Each call has its
    /// own buckets: `copy` reads one repository and writes the other.
    pub fn backend_at(&self, location: &Path) -> Result<Arc<dyn Backend>, Error> {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(location));
        Ok(
            match (self.global.limit_upload, self.global.limit_download) {
                (None, None) => backend,
                (upload, download) => Arc::new(ThrottledBackend::new(backend, upload, download)),
            },
        )
    }

    /// Opens the repository, asking for the password only if it is encrypted.
    pub fn open_repository(&self) -> Result<Repository, Error> {
        self.open_with(
            self.backend()?,
            self.password_sources(),
            "repository password: ",
            open_any,
        )
    }

    /// Opens the repository to migrate it (an encrypted version 2 one
    /// included), asking for the password only if it is encrypted.
    pub fn open_repository_for_migration(&self) -> Result<Repository, Error> {
        self.open_with(
            self.backend()?,
            self.password_sources(),
            "repository password: ",
            Repository::open_for_migration,
        )
    }

    /// Opens another repository than `--repo` (`copy --from`) in `backend`,
    /// with its own password sources and prompt.
    pub fn open_other(
        &self,
        backend: Arc<dyn Backend>,
        sources: password::Sources,
        prompt: &str,
    ) -> Result<Repository, Error> {
        self.open_with(backend, sources, prompt, open_any)
    }

    /// Opens `backend` with `open` without a password, and again with one
    /// (from `sources`, or asked with `prompt`) when the repository turns
    /// out to be encrypted.
    fn open_with(
        &self,
        backend: Arc<dyn Backend>,
        sources: password::Sources,
        prompt: &str,
        open: impl Fn(Arc<dyn Backend>, Option<&str>) -> Result<Repository, Error>,
    ) -> Result<Repository, Error> {
        let mut repository = match open(Arc::clone(&backend), None) {
            Err(Error::PasswordRequired { location: name }) => {
                match password::repository_password(sources, prompt)? {
                    Some(password) => open(backend, Some(&password)),
                    None => Err(Error::PasswordRequired { location: name }),
                }
            }
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

/// Opens a repository for use, encrypted (with `password`) or not.
fn open_any(backend: Arc<dyn Backend>, password: Option<&str>) -> Result<Repository, Error> {
    match password {
        None => Repository::open(backend),
        Some(password) => Repository::open_with_password(backend, password),
    }
}
