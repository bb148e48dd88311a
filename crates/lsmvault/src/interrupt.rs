//! Cancellation of a running operation, requested from outside (a signal
//! handler, another thread) and polled by the library.
//!
//! The library never exits: an operation that finds its [`Interrupt`]
//! triggered returns [`Error::Interrupted`], and everything it holds is
//! released on the way out by the guards that own it (the repository lock,
//! `backup --live`'s temporary checkpoint, a checkpoint's thaw). Triggering
//! is one atomic store, so it is safe from a signal handler.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A cancellation flag shared between whoever requests the stop and the
/// operation that polls it. Clones share the flag; the default is a flag of
/// its own that nobody triggers.
#[derive(Debug, Clone, Default)]
pub struct Interrupt {
    triggered: Arc<AtomicBool>,
}

impl Interrupt {
    /// A new flag, not triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the operations polling this flag to stop (async-signal-safe).
    pub fn trigger(&self) {
        self.triggered.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        self.triggered.load(Ordering::SeqCst)
    }

    /// `Err(Error::Interrupted)` once a stop was asked for; `what` says what
    /// was being done.
    pub fn check(&self, what: &str) -> Result<()> {
        if self.is_triggered() {
            Err(Error::Interrupted {
                during: what.to_string(),
            })
        } else {
            Ok(())
        }
    }
}
