//! One harness per parser of repository data, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/<name>.rs`, one line each) and by the stable corpus
//! replay test (`tests/it/fuzz_corpus.rs`, which includes this file), so the
//! checked-in corpus under `fuzz/corpus/<name>/` is a regression suite on CI
//! without a nightly toolchain.
//!
//! Each harness feeds arbitrary bytes to the parser as the repository would
//! (plaintext keys: sealed objects cannot be forged past their MAC, so the
//! plaintext path is where hostile bytes reach the parsers). None may panic,
//! hang or allocate more than the bytes justify; each must return a value or
//! an error. This file uses only `lsmvault`, `serde_json` and `blake3`.

use lsmvault::codec::crypto::{KeyFile, Keys, SealKind};
use lsmvault::format::cluster::ClusterSnapshot;
use lsmvault::format::config::{Binding, Config};
use lsmvault::format::index::decode_index_file;
use lsmvault::format::pack::{
    decode_blob, parse_header, parse_pack, parse_trailer, TRAILER_LENGTH,
};
use lsmvault::format::parity;
use lsmvault::format::snapshot::Snapshot;
use lsmvault::format::topology::Topology;
use lsmvault::format::tree::Tree;
use lsmvault::format::wal_object::WalObject;
use lsmvault::lsm::log::{encode_log, read_log, sequence_ranges};
use lsmvault::lsm::manifest::manifest_last_sequence;
use lsmvault::lsm::write_batch::parse_write_batch;
use lsmvault::repo::lock::parse_lock;
use lsmvault::Id;

/// A harness: feeds one input to one parser (panics only on a bug).
pub type Harness = fn(&[u8]);

/// Every harness by target name (the names of `fuzz/fuzz_targets/*.rs` and of
/// the corpus directories).
pub const TARGETS: &[(&str, Harness)] = &[
    ("pack", pack),
    ("index", index),
    ("tree", tree),
    ("snapshot", snapshot),
    ("config", config),
    ("key_file", key_file),
    ("lock", lock),
    ("wal_object", wal_object),
    ("wal_reader", wal_reader),
    ("manifest", manifest),
    ("parity", parity_object),
    ("topology", topology),
    ("cluster_snapshot", cluster_snapshot),
];

/// A whole pack: trailer, header (entry count and lengths against the pack
/// size), then every blob it lists decoded (and read as a tree when it is
/// one); once as given, once with the header's checksum made to match.
pub fn pack(data: &[u8]) {
    pack_as_given(data);
    let Some(trailer_start) = data.len().checked_sub(TRAILER_LENGTH) else {
        return;
    };
    let Ok(header_length) = parse_trailer("fuzz", &data[trailer_start..]) else {
        return;
    };
    let Some(header_start) = trailer_start.checked_sub(header_length as usize) else {
        return;
    };
    if let Some(header) = with_checksum(&data[header_start..trailer_start], PACK_HEADER_CHECKSUM) {
        pack_as_given(&[&data[..header_start], &header, &data[trailer_start..]].concat());
    }
}

fn pack_as_given(data: &[u8]) {
    let keys = Keys::plaintext();
    let _ = parse_header("fuzz", data, data.len() as u64, &keys);
    let Ok(entries) = parse_pack("fuzz", data, &keys) else {
        return;
    };
    for entry in entries {
        let start = entry.offset as usize;
        let Some(stored) = data.get(start..start.saturating_add(entry.stored_length as usize))
        else {
            continue;
        };
        if let Ok(raw) = decode_blob(&entry, stored, &keys, || "fuzz".to_string()) {
            let _ = Tree::decode(&entry.id, &raw);
        }
    }
}

/// Checksum lengths of the framed objects (`docs/format.md`): BLAKE3 of
/// everything before, cut to this many bytes.
const PACK_HEADER_CHECKSUM: usize = 16;
const INDEX_CHECKSUM: usize = 32;

/// `framed` with its last `length` bytes replaced by the checksum of the
/// rest, so a mutation gets past the checksum to the parser behind it
/// (libFuzzer cannot forge a hash).
fn with_checksum(framed: &[u8], length: usize) -> Option<Vec<u8>> {
    let body = framed.len().checked_sub(length)?;
    let mut fixed = framed[..body].to_vec();
    let checksum = blake3::hash(&fixed);
    fixed.extend_from_slice(&checksum.as_bytes()[..length]);
    Some(fixed)
}

/// An index file (`index/<id>`), as given and with its checksum made to match.
pub fn index(data: &[u8]) {
    let keys = Keys::plaintext();
    let _ = decode_index_file("fuzz", data, &keys);
    if let Some(fixed) = with_checksum(data, INDEX_CHECKSUM) {
        let _ = decode_index_file("fuzz", &fixed, &keys);
    }
}

/// A tree blob's raw bytes.
pub fn tree(data: &[u8]) {
    let _ = Tree::decode(&Id::of(data), data);
}

/// A snapshot file (`snapshots/<id>`), opened as the repository opens it.
pub fn snapshot(data: &[u8]) {
    if let Ok(json) = Keys::plaintext().open(SealKind::Snapshot, data, || "fuzz".to_string()) {
        let _ = Snapshot::decode("fuzz", &json);
    }
}

/// A cluster topology file (TOML, as `cluster topology --check` reads it);
/// a valid one is summarised, and printed as TOML that reads back to it.
pub fn topology(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(topology) = Topology::parse("fuzz", text) {
        let _ = topology.summary();
        let printed = topology.to_toml().expect("a valid topology prints");
        let again = Topology::parse("fuzz", &printed).expect("a printed topology reads back");
        assert_eq!(again, topology);
    }
}

/// A cluster snapshot object (`clusters/<id>`), opened as the repository
/// opens it; a decoded one encodes to bytes that decode again.
pub fn cluster_snapshot(data: &[u8]) {
    let Ok(json) = Keys::plaintext().open(SealKind::ClusterSnapshot, data, || "fuzz".to_string())
    else {
        return;
    };
    if let Ok(snapshot) = ClusterSnapshot::decode("fuzz", &json) {
        let _ = snapshot.complete_groups();
        assert!(ClusterSnapshot::decode("fuzz", &snapshot.encode()).is_ok());
    }
}

/// The `config` object, and what is derived from it at open.
pub fn config(data: &[u8]) {
    if let Ok(config) = Config::decode(data, "fuzz") {
        let _ = config.check_parameters();
        if let Ok(Binding::Bound(expected)) = config.binding("fuzz") {
            let _ = config.verify_authenticator(&[7u8; 32], &expected);
        }
        let _ = config.default_compression();
        let _ = config.cipher("fuzz");
    }
}

/// A parity object (`parity/<id>`): its header alone, and the whole object.
pub fn parity_object(data: &[u8]) {
    let _ = parity::decode_header("fuzz", data);
    let _ = parity::decode("fuzz", data);
}

/// A key file (`keys/<name>`); unwrapped only with cheap argon2 parameters
/// (large accepted ones are slow by design, and bounded by the parser).
pub fn key_file(data: &[u8]) {
    if let Ok(key_file) = serde_json::from_slice::<KeyFile>(data) {
        let params = key_file.kdf_params;
        if params.memory_kib <= 1024 && params.iterations <= 4 && params.parallelism <= 4 {
            let _ = key_file.unwrap_key(b"password", "fuzz");
        }
    }
}

/// A lock object (`locks/<name>`).
pub fn lock(data: &[u8]) {
    if let Ok(Some(info)) = parse_lock("fuzz", data) {
        let _ = info.is_stale("fuzz", std::time::SystemTime::now());
    }
}

/// A `wal/` object (archived segment record or restore point).
pub fn wal_object(data: &[u8]) {
    let _ = WalObject::decode(data, || "fuzz".to_string());
}

/// The WAL log reader and the write batch header parser: the input read as
/// a log, and (as libFuzzer cannot forge the records' CRC32C) the input's
/// lines encoded as a log of valid records, cut at a point the input picks,
/// so whole records, torn tails and write batch payloads are all reached.
pub fn wal_reader(data: &[u8]) {
    wal_reader_as_given(data);
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let records: Vec<Vec<u8>> = rest
        .split(|byte| *byte == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    let recyclable = (selector & 0x40 != 0).then_some(u32::from(selector & 0x3f));
    let mut log = encode_log(&records, recyclable);
    if selector & 0x20 != 0 {
        // Torn: cut at a point the input's last byte picks.
        let cut = rest.last().map_or(0, |byte| usize::from(*byte) * 7) % (log.len() + 1);
        log.truncate(cut);
    } else {
        // Whole: the reader returns exactly what the writer wrote.
        let outcome = read_log(&log, recyclable.map(u64::from));
        assert!(outcome.tail.is_clean());
        let payloads: Vec<&[u8]> = outcome
            .records
            .iter()
            .map(|record| record.payload.as_slice())
            .collect();
        let written: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        assert_eq!(payloads, written);
    }
    let prefix = if recyclable.is_some() {
        0x80 | (selector & 0x3f)
    } else {
        0
    };
    wal_reader_as_given(&[[prefix].as_slice(), &log].concat());
}

/// The WAL log reader and the write batch header parser. Besides "never
/// panics", it checks the reader's documented invariants: records in file
/// order within the input, a tail that starts at or after the last trusted
/// record, and every record end a safe truncation point.
fn wal_reader_as_given(data: &[u8]) {
    // The first byte picks the log number: none, or a small one (so recyclable
    // records can match it).
    let (log_number, bytes) = match data.split_first() {
        Some((&selector, rest)) if selector & 0x80 != 0 => (Some(u64::from(selector & 0x7f)), rest),
        Some((_, rest)) => (None, rest),
        None => (None, data),
    };
    let outcome = read_log(bytes, log_number);
    let length = bytes.len() as u64;
    let mut previous_end = 0;
    for record in &outcome.records {
        assert!(record.start_offset >= previous_end);
        assert!(record.start_offset < record.end_offset);
        assert!(record.end_offset <= length);
        previous_end = record.end_offset;
        let _ = parse_write_batch(&record.payload);
    }
    if let Some(offset) = outcome.tail.offset() {
        assert!(offset >= previous_end && offset < length);
    }
    if let Some(last) = outcome.records.last() {
        let prefix = read_log(&bytes[..last.end_offset as usize], log_number);
        assert!(prefix.tail.is_clean());
        assert_eq!(prefix.records, outcome.records);
    }
    let _ = sequence_ranges(bytes, log_number);
    let _ = parse_write_batch(bytes);
}

/// A RocksDB MANIFEST (read by backup to learn a checkpoint's last sequence).
pub fn manifest(data: &[u8]) {
    let _ = manifest_last_sequence(data);
}
