//! Cluster backups, first slice: topology files (`cluster topology --check`,
//! `--from-env`) with every validation error by name, and the listing of
//! cluster snapshots (`cluster ls`) written through the library API.

use std::fs;
use std::path::Path;
use std::process::Output;

use lsmvault::format::cluster::{ClusterMember, ClusterSnapshot, PauseFigures};
use lsmvault::format::topology::Topology;
use lsmvault::{Id, Repository, Timestamp};

use crate::common::*;

/// A valid raid5 (2+1) group and a replicated pair.
const VALID: &str = r#"
name = "orders"

[groups.east]
scheme = "raid5"

[groups.meta]
scheme = "replicated"

[[shards]]
name = "e1"
group = "east"
role = "data"
path = "/srv/e1"
pid_file = "/run/e1.pid"

[[shards]]
name = "e2"
group = "east"
role = "data"
path = "/srv/e2"
host = "db2"
freeze = "kill -STOP 1"
thaw = "kill -CONT 1"

[[shards]]
name = "ep"
group = "east"
role = "parity"
path = "/srv/ep"
pause_file = "/srv/ep/PAUSE"

[[shards]]
name = "m1"
group = "meta"
role = "data"
path = "/srv/m1"
pid_file = "/run/m1.pid"

[[shards]]
name = "m2"
group = "meta"
role = "data"
path = "/srv/m2"
pid_file = "/run/m2.pid"
"#;

/// Runs `cluster topology --check` on `text`.
fn check(text: &str) -> Output {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("topology.toml");
    fs::write(&file, text).unwrap();
    lsmvault_command(work.path(), None, &["cluster", "topology", "--check"])
        .arg(&file)
        .output()
        .unwrap()
}

/// Asserts that `text` is refused with exit 22 and an error containing
/// every one of `expected` (the file, the shard, the problem, a hint).
fn assert_refused(text: &str, expected: &[&str]) {
    let output = check(text);
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(22), "{stderr}");
    assert!(stderr.contains("topology.toml"), "{stderr}");
    assert!(stderr.contains("hint:"), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} missing in {stderr}");
    }
}

/// `VALID` with the `index`-th shard's `role` set to `role`.
fn with_role(index: usize, role: &str) -> String {
    let names = ["e1", "e2", "ep", "m1", "m2"];
    let block = format!("name = \"{}\"\ngroup", names[index]);
    let (before, after) = VALID.split_once(&block).unwrap();
    let (group_line, rest) = after.split_once("role = ").unwrap();
    let rest = rest.split_once('\n').unwrap().1;
    format!("{before}{block}{group_line}role = \"{role}\"\n{rest}")
}

#[test]
fn topology_check_summarises_groups_schemes_and_tolerated_failures() {
    let output = check(VALID);
    let text = assert_success(&output, "check");
    assert!(
        text.contains("cluster orders: 2 group(s), 5 shard(s)"),
        "{text}"
    );
    assert!(
        text.contains("group east (raid5): data e1, e2; parity ep; survives 1 lost shard(s)"),
        "{text}"
    );
    assert!(
        text.contains("group meta (replicated): data m1, m2; survives 1 lost shard(s)"),
        "{text}"
    );
    assert!(
        text.contains("shard e2 [east data] db2:/srv/e2 (pause: freeze/thaw commands)"),
        "{text}"
    );
    assert!(stderr_text(&output).is_empty(), "{}", stderr_text(&output));

    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("t.toml");
    fs::write(&file, VALID).unwrap();
    let json = lsmvault_json(
        work.path(),
        &["cluster", "topology", "--check", file.to_str().unwrap()],
    );
    assert_eq!(json["name"], "orders");
    assert_eq!(json["groups"][0]["name"], "east");
    assert_eq!(json["groups"][0]["tolerated_failures"], 1);
    assert_eq!(json["groups"][0]["parity"], serde_json::json!(["ep"]));
    assert_eq!(json["shards"].as_array().unwrap().len(), 5);
    assert_eq!(json["shards"][2]["role"], "parity");
}

#[test]
fn topology_check_warns_about_shards_without_a_pause_method() {
    let text = VALID.replace("pid_file = \"/run/m2.pid\"\n", "");
    let output = check(&text);
    assert_success(&output, "check");
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains("warning: shard(s) m2 have no pause method"),
        "{stderr}"
    );
}

#[test]
fn topology_unknown_group_is_refused() {
    assert_refused(
        &VALID.replace(
            "name = \"m2\"\ngroup = \"meta\"",
            "name = \"m2\"\ngroup = \"west\"",
        ),
        &["shard \"m2\"", "unknown group \"west\"", "[groups.west]"],
    );
}

#[test]
fn topology_raid5_without_exactly_one_parity_shard_is_refused() {
    assert_refused(
        &with_role(2, "data"),
        &["group \"east\" (raid5): has 0 parity shard(s), needs exactly 1"],
    );
    assert_refused(
        &with_role(1, "parity"),
        &[
            "group \"east\" (raid5): has 2 parity shard(s), needs exactly 1",
            "has 1 data shard(s), needs at least 2",
        ],
    );
}

#[test]
fn topology_raid5_with_fewer_than_two_data_shards_is_refused() {
    let text = VALID.replace(
        "name = \"e2\"\ngroup = \"east\"",
        "name = \"e2\"\ngroup = \"meta\"",
    );
    assert_refused(
        &text,
        &[
            "group \"east\" (raid5): has 1 data shard(s), needs at least 2",
            "replicated",
        ],
    );
}

#[test]
fn topology_raid6_without_exactly_two_parity_shards_is_refused() {
    let raid6 = VALID.replace("scheme = \"raid5\"", "scheme = \"raid6\"");
    assert_refused(
        &raid6,
        &["group \"east\" (raid6): has 1 parity shard(s), needs exactly 2"],
    );
    // 2 data + 2 parity is a valid raid6 group once a fourth shard joins.
    let four = raid6.replace(
        "[[shards]]\nname = \"m1\"",
        "[[shards]]\nname = \"eq\"\ngroup = \"east\"\nrole = \"parity\"\npath = \"/srv/eq\"\npid_file = \"/run/eq.pid\"\n\n[[shards]]\nname = \"m1\"",
    );
    let text = assert_success(&check(&four), "raid6 2+2");
    assert!(
        text.contains("parity ep, eq; survives 2 lost shard(s)"),
        "{text}"
    );
}

#[test]
fn topology_parity_role_in_replicated_or_plain_group_is_refused() {
    assert_refused(
        &with_role(3, "parity"),
        &[
            "shard \"m1\"",
            "role \"parity\" in group \"meta\", whose scheme replicated has no parity",
        ],
    );
    let plain = with_role(3, "parity").replace("scheme = \"replicated\"", "scheme = \"plain\"");
    assert_refused(
        &plain,
        &["shard \"m1\"", "whose scheme plain has no parity"],
    );
}

#[test]
fn topology_duplicate_shard_names_are_refused() {
    assert_refused(
        &VALID.replace("name = \"m2\"", "name = \"m1\""),
        &["shard \"m1\": the name is used by more than one shard"],
    );
}

#[test]
fn topology_shard_names_unusable_as_directory_names_are_refused() {
    for (name, why) in [
        ("..", "is `.` or `..`"),
        (".", "is `.` or `..`"),
        ("a/b", "contains a slash"),
        ("", "is empty"),
        ("m\\u0007", "contains a control character"),
    ] {
        let text = VALID.replace("name = \"m2\"", &format!("name = \"{name}\""));
        assert_refused(&text, &[why, "cannot be a directory name"]);
    }
}

#[test]
fn topology_missing_field_is_refused_naming_the_shard() {
    assert_refused(
        &VALID.replace("path = \"/srv/e1\"\n", ""),
        &["shard \"e1\": missing field `path`"],
    );
    assert_refused(
        &VALID.replace("scheme = \"replicated\"", ""),
        &["group \"meta\": missing field `scheme`"],
    );
    assert_refused(&VALID.replace("name = \"orders\"", ""), &["missing `name`"]);
}

#[test]
fn topology_unknown_keys_are_refused_naming_the_shard() {
    assert_refused(
        &VALID.replace("pid_file = \"/run/e1.pid\"", "pid_fle = \"/run/e1.pid\""),
        &["shard \"e1\": unknown field `pid_fle`", "expected one of"],
    );
    assert_refused(
        &format!("owner = \"me\"\n{VALID}"),
        &["unknown key `owner`"],
    );
}

#[test]
fn topology_every_problem_is_named_at_once() {
    let text = VALID
        .replace("name = \"m2\"", "name = \"m1\"")
        .replace("path = \"/srv/e1\"", "path = \"srv/e1\"");
    assert_refused(
        &text,
        &[
            "2 problems:",
            "more than one shard",
            "path \"srv/e1\" is not absolute",
        ],
    );
}

#[test]
fn topology_syntax_errors_name_the_line() {
    assert_refused("name = \"x\"\n[groups.g\n", &["line 2:"]);
}

#[test]
fn the_docs_example_topology_is_valid() {
    let docs = fs::read_to_string(source_root().join("docs/cluster.md")).unwrap();
    let example = docs
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/cluster.md has a ```toml example");
    let output = check(example);
    let text = assert_success(&output, "docs example");
    assert!(text.contains("survives"), "{text}");
    Topology::parse("docs/cluster.md", example).unwrap();
}

const THEMIS_SHARDS: &str =
    "themis-raid5-shard1:18765,themis-raid5-shard2:18765,themis-raid5-shard3:18765";

/// `cluster topology --from-env ARGS` with the ThemisDB variables `vars`
/// (and no others).
fn from_env(dir: &Path, vars: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = lsmvault_command(dir, None, &["cluster", "topology", "--from-env"]);
    command.args(args);
    for variable in ["THEMIS_RAID_GROUP", "THEMIS_SHARD_ID", "THEMIS_SHARDS"] {
        command.env_remove(variable);
    }
    command.envs(vars.iter().copied());
    command.output().unwrap()
}

#[test]
fn topology_from_env_round_trips_through_check() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("cluster.toml");
    let vars = [
        ("THEMIS_RAID_GROUP", "raid5"),
        ("THEMIS_SHARD_ID", "raid5-2"),
        ("THEMIS_SHARDS", THEMIS_SHARDS),
    ];
    let args = [
        "--data-dir",
        "/var/lib/themisdb",
        "--out",
        out.to_str().unwrap(),
    ];
    let written = assert_success(&from_env(work.path(), &vars, &args), "from-env");
    assert!(
        written.contains("wrote the topology of cluster themisdb-raid5 (3 shard(s))"),
        "{written}"
    );
    let printed = assert_success(
        &from_env(work.path(), &vars, &args[..2]),
        "from-env to stdout",
    );
    assert_eq!(printed, fs::read_to_string(&out).unwrap());

    let json = lsmvault_json(
        work.path(),
        &["cluster", "topology", "--check", out.to_str().unwrap()],
    );
    let shards: Vec<(String, String, String)> = json["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|shard| {
            let field = |key: &str| shard[key].as_str().unwrap().to_string();
            (field("name"), field("role"), field("location"))
        })
        .collect();
    let expected = [
        (
            "themis-raid5-shard1",
            "data",
            "themis-raid5-shard1:/var/lib/themisdb",
        ),
        ("themis-raid5-shard2", "data", "/var/lib/themisdb"),
        (
            "themis-raid5-shard3",
            "parity",
            "themis-raid5-shard3:/var/lib/themisdb",
        ),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(shards, expected);
    assert_eq!(json["groups"][0]["scheme"], "raid5");
    assert_eq!(json["groups"][0]["tolerated_failures"], 1);
    // The library reads the file back to what the environment said.
    let topology = Topology::parse("x", &fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(topology.shards[1].host, None);
    assert_eq!(
        topology.shards[0].host.as_deref(),
        Some("themis-raid5-shard1")
    );
}

#[test]
fn topology_from_env_never_overwrites_without_force() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("cluster.toml");
    fs::write(&out, "keep me").unwrap();
    let vars = [
        ("THEMIS_RAID_GROUP", "raid5"),
        ("THEMIS_SHARD_ID", "themis-raid5-shard1"),
        ("THEMIS_SHARDS", THEMIS_SHARDS),
    ];
    let mut args = vec!["--data-dir", "/db", "--out", out.to_str().unwrap()];
    let output = from_env(work.path(), &vars, &args);
    assert_eq!(output.status.code(), Some(22), "{}", stderr_text(&output));
    assert!(
        stderr_text(&output).contains("pass --force"),
        "{}",
        stderr_text(&output)
    );
    assert_eq!(fs::read_to_string(&out).unwrap(), "keep me");
    args.push("--force");
    assert_success(&from_env(work.path(), &vars, &args), "--force");
    Topology::parse("x", &fs::read_to_string(&out).unwrap()).unwrap();
}

#[test]
fn topology_from_env_raid6_takes_the_last_two_entries_as_parity() {
    let work = tempfile::tempdir().unwrap();
    let vars = [
        ("THEMIS_RAID_GROUP", "RAID6-east"),
        ("THEMIS_SHARD_ID", "h1:7000"),
        ("THEMIS_SHARDS", "h1:7000,h1:7001,h2:7000,h3:7000"),
    ];
    let output = from_env(work.path(), &vars, &["--data-dir", "/db", "--name", "c6"]);
    let text = assert_success(&output, "raid6");
    let topology = Topology::parse("x", &text).unwrap();
    assert_eq!(topology.name, "c6");
    let names: Vec<&str> = topology
        .shards
        .iter()
        .map(|shard| shard.name.as_str())
        .collect();
    // h1 twice: every shard is named host-port.
    assert_eq!(names, ["h1-7000", "h1-7001", "h2-7000", "h3-7000"]);
    let parity: Vec<&str> = topology
        .shards
        .iter()
        .filter(|shard| shard.role == lsmvault::format::topology::Role::Parity)
        .map(|shard| shard.name.as_str())
        .collect();
    assert_eq!(parity, ["h2-7000", "h3-7000"]);
    assert_eq!(topology.shards[0].host, None);
    assert_eq!(topology.groups.keys().collect::<Vec<_>>(), ["raid6-east"]);
}

#[test]
fn topology_from_env_refuses_missing_or_inconsistent_variables() {
    let work = tempfile::tempdir().unwrap();
    let args = ["--data-dir", "/db"];
    for (vars, expected) in [
        (
            vec![("THEMIS_RAID_GROUP", "raid5")],
            "THEMIS_SHARD_ID is not set",
        ),
        (
            vec![
                ("THEMIS_RAID_GROUP", "raid5"),
                ("THEMIS_SHARD_ID", "raid5-9"),
                ("THEMIS_SHARDS", THEMIS_SHARDS),
            ],
            "THEMIS_SHARD_ID=\"raid5-9\" is none of THEMIS_SHARDS",
        ),
        (
            vec![
                ("THEMIS_RAID_GROUP", "raid7"),
                ("THEMIS_SHARD_ID", "raid5-1"),
                ("THEMIS_SHARDS", THEMIS_SHARDS),
            ],
            "names no known scheme",
        ),
        (
            vec![
                ("THEMIS_RAID_GROUP", "raid5"),
                ("THEMIS_SHARD_ID", "a"),
                ("THEMIS_SHARDS", "a:1,,b:1"),
            ],
            "has an empty entry",
        ),
        (
            vec![
                ("THEMIS_RAID_GROUP", "raid5"),
                ("THEMIS_SHARD_ID", "a"),
                ("THEMIS_SHARDS", "a:1,b:1"),
            ],
            "has 1 data shard(s), needs at least 2",
        ),
    ] {
        let output = from_env(work.path(), &vars, &args);
        let stderr = stderr_text(&output);
        assert_eq!(output.status.code(), Some(22), "{stderr}");
        assert!(
            stderr.contains(expected),
            "{expected:?} missing in {stderr}"
        );
        assert!(stderr.contains("THEMIS_* environment"), "{stderr}");
    }
    // A relative --data-dir is refused like a relative path in a file.
    let vars = [
        ("THEMIS_RAID_GROUP", "raid5"),
        ("THEMIS_SHARD_ID", "raid5-1"),
        ("THEMIS_SHARDS", THEMIS_SHARDS),
    ];
    let output = from_env(work.path(), &vars, &["--data-dir", "db"]);
    assert_eq!(output.status.code(), Some(22));
    assert!(stderr_text(&output).contains("is not absolute"));
}

/// A cluster snapshot of the valid topology: every shard a member (with a
/// snapshot) unless it is in `missing`.
fn cluster_snapshot(tag: Option<&str>, missing: &[&str], seconds: u64) -> ClusterSnapshot {
    let topology = Topology::parse("VALID", VALID).unwrap();
    let members = topology
        .shards
        .iter()
        .filter(|shard| !missing.contains(&shard.name.as_str()))
        .map(|shard| ClusterMember {
            shard: shard.name.clone(),
            group: shard.group.clone(),
            role: shard.role,
            snapshot: Some(Id::of(shard.name.as_bytes())),
            sequence: Some(42),
            pause: PauseFigures {
                freeze_seconds: 0.001,
                link_seconds: 0.002,
                thaw_seconds: 0.0005,
            },
        })
        .collect();
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds);
    let mut snapshot = ClusterSnapshot::new(topology, Timestamp::from(time), members);
    snapshot.tag = tag.map(str::to_string);
    snapshot.pause_seconds = 0.004;
    snapshot
}

#[test]
fn cluster_ls_of_a_repository_without_cluster_snapshots_is_empty() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let text = lsmvault_ok(&repo, &["cluster", "ls"]);
    assert!(text.contains("0 cluster snapshot(s)"), "{text}");
    assert_eq!(
        lsmvault_json(&repo, &["cluster", "ls"]),
        serde_json::json!([])
    );
}

#[test]
fn cluster_ls_lists_two_cluster_snapshots_oldest_first() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let repository = Repository::open_local(&repo).unwrap();
    let newer = repository
        .write_cluster_snapshot(&cluster_snapshot(None, &["e2"], 1_800_000_000))
        .unwrap();
    let older = repository
        .write_cluster_snapshot(&cluster_snapshot(Some("nightly"), &[], 1_700_000_000))
        .unwrap();

    let text = lsmvault_ok(&repo, &["cluster", "ls"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].starts_with(&older.short()), "{text}");
    assert!(
        lines[1].contains("orders") && lines[1].contains("nightly"),
        "{text}"
    );
    assert!(lines[1].ends_with("5  complete"), "{text}");
    assert!(lines[2].starts_with(&newer.short()), "{text}");
    assert!(lines[2].ends_with("4  incomplete: east"), "{text}");
    assert_eq!(lines[3], "2 cluster snapshot(s)");

    let json = lsmvault_json(&repo, &["cluster", "ls"]);
    let listed = json.as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0]["id"], older.to_hex());
    assert_eq!(listed[0]["tag"], "nightly");
    assert_eq!(listed[0]["member_count"], 5);
    assert_eq!(listed[0]["complete"], true);
    assert_eq!(listed[0]["members"][0]["sequence"], 42);
    assert_eq!(listed[0]["members"][0]["pause"]["link_seconds"], 0.002);
    assert_eq!(listed[1]["complete"], false);
    assert_eq!(listed[1]["incomplete_groups"], serde_json::json!(["east"]));
    // Read back by id prefix, as later commands select them.
    let found = repository.find_cluster_snapshot(&older.short()).unwrap();
    assert_eq!(
        found.snapshot,
        cluster_snapshot(Some("nightly"), &[], 1_700_000_000)
    );
    assert_eq!(
        repository
            .find_cluster_snapshot("ffffffffff")
            .unwrap_err()
            .code(),
        lsmvault::ErrorCode::SnapshotNotFound
    );
    // Cluster snapshots are no snapshots: verify and the snapshot listing
    // pass them by.
    lsmvault_ok(&repo, &["verify"]);
    assert_eq!(lsmvault_json(&repo, &["snapshots"]), serde_json::json!([]));
}

#[test]
fn cluster_ls_skips_and_names_a_damaged_cluster_snapshot() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let repository = Repository::open_local(&repo).unwrap();
    let intact = repository
        .write_cluster_snapshot(&cluster_snapshot(None, &[], 1_700_000_000))
        .unwrap();
    let damaged = repository
        .write_cluster_snapshot(&cluster_snapshot(Some("x"), &[], 1_700_000_100))
        .unwrap();
    let path = repo.join("clusters").join(damaged.to_hex());
    let mut bytes = fs::read(&path).unwrap();
    bytes[10] ^= 0x20;
    fs::write(&path, bytes).unwrap();

    let output = lsmvault(&repo, &["cluster", "ls"]);
    let text = assert_success(&output, "cluster ls");
    assert!(
        text.contains(&intact.short()) && text.contains("1 cluster snapshot(s)"),
        "{text}"
    );
    let stderr = stderr_text(&output);
    assert!(
        stderr.contains(&format!(
            "warning: cluster snapshot {} cannot be read",
            damaged.to_hex()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("content hashes to"), "{stderr}");
    let json = lsmvault_json(&repo, &["cluster", "ls"]);
    assert_eq!(json["clusters"].as_array().unwrap().len(), 1);
    assert_eq!(json["damaged"][0]["name"], damaged.to_hex());
    assert_eq!(json["damaged"][0]["code"], "checksum_mismatch");
    let error = repository
        .find_cluster_snapshot(&damaged.short())
        .unwrap_err();
    assert!(error.to_string().contains(&damaged.to_hex()), "{error}");
}

#[test]
fn cluster_snapshots_are_sealed_in_an_encrypted_repository() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let init = lsmvault_with_password(&repo, Some("pw"), &["init"]);
    assert_success(&init, "init");
    let repository = Repository::open_local_with_password(&repo, "pw").unwrap();
    let id = repository
        .write_cluster_snapshot(&cluster_snapshot(Some("sealed"), &[], 1_700_000_000))
        .unwrap();
    let stored = fs::read(repo.join("clusters").join(id.to_hex())).unwrap();
    assert!(!String::from_utf8_lossy(&stored).contains("orders"));
    let output = lsmvault_with_password(&repo, Some("pw"), &["cluster", "ls"]);
    let text = assert_success(&output, "cluster ls");
    assert!(
        text.contains("sealed") && text.contains("1 cluster snapshot(s)"),
        "{text}"
    );
}

#[test]
fn topology_file_that_is_not_utf8_is_refused_as_invalid() {
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("topology.toml");
    fs::write(&file, b"name = \"\xff\"\n").unwrap();
    let output = lsmvault_command(work.path(), None, &["cluster", "topology", "--check"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = stderr_text(&output);
    assert_eq!(output.status.code(), Some(22), "{stderr}");
    assert!(stderr.contains("byte 8 is not UTF-8"), "{stderr}");
}

#[test]
fn topology_check_of_a_missing_file_is_an_io_error() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("absent.toml");
    let output = lsmvault_command(work.path(), None, &["cluster", "topology", "--check"])
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(21));
    assert!(stderr_text(&output).contains("reading topology file"));
}

#[test]
fn cluster_ls_names_a_cluster_snapshot_whose_time_cannot_be_printed() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    lsmvault_ok(&repo, &["init", "--no-encryption"]);
    let seed = source_root().join("fuzz/corpus/cluster_snapshot/regression-time-before-epoch");
    let bytes = fs::read(seed).unwrap();
    let name = Id::of(&bytes).to_hex();
    fs::create_dir_all(repo.join("clusters")).unwrap();
    fs::write(repo.join("clusters").join(&name), &bytes).unwrap();
    let json = lsmvault_json(&repo, &["cluster", "ls"]);
    assert_eq!(json["clusters"], serde_json::json!([]));
    assert_eq!(json["damaged"][0]["name"], name);
    assert_eq!(json["damaged"][0]["code"], "corrupt_object");
}

/// `cluster ls` through the metadata cache `cache`: its stdout and the
/// requests it made, by kind (`LSMVAULT_REQUEST_STATS`).
fn cached_ls(repo: &Path, cache: &Path) -> (String, serde_json::Value) {
    let output = lsmvault_command(repo, Some("pw"), &["cluster", "ls", "--cache-dir"])
        .arg(cache)
        .env("LSMVAULT_REQUEST_STATS", "1")
        .output()
        .unwrap();
    let stdout = assert_success(&output, "cluster ls --cache-dir");
    let stderr = stderr_text(&output);
    let line = stderr
        .lines()
        .find(|line| line.starts_with("{\"request_stats\""))
        .unwrap_or_else(|| panic!("no request stats in {stderr}"));
    let stats: serde_json::Value = serde_json::from_str(line).unwrap();
    (
        stdout,
        stats["request_stats"]["by_kind"]["clusters"].clone(),
    )
}

#[test]
fn cluster_snapshots_are_served_from_the_metadata_cache() {
    let work = tempfile::tempdir().unwrap();
    let repo = work.path().join("repo");
    let cache = work.path().join("cache");
    assert_success(
        &lsmvault_with_password(&repo, Some("pw"), &["init"]),
        "init",
    );
    let repository = Repository::open_local_with_password(&repo, "pw").unwrap();
    for seconds in [1_700_000_000, 1_700_000_100] {
        repository
            .write_cluster_snapshot(&cluster_snapshot(None, &[], seconds))
            .unwrap();
    }
    let (cold, requests) = cached_ls(&repo, &cache);
    assert!(cold.contains("2 cluster snapshot(s)"), "{cold}");
    assert_eq!(requests, serde_json::json!({ "list": 1, "read": 2 }));
    let (warm, requests) = cached_ls(&repo, &cache);
    assert_eq!(warm, cold);
    assert_eq!(requests, serde_json::json!({ "list": 1 }));
    // A damaged cache entry is dropped and read again from the repository.
    let cached: Vec<_> = walkdir::WalkDir::new(&cache)
        .into_iter()
        .map(|entry| entry.unwrap().into_path())
        .filter(|path| path.is_file() && path.parent().unwrap().ends_with("clusters"))
        .collect();
    assert_eq!(cached.len(), 2);
    let mut bytes = fs::read(&cached[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    fs::write(&cached[0], bytes).unwrap();
    let (healed, requests) = cached_ls(&repo, &cache);
    assert_eq!(healed, cold);
    assert_eq!(requests, serde_json::json!({ "list": 1, "read": 1 }));
}
