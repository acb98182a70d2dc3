//! A consumer group of the KIP-848 protocol as one `__consumer_offsets` record, so that the
//! broker that takes over the group's offsets partition takes over the group too: its members
//! heartbeat on at their member epochs, with their assignments, and nothing is reassigned.
//!
//! Kafka writes such a group as several record types (keys 3-8: group metadata, subscription
//! metadata, members, target assignment, current assignments). Strata writes the whole group in
//! one record under a key version of its own, so a tool that knows Kafka's key versions skips it
//! as unknown, as it skips any record it does not know:
//!
//! ```text
//! key    version:i16 (0x5354, "ST") group:str
//! value  version:i16 (0) json:bytes   (a StoredConsumerGroup)
//! ```
//!
//! The record is rewritten, and waited on (acks=all), whenever a heartbeat changes the group,
//! before the heartbeat is answered; a group deleted is a tombstone. Decoding gives `None` on
//! anything malformed (the record is then skipped at load, as an unknown one is).

use std::collections::BTreeMap;

use bytes::{Buf, BufMut};

use super::assignor::{Partitions, TopicLayout};

/// The key version of consumer group records: Strata's, outside Kafka's (0-8 so far).
const KEY_VERSION: i16 = 0x5354;
/// The value version written.
const VALUE_VERSION: i16 = 0;

/// A consumer group as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredConsumerGroup {
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    /// The assignor of the target.
    pub assignor: String,
    /// The subscribed topics' layouts the target was computed from.
    pub subscribed: BTreeMap<String, (uuid::Uuid, i32)>,
    /// Each member's target.
    pub target: BTreeMap<String, Partitions>,
    /// The members, by id.
    pub members: BTreeMap<String, StoredConsumerMember>,
}

/// A member as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredConsumerMember {
    /// Member epoch.
    pub member_epoch: i32,
    /// The epoch before it (a lost response's retry is accepted at it).
    pub previous_epoch: i32,
    /// Kafka's name of its reconciliation state.
    pub state: String,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Rebalance timeout (ms).
    pub rebalance_timeout_ms: u64,
    /// Subscribed topic names.
    pub subscribed_topic_names: Vec<String>,
    /// Subscribed regular expression.
    pub subscribed_topic_regex: Option<String>,
    /// The assignor it asked for.
    pub server_assignor: Option<String>,
    /// What it owns.
    pub assigned: Partitions,
    /// What it was told to give up and has not confirmed.
    pub pending_revocation: Partitions,
}

impl StoredConsumerGroup {
    /// Layouts in the assignor's form.
    pub fn layouts(&self) -> BTreeMap<String, TopicLayout> {
        self.subscribed
            .iter()
            .map(|(t, (id, partitions))| {
                (
                    t.clone(),
                    TopicLayout {
                        id: *id,
                        partitions: *partitions,
                    },
                )
            })
            .collect()
    }
}

/// The record key of consumer group `group`.
pub fn encode_key(group: &str) -> Vec<u8> {
    let mut b = Vec::with_capacity(4 + group.len());
    b.put_i16(KEY_VERSION);
    b.put_i16(i16::try_from(group.len()).unwrap_or(i16::MAX));
    b.extend_from_slice(&group.as_bytes()[..group.len().min(i16::MAX as usize)]);
    b
}

/// The group id of a consumer group key; `None` for other keys.
pub fn decode_key(mut b: &[u8]) -> Option<String> {
    if b.remaining() < 4 || b.get_i16() != KEY_VERSION {
        return None;
    }
    let len = usize::try_from(b.get_i16()).ok()?;
    if b.remaining() < len {
        return None;
    }
    String::from_utf8(b[..len].to_vec()).ok()
}

/// The record value of a group.
pub fn encode_value(g: &StoredConsumerGroup) -> Vec<u8> {
    let mut b = Vec::with_capacity(256);
    b.put_i16(VALUE_VERSION);
    // Serializing plain data to a Vec cannot fail.
    b.extend_from_slice(&serde_json::to_vec(g).unwrap_or_default());
    b
}

/// A group from a record value.
pub fn decode_value(mut b: &[u8]) -> Option<StoredConsumerGroup> {
    if b.remaining() < 2 || b.get_i16() != VALUE_VERSION {
        return None;
    }
    serde_json::from_slice(b).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_round_trips_and_garbage_is_skipped() {
        let topic = uuid::Uuid::new_v4();
        let mut assigned = Partitions::new();
        assigned.entry(topic).or_default().extend([0, 2]);
        let g = StoredConsumerGroup {
            group_epoch: 4,
            assignment_epoch: 4,
            assignor: "uniform".into(),
            subscribed: [("t".to_string(), (topic, 3))].into(),
            target: [("m1".to_string(), assigned.clone())].into(),
            members: [(
                "m1".to_string(),
                StoredConsumerMember {
                    member_epoch: 4,
                    previous_epoch: 3,
                    state: "STABLE".into(),
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    subscribed_topic_names: vec!["t".into()],
                    subscribed_topic_regex: None,
                    server_assignor: None,
                    assigned,
                    pending_revocation: Partitions::new(),
                },
            )]
            .into(),
        };
        assert_eq!(decode_key(&encode_key("grp")).as_deref(), Some("grp"));
        assert_eq!(decode_value(&encode_value(&g)), Some(g));
        assert_eq!(
            decode_key(&[0, 2, 0, 3, b'g']),
            None,
            "a classic group's key"
        );
        assert_eq!(decode_key(&[0x53, 0x54, 0, 9, b'g']), None, "truncated");
        assert_eq!(decode_value(&[0, 0, b'{']), None);
        assert_eq!(decode_value(&[0, 7]), None);
    }
}
