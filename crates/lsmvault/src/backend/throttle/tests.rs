//! The token bucket on a fake clock (time moves only when someone sleeps),
//! the wrapper against the conformance suite, and rate parsing.

use std::sync::Mutex;

use super::*;
use crate::backend::LocalBackend;

/// A clock whose time advances only by `sleep`, recording every sleep.
#[derive(Default)]
struct FakeClock {
    now: Mutex<Duration>,
    sleeps: Mutex<Vec<Duration>>,
}

impl FakeClock {
    fn advance(&self, duration: Duration) {
        *self.now.lock().unwrap() += duration;
    }

    fn slept(&self) -> Duration {
        self.sleeps.lock().unwrap().iter().sum()
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Duration {
        *self.now.lock().unwrap()
    }

    fn sleep(&self, duration: Duration) {
        self.sleeps.lock().unwrap().push(duration);
        self.advance(duration);
    }
}

const MIB: u64 = 1024 * 1024;

fn bucket(rate: u64) -> (Arc<FakeClock>, TokenBucket) {
    let clock = Arc::new(FakeClock::default());
    let bucket = TokenBucket::with_clock(rate, Arc::clone(&clock) as Arc<dyn Clock>);
    (clock, bucket)
}

fn close(actual: Duration, expected_seconds: f64) -> bool {
    (actual.as_secs_f64() - expected_seconds).abs() < 1e-6
}

#[test]
fn a_full_bucket_lets_its_burst_pass_then_holds_the_rate() {
    let (clock, bucket) = bucket(MIB);
    assert_eq!(bucket.burst(), MIB / 4);
    bucket.take(bucket.burst());
    assert_eq!(clock.slept(), Duration::ZERO, "the burst passes at once");
    bucket.take(10 * MIB);
    assert!(close(clock.slept(), 10.0), "slept {:?}", clock.slept());
}

#[test]
fn a_large_object_is_metered_in_slices_without_one_long_wait() {
    let (clock, bucket) = bucket(MIB);
    bucket.take(16 * MIB);
    let sleeps = clock.sleeps.lock().unwrap().clone();
    let slice_time = bucket.slice() as f64 / MIB as f64;
    assert!(sleeps.len() >= 60, "{} sleeps", sleeps.len());
    assert!(
        sleeps
            .iter()
            .all(|sleep| sleep.as_secs_f64() <= slice_time + 1e-9),
        "a sleep longer than one slice: {sleeps:?}"
    );
    let burst_seconds = bucket.burst() as f64 / MIB as f64;
    assert!(close(clock.slept(), 16.0 - burst_seconds));
}

#[test]
fn an_idle_period_saves_up_at_most_the_burst() {
    let (clock, bucket) = bucket(MIB);
    bucket.take(bucket.burst());
    clock.advance(Duration::from_secs(3600));
    bucket.take(bucket.burst());
    assert_eq!(clock.slept(), Duration::ZERO);
    bucket.take(MIB);
    assert!(close(clock.slept(), 1.0), "slept {:?}", clock.slept());
}

#[test]
fn slices_follow_the_rate_bounds() {
    assert_eq!(bucket(1).1.slice(), MIN_SLICE);
    assert_eq!(bucket(1).1.burst(), MIN_SLICE);
    assert_eq!(bucket(MIB).1.slice(), MIB / 16);
    assert_eq!(bucket(1024 * MIB).1.slice(), MAX_SLICE);
    // A zero rate is taken as one byte per second, never a division by zero.
    assert_eq!(bucket(0).1.rate(), 1);
}

#[test]
fn threads_share_one_bucket() {
    // Real clock: two threads move 1 MiB each at 4 MiB/s, together.
    let bucket = Arc::new(TokenBucket::new(4 * MIB));
    let started = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let bucket = Arc::clone(&bucket);
            std::thread::spawn(move || bucket.take(MIB))
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // (2 MiB - 1 MiB burst) / 4 MiB/s: at least 0.25 s; only a lower bound.
    let lower = (2 * MIB - bucket.burst()) as f64 / (4 * MIB) as f64;
    assert!(started.elapsed().as_secs_f64() >= lower * 0.95);
}

#[test]
fn the_throttled_local_backend_meets_the_contract() {
    let directory = tempfile::tempdir().unwrap();
    let mut cases = 0;
    crate::backend::conformance::run_all(|| {
        cases += 1;
        let inner = Arc::new(LocalBackend::new(
            directory.path().join(format!("case-{cases}")),
        ));
        ThrottledBackend::new(inner, Some(64 * MIB), Some(64 * MIB))
    });
}

#[test]
fn the_wrapper_meters_uploads_and_downloads_separately() {
    let clock = Arc::new(FakeClock::default());
    let upload = Arc::new(TokenBucket::with_clock(
        MIB,
        Arc::clone(&clock) as Arc<dyn Clock>,
    ));
    let directory = tempfile::tempdir().unwrap();
    let inner = Arc::new(LocalBackend::new(directory.path()));
    let backend = ThrottledBackend::with_buckets(inner, Some(upload), None);
    backend.create().unwrap();
    let bytes = vec![7u8; (2 * MIB) as usize];
    backend
        .write_if_absent(ObjectKind::Index, "a", &bytes)
        .unwrap();
    let after_upload = clock.slept();
    assert!(close(after_upload, 1.75), "slept {after_upload:?}");
    // Downloads are unlimited here: reading costs no time on the upload bucket.
    assert_eq!(backend.read(ObjectKind::Index, "a").unwrap(), bytes);
    assert_eq!(
        backend.read_range(ObjectKind::Index, "a", 5, 10).unwrap(),
        &bytes[5..15]
    );
    assert_eq!(clock.slept(), after_upload);
}

#[test]
fn rates_parse_with_units_and_refuse_nonsense() {
    let cases = [
        ("50MiB", 50 * MIB),
        ("10MB", 10_000_000),
        ("800KiB", 800 * 1024),
        ("800kib", 800 * 1024),
        ("1048576", MIB),
        ("2M", 2 * MIB),
        ("3 GB", 3_000_000_000),
        ("4MiB/s", 4 * MIB),
        ("7B", 7),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_rate(text), Ok(expected), "{text}");
    }
    for bad in [
        "",
        "MiB",
        "0",
        "0KiB",
        "12XB",
        "-5",
        "1.5MiB",
        "99999999999999999999",
    ] {
        let error = parse_rate(bad).unwrap_err();
        assert!(error.contains("e.g. 50MiB"), "{bad}: {error}");
    }
    assert!(parse_rate("99999999999TiB")
        .unwrap_err()
        .contains("too large"));
}

/// A throttled S3 repository is still remote: the CLI decides from
/// `is_remote` whether the metadata cache is used, and `--limit-upload`
/// once silently turned the cache off.
#[test]
fn a_throttled_remote_backend_stays_remote() {
    let remote = crate::backend::open_location("s3:http://127.0.0.1:9/bucket/prefix").unwrap();
    assert!(remote.is_remote());
    let throttled = ThrottledBackend::new(remote, Some(MIB), None);
    assert!(throttled.is_remote());
    let local: Arc<dyn Backend> = Arc::new(LocalBackend::new("/nonexistent/repository"));
    assert!(!ThrottledBackend::new(local, Some(MIB), None).is_remote());
}
