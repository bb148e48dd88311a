//! The WAL archive / PITR / live checkpoint benchmark (`benches/pitr.sh`) in
//! miniature (2 MiB WAL, 8 MiB database, one run of each step), so it cannot
//! rot. It measures nothing here: it must run, and its checks (every restore
//! and checkpoint opens with `ldb` and holds the keys it should) must pass.

use crate::common::*;

#[test]
fn pitr_benchmark_runs_end_to_end() {
    let Some(stdout) = run_bench_script(
        "benches/pitr.sh",
        &[
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
        ],
    ) else {
        return; // skipped: the tools are missing
    };
    assert_contains_all(
        &stdout,
        &[
            "### WAL archive (`lsmvault wal archive`)",
            "| step | run | repository | wall s |",
            "### Point-in-time restore vs plain restore",
            "| restore | run | wall s |",
            "### Live checkpoint under a writer",
            "| run | pause ms |",
            "holds exactly keys 0..",
            "all checks passed",
        ],
    );
}
