//! [`AdaptiveLevel`]: the zstd level of `auto` compression follows where a
//! backup waits, as `zstd --adapt` does.
//!
//! When the uploads are the bottleneck (an object store behind a slow link,
//! `--limit-upload`), the cores would otherwise idle while the pack writer
//! waits for upload budget: spending them on a higher level sends fewer bytes
//! and finishes sooner. When the uploads wait for new packs instead, the
//! compression is (part of) the bottleneck and the level steps back down.
//! A local repository is rarely upload-bound, so its backups stay at the
//! configured level.
//!
//! Invariants: the level stays within `[floor, ceiling]`: `floor` is the
//! configured level, `ceiling` is [`ADAPTIVE_CEILING`] (or the configured
//! level, if higher); only `auto` adapts (`zstd:N` is a fixed request, `off`
//! never compresses). The format does not change: a zstd frame decodes the
//! same whatever level wrote it, and each blob records only its codec.
//! Pure logic on atomics: the caller supplies the [`Pressure`] it observed.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::codec::compression::Compression;

/// The highest level `auto` climbs to under upload pressure. Measured on
/// snappy SSTs of real text (1 MiB blocks, zstd CLI, this 2-core VM under
/// load): level 3 stores 0.675 at ~60 MB/s per core, 6 0.632 at ~30, 9 0.626
/// at ~15, 19 0.608 at a few MB/s; beyond 9 the gain is small and the cost
/// large.
pub const ADAPTIVE_CEILING: i32 = 9;

/// What the writer observed when it was about to compress a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// The uploads are behind: half the upload budget or more is taken by
    /// packs waiting or uploading, so adders will soon wait for it.
    Uploads,
    /// The uploads are idle, waiting for packs: compression (or reading) is
    /// the bottleneck.
    Input,
    /// Neither: keep the level.
    Balanced,
}

impl Pressure {
    /// The pressure for `in_flight` bytes of packs handed over and not yet
    /// published, out of a budget of `limit`. Half the budget (two 16 MiB
    /// packs of the default 64 MiB) rather than a full one: a full budget is
    /// reached late in a backup (gen1 of the 256 MiB S3 benchmark fills
    /// it only after ~100 MiB of input), and a link that keeps up rarely
    /// holds two packs at once (one uploads while the next is filled).
    pub fn of_backlog(in_flight: u64, limit: u64) -> Pressure {
        if in_flight == 0 {
            Pressure::Input
        } else if in_flight.saturating_mul(2) >= limit {
            Pressure::Uploads
        } else {
            Pressure::Balanced
        }
    }
}

/// The current level of a writer's compression (see the module docs).
#[derive(Debug)]
pub struct AdaptiveLevel {
    compression: Compression,
    level: AtomicI32,
    floor: i32,
    ceiling: i32,
    /// The highest level used so far (for tests and figures).
    peak: AtomicI32,
}

impl AdaptiveLevel {
    /// Starts at the level `compression` names; only `auto` moves.
    pub fn new(compression: Compression) -> AdaptiveLevel {
        let (floor, ceiling) = match compression {
            Compression::Auto { level } => (level, level.max(ADAPTIVE_CEILING)),
            Compression::Zstd { level } => (level, level),
            Compression::Off => (0, 0),
        };
        AdaptiveLevel {
            compression,
            level: AtomicI32::new(floor),
            floor,
            ceiling,
            peak: AtomicI32::new(floor),
        }
    }

    /// Steps the level one up (uploads behind) or down (uploads idle), within
    /// bounds; returns the level now in force.
    pub fn observe(&self, pressure: Pressure) -> i32 {
        let step = match pressure {
            Pressure::Uploads => 1,
            Pressure::Input => -1,
            Pressure::Balanced => 0,
        };
        let (floor, ceiling) = (self.floor, self.ceiling);
        let moved = self
            .level
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |level| {
                let next = (level + step).clamp(floor, ceiling);
                (next != level).then_some(next)
            });
        let level = match moved {
            Ok(previous) => (previous + step).clamp(floor, ceiling),
            Err(unchanged) => unchanged,
        };
        self.peak.fetch_max(level, Ordering::Relaxed);
        level
    }

    /// The compression to apply to the next blob.
    pub fn compression(&self) -> Compression {
        match self.compression {
            Compression::Auto { .. } => Compression::Auto {
                level: self.level.load(Ordering::Relaxed),
            },
            fixed => fixed,
        }
    }

    /// The highest level used so far.
    pub fn peak(&self) -> i32 {
        self.peak.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auto(level: i32) -> AdaptiveLevel {
        AdaptiveLevel::new(Compression::Auto { level })
    }

    #[test]
    fn upload_pressure_climbs_to_the_ceiling_and_stops() {
        let adaptive = auto(3);
        assert_eq!(adaptive.compression(), Compression::Auto { level: 3 });
        let levels: Vec<i32> = (0..10)
            .map(|_| adaptive.observe(Pressure::Uploads))
            .collect();
        assert_eq!(levels, [4, 5, 6, 7, 8, 9, 9, 9, 9, 9]);
        assert_eq!(adaptive.compression(), Compression::Auto { level: 9 });
        assert_eq!(adaptive.peak(), ADAPTIVE_CEILING);
    }

    #[test]
    fn idle_uploads_step_back_to_the_configured_level_never_below() {
        let adaptive = auto(3);
        for _ in 0..4 {
            adaptive.observe(Pressure::Uploads);
        }
        assert_eq!(adaptive.observe(Pressure::Balanced), 7);
        let levels: Vec<i32> = (0..6).map(|_| adaptive.observe(Pressure::Input)).collect();
        assert_eq!(levels, [6, 5, 4, 3, 3, 3]);
        assert_eq!(adaptive.peak(), 7);
    }

    #[test]
    fn a_configured_level_above_the_ceiling_stays_put() {
        let adaptive = auto(15);
        assert_eq!(adaptive.observe(Pressure::Uploads), 15);
        assert_eq!(adaptive.observe(Pressure::Input), 15);
    }

    #[test]
    fn fixed_levels_and_off_never_move() {
        let fixed = AdaptiveLevel::new(Compression::Zstd { level: 5 });
        fixed.observe(Pressure::Uploads);
        assert_eq!(fixed.compression(), Compression::Zstd { level: 5 });
        let off = AdaptiveLevel::new(Compression::Off);
        off.observe(Pressure::Uploads);
        assert_eq!(off.compression(), Compression::Off);
    }

    #[test]
    fn backlog_signals() {
        let mib = 1 << 20;
        assert_eq!(Pressure::of_backlog(0, 64 * mib), Pressure::Input);
        assert_eq!(Pressure::of_backlog(16 * mib, 64 * mib), Pressure::Balanced);
        assert_eq!(
            Pressure::of_backlog(32 * mib - 1, 64 * mib),
            Pressure::Balanced
        );
        assert_eq!(Pressure::of_backlog(32 * mib, 64 * mib), Pressure::Uploads);
        assert_eq!(Pressure::of_backlog(80 * mib, 64 * mib), Pressure::Uploads);
        // A budget smaller than a pack: any backlog is pressure.
        assert_eq!(Pressure::of_backlog(1, 1), Pressure::Uploads);
    }

    #[test]
    fn concurrent_observers_keep_the_bounds() {
        let adaptive = std::sync::Arc::new(auto(3));
        let threads: Vec<_> = (0..4)
            .map(|thread| {
                let adaptive = std::sync::Arc::clone(&adaptive);
                std::thread::spawn(move || {
                    for step in 0..1000 {
                        let pressure = if (step + thread) % 3 == 0 {
                            Pressure::Input
                        } else {
                            Pressure::Uploads
                        };
                        let level = adaptive.observe(pressure);
                        assert!((3..=ADAPTIVE_CEILING).contains(&level), "{level}");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let Compression::Auto { level } = adaptive.compression() else {
            panic!("auto stays auto");
        };
        assert!((3..=ADAPTIVE_CEILING).contains(&level));
    }
}
