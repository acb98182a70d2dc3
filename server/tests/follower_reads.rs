//! Rack-aware reads (KIP-392) on a three-rack cluster of real processes: a librdkafka consumer
//! with `client.rack` is sent by the leader to the in-sync replica in its rack and reads the
//! whole partition from it; when that broker is SIGKILLed the consumer goes back to the leader
//! and reads on without a gap. A consumer that names no rack reads from the leader only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Broker;
use common::cluster::{Cluster, Layout};
use common::history::*;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const SELECTOR: &str =
    "replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector";

fn follower_read_bytes(c: &Cluster, node: usize) -> f64 {
    Broker::metric(
        c.metrics_ports[node - 1],
        "strata_follower_read_bytes_total",
    )
}

/// A consumer of `topic`-0 from the start, in `rack` (or none).
fn reader(bootstrap: &str, topic: &str, rack: Option<&str>) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", "rack-readers")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000");
    if let Some(r) = rack {
        cfg.set("client.rack", r);
    }
    let c: BaseConsumer = cfg.create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    c
}

/// Reads values until `want` are seen or `LONG` passes.
fn read_values(c: &BaseConsumer, want: usize, into: &mut Vec<u64>) {
    let deadline = std::time::Instant::now() + LONG;
    while into.len() < want && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            into.push(
                std::str::from_utf8(m.payload().unwrap())
                    .unwrap()
                    .parse()
                    .unwrap(),
            );
        }
    }
}

#[test]
fn a_consumer_reads_from_the_replica_in_its_rack_and_falls_back_to_the_leader() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        racks: vec!["r1".into(), "r2".into(), "r3".into()],
        extra: vec![SELECTOR.into(), "min.insync.replicas=1".into()],
        ..Default::default()
    });
    let admin = common::kafka::admin(&c.bootstrap());
    let assignment: [&[i32]; 1] = [&[1, 2, 3]];
    let topic = rdkafka::admin::NewTopic::new(
        "local",
        1,
        rdkafka::admin::TopicReplication::Variable(&assignment),
    );
    let res = common::kafka::runtime()
        .block_on(admin.create_topics(&[topic], &rdkafka::admin::AdminOptions::new()))
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    wait_isr(&c.bootstrap(), "local", 0, 3);
    let p = producer(&c.bootstrap(), &[]);
    let mut acked = produce_all(&p, "local", 0..2_000);
    assert_eq!(acked.len(), 2_000);

    // No rack: the leader serves it.
    let plain = reader(&c.bootstrap(), "local", None);
    let mut seen = Vec::new();
    read_values(&plain, 2_000, &mut seen);
    assert_nothing_lost(&seen, &acked);
    assert_eq!(follower_read_bytes(&c, 2) + follower_read_bytes(&c, 3), 0.0);

    // In rack r3: broker 3, a follower, serves every record.
    let local = reader(&c.bootstrap(), "local", Some("r3"));
    let mut read = Vec::new();
    read_values(&local, 2_000, &mut read);
    assert_nothing_lost(&read, &acked);
    let size = c.replica_bytes(3, "local-0").len() as f64;
    assert!(
        follower_read_bytes(&c, 3) >= size,
        "broker 3 served the partition ({} of {size} bytes)",
        follower_read_bytes(&c, 3)
    );
    assert_eq!(
        follower_read_bytes(&c, 2),
        0.0,
        "broker 2 is not in rack r3"
    );

    // Broker 3 dies: the consumer goes back to the leader and misses nothing.
    c.broker(3).kill9();
    acked.extend(produce_all(&p, "local", 2_000..3_000));
    assert_eq!(acked.len(), 3_000);
    let killed = std::time::Instant::now();
    read_values(&local, 3_000, &mut read);
    println!(
        "rack-aware reads: the consumer read on from the leader {:?} after its replica's kill",
        killed.elapsed()
    );
    assert_nothing_lost(&read, &acked);
    assert_eq!(read.len(), 3_000);
}
