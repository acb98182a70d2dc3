//! The version matrix: every API version a running broker advertises, sent over a real socket
//! to the real handler, with non-default values in the fields that version carries; every
//! response must decode at that version (to its last byte), carry no UNKNOWN_SERVER_ERROR, keep
//! the connection open, and say what a client relies on (the offset ListOffsets finds, the
//! offset OffsetFetch returns after OffsetCommit at the same version, the records a Fetch
//! returns, the topic Metadata names, ...). At the end the broker's
//! `strata_response_encode_errors_total` must be 0.
//!
//! The list of (API, version) pairs is the broker's own ApiVersions answer, so an API or version
//! added to `handler::supported_versions` is walked the day it is added, and fails here until it
//! has a request builder below. Versions below the codec crate's floor (ListOffsets v0,
//! OffsetCommit v0-1, CreateTopics v0-1, ...) are written and read byte by byte from Kafka's
//! protocol guide here, independently of the broker's `wire::legacy`.
//!
//! Runs against a single broker and against a node of a three-node cluster.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_engine::{Offset, batch};
use uuid::Uuid;

const TOPIC: &str = "matrix";
const RECORDS: i64 = 3;
const UNKNOWN_SERVER_ERROR: i16 = -1;

struct Conn {
    stream: TcpStream,
    correlation_id: i32,
}

impl Conn {
    fn open(bootstrap: &str) -> Conn {
        let stream = TcpStream::connect(bootstrap).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends `body` as a request of `api` at `version`, returns the response body.
    fn call_raw(&mut self, api: ApiKey, version: i16, body: &[u8]) -> Bytes {
        self.correlation_id += 1;
        let mut h = RequestHeader::default();
        h.request_api_key = api as i16;
        h.request_api_version = version;
        h.correlation_id = self.correlation_id;
        h.client_id = Some(StrBytes::from_static_str("version-matrix"));
        let mut frame = BytesMut::new();
        h.encode(&mut frame, api.request_header_version(version))
            .unwrap();
        frame.extend_from_slice(body);
        self.stream
            .write_all(&(frame.len() as i32).to_be_bytes())
            .unwrap();
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: no response ({e})"));
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).unwrap();
        let mut b = Bytes::from(buf);
        let rh = ResponseHeader::decode(&mut b, api.response_header_version(version)).unwrap();
        assert_eq!(rh.correlation_id, self.correlation_id, "{api:?} v{version}");
        b
    }

    /// A request encoded by the codec at `version`, its response decoded at `version`.
    fn call<R: Encodable>(&mut self, api: ApiKey, version: i16, req: &R) -> ResponseKind {
        let mut body = BytesMut::new();
        req.encode(&mut body, version)
            .unwrap_or_else(|e| panic!("test bug: {api:?} v{version} request: {e}"));
        let mut b = self.call_raw(api, version, &body);
        let r = ResponseKind::decode(api, &mut b, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: response does not decode: {e}"));
        assert_eq!(
            b.remaining(),
            0,
            "{api:?} v{version}: trailing response bytes"
        );
        r
    }
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.into()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// Classic-encoding helpers for the versions below the codec's floor.
fn put_str(b: &mut BytesMut, v: &str) {
    b.put_i16(v.len() as i16);
    b.put_slice(v.as_bytes());
}

fn get_str(b: &mut Bytes) -> String {
    let n = b.get_i16();
    if n < 0 {
        return String::new();
    }
    String::from_utf8(b.split_to(n as usize).to_vec()).unwrap()
}

/// Flexible-encoding helpers for OffsetCommit and OffsetFetch v10 (topics by id), whose
/// requests the codec crate does not encode: Kafka 4.2's OffsetCommitRequest.json and
/// OffsetFetchRequest.json, written out.
fn put_compact_str(b: &mut BytesMut, v: &str) {
    b.put_u8(v.len() as u8 + 1);
    b.put_slice(v.as_bytes());
}

fn offset_commit_v10(group: &str, topic_id: Uuid, offset: i64) -> Vec<u8> {
    let mut b = BytesMut::new();
    put_compact_str(&mut b, group);
    b.put_i32(-1); // generation / member epoch: a commit from outside the group
    put_compact_str(&mut b, ""); // member id
    b.put_u8(0); // group instance id: null
    b.put_u8(2); // one topic
    b.put_u128(topic_id.as_u128());
    b.put_u8(2); // one partition
    b.put_i32(0);
    b.put_i64(offset);
    b.put_i32(-1); // leader epoch
    put_compact_str(&mut b, "meta");
    b.put_u8(0); // partition tagged fields
    b.put_u8(0); // topic tagged fields
    b.put_u8(0); // request tagged fields
    b.to_vec()
}

fn offset_fetch_v10(group: &str, topic_id: Uuid) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_u8(2); // one group
    put_compact_str(&mut b, group);
    b.put_u8(0); // member id: null
    b.put_i32(-1); // member epoch
    b.put_u8(2); // one topic
    b.put_u128(topic_id.as_u128());
    b.put_u8(2); // one partition index
    b.put_i32(0);
    b.put_u8(0); // topic tagged fields
    b.put_u8(0); // group tagged fields
    b.put_u8(1); // require stable
    b.put_u8(0); // request tagged fields
    b.to_vec()
}

/// What the matrix learned about the cluster (topic id) and keeps between calls.
struct World {
    topic_id: Uuid,
    /// Offsets committed per OffsetCommit version, read back by OffsetFetch at that version.
    committed: BTreeMap<i16, i64>,
    /// Brokers in the cluster.
    brokers: usize,
    /// A connection to the transaction coordinator (one `__transaction_state` partition, so
    /// one coordinator for every transactional id), for the steps around a transaction API.
    txn: Conn,
}

/// A transactional producer of `id` (InitProducerId at v4), from the transaction coordinator.
fn init_txn(txn: &mut Conn, id: &str) -> (ProducerId, i16) {
    let mut r = init_producer_id_request::InitProducerIdRequest::default();
    r.transactional_id = Some(TransactionalId(s(id)));
    r.transaction_timeout_ms = 60_000;
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    let ResponseKind::InitProducerId(resp) = txn.call(ApiKey::InitProducerId, 4, &r) else {
        panic!()
    };
    assert_eq!(resp.error_code, 0, "InitProducerId of {id}");
    (resp.producer_id, resp.producer_epoch)
}

/// AddPartitionsToTxn v3 of `matrix-0` to `id`'s transaction.
fn add_matrix_partition(txn: &mut Conn, id: &str, (pid, epoch): (ProducerId, i16)) {
    let mut t = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    t.name = name(TOPIC);
    t.partitions = vec![0];
    let mut r = add_partitions_to_txn_request::AddPartitionsToTxnRequest::default();
    r.v3_and_below_transactional_id = TransactionalId(s(id));
    r.v3_and_below_producer_id = pid;
    r.v3_and_below_producer_epoch = epoch;
    r.v3_and_below_topics = vec![t];
    let ResponseKind::AddPartitionsToTxn(resp) = txn.call(ApiKey::AddPartitionsToTxn, 3, &r) else {
        panic!()
    };
    assert_eq!(
        resp.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code, 0,
        "AddPartitionsToTxn v3 of {id}"
    );
}

/// EndTxn v3 of `id`'s transaction; returns its error code.
fn end_txn(txn: &mut Conn, id: &str, (pid, epoch): (ProducerId, i16), commit: bool) -> i16 {
    let mut r = end_txn_request::EndTxnRequest::default();
    r.transactional_id = TransactionalId(s(id));
    r.producer_id = pid;
    r.producer_epoch = epoch;
    r.committed = commit;
    let ResponseKind::EndTxn(resp) = txn.call(ApiKey::EndTxn, 3, &r) else {
        panic!()
    };
    resp.error_code
}

fn produce_request(v: i16) -> produce_request::ProduceRequest {
    use produce_request::*;
    let b = batch::build(Offset(0), 1_700_000_000_000, &[(Some(b"k"), Some(b"v"))]);
    let mut p = PartitionProduceData::default();
    p.index = 0;
    p.records = Some(Bytes::from(b));
    let mut t = TopicProduceData::default();
    t.name = name(TOPIC);
    t.partition_data = vec![p];
    let mut r = ProduceRequest::default();
    r.acks = if v % 2 == 0 { 1 } else { -1 };
    r.timeout_ms = 10_000;
    r.topic_data = vec![t];
    r
}

/// Sends one request of `api` at `v` and checks its response.
fn check(conn: &mut Conn, world: &mut World, api: ApiKey, v: i16) {
    match api {
        ApiKey::Produce => {
            let mut req = produce_request(v);
            if v >= 13 {
                // KIP-516: the topic by id.
                req.topic_data[0].topic_id = world.topic_id;
            }
            let ResponseKind::Produce(r) = conn.call(api, v, &req) else {
                panic!()
            };
            let p = &r.responses[0].partition_responses[0];
            assert_eq!(p.error_code, 0, "Produce v{v}");
            assert!(p.base_offset >= RECORDS, "Produce v{v}: {}", p.base_offset);
            if v >= 13 {
                assert_eq!(r.responses[0].topic_id, world.topic_id, "Produce v{v}");
                req.topic_data[0].topic_id = Uuid::from_u128(7);
                let ResponseKind::Produce(r) = conn.call(api, v, &req) else {
                    panic!()
                };
                assert_eq!(
                    r.responses[0].partition_responses[0].error_code, 100,
                    "Produce v{v}: UNKNOWN_TOPIC_ID"
                );
            }
        }
        ApiKey::Fetch => {
            use fetch_request::*;
            let mut p = FetchPartition::default();
            p.partition = 0;
            p.fetch_offset = 1;
            p.partition_max_bytes = 1 << 20;
            p.log_start_offset = if v >= 5 { 0 } else { -1 };
            let mut t = FetchTopic::default();
            if v >= 13 {
                t.topic_id = world.topic_id;
            } else {
                t.topic = name(TOPIC);
            }
            t.partitions = vec![p];
            let mut r = FetchRequest::default();
            r.max_wait_ms = 50;
            r.min_bytes = 1;
            r.max_bytes = 1 << 20;
            r.isolation_level = 1;
            r.topics = vec![t];
            if v >= 11 {
                r.rack_id = s("rack-a");
            }
            let ResponseKind::Fetch(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let p = &resp.responses[0].partitions[0];
            assert_eq!(p.error_code, 0, "Fetch v{v}");
            assert!(p.high_watermark >= RECORDS, "Fetch v{v}");
            let records = p.records.as_ref().expect("records");
            let h = batch::parse_header(records, 0).unwrap();
            assert!(
                h.base_offset <= Offset(1) && h.last_offset() >= Offset(1),
                "Fetch v{v} returns the batch holding the fetch offset"
            );
            assert_eq!(resp.session_id, 0, "Fetch v{v}: epoch -1 is sessionless");
            if v >= 7 {
                // A full fetch at session 0, epoch 0 opens a session (KIP-227).
                let mut open = r.clone();
                open.session_epoch = 0;
                let ResponseKind::Fetch(opened) = conn.call(api, v, &open) else {
                    panic!()
                };
                let id = opened.session_id;
                assert!(id > 0, "Fetch v{v} opens a session");
                // Incremental at epoch 1, naming nothing: the session's partition is fetched
                // from its fetch offset, still 1, so it carries records again.
                let mut inc = r.clone();
                inc.session_id = id;
                inc.session_epoch = 1;
                inc.topics = Vec::new();
                let ResponseKind::Fetch(again) = conn.call(api, v, &inc) else {
                    panic!()
                };
                assert_eq!((again.error_code, again.session_id), (0, id), "Fetch v{v}");
                let p = &again.responses[0].partitions[0];
                assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
                // Moved to the end: nothing new, nothing in the answer.
                let mut at_end = r.clone();
                at_end.session_id = id;
                at_end.session_epoch = 2;
                at_end.max_wait_ms = 0;
                at_end.topics[0].partitions[0].fetch_offset = p.high_watermark;
                let ResponseKind::Fetch(quiet) = conn.call(api, v, &at_end) else {
                    panic!()
                };
                assert_eq!(quiet.error_code, 0, "Fetch v{v}");
                assert!(
                    quiet.responses.is_empty(),
                    "Fetch v{v}: {:?}",
                    quiet.responses
                );
                inc.session_epoch = 2;
                let ResponseKind::Fetch(stale) = conn.call(api, v, &inc) else {
                    panic!()
                };
                assert_eq!(stale.error_code, 71, "INVALID_FETCH_SESSION_EPOCH");
                inc.session_id = id + 100_000;
                let ResponseKind::Fetch(gone) = conn.call(api, v, &inc) else {
                    panic!()
                };
                assert_eq!(gone.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
                // Epoch -1 closes it.
                let mut close = r.clone();
                close.session_id = id;
                close.session_epoch = -1;
                let ResponseKind::Fetch(closed) = conn.call(api, v, &close) else {
                    panic!()
                };
                assert_eq!((closed.error_code, closed.session_id), (0, 0));
            }
        }
        ApiKey::ListOffsets if v == 0 => {
            let mut b = BytesMut::new();
            b.put_i32(-1);
            b.put_i32(1);
            put_str(&mut b, TOPIC);
            b.put_i32(1);
            b.put_i32(0);
            b.put_i64(-1); // latest
            b.put_i32(1); // max_num_offsets
            let mut r = conn.call_raw(api, v, &b);
            assert_eq!(r.get_i32(), 1);
            assert_eq!(get_str(&mut r), TOPIC);
            assert_eq!(r.get_i32(), 1);
            assert_eq!(r.get_i32(), 0, "partition");
            assert_eq!(r.get_i16(), 0, "ListOffsets v0 error code");
            assert_eq!(r.get_i32(), 1, "one old-style offset");
            assert!(r.get_i64() >= RECORDS, "ListOffsets v0 latest");
            assert_eq!(r.remaining(), 0);
        }
        ApiKey::ListOffsets => {
            use list_offsets_request::*;
            let mut p = ListOffsetsPartition::default();
            p.partition_index = 0;
            p.timestamp = if v % 2 == 0 { -1 } else { -2 };
            let mut t = ListOffsetsTopic::default();
            t.name = name(TOPIC);
            t.partitions = vec![p];
            let mut r = ListOffsetsRequest::default();
            r.replica_id = (-1).into();
            if v >= 2 {
                r.isolation_level = 1;
            }
            r.topics = vec![t];
            let ResponseKind::ListOffsets(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let p = &resp.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "ListOffsets v{v}");
            if v % 2 == 0 {
                assert!(p.offset >= RECORDS, "ListOffsets v{v} latest: {}", p.offset);
            } else {
                assert_eq!(p.offset, 0, "ListOffsets v{v} earliest");
            }
            if v >= 4 {
                assert!(p.leader_epoch >= 0, "ListOffsets v{v} carries the epoch");
            }
        }
        ApiKey::Metadata => {
            use metadata_request::*;
            let mut t = MetadataRequestTopic::default();
            t.name = Some(name(TOPIC));
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![t]);
            if v >= 4 {
                r.allow_auto_topic_creation = false;
            }
            if v >= 8 {
                r.include_topic_authorized_operations = true;
            }
            if (8..=10).contains(&v) {
                r.include_cluster_authorized_operations = true;
            }
            let ResponseKind::Metadata(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert!(!resp.brokers.is_empty(), "Metadata v{v} brokers");
            let t = &resp.topics[0];
            assert_eq!(t.error_code, 0, "Metadata v{v}");
            assert_eq!(t.name.as_ref().map(|n| n.0.as_str()), Some(TOPIC));
            assert_eq!(t.partitions.len(), 1);
            assert!(t.partitions[0].leader_id.0 >= 0, "Metadata v{v} leader");
            if v >= 10 {
                world.topic_id = t.topic_id;
            }
            // Asked for, authorized operations come back (all of them: no authorizer yet).
            if v >= 8 {
                assert_eq!(
                    t.topic_authorized_operations, 3576,
                    "Metadata v{v} topic ops"
                );
            }
            if (8..=10).contains(&v) {
                assert_eq!(resp.cluster_authorized_operations, 8096, "Metadata v{v}");
            }
            // A topic that cannot exist: INVALID_TOPIC_EXCEPTION, in both modes.
            let mut bad = MetadataRequestTopic::default();
            bad.name = Some(name("no/such topic"));
            r.topics = Some(vec![bad]);
            let ResponseKind::Metadata(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.topics[0].error_code, 17,
                "Metadata v{v} of an invalid name"
            );
        }
        ApiKey::OffsetCommit => {
            let group = format!("mx-commit-v{v}");
            let offset = 1 + i64::from(v % 2);
            let body = if v <= 1 {
                let mut b = BytesMut::new();
                put_str(&mut b, &group);
                if v == 1 {
                    b.put_i32(-1); // generation: a commit outside group membership
                    put_str(&mut b, "");
                }
                b.put_i32(1);
                put_str(&mut b, TOPIC);
                b.put_i32(1);
                b.put_i32(0);
                b.put_i64(offset);
                if v == 1 {
                    b.put_i64(-1); // commit timestamp
                }
                put_str(&mut b, "meta");
                b.to_vec()
            } else if v >= 10 {
                offset_commit_v10(&group, world.topic_id, offset)
            } else {
                use offset_commit_request::*;
                let mut p = OffsetCommitRequestPartition::default();
                p.partition_index = 0;
                p.committed_offset = offset;
                p.committed_metadata = Some(s("meta"));
                let mut t = OffsetCommitRequestTopic::default();
                t.name = name(TOPIC);
                t.partitions = vec![p];
                let mut r = OffsetCommitRequest::default();
                r.group_id = GroupId(s(&group));
                r.generation_id_or_member_epoch = -1;
                r.topics = vec![t];
                let mut b = BytesMut::new();
                r.encode(&mut b, v).unwrap();
                b.to_vec()
            };
            let mut b = conn.call_raw(api, v, &body);
            // v0-2 share one response layout; the codec reads it at v2.
            let decode_at = v.max(2);
            let resp = offset_commit_response::OffsetCommitResponse::decode(&mut b, decode_at)
                .unwrap_or_else(|e| panic!("OffsetCommit v{v}: {e}"));
            assert_eq!(b.remaining(), 0);
            let code = resp.topics[0].partitions[0].error_code;
            assert_eq!(code, 0, "OffsetCommit v{v}");
            if v >= 10 {
                assert_eq!(resp.topics[0].topic_id, world.topic_id, "v10 answers by id");
                // An id nobody has: UNKNOWN_TOPIC_ID.
                let body = offset_commit_v10(&group, Uuid::from_u128(12345), offset);
                let mut b = conn.call_raw(api, v, &body);
                let resp = offset_commit_response::OffsetCommitResponse::decode(&mut b, v).unwrap();
                assert_eq!(
                    resp.topics[0].partitions[0].error_code, 100,
                    "UNKNOWN_TOPIC_ID"
                );
            }
            world.committed.insert(v, offset);
            if (2..10).contains(&v) {
                // From outside a group that has a member (an admin tool): UNKNOWN_MEMBER_ID.
                use offset_commit_request::*;
                let mut p = OffsetCommitRequestPartition::default();
                p.partition_index = 0;
                p.committed_offset = 1;
                let mut t = OffsetCommitRequestTopic::default();
                t.name = name(TOPIC);
                t.partitions = vec![p];
                let mut r = OffsetCommitRequest::default();
                r.group_id = GroupId(s("mx-join-v0"));
                r.generation_id_or_member_epoch = -1;
                r.topics = vec![t];
                let ResponseKind::OffsetCommit(resp) = conn.call(api, v, &r) else {
                    panic!()
                };
                let code = resp.topics[0].partitions[0].error_code;
                assert_eq!(code, 25, "OffsetCommit v{v} into an active group");
            }
        }
        ApiKey::OffsetFetch => {
            use offset_fetch_request::*;
            // OffsetFetch vN reads what OffsetCommit vN committed (the same group).
            let group = format!("mx-commit-v{v}");
            if v >= 10 {
                let mut b = conn.call_raw(api, v, &offset_fetch_v10(&group, world.topic_id));
                let resp = offset_fetch_response::OffsetFetchResponse::decode(&mut b, v)
                    .unwrap_or_else(|e| panic!("OffsetFetch v{v}: {e}"));
                assert_eq!(b.remaining(), 0);
                let t = &resp.groups[0].topics[0];
                assert_eq!(t.topic_id, world.topic_id, "OffsetFetch v{v} answers by id");
                assert_eq!(t.partitions[0].error_code, 0);
                assert_eq!(
                    Some(t.partitions[0].committed_offset),
                    world.committed.get(&v).copied()
                );
                assert_eq!(t.partitions[0].metadata.as_deref(), Some("meta"));
                let mut b =
                    conn.call_raw(api, v, &offset_fetch_v10(&group, Uuid::from_u128(12345)));
                let resp = offset_fetch_response::OffsetFetchResponse::decode(&mut b, v).unwrap();
                let p = &resp.groups[0].topics[0].partitions[0];
                assert_eq!(p.error_code, 100, "OffsetFetch v{v} of an unknown id");
                return;
            }
            let mut r = OffsetFetchRequest::default();
            if v >= 8 {
                let mut t = OffsetFetchRequestTopics::default();
                t.name = name(TOPIC);
                t.partition_indexes = vec![0];
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = GroupId(s(&group));
                g.topics = Some(vec![t]);
                r.groups = vec![g];
            } else {
                let mut t = OffsetFetchRequestTopic::default();
                t.name = name(TOPIC);
                t.partition_indexes = vec![0];
                r.group_id = GroupId(s(&group));
                r.topics = Some(vec![t]);
            }
            if v >= 7 {
                r.require_stable = true;
            }
            // v0 is v1's layout both ways.
            let at = v.max(1);
            let mut body = BytesMut::new();
            r.encode(&mut body, at).unwrap();
            let mut b = conn.call_raw(api, v, &body);
            let resp = offset_fetch_response::OffsetFetchResponse::decode(&mut b, at)
                .unwrap_or_else(|e| panic!("OffsetFetch v{v}: {e}"));
            assert_eq!(b.remaining(), 0);
            let (offset, code, meta) = if v >= 8 {
                let p = &resp.groups[0].topics[0].partitions[0];
                (p.committed_offset, p.error_code, p.metadata.clone())
            } else {
                let p = &resp.topics[0].partitions[0];
                (p.committed_offset, p.error_code, p.metadata.clone())
            };
            assert_eq!(code, 0, "OffsetFetch v{v}");
            assert_eq!(
                Some(offset),
                world.committed.get(&v).copied(),
                "OffsetFetch v{v}"
            );
            assert_eq!(meta.as_deref(), Some("meta"), "OffsetFetch v{v} metadata");
        }
        ApiKey::FindCoordinator => {
            use find_coordinator_request::*;
            let mut r = FindCoordinatorRequest::default();
            if v >= 4 {
                r.coordinator_keys = vec![s("mx-group")];
            } else {
                r.key = s("mx-group");
            }
            let ResponseKind::FindCoordinator(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let (code, node) = if v >= 4 {
                (
                    resp.coordinators[0].error_code,
                    resp.coordinators[0].node_id,
                )
            } else {
                (resp.error_code, resp.node_id)
            };
            assert_eq!(code, 0, "FindCoordinator v{v}");
            assert!(node.0 >= 0, "FindCoordinator v{v} node");
        }
        ApiKey::JoinGroup => {
            use join_group_request::*;
            let mut p = JoinGroupRequestProtocol::default();
            p.name = s("range");
            // Consumer protocol v0 subscription: topics ["matrix"], no user data.
            p.metadata = Bytes::from_static(&[
                0, 0, 0, 0, 0, 1, 0, 6, b'm', b'a', b't', b'r', b'i', b'x', 0xff, 0xff, 0xff, 0xff,
            ]);
            let mut r = JoinGroupRequest::default();
            r.group_id = GroupId(s(&format!("mx-join-v{v}")));
            // Long enough for the whole walk: OffsetDelete, much later, needs the member alive.
            r.session_timeout_ms = 120_000;
            if v >= 1 {
                r.rebalance_timeout_ms = 10_000;
            }
            r.protocol_type = s("consumer");
            r.protocols = vec![p];
            if v >= 8 {
                r.reason = Some(s("version matrix"));
            }
            let ResponseKind::JoinGroup(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            // v4+: a first join without a member id is asked to rejoin with the one given.
            let expected = if v >= 4 { 79 } else { 0 };
            assert_eq!(resp.error_code, expected, "JoinGroup v{v}");
            assert!(!resp.member_id.is_empty(), "JoinGroup v{v} member id");
        }
        ApiKey::Heartbeat => {
            let mut r = heartbeat_request::HeartbeatRequest::default();
            r.group_id = GroupId(s("mx-none"));
            r.generation_id = 1;
            r.member_id = s("m");
            let ResponseKind::Heartbeat(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_not_unknown(api, v, resp.error_code);
            assert_ne!(resp.error_code, 0, "Heartbeat v{v} of an unknown member");
        }
        ApiKey::LeaveGroup => {
            use leave_group_request::*;
            let mut r = LeaveGroupRequest::default();
            r.group_id = GroupId(s("mx-none"));
            if v >= 3 {
                let mut m = MemberIdentity::default();
                m.member_id = s("m");
                if v >= 5 {
                    m.reason = Some(s("version matrix"));
                }
                r.members = vec![m];
            } else {
                r.member_id = s("m");
            }
            let ResponseKind::LeaveGroup(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_not_unknown(api, v, resp.error_code);
        }
        ApiKey::SyncGroup => {
            let mut r = sync_group_request::SyncGroupRequest::default();
            r.group_id = GroupId(s("mx-none"));
            r.generation_id = 1;
            r.member_id = s("m");
            if v >= 5 {
                r.protocol_type = Some(s("consumer"));
                r.protocol_name = Some(s("range"));
            }
            let ResponseKind::SyncGroup(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_not_unknown(api, v, resp.error_code);
            assert_ne!(resp.error_code, 0, "SyncGroup v{v} of an unknown member");
        }
        ApiKey::DescribeGroups => {
            let mut r = describe_groups_request::DescribeGroupsRequest::default();
            r.groups = vec![GroupId(s("mx-join-v0")), GroupId(s("mx-never-seen"))];
            if v >= 3 {
                r.include_authorized_operations = true;
            }
            let ResponseKind::DescribeGroups(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let g = &resp.groups[0];
            assert_eq!(g.error_code, 0, "DescribeGroups v{v}");
            assert_eq!(g.protocol_type.as_str(), "consumer", "DescribeGroups v{v}");
            assert_eq!(g.members.len(), 1, "DescribeGroups v{v}");
            if v >= 3 {
                assert_eq!(g.authorized_operations, 328, "DescribeGroups v{v} ops");
            }
            let unknown = &resp.groups[1];
            assert_eq!(unknown.group_state.as_str(), "Dead", "DescribeGroups v{v}");
        }
        ApiKey::ListGroups => {
            let mut r = list_groups_request::ListGroupsRequest::default();
            if v >= 4 {
                r.states_filter = vec![s("CompletingRebalance"), s("Stable"), s("Empty")];
            }
            if v >= 5 {
                r.types_filter = vec![s("classic")];
            }
            let ResponseKind::ListGroups(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "ListGroups v{v}");
            assert!(
                resp.groups
                    .iter()
                    .any(|g| g.group_id.0.as_str() == "mx-join-v0"),
                "ListGroups v{v} lists a group that has a member"
            );
            if v >= 4 {
                // Filters that match nothing here: no group is Dead, none is of type consumer.
                r.states_filter = vec![s("Dead")];
                let ResponseKind::ListGroups(resp) = conn.call(api, v, &r) else {
                    panic!()
                };
                assert!(resp.groups.is_empty(), "ListGroups v{v} state filter");
            }
            if v >= 5 {
                r.states_filter.clear();
                r.types_filter = vec![s("consumer")];
                let ResponseKind::ListGroups(resp) = conn.call(api, v, &r) else {
                    panic!()
                };
                assert!(resp.groups.is_empty(), "ListGroups v{v} type filter");
            }
        }
        ApiKey::ApiVersions => {
            let mut r = api_versions_request::ApiVersionsRequest::default();
            if v >= 3 {
                r.client_software_name = s("strata-version-matrix");
                r.client_software_version = s("1.0");
            }
            let ResponseKind::ApiVersions(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "ApiVersions v{v}");
            assert!(resp.api_keys.len() > 10);
            if v >= 3 {
                // KIP-890 part 2 is on: Java's 4.x clients read this to use it.
                let tv = resp
                    .finalized_features
                    .iter()
                    .find(|f| f.name.as_str() == "transaction.version")
                    .map(|f| f.max_version_level);
                assert_eq!(tv, Some(2), "ApiVersions v{v} finalized features");
                assert!(resp.finalized_features_epoch >= 0);
            }
        }
        ApiKey::CreateTopics => {
            let topic = format!("mx-created-v{v}");
            let body = if v == 0 {
                let mut b = BytesMut::new();
                b.put_i32(1);
                put_str(&mut b, &topic);
                b.put_i32(2);
                b.put_i16(1);
                b.put_i32(0); // no manual assignment
                b.put_i32(1);
                put_str(&mut b, "retention.ms");
                put_str(&mut b, "3600000");
                b.put_i32(10_000);
                b.to_vec()
            } else {
                use create_topics_request::*;
                let mut c = CreatableTopicConfig::default();
                c.name = s("retention.ms");
                c.value = Some(s("3600000"));
                let mut t = CreatableTopic::default();
                t.name = name(&topic);
                t.num_partitions = 2;
                t.replication_factor = 1;
                t.configs = vec![c];
                let mut r = CreateTopicsRequest::default();
                r.topics = vec![t];
                r.timeout_ms = 10_000;
                let mut b = BytesMut::new();
                // v1 is v2's request layout.
                r.encode(&mut b, v.max(2)).unwrap();
                b.to_vec()
            };
            let mut b = conn.call_raw(api, v, &body);
            let (got, code) = if v <= 1 {
                assert_eq!(b.get_i32(), 1);
                let got = get_str(&mut b);
                let code = b.get_i16();
                if v == 1 {
                    let _message = get_str(&mut b);
                }
                (got, code)
            } else {
                let resp = create_topics_response::CreateTopicsResponse::decode(&mut b, v)
                    .unwrap_or_else(|e| panic!("CreateTopics v{v}: {e}"));
                let t = &resp.topics[0];
                if v >= 5 {
                    assert_eq!(t.num_partitions, 2, "CreateTopics v{v}");
                }
                (t.name.0.to_string(), t.error_code)
            };
            assert_eq!(b.remaining(), 0, "CreateTopics v{v}");
            assert_eq!(
                (got.as_str(), code),
                (topic.as_str(), 0),
                "CreateTopics v{v}"
            );
        }
        ApiKey::DeleteTopics => {
            // Deletes what CreateTopics created at the same version.
            let topic = format!("mx-created-v{v}");
            let mut r = delete_topics_request::DeleteTopicsRequest::default();
            if v >= 6 {
                let mut t = delete_topics_request::DeleteTopicState::default();
                t.name = Some(name(&topic));
                r.topics = vec![t];
            } else {
                r.topic_names = vec![name(&topic)];
            }
            r.timeout_ms = 10_000;
            let mut body = BytesMut::new();
            r.encode(&mut body, v.max(1)).unwrap(); // v0 is v1's request layout
            let mut b = conn.call_raw(api, v, &body);
            let (got, code) = if v == 0 {
                assert_eq!(b.get_i32(), 1);
                (get_str(&mut b), b.get_i16())
            } else {
                let resp = delete_topics_response::DeleteTopicsResponse::decode(&mut b, v)
                    .unwrap_or_else(|e| panic!("DeleteTopics v{v}: {e}"));
                let t = &resp.responses[0];
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                )
            };
            assert_eq!(b.remaining(), 0, "DeleteTopics v{v}");
            assert_eq!(
                (got.as_str(), code),
                (topic.as_str(), 0),
                "DeleteTopics v{v}"
            );
        }
        ApiKey::DeleteRecords => {
            use delete_records_request::*;
            let mut p = DeleteRecordsPartition::default();
            p.partition_index = 0;
            p.offset = 0;
            let mut t = DeleteRecordsTopic::default();
            t.name = name(TOPIC);
            t.partitions = vec![p];
            let mut r = DeleteRecordsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 10_000;
            let ResponseKind::DeleteRecords(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let p = &resp.topics[0].partitions[0];
            assert_eq!(
                (p.error_code, p.low_watermark),
                (0, 0),
                "DeleteRecords v{v}"
            );
        }
        ApiKey::InitProducerId => {
            let mut r = init_producer_id_request::InitProducerIdRequest::default();
            r.transaction_timeout_ms = 60_000;
            let ResponseKind::InitProducerId(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "InitProducerId v{v}");
            assert!(resp.producer_id.0 >= 0);
        }
        ApiKey::OffsetForLeaderEpoch => {
            use offset_for_leader_epoch_request::*;
            let mut p = OffsetForLeaderPartition::default();
            p.partition = 0;
            p.current_leader_epoch = -1;
            p.leader_epoch = 0;
            let mut t = OffsetForLeaderTopic::default();
            t.topic = name(TOPIC);
            t.partitions = vec![p];
            let mut r = OffsetForLeaderEpochRequest::default();
            r.replica_id = (-1).into();
            r.topics = vec![t];
            let ResponseKind::OffsetForLeaderEpoch(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let p = &resp.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "OffsetForLeaderEpoch v{v}");
            assert!(p.end_offset >= RECORDS, "OffsetForLeaderEpoch v{v}");
        }
        ApiKey::DescribeConfigs if v == 0 => {
            let mut b = BytesMut::new();
            b.put_i32(1);
            b.put_i8(2); // topic
            put_str(&mut b, TOPIC);
            b.put_i32(-1); // every key
            let mut r = conn.call_raw(api, v, &b);
            let _throttle = r.get_i32();
            assert_eq!(r.get_i32(), 1);
            assert_eq!(r.get_i16(), 0, "DescribeConfigs v0 error code");
            let _message = get_str(&mut r);
            assert_eq!(r.get_i8(), 2);
            assert_eq!(get_str(&mut r), TOPIC);
            let n = r.get_i32();
            let mut names = Vec::new();
            for _ in 0..n {
                names.push(get_str(&mut r));
                let _value = get_str(&mut r);
                r.advance(3); // read_only, is_default, is_sensitive
            }
            assert_eq!(r.remaining(), 0);
            assert!(names.iter().any(|n| n == "retention.ms"), "{names:?}");
        }
        ApiKey::DescribeConfigs => {
            use describe_configs_request::*;
            let mut res = DescribeConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s(TOPIC);
            let mut r = DescribeConfigsRequest::default();
            r.resources = vec![res];
            r.include_synonyms = true;
            if v >= 3 {
                r.include_documentation = true;
            }
            let ResponseKind::DescribeConfigs(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let res = &resp.results[0];
            assert_eq!(res.error_code, 0, "DescribeConfigs v{v}");
            assert!(
                res.configs
                    .iter()
                    .any(|c| c.name.as_str() == "retention.ms"),
                "DescribeConfigs v{v}"
            );
        }
        ApiKey::AlterConfigs => {
            use alter_configs_request::*;
            // Whatever DescribeConfigs returns, AlterConfigs takes back unchanged (Kafka's
            // names and defaults, e.g. delete.retention.ms, flush.ms).
            let mut d = describe_configs_request::DescribeConfigsResource::default();
            d.resource_type = 2;
            d.resource_name = s(TOPIC);
            let mut dr = describe_configs_request::DescribeConfigsRequest::default();
            dr.resources = vec![d];
            let ResponseKind::DescribeConfigs(described) =
                conn.call(ApiKey::DescribeConfigs, 4, &dr)
            else {
                panic!()
            };
            let described = &described.results[0].configs;
            for (k, want) in [
                ("delete.retention.ms", "86400000"),
                ("min.cleanable.dirty.ratio", "0.5"),
                ("flush.messages", "1"),
            ] {
                let got = described.iter().find(|c| c.name.as_str() == k);
                assert_eq!(
                    got.and_then(|c| c.value.as_deref()),
                    Some(want),
                    "DescribeConfigs {k}"
                );
            }
            let mut configs: Vec<AlterableConfig> = described
                .iter()
                .filter(|c| c.name.as_str() != "retention.ms")
                .map(|c| {
                    let mut a = AlterableConfig::default();
                    a.name = c.name.clone();
                    a.value = c.value.clone();
                    a
                })
                .collect();
            let mut c = AlterableConfig::default();
            c.name = s("retention.ms");
            c.value = Some(s("604800000"));
            configs.push(c);
            let mut res = AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s(TOPIC);
            res.configs = configs;
            let mut r = AlterConfigsRequest::default();
            r.resources = vec![res];
            let ResponseKind::AlterConfigs(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.responses[0].error_code, 0,
                "AlterConfigs v{v} of what DescribeConfigs returned: {:?}",
                resp.responses[0].error_message
            );
        }
        ApiKey::IncrementalAlterConfigs => {
            use incremental_alter_configs_request::*;
            let mut c = AlterableConfig::default();
            c.name = s("retention.ms");
            c.config_operation = 0; // SET
            c.value = Some(s("604800001"));
            let mut res = AlterConfigsResource::default();
            res.resource_type = 2;
            res.resource_name = s(TOPIC);
            res.configs = vec![c];
            let mut r = IncrementalAlterConfigsRequest::default();
            r.resources = vec![res];
            let ResponseKind::IncrementalAlterConfigs(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.responses[0].error_code, 0,
                "IncrementalAlterConfigs v{v}"
            );
        }
        ApiKey::CreatePartitions => {
            use create_partitions_request::*;
            // The topic created at setup with one partition grows by one per version.
            let mut t = CreatePartitionsTopic::default();
            t.name = name("mx-grow");
            t.count = t_count(v) as i32;
            let mut r = CreatePartitionsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 10_000;
            let ResponseKind::CreatePartitions(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let res = &resp.results[0];
            assert_eq!(
                res.error_code, 0,
                "CreatePartitions v{v}: {:?}",
                res.error_message
            );
            // Every partition is there, with a leader, for the next Metadata.
            let mut mt = metadata_request::MetadataRequestTopic::default();
            mt.name = Some(name("mx-grow"));
            let mut mr = metadata_request::MetadataRequest::default();
            mr.topics = Some(vec![mt]);
            common::cluster::wait_for(
                "the new partitions' leaders",
                Duration::from_secs(20),
                || {
                    let ResponseKind::Metadata(m) = conn.call(ApiKey::Metadata, 12, &mr) else {
                        panic!()
                    };
                    let parts = &m.topics.first()?.partitions;
                    (parts.len() == t_count(v) && parts.iter().all(|p| p.leader_id.0 >= 0))
                        .then_some(())
                },
            );
        }
        ApiKey::DeleteGroups => {
            let mut r = delete_groups_request::DeleteGroupsRequest::default();
            r.groups_names = vec![GroupId(s(&format!("mx-commit-v{v}-none")))];
            let ResponseKind::DeleteGroups(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.results[0].error_code, 69,
                "DeleteGroups v{v}: GROUP_ID_NOT_FOUND"
            );
        }
        ApiKey::DescribeLogDirs => {
            use describe_log_dirs_request::*;
            let mut t = DescribableLogDirTopic::default();
            t.topic = name(TOPIC);
            t.partitions = vec![0];
            let mut r = DescribeLogDirsRequest::default();
            r.topics = Some(vec![t]);
            let ResponseKind::DescribeLogDirs(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let dir = &resp.results[0];
            assert_eq!(dir.error_code, 0, "DescribeLogDirs v{v}");
            assert!(!dir.log_dir.is_empty());
            let p = &dir.topics[0].partitions[0];
            assert_eq!(dir.topics[0].name.0.as_str(), TOPIC);
            assert!(
                p.partition_size > 0,
                "DescribeLogDirs v{v}: the replica's bytes"
            );
            if v >= 4 {
                assert!(dir.total_bytes >= dir.usable_bytes && dir.usable_bytes > 0);
            }
        }
        ApiKey::OffsetDelete => {
            use offset_delete_request::*;
            let request = |group: &str| {
                let mut p = OffsetDeleteRequestPartition::default();
                p.partition_index = 0;
                let mut t = OffsetDeleteRequestTopic::default();
                t.name = name(TOPIC);
                t.partitions = vec![p];
                let mut r = OffsetDeleteRequest::default();
                r.group_id = GroupId(s(group));
                r.topics = vec![t];
                r
            };
            // A group without members: its offset goes, and OffsetFetch no longer finds it.
            let ResponseKind::OffsetDelete(resp) = conn.call(api, v, &request("mx-commit-v2"))
            else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "OffsetDelete v{v}");
            assert_eq!(
                resp.topics[0].partitions[0].error_code, 0,
                "OffsetDelete v{v}"
            );
            let mut t = offset_fetch_request::OffsetFetchRequestTopic::default();
            t.name = name(TOPIC);
            t.partition_indexes = vec![0];
            let mut f = offset_fetch_request::OffsetFetchRequest::default();
            f.group_id = GroupId(s("mx-commit-v2"));
            f.topics = Some(vec![t]);
            let ResponseKind::OffsetFetch(fetched) = conn.call(ApiKey::OffsetFetch, 7, &f) else {
                panic!()
            };
            assert_eq!(fetched.topics[0].partitions[0].committed_offset, -1);
            // A group whose member subscribes to the topic keeps it.
            let ResponseKind::OffsetDelete(resp) = conn.call(api, v, &request("mx-join-v0")) else {
                panic!()
            };
            assert_eq!(
                resp.topics[0].partitions[0].error_code, 86,
                "GROUP_SUBSCRIBED_TO_TOPIC"
            );
            let ResponseKind::OffsetDelete(resp) = conn.call(api, v, &request("mx-no-group"))
            else {
                panic!()
            };
            assert_eq!(resp.error_code, 69, "OffsetDelete v{v} of an unknown group");
        }
        ApiKey::DescribeProducers => {
            // An idempotent producer appends three records; its leader then describes it.
            let mut init = init_producer_id_request::InitProducerIdRequest::default();
            init.transaction_timeout_ms = 60_000;
            let ResponseKind::InitProducerId(id) = conn.call(ApiKey::InitProducerId, 4, &init)
            else {
                panic!()
            };
            let batch = strata_engine::BatchBuilder::new()
                .producer(id.producer_id.0, id.producer_epoch, 0)
                .timestamp(1_700_000_000_123)
                .records((0..3).map(|i| strata_engine::Record::new(format!("idempotent {i}"))))
                .build()
                .unwrap();
            let mut produce = produce_request(9);
            produce.acks = -1;
            produce.topic_data[0].partition_data[0].records = Some(batch.freeze());
            let ResponseKind::Produce(produced) = conn.call(ApiKey::Produce, 9, &produce) else {
                panic!()
            };
            assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);
            let mut t = describe_producers_request::TopicRequest::default();
            t.name = name(TOPIC);
            t.partition_indexes = vec![0, 99];
            let mut r = describe_producers_request::DescribeProducersRequest::default();
            r.topics = vec![t];
            let ResponseKind::DescribeProducers(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let parts = &resp.topics[0].partitions;
            assert_eq!(parts[0].error_code, 0, "DescribeProducers v{v}");
            let p = parts[0]
                .active_producers
                .iter()
                .find(|p| p.producer_id == id.producer_id)
                .expect("the producer is known");
            assert_eq!(
                (p.producer_epoch, p.last_sequence, p.last_timestamp),
                (i32::from(id.producer_epoch), 2, 1_700_000_000_123),
                "DescribeProducers v{v}"
            );
            assert_eq!((p.coordinator_epoch, p.current_txn_start_offset), (-1, -1));
            assert_eq!(
                parts[1].error_code, 3,
                "DescribeProducers v{v}: no partition 99"
            );
        }
        ApiKey::DescribeTopicPartitions => {
            use describe_topic_partitions_request::*;
            // What Metadata says of the same topics: (topic, partition, leader).
            let mut m = metadata_request::MetadataRequest::default();
            m.topics = Some(
                ["mx-grow", TOPIC]
                    .iter()
                    .map(|t| {
                        let mut x = metadata_request::MetadataRequestTopic::default();
                        x.name = Some(name(t));
                        x
                    })
                    .collect(),
            );
            let ResponseKind::Metadata(md) = conn.call(ApiKey::Metadata, 12, &m) else {
                panic!()
            };
            let mut expected: Vec<(String, i32, i32)> = md
                .topics
                .iter()
                .flat_map(|t| {
                    let n = t.name.as_ref().unwrap().0.as_str().to_string();
                    t.partitions
                        .iter()
                        .map(move |p| (n.clone(), p.partition_index, p.leader_id.0))
                })
                .collect();
            expected.sort();
            // Two partitions a page, following the cursor to the end.
            let mut got = Vec::new();
            let mut unknown = Vec::new();
            let mut cursor = None;
            for page in 0.. {
                assert!(page < 20, "DescribeTopicPartitions v{v}: the cursor ends");
                let mut r = DescribeTopicPartitionsRequest::default();
                r.topics = ["mx-grow", "mx-nope", TOPIC]
                    .iter()
                    .map(|t| {
                        let mut x = TopicRequest::default();
                        x.name = name(t);
                        x
                    })
                    .collect();
                r.response_partition_limit = 2;
                r.cursor = cursor.take();
                let ResponseKind::DescribeTopicPartitions(resp) = conn.call(api, v, &r) else {
                    panic!()
                };
                let in_page: usize = resp.topics.iter().map(|t| t.partitions.len()).sum();
                assert!(
                    in_page <= 2,
                    "DescribeTopicPartitions v{v}: the limit holds"
                );
                for t in &resp.topics {
                    let n = t.name.as_ref().unwrap().0.as_str().to_string();
                    if t.error_code != 0 {
                        unknown.push((n.clone(), t.error_code));
                    }
                    for p in &t.partitions {
                        got.push((n.clone(), p.partition_index, p.leader_id.0));
                    }
                }
                match resp.next_cursor {
                    Some(c) => {
                        let mut next = Cursor::default();
                        next.topic_name = c.topic_name;
                        next.partition_index = c.partition_index;
                        cursor = Some(next);
                    }
                    None => break,
                }
            }
            assert!(expected.len() > 2, "more than one page");
            assert_eq!(
                got, expected,
                "DescribeTopicPartitions v{v}: every partition once, in order"
            );
            assert_eq!(unknown, vec![("mx-nope".to_string(), 3)]);
        }
        ApiKey::ElectLeaders => {
            use elect_leaders_request::*;
            let mut t = TopicPartitions::default();
            t.topic = name(TOPIC);
            t.partitions = vec![0, 99];
            let mut r = ElectLeadersRequest::default();
            // v0 has no type: always preferred. From v1, ask for an unclean election.
            r.election_type = i8::from(v >= 1);
            r.topic_partitions = Some(vec![t]);
            r.timeout_ms = 10_000;
            let ResponseKind::ElectLeaders(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "ElectLeaders v{v}");
            let codes: Vec<(i32, i16)> = resp.replica_election_results[0]
                .partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
                .collect();
            // The partition has its preferred leader: nothing to do; 99 does not exist.
            assert_eq!(codes, vec![(0, 84), (99, 3)], "ElectLeaders v{v}");
            // No partitions named: every partition, reporting only elections that happened.
            r.topic_partitions = None;
            let ResponseKind::ElectLeaders(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "ElectLeaders v{v} of every partition");
            assert!(
                resp.replica_election_results
                    .iter()
                    .flat_map(|t| &t.partition_result)
                    .all(|p| p.error_code != 84),
                "ElectLeaders v{v}: ELECTION_NOT_NEEDED is left out"
            );
        }
        ApiKey::AlterPartitionReassignments => {
            use alter_partition_reassignments_request::*;
            // The partition's replicas as they are: a target equal to them is nothing to do.
            let mut mt = metadata_request::MetadataRequestTopic::default();
            mt.name = Some(name(TOPIC));
            let mut mr = metadata_request::MetadataRequest::default();
            mr.topics = Some(vec![mt]);
            let ResponseKind::Metadata(m) = conn.call(ApiKey::Metadata, 12, &mr) else {
                panic!()
            };
            let replicas = m.topics[0].partitions[0].replica_nodes.clone();
            let part = |index: i32, replicas: Option<Vec<BrokerId>>| {
                let mut p = ReassignablePartition::default();
                p.partition_index = index;
                p.replicas = replicas;
                p
            };
            let mut t = ReassignableTopic::default();
            t.name = name(TOPIC);
            t.partitions = vec![
                part(0, Some(replicas.clone())),
                part(0, None),
                part(0, Some(vec![BrokerId(99)])),
                part(99, Some(replicas.clone())),
            ];
            let mut r = AlterPartitionReassignmentsRequest::default();
            r.timeout_ms = 10_000;
            // v1 may refuse a change of replication factor (KIP-860); none is asked for here.
            if v >= 1 {
                r.allow_replication_factor_change = false;
            }
            r.topics = vec![t];
            let ResponseKind::AlterPartitionReassignments(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "AlterPartitionReassignments v{v}");
            assert_eq!(resp.allow_replication_factor_change, v < 1);
            let codes: Vec<(i32, i16)> = resp.responses[0]
                .partitions
                .iter()
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            // No-op target; cancel with nothing under way (NO_REASSIGNMENT_IN_PROGRESS); an
            // unregistered broker (INVALID_REPLICA_ASSIGNMENT); an unknown partition.
            assert_eq!(
                codes,
                vec![(0, 0), (0, 85), (0, 39), (99, 3)],
                "AlterPartitionReassignments v{v}"
            );
        }
        ApiKey::ListPartitionReassignments => {
            use list_partition_reassignments_request::*;
            let mut t = ListPartitionReassignmentsTopics::default();
            t.name = name(TOPIC);
            t.partition_indexes = vec![0, 99];
            let mut r = ListPartitionReassignmentsRequest::default();
            r.timeout_ms = 10_000;
            r.topics = Some(vec![t]);
            let ResponseKind::ListPartitionReassignments(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "ListPartitionReassignments v{v}");
            // Nothing is moving: no partition is listed (unknown ones neither).
            assert!(resp.topics.is_empty(), "ListPartitionReassignments v{v}");
            r.topics = None;
            let ResponseKind::ListPartitionReassignments(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert!(
                resp.topics.is_empty(),
                "ListPartitionReassignments v{v} of all"
            );
        }
        ApiKey::ConsumerGroupHeartbeat => {
            use consumer_group_heartbeat_request::*;
            let mut r = ConsumerGroupHeartbeatRequest::default();
            r.group_id = GroupId(s(&format!("mx-cgh-v{v}")));
            // v0: the coordinator names the member; v1: the client does.
            if v >= 1 {
                r.member_id = s("mx-member-v1");
            }
            r.member_epoch = 0;
            r.instance_id = Some(s(&format!("mx-instance-v{v}")));
            r.rack_id = Some(s("mx-rack"));
            r.rebalance_timeout_ms = 10_000;
            r.subscribed_topic_names = Some(vec![name(TOPIC)]);
            if v >= 1 {
                r.subscribed_topic_regex = Some(s("mx-gr.w"));
            }
            r.server_assignor = Some(s("range"));
            r.topic_partitions = Some(vec![]);
            let ResponseKind::ConsumerGroupHeartbeat(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "ConsumerGroupHeartbeat v{v}: {resp:?}");
            assert_eq!(resp.member_epoch, 1, "ConsumerGroupHeartbeat v{v}");
            assert!(resp.heartbeat_interval_ms > 0);
            let a = resp.assignment.expect("a join gets its assignment");
            let matrix = a
                .topic_partitions
                .iter()
                .find(|t| t.topic_id == world.topic_id)
                .expect("the subscribed topic, by id");
            assert_eq!(matrix.partitions, vec![0], "ConsumerGroupHeartbeat v{v}");
            if v >= 1 {
                assert_eq!(a.topic_partitions.len(), 2, "v1: the regex adds mx-grow");
            }
            // The next heartbeat, at the member's epoch, owning what it was given.
            r.member_id = resp.member_id.unwrap();
            r.member_epoch = 1;
            r.instance_id = None;
            r.rack_id = None;
            r.rebalance_timeout_ms = -1;
            r.subscribed_topic_names = None;
            r.subscribed_topic_regex = None;
            r.server_assignor = None;
            r.topic_partitions = Some(
                a.topic_partitions
                    .iter()
                    .map(|t| {
                        let mut o = TopicPartitions::default();
                        o.topic_id = t.topic_id;
                        o.partitions = t.partitions.clone();
                        o
                    })
                    .collect(),
            );
            let ResponseKind::ConsumerGroupHeartbeat(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                (resp.error_code, resp.member_epoch),
                (0, 1),
                "ConsumerGroupHeartbeat v{v}"
            );
        }
        ApiKey::ConsumerGroupDescribe => {
            let mut r = consumer_group_describe_request::ConsumerGroupDescribeRequest::default();
            r.group_ids = vec![
                GroupId(s(&format!("mx-cgh-v{v}"))),
                GroupId(s("mx-never-seen")),
            ];
            r.include_authorized_operations = true;
            let ResponseKind::ConsumerGroupDescribe(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let g = &resp.groups[0];
            assert_eq!(g.error_code, 0, "ConsumerGroupDescribe v{v}: {g:?}");
            assert_eq!(
                g.group_state.as_str(),
                "Stable",
                "ConsumerGroupDescribe v{v}"
            );
            assert_eq!(
                g.assignor_name.as_str(),
                "range",
                "ConsumerGroupDescribe v{v}"
            );
            assert_eq!((g.group_epoch, g.assignment_epoch), (1, 1));
            assert_eq!(
                g.authorized_operations, 328,
                "ConsumerGroupDescribe v{v} ops"
            );
            let m = &g.members[0];
            assert_eq!(m.rack_id.as_deref(), Some("mx-rack"));
            assert_eq!(
                m.instance_id.as_deref(),
                Some(format!("mx-instance-v{v}").as_str())
            );
            assert_eq!(m.client_id.as_str(), "version-matrix");
            assert_eq!(m.assignment, m.target_assignment);
            assert!(
                m.assignment
                    .topic_partitions
                    .iter()
                    .any(|t| t.topic_name.0.as_str() == TOPIC)
            );
            if v >= 1 {
                assert_eq!(m.member_type, 1, "v1: a consumer-protocol member");
            }
            assert_eq!(resp.groups[1].error_code, 69, "GROUP_ID_NOT_FOUND");
        }
        ApiKey::CreateAcls => {
            // The matrix's brokers run without an authorizer: SECURITY_DISABLED per creation.
            let mut c = create_acls_request::AclCreation::default();
            c.resource_type = 2;
            c.resource_name = s("mx-topic");
            c.resource_pattern_type = 3;
            c.principal = s("User:alice");
            c.host = s("*");
            c.operation = 3;
            c.permission_type = 3;
            let mut r = create_acls_request::CreateAclsRequest::default();
            r.creations = vec![c];
            let ResponseKind::CreateAcls(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.results.len(), 1, "CreateAcls v{v}");
            assert_eq!(
                resp.results[0].error_code, 54,
                "CreateAcls v{v}: SECURITY_DISABLED"
            );
        }
        ApiKey::DescribeAcls => {
            let mut r = describe_acls_request::DescribeAclsRequest::default();
            r.resource_type_filter = 1;
            r.pattern_type_filter = 1;
            r.operation = 1;
            r.permission_type = 1;
            let ResponseKind::DescribeAcls(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 54, "DescribeAcls v{v}: SECURITY_DISABLED");
        }
        ApiKey::DeleteAcls => {
            let mut f = delete_acls_request::DeleteAclsFilter::default();
            f.resource_type_filter = 1;
            f.pattern_type_filter = 1;
            f.operation = 1;
            f.permission_type = 1;
            let mut r = delete_acls_request::DeleteAclsRequest::default();
            r.filters = vec![f];
            let ResponseKind::DeleteAcls(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.filter_results.len(), 1, "DeleteAcls v{v}");
            assert_eq!(
                resp.filter_results[0].error_code, 54,
                "DeleteAcls v{v}: SECURITY_DISABLED"
            );
        }
        ApiKey::AlterUserScramCredentials => {
            let mut u = alter_user_scram_credentials_request::ScramCredentialUpsertion::default();
            u.name = s("mx-user");
            u.mechanism = 1;
            u.iterations = 4096;
            u.salt = Bytes::from_static(&[7; 16]);
            u.salted_password = Bytes::from_static(&[9; 32]);
            let mut r =
                alter_user_scram_credentials_request::AlterUserScramCredentialsRequest::default();
            r.upsertions = vec![u];
            let ResponseKind::AlterUserScramCredentials(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.results.len(), 1, "AlterUserScramCredentials v{v}");
            // A standalone broker stores it; a cluster through the metadata quorum.
            assert_eq!(
                resp.results[0].error_code, 0,
                "AlterUserScramCredentials v{v}"
            );
        }
        ApiKey::AlterClientQuotas => {
            let mut entity = alter_client_quotas_request::EntityData::default();
            entity.entity_type = s("client-id");
            entity.entity_name = Some(s(&format!("mx-client-{v}")));
            let mut op = alter_client_quotas_request::OpData::default();
            op.key = s("producer_byte_rate");
            op.value = 1_048_576.0;
            let mut e = alter_client_quotas_request::EntryData::default();
            e.entity = vec![entity];
            e.ops = vec![op];
            let mut r = alter_client_quotas_request::AlterClientQuotasRequest::default();
            r.entries = vec![e];
            let ResponseKind::AlterClientQuotas(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.entries.len(), 1, "AlterClientQuotas v{v}");
            assert_eq!(resp.entries[0].error_code, 0, "AlterClientQuotas v{v}");
        }
        ApiKey::DescribeClientQuotas => {
            let mut c = describe_client_quotas_request::ComponentData::default();
            c.entity_type = s("client-id");
            c.match_type = 2;
            let mut r = describe_client_quotas_request::DescribeClientQuotasRequest::default();
            r.components = vec![c];
            let ResponseKind::DescribeClientQuotas(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "DescribeClientQuotas v{v}");
            assert!(resp.entries.is_some(), "DescribeClientQuotas v{v}");
        }
        ApiKey::DescribeUserScramCredentials => {
            let mut name = describe_user_scram_credentials_request::UserName::default();
            name.name = s("mx-nobody");
            let mut r =
                describe_user_scram_credentials_request::DescribeUserScramCredentialsRequest::default();
            r.users = Some(vec![name]);
            let ResponseKind::DescribeUserScramCredentials(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "DescribeUserScramCredentials v{v}");
            assert_eq!(resp.results.len(), 1);
            assert_eq!(resp.results[0].error_code, 91, "RESOURCE_NOT_FOUND");
        }
        ApiKey::SaslHandshake => {
            // A plaintext listener has no SASL: the handshake is refused as out of place and
            // the connection stays usable (the next case goes over it).
            let mut r = sasl_handshake_request::SaslHandshakeRequest::default();
            r.mechanism = s("PLAIN");
            let ResponseKind::SaslHandshake(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.error_code, 34,
                "SaslHandshake v{v}: ILLEGAL_SASL_STATE"
            );
        }
        ApiKey::SaslAuthenticate => {
            let mut r = sasl_authenticate_request::SaslAuthenticateRequest::default();
            r.auth_bytes = Bytes::from_static(b"\0user\0password");
            let ResponseKind::SaslAuthenticate(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.error_code, 34,
                "SaslAuthenticate v{v}: ILLEGAL_SASL_STATE"
            );
        }
        ApiKey::DescribeCluster => {
            let mut r = describe_cluster_request::DescribeClusterRequest::default();
            r.include_cluster_authorized_operations = true;
            let ResponseKind::DescribeCluster(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "DescribeCluster v{v}");
            assert_eq!(
                resp.brokers.len(),
                world.brokers,
                "DescribeCluster v{v} brokers"
            );
            assert_eq!(
                resp.cluster_authorized_operations, 8096,
                "DescribeCluster v{v}"
            );
            if v >= 2 {
                // KIP-1073: fenced brokers on request, each marked; all are live here.
                r.include_fenced_brokers = true;
                let ResponseKind::DescribeCluster(resp) = conn.call(api, v, &r) else {
                    panic!()
                };
                assert_eq!(resp.brokers.len(), world.brokers, "DescribeCluster v{v}");
                assert!(resp.brokers.iter().all(|b| !b.is_fenced));
            }
        }
        ApiKey::UnregisterBroker => {
            let mut r = unregister_broker_request::UnregisterBrokerRequest::default();
            r.broker_id = BrokerId(99);
            let ResponseKind::UnregisterBroker(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.error_code, 102,
                "UnregisterBroker v{v}: BROKER_ID_NOT_REGISTERED"
            );
            assert!(resp.error_message.is_some());
        }
        ApiKey::AddPartitionsToTxn => {
            use add_partitions_to_txn_request::*;
            let id = format!("mx-apt-v{v}");
            let producer = init_txn(conn, &id);
            let mut t = AddPartitionsToTxnTopic::default();
            t.name = name(TOPIC);
            t.partitions = vec![0];
            let mut r = AddPartitionsToTxnRequest::default();
            if v <= 3 {
                r.v3_and_below_transactional_id = TransactionalId(s(&id));
                r.v3_and_below_producer_id = producer.0;
                r.v3_and_below_producer_epoch = producer.1;
                r.v3_and_below_topics = vec![t];
            } else {
                // Between brokers: KIP-890's check of a partition the transaction lacks.
                let mut x = AddPartitionsToTxnTransaction::default();
                x.transactional_id = TransactionalId(s(&id));
                x.producer_id = producer.0;
                x.producer_epoch = producer.1;
                x.verify_only = true;
                x.topics = vec![t];
                r.transactions = vec![x];
            }
            let ResponseKind::AddPartitionsToTxn(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            if v <= 3 {
                let code = resp.results_by_topic_v3_and_below[0].results_by_partition[0]
                    .partition_error_code;
                assert_eq!(code, 0, "AddPartitionsToTxn v{v}");
                assert_eq!(end_txn(conn, &id, producer, false), 0, "abort after v{v}");
            } else {
                assert_eq!(resp.error_code, 0, "AddPartitionsToTxn v{v}");
                let code = resp.results_by_transaction[0].topic_results[0].results_by_partition[0]
                    .partition_error_code;
                assert_eq!(code, 48, "AddPartitionsToTxn v{v}: INVALID_TXN_STATE");
            }
        }
        ApiKey::AddOffsetsToTxn => {
            let id = format!("mx-aot-v{v}");
            let producer = init_txn(conn, &id);
            let mut r = add_offsets_to_txn_request::AddOffsetsToTxnRequest::default();
            r.transactional_id = TransactionalId(s(&id));
            r.producer_id = producer.0;
            r.producer_epoch = producer.1;
            r.group_id = GroupId(s("mx-txn-group"));
            let ResponseKind::AddOffsetsToTxn(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "AddOffsetsToTxn v{v}");
            assert_eq!(end_txn(conn, &id, producer, false), 0, "abort after v{v}");
        }
        ApiKey::EndTxn => {
            let id = format!("mx-end-v{v}");
            let producer = init_txn(conn, &id);
            add_matrix_partition(conn, &id, producer);
            let mut r = end_txn_request::EndTxnRequest::default();
            r.transactional_id = TransactionalId(s(&id));
            r.producer_id = producer.0;
            r.producer_epoch = producer.1;
            r.committed = true;
            let ResponseKind::EndTxn(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "EndTxn v{v}");
            // v5+ (transaction version 2): the epoch is bumped and the client told it.
            let next = if v >= 5 {
                (producer.0.0, producer.1 + 1)
            } else {
                (-1, -1)
            };
            assert_eq!(
                (resp.producer_id.0, resp.producer_epoch),
                next,
                "EndTxn v{v}"
            );
            // A stale epoch is fenced (INVALID_PRODUCER_EPOCH before v2).
            r.producer_epoch = producer.1 - 1;
            let ResponseKind::EndTxn(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let fenced = if v >= 2 { 90 } else { 47 };
            assert_eq!(resp.error_code, fenced, "EndTxn v{v} with an old epoch");
        }
        ApiKey::WriteTxnMarkers => {
            use write_txn_markers_request::*;
            let mut t = WritableTxnMarkerTopic::default();
            t.name = name(TOPIC);
            t.partition_indexes = vec![0];
            let mut m = WritableTxnMarker::default();
            m.producer_id = ProducerId(987_654);
            m.producer_epoch = 3;
            m.transaction_result = false;
            m.coordinator_epoch = 1;
            m.topics = vec![t];
            let mut r = WriteTxnMarkersRequest::default();
            r.markers = vec![m];
            let ResponseKind::WriteTxnMarkers(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let m = &resp.markers[0];
            assert_eq!(m.producer_id.0, 987_654, "WriteTxnMarkers v{v}");
            assert_eq!(
                m.topics[0].partitions[0].error_code, 0,
                "WriteTxnMarkers v{v}"
            );
        }
        ApiKey::TxnOffsetCommit => {
            use txn_offset_commit_request::*;
            let id = format!("mx-toc-v{v}");
            let producer = init_txn(&mut world.txn, &id);
            let mut add = add_offsets_to_txn_request::AddOffsetsToTxnRequest::default();
            add.transactional_id = TransactionalId(s(&id));
            add.producer_id = producer.0;
            add.producer_epoch = producer.1;
            add.group_id = GroupId(s("mx-txn-group"));
            let ResponseKind::AddOffsetsToTxn(added) =
                world.txn.call(ApiKey::AddOffsetsToTxn, 3, &add)
            else {
                panic!()
            };
            assert_eq!(added.error_code, 0);
            let mut p = TxnOffsetCommitRequestPartition::default();
            p.partition_index = 0;
            p.committed_offset = 2;
            p.committed_leader_epoch = if v >= 2 { 0 } else { -1 };
            p.committed_metadata = Some(s("txn"));
            let mut t = TxnOffsetCommitRequestTopic::default();
            t.name = name(TOPIC);
            t.partitions = vec![p];
            let mut r = TxnOffsetCommitRequest::default();
            r.transactional_id = TransactionalId(s(&id));
            r.group_id = GroupId(s("mx-txn-group"));
            r.producer_id = producer.0;
            r.producer_epoch = producer.1;
            r.generation_id = -1;
            r.topics = vec![t];
            let ResponseKind::TxnOffsetCommit(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(
                resp.topics[0].partitions[0].error_code, 0,
                "TxnOffsetCommit v{v}"
            );
            assert_eq!(end_txn(&mut world.txn, &id, producer, true), 0);
        }
        ApiKey::DescribeTransactions => {
            let mut r = describe_transactions_request::DescribeTransactionsRequest::default();
            r.transactional_ids = vec![
                TransactionalId(s("mx-end-v3")),
                TransactionalId(s("mx-unknown")),
            ];
            let ResponseKind::DescribeTransactions(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            let known = &resp.transaction_states[0];
            assert_eq!(known.error_code, 0, "DescribeTransactions v{v}");
            assert!(
                ["PrepareCommit", "CompleteCommit"].contains(&known.transaction_state.as_str()),
                "DescribeTransactions v{v}: {}",
                known.transaction_state.as_str()
            );
            assert_eq!(known.transaction_timeout_ms, 60_000);
            assert_eq!(
                resp.transaction_states[1].error_code, 105,
                "DescribeTransactions v{v}: TRANSACTIONAL_ID_NOT_FOUND"
            );
        }
        ApiKey::ListTransactions => {
            let mut r = list_transactions_request::ListTransactionsRequest::default();
            r.state_filters = vec![s("CompleteCommit"), s("PrepareCommit"), s("Bogus")];
            if v >= 1 {
                r.duration_filter = 0;
            }
            let ResponseKind::ListTransactions(resp) = conn.call(api, v, &r) else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "ListTransactions v{v}");
            assert_eq!(
                resp.unknown_state_filters
                    .iter()
                    .map(|f| f.as_str())
                    .collect::<Vec<_>>(),
                ["Bogus"]
            );
            assert!(
                resp.transaction_states
                    .iter()
                    .any(|t| t.transactional_id.0.as_str() == "mx-end-v0"),
                "ListTransactions v{v}"
            );
        }
        ApiKey::DescribeQuorum => {
            let ask = |topic: &str| {
                let mut p = describe_quorum_request::PartitionData::default();
                p.partition_index = 0;
                let mut t = describe_quorum_request::TopicData::default();
                t.topic_name = TopicName(s(topic));
                t.partitions = vec![p];
                let mut r = describe_quorum_request::DescribeQuorumRequest::default();
                r.topics = vec![t];
                r
            };
            let ResponseKind::DescribeQuorum(resp) = conn.call(api, v, &ask("__cluster_metadata"))
            else {
                panic!()
            };
            assert_eq!(resp.error_code, 0, "DescribeQuorum v{v}");
            let p = &resp.topics[0].partitions[0];
            assert_eq!(p.error_code, 0, "DescribeQuorum v{v}");
            // Every node here is a voter (combined), or the standalone broker is its own.
            assert_eq!(
                p.current_voters.len(),
                world.brokers,
                "DescribeQuorum v{v} voters"
            );
            let leader = p
                .current_voters
                .iter()
                .find(|r| r.replica_id == p.leader_id)
                .expect("the leader is a voter");
            assert!(leader.log_end_offset >= 0);
            if v >= 1 {
                assert!(
                    leader.last_fetch_timestamp > 0,
                    "DescribeQuorum v{v}: times"
                );
            }
            let ResponseKind::DescribeQuorum(resp) = conn.call(api, v, &ask("matrix")) else {
                panic!()
            };
            assert_eq!(
                resp.topics[0].partitions[0].error_code, 3,
                "DescribeQuorum v{v}: only the metadata log"
            );
        }
        other => panic!(
            "{other:?} v{v} is advertised but the version matrix has no request for it: add one"
        ),
    }
}

/// The partition count CreatePartitions vN asks `mx-grow` for.
fn t_count(v: i16) -> usize {
    2 + v as usize
}

fn assert_not_unknown(api: ApiKey, v: i16, code: i16) {
    assert_ne!(
        code, UNKNOWN_SERVER_ERROR,
        "{api:?} v{v}: UNKNOWN_SERVER_ERROR"
    );
}

/// The order APIs are walked in: Metadata first (it learns the topic id), CreateTopics before
/// DeleteTopics, OffsetCommit before OffsetFetch, JoinGroup before OffsetCommit,
/// DescribeGroups and ListGroups.
fn rank(api: ApiKey) -> u8 {
    match api {
        ApiKey::Metadata => 0,
        ApiKey::JoinGroup => 1,
        ApiKey::CreateTopics | ApiKey::OffsetCommit => 2,
        _ => 3,
    }
}

/// Which node a request goes to: partition requests to the leader of `matrix-0`, group
/// requests to the coordinator (a cluster test uses one `__consumer_offsets` partition, so one
/// coordinator for every group), anything else to the bootstrap node.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Bootstrap,
    Leader,
    Coordinator,
    TxnCoordinator,
}

fn role(api: ApiKey) -> Role {
    match api {
        ApiKey::Produce
        | ApiKey::Fetch
        | ApiKey::ListOffsets
        | ApiKey::OffsetForLeaderEpoch
        | ApiKey::DescribeLogDirs
        | ApiKey::DescribeProducers
        | ApiKey::WriteTxnMarkers
        | ApiKey::DeleteRecords => Role::Leader,
        ApiKey::AddPartitionsToTxn
        | ApiKey::AddOffsetsToTxn
        | ApiKey::EndTxn
        | ApiKey::DescribeTransactions
        | ApiKey::ListTransactions => Role::TxnCoordinator,
        ApiKey::OffsetCommit
        | ApiKey::OffsetFetch
        | ApiKey::JoinGroup
        | ApiKey::Heartbeat
        | ApiKey::LeaveGroup
        | ApiKey::SyncGroup
        | ApiKey::DescribeGroups
        | ApiKey::ListGroups
        | ApiKey::OffsetDelete
        | ApiKey::ConsumerGroupHeartbeat
        | ApiKey::ConsumerGroupDescribe
        | ApiKey::TxnOffsetCommit
        | ApiKey::DeleteGroups => Role::Coordinator,
        _ => Role::Bootstrap,
    }
}

/// Walks the matrix; returns how many (API, version) pairs it sent. `metrics_ports`: every
/// node's, whose encode errors must all be 0.
fn walk(nodes: &Nodes, metrics_ports: &[u16]) -> usize {
    let brokers = metrics_ports.len();
    let mut conns = [
        (Role::Bootstrap, Conn::open(&nodes.bootstrap)),
        (Role::Leader, Conn::open(&nodes.leader)),
        (Role::Coordinator, Conn::open(&nodes.coordinator)),
        (Role::TxnCoordinator, Conn::open(&nodes.txn_coordinator)),
    ];
    let conn = &mut conns[0].1;
    let ResponseKind::ApiVersions(av) = conn.call(
        ApiKey::ApiVersions,
        3,
        &api_versions_request::ApiVersionsRequest::default(),
    ) else {
        panic!()
    };
    // Advertised is exactly the table (Produce: from v0, though v0-2 are refused).
    for k in &av.api_keys {
        let api = ApiKey::try_from(k.api_key).unwrap();
        let (min, max) = strata_server::handler::supported_versions(api).unwrap();
        let min = if api == ApiKey::Produce { 0 } else { min };
        assert_eq!((k.min_version, k.max_version), (min, max), "{api:?}");
    }
    let mut pairs: Vec<(ApiKey, i16)> = av
        .api_keys
        .iter()
        .flat_map(|k| {
            let api = ApiKey::try_from(k.api_key).unwrap();
            let (min, max) = strata_server::handler::supported_versions(api).unwrap();
            (min..=max).map(move |v| (api, v))
        })
        .collect();
    pairs.sort_by_key(|(api, v)| (rank(*api), *api as i16, *v));
    let mut world = World {
        topic_id: Uuid::nil(),
        committed: BTreeMap::new(),
        brokers,
        txn: Conn::open(&nodes.txn_coordinator),
    };
    for (api, v) in &pairs {
        let conn = &mut conns.iter_mut().find(|(r, _)| *r == role(*api)).unwrap().1;
        check(conn, &mut world, *api, *v);
    }
    for port in metrics_ports {
        assert_eq!(encode_errors(*port), 0.0, "responses that did not encode");
    }
    pairs.len()
}

/// `strata_response_encode_errors_total` summed over APIs; panics if the broker does not
/// export the counter at all (so a renamed metric cannot make the check pass).
fn encode_errors(metrics_port: u16) -> f64 {
    let mut sock = TcpStream::connect(("127.0.0.1", metrics_port)).unwrap();
    sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut body = String::new();
    sock.read_to_string(&mut body).unwrap();
    assert!(
        body.contains("# TYPE strata_response_encode_errors counter"),
        "the broker exports strata_response_encode_errors_total"
    );
    common::Broker::metric(metrics_port, "strata_response_encode_errors_total")
}

/// Where the matrix sends its requests.
struct Nodes {
    bootstrap: String,
    leader: String,
    coordinator: String,
    txn_coordinator: String,
}

/// What the matrix needs before it starts: the topic with `RECORDS` records, a topic of one
/// partition for CreatePartitions to grow, and the nodes that lead `matrix-0` and coordinate
/// the groups.
fn setup(bootstrap: &str, replication_factor: i16) -> Nodes {
    let mut conn = Conn::open(bootstrap);
    for (topic, partitions) in [(TOPIC, 1), ("mx-grow", 1)] {
        use create_topics_request::*;
        let mut t = CreatableTopic::default();
        t.name = name(topic);
        t.num_partitions = partitions;
        t.replication_factor = replication_factor;
        let mut r = CreateTopicsRequest::default();
        r.topics = vec![t];
        r.timeout_ms = 10_000;
        let ResponseKind::CreateTopics(resp) = conn.call(ApiKey::CreateTopics, 7, &r) else {
            panic!()
        };
        assert_eq!(resp.topics[0].error_code, 0, "creating {topic}");
    }
    let wait = Duration::from_secs(30);
    let leader = common::cluster::wait_for("the topic's leader", wait, || {
        let mut t = metadata_request::MetadataRequestTopic::default();
        t.name = Some(name(TOPIC));
        let mut r = metadata_request::MetadataRequest::default();
        r.topics = Some(vec![t]);
        let ResponseKind::Metadata(m) = conn.call(ApiKey::Metadata, 12, &r) else {
            panic!()
        };
        let id = m.topics.first()?.partitions.first()?.leader_id;
        let b = m.brokers.iter().find(|b| b.node_id == id)?;
        Some(format!("{}:{}", b.host.as_str(), b.port))
    });
    let coordinator = common::cluster::wait_for("the group coordinator", wait, || {
        let mut r = find_coordinator_request::FindCoordinatorRequest::default();
        r.key = s("mx-group");
        let ResponseKind::FindCoordinator(c) = conn.call(ApiKey::FindCoordinator, 3, &r) else {
            panic!()
        };
        (c.error_code == 0).then(|| format!("{}:{}", c.host.as_str(), c.port))
    });
    let txn_coordinator = common::cluster::wait_for("the transaction coordinator", wait, || {
        let mut r = find_coordinator_request::FindCoordinatorRequest::default();
        r.key = s("mx-txn");
        r.key_type = 1;
        let ResponseKind::FindCoordinator(c) = conn.call(ApiKey::FindCoordinator, 3, &r) else {
            panic!()
        };
        let addr = format!("{}:{}", c.host.as_str(), c.port);
        // Its partition must be loaded too: an InitProducerId answers once it is.
        (c.error_code == 0 && {
            let mut init = init_producer_id_request::InitProducerIdRequest::default();
            init.transactional_id = Some(TransactionalId(s("mx-txn")));
            init.transaction_timeout_ms = 60_000;
            let ResponseKind::InitProducerId(r) =
                Conn::open(&addr).call(ApiKey::InitProducerId, 4, &init)
            else {
                panic!()
            };
            r.error_code == 0
        })
        .then_some(addr)
    });
    let mut to_leader = Conn::open(&leader);
    common::cluster::wait_for("an acks=all produce", wait, || {
        let mut r = produce_request(9);
        r.acks = -1;
        let ResponseKind::Produce(resp) = to_leader.call(ApiKey::Produce, 9, &r) else {
            panic!()
        };
        (resp.responses[0].partition_responses[0].error_code == 0).then_some(())
    });
    for _ in 1..RECORDS {
        to_leader.call(ApiKey::Produce, 9, &produce_request(9));
    }
    Nodes {
        bootstrap: bootstrap.to_string(),
        leader,
        coordinator,
        txn_coordinator,
    }
}

#[test]
fn every_advertised_version_works_on_a_single_broker() {
    let metrics_port = common::free_port();
    let b = common::Broker::start(&[&format!("metrics.listen=127.0.0.1:{metrics_port}")]);
    let nodes = setup(&b.bootstrap(), 1);
    let pairs = walk(&nodes, &[metrics_port]);
    println!("version matrix, single broker: {pairs} (API, version) pairs passed");
}

#[test]
fn every_advertised_version_works_on_a_cluster_node() {
    let c = common::cluster::Cluster::start(common::cluster::Layout {
        brokers: 3,
        extra: vec![
            "offsets.topic.num.partitions=1".into(),
            "transaction.state.log.num.partitions=1".into(),
        ],
        ..Default::default()
    });
    c.wait_live(3);
    let nodes = setup(&c.brokers[0].bootstrap(), 3);
    let pairs = walk(&nodes, &c.metrics_ports);
    println!("version matrix, cluster node: {pairs} (API, version) pairs passed");
}
