//! Versions below the codec crate's floor that old clients and tools still send: ListOffsets v0
//! (Burrow), OffsetCommit v0-1 (Sarama's default), OffsetFetch v0, DescribeConfigs v0,
//! CreateTopics v0-1 and DeleteTopics v0. None involves the legacy message format, so Strata
//! serves them, though Apache Kafka 4.0 removed them (KIP-896).
//!
//! Each is decoded here into the request of the lowest version the crate knows (its *modern
//! equivalent*), handled by the ordinary handler at that version, and its response encoded here
//! in the old layout. Layouts, from Kafka's protocol guide (all non-flexible, request header v1,
//! response header v0):
//!
//! ```text
//! ListOffsets v0      req  replica_id:i32 [topic:str [partition:i32 timestamp:i64 max_num_offsets:i32]]
//!                     resp [topic:str [partition:i32 error_code:i16 [old_style_offset:i64]]]
//! OffsetCommit v0     req  group_id:str [topic:str [partition:i32 offset:i64 metadata:str?]]
//! OffsetCommit v1     req  group_id:str generation_id:i32 member_id:str
//!                          [topic:str [partition:i32 offset:i64 timestamp:i64 metadata:str?]]
//!                     resp (v0-1) [topic:str [partition:i32 error_code:i16]]  (= v2)
//! OffsetFetch v0      req and resp as v1
//! DescribeConfigs v0  req  [resource_type:i8 resource_name:str [config_name:str]?]
//!                     resp throttle_ms:i32 [error_code:i16 error_message:str? resource_type:i8
//!                          resource_name:str [name:str value:str? read_only:bool is_default:bool
//!                          is_sensitive:bool]]
//! CreateTopics v0     req  [name:str partitions:i32 replication:i16 [partition:i32 [broker:i32]]
//!                          [config:str value:str?]] timeout_ms:i32          (v1: + validate_only:bool = v2)
//!                     resp v0 [name:str error_code:i16]; v1 [name:str error_code:i16 error_message:str?]
//! DeleteTopics v0     req  as v1; resp [name:str error_code:i16]
//! ```
//!
//! Decoding is bounded like the crate's: every array length is checked against the bytes left
//! before anything is allocated, and a short or malformed body is an error, never a panic.

use bytes::{BufMut, Bytes, BytesMut};

use super::reader::Reader;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

/// A legacy body that does not decode or a response that does not fit the old layout.
#[derive(Debug, thiserror::Error)]
#[error("{api:?} v{version}: {reason}")]
pub struct LegacyError {
    api: ApiKey,
    version: i16,
    reason: String,
}

/// The version the handler sees for a legacy `version` of `api`, or `None` when the crate
/// handles that version itself.
pub fn modern_equivalent(api: ApiKey, version: i16) -> Option<i16> {
    let floor = api.valid_versions().min;
    if version >= floor {
        return None;
    }
    match (api, version) {
        (ApiKey::ListOffsets, 0)
        | (ApiKey::OffsetCommit, 0..=1)
        | (ApiKey::OffsetFetch, 0)
        | (ApiKey::DescribeConfigs, 0)
        | (ApiKey::CreateTopics, 0..=1)
        | (ApiKey::DeleteTopics, 0) => Some(floor),
        _ => None,
    }
}

/// Decodes the body of a legacy request into its modern equivalent.
pub fn decode(api: ApiKey, version: i16, body: &mut Bytes) -> Result<RequestKind, LegacyError> {
    let err = |reason: String| LegacyError {
        api,
        version,
        reason,
    };
    let Some(modern) = modern_equivalent(api, version) else {
        return Err(err("not a legacy version".into()));
    };
    let mut r = Reader(body);
    let request = match api {
        ApiKey::ListOffsets => list_offsets_request(&mut r),
        ApiKey::OffsetCommit => offset_commit_request(&mut r, version),
        ApiKey::CreateTopics if version == 0 => create_topics_v0_request(&mut r),
        ApiKey::DescribeConfigs => describe_configs_v0_request(&mut r),
        // Same layout as the modern equivalent.
        ApiKey::OffsetFetch | ApiKey::CreateTopics | ApiKey::DeleteTopics => {
            RequestKind::decode(api, r.0, modern).map_err(|e| e.to_string())
        }
        _ => Err("not a legacy version".into()),
    };
    request.map_err(err)
}

/// Encodes `response` (built by the handler at the modern equivalent) in the layout of the
/// legacy `version`.
pub fn encode(
    response: &ResponseKind,
    version: i16,
    buf: &mut BytesMut,
) -> Result<(), LegacyError> {
    let api = api_of(response);
    let err = |reason: String| LegacyError {
        api,
        version,
        reason,
    };
    let Some(modern) = modern_equivalent(api, version) else {
        return Err(err("not a legacy version".into()));
    };
    match response {
        ResponseKind::ListOffsets(r) => {
            put_array(buf, &r.topics, |buf, t| {
                put_str(buf, &t.name.0);
                put_array(buf, &t.partitions, |buf, p| {
                    buf.put_i32(p.partition_index);
                    buf.put_i16(p.error_code);
                    let found = p.error_code == 0 && p.offset >= 0;
                    buf.put_i32(i32::from(found));
                    if found {
                        buf.put_i64(p.offset);
                    }
                });
            });
            Ok(())
        }
        ResponseKind::DescribeConfigs(r) => {
            buf.put_i32(r.throttle_time_ms);
            put_array(buf, &r.results, |buf, res| {
                buf.put_i16(res.error_code);
                put_nullable_str(buf, res.error_message.as_deref());
                buf.put_i8(res.resource_type);
                put_str(buf, &res.resource_name);
                put_array(buf, &res.configs, |buf, c| {
                    put_str(buf, &c.name);
                    put_nullable_str(buf, c.value.as_deref());
                    buf.put_u8(u8::from(c.read_only));
                    // DEFAULT_CONFIG (5) or STATIC_BROKER_CONFIG (4): not set on the resource.
                    buf.put_u8(u8::from(matches!(c.config_source, 4 | 5)));
                    buf.put_u8(u8::from(c.is_sensitive));
                });
            });
            Ok(())
        }
        ResponseKind::CreateTopics(r) => {
            put_array(buf, &r.topics, |buf, t| {
                put_str(buf, &t.name.0);
                buf.put_i16(t.error_code);
                if version >= 1 {
                    put_nullable_str(buf, t.error_message.as_deref());
                }
            });
            Ok(())
        }
        ResponseKind::DeleteTopics(r) => {
            put_array(buf, &r.responses, |buf, t| {
                put_str(buf, t.name.as_ref().map_or("", |n| n.0.as_str()));
                buf.put_i16(t.error_code);
            });
            Ok(())
        }
        // Same layout as the modern equivalent.
        ResponseKind::OffsetCommit(_) | ResponseKind::OffsetFetch(_) => {
            response.encode(buf, modern).map_err(|e| err(e.to_string()))
        }
        _ => Err(err("no legacy layout".into())),
    }
}

fn api_of(response: &ResponseKind) -> ApiKey {
    match response {
        ResponseKind::ListOffsets(_) => ApiKey::ListOffsets,
        ResponseKind::OffsetCommit(_) => ApiKey::OffsetCommit,
        ResponseKind::OffsetFetch(_) => ApiKey::OffsetFetch,
        ResponseKind::DescribeConfigs(_) => ApiKey::DescribeConfigs,
        ResponseKind::CreateTopics(_) => ApiKey::CreateTopics,
        ResponseKind::DeleteTopics(_) => ApiKey::DeleteTopics,
        _ => ApiKey::ApiVersions,
    }
}

fn list_offsets_request(r: &mut Reader<'_>) -> Result<RequestKind, String> {
    use kafka_protocol::messages::list_offsets_request::*;
    let mut req = ListOffsetsRequest::default();
    req.replica_id = r.i32()?.into();
    req.topics = r.array(6, |r| {
        let mut t = ListOffsetsTopic::default();
        t.name = r.str()?.into();
        t.partitions = r.array(16, |r| {
            let mut p = ListOffsetsPartition::default();
            p.partition_index = r.i32()?;
            p.timestamp = r.i64()?;
            let _max_num_offsets = r.i32()?;
            Ok(p)
        })?;
        Ok(t)
    })?;
    Ok(RequestKind::ListOffsets(req))
}

fn offset_commit_request(r: &mut Reader<'_>, version: i16) -> Result<RequestKind, String> {
    use kafka_protocol::messages::offset_commit_request::*;
    let mut req = OffsetCommitRequest::default();
    req.group_id = r.str()?.into();
    if version >= 1 {
        req.generation_id_or_member_epoch = r.i32()?;
        req.member_id = r.str()?;
    } else {
        // v0 commits outside group membership (a "simple" consumer or an admin tool).
        req.generation_id_or_member_epoch = -1;
    }
    req.retention_time_ms = -1;
    req.topics = r.array(6, |r| {
        let mut t = OffsetCommitRequestTopic::default();
        t.name = r.str()?.into();
        t.partitions = r.array(14, |r| {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = r.i32()?;
            p.committed_offset = r.i64()?;
            if version == 1 {
                let _commit_timestamp = r.i64()?;
            }
            p.committed_metadata = r.nullable_str()?;
            Ok(p)
        })?;
        Ok(t)
    })?;
    Ok(RequestKind::OffsetCommit(req))
}

fn create_topics_v0_request(r: &mut Reader<'_>) -> Result<RequestKind, String> {
    use kafka_protocol::messages::create_topics_request::*;
    let mut req = CreateTopicsRequest::default();
    req.topics = r.array(16, |r| {
        let mut t = CreatableTopic::default();
        t.name = r.str()?.into();
        t.num_partitions = r.i32()?;
        t.replication_factor = r.i16()?;
        t.assignments = r.array(8, |r| {
            let mut a = CreatableReplicaAssignment::default();
            a.partition_index = r.i32()?;
            a.broker_ids = r.array(4, |r| Ok(r.i32()?.into()))?;
            Ok(a)
        })?;
        t.configs = r.array(4, |r| {
            let mut c = CreatableTopicConfig::default();
            c.name = r.str()?;
            c.value = r.nullable_str()?;
            Ok(c)
        })?;
        Ok(t)
    })?;
    req.timeout_ms = r.i32()?;
    Ok(RequestKind::CreateTopics(req))
}

fn describe_configs_v0_request(r: &mut Reader<'_>) -> Result<RequestKind, String> {
    use kafka_protocol::messages::describe_configs_request::*;
    let mut req = DescribeConfigsRequest::default();
    req.resources = r.array(7, |r| {
        let mut res = DescribeConfigsResource::default();
        res.resource_type = r.i8()?;
        res.resource_name = r.str()?;
        res.configuration_keys = r.nullable_array(2, |r| r.str())?;
        Ok(res)
    })?;
    Ok(RequestKind::DescribeConfigs(req))
}

fn put_str(buf: &mut BytesMut, s: &str) {
    put_nullable_str(buf, Some(s));
}

fn put_nullable_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => buf.put_i16(-1),
        Some(s) => {
            // Kafka strings are at most i16::MAX bytes; longer ones are cut (names never are).
            let bytes = s.as_bytes();
            let len = bytes.len().min(i16::MAX as usize);
            buf.put_i16(len as i16);
            buf.put_slice(bytes.get(..len).unwrap_or_default());
        }
    }
}

fn put_array<T>(buf: &mut BytesMut, items: &[T], mut each: impl FnMut(&mut BytesMut, &T)) {
    buf.put_i32(i32::try_from(items.len()).unwrap_or(i32::MAX));
    for item in items {
        each(buf, item);
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    /// A ListOffsets v0 request as Burrow sends it decodes, and the answer has the old layout.
    #[test]
    fn list_offsets_v0_round_trip() {
        let mut b = BytesMut::new();
        b.put_i32(-1);
        b.put_i32(1);
        put_str(&mut b, "t");
        b.put_i32(1);
        b.put_i32(3);
        b.put_i64(-1);
        b.put_i32(1);
        let RequestKind::ListOffsets(req) =
            decode(ApiKey::ListOffsets, 0, &mut b.freeze()).unwrap()
        else {
            panic!()
        };
        assert_eq!(req.topics[0].name.0.as_str(), "t");
        assert_eq!(req.topics[0].partitions[0].partition_index, 3);
        assert_eq!(req.topics[0].partitions[0].timestamp, -1);

        use kafka_protocol::messages::list_offsets_response::*;
        let mut p = ListOffsetsPartitionResponse::default();
        p.partition_index = 3;
        p.offset = 42;
        let mut t = ListOffsetsTopicResponse::default();
        t.name = TopicName(StrBytes::from_static_str("t"));
        t.partitions = vec![p];
        let mut resp = ListOffsetsResponse::default();
        resp.topics = vec![t];
        let mut out = BytesMut::new();
        encode(&ResponseKind::ListOffsets(resp), 0, &mut out).unwrap();
        let expected: &[u8] = &[
            0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            42,
        ];
        assert_eq!(&out[..], expected);
    }

    /// Array lengths are checked against the bytes left: a huge count allocates nothing.
    #[test]
    fn a_huge_array_count_is_refused_before_allocating() {
        let mut b = BytesMut::new();
        b.put_i32(-1);
        b.put_i32(i32::MAX);
        assert!(decode(ApiKey::ListOffsets, 0, &mut b.freeze()).is_err());
        let mut short = Bytes::from_static(&[0, 5, b'g']);
        assert!(decode(ApiKey::OffsetCommit, 0, &mut short).is_err());
    }

    /// Only the versions below the crate's floor are legacy.
    #[test]
    fn modern_equivalents() {
        assert_eq!(modern_equivalent(ApiKey::ListOffsets, 0), Some(1));
        assert_eq!(modern_equivalent(ApiKey::ListOffsets, 1), None);
        assert_eq!(modern_equivalent(ApiKey::OffsetCommit, 1), Some(2));
        assert_eq!(modern_equivalent(ApiKey::CreateTopics, 0), Some(2));
        assert_eq!(modern_equivalent(ApiKey::Produce, 2), None);
        assert_eq!(modern_equivalent(ApiKey::Fetch, 3), None);
    }
}
