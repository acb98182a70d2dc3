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

/// Transactions over the raw protocol, step by step as a client sends them.
pub mod txn {
    use std::net::TcpStream;
    use std::time::Duration;

    use bytes::Bytes;
    use kafka_protocol::messages::{
        ApiKey, GroupId, ProducerId, ResponseKind, TopicName, TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;

    use super::call;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    /// FindCoordinator v3 of `transactional_id` (as clients ask first: it creates the
    /// transaction state topic), then InitProducerId v4, retried while the coordinator loads
    /// or finishes an earlier transaction: the producer id and epoch.
    pub fn init(conn: &mut TcpStream, transactional_id: &str) -> (i64, i16) {
        use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
        use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
        let mut find = FindCoordinatorRequest::default();
        find.key = s(transactional_id);
        find.key_type = 1;
        let ResponseKind::FindCoordinator(found) = call(conn, ApiKey::FindCoordinator, 3, &find)
        else {
            panic!("not a FindCoordinator response")
        };
        assert_eq!(found.error_code, 0, "FindCoordinator of {transactional_id}");
        let mut r = InitProducerIdRequest::default();
        r.transactional_id = Some(TransactionalId(s(transactional_id)));
        r.transaction_timeout_ms = 60_000;
        r.producer_id = ProducerId(-1);
        r.producer_epoch = -1;
        crate::common::cluster::wait_for("a producer id", Duration::from_secs(30), || {
            let ResponseKind::InitProducerId(resp) = call(conn, ApiKey::InitProducerId, 4, &r)
            else {
                panic!("not an InitProducerId response")
            };
            (resp.error_code == 0).then_some((resp.producer_id.0, resp.producer_epoch))
        })
    }

    /// A transactional batch of `pid` at `epoch` with one record at sequence `seq`.
    pub fn batch(pid: i64, epoch: i16, seq: i32, value: &str) -> Bytes {
        use strata_engine::{Offset, batch};
        let mut b = batch::build(
            Offset(0),
            1_700_000_000_000,
            &[(None, Some(value.as_bytes()))],
        );
        batch::stamp_producer(&mut b, pid, epoch, seq);
        batch::stamp_transactional(&mut b, false);
        Bytes::from(b)
    }

    /// Produce `version` of `records` to `topic`-`partition` with `transactional_id`: the
    /// partition's error code and base offset.
    pub fn produce(
        conn: &mut TcpStream,
        version: i16,
        topic: &str,
        partition: i32,
        transactional_id: Option<&str>,
        records: Bytes,
    ) -> (i16, i64) {
        let mut r = super::produce(topic, vec![(partition, records)]);
        r.transactional_id = transactional_id.map(|t| TransactionalId(s(t)));
        let ResponseKind::Produce(resp) = call(conn, ApiKey::Produce, version, &r) else {
            panic!("not a Produce response")
        };
        let p = &resp.responses[0].partition_responses[0];
        (p.error_code, p.base_offset)
    }

    /// EndTxn `version`: the error code and the producer id and epoch answered (v5+).
    pub fn end(
        conn: &mut TcpStream,
        version: i16,
        transactional_id: &str,
        (pid, epoch): (i64, i16),
        commit: bool,
    ) -> (i16, (i64, i16)) {
        use kafka_protocol::messages::end_txn_request::EndTxnRequest;
        let mut r = EndTxnRequest::default();
        r.transactional_id = TransactionalId(s(transactional_id));
        r.producer_id = ProducerId(pid);
        r.producer_epoch = epoch;
        r.committed = commit;
        let ResponseKind::EndTxn(resp) = call(conn, ApiKey::EndTxn, version, &r) else {
            panic!("not an EndTxn response")
        };
        (resp.error_code, (resp.producer_id.0, resp.producer_epoch))
    }

    /// TxnOffsetCommit `version` of `offset` for `topic`-0 in `group`: the error code.
    pub fn offset_commit(
        conn: &mut TcpStream,
        version: i16,
        transactional_id: &str,
        group: &str,
        (pid, epoch): (i64, i16),
        topic: &str,
        offset: i64,
    ) -> i16 {
        use kafka_protocol::messages::txn_offset_commit_request::*;
        let mut p = TxnOffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = offset;
        p.committed_leader_epoch = -1;
        let mut t = TxnOffsetCommitRequestTopic::default();
        t.name = TopicName(s(topic));
        t.partitions = vec![p];
        let mut r = TxnOffsetCommitRequest::default();
        r.transactional_id = TransactionalId(s(transactional_id));
        r.group_id = GroupId(s(group));
        r.producer_id = ProducerId(pid);
        r.producer_epoch = epoch;
        r.generation_id = -1;
        r.topics = vec![t];
        let ResponseKind::TxnOffsetCommit(resp) = call(conn, ApiKey::TxnOffsetCommit, version, &r)
        else {
            panic!("not a TxnOffsetCommit response")
        };
        resp.topics[0].partitions[0].error_code
    }

    /// OffsetFetch v7 of `topic`-0 in `group` (`require_stable`): the error code and offset.
    pub fn committed(conn: &mut TcpStream, group: &str, topic: &str) -> (i16, i64) {
        use kafka_protocol::messages::offset_fetch_request::*;
        let mut t = OffsetFetchRequestTopic::default();
        t.name = TopicName(s(topic));
        t.partition_indexes = vec![0];
        let mut r = OffsetFetchRequest::default();
        r.group_id = GroupId(s(group));
        r.topics = Some(vec![t]);
        r.require_stable = true;
        let ResponseKind::OffsetFetch(resp) = call(conn, ApiKey::OffsetFetch, 7, &r) else {
            panic!("not an OffsetFetch response")
        };
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.committed_offset)
    }
}
