//! [`PathPattern`]: the paths `restore --include/--exclude` and `ls PATH`
//! select inside a snapshot, and `backup --exclude` leaves out of one
//! (relative to the source directory, which is the snapshot's root), as globs.
//!
//! A pattern is split at `/` into components; `*` matches any run of
//! characters within one component, `?` one character, and a component that
//! is exactly `**` matches any number of components (none included). A
//! pattern without wildcards is a plain path, as before globs. As in
//! gitignore (and close to restic), a pattern with a `/` at its start or in
//! its middle is anchored at the snapshot root (`db/*.sst`, `/README`), and
//! one without matches a name at any depth (`*.sst`, `LOG`). A pattern that
//! matches a directory selects everything below it.
//! Hand-written instead of a glob crate: three wildcards on raw byte names
//! (which need not be UTF-8) are a few lines.

use std::path::{Component, Path};

use crate::error::{Error, Result};

/// One parsed glob over snapshot paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as the user wrote it, for messages.
    pub text: String,
    components: Vec<Vec<u8>>,
}

/// The component that matches any number of components.
const ANY_DEPTH: &[u8] = b"**";

impl PathPattern {
    /// Parses `text`; `..` is refused (a pattern names paths inside the snapshot).
    pub fn parse(text: &str) -> Result<PathPattern> {
        use std::os::unix::ffi::OsStrExt;
        let mut components = Vec::new();
        for component in Path::new(text).components() {
            match component {
                Component::Normal(name) => components.push(name.as_bytes().to_vec()),
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::InvalidArgument(format!(
                        "path pattern \"{text}\" must not contain '..'"
                    )))
                }
            }
        }
        // `**/**` is `**`; collapsing keeps matching polynomial in the path depth.
        components.dedup_by(|a, b| a == ANY_DEPTH && b == ANY_DEPTH);
        let anchored = text.trim_end_matches('/').contains('/');
        if !anchored && !components.is_empty() {
            components.insert(0, ANY_DEPTH.to_vec());
        }
        Ok(PathPattern {
            text: text.to_string(),
            components,
        })
    }

    /// Whether the pattern has no component (`""`, `/`, `.`): it names the
    /// root itself, so it covers everything.
    pub fn is_root(&self) -> bool {
        self.components.is_empty()
    }

    /// Whether the path `components` (or a directory above it) matches:
    /// the entry is selected with everything below it.
    pub fn covers(&self, components: &[&[u8]]) -> bool {
        covers(&self.components, components)
    }

    /// Whether the path `components` itself matches (not merely a directory
    /// above it): what `find` reports.
    pub fn matches(&self, components: &[&[u8]]) -> bool {
        matches_exactly(&self.components, components)
    }

    /// Whether `components` is a directory on the way to a match: the walk
    /// must look inside it.
    pub fn leads_to(&self, components: &[&[u8]]) -> bool {
        leads_to(&self.components, components)
    }
}

fn covers(pattern: &[Vec<u8>], path: &[&[u8]]) -> bool {
    let exhausted = |states: &[bool]| states[pattern.len()];
    let mut states = start_states(pattern);
    for name in path {
        if exhausted(&states) {
            return true;
        }
        states = step(pattern, &states, name);
    }
    exhausted(&states)
}

fn matches_exactly(pattern: &[Vec<u8>], path: &[&[u8]]) -> bool {
    let states = path.iter().fold(start_states(pattern), |states, name| {
        step(pattern, &states, name)
    });
    states[pattern.len()]
}

// Matching runs the pattern as an automaton over the path's components:
// `states[i]` says the components read so far can be matched by the first
// `i` pattern components. That is O(pattern × path) component comparisons,
// where the obvious recursion tries both branches at every `**` and takes
// exponential time on `**/a*/**/a*/…` against a deep path.

/// The states before any component is read.
fn start_states(pattern: &[Vec<u8>]) -> Vec<bool> {
    let mut states = vec![false; pattern.len() + 1];
    states[0] = true;
    close_over_any_depth(pattern, &mut states);
    states
}

/// The states after reading `name` from `states`.
fn step(pattern: &[Vec<u8>], states: &[bool], name: &[u8]) -> Vec<bool> {
    let mut next = vec![false; pattern.len() + 1];
    for (index, component) in pattern.iter().enumerate() {
        if !states[index] {
            continue;
        }
        if component == ANY_DEPTH {
            // `**` takes this component and may take more.
            next[index] = true;
        } else if component_matches(component, name) {
            next[index + 1] = true;
        }
    }
    close_over_any_depth(pattern, &mut next);
    next
}

/// A `**` may match no component: reaching it reaches what follows it.
fn close_over_any_depth(pattern: &[Vec<u8>], states: &mut [bool]) {
    for (index, component) in pattern.iter().enumerate() {
        if states[index] && component == ANY_DEPTH {
            states[index + 1] = true;
        }
    }
}

fn leads_to(pattern: &[Vec<u8>], path: &[&[u8]]) -> bool {
    match (pattern.split_first(), path.split_first()) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some((first, _)), Some(_)) if first == ANY_DEPTH => true,
        (Some((first, rest)), Some((name, names))) => {
            component_matches(first, name) && leads_to(rest, names)
        }
    }
}

/// `*` and `?` within one name (iterative, with one backtrack point: linear
/// enough for any name a tree can hold).
fn component_matches(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&byte) if byte == b'?' || byte == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((star_p, star_n)) => {
                    p = star_p + 1;
                    n = star_n + 1;
                    star = Some((star_p, star_n + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&byte| byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious recursive matchers (exponential in the number of `**`),
    /// as the reference the automaton must agree with.
    fn reference(pattern: &[Vec<u8>], path: &[&[u8]], exact: bool) -> bool {
        match (pattern.split_first(), path.split_first()) {
            (None, _) => !exact || path.is_empty(),
            (Some((first, rest)), _) if first == ANY_DEPTH => {
                reference(rest, path, exact)
                    || (!path.is_empty() && reference(pattern, &path[1..], exact))
            }
            (Some(_), None) => false,
            (Some((first, rest)), Some((name, names))) => {
                component_matches(first, name) && reference(rest, names, exact)
            }
        }
    }

    proptest! {
        #[test]
        fn the_automaton_agrees_with_the_recursive_reference(
            pattern in proptest::collection::vec(
                prop_oneof![Just("**"), Just("a*"), Just("?"), Just("ab"), Just("*")], 0..6),
            path in proptest::collection::vec(
                prop_oneof![Just("a"), Just("ab"), Just("b"), Just("aab")], 0..7),
        ) {
            let pattern = PathPattern::parse(&pattern.join("/")).unwrap();
            let path: Vec<&[u8]> = path.iter().map(|name| name.as_bytes()).collect();
            prop_assert_eq!(pattern.covers(&path), reference(&pattern.components, &path, false));
            prop_assert_eq!(pattern.matches(&path), reference(&pattern.components, &path, true));
        }
    }

    #[test]
    fn many_double_stars_against_a_deep_path_take_no_time() {
        let pattern = PathPattern::parse("**/a*/**/a*/**/a*/**/a*/**/a*/**/a*/**/a*/**/b").unwrap();
        let deep = vec![&b"aa"[..]; 40];
        let started = std::time::Instant::now();
        assert!(!pattern.covers(&deep));
        assert!(!pattern.matches(&deep));
        // The recursion took 20 s here; the automaton does 40 × 16 steps.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    fn path(text: &str) -> Vec<&[u8]> {
        text.split('/')
            .filter(|part| !part.is_empty())
            .map(str::as_bytes)
            .collect()
    }

    fn covers_path(pattern: &str, text: &str) -> bool {
        PathPattern::parse(pattern).unwrap().covers(&path(text))
    }

    fn matches_path(pattern: &str, text: &str) -> bool {
        PathPattern::parse(pattern).unwrap().matches(&path(text))
    }

    #[test]
    fn matches_selects_the_entry_itself_not_what_is_below() {
        assert!(matches_path("*.sst", "db/000012.sst"));
        assert!(matches_path("db/sub", "db/sub"));
        assert!(!matches_path("db/sub", "db/sub/x"));
        assert!(!matches_path("sub", "db/sub/x"));
        assert!(matches_path("db/**", "db/a/b"));
        assert!(matches_path("db/**/LOG", "db/LOG"));
        assert!(!matches_path("/*.sst", "db/000012.sst"));
    }

    fn leads(pattern: &str, text: &str) -> bool {
        PathPattern::parse(pattern).unwrap().leads_to(&path(text))
    }

    #[test]
    fn plain_paths_select_themselves_and_what_is_below() {
        assert!(covers_path("db/sub", "db/sub"));
        assert!(!covers_path("db/sub", "x/db/sub"));
        assert!(covers_path("./db//sub/", "db/sub/x"));
        assert!(!covers_path("db/sub", "db"));
        assert!(leads("db/sub", "db"));
        assert!(!leads("db/sub", "db/other"));
        assert!(!covers_path("db/sub", "db/subway"));
        assert!(PathPattern::parse("../etc").is_err());
    }

    #[test]
    fn stars_question_marks_and_double_stars() {
        assert!(covers_path("*.sst", "000012.sst"));
        assert!(covers_path("*.sst", "db/000012.sst"));
        assert!(covers_path("sub/", "db/sub/x"));
        assert!(covers_path("/*.sst", "000012.sst"));
        assert!(!covers_path("/*.sst", "db/000012.sst"));
        assert!(!covers_path("./*.sst", "db/000012.sst"));
        assert!(covers_path("**/*.sst", "db/000012.sst"));
        assert!(covers_path("**/*.sst", "000012.sst"));
        assert!(covers_path("db/**", "db/a/b"));
        assert!(covers_path("db/**/LOG", "db/LOG"));
        assert!(covers_path("db/**/LOG", "db/a/b/LOG"));
        assert!(!covers_path("db/**/LOG", "db/a/b/LOG.old"));
        assert!(covers_path("MANIFEST-??????", "MANIFEST-000001"));
        assert!(!covers_path("MANIFEST-??????", "MANIFEST-0000012"));
        assert!(covers_path("a*b*c", "aXXbYbZc"));
        assert!(!covers_path("a*b*c", "aXXbYbZ"));
        assert!(leads("**/*.sst", "any/depth"));
        assert!(covers_path(
            "**/**/**/**/**/**/**/**/x",
            "a/b/c/d/e/f/g/h/i/j/k/l/m/x"
        ));
        assert!(!covers_path(
            "**/**/**/**/**/**/**/**/x",
            "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v/w/y"
        ));
        assert!(leads("d?/x", "db"));
        assert!(!leads("d?/x", "dbb"));
    }

    proptest::proptest! {
        #[test]
        fn a_star_matches_every_name_with_its_prefix_and_suffix(
            prefix in "[a-z0-9.]{0,4}",
            middle in "[a-z0-9.*?]{0,6}",
            suffix in "[a-z0-9.]{0,4}",
        ) {
            let name = format!("{prefix}{middle}{suffix}");
            let pattern = format!("{prefix}*{suffix}");
            proptest::prop_assert!(component_matches(pattern.as_bytes(), name.as_bytes()));
            proptest::prop_assert!(component_matches(b"*", name.as_bytes()));
            let question_marks = "?".repeat(name.len());
            proptest::prop_assert!(component_matches(question_marks.as_bytes(), name.as_bytes()));
        }
    }
}
