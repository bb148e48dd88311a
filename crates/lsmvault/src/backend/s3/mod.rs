//! The S3 backend: a repository under a key prefix of an S3 bucket (AWS, or
//! any S3-compatible store with conditional writes: MinIO, Garage, Ceph RGW,
//! R2), on object_store's `AmazonS3`.
//!
//! Layout: the object of kind `K` and name `N` is the key
//! `prefix/K.key(N)`, the same relative layout as the local backend (packs
//! fanned out as `data/xx/<id>`), so a repository copied between a directory
//! and a bucket with any sync tool stays valid.
//!
//! How the trait's promises are kept, with nothing but PUT, GET, HEAD,
//! DELETE and LIST:
//!
//! - `write_if_absent` is one conditional PUT (`If-None-Match: *`,
//!   object_store's `PutMode::Create`): S3 publishes an object whole or not
//!   at all, and of concurrent conditional PUTs of one key exactly one
//!   succeeds; the others get 412 (or 409 while the winner is in flight,
//!   which is retried here until the winner is decided). `init` refuses a
//!   server that ignores the condition (`Repository::init` probes it).
//! - `write_content_addressed` (packs, parity objects: the name is the hash
//!   of the bytes) takes the bytes by value and sends them without a copy:
//!   one conditional PUT up to [`MULTIPART_THRESHOLD_VARIABLE`] bytes
//!   (default 64 MiB, above the default 16 MiB pack), above it a HEAD
//!   (`AlreadyExisted` if the object is there) and a multipart upload in
//!   parts of [`PART_SIZE`], aborted on failure ([`multipart`]). A multipart
//!   upload is not conditional on every server, which is harmless only
//!   because both racing writers send the same bytes.
//! - `write_spilled` (packs, parked in an unlinked temporary file by the
//!   pack writer while they upload: [`crate::backend::spill`]) sends an
//!   object of at most [`SPILLED_PART_MAX`] (6 MiB) as one conditional PUT
//!   read whole from the file, a larger one after a HEAD as a multipart
//!   upload whose parts (5 to 6 MiB, [`spilled_part_size`]) are read from
//!   the file one at a time: an upload in flight holds one part in memory,
//!   which is what lets eight run at once within 128 MiB.
//! - `replace_config` is one plain PUT, atomic on S3.
//! - `read_range` is one ranged GET; the object's size in the answer's
//!   `Content-Range` decides whether the range is short, before any body is
//!   read, so a requested length is never allocated on the caller's word.
//! - `list` maps keys back to names and skips keys that are not objects of
//!   that kind (a pack outside its fan-out directory, a nested key).
//! - `exists` is a HEAD of `config`; `create` only checks that the bucket
//!   exists (lsmvault never creates buckets).
//!
//! Errors name the bucket, the key, the server and the HTTP status, with a
//! hint ([`errors`]); retries and timeouts are the client's ([`client`]).

mod client;
mod errors;
mod location;
mod multipart;

use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};

use super::{Backend, Error, ObjectInfo, ObjectKind, Result, SpillFile, Subject, WriteOutcome};
use client::Client;
use errors::{map, object, Doing};

pub use client::{DEFAULT_RETRIES, RETRIES_VARIABLE};
pub use errors::S3Failure;
pub use location::{is_s3_location, S3Location};
pub use multipart::{
    spilled_part_size, DEFAULT_MULTIPART_THRESHOLD, MULTIPART_THRESHOLD_VARIABLE, PART_SIZE,
    SPILLED_PART_MAX,
};

/// How often a conditional PUT answered 409 (another conditional write of
/// the key in flight) is tried again before giving up.
const CONFLICT_RETRIES: u32 = 8;

/// A repository in an S3 bucket.
#[derive(Debug)]
pub struct S3Backend {
    location: S3Location,
    client: Client,
    /// Content-addressed objects above this many bytes go in parts.
    multipart_threshold: u64,
}

impl S3Backend {
    /// A backend for an `s3:` location (see [`S3Location::parse`]); no
    /// request is made.
    pub fn open(location: &str) -> Result<S3Backend> {
        let parsed = S3Location::parse(location).map_err(|reason| {
            Error::other(
                Subject::Location,
                "parsing the S3 repository location",
                reason,
            )
        })?;
        S3Backend::new(parsed)
    }

    /// A backend for a parsed location; no request is made.
    pub fn new(location: S3Location) -> Result<S3Backend> {
        S3Backend::with_settings(location, &[])
    }

    /// Like [`S3Backend::new`], with object_store configuration keys
    /// (`aws_access_key_id`, `aws_region`, …) set over those of the
    /// environment: for a program (a test) that must not change its own
    /// environment to pass credentials.
    pub fn with_settings(location: S3Location, settings: &[(&str, &str)]) -> Result<S3Backend> {
        let client = Client::new(&location, settings)?;
        let multipart_threshold = multipart::threshold(&location)?;
        Ok(S3Backend {
            location,
            client,
            multipart_threshold,
        })
    }

    /// The parsed location.
    pub fn s3_location(&self) -> &S3Location {
        &self.location
    }

    fn key(&self, kind: ObjectKind, name: &str) -> String {
        self.location.key(&kind.key(name))
    }

    fn doing<'a>(&self, verb: &'a str, key: &'a str, kind: ObjectKind, name: &str) -> Doing<'a> {
        Doing {
            verb,
            key,
            subject: object(kind, name),
        }
    }

    /// Fails with a clear error unless the bucket exists and is readable
    /// (one LIST request of at most one page).
    fn check_bucket(&self) -> Result<()> {
        let prefix = self.location.key("");
        let prefix = prefix.trim_end_matches('/');
        let path = (!prefix.is_empty()).then(|| Path::from(prefix));
        self.client
            .block_on(async {
                use futures_util::StreamExt;
                let mut listing = self.client.store.list(path.as_ref());
                listing.next().await.transpose()
            })
            .map(drop)
            .map_err(|error| {
                map(
                    &self.location,
                    Doing {
                        verb: "listing",
                        key: &format!("{prefix}/"),
                        subject: Subject::Location,
                    },
                    error,
                )
            })
    }

    fn short(kind: ObjectKind, name: &str, range: &Range<u64>) -> Error {
        Error::ShortObject {
            kind,
            name: name.to_string(),
            offset: range.start,
            length: range.end - range.start,
        }
    }

    /// The size of an object (one HEAD request).
    fn size(&self, kind: ObjectKind, name: &str) -> Result<u64> {
        self.head(kind, name).map(|(size, _)| size)
    }

    /// The object's size and `Last-Modified` time (one HEAD request).
    fn head(&self, kind: ObjectKind, name: &str) -> Result<(u64, SystemTime)> {
        let key = self.key(kind, name);
        self.client
            .block_on(self.client.store.head(&Path::from(key.as_str())))
            .map(|meta| (meta.size, meta.last_modified.into()))
            .map_err(|error| {
                map(
                    &self.location,
                    self.doing("reading the size of", &key, kind, name),
                    error,
                )
            })
    }

    /// A conditional PUT of `payload` (see the module docs).
    fn put_if_absent(
        &self,
        kind: ObjectKind,
        name: &str,
        payload: PutPayload,
    ) -> Result<WriteOutcome> {
        let key = self.key(kind, name);
        let path = Path::from(key.as_str());
        let mut conflicts = 0;
        loop {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            let put = self.client.store.put_opts(&path, payload.clone(), options);
            match self.client.block_on(put) {
                Ok(_) => return Ok(WriteOutcome::Created),
                Err(object_store::Error::AlreadyExists { source, .. })
                    if refused_by_precondition(source.as_ref()) =>
                {
                    return Ok(WriteOutcome::AlreadyExisted)
                }
                // 409: a concurrent conditional write of the key is in
                // flight; once it is decided, ours gets 412 or succeeds.
                Err(object_store::Error::AlreadyExists { .. }) if conflicts < CONFLICT_RETRIES => {
                    conflicts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20 << conflicts));
                }
                Err(error) => {
                    return Err(map(
                        &self.location,
                        self.doing("writing", &key, kind, name),
                        error,
                    ))
                }
            }
        }
    }
}

impl Backend for S3Backend {
    fn location(&self) -> String {
        self.location.to_string()
    }

    /// Every request crosses the network: the metadata cache is on by default.
    fn is_remote(&self) -> bool {
        true
    }

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let key = self.key(kind, name);
        let path = Path::from(key.as_str());
        self.client
            .block_on(async { self.client.store.get(&path).await?.bytes().await })
            .map(Vec::from)
            .map_err(|error| {
                map(
                    &self.location,
                    self.doing("reading", &key, kind, name),
                    error,
                )
            })
    }

    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        let Some(end) = offset.checked_add(length) else {
            return Err(S3Backend::short(kind, name, &(offset..u64::MAX)));
        };
        let range = offset..end;
        if length == 0 {
            // S3 has no empty range; the size alone answers.
            let size = self.size(kind, name)?;
            return if offset <= size {
                Ok(Vec::new())
            } else {
                Err(S3Backend::short(kind, name, &range))
            };
        }
        let key = self.key(kind, name);
        let path = Path::from(key.as_str());
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let outcome = self.client.block_on(async {
            let answer = self.client.store.get_opts(&path, options).await?;
            // The whole size comes from the answer's Content-Range: a short
            // object is refused before its body is read.
            if answer.meta.size < end {
                return Ok(None);
            }
            answer.bytes().await.map(Some)
        });
        match outcome {
            Ok(Some(bytes)) if bytes.len() as u64 == length => Ok(Vec::from(bytes)),
            Ok(Some(_)) | Ok(None) => Err(S3Backend::short(kind, name, &range)),
            Err(error) => {
                let error = map(
                    &self.location,
                    self.doing("reading a range of", &key, kind, name),
                    error,
                );
                // A range starting at or past the end is refused (416, or a
                // range error of the client); the size tells which.
                match error {
                    Error::NotFound { .. } | Error::Denied { .. } | Error::Transient { .. } => {
                        Err(error)
                    }
                    _ => match self.size(kind, name)? {
                        size if size < end => Err(S3Backend::short(kind, name, &range)),
                        _ => Err(error),
                    },
                }
            }
        }
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        self.put_if_absent(kind, name, PutPayload::from(bytes.to_vec()))
    }

    /// One conditional PUT up to the multipart threshold; above it, a HEAD
    /// and, if there is no such object, a multipart upload ([`multipart`]).
    /// The payload shares `bytes`: nothing is copied.
    fn write_content_addressed(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: Bytes,
    ) -> Result<WriteOutcome> {
        if bytes.len() as u64 <= self.multipart_threshold {
            return self.put_if_absent(kind, name, PutPayload::from(bytes));
        }
        match self.size(kind, name) {
            Ok(_) => return Ok(WriteOutcome::AlreadyExisted),
            Err(Error::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        let key = self.key(kind, name);
        let path = Path::from(key.as_str());
        self.client
            .block_on(multipart::upload(&self.client.store, &path, bytes))
            .map(|()| WriteOutcome::Created)
            .map_err(|error| {
                map(
                    &self.location,
                    self.doing("writing (in parts)", &key, kind, name),
                    error,
                )
            })
    }

    /// A spilled object up to [`SPILLED_PART_MAX`] (and the multipart
    /// threshold) is read whole and sent as one conditional PUT; a larger
    /// one after a HEAD in parts read from the file one at a time
    /// ([`multipart::upload_spilled`]).
    fn write_spilled(
        &self,
        kind: ObjectKind,
        name: &str,
        spilled: &SpillFile,
    ) -> Result<WriteOutcome> {
        if spilled.len() <= self.multipart_threshold.min(SPILLED_PART_MAX) {
            let bytes = spilled.read_object(kind, name)?;
            return self.put_if_absent(kind, name, PutPayload::from(bytes));
        }
        match self.size(kind, name) {
            Ok(_) => return Ok(WriteOutcome::AlreadyExisted),
            Err(Error::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
        let key = self.key(kind, name);
        let path = Path::from(key.as_str());
        self.client
            .block_on(multipart::upload_spilled(
                &self.client.store,
                &path,
                spilled,
            ))
            .map(|()| WriteOutcome::Created)
            .map_err(|error| {
                map(
                    &self.location,
                    self.doing("writing (in parts, from a spill file)", &key, kind, name),
                    error,
                )
            })
    }

    fn replace_config(&self, bytes: &[u8]) -> Result<()> {
        let key = self.key(ObjectKind::Config, "config");
        let path = Path::from(key.as_str());
        let put = self
            .client
            .store
            .put(&path, PutPayload::from(bytes.to_vec()));
        self.client.block_on(put).map(drop).map_err(|error| {
            map(
                &self.location,
                self.doing("replacing", &key, ObjectKind::Config, "config"),
                error,
            )
        })
    }

    fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
        if kind == ObjectKind::Config {
            return match self.head(kind, "config") {
                Ok((size, modified)) => Ok(vec![ObjectInfo {
                    name: "config".to_string(),
                    size,
                    modified: Some(modified),
                }]),
                Err(Error::NotFound { .. }) => Ok(Vec::new()),
                Err(error) => Err(error),
            };
        }
        let directory = self.location.key(kind.directory());
        let listed = self.client.block_on(async {
            use futures_util::TryStreamExt;
            self.client
                .store
                .list(Some(&Path::from(directory.as_str())))
                .try_collect::<Vec<_>>()
                .await
        });
        let listed = listed.map_err(|error| {
            map(
                &self.location,
                Doing {
                    verb: "listing",
                    key: &format!("{directory}/"),
                    subject: Subject::Listing(kind),
                },
                error,
            )
        })?;
        let prefix = format!("{directory}/");
        Ok(listed
            .into_iter()
            .filter_map(|meta| {
                let relative = meta.location.as_ref().strip_prefix(prefix.as_str())?;
                let name = name_of(kind, relative)?;
                Some(ObjectInfo {
                    name: name.to_string(),
                    size: meta.size,
                    modified: Some(meta.last_modified.into()),
                })
            })
            .collect())
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
        let key = self.key(kind, name);
        match self
            .client
            .block_on(self.client.store.delete(&Path::from(key.as_str())))
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(error) => Err(map(
                &self.location,
                self.doing("deleting", &key, kind, name),
                error,
            )),
        }
    }

    fn exists(&self) -> Result<bool> {
        match self.size(ObjectKind::Config, "config") {
            Ok(_) => Ok(true),
            // A HEAD answer has no body: a missing bucket looks like a
            // missing config. Tell them apart, so `open` names the bucket.
            Err(Error::NotFound { .. }) => self.check_bucket().map(|()| false),
            Err(error) => Err(error),
        }
    }

    fn create(&self) -> Result<()> {
        self.check_bucket()
    }
}

/// Whether the error inside object_store's `AlreadyExists` is the refused
/// precondition (412, or 304 from some servers) rather than a 409 conflict.
fn refused_by_precondition(source: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    matches!(
        source.downcast_ref::<object_store::Error>(),
        Some(object_store::Error::Precondition { .. } | object_store::Error::NotModified { .. })
    )
}

/// The object name of a key relative to its kind's directory, or `None` for
/// a key that is no object of this kind (written by something else).
fn name_of(kind: ObjectKind, relative: &str) -> Option<&str> {
    let name = match kind {
        ObjectKind::Pack => {
            let (fan, name) = relative.split_once('/')?;
            (name.get(..2) == Some(fan)).then_some(name)?
        }
        _ => relative,
    };
    (!name.is_empty() && !name.contains('/') && !name.starts_with('.')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_back_to_names_and_foreign_keys_are_skipped() {
        let pack = "ab".to_string() + &"0".repeat(62);
        assert_eq!(
            name_of(ObjectKind::Pack, &format!("ab/{pack}")),
            Some(pack.as_str())
        );
        assert_eq!(name_of(ObjectKind::Pack, &format!("cd/{pack}")), None);
        assert_eq!(name_of(ObjectKind::Pack, &pack), None);
        assert_eq!(name_of(ObjectKind::Pack, &format!("ab/x/{pack}")), None);
        assert_eq!(name_of(ObjectKind::Index, "abc"), Some("abc"));
        assert_eq!(name_of(ObjectKind::Index, "a/bc"), None);
        assert_eq!(name_of(ObjectKind::Index, ".tmp"), None);
    }
}
