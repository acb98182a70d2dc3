//! Dynamic broker configs from outside: a cluster-wide default set with IncrementalAlterConfigs
//! (resource "", as Kafka's admin tools send it) takes effect on the logs at once (retention
//! deletes old segments), survives a SIGKILL of the broker, and is beaten by a per-broker value
//! set by librdkafka's AlterConfigs; in a three-node cluster a default set on one node reaches
//! every node, and a dynamic `min.insync.replicas` is enforced by the partition leaders.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Broker;
use common::cluster::{Cluster, Layout, wait_for};
use common::kafka::{admin, runtime};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{
    AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const BROKER: i8 = 4;
const TOPIC: i8 = 2;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// IncrementalAlterConfigs SET (value) or DELETE (None) of one config on a broker resource;
/// returns the resource's error code.
fn set_broker_config(b: &Broker, resource: &str, key: &str, value: Option<&str>) -> i16 {
    use incremental_alter_configs_request::*;
    let mut c = AlterableConfig::default();
    c.name = s(key);
    c.config_operation = if value.is_some() { 0 } else { 1 };
    c.value = value.map(s);
    let mut res = AlterConfigsResource::default();
    res.resource_type = BROKER;
    res.resource_name = s(resource);
    res.configs = vec![c];
    let mut r = IncrementalAlterConfigsRequest::default();
    r.resources = vec![res];
    let mut conn = common::wire::connect(b);
    let ResponseKind::IncrementalAlterConfigs(resp) =
        common::wire::call(&mut conn, ApiKey::IncrementalAlterConfigs, 1, &r)
    else {
        panic!()
    };
    resp.responses[0].error_code
}

/// DescribeConfigs of one config of a resource: (value, source), if described.
fn describe(b: &Broker, resource_type: i8, name: &str, key: &str) -> Option<(String, i8)> {
    use describe_configs_request::*;
    let mut res = DescribeConfigsResource::default();
    res.resource_type = resource_type;
    res.resource_name = s(name);
    res.configuration_keys = Some(vec![s(key)]);
    let mut r = DescribeConfigsRequest::default();
    r.resources = vec![res];
    let mut conn = common::wire::connect(b);
    let ResponseKind::DescribeConfigs(resp) =
        common::wire::call(&mut conn, ApiKey::DescribeConfigs, 4, &r)
    else {
        panic!()
    };
    let result = &resp.results[0];
    assert_eq!(result.error_code, 0, "{result:?}");
    result
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .map(|c| {
            (
                c.value
                    .as_ref()
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default(),
                c.config_source,
            )
        })
}

/// ListOffsets earliest of partition 0.
fn earliest(b: &Broker, topic: &str) -> i64 {
    common::wire::list_offsets(b, topic, [0], -2)[0].2
}

const DYNAMIC_BROKER: i8 = 2;
const DYNAMIC_DEFAULT: i8 = 3;

#[test]
fn a_dynamic_default_applies_at_once_survives_sigkill_and_yields_to_a_broker_value() {
    let mut broker = Broker::start(&["log.retention.check.interval.ms=200"]);
    let b = broker.bootstrap();
    let rt = runtime();
    let a = admin(&b);
    let topic = NewTopic::new("dyn", 1, TopicReplication::Fixed(1)).set("segment.bytes", "2048");
    let created = rt
        .block_on(a.create_topics(&[topic], &AdminOptions::new()))
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("linger.ms", "0")
        .create()
        .unwrap();
    rt.block_on(async {
        for i in 0..100 {
            let value = format!("{i:0>200}");
            p.send(
                FutureRecord::<(), _>::to("dyn").payload(&value),
                Duration::from_secs(10),
            )
            .await
            .unwrap();
        }
    });
    assert_eq!(earliest(&broker, "dyn"), 0);
    assert_eq!(
        describe(&broker, TOPIC, "dyn", "retention.ms").unwrap().1,
        5,
        "the built-in default at first"
    );

    // The cluster-wide default: retention of 1 ms. The old segments go at the next check.
    assert_eq!(
        set_broker_config(&broker, "", "log.retention.ms", Some("1")),
        0
    );
    assert_eq!(
        describe(&broker, BROKER, "", "log.retention.ms"),
        Some(("1".into(), DYNAMIC_DEFAULT))
    );
    assert_eq!(
        describe(&broker, TOPIC, "dyn", "retention.ms"),
        Some(("1".into(), DYNAMIC_DEFAULT)),
        "the topic inherits it"
    );
    let start = wait_for(
        "retention to delete old segments",
        Duration::from_secs(20),
        || {
            let e = earliest(&broker, "dyn");
            (e > 0).then_some(e)
        },
    );
    println!("dynamic log.retention.ms=1: log start offset moved to {start}");

    // A static config cannot change; a bad value is refused; neither changes anything.
    assert_eq!(
        set_broker_config(&broker, "", "listeners", Some("PLAINTEXT://:1")),
        42
    );
    assert_eq!(
        set_broker_config(&broker, "", "log.segment.bytes", Some("-1")),
        40
    );

    broker.kill9();
    broker.restart();
    assert_eq!(
        describe(&broker, TOPIC, "dyn", "retention.ms"),
        Some(("1".into(), DYNAMIC_DEFAULT)),
        "kept across a SIGKILL"
    );

    // librdkafka's AlterConfigs on this broker: a per-broker value, above the default.
    let a = admin(&b);
    let alter = AlterConfig::new(ResourceSpecifier::Broker(1)).set("log.retention.ms", "86400000");
    let altered = rt
        .block_on(a.alter_configs(&[alter], &AdminOptions::new()))
        .unwrap();
    assert!(altered.iter().all(|r| r.is_ok()), "{altered:?}");
    let described = rt
        .block_on(a.describe_configs(&[ResourceSpecifier::Broker(1)], &AdminOptions::new()))
        .unwrap();
    let broker_configs = described[0].as_ref().unwrap();
    let retention = broker_configs.get("log.retention.ms").unwrap();
    assert_eq!(retention.value.as_deref(), Some("86400000"));
    assert_eq!(retention.source, ConfigSource::DynamicBroker);
    assert!(!retention.is_read_only);
    assert!(broker_configs.get("listeners").unwrap().is_read_only);
    assert_eq!(
        describe(&broker, TOPIC, "dyn", "retention.ms"),
        Some(("86400000".into(), DYNAMIC_BROKER))
    );

    // Deleting both goes back to the static layer (here the built-in default).
    assert_eq!(set_broker_config(&broker, "1", "log.retention.ms", None), 0);
    assert_eq!(set_broker_config(&broker, "", "log.retention.ms", None), 0);
    assert_eq!(
        describe(&broker, TOPIC, "dyn", "retention.ms").unwrap().1,
        5
    );
    assert_eq!(describe(&broker, BROKER, "", "log.retention.ms"), None);
}

/// In a cluster a dynamic default set on one node is in the metadata log: every node describes
/// it, and a dynamic `min.insync.replicas=3` makes acks=all refuse while a replica is down.
#[test]
fn a_dynamic_default_reaches_every_node_of_a_cluster() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        extra: vec!["min.insync.replicas=1".into()],
        ..Default::default()
    });
    c.wait_live(3);
    let rt = runtime();
    let a = admin(&c.bootstrap());
    let created = rt
        .block_on(a.create_topics(
            &[NewTopic::new("dyn-cluster", 1, TopicReplication::Fixed(3))],
            &AdminOptions::new(),
        ))
        .unwrap();
    assert!(created.iter().all(|r| r.is_ok()), "{created:?}");
    assert_eq!(
        set_broker_config(&c.brokers[0], "", "log.retention.ms", Some("4242")),
        0
    );
    assert_eq!(
        set_broker_config(&c.brokers[0], "", "min.insync.replicas", Some("3")),
        0
    );
    for node in 0..3 {
        wait_for("the default on every node", Duration::from_secs(20), || {
            (describe(&c.brokers[node], TOPIC, "dyn-cluster", "retention.ms")
                == Some(("4242".into(), DYNAMIC_DEFAULT)))
            .then_some(())
        });
        assert_eq!(
            describe(
                &c.brokers[node],
                TOPIC,
                "dyn-cluster",
                "min.insync.replicas"
            ),
            Some(("3".into(), DYNAMIC_DEFAULT))
        );
    }
    // No client retries: the broker's answer is what the send reports.
    let producer = |bootstrap: &str| -> FutureProducer {
        ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("retries", "0")
            .set("message.timeout.ms", "4000")
            .create()
            .unwrap()
    };
    let p = producer(&c.bootstrap());
    rt.block_on(p.send(
        FutureRecord::<(), _>::to("dyn-cluster").payload("all three"),
        Duration::from_secs(10),
    ))
    .expect("with three in sync, acks=all succeeds");
    // Stop a follower of the partition: two in sync is fewer than three.
    let leader = wait_for("the partition leader", Duration::from_secs(20), || {
        let mut conn = common::wire::connect(&c.brokers[0]);
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(TopicName(s("dyn-cluster")));
        let mut r = metadata_request::MetadataRequest::default();
        r.topics = Some(vec![t]);
        let ResponseKind::Metadata(m) = common::wire::call(&mut conn, ApiKey::Metadata, 12, &r)
        else {
            panic!()
        };
        let l = m.topics.first()?.partitions.first()?.leader_id.0;
        (l > 0).then_some(l as usize)
    });
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    c.broker(follower).kill9();
    let p = producer(&c.bootstrap_without(follower));
    let refused = wait_for("acks=all to be refused", Duration::from_secs(30), || {
        let r = rt.block_on(p.send(
            FutureRecord::<(), _>::to("dyn-cluster").payload("two of three"),
            Duration::from_secs(5),
        ));
        // Until the dead follower leaves the ISR the send times out; then the leader refuses.
        r.err()
            .map(|(e, _)| e.to_string())
            .filter(|e| e.contains("NotEnoughReplicas"))
    });
    println!("acks=all with 2 of 3 in sync and a dynamic min.insync.replicas=3: {refused}");
}
