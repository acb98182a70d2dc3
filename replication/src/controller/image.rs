//! The cluster metadata as the metadata log builds it: brokers, topics, partitions.
//!
//! Invariants (asserted in `apply`): a partition's leader, if any, is one of its replicas and in
//! its ISR; its ISR is a subset of its replicas; leader epochs never go back.

use std::collections::{BTreeMap, BTreeSet};

use strata_engine::LeaderEpoch;

use super::records::{AclEntry, MetadataRecord, QuotaValue, ScramEntry};
use crate::broker_id::BrokerId;

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BrokerRegistration {
    /// Broker id.
    pub id: BrokerId,
    /// Incarnation.
    pub epoch: u64,
    /// Advertised `host:port`.
    pub endpoint: String,
    /// Rack.
    pub rack: Option<String>,
    /// Whether it is fenced.
    pub fenced: bool,
    /// The identity of the data directory it registered with (a new one means an empty or
    /// replaced disk); `None` from brokers that do not report one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory_id: Option<u128>,
    /// Advertised `host:port` of each Kafka listener, by name (empty from brokers that
    /// registered only `endpoint`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub listeners: BTreeMap<String, String>,
}

impl BrokerRegistration {
    /// The advertised `host:port` a client connected to `listener` is told: Kafka lists a
    /// broker only on the listeners it has. A broker that registered no listener names has
    /// its one endpoint on every listener.
    pub fn endpoint_on(&self, listener: &str) -> Option<&str> {
        if self.listeners.is_empty() {
            return Some(&self.endpoint);
        }
        self.listeners.get(listener).map(String::as_str)
    }
}

/// One partition's replication state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PartitionRegistration {
    /// Replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
    /// In-sync replicas.
    pub isr: Vec<BrokerId>,
    /// Leader, or `None` while offline.
    pub leader: Option<BrokerId>,
    /// Leader epoch.
    #[serde(with = "super::records::epoch_serde")]
    pub leader_epoch: LeaderEpoch,
    /// Replicas a reassignment is adding (in `replicas`, not yet in the target's ISR).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding_replicas: Vec<BrokerId>,
    /// Replicas a reassignment will remove once the target replicas are in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing_replicas: Vec<BrokerId>,
}

impl PartitionRegistration {
    /// A new partition on `replicas`: all in sync, the first leads, epoch 0.
    pub fn new(replicas: &[BrokerId]) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: replicas.to_vec(),
            leader: replicas.first().copied(),
            leader_epoch: LeaderEpoch(0),
            adding_replicas: Vec::new(),
            removing_replicas: Vec::new(),
        }
    }

    /// Whether a reassignment is under way.
    pub fn is_reassigning(&self) -> bool {
        !self.adding_replicas.is_empty() || !self.removing_replicas.is_empty()
    }

    /// The replicas the partition will have once its reassignment completes (its replicas
    /// when none is under way), in preference order.
    pub fn target_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.removing_replicas.contains(b))
            .collect()
    }

    /// The replicas it had before its reassignment began (what a cancel returns to).
    pub fn original_replicas(&self) -> Vec<BrokerId> {
        self.replicas
            .iter()
            .copied()
            .filter(|b| !self.adding_replicas.contains(b))
            .collect()
    }
}

/// A topic.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicImage {
    /// Topic id.
    pub id: u128,
    /// Partitions by index.
    pub partitions: Vec<PartitionRegistration>,
    /// Config overrides.
    pub configs: BTreeMap<String, String>,
}

/// The whole cluster metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    /// Brokers by id.
    pub brokers: BTreeMap<BrokerId, BrokerRegistration>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// Dynamic broker configs by resource: "" (the cluster-wide default) or a broker id.
    pub broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    /// The cluster's ACLs.
    pub acls: BTreeSet<AclEntry>,
    /// SCRAM credentials by user and mechanism.
    pub scram: BTreeMap<String, BTreeMap<String, ScramEntry>>,
    /// Client quotas by entity (`SetClientQuota`'s), then key.
    pub client_quotas: BTreeMap<QuotaEntity, BTreeMap<String, QuotaValue>>,
}

/// A client quota entity: `(type, name)` pairs sorted by type; a `None` name is the default.
pub type QuotaEntity = Vec<(String, Option<String>)>;

impl MetadataImage {
    /// Applies one committed record.
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker {
                id,
                epoch,
                endpoint,
                rack,
                directory_id,
                listeners,
            } => {
                self.brokers.insert(
                    *id,
                    BrokerRegistration {
                        id: *id,
                        epoch: *epoch,
                        endpoint: endpoint.clone(),
                        rack: rack.clone(),
                        fenced: true,
                        directory_id: *directory_id,
                        listeners: listeners.clone(),
                    },
                );
            }
            MetadataRecord::UnregisterBroker { id } => {
                assert!(
                    self.brokers.get(id).is_none_or(|b| b.fenced),
                    "a broker is fenced before it is unregistered"
                );
                self.brokers.remove(id);
            }
            MetadataRecord::UnfenceBroker { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = false;
                }
            }
            MetadataRecord::FenceBroker { id } => {
                if let Some(b) = self.brokers.get_mut(id) {
                    b.fenced = true;
                }
            }
            MetadataRecord::CreateTopic {
                name,
                id,
                assignments,
                configs,
            } => {
                let partitions = assignments
                    .iter()
                    .map(|replicas| PartitionRegistration::new(replicas))
                    .collect();
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        id: *id,
                        partitions,
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::CreatePartitions { topic, assignments } => {
                let Some(t) = self.topics.get_mut(topic) else {
                    return;
                };
                t.partitions.extend(
                    assignments
                        .iter()
                        .map(|replicas| PartitionRegistration::new(replicas)),
                );
            }
            MetadataRecord::DeleteTopic { name } => {
                self.topics.remove(name);
            }
            MetadataRecord::ChangePartition {
                topic,
                partition,
                leader,
                isr,
                leader_epoch,
            } => {
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return;
                };
                check_change(p.leader_epoch, &p.replicas, *leader, isr, *leader_epoch);
                p.leader = *leader;
                p.isr = isr.clone();
                p.leader_epoch = *leader_epoch;
            }
            MetadataRecord::ReassignPartition {
                topic,
                partition,
                replicas,
                adding,
                removing,
                leader,
                isr,
                leader_epoch,
            } => {
                let Some(p) = self
                    .topics
                    .get_mut(topic)
                    .and_then(|t| t.partitions.get_mut(*partition as usize))
                else {
                    return;
                };
                assert!(
                    adding.iter().chain(removing).all(|b| replicas.contains(b)),
                    "adding and removing replicas are replicas"
                );
                assert!(
                    adding.iter().all(|b| !removing.contains(b)),
                    "a replica is not both added and removed"
                );
                assert!(
                    replicas.iter().any(|b| !removing.contains(b)),
                    "a reassignment's target is never empty"
                );
                check_change(p.leader_epoch, replicas, *leader, isr, *leader_epoch);
                p.replicas = replicas.clone();
                p.adding_replicas = adding.clone();
                p.removing_replicas = removing.clone();
                p.leader = *leader;
                p.isr = isr.clone();
                p.leader_epoch = *leader_epoch;
            }
            MetadataRecord::ProducerIdsAllocated { next } => {
                assert!(
                    *next >= self.next_producer_id,
                    "producer ids are never reused"
                );
                self.next_producer_id = *next;
            }
            MetadataRecord::SetTopicConfig { topic, configs } => {
                if let Some(t) = self.topics.get_mut(topic) {
                    t.configs = configs.clone();
                }
            }
            MetadataRecord::SetBrokerConfig { resource, configs } => {
                if configs.is_empty() {
                    self.broker_configs.remove(resource);
                } else {
                    self.broker_configs
                        .insert(resource.clone(), configs.clone());
                }
            }
            MetadataRecord::CreateAcls { acls } => self.acls.extend(acls.iter().cloned()),
            MetadataRecord::RemoveAcls { acls } => {
                for a in acls {
                    self.acls.remove(a);
                }
            }
            MetadataRecord::SetClientQuota { entity, key, value } => match value {
                Some(v) => {
                    self.client_quotas
                        .entry(entity.clone())
                        .or_default()
                        .insert(key.clone(), *v);
                }
                None => {
                    if let Some(values) = self.client_quotas.get_mut(entity) {
                        values.remove(key);
                        if values.is_empty() {
                            self.client_quotas.remove(entity);
                        }
                    }
                }
            },
            MetadataRecord::SetScramCredential {
                user,
                mechanism,
                credential,
            } => match credential {
                Some(c) => {
                    self.scram
                        .entry(user.clone())
                        .or_default()
                        .insert(mechanism.clone(), c.clone());
                }
                None => {
                    if let Some(m) = self.scram.get_mut(user) {
                        m.remove(mechanism);
                        if m.is_empty() {
                            self.scram.remove(user);
                        }
                    }
                }
            },
        }
    }

    /// Brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> Vec<&BrokerRegistration> {
        self.brokers.values().filter(|b| !b.fenced).collect()
    }

    /// Whether a broker is registered and unfenced.
    pub fn is_live(&self, id: BrokerId) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }
}

/// The invariants of a partition change: leader epochs never go back, the ISR is a subset of the
/// replicas, the leader is in the ISR.
fn check_change(
    epoch_before: LeaderEpoch,
    replicas: &[BrokerId],
    leader: Option<BrokerId>,
    isr: &[BrokerId],
    epoch: LeaderEpoch,
) {
    assert!(epoch >= epoch_before, "leader epochs never go back");
    assert!(
        isr.iter().all(|b| replicas.contains(b)),
        "the ISR is a subset of the replicas"
    );
    assert!(
        leader.is_none_or(|l| isr.contains(&l)),
        "the leader is in the ISR"
    );
}

/// The image in a form that serializes to JSON (maps keyed by broker id become lists).
#[derive(serde::Serialize, serde::Deserialize)]
struct ImageSnapshot {
    brokers: Vec<BrokerRegistration>,
    topics: Vec<(String, TopicImage)>,
    #[serde(default)]
    next_producer_id: i64,
    #[serde(default)]
    broker_configs: BTreeMap<String, BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    acls: BTreeSet<AclEntry>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram: BTreeMap<String, BTreeMap<String, ScramEntry>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    client_quotas: Vec<(QuotaEntity, BTreeMap<String, QuotaValue>)>,
}

impl MetadataImage {
    /// Encodes the image for a Raft snapshot.
    pub fn to_snapshot_bytes(&self) -> Vec<u8> {
        let s = ImageSnapshot {
            brokers: self.brokers.values().cloned().collect(),
            topics: self
                .topics
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            next_producer_id: self.next_producer_id,
            broker_configs: self.broker_configs.clone(),
            acls: self.acls.clone(),
            scram: self.scram.clone(),
            client_quotas: self
                .client_quotas
                .iter()
                .map(|(e, v)| (e.clone(), v.clone()))
                .collect(),
        };
        serde_json::to_vec(&s).unwrap_or_default()
    }

    /// Decodes an image from a Raft snapshot.
    pub fn from_snapshot_bytes(bytes: &[u8]) -> Result<MetadataImage, serde_json::Error> {
        if bytes.is_empty() {
            return Ok(MetadataImage::default());
        }
        let s: ImageSnapshot = serde_json::from_slice(bytes)?;
        Ok(MetadataImage {
            brokers: s.brokers.into_iter().map(|b| (b.id, b)).collect(),
            topics: s.topics.into_iter().collect(),
            next_producer_id: s.next_producer_id,
            broker_configs: s.broker_configs,
            acls: s.acls,
            scram: s.scram,
            client_quotas: s.client_quotas.into_iter().collect(),
        })
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// ACLs and SCRAM credentials are added and removed by their records and survive a
    /// snapshot.
    #[test]
    fn acls_and_scram_credentials_apply_and_survive_a_snapshot() {
        let acl = |name: &str| AclEntry {
            resource_type: 2,
            resource_name: name.into(),
            pattern_type: 3,
            principal: "User:alice".into(),
            host: "*".into(),
            operation: 3,
            permission_type: 3,
        };
        let cred = ScramEntry {
            salt: "c2FsdA==".into(),
            iterations: 4096,
            stored_key: "a".into(),
            server_key: "b".into(),
        };
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::CreateAcls {
            acls: vec![acl("orders"), acl("logs"), acl("orders")],
        });
        image.apply(&MetadataRecord::RemoveAcls {
            acls: vec![acl("logs")],
        });
        for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
            image.apply(&MetadataRecord::SetScramCredential {
                user: "alice".into(),
                mechanism: mechanism.into(),
                credential: Some(cred.clone()),
            });
        }
        image.apply(&MetadataRecord::SetScramCredential {
            user: "alice".into(),
            mechanism: "SCRAM-SHA-256".into(),
            credential: None,
        });
        assert_eq!(image.acls.iter().collect::<Vec<_>>(), vec![&acl("orders")]);
        assert_eq!(
            image.scram["alice"].keys().collect::<Vec<_>>(),
            vec!["SCRAM-SHA-512"]
        );
        let back = MetadataImage::from_snapshot_bytes(&image.to_snapshot_bytes()).unwrap();
        assert_eq!(back, image);
        image.apply(&MetadataRecord::SetScramCredential {
            user: "alice".into(),
            mechanism: "SCRAM-SHA-512".into(),
            credential: None,
        });
        assert!(image.scram.is_empty(), "a user without credentials is gone");
        let alice: QuotaEntity = vec![("user".into(), Some("alice".into()))];
        image.apply(&MetadataRecord::SetClientQuota {
            entity: alice.clone(),
            key: "producer_byte_rate".into(),
            value: Some(QuotaValue(1024.0)),
        });
        let back = MetadataImage::from_snapshot_bytes(&image.to_snapshot_bytes()).unwrap();
        assert_eq!(
            back.client_quotas[&alice]["producer_byte_rate"],
            QuotaValue(1024.0)
        );
        image.apply(&MetadataRecord::SetClientQuota {
            entity: alice,
            key: "producer_byte_rate".into(),
            value: None,
        });
        assert!(image.client_quotas.is_empty());
    }

    /// Dynamic broker configs are set and removed by their record, and survive a snapshot
    /// (and an old snapshot without them still loads).
    #[test]
    fn broker_configs_apply_and_survive_a_snapshot() {
        let mut image = MetadataImage::default();
        let configs = BTreeMap::from([("log.retention.ms".to_string(), "1".to_string())]);
        image.apply(&MetadataRecord::SetBrokerConfig {
            resource: String::new(),
            configs: configs.clone(),
        });
        let back = MetadataImage::from_snapshot_bytes(&image.to_snapshot_bytes()).unwrap();
        assert_eq!(back.broker_configs.get(""), Some(&configs));
        image.apply(&MetadataRecord::SetBrokerConfig {
            resource: String::new(),
            configs: BTreeMap::new(),
        });
        assert!(image.broker_configs.is_empty());
        let old = br#"{"brokers":[],"topics":[],"next_producer_id":7}"#;
        let loaded = MetadataImage::from_snapshot_bytes(old).unwrap();
        assert_eq!(loaded.next_producer_id, 7);
        assert!(loaded.broker_configs.is_empty());
    }
}
