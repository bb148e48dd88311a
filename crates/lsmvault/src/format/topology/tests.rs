use super::*;

const RAID5: &str = r#"
name = "orders"

[groups.east]
scheme = "raid5"

[[shards]]
name = "s1"
group = "east"
role = "data"
path = "/srv/s1"
pid_file = "/run/s1.pid"

[[shards]]
name = "s2"
group = "east"
role = "data"
path = "/srv/s2"
host = "db2"
freeze = "kill -STOP 1"
thaw = "kill -CONT 1"

[[shards]]
name = "p"
group = "east"
role = "parity"
path = "/srv/p"
host = "db3"
remote_command = "ssh -p 2222 {host} {command}"
pause_file = "/srv/p/PAUSE"
"#;

fn problems_of(text: &str) -> String {
    match Topology::parse("t.toml", text) {
        Err(error) => error.to_string(),
        Ok(_) => String::new(),
    }
}

#[test]
fn a_valid_raid5_topology_parses_and_round_trips_through_toml() {
    let topology = Topology::parse("t.toml", RAID5).unwrap();
    assert_eq!(topology.shards.len(), 3);
    assert_eq!(
        topology.shards[0].pause(),
        PauseMethod::PidFile("/run/s1.pid")
    );
    assert_eq!(
        topology.shards[2].location().command("true"),
        "ssh -p 2222 db3 true"
    );
    assert_eq!(topology.shards[1].location().command("ls"), "ssh db2 ls");
    assert_eq!(topology.shards[0].location().command("ls"), "ls");
    let again = Topology::parse("again", &topology.to_toml().unwrap()).unwrap();
    assert_eq!(again, topology);
    let summary = topology.summary();
    assert_eq!(summary.groups[0].tolerated_failures, 1);
    assert_eq!(summary.groups[0].parity, ["p"]);
}

#[test]
fn tolerated_failures_per_scheme() {
    assert_eq!(Scheme::Raid5.tolerated_failures(3), 1);
    assert_eq!(Scheme::Raid6.tolerated_failures(6), 2);
    assert_eq!(Scheme::Replicated.tolerated_failures(3), 2);
    assert_eq!(Scheme::Replicated.tolerated_failures(0), 0);
    assert_eq!(Scheme::Plain.tolerated_failures(4), 0);
}

#[test]
fn unusable_shard_names_are_named() {
    for name in ["", ".", "..", "a/b", "a\\b", "a\nb", "a\u{7f}"] {
        assert!(unusable_shard_name(name).is_some(), "{name:?}");
    }
    assert!(unusable_shard_name(&"x".repeat(256)).is_some());
    for name in ["s1", "raid5-1", ".hidden", "a.b", "é"] {
        assert_eq!(unusable_shard_name(name), None, "{name:?}");
    }
}

#[test]
fn every_problem_is_reported_at_once_with_its_shard() {
    let text = RAID5
        .replace("name = \"s2\"", "name = \"s1\"")
        .replace("path = \"/srv/p\"", "path = \"srv/p\"");
    let message = problems_of(&text);
    assert!(message.contains("t.toml"), "{message}");
    assert!(
        message.contains("shard \"s1\": the name is used by more than one shard"),
        "{message}"
    );
    assert!(
        message.contains("shard \"p\": path \"srv/p\" is not absolute"),
        "{message}"
    );
}

#[test]
fn pause_methods_must_be_one_and_complete() {
    let message = problems_of(&RAID5.replace("thaw = \"kill -CONT 1\"\n", ""));
    assert!(message.contains("`freeze` without `thaw`"), "{message}");
    let message = problems_of(&RAID5.replace(
        "pid_file = \"/run/s1.pid\"",
        "pid_file = \"/run/s1.pid\"\npause_file = \"/x\"",
    ));
    assert!(message.contains("more than one pause method"), "{message}");
    let message = problems_of(&RAID5.replace("/run/s1.pid", "run/s1.pid"));
    assert!(
        message.contains("pid_file is not an absolute path"),
        "{message}"
    );
}

#[test]
fn remote_command_needs_a_host_and_a_command_placeholder() {
    let message = problems_of(&RAID5.replace("host = \"db3\"\n", ""));
    assert!(message.contains("remote_command without host"), "{message}");
    let message = problems_of(&RAID5.replace("{host} {command}", "{host}"));
    assert!(message.contains("lacks {command}"), "{message}");
    let message = problems_of(&RAID5.replace("host = \"db2\"", "host = \"db 2\""));
    assert!(message.contains("has spaces"), "{message}");
}

#[test]
fn value_errors_name_the_shard_and_syntax_errors_the_line() {
    let message = problems_of(&RAID5.replace("role = \"parity\"", "role = \"mirror\""));
    assert!(
        message.contains("shard \"p\": unknown variant `mirror`"),
        "{message}"
    );
    assert!(message.contains("t.toml"), "{message}");
    let message =
        problems_of(&RAID5.replace("[[shards]]\nname = \"s2\"", "[[shards]\nname = \"s2\""));
    assert!(message.contains("line 14:"), "{message}");
}

#[test]
fn an_empty_cluster_and_unprintable_group_names_are_refused() {
    let message = problems_of("name = \"x\"\ngroups = {}\nshards = []\n");
    assert!(message.contains("the cluster has no shards"), "{message}");
    let message = problems_of(
        &RAID5
            .replace("[groups.east]", "[groups.\"\"]")
            .replace("group = \"east\"", "group = \"\""),
    );
    assert!(message.contains("group name \"\" is empty"), "{message}");
}

#[test]
fn a_host_that_ssh_would_take_for_an_option_is_refused() {
    let message =
        problems_of(&RAID5.replace("host = \"db2\"", "host = \"-oProxyCommand=touch /tmp/x\""));
    assert!(message.contains("starts with `-`"), "{message}");
}

#[test]
fn empty_freeze_or_thaw_commands_are_refused() {
    let message = problems_of(&RAID5.replace("thaw = \"kill -CONT 1\"", "thaw = \" \""));
    assert!(message.contains("`thaw` is an empty command"), "{message}");
}

#[test]
fn two_shards_at_one_location_are_refused() {
    let message =
        problems_of(&RAID5.replace("path = \"/srv/s2\"\nhost = \"db2\"", "path = \"/srv/s1\""));
    assert!(
        message.contains("shard \"s2\": its host and path are another shard's too"),
        "{message}"
    );
    // The same path on two hosts is two databases.
    assert!(problems_of(&RAID5.replace("path = \"/srv/p\"", "path = \"/srv/s2\"")).is_empty());
}
