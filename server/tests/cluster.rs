//! Three-node clusters of real `strata` processes on 127.0.0.1, driven by librdkafka: SIGKILL of
//! a partition leader under acks=all, SIGKILL of every node at once, SIGKILL of the active
//! controller, two of three brokers down, a group coordinator killed, a leader cut off from
//! the other nodes by a proxy, and a corrupt byte in a leader's segment. Every test checks that
//! nothing acknowledged is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::history::*;
use common::kafka::runtime;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{Cluster, Layout, wait_for};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

#[test]
fn sigkill_of_the_leader_under_acks_all_loses_nothing_and_it_rejoins() {
    let mut c = Cluster::start3();
    create_topic(&c.bootstrap(), "orders", 1, 3);
    let leader = wait_isr(&c.bootstrap(), "orders", 0, 3) as usize;
    let p = producer(&c.bootstrap(), &[]);
    let mut acked = produce_all(&p, "orders", 0..300);
    assert_eq!(acked.len(), 300, "all acknowledged before the kill");
    // Kill the leader while a second burst is in flight.
    let inflight = enqueue(&p, "orders", 300..900, None);
    std::thread::sleep(Duration::from_millis(20));
    c.broker(leader).kill9();
    acked.extend(acknowledged(inflight));
    assert_eq!(acked.len(), 900, "the new leader took every retried batch");
    let others = c.bootstrap_without(leader);
    let new_leader = wait_isr(&others, "orders", 0, 2) as usize;
    assert_ne!(new_leader, leader);
    let read = read_back(&others, "orders", 0, acked.len());
    assert_nothing_lost(&read, &acked);
    assert_eq!(read.len(), 900, "no gaps");

    // The killed broker comes back, catches up and rejoins the ISR; being the preferred
    // replica (first in the assignment), it then takes its leadership back.
    c.broker(leader).restart();
    wait_isr(&c.bootstrap(), "orders", 0, 3);
    let (_, replicas, _) = partition_state(&c.bootstrap(), "orders", 0).unwrap();
    assert_eq!(
        replicas[0] as usize, leader,
        "the first leader is the preferred replica"
    );
    wait_for("the preferred replica to lead again", LONG, || {
        partition_state(&c.bootstrap(), "orders", 0)
            .filter(|(l, _, isr)| *l as usize == leader && isr.len() == 3)
    });
    let more = produce_all(&p, "orders", 900..1000);
    assert_eq!(more.len(), 100);
    let read = read_back(&c.bootstrap(), "orders", 0, 1000);
    assert_eq!(read, (0..1000).collect::<Vec<_>>());
}

#[test]
fn sigterm_moves_leaderships_away_before_the_broker_stops() {
    let mut c = Cluster::start3();
    create_topic(&c.bootstrap(), "metrics", 3, 3);
    for part in 0..3 {
        wait_isr(&c.bootstrap(), "metrics", part, 3);
    }
    // Stop the leader of partition 0 while sends to every partition are in flight.
    let leader = partition_state(&c.bootstrap(), "metrics", 0).unwrap().0 as usize;
    let p = producer(&c.bootstrap(), &[]);
    let sends = enqueue(&p, "metrics", 0..300, Some(3));
    let status = c.broker(leader).terminate();
    assert!(status.success(), "clean exit after controlled shutdown");
    // By the time it exited, the controller had moved every leadership it held.
    let others = c.bootstrap_without(leader);
    for part in 0..3 {
        let (l, _, isr) = partition_state(&others, "metrics", part).unwrap();
        assert!(
            l > 0 && l as usize != leader,
            "partition {part} still led by {l}"
        );
        assert!(
            !isr.contains(&(leader as i32)),
            "stopped broker left the ISR"
        );
    }
    let acked = acknowledged(sends);
    assert_eq!(
        acked.len(),
        300,
        "no send failed across the controlled shutdown"
    );
    for part in 0..3 {
        let mine: Vec<u64> = (0..300).filter(|v| (v % 3) as i32 == part).collect();
        let read = read_back(&others, "metrics", part, mine.len());
        assert_eq!(read, mine);
    }
}

#[test]
fn sigkill_of_every_node_at_once_loses_nothing() {
    let mut c = Cluster::start3();
    create_topic(&c.bootstrap(), "ledger", 2, 3);
    wait_isr(&c.bootstrap(), "ledger", 0, 3);
    wait_isr(&c.bootstrap(), "ledger", 1, 3);
    let p = producer(&c.bootstrap(), &[]);
    let acked = acknowledged(enqueue(&p, "ledger", 0..400, Some(2)));
    assert_eq!(acked.len(), 400);
    drop(p);
    for n in 1..=3 {
        c.broker(n).kill9();
    }
    for n in 1..=3 {
        c.broker(n).restart();
    }
    for part in 0..2 {
        wait_isr(&c.bootstrap(), "ledger", part, 3);
        let mine: Vec<u64> = acked
            .iter()
            .copied()
            .filter(|v| (v % 2) as i32 == part)
            .collect();
        let read = read_back(&c.bootstrap(), "ledger", part, mine.len());
        assert_nothing_lost(&read, &mine);
    }
}

#[test]
fn sigkill_of_the_active_controller_hands_over_and_the_cluster_keeps_serving() {
    let mut c = Cluster::start3();
    create_topic(&c.bootstrap(), "events", 1, 3);
    wait_isr(&c.bootstrap(), "events", 0, 3);
    let active = c.active_controller(LONG).expect("an active controller");
    c.broker(active).kill9();
    let others = c.bootstrap_without(active);
    let next = c.active_controller(LONG).expect("a new active controller");
    assert_ne!(next, active);
    // The new controller fences the dead node (its session lapses), then metadata changes still
    // commit: a new topic placed on the live brokers, and produce on the old one.
    c.wait_live(2);
    create_topic(&others, "after", 1, 2);
    let p = producer(&others, &[]);
    assert_eq!(produce_all(&p, "events", 0..50).len(), 50);
    assert_eq!(produce_all(&p, "after", 0..50).len(), 50);
    let read = read_back(&others, "after", 0, 50);
    assert_eq!(read, (0..50).collect::<Vec<_>>());
}

#[test]
fn with_two_of_three_brokers_down_acks_all_is_refused_reads_go_on_and_it_heals() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        controllers: 3,
        ..Layout::default()
    });
    create_topic(&c.bootstrap(), "audit", 1, 3);
    let leader = wait_isr(&c.bootstrap(), "audit", 0, 3) as usize;
    let p = producer(&c.bootstrap(), &[]);
    let acked = produce_all(&p, "audit", 0..100);
    assert_eq!(acked.len(), 100);
    for n in (1..=3).filter(|n| *n != leader) {
        c.broker(n).kill9();
    }
    let only = c.brokers[leader - 1].bootstrap();
    wait_isr(&only, "audit", 0, 1);
    // acks=all with an ISR below min.insync.replicas: a clear, immediate refusal.
    let strict = producer(
        &only,
        &[
            ("enable.idempotence", "false"),
            ("retries", "0"),
            ("message.timeout.ms", "10000"),
        ],
    );
    let rt = runtime();
    let err = rt
        .block_on(strict.send(
            FutureRecord::<(), _>::to("audit").payload("refused"),
            Duration::from_secs(10),
        ))
        .expect_err("acks=all must be refused");
    assert!(
        matches!(
            err.0,
            KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)
        ),
        "{err:?}"
    );
    // What was committed can still be read.
    let read = read_back(&only, "audit", 0, 100);
    assert_eq!(read, acked);
    // The two come back; the ISR grows back and acks=all works again.
    for n in (1..=3).filter(|n| *n != leader) {
        c.broker(n).restart();
    }
    wait_isr(&c.bootstrap(), "audit", 0, 3);
    assert_eq!(produce_all(&p, "audit", 100..150).len(), 50);
}

/// Kafka's partition of a group in `__consumer_offsets` (Java's String.hashCode).
fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for c in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(c));
    }
    (h & 0x7fff_ffff) % partitions
}

#[test]
fn a_group_keeps_its_committed_offsets_when_its_coordinator_is_killed() {
    let mut c = Cluster::start3();
    create_topic(&c.bootstrap(), "jobs", 1, 3);
    wait_isr(&c.bootstrap(), "jobs", 0, 3);
    let p = producer(&c.bootstrap(), &[]);
    assert_eq!(produce_all(&p, "jobs", 0..200).len(), 200);

    let group = "workers";
    let first = consumer(&c.bootstrap(), group);
    first.subscribe(&["jobs"]).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 120 {
        if let Some(Ok(m)) = first.poll(Duration::from_millis(200)) {
            seen.push(m.offset());
        }
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("jobs", 0, Offset::Offset(120))
        .unwrap();
    first.commit(&tpl, CommitMode::Sync).unwrap();
    drop(first);

    let coordinator_partition = offsets_partition(group, 4);
    let coordinator = wait_isr(
        &c.bootstrap(),
        "__consumer_offsets",
        coordinator_partition,
        3,
    ) as usize;
    c.broker(coordinator).kill9();
    let others = c.bootstrap_without(coordinator);
    wait_isr(&others, "__consumer_offsets", coordinator_partition, 2);

    let second = consumer(&others, group);
    second.subscribe(&["jobs"]).unwrap();
    let m = wait_for(
        "a message after the coordinator moved",
        LONG,
        || match second.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => Some(m.offset()),
            _ => None,
        },
    );
    assert_eq!(m, 120, "resumes exactly at the committed offset");
}

#[test]
fn a_follower_that_stops_fetching_leaves_the_isr_and_comes_back_when_caught_up() {
    let c = Cluster::start(Layout {
        brokers: 3,
        proxied: true,
        extra: vec!["replica.lag.time.max.ms=1000".into()],
        ..Layout::default()
    });
    create_topic(&c.bootstrap(), "telemetry", 1, 3);
    let leader = wait_isr(&c.bootstrap(), "telemetry", 0, 3) as usize;
    let follower = (1..=3).find(|n| *n != leader).unwrap();
    let p = producer(&c.bootstrap(), &[]);
    assert_eq!(produce_all(&p, "telemetry", 0..50).len(), 50);
    // The follower keeps heartbeating but cannot fetch: after replica.lag.time.max.ms the
    // leader asks the controller to drop it, and acks=all goes on with the other two.
    c.cut_replication(follower, leader);
    std::thread::spawn({
        let p = p.clone();
        move || produce_all(&p, "telemetry", 50..60)
    });
    let isr = wait_for("the ISR to shrink", LONG, || {
        partition_state(&c.bootstrap(), "telemetry", 0)
            .map(|(_, _, isr)| isr)
            .filter(|isr| isr.len() == 2)
    });
    assert!(!isr.contains(&(follower as i32)), "{isr:?}");
    assert_eq!(produce_all(&p, "telemetry", 100..150).len(), 50);
    // Fetching again, it catches up and the leader adds it back.
    c.heal();
    let isr = wait_for("the ISR to grow back", LONG, || {
        partition_state(&c.bootstrap(), "telemetry", 0)
            .map(|(_, _, isr)| isr)
            .filter(|isr| isr.len() == 3)
    });
    assert!(isr.contains(&(follower as i32)));
    assert_eq!(produce_all(&p, "telemetry", 150..160).len(), 10);
}

#[test]
fn a_replica_down_past_the_leaders_retention_starts_over_and_rejoins() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        extra: vec!["log.retention.check.interval.ms=200".into()],
        ..Layout::default()
    });
    create_topic_with(
        &c.bootstrap(),
        "rolling",
        1,
        3,
        &[("segment.bytes", "2048"), ("retention.bytes", "4096")],
    );
    let leader = wait_isr(&c.bootstrap(), "rolling", 0, 3) as usize;
    let down = (1..=3).find(|n| *n != leader).unwrap();
    c.broker(down).kill9();
    let others = c.bootstrap_without(down);
    let p = producer(&others, &[("linger.ms", "0")]);
    for chunk in 0..20u64 {
        assert_eq!(
            produce_all(&p, "rolling", chunk * 50..chunk * 50 + 50).len(),
            50
        );
    }
    // Retention has removed the start of the log on the leader.
    let watcher: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &others)
        .create()
        .unwrap();
    wait_for("the leader's log start to move", LONG, || {
        watcher
            .fetch_watermarks("rolling", 0, Duration::from_secs(2))
            .ok()
            .filter(|(low, _)| *low > 0)
    });
    // The returning replica's next offset is gone from the leader: it starts over at the
    // leader's log start, catches up, and rejoins the ISR.
    c.broker(down).restart();
    wait_isr(&c.bootstrap(), "rolling", 0, 3);
    assert_eq!(produce_all(&p, "rolling", 1000..1010).len(), 10);
}

/// Prints each node's view of `topic`-0 and its high watermark and log end offset there (for
/// the failure message).
fn dump_replicas(c: &Cluster, topic: &str, when: &str) {
    for n in 1..=3 {
        let port = c.metrics_ports[n - 1];
        let metric =
            |name: &str| common::Broker::metric(port, &format!("{name}{{topic=\"{topic}\""));
        eprintln!(
            "{when}, node {n} says {:?}; hw {} leo {}",
            partition_state(&c.brokers[n - 1].bootstrap(), topic, 0),
            metric("strata_high_watermark"),
            metric("strata_log_end_offset"),
        );
    }
}

/// Sends one acks=all Produce request (v9) straight to `addr`, not following metadata, and
/// returns the partition's error code (a timeout or a closed connection counts as -1).
fn raw_produce(addr: &str, topic: &str, partition: i32, value: &str) -> i16 {
    raw_produce_with(addr, topic, partition, value, None, 2000).0
}

/// [`raw_produce`] with an idempotent producer's (producer id, sequence) and a `timeout_ms`;
/// returns the error code and the base offset.
fn raw_produce_with(
    addr: &str,
    topic: &str,
    partition: i32,
    value: &str,
    idempotent: Option<(i64, i32)>,
    timeout_ms: i32,
) -> (i16, i64) {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::produce_request::{
        PartitionProduceData, ProduceRequest, TopicProduceData,
    };
    use kafka_protocol::messages::produce_response::ProduceResponse;
    use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, TopicName};
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use std::io::{Read, Write};
    let version = 9i16;
    let mut batch = strata_engine::batch::build(
        strata_engine::Offset(0),
        0,
        &[(None, Some(value.as_bytes()))],
    );
    if let Some((pid, seq)) = idempotent {
        strata_engine::batch::stamp_producer(&mut batch, pid, 0, seq);
    }
    let mut pd = PartitionProduceData::default();
    pd.index = partition;
    pd.records = Some(Bytes::from(batch));
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = timeout_ms;
    req.topic_data = vec![td];
    let mut h = RequestHeader::default();
    h.request_api_key = ApiKey::Produce as i16;
    h.request_api_version = version;
    h.correlation_id = 7;
    let mut body = BytesMut::new();
    h.encode(&mut body, ApiKey::Produce.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return (-1, -1);
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    if s.read_exact(&mut len).is_err() {
        return (-1, -1);
    }
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    if s.read_exact(&mut buf).is_err() {
        return (-1, -1);
    }
    let mut b = Bytes::from(buf);
    ResponseHeader::decode(&mut b, ApiKey::Produce.response_header_version(version)).unwrap();
    let resp = ProduceResponse::decode(&mut b, version).unwrap();
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

#[test]
fn an_isolated_leader_acknowledges_nothing_and_keeps_no_divergent_record() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        proxied: true,
        ..Layout::default()
    });
    create_topic(&c.bootstrap(), "payments", 1, 3);
    let leader = wait_isr(&c.bootstrap(), "payments", 0, 3) as usize;
    let p = producer(&c.bootstrap(), &[]);
    let mut acked = produce_all(&p, "payments", 0..100);
    assert_eq!(acked.len(), 100);

    c.isolate(leader);
    // Produce requests sent straight to the isolated leader (a client that does not follow
    // metadata elsewhere) are never acknowledged: its followers cannot confirm them, and once
    // its lease from the controller lapses it refuses them outright.
    let zombie = c.brokers[leader - 1].bootstrap();
    for i in 0..4 {
        let code = raw_produce(&zombie, "payments", 0, &format!("{}", 2000 + i));
        assert_ne!(code, 0, "the isolated leader acknowledged write {i}");
    }
    // A librdkafka producer bootstrapped from the isolated leader: whatever it gets
    // acknowledged (after finding the majority through metadata) must survive.
    let cut_off = producer(
        &zombie,
        &[
            ("enable.idempotence", "false"),
            ("message.timeout.ms", "4000"),
        ],
    );
    acked.extend(produce_all(&cut_off, "payments", 1000..1020));
    // The majority elects a new leader and takes writes.
    let others = c.bootstrap_without(leader);
    let new_leader = wait_for("a new leader among the majority", LONG, || {
        partition_state(&others, "payments", 0)
            .and_then(|(l, _, _)| (l > 0 && l as usize != leader).then_some(l))
    });
    assert_ne!(new_leader as usize, leader);
    let majority = producer(&others, &[]);
    let from_majority = produce_all(&majority, "payments", 100..200);
    assert_eq!(from_majority.len(), 100);
    acked.extend(from_majority);
    dump_replicas(&c, "payments", "before healing");

    c.heal();
    wait_isr(&c.bootstrap(), "payments", 0, 3);
    let read = read_back(&c.bootstrap(), "payments", 0, acked.len());
    if read.len() < acked.len() {
        dump_replicas(&c, "payments", "after healing");
    }
    // Nothing acknowledged is lost; what the isolated leader took without acknowledging is
    // gone (the raw writes), and each producer's writes are in its order.
    let seen: BTreeSet<u64> = read.iter().copied().collect();
    assert_eq!(seen.len(), read.len(), "duplicates: {read:?}");
    let missing: Vec<u64> = acked
        .iter()
        .filter(|v| !seen.contains(v))
        .copied()
        .collect();
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(
        read.iter().all(|v| *v < 2000),
        "an unacknowledged write survived: {read:?}"
    );
    for range in [0..1000u64, 1000..2000] {
        let mine: Vec<u64> = read.iter().copied().filter(|v| range.contains(v)).collect();
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "out of order: {mine:?}"
        );
    }
    // Every replica holds exactly the leader's history.
    drop((p, cut_off, majority));
    for n in 1..=3 {
        assert!(c.broker(n).terminate().success());
    }
    let reference = c.replica_bytes(new_leader as usize, "payments-0");
    for n in 1..=3 {
        let replica = c.replica_bytes(n, "payments-0");
        assert!(
            replica == reference,
            "replica on node {n} ({} bytes) diverges from the leader's ({} bytes)",
            replica.len(),
            reference.len()
        );
    }
}

/// Flips the byte in the middle of the first segment of `dir_name` on `node`, as a disk that
/// returns bad data would, while the broker runs (the page cache holds the flipped byte).
fn flip_byte_mid_first_segment(c: &Cluster, node: usize, dir_name: &str) {
    use std::os::unix::fs::FileExt;
    let logs = c.segment_files(node, dir_name);
    assert!(logs.len() >= 2, "want a closed segment, have {logs:?}");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&logs[0])
        .unwrap();
    let pos = f.metadata().unwrap().len() / 2;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, pos).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], pos).unwrap();
}

#[test]
fn a_corrupt_byte_in_the_leaders_segment_is_never_served_and_the_replica_is_repaired() {
    let mut c = Cluster::start3();
    create_topic_with(&c.bootstrap(), "ledger", 1, 3, &[("segment.bytes", "4096")]);
    let leader = wait_isr(&c.bootstrap(), "ledger", 0, 3) as usize;
    let p = producer(&c.bootstrap(), &[]);
    // Many small batches, so the leader's log has closed segments.
    let mut acked = Vec::new();
    for round in 0..20u64 {
        acked.extend(produce_all(&p, "ledger", round * 50..(round + 1) * 50));
    }
    assert_eq!(acked.len(), 1000);

    flip_byte_mid_first_segment(&c, leader, "ledger-0");

    // A consumer reading from the start gets every acknowledged value, intact and in order:
    // the leader refuses to serve the corrupt batch, reports its replica failed, and the
    // partition is led by another replica.
    let read = read_back(&c.bootstrap(), "ledger", 0, acked.len());
    assert_nothing_lost(&read, &acked);
    assert_eq!(read.len(), acked.len(), "values never produced were read");
    let found = common::Broker::metric(c.metrics_ports[leader - 1], "strata_corrupt_batches");
    assert!(found >= 1.0, "the old leader counted no corrupt batch");
    let (now, _, _) = partition_state(&c.bootstrap(), "ledger", 0).unwrap();
    assert_ne!(now as usize, leader, "the corrupt replica still leads");

    // The corrupt replica is cut back to the bad batch, refilled from the new leader, and
    // rejoins the ISR; then every replica holds the same bytes.
    wait_isr(&c.bootstrap(), "ledger", 0, 3);
    drop(p);
    for n in 1..=3 {
        assert!(c.broker(n).terminate().success());
    }
    let reference = c.replica_bytes(now as usize, "ledger-0");
    for n in 1..=3 {
        assert!(
            c.replica_bytes(n, "ledger-0") == reference,
            "replica on node {n} differs from the leader's"
        );
    }
}

/// An idempotent producer's retry of a batch the leader holds above its high watermark is a
/// duplicate, but it is not confirmed before the in-sync replicas have the batch: a new leader
/// without it would cut it away, and the record acknowledged by the retry would be lost.
#[test]
fn a_retried_batch_is_not_acknowledged_before_the_isr_has_it() {
    let c = Cluster::start(Layout {
        brokers: 3,
        proxied: true,
        extra: vec!["replica.lag.time.max.ms=60000".into()],
        ..Layout::default()
    });
    create_topic(&c.bootstrap(), "retries", 1, 3);
    let leader = wait_isr(&c.bootstrap(), "retries", 0, 3) as usize;
    // The followers stay in the ISR (and registered) but cannot fetch.
    for follower in (1..=3).filter(|n| *n != leader) {
        c.cut_replication(follower, leader);
    }
    let addr = c.brokers[leader - 1].bootstrap();
    const REQUEST_TIMED_OUT: i16 = 7;
    let attempt =
        |timeout_ms| raw_produce_with(&addr, "retries", 0, "7", Some((4242, 0)), timeout_ms);
    // Appended, never confirmed by the ISR.
    assert_eq!(attempt(500).0, REQUEST_TIMED_OUT);
    // The retry finds its batch in the log, and still waits for the ISR.
    assert_eq!(attempt(500).0, REQUEST_TIMED_OUT);
    c.heal();
    // Once the followers have it, the retry is confirmed at the batch's offset.
    assert_eq!(attempt(10_000), (0, 0));
    assert_eq!(read_back(&c.bootstrap(), "retries", 0, 1), vec![7]);
    let (_, high) = consumer(&c.bootstrap(), "watermarks")
        .fetch_watermarks("retries", 0, Duration::from_secs(10))
        .unwrap();
    assert_eq!(high, 1, "the batch is in the log once");
}

/// CreateTopics and CreatePartitions with manual replica assignments, from librdkafka
/// (`TopicReplication::Variable`, `NewPartitions::assign`): each partition lives exactly on the
/// brokers named, the first one leading; an assignment naming an unknown broker, or one broker
/// twice, is refused with INVALID_REPLICA_ASSIGNMENT and creates nothing.
#[test]
fn manual_replica_assignments_are_placed_as_given() {
    use rdkafka::admin::NewPartitions;
    let c = Cluster::start3();
    let b = c.bootstrap();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .unwrap();
    let rt = runtime();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let placed: &[&[i32]] = &[&[3, 1], &[2, 3], &[1, 2]];
    let res = rt
        .block_on(admin.create_topics(
            &[NewTopic::new(
                "placed",
                3,
                TopicReplication::Variable(placed),
            )],
            &opts,
        ))
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    for (p, replicas) in placed.iter().enumerate() {
        let (leader, got, _) = wait_for("the placed partition", LONG, || {
            partition_state(&b, "placed", p as i32).filter(|(l, _, isr)| *l >= 0 && isr.len() == 2)
        });
        assert_eq!(got, replicas.to_vec(), "partition {p}");
        assert_eq!(
            leader, replicas[0],
            "partition {p}: the first replica leads"
        );
    }
    for bad in [&[&[1, 9][..]][..], &[&[2, 2][..]][..]] {
        let res = rt
            .block_on(admin.create_topics(
                &[NewTopic::new(
                    "misplaced",
                    1,
                    TopicReplication::Variable(bad),
                )],
                &opts,
            ))
            .unwrap();
        assert!(
            matches!(
                &res[0],
                Err((_, RDKafkaErrorCode::InvalidReplicaAssignment))
            ),
            "{bad:?}: {res:?}"
        );
    }
    assert!(
        partition_state(&b, "misplaced", 0).is_none(),
        "nothing was created"
    );
    let grow: &[&[i32]] = &[&[2, 1]];
    let res = rt
        .block_on(admin.create_partitions(&[NewPartitions::new("placed", 4).assign(grow)], &opts))
        .unwrap();
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
    let (leader, got, _) = wait_for("the added partition", LONG, || {
        partition_state(&b, "placed", 3).filter(|(l, _, isr)| *l >= 0 && isr.len() == 2)
    });
    assert_eq!((leader, got), (2, vec![2, 1]));
    let wrong_rf: &[&[i32]] = &[&[1, 2, 3]];
    let res = rt
        .block_on(
            admin.create_partitions(&[NewPartitions::new("placed", 5).assign(wrong_rf)], &opts),
        )
        .unwrap();
    assert!(
        matches!(
            &res[0],
            Err((_, RDKafkaErrorCode::InvalidReplicaAssignment))
        ),
        "{res:?}"
    );
}

/// kafka-python's `elect_leaders` (ElectLeaders, preferred): with automatic rebalancing off, a
/// restarted preferred replica stays a follower until an operator asks; then it leads again,
/// and asking once more answers ELECTION_NOT_NEEDED.
#[test]
fn a_preferred_leader_election_on_request_moves_leadership_back() {
    let mut c = Cluster::start(Layout {
        brokers: 3,
        extra: vec!["auto.leader.rebalance.enable=false".into()],
        ..Layout::default()
    });
    create_topic(&c.bootstrap(), "elect", 1, 3);
    let preferred = wait_isr(&c.bootstrap(), "elect", 0, 3);
    let (_, replicas, _) = partition_state(&c.bootstrap(), "elect", 0).unwrap();
    assert_eq!(
        replicas[0], preferred,
        "the first replica leads a new partition"
    );
    c.broker(preferred as usize).kill9();
    let others = c.bootstrap_without(preferred as usize);
    let interim = wait_isr(&others, "elect", 0, 2);
    assert_ne!(interim, preferred);
    c.broker(preferred as usize).restart();
    let leader = wait_isr(&c.bootstrap(), "elect", 0, 3);
    assert_eq!(leader, interim, "no automatic rebalance");

    let elect = || {
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/kafka_python_elect.py"
        );
        let out = std::process::Command::new("python3")
            .args([script, &c.bootstrap(), "elect", "0"])
            .output()
            .expect("python3 runs (scripts/test installs kafka-python)");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };
    let first = elect();
    assert!(
        first.contains("top 0") && first.contains("elect 0 0"),
        "{first}"
    );
    wait_for("the preferred replica to lead", LONG, || {
        partition_state(&c.bootstrap(), "elect", 0)
            .filter(|(l, _, isr)| *l == preferred && isr.len() == 3)
    });
    let again = elect();
    assert!(again.contains("elect 0 84"), "ELECTION_NOT_NEEDED: {again}");
}
