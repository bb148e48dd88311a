//! Reed-Solomon parity over groups of packs (`init --parity`), `verify`'s
//! word on what parity can repair, and `repair packs`: up to the parity
//! count of lost or damaged packs per group come back byte-exact, one more is
//! named precisely with the snapshots and files it takes.
//!
//! Repositories here have 1 MiB packs and 10+2 parity, so three backups of
//! about 12 MB each fill several groups. Parity across prune, `wal archive`
//! and interrupted commands: `parity_maintenance.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use lsmvault::codec::chunker::ChunkerParams;
use lsmvault::codec::compression::Compression;
use lsmvault::format::parity::{GroupMember, ParityHeader};
use lsmvault::format::tree::EntryKind;
use lsmvault::repo::parity::ParityGroup;
use lsmvault::{Id, InitOptions, ParityConfig, Repository};

use crate::common::kill_loop::{kill_iterations, KillLoop};
use crate::common::*;

const PASSWORD: &str = "parity password";

/// A 10+2 repository with three snapshots: generation `g` holds the files of
/// generations 1..=g (`gen{g}-{i}.sst`), each source kept for comparison.
pub(crate) struct ParityFixture {
    _work: tempfile::TempDir,
    pub(crate) root: PathBuf,
    pub(crate) repo: PathBuf,
    password: Option<&'static str>,
    /// Source directory and snapshot id of each generation, oldest first.
    pub(crate) generations: Vec<(PathBuf, String)>,
}

impl ParityFixture {
    pub(crate) fn new(password: Option<&'static str>, generations: &[&[u32]]) -> ParityFixture {
        let work = tempfile::tempdir().unwrap();
        let root = work.path().to_path_buf();
        let repo = root.join("repo");
        Repository::init_local(
            &repo,
            InitOptions {
                // Small chunks, so packs close near their 1 MiB target and
                // each generation fills a group of 10.
                chunker: ChunkerParams {
                    min_size: 64 * 1024,
                    avg_size: 128 * 1024,
                    max_size: 256 * 1024,
                    ..ChunkerParams::default()
                },
                pack_size: 1024 * 1024,
                compression: Compression::Off,
                password: password.map(str::to_string),
                kdf_target: Duration::from_millis(1),
                parity: Some(ParityConfig {
                    data_packs: 10,
                    parity_packs: 2,
                }),
                ..InitOptions::default()
            },
        )
        .unwrap();
        let mut fixture = ParityFixture {
            _work: work,
            root,
            repo,
            password,
            generations: Vec::new(),
        };
        for (number, batches) in generations.iter().enumerate() {
            let source = fixture.root.join(format!("source{}", number + 1));
            fs::create_dir(&source).unwrap();
            for batch in *batches {
                for file in 0..8u32 {
                    fs::write(
                        source.join(format!("gen{batch}-{file}.sst")),
                        seeded_bytes(u64::from(batch * 100 + file + 1), 1_500_000),
                    )
                    .unwrap();
                }
            }
            let json = fixture.ok(&["--json", "backup", source.to_str().unwrap()]);
            let snapshot: serde_json::Value = serde_json::from_str(&json).unwrap();
            let id = snapshot["id"].as_str().unwrap().to_string();
            fixture.generations.push((source, id));
        }
        fixture
    }

    /// Three generations, each adding 8 files of 1.5 MB.
    pub(crate) fn three_generations(password: Option<&'static str>) -> ParityFixture {
        ParityFixture::new(password, &[&[1], &[1, 2], &[1, 2, 3]])
    }

    pub(crate) fn run(&self, args: &[&str]) -> Output {
        lsmvault_with_password(&self.repo, self.password, args)
    }

    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "lsmvault {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Runs a command expected to fail; returns stdout and stderr together.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            !output.status.success(),
            "lsmvault {args:?} succeeded:\n{text}"
        );
        text
    }

    pub(crate) fn open(&self) -> Repository {
        match self.password {
            Some(password) => Repository::open_local_with_password(&self.repo, password).unwrap(),
            None => Repository::open_local(&self.repo).unwrap(),
        }
    }

    /// Every parity group, full groups (10 packs) first.
    pub(crate) fn groups(&self) -> Vec<ParityGroup> {
        let listing = self.open().parity_listing(false).unwrap();
        assert!(listing.damaged.is_empty(), "{:?}", listing.damaged);
        let mut groups: Vec<ParityGroup> = listing.groups.into_values().collect();
        groups.sort_by_key(|group| std::cmp::Reverse(group.header.members.len()));
        groups
    }

    pub(crate) fn pack_path(&self, pack: &Id) -> PathBuf {
        let name = pack.to_hex();
        self.repo.join("data").join(&name[..2]).join(name)
    }

    pub(crate) fn parity_path(&self, name: &str) -> PathBuf {
        self.repo.join("parity").join(name)
    }

    /// Restores every snapshot and compares it with its source.
    pub(crate) fn assert_every_snapshot_restores(&self) {
        for (number, (source, id)) in self.generations.iter().enumerate() {
            self.assert_restores(number, source, id);
        }
    }

    pub(crate) fn assert_restores(&self, number: usize, source: &Path, id: &str) {
        let target = self.root.join(format!("restored-{number}-{}", unique()));
        self.ok(&["restore", id, "--target", target.to_str().unwrap()]);
        assert_same_tree(source, &target);
    }

    /// The packs of every group whose parity objects all exist, for
    /// comparing before and after.
    pub(crate) fn parity_names(&self) -> BTreeSet<String> {
        fs::read_dir(self.repo.join("parity"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }

    /// The files of snapshot `id` with a chunk in one of `packs`.
    pub(crate) fn files_in_packs(&self, id: &str, packs: &BTreeSet<Id>) -> BTreeSet<String> {
        let repository = self.open();
        let snapshot = repository.find_snapshot(id).unwrap();
        let index = repository.index().unwrap();
        let tree = repository.read_tree(&snapshot.snapshot.tree).unwrap();
        tree.entries
            .iter()
            .filter(|entry| match &entry.kind {
                EntryKind::File { chunks, .. } => chunks.iter().any(|chunk| {
                    index
                        .locations(chunk)
                        .any(|location| packs.contains(&location.pack))
                }),
                _ => false,
            })
            .map(|entry| String::from_utf8_lossy(&entry.name).into_owned())
            .collect()
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Damage {
    Delete,
    FlipBit,
    Truncate,
}

pub(crate) fn damage(path: &Path, how: Damage) {
    match how {
        Damage::Delete => fs::remove_file(path).unwrap(),
        Damage::FlipBit => {
            let mut bytes = fs::read(path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x10;
            write_over(path, &bytes);
        }
        Damage::Truncate => {
            let bytes = fs::read(path).unwrap();
            write_over(path, &bytes[..bytes.len() / 3]);
        }
    }
}

/// Object files are read-only: replace, do not open for writing.
fn write_over(path: &Path, bytes: &[u8]) {
    fs::remove_file(path).unwrap();
    fs::write(path, bytes).unwrap();
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn two_destroyed_packs_of_a_group_are_rebuilt_and_every_snapshot_restores() {
    let fixture = ParityFixture::three_generations(None);
    let groups = fixture.groups();
    let sizes: Vec<usize> = groups
        .iter()
        .map(|group| group.header.members.len())
        .collect();
    assert!(sizes.len() >= 3 && sizes[0] == 10, "group sizes {sizes:?}");
    // Two packs of one group, one of another: delete + flip, and truncate.
    let first = &groups[0].header.members;
    let second = &groups[1].header.members;
    damage(&fixture.pack_path(&first[0].pack), Damage::Delete);
    damage(&fixture.pack_path(&first[7].pack), Damage::FlipBit);
    damage(&fixture.pack_path(&second[1].pack), Damage::Truncate);

    let verify = fixture.fails(&["verify", "--read-data"]);
    for pack in [&first[0].pack, &first[7].pack, &second[1].pack] {
        assert!(verify.contains(&pack.to_hex()), "{verify}");
    }
    assert!(
        verify.contains("repairable: `lsmvault repair packs`"),
        "{verify}"
    );
    assert!(!verify.contains("not repairable"), "{verify}");

    let dry = fixture.ok(&["repair", "packs", "--dry-run"]);
    assert!(dry.contains("would rebuild"), "{dry}");
    assert!(!fixture.pack_path(&first[0].pack).exists());

    let repaired = fixture.ok(&["repair", "packs"]);
    for pack in [&first[0].pack, &first[7].pack, &second[1].pack] {
        assert!(
            repaired.contains(&format!("rebuilt pack {}", pack.to_hex())),
            "{repaired}"
        );
    }
    fixture.ok(&["verify", "--read-data"]);
    fixture.assert_every_snapshot_restores();
}

#[test]
fn three_destroyed_packs_of_a_group_are_named_with_their_snapshots_and_files() {
    let fixture = ParityFixture::three_generations(None);
    // A full group of the third backup: its packs hold only generation 3.
    let (_, newest) = fixture.generations[2].clone();
    let groups = fixture.groups();
    let older_files: BTreeSet<String> = ["1", "2"]
        .iter()
        .flat_map(|batch| (0..8).map(move |file| format!("gen{batch}-{file}.sst")))
        .collect();
    let lost_group = groups
        .iter()
        .find(|group| {
            let packs: BTreeSet<Id> = group.header.members.iter().map(|m| m.pack).collect();
            group.header.members.len() == 10
                && fixture
                    .files_in_packs(&newest, &packs)
                    .is_disjoint(&older_files)
        })
        .expect("a full group of the third backup");
    let members = &lost_group.header.members;
    let lost: BTreeSet<Id> = [members[1].pack, members[4].pack, members[9].pack].into();
    damage(&fixture.pack_path(&members[1].pack), Damage::Delete);
    damage(&fixture.pack_path(&members[4].pack), Damage::FlipBit);
    damage(&fixture.pack_path(&members[9].pack), Damage::Truncate);
    // Another group stays repairable.
    let other = groups
        .iter()
        .find(|group| group.id != lost_group.id)
        .unwrap();
    let repairable = other.header.members[0].pack;
    damage(&fixture.pack_path(&repairable), Damage::Delete);

    let short = lost_group.id.short();
    let verify = fixture.fails(&["verify", "--read-data"]);
    assert!(
        verify.contains(&format!(
            "not repairable: group {short} has lost 3 of 12 shards"
        )),
        "{verify}"
    );
    assert!(verify.contains("tolerates 2"), "{verify}");

    let output = fixture.run(&["repair", "packs"]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(19), "{report}");
    assert!(
        report.contains(&format!("rebuilt pack {}", repairable.to_hex())),
        "{report}"
    );
    for pack in &lost {
        assert!(
            report.contains(&format!("LOST pack {}", pack.to_hex())),
            "{report}"
        );
    }
    assert!(
        report.contains("3 pack(s) could not be rebuilt"),
        "{report}"
    );
    // Precisely the files that lose data, in the newest snapshot (the only
    // one holding generation 3): every file with a chunk in the deleted or
    // truncated pack, and of the bit-flipped pack only the files of its
    // damaged blob (its other blobs still read back intact).
    let whole_loss: BTreeSet<Id> = [members[1].pack, members[9].pack].into();
    let required = fixture.files_in_packs(&newest, &whole_loss);
    let possible = fixture.files_in_packs(&newest, &lost);
    assert!(!required.is_empty());
    let snapshot_label = format!("snapshot {}", &newest[..8]);
    for file in &required {
        assert!(
            report.contains(&format!("{snapshot_label}: {file}\n")),
            "{file} not named:\n{report}"
        );
    }
    let flipped = members[4].pack.to_hex();
    let mut named_for_flipped = 0;
    for line in report.lines().filter(|line| line.contains(" affects ")) {
        assert!(line.contains(&snapshot_label), "{line}");
        assert!(
            possible.iter().any(|file| line.ends_with(file.as_str())),
            "{line}"
        );
        named_for_flipped += usize::from(line.contains(&format!("pack {flipped} affects")));
    }
    assert!(named_for_flipped > 0, "{report}");
    // The snapshots that do not need the lost packs restore.
    for (number, (source, id)) in fixture.generations.iter().enumerate().take(2) {
        fixture.assert_restores(number, source, id);
    }
}

#[test]
fn damaged_and_missing_parity_objects_are_reported_and_rewritten() {
    let fixture = ParityFixture::new(None, &[&[1], &[1, 2]]);
    let before = fixture.parity_names();
    let groups = fixture.groups();
    let deleted = groups[0].shards[0].clone().unwrap();
    let flipped = groups[1].shards[1].clone().unwrap();
    damage(&fixture.parity_path(&deleted), Damage::Delete);
    damage(&fixture.parity_path(&flipped), Damage::FlipBit);

    let structure = fixture.fails(&["verify"]);
    assert!(
        structure.contains(&format!("parity group {}", groups[0].id.short())),
        "{structure}"
    );
    assert!(
        structure.contains("parity shard(s) 0 missing"),
        "{structure}"
    );
    let full = fixture.fails(&["verify", "--read-data"]);
    assert!(full.contains(&format!("parity object {flipped}")), "{full}");

    let repaired = fixture.ok(&["repair", "packs"]);
    assert!(
        repaired.contains(&format!("rewrote parity object {deleted}")),
        "{repaired}"
    );
    assert!(
        repaired.contains(&format!("rewrote parity object {flipped}")),
        "{repaired}"
    );
    fixture.ok(&["verify", "--read-data"]);
    assert_eq!(fixture.parity_names(), before);
    // And the rewritten parity works: lose two packs of that group.
    let members = &groups[1].header.members;
    damage(&fixture.pack_path(&members[0].pack), Damage::Delete);
    damage(&fixture.pack_path(&members[1].pack), Damage::Delete);
    fixture.ok(&["repair", "packs"]);
    fixture.assert_every_snapshot_restores();
}

#[test]
fn packs_of_an_encrypted_repository_are_rebuilt_from_parity() {
    let fixture = ParityFixture::new(Some(PASSWORD), &[&[1], &[1, 2]]);
    let groups = fixture.groups();
    let members = &groups[0].header.members;
    damage(&fixture.pack_path(&members[2].pack), Damage::FlipBit);
    damage(&fixture.pack_path(&members[3].pack), Damage::Delete);
    let verify = fixture.fails(&["verify", "--read-data"]);
    assert!(
        verify.contains("repairable: `lsmvault repair packs`"),
        "{verify}"
    );
    fixture.ok(&["repair", "packs"]);
    fixture.ok(&["verify", "--read-data"]);
    fixture.assert_every_snapshot_restores();
}

#[test]
fn killed_repair_packs_leaves_every_pack_missing_or_intact_and_rebuildable() {
    let iterations = kill_iterations(8);
    let fixture = ParityFixture::new(None, &[&[1], &[1, 2]]);
    let groups = fixture.groups();
    // A repair of two packs takes a few hundred milliseconds; the loop
    // follows the runtime of the runs that finish.
    let mut kills = KillLoop::new(
        "repair packs",
        0x2545_f491_4f6c_dd1d,
        Duration::from_millis(210),
        2,
    );
    for iteration in 0..iterations {
        let group = &groups[iteration as usize % groups.len()];
        let members = &group.header.members;
        let targets = [
            members[iteration as usize % members.len()].pack,
            members[(iteration as usize + 3) % members.len()].pack,
        ];
        let mut damaged_bytes: BTreeMap<Id, Vec<u8>> = BTreeMap::new();
        for (number, pack) in targets.iter().enumerate() {
            let path = fixture.pack_path(pack);
            if !path.exists() {
                continue;
            }
            if number == 0 {
                damage(&path, Damage::Delete);
            } else {
                damage(&path, Damage::FlipBit);
                damaged_bytes.insert(*pack, fs::read(&path).unwrap());
            }
        }
        // Whether it was killed or finished, the checks below hold.
        kills.run(&mut lsmvault_command(
            &fixture.repo,
            None,
            &["repair", "packs"],
        ));
        // Every pack file is intact, or the damaged bytes as they were.
        for pack in groups.iter().flat_map(|group| &group.header.members) {
            let path = fixture.pack_path(&pack.pack);
            if let Ok(bytes) = fs::read(&path) {
                assert!(
                    Id::of(&bytes) == pack.pack || damaged_bytes.get(&pack.pack) == Some(&bytes),
                    "iteration {iteration}: pack {} is neither intact nor as damaged",
                    pack.pack
                );
            }
        }
        // A lock the killed repair left behind is removed, then repair ends.
        fixture.ok(&["unlock", "--remove-all"]);
        fixture.ok(&["repair", "packs"]);
        fixture.ok(&["verify"]);
    }
    kills.finish();
    fixture.ok(&["verify", "--read-data"]);
    fixture.assert_every_snapshot_restores();
}

#[test]
fn init_records_parity_in_config_version_3_and_refuses_bad_counts() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption", "--parity", "10+2"]);
    let config: serde_json::Value =
        serde_json::from_slice(&fs::read(repo.join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], 3);
    assert_eq!(
        config["parity"],
        serde_json::json!({"data_packs": 10, "parity_packs": 2})
    );
    for bad in ["0+2", "65+1", "10+0", "10+17", "ten", "10-2"] {
        let other = work.path().join(format!("bad-{bad}"));
        let output = lsmvault(&other, &["init", "--no-encryption", "--parity", bad]);
        assert!(!output.status.success(), "--parity {bad} accepted");
        assert!(
            !other.join("config").exists(),
            "--parity {bad} wrote a config"
        );
    }
    // Without --parity: no parity field, no parity objects.
    let plain = work.path().join("plain");
    lsmvault_ok(&plain, &["init", "--no-encryption"]);
    let config = fs::read_to_string(plain.join("config")).unwrap();
    assert!(!config.contains("parity"), "{config}");
}

#[test]
fn a_config_claiming_parity_with_bad_counts_or_an_old_version_is_refused() {
    let fixture = three_pack_fixture();
    let path = fixture.repo.join("config");
    let original: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    for (version, parity) in [
        (3, serde_json::json!({"data_packs": 0, "parity_packs": 2})),
        (3, serde_json::json!({"data_packs": 10, "parity_packs": 99})),
        (2, serde_json::json!({"data_packs": 10, "parity_packs": 2})),
    ] {
        let mut edited = original.clone();
        edited["version"] = serde_json::json!(version);
        edited["parity"] = parity.clone();
        write_over(&path, &serde_json::to_vec(&edited).unwrap());
        let output = lsmvault(&fixture.repo, &["snapshots"]);
        assert!(
            !output.status.success(),
            "version {version} parity {parity} accepted"
        );
    }
}

#[test]
fn losing_every_parity_object_is_reported_and_repair_packs_protects_the_packs_again() {
    let fixture = ParityFixture::new(None, &[&[1], &[1, 2]]);
    for name in fixture.parity_names() {
        damage(&fixture.parity_path(&name), Damage::Delete);
    }
    let verify = fixture.fails(&["verify"]);
    assert!(verify.contains("are in no parity group"), "{verify}");
    let repaired = fixture.ok(&["repair", "packs"]);
    assert!(repaired.contains("protected"), "{repaired}");
    fixture.ok(&["verify", "--read-data"]);
    let groups = fixture.groups();
    let members = &groups[0].header.members;
    damage(&fixture.pack_path(&members[0].pack), Damage::Delete);
    damage(&fixture.pack_path(&members[1].pack), Damage::FlipBit);
    fixture.ok(&["repair", "packs"]);
    fixture.assert_every_snapshot_restores();
}

/// Writes a parity object (named by its hash, as a real one) whose header
/// is well framed but lies.
fn plant_parity_object(fixture: &ParityFixture, header: &ParityHeader, shard: &[u8]) -> String {
    let bytes = header.encode(shard);
    let name = Id::of(&bytes).to_hex();
    fs::write(fixture.parity_path(&name), bytes).unwrap();
    name
}

#[test]
fn parity_objects_whose_headers_lie_are_reported_and_never_believed() {
    let fixture = ParityFixture::new(None, &[&[1]]);
    let groups = fixture.groups();
    let real = groups[0].header.members[0];
    // 1. A length far beyond the object (would allocate 1 PiB if believed).
    let huge = ParityHeader::new(
        vec![GroupMember {
            pack: real.pack,
            length: 1 << 50,
        }],
        1,
        0,
    );
    let huge_name = plant_parity_object(&fixture, &huge, &[0u8; 64]);
    // 2. A consistent object naming a real pack with another length.
    let short = ParityHeader::new(
        vec![GroupMember {
            pack: real.pack,
            length: 100,
        }],
        1,
        0,
    );
    let short_name = plant_parity_object(&fixture, &short, &[0u8; 128]);

    for args in [&["verify"][..], &["verify", "--read-data"][..]] {
        let verify = fixture.fails(args);
        assert!(
            verify.contains(&format!("parity object {huge_name}")),
            "{verify}"
        );
        assert!(
            verify.contains(&format!("parity object {short_name}")),
            "{verify}"
        );
    }
    // Prune (header-only reads) ignores them instead of failing.
    fixture.ok(&["prune"]);
    // Repair removes them, and the real groups still rebuild a lost pack.
    damage(&fixture.pack_path(&real.pack), Damage::Delete);
    let repaired = fixture.ok(&["repair", "packs"]);
    assert!(
        repaired.contains(&format!("removed damaged parity object {huge_name}")),
        "{repaired}"
    );
    assert!(
        repaired.contains(&format!("removed damaged parity object {short_name}")),
        "{repaired}"
    );
    assert!(
        repaired.contains(&format!("rebuilt pack {}", real.pack)),
        "{repaired}"
    );
    fixture.ok(&["verify", "--read-data"]);
    fixture.assert_every_snapshot_restores();
}
