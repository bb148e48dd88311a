//! Progress reporting, injected by the caller.
//!
//! The library never prints; long operations call a [`Progress`] the caller
//! provides. The CLI draws indicatif bars on a terminal; embedders may log or
//! ignore. Every method has a no-op default, and [`NoProgress`] ignores all.

/// Receives progress of a long operation. Called from many threads at once.
pub trait Progress: Sync {
    /// A new phase starts (e.g. "scanning", "backing up", "restoring"), with the
    /// number of bytes it will process if known (0 when unknown).
    fn start(&self, _phase: &str, _total_bytes: u64) {}
    /// `bytes` more bytes were processed in the current phase.
    fn advance(&self, _bytes: u64) {}
    /// The current phase ended.
    fn finish(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}
