//! Partition reassignment (KIP-455) and self-healing on real processes: a partition moved onto
//! a broker that joined the running cluster while an idempotent producer writes, with the added
//! broker SIGKILLed mid-move; a throttled move (KIP-73), listed by kafkajs, then cancelled; the
//! replicas of a broker gone for good re-created on the others; and a broker back on an empty
//! disk never trusted as a copy of what it lost. Every test checks that nothing acknowledged is
//! lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::Broker;
use common::cluster::{Cluster, Layout, wait_for};
use common::history::*;
use common::kafka::runtime;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::{ApiKey, BrokerId, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};

/// AlterPartitionReassignments v1 of one partition (`None`: cancel); its error code.
fn reassign(b: &Broker, topic: &str, partition: i32, target: Option<&[i32]>) -> i16 {
    let mut p = ReassignablePartition::default();
    p.partition_index = partition;
    p.replicas = target.map(|t| t.iter().map(|b| BrokerId(*b)).collect());
    let mut t = ReassignableTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![p];
    let mut r = AlterPartitionReassignmentsRequest::default();
    r.timeout_ms = 10_000;
    r.allow_replication_factor_change = true;
    r.topics = vec![t];
    let mut conn = common::wire::connect(b);
    let ResponseKind::AlterPartitionReassignments(resp) =
        common::wire::call(&mut conn, ApiKey::AlterPartitionReassignments, 1, &r)
    else {
        panic!("not an AlterPartitionReassignments response")
    };
    assert_eq!(resp.error_code, 0);
    resp.responses[0].partitions[0].error_code
}

/// One move as ListPartitionReassignments shows it.
#[derive(Debug, PartialEq, Eq)]
struct Move {
    topic: String,
    partition: i32,
    replicas: Vec<i32>,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

/// Every move under way, as `b` lists them.
fn moves(b: &Broker) -> Vec<Move> {
    let mut r = ListPartitionReassignmentsRequest::default();
    r.timeout_ms = 10_000;
    let mut conn = common::wire::connect(b);
    let ResponseKind::ListPartitionReassignments(resp) =
        common::wire::call(&mut conn, ApiKey::ListPartitionReassignments, 0, &r)
    else {
        panic!("not a ListPartitionReassignments response")
    };
    assert_eq!(resp.error_code, 0);
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    resp.topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| Move {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                replicas: ids(&p.replicas),
                adding: ids(&p.adding_replicas),
                removing: ids(&p.removing_replicas),
            })
        })
        .collect()
}

/// Creates `name` with one partition on exactly `replicas` (the first leads), and configs.
fn create_assigned(bootstrap: &str, name: &str, replicas: &[i32], configs: &[(&str, &str)]) {
    let admin = common::kafka::admin(bootstrap);
    let assignment = [replicas];
    let topic = configs.iter().fold(
        NewTopic::new(name, 1, TopicReplication::Variable(&assignment)),
        |t, (k, v)| t.set(k, v),
    );
    let res = runtime()
        .block_on(admin.create_topics(
            &[topic],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

/// Whether node `node` holds a copy of `topic`-`partition` on its disk.
fn has_copy(c: &Cluster, node: usize, dir: &str) -> bool {
    c.brokers[node - 1].data_dir().join(dir).exists()
}

/// A producer thread writing `0..n` with acks=all, idempotent, in chunks with pauses, so a
/// move happens under load; joins to the acknowledged values.
fn produce_in_background(
    bootstrap: String,
    topic: &'static str,
    n: u64,
    payload: usize,
) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        let p = producer(&bootstrap, &[]);
        let pad = "x".repeat(payload);
        let mut pending = Vec::new();
        for chunk in (0..n).collect::<Vec<_>>().chunks(250) {
            for v in chunk {
                let value = format!("{v}");
                let rec = rdkafka::producer::FutureRecord::<str, _>::to(topic)
                    .payload(&value)
                    .key(pad.as_str());
                pending.push((*v, p.send_result(rec).unwrap()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        acknowledged(pending)
    })
}

/// A partition moves from {1,2,3} to {2,3,4} while a producer writes to it, onto broker 4 that
/// joined the running cluster; broker 4 is SIGKILLed as the move starts, so the move waits for
/// it (listed as adding 4, removing 1) and completes once it is back and caught up. Broker 1,
/// the leader, leaves: leadership moves within the target and broker 1 deletes its copy.
/// Nothing acknowledged is lost, and broker 4's bytes end up equal to the leader's.
#[test]
fn a_partition_moves_onto_a_new_broker_under_load_and_a_kill_mid_move_loses_nothing() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        ..Default::default()
    });
    let four = c.add_broker(&[]);
    assert_eq!(four, 4);
    create_assigned(&c.bootstrap(), "moving", &[1, 2, 3], &[]);
    wait_isr(&c.bootstrap(), "moving", 0, 3);
    let writer = produce_in_background(c.bootstrap(), "moving", 10_000, 100);
    std::thread::sleep(Duration::from_secs(1));
    c.broker(4).kill9();
    assert_eq!(reassign(&c.brokers[1], "moving", 0, Some(&[2, 3, 4])), 0);
    let expected = vec![Move {
        topic: "moving".into(),
        partition: 0,
        replicas: vec![2, 3, 4, 1],
        adding: vec![4],
        removing: vec![1],
    }];
    // Listed by another broker than the one that started it once its metadata image has the
    // move (it follows the controller's a moment later).
    let listed = wait_for(
        "the move listed by broker 1",
        Duration::from_secs(5),
        || {
            let m = moves(&c.brokers[0]);
            (!m.is_empty()).then_some(m)
        },
    );
    assert_eq!(listed, expected);
    // Broker 4 is down: the move cannot complete, and the leader stays.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(moves(&c.brokers[2]), expected);
    c.broker(4).restart();
    wait_for("the move to complete", LONG, || {
        moves(&c.brokers[0]).is_empty().then_some(())
    });
    let (leader, replicas, _) = partition_state(&c.bootstrap(), "moving", 0).unwrap();
    assert_eq!(replicas, vec![2, 3, 4]);
    assert!(
        [2, 3, 4].contains(&leader),
        "leader {leader} is in the target"
    );
    // KIP-951: broker 1, no longer a replica, sends a producer to the new leader directly.
    let batch = strata_engine::batch::build(strata_engine::Offset(0), 0, &[(None, Some(b"x"))]);
    let req = common::wire::produce("moving", vec![(0, bytes::Bytes::from(batch))]);
    let mut conn = common::wire::connect(&c.brokers[0]);
    let ResponseKind::Produce(resp) = common::wire::call(&mut conn, ApiKey::Produce, 11, &req)
    else {
        panic!()
    };
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 6, "NOT_LEADER_OR_FOLLOWER");
    assert_eq!(
        p.current_leader.leader_id.0, leader,
        "the new leader is named"
    );
    let named: Vec<(i32, i32)> = resp
        .node_endpoints
        .iter()
        .map(|e| (e.node_id.0, e.port))
        .collect();
    assert_eq!(
        named,
        vec![(leader, i32::from(c.brokers[leader as usize - 1].port))],
        "with its endpoint"
    );
    wait_for("broker 1 to delete its copy", LONG, || {
        (!has_copy(&c, 1, "moving-0")).then_some(())
    });
    let acked = writer.join().unwrap();
    assert!(
        acked.len() > 9_000,
        "most sends acknowledged: {}",
        acked.len()
    );
    let read = read_back(&c.bootstrap(), "moving", 0, acked.len());
    assert_nothing_lost(&read, &acked);
    let leader = wait_isr(&c.bootstrap(), "moving", 0, 3) as usize;
    wait_for("broker 4's copy to equal the leader's", LONG, || {
        (c.replica_bytes(4, "moving-0") == c.replica_bytes(leader, "moving-0")).then_some(())
    });
}

/// A move onto broker 4, which fetches at `follower.replication.throttled.rate` (64 KiB/s) for
/// a topic whose `follower.replication.throttled.replicas` is `*`: kafkajs starts it and lists
/// it; after two seconds broker 4 holds well under half of the partition (the throttle holds),
/// and the in-sync replicas still take acks=all writes. Then it is cancelled: the replicas are
/// {1,2,3} again, broker 4 deletes its partial copy, and nothing acknowledged is lost.
#[test]
fn a_throttled_move_is_listed_by_kafkajs_and_cancelled() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        ..Default::default()
    });
    c.add_broker(&["follower.replication.throttled.rate=65536"]);
    create_assigned(
        &c.bootstrap(),
        "slow",
        &[1, 2, 3],
        &[("follower.replication.throttled.replicas", "*")],
    );
    wait_isr(&c.bootstrap(), "slow", 0, 3);
    let p = producer(&c.bootstrap(), &[]);
    let pad = "y".repeat(1000);
    let pending: Vec<Pending> = (0..2_000u64)
        .map(|v| {
            let value = v.to_string();
            let rec = rdkafka::producer::FutureRecord::<str, _>::to("slow")
                .payload(&value)
                .key(pad.as_str());
            (v, p.send_result(rec).unwrap())
        })
        .collect();
    let mut acked = acknowledged(pending);
    assert_eq!(acked.len(), 2_000);
    let size = c.replica_bytes(1, "slow-0").len();
    assert!(size > 2_000_000, "{size} bytes");

    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/node/kafkajs_reassign.js"
        ))
        .args([c.bootstrap().as_str(), "slow", "0", "1,2,4"])
        .stdin(Stdio::null())
        .output()
        .expect("node runs (scripts/test installs kafkajs)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "kafkajs: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("kafkajs: reassignment accepted"), "{text}");
    assert!(
        text.contains(
            r#"{"partition":0,"replicas":[1,2,4,3],"addingReplicas":[4],"removingReplicas":[3]}"#
        ),
        "kafkajs lists the move: {text}"
    );
    wait_for("broker 4 to start copying", LONG, || {
        (has_copy(&c, 4, "slow-0") && !c.replica_bytes(4, "slow-0").is_empty()).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let copied = c.replica_bytes(4, "slow-0").len();
    assert!(
        copied < size / 2,
        "the throttle holds broker 4 to about 64 KiB/s: {copied} of {size} bytes copied"
    );
    // The ISR is unaffected: acks=all writes go on.
    acked.extend(produce_all(&p, "slow", 2_000..2_100));
    assert_eq!(acked.len(), 2_100);

    assert_eq!(reassign(&c.brokers[0], "slow", 0, None), 0);
    assert!(moves(&c.brokers[0]).is_empty());
    assert_eq!(
        reassign(&c.brokers[0], "slow", 0, None),
        85,
        "nothing to cancel any more: NO_REASSIGNMENT_IN_PROGRESS"
    );
    wait_for("the replicas to be {1,2,3} again", LONG, || {
        partition_state(&c.bootstrap(), "slow", 0).filter(|(_, r, _)| *r == vec![1, 2, 3])
    });
    wait_for("broker 4 to delete its partial copy", LONG, || {
        (!has_copy(&c, 4, "slow-0")).then_some(())
    });
    let read = read_back(&c.bootstrap(), "slow", 0, acked.len());
    assert_nothing_lost(&read, &acked);
}

/// Broker 4 (not a quorum voter) is SIGKILLed and never comes back. After
/// `broker.replacement.delay.ms` the controller re-creates each of its replicas on the live
/// brokers: every partition of every topic (the consumer offsets too) gets back to three
/// in-sync replicas without broker 4, and nothing acknowledged is lost.
#[test]
fn replicas_of_a_broker_gone_for_good_are_recreated_on_the_others() {
    let mut c = Cluster::start(Layout {
        brokers: 4,
        voters: 3,
        extra: vec!["broker.replacement.delay.ms=2000".into()],
        ..Default::default()
    });
    create_topic(&c.bootstrap(), "healing", 4, 3);
    for p in 0..4 {
        wait_isr(&c.bootstrap(), "healing", p, 3);
    }
    let on_four: Vec<i32> = (0..4)
        .filter(|p| {
            partition_state(&c.bootstrap(), "healing", *p).is_some_and(|(_, r, _)| r.contains(&4))
        })
        .collect();
    assert!(on_four.len() >= 2, "placement uses broker 4: {on_four:?}");
    let p = producer(&c.bootstrap_without(4), &[]);
    let acked = acknowledged(enqueue(&p, "healing", 0..2_000, Some(4)));
    assert_eq!(acked.len(), 2_000);
    c.broker(4).kill9();
    let others = c.bootstrap_without(4);
    wait_for(
        "every partition back to 3 in-sync replicas without broker 4",
        LONG,
        || {
            let md = metadata(&others)?;
            let healed = md.iter().all(|(_, _, replicas, isr)| {
                replicas.len() == 3 && !replicas.contains(&4) && isr.len() == 3
            });
            (healed && md.iter().any(|(t, _, _, _)| t == "healing")).then_some(())
        },
    );
    for partition in 0..4 {
        let mine: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|v| (v % 4) as i32 == partition)
            .collect();
        let read = read_back(&others, "healing", partition, mine.len());
        assert_nothing_lost(&read, &mine);
    }
}

/// Broker 4 holds the only replica of `solo` and one of three of `triple`. It is SIGKILLed, its
/// data directory wiped, and it starts again: a new directory identity, so the controller
/// takes it out of every ISR. `solo` stays without a leader instead of being served from an
/// empty log (its acknowledged records are not silently replaced by new ones at offset 0);
/// `triple` goes on, and broker 4 rejoins its ISR only with a full copy.
#[test]
fn a_broker_back_on_an_empty_disk_is_not_trusted_with_what_it_lost() {
    let mut c = Cluster::start(Layout {
        brokers: 4,
        voters: 3,
        extra: vec!["min.insync.replicas=1".into()],
        ..Default::default()
    });
    create_assigned(&c.bootstrap(), "solo", &[4], &[]);
    create_assigned(&c.bootstrap(), "triple", &[4, 1, 2], &[]);
    wait_isr(&c.bootstrap(), "solo", 0, 1);
    wait_isr(&c.bootstrap(), "triple", 0, 3);
    let p = producer(&c.bootstrap(), &[]);
    assert_eq!(produce_all(&p, "solo", 0..100).len(), 100);
    let acked = produce_all(&p, "triple", 0..100);
    assert_eq!(acked.len(), 100);
    c.broker(4).kill9();
    std::fs::remove_dir_all(c.brokers[3].data_dir()).unwrap();
    c.broker(4).restart();
    c.wait_live(4);
    // Long enough for a broker trusted with its old replicas to have been elected.
    std::thread::sleep(Duration::from_secs(3));
    let (leader, _, isr) = partition_state(&c.bootstrap(), "solo", 0).unwrap();
    assert_eq!(
        (leader, isr),
        (-1, vec![]),
        "solo must wait for its lost copy, not lead from an empty one"
    );
    let more = produce_all(&p, "triple", 100..200);
    assert_eq!(more.len(), 100, "triple goes on without broker 4");
    wait_for("broker 4 back in triple's ISR", LONG, || {
        partition_state(&c.bootstrap(), "triple", 0).filter(|(_, _, isr)| isr.contains(&4))
    });
    let (leader, _, _) = partition_state(&c.bootstrap(), "triple", 0).unwrap();
    wait_for(
        "broker 4's copy of triple to equal the leader's",
        LONG,
        || {
            (c.replica_bytes(4, "triple-0") == c.replica_bytes(leader as usize, "triple-0"))
                .then_some(())
        },
    );
    let all: Vec<u64> = acked.into_iter().chain(more).collect();
    let read = read_back(&c.bootstrap(), "triple", 0, all.len());
    assert_nothing_lost(&read, &all);
}

/// Runs `strata cluster ARGS...`; panics unless it succeeds. Returns its stdout.
fn cluster_command(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("cluster")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "strata cluster {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "strata cluster {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value DescribeConfigs gives for one config of a topic.
fn topic_config(b: &Broker, topic: &str, key: &str) -> String {
    use kafka_protocol::messages::describe_configs_request::*;
    let mut res = DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = StrBytes::from_string(topic.to_string());
    res.configuration_keys = Some(vec![StrBytes::from_string(key.to_string())]);
    let mut r = DescribeConfigsRequest::default();
    r.resources = vec![res];
    let mut conn = common::wire::connect(b);
    let ResponseKind::DescribeConfigs(resp) =
        common::wire::call(&mut conn, ApiKey::DescribeConfigs, 4, &r)
    else {
        panic!()
    };
    resp.results[0].configs[0]
        .value
        .as_ref()
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// How many replicas, and preferred leaderships, each broker holds of the partitions listed.
fn replicas_per_broker(
    bootstrap: &str,
) -> (
    std::collections::BTreeMap<i32, usize>,
    std::collections::BTreeMap<i32, usize>,
) {
    let mut replicas = std::collections::BTreeMap::new();
    let mut preferred = std::collections::BTreeMap::new();
    for (_, _, r, _) in metadata(bootstrap).unwrap() {
        for b in &r {
            *replicas.entry(*b).or_insert(0) += 1;
        }
        if let Some(first) = r.first() {
            *preferred.entry(*first).or_insert(0) += 1;
        }
    }
    (replicas, preferred)
}

/// Scale out, then in, with the operator's commands: broker 4 joins a running cluster and
/// `strata cluster rebalance --execute --wait` gives it its share of replicas and preferred
/// leaders; then `--exclude 4` drains it, it is stopped, and `strata cluster unregister`
/// removes it (DescribeCluster no longer lists it, fenced or not). Records written before,
/// during and after are all there.
#[test]
fn a_broker_joins_and_takes_its_share_then_is_drained_and_unregistered() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        extra: vec!["default.replication.factor=2".into()],
        ..Default::default()
    });
    create_topic(&c.bootstrap(), "spread", 8, 2);
    for p in 0..8 {
        wait_isr(&c.bootstrap(), "spread", p, 2);
    }
    let p = producer(&c.bootstrap(), &[]);
    let mut acked = acknowledged(enqueue(&p, "spread", 0..800, Some(8)));
    c.add_broker(&[]);
    let bootstrap = c.bootstrap();
    let (before, _) = replicas_per_broker(&bootstrap);
    assert_eq!(before.get(&4), None, "a new broker holds nothing");
    let plan = cluster_command(&["rebalance", "--bootstrap-server", &bootstrap]);
    assert!(plan.contains(r#""version":1"#), "{plan}");
    cluster_command(&[
        "rebalance",
        "--bootstrap-server",
        &bootstrap,
        "--execute",
        "--wait",
        "--throttle",
        "10000000",
    ]);
    let (after, preferred) = replicas_per_broker(&bootstrap);
    let spread_only: usize = after.values().sum();
    assert!(spread_only >= 16);
    let (min, max) = (after.values().min().unwrap(), after.values().max().unwrap());
    assert!(
        after.get(&4).is_some_and(|n| *n >= 3),
        "broker 4 took replicas: {after:?}"
    );
    assert!(max - min <= 1, "balanced: {after:?}");
    let (pmin, pmax) = (
        preferred.values().min().unwrap(),
        preferred.values().max().unwrap(),
    );
    assert!(
        preferred.len() == 4 && pmax - pmin <= 1,
        "preferred leaders balanced: {preferred:?}"
    );
    // The throttle is lifted once the moves are done.
    assert_eq!(
        topic_config(
            &c.brokers[0],
            "spread",
            "leader.replication.throttled.replicas"
        ),
        ""
    );
    acked.extend(acknowledged(enqueue(&p, "spread", 800..1600, Some(8))));

    cluster_command(&[
        "rebalance",
        "--bootstrap-server",
        &bootstrap,
        "--exclude",
        "4",
        "--execute",
        "--wait",
    ]);
    let (drained, _) = replicas_per_broker(&bootstrap);
    assert_eq!(drained.get(&4), None, "broker 4 is drained: {drained:?}");
    wait_for("broker 4 to delete every copy", LONG, || {
        (0..8)
            .all(|i| !has_copy(&c, 4, &format!("spread-{i}")))
            .then_some(())
    });
    c.broker(4).terminate();
    let others = c.bootstrap_without(4);
    cluster_command(&["unregister", "--bootstrap-server", &others, "--broker", "4"]);
    let mut r =
        kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest::default();
    r.include_fenced_brokers = true;
    let mut conn = common::wire::connect(&c.brokers[0]);
    let ResponseKind::DescribeCluster(resp) =
        common::wire::call(&mut conn, ApiKey::DescribeCluster, 2, &r)
    else {
        panic!()
    };
    let ids: Vec<i32> = resp.brokers.iter().map(|b| b.broker_id.0).collect();
    assert_eq!(ids, vec![1, 2, 3], "broker 4 is gone");
    acked.extend(acknowledged(enqueue(
        &producer(&others, &[]),
        "spread",
        1600..2400,
        Some(8),
    )));
    assert_eq!(acked.len(), 2400);
    for partition in 0..8 {
        let mine: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|v| (v % 8) as i32 == partition)
            .collect();
        let read = read_back(&others, "spread", partition, mine.len());
        assert_nothing_lost(&read, &mine);
    }
}

/// Racks a, b, a and c (broker 4). A partition on brokers 1, 2, 4 (racks a, b, c) loses broker
/// 4 for good: its replica is re-created on broker 3, the only one left, doubling rack a. When
/// broker 5 joins in rack c, the controller moves the doubled replica there by itself, and
/// nothing acknowledged is lost on the way.
#[test]
fn rack_placement_is_repaired_when_a_rack_has_a_broker_again() {
    let mut c = Cluster::start(Layout {
        brokers: 4,
        voters: 3,
        racks: vec!["a".into(), "b".into(), "a".into(), "c".into()],
        extra: vec![
            "broker.replacement.delay.ms=1000".into(),
            "leader.imbalance.return.delay.ms=1000".into(),
            "leader.imbalance.check.interval.seconds=1".into(),
        ],
        ..Default::default()
    });
    create_assigned(&c.bootstrap(), "racked", &[1, 2, 4], &[]);
    wait_isr(&c.bootstrap(), "racked", 0, 3);
    let p = producer(&c.bootstrap_without(4), &[]);
    let mut acked = produce_all(&p, "racked", 0..500);
    c.broker(4).kill9();
    let others = c.bootstrap_without(4);
    wait_for("broker 4's replica re-created on broker 3", LONG, || {
        partition_state(&others, "racked", 0)
            .filter(|(_, r, isr)| *r == vec![1, 2, 3] && isr.len() == 3)
    });
    acked.extend(produce_all(&p, "racked", 500..1000));
    let five = c.add_broker(&["broker.rack=c"]);
    assert_eq!(five, 5);
    wait_for("the doubled replica moved to rack c", LONG, || {
        partition_state(&others, "racked", 0)
            .filter(|(_, r, isr)| *r == vec![1, 2, 5] && isr.len() == 3)
    });
    acked.extend(produce_all(&p, "racked", 1000..1500));
    assert_eq!(acked.len(), 1500);
    let read = read_back(&others, "racked", 0, acked.len());
    assert_nothing_lost(&read, &acked);
}
