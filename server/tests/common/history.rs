//! A history of produced values and what the log holds of them: an idempotent acks=all
//! librdkafka producer whose acknowledged values are kept, a reader of a partition from the
//! start, and the check that nothing acknowledged is lost, duplicated or reordered. Shared by
//! the cluster tests (failover, reassignment, re-replication).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use super::cluster::wait_for;
use super::kafka::runtime;

pub const LONG: Duration = Duration::from_secs(60);

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer<Printing> {
    let mut c = ClientConfig::new();
    if let Ok(d) = std::env::var("RDKAFKA_PRODUCER_DEBUG") {
        c.set("debug", d);
        c.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    c.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .set("linger.ms", "1")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create_with_context(Printing).unwrap()
}

pub fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap()
}

pub fn create_topic(bootstrap: &str, name: &str, partitions: i32, rf: i32) {
    create_topic_with(bootstrap, name, partitions, rf, &[]);
}

pub fn create_topic_with(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    rf: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    let rt = runtime();
    let res = rt
        .block_on(admin.create_topics(
            &[configs.iter().fold(
                NewTopic::new(name, partitions, TopicReplication::Fixed(rf)),
                |t, (k, v)| t.set(k, v),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        ))
        .unwrap();
    for r in res {
        r.unwrap();
    }
}

/// (leader, replicas, isr) of a partition, from a broker's metadata.
pub fn partition_state(bootstrap: &str, topic: &str, p: i32) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(3)).ok()?;
    let t = md.topics().iter().find(|t| t.name() == topic)?;
    let part = t.partitions().iter().find(|x| x.id() == p)?;
    Some((part.leader(), part.replicas().to_vec(), part.isr().to_vec()))
}

/// One partition as Metadata shows it: (topic, partition, replicas, isr).
pub type PartitionView = (String, i32, Vec<i32>, Vec<i32>);

/// Every partition of every topic, from a broker's metadata.
pub fn metadata(bootstrap: &str) -> Option<Vec<PartitionView>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(None, Duration::from_secs(3)).ok()?;
    Some(
        md.topics()
            .iter()
            .flat_map(|t| {
                t.partitions().iter().map(|p| {
                    (
                        t.name().to_string(),
                        p.id(),
                        p.replicas().to_vec(),
                        p.isr().to_vec(),
                    )
                })
            })
            .collect(),
    )
}

/// Waits until the partition has a leader and an ISR of `isr` members.
pub fn wait_isr(bootstrap: &str, topic: &str, p: i32, isr: usize) -> i32 {
    wait_for(&format!("{topic}-{p} with an ISR of {isr}"), LONG, || {
        partition_state(bootstrap, topic, p)
            .and_then(|(l, _, i)| (l >= 0 && i.len() == isr).then_some(l))
    })
}

/// A pending send of `value`.
pub type Pending = (u64, rdkafka::producer::DeliveryFuture);

/// Enqueues `values` (to `partitions` round-robin by value, or to the partitioner's choice).
pub fn enqueue(
    p: &FutureProducer<Printing>,
    topic: &str,
    values: impl Iterator<Item = u64>,
    partitions: Option<i32>,
) -> Vec<Pending> {
    values
        .map(|v| {
            let payload = v.to_string();
            let mut rec = FutureRecord::<(), _>::to(topic).payload(&payload);
            if let Some(n) = partitions {
                rec = rec.partition((v % n as u64) as i32);
            }
            (v, p.send_result(rec).unwrap())
        })
        .collect()
}

/// Waits for every pending send; returns the acknowledged values (and prints the first error).
pub fn acknowledged(pending: Vec<Pending>) -> Vec<u64> {
    runtime().block_on(async {
        let mut acked = Vec::new();
        let mut failed = 0;
        for (v, f) in pending {
            match f.await {
                Ok(Ok(_)) => acked.push(v),
                other => {
                    if failed == 0 {
                        eprintln!("produce of {v} failed: {other:?}");
                    }
                    failed += 1;
                }
            }
        }
        acked
    })
}

/// Produces `values` with acks=all and returns those acknowledged.
pub fn produce_all(
    p: &FutureProducer<Printing>,
    topic: &str,
    values: impl Iterator<Item = u64>,
) -> Vec<u64> {
    acknowledged(enqueue(p, topic, values, None))
}

/// Reads the partition from the start until `want` values are seen (or `LONG` passes) and
/// returns them in log order.
pub struct Printing;
impl rdkafka::ClientContext for Printing {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!(
            "{:?} rdkafka {fac}: {log_message}",
            std::time::SystemTime::now()
        );
    }
}
impl rdkafka::consumer::ConsumerContext for Printing {}

pub fn read_back(bootstrap: &str, topic: &str, partition: i32, want: usize) -> Vec<u64> {
    let mut cfg = ClientConfig::new();
    if let Ok(d) = std::env::var("RDKAFKA_DEBUG") {
        cfg.set("debug", d);
        cfg.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let c: BaseConsumer<Printing> = cfg
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "reader")
        .set("enable.auto.commit", "false")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create_with_context(Printing)
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let deadline = std::time::Instant::now() + LONG;
    while out.len() < want && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            let v: u64 = std::str::from_utf8(m.payload().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            out.push(v);
        }
    }
    out
}

/// Every acknowledged value is in the log, the log holds no duplicates, and it is in order.
pub fn assert_nothing_lost(read: &[u64], acked: &[u64]) {
    let seen: BTreeSet<u64> = read.iter().copied().collect();
    assert_eq!(seen.len(), read.len(), "duplicates in the log: {read:?}");
    assert!(
        read.windows(2).all(|w| w[0] < w[1]),
        "out of order: {read:?}"
    );
    let missing: Vec<u64> = acked
        .iter()
        .filter(|v| !seen.contains(v))
        .copied()
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
}
