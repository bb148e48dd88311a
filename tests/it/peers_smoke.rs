//! The peer comparison script in miniature (tiny database, 2 generations,
//! lsmvault only, one dataset), so it cannot rot. It measures nothing here:
//! it must run, and its restores must be identical and open with `ldb`.

use crate::common::*;

#[test]
fn peers_benchmark_runs_end_to_end() {
    let Some(stdout) = run_bench_script(
        "benches/peers/run.sh",
        &[
            "--size-mb",
            "20",
            "--generations",
            "2",
            "--repeat",
            "1",
            "--tools",
            "lsmvault",
            "--datasets",
            "snappy",
            "--no-build",
            "--no-install",
            "--no-ceilings",
            "--no-prefault",
        ],
    ) else {
        return; // skipped: the tools are missing
    };
    assert_contains_all(
        &stdout,
        &[
            "### Dataset: snappy",
            "| lsmvault |",
            "all restores identical and open",
        ],
    );
}
