//! cargo-fuzz target `topology`: see `lsmvault_fuzz::topology` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run topology` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::topology(data));
