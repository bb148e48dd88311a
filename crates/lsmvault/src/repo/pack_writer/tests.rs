//! The upload pool seen through a [`PackWriter`]: the bound on packs and
//! bytes in flight, the order of the summary, and a failed upload failing
//! the whole write.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;
use crate::backend::MemoryBackend;
use crate::repo::InitOptions;

const MIB: usize = 1 << 20;

/// A 1 MiB-pack repository in memory.
fn repository() -> Repository {
    let options = InitOptions {
        pack_size: MIB as u32,
        ..InitOptions::default()
    };
    Repository::init(Arc::new(MemoryBackend::new()), options).unwrap()
}

/// Blobs of `size` bytes, each different (and incompressible enough).
fn blob(number: u32, size: usize) -> Vec<u8> {
    let mut state = u64::from(number).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Records how many publishes overlap; fails the publish numbered `fail_at`.
struct RecordingSink {
    running: AtomicUsize,
    most_running: AtomicUsize,
    calls: AtomicUsize,
    fail_at: Option<usize>,
    /// Panic (rather than fail) at `fail_at`.
    panic: bool,
    published: Mutex<Vec<Id>>,
    /// How long a publish takes: longer than adding a pack's blobs, even
    /// in a debug build on a loaded machine, so publishes overlap.
    delay: Duration,
}

impl Default for RecordingSink {
    fn default() -> Self {
        RecordingSink {
            running: AtomicUsize::new(0),
            most_running: AtomicUsize::new(0),
            calls: AtomicUsize::new(0),
            fail_at: None,
            panic: false,
            published: Mutex::new(Vec::new()),
            delay: Duration::from_millis(150),
        }
    }
}

impl PackSink for RecordingSink {
    fn publish(&self, id: &Id, bytes: Bytes) -> Result<()> {
        assert_eq!(Id::of(&bytes), *id, "a pack published with other bytes");
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let running = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_running.fetch_max(running, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        self.running.fetch_sub(1, Ordering::SeqCst);
        if Some(call) == self.fail_at && self.panic {
            panic!("publish {call} panicked");
        }
        if Some(call) == self.fail_at {
            return Err(crate::error::Error::io(
                "test sink",
                std::io::Error::other("publish refused"),
            ));
        }
        self.published.lock().unwrap().push(*id);
        Ok(())
    }
}

/// Writes `count` blobs of 600 KiB (two to a 1 MiB pack) through `sink`.
fn write(
    repository: &Repository,
    sink: Arc<RecordingSink>,
    uploads: usize,
    limit: u64,
    count: u32,
) -> (Result<WriteSummary>, u64) {
    write_spilling(repository, sink, uploads, limit, count, None)
}

/// [`write`], spilling packs to files in `spill` if given.
fn write_spilling(
    repository: &Repository,
    sink: Arc<RecordingSink>,
    uploads: usize,
    limit: u64,
    count: u32,
    spill: Option<&std::path::Path>,
) -> (Result<WriteSummary>, u64) {
    let known = Arc::new(Index::default());
    let blobs: Vec<Vec<u8>> = (0..count).map(|number| blob(number, 600 << 10)).collect();
    let spill = spill.map(std::path::Path::to_path_buf);
    let writer = PackWriter::with_uploads(repository, known, sink, uploads, limit, spill).unwrap();
    for data in &blobs {
        let id = writer.keys().blob_id(data);
        if let Err(error) = writer.add(id, BlobKind::Data, data) {
            return (Err(error), writer.peak_bytes());
        }
    }
    let peak = writer.peak_bytes();
    (writer.finish(), peak)
}

#[test]
fn uploads_overlap_up_to_the_count_and_the_summary_keeps_hand_over_order() {
    let repository = repository();
    let sink = Arc::new(RecordingSink::default());
    let (summary, _) = write(&repository, Arc::clone(&sink), 4, 64 * MIB as u64, 40);
    let summary = summary.unwrap();
    assert_eq!(summary.packs, 20);
    let most = sink.most_running.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "{most} publishes at once");
    // Every published pack is in the summary, and only those.
    let mut published = sink.published.lock().unwrap().clone();
    let mut summarized: Vec<Id> = summary.published.iter().map(|member| member.pack).collect();
    published.sort();
    summarized.sort();
    assert_eq!(published, summarized);
    assert_eq!(summary.locations.len(), 40);
    // Hand-over order: blobs were added in order, so their packs appear in
    // order, and `published` lists packs in the order of `locations`.
    let mut packs_in_location_order: Vec<Id> = Vec::new();
    for location in &summary.locations {
        if packs_in_location_order.last() != Some(&location.pack) {
            packs_in_location_order.push(location.pack);
        }
    }
    let in_summary: Vec<Id> = summary.published.iter().map(|member| member.pack).collect();
    assert_eq!(packs_in_location_order, in_summary);
}

#[test]
fn bytes_in_flight_stay_within_the_limit() {
    let repository = repository();
    let sink = Arc::new(RecordingSink::default());
    // Room for two ~1.2 MiB packs, not three, although 8 uploads may run.
    let limit = 5 * MIB as u64 / 2;
    let (summary, peak) = write(&repository, Arc::clone(&sink), 8, limit, 30);
    summary.unwrap();
    assert!(
        peak <= limit,
        "{peak} bytes in flight over a limit of {limit}"
    );
    assert!(peak > MIB as u64, "packs did not overlap at all: {peak}");
    assert!(sink.most_running.load(Ordering::SeqCst) <= 2);
}

#[test]
fn a_pack_larger_than_the_limit_still_goes_alone() {
    let repository = repository();
    let sink = Arc::new(RecordingSink::default());
    let (summary, _) = write(&repository, Arc::clone(&sink), 4, 1, 6);
    assert_eq!(summary.unwrap().packs, 3);
    assert_eq!(sink.most_running.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failed_upload_fails_the_whole_write() {
    for uploads in [1, 2, 8] {
        let repository = repository();
        let sink = Arc::new(RecordingSink {
            fail_at: Some(3),
            ..RecordingSink::default()
        });
        let (summary, _) = write(&repository, Arc::clone(&sink), uploads, 64 * MIB as u64, 80);
        let error = summary.expect_err("a refused publish must fail the write");
        assert!(error.to_string().contains("publish refused"), "{error}");
        // Once the failure is known no pack is handed over: only those
        // already being published (at most one round of `uploads`) finish,
        // not the 40 the writer was given.
        let published = sink.published.lock().unwrap().len();
        assert!(
            published <= 2 * uploads + 2,
            "{published} packs published after a failure with {uploads} uploads"
        );
    }
}

#[test]
fn the_upload_count_comes_from_the_backend_kind() {
    // The variable is not set in unit tests.
    if std::env::var_os(crate::repo::upload_pool::UPLOADS_VARIABLE).is_none() {
        assert_eq!(upload_count(true).unwrap(), 8);
        assert_eq!(upload_count(false).unwrap(), 2);
    }
}

#[test]
fn adders_on_many_threads_wait_for_the_budget_and_every_blob_is_located() {
    let repository = repository();
    let sink = Arc::new(RecordingSink::default());
    let limit = 5 * MIB as u64 / 2;
    let known = Arc::new(Index::default());
    let writer =
        PackWriter::with_uploads(&repository, known, sink.clone(), 8, limit, None).unwrap();
    std::thread::scope(|scope| {
        for thread in 0..8u32 {
            let writer = &writer;
            scope.spawn(move || {
                for number in 0..5 {
                    let data = blob(thread * 100 + number, 600 << 10);
                    let id = writer.keys().blob_id(&data);
                    assert!(writer.add(id, BlobKind::Data, &data).unwrap());
                }
            });
        }
    });
    let peak = writer.peak_bytes();
    let summary = writer.finish().unwrap();
    assert!(
        peak <= limit,
        "{peak} bytes in flight over a limit of {limit}"
    );
    assert_eq!(summary.locations.len(), 40);
    assert_eq!(summary.packs as usize, sink.published.lock().unwrap().len());
}

#[test]
fn a_panicking_upload_fails_the_write_instead_of_hanging_it() {
    for uploads in [1, 3] {
        let repository = repository();
        let sink = Arc::new(RecordingSink {
            fail_at: Some(2),
            panic: true,
            ..RecordingSink::default()
        });
        // A budget of one pack: adders wait for the panicked upload's bytes.
        let (summary, _) = write(&repository, sink, uploads, MIB as u64, 20);
        let error = summary.expect_err("a panicked upload must fail the write");
        assert!(error.to_string().contains("panicked"), "{error}");
    }
}

#[test]
fn spilled_packs_upload_eight_at_once_with_no_finished_pack_held_in_memory() {
    let repository = repository();
    let spill = tempfile::tempdir().unwrap();
    let sink = Arc::new(RecordingSink::default());
    let (summary, peak) = write_spilling(
        &repository,
        Arc::clone(&sink),
        8,
        SPILL_MEMORY,
        40,
        Some(spill.path()),
    );
    let summary = summary.unwrap();
    assert_eq!(summary.packs, 20);
    assert_eq!(summary.locations.len(), 40);
    // One pack at a time between the writer and its spill file...
    assert!(peak <= 2 * MIB as u64, "{peak} bytes of packs in memory");
    // ...and yet the uploads overlap (from their files), past what a
    // budget of one pack in memory would allow.
    let most = sink.most_running.load(Ordering::SeqCst);
    assert!(most >= 4, "only {most} spilled uploads at once");
    // The sink saw every pack whole (it checks each pack's bytes against
    // its name), and no spill file is left with a name.
    assert_eq!(sink.published.lock().unwrap().len(), 20);
    assert_eq!(std::fs::read_dir(spill.path()).unwrap().count(), 0);
}

#[test]
fn a_spill_directory_that_cannot_take_the_pack_fails_the_write_naming_it() {
    let repository = repository();
    let parent = tempfile::tempdir().unwrap();
    let missing = parent.path().join("no-such-directory");
    let sink = Arc::new(RecordingSink::default());
    let (summary, _) = write_spilling(&repository, sink, 8, SPILL_MEMORY, 6, Some(&missing));
    let error = summary.expect_err("a pack that cannot be spilled must fail the write");
    let message = error.to_string();
    assert!(
        message.contains(&missing.display().to_string()),
        "{message}"
    );
    assert!(message.contains("TMPDIR"), "{message}");
    assert_eq!(error.code(), crate::error::ErrorCode::Io);
}

#[test]
fn a_spilled_pack_replaces_a_damaged_copy_and_leaves_an_intact_one() {
    let backend: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let sink = BackendSink(Arc::clone(&backend));
    let spill = tempfile::tempdir().unwrap();
    // Larger than one checked piece, so the check reads several ranges.
    let pack = blob(7, 9 * MIB + 123);
    let id = Id::of(&pack);
    let name = id.to_hex();
    let spilled = SpillFile::write(spill.path(), &pack).unwrap();
    for damaged in [
        pack[..pack.len() - 1].to_vec(),
        [pack.as_slice(), b"x"].concat(),
        {
            let mut flipped = pack.clone();
            flipped[5 * MIB] ^= 1;
            flipped
        },
    ] {
        backend.delete(ObjectKind::Pack, &name).unwrap();
        backend
            .write_if_absent(ObjectKind::Pack, &name, &damaged)
            .unwrap();
        sink.publish_spilled(&id, &spilled).unwrap();
        assert!(backend.read(ObjectKind::Pack, &name).unwrap() == pack);
    }
    // An intact copy is left as it is.
    sink.publish_spilled(&id, &spilled).unwrap();
    assert!(backend.read(ObjectKind::Pack, &name).unwrap() == pack);
}

#[test]
fn slow_uploads_raise_the_auto_level_and_fast_ones_leave_it() {
    let repository = repository();
    let writer_level = |sink: Arc<RecordingSink>, limit: u64| {
        let known = Arc::new(Index::default());
        let writer = PackWriter::with_uploads(&repository, known, sink, 2, limit, None).unwrap();
        for number in 100..120 {
            let data = blob(number, 600 << 10);
            let id = writer.keys().blob_id(&data);
            writer.add(id, BlobKind::Data, &data).unwrap();
        }
        let level = writer.peak_level();
        writer.finish().unwrap();
        level
    };
    // Uploads behind (150 ms a pack, two at once, a 4 MiB budget of 1 MiB
    // packs): the backlog reaches half the budget and the level climbs.
    let behind = writer_level(Arc::new(RecordingSink::default()), 4 * MIB as u64);
    assert!(
        behind > 3,
        "the level stayed at {behind} with the uploads behind"
    );
    // Uploads instant, a roomy budget: never half full, the level stays.
    let instant = Arc::new(RecordingSink {
        delay: Duration::ZERO,
        ..RecordingSink::default()
    });
    assert_eq!(writer_level(instant, 64 * MIB as u64), 3);
}

/// An object store whose link fails: every ranged read is a transient
/// error, and once `down` is set every write is too. Counts deletes.
struct FlakyBackend {
    inner: Arc<dyn Backend>,
    down: std::sync::atomic::AtomicBool,
    deletes: AtomicUsize,
}

impl FlakyBackend {
    fn transient(what: &str) -> crate::backend::Error {
        crate::backend::Error::Transient {
            subject: crate::backend::Subject::Location,
            context: format!("{what} (test: the link is down)"),
            source: "HTTP 503".into(),
        }
    }
}

impl Backend for FlakyBackend {
    fn location(&self) -> String {
        self.inner.location()
    }

    fn replace_config(&self, bytes: &[u8]) -> crate::backend::Result<()> {
        self.inner.replace_config(bytes)
    }

    fn list(&self, kind: ObjectKind) -> crate::backend::Result<Vec<crate::backend::ObjectInfo>> {
        self.inner.list(kind)
    }

    fn exists(&self) -> crate::backend::Result<bool> {
        self.inner.exists()
    }

    fn create(&self) -> crate::backend::Result<()> {
        self.inner.create()
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn read(&self, kind: ObjectKind, name: &str) -> crate::backend::Result<Vec<u8>> {
        self.inner.read(kind, name)
    }

    fn read_range(
        &self,
        _kind: ObjectKind,
        _name: &str,
        _offset: u64,
        _length: u64,
    ) -> crate::backend::Result<Vec<u8>> {
        self.down.store(true, Ordering::SeqCst);
        Err(FlakyBackend::transient("reading a range"))
    }

    fn write_if_absent(
        &self,
        kind: ObjectKind,
        name: &str,
        bytes: &[u8],
    ) -> crate::backend::Result<WriteOutcome> {
        if self.down.load(Ordering::SeqCst) {
            return Err(FlakyBackend::transient("writing"));
        }
        self.inner.write_if_absent(kind, name, bytes)
    }

    fn delete(&self, kind: ObjectKind, name: &str) -> crate::backend::Result<()> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(kind, name)
    }
}

/// Attack (review of the spilled uploads): a pack that is already stored
/// intact (committed snapshots name it) and met again by a spilled upload
/// must never be deleted because the check could not read it. A transient
/// error is not proof of damage; deleting on it and then failing the
/// re-upload loses a pack older snapshots need.
#[test]
fn a_transient_error_while_checking_an_existing_pack_never_deletes_it() {
    let memory: Arc<dyn Backend> = Arc::new(MemoryBackend::new());
    let pack = blob(8, 5 * MIB + 17);
    let id = Id::of(&pack);
    let name = id.to_hex();
    memory
        .write_if_absent(ObjectKind::Pack, &name, &pack)
        .unwrap();
    let flaky = Arc::new(FlakyBackend {
        inner: Arc::clone(&memory),
        down: std::sync::atomic::AtomicBool::new(false),
        deletes: AtomicUsize::new(0),
    });
    let sink = BackendSink(Arc::clone(&flaky) as Arc<dyn Backend>);
    let spill = tempfile::tempdir().unwrap();
    let spilled = SpillFile::write(spill.path(), &pack).unwrap();
    // Failing is fine (the link is down); losing the stored pack is not.
    let _ = sink.publish_spilled(&id, &spilled);
    assert_eq!(
        flaky.deletes.load(Ordering::SeqCst),
        0,
        "an intact stored pack was deleted on a transient read error"
    );
    assert!(
        memory.read(ObjectKind::Pack, &name).ok() == Some(pack),
        "the intact stored pack is gone"
    );
}
