//! Reed-Solomon erasure coding of one stripe: `data` equal-length shards in,
//! `parity` shards out; any `parity` of the `data + parity` shards can be
//! lost and the data shards rebuilt from the others. A thin layer over the
//! `reed-solomon-simd` crate (Leopard-RS, GF(2^16), O(n log n)).
//!
//! Invariant: shard lengths are a non-zero multiple of [`SHARD_ALIGNMENT`]
//! (the crate needs an even length; 64 keeps its SIMD paths on whole
//! blocks), so callers pad what they code to it. The coding is
//! deterministic: the same data shards always give the same parity, which
//! is what lets a rebuilt parity object carry its old name.

use reed_solomon_simd::{ReedSolomonDecoder, ReedSolomonEncoder};

use crate::error::{Error, Result};

/// Every shard length is a multiple of this.
pub const SHARD_ALIGNMENT: usize = 64;

/// `length` rounded up to [`SHARD_ALIGNMENT`] (at least one alignment unit).
pub fn aligned(length: u64) -> u64 {
    let alignment = SHARD_ALIGNMENT as u64;
    length.max(1).div_ceil(alignment) * alignment
}

fn coding_error(error: reed_solomon_simd::Error) -> Error {
    Error::InvalidArgument(format!("Reed-Solomon coding: {error}"))
}

/// Whether `data` data shards with `parity` parity shards can be coded.
pub fn supports(data: usize, parity: usize) -> bool {
    ReedSolomonEncoder::supports(data, parity)
}

/// The `parity` parity shards of `data_shards` (all of one length).
pub fn encode(data_shards: &[&[u8]], parity: usize) -> Result<Vec<Vec<u8>>> {
    let length = data_shards.first().map_or(0, |shard| shard.len());
    let mut encoder =
        ReedSolomonEncoder::new(data_shards.len(), parity, length).map_err(coding_error)?;
    for shard in data_shards {
        encoder.add_original_shard(shard).map_err(coding_error)?;
    }
    let result = encoder.encode().map_err(coding_error)?;
    Ok(result.recovery_iter().map(<[u8]>::to_vec).collect())
}

/// Rebuilds the missing data shards of one stripe. `data_shards[i]` and
/// `parity_shards[j]` are `None` where lost; at least `data_shards.len()`
/// shards in all must be present, each `length` bytes. Returns the rebuilt
/// data shards as `(index, bytes)`.
pub fn reconstruct(
    data_shards: &[Option<&[u8]>],
    parity_shards: &[Option<&[u8]>],
    length: usize,
) -> Result<Vec<(usize, Vec<u8>)>> {
    if data_shards.iter().all(Option::is_some) {
        return Ok(Vec::new());
    }
    let mut decoder = ReedSolomonDecoder::new(data_shards.len(), parity_shards.len(), length)
        .map_err(coding_error)?;
    for (index, shard) in data_shards.iter().enumerate() {
        if let Some(shard) = shard {
            decoder
                .add_original_shard(index, shard)
                .map_err(coding_error)?;
        }
    }
    for (index, shard) in parity_shards.iter().enumerate() {
        if let Some(shard) = shard {
            decoder
                .add_recovery_shard(index, shard)
                .map_err(coding_error)?;
        }
    }
    let result = decoder.decode().map_err(coding_error)?;
    Ok(result
        .restored_original_iter()
        .map(|(index, shard)| (index, shard.to_vec()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pad(bytes: &[u8], length: usize) -> Vec<u8> {
        let mut padded = bytes.to_vec();
        padded.resize(length, 0);
        padded
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Packs of random lengths, padded to the longest: drop any set of
        /// at most `parity` shards and the data comes back byte-exact.
        #[test]
        fn encode_drop_up_to_parity_shards_reconstruct_round_trips(
            lengths in prop::collection::vec(0usize..3000, 1..12),
            parity in 1usize..5,
            seed in any::<u64>(),
            drop_seed in any::<u64>(),
        ) {
            let packs: Vec<Vec<u8>> = lengths
                .iter()
                .enumerate()
                .map(|(index, length)| {
                    (0..*length)
                        .map(|offset| (seed.wrapping_mul(31).wrapping_add((index * 7919 + offset) as u64) >> 3) as u8)
                        .collect()
                })
                .collect();
            let length = aligned(*lengths.iter().max().unwrap_or(&0) as u64) as usize;
            let padded: Vec<Vec<u8>> = packs.iter().map(|pack| pad(pack, length)).collect();
            let shards: Vec<&[u8]> = padded.iter().map(Vec::as_slice).collect();
            let parity_shards = encode(&shards, parity).unwrap();
            prop_assert_eq!(parity_shards.len(), parity);

            // Choose which of all data + parity shards to drop (at most `parity`).
            let total = packs.len() + parity;
            let mut order: Vec<usize> = (0..total).collect();
            let mut state = drop_seed | 1;
            for index in (1..total).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                order.swap(index, (state % (index as u64 + 1)) as usize);
            }
            let dropped: Vec<usize> = order[..(drop_seed as usize % (parity + 1))].to_vec();
            let data: Vec<Option<&[u8]>> = (0..packs.len())
                .map(|index| (!dropped.contains(&index)).then_some(shards[index]))
                .collect();
            let recovery: Vec<Option<&[u8]>> = (0..parity)
                .map(|index| {
                    (!dropped.contains(&(packs.len() + index))).then_some(parity_shards[index].as_slice())
                })
                .collect();
            let rebuilt = reconstruct(&data, &recovery, length).unwrap();
            for (index, bytes) in rebuilt {
                prop_assert!(dropped.contains(&index));
                prop_assert_eq!(&bytes[..packs[index].len()], packs[index].as_slice());
            }
        }
    }

    #[test]
    fn one_more_lost_shard_than_parity_cannot_be_rebuilt() {
        let shards = [vec![1u8; 64], vec![2u8; 64], vec![3u8; 64]];
        let slices: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
        let parity = encode(&slices, 2).unwrap();
        let data = [None, None, Some(slices[2])];
        let recovery = [Some(parity[0].as_slice()), None];
        assert!(reconstruct(&data, &recovery, 64).is_err());
    }

    #[test]
    fn lengths_align_to_the_shard_alignment() {
        assert_eq!(aligned(0), 64);
        assert_eq!(aligned(64), 64);
        assert_eq!(aligned(65), 128);
    }
}
