//! cargo-fuzz target `wal_reader`: see `lsmvault_fuzz::wal_reader` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run wal_reader` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::wal_reader(data));
