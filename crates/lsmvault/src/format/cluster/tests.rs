use proptest::prelude::*;

use super::*;
use crate::format::topology::{Group, Scheme, Shard};

fn topology(shards: usize, scheme: Scheme) -> Topology {
    let parity = scheme.parity_shards();
    Topology {
        name: "c".to_string(),
        groups: [("g".to_string(), Group { scheme })].into_iter().collect(),
        shards: (0..shards)
            .map(|index| Shard {
                name: format!("s{index}"),
                group: "g".to_string(),
                role: if index + parity >= shards {
                    Role::Parity
                } else {
                    Role::Data
                },
                path: format!("/srv/s{index}"),
                host: None,
                remote_command: None,
                freeze: None,
                thaw: None,
                pid_file: None,
                pause_file: None,
            })
            .collect(),
    }
}

fn member(shard: &Shard, snapshot: Option<Id>, sequence: Option<u64>) -> ClusterMember {
    ClusterMember {
        shard: shard.name.clone(),
        group: shard.group.clone(),
        role: shard.role,
        snapshot,
        sequence,
        pause: PauseFigures::default(),
    }
}

fn cluster_snapshot(shards: usize) -> ClusterSnapshot {
    let topology = topology(shards, Scheme::Raid5);
    let members = topology
        .shards
        .iter()
        .map(|shard| member(shard, Some(Id::of(shard.name.as_bytes())), Some(7)))
        .collect();
    ClusterSnapshot::new(topology, Timestamp::now(), members)
}

#[test]
fn complete_groups_need_a_member_snapshot_per_shard() {
    let mut snapshot = cluster_snapshot(3);
    assert_eq!(snapshot.complete_groups(), (vec!["g"], vec![]));
    snapshot.members[1].snapshot = None;
    assert_eq!(snapshot.complete_groups(), (vec![], vec!["g"]));
    snapshot.members.remove(1);
    assert_eq!(snapshot.complete_groups(), (vec![], vec!["g"]));
}

#[test]
fn decode_refuses_unknown_versions_and_foreign_members() {
    let mut snapshot = cluster_snapshot(3);
    snapshot.version = 2;
    let error = ClusterSnapshot::decode("x", &snapshot.encode()).unwrap_err();
    assert_eq!(error.code(), crate::ErrorCode::UnsupportedVersion);
    let mut snapshot = cluster_snapshot(3);
    snapshot.members[0].shard = "elsewhere".to_string();
    let error = ClusterSnapshot::decode("x", &snapshot.encode()).unwrap_err();
    assert!(
        error.to_string().contains("no shard of its topology"),
        "{error}"
    );
    let mut snapshot = cluster_snapshot(3);
    snapshot.members[1].shard = "s0".to_string();
    let error = ClusterSnapshot::decode("x", &snapshot.encode()).unwrap_err();
    assert!(error.to_string().contains("has two members"), "{error}");
    let mut snapshot = cluster_snapshot(3);
    snapshot.topology.shards[2].role = Role::Data;
    let error = ClusterSnapshot::decode("x", &snapshot.encode()).unwrap_err();
    assert!(error.to_string().contains("topology is invalid"), "{error}");
    assert!(ClusterSnapshot::decode("x", b"{").is_err());
    assert!(ClusterSnapshot::decode("x", b"{\"version\":1}").is_err());
}

#[test]
fn decode_refuses_times_that_cannot_be_printed_again() {
    let json = String::from_utf8(cluster_snapshot(3).encode()).unwrap();
    let time = serde_json::to_string(&cluster_snapshot(3).time).unwrap();
    for bad in ["\"0026-12-03T11:40:02Z\"", "\"9999-12-31T23:59:59-01:00\""] {
        let (before, after) = json.split_once("\"time\": ").unwrap();
        let after = after.split_once(',').unwrap().1;
        let text = format!("{before}\"time\": {bad},{after}");
        let error = ClusterSnapshot::decode("x", text.as_bytes()).unwrap_err();
        assert!(
            error.to_string().contains("before 1970 or after 9999"),
            "{error}"
        );
    }
    assert!(time.starts_with("\"20"));
}

fn figure() -> impl Strategy<Value = f64> {
    (0u32..1_000_000).prop_map(|micros| f64::from(micros) / 1e6)
}

proptest! {
    #[test]
    fn cluster_snapshots_round_trip(
        shards in 3usize..8,
        tag in proptest::option::of("[a-z0-9 .:-]{0,12}"),
        sequences in proptest::collection::vec(proptest::option::of(any::<u64>()), 8),
        snapshots in proptest::collection::vec(any::<bool>(), 8),
        figures in proptest::collection::vec((figure(), figure(), figure()), 8),
        seconds in 0u64..4_000_000_000,
        nanos in 0u32..1_000_000_000,
        pause in figure(),
    ) {
        let topology = topology(shards, Scheme::Raid5);
        let members = topology
            .shards
            .iter()
            .enumerate()
            .map(|(index, shard)| {
                let snapshot = snapshots[index].then(|| Id::of(&[index as u8]));
                let mut member = member(shard, snapshot, sequences[index]);
                let (freeze_seconds, link_seconds, thaw_seconds) = figures[index];
                member.pause = PauseFigures { freeze_seconds, link_seconds, thaw_seconds };
                member
            })
            .collect();
        let time = std::time::UNIX_EPOCH
            + std::time::Duration::new(seconds, nanos);
        let mut snapshot = ClusterSnapshot::new(topology, time.into(), members);
        snapshot.tag = tag;
        snapshot.pause_seconds = pause;
        let decoded = ClusterSnapshot::decode("x", &snapshot.encode()).unwrap();
        prop_assert_eq!(decoded, snapshot);
    }
}
