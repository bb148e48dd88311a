//! Multipart upload of large content-addressed objects (packs above
//! [`MULTIPART_THRESHOLD_VARIABLE`] bytes).
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
use crate::backend::Result;

/// Objects larger than this many bytes (a plain count) are uploaded in
/// parts; default [`DEFAULT_MULTIPART_THRESHOLD`].
pub const MULTIPART_THRESHOLD_VARIABLE: &str = "LSMVAULT_S3_MULTIPART_THRESHOLD";
/// Above the default 16 MiB pack size: only packs of a repository
/// initialised with a larger `--pack-size` go in parts by default.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 64 << 20;
/// The size of every part but the last (S3 wants at least 5 MiB).
pub const PART_SIZE: usize = 16 << 20;

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
