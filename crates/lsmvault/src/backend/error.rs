//! The error type of every [`Backend`](super::Backend) method.
//!
//! A backend classifies each failure once, where it still knows what the
//! storage said (an `errno`, an HTTP status, a throttling answer), into the few
//! cases callers act on differently:
//!
//! - [`Error::NotFound`]: the object does not exist (ENOENT, HTTP 404);
//! - [`Error::AlreadyExists`]: a create-if-absent met an existing object
//!   (EEXIST, HTTP 412 on a conditional PUT) — trait methods report this as
//!   [`WriteOutcome::AlreadyExisted`](super::WriteOutcome::AlreadyExisted), so
//!   it only travels inside an implementation;
//! - [`Error::Transient`]: the storage did not answer or failed (timeouts,
//!   refused connections, HTTP 5xx, throttling), after the backend's own
//!   retries; the same call may succeed later. The local and memory backends
//!   never produce it;
//! - [`Error::Denied`]: the storage refused access (HTTP 401/403: wrong
//!   credentials or policy; a bucket that does not exist). Retrying cannot
//!   help; the local and memory backends never produce it (a local
//!   permission error stays [`Error::Other`], as it always was);
//! - [`Error::ShortObject`]: a requested range reaches past the object's end —
//!   damage (a truncated pack), reported as [`crate::Error::CorruptObject`];
//! - [`Error::Other`]: everything else.
//!
//! Each variant names what it is about (the object's kind and name, or the
//! listing, or the repository location) and keeps the storage's own error as
//! its source, so an object store maps its status codes here without
//! pretending to be an `std::io::Error`.
//!
//! Converting into [`crate::Error`] keeps the messages and [`crate::ErrorCode`]s
//! the library had before backends got their own type: a short object becomes
//! `CorruptObject` with the same text, everything else `Error::Backend`, whose
//! message is `"{context}: {source}"` (as `Error::Io` printed it) and whose
//! code is `Io`.

use super::ObjectKind;

/// The storage's own error, kept as the source of a backend [`Error`].
pub type Source = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias of the backend layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a failed backend call was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One object.
    Object {
        /// The object's namespace.
        kind: ObjectKind,
        /// The object's name within its namespace (as passed to the call).
        name: String,
    },
    /// The listing of every object of a kind.
    Listing(ObjectKind),
    /// The repository location as a whole ([`Backend::create`](super::Backend::create),
    /// [`Backend::exists`](super::Backend::exists)).
    Location,
}

/// A failed backend call. See the module documentation for the cases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The object does not exist.
    #[error("{context}: {source}")]
    NotFound {
        /// The missing object's namespace.
        kind: ObjectKind,
        /// The missing object's name within its namespace.
        name: String,
        /// What was being done, naming the path or key, e.g. `reading /repo/index/ab…`.
        context: String,
        /// The storage's own error (an `ENOENT`, an HTTP 404).
        #[source]
        source: Source,
    },

    /// An object of that name exists and a create-if-absent left it untouched.
    #[error("{context}: {source}")]
    AlreadyExists {
        /// The existing object's namespace.
        kind: ObjectKind,
        /// The existing object's name within its namespace.
        name: String,
        /// What was being done, naming the path or key.
        context: String,
        /// The storage's own error (an `EEXIST`, an HTTP 412).
        #[source]
        source: Source,
    },

    /// The storage could not answer now (timeout, server error, throttling);
    /// the same call may succeed when retried.
    #[error("{context}: {source}")]
    Transient {
        /// What the failed call was about.
        subject: Subject,
        /// What was being done, naming the path, key or location.
        context: String,
        /// The storage's own error (a timeout, an HTTP 5xx or throttling answer).
        #[source]
        source: Source,
    },

    /// The storage refused access (credentials, permissions, a missing
    /// bucket); retrying cannot help.
    #[error("{context}: {source}")]
    Denied {
        /// What the failed call was about.
        subject: Subject,
        /// What was being done, naming the key, bucket and server.
        context: String,
        /// The storage's own error (an HTTP 401/403/404-on-the-bucket answer).
        #[source]
        source: Source,
    },

    /// The object is shorter than `offset + length`.
    #[error("{} is corrupt: {}", kind.describe(name), short_object_reason(*offset, *length))]
    ShortObject {
        /// The short object's namespace.
        kind: ObjectKind,
        /// The short object's name within its namespace.
        name: String,
        /// Start of the requested range, in bytes from the object's start.
        offset: u64,
        /// Length of the requested range, in bytes.
        length: u64,
    },

    /// The local metadata cache described another repository than the one
    /// now at the location (it was deleted and a new one made there): the
    /// cache was dropped before anything was written with what it held (see
    /// `backend::cache::state`); the same command run again reads the new
    /// repository from the storage.
    #[error("{location} holds another repository than the one its local metadata cache knew (it was re-created there): the cache was dropped and nothing was written; run the command again")]
    CacheOutdated {
        /// The repository location (as the backend names it).
        location: String,
    },

    /// Any other failure (permissions, a full disk, a malformed answer).
    #[error("{context}: {source}")]
    Other {
        /// What the failed call was about.
        subject: Subject,
        /// What was being done, naming the path, key or location, e.g.
        /// `creating /repo/data/1a`.
        context: String,
        /// The storage's own error.
        #[source]
        source: Source,
    },
}

impl Error {
    /// Maps an I/O error about one object: `NotFound` stays not-found,
    /// everything else is [`Error::Other`]. Only for calls where "not found"
    /// can only mean the object itself is missing (opening it, not writing
    /// next to it).
    pub fn object_io(
        kind: ObjectKind,
        name: &str,
        context: impl Into<String>,
        source: std::io::Error,
    ) -> Self {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound {
                kind,
                name: name.to_string(),
                context: context.into(),
                source: Box::new(source),
            }
        } else {
            Error::other(
                Subject::Object {
                    kind,
                    name: name.to_string(),
                },
                context,
                source,
            )
        }
    }

    /// An [`Error::Other`] about `subject`.
    pub fn other(subject: Subject, context: impl Into<String>, source: impl Into<Source>) -> Self {
        Error::Other {
            subject,
            context: context.into(),
            source: source.into(),
        }
    }

    /// Whether the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether retrying the same call may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Transient { .. })
    }

    /// Whether the storage refused access (credentials, a missing bucket).
    pub fn is_denied(&self) -> bool {
        matches!(self, Error::Denied { .. })
    }

    /// Whether the metadata cache turned out to describe another repository
    /// ([`Error::CacheOutdated`]): running the command again succeeds.
    pub fn is_cache_outdated(&self) -> bool {
        matches!(self, Error::CacheOutdated { .. })
    }
}

/// Why a short object is damage (the reason of its `CorruptObject` error).
pub(crate) fn short_object_reason(offset: u64, length: u64) -> String {
    format!("shorter than expected ({length} bytes at offset {offset} requested): truncated?")
}
