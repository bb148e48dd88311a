//! cargo-fuzz target `pack`: see `lsmvault_fuzz::pack` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run pack` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::pack(data));
