//! The benchmark script in miniature (tiny database, 2 generations, lsmvault
//! only), so it cannot rot. It measures nothing here: it must run and check
//! its restores.

mod common;

use std::process::Command;

use common::*;

#[test]
fn generations_benchmark_runs_end_to_end() {
    for tool in ["db_bench", "ldb", "/usr/bin/time"] {
        assert!(
            have(tool),
            "{tool} is missing: .ci/run installs rocksdb-tools and time"
        );
    }
    let output = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/generations.sh"
        ))
        .args([
            "--size-mb",
            "20",
            "--generations",
            "2",
            "--repeat",
            "1",
            "--no-build",
            "--no-ceilings",
            "--no-prefault",
        ])
        .env("LSMVAULT_BIN", binary())
        .output()
        .expect("running benches/generations.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "| backup_gen1 ",
        "| backup_gen2 ",
        "backup_gen2_unchanged",
        "verify_read_data",
        "### Targets",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(stdout.matches("diff -r identical").count() >= 2, "{stdout}");
}
