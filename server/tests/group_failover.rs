//! Consumer groups (librdkafka) through the loss of their coordinator, with both protocols: a
//! classic group's membership is stored in `__consumer_offsets` with each rebalance, a KIP-848
//! consumer group's with each change, so the broker that takes the group over (or the same
//! broker restarted) lets the members go on at their generation or member epoch: no
//! rebalance, no record read twice, none skipped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Broker;
use common::cluster::{Cluster, Layout, wait_for};
use common::kafka::{create_topic, runtime};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Counts the assignments a consumer receives (one per rebalance it takes part in).
#[derive(Clone, Default)]
struct Rebalances(Arc<AtomicUsize>);

impl ClientContext for Rebalances {}

impl ConsumerContext for Rebalances {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if matches!(rebalance, Rebalance::Assign(_)) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Rebalances {
    fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The group protocol of a test's consumers.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    /// JoinGroup/SyncGroup/Heartbeat.
    Classic,
    /// ConsumerGroupHeartbeat (KIP-848); the broker sets the heartbeat interval.
    Consumer,
}

fn consumer_with(
    bootstrap: &str,
    group: &str,
    protocol: Protocol,
) -> (BaseConsumer<Rebalances>, Rebalances) {
    let ctx = Rebalances::default();
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    match protocol {
        Protocol::Classic => {
            cfg.set("session.timeout.ms", "20000")
                .set("heartbeat.interval.ms", "300");
        }
        Protocol::Consumer => {
            cfg.set("group.protocol", "consumer");
        }
    }
    let c = cfg.create_with_context(ctx.clone()).unwrap();
    (c, ctx)
}

fn consumer(bootstrap: &str, group: &str) -> (BaseConsumer<Rebalances>, Rebalances) {
    consumer_with(bootstrap, group, Protocol::Classic)
}

fn produce(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    tag: &str,
    n: usize,
) {
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .unwrap();
    rt.block_on(async {
        for i in 0..n {
            let v = format!("{tag}-{i}");
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(i as i32 % partitions)
                    .payload(&v),
                Duration::from_secs(30),
            )
            .await
            .unwrap();
        }
    });
}

/// Polls the consumers until `n` records with values starting `tag` arrived; returns every
/// value read meanwhile with how often it was read.
fn read(
    cs: &[&BaseConsumer<Rebalances>],
    tag: &str,
    n: usize,
    timeout: Duration,
) -> BTreeMap<String, usize> {
    let deadline = Instant::now() + timeout;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    while seen.keys().filter(|v| v.starts_with(tag)).count() < n {
        assert!(
            Instant::now() < deadline,
            "read {} of {n} `{tag}` records",
            seen.keys().filter(|v| v.starts_with(tag)).count()
        );
        for c in cs {
            while let Some(m) = c.poll(Duration::from_millis(20)) {
                // Connection losses to the killed broker are reported and recovered from.
                let Ok(m) = m else { continue };
                let v = String::from_utf8(m.payload().unwrap().to_vec()).unwrap();
                *seen.entry(v).or_default() += 1;
            }
        }
    }
    seen
}

fn assigned(c: &BaseConsumer<Rebalances>) -> usize {
    c.assignment().map(|a| a.count()).unwrap_or(0)
}

fn wait_assigned(cs: &[&BaseConsumer<Rebalances>], each: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cs.iter().all(|c| assigned(c) == each) {
        assert!(
            Instant::now() < deadline,
            "members never got {each} partitions each"
        );
        for c in cs {
            let _ = c.poll(Duration::from_millis(50));
        }
    }
}

/// The node coordinating `group`, asked of `b`.
fn coordinator(b: &Broker, group: &str) -> usize {
    wait_for("the group coordinator", Duration::from_secs(20), || {
        let mut conn = common::wire::connect(b);
        let mut r = find_coordinator_request::FindCoordinatorRequest::default();
        r.key = StrBytes::from_string(group.into());
        let ResponseKind::FindCoordinator(c) =
            common::wire::call(&mut conn, ApiKey::FindCoordinator, 3, &r)
        else {
            panic!()
        };
        (c.error_code == 0).then_some(c.node_id.0 as usize)
    })
}

/// Kill the node that coordinates the group (in a three-node cluster, RF 3): the members keep
/// their generation and partitions (no rebalance), read every record produced after the kill
/// exactly once and nothing committed before it again, and commit to the new coordinator.
fn coordinator_kill(protocol: Protocol) {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        extra: vec![
            "group.consumer.heartbeat.interval.ms=300".into(),
            "group.consumer.session.timeout.ms=20000".into(),
        ],
        ..Default::default()
    });
    c.wait_live(3);
    let rt = runtime();
    let bootstrap = c.bootstrap();
    let (topic, group) = match protocol {
        Protocol::Classic => ("gf", "gf-group"),
        Protocol::Consumer => ("gfc", "gfc-group"),
    };
    create_topic(&rt, &bootstrap, topic, 4, 3);
    let (c1, r1) = consumer_with(&bootstrap, group, protocol);
    let (c2, r2) = consumer_with(&bootstrap, group, protocol);
    c1.subscribe(&[topic]).unwrap();
    c2.subscribe(&[topic]).unwrap();
    wait_assigned(&[&c1, &c2], 2);
    produce(&rt, &bootstrap, topic, 4, "before", 200);
    let seen = read(&[&c1, &c2], "before", 200, Duration::from_secs(60));
    assert!(seen.values().all(|n| *n == 1), "each record once");
    for consumer in [&c1, &c2] {
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    // Settle: KIP-848 assignments arrive in steps; count from the stable group.
    for _ in 0..20 {
        for consumer in [&c1, &c2] {
            let _ = consumer.poll(Duration::from_millis(50));
        }
    }
    let rebalances = (r1.count(), r2.count());

    let node = coordinator(&c.brokers[0], group);
    c.broker(node).kill9();
    let killed = Instant::now();
    let alive = c.bootstrap_without(node);
    produce(&rt, &alive, topic, 4, "after", 200);
    let seen = read(&[&c1, &c2], "after", 200, Duration::from_secs(60));
    println!(
        "{protocol:?} group: coordinator (node {node}) killed: 200 records produced (acks=all, one at a time) and read within {} ms",
        killed.elapsed().as_millis()
    );
    assert!(
        seen.keys().all(|v| v.starts_with("after-")),
        "nothing committed before the kill is read again: {:?}",
        seen.keys()
            .filter(|v| v.starts_with("before"))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(seen.values().all(|n| *n == 1), "each new record once");
    // Heartbeats reach the new coordinator, which knows the members: no new assignment.
    let new_node = coordinator(&c.brokers[if node == 1 { 1 } else { 0 }], group);
    assert_ne!(new_node, node);
    let settle = Instant::now() + Duration::from_secs(3);
    while Instant::now() < settle {
        for consumer in [&c1, &c2] {
            let _ = consumer.poll(Duration::from_millis(50));
        }
    }
    assert_eq!((r1.count(), r2.count()), rebalances, "no rebalance");
    assert_eq!((assigned(&c1), assigned(&c2)), (2, 2));
    // The new coordinator takes the members' commits at their generation or epoch.
    for consumer in [&c1, &c2] {
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    }
}

#[test]
fn a_coordinator_kill_causes_no_rebalance_and_no_redelivery() {
    coordinator_kill(Protocol::Classic);
}

/// The same with the consumer group protocol (KIP-848): the group's record in
/// `__consumer_offsets` gives the new coordinator every member's epoch and assignment.
#[test]
fn a_coordinator_kill_keeps_a_kip848_group_as_it_was() {
    coordinator_kill(Protocol::Consumer);
}

/// A single broker SIGKILLed and restarted within the members' session: they reconnect and go
/// on at their generation, with no rebalance, from where they committed.
#[test]
fn a_restarted_broker_keeps_its_groups() {
    let mut broker = Broker::start(&[]);
    let b = broker.bootstrap();
    let rt = runtime();
    create_topic(&rt, &b, "gr", 2, 1);
    let (c1, r1) = consumer(&b, "gr-group");
    let (c2, r2) = consumer(&b, "gr-group");
    c1.subscribe(&["gr"]).unwrap();
    c2.subscribe(&["gr"]).unwrap();
    wait_assigned(&[&c1, &c2], 1);
    produce(&rt, &b, "gr", 2, "before", 50);
    read(&[&c1, &c2], "before", 50, Duration::from_secs(60));
    for consumer in [&c1, &c2] {
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    let rebalances = (r1.count(), r2.count());
    broker.kill9();
    broker.restart();
    produce(&rt, &b, "gr", 2, "after", 50);
    let seen = read(&[&c1, &c2], "after", 50, Duration::from_secs(60));
    assert!(
        seen.keys().all(|v| v.starts_with("after-")),
        "no re-delivery"
    );
    assert_eq!((r1.count(), r2.count()), rebalances, "no rebalance");
}
