//! The one error type of the library.
//!
//! Every variant names the object or path it is about and carries a stable
//! [`ErrorCode`] from which a front end derives its exit code and the hint it
//! shows the user: the hints name the CLI's flags, environment variables and
//! commands, so they belong to the CLI crate, not here. The library never
//! prints: callers decide how to show an error.

use std::path::PathBuf;

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
    /// A restore target exists and is not empty (and `--delta` was not given).
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
        }
    }
}

/// Errors returned by every fallible function of the library.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {location}")]
    RepositoryNotFound { location: String },

    #[error("a repository already exists at {location}")]
    RepositoryExists { location: String },

    #[error("{object} has format version {found}, this build supports {supported}")]
    UnsupportedVersion {
        object: String,
        found: u32,
        supported: u32,
    },

    #[error("no snapshot matches {selector:?}")]
    SnapshotNotFound { selector: String },

    #[error("snapshot prefix {prefix:?} is ambiguous: it matches {candidates}")]
    AmbiguousPrefix { prefix: String, candidates: String },

    #[error("{object}: content hashes to {actual}, expected {expected}")]
    ChecksumMismatch {
        object: String,
        expected: String,
        actual: String,
    },

    #[error("{object} is corrupt: {reason}")]
    CorruptObject { object: String, reason: String },

    #[error("restore target {} is not empty", path.display())]
    TargetNotEmpty { path: PathBuf },

    #[error("snapshot entry {name:?} would escape the restore target")]
    UnsafePath { name: String },

    #[error("verify found {damaged} problem(s) in the repository")]
    VerifyFailed { damaged: usize },

    #[error("backup source {} is missing or not a directory", path.display())]
    SourceNotFound { path: PathBuf },

    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A storage backend failed (missing object, I/O, an unreachable service).
    #[error(transparent)]
    Backend(crate::backend::Error),

    #[error("the repository is locked: {holder}")]
    RepositoryLocked { holder: String },

    #[error("the policy would remove all {count} snapshot(s) of {group}")]
    PolicyRemovesAll { group: String, count: usize },

    #[error("a password is needed for repository {location}, and none was given")]
    PasswordRequired { location: String },

    #[error("no key of repository {location} opens with this password")]
    WrongPassword { location: String },

    #[error("{object} failed authentication: it was altered or damaged")]
    AuthenticationFailed { object: String },

    #[error("point in time not recoverable: {reason}")]
    PointInTimeUnavailable { reason: String },

    #[error("{failed} file(s) could not be restored ({restored} restored); first: {}: {first}", first_path.display())]
    RestoreIncomplete {
        failed: usize,
        restored: u64,
        first_path: PathBuf,
        first: Box<Error>,
    },
}

impl Error {
    /// The stable classification of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::RepositoryNotFound { .. } => ErrorCode::RepositoryNotFound,
            Error::RepositoryExists { .. } => ErrorCode::RepositoryExists,
            Error::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            Error::SnapshotNotFound { .. } => ErrorCode::SnapshotNotFound,
            Error::AmbiguousPrefix { .. } => ErrorCode::AmbiguousPrefix,
            Error::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
            Error::CorruptObject { .. } => ErrorCode::CorruptObject,
            Error::TargetNotEmpty { .. } => ErrorCode::TargetNotEmpty,
            Error::UnsafePath { .. } => ErrorCode::UnsafePath,
            Error::VerifyFailed { .. } => ErrorCode::VerifyFailed,
            Error::SourceNotFound { .. } => ErrorCode::SourceNotFound,
            Error::Io { .. } => ErrorCode::Io,
            Error::InvalidArgument(_) => ErrorCode::InvalidArgument,
            Error::Backend(error) => error.code(),
            Error::RestoreIncomplete { first, .. } => first.code(),
            Error::RepositoryLocked { .. } => ErrorCode::RepositoryLocked,
            Error::PolicyRemovesAll { .. } => ErrorCode::PolicyRemovesAll,
            Error::PasswordRequired { .. } => ErrorCode::PasswordRequired,
            Error::WrongPassword { .. } => ErrorCode::WrongPassword,
            Error::AuthenticationFailed { .. } => ErrorCode::AuthenticationFailed,
            Error::PointInTimeUnavailable { .. } => ErrorCode::PointInTimeUnavailable,
        }
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
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| Error::io(what(), source))
    }
}
