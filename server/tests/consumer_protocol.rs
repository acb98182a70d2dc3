//! The new consumer group protocol (KIP-848) as librdkafka speaks it (`group.protocol=consumer`,
//! the `rdkafka` crate's librdkafka 2.12): members join by ConsumerGroupHeartbeat, the broker's
//! assignor splits the partitions, a second member gets its share only after the first gave
//! it up, a member that leaves or is SIGKILLed hands its partitions to the rest, and a group
//! resumes exactly after what it committed. ConsumerGroupDescribe, ListGroups (type filter) and
//! DescribeGroups are checked on the live group.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Broker;
use common::kafka::runtime;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Broker settings that keep the tests short: members heartbeat every 300 ms and are fenced
/// after 3 s of silence (Kafka's defaults: 5 s and 45 s).
const FAST_GROUPS: [&str; 2] = [
    "group.consumer.heartbeat.interval.ms=300",
    "group.consumer.session.timeout.ms=3000",
];

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap()
}

/// Produces `count` records round-robin over `partitions` partitions, values `{tag}-{i}`.
fn produce(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    tag: &str,
    count: usize,
) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    rt.block_on(async {
        for i in 0..count {
            let value = format!("{tag}-{i}");
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(i as i32 % partitions)
                    .payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        }
    });
}

fn assigned(c: &BaseConsumer) -> BTreeSet<i32> {
    c.assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// What consumers read: (partition, offset) -> (index of the consumer, value).
type Consumed = BTreeMap<(i32, i64), (usize, String)>;

/// Polls every consumer until `done` holds of their assignments; what they consumed meanwhile
/// is added to `got`.
fn poll_until(
    cs: &[&BaseConsumer],
    got: &mut Consumed,
    what: &str,
    timeout: Duration,
    done: impl Fn(&[BTreeSet<i32>], &Consumed) -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        for (i, c) in cs.iter().enumerate() {
            while let Some(m) = c.poll(Duration::from_millis(20)) {
                let m = m.unwrap();
                let value = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                got.insert((m.partition(), m.offset()), (i, value));
            }
        }
        let sizes: Vec<BTreeSet<i32>> = cs.iter().map(|c| assigned(c)).collect();
        if done(&sizes, got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: assignments {sizes:?}, {} records consumed",
            got.len()
        );
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

fn describe(broker: &Broker, group: &str) -> consumer_group_describe_response::DescribedGroup {
    let mut conn = common::wire::connect(broker);
    let mut r = consumer_group_describe_request::ConsumerGroupDescribeRequest::default();
    r.group_ids = vec![GroupId(s(group))];
    let ResponseKind::ConsumerGroupDescribe(resp) =
        common::wire::call(&mut conn, ApiKey::ConsumerGroupDescribe, 1, &r)
    else {
        panic!()
    };
    resp.groups.into_iter().next().unwrap()
}

/// One member takes all six partitions; a second joins and the broker's assignor gives each
/// three (the second getting its three only once the first has given them up); each reads
/// only its own partitions, and together every record; both commit. The second leaves; the first takes all six back and, after more records are
/// produced, reads exactly the new ones: nothing the group committed is read again, nothing
/// is skipped.
#[test]
fn members_share_partitions_and_a_group_resumes_after_its_commits() {
    let broker = Broker::start(&FAST_GROUPS);
    let b = broker.bootstrap();
    let rt = runtime();
    common::kafka::create_topic(&rt, &b, "kip848", 6, 1);

    let c1 = consumer(&b, "g848");
    c1.subscribe(&["kip848"]).unwrap();
    let mut got = BTreeMap::new();
    poll_until(
        &[&c1],
        &mut got,
        "a lone member gets all six",
        Duration::from_secs(30),
        |a, _| a[0].len() == 6,
    );
    let c2 = consumer(&b, "g848");
    c2.subscribe(&["kip848"]).unwrap();
    poll_until(
        &[&c1, &c2],
        &mut got,
        "two members, three partitions each",
        Duration::from_secs(60),
        |a, _| a[0].len() == 3 && a[1].len() == 3 && a[0].is_disjoint(&a[1]),
    );
    let split = [assigned(&c1), assigned(&c2)];
    produce(&rt, &b, "kip848", 6, "first", 600);
    poll_until(
        &[&c1, &c2],
        &mut got,
        "every record",
        Duration::from_secs(60),
        |_, got| got.len() == 600,
    );
    for ((p, _), (i, _)) in &got {
        assert!(
            split[*i].contains(p),
            "consumer {i} read partition {p}, not its own"
        );
    }
    let values: BTreeSet<&String> = got.values().map(|(_, v)| v).collect();
    assert_eq!(values.len(), 600, "every record");
    for c in [&c1, &c2] {
        c.commit_consumer_state(CommitMode::Sync).unwrap();
    }

    let d = describe(&broker, "g848");
    assert_eq!(d.error_code, 0);
    assert_eq!(d.group_state.as_str(), "Stable");
    assert_eq!(d.assignor_name.as_str(), "uniform");
    assert_eq!(d.members.len(), 2);
    for m in &d.members {
        assert_eq!(
            m.member_epoch, d.group_epoch,
            "every member at the group epoch"
        );
        let parts: usize = m
            .assignment
            .topic_partitions
            .iter()
            .map(|t| t.partitions.len())
            .sum();
        assert_eq!(parts, 3);
        assert_eq!(
            m.assignment.topic_partitions[0].topic_name.0.as_str(),
            "kip848"
        );
        assert_eq!(m.assignment, m.target_assignment);
        assert_eq!(m.subscribed_topic_names[0].0.as_str(), "kip848");
        assert_eq!(m.member_type, 1);
        assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    }
    let epoch_with_two = d.group_epoch;

    // ListGroups v5 lists it as a consumer group; DescribeGroups (classic) says Dead.
    let mut conn = common::wire::connect(&broker);
    let mut lg = list_groups_request::ListGroupsRequest::default();
    lg.types_filter = vec![s("consumer")];
    let ResponseKind::ListGroups(listed) =
        common::wire::call(&mut conn, ApiKey::ListGroups, 5, &lg)
    else {
        panic!()
    };
    let g = listed
        .groups
        .iter()
        .find(|g| g.group_id.0.as_str() == "g848")
        .unwrap();
    assert_eq!(
        (g.group_type.as_str(), g.group_state.as_str()),
        ("consumer", "Stable")
    );
    lg.types_filter = vec![s("classic")];
    let ResponseKind::ListGroups(listed) =
        common::wire::call(&mut conn, ApiKey::ListGroups, 5, &lg)
    else {
        panic!()
    };
    assert!(
        listed
            .groups
            .iter()
            .all(|g| g.group_id.0.as_str() != "g848")
    );
    let mut dg = describe_groups_request::DescribeGroupsRequest::default();
    dg.groups = vec![GroupId(s("g848"))];
    let ResponseKind::DescribeGroups(classic) =
        common::wire::call(&mut conn, ApiKey::DescribeGroups, 5, &dg)
    else {
        panic!()
    };
    assert_eq!(classic.groups[0].group_state.as_str(), "Dead");

    // The second member leaves (its close sends epoch -1); the first takes its partitions.
    c2.unsubscribe();
    drop(c2);
    poll_until(
        &[&c1],
        &mut got,
        "the remaining member takes all six",
        Duration::from_secs(30),
        |a, _| a[0].len() == 6,
    );
    let d = describe(&broker, "g848");
    assert_eq!(d.members.len(), 1);
    assert!(
        d.group_epoch > epoch_with_two,
        "a leave bumps the group epoch"
    );

    produce(&rt, &b, "kip848", 6, "second", 60);
    let mut after = BTreeMap::new();
    poll_until(
        &[&c1],
        &mut after,
        "the 60 new records",
        Duration::from_secs(30),
        |_, got| got.len() >= 60,
    );
    // A moment more, to catch any re-delivery of committed records.
    poll_until(
        &[&c1],
        &mut after,
        "settle",
        Duration::from_secs(5),
        |_, _| true,
    );
    std::thread::sleep(Duration::from_millis(500));
    poll_until(
        &[&c1],
        &mut after,
        "settle",
        Duration::from_secs(5),
        |_, _| true,
    );
    let values: BTreeSet<&str> = after.values().map(|(_, v)| v.as_str()).collect();
    let expected: BTreeSet<String> = (0..60).map(|i| format!("second-{i}")).collect();
    assert_eq!(
        values,
        expected.iter().map(String::as_str).collect(),
        "exactly the records after the group's commits"
    );
}

/// The child side of the SIGKILL test: joins `STRATA_KIP848_GROUP` and reports its assignment
/// on stdout until it is killed.
fn run_child_member(bootstrap: &str, group: &str) -> ! {
    let c = consumer(bootstrap, group);
    c.subscribe(&["kip848-kill"]).unwrap();
    loop {
        let _ = c.poll(Duration::from_millis(100));
        println!("assigned {}", assigned(&c).len());
    }
}

/// A member whose process is SIGKILLed (no leave request) is fenced when its session times
/// out, and its partitions move to the member that is left, which then reads what is produced
/// to them. The take-over time is printed (bounded here only by the test's patience).
#[test]
fn a_sigkilled_member_is_fenced_and_its_partitions_move() {
    if let (Ok(b), Ok(g)) = (
        std::env::var("STRATA_KIP848_BOOTSTRAP"),
        std::env::var("STRATA_KIP848_GROUP"),
    ) {
        run_child_member(&b, &g);
    }
    let broker = Broker::start(&FAST_GROUPS);
    let b = broker.bootstrap();
    let rt = runtime();
    common::kafka::create_topic(&rt, &b, "kip848-kill", 4, 1);
    let c1 = consumer(&b, "g848-kill");
    c1.subscribe(&["kip848-kill"]).unwrap();
    let mut got = BTreeMap::new();
    poll_until(
        &[&c1],
        &mut got,
        "the first member gets all four",
        Duration::from_secs(30),
        |a, _| a[0].len() == 4,
    );

    // The same test binary, run as the second member in its own process.
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "a_sigkilled_member_is_fenced_and_its_partitions_move",
            "--exact",
            "--nocapture",
        ])
        .env("STRATA_KIP848_BOOTSTRAP", &b)
        .env("STRATA_KIP848_GROUP", "g848-kill")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let _ = c1.poll(Duration::from_millis(50));
        let child_has_two = rx.try_iter().any(|l| l == "assigned 2");
        if child_has_two && assigned(&c1).len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the two members never split the partitions"
        );
    }
    let child_partitions: BTreeSet<i32> = (0..4).filter(|p| !assigned(&c1).contains(p)).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = Instant::now();
    poll_until(
        &[&c1],
        &mut got,
        "the survivor takes the killed member's partitions",
        Duration::from_secs(30),
        |a, _| a[0].len() == 4,
    );
    println!(
        "KIP-848 take-over after SIGKILL: {} ms (session timeout 3000 ms)",
        killed.elapsed().as_millis()
    );
    produce(&rt, &b, "kip848-kill", 4, "after", 40);
    poll_until(
        &[&c1],
        &mut got,
        "the records produced after the kill",
        Duration::from_secs(30),
        |_, got| {
            got.values()
                .filter(|(_, v)| v.starts_with("after-"))
                .count()
                == 40
        },
    );
    let from_child: usize = got
        .iter()
        .filter(|((p, _), (_, v))| child_partitions.contains(p) && v.starts_with("after-"))
        .count();
    assert_eq!(
        from_child, 20,
        "the killed member's partitions are read by the survivor"
    );
}

/// What librdkafka cannot be made to send: the broker's answers to heartbeats a client gets
/// wrong, over the wire at v0 and v1, with Kafka's error codes.
#[test]
fn heartbeats_with_wrong_epochs_ids_or_assignors_get_kafkas_errors() {
    use consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
    let broker = Broker::start(&FAST_GROUPS);
    let rt = runtime();
    common::kafka::create_topic(&rt, &broker.bootstrap(), "kip848-wire", 2, 1);
    let mut conn = common::wire::connect(&broker);
    let mut call = |version: i16, r: &ConsumerGroupHeartbeatRequest| {
        let ResponseKind::ConsumerGroupHeartbeat(resp) =
            common::wire::call(&mut conn, ApiKey::ConsumerGroupHeartbeat, version, r)
        else {
            panic!()
        };
        resp
    };
    let mut join = ConsumerGroupHeartbeatRequest::default();
    join.group_id = GroupId(s("g848-wire"));
    join.member_epoch = 0;
    join.rebalance_timeout_ms = 10_000;
    join.subscribed_topic_names = Some(vec![TopicName(s("kip848-wire"))]);
    join.topic_partitions = Some(vec![]);

    // v0: the coordinator names a member that joins without an id; v1 requires one.
    let first = call(0, &join);
    assert_eq!(first.error_code, 0, "{first:?}");
    let id = first.member_id.clone().unwrap();
    assert!(!id.is_empty());
    assert_eq!(first.member_epoch, 1);
    let parts: usize = first
        .assignment
        .as_ref()
        .unwrap()
        .topic_partitions
        .iter()
        .map(|t| t.partitions.len())
        .sum();
    assert_eq!(parts, 2);
    assert_eq!(
        call(1, &join).error_code,
        42,
        "v1 without a member id: INVALID_REQUEST"
    );

    let mut beat = ConsumerGroupHeartbeatRequest::default();
    beat.group_id = join.group_id.clone();
    beat.member_id = id.clone();
    beat.rebalance_timeout_ms = -1;
    beat.member_epoch = 7;
    assert_eq!(
        call(1, &beat).error_code,
        110,
        "a future epoch: FENCED_MEMBER_EPOCH"
    );
    beat.member_epoch = 1;
    let ok = call(1, &beat);
    assert_eq!((ok.error_code, ok.member_epoch), (0, 1));
    assert!(
        ok.assignment.is_none(),
        "an unchanged assignment is not repeated"
    );
    assert_eq!(ok.heartbeat_interval_ms, 300);
    beat.member_id = s("nobody");
    assert_eq!(call(1, &beat).error_code, 25, "UNKNOWN_MEMBER_ID");

    let mut other = join.clone();
    other.member_id = s("m2");
    other.server_assignor = Some(s("cooperative-sticky"));
    assert_eq!(call(1, &other).error_code, 112, "UNSUPPORTED_ASSIGNOR");
    other.server_assignor = None;
    other.subscribed_topic_names = None;
    other.subscribed_topic_regex = Some(s("kip848-(wire"));
    assert_eq!(
        call(1, &other).error_code,
        128,
        "INVALID_REGULAR_EXPRESSION"
    );

    // OffsetCommit v9 names the member epoch: the current one commits, an older is stale.
    let commit = |epoch: i32, member: &str| {
        use offset_commit_request::*;
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = 0;
        let mut t = OffsetCommitRequestTopic::default();
        t.name = TopicName(s("kip848-wire"));
        t.partitions = vec![p];
        let mut r = OffsetCommitRequest::default();
        r.group_id = GroupId(s("g848-wire"));
        r.generation_id_or_member_epoch = epoch;
        r.member_id = s(member);
        r.topics = vec![t];
        r
    };
    let mut conn = common::wire::connect(&broker);
    for (epoch, member, code) in [(1, id.as_str(), 0), (0, id.as_str(), 113), (-1, "", 25)] {
        let ResponseKind::OffsetCommit(resp) =
            common::wire::call(&mut conn, ApiKey::OffsetCommit, 9, &commit(epoch, member))
        else {
            panic!()
        };
        assert_eq!(
            resp.topics[0].partitions[0].error_code, code,
            "commit at epoch {epoch}"
        );
    }

    // A classic JoinGroup cannot join a consumer group that has members.
    use join_group_request::*;
    let mut p = JoinGroupRequestProtocol::default();
    p.name = s("range");
    let mut jg = JoinGroupRequest::default();
    jg.group_id = GroupId(s("g848-wire"));
    jg.session_timeout_ms = 10_000;
    jg.rebalance_timeout_ms = 10_000;
    jg.protocol_type = s("consumer");
    jg.protocols = vec![p];
    let ResponseKind::JoinGroup(resp) = common::wire::call(&mut conn, ApiKey::JoinGroup, 9, &jg)
    else {
        panic!()
    };
    assert_eq!(resp.error_code, 23, "INCONSISTENT_GROUP_PROTOCOL");

    // Leaving: epoch -1; the group is then empty.
    let mut conn = common::wire::connect(&broker);
    let mut leave = beat.clone();
    leave.member_id = id.clone();
    leave.member_epoch = -1;
    let ResponseKind::ConsumerGroupHeartbeat(left) =
        common::wire::call(&mut conn, ApiKey::ConsumerGroupHeartbeat, 1, &leave)
    else {
        panic!()
    };
    assert_eq!((left.error_code, left.member_epoch), (0, -1));
    let d = describe(&broker, "g848-wire");
    assert_eq!((d.group_state.as_str(), d.members.len()), ("Empty", 0));
    assert_eq!(
        describe(&broker, "no-such-group").error_code,
        69,
        "GROUP_ID_NOT_FOUND"
    );
}
