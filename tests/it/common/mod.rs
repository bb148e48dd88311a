//! Helpers shared by the integration tests: run the CLI, build trees, compare trees.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `lsmvault` binary built for these tests.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lsmvault"))
}

/// Runs `lsmvault --repo REPO ARGS...` and returns its output.
pub fn lsmvault(repo: &Path, args: &[&str]) -> Output {
    Command::new(binary())
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("LSMVAULT_REPOSITORY")
        .output()
        .expect("running lsmvault")
}

/// Like [`lsmvault`] but panics with stdout/stderr unless the exit code is 0.
pub fn lsmvault_ok(repo: &Path, args: &[&str]) -> String {
    let output = lsmvault(repo, args);
    assert!(
        output.status.success(),
        "lsmvault {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs with `--json` and parses stdout.
pub fn lsmvault_json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let text = lsmvault_ok(repo, &all);
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{error}: {text}"))
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn seeded_bytes(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.max(1);
    let mut out = Vec::with_capacity(length + 8);
    while out.len() < length {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(length);
    out
}

/// What a tree looks like, for comparisons: per relative path, a description
/// of type, permission bits, mtime (files and symlinks), and content digest or
/// link target; hard links are described by the first path of their inode.
pub fn describe_tree(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), String> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(root).min_depth(1).sort_by_file_name() {
        let entry = entry.expect("walking");
        let relative = entry
            .path()
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let stat = fs::symlink_metadata(entry.path()).unwrap();
        let description = if stat.file_type().is_symlink() {
            format!(
                "symlink -> {} mtime {}",
                fs::read_link(entry.path()).unwrap().display(),
                stat.mtime()
            )
        } else if stat.is_dir() {
            format!("dir {:o} mtime {}", stat.mode() & 0o7777, stat.mtime())
        } else {
            let link = if stat.nlink() > 1 {
                let first = inodes
                    .entry((stat.dev(), stat.ino()))
                    .or_insert_with(|| relative.clone());
                format!(" linked-with {first}")
            } else {
                String::new()
            };
            format!(
                "file {:o} mtime {}.{:09} size {} blake3 {}{}",
                stat.mode() & 0o7777,
                stat.mtime(),
                stat.mtime_nsec(),
                stat.len(),
                blake3::hash(&fs::read(entry.path()).unwrap()).to_hex(),
                link
            )
        };
        out.insert(relative, description);
    }
    out
}

/// Asserts two trees are identical per [`describe_tree`], showing the first difference.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let expected_tree = describe_tree(expected);
    let actual_tree = describe_tree(actual);
    for (path, description) in &expected_tree {
        assert_eq!(
            Some(description),
            actual_tree.get(path),
            "{path} differs between {} and {}",
            expected.display(),
            actual.display()
        );
    }
    assert_eq!(
        expected_tree.len(),
        actual_tree.len(),
        "extra entries in {}",
        actual.display()
    );
}

/// Whether a command exists on PATH.
pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|output| output.status.success())
        .unwrap_or(false)
}

/// The top of the source tree (the workspace root, two levels above the CLI crate).
pub fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a benchmark script (path relative to the source root) in its smoke mode
/// with this build's binary, and returns its stdout (the Markdown report);
/// panics with its output unless it succeeds. The assertions on the report
/// are each smoke test's own.
pub fn run_bench_script(script: &str, arguments: &[&str]) -> String {
    for tool in ["db_bench", "ldb", "/usr/bin/time"] {
        assert!(
            have(tool),
            "{tool} is missing: .ci/run installs rocksdb-tools and time"
        );
    }
    let output = Command::new("bash")
        .arg(source_root().join(script))
        .args(arguments)
        .env("LSMVAULT_BIN", binary())
        .output()
        .unwrap_or_else(|error| panic!("running {script}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Panics unless `report` contains every one of `expected`.
pub fn assert_contains_all(report: &str, expected: &[&str]) {
    for text in expected {
        assert!(report.contains(text), "missing {text:?} in:\n{report}");
    }
}
