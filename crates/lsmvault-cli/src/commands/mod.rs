//! One module per subcommand, after restic's `cmd_*.go`: each holds the
//! command's clap arguments and a `run` that calls the library and prints the
//! result. Commands do not call each other, except that `forget --prune`
//! runs prune's report.
//!
//! What every command shares is here: the [`Context`] of one run (global
//! flags, output mode, progress bars) and how a repository is located and
//! opened: every command gets its storage from [`Context::backend`] (which
//! counts requests, see [`Context::report_requests`]) and, unless it decides
//! what the backend holds (verify, repair, prune), reads it through the
//! local metadata cache ([`Context::cache_root`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lsmvault::backend::{self, Backend, CountingBackend, ThrottledBackend};
use lsmvault::{Error, Progress, Repository};

use crate::cli::GlobalArgs;
use crate::output::Output;
use crate::{password, progress};

pub mod backup;
pub mod checkpoint;
pub mod cluster;
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
    /// The one backend of the run (made on first use), counting its requests.
    counting: OnceLock<Arc<CountingBackend>>,
}

/// Set to `1`, the command prints its backend request counts as one JSON
/// line on stderr when it ends (docs/maintenance.md).
const REQUEST_STATS_VARIABLE: &str = "LSMVAULT_REQUEST_STATS";

impl<'a> Context<'a> {
    pub fn new(global: &'a GlobalArgs) -> Context<'a> {
        Context {
            global,
            output: Output::new(global.json, global.quiet),
            progress: progress::reporter(!global.json && !global.quiet),
            counting: OnceLock::new(),
        }
    }

    /// The repository's storage: the one function every command gets its
    /// backend from. Requests to it are counted.
    pub fn backend(&self) -> Result<Arc<dyn Backend>, Error> {
        if let Some(counting) = self.counting.get() {
            return Ok(Arc::clone(counting) as Arc<dyn Backend>);
        }
        let storage = self.storage()?;
        let counting = self
            .counting
            .get_or_init(|| Arc::new(CountingBackend::new(storage)));
        Ok(Arc::clone(counting) as Arc<dyn Backend>)
    }

    /// The storage of the repository location, with the global limits.
    fn storage(&self) -> Result<Arc<dyn Backend>, Error> {
        self.backend_at(self.location()?)
    }

    /// The storage at `location` (the repository's, or another one such as
    /// `copy --from`): an S3 bucket for
    /// `s3:http(s)://host[:port]/bucket[/prefix]` and `s3://bucket[/prefix]`,
    /// a local directory otherwise; with `--limit-upload` and
    /// `--limit-download` applied closest to the storage (cache hits are not
    /// throttled). Each call has its own buckets: `copy` reads one
    /// repository and writes the other.
    pub fn backend_at(&self, location: &Path) -> Result<Arc<dyn Backend>, Error> {
        let storage: Arc<dyn Backend> = match location.to_str() {
            Some(text) => {
                // A malformed S3 location is a bad argument, not an I/O
                // error; the reason names what is wrong without repeating
                // the location (it may hold credentials).
                if backend::s3::is_s3_location(text) {
                    backend::s3::S3Location::parse(text).map_err(|reason| {
                        Error::InvalidArgument(format!("repository location: {reason}"))
                    })?;
                }
                backend::open_location(text)?
            }
            // Not UTF-8, so no `s3:` location: a local directory.
            None => Arc::new(backend::LocalBackend::new(location)),
        };
        Ok(
            match (self.global.limit_upload, self.global.limit_download) {
                (None, None) => storage,
                (upload, download) => Arc::new(ThrottledBackend::new(storage, upload, download)),
            },
        )
    }

    /// With `LSMVAULT_REQUEST_STATS=1`, prints the requests made to the
    /// backend as one JSON line on stderr: `{"request_stats":{...}}` (see
    /// `lsmvault::backend::RequestCounts`). Called once, as the program ends.
    pub fn report_requests(&self) {
        if std::env::var_os(REQUEST_STATS_VARIABLE).is_none_or(|value| value != "1") {
            return;
        }
        let counts = self
            .counting
            .get()
            .map(|counting| counting.counts())
            .unwrap_or_default();
        eprintln!("{}", serde_json::json!({ "request_stats": counts }));
    }

    /// Where the metadata cache of `backend` lives, if it is used: never
    /// with `--no-cache`; in `--cache-dir` (or `LSMVAULT_CACHE_DIR`) when
    /// given, for any repository; otherwise for a remote repository only, in
    /// `$XDG_CACHE_HOME/lsmvault` (or `~/.cache/lsmvault`). A local
    /// repository gains little from a copy of its files on another disk.
    pub fn cache_root(&self, backend: &dyn Backend) -> Option<PathBuf> {
        if self.global.no_cache {
            return None;
        }
        if let Some(directory) = &self.global.cache_dir {
            return Some(directory.clone());
        }
        backend.is_remote().then(default_cache_root).flatten()
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

    /// Opens the repository, asking for the password only if it is
    /// encrypted, with the metadata cache if one is used
    /// ([`Context::cache_root`]).
    pub fn open_repository(&self) -> Result<Repository, Error> {
        let backend = self.backend()?;
        let cache_root = self.cache_root(backend.as_ref());
        self.open_asking(backend, cache_root.as_deref())
    }

    /// Opens the repository without the metadata cache: for commands that
    /// decide what the backend holds (verify, repair, prune), which must
    /// read it from the backend itself.
    pub fn open_repository_uncached(&self) -> Result<Repository, Error> {
        self.open_asking(self.backend()?, None)
    }

    /// Opens reading the config once, asking for the password only when it
    /// says the repository is encrypted.
    fn open_asking(
        &self,
        backend: Arc<dyn Backend>,
        cache_root: Option<&Path>,
    ) -> Result<Repository, Error> {
        let password =
            || password::repository_password(self.password_sources(), "repository password: ");
        let repository = Repository::open_asking(backend, cache_root, &password)?;
        self.configure(repository)
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
        let repository = match open(Arc::clone(&backend), None) {
            Err(Error::PasswordRequired { location: name }) => {
                match password::repository_password(sources, prompt)? {
                    Some(password) => open(backend, Some(&password)),
                    None => Err(Error::PasswordRequired { location: name }),
                }
            }
            other => other,
        }?;
        self.configure(repository)
    }

    /// What every handle of the CLI gets: the `--retry-lock` wait, the age
    /// up to which a cached pack listing is reused, and a warning for each
    /// damaged index file.
    fn configure(&self, mut repository: Repository) -> Result<Repository, Error> {
        repository.set_lock_retry(self.lock_retry());
        if let Some(age) = pack_listing_max_age()? {
            repository.set_pack_listing_max_age(age);
        }
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

/// Seconds up to which a pack listing cached by an earlier command stands
/// for the storage's (0: always list); the library's default when unset.
const PACK_LISTING_MAX_AGE_VARIABLE: &str = "LSMVAULT_PACK_LISTING_MAX_AGE";

fn pack_listing_max_age() -> Result<Option<Duration>, Error> {
    let Some(value) = std::env::var_os(PACK_LISTING_MAX_AGE_VARIABLE) else {
        return Ok(None);
    };
    value
        .to_str()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .map(|seconds| Some(Duration::from_secs(seconds)))
        .ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{PACK_LISTING_MAX_AGE_VARIABLE}={value:?} is not a number of seconds"
            ))
        })
}

/// `$XDG_CACHE_HOME/lsmvault`, or `$HOME/.cache/lsmvault` when it is unset
/// or not absolute (the XDG base directory rule); `None` without either.
fn default_cache_root() -> Option<PathBuf> {
    let absolute = |variable: &str| {
        std::env::var_os(variable)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".cache")))
        .map(|root| root.join("lsmvault"))
}

/// Opens a repository for use, encrypted (with `password`) or not.
fn open_any(backend: Arc<dyn Backend>, password: Option<&str>) -> Result<Repository, Error> {
    match password {
        None => Repository::open(backend),
        Some(password) => Repository::open_with_password(backend, password),
    }
}
