//! cargo-fuzz target `manifest`: see `lsmvault_fuzz::manifest` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run manifest` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::manifest(data));
