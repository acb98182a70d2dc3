//! The active controller's decisions. Each method looks at the committed image and returns the
//! records to append; nothing changes until those records are committed and applied.
//!
//! - Brokers register (fenced), are unfenced by their first heartbeat, and are fenced when no
//!   heartbeat arrives for `broker_session_timeout_ms` or when they shut down; fencing removes
//!   them from every ISR (never emptying one) and moves their leaderships to another live ISR
//!   member, bumping the leader epoch. With unclean election off, a partition whose ISR has no
//!   live member goes offline until one returns.
//! - Topics are placed across racks (no two replicas of a partition on one rack while enough
//!   racks exist) with preferred leaders spread evenly.
//! - ISR changes come from the leader, in its current epoch, and may only add live replicas.

mod reassignment;

use std::collections::{BTreeMap, BTreeSet};

use strata_engine::LeaderEpoch;

use super::image::{MetadataImage, PartitionRegistration};
use super::records::MetadataRecord;
use crate::broker_id::BrokerId;

/// Controller settings.
#[derive(Debug, Clone, Copy)]
pub struct ControllerConfig {
    /// `broker.session.timeout.ms`: a broker silent this long is fenced. Default: 600 (Strata
    /// aims at sub-second failover; Kafka's default is 9000).
    pub broker_session_timeout_ms: u64,
    /// `unclean.leader.election.enable`. Default: false.
    pub unclean_leader_election: bool,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            broker_session_timeout_ms: 600,
            unclean_leader_election: false,
        }
    }
}

/// Why a request to the controller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControllerError {
    /// Not enough live brokers for the replication factor.
    #[error("replication factor {rf} needs more than the {live} live brokers")]
    InvalidReplicationFactor {
        /// Asked for.
        rf: usize,
        /// Live brokers.
        live: usize,
    },
    /// The partition count is not positive.
    #[error("invalid partition count {0}")]
    InvalidPartitions(u32),
    /// The topic exists.
    #[error("topic {0} already exists")]
    TopicExists(String),
    /// No such topic or partition.
    #[error("unknown topic or partition {0}")]
    UnknownTopicOrPartition(String),
    /// The broker is not registered (or registered again since).
    #[error("unknown broker {0} or stale broker epoch")]
    UnknownBroker(BrokerId),
    /// The request's leader epoch is not the current one.
    #[error("fenced leader epoch {request}, current {current}")]
    FencedLeaderEpoch {
        /// In the request.
        request: LeaderEpoch,
        /// Current.
        current: LeaderEpoch,
    },
    /// The requester does not lead the partition.
    #[error("broker {0} is not the leader")]
    NotLeader(BrokerId),
    /// The ISR names a replica that may not be in it.
    #[error("ineligible replica {0} in the proposed ISR")]
    IneligibleReplica(BrokerId),
    /// ElectLeaders: the partition already has the leader the election would give it.
    #[error("election not needed for {0}")]
    ElectionNotNeeded(String),
    /// ElectLeaders (preferred): the preferred replica is not live and in sync.
    #[error("the preferred replica of {0} is not live and in sync")]
    PreferredLeaderNotAvailable(String),
    /// ElectLeaders (unclean): no live replica to lead.
    #[error("no live replica of {0} can lead")]
    EligibleLeadersNotAvailable(String),
    /// A manual replica assignment that cannot be placed as given.
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    /// UnregisterBroker of an id that is not registered.
    #[error("broker {0} is not registered")]
    BrokerIdNotRegistered(BrokerId),
    /// A cancel of a reassignment where none is under way.
    #[error("no reassignment of {0} is in progress")]
    NoReassignmentInProgress(String),
    /// A reassignment that changes the replication factor, which the request did not allow.
    #[error(
        "the reassignment of {partition} changes its replication factor from {from} to {to}, which the request does not allow"
    )]
    ReplicationFactorChange {
        /// The partition.
        partition: String,
        /// Its replication factor.
        from: usize,
        /// The target's.
        to: usize,
    },
}

/// Which leader an ElectLeaders request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Election {
    /// The preferred (first) replica, if live and in sync.
    Preferred,
    /// Any live replica for a partition that has no leader, in sync or not.
    Unclean,
}

/// The controller's decision logic and its in-memory view of heartbeats.
#[derive(Debug, Default)]
pub struct ControllerLogic {
    config: ControllerConfig,
    last_heartbeat_ms: BTreeMap<BrokerId, u64>,
    next_broker_epoch: u64,
    /// Live brokers that came back only recently (the caller judges how recently): a failover
    /// election picks another in-sync replica when one can lead, since clients may still be
    /// backing off their reconnects to these.
    returning: std::collections::BTreeSet<BrokerId>,
}

/// Records plus the image they lead to, so that several decisions in one call see each other.
struct Batch {
    image: MetadataImage,
    records: Vec<MetadataRecord>,
}

impl Batch {
    fn new(image: &MetadataImage) -> Batch {
        Batch {
            image: image.clone(),
            records: Vec::new(),
        }
    }

    fn push(&mut self, r: MetadataRecord) {
        self.image.apply(&r);
        self.records.push(r);
    }

    /// Every partition as the batch's image has it now: (topic, index, registration).
    fn partitions(&self) -> Vec<(String, usize, PartitionRegistration)> {
        self.image
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .map(move |(i, p)| (name.clone(), i, p.clone()))
            })
            .collect()
    }
}

impl ControllerLogic {
    /// A controller with `config`.
    pub fn new(config: ControllerConfig) -> ControllerLogic {
        ControllerLogic {
            config,
            last_heartbeat_ms: BTreeMap::new(),
            next_broker_epoch: 1,
            returning: std::collections::BTreeSet::new(),
        }
    }

    /// Registers (or re-registers) a broker; it starts fenced. Returns its epoch and the records.
    ///
    /// A broker that comes back with a different `directory_id` than it registered with before
    /// has an empty or replaced disk: it leaves every ISR at once, even as its last member (that
    /// partition then waits offline for a replica that still has the data, or for an unclean
    /// election), so it is never elected from an empty log; it rejoins each ISR by catching up.
    pub fn register_broker(
        &mut self,
        image: &MetadataImage,
        id: BrokerId,
        endpoint: &str,
        rack: Option<&str>,
        directory_id: Option<u128>,
        now_ms: u64,
    ) -> (u64, Vec<MetadataRecord>) {
        self.register_broker_on(
            image,
            id,
            endpoint,
            BTreeMap::new(),
            rack,
            directory_id,
            now_ms,
        )
    }

    /// [`Self::register_broker`] for a broker that names its listeners' addresses.
    #[allow(clippy::too_many_arguments)]
    pub fn register_broker_on(
        &mut self,
        image: &MetadataImage,
        id: BrokerId,
        endpoint: &str,
        listeners: BTreeMap<String, String>,
        rack: Option<&str>,
        directory_id: Option<u128>,
        now_ms: u64,
    ) -> (u64, Vec<MetadataRecord>) {
        let epoch = self.next_broker_epoch.max(
            image
                .brokers
                .values()
                .map(|b| b.epoch + 1)
                .max()
                .unwrap_or(1),
        );
        self.next_broker_epoch = epoch + 1;
        self.last_heartbeat_ms.insert(id, now_ms);
        let mut batch = Batch::new(image);
        // A re-registration means the old incarnation is gone: fence it first.
        if image.is_live(id) {
            self.fence_into(&mut batch, id);
        }
        let replaced_disk = image.brokers.get(&id).is_some_and(|b| {
            b.directory_id.is_some() && directory_id.is_some() && b.directory_id != directory_id
        });
        if replaced_disk {
            self.forget_replicas_of_into(&mut batch, id);
        }
        batch.push(MetadataRecord::RegisterBroker {
            id,
            epoch,
            endpoint: endpoint.to_string(),
            rack: rack.map(str::to_string),
            directory_id,
            listeners,
        });
        (epoch, batch.records)
    }

    /// A newly elected controller does not know when brokers last heartbeated: every
    /// registered broker gets `grace_ms` from `now_ms` (at most a full session) to heartbeat
    /// to it before it can be fenced. Live brokers find the new controller within a few
    /// heartbeat intervals; a broker that died with the old controller does not.
    pub fn start_sessions(&mut self, image: &MetadataImage, now_ms: u64, grace_ms: u64) {
        let session = self.config.broker_session_timeout_ms;
        let last = now_ms
            .saturating_add(grace_ms.min(session))
            .saturating_sub(session);
        self.last_heartbeat_ms = image.brokers.keys().map(|b| (*b, last)).collect();
    }

    /// The connection `id` heartbeats on closed. A process that died (SIGKILL, crash) closes
    /// its sockets at once, so instead of the whole session the broker gets `grace_ms` to
    /// heartbeat again (on a new connection) before it is fenced. A link that merely stalls
    /// closes nothing, and the session timeout applies as before.
    pub fn connection_lost(&mut self, id: BrokerId, now_ms: u64, grace_ms: u64) {
        let expire_at = now_ms.saturating_add(grace_ms);
        let session = self.config.broker_session_timeout_ms;
        if let Some(t) = self.last_heartbeat_ms.get_mut(&id) {
            // Fenced once now - t > session, i.e. at t + session: move that to expire_at.
            *t = (*t).min(expire_at.saturating_sub(session));
        }
    }

    /// A heartbeat from `id` in incarnation `epoch`. The first one unfences the broker and
    /// brings back partitions that were offline waiting for it.
    pub fn heartbeat(
        &mut self,
        image: &MetadataImage,
        id: BrokerId,
        epoch: u64,
        now_ms: u64,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let reg = image
            .brokers
            .get(&id)
            .filter(|b| b.epoch == epoch)
            .ok_or(ControllerError::UnknownBroker(id))?;
        self.last_heartbeat_ms.insert(id, now_ms);
        let mut batch = Batch::new(image);
        if reg.fenced {
            batch.push(MetadataRecord::UnfenceBroker { id });
            self.elect_offline_into(&mut batch);
        }
        Ok(batch.records)
    }

    /// Time passes: brokers silent for the session timeout are fenced.
    pub fn tick(&mut self, image: &MetadataImage, now_ms: u64) -> Vec<MetadataRecord> {
        let mut batch = Batch::new(image);
        let expired: Vec<BrokerId> = image
            .live_brokers()
            .iter()
            .map(|b| b.id)
            .filter(|id| {
                self.last_heartbeat_ms.get(id).is_none_or(|t| {
                    now_ms.saturating_sub(*t) > self.config.broker_session_timeout_ms
                })
            })
            .collect();
        for id in expired {
            self.fence_into(&mut batch, id);
        }
        batch.records
    }

    /// UnregisterBroker: the broker is fenced (out of every ISR, its leaderships moved) and
    /// leaves the metadata. Its replicas stay assigned to it until re-replication moves them
    /// (the caller treats an unregistered replica holder as lost at once).
    pub fn unregister_broker(
        &mut self,
        image: &MetadataImage,
        id: BrokerId,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        if !image.brokers.contains_key(&id) {
            return Err(ControllerError::BrokerIdNotRegistered(id));
        }
        let mut batch = Batch::new(image);
        if image.is_live(id) {
            self.fence_into(&mut batch, id);
        }
        batch.push(MetadataRecord::UnregisterBroker { id });
        self.last_heartbeat_ms.remove(&id);
        Ok(batch.records)
    }

    /// Controlled shutdown: the broker's leaderships move away, then it is fenced.
    pub fn controlled_shutdown(
        &mut self,
        image: &MetadataImage,
        id: BrokerId,
    ) -> Vec<MetadataRecord> {
        let mut batch = Batch::new(image);
        self.fence_into(&mut batch, id);
        self.last_heartbeat_ms.remove(&id);
        batch.records
    }

    fn fence_into(&self, batch: &mut Batch, id: BrokerId) {
        batch.push(MetadataRecord::FenceBroker { id });
        self.leave_isrs_into(batch, id, false);
    }

    /// `id`'s disk was replaced: it leaves every ISR, even where it is the last member, and
    /// leads nothing.
    fn forget_replicas_of_into(&self, batch: &mut Batch, id: BrokerId) {
        self.leave_isrs_into(batch, id, true);
    }

    /// `id` leaves every ISR and leadership: the partitions it led (and, when its copies are
    /// gone, those without a leader) get one among the others, in a new epoch. Unless
    /// `copies_gone`, an ISR is never emptied: its last member is the only safe leader to wait
    /// for.
    fn leave_isrs_into(&self, batch: &mut Batch, id: BrokerId, copies_gone: bool) {
        for (topic, index, p) in batch.partitions() {
            if !p.isr.contains(&id) && p.leader != Some(id) {
                continue;
            }
            let isr: Vec<BrokerId> = if p.isr.len() > 1 || copies_gone {
                p.isr.iter().copied().filter(|b| *b != id).collect()
            } else {
                p.isr.clone()
            };
            let elect = p.leader == Some(id) || (copies_gone && p.leader.is_none());
            let (leader, isr, epoch) = if elect {
                let others: Vec<BrokerId> =
                    p.replicas.iter().copied().filter(|b| *b != id).collect();
                let (leader, isr) = self.choose_leader(&batch.image, &others, &isr);
                (leader, isr, LeaderEpoch(p.leader_epoch.0 + 1))
            } else {
                (p.leader, isr, p.leader_epoch)
            };
            batch.push(MetadataRecord::ChangePartition {
                topic,
                partition: index as u32,
                leader,
                isr,
                leader_epoch: epoch,
            });
        }
    }

    /// Sets the live brokers that came back only recently: a failover election picks another
    /// in-sync replica when one can lead (clients may still be backing off their reconnects).
    pub fn set_returning(&mut self, returning: std::collections::BTreeSet<BrokerId>) {
        self.returning = returning;
    }

    /// A leader from the ISR's live members (preferred order, those not just returned first),
    /// or, with unclean election, any live replica (whose ISR becomes itself alone); else none.
    fn choose_leader(
        &self,
        image: &MetadataImage,
        replicas: &[BrokerId],
        isr: &[BrokerId],
    ) -> (Option<BrokerId>, Vec<BrokerId>) {
        let eligible = |r: &&BrokerId| isr.contains(r) && image.is_live(**r);
        if let Some(l) = replicas
            .iter()
            .filter(eligible)
            .find(|r| !self.returning.contains(r))
            .or_else(|| replicas.iter().find(eligible))
        {
            return (Some(*l), isr.to_vec());
        }
        if self.config.unclean_leader_election
            && let Some(l) = replicas.iter().find(|r| image.is_live(**r))
        {
            return (Some(*l), vec![*l]);
        }
        (None, isr.to_vec())
    }

    fn elect_offline_into(&self, batch: &mut Batch) {
        for (topic, index, p) in batch.partitions() {
            if p.leader.is_some() {
                continue;
            }
            let (leader, isr) = self.choose_leader(&batch.image, &p.replicas, &p.isr);
            if leader.is_some() {
                batch.push(MetadataRecord::ChangePartition {
                    topic: topic.clone(),
                    partition: index as u32,
                    leader,
                    isr,
                    leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
                });
            }
        }
    }

    /// Places a new topic: replicas across racks, preferred leaders spread over the brokers.
    pub fn create_topic(
        &self,
        image: &MetadataImage,
        name: &str,
        id: u128,
        partitions: u32,
        replication_factor: usize,
        configs: BTreeMap<String, String>,
    ) -> Result<MetadataRecord, ControllerError> {
        if image.topics.contains_key(name) {
            return Err(ControllerError::TopicExists(name.to_string()));
        }
        if partitions == 0 {
            return Err(ControllerError::InvalidPartitions(partitions));
        }
        let assignments = place(image, 0, partitions as usize, replication_factor)?;
        self.create_topic_assigned(image, name, id, assignments, configs)
    }

    /// Creates a topic whose replicas the request names (CreateTopics with a manual
    /// assignment): partition `p` on `assignments[p]`, its first replica the preferred leader.
    pub fn create_topic_assigned(
        &self,
        image: &MetadataImage,
        name: &str,
        id: u128,
        assignments: Vec<Vec<BrokerId>>,
        configs: BTreeMap<String, String>,
    ) -> Result<MetadataRecord, ControllerError> {
        if image.topics.contains_key(name) {
            return Err(ControllerError::TopicExists(name.to_string()));
        }
        if assignments.is_empty() {
            return Err(ControllerError::InvalidPartitions(0));
        }
        check_assignment(image, &assignments, None)?;
        Ok(MetadataRecord::CreateTopic {
            name: name.to_string(),
            id,
            assignments,
            configs,
        })
    }

    /// CreatePartitions: grows `topic` to `count` partitions, the new ones placed like a new
    /// topic's (continuing its rotation) with the replication factor of its first partition.
    pub fn create_partitions(
        &self,
        image: &MetadataImage,
        topic: &str,
        count: u32,
    ) -> Result<MetadataRecord, ControllerError> {
        let t = image
            .topics
            .get(topic)
            .ok_or_else(|| ControllerError::UnknownTopicOrPartition(topic.to_string()))?;
        let current = t.partitions.len();
        if count as usize <= current {
            return Err(ControllerError::InvalidPartitions(count));
        }
        let rf = t.partitions.first().map_or(1, |p| p.replicas.len());
        let assignments = place(image, current, count as usize - current, rf)?;
        assert_eq!(current + assignments.len(), count as usize);
        Ok(MetadataRecord::CreatePartitions {
            topic: topic.to_string(),
            assignments,
        })
    }

    /// CreatePartitions with the new partitions' replicas named by the request, each list as
    /// long as the topic's replication factor.
    pub fn create_partitions_assigned(
        &self,
        image: &MetadataImage,
        topic: &str,
        assignments: Vec<Vec<BrokerId>>,
    ) -> Result<MetadataRecord, ControllerError> {
        let t = image
            .topics
            .get(topic)
            .ok_or_else(|| ControllerError::UnknownTopicOrPartition(topic.to_string()))?;
        if assignments.is_empty() {
            return Err(ControllerError::InvalidPartitions(t.partitions.len() as u32));
        }
        let rf = t.partitions.first().map(|p| p.replicas.len());
        check_assignment(image, &assignments, rf)?;
        Ok(MetadataRecord::CreatePartitions {
            topic: topic.to_string(),
            assignments,
        })
    }

    /// Rules on a leader's ISR change; a change that puts a reassignment's whole target in
    /// sync also completes the reassignment.
    pub fn alter_isr(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: u32,
        from: BrokerId,
        leader_epoch: LeaderEpoch,
        isr: Vec<BrokerId>,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let p = partition_of(image, topic, partition)?;
        if p.leader != Some(from) {
            return Err(ControllerError::NotLeader(from));
        }
        if leader_epoch != p.leader_epoch {
            return Err(ControllerError::FencedLeaderEpoch {
                request: leader_epoch,
                current: p.leader_epoch,
            });
        }
        if !isr.contains(&from) {
            return Err(ControllerError::IneligibleReplica(from));
        }
        for b in &isr {
            let added = !p.isr.contains(b);
            if !p.replicas.contains(b) || (added && !image.is_live(*b)) {
                return Err(ControllerError::IneligibleReplica(*b));
            }
        }
        let mut batch = Batch::new(image);
        batch.push(MetadataRecord::ChangePartition {
            topic: topic.to_string(),
            partition,
            leader: Some(from),
            isr,
            leader_epoch,
        });
        // The replica that just joined may be the last of a reassignment's target.
        self.complete_into(&mut batch, topic, partition);
        Ok(batch.records)
    }

    /// A broker reports its replica of a partition failed (corrupt on its disk). It leaves
    /// the ISR and, if it led, the leadership goes to another ISR member (new epoch). With no
    /// other ISR member nothing changes (`None`): the failed replica is still the only one
    /// that may hold acknowledged records.
    pub fn replica_failed(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: u32,
        from: BrokerId,
    ) -> Result<Option<MetadataRecord>, ControllerError> {
        let p = partition_of(image, topic, partition)?;
        if !p.replicas.contains(&from) {
            return Err(ControllerError::IneligibleReplica(from));
        }
        let isr: Vec<BrokerId> = p.isr.iter().copied().filter(|b| *b != from).collect();
        if isr.len() == p.isr.len() && p.leader != Some(from) {
            return Ok(None);
        }
        if !isr.iter().any(|b| image.is_live(*b)) {
            return Ok(None);
        }
        let (leader, isr, leader_epoch) = if p.leader == Some(from) {
            let others: Vec<BrokerId> = p.replicas.iter().copied().filter(|b| *b != from).collect();
            let (leader, isr) = self.choose_leader(image, &others, &isr);
            (leader, isr, LeaderEpoch(p.leader_epoch.0 + 1))
        } else {
            (p.leader, isr, p.leader_epoch)
        };
        Ok(Some(MetadataRecord::ChangePartition {
            topic: topic.to_string(),
            partition,
            leader,
            isr,
            leader_epoch,
        }))
    }

    /// ElectLeaders for one partition. Preferred: its first replica leads, if live and in the
    /// ISR. Unclean: a partition without a leader gets one, from the live ISR members if any,
    /// else any live replica (which may lose what only the lost ISR had; the operator asked).
    pub fn elect_leader(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: u32,
        election: Election,
    ) -> Result<MetadataRecord, ControllerError> {
        let p = partition_of(image, topic, partition)?;
        let name = format!("{topic}-{partition}");
        let (leader, isr) = match election {
            Election::Preferred => {
                let preferred = p.replicas.first().copied();
                if p.leader.is_some() && p.leader == preferred {
                    return Err(ControllerError::ElectionNotNeeded(name));
                }
                match preferred {
                    Some(b) if p.isr.contains(&b) && image.is_live(b) => (b, p.isr.clone()),
                    _ => return Err(ControllerError::PreferredLeaderNotAvailable(name)),
                }
            }
            Election::Unclean => {
                if p.leader.is_some() {
                    return Err(ControllerError::ElectionNotNeeded(name));
                }
                let in_sync = p
                    .replicas
                    .iter()
                    .find(|r| p.isr.contains(r) && image.is_live(**r));
                match in_sync {
                    Some(b) => (*b, p.isr.clone()),
                    None => match p.replicas.iter().find(|r| image.is_live(**r)) {
                        Some(b) => (*b, vec![*b]),
                        None => return Err(ControllerError::EligibleLeadersNotAvailable(name)),
                    },
                }
            }
        };
        Ok(MetadataRecord::ChangePartition {
            topic: topic.to_string(),
            partition,
            leader: Some(leader),
            isr,
            leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
        })
    }

    /// `auto.leader.rebalance.enable`: partitions whose preferred replica is live, in sync and
    /// `settled` (live long enough, as the caller judges) but not leading get it back as
    /// leader.
    pub fn preferred_leader_elections(
        &self,
        image: &MetadataImage,
        settled: &std::collections::BTreeSet<BrokerId>,
    ) -> Vec<MetadataRecord> {
        let mut out = Vec::new();
        for (topic, t) in &image.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                let Some(preferred) = p.replicas.first().copied() else {
                    continue;
                };
                if p.leader != Some(preferred)
                    && p.isr.contains(&preferred)
                    && image.is_live(preferred)
                    && settled.contains(&preferred)
                {
                    out.push(MetadataRecord::ChangePartition {
                        topic: topic.clone(),
                        partition: i as u32,
                        leader: Some(preferred),
                        isr: p.isr.clone(),
                        leader_epoch: LeaderEpoch(p.leader_epoch.0 + 1),
                    });
                }
            }
        }
        out
    }
}

/// The partition `topic`-`partition` of the image, or UnknownTopicOrPartition.
fn partition_of<'a>(
    image: &'a MetadataImage,
    topic: &str,
    partition: u32,
) -> Result<&'a crate::controller::image::PartitionRegistration, ControllerError> {
    image
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(partition as usize))
        .ok_or_else(|| ControllerError::UnknownTopicOrPartition(format!("{topic}-{partition}")))
}

/// Checks a manual assignment as Kafka does: every partition has replicas, as many as the others
/// (and `replication_factor`, when the topic has one), no broker twice, and only live brokers.
fn check_assignment(
    image: &MetadataImage,
    assignments: &[Vec<BrokerId>],
    replication_factor: Option<usize>,
) -> Result<(), ControllerError> {
    let invalid = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    let live: BTreeSet<BrokerId> = image.live_brokers().iter().map(|b| b.id).collect();
    let rf = replication_factor.unwrap_or_else(|| assignments.first().map_or(0, Vec::len));
    for (i, replicas) in assignments.iter().enumerate() {
        if replicas.is_empty() {
            return invalid(format!("partition {i} has no replicas"));
        }
        if replicas.len() != rf {
            return invalid(format!(
                "partition {i} has {} replicas; every partition needs {rf}",
                replicas.len()
            ));
        }
        let distinct: BTreeSet<BrokerId> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            return invalid(format!("partition {i} names a broker twice: {replicas:?}"));
        }
        if let Some(b) = replicas.iter().find(|b| !live.contains(b)) {
            return invalid(format!(
                "partition {i} names broker {b}, which is not a registered live broker"
            ));
        }
    }
    Ok(())
}

/// Replicas for partitions `first..first + count` of a topic: across racks (Kafka's
/// rack-alternated broker list: r1b1, r2b1, r3b1, r1b2, ...), partition `p` starting at the
/// `p`-th broker of that list so preferred leaders spread over the brokers.
fn place(
    image: &MetadataImage,
    first: usize,
    count: usize,
    replication_factor: usize,
) -> Result<Vec<Vec<BrokerId>>, ControllerError> {
    let live = image.live_brokers();
    if replication_factor == 0 || replication_factor > live.len() {
        return Err(ControllerError::InvalidReplicationFactor {
            rf: replication_factor,
            live: live.len(),
        });
    }
    let mut by_rack: BTreeMap<String, Vec<BrokerId>> = BTreeMap::new();
    for b in &live {
        by_rack
            .entry(b.rack.clone().unwrap_or_default())
            .or_default()
            .push(b.id);
    }
    let mut ordered = Vec::new();
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    for i in 0..longest {
        for brokers in by_rack.values() {
            if let Some(b) = brokers.get(i) {
                ordered.push(*b);
            }
        }
    }
    let rack_of = |b: BrokerId| {
        image
            .brokers
            .get(&b)
            .and_then(|r| r.rack.clone())
            .unwrap_or_default()
    };
    let racks = by_rack.len();
    let n = ordered.len();
    let assignments: Vec<Vec<BrokerId>> = (first..first + count)
        .map(|p| {
            let mut replicas: Vec<BrokerId> = Vec::with_capacity(replication_factor);
            let mut used_racks = BTreeSet::new();
            // First pass: distinct racks while there are enough; second: anything unused.
            for pass in 0..2 {
                for k in 0..n {
                    if replicas.len() == replication_factor {
                        break;
                    }
                    let b = ordered[(p + k) % n];
                    if replicas.contains(&b) {
                        continue;
                    }
                    if pass == 0 && used_racks.len() < racks && used_racks.contains(&rack_of(b)) {
                        continue;
                    }
                    used_racks.insert(rack_of(b));
                    replicas.push(b);
                }
            }
            replicas
        })
        .collect();
    assert!(
        assignments.iter().all(|r| r.len() == replication_factor),
        "every partition gets replication_factor distinct live replicas"
    );
    Ok(assignments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    /// A cluster of `racks.len()` brokers (ids 1..), registered and unfenced at time 0.
    fn cluster(racks: &[&str], config: ControllerConfig) -> (MetadataImage, ControllerLogic) {
        let mut image = MetadataImage::default();
        let mut c = ControllerLogic::new(config);
        for (i, rack) in racks.iter().enumerate() {
            let id = BrokerId(i as i32 + 1);
            let (epoch, recs) = c.register_broker(&image, id, "127.0.0.1:1", Some(rack), None, 0);
            apply_all(&mut image, &recs);
            let recs = c.heartbeat(&image, id, epoch, 0).unwrap();
            apply_all(&mut image, &recs);
        }
        (image, c)
    }

    #[test]
    fn placement_spreads_replicas_over_racks_and_leaders_over_brokers() {
        let (mut image, c) = cluster(&["a", "a", "b", "b", "c", "c"], ControllerConfig::default());
        let r = c
            .create_topic(&image, "t", 1, 12, 3, BTreeMap::new())
            .unwrap();
        image.apply(&r);
        let t = &image.topics["t"];
        let mut leaders: BTreeMap<BrokerId, usize> = BTreeMap::new();
        for p in &t.partitions {
            let racks: BTreeSet<String> = p
                .replicas
                .iter()
                .map(|b| image.brokers[b].rack.clone().unwrap())
                .collect();
            assert_eq!(
                racks.len(),
                3,
                "three replicas on three racks: {:?}",
                p.replicas
            );
            *leaders.entry(p.leader.unwrap()).or_default() += 1;
        }
        assert_eq!(leaders.len(), 6, "every broker leads some partitions");
        assert!(leaders.values().all(|n| *n == 2), "{leaders:?}");
        assert!(matches!(
            c.create_topic(&image, "u", 2, 1, 7, BTreeMap::new()),
            Err(ControllerError::InvalidReplicationFactor { .. })
        ));
    }

    #[test]
    fn fencing_moves_leadership_within_the_isr_and_bumps_the_epoch() {
        let (mut image, mut c) = cluster(&["a", "b", "c"], ControllerConfig::default());
        let r = c
            .create_topic(&image, "t", 1, 3, 3, BTreeMap::new())
            .unwrap();
        image.apply(&r);
        let leader0 = image.topics["t"].partitions[0].leader.unwrap();
        // Everyone but leader0 keeps heartbeating.
        for b in [1, 2, 3].map(BrokerId) {
            if b != leader0 {
                let e = image.brokers[&b].epoch;
                let recs = c.heartbeat(&image, b, e, 500).unwrap();
                apply_all(&mut image, &recs);
            }
        }
        let recs = c.tick(&image, 700);
        apply_all(&mut image, &recs);
        let p = &image.topics["t"].partitions[0];
        assert_ne!(p.leader, Some(leader0));
        assert!(p.leader.is_some());
        assert_eq!(p.leader_epoch, LeaderEpoch(1));
        assert!(!p.isr.contains(&leader0));
        assert!(image.brokers[&leader0].fenced);
        // It comes back: re-register, heartbeat, and preferred leader election returns partition 0.
        let (e, recs) = c.register_broker(&image, leader0, "127.0.0.1:1", Some("a"), None, 800);
        apply_all(&mut image, &recs);
        let recs = c.heartbeat(&image, leader0, e, 800).unwrap();
        apply_all(&mut image, &recs);
        // It must rejoin the ISR (through the leader) before it can lead again.
        let settled: std::collections::BTreeSet<BrokerId> = image.brokers.keys().copied().collect();
        assert!(
            c.preferred_leader_elections(&image, &settled)
                .iter()
                .all(|r| !matches!(r, MetadataRecord::ChangePartition { partition: 0, .. }))
        );
        let p = image.topics["t"].partitions[0].clone();
        let mut isr = p.isr.clone();
        isr.push(leader0);
        let r = c
            .alter_isr(&image, "t", 0, p.leader.unwrap(), p.leader_epoch, isr)
            .unwrap();
        apply_all(&mut image, &r);
        // Live, in sync, but not settled yet (its clients may still be backing off): it waits.
        assert!(
            c.preferred_leader_elections(&image, &Default::default())
                .is_empty()
        );
        let recs = c.preferred_leader_elections(&image, &settled);
        apply_all(&mut image, &recs);
        assert_eq!(image.topics["t"].partitions[0].leader, Some(leader0));
        assert_eq!(image.topics["t"].partitions[0].leader_epoch, LeaderEpoch(2));
    }

    /// A failover election passes over an in-sync replica that has only just come back when
    /// another one can lead (its clients may still be backing off their reconnects), and
    /// takes it when it is the only one.
    #[test]
    fn a_failover_election_prefers_a_replica_that_has_not_just_returned() {
        let (mut image, mut c) = cluster(&["a", "b", "c"], ControllerConfig::default());
        let r = c
            .create_topic(&image, "t", 1, 1, 3, BTreeMap::new())
            .unwrap();
        image.apply(&r);
        let p = image.topics["t"].partitions[0].clone();
        let (leader0, next, last) = (p.replicas[0], p.replicas[1], p.replicas[2]);
        c.set_returning(BTreeSet::from([next]));
        for b in [next, last] {
            let e = image.brokers[&b].epoch;
            c.heartbeat(&image, b, e, 500).unwrap();
        }
        let recs = c.tick(&image, 700);
        apply_all(&mut image, &recs);
        assert_eq!(
            image.topics["t"].partitions[0].leader,
            Some(last),
            "not the one just back"
        );
        // The only in-sync replica left is the returning one: it leads.
        c.set_returning(BTreeSet::from([next]));
        let e = image.brokers[&next].epoch;
        c.heartbeat(&image, next, e, 1300).unwrap();
        let recs = c.tick(&image, 1400);
        apply_all(&mut image, &recs);
        let p = &image.topics["t"].partitions[0];
        assert!(image.brokers[&last].fenced && image.brokers[&leader0].fenced);
        assert_eq!(p.leader, Some(next));
    }

    #[test]
    fn a_failed_replica_leaves_the_isr_and_its_leadership_moves_within_it() {
        let (mut image, c) = cluster(&["a", "b", "c"], ControllerConfig::default());
        let r = c
            .create_topic(&image, "t", 1, 1, 3, BTreeMap::new())
            .unwrap();
        image.apply(&r);
        let p = image.topics["t"].partitions[0].clone();
        let leader = p.leader.unwrap();
        let r = c.replica_failed(&image, "t", 0, leader).unwrap().unwrap();
        image.apply(&r);
        let q = image.topics["t"].partitions[0].clone();
        assert!(!q.isr.contains(&leader), "out of the ISR: {q:?}");
        assert_eq!(q.isr.len(), 2);
        assert!(q.leader.is_some_and(|l| l != leader && q.isr.contains(&l)));
        assert_eq!(
            q.leader_epoch.0,
            p.leader_epoch.0 + 1,
            "a new leader, a new epoch"
        );
        // A follower's failure changes the ISR only.
        let follower = *q.isr.iter().find(|b| Some(**b) != q.leader).unwrap();
        let r = c.replica_failed(&image, "t", 0, follower).unwrap().unwrap();
        image.apply(&r);
        let q2 = &image.topics["t"].partitions[0];
        assert_eq!(q2.isr, vec![q.leader.unwrap()]);
        assert_eq!(q2.leader, q.leader);
        assert_eq!(q2.leader_epoch, q.leader_epoch);
        // The last ISR member stays: it may be the only holder of acknowledged records.
        assert_eq!(
            c.replica_failed(&image, "t", 0, q.leader.unwrap()).unwrap(),
            None
        );
        assert!(c.replica_failed(&image, "nope", 0, leader).is_err());
    }

    #[test]
    fn without_unclean_election_a_partition_waits_for_its_last_isr_member() {
        let (mut image, mut c) = cluster(&["a", "b"], ControllerConfig::default());
        let r = c
            .create_topic(&image, "t", 1, 1, 2, BTreeMap::new())
            .unwrap();
        image.apply(&r);
        let p = image.topics["t"].partitions[0].clone();
        let (leader, follower) = (p.replicas[0], p.replicas[1]);
        // The follower falls out of the ISR, then the leader dies.
        let r = c
            .alter_isr(&image, "t", 0, leader, p.leader_epoch, vec![leader])
            .unwrap();
        apply_all(&mut image, &r);
        let fe = image.brokers[&follower].epoch;
        let recs = c.heartbeat(&image, follower, fe, 1000).unwrap();
        apply_all(&mut image, &recs);
        let recs = c.tick(&image, 1000);
        apply_all(&mut image, &recs);
        let p = &image.topics["t"].partitions[0];
        assert_eq!(
            p.leader, None,
            "offline rather than electing the out-of-sync follower"
        );
        assert_eq!(p.isr, vec![leader], "the ISR keeps its last member");
        // With unclean election the follower would have been chosen.
        let (mut image2, mut c2) = cluster(
            &["a", "b"],
            ControllerConfig {
                unclean_leader_election: true,
                ..ControllerConfig::default()
            },
        );
        let r = c2
            .create_topic(&image2, "t", 1, 1, 2, BTreeMap::new())
            .unwrap();
        image2.apply(&r);
        let p = image2.topics["t"].partitions[0].clone();
        let r = c2
            .alter_isr(
                &image2,
                "t",
                0,
                p.replicas[0],
                p.leader_epoch,
                vec![p.replicas[0]],
            )
            .unwrap();
        apply_all(&mut image2, &r);
        let fe = image2.brokers[&p.replicas[1]].epoch;
        let recs = c2.heartbeat(&image2, p.replicas[1], fe, 1000).unwrap();
        apply_all(&mut image2, &recs);
        let recs = c2.tick(&image2, 1000);
        apply_all(&mut image2, &recs);
        assert_eq!(image2.topics["t"].partitions[0].leader, Some(p.replicas[1]));
        // The returning last ISR member brings the partition back.
        let (e, recs) = c.register_broker(&image, leader, "127.0.0.1:1", Some("a"), None, 1100);
        apply_all(&mut image, &recs);
        let recs = c.heartbeat(&image, leader, e, 1100).unwrap();
        apply_all(&mut image, &recs);
        assert_eq!(image.topics["t"].partitions[0].leader, Some(leader));
    }

    #[test]
    fn manual_assignments_are_placed_as_given_and_checked() {
        let (mut image, c) = cluster(&["a", "b", "c"], ControllerConfig::default());
        let b = |ids: &[i32]| ids.iter().map(|i| BrokerId(*i)).collect::<Vec<_>>();
        let r = c
            .create_topic_assigned(
                &image,
                "t",
                1,
                vec![b(&[3, 1]), b(&[2, 3])],
                BTreeMap::new(),
            )
            .unwrap();
        image.apply(&r);
        let t = &image.topics["t"];
        assert_eq!(t.partitions[0].replicas, b(&[3, 1]));
        assert_eq!(
            t.partitions[0].leader,
            Some(BrokerId(3)),
            "the first replica leads"
        );
        assert_eq!(t.partitions[1].replicas, b(&[2, 3]));
        for bad in [
            vec![b(&[1, 1])],
            vec![b(&[1, 2]), b(&[3])],
            vec![b(&[1, 9])],
            vec![b(&[])],
        ] {
            assert!(
                matches!(
                    c.create_topic_assigned(&image, "u", 2, bad.clone(), BTreeMap::new()),
                    Err(ControllerError::InvalidReplicaAssignment(_))
                ),
                "{bad:?}"
            );
        }
        let r = c
            .create_partitions_assigned(&image, "t", vec![b(&[1, 2])])
            .unwrap();
        image.apply(&r);
        assert_eq!(image.topics["t"].partitions[2].replicas, b(&[1, 2]));
        assert!(matches!(
            c.create_partitions_assigned(&image, "t", vec![b(&[1, 2, 3])]),
            Err(ControllerError::InvalidReplicaAssignment(_))
        ));
    }

    #[test]
    fn elect_leaders_preferred_and_unclean() {
        let (mut image, mut c) = cluster(&["a", "b", "c"], ControllerConfig::default());
        let b = |ids: &[i32]| ids.iter().map(|i| BrokerId(*i)).collect::<Vec<_>>();
        let r = c
            .create_topic_assigned(&image, "t", 1, vec![b(&[1, 2])], BTreeMap::new())
            .unwrap();
        image.apply(&r);
        assert!(matches!(
            c.elect_leader(&image, "t", 0, Election::Preferred),
            Err(ControllerError::ElectionNotNeeded(_))
        ));
        assert!(matches!(
            c.elect_leader(&image, "t", 9, Election::Preferred),
            Err(ControllerError::UnknownTopicOrPartition(_))
        ));
        // Broker 1 stops: 2 leads; preferred election needs 1 back.
        let recs = c.controlled_shutdown(&image, BrokerId(1));
        apply_all(&mut image, &recs);
        assert_eq!(image.topics["t"].partitions[0].leader, Some(BrokerId(2)));
        assert!(matches!(
            c.elect_leader(&image, "t", 0, Election::Preferred),
            Err(ControllerError::PreferredLeaderNotAvailable(_))
        ));
        assert!(matches!(
            c.elect_leader(&image, "t", 0, Election::Unclean),
            Err(ControllerError::ElectionNotNeeded(_))
        ));
        let (e, recs) = c.register_broker(&image, BrokerId(1), "127.0.0.1:1", Some("a"), None, 10);
        apply_all(&mut image, &recs);
        let recs = c.heartbeat(&image, BrokerId(1), e, 10).unwrap();
        apply_all(&mut image, &recs);
        let p = image.topics["t"].partitions[0].clone();
        let r = c
            .alter_isr(&image, "t", 0, BrokerId(2), p.leader_epoch, b(&[2, 1]))
            .unwrap();
        apply_all(&mut image, &r);
        let r = c.elect_leader(&image, "t", 0, Election::Preferred).unwrap();
        image.apply(&r);
        assert_eq!(image.topics["t"].partitions[0].leader, Some(BrokerId(1)));
        // Unclean: the ISR (1) is gone, only 2 is live; it may lead with an ISR of itself.
        let p = image.topics["t"].partitions[0].clone();
        let r = c
            .alter_isr(&image, "t", 0, BrokerId(1), p.leader_epoch, b(&[1]))
            .unwrap();
        apply_all(&mut image, &r);
        let recs = c.controlled_shutdown(&image, BrokerId(1));
        apply_all(&mut image, &recs);
        assert_eq!(image.topics["t"].partitions[0].leader, None, "offline");
        let r = c.elect_leader(&image, "t", 0, Election::Unclean).unwrap();
        image.apply(&r);
        let p = &image.topics["t"].partitions[0];
        assert_eq!((p.leader, p.isr.clone()), (Some(BrokerId(2)), b(&[2])));
    }

    #[test]
    fn isr_changes_are_checked() {
        let (mut image, mut c) = cluster(&["a", "b", "c"], ControllerConfig::default());
        let r = c
            .create_topic(&image, "t", 1, 1, 3, BTreeMap::new())
            .unwrap();
        image.apply(&r);
        let p = image.topics["t"].partitions[0].clone();
        let l = p.leader.unwrap();
        let other = p.replicas[1];
        assert!(matches!(
            c.alter_isr(&image, "t", 0, other, p.leader_epoch, p.isr.clone()),
            Err(ControllerError::NotLeader(_))
        ));
        assert!(matches!(
            c.alter_isr(&image, "t", 0, l, LeaderEpoch(5), p.isr.clone()),
            Err(ControllerError::FencedLeaderEpoch { .. })
        ));
        assert!(matches!(
            c.alter_isr(&image, "t", 0, l, p.leader_epoch, vec![other]),
            Err(ControllerError::IneligibleReplica(_))
        ));
        // Shrink, fence the removed replica, and it cannot be added back while fenced.
        let r = c
            .alter_isr(&image, "t", 0, l, p.leader_epoch, vec![l, other])
            .unwrap();
        apply_all(&mut image, &r);
        let third = p.replicas[2];
        let recs = c.controlled_shutdown(&image, third);
        apply_all(&mut image, &recs);
        assert!(
            matches!(c.alter_isr(&image, "t", 0, l, p.leader_epoch, vec![l, other, third]), Err(ControllerError::IneligibleReplica(b)) if b == third)
        );
    }

    /// CreatePartitions appends partitions placed like a new topic's, keeps the replication
    /// factor, and refuses shrinking, unknown topics and too few live brokers.
    #[test]
    fn create_partitions_grows_a_topic_with_its_replication_factor() {
        let (mut image, c) = cluster(&["a", "b", "c"], ControllerConfig::default());
        let t = c
            .create_topic(&image, "t", 1, 2, 2, BTreeMap::new())
            .unwrap();
        image.apply(&t);
        let grow = c.create_partitions(&image, "t", 5).unwrap();
        let MetadataRecord::CreatePartitions { assignments, .. } = &grow else {
            panic!("{grow:?}")
        };
        assert_eq!(assignments.len(), 3);
        assert!(assignments.iter().all(|r| r.len() == 2));
        image.apply(&grow);
        let parts = &image.topics["t"].partitions;
        assert_eq!(parts.len(), 5);
        let leaders: BTreeSet<_> = parts.iter().filter_map(|p| p.leader).collect();
        assert_eq!(
            leaders.len(),
            3,
            "preferred leaders spread over the brokers"
        );
        assert!(matches!(
            c.create_partitions(&image, "t", 5),
            Err(ControllerError::InvalidPartitions(5))
        ));
        assert!(matches!(
            c.create_partitions(&image, "nope", 9),
            Err(ControllerError::UnknownTopicOrPartition(_))
        ));
    }
}
