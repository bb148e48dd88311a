use std::fs;
use std::sync::Arc;

use super::*;
use crate::backend::{LocalBackend, MemoryBackend};

fn snapshot_object(seed: u8) -> (String, Vec<u8>) {
    let bytes = vec![seed; 100];
    (Id::of(&bytes).to_hex(), bytes)
}

fn caching(directory: &Path) -> (Arc<MemoryBackend>, CachingBackend) {
    let inner = Arc::new(MemoryBackend::new());
    let cache = MetadataCache::open(directory.join("cache")).unwrap();
    let backend = CachingBackend::new(Arc::clone(&inner) as Arc<dyn Backend>, cache);
    (inner, backend)
}

#[test]
fn caching_backend_meets_the_contract() {
    let directory = tempfile::tempdir().unwrap();
    let mut cases = 0;
    crate::backend::conformance::run_all(|| {
        cases += 1;
        let inner = LocalBackend::new(directory.path().join(format!("case-{cases}")));
        let cache = MetadataCache::open(directory.path().join(format!("cache-{cases}"))).unwrap();
        CachingBackend::new(Arc::new(inner), cache)
    });
}

#[test]
fn caching_backend_with_a_confirmed_gate_meets_the_contract() {
    let directory = tempfile::tempdir().unwrap();
    let mut cases = 0;
    crate::backend::conformance::run_all(|| {
        cases += 1;
        let inner: Arc<dyn Backend> = Arc::new(LocalBackend::new(
            directory.path().join(format!("case-{cases}")),
        ));
        let root = directory.path().join(format!("cache-{cases}"));
        let cache = MetadataCache::for_repository(&root, "abc").unwrap();
        let record = state::OpenRecord {
            config: Vec::new(),
            key: None,
        };
        let gate = Arc::new(CacheGate::new(
            Arc::clone(&inner),
            Arc::clone(&cache),
            &root,
            record,
            true,
        ));
        CachingBackend::with_gate(inner, cache, gate)
    });
}

#[test]
fn a_cached_object_is_served_without_the_backend() {
    let directory = tempfile::tempdir().unwrap();
    let (inner, backend) = caching(directory.path());
    let (name, bytes) = snapshot_object(1);
    backend
        .write_if_absent(ObjectKind::Snapshot, &name, &bytes)
        .unwrap();
    // Gone from the backend behind the cache's back: still served (the
    // next listing drops it).
    inner.delete(ObjectKind::Snapshot, &name).unwrap();
    assert_eq!(backend.read(ObjectKind::Snapshot, &name).unwrap(), bytes);
    assert!(backend.list(ObjectKind::Snapshot).unwrap().is_empty());
    assert!(backend.read(ObjectKind::Snapshot, &name).is_err());
}

#[test]
fn a_bit_flipped_entry_is_dropped_and_fetched_again() {
    let directory = tempfile::tempdir().unwrap();
    let (_inner, backend) = caching(directory.path());
    let (name, bytes) = snapshot_object(2);
    backend
        .write_if_absent(ObjectKind::Snapshot, &name, &bytes)
        .unwrap();
    let entry = backend.cache().path("snapshots", &name);
    let mut stored = fs::read(&entry).unwrap();
    let last = stored.len() - 1;
    stored[last] ^= 0x01;
    fs::write(&entry, &stored).unwrap();
    assert_eq!(backend.cache().get("snapshots", &name), None);
    assert!(!entry.exists(), "the damaged entry is removed");
    assert_eq!(backend.read(ObjectKind::Snapshot, &name).unwrap(), bytes);
    assert!(entry.exists(), "fetched again and cached");
}

#[test]
fn an_intact_entry_under_another_name_is_not_served() {
    let directory = tempfile::tempdir().unwrap();
    let (_inner, backend) = caching(directory.path());
    let (name, bytes) = snapshot_object(3);
    let (other, other_bytes) = snapshot_object(4);
    backend
        .write_if_absent(ObjectKind::Snapshot, &name, &bytes)
        .unwrap();
    backend.cache().put("snapshots", &name, &other_bytes);
    assert_ne!(name, other);
    assert_eq!(backend.read(ObjectKind::Snapshot, &name).unwrap(), bytes);
}

#[test]
fn config_locks_and_packs_are_not_cached() {
    let directory = tempfile::tempdir().unwrap();
    let (inner, backend) = caching(directory.path());
    backend
        .write_if_absent(ObjectKind::Config, "config", b"one")
        .unwrap();
    backend.read(ObjectKind::Config, "config").unwrap();
    inner.replace_config(b"two").unwrap();
    assert_eq!(backend.read(ObjectKind::Config, "config").unwrap(), b"two");
    let (name, bytes) = snapshot_object(5);
    backend
        .write_if_absent(ObjectKind::Lock, &name, &bytes)
        .unwrap();
    backend
        .write_if_absent(ObjectKind::Pack, &name, &bytes)
        .unwrap();
    backend.read(ObjectKind::Lock, &name).unwrap();
    let cached: Vec<_> = walkdir::WalkDir::new(backend.cache().directory())
        .min_depth(1)
        .into_iter()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.file_type().is_file())
        .collect();
    assert!(cached.is_empty(), "{cached:?}");
}

#[test]
fn a_cache_that_cannot_be_written_is_no_cache_and_no_error() {
    let directory = tempfile::tempdir().unwrap();
    let (_inner, backend) = caching(directory.path());
    // A file where the space directory should be: every write fails.
    fs::write(backend.cache().directory().join("snapshots"), b"in the way").unwrap();
    let (name, bytes) = snapshot_object(6);
    backend
        .write_if_absent(ObjectKind::Snapshot, &name, &bytes)
        .unwrap();
    assert_eq!(backend.read(ObjectKind::Snapshot, &name).unwrap(), bytes);
    assert!(!backend.cache().writable.load(Ordering::Relaxed));
    assert_eq!(backend.list(ObjectKind::Snapshot).unwrap().len(), 1);
    // A cache root that cannot be created gives no cache at all.
    assert!(MetadataCache::open(directory.path().join("cache/snapshots/below")).is_none());
}

#[test]
fn deleting_the_cache_directory_mid_use_is_harmless() {
    let directory = tempfile::tempdir().unwrap();
    let (_inner, backend) = caching(directory.path());
    let (name, bytes) = snapshot_object(7);
    backend
        .write_if_absent(ObjectKind::Snapshot, &name, &bytes)
        .unwrap();
    fs::remove_dir_all(backend.cache().directory()).unwrap();
    assert_eq!(backend.read(ObjectKind::Snapshot, &name).unwrap(), bytes);
    assert_eq!(backend.cache().get("snapshots", &name), Some(bytes));
}

#[test]
fn tree_entries_fan_out_and_retain_drops_the_unlisted() {
    let directory = tempfile::tempdir().unwrap();
    let cache = MetadataCache::open(directory.path()).unwrap();
    let (keep, bytes) = snapshot_object(8);
    let (lose, _) = snapshot_object(9);
    cache.put(TREES, &keep, &bytes);
    cache.put(TREES, &lose, &bytes);
    assert!(cache
        .path(TREES, &keep)
        .starts_with(directory.path().join("trees").join(&keep[..2])));
    cache.retain(TREES, |name| name == keep);
    assert_eq!(cache.get(TREES, &keep), Some(bytes));
    assert_eq!(cache.get(TREES, &lose), None);
}

#[test]
fn names_that_are_not_plain_are_never_paths() {
    let directory = tempfile::tempdir().unwrap();
    let cache = MetadataCache::open(directory.path().join("cache")).unwrap();
    cache.put("snapshots", "../escape", b"x");
    assert!(!directory.path().join("escape").exists());
    assert!(MetadataCache::for_repository(directory.path(), "../x").is_none());
    assert!(MetadataCache::for_repository(directory.path(), "abc123").is_some());
}

#[test]
fn torn_and_empty_entries_are_misses() {
    let directory = tempfile::tempdir().unwrap();
    let (_inner, backend) = caching(directory.path());
    let (name, bytes) = snapshot_object(10);
    backend
        .write_if_absent(ObjectKind::Snapshot, &name, &bytes)
        .unwrap();
    let entry = backend.cache().path("snapshots", &name);
    let stored = fs::read(&entry).unwrap();
    for torn in [
        &stored[..0],
        &stored[..10],
        &stored[..HASH_LENGTH],
        &stored[..stored.len() - 1],
    ] {
        fs::write(&entry, torn).unwrap();
        assert_eq!(backend.cache().get("snapshots", &name), None);
        assert_eq!(backend.read(ObjectKind::Snapshot, &name).unwrap(), bytes);
    }
}

/// A backup that stores the blobs of a damaged index file again produces
/// the same index file name: the read-back that decides whether to replace
/// the file must see the backend's damaged copy, not an intact cached one.
#[test]
fn an_existing_object_is_read_back_from_the_backend() {
    let directory = tempfile::tempdir().unwrap();
    let (inner, backend) = caching(directory.path());
    let bytes = vec![7u8; 64];
    let name = Id::of(&bytes).to_hex();
    backend
        .write_if_absent(ObjectKind::Index, &name, &bytes)
        .unwrap();
    let mut damaged = bytes.clone();
    damaged[0] ^= 1;
    inner.delete(ObjectKind::Index, &name).unwrap();
    inner
        .write_if_absent(ObjectKind::Index, &name, &damaged)
        .unwrap();
    assert_eq!(
        backend
            .write_if_absent(ObjectKind::Index, &name, &bytes)
            .unwrap(),
        WriteOutcome::AlreadyExisted
    );
    assert_eq!(backend.read(ObjectKind::Index, &name).unwrap(), damaged);
    // The damaged copy read was not cached.
    assert_eq!(backend.cache().get("index", &name), None);
}

#[test]
fn the_cache_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let cache = MetadataCache::for_repository(&directory.path().join("root"), "abc").unwrap();
    for path in [cache.directory(), &directory.path().join("root")] {
        let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", path.display());
    }
}

mod gate;
