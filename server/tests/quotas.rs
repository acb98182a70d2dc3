//! Client quotas from the outside: AlterClientQuotas and DescribeClientQuotas on the wire
//! (KIP-546; no independent client here has them: kafka-python, kafkajs and librdkafka lack the
//! APIs), and their effect on real clients: kafka-python producing and consuming as a client id
//! with a byte-rate quota is slowed to it and told throttle times, another client id is not;
//! an address over its `connection_creation_rate` has new connections closed while another
//! address is served; the quotas survive a restart, and in a cluster reach every broker.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use kafka_protocol::messages::alter_client_quotas_request::{
    AlterClientQuotasRequest, EntityData, EntryData, OpData,
};
use kafka_protocol::messages::describe_client_quotas_request::{
    ComponentData, DescribeClientQuotasRequest,
};
use kafka_protocol::messages::{ApiKey, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use common::wire;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// An AlterClientQuotas entry: `entity` pairs and `(key, value)` sets (a negative value
/// removes the key).
fn entry(entity: &[(&str, Option<&str>)], ops: &[(&str, f64)]) -> EntryData {
    let mut e = EntryData::default();
    e.entity = entity
        .iter()
        .map(|(t, n)| {
            let mut d = EntityData::default();
            d.entity_type = s(t);
            d.entity_name = n.map(s);
            d
        })
        .collect();
    e.ops = ops
        .iter()
        .map(|(k, v)| {
            let mut o = OpData::default();
            o.key = s(k);
            o.value = v.abs();
            o.remove = *v < 0.0;
            o
        })
        .collect();
    e
}

/// Alters quotas; returns each entry's error code.
fn alter(addr: &str, entries: Vec<EntryData>) -> Vec<i16> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = AlterClientQuotasRequest::default();
    r.entries = entries;
    match wire::call(&mut c, ApiKey::AlterClientQuotas, 1, &r) {
        ResponseKind::AlterClientQuotas(resp) => {
            resp.entries.iter().map(|e| e.error_code).collect()
        }
        other => panic!("{other:?}"),
    }
}

/// Describes the quotas of entities with a component of `entity_type` (any name); returns
/// `(entity as text, key, value)` sorted.
fn describe(addr: &str, entity_type: &str) -> Vec<(String, String, f64)> {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut r = DescribeClientQuotasRequest::default();
    let mut comp = ComponentData::default();
    comp.entity_type = s(entity_type);
    comp.match_type = 2;
    r.components = vec![comp];
    let ResponseKind::DescribeClientQuotas(resp) =
        wire::call(&mut c, ApiKey::DescribeClientQuotas, 1, &r)
    else {
        panic!("not a DescribeClientQuotas response");
    };
    assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
    let mut out = Vec::new();
    for e in resp.entries.unwrap_or_default() {
        let entity = e
            .entity
            .iter()
            .map(|d| {
                format!(
                    "{}={}",
                    d.entity_type,
                    d.entity_name.as_deref().unwrap_or("<default>")
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        for v in e.values {
            out.push((entity.clone(), v.key.to_string(), v.value));
        }
    }
    out.sort_by(|a, b| a.partial_cmp(b).unwrap());
    out
}

/// A broker measuring quotas over two windows of a second (a test's client reaches its
/// steady rate quickly), and its metrics port.
fn quota_broker() -> (common::Broker, u16) {
    let mport = common::free_port();
    let broker = common::Broker::start(&[
        "quota.window.num=2",
        "quota.window.size.seconds=1",
        &format!("metrics.listen=127.0.0.1:{mport}"),
    ]);
    (broker, mport)
}

/// Runs the kafka-python quota client; returns (seconds, largest throttle in ms).
fn kafka_python(bootstrap: &str, topic: &str, client_id: &str, phase: &str, n: u32) -> (f64, f64) {
    let out = common::python(&[
        common::python_script("kafka_python_quotas.py"),
        bootstrap.to_string(),
        topic.to_string(),
        client_id.to_string(),
        phase.to_string(),
        n.to_string(),
    ]);
    println!("{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("quotas: "))
        .expect("a result line");
    let secs: f64 = line
        .split(" in ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    let throttle: f64 = line
        .rsplit("max throttle ")
        .next()
        .and_then(|r| r.split(' ').next())
        .unwrap()
        .parse()
        .unwrap();
    (secs, throttle)
}

#[test]
fn byte_rate_quotas_slow_their_clients_only_and_survive_a_restart() {
    let (mut broker, mport) = quota_broker();
    let addr = broker.bootstrap();
    let codes = alter(
        &addr,
        vec![
            entry(
                &[("client-id", Some("slow"))],
                &[("producer_byte_rate", 100_000.0)],
            ),
            entry(
                &[("client-id", Some("slow-reader"))],
                &[("consumer_byte_rate", 100_000.0)],
            ),
            // Refused, each for its own reason; the valid entries apply anyway.
            entry(&[("ip", Some("10.0.0.1"))], &[("request_percentage", 50.0)]),
            entry(
                &[("ip", Some("not-an-ip"))],
                &[("connection_creation_rate", 5.0)],
            ),
            entry(&[("group", None)], &[("producer_byte_rate", 1.0)]),
            entry(&[("user", None)], &[("producer_byte_rate", 0.0)]),
        ],
    );
    assert_eq!(
        codes,
        vec![0, 0, 42, 42, 42, 42],
        "INVALID_REQUEST for the bad ones"
    );
    let want = vec![
        (
            "client-id=slow".to_string(),
            "producer_byte_rate".to_string(),
            100_000.0,
        ),
        (
            "client-id=slow-reader".to_string(),
            "consumer_byte_rate".to_string(),
            100_000.0,
        ),
    ];
    assert_eq!(describe(&addr, "client-id"), want);
    assert!(describe(&addr, "user").is_empty());

    // 600 KiB at 100 kB/s: about 6 s, less the first window's allowance.
    let (slow_secs, slow_throttle) = kafka_python(&addr, "quota-topic", "slow", "produce", 600);
    assert!(
        slow_secs >= 3.0,
        "the quota did not slow the producer: {slow_secs} s"
    );
    assert!(slow_throttle > 0.0, "no throttle time reported");
    let (_, fast_throttle) = kafka_python(&addr, "quota-topic", "fast", "produce", 600);
    assert_eq!(
        fast_throttle, 0.0,
        "a client id without a quota was throttled"
    );
    let (read_secs, read_throttle) =
        kafka_python(&addr, "quota-topic", "slow-reader", "consume", 600);
    assert!(
        read_secs >= 3.0,
        "the quota did not slow the consumer: {read_secs} s"
    );
    assert!(read_throttle > 0.0, "no fetch throttle time reported");
    assert!(common::Broker::metric(mport, "strata_quota_produce_throttled") > 0.0);
    assert!(common::Broker::metric(mport, "strata_quota_fetch_throttled") > 0.0);

    // Removing one; the other survives a restart.
    assert_eq!(
        alter(
            &addr,
            vec![entry(
                &[("client-id", Some("slow"))],
                &[("producer_byte_rate", -1.0)]
            )]
        ),
        vec![0]
    );
    assert!(broker.terminate().success());
    broker.restart();
    assert_eq!(describe(&addr, "client-id"), want[1..].to_vec());
}

/// Opens a connection from `source` and asks ApiVersions: whether it was answered.
fn answered(source: &str, broker: SocketAddr) -> bool {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&source.parse::<SocketAddr>().unwrap().into())
        .unwrap();
    if sock.connect(&broker.into()).is_err() {
        return false;
    }
    let mut c: TcpStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let req = kafka_protocol::messages::ApiVersionsRequest::default();
    if c.write_all(&wire::frame(ApiKey::ApiVersions, 0, 1, &req))
        .is_err()
    {
        return false;
    }
    let mut len = [0u8; 4];
    c.read_exact(&mut len).is_ok()
}

/// `request_percentage`: a client whose requests take more than its share of a thread's CPU
/// time is throttled; another client is not.
#[test]
fn a_request_percentage_quota_throttles_a_busy_client() {
    let (broker, mport) = quota_broker();
    let addr = broker.bootstrap();
    // 1% of a thread: 10 ms of broker CPU per second.
    let codes = alter(
        &addr,
        vec![entry(
            &[("client-id", Some("busy"))],
            &[("request_percentage", 1.0)],
        )],
    );
    assert_eq!(codes, vec![0]);
    let (busy_secs, busy_throttle) =
        kafka_python(&addr, "request-quota", "busy", "produce-each", 400);
    let (_, idle_throttle) = kafka_python(&addr, "request-quota", "calm", "produce-each", 300);
    assert!(busy_throttle > 0.0, "no throttle time reported");
    assert!(
        busy_secs >= 1.5,
        "the busy client was not slowed: {busy_secs} s"
    );
    assert_eq!(idle_throttle, 0.0, "a client without a quota was throttled");
    assert!(common::Broker::metric(mport, "strata_quota_request_throttled") > 0.0);
}

#[test]
fn an_address_over_its_connection_creation_rate_is_refused_and_others_are_not() {
    let (broker, mport) = quota_broker();
    let codes = alter(
        &broker.bootstrap(),
        vec![entry(
            &[("ip", Some("127.0.0.3"))],
            &[("connection_creation_rate", 5.0)],
        )],
    );
    assert_eq!(codes, vec![0]);
    let target: SocketAddr = broker.bootstrap().parse().unwrap();
    let limited = (0..30).filter(|_| answered("127.0.0.3:0", target)).count();
    let other = (0..30).filter(|_| answered("127.0.0.4:0", target)).count();
    assert!(limited < 15, "{limited} of 30 connections served at 5/s");
    assert_eq!(other, 30, "an address without a quota was refused");
    assert!(common::Broker::metric(mport, "strata_connections_refused_ip_rate") >= 15.0);
}

#[test]
fn quotas_altered_through_one_broker_are_described_by_every_other() {
    let c = common::cluster::Cluster::start3();
    let nodes: Vec<String> = c.brokers.iter().map(|b| b.bootstrap()).collect();
    let codes = alter(
        &nodes[0],
        vec![entry(
            &[("user", Some("alice"))],
            &[("producer_byte_rate", 2048.0)],
        )],
    );
    assert_eq!(codes, vec![0]);
    for node in &nodes {
        common::cluster::wait_for("the quota on every broker", Duration::from_secs(10), || {
            (describe(node, "user")
                == vec![(
                    "user=alice".to_string(),
                    "producer_byte_rate".to_string(),
                    2048.0,
                )])
            .then_some(())
        });
    }
}
