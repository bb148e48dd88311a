//! A restore is durable before it reports success: what it wrote is synced
//! to the target's file system (one `syncfs` on a descriptor opened before
//! the first file is written, so a write-back error of any file shows),
//! observed with strace.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::common::{assert_success, binary, lsmvault_ok, seeded_bytes, tools_available};

/// One system call of an `strace -f` log: thread id, the call's text and its result.
struct Call {
    thread: String,
    text: String,
    result: Option<i64>,
}

/// The calls of an `strace -f -o` log, each `<unfinished ...>` call joined
/// with its `<... resumed>` rest (another thread's call may come between).
fn calls(log: &str) -> Vec<Call> {
    let mut calls: Vec<Call> = Vec::new();
    for line in log.lines() {
        let Some((thread, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let result = |text: &str| {
            text.rsplit_once(" = ")
                .and_then(|(_, value)| value.split_whitespace().next()?.parse().ok())
        };
        if rest.starts_with("<...") {
            if let Some(open) = calls
                .iter_mut()
                .rev()
                .find(|call| call.thread == thread && call.result.is_none())
            {
                open.text.push_str(rest);
                open.result = result(rest);
            }
            continue;
        }
        calls.push(Call {
            thread: thread.to_string(),
            text: rest.to_string(),
            result: result(rest),
        });
    }
    calls
}

#[test]
fn restore_syncs_the_target_after_its_last_write_and_before_reporting() {
    if !tools_available(&["strace"]) {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let (repo, source) = (work.path().join("repo"), work.path().join("db"));
    fs::create_dir_all(source.join("archive")).unwrap();
    for number in 0..20u64 {
        fs::write(
            source.join(format!("archive/{number:06}.log")),
            seeded_bytes(number + 1, 300),
        )
        .unwrap();
    }
    fs::write(source.join("000100.sst"), seeded_bytes(99, 3_000_000)).unwrap();
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    lsmvault_ok(&repo, &["backup", source.to_str().unwrap()]);

    let target = work.path().join("restored");
    let log_path = work.path().join("strace.log");
    let output = Command::new("strace")
        .args([
            "-f",
            "-qq",
            "-s",
            "256",
            "-e",
            "trace=openat,syncfs,fsync,write",
            "-o",
        ])
        .arg(&log_path)
        .arg(binary())
        .arg("--repo")
        .arg(&repo)
        .args(["restore", "latest", "-t"])
        .arg(&target)
        .env_remove("LSMVAULT_REPOSITORY")
        .env_remove("LSMVAULT_PASSWORD")
        .env_remove("LSMVAULT_PASSWORD_FILE")
        .env_remove("LSMVAULT_PASSWORD_COMMAND")
        .output()
        .unwrap();
    assert_success(&output, "restore under strace");
    let log = fs::read_to_string(&log_path).unwrap();
    let calls = calls(&log);
    let target_text = format!("\"{}", target.display());
    let in_target =
        |call: &Call| call.text.starts_with("openat(") && call.text.contains(&target_text);
    let last_created = calls
        .iter()
        .rposition(|call| in_target(call) && call.text.contains("O_CREAT"))
        .unwrap_or_else(|| panic!("no file created in the target:\n{log}"));
    let report = calls
        .iter()
        .position(|call| call.text.starts_with("write(1,"))
        .unwrap_or_else(|| panic!("no report on stdout:\n{log}"));
    assert!(last_created < report, "{log}");
    // Descriptors opened in the target before its first file was created.
    let first_created = calls
        .iter()
        .position(|call| in_target(call) && call.text.contains("O_CREAT"))
        .unwrap();
    let directory_descriptors: Vec<i64> = calls[..first_created]
        .iter()
        .filter(|call| in_target(call))
        .filter_map(|call| call.result)
        .collect();
    let synced = calls[last_created..report].iter().any(|call| {
        call.text.starts_with("syncfs(")
            && call.result == Some(0)
            && directory_descriptors
                .iter()
                .any(|descriptor| call.text.starts_with(&format!("syncfs({descriptor})")))
    });
    assert!(
        synced,
        "no syncfs of the target between its last file and the report (directory descriptors {directory_descriptors:?}):\n{log}"
    );
    assert!(
        Path::new(&target).join("000100.sst").exists(),
        "nothing restored"
    );
}
