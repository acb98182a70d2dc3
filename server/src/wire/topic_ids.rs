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

use bytes::{Buf, Bytes};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{ApiKey, GroupId, RequestKind};
use kafka_protocol::protocol::StrBytes;

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
    req.group_id = GroupId(r.string()?);
    req.generation_id_or_member_epoch = r.i32()?;
    req.member_id = r.string()?;
    req.group_instance_id = r.nullable_string()?;
    // A topic is at least a uuid, an array length and a tag count.
    req.topics = r.array(18, |r| {
        let mut t = OffsetCommitRequestTopic::default();
        t.topic_id = r.uuid()?;
        // A partition is at least 4 + 8 + 4 + 1 + 1 bytes.
        t.partitions = r.array(18, |r| {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = r.i32()?;
            p.committed_offset = r.i64()?;
            p.committed_leader_epoch = r.i32()?;
            p.committed_metadata = r.nullable_string()?;
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
    req.groups = r.array(8, |r| {
        let mut g = OffsetFetchRequestGroup::default();
        g.group_id = GroupId(r.string()?);
        g.member_id = r.nullable_string()?;
        g.member_epoch = r.i32()?;
        g.topics = r.nullable_array(18, |r| {
            let mut t = OffsetFetchRequestTopics::default();
            t.topic_id = r.uuid()?;
            t.partition_indexes = r.array(4, Reader::i32)?;
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

struct Reader<'a>(&'a mut Bytes);

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), String> {
        if self.0.remaining() < n {
            return Err(format!(
                "body ends early: need {n} bytes, have {}",
                self.0.remaining()
            ));
        }
        Ok(())
    }

    fn u8(&mut self) -> Result<u8, String> {
        self.need(1)?;
        Ok(self.0.get_u8())
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.need(4)?;
        Ok(self.0.get_i32())
    }

    fn i64(&mut self) -> Result<i64, String> {
        self.need(8)?;
        Ok(self.0.get_i64())
    }

    fn uuid(&mut self) -> Result<uuid::Uuid, String> {
        self.need(16)?;
        Ok(uuid::Uuid::from_u128(self.0.get_u128()))
    }

    fn varint(&mut self) -> Result<u32, String> {
        let mut value = 0u32;
        for shift in (0..35).step_by(7) {
            let b = self.u8()?;
            value |= u32::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err("unsigned varint longer than 5 bytes".into())
    }

    /// A compact length: `None` for null (0), else the length.
    fn compact_len(&mut self) -> Result<Option<usize>, String> {
        Ok(match self.varint()? {
            0 => None,
            n => Some((n - 1) as usize),
        })
    }

    fn nullable_string(&mut self) -> Result<Option<StrBytes>, String> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        self.need(len)?;
        StrBytes::from_utf8(self.0.split_to(len))
            .map(Some)
            .map_err(|e| format!("string is not UTF-8: {e}"))
    }

    fn string(&mut self) -> Result<StrBytes, String> {
        self.nullable_string()?
            .ok_or_else(|| "null where a string is required".to_string())
    }

    /// A compact array whose elements take at least `min_element_bytes` each (checked against
    /// the bytes left before allocating).
    fn nullable_array<T>(
        &mut self,
        min_element_bytes: usize,
        mut element: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Option<Vec<T>>, String> {
        let Some(len) = self.compact_len()? else {
            return Ok(None);
        };
        self.need(len.saturating_mul(min_element_bytes))?;
        let mut out = Vec::with_capacity(len);
        for _ in 0..len {
            out.push(element(self)?);
        }
        Ok(Some(out))
    }

    fn array<T>(
        &mut self,
        min_element_bytes: usize,
        element: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        self.nullable_array(min_element_bytes, element)?
            .ok_or_else(|| "null where an array is required".to_string())
    }

    /// Skips a tagged-fields section (none of these structs has tagged fields of its own).
    fn tagged_fields(&mut self) -> Result<(), String> {
        let n = self.varint()?;
        for _ in 0..n {
            let _tag = self.varint()?;
            let size = self.varint()? as usize;
            self.need(size)?;
            self.0.advance(size);
        }
        Ok(())
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};

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
