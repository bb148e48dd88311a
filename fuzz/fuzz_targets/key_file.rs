//! cargo-fuzz target `key_file`: see `lsmvault_fuzz::key_file` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run key_file` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::key_file(data));
