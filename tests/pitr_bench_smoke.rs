//! The WAL archive / PITR / live checkpoint benchmark (`benches/pitr.sh`) in
//! miniature (2 MiB WAL, 8 MiB database, one run of each step), so it cannot
//! rot. It measures nothing here: it must run, and its checks (every restore
//! and checkpoint opens with `ldb` and holds the keys it should) must pass.

mod common;

use std::process::Command;

use common::*;

#[test]
fn pitr_benchmark_runs_end_to_end() {
    for tool in ["db_bench", "ldb", "/usr/bin/time"] {
        assert!(
            have(tool),
            "{tool} is missing: .ci/run installs rocksdb-tools and time"
        );
    }
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/pitr.sh"))
        .args([
            "--size-mb",
            "8",
            "--wal-mb",
            "2",
            "--growth-kb",
            "256",
            "--repeat",
            "1",
            "--checkpoints",
            "1",
            "--checkpoint-gap",
            "0.5",
            "--no-build",
            "--no-prefault",
        ])
        .env("LSMVAULT_BIN", env!("CARGO_BIN_EXE_lsmvault"))
        .output()
        .expect("running benches/pitr.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "### WAL archive (`lsmvault wal archive`)",
        "| step | run | repository | wall s |",
        "### Point-in-time restore vs plain restore",
        "| restore | run | wall s |",
        "### Live checkpoint under a writer",
        "| run | pause ms |",
        "holds exactly keys 0..",
        "all checks passed",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
