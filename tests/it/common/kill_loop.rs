//! The kill -9 loop every crash-safety test shares: start a command, SIGKILL
//! it after a delay drawn from a seeded generator and spread over the
//! command's typical runtime (so kills land before, during and after its
//! writes), then check the repository's invariants.
//!
//! A loop for a new command needs three things: a [`KillLoop`] built from the
//! command's measured uninterrupted runtime ([`time_ok`]), a [`Command`] per
//! iteration ([`lsmvault_command`]) handed to [`KillLoop::run`], and an
//! [`Invariants`] holding the snapshots that must survive, checked after every
//! kill. Iterations: [`kill_iterations`] (`LSMVAULT_KILL_ITERATIONS` scales
//! every loop; the default is each loop's small CI size).

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::lsmvault_command;
use super::{assert_same_tree, assert_success};

/// The environment variable setting the iterations of every kill loop.
pub const KILL_ITERATIONS_VARIABLE: &str = "LSMVAULT_KILL_ITERATIONS";

/// Iterations of a kill loop: `LSMVAULT_KILL_ITERATIONS`, else `default`.
pub fn kill_iterations(default: u64) -> u64 {
    std::env::var(KILL_ITERATIONS_VARIABLE)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Runs `command` to its end, panics with its output unless it succeeds, and
/// returns how long it took (the typical runtime a [`KillLoop`] spreads over).
pub fn time_ok(command: &mut Command) -> Duration {
    let started = Instant::now();
    let output = command.output().expect("running lsmvault");
    assert_success(&output, &format!("{command:?}"));
    started.elapsed()
}

/// A deterministic generator (splitmix64: well mixed from the first draw,
/// whatever the seed): a failing iteration replays with the same seed.
pub struct SeededRandom(u64);

impl SeededRandom {
    pub fn new(seed: u64) -> SeededRandom {
        SeededRandom(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    /// A value in `0..limit` (`limit` at least 1).
    pub fn below(&mut self, limit: u64) -> u64 {
        self.next_u64() % limit.max(1)
    }
}

/// How one run of the command ended.
#[derive(Debug)]
pub enum Run {
    /// It ended on its own before the kill (its output, success or not).
    Finished(Output),
    /// It was killed with SIGKILL after this delay.
    Killed(Duration),
}

/// One command's kill loop: draws the delays and counts the outcomes.
pub struct KillLoop {
    name: String,
    random: SeededRandom,
    spread: Duration,
    stretch: u32,
    /// Runs killed before they ended.
    pub killed: u64,
    /// Runs that ended on their own.
    pub finished: u64,
}

impl KillLoop {
    /// Delays are drawn uniformly from zero to `stretch` times `typical` (the
    /// command's uninterrupted runtime; 2 puts half of the kills past a
    /// typical end, where the commit and clean-up happen, and covers runs
    /// slowed by a loaded machine).
    pub fn new(name: &str, seed: u64, typical: Duration, stretch: u32) -> KillLoop {
        KillLoop {
            name: name.to_string(),
            random: SeededRandom::new(seed),
            spread: typical * stretch.max(1),
            stretch: stretch.max(1),
            killed: 0,
            finished: 0,
        }
    }

    /// The loop's generator, for the test's own random choices.
    pub fn random(&mut self) -> &mut SeededRandom {
        &mut self.random
    }

    /// Starts `command` and kills it after the next drawn delay unless it
    /// ended before.
    pub fn run(&mut self, command: &mut Command) -> Run {
        // Until a run was killed, draw below half the typical runtime: a
        // loop of a few runs must interrupt at least one (a fast command on
        // a quiet machine otherwise finished every run now and then).
        let bound = if self.killed == 0 {
            self.spread / (2 * self.stretch)
        } else {
            self.spread
        };
        let delay = Duration::from_micros(self.random.below(bound.as_micros() as u64 + 1));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting lsmvault");
        let started = Instant::now();
        let deadline = started + delay;
        loop {
            if child.try_wait().expect("polling lsmvault").is_some() {
                self.finished += 1;
                self.learn(started.elapsed());
                return Run::Finished(child.wait_with_output().expect("collecting output"));
            }
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(2)));
        }
        // Already exited (a race with the check above) is fine: kill is then a no-op.
        let _ = child.kill();
        let output = child.wait_with_output().expect("reaping lsmvault");
        if output.status.signal() != Some(nix::sys::signal::Signal::SIGKILL as i32) {
            // It ended on its own between the last poll and the signal (with
            // success or not: the caller judges its output).
            self.finished += 1;
            self.learn(started.elapsed());
            return Run::Finished(output);
        }
        self.killed += 1;
        // Killed runs only say "longer than the delay": widen a little, so a
        // first guess that is too short does not kill every run.
        self.spread = self.spread * 11 / 10;
        Run::Killed(delay)
    }

    /// Follows the runtime of the runs that finished (the first measurement
    /// may be off: a cold cache, a different amount of work, a loaded machine).
    fn learn(&mut self, runtime: Duration) {
        self.spread = (self.spread + runtime * self.stretch) / 2;
    }

    /// Prints the counts (the figures docs/reliability.md quotes) and fails
    /// when no run was interrupted (the delays would then test nothing).
    pub fn finish(&self) {
        let _ = std::io::Write::write_all(
            &mut std::io::stderr(),
            format!(
                "kill loop {}: {} runs, {} killed, {} finished\n",
                self.name,
                self.killed + self.finished,
                self.killed,
                self.finished
            )
            .as_bytes(),
        );
        if self.killed + self.finished > 0 {
            assert!(
                self.killed > 0,
                "{}: no run was interrupted; the delays are too long",
                self.name
            );
        }
    }
}

/// What must hold after every kill: the snapshots that must survive (each
/// restores byte-exact to its reference directory), a clean `verify`
/// (unreferenced leftovers of the killed run are no damage), and a password
/// that opens the repository.
pub struct Invariants {
    pub repo: PathBuf,
    pub password: Option<String>,
    /// Snapshot id → the directory it restores to.
    pub snapshots: BTreeMap<String, PathBuf>,
    /// Where restores for comparison go (emptied after each).
    pub scratch: PathBuf,
}

impl Invariants {
    pub fn new(repo: &Path, password: Option<&str>, scratch: &Path) -> Invariants {
        Invariants {
            repo: repo.to_path_buf(),
            password: password.map(str::to_string),
            snapshots: BTreeMap::new(),
            scratch: scratch.to_path_buf(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        lsmvault_command(&self.repo, self.password.as_deref(), args)
            .output()
            .expect("running lsmvault")
    }

    /// The ids `snapshots` lists (which also proves the password opens).
    pub fn listed_snapshots(&self, context: &str) -> Vec<String> {
        let output = self.run(&["--json", "snapshots"]);
        assert_success(&output, &format!("{context}: snapshots"));
        let listed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        listed
            .as_array()
            .unwrap_or_else(|| panic!("{context}: {listed:#}"))
            .iter()
            .map(|entry| entry["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// Checks verify, the listing and (with `restore`) every kept snapshot
    /// byte-exact; `context` names the iteration in failures.
    pub fn check(&self, context: &str, restore: bool) {
        let output = self.run(&["--json", "verify"]);
        assert_success(&output, &format!("{context}: verify"));
        let listed = self.listed_snapshots(context);
        for id in self.snapshots.keys() {
            assert!(listed.contains(id), "{context}: snapshot {id} vanished");
        }
        if restore {
            for (id, expected) in &self.snapshots {
                self.assert_restores(context, id, expected);
            }
        }
    }

    /// Restores `id` into the scratch directory and compares it with `expected`.
    pub fn assert_restores(&self, context: &str, id: &str, expected: &Path) {
        let _ = fs::remove_dir_all(&self.scratch);
        let target = self.scratch.to_str().unwrap();
        let output = self.run(&["restore", id, "--target", target]);
        assert_success(&output, &format!("{context}: restore {id}"));
        assert_same_tree(expected, &self.scratch);
        fs::remove_dir_all(&self.scratch).unwrap();
    }

    /// `verify --read-data` reports nothing (the end of a loop).
    pub fn check_read_data(&self, context: &str) {
        let output = self.run(&["--json", "verify", "--read-data"]);
        assert_success(&output, &format!("{context}: verify --read-data"));
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        assert!(
            report["findings"].as_array().unwrap().is_empty(),
            "{context}: {report:#}"
        );
    }
}
