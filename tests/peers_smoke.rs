//! The peer comparison script in miniature (tiny database, 2 generations,
//! lsmvault only, one dataset), so it cannot rot. It measures nothing here:
//! it must run, and its restores must be identical and open with `ldb`.

mod common;

use std::process::Command;

use common::*;

#[test]
fn peers_benchmark_runs_end_to_end() {
    for tool in ["db_bench", "ldb", "/usr/bin/time"] {
        assert!(
            have(tool),
            "{tool} is missing: .ci/run installs rocksdb-tools and time"
        );
    }
    let output = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/peers/run.sh"))
        .args([
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
        ])
        .env("LSMVAULT_BIN", binary())
        .output()
        .expect("running benches/peers/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for expected in [
        "### Dataset: snappy",
        "| lsmvault |",
        "all restores identical and open",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}
