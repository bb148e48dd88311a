//! The freeze barrier of a cluster backup: every shard's writer is paused
//! in parallel (one thread per shard), and no shard's checkpoint starts
//! before ALL of them report paused. That moment is the cut: every
//! checkpoint then holds the state of its shard at it. Each shard is
//! thawed as soon as its own checkpoint is linked (it holds the cut
//! already; the others are still paused at it).
//!
//! Invariants: a shard whose freeze started is thawed exactly once (the
//! [`PauseGuard`] of its thread; also on a panic); when one freeze fails,
//! times out, or the [`Interrupt`] triggers before every shard is paused,
//! no checkpoint is linked at all, every shard is thawed, and the caller
//! gets the failure (a failed thaw first: a writer left paused is the
//! worst outcome).

use std::path::PathBuf;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::error::{Error, Result};
use crate::format::cluster::PauseFigures;
use crate::interrupt::Interrupt;
use crate::lsm::checkpoint::{link_checkpoint, CheckpointReport};
use crate::lsm::file_class::FileClasses;
use crate::lsm::writer_pause::{PauseGuard, WriterPause};

/// How often a shard waiting at the barrier looks at the interrupt.
const WAIT_POLL: Duration = Duration::from_millis(2);

/// One shard to cut: its directory, where its checkpoint goes, how its
/// writer is paused.
pub(super) struct ShardCut {
    /// The shard's name (errors name it).
    pub name: String,
    /// Its database directory.
    pub source: PathBuf,
    /// The checkpoint directory to create (beside `source`: same file system).
    pub staging: PathBuf,
    /// How its writer is paused.
    pub pause: WriterPause,
    /// Which files are linked, copied or left out.
    pub classes: FileClasses,
}

/// The cut: when every shard was paused, and per shard (in the order
/// given) its checkpoint and pause figures.
pub(super) struct Cut {
    /// The moment the last shard reported paused.
    pub time: SystemTime,
    /// Per shard: what its checkpoint linked and copied, how long it was paused.
    pub shards: Vec<(CheckpointReport, PauseFigures)>,
    /// From the first freeze starting to the last thaw ending.
    pub span_seconds: f64,
}

/// How long freezes and thaws may take.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    /// A freeze past it has failed (commands are killed).
    pub freeze: Duration,
    /// A thaw command past it has failed.
    pub thaw: Duration,
}

/// How one shard's thread ended.
enum Outcome {
    Cut(CheckpointReport, PauseFigures),
    /// Paused and thawed, but another shard failed: nothing linked.
    Aborted,
    Failed(&'static str, Error),
}

/// Counts the paused shards; opens once all are, or is called off.
struct Gate {
    shards: usize,
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    frozen: usize,
    called_off: bool,
    opened: Option<SystemTime>,
}

impl Gate {
    fn state(&self) -> std::sync::MutexGuard<'_, GateState> {
        // A panicking shard thread cannot leave the counts inconsistent.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    fn frozen(&self) {
        let mut state = self.state();
        state.frozen += 1;
        if state.frozen == self.shards && !state.called_off {
            state.opened = Some(SystemTime::now());
        }
        self.changed.notify_all();
    }

    fn call_off(&self) {
        self.state().called_off = true;
        self.changed.notify_all();
    }

    /// Waits until every shard is paused (`true`) or the gate is called
    /// off, by a failure or the interrupt (`false`).
    fn wait(&self, interrupt: &Interrupt) -> bool {
        let mut state = self.state();
        loop {
            if state.called_off {
                return false;
            }
            if state.opened.is_some() {
                return true;
            }
            if interrupt.is_triggered() {
                state.called_off = true;
                self.changed.notify_all();
                return false;
            }
            state = match self.changed.wait_timeout(state, WAIT_POLL) {
                Ok((state, _)) => state,
                Err(poison) => poison.into_inner().0,
            };
        }
    }
}

/// Pauses every shard behind the barrier, links each one's checkpoint,
/// thaws each. On failure the checkpoints linked so far are left for the
/// caller's guards to remove.
pub(super) fn take_cut(
    shards: &[ShardCut],
    timeouts: Timeouts,
    interrupt: &Interrupt,
) -> Result<Cut> {
    let gate = Gate {
        shards: shards.len(),
        state: Mutex::new(GateState::default()),
        changed: Condvar::new(),
    };
    let started = Instant::now();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = shards
            .iter()
            .map(|shard| {
                let gate = &gate;
                std::thread::Builder::new()
                    .name(format!("freeze {}", shard.name))
                    .spawn_scoped(scope, move || cut_one(shard, gate, timeouts, interrupt))
                    .inspect_err(|_| gate.call_off())
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| match handle {
                Ok(handle) => handle.join().unwrap_or_else(|_| {
                    Outcome::Failed("freezing", Error::InvalidArgument("panicked".into()))
                }),
                Err(error) => Outcome::Failed(
                    "starting its thread",
                    Error::io("starting a freeze thread", error),
                ),
            })
            .collect()
    });
    let span_seconds = started.elapsed().as_secs_f64();
    let time = gate.state().opened;
    collect(shards, outcomes, time, interrupt).map(|(time, cut)| Cut {
        time,
        shards: cut,
        span_seconds,
    })
}

/// One shard's thread: freeze, wait at the barrier, link, thaw.
fn cut_one(shard: &ShardCut, gate: &Gate, timeouts: Timeouts, interrupt: &Interrupt) -> Outcome {
    let mut guard = PauseGuard::new(shard.pause.clone(), timeouts.thaw);
    let started = Instant::now();
    let mut during = "freezing";
    let frozen = guard.freeze(timeouts.freeze, interrupt);
    // A shard's freeze lasts until the barrier opens: paused, it waits for the others.
    let mut freeze_seconds = started.elapsed().as_secs_f64();
    let linked = frozen.and_then(|()| {
        gate.frozen();
        let open = gate.wait(interrupt);
        freeze_seconds = started.elapsed().as_secs_f64();
        during = "linking its checkpoint";
        open.then(|| link_checkpoint(&shard.source, &shard.staging, &shard.classes, interrupt))
            .transpose()
    });
    if linked.is_err() {
        // The cut is lost for all: nobody links (or waits) any longer.
        gate.call_off();
    }
    let thaw_started = Instant::now();
    let (report, earlier) = match linked {
        Ok(report) => (report, Ok(())),
        Err(error) => (None, Err(error)),
    };
    let thawed = guard.thaw_after(earlier);
    let figures = PauseFigures {
        freeze_seconds,
        link_seconds: thaw_started.duration_since(started).as_secs_f64() - freeze_seconds,
        thaw_seconds: thaw_started.elapsed().as_secs_f64(),
    };
    match (thawed, report) {
        (Err(error @ Error::ThawFailed { .. }), _) => Outcome::Failed("thawing", error),
        (Err(error), _) => Outcome::Failed(during, error),
        (Ok(()), Some(report)) => Outcome::Cut(report, figures),
        (Ok(()), None) => Outcome::Aborted,
    }
}

/// The cut when every shard has one, else the most urgent failure: a
/// failed thaw, then a failed freeze, then an interruption, then the rest.
fn collect(
    shards: &[ShardCut],
    outcomes: Vec<Outcome>,
    time: Option<SystemTime>,
    interrupt: &Interrupt,
) -> Result<(SystemTime, Vec<(CheckpointReport, PauseFigures)>)> {
    let mut cut = Vec::new();
    let mut failures = Vec::new();
    for (shard, outcome) in shards.iter().zip(outcomes) {
        match outcome {
            Outcome::Cut(report, figures) => cut.push((report, figures)),
            Outcome::Aborted => {}
            Outcome::Failed(during, error) => failures.push((shard.name.as_str(), during, error)),
        }
    }
    let rank = |(_, during, error): &(&str, &str, Error)| match (*during, error) {
        ("thawing", _) => 0,
        (_, Error::Interrupted { .. }) => 2,
        ("freezing", _) => 1,
        _ => 3,
    };
    failures.sort_by_key(rank);
    if let Some((shard, during, error)) = failures.into_iter().next() {
        if matches!(error, Error::Interrupted { .. }) {
            return Err(interrupted());
        }
        return Err(Error::ClusterShard {
            shard: shard.to_string(),
            during: during.to_string(),
            source: Box::new(error),
            written: Vec::new(),
        });
    }
    match time {
        Some(time) if cut.len() == shards.len() => Ok((time, cut)),
        // Called off by the interrupt alone.
        _ => Err(if interrupt.is_triggered() {
            interrupted()
        } else {
            Error::InvalidArgument("the freeze barrier was called off".to_string())
        }),
    }
}

fn interrupted() -> Error {
    Error::Interrupted {
        during: "freezing the shards (every shard that was paused has been thawed)".to_string(),
    }
}
