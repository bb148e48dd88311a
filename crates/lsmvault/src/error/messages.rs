//! The parts of [`Error`] messages that depend on a field's contents
//! (lists, optional tails), used by the `#[error]` attributes.

use super::Error;

/// Problems in a message: one inline, several one per line.
pub(super) fn listed(problems: &[String]) -> String {
    match problems {
        [one] => one.clone(),
        several => format!(
            "{} problems:\n  - {}",
            several.len(),
            several.join("\n  - ")
        ),
    }
}

/// The tail of [`Error::WrongPassword`]'s message naming damaged key files.
pub(super) fn skipped_keys(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    format!(
        " ({} damaged key file(s) skipped: {})",
        names.len(),
        names.join(", ")
    )
}

pub(super) fn stderr_tail(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(", stderr: {stderr:?}")
    }
}

pub(super) fn written_members(written: &[String]) -> String {
    if written.is_empty() {
        "; no cluster snapshot was written, nothing was committed".to_string()
    } else {
        format!(
            "; no cluster snapshot was written; member snapshot(s) {} were written and stay as ordinary snapshots (tagged with the cluster and shard, never part of a cluster snapshot: `forget` removes them)",
            written.join(", ")
        )
    }
}

pub(super) fn earlier_failure(earlier: &Option<Box<Error>>) -> String {
    match earlier {
        Some(error) => format!(" (before the thaw: {error})"),
        None => String::new(),
    }
}
