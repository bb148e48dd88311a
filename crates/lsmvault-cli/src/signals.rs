//! SIGINT, SIGTERM, SIGHUP (an ssh session that drops) and SIGQUIT during
//! the commands that pause a writer or create things that must not outlive
//! them (`checkpoint`, `backup`), and the signals that end `wal archive
//! --watch` (after one last round). SIGKILL cannot be caught: a writer
//! frozen by a process killed with it stays frozen until someone thaws it
//! (the freeze timeout bounds only the freeze command itself).
//!
//! The first signal only triggers the library's [`Interrupt`]: the command
//! unwinds through its guards (the thaw command runs, the repository lock
//! and `backup --live`'s temporary checkpoint are removed) and then exits
//! with 128 + the signal's number (130, 143, 129, 131). A second signal while that
//! cleanup runs exits at once with the same code. Other commands keep the
//! default disposition (the signal ends them).

use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use lsmvault::{Error, Interrupt};
use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// The interrupt the handler triggers (set before the handler is installed).
static INTERRUPT: OnceLock<Interrupt> = OnceLock::new();
/// The first signal received (0: none yet).
static RECEIVED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(signal: nix::libc::c_int) {
    if RECEIVED.swap(signal, Ordering::SeqCst) != 0 {
        // Second signal: the user insists. `_exit` is async-signal-safe.
        // SAFETY: ends the process without running anything else.
        unsafe { nix::libc::_exit(128 + signal) };
    }
    if let Some(interrupt) = INTERRUPT.get() {
        interrupt.trigger();
    }
}

/// Installs the handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT and returns the interrupt
/// they trigger. If the handlers cannot be installed the signals keep their
/// default effect (the process ends), which is no worse than before.
pub fn install() -> Interrupt {
    let interrupt = INTERRUPT.get_or_init(Interrupt::new).clone();
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: the handler only touches atomics and calls `_exit`.
        let _ = unsafe { sigaction(signal, &action) };
    }
    interrupt
}

/// The exit code of a command that stopped cleanly on a signal (`wal
/// archive --watch`): 128 + the first signal's number.
pub fn stopped_exit_code() -> ExitCode {
    let signal = match RECEIVED.load(Ordering::SeqCst) {
        0 => Signal::SIGINT as i32,
        signal => signal,
    };
    u8::try_from(128 + signal).map_or(ExitCode::FAILURE, ExitCode::from)
}

/// The exit code of a command stopped by a signal: 128 + the first signal's
/// number; `None` when the error is not an interruption.
pub fn exit_code(error: &Error) -> Option<ExitCode> {
    matches!(error, Error::Interrupted { .. }).then(stopped_exit_code)
}
