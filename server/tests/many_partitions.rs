//! Ten thousand partitions on one broker, as an operator would create them: the topic is
//! created (CreateTopics from librdkafka), a record is written to every partition in one
//! produce, and after a SIGKILL the broker comes back with all of them: ListOffsets gives each
//! partition's end and one Fetch of all 10,000 partitions reads every record back, as a
//! consumer would. Before partitions held one descriptor each (none for indexes or locks), this
//! failed with "Too many open files" at about 5,000 partitions on a machine whose hard limit is
//! 20,000 descriptors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Broker;
use common::kafka::{create_topic, runtime};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::{ApiKey, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_engine::{Offset, RecordReader, batch};

const PARTITIONS: i32 = 10_000;

/// Descriptors the process has open.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn value_of(partition: i32) -> String {
    format!("record of partition {partition}")
}

/// One Fetch (v11, no session) of every partition of `topic` from offset 0: the values read,
/// by partition, after checking each partition's error code.
fn fetch_all(b: &Broker, topic: &str) -> Vec<(i32, Vec<String>)> {
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = (0..PARTITIONS)
        .map(|i| {
            let mut p = FetchPartition::default();
            p.partition = i;
            p.fetch_offset = 0;
            p.partition_max_bytes = 64 << 10;
            p
        })
        .collect();
    let mut r = FetchRequest::default();
    r.replica_id = (-1).into();
    r.max_wait_ms = 0;
    r.min_bytes = 1;
    r.max_bytes = 50 << 20;
    r.topics = vec![t];
    let mut conn = common::wire::connect(b);
    conn.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let ResponseKind::Fetch(resp) = common::wire::call(&mut conn, ApiKey::Fetch, 11, &r) else {
        panic!("not a Fetch response")
    };
    resp.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            let bytes = p.records.clone().unwrap_or_default();
            let values = RecordReader::new(bytes, Offset(0))
                .map(|r| {
                    let r = r.unwrap();
                    String::from_utf8(r.value.unwrap().to_vec()).unwrap()
                })
                .collect();
            (p.partition_index, values)
        })
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
            let value = value_of(i);
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
    let offsets = common::wire::list_offsets(&b, "wide", 0..PARTITIONS, -1);
    eprintln!(
        "{PARTITIONS} partitions served again {:?} after the restart",
        restarted.elapsed()
    );
    assert_eq!(offsets.len(), PARTITIONS as usize);
    for (i, code, offset) in offsets {
        assert_eq!((code, offset), (0, 1), "partition {i} after the SIGKILL");
    }
    let read = fetch_all(&b, "wide");
    assert_eq!(read.len(), PARTITIONS as usize, "every partition answered");
    for (i, values) in read {
        assert_eq!(
            values,
            vec![value_of(i)],
            "what a consumer reads of partition {i}"
        );
    }
}
