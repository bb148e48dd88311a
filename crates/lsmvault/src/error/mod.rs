//! The one error type of the library.
//!
//! Every variant names the object or path it is about and carries a stable
//! [`ErrorCode`] from which a front end derives its exit code and the hint it
//! shows the user: the hints name the CLI's flags, environment variables and
//! commands, so they belong to the CLI crate, not here. The library never
//! prints: callers decide how to show an error. The codes and their numbering
//! are in `error/code.rs`.

mod code;
mod messages;

use std::path::PathBuf;

pub use code::ErrorCode;
use messages::{earlier_failure, listed, skipped_keys, stderr_tail, written_members};

use crate::backend;

/// Errors returned by every fallible function of the library.
///
/// Each variant maps to one [`ErrorCode`] through [`Error::code`] (two
/// inherit theirs: [`Error::Backend`] from the backend error,
/// [`Error::RestoreIncomplete`] from its first failure). Object names in the
/// fields come from [`ObjectKind::describe`](crate::backend::ObjectKind::describe)
/// (`pack 1a2b…`, `snapshot 3c4d…`) or name the object in the same words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No repository (no `config` object) at the location opened.
    #[error("no repository at {location} (it has no `config` object)")]
    RepositoryNotFound {
        /// The backend's location (a path or URL), from
        /// [`Backend::location`](crate::backend::Backend::location).
        location: String,
    },

    /// `init` found a `config` object already at the location: an existing
    /// repository is never overwritten.
    #[error("a repository already exists at {location}")]
    RepositoryExists {
        /// The backend's location (a path or URL).
        location: String,
    },

    /// An object carries a format version this build cannot read: the
    /// repository `config`, a snapshot, tree, pack, index, WAL, key or lock
    /// object written by a newer (or unknown) build.
    #[error("{object} has format version {found}, this build supports {supported}")]
    UnsupportedVersion {
        /// The object, e.g. `repository /backups/repo` or `snapshot 3c4d…`.
        object: String,
        /// The version number stored in the object (its `version` field or
        /// framing header).
        found: u32,
        /// The newest version of that format this build reads (and writes).
        supported: u32,
    },

    /// No snapshot matches a user's selector (an id, a unique id prefix,
    /// `latest` or `latest:TAG`).
    #[error("no snapshot matches {selector:?}")]
    SnapshotNotFound {
        /// The selector exactly as given.
        selector: String,
    },

    /// A snapshot id prefix names more than one snapshot.
    #[error("snapshot prefix {prefix:?} is ambiguous: it matches {candidates}")]
    AmbiguousPrefix {
        /// The prefix exactly as given.
        prefix: String,
        /// The short ids of every matching snapshot, comma-separated.
        candidates: String,
    },

    /// Content does not hash to the id it is stored or recorded under: a blob
    /// against its id, an object against its name, a restored file against
    /// the digest in its tree entry.
    #[error("{object}: content hashes to {actual}, expected {expected}")]
    ChecksumMismatch {
        /// What was checked, e.g. `blob 1a2b… in pack 3c4d…` or
        /// `restored file db/000012.sst (… of … bytes)`.
        object: String,
        /// The id the content should have (64 hex digits).
        expected: String,
        /// The id the content actually hashes to (64 hex digits).
        actual: String,
    },

    /// An object cannot be parsed, fails a consistency check, or references
    /// something that does not exist (also a pack shorter than its index
    /// says, see [`backend::Error::ShortObject`](crate::backend::Error::ShortObject)).
    #[error("{object} is corrupt: {reason}")]
    CorruptObject {
        /// The damaged object, e.g. `index file 1a2b…` or `config`.
        object: String,
        /// What is wrong with it, in words (a parser's message or the failed check).
        reason: String,
    },

    /// A snapshot file cannot be read (it is damaged or of an unknown
    /// version) and the command needs it: it was selected by id, or the
    /// command must see every snapshot (prune cannot know which blobs a
    /// damaged snapshot needs). Its code is that of the reading error.
    #[error("snapshot {name} cannot be read: {reason}")]
    DamagedSnapshot {
        /// The snapshot file's name.
        name: String,
        /// Why it cannot be read (the reading error's message).
        reason: String,
        /// The reading error's code (`CorruptObject`, `ChecksumMismatch`,
        /// `AuthenticationFailed`, `UnsupportedVersion`).
        code: ErrorCode,
    },

    /// A path inside a snapshot is missing, or is not a regular file where
    /// one is needed (`dump` of a directory or symlink).
    #[error("{path:?} in snapshot {snapshot} {problem}")]
    PathNotFound {
        /// The snapshot's short id.
        snapshot: String,
        /// The path as given.
        path: String,
        /// What is wrong, e.g. `does not exist` or `is a directory`.
        problem: String,
    },

    /// No repository object of a kind has this id or id prefix (`cat`).
    #[error("no {kind} matches {prefix:?}")]
    ObjectNotFound {
        /// The kind of object, e.g. `index file`, `blob`.
        kind: String,
        /// The id or prefix as given.
        prefix: String,
    },

    /// An id prefix names more than one object of a kind (`cat`); its code
    /// is [`ErrorCode::AmbiguousPrefix`].
    #[error("{kind} prefix {prefix:?} is ambiguous: it matches {candidates}")]
    AmbiguousObject {
        /// The kind of object, e.g. `pack`.
        kind: String,
        /// The prefix as given.
        prefix: String,
        /// Short names of the first matches, comma-separated.
        candidates: String,
    },

    /// A restore target exists and is not an empty directory (a delta
    /// restore accepts a non-empty directory, never a file).
    #[error("restore target {} is not empty", path.display())]
    TargetNotEmpty {
        /// The target path as given.
        path: PathBuf,
    },

    /// A checkpoint destination exists at all (a checkpoint creates its
    /// directory). Its code is [`ErrorCode::TargetNotEmpty`], as it always
    /// was; it is its own variant so that its message and hint speak of a
    /// checkpoint, not of a restore.
    #[error("checkpoint destination {} already exists", path.display())]
    DestinationExists {
        /// The destination path as given.
        path: PathBuf,
    },

    /// A checkpoint destination on another file system than the database:
    /// every file would be copied, not linked, while writes are paused (a
    /// pause that grows with the database). Refused unless copying is
    /// allowed ([`crate::lsm::checkpoint::CheckpointOptions::allow_copy`]).
    #[error(
        "checkpoint destination {} is on another file system than {}: every file would be copied while writes are paused",
        destination.display(),
        database.display()
    )]
    CrossFilesystemCheckpoint {
        /// The database directory.
        database: PathBuf,
        /// The destination path as given.
        destination: PathBuf,
    },

    /// The WAL holding directory is on another file system than the
    /// database: a hard link cannot keep a WAL file's data there.
    #[error(
        "cannot hard-link {} into the WAL holding directory {}: it is on another file system than the database",
        segment.display(),
        hold.display()
    )]
    CrossFilesystemHold {
        /// The WAL file that was to be held.
        segment: PathBuf,
        /// The holding directory.
        hold: PathBuf,
    },

    /// A watcher would share its repository's part of the WAL holding
    /// directory with one that runs: the first one's links would be
    /// released under it.
    #[error(
        "{} is kept by {watcher}, which archives {} into this repository already",
        path.display(),
        database.display()
    )]
    WalHoldInUse {
        /// The repository's part of the holding directory.
        path: PathBuf,
        /// The database directory.
        database: PathBuf,
        /// The running watcher (`the watcher of process PID`).
        watcher: String,
    },

    /// An archive round found sequence numbers missing from the archive
    /// that were not missing before it: the database deleted a WAL file (or
    /// overwrote part of one) before it was archived. What the round archived
    /// is committed.
    #[error("WAL gap in the archive of database {database}: {}", gaps.join("; "))]
    WalGap {
        /// The database (its id).
        database: String,
        /// Each new gap in words, naming the missing sequence range.
        gaps: Vec<String>,
    },

    /// A tree entry's name is not one safe path component (empty, `.`, `..`,
    /// containing `/` or NUL): restoring it could write outside the target,
    /// so it is refused before anything is written.
    #[error("snapshot entry {name:?} would escape the restore target")]
    UnsafePath {
        /// The entry's name as stored (invalid UTF-8 replaced).
        name: String,
    },

    /// `verify` found damage. The library's verify returns a report instead
    /// of failing; a front end builds this error from a report that is not
    /// clean, to exit with its code.
    #[error("verify found {damaged} problem(s) in the repository")]
    VerifyFailed {
        /// How many findings the report holds.
        damaged: usize,
    },

    /// The directory to back up, checkpoint or archive WAL from is missing
    /// or is not a directory.
    #[error("backup source {} is missing or not a directory", path.display())]
    SourceNotFound {
        /// The source path as given.
        path: PathBuf,
    },

    /// An operating-system I/O error outside the storage backend: on a
    /// source file, a restore target or a checkpoint, the system's random
    /// source, a worker thread that could not start. Storage failures are
    /// [`Error::Backend`] instead.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the path, e.g. `reading /db/000012.sst`.
        context: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A caller passed an invalid argument or option (a malformed id, a
    /// retention policy without rules, a pack size below 1 MiB, …); the
    /// string says which and why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A cluster topology (a file, the `THEMIS_*` variables) is not valid;
    /// every problem is named, with its shard and a hint. Its code is
    /// [`ErrorCode::InvalidArgument`]: the input, not the repository, is wrong.
    #[error("invalid cluster topology in {file}: {}", listed(problems))]
    InvalidTopology {
        /// The file (or `the THEMIS_* environment variables`).
        file: String,
        /// Each problem in words: `shard "x": what (hint: what to do)`.
        problems: Vec<String>,
    },

    /// `init` found that the storage overwrote an object on a second
    /// create-if-absent write (an S3-compatible server that ignores
    /// `If-None-Match: *`); nothing but the probe object was written, and it
    /// was deleted.
    #[error("{location} does not honour conditional writes: a second create-if-absent write of one object {outcome}; locks and concurrent backups would be unsafe there, so no repository was created")]
    ConditionalWritesUnsupported {
        /// The backend's location (a path or URL).
        location: String,
        /// What the probe saw, e.g. `replaced the first`.
        outcome: String,
    },

    /// A storage backend failed (missing object, I/O, an unreachable service).
    #[error(transparent)]
    Backend(backend::Error),

    /// Another command holds a conflicting live lock: a shared lock met an
    /// exclusive one, or an exclusive lock met any other (see
    /// [`repo::lock`](crate::repo::lock)).
    #[error("the repository is locked: {holder}")]
    RepositoryLocked {
        /// The conflicting lock in words: its kind, purpose, pid, host and
        /// creation time.
        holder: String,
    },

    /// A backup found, just before writing its snapshot, that its lock was
    /// lost (removed as stale) or that a prune ran meanwhile: the packs it
    /// references may be gone, so it wrote no snapshot (what it stored stays
    /// for the next prune to collect).
    #[error("the backup's lock was lost before its snapshot was written: {reason}; no snapshot was written")]
    LockLost {
        /// What was found: the lock object gone, an exclusive lock present,
        /// or index files the backup saw deleted by a prune.
        reason: String,
    },

    /// A command about to delete found that its lock may have looked stale
    /// to other clients (it was paused, or its refreshes failed, for longer
    /// than `repo::lock::MAY_HAVE_LAPSED_AFTER`): another command may have
    /// taken a conflicting lock meanwhile and rely on what it would delete,
    /// so it stopped (what it wrote stays for the next prune).
    #[error("stopped before deleting anything more: the {lock} may have looked stale to other commands ({reason}); run it again")]
    LockExpired {
        /// The lock in words (kind, purpose, pid, host, creation time).
        lock: String,
        /// Why it may have looked stale.
        reason: String,
    },

    /// A retention policy would remove every snapshot of a group, and the
    /// caller did not allow that
    /// ([`ForgetOptions::allow_remove_all`](crate::ForgetOptions::allow_remove_all)).
    #[error("the policy would remove all {count} snapshot(s) of {group}")]
    PolicyRemovesAll {
        /// The group's label, e.g. `host db-1, source /db`
        /// (see [`GroupBy::key`](crate::ops::forget::retention::GroupBy::key)).
        group: String,
        /// How many snapshots the group holds (all of which would go).
        count: usize,
    },

    /// The repository is encrypted (its `config` has `encryption`) and it
    /// was opened without a password.
    #[error("a password is needed for repository {location}, and none was given")]
    PasswordRequired {
        /// The backend's location (a path or URL).
        location: String,
    },

    /// No key file under `keys/` opens with the given password.
    #[error(
        "no key of repository {location} opens with this password{}",
        skipped_keys(damaged_keys)
    )]
    WrongPassword {
        /// The backend's location (a path or URL).
        location: String,
        /// Names of the key files that were skipped because they are damaged
        /// (do not parse or cannot be unwrapped); empty when every key file
        /// was tried.
        damaged_keys: Vec<String>,
    },

    /// A sealed object of an encrypted repository failed authentication
    /// under the master key: it was altered or damaged.
    #[error("{object} failed authentication: it was altered or damaged")]
    AuthenticationFailed {
        /// The object that failed, e.g. `snapshot 3c4d…`.
        object: String,
    },

    /// An encrypted repository's `config` fails authentication: its
    /// authenticator does not verify under the master key of any key the
    /// password opens, or it is missing or in a combination no build writes.
    /// Every edit of any field ends here, never in a change of behaviour.
    #[error("config of repository {location} failed authentication ({reason}): it was altered, or it belongs to another repository")]
    ConfigNotAuthentic {
        /// The backend's location (a path or URL).
        location: String,
        /// What was found, in words.
        reason: String,
    },

    /// An encrypted repository of format version 2, whose `config` is not
    /// yet bound to the master key: every command but migration refuses it.
    /// Its code is [`ErrorCode::UnsupportedVersion`].
    #[error("repository {location} is encrypted with format version {found}, whose config is not bound to the master key; this build opens it only to migrate it to version {supported}")]
    MigrationRequired {
        /// The backend's location (a path or URL).
        location: String,
        /// The version its config says.
        found: u32,
        /// The version migration writes.
        supported: u32,
    },

    /// A point-in-time restore target cannot be reached from the snapshots
    /// and the WAL archive: it lies before the first snapshot, in a gap of
    /// the archive or after its end, or no snapshot records the database's
    /// sequence number.
    #[error("point in time not recoverable: {reason}")]
    PointInTimeUnavailable {
        /// Why, in words, naming the sequence numbers or times involved.
        reason: String,
    },

    /// A checkpoint's freeze command exited non-zero, could not start, or ran
    /// past its timeout (then it was killed). The thaw command was run
    /// anyway, since the freeze may have half-happened; had the thaw failed
    /// too, the error would be [`Error::ThawFailed`].
    #[error(
        "the freeze command {command:?} failed ({outcome}){}; the thaw command was run",
        stderr_tail(stderr)
    )]
    FreezeFailed {
        /// The command as given.
        command: String,
        /// How it ended, e.g. `exit status: 3` or `timed out after 30s`.
        outcome: String,
        /// The end of what it wrote on stderr (empty when nothing).
        stderr: String,
    },

    /// A checkpoint's thaw command exited non-zero, could not start, or ran
    /// past its timeout: the writer may still be paused.
    #[error("the thaw command {command:?} failed ({outcome}){}: the writer may still be frozen: run {command} by hand{}", stderr_tail(stderr), earlier_failure(earlier))]
    ThawFailed {
        /// The command as given.
        command: String,
        /// How it ended, e.g. `exit status: 1` or `timed out after 30s`.
        outcome: String,
        /// The end of what it wrote on stderr (empty when nothing).
        stderr: String,
        /// What failed before the thaw (the freeze, the links, an
        /// interruption), if anything did.
        earlier: Option<Box<Error>>,
    },

    /// The command that prints the repository password (`--password-command`)
    /// exited non-zero, could not start, ran past its timeout (then it was
    /// killed), or printed nothing on its first line.
    #[error(
        "the password command {command:?} failed ({outcome}){}",
        stderr_tail(stderr)
    )]
    PasswordCommandFailed {
        /// The command as given.
        command: String,
        /// How it ended, e.g. `exit status: 3`, `timed out after 30s` or
        /// `it printed no password`.
        outcome: String,
        /// The end of what it wrote on stderr (empty when nothing).
        stderr: String,
    },

    /// The operation was asked to stop through its
    /// [`Interrupt`](crate::Interrupt) and returned early, after releasing
    /// what it held (lock, temporary checkpoint, frozen writer). Nothing it
    /// wrote is referenced: a backup wrote no snapshot.
    #[error("interrupted while {during}; cleaned up, nothing was committed")]
    Interrupted {
        /// What was being done, e.g. `linking the checkpoint`.
        during: String,
    },

    /// A restore wrote what it could but some files failed; the target holds
    /// every other file. Its code is that of the first failure.
    #[error("{failed} file(s) could not be restored ({restored} restored); first: {}: {first}", first_path.display())]
    RestoreIncomplete {
        /// How many files failed.
        failed: usize,
        /// How many files were restored.
        restored: u64,
        /// Path (relative to the target) of the first failed file in path order.
        first_path: PathBuf,
        /// The error of that file.
        first: Box<Error>,
    },

    /// A backup could not read some files: its snapshot was written, marked
    /// incomplete (an operation that needs every file fails with this).
    #[error("snapshot {snapshot} is incomplete: some files could not be read ({first})")]
    IncompleteSnapshot {
        /// The snapshot's short id.
        snapshot: String,
        /// The first of its warnings.
        first: String,
    },

    /// One shard of a cluster backup failed: no cluster snapshot was
    /// written. Its code is that of the shard's failure.
    #[error(
        "shard {shard:?} failed while {during}: {source}{}",
        written_members(written)
    )]
    ClusterShard {
        /// The shard's name in the topology.
        shard: String,
        /// What was being done (`freezing`, `linking its checkpoint`, `backing it up`).
        during: String,
        /// Its failure.
        source: Box<Error>,
        /// Member snapshots already written (short ids with their shard),
        /// which stay as ordinary snapshots.
        written: Vec<String>,
    },

    /// A failure another thread of the same operation met first and
    /// returned (a failed pack upload seen by every adder): the same words
    /// and code, so whichever thread's error reaches the caller says the
    /// same.
    #[error("{message}")]
    Repeated {
        /// The first failure's code.
        code: ErrorCode,
        /// The first failure, as displayed.
        message: String,
    },
}

impl Error {
    /// The stable classification of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::RepositoryNotFound { .. } => ErrorCode::RepositoryNotFound,
            Error::RepositoryExists { .. } => ErrorCode::RepositoryExists,
            Error::UnsupportedVersion { .. } | Error::MigrationRequired { .. } => {
                ErrorCode::UnsupportedVersion
            }
            Error::SnapshotNotFound { .. } => ErrorCode::SnapshotNotFound,
            Error::AmbiguousPrefix { .. } | Error::AmbiguousObject { .. } => {
                ErrorCode::AmbiguousPrefix
            }
            Error::PathNotFound { .. } | Error::ObjectNotFound { .. } => ErrorCode::PathNotFound,
            Error::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
            Error::CorruptObject { .. } => ErrorCode::CorruptObject,
            Error::DamagedSnapshot { code, .. } => *code,
            Error::TargetNotEmpty { .. } | Error::DestinationExists { .. } => {
                ErrorCode::TargetNotEmpty
            }
            Error::UnsafePath { .. } => ErrorCode::UnsafePath,
            Error::VerifyFailed { .. } => ErrorCode::VerifyFailed,
            Error::SourceNotFound { .. } => ErrorCode::SourceNotFound,
            Error::Io { .. } => self.filesystem_condition().unwrap_or(ErrorCode::Io),
            Error::InvalidArgument(_)
            | Error::InvalidTopology { .. }
            | Error::CrossFilesystemCheckpoint { .. }
            | Error::CrossFilesystemHold { .. } => ErrorCode::InvalidArgument,
            Error::WalGap { .. } => ErrorCode::WalGap,
            Error::WalHoldInUse { .. } => ErrorCode::WalHoldInUse,
            // Damage is `CorruptObject` (a short object never gets here: the
            // conversion below reports it as damage); everything else the
            // storage says is I/O, as before backends had their own error type.
            Error::Backend(backend::Error::ShortObject { .. }) => ErrorCode::CorruptObject,
            Error::Backend(backend::Error::Transient { .. }) => ErrorCode::StorageUnavailable,
            Error::Backend(backend::Error::Denied { .. }) => ErrorCode::StorageDenied,
            Error::ConditionalWritesUnsupported { .. } => ErrorCode::ConditionalWritesUnsupported,
            Error::Backend(backend::Error::CacheOutdated { .. }) => ErrorCode::Other,
            Error::Backend(_) => self.filesystem_condition().unwrap_or(ErrorCode::Io),
            Error::RestoreIncomplete { first, .. } => first.code(),
            Error::ClusterShard { source, .. } => source.code(),
            Error::IncompleteSnapshot { .. } => ErrorCode::IncompleteBackup,
            Error::Repeated { code, .. } => *code,
            Error::RepositoryLocked { .. } | Error::LockLost { .. } | Error::LockExpired { .. } => {
                ErrorCode::RepositoryLocked
            }
            Error::PolicyRemovesAll { .. } => ErrorCode::PolicyRemovesAll,
            Error::PasswordRequired { .. } => ErrorCode::PasswordRequired,
            Error::WrongPassword { .. } => ErrorCode::WrongPassword,
            Error::AuthenticationFailed { .. } => ErrorCode::AuthenticationFailed,
            Error::PointInTimeUnavailable { .. } => ErrorCode::PointInTimeUnavailable,
            Error::ConfigNotAuthentic { .. } => ErrorCode::ConfigNotAuthentic,
            Error::FreezeFailed { .. } => ErrorCode::FreezeFailed,
            Error::PasswordCommandFailed { .. } => ErrorCode::PasswordCommandFailed,
            Error::ThawFailed { .. } => ErrorCode::ThawFailed,
            Error::Interrupted { .. } => ErrorCode::Interrupted,
        }
    }

    /// [`ErrorCode::NoSpace`] or [`ErrorCode::ReadOnlyFilesystem`] when an
    /// operating-system error in this error's sources says the file system
    /// is full or read-only: the user must act on the file system, not on
    /// the repository, so these get codes of their own.
    fn filesystem_condition(&self) -> Option<ErrorCode> {
        use nix::errno::Errno;
        let mut current = std::error::Error::source(self);
        while let Some(error) = current {
            if let Some(io) = error.downcast_ref::<std::io::Error>() {
                let errno = io.raw_os_error().map(Errno::from_raw);
                return match errno {
                    Some(Errno::ENOSPC | Errno::EDQUOT) => Some(ErrorCode::NoSpace),
                    Some(Errno::EROFS) => Some(ErrorCode::ReadOnlyFilesystem),
                    _ => None,
                };
            }
            current = error.source();
        }
        None
    }

    /// Whether this error says an object is damaged (it does not parse, does
    /// not match its id, fails authentication, or has a version this build
    /// does not know), as opposed to the storage or the caller failing:
    /// damage is what commands skip and name, the rest stops them.
    pub fn is_damage(&self) -> bool {
        matches!(
            self.code(),
            ErrorCode::CorruptObject
                | ErrorCode::ChecksumMismatch
                | ErrorCode::AuthenticationFailed
                | ErrorCode::UnsupportedVersion
        )
    }

    /// Wraps an I/O error with the path or object it concerns.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A parse or consistency failure of a repository object.
    pub fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::CorruptObject {
            object: object.into(),
            reason: reason.into(),
        }
    }
}

/// Result alias used throughout the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds path context to `std::io::Result`s.
pub(crate) trait IoContext<T> {
    /// Turns a failure into [`Error::Io`] with `what()` as its context; the
    /// message is built only when there is a failure.
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(what(), source))
    }
}

impl From<backend::Error> for Error {
    fn from(error: backend::Error) -> Self {
        match error {
            // Damage is reported like every other damaged object, so `verify`
            // and the CLI treat a truncated pack as they always did.
            backend::Error::ShortObject {
                kind,
                name,
                offset,
                length,
            } => Error::corrupt(
                kind.describe(&name),
                backend::short_object_reason(offset, length),
            ),
            other => Error::Backend(other),
        }
    }
}

#[cfg(test)]
mod tests;
