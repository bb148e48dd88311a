//! Mapping what object_store reports into the backend [`Error`] cases, once,
//! where the HTTP status is still known.
//!
//! Every mapped error names the bucket, the key (or the prefix listed), the
//! server and the HTTP status (or that no answer came), and ends with a hint
//! ([`S3Failure`]). The classification:
//!
//! - 404 on an object → [`Error::NotFound`] (unless the server says the
//!   *bucket* is missing: then [`Error::Denied`]);
//! - 401, 403, a missing bucket → [`Error::Denied`] (never retried);
//! - 5xx, 429, throttling, no answer at all (refused connection, timeout),
//!   once object_store's retries are spent → [`Error::Transient`];
//! - everything else (400, a redirect to another region, a malformed answer)
//!   → [`Error::Other`].
//!
//! object_store keeps its HTTP error type private; the status is read from
//! its typed variants (404, 412, 409, 401, 403) and otherwise from its
//! message, which always says `status code: NNN` for a non-2xx answer.

use std::fmt;

use object_store::client::{HttpError, HttpErrorKind};

use super::location::S3Location;
use crate::backend::{Error, ObjectKind, Subject};

/// The short account of a failed S3 request: the source of every backend
/// error this backend returns.
#[derive(Debug)]
pub struct S3Failure {
    /// The HTTP status, when the server answered.
    pub status: Option<u16>,
    /// The S3 error code of the answer's body (`NoSuchBucket`, `SlowDown`…).
    pub code: Option<String>,
    /// When no answer came: what happened instead (connection refused…).
    pub no_answer: Option<String>,
    /// What to try next.
    pub hint: &'static str,
    /// object_store's full error, for `source()` walkers and debugging.
    detail: object_store::Error,
}

impl fmt::Display for S3Failure {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.status, &self.no_answer) {
            (Some(status), _) => write!(formatter, "HTTP {status}")?,
            (None, Some(what)) => write!(formatter, "no answer ({what})")?,
            (None, None) => write!(formatter, "failed ({})", first_line(&self.detail))?,
        }
        if let Some(code) = &self.code {
            write!(formatter, " {code}")?;
        }
        write!(formatter, "; {}", self.hint)
    }
}

impl std::error::Error for S3Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.detail)
    }
}

/// What a failed call was doing, for [`map`].
pub struct Doing<'a> {
    /// The verb, e.g. `reading`.
    pub verb: &'a str,
    /// The full object key (or listed prefix).
    pub key: &'a str,
    /// What the call was about.
    pub subject: Subject,
}

/// How a failure is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    NotFound,
    MissingBucket,
    Denied,
    Transient,
    Other,
}

/// Maps one object_store error of a call on `location`.
pub fn map(location: &S3Location, doing: Doing<'_>, error: object_store::Error) -> Error {
    let text = chain_text(&error);
    let status = status_of(&error, &text);
    let code = s3_code(&text);
    let no_answer = if status.is_none() {
        no_answer(&error)
    } else {
        None
    };
    let class = classify(&error, status, code.as_deref(), no_answer.is_some());
    let hint_text = hint(class, status, location);
    let context = format!(
        "{} key {} in bucket {} at {}",
        doing.verb,
        doing.key,
        location.bucket,
        location.server()
    );
    let source = S3Failure {
        status,
        code,
        no_answer,
        hint: hint_text,
        detail: error,
    };
    match (class, doing.subject) {
        (Class::NotFound, Subject::Object { kind, name }) => Error::NotFound {
            kind,
            name,
            context,
            source: Box::new(source),
        },
        (Class::Transient, subject) => Error::Transient {
            subject,
            context,
            source: Box::new(source),
        },
        (Class::Denied | Class::MissingBucket, subject) => Error::Denied {
            subject,
            context,
            source: Box::new(source),
        },
        // A 404 on a listing or the location: the bucket itself is missing.
        (Class::NotFound, subject) => Error::Denied {
            subject,
            context,
            source: Box::new(S3Failure {
                hint: hint(Class::MissingBucket, status, location),
                ..source
            }),
        },
        (Class::Other, subject) => Error::other(subject, context, source),
    }
}

/// A backend error about `location` as a whole that object_store did not
/// produce (a bad configuration, a runtime that did not start).
pub fn location_error(
    location: &S3Location,
    what: &str,
    source: impl Into<crate::backend::Source>,
) -> Error {
    Error::other(Subject::Location, format!("{what} {location}"), source)
}

/// A subject about one object.
pub fn object(kind: ObjectKind, name: &str) -> Subject {
    Subject::Object {
        kind,
        name: name.to_string(),
    }
}

fn classify(
    error: &object_store::Error,
    status: Option<u16>,
    code: Option<&str>,
    no_answer: bool,
) -> Class {
    if code == Some("NoSuchBucket") {
        return Class::MissingBucket;
    }
    match (error, status) {
        (object_store::Error::NotFound { .. }, _) | (_, Some(404)) => Class::NotFound,
        (
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. },
            _,
        )
        | (_, Some(401 | 403)) => Class::Denied,
        (_, Some(429 | 500..=599)) => Class::Transient,
        _ if matches!(
            code,
            Some("SlowDown" | "InternalError" | "ServiceUnavailable")
        ) =>
        {
            Class::Transient
        }
        _ if no_answer => Class::Transient,
        _ => Class::Other,
    }
}

fn hint(class: Class, status: Option<u16>, location: &S3Location) -> &'static str {
    match class {
        Class::MissingBucket => {
            "create the bucket first (lsmvault never creates buckets), or check the bucket name"
        }
        Class::Denied => {
            "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) and the bucket's policy"
        }
        Class::NotFound => "the object does not exist",
        Class::Transient if status.is_some() => {
            "the server failed or throttled after retries; try again later (LSMVAULT_S3_RETRIES sets the retry count)"
        }
        Class::Transient if location.endpoint.is_some() => {
            "is the server running and the endpoint in the location right?"
        }
        Class::Transient => "check the network and AWS_REGION / AWS_ENDPOINT",
        Class::Other if matches!(status, Some(301 | 307)) => {
            "the bucket is in another region: set AWS_REGION (or AWS_DEFAULT_REGION)"
        }
        Class::Other if status == Some(400) => {
            "the server refused the request; check AWS_REGION and that the server speaks S3"
        }
        Class::Other => "check the location and the server's logs",
    }
}

/// Every message of the error's source chain, joined: where the status and
/// the body of the answer are written.
fn chain_text(error: &object_store::Error) -> String {
    let mut text = error.to_string();
    let mut current = std::error::Error::source(error);
    while let Some(source) = current {
        text.push_str(" / ");
        text.push_str(&source.to_string());
        current = source.source();
    }
    text
}

fn status_of(error: &object_store::Error, text: &str) -> Option<u16> {
    let from_variant = match error {
        object_store::Error::NotFound { .. } => Some(404),
        object_store::Error::Precondition { .. } => Some(412),
        object_store::Error::NotModified { .. } => Some(304),
        object_store::Error::AlreadyExists { .. } => Some(409),
        object_store::Error::PermissionDenied { .. } => Some(403),
        object_store::Error::Unauthenticated { .. } => Some(401),
        _ => None,
    };
    from_variant.or_else(|| {
        let marker = "status code: ";
        let start = text.find(marker)? + marker.len();
        text.get(start..start + 3)?.parse().ok()
    })
}

/// The `<Code>…</Code>` of an S3 error answer in the text, if any.
fn s3_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let length = text[start..].find("</Code>")?;
    let code = &text[start..start + length];
    (code.len() <= 64 && code.bytes().all(|byte| byte.is_ascii_alphanumeric()))
        .then(|| code.to_string())
}

/// Why no answer came, when the failure was the connection's.
fn no_answer(error: &object_store::Error) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(source) = current {
        if let Some(http) = source.downcast_ref::<HttpError>() {
            return Some(
                match http.kind() {
                    HttpErrorKind::Connect => "connection failed",
                    HttpErrorKind::Timeout => "timed out",
                    HttpErrorKind::Interrupted => "connection interrupted",
                    HttpErrorKind::Request => "request failed",
                    HttpErrorKind::Decode => "malformed answer",
                    _ => "transport error",
                }
                .to_string(),
            );
        }
        current = source.source();
    }
    None
}

fn first_line(error: &object_store::Error) -> String {
    let text = error.to_string();
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_error_codes_are_read_from_answers() {
        assert_eq!(
            s3_code("status code: 404 Not Found: <Error><Code>NoSuchBucket</Code></Error>")
                .as_deref(),
            Some("NoSuchBucket")
        );
        assert_eq!(s3_code("<Code>not a code!</Code>"), None);
        assert_eq!(s3_code("no xml"), None);
    }
}
