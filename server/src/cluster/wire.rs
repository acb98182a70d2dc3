//! The cluster's internal protocol, between controllers (Raft messages) and from brokers to the
//! active controller (requests and responses). Clients never see it: it runs on the controller
//! listener (the node's address in `controller.quorum.voters`).
//!
//! A frame is `u32 length (big endian) | u8 kind | body`: kind 0 is a Raft message
//! (protobuf, as raft-rs encodes it), 1 a request and 2 a response (JSON). Frames are bounded
//! by [`FRAME_MAX`]; a longer or malformed frame closes the connection.

use std::collections::BTreeMap;

use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Largest frame accepted (the metadata image travels in one).
pub const FRAME_MAX: usize = 64 << 20;

/// A request to the active controller.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ControllerRequest {
    /// A broker's replica of a partition failed (corrupt on its disk): out of the ISR, and
    /// another leader if it led.
    ReplicaFailed {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// The reporting broker.
        from: i32,
    },
    /// A broker starts a new incarnation.
    Register {
        /// `node.id`.
        id: i32,
        /// Advertised `host:port` of the inter-broker listener.
        endpoint: String,
        /// `broker.rack`.
        rack: Option<String>,
        /// The identity of its data directory (`directory.id` in `meta.properties`).
        #[serde(default)]
        directory_id: Option<u128>,
        /// Advertised `host:port` of every Kafka listener, by name.
        #[serde(default)]
        listeners: BTreeMap<String, String>,
    },
    /// A broker is alive (and, with `shutting_down`, wants its leaderships moved away).
    Heartbeat {
        /// `node.id`.
        id: i32,
        /// The incarnation from `Register`.
        epoch: u64,
        /// Controlled shutdown requested.
        shutting_down: bool,
    },
    /// Waits (up to about a second) for metadata newer than `known`, then returns it.
    WatchMetadata {
        /// The metadata offset the broker has.
        known: u64,
    },
    /// Creates a topic.
    CreateTopic {
        /// Name.
        name: String,
        /// Partition count.
        partitions: u32,
        /// Replication factor.
        replication_factor: u32,
        /// Config overrides.
        configs: BTreeMap<String, String>,
        /// Replicas of each partition, when the request names them (then `partitions` and
        /// `replication_factor` follow from it).
        #[serde(default)]
        assignments: Option<Vec<Vec<i32>>>,
    },
    /// Grows a topic to `count` partitions.
    CreatePartitions {
        /// Name.
        name: String,
        /// The new partition count.
        count: u32,
        /// Replicas of each new partition, when the request names them.
        #[serde(default)]
        assignments: Option<Vec<Vec<i32>>>,
    },
    /// Deletes a topic.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// Replaces a topic's config overrides.
    SetTopicConfig {
        /// Name.
        name: String,
        /// The overrides.
        configs: BTreeMap<String, String>,
    },
    /// Adds ACLs (CreateAcls through any broker).
    CreateAcls {
        /// The ACLs.
        acls: Vec<strata_replication::controller::AclEntry>,
    },
    /// Removes ACLs (the ones a DeleteAcls matched on the broker that took it).
    RemoveAcls {
        /// The ACLs.
        acls: Vec<strata_replication::controller::AclEntry>,
    },
    /// Sets or deletes SCRAM credentials: (user, mechanism, credential or `None`).
    AlterScramCredentials {
        /// The changes, applied together.
        changes: Vec<(
            String,
            String,
            Option<strata_replication::controller::ScramEntry>,
        )>,
    },
    /// Sets or removes client quotas: (entity, key, value or `None`).
    AlterClientQuotas {
        /// The changes, applied together.
        changes: Vec<(
            strata_replication::controller::QuotaEntity,
            String,
            Option<f64>,
        )>,
    },
    /// Replaces the dynamic broker configs of a resource ("" or a broker id).
    SetBrokerConfig {
        /// The resource.
        resource: String,
        /// The values.
        configs: BTreeMap<String, String>,
    },
    /// ElectLeaders for one partition.
    ElectLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// Preferred or unclean.
        election: strata_replication::controller::Election,
    },
    /// A broker needs a block of producer ids.
    AllocateProducerIds,
    /// The quorum's state (DescribeQuorum), from the active controller.
    DescribeQuorum,
    /// UnregisterBroker: the broker leaves the metadata for good.
    UnregisterBroker {
        /// Its id.
        id: i32,
    },
    /// AlterPartitionReassignments for one partition: move it to `target`, or cancel (`None`).
    ReassignPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The target replicas, preferred leader first; `None` cancels.
        target: Option<Vec<i32>>,
        /// Whether the target may have another replication factor (KIP-860).
        allow_replication_factor_change: bool,
    },
    /// A partition leader asks for an ISR change.
    AlterPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: u32,
        /// The leader asking.
        from: i32,
        /// Its leader epoch.
        leader_epoch: i32,
        /// The proposed ISR.
        isr: Vec<i32>,
    },
}

/// A voter of the controller quorum, as the active controller sees it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct VoterState {
    /// Node id.
    pub id: i32,
    /// The highest metadata log index known to be on it.
    pub log_end_offset: u64,
    /// Milliseconds since it was last heard from (0 for the active controller itself);
    /// `None` if never since this controller became active.
    pub last_heard_ms_ago: Option<u64>,
    /// Whether it has the whole committed log.
    pub caught_up: bool,
}

/// The controller's answer.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub enum ControllerResponse {
    /// Ask another controller (the active one, if known).
    NotController {
        /// The active controller's id, if known.
        leader: Option<i32>,
    },
    /// Registered with this incarnation.
    Registered {
        /// Broker epoch.
        epoch: u64,
    },
    /// Heartbeat answered.
    Heartbeat {
        /// Whether the broker is fenced now.
        fenced: bool,
        /// The metadata offset after the heartbeat's effects.
        metadata_offset: u64,
    },
    /// The metadata: `image` (JSON, as in snapshots) if newer than what the broker had.
    Metadata {
        /// Offset of the last record in the image.
        offset: u64,
        /// The whole image, or `None` if unchanged.
        image: Option<String>,
    },
    /// Producer ids `start..start + len` are this broker's to hand out.
    ProducerIds {
        /// First id.
        start: i64,
        /// How many.
        len: i64,
    },
    /// Done; the change is committed at `metadata_offset`.
    Done {
        /// Metadata offset that includes the change.
        metadata_offset: u64,
    },
    /// The quorum (DescribeQuorum).
    Quorum {
        /// The active controller (this one).
        leader: i32,
        /// The Raft term.
        term: u64,
        /// The committed index.
        high_watermark: u64,
        /// Every voter.
        voters: Vec<VoterState>,
    },
    /// Refused, with a Kafka error code and a message.
    Error {
        /// Kafka error code.
        code: i16,
        /// Why.
        message: String,
    },
}

/// One frame of the internal protocol.
#[derive(Debug)]
pub enum Frame {
    /// Between controllers.
    Raft(Message),
    /// Broker to controller.
    Request(ControllerRequest),
    /// Controller to broker.
    Response(ControllerResponse),
}

/// Errors of the internal protocol.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The frame did not decode.
    #[error("malformed frame: {0}")]
    Malformed(String),
}

impl Frame {
    /// Encodes the frame with its length prefix.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let (kind, body) = match self {
            Frame::Raft(m) => (
                0u8,
                m.write_to_bytes()
                    .map_err(|e| WireError::Malformed(e.to_string()))?,
            ),
            Frame::Request(r) => (
                1,
                serde_json::to_vec(r).map_err(|e| WireError::Malformed(e.to_string()))?,
            ),
            Frame::Response(r) => (
                2,
                serde_json::to_vec(r).map_err(|e| WireError::Malformed(e.to_string()))?,
            ),
        };
        let len = u32::try_from(body.len() + 1)
            .map_err(|_| WireError::Malformed("frame too large".into()))?;
        let mut out = Vec::with_capacity(body.len() + 5);
        out.extend_from_slice(&len.to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes a frame body (after the length prefix).
    pub fn decode(bytes: &[u8]) -> Result<Frame, WireError> {
        let (kind, body) = bytes
            .split_first()
            .ok_or_else(|| WireError::Malformed("empty frame".into()))?;
        let bad = |e: &dyn std::fmt::Display| WireError::Malformed(e.to_string());
        match kind {
            0 => Message::parse_from_bytes(body)
                .map(Frame::Raft)
                .map_err(|e| bad(&e)),
            1 => serde_json::from_slice(body)
                .map(Frame::Request)
                .map_err(|e| bad(&e)),
            2 => serde_json::from_slice(body)
                .map(Frame::Response)
                .map_err(|e| bad(&e)),
            k => Err(WireError::Malformed(format!("unknown frame kind {k}"))),
        }
    }

    /// Reads one frame.
    pub async fn read<R: AsyncReadExt + Unpin>(r: &mut R) -> Result<Frame, WireError> {
        let len = r.read_u32().await? as usize;
        if len == 0 || len > FRAME_MAX {
            return Err(WireError::Malformed(format!("frame length {len}")));
        }
        let mut buf = vec![0u8; len];
        r.read_exact(&mut buf).await?;
        Frame::decode(&buf)
    }

    /// Writes one frame.
    pub async fn write<W: AsyncWriteExt + Unpin>(&self, w: &mut W) -> Result<(), WireError> {
        let bytes = self.encode()?;
        w.write_all(&bytes).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_refused() {
        let mut m = Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgHeartbeat);
        m.to = 2;
        m.from = 1;
        m.term = 7;
        let bytes = Frame::Raft(m.clone()).encode().unwrap();
        match Frame::decode(&bytes[4..]).unwrap() {
            Frame::Raft(back) => assert_eq!(back, m),
            other => panic!("{other:?}"),
        }
        let req = Frame::Request(ControllerRequest::WatchMetadata { known: 9 });
        let bytes = req.encode().unwrap();
        assert!(matches!(
            Frame::decode(&bytes[4..]).unwrap(),
            Frame::Request(ControllerRequest::WatchMetadata { known: 9 })
        ));
        assert!(Frame::decode(&[]).is_err());
        assert!(Frame::decode(&[9, 1, 2]).is_err());
        assert!(Frame::decode(&[1, b'{']).is_err());
    }
}
