//! cargo-fuzz target `index`: see `lsmvault_fuzz::index` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run index` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::index(data));
