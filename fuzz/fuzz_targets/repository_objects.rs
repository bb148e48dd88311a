//! Fuzzes every parser of repository objects a damaged or hostile repository
//! can feed lsmvault: pack trailers and headers (plain and sealed), index
//! files, parity objects, tree blobs, snapshot files, key files, MANIFEST version edits, the
//! config, lock objects and WAL objects (segment records, restore points).
//! None may panic; each must return an error for bytes it cannot trust.
//!
//! Run with `cargo +nightly fuzz run repository_objects` from the repository root.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lsmvault::codec::crypto::{KeyFile, Keys};
use lsmvault::format::config::{Binding, Config};
use lsmvault::format::index::decode_index_file;
use lsmvault::format::pack::{parse_header, parse_pack, parse_trailer};
use lsmvault::format::parity;
use lsmvault::format::snapshot::Snapshot;
use lsmvault::format::tree::Tree;
use lsmvault::format::wal_object::WalObject;
use lsmvault::lsm::manifest::manifest_last_sequence;
use lsmvault::repo::lock::LockInfo;
use lsmvault::Id;

fuzz_target!(|data: &[u8]| {
    let plaintext = Keys::plaintext();
    let _ = parse_pack("fuzz", data, &plaintext);
    if data.len() >= 12 {
        let _ = parse_trailer("fuzz", &data[data.len() - 12..]);
    }
    let _ = parse_header("fuzz", data, data.len() as u64, &plaintext);
    let _ = decode_index_file("fuzz", data, &plaintext);
    let _ = parity::decode_header("fuzz", data);
    let _ = parity::decode("fuzz", data);
    let _ = Tree::decode(&Id::of(data), data);
    let _ = Snapshot::decode("fuzz", data);
    if let Ok(key_file) = serde_json::from_slice::<KeyFile>(data) {
        // Large (but accepted) argon2 parameters are slow by design.
        if key_file.kdf_params.memory_kib <= 1024 && key_file.kdf_params.iterations <= 4 {
            let _ = key_file.unwrap_key(b"password", "fuzz");
        }
    }
    let _ = manifest_last_sequence(data);
    if let Ok(config) = Config::decode(data, "fuzz") {
        let _ = config.binding("fuzz");
        let _ = config.check_parameters();
        if let Ok(Binding::Bound(expected)) = config.binding("fuzz") {
            let _ = config.verify_authenticator(&[7u8; 32], &expected);
        }
        let _ = config.default_compression();
        let _ = config.cipher("fuzz");
    }
    let _ = serde_json::from_slice::<LockInfo>(data);
    let _ = WalObject::decode(data, || "fuzz".to_string());
});
