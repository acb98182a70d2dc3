//! OffsetCommit and OffsetFetch v10 (Kafka 4.2, KIP-848), whose requests name topics by id
//! instead of by name. The codec crate encodes both v10 responses but decodes these requests
//! only up to v9, so the v10 requests are decoded here into the crate's request structs: each
//! topic with its `topic_id` set and its name empty. The handlers resolve the ids (an unknown
//! one is UNKNOWN_TOPIC_ID) and answer with the ids, as v10 responses carry them.
//!
//! Layouts (flexible versions: unsigned-varint lengths plus one, tagged fields after every
//! struct), from Kafka 4.2's `OffsetCommitRequest.json` and `OffsetFetchRequest.json`:
//!
//! ```text
//! OffsetCommit v10  group_id:cstr generation_id_or_member_epoch:i32 member_id:cstr
//!                   group_instance_id:cstr? [topic_id:uuid [partition_index:i32
//!                   committed_offset:i64 committed_leader_epoch:i32 committed_metadata:cstr?]]
//! OffsetFetch v10   [group_id:cstr member_id:cstr? member_epoch:i32
//!                   [topic_id:uuid [partition_index:i32]]?] require_stable:bool
//! ```
//!
//! Decoding is bounded: every length is checked against the bytes left before anything is
//! allocated, and a short or malformed body is an error, never a panic.

use bytes::Bytes;

use super::reader::Reader;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{ApiKey, GroupId, RequestKind};

/// Whether this module decodes requests of `api` at `version`.
pub fn decodes(api: ApiKey, version: i16) -> bool {
    version == 10 && matches!(api, ApiKey::OffsetCommit | ApiKey::OffsetFetch)
}

/// Decodes a v10 OffsetCommit or OffsetFetch body.
pub fn decode(api: ApiKey, body: &mut Bytes) -> Result<RequestKind, String> {
    let mut r = Reader(body);
    match api {
        ApiKey::OffsetCommit => offset_commit(&mut r).map(RequestKind::OffsetCommit),
        ApiKey::OffsetFetch => offset_fetch(&mut r).map(RequestKind::OffsetFetch),
        other => Err(format!("{other:?} v10 is not decoded here")),
    }
    .map_err(|e| format!("{api:?} v10 body: {e}"))
}

fn offset_commit(r: &mut Reader<'_>) -> Result<OffsetCommitRequest, String> {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(r.compact_str()?);
    req.generation_id_or_member_epoch = r.i32()?;
    req.member_id = r.compact_str()?;
    req.group_instance_id = r.compact_nullable_str()?;
    // A topic is at least a uuid, an array length and a tag count.
    req.topics = r.compact_array(18, |r| {
        let mut t = OffsetCommitRequestTopic::default();
        t.topic_id = r.uuid()?;
        // A partition is at least 4 + 8 + 4 + 1 + 1 bytes.
        t.partitions = r.compact_array(18, |r| {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = r.i32()?;
            p.committed_offset = r.i64()?;
            p.committed_leader_epoch = r.i32()?;
            p.committed_metadata = r.compact_nullable_str()?;
            r.tagged_fields()?;
            Ok(p)
        })?;
        r.tagged_fields()?;
        Ok(t)
    })?;
    r.tagged_fields()?;
    Ok(req)
}

fn offset_fetch(r: &mut Reader<'_>) -> Result<OffsetFetchRequest, String> {
    let mut req = OffsetFetchRequest::default();
    // A group is at least its id, a member id, an epoch, a topic array and a tag count.
    req.groups = r.compact_array(8, |r| {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = GroupId(r.compact_str()?);
        g.member_id = r.compact_nullable_str()?;
        g.member_epoch = r.i32()?;
        g.topics = r.compact_nullable_array(18, |r| {
            let mut t = OffsetFetchRequestTopics::default();
            t.topic_id = r.uuid()?;
            t.partition_indexes = r.compact_array(4, Reader::i32)?;
            r.tagged_fields()?;
            Ok(t)
        })?;
        r.tagged_fields()?;
        Ok(g)
    })?;
    req.require_stable = r.u8()? != 0;
    r.tagged_fields()?;
    Ok(req)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use bytes::{Buf, BufMut, BytesMut};

    fn cstr(b: &mut BytesMut, s: &str) {
        b.put_u8(s.len() as u8 + 1);
        b.put_slice(s.as_bytes());
    }

    #[test]
    fn an_offset_commit_v10_decodes_with_topic_ids() {
        let id = uuid::Uuid::from_u128(0xabcdef);
        let mut b = BytesMut::new();
        cstr(&mut b, "g");
        b.put_i32(3);
        cstr(&mut b, "m");
        b.put_u8(0); // no instance id
        b.put_u8(2); // one topic
        b.put_u128(id.as_u128());
        b.put_u8(2); // one partition
        b.put_i32(1);
        b.put_i64(42);
        b.put_i32(-1);
        cstr(&mut b, "meta");
        b.put_u8(0);
        b.put_u8(0);
        b.put_u8(0);
        let mut body = b.freeze();
        let RequestKind::OffsetCommit(r) = decode(ApiKey::OffsetCommit, &mut body).unwrap() else {
            panic!()
        };
        assert_eq!(body.remaining(), 0);
        assert_eq!(r.group_id.0.as_str(), "g");
        assert_eq!(r.generation_id_or_member_epoch, 3);
        assert_eq!(r.topics[0].topic_id, id);
        assert!(r.topics[0].name.0.is_empty());
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.partition_index, p.committed_offset), (1, 42));
        assert_eq!(p.committed_metadata.as_deref(), Some("meta"));
    }

    #[test]
    fn short_or_lying_bodies_are_errors() {
        for body in [
            &[][..],
            &[2, b'g', 0, 0, 0, 1, 2, b'm', 0, 0x7f][..],
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0x01][..],
        ] {
            let mut b = Bytes::copy_from_slice(body);
            assert!(decode(ApiKey::OffsetCommit, &mut b).is_err());
            let mut b = Bytes::copy_from_slice(body);
            assert!(decode(ApiKey::OffsetFetch, &mut b).is_err());
        }
    }
}
