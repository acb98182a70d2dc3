//! Ten thousand partitions on one broker, as an operator would create them: the topic is
//! created (CreateTopics from librdkafka), a record is written to every partition in one
//! produce, and after a SIGKILL the broker comes back with all of them. Before the broker kept
//! one descriptor per partition (and none per index or lock), this failed with "Too many open
//! files" at about 5,000 partitions on a machine whose hard limit is 20,000 descriptors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Broker;
use common::kafka::{create_topic, runtime};
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::{ApiKey, BrokerId, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_engine::{Offset, batch};

const PARTITIONS: i32 = 10_000;

/// Descriptors the process has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// ListOffsets latest of every partition of `topic`, in one request.
fn latest_offsets(b: &Broker, topic: &str) -> Vec<(i32, i16, i64)> {
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = (0..PARTITIONS)
        .map(|i| {
            let mut p = ListOffsetsPartition::default();
            p.partition_index = i;
            p.timestamp = -1;
            p
        })
        .collect();
    let mut r = ListOffsetsRequest::default();
    r.replica_id = BrokerId(-1);
    r.topics = vec![t];
    let mut conn = common::wire::connect(b);
    let ResponseKind::ListOffsets(resp) = common::wire::call(&mut conn, ApiKey::ListOffsets, 7, &r)
    else {
        panic!("not a ListOffsets response")
    };
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.partition_index, p.error_code, p.offset))
        .collect()
}

#[test]
fn ten_thousand_partitions_are_created_written_and_back_after_sigkill() {
    let mut b = Broker::start(&[]);
    let rt = runtime();
    create_topic(&rt, &b.bootstrap(), "wide", PARTITIONS, 1);
    let pid = b.pid().unwrap();
    let fds = open_files(pid);
    assert!(
        fds < PARTITIONS as usize + 1_000,
        "{fds} descriptors open for {PARTITIONS} partitions"
    );

    let parts: Vec<(i32, Bytes)> = (0..PARTITIONS)
        .map(|i| {
            let value = format!("record of partition {i}");
            let b = batch::build(
                Offset(0),
                1_700_000_000_000,
                &[(None, Some(value.as_bytes()))],
            );
            (i, Bytes::from(b))
        })
        .collect();
    let mut conn = common::wire::connect(&b);
    conn.set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let ResponseKind::Produce(resp) = common::wire::call(
        &mut conn,
        ApiKey::Produce,
        9,
        &common::wire::produce("wide", parts),
    ) else {
        panic!("not a Produce response")
    };
    let answers = &resp.responses[0].partition_responses;
    assert_eq!(answers.len(), PARTITIONS as usize);
    assert!(
        answers
            .iter()
            .all(|p| p.error_code == 0 && p.base_offset == 0),
        "every partition takes its record at offset 0"
    );

    b.kill9();
    let restarted = Instant::now();
    b.restart();
    let offsets = latest_offsets(&b, "wide");
    eprintln!(
        "{PARTITIONS} partitions served again {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(offsets.len(), PARTITIONS as usize);
    for (i, code, offset) in offsets {
        assert_eq!((code, offset), (0, 1), "partition {i} after the SIGKILL");
    }
}
