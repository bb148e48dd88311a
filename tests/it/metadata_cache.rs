//! The local metadata cache (`--cache-dir`, `--no-cache`) on a local
//! repository, with the backend's requests counted
//! (`LSMVAULT_REQUEST_STATS=1`): what a warm cache spares, that nothing in
//! it is trusted (bit flips, deletion mid-use, a poisoned cache under
//! verify, kills), and that entries of objects deleted elsewhere are
//! dropped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::kill_loop::{kill_iterations, time_ok, KillLoop, Run};
use crate::common::{assert_success, lsmvault_command, lsmvault_ok, seeded_bytes, snapshot_ids};

/// A repository with a source tree, and a cache directory beside them.
struct Setup {
    _directory: tempfile::TempDir,
    repo: PathBuf,
    source: PathBuf,
    cache: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let directory = tempfile::tempdir().unwrap();
        let repo = directory.path().join("repo");
        let source = directory.path().join("source");
        let cache = directory.path().join("cache");
        fs::create_dir_all(source.join("sub/deeper")).unwrap();
        for (index, name) in ["a.sst", "sub/b.sst", "sub/deeper/c.log"]
            .iter()
            .enumerate()
        {
            fs::write(source.join(name), seeded_bytes(index as u64 + 1, 200_000)).unwrap();
        }
        lsmvault_ok(&repo, &["init", "--no-encryption"]);
        Setup {
            _directory: directory,
            repo,
            source,
            cache,
        }
    }

    /// Runs a command with the cache in `cache`, counting requests.
    fn run_with(&self, cache: &Path, args: &[&str]) -> (String, Counts) {
        let mut all = vec!["--cache-dir", cache.to_str().unwrap()];
        all.extend_from_slice(args);
        run_counted(&self.repo, None, &all)
    }

    fn run(&self, args: &[&str]) -> (String, Counts) {
        self.run_with(&self.cache, args)
    }

    fn backup(&self) -> Counts {
        self.run(&["backup", "-q", self.source.to_str().unwrap()]).1
    }
}

/// The request counts a command printed (`{"request_stats": ...}`).
pub(crate) struct Counts(pub(crate) serde_json::Value);

impl Counts {
    /// Requests of `method` on objects under `kind` (a directory name or
    /// `config`).
    pub(crate) fn of(&self, kind: &str, method: &str) -> u64 {
        self.0["by_kind"][kind][method].as_u64().unwrap_or(0)
    }

    /// Every read (whole or ranged) of objects under `kind`.
    pub(crate) fn reads(&self, kind: &str) -> u64 {
        self.of(kind, "read") + self.of(kind, "read_range")
    }

    pub(crate) fn total(&self) -> u64 {
        self.0["requests"].as_u64().unwrap()
    }
}

impl std::fmt::Debug for Counts {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{}", self.0)
    }
}

pub(crate) fn counts_of(output: &Output) -> Counts {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = stderr
        .lines()
        .rev()
        .find(|line| line.starts_with("{\"request_stats\""))
        .unwrap_or_else(|| panic!("no request stats in stderr:\n{stderr}"));
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    Counts(value["request_stats"].clone())
}

fn run_counted(repo: &Path, password: Option<&str>, args: &[&str]) -> (String, Counts) {
    let output = lsmvault_command(repo, password, args)
        .env("LSMVAULT_REQUEST_STATS", "1")
        .env_remove("LSMVAULT_CACHE_DIR")
        .output()
        .unwrap();
    let stdout = assert_success(&output, &format!("lsmvault {args:?}"));
    (stdout, counts_of(&output))
}

/// Every regular file under `root` (no temporaries).
fn entries(root: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.into_path())
        .collect()
}

fn entries_of(cache: &Path, space: &str) -> Vec<PathBuf> {
    entries(cache)
        .into_iter()
        .filter(|path| path.components().any(|part| part.as_os_str() == space))
        .collect()
}

fn flip_last_byte(path: &Path) {
    let mut bytes = fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

fn change_source(setup: &Setup) {
    fs::write(setup.source.join("sub/new.sst"), seeded_bytes(99, 50_000)).unwrap();
}

#[test]
fn a_second_snapshots_reads_no_snapshot_file_from_the_backend() {
    let setup = Setup::new();
    lsmvault_ok(
        &setup.repo,
        &["backup", "-q", setup.source.to_str().unwrap()],
    );
    change_source(&setup);
    lsmvault_ok(
        &setup.repo,
        &["backup", "-q", setup.source.to_str().unwrap()],
    );
    let (cold_listing, cold) = setup.run(&["--json", "snapshots"]);
    assert_eq!(cold.of("snapshots", "read"), 2, "{cold:?}");
    let (warm_listing, warm) = setup.run(&["--json", "snapshots"]);
    assert_eq!(warm_listing, cold_listing);
    assert_eq!(warm.of("snapshots", "read"), 0, "{warm:?}");
    assert_eq!(
        warm.of("snapshots", "list"),
        1,
        "listing still asks the backend"
    );
    assert!(warm.total() <= 5, "warm `snapshots` made {warm:?}");
    // Without a cache (the default for a local repository) every file is read.
    let (_, uncached) = run_counted(&setup.repo, None, &["--json", "snapshots"]);
    assert_eq!(uncached.of("snapshots", "read"), 2, "{uncached:?}");
    assert!(!entries(&setup.cache).is_empty());
}

#[test]
fn ls_diff_and_stats_of_cached_snapshots_read_no_tree_from_the_backend() {
    let setup = Setup::new();
    // Backups through the cache write their trees through to it.
    setup.backup();
    change_source(&setup);
    setup.backup();
    let ids = snapshot_ids(&setup.repo);
    let expected_ls = lsmvault_ok(&setup.repo, &["--no-cache", "ls", &ids[1]]);
    let expected_diff = lsmvault_ok(&setup.repo, &["--no-cache", "diff", &ids[0], &ids[1]]);
    let (listing, counts) = setup.run(&["ls", &ids[1]]);
    assert_eq!(listing, expected_ls);
    assert_eq!(counts.reads("data"), 0, "ls read packs: {counts:?}");
    assert_eq!(counts.reads("index"), 0, "ls read index files: {counts:?}");
    let (difference, counts) = setup.run(&["diff", &ids[0], &ids[1]]);
    assert_eq!(difference, expected_diff);
    assert_eq!(counts.reads("data"), 0, "diff read packs: {counts:?}");
    let expected_stats = lsmvault_ok(&setup.repo, &["--no-cache", "--json", "stats"]);
    let (stats, counts) = setup.run(&["--json", "stats"]);
    assert_eq!(stats, expected_stats);
    let metadata = ["data", "index", "snapshots"];
    assert_eq!(
        metadata.map(|kind| counts.reads(kind)),
        [0; 3],
        "stats: {counts:?}"
    );
    // A fresh cache fills on the first ls, and serves the second.
    let other = setup.cache.with_extension("other");
    let (_, cold) = setup.run_with(&other, &["ls", &ids[0]]);
    assert!(cold.reads("data") > 0, "{cold:?}");
    let (listing, warm) = setup.run_with(&other, &["ls", &ids[0]]);
    assert_eq!(warm.reads("data"), 0, "{warm:?}");
    assert_eq!(listing, lsmvault_ok(&setup.repo, &["ls", &ids[0]]));
}

#[test]
fn an_unchanged_backup_downloads_no_index_file_or_tree_it_has() {
    let setup = Setup::new();
    setup.backup();
    let unchanged = setup.backup();
    assert_eq!(unchanged.reads("index"), 0, "{unchanged:?}");
    assert_eq!(unchanged.reads("data"), 0, "{unchanged:?}");
    assert_eq!(unchanged.reads("snapshots"), 0, "{unchanged:?}");
    assert_eq!(unchanged.of("data", "write_if_absent"), 0, "{unchanged:?}");
    // A changed file: its new blobs are written, still nothing read.
    change_source(&setup);
    let changed = setup.backup();
    assert_eq!(
        changed.reads("data") + changed.reads("index"),
        0,
        "{changed:?}"
    );
    assert_eq!(snapshot_ids(&setup.repo).len(), 3);
    lsmvault_ok(&setup.repo, &["verify", "--read-data"]);
}

#[test]
fn bit_flipped_cache_entries_are_detected_and_fetched_again() {
    let setup = Setup::new();
    setup.backup();
    change_source(&setup);
    setup.backup();
    let ids = snapshot_ids(&setup.repo);
    let expected_snapshots = lsmvault_ok(&setup.repo, &["--json", "snapshots"]);
    let expected_ls = lsmvault_ok(&setup.repo, &["ls", &ids[1]]);
    setup.run(&["ls", &ids[0]]);
    let cached = entries(&setup.cache);
    for space in ["snapshots", "index", "trees"] {
        assert!(
            !entries_of(&setup.cache, space).is_empty(),
            "no {space} cached"
        );
    }
    for entry in &cached {
        flip_last_byte(entry);
    }
    let (listing, counts) = setup.run(&["--json", "snapshots"]);
    assert_eq!(listing, expected_snapshots);
    assert_eq!(counts.of("snapshots", "read"), 2, "{counts:?}");
    let (listing, counts) = setup.run(&["ls", &ids[1]]);
    assert_eq!(listing, expected_ls);
    assert!(
        counts.reads("index") > 0 && counts.reads("data") > 0,
        "{counts:?}"
    );
    // Fetched entries replaced the damaged ones: the next run reads nothing.
    let (listing, counts) = setup.run(&["ls", &ids[1]]);
    assert_eq!(listing, expected_ls);
    assert_eq!(
        counts.reads("index") + counts.reads("data"),
        0,
        "{counts:?}"
    );
}

#[test]
fn a_cache_entry_swapped_for_another_intact_one_is_not_served() {
    let setup = Setup::new();
    setup.backup();
    change_source(&setup);
    setup.backup();
    let expected = lsmvault_ok(&setup.repo, &["--json", "snapshots"]);
    setup.run(&["snapshots"]);
    let snapshots = entries_of(&setup.cache, "snapshots");
    assert_eq!(snapshots.len(), 2);
    // Each entry is intact (its hash header matches), under the other's name.
    let first = fs::read(&snapshots[0]).unwrap();
    fs::copy(&snapshots[1], &snapshots[0]).unwrap();
    fs::write(&snapshots[1], first).unwrap();
    let (listing, counts) = setup.run(&["--json", "snapshots"]);
    assert_eq!(listing, expected);
    assert_eq!(counts.of("snapshots", "read"), 2, "{counts:?}");
}

#[test]
fn deleting_the_cache_directory_mid_use_is_harmless() {
    let setup = Setup::new();
    for index in 0..40 {
        let name = format!("sub/many-{index}.sst");
        fs::write(setup.source.join(name), seeded_bytes(1000 + index, 30_000)).unwrap();
    }
    setup.backup();
    let ids = snapshot_ids(&setup.repo);
    let expected = lsmvault_ok(&setup.repo, &["ls", &ids[0]]);
    // Delete the cache over and over while commands fill it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let deleter = {
        let (cache, stop) = (setup.cache.clone(), std::sync::Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = fs::remove_dir_all(&cache);
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    for _ in 0..3 {
        assert_eq!(setup.run(&["ls", &ids[0]]).0, expected);
        change_source(&setup);
        setup.backup();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    deleter.join().unwrap();
    assert_eq!(setup.run(&["ls", &ids[0]]).0, expected);
    lsmvault_ok(&setup.repo, &["verify"]);
}

#[test]
fn processes_sharing_one_cache_directory_agree() {
    let setup = Setup::new();
    setup.backup();
    change_source(&setup);
    setup.backup();
    let ids = snapshot_ids(&setup.repo);
    let expected_ls = lsmvault_ok(&setup.repo, &["ls", &ids[1]]);
    let expected_snapshots = lsmvault_ok(&setup.repo, &["snapshots"]);
    let cache = setup.cache.to_str().unwrap();
    // Cold, so that every process fills the same entries at once.
    fs::remove_dir_all(&setup.cache).unwrap();
    let children: Vec<_> = (0..6)
        .map(|index| {
            let args: Vec<&str> = if index % 2 == 0 {
                vec!["--cache-dir", cache, "ls", &ids[1]]
            } else {
                vec!["--cache-dir", cache, "snapshots"]
            };
            let child = lsmvault_command(&setup.repo, None, &args)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (index, child)
        })
        .collect();
    for (index, child) in children {
        let output = child.wait_with_output().unwrap();
        let stdout = assert_success(&output, "a process sharing the cache");
        let expected = if index % 2 == 0 {
            &expected_ls
        } else {
            &expected_snapshots
        };
        assert_eq!(&stdout, expected);
    }
    let (_, counts) = setup.run(&["ls", &ids[1]]);
    assert_eq!(
        counts.reads("data") + counts.reads("index"),
        0,
        "{counts:?}"
    );
    assert!(
        entries(&setup.cache).iter().all(|path| !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".tmp-")),
        "temporary files left behind"
    );
}

#[test]
fn verify_with_a_poisoned_cache_reads_and_checks_the_backend() {
    let setup = Setup::new();
    setup.backup();
    let ids = snapshot_ids(&setup.repo);
    setup.run(&["ls", &ids[0]]);
    // The backend's snapshot file is damaged; the cache holds it intact.
    let snapshot = setup.repo.join("snapshots").join(&ids[0]);
    flip_last_byte(&snapshot);
    let mut args = vec!["--cache-dir", setup.cache.to_str().unwrap(), "verify"];
    let output = lsmvault_command(&setup.repo, None, &args)
        .env("LSMVAULT_REQUEST_STATS", "1")
        .output()
        .unwrap();
    assert!(!output.status.success(), "verify trusted the cache");
    let counts = counts_of(&output);
    assert_eq!(counts.of("snapshots", "read"), 1, "{counts:?}");
    // Restored, verify --read-data reads every pack and index file from the
    // backend even though the cache has them.
    flip_last_byte(&snapshot);
    args.push("--read-data");
    let (_, counts) = run_counted(&setup.repo, None, &args);
    assert!(
        counts.reads("index") > 0 && counts.reads("data") > 0,
        "{counts:?}"
    );
}

#[test]
fn forget_prune_elsewhere_drops_stale_cache_entries() {
    let setup = Setup::new();
    setup.backup();
    fs::remove_file(setup.source.join("sub/deeper/c.log")).unwrap();
    change_source(&setup);
    setup.backup();
    let ids = snapshot_ids(&setup.repo);
    setup.run(&["ls", &ids[0]]);
    let trees_before = entries_of(&setup.cache, "trees").len();
    // Another host (its own cache) forgets the first snapshot and prunes.
    let elsewhere = setup.cache.with_extension("elsewhere");
    setup.run_with(&elsewhere, &["forget", &ids[0], "--prune"]);
    let (listing, _) = setup.run(&["--json", "snapshots"]);
    let listed: serde_json::Value = serde_json::from_str(&listing).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["id"], ids[1].as_str());
    assert_eq!(entries_of(&setup.cache, "snapshots").len(), 1);
    let expected = lsmvault_ok(&setup.repo, &["--no-cache", "ls", &ids[1]]);
    assert_eq!(setup.run(&["ls", &ids[1]]).0, expected);
    // The index files left are exactly those of the backend.
    let backend_index: Vec<_> = fs::read_dir(setup.repo.join("index"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    let cached_index = entries_of(&setup.cache, "index");
    assert_eq!(cached_index.len(), backend_index.len());
    assert!(cached_index
        .iter()
        .all(|path| backend_index.contains(&path.file_name().unwrap().to_owned())));
    // The trees of the forgotten snapshot alone were dropped with the index.
    assert!(entries_of(&setup.cache, "trees").len() < trees_before);
    let output = lsmvault_command(
        &setup.repo,
        None,
        &["--cache-dir", setup.cache.to_str().unwrap(), "ls", &ids[0]],
    )
    .output()
    .unwrap();
    assert!(
        !output.status.success(),
        "a forgotten snapshot was listed from the cache"
    );
}

#[test]
fn a_cache_that_cannot_be_written_is_no_cache_and_no_error() {
    let setup = Setup::new();
    setup.backup();
    let ids = snapshot_ids(&setup.repo);
    let expected = lsmvault_ok(&setup.repo, &["ls", &ids[0]]);
    // The cache directory is under a regular file: it can never be made.
    let blocked = setup.cache.join("file");
    fs::create_dir_all(&setup.cache).unwrap();
    fs::write(&blocked, b"not a directory").unwrap();
    let below = blocked.join("cache");
    assert_eq!(setup.run_with(&below, &["ls", &ids[0]]).0, expected);
    setup.run_with(&below, &["backup", "-q", setup.source.to_str().unwrap()]);
    // Its spaces are files: every write fails, every command works.
    let id = lsmvault_ok(&setup.repo, &["--json", "cat", "config"]);
    let id: serde_json::Value = serde_json::from_str(&id).unwrap();
    let repository = setup.cache.join(id["id"].as_str().unwrap());
    fs::remove_dir_all(&repository).unwrap();
    fs::create_dir_all(&repository).unwrap();
    for space in ["snapshots", "index", "keys", "trees"] {
        fs::write(repository.join(space), b"in the way").unwrap();
    }
    assert_eq!(setup.run(&["ls", &ids[0]]).0, expected);
    setup.backup();
    assert_eq!(snapshot_ids(&setup.repo).len(), 3);
}

#[test]
fn an_encrypted_repository_caches_its_trees_sealed() {
    let directory = tempfile::tempdir().unwrap();
    let (repo, source, cache) = (
        directory.path().join("repo"),
        directory.path().join("source"),
        directory.path().join("cache"),
    );
    fs::create_dir_all(&source).unwrap();
    fs::write(
        source.join("plainly-visible-name.sst"),
        seeded_bytes(5, 10_000),
    )
    .unwrap();
    let password = Some("correct horse");
    let output = lsmvault_command(&repo, password, &["init", "--kdf-target-ms", "20"])
        .output()
        .unwrap();
    assert_success(&output, "init");
    let cache_flag = ["--cache-dir", cache.to_str().unwrap()];
    let with_cache = |args: &[&str]| {
        let mut all = cache_flag.to_vec();
        all.extend_from_slice(args);
        run_counted(&repo, password, &all)
    };
    with_cache(&["backup", "-q", source.to_str().unwrap()]);
    let (listing, counts) = with_cache(&["ls", "latest"]);
    assert!(listing.contains("plainly-visible-name.sst"));
    assert_eq!(
        counts.reads("data") + counts.reads("index"),
        0,
        "{counts:?}"
    );
    assert_eq!(counts.reads("keys"), 0, "{counts:?}");
    let (_, counts) = with_cache(&["snapshots"]);
    assert_eq!(
        counts.of("config", "read"),
        0,
        "the config comes from the cache: {counts:?}"
    );
    assert!(
        counts.total() <= 5,
        "warm encrypted `snapshots` made {counts:?}"
    );
    for entry in entries(&cache) {
        let bytes = fs::read(&entry).unwrap();
        assert!(
            !bytes
                .windows(b"plainly-visible".len())
                .any(|window| window == b"plainly-visible"),
            "{} holds a file name in plaintext",
            entry.display()
        );
    }
}

#[test]
fn the_cache_is_off_for_a_local_repository_unless_asked() {
    let setup = Setup::new();
    setup.backup();
    let xdg = setup.cache.with_extension("xdg");
    fs::create_dir_all(&xdg).unwrap();
    let run = |args: &[&str], cache_variable: Option<&Path>| {
        let mut command = lsmvault_command(&setup.repo, None, args);
        command
            .env("XDG_CACHE_HOME", &xdg)
            .env("LSMVAULT_REQUEST_STATS", "1");
        match cache_variable {
            Some(directory) => command.env("LSMVAULT_CACHE_DIR", directory),
            None => command.env_remove("LSMVAULT_CACHE_DIR"),
        };
        command.output().unwrap()
    };
    // The default for a local repository: no cache anywhere.
    let output = run(&["snapshots"], None);
    assert_success(&output, "snapshots");
    assert!(entries(&xdg).is_empty(), "{:?}", entries(&xdg));
    // LSMVAULT_CACHE_DIR enables it like --cache-dir; --no-cache wins over
    // both (an exported variable must not stand in the way of one run).
    let by_variable = setup.cache.with_extension("variable");
    assert_success(&run(&["snapshots"], Some(&by_variable)), "snapshots");
    assert_eq!(entries_of(&by_variable, "snapshots").len(), 1);
    let output = run(&["--no-cache", "snapshots"], Some(&by_variable));
    assert_success(&output, "--no-cache with LSMVAULT_CACHE_DIR");
    assert_eq!(counts_of(&output).of("snapshots", "read"), 1);
    let flag = by_variable.to_str().unwrap();
    let output = run(&["--no-cache", "--cache-dir", flag, "snapshots"], None);
    assert_success(&output, "--no-cache with --cache-dir");
    assert_eq!(counts_of(&output).of("snapshots", "read"), 1);
}

/// Backups through the cache killed at random moments (while packs, trees
/// and index files are written through, and entries renamed into place):
/// afterwards every listing through the cache is what the repository holds.
#[test]
fn backups_killed_while_writing_the_cache_leave_nothing_wrong_in_it() {
    let setup = Setup::new();
    let cache = setup.cache.to_str().unwrap().to_string();
    let backup = |setup: &Setup| {
        let mut command = lsmvault_command(
            &setup.repo,
            None,
            &[
                "--cache-dir",
                &cache,
                "backup",
                "--full",
                setup.source.to_str().unwrap(),
            ],
        );
        command.env_remove("LSMVAULT_CACHE_DIR");
        command
    };
    let typical = time_ok(&mut backup(&setup));
    let mut kill_loop = KillLoop::new("backup with a cache", 0xcac4_e011, typical, 2);
    for iteration in 0..kill_iterations(10) {
        for index in 0..8 {
            let name = format!("sub/round-{iteration}-{index}/t.sst");
            fs::create_dir_all(setup.source.join(&name).parent().unwrap()).unwrap();
            fs::write(
                setup.source.join(name),
                seeded_bytes(iteration * 8 + index + 500, 20_000),
            )
            .unwrap();
        }
        let run = kill_loop.run(&mut backup(&setup));
        if let Run::Finished(output) = &run {
            assert_success(output, &format!("iteration {iteration}: backup"));
        }
        let expected = lsmvault_ok(&setup.repo, &["--no-cache", "--json", "snapshots"]);
        assert_eq!(setup.run(&["--json", "snapshots"]).0, expected, "{run:?}");
        for id in snapshot_ids(&setup.repo) {
            let expected = lsmvault_ok(&setup.repo, &["--no-cache", "ls", &id]);
            assert_eq!(
                setup.run(&["ls", &id]).0,
                expected,
                "iteration {iteration} ({run:?})"
            );
        }
    }
    kill_loop.finish();
    lsmvault_ok(&setup.repo, &["verify"]);
}

/// `backup --verify-existing` judges the repository's copy of every reused
/// blob: a tree damaged in its pack is written again although the cache
/// holds it intact.
#[test]
fn verify_existing_reads_trees_from_their_packs_not_the_cache() {
    let setup = Setup::new();
    setup.backup();
    let (pack, offset) = {
        let repository = lsmvault::Repository::open_local(&setup.repo).unwrap();
        let root = repository.find_snapshot("latest").unwrap().snapshot.tree;
        let location = *repository.index().unwrap().get(&root).unwrap();
        let pack = location.pack.to_hex();
        let middle = location.entry.offset as usize + location.entry.stored_length as usize / 2;
        (setup.repo.join("data").join(&pack[..2]).join(pack), middle)
    };
    let mut bytes = fs::read(&pack).unwrap();
    bytes[offset] ^= 0x40;
    fs::write(&pack, &bytes).unwrap();
    // The plain backup reads the parent's root tree from the cache.
    let (_, plain) = setup.run(&["backup", "-q", setup.source.to_str().unwrap()]);
    assert_eq!(plain.reads("data"), 0, "{plain:?}");
    let (report, _) = setup.run(&[
        "--json",
        "backup",
        "--verify-existing",
        setup.source.to_str().unwrap(),
    ]);
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(report["blobs_rewritten"].as_u64().unwrap() >= 1, "{report}");
    let expected = lsmvault_ok(&setup.repo, &["--no-cache", "ls", "latest"]);
    assert_eq!(setup.run(&["ls", "latest"]).0, expected);
}
