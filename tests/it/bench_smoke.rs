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

/// `benches/parity.sh` on a tiny directory, one run per mode: it must run
/// and report parity bytes only for the parity repository.
#[test]
fn parity_cost_benchmark_runs_end_to_end() {
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("checkpoint");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("000001.sst"), seeded_bytes(9, 3_000_000)).unwrap();
    let Some(stdout) = run_bench_script_with_env(
        "benches/parity.sh",
        &[source.to_str().unwrap()],
        &[("PARITY_RUNS", "1"), ("PARITY_SCHEME", "2+1")],
    ) else {
        return; // skipped: the tools are missing
    };
    assert_contains_all(&stdout, &["| off | 1 |", "| 2+1 | 1 |"]);
    let parity_row = stdout
        .lines()
        .find(|line| line.starts_with("| 2+1 |"))
        .unwrap();
    let parity_mb: f64 = parity_row
        .split('|')
        .nth(6)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(parity_mb > 0.0, "{stdout}");
}
