//! The conformance suite: the one set of tests every [`Backend`] runs.
//!
//! Compiled for the library's own tests and, for other crates (a new backend,
//! the integration tests), behind the cargo feature `conformance`. Modelled on
//! arrow-rs `object_store`'s `integration` module and restic's backend test
//! suite: each case checks one part of the trait's contract against a fresh,
//! empty location, so a backend passes by construction of the contract, not
//! of its tests.
//!
//! - [`run_all`] runs every [`CASES`] entry in this process, threads included
//!   (the memory backend runs exactly this);
//! - [`write_if_absent_process_race`] races several *processes* at one name,
//!   for backends shared between processes (local disk, object stores).
//!
//! The suite panics (with the case's name) on the first broken promise; it is
//! test support, not library code.

mod process;

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;

use super::{Backend, Error, ObjectInfo, ObjectKind, Result, WriteOutcome};

pub use process::{write_if_absent_process_race, PROCESS_RACE_CHILD_VARIABLE};

/// One case of the suite: a name for messages and the check, which gets an
/// empty backend on which [`Backend::create`] has run.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    /// The promise the case checks, in snake case (e.g.
    /// `create_is_idempotent_and_exists_follows_config`); panics name it.
    pub name: &'static str,
    /// The check: panics when the backend breaks the promise.
    pub run: fn(&dyn Backend),
}

/// Every single-process case, in the order [`run_all`] runs them.
pub const CASES: &[Case] = &[
    Case {
        name: "create_is_idempotent_and_exists_follows_config",
        run: create_is_idempotent_and_exists_follows_config,
    },
    Case {
        name: "missing_objects_are_not_found",
        run: missing_objects_are_not_found,
    },
    Case {
        name: "write_if_absent_never_overwrites",
        run: write_if_absent_never_overwrites,
    },
    Case {
        name: "read_range_is_exact_or_short",
        run: read_range_is_exact_or_short,
    },
    Case {
        name: "read_into_replaces_the_buffer",
        run: read_into_replaces_the_buffer,
    },
    Case {
        name: "every_kind_round_trips_in_its_own_namespace",
        run: every_kind_round_trips_in_its_own_namespace,
    },
    Case {
        name: "listing_sizes_are_exact",
        run: listing_sizes_are_exact,
    },
    Case {
        name: "listing_times_are_the_storage_clock",
        run: listing_times_are_the_storage_clock,
    },
    Case {
        name: "delete_is_idempotent",
        run: delete_is_idempotent,
    },
    Case {
        name: "write_if_absent_race_between_threads",
        run: write_if_absent_race_between_threads,
    },
    Case {
        name: "list_never_shows_a_partial_object",
        run: list_never_shows_a_partial_object,
    },
    Case {
        name: "replace_config_swaps_the_whole_object",
        run: replace_config_swaps_the_whole_object,
    },
];

/// Runs every case of [`CASES`], each on a fresh backend from `new_backend`
/// (which must return a backend for a new, empty location; the suite calls
/// [`Backend::create`] itself).
pub fn run_all<B: Backend>(mut new_backend: impl FnMut() -> B) {
    for case in CASES {
        let backend = new_backend();
        expect(backend.create(), "create");
        run_case(case, &backend);
    }
}

/// Runs one case; a failure panics with the case's name in front.
pub fn run_case(case: &Case, backend: &dyn Backend) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(backend)));
    if let Err(payload) = outcome {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("(no message)");
        panic!(
            "backend {}: conformance case `{}` failed: {message}",
            backend.location(),
            case.name
        );
    }
}

/// The value of a call that must succeed.
fn expect<T>(result: Result<T>, what: impl Display) -> T {
    result.unwrap_or_else(|error| panic!("{what}: unexpected error: {error}"))
}

/// A 64-hex-digit object name derived from `seed`, spread over the pack
/// fan-out directories like a real content hash.
pub(crate) fn object_name(seed: u64) -> String {
    blake3::hash(&seed.to_le_bytes()).to_hex().to_string()
}

/// `length` bytes of a deterministic pseudo-random pattern (splitmix64), so
/// different seeds give different objects everywhere, not just at the start.
pub(crate) fn pattern(seed: u64, length: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    let mut bytes = Vec::with_capacity(length + 8);
    while bytes.len() < length {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut mixed = state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        mixed ^= mixed >> 31;
        bytes.extend_from_slice(&mixed.to_le_bytes());
    }
    bytes.truncate(length);
    bytes
}

/// The name under which an object of `kind` is stored in these cases
/// (`config` ignores the name, and lists itself as `config`).
fn name_for(kind: ObjectKind, seed: u64) -> String {
    match kind {
        ObjectKind::Config => "config".to_string(),
        _ => object_name(seed),
    }
}

/// A listing that must succeed, without the `modified` times (checked by
/// [`listing_times_are_the_storage_clock`] alone: the other cases compare
/// names and sizes).
pub(crate) fn listed(backend: &dyn Backend, kind: ObjectKind, what: &str) -> Vec<ObjectInfo> {
    expect(backend.list(kind), what)
        .into_iter()
        .map(|object| ObjectInfo {
            modified: None,
            ..object
        })
        .collect()
}

fn sorted(mut objects: Vec<ObjectInfo>) -> Vec<ObjectInfo> {
    objects.sort_by(|left, right| left.name.cmp(&right.name));
    objects
}

/// Asserts that `result` is [`Error::NotFound`] about this object, and that
/// the library reports it as an I/O error (exit code 21) as it always did.
fn assert_not_found<T: std::fmt::Debug>(result: Result<T>, kind: ObjectKind, name: &str) {
    match result {
        Err(Error::NotFound {
            kind: found_kind,
            name: found_name,
            ..
        }) => {
            assert_eq!((found_kind, found_name.as_str()), (kind, name));
        }
        Err(other) => panic!("{}: expected NotFound, got {other:?}", kind.describe(name)),
        Ok(value) => panic!("{}: expected NotFound, got {value:?}", kind.describe(name)),
    }
}

fn create_is_idempotent_and_exists_follows_config(backend: &dyn Backend) {
    expect(backend.create(), "a second create");
    assert!(!expect(backend.exists(), "exists"), "exists before config");
    for kind in ObjectKind::ALL {
        assert!(
            listed(backend, kind, "list").is_empty(),
            "{kind:?} listing of a new repository"
        );
    }
    let config = b"{\"version\": 1}";
    assert_eq!(
        expect(
            backend.write_if_absent(ObjectKind::Config, "config", config),
            "write config"
        ),
        WriteOutcome::Created
    );
    assert!(expect(backend.exists(), "exists"), "exists after config");
    expect(backend.create(), "create over an existing repository");
    assert_eq!(
        expect(backend.read(ObjectKind::Config, "config"), "read config"),
        config
    );
    assert_eq!(
        listed(backend, ObjectKind::Config, "list config"),
        vec![ObjectInfo {
            name: "config".to_string(),
            size: config.len() as u64,
            modified: None,
        }]
    );
}

fn missing_objects_are_not_found(backend: &dyn Backend) {
    for (seed, kind) in (0..).zip(ObjectKind::ALL) {
        let name = name_for(kind, seed);
        assert_not_found(backend.read(kind, &name), kind, &name);
        let mut buffer = b"stale".to_vec();
        assert_not_found(backend.read_into(kind, &name, &mut buffer), kind, &name);
        assert_not_found(backend.read_range(kind, &name, 0, 0), kind, &name);
        assert_not_found(backend.read_range(kind, &name, 0, 1), kind, &name);
        let error = backend
            .read(kind, &name)
            .expect_err("reading a missing object");
        assert!(error.is_not_found() && !error.is_transient());
        assert_eq!(crate::Error::from(error).code(), crate::ErrorCode::Io);
        expect(backend.delete(kind, &name), "deleting a missing object");
    }
}

fn write_if_absent_never_overwrites(backend: &dyn Backend) {
    let name = object_name(1);
    let first = pattern(1, 1000);
    let write = |bytes: &[u8]| {
        expect(
            backend.write_if_absent(ObjectKind::Index, &name, bytes),
            "write_if_absent",
        )
    };
    assert_eq!(write(&first), WriteOutcome::Created);
    assert_eq!(write(&pattern(2, 2000)), WriteOutcome::AlreadyExisted);
    assert_eq!(write(&first), WriteOutcome::AlreadyExisted);
    assert_eq!(write(b""), WriteOutcome::AlreadyExisted);
    assert_eq!(
        expect(backend.read(ObjectKind::Index, &name), "read"),
        first
    );
    assert_eq!(
        listed(backend, ObjectKind::Index, "list"),
        vec![ObjectInfo {
            name,
            size: first.len() as u64,
            modified: None,
        }]
    );
}

fn read_range_is_exact_or_short(backend: &dyn Backend) {
    let name = object_name(3);
    let object = b"hello world";
    expect(
        backend.write_if_absent(ObjectKind::Pack, &name, object),
        "write",
    );
    let read =
        |offset: u64, length: u64| backend.read_range(ObjectKind::Pack, &name, offset, length);
    assert_eq!(expect(read(0, 11), "whole range"), object);
    assert_eq!(expect(read(6, 5), "range at the end"), b"world");
    assert_eq!(expect(read(10, 1), "last byte"), b"d");
    assert_eq!(expect(read(3, 0), "empty range inside"), b"");
    assert_eq!(expect(read(0, 0), "empty range at the start"), b"");
    assert_eq!(expect(read(11, 0), "empty range at the end"), b"");
    for (offset, length) in [(6, 6), (11, 1), (12, 0), (20, 1), (0, 12), (1 << 40, 1)] {
        match read(offset, length) {
            Err(
                error @ Error::ShortObject {
                    kind: ObjectKind::Pack,
                    ..
                },
            ) => {
                let error = crate::Error::from(error);
                assert_eq!(error.code(), crate::ErrorCode::CorruptObject);
                // The message the library always gave for a truncated pack.
                assert_eq!(
                    error.to_string(),
                    format!(
                        "pack {name} is corrupt: shorter than expected ({length} bytes at offset {offset} requested): truncated?"
                    )
                );
            }
            other => panic!("{length} bytes at {offset} of an 11-byte object: {other:?}"),
        }
    }
    // Large ranges arrive whole (a local read may take several system calls).
    let large_name = object_name(4);
    let large = pattern(4, (3 << 20) + 5);
    expect(
        backend.write_if_absent(ObjectKind::Pack, &large_name, &large),
        "write",
    );
    let middle = expect(
        backend.read_range(ObjectKind::Pack, &large_name, 1 << 20, (2 << 20) + 5),
        "large range",
    );
    assert!(middle == large[1 << 20..], "large range differs");
}

fn read_into_replaces_the_buffer(backend: &dyn Backend) {
    let name = object_name(5);
    expect(
        backend.write_if_absent(ObjectKind::Pack, &name, b"short"),
        "write",
    );
    let mut buffer = pattern(6, 100_000);
    expect(
        backend.read_into(ObjectKind::Pack, &name, &mut buffer),
        "read_into",
    );
    assert_eq!(buffer, b"short");
    let empty = object_name(7);
    expect(
        backend.write_if_absent(ObjectKind::Pack, &empty, b""),
        "write empty",
    );
    expect(
        backend.read_into(ObjectKind::Pack, &empty, &mut buffer),
        "read_into",
    );
    assert!(buffer.is_empty(), "an empty object read into a used buffer");
}

fn every_kind_round_trips_in_its_own_namespace(backend: &dyn Backend) {
    for (seed, kind) in (100..).zip(ObjectKind::ALL) {
        let name = name_for(kind, seed);
        let bytes = pattern(seed, 1000 + seed as usize);
        assert_eq!(
            expect(backend.write_if_absent(kind, &name, &bytes), "write"),
            WriteOutcome::Created,
            "{kind:?}"
        );
        assert_eq!(expect(backend.read(kind, &name), "read"), bytes, "{kind:?}");
        assert_eq!(
            listed(backend, kind, "list"),
            vec![ObjectInfo {
                name: name.clone(),
                size: bytes.len() as u64,
                modified: None,
            }],
            "{kind:?}"
        );
        for other in ObjectKind::ALL.into_iter().filter(|other| *other != kind) {
            if other != ObjectKind::Config {
                assert_not_found(backend.read(other, &name), other, &name);
            }
            assert!(
                !listed(backend, other, "list")
                    .iter()
                    .any(|object| object.name == name),
                "{kind:?} object listed as {other:?}"
            );
        }
        expect(backend.delete(kind, &name), "delete");
        assert_not_found(backend.read(kind, &name), kind, &name);
        assert!(listed(backend, kind, "list").is_empty(), "{kind:?}");
    }
    // Packs spread over fan-out directories still list as one namespace.
    let names: Vec<String> = (200..240).map(object_name).collect();
    for name in &names {
        expect(
            backend.write_if_absent(ObjectKind::Pack, name, name.as_bytes()),
            "write pack",
        );
    }
    let listed = sorted(listed(backend, ObjectKind::Pack, "list packs"));
    let mut expected: Vec<ObjectInfo> = names
        .iter()
        .map(|name| ObjectInfo {
            name: name.clone(),
            size: name.len() as u64,
            modified: None,
        })
        .collect();
    expected.sort_by(|left, right| left.name.cmp(&right.name));
    assert_eq!(listed, expected);
}

fn listing_sizes_are_exact(backend: &dyn Backend) {
    let sizes = [0, 1, 4095, 4096, 65_537, (1 << 20) + 7];
    for kind in [ObjectKind::Index, ObjectKind::Pack] {
        let mut expected = Vec::new();
        for (seed, size) in (300..).zip(sizes) {
            let name = object_name(seed);
            expect(
                backend.write_if_absent(kind, &name, &pattern(seed, size)),
                "write",
            );
            expected.push(ObjectInfo {
                name,
                size: size as u64,
                modified: None,
            });
        }
        assert_eq!(
            sorted(listed(backend, kind, "list")),
            sorted(expected),
            "{kind:?}"
        );
    }
}

/// How far a fresh object's `modified` may be from this machine's clock: the
/// storage's clock is another machine's, and the test server's is ours.
const MODIFIED_TOLERANCE: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// A backend that reports `modified` reports the time of the write, by a
/// clock close to ours (locks judge staleness by it, `repo/lock`).
fn listing_times_are_the_storage_clock(backend: &dyn Backend) {
    let name = object_name(350);
    expect(
        backend.write_if_absent(ObjectKind::Lock, &name, b"lock"),
        "write",
    );
    let now = std::time::SystemTime::now();
    let listing = expect(backend.list(ObjectKind::Lock), "list");
    let object = listing
        .iter()
        .find(|object| object.name == name)
        .expect("the object just written is listed");
    if let Some(modified) = object.modified {
        let distance = match now.duration_since(modified) {
            Ok(behind) => behind,
            Err(ahead) => ahead.duration(),
        };
        assert!(
            distance < MODIFIED_TOLERANCE,
            "a fresh object lists as modified {distance:?} away from now"
        );
    }
    expect(backend.delete(ObjectKind::Lock, &name), "delete");
}

fn delete_is_idempotent(backend: &dyn Backend) {
    let name = object_name(400);
    expect(
        backend.write_if_absent(ObjectKind::Lock, &name, b"lock"),
        "write",
    );
    expect(backend.delete(ObjectKind::Lock, &name), "delete");
    expect(backend.delete(ObjectKind::Lock, &name), "delete again");
    assert_not_found(
        backend.read(ObjectKind::Lock, &name),
        ObjectKind::Lock,
        &name,
    );
    assert!(listed(backend, ObjectKind::Lock, "list").is_empty());
    // A deleted name can be written again (prune deletes a pack a later
    // backup may produce anew).
    assert_eq!(
        expect(
            backend.write_if_absent(ObjectKind::Lock, &name, b"again"),
            "write after delete"
        ),
        WriteOutcome::Created
    );
    assert_eq!(
        expect(backend.read(ObjectKind::Lock, &name), "read"),
        b"again"
    );
}

/// Writers racing at one name in [`write_if_absent_race_between_threads`].
const RACING_WRITERS: u64 = 8;
/// Readers polling the name while they race.
const RACING_READERS: usize = 2;

fn write_if_absent_race_between_threads(backend: &dyn Backend) {
    let name = object_name(500);
    // Large enough that a write takes several system calls and a torn object
    // would be visible.
    let candidates: Vec<Vec<u8>> = (0..RACING_WRITERS)
        .map(|writer| pattern(500 + writer, (1 << 20) + 1))
        .collect();
    let start = Barrier::new(candidates.len() + RACING_READERS);
    let writers_done = AtomicBool::new(false);
    let (outcomes, seen) = std::thread::scope(|scope| {
        let readers: Vec<_> = (0..RACING_READERS)
            .map(|_| {
                scope.spawn(|| {
                    start.wait();
                    let mut seen = Vec::new();
                    loop {
                        let finished = writers_done.load(Ordering::Acquire);
                        match backend.read(ObjectKind::Pack, &name) {
                            Err(Error::NotFound { .. }) => {}
                            Err(error) => panic!("reading during the race: {error}"),
                            Ok(bytes) => seen.push(
                                candidates
                                    .iter()
                                    .position(|candidate| *candidate == bytes)
                                    .unwrap_or_else(|| {
                                        panic!(
                                            "a reader saw {} bytes that no writer wrote whole",
                                            bytes.len()
                                        )
                                    }),
                            ),
                        }
                        if finished {
                            return seen;
                        }
                    }
                })
            })
            .collect();
        let writers: Vec<_> = candidates
            .iter()
            .map(|bytes| {
                scope.spawn(|| {
                    start.wait();
                    expect(
                        backend.write_if_absent(ObjectKind::Pack, &name, bytes),
                        "racing write",
                    )
                })
            })
            .collect();
        let outcomes: Vec<WriteOutcome> = writers
            .into_iter()
            .map(|writer| {
                writer
                    .join()
                    .unwrap_or_else(|_| panic!("a writer panicked"))
            })
            .collect();
        writers_done.store(true, Ordering::Release);
        let seen: Vec<usize> = readers
            .into_iter()
            .flat_map(|reader| {
                reader
                    .join()
                    .unwrap_or_else(|_| panic!("a reader panicked"))
            })
            .collect();
        (outcomes, seen)
    });
    let winners: Vec<usize> = (0..outcomes.len())
        .filter(|&writer| outcomes[writer] == WriteOutcome::Created)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "outcomes of the racing writers: {outcomes:?}"
    );
    let winner = winners[0];
    assert!(
        expect(backend.read(ObjectKind::Pack, &name), "read") == candidates[winner],
        "the object is not the winner's"
    );
    assert!(
        seen.iter().all(|&writer| writer == winner),
        "readers saw a loser's object: {seen:?}, winner {winner}"
    );
    assert_eq!(
        listed(backend, ObjectKind::Pack, "list"),
        vec![ObjectInfo {
            name,
            size: candidates[winner].len() as u64,
            modified: None,
        }]
    );
}

/// Writers of distinct large objects in [`list_never_shows_a_partial_object`].
const LISTED_WRITERS: u64 = 4;
/// Objects each of them writes.
const OBJECTS_PER_WRITER: u64 = 6;

fn list_never_shows_a_partial_object(backend: &dyn Backend) {
    let expected: HashMap<String, u64> = (0..LISTED_WRITERS * OBJECTS_PER_WRITER)
        .map(|seed| (object_name(600 + seed), (1 << 20) + seed * 4097))
        .collect();
    let start = Barrier::new(LISTED_WRITERS as usize + 1);
    let writers_done = AtomicBool::new(false);
    let listings = std::thread::scope(|scope| {
        let lister = scope.spawn(|| {
            start.wait();
            let mut listings = 0usize;
            loop {
                let finished = writers_done.load(Ordering::Acquire);
                let listed = listed(backend, ObjectKind::Pack, "listing during writes");
                for object in &listed {
                    let size = expected
                        .get(&object.name)
                        .unwrap_or_else(|| panic!("listed {:?}, which nobody writes", object.name));
                    assert_eq!(object.size, *size, "{} listed partially", object.name);
                }
                // A listed object reads whole.
                if let Some(object) = listed.get(listings % listed.len().max(1)) {
                    let bytes = expect(
                        backend.read(ObjectKind::Pack, &object.name),
                        "reading a listed object",
                    );
                    assert_eq!(bytes.len() as u64, object.size, "{}", object.name);
                }
                listings += 1;
                if finished {
                    return listings;
                }
            }
        });
        let writers: Vec<_> = (0..LISTED_WRITERS)
            .map(|writer| {
                let start = &start;
                scope.spawn(move || {
                    start.wait();
                    for index in 0..OBJECTS_PER_WRITER {
                        let seed = writer * OBJECTS_PER_WRITER + index;
                        let size = (1 << 20) + seed * 4097;
                        expect(
                            backend.write_if_absent(
                                ObjectKind::Pack,
                                &object_name(600 + seed),
                                &pattern(seed, size as usize),
                            ),
                            "write",
                        );
                    }
                })
            })
            .collect();
        for writer in writers {
            writer
                .join()
                .unwrap_or_else(|_| panic!("a writer panicked"));
        }
        writers_done.store(true, Ordering::Release);
        lister
            .join()
            .unwrap_or_else(|_| panic!("the lister panicked"))
    });
    assert!(listings > 0);
    let listed: HashMap<String, u64> = listed(backend, ObjectKind::Pack, "final listing")
        .into_iter()
        .map(|object| (object.name, object.size))
        .collect();
    assert_eq!(listed, expected);
}

/// Replacements of `config` in [`replace_config_swaps_the_whole_object`].
const CONFIG_REPLACEMENTS: u64 = 40;

/// `replace_config` creates or replaces `config` whole: a reader polling it
/// meanwhile sees one of the versions written, never a prefix, a mix or no
/// object; the listing shows the last one's size; nothing else appears.
fn replace_config_swaps_the_whole_object(backend: &dyn Backend) {
    let version = |seed: u64| pattern(700 + seed, 3000 + (seed as usize % 7) * 1000);
    expect(
        backend.replace_config(&version(0)),
        "replace_config creating config",
    );
    assert!(
        expect(backend.exists(), "exists"),
        "exists after replace_config"
    );
    assert_eq!(
        expect(backend.read(ObjectKind::Config, "config"), "read"),
        version(0)
    );
    let versions: Vec<Vec<u8>> = (0..=CONFIG_REPLACEMENTS).map(version).collect();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut reads = 0usize;
            while !done.load(Ordering::Acquire) || reads == 0 {
                let bytes = expect(
                    backend.read(ObjectKind::Config, "config"),
                    "reading config while it is replaced",
                );
                assert!(
                    versions.contains(&bytes),
                    "read a config of {} bytes that was never written whole",
                    bytes.len()
                );
                reads += 1;
            }
        });
        for seed in 1..=CONFIG_REPLACEMENTS {
            expect(
                backend.replace_config(&versions[seed as usize]),
                "replace_config",
            );
        }
        done.store(true, Ordering::Release);
        reader
            .join()
            .unwrap_or_else(|_| panic!("the reader panicked"));
    });
    let last = &versions[CONFIG_REPLACEMENTS as usize];
    assert_eq!(
        &expect(backend.read(ObjectKind::Config, "config"), "read"),
        last
    );
    assert_eq!(
        listed(backend, ObjectKind::Config, "list config"),
        vec![ObjectInfo {
            name: "config".to_string(),
            size: last.len() as u64,
            modified: None,
        }]
    );
    for kind in ObjectKind::ALL {
        if kind != ObjectKind::Config {
            assert!(
                listed(backend, kind, "list").is_empty(),
                "{kind:?} listing after replacing config"
            );
        }
    }
}
