//! Blob compression: zstd per blob, with an `auto` mode that does not waste
//! CPU or space on data that is already compressed.
//!
//! SST files are usually compressed by the database itself (snappy, lz4,
//! zstd); compressing them again costs CPU and gains nothing. `auto` first
//! compresses [`SAMPLE_COUNT`] small samples spread over the blob at zstd's
//! fastest level and stores the blob raw only when **every** sample fails to
//! shrink below [`SAMPLE_GIVE_UP_RATIO`]; otherwise (one compressible region
//! is enough, so a blob near the threshold or of mixed content is judged on
//! the whole) it compresses the whole blob and keeps the result only when it
//! saves at least 1/[`MINIMUM_SAVING_FRACTION`] of the size. Every blob
//! records its codec, so any mix of compressed and raw blobs reads back.
//!
//! Measured on 1 MiB pieces of SSTs (zstd CLI, level 1 samples of 8 KiB):
//! snappy and lz4 SSTs of db_bench or of real text sample at 0.75-0.83 and
//! compress whole to 0.38-0.68 at level 3; db_bench's zstd SSTs sample at
//! 0.95-0.97 (whole: 0.925, a 7% saving not worth 2.3x the time) and zstd
//! SSTs of text or random bytes at 1.0. Four 8 KiB samples cost what the one
//! 32 KiB sample of before did.
//!
//! The level a blob is compressed at may move while writing
//! ([`super::adaptive`]): any zstd frame decodes the same whatever its level.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// How a blob's bytes are encoded in the pack: the `codec` byte of pack
/// header and index entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum Codec {
    /// Stored as is.
    None = 0,
    /// zstd frame (see [`crate::codec::compression`]).
    Zstd = 1,
}

impl Codec {
    pub(crate) fn from_byte(byte: u8) -> Option<Codec> {
        match byte {
            0 => Some(Codec::None),
            1 => Some(Codec::Zstd),
            _ => None,
        }
    }
}

/// Default zstd level: zstd's own default, a good speed/size balance.
pub const DEFAULT_LEVEL: i32 = 3;
/// Blobs larger than this are sampled before being compressed in `auto` mode.
const SAMPLE_THRESHOLD: usize = 128 * 1024;
/// Samples per blob, spread evenly over it (at 1/8, 3/8, 5/8, 7/8).
pub const SAMPLE_COUNT: usize = 4;
const SAMPLE_LENGTH: usize = 8 * 1024;
/// `auto` stores a blob raw when every sample compresses to more than this fraction.
pub const SAMPLE_GIVE_UP_RATIO: f64 = 0.92;
/// `auto` keeps a compressed blob only if it saves at least 1/32 (about 3%).
pub const MINIMUM_SAVING_FRACTION: usize = 32;
/// Upper bound on a blob's decoded size, so a hostile header cannot make a
/// reader allocate gigabytes (chunks are at most 16 MiB; trees far less).
pub const MAX_BLOB_SIZE: usize = 256 * 1024 * 1024;

/// The most raw bytes one stored zstd byte can stand for: a block decodes to
/// at most 128 KiB and takes at least 4 bytes (3 of header, 1 of RLE).
const MAX_ZSTD_RATIO: usize = 32 * 1024;

/// How blobs are compressed when written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Never compress.
    Off,
    /// Compress with zstd at `level` unless the data does not shrink.
    Auto {
        /// zstd level (1..=22) for blobs whose sample shrinks; written `auto`
        /// at [`DEFAULT_LEVEL`], `auto:N` otherwise.
        level: i32,
    },
    /// Always zstd at `level` (still stored raw if compression would grow it).
    Zstd {
        /// zstd level (1..=22); written `zstd:N`.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Auto {
            level: DEFAULT_LEVEL,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Compression::Off => formatter.write_str("off"),
            Compression::Auto { level } if *level == DEFAULT_LEVEL => formatter.write_str("auto"),
            Compression::Auto { level } => write!(formatter, "auto:{level}"),
            Compression::Zstd { level } => write!(formatter, "zstd:{level}"),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;

    /// Parses `off`, `auto`, `auto:N` or `zstd:N` (N in 1..=22; `none` = `off`).
    fn from_str(text: &str) -> Result<Compression> {
        let invalid = || {
            Error::InvalidArgument(format!(
                "compression {text:?}: expected auto, off, or zstd:N with N from 1 to 22"
            ))
        };
        let level = |digits: &str| -> Result<i32> {
            let level: i32 = digits.parse().map_err(|_| invalid())?;
            if (1..=22).contains(&level) {
                Ok(level)
            } else {
                Err(invalid())
            }
        };
        match text.split_once(':') {
            None if text == "off" || text == "none" => Ok(Compression::Off),
            None if text == "auto" => Ok(Compression::default()),
            None if text == "zstd" => Ok(Compression::Zstd {
                level: DEFAULT_LEVEL,
            }),
            Some(("auto", digits)) => Ok(Compression::Auto {
                level: level(digits)?,
            }),
            Some(("zstd", digits)) => Ok(Compression::Zstd {
                level: level(digits)?,
            }),
            _ => Err(invalid()),
        }
    }
}

impl Compression {
    /// Encodes a blob: the codec used and the bytes to store.
    pub fn encode<'a>(&self, raw: &'a [u8]) -> (Codec, Cow<'a, [u8]>) {
        let level = match *self {
            Compression::Off => return (Codec::None, Cow::Borrowed(raw)),
            Compression::Auto { level } => {
                if raw.len() > SAMPLE_THRESHOLD && !any_sample_shrinks(raw) {
                    return (Codec::None, Cow::Borrowed(raw));
                }
                level
            }
            Compression::Zstd { level } => level,
        };
        match compress(raw, level) {
            Ok(compressed)
                if compressed.len() + raw.len() / MINIMUM_SAVING_FRACTION < raw.len()
                    || (matches!(self, Compression::Zstd { .. })
                        && compressed.len() < raw.len()) =>
            {
                (Codec::Zstd, Cow::Owned(compressed))
            }
            _ => (Codec::None, Cow::Borrowed(raw)),
        }
    }
}

/// Whether one of [`SAMPLE_COUNT`] samples spread over `raw` (longer than
/// [`SAMPLE_THRESHOLD`]) compresses below [`SAMPLE_GIVE_UP_RATIO`] at level 1.
fn any_sample_shrinks(raw: &[u8]) -> bool {
    (0..SAMPLE_COUNT).any(|index| {
        let centre = raw.len() * (2 * index + 1) / (2 * SAMPLE_COUNT);
        let start = centre
            .saturating_sub(SAMPLE_LENGTH / 2)
            .min(raw.len() - SAMPLE_LENGTH);
        let sample = &raw[start..start + SAMPLE_LENGTH];
        SAMPLER
            .with(|cell| {
                let mut cached = cell.borrow_mut();
                if cached.is_none() {
                    *cached = Some(zstd::bulk::Compressor::new(1)?);
                }
                match cached.as_mut() {
                    Some(compressor) => compressor.compress(sample),
                    None => zstd::bulk::compress(sample, 1),
                }
            })
            .is_ok_and(|compressed| {
                (compressed.len() as f64) <= SAMPLE_LENGTH as f64 * SAMPLE_GIVE_UP_RATIO
            })
    })
}

thread_local! {
    /// One zstd context per thread and level: creating one per blob costs more
    /// than compressing a small blob.
    static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { std::cell::RefCell::new(None) };
    /// The level-1 context of the samples, apart, so that sampling does not
    /// evict the blob level's context.
    static SAMPLER: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut cached = cell.borrow_mut();
        match cached.as_mut() {
            None => *cached = Some((level, zstd::bulk::Compressor::new(level)?)),
            // The adaptive level moves: keep the context, change its level.
            Some((cached_level, compressor)) if *cached_level != level => {
                compressor.set_compression_level(level)?;
                *cached_level = level;
            }
            Some(_) => {}
        }
        match cached.as_mut() {
            Some((_, compressor)) => compressor.compress(raw),
            None => zstd::bulk::compress(raw, level),
        }
    })
}

/// Decodes a stored blob into `raw_length` bytes (a raw blob is passed
/// through uncopied).
pub fn decode<'a>(
    codec: Codec,
    stored: Cow<'a, [u8]>,
    raw_length: usize,
    object: impl Fn() -> String,
) -> Result<Cow<'a, [u8]>> {
    match codec {
        Codec::None => Ok(stored),
        Codec::Zstd => {
            if raw_length > MAX_BLOB_SIZE {
                return Err(Error::corrupt(
                    object(),
                    format!("claims {raw_length} raw bytes"),
                ));
            }
            // The decoder allocates the declared size up front: refuse a
            // size the stored bytes cannot hold (found by fuzzing the pack
            // parser: 146 bytes declaring 128 MiB, an abort under `ulimit -v`).
            if raw_length > stored.len().saturating_mul(MAX_ZSTD_RATIO) {
                return Err(Error::corrupt(
                    object(),
                    format!(
                        "claims {raw_length} raw bytes, more than its {} stored bytes can hold",
                        stored.len()
                    ),
                ));
            }
            // The frame header states its content size (our writers always
            // record it): a claim that contradicts it is refused before the
            // decoder allocates the claimed size (found by fuzzing the pack
            // parser: one flipped length bit, a 64 MiB allocation).
            match zstd::zstd_safe::get_frame_content_size(&stored) {
                Ok(Some(declared)) if declared != raw_length as u64 => {
                    return Err(Error::corrupt(
                        object(),
                        format!(
                            "claims {raw_length} raw bytes, its zstd frame declares {declared}"
                        ),
                    ));
                }
                Ok(_) => {}
                Err(_) => {
                    return Err(Error::corrupt(
                        object(),
                        "its zstd frame header is damaged".to_string(),
                    ))
                }
            }
            let raw = zstd::bulk::decompress(&stored, raw_length)
                .map_err(|error| Error::corrupt(object(), format!("zstd: {error}")))?;
            if raw.len() != raw_length {
                return Err(Error::corrupt(
                    object(),
                    format!("decompressed to {} bytes, expected {raw_length}", raw.len()),
                ));
            }
            Ok(Cow::Owned(raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn noise(length: usize) -> Vec<u8> {
        let mut state = 0x1234_5678_9abc_def1u64;
        (0..length)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(
            "auto".parse::<Compression>().unwrap(),
            Compression::default()
        );
        assert_eq!("off".parse::<Compression>().unwrap(), Compression::Off);
        assert_eq!(
            "zstd:19".parse::<Compression>().unwrap(),
            Compression::Zstd { level: 19 }
        );
        assert_eq!(
            "auto:7".parse::<Compression>().unwrap().to_string(),
            "auto:7"
        );
        for bad in ["zstd:0", "zstd:23", "lz4", "zstd:x", ""] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_compresses_text_and_stores_noise_raw() {
        let text = b"key000001 value value value\n".repeat(20_000);
        let (codec, stored) = Compression::default().encode(&text);
        assert_eq!(codec, Codec::Zstd);
        assert!(stored.len() * 10 < text.len());
        let random = noise(1 << 20);
        let (codec, stored) = Compression::default().encode(&random);
        assert_eq!(codec, Codec::None);
        assert_eq!(stored.len(), random.len());
        // Small incompressible blobs are tried in full, then stored raw.
        let (codec, _) = Compression::default().encode(&random[..1000]);
        assert_eq!(codec, Codec::None);
        assert_eq!(Compression::Off.encode(&text).0, Codec::None);
    }

    #[test]
    fn decode_rejects_lies() {
        let text = b"abc".repeat(1000);
        let compressed = zstd::bulk::compress(&text, 3).unwrap();
        let decode = |stored: &[u8], length| {
            decode(Codec::Zstd, Cow::Borrowed(stored), length, || "x".into()).map(Cow::into_owned)
        };
        assert_eq!(decode(&compressed, 3000).unwrap(), text);
        assert!(decode(&compressed, 2999).is_err());
        assert!(decode(&compressed, 3001).is_err());
        let error = decode(&compressed, 100_000).unwrap_err();
        assert!(error.to_string().contains("frame declares 3000"), "{error}");
        assert!(decode(b"garbage", 10).is_err());
        assert!(decode(&compressed, MAX_BLOB_SIZE + 1).is_err());
    }

    #[test]
    fn a_declared_size_the_stored_bytes_cannot_hold_is_refused_before_allocating() {
        let decode = |stored: &[u8], length| {
            decode(Codec::Zstd, Cow::Borrowed(stored), length, || "x".into()).map(Cow::into_owned)
        };
        let tiny = zstd::bulk::compress(b"tiny", 3).unwrap();
        let error = decode(&tiny, 128 * 1024 * 1024).unwrap_err();
        assert!(error.to_string().contains("can hold"), "{error}");
        // The densest real frame (zeros, one RLE block per 128 KiB) is within the bound.
        let zeros = vec![0u8; 8 * 1024 * 1024];
        let dense = zstd::bulk::compress(&zeros, 19).unwrap();
        assert!(zeros.len() <= dense.len() * MAX_ZSTD_RATIO);
        assert_eq!(decode(&dense, zeros.len()).unwrap(), zeros);
    }

    fn text(length: usize) -> Vec<u8> {
        let words = [
            "lsm ",
            "vault ",
            "snapshot ",
            "compaction ",
            "level ",
            "key ",
        ];
        let mut state = 7u64;
        let mut out = Vec::with_capacity(length + 16);
        while out.len() < length {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            out.extend_from_slice(words[(state >> 60) as usize % words.len()].as_bytes());
        }
        out.truncate(length);
        out
    }

    #[test]
    fn auto_probes_several_places() {
        let auto = Compression::default();
        // Compressible text passes.
        assert_eq!(auto.encode(&text(1 << 20)).0, Codec::Zstd);
        // Random bytes, and zstd output, are stored raw without compressing the whole.
        assert_eq!(auto.encode(&noise(1 << 20)).0, Codec::None);
        let zstd_frame = zstd::bulk::compress(&text(4 << 20), 19).unwrap();
        assert!(zstd_frame.len() > SAMPLE_THRESHOLD, "{}", zstd_frame.len());
        assert_eq!(auto.encode(&zstd_frame).0, Codec::None);
        // Text only where the old single probe did not look (the middle
        // is noise): one sample finds it and the whole blob is judged.
        let mut mixed = text(1 << 20);
        mixed[256 << 10..768 << 10].copy_from_slice(&noise(512 << 10));
        let (codec, stored) = auto.encode(&mixed);
        assert_eq!(codec, Codec::Zstd);
        assert!(stored.len() < mixed.len() * 3 / 4, "{}", stored.len());
        // Text only in the middle 32 KiB: no sample sees it, raw (cheap).
        let mut noisy = noise(1 << 20);
        noisy[(1 << 19) - (16 << 10)..(1 << 19) + (16 << 10)].copy_from_slice(&text(32 << 10));
        assert_eq!(auto.encode(&noisy).0, Codec::None);
    }

    #[test]
    fn near_the_threshold_the_whole_blob_decides() {
        // Every sample shrinks just below the give-up ratio (a 20% text,
        // 80% noise mix in 1 KiB stripes): the whole is compressed and kept
        // only if it saves 1/32.
        let mut near = noise(1 << 20);
        let words = text(1 << 20);
        for stripe in (0..near.len()).step_by(1024) {
            near[stripe..stripe + 200].copy_from_slice(&words[stripe..stripe + 200]);
        }
        let sample = &near[(1 << 17) - 4096..(1 << 17) + 4096];
        let ratio = zstd::bulk::compress(sample, 1).unwrap().len() as f64 / sample.len() as f64;
        assert!((0.75..=SAMPLE_GIVE_UP_RATIO).contains(&ratio), "{ratio}");
        let (codec, stored) = Compression::default().encode(&near);
        assert_eq!(codec, Codec::Zstd);
        assert!(stored.len() + near.len() / MINIMUM_SAVING_FRACTION < near.len());
        // Just above it in every sample (5% text): raw.
        let mut above = noise(1 << 20);
        for stripe in (0..above.len()).step_by(1024) {
            above[stripe..stripe + 40].copy_from_slice(&words[stripe..stripe + 40]);
        }
        assert_eq!(Compression::default().encode(&above).0, Codec::None);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn every_level_round_trips(data in proptest::collection::vec(0u8..8, 0..40_000), level in 1i32..=22) {
            for compression in [Compression::Auto { level }, Compression::Zstd { level }] {
                let (codec, stored) = compression.encode(&data);
                let raw = decode(codec, Cow::Borrowed(&stored), data.len(), || "blob".into()).unwrap();
                prop_assert_eq!(raw.as_ref(), data.as_slice());
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn round_trip(data in proptest::collection::vec(0u8..4, 0..300_000), level in 1i32..6) {
            for compression in [Compression::Off, Compression::Auto { level }, Compression::Zstd { level }] {
                let (codec, stored) = compression.encode(&data);
                let raw = decode(codec, Cow::Borrowed(&stored), data.len(), || "blob".into()).unwrap();
                prop_assert_eq!(raw.as_ref(), data.as_slice());
                prop_assert!(stored.len() <= data.len());
            }
        }
    }
}
