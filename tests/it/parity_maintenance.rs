//! Parity across the commands that write and delete packs besides backup:
//! prune re-protects the survivors of groups that lose packs and merges
//! small groups, `wal archive` protects its packs, and a group left by an
//! interrupted backup or prune is never reported as damage. Fixture and
//! helpers: `parity.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use lsmvault::lsm::log::encode_log;
use lsmvault::lsm::write_batch::encode_write_batch;
use lsmvault::repo::parity::ParityGroup;
use lsmvault::{Id, Repository};

use crate::common::kill_loop::{kill_iterations, KillLoop, Run};
use crate::common::*;
use crate::parity::{damage, Damage, ParityFixture};

#[test]
fn after_prune_the_surviving_packs_of_a_group_are_still_repairable() {
    // Generation 2 adds batches 2 and 3 in one backup (its groups mix
    // them); generation 3 drops batch 2. Forgetting generation 2 makes
    // prune delete batch 2's packs out of those groups.
    let mut fixture = ParityFixture::new(None, &[&[1], &[1, 2, 3], &[1, 3]]);
    let (_, second) = fixture.generations.remove(1);
    fixture.ok(&["forget", &second]);
    let pruned = fixture.ok(&["--json", "prune"]);
    let pruned: serde_json::Value = serde_json::from_str(&pruned).unwrap();
    assert!(pruned["packs_deleted"].as_u64().unwrap() > 0, "{pruned}");
    // No parity of deleted packs is left, and nothing is reported damaged.
    let groups = fixture.groups();
    for group in &groups {
        for member in &group.header.members {
            assert!(fixture.pack_path(&member.pack).exists(), "stale group");
        }
    }
    fixture.ok(&["verify", "--read-data"]);
    // The small groups (each backup's last) were merged into full ones.
    let sizes: Vec<usize> = groups
        .iter()
        .map(|group| group.header.members.len())
        .collect();
    assert!(
        sizes.iter().filter(|size| **size < 10).count() <= 1,
        "group sizes after prune: {sizes:?}"
    );
    // Every indexed pack is in a group.
    let repository = fixture.open();
    let grouped: BTreeSet<Id> = groups
        .iter()
        .flat_map(|group| group.header.members.iter().map(|member| member.pack))
        .collect();
    let indexed: BTreeSet<Id> = repository
        .read_index_files()
        .unwrap()
        .readable
        .into_iter()
        .flat_map(|(_, entries)| entries.into_iter().map(|location| location.pack))
        .collect();
    assert!(indexed.is_subset(&grouped));
    // Destroy two packs of the largest group: still repairable.
    let members = &groups[0].header.members;
    damage(&fixture.pack_path(&members[0].pack), Damage::Truncate);
    damage(
        &fixture.pack_path(&members[members.len() - 1].pack),
        Damage::Delete,
    );
    fixture.ok(&["repair", "packs"]);
    fixture.ok(&["verify", "--read-data"]);
    fixture.assert_every_snapshot_restores();
}

#[test]
fn wal_archive_protects_its_packs_with_parity() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(
        &repo,
        &[
            "init",
            "--no-encryption",
            "--compression",
            "off",
            "--parity",
            "2+1",
        ],
    );
    // About 40 MiB of write batches of incompressible values: 16 MiB packs.
    let value = seeded_bytes(5, 40 * 1024 * 1024);
    let records: Vec<Vec<u8>> = (1..=10_000u64)
        .map(|sequence| encode_write_batch(sequence, 1, &value[sequence as usize * 4000..][..4000]))
        .collect();
    let db = crate::pitr::fake_database(work.path(), &[]);
    fs::write(db.join("000012.log"), encode_log(&records, None)).unwrap();
    lsmvault_ok(&repo, &["wal", "archive", db.to_str().unwrap()]);
    let repository = Repository::open_local(&repo).unwrap();
    let listing = repository.parity_listing(true).unwrap();
    let grouped: BTreeSet<Id> = listing
        .groups
        .values()
        .flat_map(|group| group.header.members.iter().map(|member| member.pack))
        .collect();
    let packs: Vec<PathBuf> = walkdir::WalkDir::new(repo.join("data"))
        .into_iter()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| entry.into_path())
        .collect();
    assert!(packs.len() >= 3, "{packs:?}");
    for pack in &packs {
        let id = Id::from_hex(&pack.file_name().unwrap().to_string_lossy()).unwrap();
        assert!(grouped.contains(&id), "pack {id} is in no group");
    }
    damage(&packs[0], Damage::Delete);
    lsmvault_ok(&repo, &["repair", "packs"]);
    lsmvault_ok(&repo, &["verify", "--read-data"]);
}

#[test]
fn killed_prunes_leave_every_kept_pack_in_a_complete_parity_group() {
    let iterations = kill_iterations(4) as u32;
    let mut fixture = ParityFixture::new(None, &[&[1], &[1, 2]]);
    // A prune here takes a few hundred milliseconds; the loop follows the
    // runtime of the runs that finish.
    let mut kills = KillLoop::new(
        "parity prune",
        0x9e37_79b9_7f4a_7c15,
        Duration::from_millis(330),
        2,
    );
    for iteration in 0..iterations {
        // A new generation with a new batch; the oldest generation goes.
        let batch = 10 + iteration;
        let source = fixture.root.join(format!("source-kill-{iteration}"));
        fs::create_dir(&source).unwrap();
        for file in 0..8u32 {
            fs::write(
                source.join(format!("gen{batch}-{file}.sst")),
                seeded_bytes(u64::from(batch * 100 + file + 1), 1_500_000),
            )
            .unwrap();
        }
        let json = fixture.ok(&["--json", "backup", source.to_str().unwrap()]);
        let snapshot: serde_json::Value = serde_json::from_str(&json).unwrap();
        fixture
            .generations
            .push((source, snapshot["id"].as_str().unwrap().to_string()));
        let (_, oldest) = fixture.generations.remove(0);
        fixture.ok(&["forget", &oldest]);

        if let Run::Finished(output) =
            kills.run(&mut lsmvault_command(&fixture.repo, None, &["prune"]))
        {
            assert_success(&output, &format!("iteration {iteration}: prune"));
        }
        fixture.ok(&["unlock", "--remove-all"]);
        // Whatever the moment: no damage, every indexed pack in a group.
        fixture.ok(&["verify"]);
    }
    kills.finish();
    fixture.ok(&["prune"]);
    fixture.ok(&["verify", "--read-data"]);
    let groups = fixture.groups();
    let members = &groups[0].header.members;
    damage(&fixture.pack_path(&members[0].pack), Damage::Delete);
    damage(&fixture.pack_path(&members[1].pack), Damage::FlipBit);
    fixture.ok(&["repair", "packs"]);
    fixture.assert_every_snapshot_restores();
}

#[test]
fn prune_merges_the_small_groups_of_many_backups_into_full_ones() {
    let fixture = ParityFixture::new(None, &[&[1], &[1, 2], &[1, 2, 3], &[1, 2, 3, 4]]);
    let small = |groups: &[ParityGroup]| {
        groups
            .iter()
            .filter(|group| group.header.members.len() < 10)
            .count()
    };
    let before = fixture.groups();
    assert!(small(&before) >= 2, "{} small groups", small(&before));
    let parity_bytes = |fixture: &ParityFixture| {
        let stats: serde_json::Value =
            serde_json::from_str(&fixture.ok(&["--json", "stats"])).unwrap();
        stats["parity_bytes"].as_u64().unwrap()
    };
    let bytes_before = parity_bytes(&fixture);
    // Nothing to delete: prune only merges the groups.
    let pruned: serde_json::Value =
        serde_json::from_str(&fixture.ok(&["--json", "prune"])).unwrap();
    assert_eq!(pruned["packs_deleted"], 0, "{pruned}");
    let after = fixture.groups();
    assert!(small(&after) <= 1, "{} small groups", small(&after));
    let bytes_after = parity_bytes(&fixture);
    assert!(
        bytes_after < bytes_before,
        "{bytes_before} -> {bytes_after}"
    );
    fixture.ok(&["verify", "--read-data"]);
    // A second prune has nothing more to merge and changes nothing.
    let names = fixture.parity_names();
    fixture.ok(&["prune"]);
    assert_eq!(fixture.parity_names(), names);
    let members = &after[0].header.members;
    damage(&fixture.pack_path(&members[3].pack), Damage::Delete);
    damage(&fixture.pack_path(&members[8].pack), Damage::Truncate);
    fixture.ok(&["repair", "packs"]);
    fixture.assert_every_snapshot_restores();
}

#[test]
fn a_group_of_unindexed_packs_missing_a_shard_is_not_damage() {
    // What a backup killed (or still running) between its parity objects
    // and its index leaves: packs and some of their parity, no index.
    let fixture = ParityFixture::new(None, &[&[1]]);
    let repository = fixture.open();
    let writer = lsmvault::PackWriter::new(&repository).unwrap();
    for seed in 0..3u64 {
        let data = seeded_bytes(7000 + seed, 200_000);
        let id = repository.keys().blob_id(&data);
        writer
            .add(id, lsmvault::format::pack::BlobKind::Data, &data)
            .unwrap();
    }
    let summary = writer.finish().unwrap();
    let names = repository.protect_packs(&summary.published).unwrap();
    assert_eq!(names.len(), 2);
    damage(&fixture.parity_path(&names[1]), Damage::Delete);
    let verify = fixture.ok(&["verify"]);
    assert!(verify.contains("not in any index"), "{verify}");
    // Repair leaves it alone, even with one of its packs damaged (garbage
    // nothing needs is not a loss), and prune removes packs and parity.
    damage(
        &fixture.pack_path(&summary.published[0].pack),
        Damage::FlipBit,
    );
    let repaired = fixture.ok(&["repair", "packs"]);
    assert!(!repaired.contains("rewrote"), "{repaired}");
    assert!(!repaired.contains("LOST"), "{repaired}");
    fixture.ok(&["prune"]);
    assert!(!fixture.parity_path(&names[0]).exists());
    fixture.ok(&["verify", "--read-data"]);
    fixture.assert_every_snapshot_restores();
}
