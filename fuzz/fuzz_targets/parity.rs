//! cargo-fuzz target `parity`: see `lsmvault_fuzz::parity_object` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run parity` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::parity_object(data));
