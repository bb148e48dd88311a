//! cargo-fuzz target `snapshot`: see `lsmvault_fuzz::snapshot` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run snapshot` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::snapshot(data));
