//! cargo-fuzz target `cluster_snapshot`: see `lsmvault_fuzz::cluster_snapshot` (fuzz/src/lib.rs).
//! Run: `nice -n 19 cargo +nightly fuzz run cluster_snapshot` from the repository root.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lsmvault_fuzz::cluster_snapshot(data));
