//! Parsing an S3 repository location into endpoint, bucket and key prefix.
//!
//! Two forms (the first with an explicit, path-style endpoint, for MinIO,
//! Garage, Ceph RGW, R2 or a test server; the second for AWS, the endpoint
//! and region coming from the usual `AWS_*` variables):
//!
//! ```text
//! s3:http://127.0.0.1:9000/bucket/some/prefix
//! s3:https://minio.example.com/bucket
//! s3://bucket/some/prefix
//! ```
//!
//! Invariants of a parsed [`S3Location`]: the bucket is a valid S3 bucket
//! name; the prefix has no leading or trailing slash and no empty, `.` or
//! `..` segment (empty for a repository at the bucket's root); the endpoint
//! (if any) is `http(s)://host[:port]` with no path, query or user info, so
//! [`S3Location`]'s display never carries credentials.

use std::fmt;

/// Where an S3 repository lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    /// `http(s)://host[:port]` for an explicit endpoint (path-style
    /// addressing); `None` for AWS (`s3://bucket/prefix`).
    pub endpoint: Option<String>,
    /// The bucket, which must already exist.
    pub bucket: String,
    /// The key prefix of every repository object, without slashes at either
    /// end (empty: the bucket's root).
    pub prefix: String,
}

/// Whether `location` names an S3 repository (and is parsed by
/// [`S3Location::parse`]) rather than a local path.
pub fn is_s3_location(location: &str) -> bool {
    location.starts_with("s3:")
}

impl S3Location {
    /// Parses `s3:http(s)://host[:port]/bucket[/prefix]` or
    /// `s3://bucket[/prefix]`; the error says what is wrong, in words.
    pub fn parse(location: &str) -> Result<S3Location, String> {
        let usage = "expected s3://BUCKET[/PREFIX] or s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]";
        let (endpoint, path) = if let Some(path) = location.strip_prefix("s3://") {
            (None, path)
        } else if let Some(url) = location.strip_prefix("s3:") {
            let (scheme, rest) = if let Some(rest) = url.strip_prefix("http://") {
                ("http", rest)
            } else if let Some(rest) = url.strip_prefix("https://") {
                ("https", rest)
            } else {
                return Err(format!("unknown S3 location form: {usage}"));
            };
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            check_authority(authority)?;
            (Some(format!("{scheme}://{authority}")), path)
        } else {
            return Err(format!("not an S3 location: {usage}"));
        };
        if path.contains(['?', '#']) {
            return Err(format!(
                "an S3 location takes no query or fragment: {usage}"
            ));
        }
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        check_bucket(bucket)?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(format!(
                "the key prefix {prefix:?} has an empty, `.` or `..` segment"
            ));
        }
        Ok(S3Location {
            endpoint,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// The object key of a repository-relative key (`index/ab…`).
    pub fn key(&self, relative: &str) -> String {
        if self.prefix.is_empty() {
            relative.to_string()
        } else {
            format!("{}/{relative}", self.prefix)
        }
    }

    /// The server, for messages: the endpoint, or `AWS S3`.
    pub fn server(&self) -> &str {
        self.endpoint.as_deref().unwrap_or("AWS S3")
    }
}

impl fmt::Display for S3Location {
    /// The location as the user writes it (normalised; never credentials).
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.endpoint {
            Some(endpoint) => write!(formatter, "s3:{endpoint}/{}", self.bucket)?,
            None => write!(formatter, "s3://{}", self.bucket)?,
        }
        if !self.prefix.is_empty() {
            write!(formatter, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

/// `host[:port]`, without user info: credentials in a location would end up
/// in messages, lock objects and shell histories.
fn check_authority(authority: &str) -> Result<(), String> {
    if authority.contains('@') {
        // The location is not repeated: it holds a secret.
        return Err(
            "credentials in an S3 location are refused: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY instead"
                .to_string(),
        );
    }
    // `[v6 address]:port`, `[v6 address]`, `host:port` or `host`.
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((host, "")) => (host, None),
            Some((host, rest)) => (host, Some(rest.strip_prefix(':').unwrap_or(rest))),
            None => ("", None),
        },
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if port.is_some_and(|port| port.parse::<u16>().is_err()) {
        return Err(format!("the port of {authority:?} is not a number"));
    }
    if host.is_empty() || host.contains(['?', '#', ' ']) {
        return Err(format!("the endpoint host {authority:?} is not valid"));
    }
    Ok(())
}

/// S3's bucket naming rules (3 to 63 lowercase letters, digits, dots and
/// hyphens, starting and ending with a letter or digit).
fn check_bucket(bucket: &str) -> Result<(), String> {
    let valid_characters = bucket
        .bytes()
        .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b".-".contains(&byte));
    let valid_ends = bucket
        .bytes()
        .next()
        .zip(bucket.bytes().last())
        .is_some_and(|(first, last)| first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric());
    if (3..=63).contains(&bucket.len()) && valid_characters && valid_ends {
        Ok(())
    } else {
        Err(format!(
            "{bucket:?} is not a valid bucket name (3 to 63 lowercase letters, digits, dots and hyphens)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_display_back() {
        let explicit = S3Location::parse("s3:http://127.0.0.1:9000/bucket/a/b/").unwrap();
        assert_eq!(explicit.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(
            (explicit.bucket.as_str(), explicit.prefix.as_str()),
            ("bucket", "a/b")
        );
        assert_eq!(explicit.to_string(), "s3:http://127.0.0.1:9000/bucket/a/b");
        assert_eq!(explicit.key("index/ab"), "a/b/index/ab");
        let aws = S3Location::parse("s3://my-bucket").unwrap();
        assert_eq!(aws.endpoint, None);
        assert_eq!(aws.prefix, "");
        assert_eq!(aws.key("config"), "config");
        assert_eq!(aws.to_string(), "s3://my-bucket");
        assert_eq!(aws.server(), "AWS S3");
        let https = S3Location::parse("s3:https://minio.example.com/b-1/x").unwrap();
        assert_eq!(https.endpoint.as_deref(), Some("https://minio.example.com"));
        assert!(is_s3_location("s3://b") && !is_s3_location("/srv/s3:backups"));
    }

    #[test]
    fn malformed_locations_are_refused_in_words() {
        for (location, expected) in [
            ("s3:ftp://host/bucket", "unknown S3 location form"),
            ("s3://", "not a valid bucket name"),
            ("s3://Bucket/x", "not a valid bucket name"),
            ("s3://ab", "not a valid bucket name"),
            ("s3://bucket/a//b", "empty, `.` or `..` segment"),
            ("s3://bucket/a/../b", "empty, `.` or `..` segment"),
            ("s3:http://host:port/bucket", "port"),
            ("s3:http:///bucket", "endpoint host"),
            ("s3://bucket/x?versionId=1", "no query"),
        ] {
            let error = S3Location::parse(location).unwrap_err();
            assert!(error.contains(expected), "{location}: {error}");
        }
    }

    #[test]
    fn credentials_in_a_location_are_refused_without_repeating_them() {
        let error = S3Location::parse("s3:http://key:secret@127.0.0.1:9000/bucket").unwrap_err();
        assert!(error.contains("AWS_ACCESS_KEY_ID"), "{error}");
        assert!(!error.contains("secret"), "{error}");
    }
}
