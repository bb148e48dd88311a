//! File classes of an LSM database directory: which files are immutable, which
//! are write-ahead log segments, which are not part of the database's state.
//!
//! This module owns the naming conventions only (patterns and the file number in
//! a name); it does no I/O. A checkpoint hard-links immutable files and copies
//! the others, a backup trusts an immutable file's (inode, size, mtime) without
//! looking at its ctime, and the WAL archive and point-in-time recovery order
//! segments by their file number.
//!
//! Patterns are file names with at most one `*` (e.g. `*.sst`, `MANIFEST-*`,
//! `LOG*`); a name matches when it starts with the part before the `*` and ends
//! with the part after it, without the two overlapping. A pattern may name the
//! file's directory too (`segments/*`): engines such as fjall name their
//! immutable segments and their journals alike (plain numbers) and tell them
//! apart only by the directory they are in.

/// Names of files that RocksDB and LevelDB never modify once written: table
/// files (`*.sst`, LevelDB's `*.ldb`) and blob files (`*.blob`).
pub const IMMUTABLE_PATTERNS: [&str; 3] = ["*.sst", "*.ldb", "*.blob"];

/// Names of write-ahead log segments (RocksDB and LevelDB).
pub const WAL_PATTERNS: [&str; 1] = ["*.log"];

/// The directory `lsmvault wal archive --watch` keeps hard links to the
/// database's WAL files in (`DBDIR/.lsmvault-wal-hold/`): no part of the
/// database, and never in a checkpoint or a backup of it.
pub const WAL_HOLD_DIRECTORY: &str = ".lsmvault-wal-hold";

/// Names of files that are no part of a database's state: the lock file, info
/// logs, temporary files of an interrupted write, and the WAL holding
/// directory of `wal archive --watch`.
pub const SKIP_PATTERNS: [&str; 6] = [
    "LOCK",
    "LOG",
    "LOG.old*",
    "*.dbtmp",
    "*.tmp",
    WAL_HOLD_DIRECTORY,
];

/// How the files of a database directory are treated. Patterns are file names
/// with at most one `*` (see [`matches_pattern`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileClasses {
    /// Never modified once written: hard-linked.
    pub immutable: Vec<String>,
    /// Write-ahead log segments: the newest is copied (still growing), the
    /// older ones are hard-linked (rotated, immutable).
    pub wal: Vec<String>,
    /// Not part of a checkpoint.
    pub skip: Vec<String>,
}

impl Default for FileClasses {
    /// RocksDB and LevelDB (fjall and others: override with their patterns).
    fn default() -> Self {
        FileClasses {
            immutable: IMMUTABLE_PATTERNS.map(String::from).to_vec(),
            wal: WAL_PATTERNS.map(String::from).to_vec(),
            skip: SKIP_PATTERNS.map(String::from).to_vec(),
        }
    }
}

/// Whether `name` matches `pattern` (one optional `*`).
pub fn matches_pattern(pattern: &str, name: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == name,
        Some((prefix, suffix)) => {
            name.len() >= prefix.len() + suffix.len()
                && name.starts_with(prefix)
                && name.ends_with(suffix)
        }
    }
}

/// Whether `name` matches any of `patterns`.
pub fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| matches_pattern(pattern, name))
}

/// Whether a file called `name` in a directory called `directory` (`None`
/// at the top of the tree) matches `pattern`: a pattern `dir/name-pattern`
/// needs the directory to be called `dir` exactly; a pattern without `/`
/// looks at the name alone, wherever the file is.
pub fn matches_in_directory(pattern: &str, directory: Option<&str>, name: &str) -> bool {
    match pattern.rsplit_once('/') {
        None => matches_pattern(pattern, name),
        Some((wanted, name_pattern)) => {
            directory == Some(wanted) && matches_pattern(name_pattern, name)
        }
    }
}

/// Whether the file matches any of `patterns` (see [`matches_in_directory`]).
pub fn matches_any_in_directory(patterns: &[String], directory: Option<&str>, name: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| matches_in_directory(pattern, directory, name))
}

/// The number in a name like `000123.log` (None when there is none).
pub fn file_number(name: &str) -> Option<u64> {
    let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches_pattern("*.sst", "000123.sst"));
        assert!(!matches_pattern("*.sst", "000123.sst.tmp"));
        assert!(matches_pattern("MANIFEST-*", "MANIFEST-000005"));
        assert!(matches_pattern("LOG.old*", "LOG.old.1700000000"));
        assert!(matches_pattern("LOCK", "LOCK"));
        assert!(!matches_pattern("LOG", "LOG.old.1"));
        // The prefix and the suffix must not overlap.
        assert!(!matches_pattern("ab*ba", "aba"));
        assert_eq!(file_number("000123.log"), Some(123));
        assert_eq!(file_number("CURRENT"), None);
    }

    #[test]
    fn a_pattern_with_a_directory_matches_only_files_in_a_directory_of_that_name() {
        assert!(matches_in_directory("segments/*", Some("segments"), "17"));
        assert!(!matches_in_directory("segments/*", Some("journals"), "17"));
        assert!(!matches_in_directory("segments/*", None, "17"));
        assert!(!matches_in_directory(
            "segments/*",
            Some("old-segments"),
            "17"
        ));
        assert!(matches_in_directory("*.sst", Some("archive"), "000001.sst"));
        assert!(matches_in_directory("*.sst", None, "000001.sst"));
        let patterns = vec!["segments/*".to_string(), "*.blob".to_string()];
        assert!(matches_any_in_directory(&patterns, Some("segments"), "3"));
        assert!(matches_any_in_directory(&patterns, Some("blobs"), "9.blob"));
        assert!(!matches_any_in_directory(&patterns, Some("journals"), "3"));
    }

    #[test]
    fn default_classes_are_the_pattern_lists() {
        let classes = FileClasses::default();
        assert_eq!(classes.immutable, ["*.sst", "*.ldb", "*.blob"]);
        assert!(matches_any(&classes.wal, "000014.log"));
        assert!(matches_any(&classes.skip, "LOG.old.1"));
        assert!(matches_any(&classes.skip, ".lsmvault-wal-hold"));
        assert!(!matches_any(&classes.immutable, "MANIFEST-000012"));
    }
}
