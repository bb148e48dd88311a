//! Multipart upload of large content-addressed objects: objects handed over
//! in memory above [`MULTIPART_THRESHOLD_VARIABLE`] bytes, in parts of
//! [`PART_SIZE`] sent at once ([`upload`]); objects parked in a
//! [`SpillFile`] above [`SPILLED_PART_MAX`] bytes (packs to object storage),
//! in parts of 5 to 6 MiB read from the file one at a time
//! ([`upload_spilled`]), so each such upload holds one part in memory.
//!
//! A multipart upload is not conditional on every S3-compatible server, so
//! it is used only where that does not matter: for an object whose name is
//! the hash of its bytes, after a HEAD found no object of that name. Two
//! writers racing past the HEAD upload the same bytes; whichever completes
//! last replaces an identical object.
//!
//! Invariant: an upload that fails is aborted (object_store's `abort`), so
//! its parts do not stay stored (and billed). Only a process killed midway
//! leaves parts behind: docs/maintenance.md recommends the bucket lifecycle
//! rule that expires incomplete multipart uploads.

use bytes::Bytes;
use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};

use super::errors::location_error;
use super::location::S3Location;
use crate::backend::{Result, SpillFile};

/// Objects larger than this many bytes (a plain count) are uploaded in
/// parts; default [`DEFAULT_MULTIPART_THRESHOLD`].
pub const MULTIPART_THRESHOLD_VARIABLE: &str = "LSMVAULT_S3_MULTIPART_THRESHOLD";
/// Above the default 16 MiB pack size: only packs of a repository
/// initialised with a larger `--pack-size` go in parts by default.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 << 20;
/// The size of every part but the last (S3 wants at least 5 MiB).
pub const PART_SIZE: usize = 16 << 20;

/// The smallest part S3 accepts (but for the last one).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// The largest part of a spilled object, and the largest spilled object sent
/// as one PUT (read whole into memory): each upload in flight holds at most
/// this many bytes, so eight hold at most 48 MiB.
pub const SPILLED_PART_MAX: u64 = 6 << 20;

/// The part size of a spilled object of `length` bytes: as few parts as
/// [`SPILLED_PART_MAX`] allows, all of one size (R2 wants every part but the
/// last of one size), and at least [`MIN_PART_SIZE`] (S3's floor), so a
/// 16.2 MiB pack goes in three parts of 5.4 MiB rather than four.
pub fn spilled_part_size(length: u64) -> u64 {
    let parts = length.div_ceil(SPILLED_PART_MAX).max(1);
    length.div_ceil(parts).max(MIN_PART_SIZE)
}

/// The threshold from [`MULTIPART_THRESHOLD_VARIABLE`], or the default.
pub fn threshold(location: &S3Location) -> Result<u64> {
    match std::env::var(MULTIPART_THRESHOLD_VARIABLE) {
        Ok(value) => value.trim().parse().map_err(|_| {
            location_error(
                location,
                &format!(
                    "{MULTIPART_THRESHOLD_VARIABLE}={value:?} is not a count of bytes; opening"
                ),
                "invalid multipart threshold",
            )
        }),
        Err(_) => Ok(DEFAULT_MULTIPART_THRESHOLD),
    }
}

/// Uploads `bytes` to `path` in parts of [`PART_SIZE`], sent concurrently,
/// each a slice of `bytes` (no copy). Aborts the upload on any failure.
pub async fn upload(store: &AmazonS3, path: &Path, bytes: Bytes) -> object_store::Result<()> {
    let mut upload = store.put_multipart(path).await?;
    let parts: Vec<_> = (0..bytes.len())
        .step_by(PART_SIZE)
        .map(|start| {
            let end = (start + PART_SIZE).min(bytes.len());
            upload.put_part(PutPayload::from(bytes.slice(start..end)))
        })
        .collect();
    let outcome = match futures_util::future::try_join_all(parts).await {
        Ok(_) => upload.complete().await.map(drop),
        Err(error) => Err(error),
    };
    if outcome.is_err() {
        // The upload's own error is the one to report; a failed abort
        // leaves parts for the lifecycle rule.
        let _ = upload.abort().await;
    }
    outcome
}

/// Uploads the object in `spilled` to `path` in parts of
/// [`spilled_part_size`], each read from the file when its turn comes and
/// sent before the next is read (one part in memory). Aborts the upload on
/// any failure.
pub async fn upload_spilled(
    store: &AmazonS3,
    path: &Path,
    spilled: &SpillFile,
) -> object_store::Result<()> {
    let mut upload = store.put_multipart(path).await?;
    let part_size = spilled_part_size(spilled.len());
    let mut outcome = Ok(());
    let mut start = 0;
    while start < spilled.len() && outcome.is_ok() {
        let length = part_size.min(spilled.len() - start);
        outcome = match spilled.read_at(start, length as usize) {
            Ok(part) => upload.put_part(PutPayload::from(part)).await,
            Err(error) => Err(object_store::Error::Generic {
                store: "spill file",
                source: format!("reading {}: {error}", spilled.describe()).into(),
            }),
        };
        start += length;
    }
    if outcome.is_ok() {
        outcome = upload.complete().await.map(drop);
    }
    if outcome.is_err() {
        // As in `upload`: the first error is the one to report.
        let _ = upload.abort().await;
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn spilled_parts_are_even_at_least_5_mib_and_at_most_6_mib() {
        // A default 16 MiB pack with its last chunk: three parts.
        let length = 16 * MIB + 300_000;
        let part = spilled_part_size(length);
        assert_eq!(length.div_ceil(part), 3);
        assert!((MIN_PART_SIZE..=SPILLED_PART_MAX).contains(&part));
        for length in [
            1,
            MIB,
            6 * MIB,
            6 * MIB + 1,
            12 * MIB + 1,
            64 * MIB,
            1 << 34,
        ] {
            let part = spilled_part_size(length);
            assert!(part >= MIN_PART_SIZE, "{length}: {part}");
            assert!(part <= SPILLED_PART_MAX, "{length}: {part}");
        }
        // Below 5 MiB the only part is the last one, which may be short.
        assert_eq!(spilled_part_size(MIB), MIN_PART_SIZE);
        // 10,000 parts at most (S3's limit) up to 58 GiB.
        assert!((58u64 << 30).div_ceil(spilled_part_size(58 << 30)) <= 10_000);
    }
}
