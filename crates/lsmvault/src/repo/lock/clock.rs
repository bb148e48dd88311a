//! How long a lock has been held, measured so that no pause is missed.
//!
//! `Instant` (Linux's `CLOCK_MONOTONIC`) stops while the machine is
//! suspended, and a suspended laptop or VM is the textbook case of a holder
//! whose lock went stale unnoticed. A [`LockClock`] reads both
//! `CLOCK_BOOTTIME` (monotonic, and counts suspend) and the wall clock, and
//! takes the larger elapsed time: a wall clock stepped forward only makes a
//! lock look older (a cautious error), one stepped back is outvoted by the
//! boot clock.
//!
//! A test plays a paused process with [`LockClock::simulate_pause`] instead
//! of waiting half an hour: every clock of one repository handle then jumps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nix::time::{clock_gettime, ClockId};

/// The clock the locks of one repository handle measure their age by.
/// Clones share one simulated pause.
#[derive(Debug, Clone, Default)]
pub struct LockClock {
    /// Milliseconds of simulated pause, added to every reading.
    paused: Arc<AtomicU64>,
}

/// A reading of a [`LockClock`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reading {
    /// `CLOCK_BOOTTIME` (`None` where it cannot be read).
    boot: Option<Duration>,
    wall: SystemTime,
}

impl LockClock {
    /// Makes every lock of the handle look `pause` older, as if this
    /// process had been stopped that long (for tests: the lock's objects on
    /// the storage do not age).
    pub fn simulate_pause(&self, pause: Duration) {
        let millis = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        self.paused.fetch_add(millis, Ordering::SeqCst);
    }

    pub(crate) fn now(&self) -> Reading {
        let paused = Duration::from_millis(self.paused.load(Ordering::SeqCst));
        Reading {
            boot: clock_gettime(ClockId::CLOCK_BOOTTIME)
                .ok()
                .map(|time| Duration::from(time) + paused),
            wall: SystemTime::now() + paused,
        }
    }

    /// The larger of the times elapsed on either clock since `start`.
    pub(crate) fn since(&self, start: Reading) -> Duration {
        let now = self.now();
        let boot = match (start.boot, now.boot) {
            (Some(start), Some(now)) => now.saturating_sub(start),
            _ => Duration::ZERO,
        };
        let wall = now.wall.duration_since(start.wall).unwrap_or_default();
        boot.max(wall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_clock_counts_time_and_simulated_pauses() {
        let clock = LockClock::default();
        let start = clock.now();
        assert!(start.boot.is_some(), "CLOCK_BOOTTIME is readable on Linux");
        assert!(clock.since(start) < Duration::from_secs(60));
        clock.clone().simulate_pause(Duration::from_secs(3600));
        assert!(clock.since(start) >= Duration::from_secs(3600));
        // A reading taken after the pause is not aged by it.
        assert!(clock.since(clock.now()) < Duration::from_secs(60));
    }
}
