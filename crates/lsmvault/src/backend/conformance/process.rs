//! The multi-process race: several processes `write_if_absent` different
//! content to one name at the same moment.
//!
//! Threads share one `LocalBackend` value (and its temp-name counter); only
//! separate processes show that the backend's no-overwrite promise holds
//! through the storage itself, as it must when several database nodes back up
//! into one repository.
//!
//! The children are the current test executable run again on the calling
//! test alone (`--exact <test name>`), told by [`PROCESS_RACE_CHILD_VARIABLE`]
//! to play a writer instead of the parent. They talk over pipes: each child
//! prints a ready marker, waits for a `go` line on its standard input, writes,
//! and prints its outcome; the parent reads the object throughout.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

use super::{expect, listed, object_name, pattern};
use crate::backend::{Backend, Error, ObjectInfo, ObjectKind, WriteOutcome};

/// Set (to the writer's index) in a child of [`write_if_absent_process_race`].
pub const PROCESS_RACE_CHILD_VARIABLE: &str = "LSMVAULT_CONFORMANCE_PROCESS_RACE_CHILD";
/// The backend location a child opens.
const LOCATION_VARIABLE: &str = "LSMVAULT_CONFORMANCE_PROCESS_RACE_LOCATION";
/// How many processes race.
const PROCESSES: u64 = 6;
/// The size of each racer's object: large enough that writing it takes many
/// system calls (or a multi-part upload), so a torn object would show.
const OBJECT_SIZE: usize = (4 << 20) + 3;
/// Printed by a child once its backend is open and its bytes are ready.
const READY_MARKER: &str = "lsmvault-conformance-ready";
/// Printed by a child, followed by its outcome, after its write.
const OUTCOME_MARKER: &str = "lsmvault-conformance-outcome:";

fn race_name() -> String {
    object_name(700)
}

fn racer_content(writer: u64) -> Vec<u8> {
    pattern(700 + writer, OBJECT_SIZE)
}

/// Races six processes at one pack name, each writing
/// different bytes with [`Backend::write_if_absent`]: exactly one must see
/// `Created`, the others `AlreadyExisted`, the object must be whole and hold
/// the winner's bytes, and a reader in the parent must only ever see nothing
/// or the whole object.
///
/// Call it from a test named `test_name` (its full path as `--exact` takes
/// it, e.g. `backend::local_write_if_absent_race_between_processes`), with
/// `location` naming a new, empty location and `open` turning a location into
/// a backend. The children run that same test, so it must reach this call
/// without side effects that matter; in a child the function writes, reports
/// and returns, and the `location` argument is ignored in favour of the
/// parent's.
pub fn write_if_absent_process_race<B: Backend>(
    test_name: &str,
    location: &str,
    open: impl Fn(&str) -> B,
) {
    match std::env::var(PROCESS_RACE_CHILD_VARIABLE) {
        Ok(writer) => run_child(&writer, open),
        Err(_) => run_parent(test_name, location, open),
    }
}

/// One racer: opens the parent's backend, waits for the start, writes once.
fn run_child<B: Backend>(writer: &str, open: impl Fn(&str) -> B) {
    let writer: u64 = writer
        .parse()
        .unwrap_or_else(|_| panic!("{PROCESS_RACE_CHILD_VARIABLE}={writer:?} is not an index"));
    let location = std::env::var(LOCATION_VARIABLE)
        .unwrap_or_else(|_| panic!("{LOCATION_VARIABLE} is not set in a racer"));
    let backend = open(&location);
    let bytes = racer_content(writer);
    let mut stdout = std::io::stdout().lock();
    // A line of its own: the test harness may have printed part of a line.
    writeln!(stdout, "\n{READY_MARKER}")
        .and_then(|()| stdout.flush())
        .unwrap_or_else(|error| panic!("telling the parent we are ready: {error}"));
    let mut go = String::new();
    let read = std::io::stdin()
        .read_line(&mut go)
        .unwrap_or_else(|error| panic!("waiting for the start: {error}"));
    // An end of input instead of `go`: the parent gave up; write nothing.
    assert!(read > 0, "the parent closed the start pipe");
    let outcome = expect(
        backend.write_if_absent(ObjectKind::Pack, &race_name(), &bytes),
        "racing write",
    );
    writeln!(stdout, "\n{OUTCOME_MARKER}{outcome:?}")
        .and_then(|()| stdout.flush())
        .unwrap_or_else(|error| panic!("reporting the outcome: {error}"));
}

/// A spawned racer and the reading end of its standard output.
struct Racer {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

fn run_parent<B: Backend>(test_name: &str, location: &str, open: impl Fn(&str) -> B) {
    let backend = open(location);
    expect(backend.create(), "create");
    let executable = std::env::current_exe()
        .unwrap_or_else(|error| panic!("finding the test executable: {error}"));
    let mut racers: Vec<Racer> = (0..PROCESSES)
        .map(|writer| {
            let mut child = Command::new(&executable)
                .args(["--exact", test_name, "--nocapture", "--test-threads", "1"])
                .env(PROCESS_RACE_CHILD_VARIABLE, writer.to_string())
                .env(LOCATION_VARIABLE, location)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|error| panic!("starting racer {writer}: {error}"));
            let stdout = child
                .stdout
                .take()
                .unwrap_or_else(|| panic!("racer {writer} has no stdout pipe"));
            Racer {
                child,
                stdout: BufReader::new(stdout),
            }
        })
        .collect();
    for (writer, racer) in racers.iter_mut().enumerate() {
        if read_until_marker(&mut racer.stdout, READY_MARKER).is_none() {
            let failure = finish(racer);
            panic!("racer {writer} ended before it was ready (is `{test_name}` the exact name of the calling test?): {failure}");
        }
    }
    let candidates: Vec<Vec<u8>> = (0..PROCESSES).map(racer_content).collect();
    let outcomes = race(&backend, &candidates, &mut racers);
    let winners: Vec<usize> = (0..outcomes.len())
        .filter(|&writer| outcomes[writer] == WriteOutcome::Created)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "outcomes of the racing processes: {outcomes:?}"
    );
    let winner = winners[0];
    assert!(
        expect(backend.read(ObjectKind::Pack, &race_name()), "read") == candidates[winner],
        "the object is not the winner's"
    );
    assert_eq!(
        listed(&backend, ObjectKind::Pack, "list"),
        vec![ObjectInfo {
            name: race_name(),
            size: OBJECT_SIZE as u64,
            modified: None,
        }]
    );
}

/// Starts every racer, reads the object while they write, and returns each
/// racer's outcome.
fn race(backend: &dyn Backend, candidates: &[Vec<u8>], racers: &mut [Racer]) -> Vec<WriteOutcome> {
    let racing = AtomicBool::new(true);
    // The reader is polling before any racer may write, or it could miss a
    // racer that publishes a partial object and completes it quickly.
    let reader_started = Barrier::new(2);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            reader_started.wait();
            while racing.load(Ordering::Acquire) {
                match backend.read(ObjectKind::Pack, &race_name()) {
                    Err(Error::NotFound { .. }) => {}
                    Err(error) => panic!("reading during the race: {error}"),
                    Ok(bytes) => assert!(
                        candidates.contains(&bytes),
                        "the parent read {} bytes that no racer wrote whole",
                        bytes.len()
                    ),
                }
            }
        });
        reader_started.wait();
        for (writer, racer) in racers.iter_mut().enumerate() {
            if let Some(mut stdin) = racer.child.stdin.take() {
                stdin
                    .write_all(b"go\n")
                    .unwrap_or_else(|error| panic!("starting racer {writer}: {error}"));
            }
        }
        // Collected without panicking, so the reader is stopped whatever the
        // racers did (a panic here would leave it polling forever).
        let reports: Vec<(Option<String>, String)> = racers
            .iter_mut()
            .map(|racer| {
                let outcome = read_until_marker(&mut racer.stdout, OUTCOME_MARKER);
                (outcome, finish(racer))
            })
            .collect();
        racing.store(false, Ordering::Release);
        reader
            .join()
            .unwrap_or_else(|_| panic!("the reader in the parent panicked"));
        reports
            .into_iter()
            .enumerate()
            .map(|(writer, (outcome, failure))| match outcome.as_deref() {
                Some("Created") => WriteOutcome::Created,
                Some("AlreadyExisted") => WriteOutcome::AlreadyExisted,
                _ => panic!("racer {writer} reported {outcome:?}: {failure}"),
            })
            .collect()
    })
}

/// Reads lines until one containing `marker`; returns what follows it, or
/// `None` at the end of the output.
fn read_until_marker(stdout: &mut BufReader<ChildStdout>, marker: &str) -> Option<String> {
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {
                if let Some(start) = line.find(marker) {
                    return Some(line[start + marker.len()..].trim().to_string());
                }
            }
        }
    }
}

/// Waits for a racer and describes how it ended (its status, then its
/// standard error, where a failing child's panic message is).
fn finish(racer: &mut Racer) -> String {
    drop(racer.child.stdin.take());
    let mut rest = String::new();
    let _ = racer.stdout.read_to_string(&mut rest);
    let mut stderr = String::new();
    if let Some(mut pipe) = racer.child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    match racer.child.wait() {
        Ok(status) if status.success() => String::new(),
        Ok(status) => format!("{status}; stderr:\n{stderr}"),
        Err(error) => format!("waiting for it: {error}"),
    }
}
