//! cargo-fuzz target `wal_object`: see `lsmvault_fuzz::wal_object` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run wal_object` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::wal_object(data));
