//! A classic group's membership as a `__consumer_offsets` record, in Kafka's schema
//! (GroupMetadataKey v2: the group id; GroupMetadataValue v0-v3: protocol type, generation,
//! protocol, leader, and each member with its subscription and assignment), so that the broker
//! that takes over a group's offsets partition also takes over the group: its members keep
//! heartbeating at their generation, with no rebalance. A group deleted is a tombstone.
//!
//! ```text
//! key    version:i16 (2) group:str
//! value  version:i16 (0-3) protocol_type:str generation:i32 protocol:str? leader:str?
//!        current_state_timestamp:i64 (v2+)
//!        [member_id:str group_instance_id:str? (v3+) client_id:str client_host:str
//!         rebalance_timeout:i32 (v1+) session_timeout:i32 subscription:bytes assignment:bytes]
//! ```
//!
//! Decoding is bounded by the record's bytes and gives `None` on anything malformed (the
//! record is then skipped at load, as an unknown one is).

use bytes::{Buf, BufMut, Bytes};

/// The key version of group metadata records.
const KEY_VERSION: i16 = 2;
/// The value version written.
const VALUE_VERSION: i16 = 3;

/// A group as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGroup {
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// Generation.
    pub generation: i32,
    /// The chosen protocol (assignor).
    pub protocol: Option<String>,
    /// The leader's member id.
    pub leader: Option<String>,
    /// When the group entered its state (ms since the epoch).
    pub state_timestamp: i64,
    /// Members.
    pub members: Vec<StoredMember>,
}

/// A member as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: i32,
    /// Session timeout (ms).
    pub session_timeout_ms: i32,
    /// Its metadata for the chosen protocol.
    pub subscription: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// The record key of `group`.
pub fn encode_key(group: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + group.len());
    b.put_i16(KEY_VERSION);
    put_str(&mut b, group);
    b
}

/// The group id of a group metadata key; `None` for other keys (offsets are versions 0-1).
pub fn decode_key(mut b: &[u8]) -> Option<String> {
    if b.remaining() < 2 || b.get_i16() != KEY_VERSION {
        return None;
    }
    get_str(&mut b)?
}

/// The record value of a group.
pub fn encode_value(g: &StoredGroup) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.put_i16(VALUE_VERSION);
    put_str(&mut b, &g.protocol_type);
    b.put_i32(g.generation);
    put_nullable(&mut b, g.protocol.as_deref());
    put_nullable(&mut b, g.leader.as_deref());
    b.put_i64(g.state_timestamp);
    b.put_i32(g.members.len() as i32);
    for m in &g.members {
        put_str(&mut b, &m.member_id);
        put_nullable(&mut b, m.group_instance_id.as_deref());
        put_str(&mut b, &m.client_id);
        put_str(&mut b, &m.client_host);
        b.put_i32(m.rebalance_timeout_ms);
        b.put_i32(m.session_timeout_ms);
        put_bytes(&mut b, &m.subscription);
        put_bytes(&mut b, &m.assignment);
    }
    b
}

/// A group from a record value of versions 0-3.
pub fn decode_value(mut b: &[u8]) -> Option<StoredGroup> {
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16();
    if !(0..=VALUE_VERSION).contains(&version) {
        return None;
    }
    let protocol_type = get_str(&mut b)??;
    let generation = get_i32(&mut b)?;
    let protocol = get_str(&mut b)?;
    let leader = get_str(&mut b)?;
    let state_timestamp = if version >= 2 { get_i64(&mut b)? } else { -1 };
    let n = usize::try_from(get_i32(&mut b)?).ok()?;
    // A member takes at least 18 bytes: bound the allocation by what is there.
    let mut members = Vec::with_capacity(n.min(b.remaining() / 18));
    for _ in 0..n {
        let member_id = get_str(&mut b)??;
        let group_instance_id = if version >= 3 { get_str(&mut b)? } else { None };
        let client_id = get_str(&mut b)??;
        let client_host = get_str(&mut b)??;
        let rebalance_timeout_ms = if version >= 1 { get_i32(&mut b)? } else { -1 };
        let session_timeout_ms = get_i32(&mut b)?;
        let subscription = get_bytes(&mut b)?;
        let assignment = get_bytes(&mut b)?;
        let rebalance_timeout_ms = if rebalance_timeout_ms < 0 {
            session_timeout_ms
        } else {
            rebalance_timeout_ms
        };
        members.push(StoredMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(StoredGroup {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp,
        members,
    })
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable(b: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut Vec<u8>, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

fn get_i32(b: &mut &[u8]) -> Option<i32> {
    (b.remaining() >= 4).then(|| b.get_i32())
}

fn get_i64(b: &mut &[u8]) -> Option<i64> {
    (b.remaining() >= 8).then(|| b.get_i64())
}

/// A nullable string: `Some(None)` for null, `None` if malformed.
fn get_str(b: &mut &[u8]) -> Option<Option<String>> {
    if b.remaining() < 2 {
        return None;
    }
    let len = b.get_i16();
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let s = String::from_utf8(b[..len].to_vec()).ok()?;
    b.advance(len);
    Some(Some(s))
}

fn get_bytes(b: &mut &[u8]) -> Option<Bytes> {
    let len = get_i32(b)?;
    if len < 0 {
        return Some(Bytes::new());
    }
    let len = len as usize;
    if b.remaining() < len {
        return None;
    }
    let v = Bytes::copy_from_slice(&b[..len]);
    b.advance(len);
    Some(v)
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn group() -> StoredGroup {
        StoredGroup {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            state_timestamp: 1_700_000_000_000,
            members: vec![StoredMember {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 30_000,
                session_timeout_ms: 10_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"assign"),
            }],
        }
    }

    #[test]
    fn a_group_round_trips() {
        let g = group();
        assert_eq!(decode_value(&encode_value(&g)), Some(g));
        assert_eq!(decode_key(&encode_key("g1")).as_deref(), Some("g1"));
    }

    /// Offsets keys (versions 0-1) are not group keys.
    #[test]
    fn offset_keys_are_not_group_keys() {
        let mut k = vec![0, 1];
        k.extend_from_slice(&[0, 1, b'g']);
        assert_eq!(decode_key(&k), None);
    }

    /// Every truncation of a valid value is refused, never a panic.
    #[test]
    fn truncated_values_are_refused() {
        let v = encode_value(&group());
        for n in 0..v.len() {
            assert_eq!(decode_value(&v[..n]), None, "{n} bytes");
        }
    }

    /// A version 0 value (no rebalance timeout, timestamp, instance id), as Kafka 0.10 wrote.
    #[test]
    fn a_version_0_value_decodes() {
        let mut b = Vec::new();
        b.put_i16(0);
        put_str(&mut b, "consumer");
        b.put_i32(2);
        put_str(&mut b, "range");
        put_str(&mut b, "m");
        b.put_i32(1);
        put_str(&mut b, "m");
        put_str(&mut b, "c");
        put_str(&mut b, "/h");
        b.put_i32(6000);
        put_bytes(&mut b, b"s");
        put_bytes(&mut b, b"a");
        let g = decode_value(&b).unwrap();
        assert_eq!(g.generation, 2);
        assert_eq!(g.members[0].rebalance_timeout_ms, 6000);
    }
}
