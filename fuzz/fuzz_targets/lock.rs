//! cargo-fuzz target `lock`: see `lsmvault_fuzz::lock` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run lock` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::lock(data));
