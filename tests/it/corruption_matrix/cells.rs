//! The matrix's cells: how each damage is applied to each object type, and
//! what each cell expects. Snapshots are numbered 0, 1, 2 (A, B, C); the
//! damaged object is B's, and C's where a second object is needed
//! (replacement takes C's object, swap exchanges B's and C's names).
//!
//! A blob cannot be truncated or deleted inside its pack: truncating one cuts
//! its pack in the middle of it, and deleting one deletes its pack (a blob
//! is stored nowhere else). A pack header's deletion cuts the header and
//! trailer off (the blobs stay).

use std::fs;
use std::path::{Path, PathBuf};

use super::fixture::{pack_path, Base};
use lsmvault::format::index::BlobLocation;
use lsmvault::format::pack::TRAILER_LENGTH;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectType {
    Config,
    KeyFile,
    SnapshotFile,
    IndexFile,
    TreeBlob,
    DataBlob,
    PackHeader,
    LockFile,
    WalObject,
}

impl ObjectType {
    pub const ALL: [ObjectType; 9] = [
        ObjectType::Config,
        ObjectType::KeyFile,
        ObjectType::SnapshotFile,
        ObjectType::IndexFile,
        ObjectType::TreeBlob,
        ObjectType::DataBlob,
        ObjectType::PackHeader,
        ObjectType::LockFile,
        ObjectType::WalObject,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ObjectType::Config => "config",
            ObjectType::KeyFile => "key file",
            ObjectType::SnapshotFile => "snapshot file",
            ObjectType::IndexFile => "index file",
            ObjectType::TreeBlob => "tree blob",
            ObjectType::DataBlob => "data blob",
            ObjectType::PackHeader => "pack header",
            ObjectType::LockFile => "lock file",
            ObjectType::WalObject => "WAL object",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Damage {
    BitFlip,
    Truncation,
    Deletion,
    Replacement,
    Swap,
}

impl Damage {
    pub const ALL: [Damage; 5] = [
        Damage::BitFlip,
        Damage::Truncation,
        Damage::Deletion,
        Damage::Replacement,
        Damage::Swap,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Damage::BitFlip => "bit flip",
            Damage::Truncation => "truncation",
            Damage::Deletion => "deletion",
            Damage::Replacement => "replaced by another",
            Damage::Swap => "two names swapped",
        }
    }
}

/// How the damage must show.
#[derive(Debug, Clone)]
pub enum Detection {
    /// Plain `verify` fails with a finding naming `object`.
    Verify { object: String },
    /// Only `verify --read-data` sees it, naming `object`.
    ReadData { object: String },
    /// The repository cannot be opened: every command fails with `code`,
    /// naming `mention`.
    RefusedToOpen { code: i32, mention: &'static str },
    /// Nothing any reader could tell from an intact repository, for `why`;
    /// verify passes.
    Undetectable { why: &'static str },
}

/// What one cell expects.
#[derive(Debug, Clone)]
pub struct Spec {
    pub detection: Detection,
    /// Snapshots the findings must name (and no others).
    pub named: Vec<usize>,
    /// Paths the findings must name among the affected.
    pub files: Vec<&'static str>,
    /// Text a finding's problem must contain.
    pub problem_mentions: Option<&'static str>,
    /// Snapshots that no longer restore; the others restore byte-exact.
    pub lost: Vec<usize>,
    /// Snapshots `snapshots` lists.
    pub listed: Vec<usize>,
    /// The snapshot `forget` removes.
    pub forget: usize,
    /// Whether the second key's password opens (key cells only).
    pub second_password_opens: Option<bool>,
    /// Whether `repair index` makes every snapshot restore again.
    pub repair_index_heals: bool,
    /// Whether `wal ls` must work (naming the damaged WAL object, if it is
    /// one) and `wal archive` of the database must work (WAL cells).
    pub wal_commands: bool,
    /// Said in the matrix after the observation.
    pub note: &'static str,
}

impl Spec {
    fn new(detection: Detection) -> Spec {
        Spec {
            detection,
            named: Vec::new(),
            files: Vec::new(),
            problem_mentions: None,
            lost: Vec::new(),
            listed: vec![0, 1, 2],
            forget: 2,
            second_password_opens: None,
            repair_index_heals: false,
            wal_commands: false,
            note: "",
        }
    }

    fn verify(object: impl Into<String>) -> Spec {
        Spec::new(Detection::Verify {
            object: object.into(),
        })
    }

    fn read_data(object: impl Into<String>) -> Spec {
        Spec::new(Detection::ReadData {
            object: object.into(),
        })
    }

    fn undetectable(why: &'static str) -> Spec {
        Spec::new(Detection::Undetectable { why })
    }

    /// Snapshots named by the findings and no longer restorable.
    fn losing(mut self, snapshots: &[usize]) -> Spec {
        self.named = snapshots.to_vec();
        self.lost = snapshots.to_vec();
        self.forget = snapshots[0];
        self
    }

    fn naming(mut self, snapshots: &[usize]) -> Spec {
        self.named = snapshots.to_vec();
        self
    }

    fn files(mut self, files: &[&'static str]) -> Spec {
        self.files = files.to_vec();
        self
    }

    fn listing(mut self, snapshots: &[usize]) -> Spec {
        self.listed = snapshots.to_vec();
        self
    }
}

/// Flips one bit (0x40) of the byte at `offset`.
fn flip(path: &Path, offset: usize) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset] ^= 0x40;
    fs::write(path, bytes).unwrap();
}

fn flip_middle(path: &Path) {
    let length = fs::metadata(path).unwrap().len() as usize;
    flip(path, length / 2);
}

fn truncate(path: &Path, length: u64) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(length)
        .unwrap();
}

fn truncate_half(path: &Path) {
    truncate(path, fs::metadata(path).unwrap().len() / 2);
}

fn swap(first: &Path, second: &Path) {
    let parked = first.with_extension("parked");
    fs::rename(first, &parked).unwrap();
    fs::rename(second, first).unwrap();
    fs::rename(&parked, second).unwrap();
}

/// Replaces `target`'s content with a copy of `source`'s.
fn replace(target: &Path, source: &Path) {
    fs::copy(source, target).unwrap();
}

/// The bytes of a blob at its location.
fn blob_bytes(repo: &Path, location: &BlobLocation) -> Vec<u8> {
    let bytes = fs::read(pack_path(repo, &location.pack.to_hex())).unwrap();
    let start = location.entry.offset as usize;
    bytes[start..start + location.entry.stored_length as usize].to_vec()
}

/// Writes `blob` over the blob at `location` (same stored length).
fn overwrite_blob(repo: &Path, location: &BlobLocation, blob: &[u8]) {
    let path = pack_path(repo, &location.pack.to_hex());
    let mut bytes = fs::read(&path).unwrap();
    let start = location.entry.offset as usize;
    bytes[start..start + blob.len()].copy_from_slice(blob);
    fs::write(path, bytes).unwrap();
}

/// Where the pack header starts and its length (from the trailer).
fn header_of(path: &Path) -> (u64, u64) {
    let bytes = fs::read(path).unwrap();
    let trailer_start = bytes.len() - TRAILER_LENGTH;
    let length = u32::from_le_bytes(bytes[trailer_start..trailer_start + 4].try_into().unwrap());
    (trailer_start as u64 - u64::from(length), u64::from(length))
}

/// Damages one object of the repository at `repo` (a copy of `base`) and
/// returns what the cell expects.
pub fn apply(base: &Base, repo: &Path, object: ObjectType, damage: Damage) -> Spec {
    match object {
        ObjectType::Config => config(base, repo, damage),
        ObjectType::KeyFile => key_file(base, repo, damage),
        ObjectType::SnapshotFile => snapshot_file(base, repo, damage),
        ObjectType::IndexFile => index_file(base, repo, damage),
        ObjectType::TreeBlob | ObjectType::DataBlob => blob(base, repo, object, damage),
        ObjectType::PackHeader => pack_header(base, repo, damage),
        ObjectType::LockFile => lock_file(base, repo, damage),
        ObjectType::WalObject => wal_object(base, repo, damage),
    }
}

/// Every command refuses the repository naming `config` (exit `code`).
fn refused(code: i32) -> Spec {
    let mut spec = Spec::new(Detection::RefusedToOpen {
        code,
        mention: "config",
    });
    spec.lost = vec![0, 1, 2];
    spec
}

fn config(base: &Base, repo: &Path, damage: Damage) -> Spec {
    let path = repo.join("config");
    let snapshot_b = repo.join("snapshots").join(&base.snapshots[1]);
    match damage {
        Damage::BitFlip => {
            flip_middle(&path);
            refused(16)
        }
        Damage::Truncation => {
            truncate_half(&path);
            refused(16)
        }
        Damage::Deletion => {
            fs::remove_file(&path).unwrap();
            refused(10)
        }
        Damage::Replacement => {
            fs::write(&path, &base.targets.other_config).unwrap();
            if base.encrypted {
                // The authenticator binds the config to this repository's
                // master key: another repository's config fails it.
                let mut spec = refused(29);
                spec.note = "another encrypted repository's config";
                spec
            } else {
                let mut spec = Spec::undetectable(
                    "a plaintext config carries no authenticator; another repository's \
                     config (its id, chunker, pack size) is taken for this one's",
                );
                spec.note = "new backups would chunk differently";
                spec
            }
        }
        Damage::Swap => {
            // The only other name a config could take: a snapshot file's.
            swap(&path, &snapshot_b);
            let mut spec = refused(16);
            spec.note = "config swapped with B's snapshot file";
            spec
        }
    }
}

fn key_file(base: &Base, repo: &Path, damage: Damage) -> Spec {
    let Some([second, owner]) = &base.targets.keys else {
        let mut spec = Spec::undetectable("a plaintext repository has no key files");
        spec.note = "not applicable";
        assert!(
            !repo.join("keys").exists() || fs::read_dir(repo.join("keys")).unwrap().count() == 0
        );
        return spec;
    };
    let keys = repo.join("keys");
    let (path, other) = (keys.join(second), keys.join(owner));
    let mut spec = match damage {
        Damage::BitFlip => {
            flip_middle(&path);
            Spec::verify(second.as_str())
        }
        Damage::Truncation => {
            truncate_half(&path);
            Spec::verify(second.as_str())
        }
        Damage::Deletion => {
            fs::remove_file(&path).unwrap();
            Spec::undetectable(
                "a deleted key file is what `key remove` leaves: nothing records which keys exist",
            )
        }
        Damage::Replacement => {
            replace(&path, &other);
            Spec::undetectable(
                "another valid key file of this repository: only the lost password could tell",
            )
        }
        Damage::Swap => {
            swap(&path, &other);
            Spec::undetectable("key files have random names, not bound to their content")
        }
    };
    spec.second_password_opens = Some(damage == Damage::Swap);
    spec.note = "the owner's key still opens";
    spec
}

fn snapshot_file(base: &Base, repo: &Path, damage: Damage) -> Spec {
    let directory = repo.join("snapshots");
    let (b, c) = (&base.snapshots[1], &base.snapshots[2]);
    let (path, other) = (directory.join(b), directory.join(c));
    match damage {
        Damage::BitFlip => {
            flip_middle(&path);
            Spec::verify(b.as_str()).losing(&[1]).listing(&[0, 2])
        }
        Damage::Truncation => {
            truncate_half(&path);
            Spec::verify(b.as_str()).losing(&[1]).listing(&[0, 2])
        }
        Damage::Deletion => {
            fs::remove_file(&path).unwrap();
            let mut spec = Spec::undetectable(
                "a deleted snapshot file is what `forget` leaves; its blobs are reported unreferenced",
            )
            .listing(&[0, 2]);
            spec.lost = vec![1];
            spec
        }
        Damage::Replacement => {
            replace(&path, &other);
            Spec::verify(b.as_str()).losing(&[1]).listing(&[0, 2])
        }
        Damage::Swap => {
            swap(&path, &other);
            Spec::verify(b.as_str()).losing(&[1, 2]).listing(&[0])
        }
    }
}

fn index_file(base: &Base, repo: &Path, damage: Damage) -> Spec {
    let directory = repo.join("index");
    let [b, c] = &base.targets.index_files;
    let (path, other) = (directory.join(b), directory.join(c));
    let mut spec = match damage {
        Damage::BitFlip => {
            flip_middle(&path);
            Spec::verify(b.as_str()).losing(&[1])
        }
        Damage::Truncation => {
            truncate_half(&path);
            Spec::verify(b.as_str()).losing(&[1])
        }
        Damage::Deletion => {
            fs::remove_file(&path).unwrap();
            // B's blobs are in no index: its root tree is the first finding.
            Spec::verify(base.targets.root_trees[1].as_str()).losing(&[1])
        }
        Damage::Replacement => {
            replace(&path, &other);
            Spec::verify(b.as_str()).losing(&[1])
        }
        Damage::Swap => {
            swap(&path, &other);
            Spec::verify(b.as_str()).losing(&[1, 2])
        }
    };
    spec.repair_index_heals = true;
    spec
}

fn blob(base: &Base, repo: &Path, object: ObjectType, damage: Damage) -> Spec {
    let (locations, file) = match object {
        ObjectType::TreeBlob => (&base.targets.trees, "sub"),
        _ => (&base.targets.chunks, "sub/x.txt"),
    };
    let [b, c] = locations;
    let pack = pack_path(repo, &b.pack.to_hex());
    let pack_name = b.pack.to_hex();
    let id = b.entry.id.to_hex();
    // Content damage of a data blob shows only when data is read; a tree is
    // read by every verify.
    let content = |object: String| match file {
        "sub" => Spec::verify(object),
        _ => Spec::read_data(object),
    };
    match damage {
        Damage::BitFlip => {
            flip(&pack, (b.entry.offset + b.entry.stored_length / 2) as usize);
            content(id).losing(&[1]).files(&[file])
        }
        Damage::Truncation => {
            truncate(&pack, u64::from(b.entry.offset + b.entry.stored_length / 2));
            let mut spec = Spec::verify(pack_name).losing(&[1]);
            spec.note = "its pack cut in the middle of it";
            spec
        }
        Damage::Deletion => {
            fs::remove_file(&pack).unwrap();
            let mut spec = Spec::verify(pack_name).losing(&[1]);
            spec.note = "a blob lives only in its pack: its pack deleted";
            spec
        }
        Damage::Replacement => {
            overwrite_blob(repo, b, &blob_bytes(repo, c));
            content(id).losing(&[1]).files(&[file])
        }
        Damage::Swap => {
            let (b_bytes, c_bytes) = (blob_bytes(repo, b), blob_bytes(repo, c));
            overwrite_blob(repo, b, &c_bytes);
            overwrite_blob(repo, c, &b_bytes);
            content(id).losing(&[1, 2]).files(&[file])
        }
    }
}

fn pack_header(base: &Base, repo: &Path, damage: Damage) -> Spec {
    let [b, c] = &base.targets.packs;
    let (path, other): (PathBuf, PathBuf) = (pack_path(repo, b), pack_path(repo, c));
    let (start, length) = header_of(&path);
    match damage {
        Damage::BitFlip => {
            flip(&path, (start + length / 2) as usize);
            let mut spec = Spec::verify(b.as_str()).naming(&[1]);
            spec.note = "blobs intact: restore reads them by the index";
            spec
        }
        Damage::Truncation => {
            truncate(&path, start + length / 2);
            let mut spec = Spec::verify(b.as_str()).naming(&[1]);
            spec.note = "blobs intact: restore reads them by the index";
            spec
        }
        Damage::Deletion => {
            truncate(&path, start);
            let mut spec = Spec::verify(b.as_str()).naming(&[1]);
            spec.note = "header and trailer cut off; blobs intact";
            spec
        }
        Damage::Replacement => {
            replace(&path, &other);
            let mut spec = Spec::verify(b.as_str()).losing(&[1]);
            spec.problem_mentions = Some("replaced or swapped");
            spec.note = "C's whole pack under B's pack's name";
            spec
        }
        Damage::Swap => {
            swap(&path, &other);
            let mut spec = Spec::verify(b.as_str()).losing(&[1, 2]);
            spec.problem_mentions = Some("replaced or swapped");
            spec.note = "B's and C's packs swapped";
            spec
        }
    }
}

fn lock_file(base: &Base, repo: &Path, damage: Damage) -> Spec {
    let [first, second] = &base.targets.locks;
    let directory = repo.join("locks");
    let (path, other) = (directory.join(first), directory.join(second));
    match damage {
        Damage::BitFlip => flip_middle(&path),
        Damage::Truncation => truncate_half(&path),
        Damage::Deletion => fs::remove_file(&path).unwrap(),
        Damage::Replacement => replace(&path, &other),
        Damage::Swap => swap(&path, &other),
    }
    // Locks are judged stale by their object's time on the storage (its
    // mtime here): damage changes the content, not when the lock was last
    // written. (A lock object rewritten just now, whatever it says, is a live
    // lock for 30 minutes, like one whose holder's clock is wrong:
    // `tests/it/lean_locks.rs`.)
    let old = filetime::FileTime::from_unix_time(1_577_836_800, 0);
    for lock in [&path, &other] {
        if lock.exists() {
            filetime::set_file_mtime(lock, old).unwrap();
        }
    }
    Spec::undetectable(
        "a lock is not repository data: a damaged lock is nobody's live lock and blocks nothing",
    )
}

fn wal_object(base: &Base, repo: &Path, damage: Damage) -> Spec {
    let [five, six] = &base.targets.wal;
    let directory = repo.join("wal");
    let (path, other) = (directory.join(five), directory.join(six));
    let mut spec = match damage {
        Damage::BitFlip => {
            flip_middle(&path);
            Spec::verify(five.as_str())
        }
        Damage::Truncation => {
            truncate_half(&path);
            Spec::verify(five.as_str())
        }
        Damage::Deletion => {
            fs::remove_file(&path).unwrap();
            Spec::undetectable(
                "the archive keeps no list of its segments; `wal ls` shows the missing sequences",
            )
        }
        Damage::Replacement => {
            replace(&path, &other);
            Spec::verify(five.as_str())
        }
        Damage::Swap => {
            swap(&path, &other);
            Spec::verify(five.as_str())
        }
    };
    spec.wal_commands = true;
    spec.note = "no snapshot needs the WAL archive";
    spec
}
