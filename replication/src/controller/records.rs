//! Records of the metadata log. Each is a fact decided by the active controller; applying them
//! in log order rebuilds the cluster metadata anywhere.

use std::collections::BTreeMap;

use strata_engine::LeaderEpoch;

use crate::broker_id::BrokerId;

/// One change to the cluster metadata.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MetadataRecord {
    /// A broker (re)registered; a new `epoch` replaces an earlier incarnation. Registered brokers
    /// start fenced until their first heartbeat.
    RegisterBroker {
        /// Broker id.
        id: BrokerId,
        /// Incarnation: bumped on every registration.
        epoch: u64,
        /// Advertised `host:port`.
        endpoint: String,
        /// `broker.rack`.
        rack: Option<String>,
        /// The identity of its data directory (`directory.id` in `meta.properties`).
        #[serde(default)]
        directory_id: Option<u128>,
        /// Advertised `host:port` of each of its Kafka listeners, by listener name (clients
        /// are told the addresses of the listener they connected to).
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        listeners: BTreeMap<String, String>,
    },
    /// The broker left the cluster for good (UnregisterBroker); its replicas, if any remain,
    /// are re-created elsewhere.
    UnregisterBroker {
        /// Broker id.
        id: BrokerId,
    },
    /// The broker may lead and be in ISRs again.
    UnfenceBroker {
        /// Broker id.
        id: BrokerId,
    },
    /// The broker stopped heartbeating or shut down: it leads nothing and leaves ISRs.
    FenceBroker {
        /// Broker id.
        id: BrokerId,
    },
    /// A topic with its partitions' initial assignment.
    CreateTopic {
        /// Name.
        name: String,
        /// Topic id.
        id: u128,
        /// Replicas of each partition, preferred leader first.
        assignments: Vec<Vec<BrokerId>>,
        /// Topic config overrides.
        configs: BTreeMap<String, String>,
    },
    /// Partitions appended to a topic (CreatePartitions): indexes from the topic's current
    /// count on, each with its replicas, preferred leader first.
    CreatePartitions {
        /// Topic name.
        topic: String,
        /// Replicas of each new partition.
        assignments: Vec<Vec<BrokerId>>,
    },
    /// A topic and its partitions are gone.
    DeleteTopic {
        /// Name.
        name: String,
    },
    /// A partition's leader, ISR or leader epoch changed.
    ChangePartition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// New leader (`None`: offline, no eligible replica).
        leader: Option<BrokerId>,
        /// New ISR.
        isr: Vec<BrokerId>,
        /// New leader epoch (bumped on every leader change).
        #[serde(with = "epoch_serde")]
        leader_epoch: LeaderEpoch,
    },
    /// A partition's replica set changed: a reassignment (KIP-455) began, completed or was
    /// cancelled. Leader, ISR and epoch are as they are after the change.
    ReassignPartition {
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: u32,
        /// Every replica: the target's first (preferred leader first), then those leaving.
        replicas: Vec<BrokerId>,
        /// Replicas being added (empty once complete).
        adding: Vec<BrokerId>,
        /// Replicas to remove once the target is in sync (empty once complete).
        removing: Vec<BrokerId>,
        /// Leader after the change.
        leader: Option<BrokerId>,
        /// ISR after the change.
        isr: Vec<BrokerId>,
        /// Leader epoch after the change (bumped when the leader changes).
        #[serde(with = "epoch_serde")]
        leader_epoch: LeaderEpoch,
    },
    /// Producer ids below `next` are handed out (brokers take them in blocks, so an
    /// idempotent producer's id is unique across the cluster).
    ProducerIdsAllocated {
        /// The first id not yet handed out.
        next: i64,
    },
    /// Topic config overrides replaced.
    SetTopicConfig {
        /// Topic name.
        topic: String,
        /// The overrides.
        configs: BTreeMap<String, String>,
    },
    /// Dynamic broker configs of a resource replaced (empty: removed).
    SetBrokerConfig {
        /// "" for the cluster-wide default, or a broker id.
        resource: String,
        /// The values.
        configs: BTreeMap<String, String>,
    },
    /// ACLs added (CreateAcls); one already there stays once.
    CreateAcls {
        /// The ACLs.
        acls: Vec<AclEntry>,
    },
    /// ACLs removed (DeleteAcls).
    RemoveAcls {
        /// The ACLs.
        acls: Vec<AclEntry>,
    },
    /// A client quota of an entity set or removed (AlterClientQuotas).
    SetClientQuota {
        /// The entity: `(type, name)` pairs sorted by type (`client-id`, `ip`, `user`); a
        /// `None` name is the type's default.
        entity: Vec<(String, Option<String>)>,
        /// `producer_byte_rate`, `consumer_byte_rate` or `connection_creation_rate`.
        key: String,
        /// The value; `None` removes it.
        value: Option<QuotaValue>,
    },
    /// A user's SCRAM credential for one mechanism set or deleted (AlterUserScramCredentials).
    SetScramCredential {
        /// User name.
        user: String,
        /// `SCRAM-SHA-256` or `SCRAM-SHA-512`.
        mechanism: String,
        /// The credential; `None` deletes it.
        credential: Option<ScramEntry>,
    },
}

/// An ACL as Kafka's protocol codes it (the broker's authorizer checks and interprets it).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct AclEntry {
    /// Resource type code (TOPIC 2, GROUP 3, CLUSTER 4, TRANSACTIONAL_ID 5).
    pub resource_type: i8,
    /// Resource name, or prefix.
    pub resource_name: String,
    /// Pattern type code (LITERAL 3, PREFIXED 4).
    pub pattern_type: i8,
    /// `User:alice`.
    pub principal: String,
    /// An address, or `*`.
    pub host: String,
    /// Operation code.
    pub operation: i8,
    /// Permission code (DENY 2, ALLOW 3).
    pub permission_type: i8,
}

/// A SCRAM credential as stored: never the password (RFC 5802's salted keys).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramEntry {
    /// Salt (base64).
    pub salt: String,
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// H(ClientKey) (base64).
    pub stored_key: String,
    /// HMAC(SaltedPassword, "Server Key") (base64).
    pub server_key: String,
}

/// Serde for `LeaderEpoch` (an engine type) as its plain number.
pub(crate) mod epoch_serde {
    use serde::{Deserialize, Deserializer, Serializer};
    use strata_engine::LeaderEpoch;

    pub fn serialize<S: Serializer>(e: &LeaderEpoch, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i32(e.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<LeaderEpoch, D::Error> {
        i32::deserialize(d).map(LeaderEpoch)
    }
}

/// A client quota's value (bytes or connections per second): a finite, positive number, so
/// equality by bits is equality.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl PartialEq for QuotaValue {
    fn eq(&self, other: &QuotaValue) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for QuotaValue {}
