//! The S3 backend against a real S3 server (moto, `common::s3`): the
//! backend conformance suite unchanged, the process race, the server's own
//! `If-None-Match: *` under a 16-thread race, and how its failures are named.

use std::sync::Barrier;

use lsmvault::backend::conformance;
use lsmvault::backend::{Backend, Error, ObjectKind, WriteOutcome};

use crate::common::s3::Moto;

#[test]
fn s3_backend_passes_the_conformance_suite() {
    let Some(moto) = Moto::start() else { return };
    conformance::run_all(|| Moto::backend(&moto.fresh_location()));
}

/// Six processes race `write_if_absent` of different 4 MiB objects at one
/// key: exactly one wins, the object is whole and its. The children are
/// this test, run again (hence the exact name).
#[test]
fn s3_write_if_absent_race_between_processes() {
    // A child opens the parent's location and needs no server of its own.
    let child = std::env::var_os(conformance::PROCESS_RACE_CHILD_VARIABLE).is_some();
    let moto = if child { None } else { Moto::start() };
    if !child && moto.is_none() {
        return;
    }
    let location = moto.as_ref().map(Moto::fresh_location).unwrap_or_default();
    conformance::write_if_absent_process_race(
        "s3_backend::s3_write_if_absent_race_between_processes",
        &location,
        Moto::backend,
    );
}

/// The server itself (not object_store, not our 409 handling) honours
/// `If-None-Match: *`: 16 threads write different bytes to one key at once,
/// exactly one sees Created and the object holds its bytes. Run a few rounds
/// so the race is real.
#[test]
fn moto_honours_if_none_match_under_a_16_thread_race() {
    let Some(moto) = Moto::start() else { return };
    let backend = Moto::backend(&moto.fresh_location());
    for round in 0..5u8 {
        let name = format!("{round:02}{}", "e".repeat(62));
        let candidates: Vec<Vec<u8>> = (0..16u8)
            .map(|writer| vec![writer ^ round.wrapping_mul(31); 64 * 1024 + writer as usize])
            .collect();
        let start = Barrier::new(candidates.len());
        let outcomes: Vec<WriteOutcome> = std::thread::scope(|scope| {
            let writers: Vec<_> = candidates
                .iter()
                .map(|bytes| {
                    let (start, backend, name) = (&start, &backend, &name);
                    scope.spawn(move || {
                        start.wait();
                        backend
                            .write_if_absent(ObjectKind::Pack, name, bytes)
                            .expect("racing write")
                    })
                })
                .collect();
            writers
                .into_iter()
                .map(|writer| writer.join().unwrap())
                .collect()
        });
        let winners: Vec<usize> = (0..outcomes.len())
            .filter(|&writer| outcomes[writer] == WriteOutcome::Created)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert!(
            backend.read(ObjectKind::Pack, &name).unwrap() == candidates[winners[0]],
            "round {round}: the object is not the winner's"
        );
    }
}

/// A missing bucket and a missing object are named: bucket, key, server
/// and HTTP status, as distinct error kinds (a server that is down: see
/// `s3_cli`, where the retries can be shortened).
#[test]
fn s3_failures_name_bucket_key_server_and_status() {
    let Some(moto) = Moto::start() else { return };
    let missing = Moto::backend(&moto.location("no-such-bucket", "repo"));
    let error = missing.create().expect_err("create in a missing bucket");
    let message = error.to_string();
    assert!(error.is_denied(), "{error:?}");
    for expected in [
        "no-such-bucket",
        "HTTP 404",
        "NoSuchBucket",
        "create the bucket",
        &moto.endpoint(),
    ] {
        assert!(message.contains(expected), "{expected:?} not in {message}");
    }
    let error = missing.exists().expect_err("exists in a missing bucket");
    assert!(
        error.is_denied() && error.to_string().contains("no-such-bucket"),
        "{error}"
    );
    let location = moto.fresh_location();
    let backend = Moto::backend(&location);
    let name = "ab".repeat(32);
    match backend.read(ObjectKind::Index, &name) {
        Err(Error::NotFound { context, .. }) => {
            assert!(context.contains(&format!("repo/index/{name}")), "{context}")
        }
        other => panic!("reading a missing object: {other:?}"),
    }
}

/// Keys lsmvault never writes (another tool's files in the bucket, a pack
/// outside its fan-out directory, a nested key) are not listed as objects.
#[test]
fn s3_listing_skips_foreign_keys() {
    let Some(moto) = Moto::start() else { return };
    let bucket = moto.bucket();
    let backend = Moto::backend(&moto.location(&bucket, "repo"));
    let pack = format!("ab{}", "1".repeat(62));
    backend
        .write_if_absent(ObjectKind::Pack, &pack, b"pack")
        .unwrap();
    backend
        .write_if_absent(ObjectKind::Index, &pack, b"index")
        .unwrap();
    for key in [
        format!("repo/data/cd/{pack}"),
        format!("repo/data/{pack}"),
        format!("repo/data/ab/x/{pack}"),
        format!("repo/index/sub/{pack}"),
        "repo/index/.hidden".to_string(),
        format!("repo-other/index/{pack}"),
        format!("index/{pack}"),
    ] {
        moto.put_raw(&bucket, &key);
    }
    let names = |kind| -> Vec<String> {
        backend
            .list(kind)
            .unwrap()
            .into_iter()
            .map(|object| object.name)
            .collect()
    };
    assert_eq!(names(ObjectKind::Pack), vec![pack.clone()]);
    assert_eq!(names(ObjectKind::Index), vec![pack]);
}
