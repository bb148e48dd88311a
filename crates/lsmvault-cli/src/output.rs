//! How results are shown: JSON for machines (`--json`) or text for people,
//! and the small formatting rules every text listing shares (short ids,
//! timestamps to the second with their zone, byte counts in binary units).
//!
//! Every time a person reads carries its zone (UTC, the zone every object
//! records): a bare `14:32:05` on a machine in another zone is read as local
//! time and sends a point-in-time restore hours off. JSON keeps RFC 3339.
//!
//! Each rule is written once here so that two listings never disagree on how
//! an id or a time looks.
//!
//! Everything meant for stdout goes through [`outln!`]/[`write_stdout`]: a
//! reader that stops early (`lsmvault find '*' | head -1`) closes the pipe,
//! and the command then ends quietly with exit 141, as a process killed by
//! SIGPIPE reports, instead of the panic `println!` gives. SIGPIPE itself
//! stays ignored: a `backup --live` must never die of a closed stdout before
//! it has thawed the database (the library has always thawed by the time
//! anything is printed).

use std::io::Write;

use lsmvault::{Error, Id, Timestamp};
use serde::Serialize;

/// Text or JSON, as the global `--json` flag chose, and whether `-q` asked
/// for quiet.
///
/// Quiet, as restic's: a command prints its errors and warnings (stderr) and
/// what was asked for (listings such as `snapshots`, `ls`, `stats`, `diff`,
/// `wal ls`, `key list`, a `--dry-run`'s plan, and any `--json`), but not
/// the summary of what an action did ([`Output::summary`]) nor progress.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    json: bool,
    quiet: bool,
}

impl Output {
    pub fn new(json: bool, quiet: bool) -> Output {
        Output { json, quiet }
    }

    /// Whether results are printed as JSON.
    pub fn is_json(self) -> bool {
        self.json
    }

    /// Whether an action's text summary is printed (not JSON, not `-q`).
    pub fn prints_summary(self) -> bool {
        !self.json && !self.quiet
    }

    /// Like [`Output::show`], for the summary of what an action did: JSON
    /// always (it was asked for), text unless `-q`.
    pub fn summary<T: Serialize + ?Sized>(
        self,
        value: &T,
        text: impl FnOnce(&T),
    ) -> Result<(), Error> {
        self.show(value, |value| {
            if !self.quiet {
                text(value)
            }
        })
    }

    /// Prints `value` as pretty JSON, or has `text` print it for people.
    pub fn show<T: Serialize + ?Sized>(
        self,
        value: &T,
        text: impl FnOnce(&T),
    ) -> Result<(), Error> {
        if self.json {
            print_json(value)
        } else {
            text(value);
            Ok(())
        }
    }
}

/// The exit code of a command whose stdout reader went away (128 + SIGPIPE).
pub const CLOSED_STDOUT_EXIT: i32 = 141;

/// `println!` for the command's output on stdout (see the module docs).
macro_rules! outln {
    () => {
        $crate::output::write_stdout(b"\n")
    };
    ($($argument:tt)*) => {
        $crate::output::write_stdout(format!("{}\n", format_args!($($argument)*)).as_bytes())
    };
}

/// Writes `bytes` to stdout; a closed pipe ends the command with
/// [`CLOSED_STDOUT_EXIT`], any other failure with the I/O exit code.
pub fn write_stdout(bytes: &[u8]) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        stdout_failed(error);
    }
}

/// Ends the command after a failed write to stdout (see [`write_stdout`]).
pub fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED_STDOUT_EXIT);
    }
    eprintln!("error: writing to stdout: {error}");
    std::process::exit(lsmvault::ErrorCode::Io as i32)
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value).map_err(serialization_error)?;
    outln!("{text}");
    Ok(())
}

/// Prints `value` as JSON on one line (one report of a stream of them).
pub fn print_json_line<T: Serialize + ?Sized>(value: &T) -> Result<(), Error> {
    let text = serde_json::to_string(value).map_err(serialization_error)?;
    outln!("{text}");
    Ok(())
}

/// `value` as a JSON value, for reports that are combined before printing.
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(serialization_error)
}

fn serialization_error(error: serde_json::Error) -> Error {
    Error::InvalidArgument(error.to_string())
}

/// A path or name for one line of text output: control characters (a
/// newline in a file name would split one entry into two lines for a
/// script reading them) are shown escaped (`\n`, `\t`, `\x1b`), and bytes
/// that are not UTF-8 as U+FFFD. JSON output carries names unescaped.
pub fn printable_path(path: &str) -> String {
    let mut shown = String::with_capacity(path.len());
    for character in path.chars() {
        match character {
            '\n' => shown.push_str("\\n"),
            '\t' => shown.push_str("\\t"),
            '\r' => shown.push_str("\\r"),
            control if control.is_control() => {
                shown.push_str(&format!("\\x{:02x}", u32::from(control)))
            }
            other => shown.push(other),
        }
    }
    shown
}

/// The first 8 hex digits of a snapshot (or other object) id, as listings show it.
pub fn short_id(id: &Id) -> String {
    id.short()
}

/// The first 12 digits of a key name, as key listings show it.
pub fn short_key_name(name: &str) -> &str {
    name.get(..12).unwrap_or(name)
}

/// A time cut to whole seconds, RFC 3339 in UTC: `2026-11-23T14:32:05Z`.
pub fn time_to_seconds(time: Timestamp) -> String {
    time.to_seconds_string()
}

/// A time as tables show it: `2026-11-23 14:32:05 UTC`.
pub fn table_time(time: Timestamp) -> String {
    let text = time.to_seconds_string();
    format!(
        "{} UTC",
        text.strip_suffix('Z').unwrap_or(&text).replace('T', " ")
    )
}

/// A byte count in binary units with one decimal (`1.5 MiB`), exact below 1 KiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Warns on stderr about snapshot files that could not be read and were
/// left out, naming each and how to clear it.
pub fn warn_damaged(damaged: &[lsmvault::repo::DamagedObject]) {
    for object in damaged {
        if object.code == lsmvault::ErrorCode::UnsupportedVersion {
            eprintln!(
                "warning: snapshot {} was skipped: {} (upgrade lsmvault to read it)",
                object.name, object.reason
            );
        } else {
            eprintln!(
                "warning: snapshot {} is damaged and was skipped: {} (`lsmvault forget {}` removes it)",
                object.name, object.reason, object.name
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_forms_cut_long_text_and_keep_short_text() {
        let id = "0123456789abcdef";
        assert_eq!(short_id(&Id::of(b"")), Id::of(b"").to_hex()[..8]);
        assert_eq!(short_key_name(id), "0123456789ab");
        assert_eq!(short_key_name("abc"), "abc");
    }

    #[test]
    fn times_are_cut_to_seconds() {
        let time = Timestamp::parse("2026-11-23T14:32:05.923456789Z").unwrap();
        assert_eq!(time_to_seconds(time), "2026-11-23T14:32:05Z");
        assert_eq!(table_time(time), "2026-11-23 14:32:05 UTC");
    }

    #[test]
    fn bytes_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }
}
