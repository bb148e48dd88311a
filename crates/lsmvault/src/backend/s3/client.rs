//! The S3 client and the tokio runtime that drives it.
//!
//! Backend methods are synchronous and called from many threads at once
//! (rayon workers uploading packs). The backend owns one multi-threaded
//! runtime; each call `block_on`s its request on the calling thread while the
//! runtime's two worker threads drive the connections, so calls from many
//! threads proceed in parallel over one connection pool.
//!
//! Configuration: credentials, region and (for `s3://`) the endpoint from the
//! usual `AWS_*` variables ([`AmazonS3Builder::from_env`]); an explicit
//! endpoint from the location, addressed path-style, with plain HTTP allowed
//! only for an `http://` endpoint. Retries are object_store's: exponential
//! backoff with jitter on 5xx, throttling, refused or dropped connections and
//! timeouts of idempotent requests, never on 4xx (authentication, a failed
//! precondition); at most [`RETRIES_VARIABLE`] retries (default
//! [`DEFAULT_RETRIES`]) within [`RETRY_TIMEOUT`].

use std::future::Future;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};

use super::errors::location_error;
use super::location::S3Location;
use crate::backend::Result;

/// The environment variable that sets how many times a failed request is
/// retried (default [`DEFAULT_RETRIES`]; 0 disables retries).
pub const RETRIES_VARIABLE: &str = "LSMVAULT_S3_RETRIES";
/// Retries of a failed request unless [`RETRIES_VARIABLE`] says otherwise.
pub const DEFAULT_RETRIES: usize = 10;
/// No request is retried once this long has passed since its first attempt
/// (object_store signs once, so this also bounds a signature's age).
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// How long one request (a whole 16 MiB pack upload included) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// How long establishing a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The store and the runtime its futures run on.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    pub store: AmazonS3,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Client").finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `location`, with object_store configuration keys from
    /// `settings` over those of the environment; no request is made.
    pub fn new(location: &S3Location, settings: &[(&str, &str)]) -> Result<Client> {
        let retries = match std::env::var(RETRIES_VARIABLE) {
            Ok(value) => value.trim().parse().map_err(|_| {
                location_error(
                    location,
                    &format!("{RETRIES_VARIABLE}={value:?} is not a count; opening"),
                    "invalid retry count",
                )
            })?,
            Err(_) => DEFAULT_RETRIES,
        };
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: retries,
            retry_timeout: RETRY_TIMEOUT,
        };
        // Set key by key, so that client settings from `AWS_*` variables
        // (a proxy, extra certificates) stay.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&location.bucket)
            .with_retry(retry)
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                format!("{}s", REQUEST_TIMEOUT.as_secs()),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                format!("{}s", CONNECT_TIMEOUT.as_secs()),
            );
        for (key, value) in settings {
            let key: AmazonS3ConfigKey = key.parse().map_err(|error| {
                location_error(location, "configuring the S3 client for", error)
            })?;
            builder = builder.with_config(key, *value);
        }
        if let Some(endpoint) = &location.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        let store = builder
            .build()
            .map_err(|error| location_error(location, "configuring the S3 client for", error))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lsmvault-s3")
            .enable_all()
            .build()
            .map_err(|error| location_error(location, "starting the S3 runtime for", error))?;
        Ok(Client { runtime, store })
    }

    /// Runs `future` to completion on the calling thread.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}
