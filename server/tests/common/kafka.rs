//! librdkafka (the `rdkafka` crate) helpers shared by the client tests: a runtime for its
//! futures, an admin client, topic creation.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// A small runtime for the clients' futures (two workers: this machine has two cores).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An admin client of `bootstrap`.
pub fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap()
}

/// Creates `name` with `partitions` partitions of `replication_factor` replicas; panics unless
/// it was created.
pub fn create_topic(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication_factor: i32,
) {
    let topic = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    let res = rt
        .block_on(admin(bootstrap).create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

/// Subscribes `config` (a consumer's settings, bootstrap and security included) to `topic` in
/// `group` from the earliest offset and reads `n` values; panics on a value more (a record
/// that should not have landed).
pub fn read_exactly(config: &mut ClientConfig, topic: &str, group: &str, n: usize) -> Vec<String> {
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use std::time::{Duration, Instant};
    let consumer: BaseConsumer = config
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < n && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(500)) {
            let m = m.unwrap();
            got.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
        }
    }
    if let Some(m) = consumer.poll(Duration::from_secs(1)) {
        panic!(
            "an extra record: {:?}",
            m.map(|m| m.payload().map(<[u8]>::to_vec))
        );
    }
    got
}
