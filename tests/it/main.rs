//! The integration tests: one binary (linked once), one module per area.
//! Tests that need real RocksDB tools (`db_bench`, `ldb`, `sst_dump`, and
//! `/usr/bin/time` for the benchmark scripts) say so and skip when they are
//! missing, unless `LSMVAULT_REQUIRE_TOOLS=1` (`common::tools_available`).

mod common;

mod backend;
mod bench_smoke;
mod cache_safety;
mod checkpoint_filesystems;
mod cli;
mod cluster;
mod cluster_backup;
mod compression;
mod concurrency;
mod config_auth;
mod copy;
mod corruption_matrix;
mod crash;
mod damage;
mod encryption;
mod find_dump_cat;
mod forget_selection;
mod fuzz_corpus;
mod hostile_bytes;
mod identity;
mod kill_loops;
mod layers;
mod lean_cache;
mod lean_locks;
mod library;
mod live_safety;
mod metadata_cache;
mod papercuts;
mod parity;
mod parity_maintenance;
mod paused_vm;
mod peers_smoke;
mod pitr;
mod pitr_bench_smoke;
mod prune;
mod reliability_bounds;
mod reliability_containment;
mod reliability_heal;
mod reliability_repair;
mod reliability_repair_snapshots;
mod resource_faults;
mod restic_habits;
mod restore_dry_run;
mod restore_durability;
mod restore_points;
mod rocksdb;
mod rocksdb_wal;
mod s3_backend;
mod s3_cli;
mod s3_restore;
mod s3_uploads;
mod stats_completions;
mod throttle;
mod wal_pickup;
mod wal_pickup_sharing;
mod wal_retention;
mod wal_retention_rocksdb;
