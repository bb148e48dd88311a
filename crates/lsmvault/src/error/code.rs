//! [`ErrorCode`]: the stable classification of an [`Error`], and its
//! numbering.
//!
//! Owns the codes, their numbers (the CLI's exit codes) and their `--json`
//! names. Invariant: a number or name, once released, never changes and is
//! never reused; a new condition gets a new code. Which error has which code
//! is [`Error::code`]'s business, in the parent module.

#[cfg(doc)]
use super::Error;

/// Stable, machine-readable classification of an [`Error`].
///
/// The numeric value is the CLI's exit code; it must never change once released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// Anything without a more specific code.
    Other = 1,
    /// A backup finished but some source files could not be read (snapshot marked incomplete).
    IncompleteBackup = 3,
    /// No repository at the given location.
    RepositoryNotFound = 10,
    /// `init` on a location that already holds a repository.
    RepositoryExists = 11,
    /// The repository (or one of its objects) uses a format version this build does not know.
    UnsupportedVersion = 12,
    /// No snapshot matches the given id, prefix or `latest` selector.
    SnapshotNotFound = 13,
    /// A snapshot id prefix matches more than one snapshot.
    AmbiguousPrefix = 14,
    /// An object's content does not hash to its id.
    ChecksumMismatch = 15,
    /// An object cannot be parsed or references something that does not exist.
    CorruptObject = 16,
    /// A restore target exists and is not empty (and the restore was not a
    /// [delta](crate::RestoreOptions::delta) restore), or a checkpoint
    /// destination exists ([`Error::DestinationExists`]).
    TargetNotEmpty = 17,
    /// A tree entry would write outside the restore target.
    UnsafePath = 18,
    /// `verify` found damage.
    VerifyFailed = 19,
    /// The backup source does not exist or is not a directory.
    SourceNotFound = 20,
    /// An operating-system I/O error.
    Io = 21,
    /// Invalid arguments or options given through the library API.
    InvalidArgument = 22,
    /// Another command holds a conflicting lock on the repository.
    RepositoryLocked = 23,
    /// A retention policy would remove every snapshot and was not confirmed.
    PolicyRemovesAll = 24,
    /// The repository is encrypted and no password was given.
    PasswordRequired = 25,
    /// No key file opens with the given password.
    WrongPassword = 26,
    /// A sealed object failed authentication: it was altered or damaged.
    AuthenticationFailed = 27,
    /// A point-in-time target cannot be reached (before the first snapshot, in a gap, after the archive).
    PointInTimeUnavailable = 28,
    /// An encrypted repository's `config` does not verify under the master
    /// key of any key the password opens: it was altered, or it belongs to
    /// another repository.
    ConfigNotAuthentic = 29,
    /// A checkpoint's freeze command failed or timed out (its thaw command
    /// was run all the same).
    FreezeFailed = 30,
    /// A checkpoint's thaw command failed or timed out: the writer may still
    /// be paused.
    ThawFailed = 31,
    /// A file system (the repository's, or a restore target's) is full or
    /// over quota (ENOSPC, EDQUOT): an [`Error::Io`] or [`Error::Backend`]
    /// whose operating-system error says so.
    NoSpace = 32,
    /// A file system (the repository's, or a restore target's) is mounted
    /// read-only (EROFS): an [`Error::Io`] or [`Error::Backend`] whose
    /// operating-system error says so.
    ReadOnlyFilesystem = 33,
    /// The `--password-command` (a CLI concern, but its code is stable like
    /// every other) exited non-zero, printed no password, or timed out.
    PasswordCommandFailed = 36,
    /// WAL archiving found sequence numbers that the archive will never
    /// hold: the database deleted a WAL file (or part of one) before it was
    /// archived. What was archived is committed before this is returned.
    WalGap = 34,
    /// A path inside a snapshot that does not exist or is not what was
    /// asked for (`dump` of a directory), or a repository object (`cat`)
    /// that no id or prefix names.
    PathNotFound = 35,
    /// `init` found that the storage does not refuse a second
    /// create-if-absent write of one object (an S3-compatible server that
    /// ignores `If-None-Match: *`): locks and concurrent backups would be
    /// unsafe there, so no repository was created.
    ConditionalWritesUnsupported = 37,
    /// The storage did not answer, or failed, even after retries (a refused
    /// connection, timeouts, HTTP 5xx, throttling): a
    /// [`backend::Error::Transient`](crate::backend::Error::Transient).
    StorageUnavailable = 38,
    /// The storage refused access (wrong credentials, a bucket policy, a
    /// bucket that does not exist): a
    /// [`backend::Error::Denied`](crate::backend::Error::Denied).
    StorageDenied = 39,
    /// A second WAL watcher of one database into one repository: its part
    /// of the holding directory is kept by a watcher that runs.
    WalHoldInUse = 44,
    /// The operation was stopped through its [`Interrupt`](crate::Interrupt)
    /// (the CLI: SIGINT, 130; SIGTERM exits with 143 instead), after
    /// releasing what it held.
    Interrupted = 130,
}

impl ErrorCode {
    /// The exit code the CLI uses for this error.
    pub fn exit_code(self) -> i32 {
        self as i32
    }

    /// A short stable name, e.g. for `--json` output.
    pub fn name(self) -> &'static str {
        match self {
            ErrorCode::Other => "other",
            ErrorCode::IncompleteBackup => "incomplete_backup",
            ErrorCode::RepositoryNotFound => "repository_not_found",
            ErrorCode::RepositoryExists => "repository_exists",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::SnapshotNotFound => "snapshot_not_found",
            ErrorCode::AmbiguousPrefix => "ambiguous_prefix",
            ErrorCode::ChecksumMismatch => "checksum_mismatch",
            ErrorCode::CorruptObject => "corrupt_object",
            ErrorCode::TargetNotEmpty => "target_not_empty",
            ErrorCode::UnsafePath => "unsafe_path",
            ErrorCode::VerifyFailed => "verify_failed",
            ErrorCode::SourceNotFound => "source_not_found",
            ErrorCode::Io => "io",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::RepositoryLocked => "repository_locked",
            ErrorCode::PolicyRemovesAll => "policy_removes_all",
            ErrorCode::PasswordRequired => "password_required",
            ErrorCode::WrongPassword => "wrong_password",
            ErrorCode::AuthenticationFailed => "authentication_failed",
            ErrorCode::PointInTimeUnavailable => "point_in_time_unavailable",
            ErrorCode::ConfigNotAuthentic => "config_not_authentic",
            ErrorCode::FreezeFailed => "freeze_failed",
            ErrorCode::ThawFailed => "thaw_failed",
            ErrorCode::Interrupted => "interrupted",
            ErrorCode::NoSpace => "no_space",
            ErrorCode::ReadOnlyFilesystem => "read_only_filesystem",
            ErrorCode::PasswordCommandFailed => "password_command_failed",
            ErrorCode::WalGap => "wal_gap",
            ErrorCode::PathNotFound => "path_not_found",
            ErrorCode::ConditionalWritesUnsupported => "conditional_writes_unsupported",
            ErrorCode::StorageUnavailable => "storage_unavailable",
            ErrorCode::StorageDenied => "storage_denied",
            ErrorCode::WalHoldInUse => "wal_hold_in_use",
        }
    }
}
