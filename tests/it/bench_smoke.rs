//! The benchmark script in miniature (tiny database, 2 generations, lsmvault
//! only), so it cannot rot. It measures nothing here: it must run and check
//! its restores.

use crate::common::*;

#[test]
fn generations_benchmark_runs_end_to_end() {
    let Some(stdout) = run_bench_script(
        "benches/generations.sh",
        &[
            "--size-mb",
            "20",
            "--generations",
            "2",
            "--repeat",
            "1",
            "--no-build",
            "--no-ceilings",
            "--no-prefault",
        ],
    ) else {
        return; // skipped: the tools are missing
    };
    assert_contains_all(
        &stdout,
        &[
            "| backup_gen1 ",
            "| backup_gen2 ",
            "backup_gen2_unchanged",
            "verify_read_data",
            "### Targets",
        ],
    );
    assert!(stdout.matches("diff -r identical").count() >= 2, "{stdout}");
}
