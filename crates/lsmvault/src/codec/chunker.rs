//! Content-defined chunking with FastCDC (the `fastcdc` crate's 2020 algorithm).
//!
//! The cut points are exactly those of `fastcdc::v2020::StreamCDC` with the same
//! parameters (a test pins this), but the reader here keeps one reusable buffer
//! and hands out borrowed slices: StreamCDC allocates a fresh `Vec` per chunk and
//! moves its whole `max_size` buffer after every cut, which costs more than the
//! cut search itself at 1 MiB chunks.
//!
//! Invariant: chunk boundaries depend only on the bytes and on the
//! [`ChunkerParams`] recorded in the repository's `config`. Changing either the
//! parameters or this algorithm silently destroys deduplication against every
//! existing repository; `pinned_boundaries` below fails if that happens.

use std::io::{self, Read};

use fastcdc::v2020::{self, Normalization};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Chunker parameters, fixed for a repository at `init`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    /// Always `"fastcdc-v2020"` for now; a different algorithm is a new name.
    pub algorithm: ChunkerAlgorithm,
    /// Smallest chunk in bytes (default 256 KiB): no cut is looked for before
    /// it, so only the last chunk of a stream may be shorter, and a file no
    /// larger than this is one chunk. FastCDC accepts 64 B to 1 MiB.
    pub min_size: u32,
    /// Target average chunk size in bytes (default 1 MiB): the cut-point masks
    /// derive from its base-2 logarithm. FastCDC accepts 256 B to 4 MiB.
    pub avg_size: u32,
    /// Largest chunk in bytes (default 4 MiB): a cut is forced there. It sizes
    /// the chunker's buffer (two of them) and a pack's headroom over
    /// `pack_size`. FastCDC accepts 1 KiB to 16 MiB.
    pub max_size: u32,
    /// FastCDC normalization level (0..=3).
    pub normalization: u8,
}

/// The chunking algorithms this build knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkerAlgorithm {
    /// FastCDC 2020 as the `fastcdc` crate's `v2020` module cuts, written
    /// `fastcdc-v2020` in `config`.
    #[serde(rename = "fastcdc-v2020")]
    FastCdc2020,
}

impl Default for ChunkerParams {
    /// 256 KiB / 1 MiB / 4 MiB, normalization level 1: see `docs/format.md`.
    fn default() -> Self {
        ChunkerParams {
            algorithm: ChunkerAlgorithm::FastCdc2020,
            min_size: 256 * 1024,
            avg_size: 1024 * 1024,
            max_size: 4 * 1024 * 1024,
            normalization: 1,
        }
    }
}

impl ChunkerParams {
    /// Checks the parameters against the ranges FastCDC accepts.
    pub fn validate(&self) -> Result<()> {
        let ok = (v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min_size)
            && (v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg_size)
            && (v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && self.normalization <= 3;
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!(
                "chunker sizes min {} / avg {} / max {} / normalization {} are outside FastCDC's ranges",
                self.min_size, self.avg_size, self.max_size, self.normalization
            )))
        }
    }

    fn level(&self) -> Normalization {
        match self.normalization {
            0 => Normalization::Level0,
            1 => Normalization::Level1,
            2 => Normalization::Level2,
            _ => Normalization::Level3,
        }
    }
}

/// The pure cut-point search: given bytes, where does the next chunk end?
pub struct CutFinder {
    min_size: usize,
    avg_size: usize,
    max_size: usize,
    mask_s: u64,
    mask_l: u64,
    gear: Box<[u64; 256]>,
    gear_shifted: Box<[u64; 256]>,
}

impl CutFinder {
    /// A cut finder; `gear_seed` keys the gear table (0 = FastCDC's own table,
    /// used by plaintext repositories; encrypted ones derive it from their key).
    pub fn new(params: &ChunkerParams, gear_seed: u64) -> Result<Self> {
        params.validate()?;
        let bits = v2020::logarithm2(params.avg_size);
        let normalization = params.level().bits();
        let mask_index = |bits: u32| usize::try_from(bits).unwrap_or(usize::MAX);
        let mask_s = *v2020::MASKS
            .get(mask_index(bits + normalization))
            .ok_or_else(|| Error::InvalidArgument("chunker average size too large".into()))?;
        let mask_l = *v2020::MASKS
            .get(mask_index(bits.saturating_sub(normalization)))
            .ok_or_else(|| Error::InvalidArgument("chunker average size too small".into()))?;
        let (gear, gear_shifted) = v2020::get_gear_with_seed(gear_seed);
        Ok(CutFinder {
            min_size: params.min_size as usize,
            avg_size: params.avg_size as usize,
            max_size: params.max_size as usize,
            mask_s,
            mask_l,
            gear,
            gear_shifted,
        })
    }

    /// Length of the chunk starting at `data[0]`, given that `data` holds at
    /// least `max_size` bytes or everything up to the end of the stream.
    pub fn next_cut(&self, data: &[u8]) -> usize {
        let (_, length) = v2020::cut_gear(
            data,
            self.min_size,
            self.avg_size,
            self.max_size,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &self.gear,
            &self.gear_shifted,
        );
        length
    }

    /// The longest chunk [`CutFinder::next_cut`] returns, in bytes (the
    /// parameters' `max_size`): how much a caller must buffer ahead.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// The shortest chunk [`CutFinder::next_cut`] returns, in bytes, except at
    /// the end of the stream: a stream no longer than this is one chunk.
    pub fn min_size(&self) -> usize {
        self.min_size
    }
}

/// Splits a byte stream into chunks, reusing one buffer of a few `max_size`s.
pub struct StreamChunker<'finder, R> {
    finder: &'finder CutFinder,
    reader: R,
    buffer: Vec<u8>,
    start: usize,
    end: usize,
    end_of_stream: bool,
}

impl<'finder, R: Read> StreamChunker<'finder, R> {
    /// A chunker over `reader`; `size_hint` (the expected stream length) keeps
    /// the buffer small for small files. The buffer grows to two `max_size`
    /// windows when the stream is longer, so the hint never changes boundaries.
    pub fn new(finder: &'finder CutFinder, reader: R, size_hint: u64) -> Self {
        let full = finder.max_size() * 2;
        let initial = usize::try_from(size_hint.saturating_add(1))
            .unwrap_or(full)
            .clamp(1, full);
        StreamChunker {
            finder,
            reader,
            buffer: vec![0u8; initial],
            start: 0,
            end: 0,
            end_of_stream: false,
        }
    }

    /// Reads until the buffer holds at least `max_size` bytes or the stream ended.
    fn refill(&mut self) -> io::Result<()> {
        self.buffer.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        let full = self.finder.max_size() * 2;
        while !self.end_of_stream {
            if self.end == self.buffer.len() {
                if self.end >= self.finder.max_size() || self.buffer.len() >= full {
                    break;
                }
                let grown = (self.buffer.len() * 2).clamp(self.finder.max_size(), full);
                self.buffer.resize(grown, 0);
            }
            match self.reader.read(&mut self.buffer[self.end..]) {
                Ok(0) => self.end_of_stream = true,
                Ok(count) => self.end += count,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// The next chunk, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> io::Result<Option<&[u8]>> {
        if self.end - self.start < self.finder.max_size() && !self.end_of_stream {
            self.refill()?;
        }
        if self.start == self.end {
            return Ok(None);
        }
        let available = &self.buffer[self.start..self.end];
        let length = self.finder.next_cut(available);
        let chunk_start = self.start;
        self.start += length;
        Ok(Some(&self.buffer[chunk_start..chunk_start + length]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Deterministic pseudo-random bytes (xorshift64*), so the pinned figures
    /// below do not depend on any external RNG crate's stability.
    pub(crate) fn seeded_bytes(seed: u64, length: usize) -> Vec<u8> {
        let mut state = seed.max(1);
        let mut out = Vec::with_capacity(length + 8);
        while out.len() < length {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
        }
        out.truncate(length);
        out
    }

    fn lengths(params: &ChunkerParams, data: &[u8], read_size: usize) -> Vec<usize> {
        lengths_with_hint(params, data, read_size, 0)
    }

    fn lengths_with_hint(
        params: &ChunkerParams,
        data: &[u8],
        read_size: usize,
        hint: u64,
    ) -> Vec<usize> {
        struct Trickle<'a>(&'a [u8], usize);
        impl Read for Trickle<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let count = self.0.len().min(out.len()).min(self.1);
                out[..count].copy_from_slice(&self.0[..count]);
                self.0 = &self.0[count..];
                Ok(count)
            }
        }
        let finder = CutFinder::new(params, 0).unwrap();
        let mut chunker = StreamChunker::new(&finder, Trickle(data, read_size), hint);
        let mut out = Vec::new();
        while let Some(chunk) = chunker.next_chunk().unwrap() {
            out.push(chunk.len());
        }
        out
    }

    /// Pins the cut points of the default parameters on a seeded input. If this
    /// fails, the change breaks deduplication against existing repositories:
    /// bump the chunker algorithm name instead of editing these numbers.
    #[test]
    fn pinned_boundaries() {
        let data = seeded_bytes(0x5eed, 12 * 1024 * 1024);
        let found = lengths(&ChunkerParams::default(), &data, 1 << 20);
        assert_eq!(found.iter().sum::<usize>(), data.len());
        let digest = blake3::hash(
            &found
                .iter()
                .flat_map(|length| (*length as u64).to_le_bytes())
                .collect::<Vec<u8>>(),
        );
        assert_eq!(
            (found.len(), &found[..4], digest.to_hex().as_str()),
            (PINNED_COUNT, &PINNED_FIRST[..], PINNED_DIGEST)
        );
    }
    const PINNED_COUNT: usize = 9;
    const PINNED_FIRST: [usize; 4] = [1434690, 1777534, 1452899, 1485271];
    const PINNED_DIGEST: &str = "2359525522fad35802524dde9103a6a3694df8de955ad04a4332cc6a5ab99f86";

    #[test]
    fn matches_fastcdc_stream_chunker() {
        let params = ChunkerParams {
            min_size: 4096,
            avg_size: 16384,
            max_size: 65536,
            ..ChunkerParams::default()
        };
        let data = seeded_bytes(7, 3 * 1024 * 1024 + 17);
        let reference: Vec<usize> =
            v2020::StreamCDC::new(&data[..], params.min_size, params.avg_size, params.max_size)
                .map(|chunk| chunk.unwrap().length)
                .collect();
        assert_eq!(lengths(&params, &data, 1000), reference);
        assert_eq!(lengths(&params, &data, usize::MAX), reference);
    }

    #[test]
    fn empty_stream_has_no_chunks() {
        assert!(lengths(&ChunkerParams::default(), &[], 10).is_empty());
    }

    #[test]
    fn rejects_out_of_range_parameters() {
        let params = ChunkerParams {
            min_size: 8,
            ..ChunkerParams::default()
        };
        assert!(CutFinder::new(&params, 0).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Same bytes, any read pattern: same chunks; chunks cover the input.
        #[test]
        fn deterministic_and_complete(seed in 1u64.., length in 0usize..300_000, read_size in 1usize..70_000) {
            let params = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384, ..ChunkerParams::default() };
            let data = seeded_bytes(seed, length);
            let first = lengths(&params, &data, read_size);
            prop_assert_eq!(first.iter().sum::<usize>(), length);
            prop_assert!(first.iter().all(|&chunk| chunk <= 16384 && chunk > 0));
            prop_assert_eq!(&first, &lengths(&params, &data, usize::MAX));
            // A wrong size hint (the file grew or shrank) never changes boundaries.
            prop_assert_eq!(&first, &lengths_with_hint(&params, &data, read_size, length as u64 / 3));
            prop_assert_eq!(&first, &lengths_with_hint(&params, &data, usize::MAX, length as u64 * 2));
        }

        /// Content-defined: inserting bytes at the front leaves later boundaries intact.
        #[test]
        fn prefix_insertion_resynchronises(seed in 1u64.., insert in 1usize..5000) {
            let params = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384, ..ChunkerParams::default() };
            let data = seeded_bytes(seed, 200_000);
            let mut shifted = seeded_bytes(seed ^ 0xabcdef, insert);
            shifted.extend_from_slice(&data);
            let ends = |lengths: Vec<usize>, skip: usize| -> std::collections::HashSet<usize> {
                lengths.iter().scan(0, |end, length| { *end += length; Some(*end) })
                    .filter(|end| *end > skip).map(|end| end - skip).collect()
            };
            let original = ends(lengths(&params, &data, usize::MAX), 0);
            let moved = ends(lengths(&params, &shifted, usize::MAX), insert);
            let shared = original.intersection(&moved).count();
            prop_assert!(shared * 10 >= original.len() * 8, "only {} of {} boundaries survived", shared, original.len());
        }
    }
}
