//! Hostile and malformed input against the real binary, over raw TCP: oversized, negative,
//! truncated and garbage frames, unknown API keys and versions, unknown topics and partitions,
//! corrupt batches, and a client that stops reading. Each gets an error code or a closed
//! connection; the broker never dies, other connections keep working, and nothing already
//! written is lost.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::Bytes;
use common::Broker;
use common::wire::{call, connect, frame, produce, read_response};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::{ApiKey, ResponseKind, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_engine::{Offset, batch};

/// Whether the broker closed the connection (EOF) rather than answering.
fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0))
        || matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
}

fn records(values: &[&str]) -> Bytes {
    let recs: Vec<batch::KeyValue<'_>> =
        values.iter().map(|v| (None, Some(v.as_bytes()))).collect();
    Bytes::from(batch::build(Offset(0), 1_700_000_000_000, &recs))
}

fn metadata(topic: &str) -> MetadataRequest {
    let mut t = MetadataRequestTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.into())));
    let mut r = MetadataRequest::default();
    r.topics = Some(vec![t]);
    r.allow_auto_topic_creation = true;
    r
}

fn produce_codes(resp: ResponseKind) -> Vec<(i32, i16, i64)> {
    let ResponseKind::Produce(p) = resp else {
        panic!("not a produce response")
    };
    p.responses[0]
        .partition_responses
        .iter()
        .map(|r| (r.index, r.error_code, r.base_offset))
        .collect()
}

fn fetch_req(topic: &str, partition: i32, offset: i64, max_wait_ms: i32) -> FetchRequest {
    let mut fp = FetchPartition::default();
    fp.partition = partition;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(StrBytes::from_string(topic.into()));
    ft.partitions = vec![fp];
    let mut r = FetchRequest::default();
    r.replica_id = (-1).into();
    r.max_wait_ms = max_wait_ms;
    r.min_bytes = 1;
    r.max_bytes = 50 << 20;
    r.topics = vec![ft];
    r
}

/// Number of records readable from partition 0 of `topic`, through a fresh connection.
fn count_records(b: &Broker, topic: &str) -> usize {
    let mut s = connect(b);
    let ResponseKind::Fetch(f) = call(&mut s, ApiKey::Fetch, 11, &fetch_req(topic, 0, 0, 0)) else {
        panic!()
    };
    let bytes = f.responses[0].partitions[0]
        .records
        .clone()
        .unwrap_or_default();
    let mut n = 0;
    for (pos, h) in
        batch::validate_all(&bytes, batch::Origin::Replication, usize::MAX).unwrap_or_default()
    {
        n += batch::records(&bytes[pos..pos + h.size()]).unwrap().len();
    }
    n
}

fn setup() -> Broker {
    let b = Broker::start(&[
        "socket.request.max.bytes=1048576",
        "auto.create.topics.enable=false",
    ]);
    let mut s = connect(&b);
    let mut ct = kafka_protocol::messages::create_topics_request::CreatableTopic::default();
    ct.name = TopicName(StrBytes::from_static_str("safe"));
    ct.num_partitions = 2;
    ct.replication_factor = 1;
    let mut req = kafka_protocol::messages::create_topics_request::CreateTopicsRequest::default();
    req.topics = vec![ct];
    req.timeout_ms = 5000;
    let ResponseKind::CreateTopics(r) = call(&mut s, ApiKey::CreateTopics, 5, &req) else {
        panic!()
    };
    assert_eq!(r.topics[0].error_code, 0);
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("safe", vec![(0, records(&["a", "b", "c"]))]),
    ));
    assert_eq!(codes, vec![(0, 0, 0)]);
    b
}

/// After each attack: the broker is alive, a new connection works, and the 3 records are there.
fn still_serving(b: &mut Broker) {
    assert!(b.is_running(), "the broker died");
    assert_eq!(
        count_records(b, "safe"),
        3,
        "records written before are intact"
    );
}

#[test]
fn oversized_and_negative_frames_close_only_that_connection() {
    let mut b = setup();
    let mut bystander = connect(&b);
    for size in [2_000_000i32, i32::MAX, -5] {
        let mut s = connect(&b);
        s.write_all(&size.to_be_bytes()).unwrap();
        assert!(closed(&mut s), "frame size {size} closes the connection");
    }
    // The bystander connection opened before is unaffected.
    let resp = call(&mut bystander, ApiKey::Metadata, 9, &metadata("safe"));
    let ResponseKind::Metadata(m) = resp else {
        panic!()
    };
    assert_eq!(m.topics[0].error_code, 0);
    still_serving(&mut b);
}

#[test]
fn garbage_truncated_and_unknown_frames_are_refused() {
    let mut b = setup();
    // Garbage of a plausible size.
    let mut s = connect(&b);
    let mut g = 64i32.to_be_bytes().to_vec();
    g.extend((0..64u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    s.write_all(&g).unwrap();
    assert!(closed(&mut s));
    // A header that is too short.
    let mut s = connect(&b);
    s.write_all(&[0, 0, 0, 3, 0, 18, 0]).unwrap();
    assert!(closed(&mut s));
    // A frame cut short by the client.
    let mut s = connect(&b);
    s.write_all(&[0, 0, 0, 100, 0, 18, 0, 3]).unwrap();
    drop(s);
    // An unknown API key.
    let mut s = connect(&b);
    let mut f = frame(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default());
    f[4..6].copy_from_slice(&999i16.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    // A valid header with a body that does not decode.
    let mut s = connect(&b);
    let mut f = frame(ApiKey::Metadata, 9, 1, &metadata("safe"));
    f.truncate(f.len() - 3);
    let len = (f.len() - 4) as i32;
    f[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&f).unwrap();
    assert!(closed(&mut s));
    // Produce v2 (message format v1) is advertised from 0 for librdkafka but refused.
    let mut s = connect(&b);
    let f = frame(ApiKey::ApiVersions, 0, 1, &ApiVersionsRequest::default());
    let mut f2 = f.clone();
    f2[4..6].copy_from_slice(&0i16.to_be_bytes());
    f2[6..8].copy_from_slice(&2i16.to_be_bytes());
    s.write_all(&f2).unwrap();
    assert!(closed(&mut s));
    still_serving(&mut b);
}

#[test]
fn api_versions_of_an_unknown_version_gets_the_kip_511_answer() {
    let mut b = setup();
    let mut s = connect(&b);
    let mut f = frame(ApiKey::ApiVersions, 3, 42, &ApiVersionsRequest::default());
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    s.write_all(&f).unwrap();
    let (cid, resp) = read_response(&mut s, ApiKey::ApiVersions, 0).unwrap();
    assert_eq!(cid, 42);
    let ResponseKind::ApiVersions(v) = resp else {
        panic!()
    };
    assert_eq!(v.error_code, 35, "UNSUPPORTED_VERSION");
    let av = v
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .unwrap();
    assert!(av.max_version >= 3);
    // And the connection still works at a supported version.
    let ResponseKind::ApiVersions(v) = call(
        &mut s,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    ) else {
        panic!()
    };
    assert_eq!(v.error_code, 0);
    let produce = v.api_keys.iter().find(|k| k.api_key == 0).unwrap();
    assert_eq!(
        produce.min_version, 0,
        "Produce advertised from 0 for librdkafka"
    );
    still_serving(&mut b);
}

#[test]
fn unknown_topics_partitions_and_corrupt_batches_get_error_codes() {
    let mut b = setup();
    let mut s = connect(&b);
    let ResponseKind::Metadata(m) = call(&mut s, ApiKey::Metadata, 9, &metadata("nope")) else {
        panic!()
    };
    assert_eq!(
        m.topics[0].error_code, 3,
        "UNKNOWN_TOPIC_OR_PARTITION with auto-create off"
    );
    // One good partition and one that does not exist, in one request.
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("safe", vec![(1, records(&["x"])), (7, records(&["y"]))]),
    ));
    assert_eq!(codes[0], (1, 0, 0));
    assert_eq!(codes[1].0, 7);
    assert_eq!(codes[1].1, 3);
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("nope", vec![(0, records(&["z"]))]),
    ));
    assert_eq!(codes[0].1, 3);
    // Clients cannot write into the offsets topic.
    let forged = produce("__consumer_offsets", vec![(0, records(&["forged"]))]);
    let codes = produce_codes(call(&mut s, ApiKey::Produce, 9, &forged));
    assert_eq!(codes[0].1, 17, "INVALID_TOPIC_EXCEPTION");
    // A batch whose CRC does not match is refused and nothing of it is stored.
    let mut bad = records(&["corrupt"]).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55;
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("safe", vec![(0, Bytes::from(bad))]),
    ));
    assert_eq!(codes[0].1, 2, "CORRUPT_MESSAGE");
    // Fetch beyond the end: OFFSET_OUT_OF_RANGE.
    let ResponseKind::Fetch(f) = call(&mut s, ApiKey::Fetch, 11, &fetch_req("safe", 0, 99, 0))
    else {
        panic!()
    };
    assert_eq!(f.responses[0].partitions[0].error_code, 1);
    still_serving(&mut b);
}

#[test]
fn a_client_that_stops_reading_does_not_stall_others() {
    let mut b = setup();
    // Fill partition 1 with ~4 MiB so fetch responses are large.
    let mut s = connect(&b);
    let big = "v".repeat(100_000);
    for _ in 0..40 {
        let codes = produce_codes(call(
            &mut s,
            ApiKey::Produce,
            9,
            &produce("safe", vec![(1, records(&[&big]))]),
        ));
        assert_eq!(codes[0].1, 0);
    }
    // The hostile client pipelines fetches and never reads a response.
    let mut hog = connect(&b);
    hog.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let req = frame(ApiKey::Fetch, 11, 1, &fetch_req("safe", 1, 0, 0));
    for _ in 0..200 {
        if hog.write_all(&req).is_err() {
            break; // its send buffer is full: the broker stopped reading from it
        }
    }
    // Everyone else carries on.
    for i in 0..20 {
        let mut other = connect(&b);
        let codes = produce_codes(call(
            &mut other,
            ApiKey::Produce,
            9,
            &produce("safe", vec![(1, records(&[&format!("after-{i}")]))]),
        ));
        assert_eq!(codes[0].1, 0);
    }
    drop(hog);
    still_serving(&mut b);
}

#[test]
fn batches_over_max_message_bytes_are_refused_per_topic() {
    let mut b = setup();
    let mut s = connect(&b);
    let mut req = kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest::default();
    let mut res =
        kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource::default(
        );
    res.resource_type = 2;
    res.resource_name = StrBytes::from_static_str("safe");
    let mut c =
        kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig::default();
    c.name = StrBytes::from_static_str("max.message.bytes");
    c.config_operation = 0;
    c.value = Some(StrBytes::from_static_str("1000"));
    res.configs = vec![c];
    req.resources = vec![res];
    let ResponseKind::IncrementalAlterConfigs(r) =
        call(&mut s, ApiKey::IncrementalAlterConfigs, 1, &req)
    else {
        panic!()
    };
    assert_eq!(r.responses[0].error_code, 0);
    let big = "y".repeat(2000);
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("safe", vec![(0, records(&[&big]))]),
    ));
    assert_eq!(codes[0].1, 10, "MESSAGE_TOO_LARGE");
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("safe", vec![(1, records(&["small"]))]),
    ));
    assert_eq!(codes[0].1, 0);
    still_serving(&mut b);
}

#[test]
fn a_waiting_fetch_is_woken_by_a_produce() {
    let mut b = setup();
    let mut waiting = connect(&b);
    waiting
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    // Wait up to 30 s for data beyond the end of partition 0 (which ends at 3).
    waiting
        .write_all(&frame(
            ApiKey::Fetch,
            11,
            9,
            &fetch_req("safe", 0, 3, 30_000),
        ))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut s = connect(&b);
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("safe", vec![(0, records(&["wake"]))]),
    ));
    assert_eq!(codes[0], (0, 0, 3));
    // The fetch returns long before its 30 s wait (the read timeout is 20 s) with the record.
    let (cid, resp) = read_response(&mut waiting, ApiKey::Fetch, 11).expect("the fetch returned");
    assert_eq!(cid, 9);
    let ResponseKind::Fetch(f) = resp else {
        panic!()
    };
    let bytes = f.responses[0].partitions[0].records.clone().unwrap();
    let hs = batch::validate_all(&bytes, batch::Origin::Replication, usize::MAX).unwrap();
    assert_eq!(hs[0].1.base_offset, Offset(3));
    assert!(b.is_running());
    assert_eq!(count_records(&b, "safe"), 4);
}

/// A 20-byte Metadata request whose topic array claims 2^32-5 elements (found by the
/// `wire_request` fuzz target): the codec reserves capacity for them before reading any. The
/// broker must close that connection and live on.
#[test]
fn an_absurd_array_length_does_not_take_the_broker_down() {
    let mut b = setup();
    let mut s = connect(&b);
    // Metadata v1, correlation id, client id of 2 bytes, then a topic count of 0x6f277abe.
    let frame: [u8; 20] = [
        0, 3, 0, 1, 0xff, 0xfb, 0, 0, 0, 2, 0, 4, 0x6f, 0x27, 0x7a, 0xbe, 0xff, 0xff, 0xff, 0xff,
    ];
    s.write_all(&(frame.len() as i32).to_be_bytes()).unwrap();
    s.write_all(&frame).unwrap();
    assert!(closed(&mut s));
    still_serving(&mut b);
}

/// A connection to the broker from the source address `from` (any 127.x address).
fn connect_from(b: &Broker, from: [u8; 4]) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    let to: std::net::SocketAddr = b.bootstrap().parse().unwrap();
    sock.connect(&to.into()).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// A client that reconnects in a tight loop after every refused frame is slowed down: after
/// its first few error closes each new connection of that address waits before it is served
/// (so the broker does not parse and log at the client's pace), while a client from another
/// address is served at once, and the slowed client is still answered when it behaves.
#[test]
fn a_client_that_keeps_sending_garbage_is_slowed_and_others_are_not() {
    let b = Broker::start(&[]);
    let bad = [127, 0, 0, 77];
    let garbage = [0u8, 0, 0, 12, 0x7f, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    let mut last = Duration::ZERO;
    for _ in 0..8 {
        let started = std::time::Instant::now();
        let mut s = connect_from(&b, bad);
        s.write_all(&garbage).unwrap();
        assert!(closed(&mut s), "an unknown API key closes the connection");
        last = started.elapsed();
    }
    // Closes 1-3 are free, then 100, 200, 400, 800 ms: the 8th connection waited 800 ms.
    assert!(
        last >= Duration::from_millis(800),
        "the 8th refused connection of one address was served after {last:?}"
    );
    // Another address is not slowed: its request is answered well before that delay.
    let started = std::time::Instant::now();
    let mut good = connect_from(&b, [127, 0, 0, 78]);
    let ResponseKind::ApiVersions(av) = call(
        &mut good,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    ) else {
        panic!()
    };
    assert_eq!(av.error_code, 0);
    assert!(started.elapsed() < Duration::from_millis(800));
    // The slowed address is still served when it sends a valid request.
    let mut s = connect_from(&b, bad);
    let ResponseKind::ApiVersions(av) = call(
        &mut s,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    ) else {
        panic!()
    };
    assert_eq!(av.error_code, 0);
}

/// A fetch checks a batch's bytes (framing, CRC-32C) before they leave, once: a second reader
/// of the same closed segment gets them without a second check (counted as trusted). A byte
/// written into that segment afterwards, behind the broker's back, is still caught: the next
/// fetch answers KAFKA_STORAGE_ERROR for the partition and never sends the bytes, while the
/// other partition keeps serving.
#[test]
fn checked_bytes_are_trusted_until_their_segment_changes() {
    use std::os::unix::fs::FileExt;
    let metrics_port = common::free_port();
    let metrics = format!("metrics.listen=127.0.0.1:{metrics_port}");
    let mut b = Broker::start(&[
        metrics.as_str(),
        "log.segment.bytes=4096",
        "num.partitions=2",
    ]);
    let mut s = connect(&b);
    let ResponseKind::Metadata(m) = call(&mut s, ApiKey::Metadata, 9, &metadata("checked")) else {
        panic!()
    };
    assert_eq!(m.topics[0].error_code, 0, "auto-created");
    // ~12 KiB in partition 0: three closed segments and an active one.
    for i in 0..60 {
        let v = format!("{i:0200}");
        let codes = produce_codes(call(
            &mut s,
            ApiKey::Produce,
            9,
            &produce("checked", vec![(0, records(&[&v]))]),
        ));
        assert_eq!(codes[0].1, 0, "produce {i}");
    }
    let fetch_first = |s: &mut TcpStream| {
        let ResponseKind::Fetch(f) = call(s, ApiKey::Fetch, 11, &fetch_req("checked", 0, 0, 0))
        else {
            panic!()
        };
        let p = f.responses[0].partitions[0].clone();
        (p.error_code, p.records.unwrap_or_default().len())
    };
    let metric = |name: &str| Broker::metric(metrics_port, name);
    let (code, first_len) = fetch_first(&mut s);
    assert_eq!(code, 0);
    assert!(
        first_len > 0 && first_len <= 4096,
        "one closed segment: {first_len}"
    );
    let checked = metric("strata_fetch_checked_bytes");
    assert!(checked >= first_len as f64);
    assert_eq!(metric("strata_fetch_trusted_bytes"), 0.0);
    // A second reader (another connection, as another consumer group would be).
    let mut other = connect(&b);
    assert_eq!(fetch_first(&mut other), (0, first_len));
    assert_eq!(
        metric("strata_fetch_checked_bytes"),
        checked,
        "checked twice"
    );
    assert_eq!(metric("strata_fetch_trusted_bytes"), first_len as f64);

    // A byte flipped in the first segment after it was checked.
    let mut logs: Vec<_> = std::fs::read_dir(b.data_dir().join("checked-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&logs[0])
        .unwrap();
    let pos = first_len as u64 / 2;
    let mut byte = [0u8; 1];
    f.read_exact_at(&mut byte, pos).unwrap();
    f.write_all_at(&[byte[0] ^ 0x5a], pos).unwrap();
    const KAFKA_STORAGE_ERROR: i16 = 56;
    assert_eq!(fetch_first(&mut other), (KAFKA_STORAGE_ERROR, 0));
    assert!(metric("strata_corrupt_batches") >= 1.0);
    let codes = produce_codes(call(
        &mut s,
        ApiKey::Produce,
        9,
        &produce("checked", vec![(1, records(&["other partition"]))]),
    ));
    assert_eq!(codes[0].1, 0, "the other partition keeps working");
    assert!(b.is_running());
}
