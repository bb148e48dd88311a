//! The cache gate (`state.rs`): when cached config, key file and listings
//! are believed, against backends that count their requests.

use super::*;
use crate::backend::cache::state::{self, CacheGate, OpenRecord};
use crate::backend::counting::CountingBackend;
use crate::backend::Error;

/// A memory backend that says it is remote (pack listings may be reused),
/// at a location of its own.
struct Remote(Arc<MemoryBackend>, &'static str);

/// Where [`World`]'s repository lives.
const LOCATION: &str = "s3://bucket/secret-prefix";
/// Where its copy lives.
const MIRROR: &str = "s3://mirror/secret-prefix";

impl Backend for Remote {
    fn location(&self) -> String {
        self.1.into()
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
    fn write_if_absent(&self, kind: ObjectKind, name: &str, bytes: &[u8]) -> Result<WriteOutcome> {
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
    let counting = Arc::new(CountingBackend::new(Arc::new(Remote(
        Arc::clone(&memory),
        LOCATION,
    ))));
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
        self.open_on(Arc::clone(&self.counting) as Arc<dyn Backend>, checked)
    }

    /// The same on `inner` (another location of the repository).
    fn open_on(&self, inner: Arc<dyn Backend>, checked: bool) -> (Arc<CacheGate>, CachingBackend) {
        let record = OpenRecord {
            config: CONFIG.to_vec(),
            key: None,
        };
        self.cache.remember_open(&record);
        let gate = Arc::new(CacheGate::new(
            Arc::clone(&inner),
            Arc::clone(&self.cache),
            &self.root,
            record,
            checked,
        ));
        let backend = CachingBackend::with_gate(inner, Arc::clone(&self.cache), Arc::clone(&gate));
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
    state::remember_repository(&world.root, LOCATION, "aaaa");
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
    assert_eq!(state::repository_at(&world.root, LOCATION), None);
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
    // The listings are in a subdirectory per location.
    for entry in walkdir::WalkDir::new(world.cache.directory().join("state")) {
        let path = entry.unwrap().into_path();
        if !path.is_file() {
            continue;
        }
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

/// A copy of the world's repository at [`MIRROR`] (same config, same index
/// files) without its packs, as a mirror that lost them.
fn mirror_without_packs(world: &World) -> Arc<CountingBackend> {
    let copy = Arc::new(MemoryBackend::new());
    copy.replace_config(CONFIG).unwrap();
    for kind in [ObjectKind::Index, ObjectKind::Snapshot] {
        for object in world.memory.list(kind).unwrap() {
            let bytes = world.memory.read(kind, &object.name).unwrap();
            copy.write_if_absent(kind, &object.name, &bytes).unwrap();
        }
    }
    Arc::new(CountingBackend::new(Arc::new(Remote(copy, MIRROR))))
}

/// The world's repository with one pack, whose listing a warm handle at
/// [`LOCATION`] cached.
fn with_cached_pack_listing(world: &World) {
    filled(world);
    let (pack, bytes) = object(4);
    world
        .memory
        .write_if_absent(ObjectKind::Pack, &pack, &bytes)
        .unwrap();
    let (_, backend) = world.open(false);
    backend.list(ObjectKind::Index).unwrap();
    assert_eq!(backend.list(ObjectKind::Pack).unwrap().len(), 1);
}

/// Review finding F4: two copies of one repository share its id, not what
/// each holds. The copy's pack listing is its own, cold or warm, and the
/// original's stays cached beside it.
#[test]
fn a_copy_at_another_location_never_serves_the_originals_pack_listing() {
    let world = world();
    with_cached_pack_listing(&world);
    let mirror = mirror_without_packs(&world);
    for checked in [true, false] {
        let (gate, backend) = world.open_on(Arc::clone(&mirror) as Arc<dyn Backend>, checked);
        backend.list(ObjectKind::Index).unwrap();
        assert!(gate.is_confirmed());
        assert!(backend.list(ObjectKind::Pack).unwrap().is_empty());
    }
    // The cold handle listed; the warm one reused the copy's own listing.
    assert_eq!(mirror.counts().of(ObjectKind::Pack, "list"), 1);
    let (_, backend) = world.open(false);
    backend.list(ObjectKind::Index).unwrap();
    assert_eq!(backend.list(ObjectKind::Pack).unwrap().len(), 1);
    assert_eq!(world.requests(ObjectKind::Pack, "list"), 1);
}

/// Listings as an older version stored them (`state/` itself, whichever
/// location listed last) are never believed, at any location, and are
/// removed.
#[test]
fn listings_of_the_older_layout_are_removed_unread() {
    let world = world();
    with_cached_pack_listing(&world);
    let state = world.cache.directory().join("state");
    let located: Vec<PathBuf> = walkdir::WalkDir::new(&state)
        .min_depth(2)
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .collect();
    assert!(
        located.iter().any(|path| path.ends_with("packlisting")),
        "{located:?}"
    );
    for path in &located {
        fs::rename(path, state.join(path.file_name().unwrap())).unwrap();
    }
    let mirror = mirror_without_packs(&world);
    let (gate, backend) = world.open_on(Arc::clone(&mirror) as Arc<dyn Backend>, false);
    for entry in ["indexlisting", "snapshotlisting", "packlisting"] {
        assert!(!state.join(entry).exists(), "{entry}");
    }
    backend.list(ObjectKind::Index).unwrap();
    // No cached index listing confirmed it: the config was read.
    assert!(gate.is_confirmed());
    assert_eq!(mirror.counts().of(ObjectKind::Config, "read"), 1);
    assert!(backend.list(ObjectKind::Pack).unwrap().is_empty());
    assert_eq!(mirror.counts().of(ObjectKind::Pack, "list"), 1);
}

/// An encrypted repository's listings are bound to its key: a gate bound
/// to another key (another repository opened by the same password) does
/// not take them as its own, and reads the config instead.
#[test]
fn listings_made_under_one_key_do_not_confirm_a_gate_under_another() {
    let world = world();
    let open = |key: Option<[u8; 32]>, checked: bool| {
        let (gate, backend) = world.open(checked);
        if let Some(key) = key {
            gate.bind_to_key(key);
        }
        (gate, backend)
    };
    {
        let (_, backend) = open(Some([1; 32]), true);
        backend.list(ObjectKind::Index).unwrap();
        let (name, bytes) = object(1);
        backend
            .write_if_absent(ObjectKind::Index, &name, &bytes)
            .unwrap();
    }
    for (reads, key) in [(0, Some([1; 32])), (1, Some([2; 32]))] {
        let (gate, backend) = open(key, false);
        backend.list(ObjectKind::Index).unwrap();
        assert!(gate.is_confirmed());
        assert_eq!(world.requests(ObjectKind::Config, "read"), reads);
    }
}

/// A cold open of an encrypted repository lists index files before it
/// knows the key: that listing is written once the key is bound (keyed),
/// never unkeyed, so the next warm open is confirmed by it.
#[test]
fn listings_made_before_the_key_is_bound_are_written_under_it() {
    let world = world();
    filled(&world);
    let state = world.cache.directory().join("state");
    fs::remove_dir_all(&state).unwrap();
    {
        let (gate, backend) = world.open(true);
        gate.expect_key();
        backend.list(ObjectKind::Index).unwrap();
        let written = walkdir::WalkDir::new(&state)
            .into_iter()
            .filter_map(Result::ok)
            .any(|entry| entry.file_name() == "indexlisting");
        assert!(!written);
        gate.bind_to_key([1; 32]);
    }
    let (gate, backend) = world.open(false);
    gate.bind_to_key([1; 32]);
    backend.list(ObjectKind::Index).unwrap();
    assert!(gate.is_confirmed());
    assert_eq!(world.requests(ObjectKind::Config, "read"), 0);
}
