//! cargo-fuzz target `config`: see `lsmvault_fuzz::config` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run config` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::config(data));
