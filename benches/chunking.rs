//! Hot paths of a backup, single-threaded, over 64 MiB of seeded pseudo-random
//! bytes (incompressible and without repeats, like compressed SST blocks):
//!
//! - `cut_search/*`: FastCDC cut-point search alone (the pure `CutFinder`, and
//!   the `StreamChunker` that feeds it from a reader, which adds one copy);
//! - `chunk_and_id`: chunking plus the BLAKE3 chunk id of every chunk;
//! - `blake3/*`: BLAKE3 alone, one thread (one call, and 1 MiB updates);
//! - `pack/*`: building packs from already chunked data (copying blobs in, and
//!   `finish`, which hashes the whole pack to name it);
//! - `pipeline/backup_single_thread`: what a plaintext `backup` without
//!   compression does per byte of a new file on one core: chunk, chunk id,
//!   whole-file digest, pack copy, pack id;
//! - `compression/*`: the default `auto` compression per chunk, on the random
//!   bytes (the probe gives up: what already-compressed SST data costs) and on
//!   compressible records (zstd level 3 runs);
//! - `encryption/seal_chunks`: XChaCha20-Poly1305 sealing of every chunk, as
//!   an encrypted repository does.
//!
//! Run with `cargo bench --bench chunking`; it takes well under two minutes on
//! two cores. `docs/benchmarks.md` has figures and their interpretation.

use std::hint::black_box;
use std::ops::Range;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use lsmvault::codec::chunker::{ChunkerParams, CutFinder, StreamChunker};
use lsmvault::codec::compression::Compression;
use lsmvault::codec::crypto::{Cipher, MasterKey, SealKind};
use lsmvault::format::pack::{BlobKind, Packer};
use lsmvault::Id;

/// Input size of every benchmark.
const INPUT_LENGTH: usize = 64 * 1024 * 1024;
/// A repository's default pack size (`DEFAULT_PACK_SIZE` in `src/repository.rs`).
const PACK_SIZE: usize = 16 * 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift64*), as in the chunker's tests.
fn seeded_bytes(seed: u64, length: usize) -> Vec<u8> {
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

/// Compressible records, roughly what db_bench writes: a 16-byte ascending
/// key and a 400-byte value that is half random, half a repeated byte.
fn record_bytes(length: usize) -> Vec<u8> {
    let noise = seeded_bytes(0xdb, length);
    let mut out = Vec::with_capacity(length + 416);
    let mut key = 0u64;
    while out.len() < length {
        out.extend_from_slice(&key.to_be_bytes());
        out.extend_from_slice(&(!key).to_be_bytes());
        let start = out.len() % (length - 200);
        out.extend_from_slice(&noise[start..start + 200]);
        out.extend_from_slice(&[b'x'; 200]);
        key += 1;
    }
    out.truncate(length);
    out
}

fn finder() -> CutFinder {
    CutFinder::new(&ChunkerParams::default(), 0).expect("default chunker parameters are valid")
}

/// Chunk boundaries of `data` with the default parameters.
fn chunk_ranges(finder: &CutFinder, data: &[u8]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < data.len() {
        let length = finder.next_cut(&data[start..]);
        ranges.push(start..start + length);
        start += length;
    }
    ranges
}

fn configure(
    criterion: &mut Criterion,
) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut group = criterion.benchmark_group("hot_paths");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(INPUT_LENGTH as u64));
    group
}

fn hot_paths(criterion: &mut Criterion) {
    let data = seeded_bytes(0x5eed, INPUT_LENGTH);
    let finder = finder();
    let ranges = chunk_ranges(&finder, &data);
    let ids: Vec<Id> = ranges
        .iter()
        .map(|range| Id::of(&data[range.clone()]))
        .collect();
    let mut group = configure(criterion);

    group.bench_function("cut_search/cut_finder", |bench| {
        bench.iter(|| {
            let data = black_box(&data[..]);
            let mut start = 0;
            let mut count = 0usize;
            while start < data.len() {
                start += finder.next_cut(&data[start..]);
                count += 1;
            }
            count
        })
    });

    group.bench_function("cut_search/stream_chunker", |bench| {
        bench.iter(|| {
            let mut chunker = StreamChunker::new(&finder, black_box(&data[..]), data.len() as u64);
            let mut count = 0usize;
            while let Some(chunk) = chunker.next_chunk().expect("reading a slice cannot fail") {
                count += chunk.len();
            }
            count
        })
    });

    group.bench_function("chunk_and_id", |bench| {
        bench.iter(|| {
            let mut chunker = StreamChunker::new(&finder, black_box(&data[..]), data.len() as u64);
            let mut last = Id([0; 32]);
            while let Some(chunk) = chunker.next_chunk().expect("reading a slice cannot fail") {
                last = Id::of(chunk);
            }
            last
        })
    });

    group.bench_function("blake3/one_call", |bench| {
        bench.iter(|| blake3::hash(black_box(&data[..])))
    });

    group.bench_function("blake3/updates_1mib", |bench| {
        bench.iter(|| {
            let mut hasher = blake3::Hasher::new();
            for piece in black_box(&data[..]).chunks(1024 * 1024) {
                hasher.update(piece);
            }
            hasher.finalize()
        })
    });

    group.bench_function("pack/add_only", |bench| {
        bench.iter(|| {
            let mut packer = Packer::new();
            let mut blobs = 0usize;
            for (id, range) in ids.iter().zip(&ranges) {
                packer
                    .add(*id, BlobKind::Data, &data[range.clone()])
                    .expect("blob fits a pack");
                if packer.len() >= PACK_SIZE {
                    blobs += black_box(std::mem::take(&mut packer)).len();
                }
            }
            blobs + packer.len()
        })
    });

    group.bench_function("pack/add_and_finish", |bench| {
        bench.iter(|| {
            let mut packer = Packer::new();
            let mut last = None;
            for (id, range) in ids.iter().zip(&ranges) {
                packer
                    .add(*id, BlobKind::Data, &data[range.clone()])
                    .expect("blob fits a pack");
                if packer.len() >= PACK_SIZE {
                    last = Some(
                        std::mem::take(&mut packer)
                            .finish(&lsmvault::codec::crypto::Keys::plaintext())
                            .expect("plaintext pack")
                            .id,
                    );
                }
            }
            if !packer.is_empty() {
                last = Some(
                    packer
                        .finish(&lsmvault::codec::crypto::Keys::plaintext())
                        .expect("plaintext pack")
                        .id,
                );
            }
            last
        })
    });

    group.bench_function("pipeline/backup_single_thread", |bench| {
        bench.iter(|| {
            let mut chunker = StreamChunker::new(&finder, black_box(&data[..]), data.len() as u64);
            let mut file_digest = blake3::Hasher::new();
            let mut packer = Packer::new();
            let mut last = None;
            while let Some(chunk) = chunker.next_chunk().expect("reading a slice cannot fail") {
                let id = Id::of(chunk);
                file_digest.update(chunk);
                packer
                    .add(id, BlobKind::Data, chunk)
                    .expect("blob fits a pack");
                if packer.len() >= PACK_SIZE {
                    last = Some(
                        std::mem::take(&mut packer)
                            .finish(&lsmvault::codec::crypto::Keys::plaintext())
                            .expect("plaintext pack")
                            .id,
                    );
                }
            }
            if !packer.is_empty() {
                last = Some(
                    packer
                        .finish(&lsmvault::codec::crypto::Keys::plaintext())
                        .expect("plaintext pack")
                        .id,
                );
            }
            (file_digest.finalize(), last)
        })
    });

    let compression = Compression::default();
    group.bench_function("compression/auto_incompressible", |bench| {
        bench.iter(|| {
            let mut stored = 0usize;
            for range in &ranges {
                stored += compression.encode(black_box(&data[range.clone()])).1.len();
            }
            stored
        })
    });

    let records = record_bytes(INPUT_LENGTH);
    let record_ranges = chunk_ranges(&finder, &records);
    group.bench_function("compression/auto_compressible", |bench| {
        bench.iter(|| {
            let mut stored = 0usize;
            for range in &record_ranges {
                stored += compression
                    .encode(black_box(&records[range.clone()]))
                    .1
                    .len();
            }
            stored
        })
    });
    drop(records);

    // Both ciphers on the same chunks: the figures docs/security.md quotes.
    let master = MasterKey::generate().expect("system random source");
    for cipher in [Cipher::Aes256GcmSubkey, Cipher::XChaCha20Poly1305] {
        let keys = master.keys(cipher);
        group.bench_function(
            format!("encryption/seal_chunks/{}", cipher.name()),
            |bench| {
                bench.iter(|| {
                    let mut sealed = 0usize;
                    for range in &ranges {
                        sealed += keys
                            .seal(SealKind::Blob, black_box(&data[range.clone()]))
                            .expect("sealing works")
                            .len();
                    }
                    sealed
                })
            },
        );
    }

    group.finish();
}

criterion_group!(benches, hot_paths);
criterion_main!(benches);
