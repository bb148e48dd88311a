//! [`ThrottledBackend`]: a [`Backend`] wrapper that limits the bytes per
//! second sent to (uploads) and received from (downloads) the storage, for
//! all threads of the process together (`--limit-upload`,
//! `--limit-download`).
//!
//! Owns: the token bucket ([`TokenBucket`]), its clock ([`Clock`], injectable
//! so the bucket is tested without sleeping) and the parsing of rates
//! ([`parse_rate`]).
//!
//! Invariants:
//! - Uploads are `write_if_absent`, `write_content_addressed`,
//!   `write_spilled` and `replace_config`; downloads are
//!   `read`, `read_into` and `read_range`. Listing, deletes and `exists`
//!   carry no object bytes and pass unmetered.
//! - A transfer is metered in slices of at most [`TokenBucket::slice`]
//!   bytes, each granted on its own, so threads take turns slice by slice
//!   and a 16 MiB pack at 1 MiB/s cannot take the bucket for 16 s while a
//!   lock file waits. The bucket holds at most [`TokenBucket::burst`]
//!   bytes: what an idle period saves up is bounded.
//! - Nobody spins: a slice that finds the bucket short takes its bytes on
//!   credit (the balance goes negative) and sleeps until the refill has
//!   paid them back. Since every waiting thread has reserved its slice
//!   before sleeping, the order of grants is the order of requests.
//! - An upload waits for its grant before the object goes out; a ranged read
//!   (whose length is known) waits before it is made; a whole-object read
//!   is charged when it has arrived, so the debt delays what comes next.
//!   Over any period longer than one object's transfer, the bytes moved are
//!   at most rate × time + burst. Within one object the wrapper cannot pace
//!   the wire (the trait hands over whole objects).
//! - The wrapper changes no result: every call returns exactly what the
//!   inner backend returned (it passes the conformance suite).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Backend, ObjectKind, Result, WriteOutcome};

/// Time as the bucket sees it: a monotonic clock and a way to wait.
pub trait Clock: Send + Sync {
    /// Time elapsed since some fixed origin (monotonic).
    fn now(&self) -> Duration;
    /// Blocks the calling thread for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The real clock: [`Instant`] and [`std::thread::sleep`].
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// The bucket's balance at a point in time.
#[derive(Debug)]
struct Balance {
    /// Bytes that may pass now; negative when slices were granted on credit.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Duration,
}

/// A token bucket shared by every thread that meters through it: `rate`
/// bytes per second, holding at most `burst` bytes.
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    slice: u64,
    clock: Arc<dyn Clock>,
    balance: Mutex<Balance>,
}

impl std::fmt::Debug for TokenBucket {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenBucket")
            .field("rate", &self.rate)
            .field("burst", &self.burst)
            .field("slice", &self.slice)
            .finish()
    }
}

/// The smallest and largest slice a transfer is metered in.
const MIN_SLICE: u64 = 4 * 1024;
const MAX_SLICE: u64 = 256 * 1024;

impl TokenBucket {
    /// A full bucket of `rate` bytes per second (at least 1) on the system clock.
    pub fn new(rate: u64) -> TokenBucket {
        TokenBucket::with_clock(rate, Arc::new(SystemClock::default()))
    }

    /// A full bucket of `rate` bytes per second (at least 1) on `clock`.
    /// A slice is a sixteenth of a second's worth (4 KiB to 256 KiB); the
    /// bucket holds a quarter of a second's worth, at least one slice.
    pub fn with_clock(rate: u64, clock: Arc<dyn Clock>) -> TokenBucket {
        let rate = rate.max(1);
        let slice = (rate / 16).clamp(MIN_SLICE, MAX_SLICE);
        let burst = (rate / 4).max(slice);
        let now = clock.now();
        TokenBucket {
            rate,
            burst,
            slice,
            clock,
            balance: Mutex::new(Balance {
                tokens: burst as f64,
                updated: now,
            }),
        }
    }

    /// Bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// The most bytes the bucket holds (what passes at once after a pause).
    pub fn burst(&self) -> u64 {
        self.burst
    }

    /// The largest amount granted at once; a transfer is metered in slices.
    pub fn slice(&self) -> u64 {
        self.slice
    }

    /// Blocks until `bytes` may pass, slice by slice.
    pub fn take(&self, bytes: u64) {
        let mut left = bytes;
        while left > 0 {
            let slice = left.min(self.slice);
            left -= slice;
            let wait = self.reserve(slice);
            if !wait.is_zero() {
                self.clock.sleep(wait);
            }
        }
    }

    /// Takes `bytes` from the balance (on credit if need be) and returns
    /// how long the caller must wait until the refill has covered them.
    fn reserve(&self, bytes: u64) -> Duration {
        let mut balance = self
            .balance
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.clock.now();
        let elapsed = now.saturating_sub(balance.updated).as_secs_f64();
        balance.tokens = (balance.tokens + elapsed * self.rate as f64).min(self.burst as f64);
        balance.updated = now;
        balance.tokens -= bytes as f64;
        if balance.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-balance.tokens / self.rate as f64)
        }
    }
}

/// A backend whose uploads and downloads pass through token buckets (each
/// optional: `None` is unlimited).
pub struct ThrottledBackend {
    inner: Arc<dyn Backend>,
    upload: Option<Arc<TokenBucket>>,
    download: Option<Arc<TokenBucket>>,
}

impl ThrottledBackend {
    /// Wraps `inner`, limiting uploads and downloads to the given bytes per
    /// second (`None`: unlimited).
    pub fn new(inner: Arc<dyn Backend>, upload: Option<u64>, download: Option<u64>) -> Self {
        ThrottledBackend::with_buckets(
            inner,
            upload.map(|rate| Arc::new(TokenBucket::new(rate))),
            download.map(|rate| Arc::new(TokenBucket::new(rate))),
        )
    }

    /// Wraps `inner` with the given buckets (shared with other wrappers, or
    /// on a test clock).
    pub fn with_buckets(
        inner: Arc<dyn Backend>,
        upload: Option<Arc<TokenBucket>>,
        download: Option<Arc<TokenBucket>>,
    ) -> Self {
        ThrottledBackend {
            inner,
            upload,
            download,
        }
    }

    fn meter_upload(&self, bytes: usize) {
        if let Some(bucket) = &self.upload {
            bucket.take(bytes as u64);
        }
    }

    fn meter_download(&self, bytes: u64) {
        if let Some(bucket) = &self.download {
            bucket.take(bytes);
        }
    }
}

impl Backend for ThrottledBackend {
    delegate_to_inner!(location, is_remote, list, delete, exists, create);

    fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
        let bytes = self.inner.read(kind, name)?;
        self.meter_download(bytes.len() as u64);
        Ok(bytes)
    }

    fn read_into(&self, kind: ObjectKind, name: &str, buffer: &mut Vec<u8>) -> Result<()> {
        self.inner.read_into(kind, name, buffer)?;
        self.meter_download(buffer.len() as u64);
        Ok(())
    }

    fn read_range(
        &self,
        kind: ObjectKind,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>> {
        self.meter_download(length);
        self.inner.read_range(kind, name, offset, length)
    }

    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
        self.meter_upload(bytes.len());
        self.inner.write_if_absent(kind, name, bytes)
    }

    fn write_content_addressed(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: bytes::Bytes,
    ) -> Result<WriteOutcome> {
        self.meter_upload(bytes.len());
        self.inner.write_content_addressed(kind, name, bytes)
    }

    fn write_spilled(
        &self,
        kind: ObjectKind,
        name: &str,
        spilled: &super::SpillFile,
    ) -> Result<WriteOutcome> {
        self.meter_upload(spilled.len() as usize);
        self.inner.write_spilled(kind, name, spilled)
    }

    fn replace_config(&self, bytes: &[u8]) -> Result<()> {
        self.meter_upload(bytes.len());
        self.inner.replace_config(bytes)
    }
}

/// Parses a rate in bytes per second: a whole number with an optional unit,
/// `B`, decimal `KB`/`MB`/`GB`/`TB` (powers of 1000) or binary
/// `KiB`/`MiB`/`GiB`/`TiB` and the single letters `K`/`M`/`G`/`T` (powers of
/// 1024, as rclone reads them), case-insensitive, an optional `/s` after
/// it. `50MiB`, `10MB`, `800KiB`, `1048576`. Zero is refused (leave the
/// flag out for no limit). The error says what was expected.
pub fn parse_rate(text: &str) -> std::result::Result<u64, String> {
    let invalid = |why: &str| {
        format!(
            "invalid rate {text:?}: {why}; give bytes per second as a whole number with an \
             optional unit, e.g. 50MiB, 10MB, 800KiB or 1048576"
        )
    };
    let trimmed = text.trim();
    let trimmed = trimmed
        .strip_suffix("/s")
        .or_else(|| trimmed.strip_suffix("/S"))
        .unwrap_or(trimmed)
        .trim_end();
    let digits_end = trimmed
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(invalid("no number"));
    }
    let number: u64 = number.parse().map_err(|_| invalid("number too large"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1000,
        "mb" => 1000u64.pow(2),
        "gb" => 1000u64.pow(3),
        "tb" => 1000u64.pow(4),
        "k" | "kib" => 1024,
        "m" | "mib" => 1024u64.pow(2),
        "g" | "gib" => 1024u64.pow(3),
        "t" | "tib" => 1024u64.pow(4),
        _ => return Err(invalid("unknown unit")),
    };
    let rate = number
        .checked_mul(multiplier)
        .ok_or_else(|| invalid("number too large"))?;
    if rate == 0 {
        return Err(invalid(
            "a limit of zero would stop every transfer (leave the flag out for no limit)",
        ));
    }
    Ok(rate)
}

#[cfg(test)]
mod tests;
