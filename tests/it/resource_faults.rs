//! Resource faults: a repository whose file system fills up during backup and
//! prune, a read-only repository, a restore target that fills up. Each fails
//! with a clear error (the OS error, the path, a hint naming ENOSPC or EROFS)
//! and its own exit code (29 no space, 30 read-only), earlier snapshots stay
//! intact, and the command succeeds once space is freed.
//!
//! The file systems are small tmpfs mounts (root needed; CI runs as root).
//! Without permission to mount the tests say `skipped:`, unless
//! `LSMVAULT_REQUIRE_TOOLS=1`, which makes them fail. A guard unmounts every
//! mount however the test ends.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lsmvault::ErrorCode;

use crate::common::kill_loop::*;
use crate::common::*;

/// A tmpfs mounted for the length of a test; unmounted on drop (lazily when
/// still busy, so a failing test never leaves a mount behind).
pub(crate) struct Mount {
    pub(crate) point: PathBuf,
}

impl Mount {
    /// Mounts a tmpfs of `size` (e.g. `4m`) at `point`, or says the test is
    /// skipped and returns `None` when mounting is not permitted.
    pub(crate) fn tmpfs(point: &Path, size: &str) -> Option<Mount> {
        fs::create_dir_all(point).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(point)
            .output();
        match output {
            Ok(output) if output.status.success() => Some(Mount {
                point: point.to_path_buf(),
            }),
            Ok(output) => {
                let reason = String::from_utf8_lossy(&output.stderr).trim().to_string();
                skip_unless_required(&format!("needs to mount a tmpfs (as root): {reason}"));
                None
            }
            Err(error) => {
                skip_unless_required(&format!("needs `mount` (util-linux): {error}"));
                None
            }
        }
    }

    /// `mount -o remount,OPTIONS` (e.g. `size=32m`, `ro`, `rw`).
    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}")])
            .arg(&self.point)
            .status()
            .unwrap();
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.point)
            .status()
            .is_ok_and(|status| status.success());
        if !unmounted {
            let _ = Command::new("umount").arg("-l").arg(&self.point).status();
        }
    }
}

/// Asserts that `output` failed with `code`, naming `os_error` (the operating
/// system's words) and `path_part` on stderr, with a hint naming `errno`.
fn assert_fails_with(
    output: &Output,
    code: ErrorCode,
    os_error: &str,
    path_part: &str,
    errno: &str,
) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code.exit_code()), "{stderr}");
    assert!(stderr.contains(os_error), "{stderr}");
    assert!(stderr.contains(path_part), "{stderr}");
    let hint = stderr
        .lines()
        .find(|line| line.starts_with("hint:"))
        .unwrap_or_default();
    assert!(hint.contains(errno), "{stderr}");
}

/// Temporary files a failed write left behind in the repository (none may stay).
fn leftover_temporary_files(repo: &Path) -> Vec<PathBuf> {
    walkdir::WalkDir::new(repo)
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp")
        })
        .collect()
}

/// Fills the file system of `directory` with a filler file until fewer than
/// `leave` bytes are free; returns the filler's path.
fn fill_leaving(directory: &Path, leave: u64) -> PathBuf {
    let filler = directory.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let block = vec![0xa5u8; 64 * 1024];
    let mut written = 0u64;
    // `write`, not `write_all`: the last, partial write counts too.
    while let Ok(count @ 1..) = file.write(&block) {
        written += count as u64;
    }
    drop(file);
    let keep = written.saturating_sub(leave);
    fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(keep)
        .unwrap();
    filler
}

#[test]
fn a_repository_that_fills_up_fails_backup_with_no_space_and_the_next_backup_succeeds() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&work.path().join("fs"), "4m") else {
        return;
    };
    let repo = mount.point.join("repo");
    let source = work.path().join("db");
    let references = work.path().join("references");
    fs::create_dir_all(&references).unwrap();
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 1_000_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let first = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
    let first_id = first["id"].as_str().unwrap().to_string();
    copy_tree(&source, &references.join(&first_id));

    // 6 MB of new data do not fit in the 3 MB left.
    fs::write(source.join("000002.sst"), seeded_bytes(2, 6_000_000)).unwrap();
    let output = lsmvault(&repo, &["backup", source.to_str().unwrap()]);
    assert_fails_with(
        &output,
        ErrorCode::NoSpace,
        "No space left on device",
        repo.to_str().unwrap(),
        "ENOSPC",
    );
    let json = lsmvault(&repo, &["--json", "backup", source.to_str().unwrap()]);
    let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(report["error"]["code"], "no_space", "{report:#}");
    assert_eq!(leftover_temporary_files(&repo), Vec::<PathBuf>::new());

    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    invariants
        .snapshots
        .insert(first_id.clone(), references.join(&first_id));
    invariants.check("after the failed backup", true);
    assert_eq!(
        invariants.listed_snapshots("after the failed backup"),
        vec![first_id]
    );

    // Space freed (the file system grown): the next backup succeeds.
    mount.remount("size=32m");
    let second = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
    let second_id = second["id"].as_str().unwrap().to_string();
    copy_tree(&source, &references.join(&second_id));
    invariants
        .snapshots
        .insert(second_id.clone(), references.join(&second_id));
    invariants.check("after space was freed", true);
    invariants.check_read_data("after space was freed");
}

#[test]
fn a_repository_that_fills_up_fails_prune_with_no_space_and_the_next_prune_succeeds() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&work.path().join("fs"), "24m") else {
        return;
    };
    let repo = mount.point.join("repo");
    let source = work.path().join("db");
    let references = work.path().join("references");
    fs::create_dir_all(&references).unwrap();
    lsmvault::Repository::init_local(
        &repo,
        lsmvault::InitOptions {
            pack_size: 1024 * 1024,
            ..lsmvault::InitOptions::default()
        },
    )
    .unwrap();
    // Three generations; each replaces half of the files, and their chunks
    // share packs with the stable half (the names interleave): forgetting the
    // first two leaves packs partly used, which prune --max-unused 0 repacks.
    fs::create_dir_all(&source).unwrap();
    for file in 0..10u64 {
        fs::write(
            source.join(format!("f{file}-stable.sst")),
            seeded_bytes(100 + file, 150_000),
        )
        .unwrap();
    }
    let mut ids = Vec::new();
    for generation in 0..3u64 {
        for file in 0..10u64 {
            if generation > 0 {
                fs::remove_file(source.join(format!("f{file}-g{}.sst", generation - 1))).unwrap();
            }
            fs::write(
                source.join(format!("f{file}-g{generation}.sst")),
                seeded_bytes(1000 * (generation + 1) + file, 150_000),
            )
            .unwrap();
        }
        let backup = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
        ids.push(backup["id"].as_str().unwrap().to_string());
    }
    let kept = ids[2].clone();
    copy_tree(&source, &references.join(&kept));
    lsmvault_ok(&repo, &["forget", "--keep-last", "1"]);
    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    invariants
        .snapshots
        .insert(kept.clone(), references.join(&kept));

    let plan = lsmvault_json(&repo, &["prune", "--dry-run", "--max-unused", "0"]);
    assert!(plan["packs_repacked"].as_u64().unwrap() > 0, "{plan:#}");

    // Room for the lock, not for the repacked packs.
    let filler = fill_leaving(&mount.point, 64 * 1024);
    let output = lsmvault(&repo, &["prune", "--max-unused", "0"]);
    assert_fails_with(
        &output,
        ErrorCode::NoSpace,
        "No space left on device",
        repo.to_str().unwrap(),
        "ENOSPC",
    );
    assert_eq!(leftover_temporary_files(&repo), Vec::<PathBuf>::new());
    invariants.check("after the failed prune", true);
    // As the hint says: a prune that repacks nothing needs almost no space.
    let report = lsmvault_json(&repo, &["prune", "--max-unused", "100"]);
    assert_eq!(report["packs_repacked"], 0, "{report:#}");
    invariants.check("after a prune without repacking", true);

    // A filler file deleted: the next prune succeeds and frees the space.
    fs::remove_file(&filler).unwrap();
    let report = lsmvault_json(&repo, &["prune", "--max-unused", "0"]);
    assert!(report["packs_repacked"].as_u64().unwrap() > 0, "{report:#}");
    invariants.check("after space was freed", true);
    invariants.check_read_data("after space was freed");
}

/// Regression: a full repository file system blocked restore and verify,
/// which could not write their lock (found by hand after the tests above).
#[test]
fn a_completely_full_repository_still_restores_and_verifies_without_a_lock() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&work.path().join("fs"), "4m") else {
        return;
    };
    let repo = mount.point.join("repo");
    let source = work.path().join("db");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 1_000_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let backup = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
    let id = backup["id"].as_str().unwrap().to_string();
    let reference = work.path().join("reference");
    copy_tree(&source, &reference);
    let filler = fill_leaving(&mount.point, 0);

    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    invariants.snapshots.insert(id, reference);
    invariants.check("full", true);
    invariants.check_read_data("full");
    // A backup with new data fails (its lock may still fit, its pack does not).
    fs::write(source.join("000002.sst"), seeded_bytes(2, 100_000)).unwrap();
    let output = lsmvault(&repo, &["backup", source.to_str().unwrap()]);
    assert_fails_with(
        &output,
        ErrorCode::NoSpace,
        "No space left on device",
        repo.to_str().unwrap(),
        "ENOSPC",
    );
    invariants.check("after the failed backup", true);
    fs::remove_file(filler).unwrap();
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
}

#[test]
fn a_read_only_repository_serves_reads_without_a_lock_and_refuses_writes_naming_erofs() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&work.path().join("fs"), "16m") else {
        return;
    };
    let repo = mount.point.join("repo");
    let source = work.path().join("db");
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 1_000_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let backup = lsmvault_json(&repo, &["backup", source.to_str().unwrap()]);
    let id = backup["id"].as_str().unwrap().to_string();
    let reference = work.path().join("reference");
    copy_tree(&source, &reference);
    mount.remount("ro");

    // Reads work (restore and verify without a lock: none can be written).
    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    invariants.snapshots.insert(id.clone(), reference);
    invariants.check("read-only", true);
    invariants.check_read_data("read-only");
    lsmvault_ok(&repo, &["ls", &id]);
    lsmvault_ok(&repo, &["stats"]);

    // Writes fail, naming the file system and with their own exit code.
    fs::write(source.join("000002.sst"), seeded_bytes(2, 100_000)).unwrap();
    for args in [
        vec!["backup", source.to_str().unwrap()],
        vec!["forget", "--keep-last", "1", "--prune"],
        vec!["prune"],
        vec!["wal", "archive", source.to_str().unwrap()],
        vec!["repair", "index"],
    ] {
        let output = lsmvault(&repo, &args);
        assert_fails_with(
            &output,
            ErrorCode::ReadOnlyFilesystem,
            "Read-only file system",
            repo.to_str().unwrap(),
            "EROFS",
        );
    }
    mount.remount("rw");
    invariants.check("read-write again", true);
}

#[test]
fn a_restore_target_that_fills_up_fails_naming_the_file_and_a_rerun_after_freeing_space_succeeds() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&work.path().join("fs"), "2m") else {
        return;
    };
    let repo = work.path().join("repo");
    let source = work.path().join("db");
    fs::create_dir_all(source.join("sub")).unwrap();
    fs::write(source.join("000001.sst"), seeded_bytes(1, 1_500_000)).unwrap();
    fs::write(source.join("sub/000002.sst"), seeded_bytes(2, 1_500_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);
    let target = mount.point.join("restored");
    let output = lsmvault(
        &repo,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    // Files are restored in parallel: either may be the one that did not fit;
    // the message names it (its path in the snapshot and on disk).
    assert_fails_with(
        &output,
        ErrorCode::NoSpace,
        "No space left on device",
        target.to_str().unwrap(),
        "ENOSPC",
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains(".sst: writing"));

    // Space freed: a delta rerun completes the target, byte-exact.
    mount.remount("size=16m");
    lsmvault_ok(
        &repo,
        &[
            "restore",
            "latest",
            "--delta",
            "--target",
            target.to_str().unwrap(),
        ],
    );
    assert_same_tree(&source, &target);
}

/// Free space from none to more than a backup needs, in steps that land the
/// failure on every kind of write (lock, packs, index file, snapshot file).
const FREE_SPACE_STEPS: [u64; 12] = [
    0,
    4 << 10,
    8 << 10,
    16 << 10,
    32 << 10,
    64 << 10,
    128 << 10,
    256 << 10,
    512 << 10,
    768 << 10,
    1 << 20,
    4 << 20,
];

#[test]
fn backups_and_prunes_into_every_amount_of_free_space_succeed_or_fail_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let Some(mount) = Mount::tmpfs(&work.path().join("fs"), "16m") else {
        return;
    };
    let repo = mount.point.join("repo");
    let source = work.path().join("db");
    let references = work.path().join("references");
    fs::create_dir_all(&references).unwrap();
    fs::create_dir_all(&source).unwrap();
    fs::write(source.join("stable.sst"), seeded_bytes(1, 300_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let mut invariants = Invariants::new(&repo, None, &work.path().join("scratch"));
    let (mut succeeded, mut full) = (0, 0);
    // Snapshot ids, oldest first.
    let mut order: Vec<String> = Vec::new();
    for (step, leave) in FREE_SPACE_STEPS.into_iter().enumerate() {
        // New content each step (one file replaced), so every backup writes.
        let _ = fs::remove_file(source.join(format!("{:03}.sst", step.wrapping_sub(1))));
        fs::write(
            source.join(format!("{step:03}.sst")),
            seeded_bytes(10 + step as u64, 600_000),
        )
        .unwrap();
        for command in ["backup", "forget --keep-last 2 --prune"] {
            let filler = fill_leaving(&mount.point, leave);
            let output = if command == "backup" {
                lsmvault(&repo, &["--json", "backup", source.to_str().unwrap()])
            } else {
                lsmvault(&repo, &["--json", "forget", "--keep-last", "2", "--prune"])
            };
            fs::remove_file(&filler).unwrap();
            let context = format!("{command} with {leave} bytes free");
            if output.status.success() {
                succeeded += 1;
                if command == "backup" {
                    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
                    let id = report["id"].as_str().unwrap().to_string();
                    copy_tree(&source, &references.join(&id));
                    invariants
                        .snapshots
                        .insert(id.clone(), references.join(&id));
                    order.push(id);
                }
            } else {
                full += 1;
                assert_fails_with(
                    &output,
                    ErrorCode::NoSpace,
                    "No space left on device",
                    repo.to_str().unwrap(),
                    "ENOSPC",
                );
            }
            assert_eq!(
                leftover_temporary_files(&repo),
                Vec::<PathBuf>::new(),
                "{context}"
            );
            // A backup removes nothing; forget may remove all but the newest two.
            if command != "backup" {
                let listed = invariants.listed_snapshots(&context);
                let newest = &order[order.len().saturating_sub(2)..];
                assert!(newest.iter().all(|id| listed.contains(id)), "{context}");
                invariants.snapshots.retain(|id, _| listed.contains(id));
            }
            invariants.check(&context, true);
        }
    }
    let summary = format!("free-space sweep: {succeeded} succeeded, {full} failed with no space\n");
    let _ = std::io::stderr().write_all(summary.as_bytes());
    assert!(succeeded > 0 && full > 0, "{summary}");
    invariants.check_read_data("end");
}
