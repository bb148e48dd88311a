//! Helpers shared by the integration tests: run the CLI, build trees, compare trees.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod failing_proxy;
pub mod kill_loop;
pub mod s3;

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
    assert_success(&lsmvault(repo, args), &format!("lsmvault {args:?}"))
}

/// Panics with the exit code, stdout and stderr unless `output` is a
/// success; returns its stdout.
pub fn assert_success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a command wrote to stderr, as text.
pub fn stderr_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The paths (files and directories) `ls --json` lists for `snapshot`.
pub fn listed_paths(repo: &Path, snapshot: &str) -> Vec<String> {
    lsmvault_json(repo, &["ls", snapshot])
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["path"].as_str().unwrap().to_string())
        .collect()
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

/// Copies a tree with `cp -a` (modes, mtimes and hard links kept), so the copy
/// compares equal under [`assert_same_tree`].
pub fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Whether a command exists: a path to an executable file, or a name found in an
/// executable file of a `PATH` directory (as `command -v` finds it).
pub fn have(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let is_executable = |path: &Path| {
        fs::metadata(path)
            .is_ok_and(|metadata| metadata.is_file() && metadata.permissions().mode() & 0o111 != 0)
    };
    if tool.contains('/') {
        return is_executable(Path::new(tool));
    }
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|directory| is_executable(&directory.join(tool)))
    })
}

/// The environment variable that turns a missing tool from a skipped test into a
/// failed one: `.ci/run` sets it to 1, where the tools are installed and a skip
/// would hide a test that never ran.
pub const REQUIRE_TOOLS_VARIABLE: &str = "LSMVAULT_REQUIRE_TOOLS";

/// The Debian package that provides a tool.
fn package_of(tool: &str) -> &str {
    match tool {
        "db_bench" | "ldb" | "sst_dump" => "rocksdb-tools",
        "/usr/bin/time" => "time",
        "script" | "setpriv" => "util-linux",
        other => other,
    }
}

/// Whether every one of `tools` (names on `PATH`, or absolute paths) is installed,
/// for a test that runs real RocksDB tools. Such a test starts with
/// `if !tools_available(&[...]) { return; }`.
///
/// When one is missing (a developer's laptop without rocksdb-tools) this prints
/// `skipped: <test> needs db_bench (apt-get install rocksdb-tools)` to stderr and
/// returns false; with [`REQUIRE_TOOLS_VARIABLE`] set to anything but empty or `0`
/// (CI) it panics with that message instead.
pub fn tools_available(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|tool| !have(tool)).collect();
    if missing.is_empty() {
        return true;
    }
    let mut packages: Vec<&str> = missing.iter().map(|tool| package_of(tool)).collect();
    packages.sort_unstable();
    packages.dedup();
    skip_unless_required(&format!(
        "needs {} (apt-get install {})",
        missing.join(", "),
        packages.join(" ")
    ));
    false
}

/// Says that this test is skipped and why (`reason`, e.g. "needs db_bench"),
/// on stderr; with [`REQUIRE_TOOLS_VARIABLE`] set (CI) it panics instead, so a
/// test that cannot run there fails rather than passing unseen.
pub fn skip_unless_required(reason: &str) {
    // libtest names each test's thread after the test (unless it runs them on the
    // main thread, with --test-threads=1).
    let thread = std::thread::current();
    let test = thread
        .name()
        .filter(|name| *name != "main")
        .unwrap_or("this test");
    let message = format!("{test} {reason}");
    let required =
        std::env::var(REQUIRE_TOOLS_VARIABLE).is_ok_and(|value| !value.is_empty() && value != "0");
    if required {
        panic!("{message}; {REQUIRE_TOOLS_VARIABLE} is set, so it must not be skipped");
    }
    // Written to stderr itself, not with eprintln!, which the test harness captures
    // and shows only for failed tests: a skip must be seen.
    let _ = writeln!(std::io::stderr(), "skipped: {message}");
}

/// The top of the source tree (the workspace root, two levels above the CLI crate).
pub fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a benchmark script (path relative to the source root) in its smoke mode
/// with this build's binary, and returns its stdout (the Markdown report), or
/// `None` when the tools the scripts need are missing and the test is skipped (see
/// [`tools_available`]); panics with its output unless it succeeds. The assertions
/// on the report are each smoke test's own.
pub fn run_bench_script(script: &str, arguments: &[&str]) -> Option<String> {
    run_bench_script_with_env(script, arguments, &[])
}

/// [`run_bench_script`] with extra environment variables for the script.
pub fn run_bench_script_with_env(
    script: &str,
    arguments: &[&str],
    environment: &[(&str, &str)],
) -> Option<String> {
    if !tools_available(&["db_bench", "ldb", "/usr/bin/time", "python3"]) {
        return None;
    }
    let output = Command::new("bash")
        .arg(source_root().join(script))
        .args(arguments)
        .env("LSMVAULT_BIN", binary())
        .envs(environment.iter().copied())
        .output()
        .unwrap_or_else(|error| panic!("running {script}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(stdout)
}

/// Panics unless `report` contains every one of `expected`.
pub fn assert_contains_all(report: &str, expected: &[&str]) {
    for text in expected {
        assert!(report.contains(text), "missing {text:?} in:\n{report}");
    }
}

/// A plaintext repository with one snapshot (backed up through the CLI) of a
/// source directory; the temporary directory lives as long as the fixture.
pub struct Fixture {
    pub _work: tempfile::TempDir,
    /// The temporary directory holding `repo` and `source`.
    pub root: PathBuf,
    pub repo: PathBuf,
    pub source: PathBuf,
}

/// A repository with one snapshot of three 1.5 MB files in 1 MiB packs, so
/// each file's data sits in its own packs and damage to one pack hits one file.
pub fn three_pack_fixture() -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().to_path_buf();
    let repo = root.join("repo");
    let source = root.join("db");
    fs::create_dir(&source).unwrap();
    for (index, name) in ["000001.sst", "000002.sst", "000003.sst"]
        .iter()
        .enumerate()
    {
        fs::write(source.join(name), seeded_bytes(index as u64 + 1, 1_500_000)).unwrap();
    }
    lsmvault::Repository::init_local(
        &repo,
        lsmvault::InitOptions {
            pack_size: 1024 * 1024,
            ..lsmvault::InitOptions::default()
        },
    )
    .unwrap();
    // One reading thread: files read in parallel interleave their chunks in
    // the shared packs, and a pack holding pieces of all three files (seen
    // once in CI) breaks the "damage to one pack hits one file" premise.
    let output = Command::new(binary())
        .arg("--repo")
        .arg(&repo)
        .args(["backup", source.to_str().unwrap()])
        .env_remove("LSMVAULT_REPOSITORY")
        .env("RAYON_NUM_THREADS", "1")
        .output()
        .unwrap();
    assert_success(&output, "the fixture's backup");
    Fixture {
        _work: work,
        root,
        repo,
        source,
    }
}

/// The pack and offset of the first chunk of `file` in the latest snapshot.
pub fn chunk_of(repo: &Path, file: &str) -> (PathBuf, usize) {
    let repository = lsmvault::Repository::open_local(repo).unwrap();
    let snapshot = repository.find_snapshot("latest").unwrap();
    let tree = repository.read_tree(&snapshot.snapshot.tree).unwrap();
    let entry = tree
        .entries
        .iter()
        .find(|entry| entry.name == file.as_bytes())
        .unwrap();
    let lsmvault::format::tree::EntryKind::File { chunks, .. } = &entry.kind else {
        panic!("not a file")
    };
    let location = *repository.index().unwrap().get(&chunks[0]).unwrap();
    let pack = location.pack.to_hex();
    (
        repo.join("data").join(&pack[..2]).join(pack),
        location.entry.offset as usize,
    )
}

/// `lsmvault --repo REPO ARGS...` with `password` (or none) in
/// `LSMVAULT_PASSWORD` and no other repository or password source from the
/// environment, to run, spawn or adjust further.
pub fn lsmvault_command(repo: &Path, password: Option<&str>, args: &[&str]) -> Command {
    let mut command = Command::new(binary());
    command
        .arg("--repo")
        .arg(repo)
        .args(args)
        .env_remove("LSMVAULT_REPOSITORY")
        .env_remove("LSMVAULT_PASSWORD_FILE")
        .env_remove("LSMVAULT_PASSWORD_COMMAND")
        .env_remove("LSMVAULT_NEW_PASSWORD")
        .env_remove("LSMVAULT_NEW_PASSWORD_FILE");
    match password {
        Some(password) => command.env("LSMVAULT_PASSWORD", password),
        None => command.env_remove("LSMVAULT_PASSWORD"),
    };
    command
}

/// Runs `lsmvault --repo REPO ARGS...` with `password` (or none) in
/// `LSMVAULT_PASSWORD`, and no other password source in the environment.
pub fn lsmvault_with_password(repo: &Path, password: Option<&str>, args: &[&str]) -> Output {
    lsmvault_command(repo, password, args)
        .output()
        .expect("running lsmvault")
}

/// Every file under `root`, relative to it.
pub fn files_under(root: &Path) -> std::collections::BTreeSet<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .map(|entry| entry.expect("walking"))
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.path().strip_prefix(root).unwrap().to_path_buf())
        .collect()
}

/// The number of rounds of a long loop: the value of the environment
/// variable `variable` (long runs), else `default` (the CI size).
pub fn iterations_from_env(variable: &str, default: u64) -> u64 {
    std::env::var(variable)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// The ids of a plaintext repository's snapshots, oldest first.
pub fn snapshot_ids(repo: &Path) -> Vec<String> {
    listed_ids(&lsmvault_json(repo, &["snapshots"]))
}

/// The `id` of every entry of a JSON listing (`snapshots --json`, `forget
/// --json`'s lists...), in its order.
pub fn listed_ids(listing: &serde_json::Value) -> Vec<String> {
    listing
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["id"].as_str().unwrap().to_string())
        .collect()
}

/// Runs a tool (a RocksDB tool, mostly) and returns its stdout; panics with
/// the command and its output unless it succeeds.
pub fn run_tool(command: &mut Command) -> String {
    let output = command.output().expect("starting a rocksdb tool");
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Writes `count` files of `size` bytes into `directory` (created), named
/// `small-00000`..., each with its own content (seeded by `seed` and its
/// number), so none deduplicates against another.
pub fn write_small_files(directory: &Path, count: usize, size: usize, seed: u64) {
    fs::create_dir_all(directory).unwrap();
    for number in 0..count {
        fs::write(
            directory.join(format!("small-{number:05}")),
            seeded_bytes(seed * 1_000_003 + number as u64 + 1, size),
        )
        .unwrap();
    }
}
