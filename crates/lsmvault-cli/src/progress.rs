//! Progress bars: the library reports phases and bytes through
//! [`lsmvault::Progress`]; this draws them with indicatif on a terminal.
//!
//! Bars go to stderr, and only when it is a terminal and neither `--json` nor
//! `--quiet` was given, so that piped output and JSON stay clean.

use std::io::IsTerminal;
use std::sync::{Mutex, MutexGuard};

use indicatif::{ProgressBar, ProgressStyle};
use lsmvault::Progress;

/// The progress reporter for a run: bars when `wanted` and stderr is a
/// terminal, nothing otherwise.
pub fn reporter(wanted: bool) -> Box<dyn Progress> {
    if wanted && std::io::stderr().is_terminal() {
        Box::new(BarProgress {
            bar: Mutex::new(None),
        })
    } else {
        Box::new(lsmvault::NoProgress)
    }
}

/// One bar per phase: a byte bar when the phase's size is known, a spinner otherwise.
struct BarProgress {
    bar: Mutex<Option<ProgressBar>>,
}

impl BarProgress {
    /// The current bar; a panic elsewhere while drawing must not end the
    /// command, so a poisoned lock is used as it is.
    fn current(&self) -> MutexGuard<'_, Option<ProgressBar>> {
        self.bar
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Progress for BarProgress {
    fn start(&self, phase: &str, total_bytes: u64) {
        let bar = if total_bytes > 0 {
            let bar = ProgressBar::new(total_bytes);
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>10} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar
        } else {
            ProgressBar::new_spinner()
        };
        bar.set_message(phase.to_string());
        *self.current() = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(bar) = self.current().as_ref() {
            bar.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(bar) = self.current().take() {
            bar.finish_and_clear();
        }
    }
}
