//! Broker lifecycle against the real binary: graceful shutdown on SIGTERM leaves clean logs,
//! idempotent producer state survives a SIGKILL, the metrics endpoint reports what happened, and
//! a group member that stops heartbeating is removed after its session timeout.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::Broker;
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::{
    ApiKey, GroupId, RequestHeader, ResponseHeader, ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_engine::{Offset, batch};

fn call<R: Encodable>(s: &mut TcpStream, key: ApiKey, version: i16, req: &R) -> ResponseKind {
    let mut body = BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = key as i16;
    h.request_api_version = version;
    h.correlation_id = 1;
    h.client_id = Some(StrBytes::from_static_str("lifecycle-test"));
    h.encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    s.write_all(&(body.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&body).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    let mut b = Bytes::from(buf);
    ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    ResponseKind::decode(key, &mut b, version).unwrap()
}

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(b.bootstrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// A produce of one idempotent batch (producer id, epoch, first sequence).
fn idempotent_produce(topic: &str, pid: i64, seq: i32, values: &[&str]) -> ProduceRequest {
    let recs: Vec<batch::KeyValue<'_>> =
        values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    let mut b = batch::build(Offset(0), 1_700_000_000_000, &recs);
    batch::stamp_producer(&mut b, pid, 0, seq);
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(Bytes::from(b));
    let mut t = TopicProduceData::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = -1;
    r.timeout_ms = 10_000;
    r.topic_data = vec![t];
    r
}

fn produce_result(r: ResponseKind) -> (i16, i64) {
    let ResponseKind::Produce(p) = r else {
        panic!()
    };
    let x = &p.responses[0].partition_responses[0];
    (x.error_code, x.base_offset)
}

#[test]
fn idempotent_producer_state_survives_sigkill_and_sigterm_is_clean() {
    let mut b = Broker::start(&[]);
    let mut s = connect(&b);
    // The topic is auto-created by Metadata.
    let mut md = kafka_protocol::messages::metadata_request::MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str("idem-restart")));
    md.topics = Some(vec![t]);
    md.allow_auto_topic_creation = true;
    call(&mut s, ApiKey::Metadata, 9, &md);
    assert_eq!(
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("idem-restart", 4242, 0, &["a", "b"])
        )),
        (0, 0)
    );
    assert_eq!(
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("idem-restart", 4242, 2, &["c"])
        )),
        (0, 2)
    );
    drop(s);
    b.kill9();
    b.restart();
    let mut s = connect(&b);
    // The retry of the last batch after the crash is recognised: same offset, not stored again.
    assert_eq!(
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("idem-restart", 4242, 2, &["c"])
        )),
        (0, 2)
    );
    // A gap in the sequence is refused.
    assert_eq!(
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("idem-restart", 4242, 9, &["z"])
        ))
        .0,
        45
    );
    // The next sequence goes to the next offset.
    assert_eq!(
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("idem-restart", 4242, 3, &["d"])
        )),
        (0, 3)
    );
    drop(s);
    // SIGTERM: a clean exit that leaves every log with its clean shutdown marker.
    let status = b.terminate();
    assert!(status.success(), "graceful shutdown exits 0: {status:?}");
    let marker = b
        .data_dir()
        .join("idem-restart-0")
        .join(strata_engine::recovery::CLEAN_SHUTDOWN_FILE);
    assert!(marker.exists(), "clean shutdown marker at {marker:?}");
    b.restart();
    let mut s = connect(&b);
    assert_eq!(
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("idem-restart", 4242, 4, &["e"])
        )),
        (0, 4)
    );
}

/// One owner per data directory: a second `strata serve` on a live broker's `--data-dir` (on
/// another port) exits non-zero at once naming the directory and the first broker's pid; the
/// first broker keeps serving, and nothing it acknowledged is lost across a restart.
#[test]
fn a_second_broker_on_a_live_data_directory_exits_and_the_first_keeps_serving() {
    let mut b = Broker::start(&[]);
    let mut s = connect(&b);
    let mut md = kafka_protocol::messages::metadata_request::MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str("owned")));
    md.topics = Some(vec![t]);
    md.allow_auto_topic_creation = true;
    call(&mut s, ApiKey::Metadata, 9, &md);
    let produce = |s: &mut TcpStream, seq: i32, values: &[&str]| {
        produce_result(call(
            s,
            ApiKey::Produce,
            9,
            &idempotent_produce("owned", 31, seq, values),
        ))
    };
    assert_eq!(produce(&mut s, 0, &["a", "b"]), (0, 0));

    let first_pid = b.pid().unwrap();
    let mut second = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("serve")
        .arg("--data-dir")
        .arg(b.data_dir())
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", common::free_port()))
        .env("STRATA_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = second.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second broker on a live data directory kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "second broker exit status: {status:?}");
    assert!(
        stderr.contains(&format!("locked by another process (pid {first_pid})"))
            && stderr.contains(&b.data_dir().display().to_string()),
        "the refusal names the directory and the holder: {stderr}"
    );

    // The first broker is unaffected: the next batch goes to the next offset.
    assert_eq!(produce(&mut s, 2, &["c"]), (0, 2));
    drop(s);
    assert!(b.terminate().success());
    // Its lock died with it: the directory opens again, with all three records (LEO 3).
    b.restart();
    let mut s = connect(&b);
    assert_eq!(produce(&mut s, 3, &["d"]), (0, 3));
}

#[test]
fn metrics_endpoint_reports_requests_offsets_fsyncs() {
    let mport = common::free_port();
    let b = Broker::start(&[&format!("metrics.listen=127.0.0.1:{mport}")]);
    let mut s = connect(&b);
    let mut md = kafka_protocol::messages::metadata_request::MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str("m")));
    md.topics = Some(vec![t]);
    md.allow_auto_topic_creation = true;
    call(&mut s, ApiKey::Metadata, 9, &md);
    for i in 0..5 {
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("m", 77, i, &["x"]),
        ));
    }
    assert_eq!(
        Broker::metric(mport, "strata_requests_total{api=\"Produce\"}"),
        5.0
    );
    assert_eq!(
        Broker::metric(mport, "strata_log_end_offset{topic=\"m\",partition=\"0\"}"),
        5.0
    );
    assert!(Broker::metric(mport, "strata_fsyncs ") >= 1.0);
    assert!(Broker::metric(mport, "strata_bytes_in_total") > 0.0);
    assert!(
        Broker::metric(
            mport,
            "strata_request_latency_seconds_count{api=\"Produce\"}"
        ) >= 5.0
    );
}

#[test]
fn a_member_that_stops_heartbeating_is_removed() {
    let b = Broker::start(&["group.min.session.timeout.ms=500"]);
    let mut s = connect(&b);
    let join = |s: &mut TcpStream, member: &str| {
        let mut p = JoinGroupRequestProtocol::default();
        p.name = StrBytes::from_static_str("range");
        p.metadata = Bytes::from_static(b"meta");
        let mut r = JoinGroupRequest::default();
        r.group_id = GroupId(StrBytes::from_static_str("lonely"));
        r.session_timeout_ms = 800;
        r.rebalance_timeout_ms = 800;
        r.member_id = StrBytes::from_string(member.into());
        r.protocol_type = StrBytes::from_static_str("consumer");
        r.protocols = vec![p];
        let ResponseKind::JoinGroup(j) = call(s, ApiKey::JoinGroup, 5, &r) else {
            panic!()
        };
        j
    };
    let first = join(&mut s, "");
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    let member = first.member_id.as_str().to_string();
    let j = join(&mut s, &member);
    assert_eq!(j.error_code, 0);
    assert_eq!(j.leader.as_str(), member);
    assert_eq!(j.members.len(), 1);
    let mut a = SyncGroupRequestAssignment::default();
    a.member_id = StrBytes::from_string(member.clone());
    a.assignment = Bytes::from_static(b"\x00\x01assignment-bytes");
    let mut sr = SyncGroupRequest::default();
    sr.group_id = GroupId(StrBytes::from_static_str("lonely"));
    sr.generation_id = j.generation_id;
    sr.member_id = StrBytes::from_string(member.clone());
    sr.assignments = vec![a];
    let ResponseKind::SyncGroup(sync) = call(&mut s, ApiKey::SyncGroup, 3, &sr) else {
        panic!()
    };
    assert_eq!(sync.error_code, 0);
    assert_eq!(
        &sync.assignment[..],
        b"\x00\x01assignment-bytes",
        "assignment bytes passed through exactly"
    );
    let describe = |s: &mut TcpStream| {
        let mut d = DescribeGroupsRequest::default();
        d.groups = vec![GroupId(StrBytes::from_static_str("lonely"))];
        let ResponseKind::DescribeGroups(g) = call(s, ApiKey::DescribeGroups, 5, &d) else {
            panic!()
        };
        (
            g.groups[0].group_state.as_str().to_string(),
            g.groups[0].members.len(),
        )
    };
    assert_eq!(describe(&mut s), ("Stable".to_string(), 1));
    // No heartbeats: after the 800 ms session timeout the member is gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        std::thread::sleep(Duration::from_millis(200));
        if describe(&mut s) == ("Empty".to_string(), 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member never expired: {:?}",
            describe(&mut s)
        );
    }
}

#[test]
fn unknown_or_invalid_settings_are_refused_at_start() {
    for (arg, expected) in [
        (
            "log.segmnet.bytes=1",
            "unknown property `log.segmnet.bytes`",
        ),
        (
            "num.partitions=zero",
            "invalid value `zero` for `num.partitions`",
        ),
        ("listeners=PLAINTEXT://127.0.0.1:notaport", "invalid value"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args([
                "serve",
                "--data-dir",
                "/nonexistent/never-created",
                "--set",
                arg,
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{arg} must be refused");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{arg}: {stderr}");
    }
}

/// A standalone commit with a metadata string survives SIGKILL, metadata included, and the
/// consumer lag metric reports high watermark minus the committed offset.
#[test]
fn committed_offset_metadata_survives_sigkill_and_lag_is_reported() {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequest, OffsetFetchRequestTopic,
    };
    let mport = common::free_port();
    let mut b = Broker::start(&[&format!("metrics.listen=127.0.0.1:{mport}")]);
    let mut s = connect(&b);
    let mut md = kafka_protocol::messages::metadata_request::MetadataRequest::default();
    let mut t = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_static_str("lagged")));
    md.topics = Some(vec![t]);
    md.allow_auto_topic_creation = true;
    call(&mut s, ApiKey::Metadata, 9, &md);
    for i in 0..10 {
        produce_result(call(
            &mut s,
            ApiKey::Produce,
            9,
            &idempotent_produce("lagged", 99, i, &["x"]),
        ));
    }
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 4;
    p.committed_leader_epoch = 0;
    p.committed_metadata = Some(StrBytes::from_static_str("checkpoint-a"));
    let mut ct = OffsetCommitRequestTopic::default();
    ct.name = TopicName(StrBytes::from_static_str("lagged"));
    ct.partitions = vec![p];
    let mut commit = OffsetCommitRequest::default();
    commit.group_id = GroupId(StrBytes::from_static_str("standalone"));
    commit.generation_id_or_member_epoch = -1;
    commit.topics = vec![ct];
    let ResponseKind::OffsetCommit(r) = call(&mut s, ApiKey::OffsetCommit, 8, &commit) else {
        panic!()
    };
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
    assert_eq!(
        Broker::metric(
            mport,
            "strata_consumer_lag{group=\"standalone\",topic=\"lagged\",partition=\"0\"}"
        ),
        6.0
    );
    drop(s);
    b.kill9();
    b.restart();
    let mut s = connect(&b);
    let mut ft = OffsetFetchRequestTopic::default();
    ft.name = TopicName(StrBytes::from_static_str("lagged"));
    ft.partition_indexes = vec![0];
    let mut fetch = OffsetFetchRequest::default();
    fetch.group_id = GroupId(StrBytes::from_static_str("standalone"));
    fetch.topics = Some(vec![ft]);
    let ResponseKind::OffsetFetch(r) = call(&mut s, ApiKey::OffsetFetch, 7, &fetch) else {
        panic!()
    };
    let p = &r.topics[0].partitions[0];
    assert_eq!(p.committed_offset, 4);
    assert_eq!(
        p.metadata.as_ref().map(|m| m.as_str()),
        Some("checkpoint-a")
    );
}
