//! Raw Kafka requests over TCP, for tests that send exactly the bytes a client would.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::Broker;

/// A connection to `b` with a 10 s read timeout.
pub fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(b.bootstrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

pub fn frame<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let mut body = BytesMut::new();
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("hostile-test"));
    header
        .encode(&mut body, key.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut out = (body.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    out
}

pub fn read_response(s: &mut TcpStream, key: ApiKey, version: i16) -> Option<(i32, ResponseKind)> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).ok()?;
    let mut b = Bytes::from(buf);
    let h = ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    Some((
        h.correlation_id,
        ResponseKind::decode(key, &mut b, version).unwrap(),
    ))
}

pub fn call<R: Encodable>(s: &mut TcpStream, key: ApiKey, version: i16, req: &R) -> ResponseKind {
    s.write_all(&frame(key, version, 7, req)).unwrap();
    let (cid, resp) = read_response(s, key, version).expect("a response");
    assert_eq!(cid, 7);
    resp
}

/// A Produce request with acks=all for the given `(partition, records)` of `topic`.
pub fn produce(topic: &str, parts: Vec<(i32, Bytes)>) -> ProduceRequest {
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.into()));
    td.partition_data = parts
        .into_iter()
        .map(|(i, r)| {
            let mut p = PartitionProduceData::default();
            p.index = i;
            p.records = Some(r);
            p
        })
        .collect();
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 10_000;
    req.topic_data = vec![td];
    req
}

/// ListOffsets (v7) of `partitions` of `topic` at `timestamp` (-1 latest, -2 earliest), as a
/// consumer asks: (partition, error code, offset) of each, in the order answered.
pub fn list_offsets(
    b: &Broker,
    topic: &str,
    partitions: impl IntoIterator<Item = i32>,
    timestamp: i64,
) -> Vec<(i32, i16, i64)> {
    use kafka_protocol::messages::BrokerId;
    use kafka_protocol::messages::list_offsets_request::{
        ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
    };
    let mut t = ListOffsetsTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.into()));
    t.partitions = partitions
        .into_iter()
        .map(|i| {
            let mut p = ListOffsetsPartition::default();
            p.partition_index = i;
            p.timestamp = timestamp;
            p
        })
        .collect();
    let mut r = ListOffsetsRequest::default();
    r.replica_id = BrokerId(-1);
    r.topics = vec![t];
    let mut conn = connect(b);
    let ResponseKind::ListOffsets(resp) = call(&mut conn, ApiKey::ListOffsets, 7, &r) else {
        panic!("not a ListOffsets response")
    };
    resp.topics
        .iter()
        .flat_map(|t| &t.partitions)
        .map(|p| (p.partition_index, p.error_code, p.offset))
        .collect()
}
