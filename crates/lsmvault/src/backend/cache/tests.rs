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

mod gate {
    use super::*;
    use crate::backend::cache::state::{self, CacheGate, OpenRecord};
    use crate::backend::counting::CountingBackend;
    use crate::backend::Error;

    /// A memory backend that says it is remote (pack listings may be reused).
    struct Remote(Arc<MemoryBackend>);

    impl Backend for Remote {
        fn location(&self) -> String {
            "s3://bucket/secret-prefix".into()
        }
        fn is_remote(&self) -> bool {
            true
        }
        fn read(&self, kind: ObjectKind, name: &str) -> Result<Vec<u8>> {
            self.0.read(kind, name)
        }
        fn read_range(&self, kind: ObjectKind, name: &str, at: u64, len: u64) -> Result<Vec<u8>> {
            self.0.read_range(kind, name, at, len)
        }
        fn write_if_absent(
            &self,
            kind: ObjectKind,
            name: &str,
            bytes: &[u8],
        ) -> Result<WriteOutcome> {
            self.0.write_if_absent(kind, name, bytes)
        }
        fn replace_config(&self, bytes: &[u8]) -> Result<()> {
            self.0.replace_config(bytes)
        }
        fn list(&self, kind: ObjectKind) -> Result<Vec<ObjectInfo>> {
            self.0.list(kind)
        }
        fn delete(&self, kind: ObjectKind, name: &str) -> Result<()> {
            self.0.delete(kind, name)
        }
        fn exists(&self) -> Result<bool> {
            self.0.exists()
        }
        fn create(&self) -> Result<()> {
            self.0.create()
        }
    }

    struct World {
        _directory: tempfile::TempDir,
        root: PathBuf,
        memory: Arc<MemoryBackend>,
        counting: Arc<CountingBackend>,
        cache: Arc<MetadataCache>,
    }

    const CONFIG: &[u8] = b"config of repository A";

    fn world() -> World {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path().join("root");
        let memory = Arc::new(MemoryBackend::new());
        memory.replace_config(CONFIG).unwrap();
        let counting = Arc::new(CountingBackend::new(Arc::new(Remote(Arc::clone(&memory)))));
        let cache = MetadataCache::for_repository(&root, "aaaa").unwrap();
        World {
            _directory: directory,
            root,
            memory,
            counting,
            cache,
        }
    }

    impl World {
        /// A handle's backend: warm (`checked` false) or cold.
        fn open(&self, checked: bool) -> (Arc<CacheGate>, CachingBackend) {
            let record = OpenRecord {
                config: CONFIG.to_vec(),
                key: None,
            };
            self.cache.remember_open(&record);
            let inner = Arc::clone(&self.counting) as Arc<dyn Backend>;
            let gate = Arc::new(CacheGate::new(
                Arc::clone(&inner),
                Arc::clone(&self.cache),
                &self.root,
                record,
                checked,
            ));
            let backend =
                CachingBackend::with_gate(inner, Arc::clone(&self.cache), Arc::clone(&gate));
            (gate, backend)
        }

        fn requests(&self, kind: ObjectKind, method: &str) -> u64 {
            self.counting.counts().of(kind, method)
        }
    }

    fn object(seed: u8) -> (String, Vec<u8>) {
        snapshot_object(seed)
    }

    /// A cold handle lists and writes an index file, so the cache knows a
    /// non-empty index listing.
    fn filled(world: &World) {
        let (_, backend) = world.open(true);
        backend.list(ObjectKind::Index).unwrap();
        let (name, bytes) = object(1);
        backend
            .write_if_absent(ObjectKind::Index, &name, &bytes)
            .unwrap();
    }

    #[test]
    fn an_unchanged_index_listing_confirms_without_reading_the_config() {
        let world = world();
        filled(&world);
        let (gate, backend) = world.open(false);
        assert!(!gate.is_confirmed());
        backend.list(ObjectKind::Index).unwrap();
        assert!(gate.is_confirmed());
        assert_eq!(world.requests(ObjectKind::Config, "read"), 0);
    }

    #[test]
    fn a_changed_listing_reads_the_config_and_confirms_when_it_is_the_same() {
        let world = world();
        filled(&world);
        let (name, bytes) = object(2);
        world
            .memory
            .write_if_absent(ObjectKind::Index, &name, &bytes)
            .unwrap();
        let (gate, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        assert!(gate.is_confirmed());
        assert_eq!(world.requests(ObjectKind::Config, "read"), 1);
    }

    #[test]
    fn another_config_drops_the_cache_and_refuses_every_write_but_a_lock() {
        let world = world();
        filled(&world);
        state::remember_repository(&world.root, "s3://bucket/secret-prefix", "aaaa");
        world
            .memory
            .replace_config(b"config of repository B")
            .unwrap();
        let (name, bytes) = object(3);
        world
            .memory
            .write_if_absent(ObjectKind::Index, &name, &bytes)
            .unwrap();
        let (gate, backend) = world.open(false);
        // The first write of a sealed object lists the index first.
        let refused = backend
            .write_if_absent(ObjectKind::Pack, &name, &bytes)
            .unwrap_err();
        assert!(matches!(refused, Error::CacheOutdated { .. }), "{refused}");
        assert!(!gate.is_confirmed());
        assert_eq!(world.requests(ObjectKind::Pack, "write_if_absent"), 0);
        assert!(backend.delete(ObjectKind::Snapshot, &name).is_err());
        assert!(backend.list(ObjectKind::Index).is_err());
        assert!(!world.cache.directory().exists());
        assert_eq!(
            state::repository_at(&world.root, "s3://bucket/secret-prefix"),
            None
        );
        // Locks are plain JSON: taking and removing one stays possible.
        backend
            .write_if_absent(ObjectKind::Lock, &name, b"{}")
            .unwrap();
        backend.delete(ObjectKind::Lock, &name).unwrap();
    }

    #[test]
    fn a_deleted_config_is_another_repository() {
        let world = world();
        filled(&world);
        world.memory.delete(ObjectKind::Config, "config").unwrap();
        world
            .memory
            .delete(ObjectKind::Index, &object(1).0)
            .unwrap();
        let (gate, _) = world.open(false);
        assert!(matches!(gate.confirm(), Err(Error::CacheOutdated { .. })));
    }

    #[test]
    fn an_empty_index_listing_never_confirms_by_itself() {
        let world = world();
        let (_, backend) = world.open(true);
        backend.list(ObjectKind::Index).unwrap();
        let (gate, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        assert!(gate.is_confirmed());
        assert_eq!(world.requests(ObjectKind::Config, "read"), 1);
    }

    #[test]
    fn the_pack_listing_is_reused_while_the_index_is_unchanged_and_young() {
        let world = world();
        filled(&world);
        let (pack, bytes) = object(4);
        world
            .memory
            .write_if_absent(ObjectKind::Pack, &pack, &bytes)
            .unwrap();
        {
            let (_, backend) = world.open(false);
            backend.list(ObjectKind::Index).unwrap();
            assert_eq!(backend.list(ObjectKind::Pack).unwrap().len(), 1);
        }
        assert_eq!(world.requests(ObjectKind::Pack, "list"), 1);
        // Lost behind the cache's back: the cached listing stands.
        world.memory.delete(ObjectKind::Pack, &pack).unwrap();
        let (_, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        assert_eq!(backend.list(ObjectKind::Pack).unwrap().len(), 1);
        assert_eq!(world.requests(ObjectKind::Pack, "list"), 1);
        // An age of zero, or `--verify-existing`, lists.
        let (gate, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        gate.set_pack_listing_max_age(Duration::ZERO);
        assert!(backend.list(ObjectKind::Pack).unwrap().is_empty());
        let (gate, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        gate.always_list_packs();
        assert!(backend.list(ObjectKind::Pack).unwrap().is_empty());
        assert_eq!(world.requests(ObjectKind::Pack, "list"), 3);
    }

    #[test]
    fn the_pack_listing_is_not_reused_under_another_index_or_unlisted_index() {
        let world = world();
        filled(&world);
        {
            let (_, backend) = world.open(false);
            backend.list(ObjectKind::Index).unwrap();
            backend.list(ObjectKind::Pack).unwrap();
        }
        // Without an index listing in this process: listed.
        let (_, backend) = world.open(false);
        backend.list(ObjectKind::Pack).unwrap();
        assert_eq!(world.requests(ObjectKind::Pack, "list"), 2);
        // Another client wrote an index file: listed.
        let (name, bytes) = object(5);
        world
            .memory
            .write_if_absent(ObjectKind::Index, &name, &bytes)
            .unwrap();
        let (_, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        backend.list(ObjectKind::Pack).unwrap();
        assert_eq!(world.requests(ObjectKind::Pack, "list"), 3);
    }

    #[test]
    fn own_writes_extend_the_cached_listings() {
        let world = world();
        filled(&world);
        {
            let (gate, backend) = world.open(false);
            backend.list(ObjectKind::Index).unwrap();
            assert_eq!(gate.cached_listing(ObjectKind::Snapshot), None);
            backend.list(ObjectKind::Snapshot).unwrap();
            backend.list(ObjectKind::Pack).unwrap();
            let (pack, bytes) = object(6);
            backend
                .write_if_absent(ObjectKind::Pack, &pack, &bytes)
                .unwrap();
            let (index, bytes) = object(7);
            backend
                .write_if_absent(ObjectKind::Index, &index, &bytes)
                .unwrap();
            let (snapshot, bytes) = object(8);
            backend
                .write_if_absent(ObjectKind::Snapshot, &snapshot, &bytes)
                .unwrap();
        }
        let before = world.counting.counts().requests;
        let (gate, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        assert!(gate.is_confirmed());
        let snapshots = gate.cached_listing(ObjectKind::Snapshot).unwrap();
        assert_eq!(snapshots.len(), 1);
        assert_eq!(backend.list(ObjectKind::Pack).unwrap().len(), 1);
        // One index listing, nothing else.
        assert_eq!(world.counting.counts().requests, before + 1);
    }

    #[test]
    fn an_unchecked_handle_serves_no_cached_listing() {
        let world = world();
        filled(&world);
        {
            let (_, backend) = world.open(false);
            backend.list(ObjectKind::Index).unwrap();
            backend.list(ObjectKind::Snapshot).unwrap();
        }
        let (gate, _) = world.open(false);
        assert_eq!(gate.cached_listing(ObjectKind::Snapshot), None);
        assert_eq!(gate.cached_listing(ObjectKind::Pack), None);
    }

    #[test]
    fn the_location_map_stores_no_location() {
        let world = world();
        state::remember_repository(&world.root, "s3://user:secret@host/bucket", "aaaa");
        assert_eq!(
            state::repository_at(&world.root, "s3://user:secret@host/bucket").as_deref(),
            Some("aaaa")
        );
        for entry in walkdir::WalkDir::new(&world.root) {
            let entry = entry.unwrap();
            assert!(!entry.path().to_string_lossy().contains("secret"));
            if entry.file_type().is_file() {
                let bytes = fs::read(entry.path()).unwrap();
                assert!(!bytes.windows(6).any(|window| window == b"secret"));
            }
        }
    }

    #[test]
    fn damaged_state_entries_are_misses() {
        let world = world();
        filled(&world);
        for entry in fs::read_dir(world.cache.directory().join("state")).unwrap() {
            let path = entry.unwrap().path();
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 1;
            fs::write(&path, bytes).unwrap();
        }
        assert_eq!(world.cache.open_record(), None);
        let (gate, backend) = world.open(false);
        backend.list(ObjectKind::Index).unwrap();
        // The damaged listing could not confirm: the config was read.
        assert!(gate.is_confirmed());
        assert_eq!(world.requests(ObjectKind::Config, "read"), 1);
    }
}
