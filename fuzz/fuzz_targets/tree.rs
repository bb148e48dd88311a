//! cargo-fuzz target `tree`: see `lsmvault_fuzz::tree` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run tree` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::tree(data));
