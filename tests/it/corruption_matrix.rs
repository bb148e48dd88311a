//! Issue 13, the corruption matrix: every object type × every damage ×
//! {plaintext, encrypted}. Each cell copies one base repository (three
//! snapshots A, B, C sharing a file, each with data of its own in its own
//! pack; two archived WAL segments; two key files when encrypted; two stale
//! lock files), damages ONE object (one of B's, and one of C's when a second
//! object is needed), and checks through the CLI that:
//!
//! 1. `verify` (or `verify --read-data`, when only data shows it) fails and
//!    names the damaged object and the snapshots and files it affects;
//! 2. every snapshot the damage does not touch restores byte-exact, and those
//!    it touches fail (never exit 0 with wrong content);
//! 3. `snapshots` lists the rest, `forget` of an affected snapshot works, and
//!    no command panics (exit 101).
//!
//! A cell where a damage cannot apply as such says precisely what is expected
//! instead (an unopenable repository naming `config`, a lock that blocks
//! nothing, a deletion nobody can tell from `forget`). The test runs every
//! cell, collects every failure and then fails listing them all. With
//! `LSMVAULT_MATRIX_OUT=path` it writes the matrix it observed as a Markdown
//! table (published in `docs/reliability.md`, "Corruption matrix").
//!
//! The fixture (the base repositories, the objects each cell damages) is in
//! `corruption_matrix/fixture.rs`; the damages and the expectation of each
//! cell in `corruption_matrix/cells.rs`; the regression test of each gap the
//! matrix found in `corruption_matrix/regressions.rs`.

mod cells;
mod fixture;
mod regressions;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::common::*;
use cells::{Damage, Detection, ObjectType, Spec};
use fixture::{Base, PASSWORD, SECOND_PASSWORD};

/// The environment variable naming the file the observed matrix is written to.
const MATRIX_OUT_VARIABLE: &str = "LSMVAULT_MATRIX_OUT";

/// Letters of the snapshots in messages and in the published matrix.
const LETTERS: [&str; 3] = ["A", "B", "C"];

/// What one cell observed, and what of it contradicted the expectation.
struct Outcome {
    object: ObjectType,
    damage: Damage,
    encrypted: bool,
    /// One line for the matrix.
    summary: String,
    /// Every way the cell failed its expectation.
    failures: Vec<String>,
}

/// One command's result, with what the matrix needs of it.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(output: Output) -> Run {
        Run {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn succeeded(&self) -> bool {
        self.code == Some(0)
    }

    fn panicked(&self) -> bool {
        self.code == Some(101) || self.stderr.contains("panicked")
    }

    fn describe(&self, args: &[&str]) -> String {
        format!(
            "`lsmvault {}` exited {:?}: {}",
            args.join(" "),
            self.code,
            self.stderr.trim()
        )
    }
}

/// The state of one cell while it runs: its copy of the base repository and
/// the failures found so far.
struct Cell<'a> {
    base: &'a Base,
    repo: PathBuf,
    work: PathBuf,
    failures: Vec<String>,
    /// What `verify` said, for the matrix.
    verdict: Vec<String>,
}

impl Cell<'_> {
    fn run_with(&mut self, password: Option<&str>, args: &[&str]) -> Run {
        let run = Run::of(lsmvault_with_password(&self.repo, password, args));
        if run.panicked() {
            self.failures.push(format!("panic: {}", run.describe(args)));
        }
        run
    }

    fn run(&mut self, args: &[&str]) -> Run {
        let password = self.base.encrypted.then_some(PASSWORD);
        self.run_with(password, args)
    }

    fn fail(&mut self, message: String) {
        self.failures.push(message);
    }

    /// Runs `verify` (then `verify --read-data` if it found nothing) and
    /// checks the findings against `spec`.
    fn check_verify(&mut self, spec: &Spec) {
        let structure = self.run(&["--json", "verify"]);
        // Reading every pack is only needed where plain verify saw nothing.
        let read_data =
            if structure.succeeded() || !matches!(spec.detection, Detection::Verify { .. }) {
                self.run(&["--json", "verify", "--read-data"])
            } else {
                Run {
                    code: structure.code,
                    stdout: String::new(),
                    stderr: String::new(),
                }
            };
        match &spec.detection {
            Detection::Verify { object } | Detection::ReadData { object } => {
                let only_data = matches!(spec.detection, Detection::ReadData { .. });
                let detecting = if only_data || structure.succeeded() {
                    if !only_data {
                        self.fail("plain `verify` found nothing".into());
                    }
                    (&read_data, "verify --read-data")
                } else {
                    (&structure, "verify")
                };
                let (run, command) = detecting;
                let (code, stdout, stderr) = (run.code, run.stdout.clone(), run.stderr.clone());
                if code != Some(19) {
                    self.fail(format!(
                        "`{command}` exited {code:?}, expected 19: {stderr}"
                    ));
                    return;
                }
                self.check_findings(&stdout, object, spec, command);
                if read_data.succeeded() {
                    self.fail("`verify --read-data` found nothing".into());
                }
            }
            Detection::RefusedToOpen { code, mention } => {
                for (run, command) in [(&structure, "verify"), (&read_data, "verify --read-data")] {
                    if run.code != Some(*code) || !run.stderr.contains(mention) {
                        self.failures.push(format!(
                            "`{command}` exited {:?}, expected {code} naming {mention}: {}",
                            run.code,
                            run.stderr.trim()
                        ));
                    }
                }
                self.verdict
                    .push(format!("refused at open (exit {code}, names {mention})"));
            }
            Detection::Undetectable { why } => {
                for (run, command) in [(&structure, "verify"), (&read_data, "verify --read-data")] {
                    if !run.succeeded() {
                        self.failures.push(format!(
                            "`{command}` failed where nothing is damaged for it: {}",
                            run.stderr.trim()
                        ));
                    }
                }
                self.verdict.push(format!("verify clean: {why}"));
            }
        }
    }

    /// The findings of a failed verify must name `object`, every snapshot
    /// of `spec.named` and every file of `spec.files`, and no snapshot of
    /// the others.
    fn check_findings(&mut self, stdout: &str, object: &str, spec: &Spec, command: &str) {
        let report: serde_json::Value = match serde_json::from_str(stdout) {
            Ok(report) => report,
            Err(error) => {
                self.fail(format!(
                    "`{command} --json` printed no report ({error}): {stdout}"
                ));
                return;
            }
        };
        let findings = report["findings"].as_array().cloned().unwrap_or_default();
        let text = |value: &serde_json::Value| value.as_str().unwrap_or_default().to_string();
        let naming: Vec<&serde_json::Value> = findings
            .iter()
            .filter(|finding| {
                text(&finding["object"]).contains(object)
                    || text(&finding["problem"]).contains(object)
            })
            .collect();
        if naming.is_empty() {
            self.fail(format!(
                "`{command}` does not name {object}: {}",
                serde_json::to_string(&findings).unwrap_or_default()
            ));
        }
        let affected: Vec<String> = findings
            .iter()
            .flat_map(|finding| finding["affected"].as_array().cloned().unwrap_or_default())
            .map(|who| text(&who))
            .collect();
        let mut named = BTreeSet::new();
        for (index, letter) in LETTERS.iter().enumerate() {
            let short = &self.base.snapshots[index][..8];
            let mentioned = affected.iter().any(|who| who.contains(short))
                || findings
                    .iter()
                    .any(|finding| text(&finding["object"]).contains(&self.base.snapshots[index]));
            if mentioned {
                named.insert(index);
            }
            if spec.named.contains(&index) && !mentioned {
                self.fail(format!("`{command}` does not name snapshot {letter}"));
            }
            if !spec.named.contains(&index) && mentioned {
                self.fail(format!(
                    "`{command}` names snapshot {letter}, which is intact"
                ));
            }
        }
        if let Some(mention) = spec.problem_mentions {
            if !findings
                .iter()
                .any(|finding| text(&finding["problem"]).contains(mention))
            {
                self.fail(format!("`{command}` never says {mention:?}"));
            }
        }
        for file in &spec.files {
            if !affected
                .iter()
                .any(|who| who.ends_with(&format!(": {file}")))
            {
                self.fail(format!("`{command}` does not name file {file}"));
            }
        }
        let first = findings.first().map(|finding| {
            let object = text(&finding["object"]);
            let problem = text(&finding["problem"]);
            // Errors repeat the object's name ("blob X: …" for "blob X in
            // pack P"): say it once.
            let problem = match problem.strip_prefix(&object) {
                Some(rest) => rest
                    .trim_start_matches(':')
                    .trim_start_matches(" is corrupt:"),
                None => match problem.split_once(": ") {
                    Some((head, rest)) if object.starts_with(head) => rest,
                    _ => &problem,
                },
            }
            .trim();
            format!("{}: {}", shorten(&object), shorten(problem))
        });
        let named: Vec<&str> = named.iter().map(|index| LETTERS[*index]).collect();
        let files = if spec.files.is_empty() {
            String::new()
        } else {
            format!(" ({})", spec.files.join(", "))
        };
        self.verdict.push(format!(
            "detected by `{command}` ({} finding(s)): {}; names {}{files}",
            findings.len(),
            first.unwrap_or_default(),
            if named.is_empty() {
                "no snapshot".to_string()
            } else {
                named.join(", ")
            }
        ));
    }

    /// Every snapshot not in `spec.lost` restores byte-exact; each in it fails.
    fn check_restores(&mut self, spec: &Spec) {
        for (index, letter) in LETTERS.into_iter().enumerate() {
            let target = self.work.join(format!("restore-{index}"));
            let id = self.base.snapshots[index].clone();
            let run = self.run(&[
                "restore",
                &id,
                "--target",
                target.to_str().unwrap_or_default(),
            ]);
            if spec.lost.contains(&index) {
                if run.succeeded() {
                    // Exit 0 is right only if what it wrote is exactly the source.
                    let same = describe_tree(&self.base.sources[index]) == describe_tree(&target);
                    self.fail(format!(
                        "restore of damaged snapshot {letter} succeeded (content {})",
                        if same { "intact" } else { "WRONG" }
                    ));
                }
            } else if !run.succeeded() {
                self.fail(format!(
                    "restore of intact snapshot {letter}: {}",
                    run.describe(&["restore", letter])
                ));
            } else if describe_tree(&self.base.sources[index]) != describe_tree(&target) {
                self.fail(format!("restore of snapshot {letter} is not byte-exact"));
            }
        }
    }

    /// `wal ls` works and names the damaged WAL object; `wal archive` of the
    /// database works.
    fn check_wal_commands(&mut self, spec: &Spec) {
        let listing = self.run(&["wal", "ls"]);
        if !listing.succeeded() {
            self.fail(listing.describe(&["wal", "ls"]));
        } else if let Detection::Verify { object } = &spec.detection {
            if !listing.stderr.contains(object.as_str()) {
                self.fail(format!(
                    "`wal ls` does not name {object}: {}",
                    listing.stderr
                ));
            } else {
                self.verdict
                    .push("`wal ls` names it and lists the rest".into());
            }
        }
        let database = self.base.database.to_str().unwrap_or_default().to_string();
        let archive = self.run(&["wal", "archive", &database]);
        if !archive.succeeded() {
            self.fail(archive.describe(&["wal", "archive", "DB"]));
        }
    }

    /// `snapshots` lists exactly `spec.listed`; `forget` of the first lost
    /// snapshot (or C) works and removes it from the list.
    fn check_listing_and_forget(&mut self, spec: &Spec) {
        let listing = self.run(&["--json", "snapshots"]);
        if !listing.succeeded() {
            self.fail(listing.describe(&["--json", "snapshots"]));
            return;
        }
        let listed = listed_snapshots(&listing.stdout);
        let expected: BTreeSet<String> = spec
            .listed
            .iter()
            .map(|index| self.base.snapshots[*index].clone())
            .collect();
        if listed != expected {
            self.fail(format!(
                "`snapshots` lists {}, expected {}",
                self.letters(&listed),
                self.letters(&expected)
            ));
        }
        let victim = spec.forget;
        let id = self.base.snapshots[victim].clone();
        let forget = self.run(&["forget", &id]);
        if !forget.succeeded() {
            self.fail(forget.describe(&["forget", LETTERS[victim]]));
            return;
        }
        let after = self.run(&["--json", "snapshots"]);
        if listed_snapshots(&after.stdout).contains(&id) {
            self.fail(format!(
                "snapshot {} still listed after forget",
                LETTERS[victim]
            ));
        }
    }

    fn letters(&self, ids: &BTreeSet<String>) -> String {
        let letters: Vec<&str> = ids
            .iter()
            .map(|id| {
                self.base
                    .snapshots
                    .iter()
                    .position(|known| known == id)
                    .map_or("?", |index| LETTERS[index])
            })
            .collect();
        format!("[{}]", letters.join(", "))
    }
}

/// `text` with every id (a run of 16 or more hex digits) cut to 8 digits,
/// for the matrix.
fn shorten(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for character in text.chars().chain(std::iter::once(' ')) {
        if character.is_ascii_hexdigit() {
            run.push(character);
            continue;
        }
        if run.len() >= 16 {
            out.push_str(&run[..8]);
            out.push('…');
        } else {
            out.push_str(&run);
        }
        run.clear();
        out.push(character);
    }
    out.pop();
    out
}

/// Snapshot ids from `snapshots --json` in either shape.
fn listed_snapshots(stdout: &str) -> BTreeSet<String> {
    let value: serde_json::Value = serde_json::from_str(stdout).unwrap_or_default();
    let list = value.get("snapshots").unwrap_or(&value);
    list.as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|entry| entry["id"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Runs one cell on a copy of `base`.
fn run_cell(base: &Base, object: ObjectType, damage: Damage) -> Outcome {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    copy_tree(&base.repo, &repo);
    let spec = cells::apply(base, &repo, object, damage);
    let mut cell = Cell {
        base,
        repo,
        work: work.path().to_path_buf(),
        failures: Vec::new(),
        verdict: Vec::new(),
    };
    cell.check_verify(&spec);
    cell.check_restores(&spec);
    if let Some(opens) = spec.second_password_opens {
        let run = cell.run_with(Some(SECOND_PASSWORD), &["snapshots"]);
        if run.succeeded() != opens {
            cell.fail(format!(
                "the second password {} the repository: {}",
                if opens {
                    "no longer opens"
                } else {
                    "still opens"
                },
                run.stderr.trim()
            ));
        }
        cell.verdict.push(format!(
            "second password {}",
            if run.succeeded() { "opens" } else { "refused" }
        ));
    }
    if spec.repair_index_heals {
        let repair = cell.run(&["repair", "index"]);
        if !repair.succeeded() {
            cell.fail(repair.describe(&["repair", "index"]));
        }
        let healed = Spec {
            lost: Vec::new(),
            ..spec.clone()
        };
        let before = cell.failures.len();
        cell.work = cell.work.join("after-repair");
        fs::create_dir_all(&cell.work).unwrap();
        cell.check_restores(&healed);
        if cell.failures.len() == before {
            cell.verdict
                .push("`repair index` heals: all restore".into());
        }
    }
    if spec.wal_commands {
        cell.check_wal_commands(&spec);
    }
    // Last: it forgets a snapshot.
    if !matches!(spec.detection, Detection::RefusedToOpen { .. }) {
        cell.check_listing_and_forget(&spec);
    }
    let lost: Vec<&str> = spec.lost.iter().map(|index| LETTERS[*index]).collect();
    let intact: Vec<&str> = (0..3)
        .filter(|index| !spec.lost.contains(index))
        .map(|index| LETTERS[index])
        .collect();
    let mut summary = cell.verdict.join("; ");
    if !lost.is_empty() {
        summary.push_str(&format!("; {} not restorable", lost.join(", ")));
    }
    if !intact.is_empty() {
        summary.push_str(&format!("; {} restore byte-exact", intact.join(", ")));
    }
    if !spec.note.is_empty() {
        summary.push_str(&format!(" ({})", spec.note));
    }
    Outcome {
        object,
        damage,
        encrypted: base.encrypted,
        summary,
        failures: cell.failures,
    }
}

/// Writes the observed matrix as Markdown: one row per object type and
/// damage, one column per repository kind.
fn write_matrix(path: &Path, outcomes: &[Outcome]) {
    let mut text = String::from("| object | damage | plaintext | encrypted |\n|---|---|---|---|\n");
    for object in ObjectType::ALL {
        for damage in Damage::ALL {
            let cell = |encrypted: bool| {
                outcomes
                    .iter()
                    .find(|outcome| {
                        outcome.object == object
                            && outcome.damage == damage
                            && outcome.encrypted == encrypted
                    })
                    .map(|outcome| {
                        let mark = if outcome.failures.is_empty() {
                            ""
                        } else {
                            "**FAILS** "
                        };
                        format!("{mark}{}", outcome.summary.replace('|', "/"))
                    })
                    .unwrap_or_default()
            };
            text.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                object.name(),
                damage.name(),
                cell(false),
                cell(true)
            ));
        }
    }
    fs::write(path, text).unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
}

#[test]
fn every_object_type_and_damage_is_detected_named_and_contained() {
    let bases = [Base::new(false), Base::new(true)];
    let cells: Vec<(&Base, ObjectType, Damage)> = bases
        .iter()
        .flat_map(|base| {
            ObjectType::ALL.into_iter().flat_map(move |object| {
                Damage::ALL
                    .into_iter()
                    .map(move |damage| (base, object, damage))
            })
        })
        .collect();
    let next = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(base, object, damage)) = cells.get(index) else {
                    break;
                };
                let outcome = run_cell(base, object, damage);
                outcomes
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(outcome);
            });
        }
    });
    let outcomes = outcomes
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = std::env::var_os(MATRIX_OUT_VARIABLE) {
        write_matrix(Path::new(&path), &outcomes);
    }
    let failures: Vec<String> = outcomes
        .iter()
        .filter(|outcome| !outcome.failures.is_empty())
        .map(|outcome| {
            format!(
                "{} / {} / {}: {}\n    observed: {}",
                outcome.object.name(),
                outcome.damage.name(),
                if outcome.encrypted {
                    "encrypted"
                } else {
                    "plaintext"
                },
                outcome.failures.join("\n    "),
                outcome.summary
            )
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cells failed:\n{}",
        failures.len(),
        outcomes.len(),
        failures.join("\n")
    );
}
