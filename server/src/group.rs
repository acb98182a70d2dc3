//! The group coordinator (classic consumer group protocol) and the committed offsets store.
//!
//! Membership: JoinGroup parks each member until every known member has rejoined (or the
//! rebalance timeout passes, or, for an empty group, `group.initial.rebalance.delay.ms`), then
//! answers all of them with a new generation, the leader getting the member list. SyncGroup parks
//! members until the leader's assignment arrives and hands each its bytes exactly as the leader
//! sent them. Members that stop heartbeating for their session timeout are removed, which starts a
//! rebalance.
//!
//! Offsets: a commit is appended to the compacted `__consumer_offsets` topic, in Kafka's record
//! schema (key v1: group, topic, partition; value v3: offset, leader epoch, metadata, commit
//! timestamp), and acknowledged only once durable; the in-memory cache is rebuilt from that topic
//! at startup, so commits survive restarts and SIGKILL.
//!
//! Invariant: the cache holds exactly the last durable commit of each (group, topic, partition).
//!
//! Membership: each completed rebalance (and a group becoming empty) is written to the same
//! partition as a group metadata record ([`group_metadata`]), durably and on the in-sync
//! replicas before the members get their assignments; the broker that takes the partition over
//! loads the groups with the offsets, so members keep heartbeating at their generation through a
//! coordinator failover, with no rebalance.
//!
//! Groups of the new consumer protocol (KIP-848) are in [`consumer_group`]; a group id is one
//! kind or the other, and both kinds commit offsets here.

pub mod assignor;
pub mod consumer_group;
pub mod consumer_group_record;
pub mod group_metadata;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use strata_engine::{Offset, ReadLimits, Stage, batch};
use tokio::sync::oneshot;

use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::error_code::ErrorCode;
use crate::topic::AppendOutcome;

/// Group states, named as Kafka reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignment.
    Stable,
}

impl GroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a member's JoinGroup gets back.
#[derive(Clone, Debug)]
pub struct JoinResult {
    /// Error, or none.
    pub error: ErrorCode,
    /// The new generation.
    pub generation_id: i32,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// For the leader: every member with its metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinResult {
    fn error(error: ErrorCode, member_id: &str) -> JoinResult {
        JoinResult {
            error,
            generation_id: -1,
            protocol_name: None,
            protocol_type: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: vec![],
        }
    }
}

#[derive(Debug)]
struct Member {
    client_id: String,
    client_host: String,
    group_instance_id: Option<String>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
    join_waiter: Option<oneshot::Sender<JoinResult>>,
    sync_waiter: Option<oneshot::Sender<(ErrorCode, Bytes)>>,
}

#[derive(Debug)]
struct Group {
    state: GroupState,
    generation_id: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Member ids handed out by MEMBER_ID_REQUIRED that have not joined yet (KIP-394).
    pending: HashMap<String, Instant>,
    rebalance_started: Option<Instant>,
    rebalance_epoch: u64,
}

impl Group {
    /// A group as loaded from its metadata record: its members alive from `now` on, stable at
    /// their generation (or empty).
    fn from_stored(g: group_metadata::StoredGroup, now: Instant) -> Group {
        let members: BTreeMap<String, Member> = g
            .members
            .into_iter()
            .map(|m| {
                let protocols = match &g.protocol {
                    Some(p) => vec![(p.clone(), m.subscription)],
                    None => vec![],
                };
                let member = Member {
                    client_id: m.client_id,
                    client_host: m.client_host,
                    group_instance_id: m.group_instance_id,
                    session_timeout: Duration::from_millis(m.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(m.rebalance_timeout_ms.max(0) as u64),
                    protocols,
                    assignment: m.assignment,
                    last_heartbeat: now,
                    join_waiter: None,
                    sync_waiter: None,
                };
                (m.member_id, member)
            })
            .collect();
        Group {
            state: if members.is_empty() {
                GroupState::Empty
            } else {
                GroupState::Stable
            },
            generation_id: g.generation,
            protocol_type: Some(g.protocol_type).filter(|t| !t.is_empty()),
            protocol_name: g.protocol,
            leader: g.leader,
            members,
            pending: HashMap::new(),
            rebalance_started: None,
            rebalance_epoch: 0,
        }
    }

    /// The group as its metadata record stores it.
    fn to_stored(&self) -> group_metadata::StoredGroup {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        group_metadata::StoredGroup {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation_id,
            protocol: self.protocol_name.clone(),
            leader: self.leader.clone(),
            state_timestamp: now,
            members: self
                .members
                .iter()
                .map(|(id, m)| group_metadata::StoredMember {
                    member_id: id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: i32::try_from(m.rebalance_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    session_timeout_ms: i32::try_from(m.session_timeout.as_millis())
                        .unwrap_or(i32::MAX),
                    subscription: m
                        .protocols
                        .iter()
                        .find(|p| Some(&p.0) == self.protocol_name.as_ref())
                        .map(|p| p.1.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn new() -> Group {
        Group {
            state: GroupState::Empty,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance_started: None,
            rebalance_epoch: 0,
        }
    }
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset.
    pub offset: i64,
    /// Leader epoch of the record before it, or -1.
    pub leader_epoch: i32,
    /// The client's metadata string.
    pub metadata: Option<String>,
}

/// A join request, decoded.
#[derive(Debug)]
pub struct JoinRequest {
    /// Group id.
    pub group_id: String,
    /// Member id ("" when new).
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The client id from the request header.
    pub client_id: String,
    /// The client's address (`/127.0.0.1`), or empty.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type ("consumer").
    pub protocol_type: String,
    /// Protocols with metadata, in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// Whether the client understands MEMBER_ID_REQUIRED (JoinGroup v4+).
    pub requires_known_member_id: bool,
}

type OffsetKey = (String, String, i32);

/// Records a coordinator appended to its internal topic, not yet safe.
pub(crate) struct PendingAppend {
    pub(crate) partition: Arc<crate::topic::Partition>,
    pub(crate) info: strata_engine::AppendInfo,
    pub(crate) epoch: strata_engine::LeaderEpoch,
}

impl PendingAppend {
    /// Waits until the records are durable here and, in a cluster, on the in-sync replicas
    /// (like a produce with acks=all), so they survive the loss of this broker.
    pub(crate) async fn settle(self) -> Result<(), ErrorCode> {
        // Followers long-polling this partition copy the records once they are written.
        if self.info.completion.until(Stage::Written).await.is_ok() {
            self.partition.wake_fetches();
        }
        self.info
            .completion
            .until(Stage::Durable)
            .await
            .map_err(|e| ErrorCode::from(&e))?;
        self.partition.on_local_progress();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        self.partition
            .wait_replicated(Offset(self.info.last_offset.0 + 1), self.epoch, deadline)
            .await
            .map_err(|(code, _)| match code {
                ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator,
                other => other,
            })
    }
}

/// A group as ListGroups reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedGroup {
    /// The group id.
    pub group_id: String,
    /// Kafka's name of its state.
    pub state: &'static str,
    /// Its protocol type (`consumer` for consumer groups of either kind).
    pub protocol_type: String,
    /// `classic` or `consumer` (KIP-848).
    pub group_type: &'static str,
}

/// The group coordinator of this broker.
#[derive(Debug)]
pub struct GroupCoordinator {
    broker: Arc<Broker>,
    groups: Mutex<HashMap<String, Group>>,
    /// Consumer groups of the KIP-848 protocol. Lock order: `groups` before this.
    consumer_groups: Mutex<HashMap<String, consumer_group::ConsumerGroup>>,
    offsets: Mutex<BTreeMap<OffsetKey, CommittedOffset>>,
    /// The `__consumer_offsets` offset of the commit record that set each cached offset, so
    /// that commits reach the cache in log order whatever order their waits end in. Lock
    /// order: `offsets` before this.
    applied_at: Mutex<HashMap<OffsetKey, Offset>>,
    /// In a cluster: the `__consumer_offsets` partitions whose groups and offsets are loaded
    /// here. One this broker leads but has not loaded yet answers COORDINATOR_LOAD_IN_PROGRESS
    /// (not an empty group, which would make members rejoin and consumers lose their place).
    loaded: Mutex<std::collections::HashSet<i32>>,
    /// Offsets committed inside transactions (TxnOffsetCommit) whose marker has not reached
    /// their `__consumer_offsets` partition yet, by producer id: each with the offset of its
    /// record, applied by a commit marker, dropped by an abort.
    pending_txn: Mutex<PendingTxnOffsets>,
}

/// Offsets of open transactions, by producer id: (key, offset, where its record is).
type PendingTxnOffsets = HashMap<i64, Vec<(OffsetKey, CommittedOffset, Offset)>>;

/// A record for `__consumer_offsets`: key, and value (`None`: a tombstone).
type KeyedRecord = (Vec<u8>, Option<Vec<u8>>);

/// The `__consumer_offsets` records of a group's commits, and the time they carry.
fn offset_records(
    group_id: &str,
    commits: &[((String, i32), CommittedOffset)],
) -> (Vec<KeyedRecord>, i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let records = commits
        .iter()
        .map(|((t, p), c)| (encode_key(group_id, t, *p), Some(encode_value(c, now))))
        .collect();
    (records, now)
}

/// Kafka's partition of a key: `Utils.abs(key.hashCode) % n`, with Java's `String.hashCode`
/// (groups in `__consumer_offsets`, transactional ids in `__transaction_state`).
pub fn partition_of(key: &str, n: i32) -> i32 {
    let mut h: i32 = 0;
    for c in key.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(c));
    }
    (h & 0x7fff_ffff) % n.max(1)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Puts a settled commit in the cache unless a later commit record of the same key (at a
/// higher `__consumer_offsets` offset) is already there: two commits of one partition in
/// flight at once (a client's retry on a new connection while its first request still
/// crosses a slow link) settle together and may finish their waits in either order, and the
/// group's committed offset must be the one the log ends with.
fn apply_in_log_order(
    offsets: &mut BTreeMap<OffsetKey, CommittedOffset>,
    applied: &mut HashMap<OffsetKey, Offset>,
    key: OffsetKey,
    commit: CommittedOffset,
    at: Offset,
) {
    if applied.get(&key).is_some_and(|later| *later > at) {
        return;
    }
    applied.insert(key.clone(), at);
    offsets.insert(key, commit);
}

impl GroupCoordinator {
    /// Loads committed offsets from `__consumer_offsets` (standalone: every partition; in a
    /// cluster each partition is loaded when this broker becomes its leader).
    pub fn load(broker: Arc<Broker>) -> anyhow::Result<Arc<GroupCoordinator>> {
        let mut offsets = BTreeMap::new();
        let mut stored = StoredGroups::default();
        let mut pending = PendingTxnOffsets::new();
        if broker.cluster.is_none()
            && let Some(topic) = broker.topic(OFFSETS_TOPIC)
        {
            for p in topic.local_partitions() {
                read_offsets(&p, &mut offsets, &mut stored, &mut pending)?;
            }
        }
        let now = Instant::now();
        let groups: HashMap<String, Group> = stored
            .classic
            .into_iter()
            .filter_map(|(id, g)| Some((id, Group::from_stored(g?, now))))
            .collect();
        let consumer_groups: HashMap<String, consumer_group::ConsumerGroup> = stored
            .consumer
            .into_iter()
            .filter_map(|(id, g)| Some((id, consumer_group::ConsumerGroup::from_stored(g?, now)?)))
            .collect();
        tracing::info!(
            offsets = offsets.len(),
            groups = groups.len(),
            consumer_groups = consumer_groups.len(),
            "loaded committed offsets and groups"
        );
        Ok(Arc::new(GroupCoordinator {
            broker,
            groups: Mutex::new(groups),
            consumer_groups: Mutex::new(consumer_groups),
            offsets: Mutex::new(offsets),
            applied_at: Mutex::new(HashMap::new()),
            loaded: Mutex::new(std::collections::HashSet::new()),
            pending_txn: Mutex::new(pending),
        }))
    }

    /// This broker became the leader of `__consumer_offsets` partition `index`: the groups
    /// that hash to it are coordinated here now; their committed offsets are read from it.
    pub fn load_partition(&self, index: i32) {
        let Some(p) = self
            .broker
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partition(index))
        else {
            return;
        };
        let mut loaded = BTreeMap::new();
        let mut stored = StoredGroups::default();
        let mut pending = PendingTxnOffsets::new();
        if let Err(e) = read_offsets(&p, &mut loaded, &mut stored, &mut pending) {
            tracing::error!(partition = index, error = %e, "reading committed offsets");
            return;
        }
        let n = loaded.len();
        {
            let mut offsets = lock(&self.offsets);
            offsets.retain(|(g, _, _), _| self.partition_for(g) != index);
            offsets.extend(loaded);
            lock(&self.applied_at).retain(|(g, _, _), _| self.partition_for(g) != index);
            let mut txn = lock(&self.pending_txn);
            for list in txn.values_mut() {
                list.retain(|((g, _, _), _, _)| self.partition_for(g) != index);
            }
            for (pid, list) in pending {
                txn.entry(pid).or_default().extend(list);
            }
            txn.retain(|_, l| !l.is_empty());
        }
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        groups.retain(|g, _| self.partition_for(g) != index);
        let mut members = 0;
        for (id, g) in stored.classic {
            if let Some(g) = g {
                let group = Group::from_stored(g, now);
                members += group.members.len();
                groups.insert(id, group);
            }
        }
        drop(groups);
        {
            let mut consumer = lock(&self.consumer_groups);
            consumer.retain(|g, _| self.partition_for(g) != index);
            for (id, g) in stored.consumer {
                if let Some(group) =
                    g.and_then(|g| consumer_group::ConsumerGroup::from_stored(g, now))
                {
                    members += group.members.len();
                    consumer.insert(id, group);
                }
            }
        }
        lock(&self.loaded).insert(index);
        tracing::info!(
            partition = index,
            offsets = n,
            members,
            "coordinating the groups of an offsets partition"
        );
    }

    /// This broker no longer leads `__consumer_offsets` partition `index`: its groups move.
    pub fn unload_partition(&self, index: i32) {
        lock(&self.loaded).remove(&index);
        {
            let mut txn = lock(&self.pending_txn);
            for list in txn.values_mut() {
                list.retain(|((g, _, _), _, _)| self.partition_for(g) != index);
            }
            txn.retain(|_, l| !l.is_empty());
        }
        lock(&self.offsets).retain(|(g, _, _), _| self.partition_for(g) != index);
        lock(&self.applied_at).retain(|(g, _, _), _| self.partition_for(g) != index);
        lock(&self.consumer_groups).retain(|g, _| self.partition_for(g) != index);
        let mut groups = lock(&self.groups);
        let moved: Vec<String> = groups
            .keys()
            .filter(|g| self.partition_for(g) == index)
            .cloned()
            .collect();
        for g in moved {
            if let Some(group) = groups.remove(&g) {
                for (id, m) in group.members {
                    if let Some(tx) = m.join_waiter {
                        let _ = tx.send(JoinResult::error(ErrorCode::NotCoordinator, &id));
                    }
                    if let Some(tx) = m.sync_waiter {
                        let _ = tx.send((ErrorCode::NotCoordinator, Bytes::new()));
                    }
                }
            }
        }
    }

    /// NOT_COORDINATOR unless this broker leads the group's offsets partition (always
    /// standalone); COORDINATOR_NOT_AVAILABLE while that partition has no leader.
    pub fn check_coordinator(&self, group_id: &str) -> ErrorCode {
        let Some(cluster) = &self.broker.cluster else {
            return ErrorCode::None;
        };
        let index = self.partition_for(group_id);
        let image = cluster.image();
        let Some(reg) = image.topics.get(OFFSETS_TOPIC).and_then(|t| {
            t.partitions
                .get(usize::try_from(index).unwrap_or(usize::MAX))
        }) else {
            return ErrorCode::CoordinatorNotAvailable;
        };
        if reg.leader.is_none() {
            return ErrorCode::CoordinatorNotAvailable;
        }
        let local = self
            .broker
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partition(index))
            .is_some_and(|p| p.is_leader());
        if !(local && cluster.holds_lease()) {
            ErrorCode::NotCoordinator
        } else if !lock(&self.loaded).contains(&index) {
            ErrorCode::CoordinatorLoadInProgress
        } else {
            ErrorCode::None
        }
    }
}

/// The groups of a partition as its records leave them (`None`: deleted): classic groups, and
/// consumer groups of the KIP-848 protocol.
#[derive(Default)]
struct StoredGroups {
    classic: BTreeMap<String, Option<group_metadata::StoredGroup>>,
    consumer: BTreeMap<String, Option<consumer_group_record::StoredConsumerGroup>>,
}

/// Reads every committed offset and group in one `__consumer_offsets` partition. Offsets
/// committed in a transaction count once its commit marker follows them, and are dropped by an
/// abort; those of transactions still open at the end are left in `pending`.
fn read_offsets(
    p: &crate::topic::Partition,
    offsets: &mut BTreeMap<OffsetKey, CommittedOffset>,
    groups: &mut StoredGroups,
    pending: &mut PendingTxnOffsets,
) -> anyhow::Result<()> {
    let mut next = p.log.log_start_offset();
    loop {
        let r = p.log.read(next, ReadLimits::bytes(4 << 20))?;
        let Some(slice) = r.slice else { break };
        let bytes = slice.read_to_vec()?;
        let mut pos = 0usize;
        while pos < bytes.len() {
            let h = batch::parse_header(&bytes[pos..], pos)?;
            let one = &bytes[pos..pos + h.size()];
            if h.is_control() {
                if let Some((control, _)) = crate::topic::ControlType::of_batch(one)
                    && let Some(list) = pending.remove(&h.producer_id)
                    && control == crate::topic::ControlType::Commit
                {
                    for (key, c, _) in list {
                        offsets.insert(key, c);
                    }
                }
                pos += h.size();
                continue;
            }
            if h.is_transactional() {
                if let Some(records) = batch::records(one) {
                    let list = pending.entry(h.producer_id).or_default();
                    for r in records {
                        if let (Some(key), Some(c)) =
                            (r.key.and_then(decode_key), r.value.and_then(decode_value))
                        {
                            list.push((key, c, h.base_offset));
                        }
                    }
                }
                pos += h.size();
                continue;
            }
            if let Some(records) = batch::records(one) {
                for r in records {
                    if let Some(group) = r.key.and_then(group_metadata::decode_key) {
                        groups
                            .classic
                            .insert(group, r.value.and_then(group_metadata::decode_value));
                        continue;
                    }
                    if let Some(group) = r.key.and_then(consumer_group_record::decode_key) {
                        groups
                            .consumer
                            .insert(group, r.value.and_then(consumer_group_record::decode_value));
                        continue;
                    }
                    let Some(key) = r.key.and_then(decode_key) else {
                        continue;
                    };
                    match r.value.and_then(decode_value) {
                        Some(v) => {
                            offsets.insert(key, v);
                        }
                        None => {
                            offsets.remove(&key);
                        }
                    }
                }
            }
            pos += h.size();
        }
        next = slice.next_offset();
    }
    Ok(())
}

impl GroupCoordinator {
    /// The `__consumer_offsets` partition of a group.
    pub fn partition_for(&self, group: &str) -> i32 {
        let n = match &self.broker.cluster {
            Some(c) => c
                .image()
                .topics
                .get(OFFSETS_TOPIC)
                .map_or(self.broker.config.offsets_topic_partitions, |t| {
                    t.partitions.len() as i32
                }),
            None => self
                .broker
                .topic(OFFSETS_TOPIC)
                .map_or(1, |t| t.partition_count() as i32),
        }
        .max(1);
        partition_of(group, n)
    }

    /// Handles a JoinGroup; completes when the rebalance does.
    pub async fn join(self: &Arc<Self>, req: JoinRequest) -> JoinResult {
        let cfg = &self.broker.config;
        if req.group_id.is_empty() {
            return JoinResult::error(ErrorCode::InvalidGroupId, &req.member_id);
        }
        let coordinator = self.check_coordinator(&req.group_id);
        if coordinator != ErrorCode::None {
            return JoinResult::error(coordinator, &req.member_id);
        }
        if req.session_timeout_ms < cfg.group_min_session_timeout_ms
            || req.session_timeout_ms > cfg.group_max_session_timeout_ms
        {
            return JoinResult::error(ErrorCode::InvalidSessionTimeout, &req.member_id);
        }
        if req.protocols.is_empty() || req.protocol_type.is_empty() {
            return JoinResult::error(ErrorCode::InconsistentGroupProtocol, &req.member_id);
        }
        {
            // A consumer group (KIP-848) with members takes no classic members (Kafka can
            // convert between the two; Strata does not); an empty one becomes a classic group.
            let mut consumer = lock(&self.consumer_groups);
            if let Some(g) = consumer.get(&req.group_id) {
                if !g.members.is_empty() {
                    return JoinResult::error(ErrorCode::InconsistentGroupProtocol, &req.member_id);
                }
                consumer.remove(&req.group_id);
            }
        }
        let rx = {
            let mut groups = lock(&self.groups);
            let group = groups
                .entry(req.group_id.clone())
                .or_insert_with(Group::new);
            if group
                .protocol_type
                .as_deref()
                .is_some_and(|t| t != req.protocol_type)
                && !group.members.is_empty()
            {
                return JoinResult::error(ErrorCode::InconsistentGroupProtocol, &req.member_id);
            }
            let mut member_id = req.member_id.clone();
            if member_id.is_empty() {
                member_id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
                if req.requires_known_member_id {
                    group.pending.insert(member_id.clone(), Instant::now());
                    return JoinResult::error(ErrorCode::MemberIdRequired, &member_id);
                }
            } else if !group.members.contains_key(&member_id)
                && group.pending.remove(&member_id).is_none()
            {
                return JoinResult::error(ErrorCode::UnknownMemberId, &member_id);
            }
            let (tx, rx) = oneshot::channel();
            let session = Duration::from_millis(req.session_timeout_ms as u64);
            let rebalance =
                Duration::from_millis(req.rebalance_timeout_ms.max(req.session_timeout_ms) as u64);
            let member = group
                .members
                .entry(member_id.clone())
                .or_insert_with(|| Member {
                    client_id: req.client_id.clone(),
                    client_host: req.client_host.clone(),
                    group_instance_id: req.group_instance_id.clone(),
                    session_timeout: session,
                    rebalance_timeout: rebalance,
                    protocols: vec![],
                    assignment: Bytes::new(),
                    last_heartbeat: Instant::now(),
                    join_waiter: None,
                    sync_waiter: None,
                });
            let changed = member.protocols != req.protocols;
            member.protocols = req.protocols.clone();
            member.session_timeout = session;
            member.rebalance_timeout = rebalance;
            member.last_heartbeat = Instant::now();
            member.join_waiter = Some(tx);
            group.protocol_type = Some(req.protocol_type.clone());
            let needs_rebalance = match group.state {
                GroupState::PreparingRebalance => false,
                // A known member rejoining a stable group with the same protocols while its
                // assignment stands is answered at once; anything else rebalances.
                GroupState::Stable
                    if !changed && group.leader.as_deref() != Some(member_id.as_str()) =>
                {
                    let result = self.join_result_locked(group, &member_id);
                    if let Some(m) = group.members.get_mut(&member_id)
                        && let Some(tx) = m.join_waiter.take()
                    {
                        let _ = tx.send(result);
                    }
                    false
                }
                _ => true,
            };
            if needs_rebalance {
                self.prepare_rebalance_locked(&req.group_id, group);
            }
            self.try_complete_join_locked(&req.group_id, group, false);
            rx
        };
        rx.await
            .unwrap_or_else(|_| JoinResult::error(ErrorCode::RebalanceInProgress, &req.member_id))
    }

    fn prepare_rebalance_locked(self: &Arc<Self>, group_id: &str, group: &mut Group) {
        let was_empty = group.state == GroupState::Empty;
        group.state = GroupState::PreparingRebalance;
        group.rebalance_started = Some(Instant::now());
        group.rebalance_epoch += 1;
        // Members waiting in SyncGroup learn that a rebalance started.
        for m in group.members.values_mut() {
            if let Some(tx) = m.sync_waiter.take() {
                let _ = tx.send((ErrorCode::RebalanceInProgress, Bytes::new()));
            }
        }
        let timeout = group
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::from_secs(5));
        let delay = if was_empty {
            Duration::from_millis(self.broker.config.group_initial_rebalance_delay_ms)
        } else {
            Duration::ZERO
        };
        let epoch = group.rebalance_epoch;
        let me = self.clone();
        let gid = group_id.to_string();
        // Completes the join once the initial delay has passed (if everyone is in), and by
        // force at the rebalance timeout, dropping members that did not rejoin.
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
                me.with_group(&gid, |me, g| {
                    if g.rebalance_epoch == epoch {
                        g.rebalance_started = None;
                        me.try_complete_join_locked(&gid, g, false);
                    }
                });
            } else {
                me.with_group(&gid, |_, g| {
                    if g.rebalance_epoch == epoch {
                        g.rebalance_started = None;
                    }
                });
            }
            tokio::time::sleep(timeout.saturating_sub(delay)).await;
            me.with_group(&gid, |me, g| {
                if g.rebalance_epoch == epoch && g.state == GroupState::PreparingRebalance {
                    me.try_complete_join_locked(&gid, g, true);
                }
            });
        });
        if delay.is_zero() {
            group.rebalance_started = None;
        }
    }

    fn with_group(self: &Arc<Self>, group_id: &str, f: impl FnOnce(&Arc<Self>, &mut Group)) {
        let mut groups = lock(&self.groups);
        if let Some(g) = groups.get_mut(group_id) {
            f(self, g);
        }
    }

    fn try_complete_join_locked(self: &Arc<Self>, group_id: &str, group: &mut Group, force: bool) {
        if group.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = group.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = group.rebalance_started.is_none();
        if !(force || all_joined && delay_over) {
            return;
        }
        // Members that did not rejoin in time are out.
        group.members.retain(|_, m| m.join_waiter.is_some());
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.generation_id += 1;
            group.leader = None;
            group.protocol_name = None;
            self.store_group_in_background(group_id, group);
            return;
        }
        // The protocol every member supports, in the first member's order of preference.
        let first: Vec<String> = group
            .members
            .values()
            .next()
            .map(|m| m.protocols.iter().map(|p| p.0.clone()).collect())
            .unwrap_or_default();
        let chosen = first.into_iter().find(|name| {
            group
                .members
                .values()
                .all(|m| m.protocols.iter().any(|p| &p.0 == name))
        });
        let Some(chosen) = chosen else {
            for m in group.members.values_mut() {
                if let Some(tx) = m.join_waiter.take() {
                    let _ = tx.send(JoinResult::error(ErrorCode::InconsistentGroupProtocol, ""));
                }
            }
            group.members.clear();
            group.state = GroupState::Empty;
            return;
        };
        group.generation_id += 1;
        group.protocol_name = Some(chosen);
        if group
            .leader
            .as_ref()
            .is_none_or(|l| !group.members.contains_key(l))
        {
            group.leader = group.members.keys().next().cloned();
        }
        group.state = GroupState::CompletingRebalance;
        let ids: Vec<String> = group.members.keys().cloned().collect();
        for id in ids {
            let result = self.join_result_locked(group, &id);
            if let Some(m) = group.members.get_mut(&id) {
                m.last_heartbeat = Instant::now();
                m.assignment = Bytes::new();
                if let Some(tx) = m.join_waiter.take() {
                    let _ = tx.send(result);
                }
            }
        }
        tracing::debug!(
            group = group_id,
            generation = group.generation_id,
            members = group.members.len(),
            "rebalance joined"
        );
    }

    fn join_result_locked(&self, group: &Group, member_id: &str) -> JoinResult {
        let leader = group.leader.clone().unwrap_or_default();
        let protocol = group.protocol_name.clone();
        let members = if leader == member_id {
            group
                .members
                .iter()
                .map(|(id, m)| {
                    let meta = m
                        .protocols
                        .iter()
                        .find(|p| Some(&p.0) == protocol.as_ref())
                        .map(|p| p.1.clone())
                        .unwrap_or_default();
                    (id.clone(), m.group_instance_id.clone(), meta)
                })
                .collect()
        } else {
            vec![]
        };
        JoinResult {
            error: ErrorCode::None,
            generation_id: group.generation_id,
            protocol_name: protocol,
            protocol_type: group.protocol_type.clone(),
            leader,
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Handles a SyncGroup; the leader's assignments are handed out exactly as sent, once the
    /// group's new membership is stored (durably, and on the in-sync replicas).
    pub async fn sync(
        self: &Arc<Self>,
        group_id: &str,
        generation: i32,
        member_id: &str,
        assignments: Vec<(String, Bytes)>,
    ) -> (ErrorCode, Bytes) {
        let coordinator = self.check_coordinator(group_id);
        if coordinator != ErrorCode::None {
            return (coordinator, Bytes::new());
        }
        let (rx, completed) = {
            let mut groups = lock(&self.groups);
            let Some(group) = groups.get_mut(group_id) else {
                return (ErrorCode::UnknownMemberId, Bytes::new());
            };
            if !group.members.contains_key(member_id) {
                return (ErrorCode::UnknownMemberId, Bytes::new());
            }
            if generation != group.generation_id {
                return (ErrorCode::IllegalGeneration, Bytes::new());
            }
            match group.state {
                GroupState::PreparingRebalance | GroupState::Empty => {
                    return (ErrorCode::RebalanceInProgress, Bytes::new());
                }
                GroupState::Stable => {
                    let a = group
                        .members
                        .get(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    return (ErrorCode::None, a);
                }
                GroupState::CompletingRebalance => {}
            }
            let (tx, rx) = oneshot::channel();
            if let Some(m) = group.members.get_mut(member_id) {
                m.sync_waiter = Some(tx);
                m.last_heartbeat = Instant::now();
            }
            let mut completed = None;
            if group.leader.as_deref() == Some(member_id) {
                let given: HashMap<String, Bytes> = assignments.into_iter().collect();
                for (id, m) in group.members.iter_mut() {
                    m.assignment = given.get(id).cloned().unwrap_or_default();
                }
                group.state = GroupState::Stable;
                let stored = self.store_group_locked(group_id, group);
                let waiters: Vec<(oneshot::Sender<(ErrorCode, Bytes)>, Bytes)> = group
                    .members
                    .values_mut()
                    .filter_map(|m| Some((m.sync_waiter.take()?, m.assignment.clone())))
                    .collect();
                completed = Some((stored, waiters, group.generation_id));
            }
            (rx, completed)
        };
        if let Some((stored, waiters, generation)) = completed {
            let outcome = match stored {
                Ok(pending) => pending.settle().await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(()) => {
                    for (tx, assignment) in waiters {
                        let _ = tx.send((ErrorCode::None, assignment));
                    }
                }
                Err(code) => {
                    // Not stored: the members learn it, and the group rebalances (Kafka's
                    // answer when its group metadata append fails).
                    tracing::warn!(group = group_id, error = ?code, "storing the group's assignment");
                    for (tx, _) in waiters {
                        let _ = tx.send((code, Bytes::new()));
                    }
                    self.with_group(group_id, |me, g| {
                        if g.generation_id == generation && g.state == GroupState::Stable {
                            me.prepare_rebalance_locked(group_id, g);
                        }
                    });
                }
            }
        }
        rx.await
            .unwrap_or((ErrorCode::RebalanceInProgress, Bytes::new()))
    }

    /// Handles a Heartbeat.
    pub fn heartbeat(
        self: &Arc<Self>,
        group_id: &str,
        generation: i32,
        member_id: &str,
    ) -> ErrorCode {
        let coordinator = self.check_coordinator(group_id);
        if coordinator != ErrorCode::None {
            return coordinator;
        }
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group_id) else {
            return ErrorCode::UnknownMemberId;
        };
        let Some(m) = group.members.get_mut(member_id) else {
            return ErrorCode::UnknownMemberId;
        };
        m.last_heartbeat = Instant::now();
        if group.state == GroupState::PreparingRebalance {
            return ErrorCode::RebalanceInProgress;
        }
        if generation != group.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        ErrorCode::None
    }

    /// Handles a LeaveGroup of some members; returns a code per member.
    pub fn leave(self: &Arc<Self>, group_id: &str, members: &[String]) -> Vec<ErrorCode> {
        let coordinator = self.check_coordinator(group_id);
        if coordinator != ErrorCode::None {
            return members.iter().map(|_| coordinator).collect();
        }
        let mut groups = lock(&self.groups);
        let Some(group) = groups.get_mut(group_id) else {
            return members.iter().map(|_| ErrorCode::UnknownMemberId).collect();
        };
        let codes = members
            .iter()
            .map(|id| match group.members.remove(id) {
                Some(m) => {
                    if let Some(tx) = m.join_waiter {
                        let _ = tx.send(JoinResult::error(ErrorCode::UnknownMemberId, id));
                    }
                    ErrorCode::None
                }
                None => ErrorCode::UnknownMemberId,
            })
            .collect();
        self.after_membership_change(group_id, group);
        codes
    }

    fn after_membership_change(self: &Arc<Self>, group_id: &str, group: &mut Group) {
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            group.leader = None;
            group.generation_id += 1;
            self.store_group_in_background(group_id, group);
            return;
        }
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance_locked(group_id, group)
            }
            GroupState::PreparingRebalance => self.try_complete_join_locked(group_id, group, false),
            GroupState::Empty => {}
        }
    }

    /// Removes members whose session expired; called periodically.
    pub fn expire_sessions(self: &Arc<Self>) {
        let now = Instant::now();
        {
            let session = Duration::from_millis(
                u64::try_from(self.broker.config.group_consumer_session_timeout_ms).unwrap_or(0),
            );
            let mut consumer = lock(&self.consumer_groups);
            for (id, group) in consumer.iter_mut() {
                let expired = group.expire(now, session);
                for member in &expired {
                    tracing::info!(group = %id, %member, "consumer group member fenced: its session expired or it did not revoke in time");
                }
                if expired.is_empty() {
                    continue;
                }
                // Stored in the background: nobody waits on a fenced member.
                match self.store_consumer_group(id, &group.to_stored()) {
                    Ok(pending) => {
                        let gid = id.clone();
                        tokio::spawn(async move {
                            if let Err(e) = pending.settle().await {
                                tracing::warn!(group = %gid, error = ?e, "storing a consumer group");
                            }
                        });
                    }
                    Err(e) => tracing::warn!(group = %id, error = ?e, "storing a consumer group"),
                }
            }
        }
        let mut groups = lock(&self.groups);
        for (id, group) in groups.iter_mut() {
            group
                .pending
                .retain(|_, t| now.duration_since(*t) < Duration::from_secs(300));
            // Members waiting in JoinGroup during a rebalance are alive.
            let expired: Vec<String> = group
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join_waiter.is_none()
                        && now.duration_since(m.last_heartbeat) > m.session_timeout
                })
                .map(|(k, _)| k.clone())
                .collect();
            if expired.is_empty() {
                continue;
            }
            for e in &expired {
                tracing::info!(group = %id, member = %e, "member session expired");
                group.members.remove(e);
            }
            self.after_membership_change(id, group);
        }
    }

    /// Checks that a commit comes from a current member (or is a standalone commit).
    pub fn validate_commit(&self, group_id: &str, generation: i32, member_id: &str) -> ErrorCode {
        let coordinator = self.check_coordinator(group_id);
        if coordinator != ErrorCode::None {
            return coordinator;
        }
        if let Some(g) = lock(&self.consumer_groups).get(group_id) {
            return g.check_member_epoch(member_id, generation);
        }
        let groups = lock(&self.groups);
        let group = groups.get(group_id);
        if generation < 0 && member_id.is_empty() {
            // A commit from outside the group (an admin tool, a simple consumer) is taken only
            // while the group has no members; Kafka answers UNKNOWN_MEMBER_ID otherwise.
            return match group {
                Some(g) if !g.members.is_empty() => ErrorCode::UnknownMemberId,
                _ => ErrorCode::None,
            };
        }
        let Some(group) = group else {
            return ErrorCode::IllegalGeneration;
        };
        if !group.members.contains_key(member_id) {
            return ErrorCode::UnknownMemberId;
        }
        if generation != group.generation_id {
            return ErrorCode::IllegalGeneration;
        }
        if group.state == GroupState::PreparingRebalance {
            return ErrorCode::RebalanceInProgress;
        }
        ErrorCode::None
    }

    /// Checks an OffsetFetch v9 that names a member: in a consumer group (KIP-848) the member
    /// must exist at that epoch (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH); classic groups do not
    /// check fetches.
    pub fn validate_offset_fetch(&self, group_id: &str, member_id: &str, epoch: i32) -> ErrorCode {
        match lock(&self.consumer_groups).get(group_id) {
            Some(g) if !(member_id.is_empty() && epoch < 0) => {
                g.check_member_epoch(member_id, epoch)
            }
            _ => ErrorCode::None,
        }
    }

    /// Appends commits to `__consumer_offsets` as one batch, waits until durable, then updates
    /// the cache.
    pub async fn commit(
        &self,
        group_id: &str,
        commits: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<(), ErrorCode> {
        if commits.is_empty() {
            return Ok(());
        }
        let (records, now) = offset_records(group_id, &commits);
        let pending = self.append_records(group_id, &records, now, None)?;
        let at = pending.info.first_offset;
        pending.settle().await?;
        let mut offsets = lock(&self.offsets);
        let mut applied = lock(&self.applied_at);
        for ((t, p), c) in commits {
            apply_in_log_order(
                &mut offsets,
                &mut applied,
                (group_id.to_string(), t, p),
                c,
                at,
            );
        }
        Ok(())
    }

    /// TxnOffsetCommit: the offsets are written to the group's partition inside producer
    /// `producer_id`'s transaction (a transactional batch of that producer), and count only
    /// once its commit marker is written there ([`GroupCoordinator::complete_txn`]).
    pub async fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commits: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<(), ErrorCode> {
        if commits.is_empty() {
            return Ok(());
        }
        let (records, now) = offset_records(group_id, &commits);
        let pending =
            self.append_records(group_id, &records, now, Some((producer_id, producer_epoch)))?;
        let at = pending.info.first_offset;
        pending.settle().await?;
        let mut txn = lock(&self.pending_txn);
        let list = txn.entry(producer_id).or_default();
        for ((t, p), c) in commits {
            list.push(((group_id.to_string(), t, p), c, at));
        }
        Ok(())
    }

    /// A transaction marker of `producer_id` was written to `__consumer_offsets` partition
    /// `index`: the offsets its transaction committed to that partition's groups count now
    /// (`commit`), or are forgotten.
    pub fn complete_txn(&self, index: i32, producer_id: i64, commit: bool) {
        let mine: Vec<(OffsetKey, CommittedOffset, Offset)> = {
            let mut txn = lock(&self.pending_txn);
            let Some(list) = txn.get_mut(&producer_id) else {
                return;
            };
            let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(list)
                .into_iter()
                .partition(|((g, _, _), _, _)| self.partition_for(g) == index);
            *list = rest;
            if list.is_empty() {
                txn.remove(&producer_id);
            }
            mine
        };
        if !commit {
            return;
        }
        let mut offsets = lock(&self.offsets);
        let mut applied = lock(&self.applied_at);
        for (key, c, at) in mine {
            apply_in_log_order(&mut offsets, &mut applied, key, c, at);
        }
    }

    /// Whether this broker has loaded `__consumer_offsets` partition `index` (always
    /// standalone): a marker may end its transactional offsets only then, or offsets read by
    /// a load that began before the marker was appended would stay pending for ever.
    pub fn is_loaded(&self, index: i32) -> bool {
        self.broker.cluster.is_none() || lock(&self.loaded).contains(&index)
    }

    /// Whether an open transaction has committed an offset of this partition for the group
    /// (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT then, KIP-447).
    pub fn has_pending_txn_offset(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        lock(&self.pending_txn).values().any(|l| {
            l.iter()
                .any(|((g, t, p), _, _)| g == group_id && t == topic && *p == partition)
        })
    }

    /// Appends records (a `None` value is a tombstone) to the group's `__consumer_offsets`
    /// partition as one batch, in the order of the calls (so a later record of a group always
    /// follows an earlier one); [`PendingAppend::settle`] waits until they are safe. With
    /// `producer`, the batch belongs to that producer's transaction.
    fn append_records(
        &self,
        group_id: &str,
        records: &[(Vec<u8>, Option<Vec<u8>>)],
        timestamp: i64,
        producer: Option<(i64, i16)>,
    ) -> Result<PendingAppend, ErrorCode> {
        let topic = self
            .broker
            .topic(OFFSETS_TOPIC)
            .ok_or(ErrorCode::CoordinatorLoadInProgress)?;
        let partition = topic
            .partition(self.partition_for(group_id))
            .ok_or(ErrorCode::CoordinatorLoadInProgress)?;
        let kvs: Vec<batch::KeyValue<'_>> = records
            .iter()
            .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
            .collect();
        let mut bytes = batch::build(Offset(0), timestamp, &kvs);
        if let Some((producer_id, producer_epoch)) = producer {
            batch::stamp_producer(&mut bytes, producer_id, producer_epoch, -1);
            batch::stamp_transactional(&mut bytes, false);
        }
        let (info, epoch) = partition
            .append_as_coordinator(Bytes::from(bytes))
            .map_err(|(code, _)| match code {
                ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator,
                other => other,
            })?;
        Ok(PendingAppend {
            partition,
            info,
            epoch,
        })
    }

    /// Writes the group's metadata record (called with the groups lock held, so records of one
    /// group are appended in the order of its changes).
    fn store_group_locked(
        &self,
        group_id: &str,
        group: &Group,
    ) -> Result<PendingAppend, ErrorCode> {
        let value = group_metadata::encode_value(&group.to_stored());
        let records = [(group_metadata::encode_key(group_id), Some(value))];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.append_records(group_id, &records, now, None)
    }

    /// Writes a consumer group's record (called with the consumer groups lock held, so the
    /// records of one group follow the order of its changes).
    fn store_consumer_group(
        &self,
        group_id: &str,
        group: &consumer_group_record::StoredConsumerGroup,
    ) -> Result<PendingAppend, ErrorCode> {
        let value = consumer_group_record::encode_value(group);
        let records = [(consumer_group_record::encode_key(group_id), Some(value))];
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        self.append_records(group_id, &records, now, None)
    }

    /// Writes the group's metadata record and lets it settle in the background (a group that
    /// became empty: nobody waits on it).
    fn store_group_in_background(&self, group_id: &str, group: &Group) {
        match self.store_group_locked(group_id, group) {
            Ok(pending) => {
                let gid = group_id.to_string();
                tokio::spawn(async move {
                    if let Err(e) = pending.settle().await {
                        tracing::warn!(group = %gid, error = ?e, "storing group metadata");
                    }
                });
            }
            Err(e) => tracing::warn!(group = %group_id, error = ?e, "storing group metadata"),
        }
    }

    /// The committed offset of a partition.
    pub fn committed(
        &self,
        group_id: &str,
        topic: &str,
        partition: i32,
    ) -> Option<CommittedOffset> {
        lock(&self.offsets)
            .get(&(group_id.to_string(), topic.to_string(), partition))
            .cloned()
    }

    /// Every committed partition of a group.
    pub fn committed_all(&self, group_id: &str) -> Vec<(String, i32, CommittedOffset)> {
        lock(&self.offsets)
            .iter()
            .filter(|((g, _, _), _)| g == group_id)
            .map(|((_, t, p), c)| (t.clone(), *p, c.clone()))
            .collect()
    }

    /// Group ids known (with members or committed offsets), with state, protocol type and
    /// group type (`classic` or `consumer`).
    pub fn list(&self) -> Vec<ListedGroup> {
        let mut out: BTreeMap<String, ListedGroup> = lock(&self.groups)
            .iter()
            .map(|(id, g)| {
                let listed = ListedGroup {
                    group_id: id.clone(),
                    state: g.state.name(),
                    protocol_type: g.protocol_type.clone().unwrap_or_default(),
                    group_type: "classic",
                };
                (id.clone(), listed)
            })
            .collect();
        for (id, g) in lock(&self.consumer_groups).iter() {
            let listed = ListedGroup {
                group_id: id.clone(),
                state: g.state().name(),
                protocol_type: "consumer".into(),
                group_type: "consumer",
            };
            out.insert(id.clone(), listed);
        }
        for (g, _, _) in lock(&self.offsets).keys() {
            out.entry(g.clone()).or_insert_with(|| ListedGroup {
                group_id: g.clone(),
                state: GroupState::Empty.name(),
                protocol_type: "consumer".into(),
                group_type: "classic",
            });
        }
        out.into_values().collect()
    }

    /// Whether `group_id` is a consumer group (KIP-848), which DescribeGroups reports as Dead.
    pub fn is_consumer_group(&self, group_id: &str) -> bool {
        lock(&self.consumer_groups).contains_key(group_id)
    }

    /// Whether the group is known here: it has members or committed offsets. Kafka describes
    /// an unknown group as `Dead`.
    pub fn exists(&self, group_id: &str) -> bool {
        lock(&self.groups).contains_key(group_id)
            || lock(&self.consumer_groups).contains_key(group_id)
            || lock(&self.offsets).keys().any(|(g, _, _)| g == group_id)
    }

    /// A description of a group: state, protocol type and name, members
    /// (id, instance id, client id, client host, metadata, assignment).
    #[expect(
        clippy::type_complexity,
        reason = "a plain tuple mirrors the wire fields"
    )]
    pub fn describe(
        &self,
        group_id: &str,
    ) -> (
        GroupState,
        String,
        String,
        Vec<(String, Option<String>, String, String, Bytes, Bytes)>,
    ) {
        let groups = lock(&self.groups);
        match groups.get(group_id) {
            None => (GroupState::Empty, String::new(), String::new(), vec![]),
            Some(g) => (
                g.state,
                g.protocol_type.clone().unwrap_or_default(),
                g.protocol_name.clone().unwrap_or_default(),
                g.members
                    .iter()
                    .map(|(id, m)| {
                        let meta = m
                            .protocols
                            .iter()
                            .find(|p| Some(&p.0) == g.protocol_name.as_ref())
                            .map(|p| p.1.clone())
                            .unwrap_or_default();
                        (
                            id.clone(),
                            m.group_instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            meta,
                            m.assignment.clone(),
                        )
                    })
                    .collect(),
            ),
        }
    }

    /// Deletes an empty group and its committed offsets (tombstones in `__consumer_offsets`).
    pub async fn delete(&self, group_id: &str) -> ErrorCode {
        let was_consumer_group = {
            let mut consumer = lock(&self.consumer_groups);
            match consumer.get(group_id) {
                Some(g) if !g.members.is_empty() => return ErrorCode::NonEmptyGroup,
                Some(_) => {
                    consumer.remove(group_id);
                    // Its record goes too, so a coordinator that takes over does not bring
                    // the group back.
                    let records = [(consumer_group_record::encode_key(group_id), None)];
                    match self.append_records(group_id, &records, 0, None) {
                        Ok(pending) => Some(pending),
                        Err(code) => return code,
                    }
                }
                None => None,
            }
        };
        let was_consumer_group = match was_consumer_group {
            Some(pending) => {
                if let Err(code) = pending.settle().await {
                    return code;
                }
                true
            }
            None => false,
        };
        let tombstone = {
            let mut groups = lock(&self.groups);
            if let Some(g) = groups.get(group_id) {
                if !g.members.is_empty() {
                    return ErrorCode::NonEmptyGroup;
                }
                groups.remove(group_id);
                // Its metadata record goes too, so a coordinator that takes over does not
                // bring the group back.
                let records = [(group_metadata::encode_key(group_id), None)];
                Some(self.append_records(group_id, &records, 0, None))
            } else if self.committed_all(group_id).is_empty() && !was_consumer_group {
                return ErrorCode::GroupIdNotFound;
            } else {
                None
            }
        };
        if let Some(t) = tombstone {
            let settled = match t {
                Ok(pending) => pending.settle().await,
                Err(e) => Err(e),
            };
            if let Err(code) = settled {
                return code;
            }
        }
        let keys: Vec<(String, i32)> = self
            .committed_all(group_id)
            .into_iter()
            .map(|(t, p, _)| (t, p))
            .collect();
        self.remove_offsets(group_id, keys).await
    }

    /// OffsetDelete: removes the committed offsets of `partitions`, except of topics an active
    /// member of the group subscribes to (GROUP_SUBSCRIBED_TO_TOPIC, as Kafka answers). `Err`:
    /// the error of the whole request (not the coordinator, unknown group).
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<((String, i32), ErrorCode)>, ErrorCode> {
        let coordinator = self.check_coordinator(group_id);
        if coordinator != ErrorCode::None {
            return Err(coordinator);
        }
        if !self.exists(group_id) {
            return Err(ErrorCode::GroupIdNotFound);
        }
        let consumer_subscribed: Option<Vec<String>> = {
            let view = self.topics_view();
            lock(&self.consumer_groups)
                .get(group_id)
                .filter(|g| !g.members.is_empty())
                .map(|g| g.subscribed_topics(&view).into_iter().collect())
        };
        let subscribed: Option<Vec<String>> = consumer_subscribed.or_else(|| {
            let groups = lock(&self.groups);
            groups
                .get(group_id)
                .filter(|g| !g.members.is_empty())
                .map(|g| {
                    g.members
                        .values()
                        .flat_map(|m| {
                            let meta = m
                                .protocols
                                .iter()
                                .find(|p| Some(&p.0) == g.protocol_name.as_ref())
                                .or(m.protocols.first())
                                .map(|p| p.1.clone())
                                .unwrap_or_default();
                            // Unreadable metadata counts as subscribed to everything: keep the
                            // offsets rather than delete what a member may be using.
                            subscription_topics(&meta).unwrap_or_else(|| vec!["*".to_string()])
                        })
                        .collect()
                })
        });
        let mut results = Vec::with_capacity(partitions.len());
        let mut delete = Vec::new();
        for (topic, p) in partitions {
            let code = if self.broker.topic(&topic).is_none()
                && self
                    .broker
                    .cluster
                    .as_ref()
                    .is_none_or(|c| !c.image().topics.contains_key(&topic))
            {
                ErrorCode::UnknownTopicOrPartition
            } else if subscribed
                .as_ref()
                .is_some_and(|s| s.iter().any(|t| t == &topic || t == "*"))
            {
                ErrorCode::GroupSubscribedToTopic
            } else {
                delete.push((topic.clone(), p));
                ErrorCode::None
            };
            results.push(((topic, p), code));
        }
        let committed: Vec<(String, i32)> = self
            .committed_all(group_id)
            .into_iter()
            .map(|(t, p, _)| (t, p))
            .collect();
        delete.retain(|k| committed.contains(k));
        match self.remove_offsets(group_id, delete).await {
            ErrorCode::None => Ok(results),
            code => Err(code),
        }
    }

    /// Writes tombstones for the committed offsets of `keys` in `__consumer_offsets`, waits
    /// until they are durable, then forgets those offsets.
    async fn remove_offsets(&self, group_id: &str, keys: Vec<(String, i32)>) -> ErrorCode {
        if keys.is_empty() {
            return ErrorCode::None;
        }
        let Some(partition) = self
            .broker
            .topic(OFFSETS_TOPIC)
            .and_then(|t| t.partition(self.partition_for(group_id)))
        else {
            return ErrorCode::CoordinatorLoadInProgress;
        };
        let encoded: Vec<Vec<u8>> = keys
            .iter()
            .map(|(t, p)| encode_key(group_id, t, *p))
            .collect();
        let records: Vec<batch::KeyValue<'_>> =
            encoded.iter().map(|k| (Some(k.as_slice()), None)).collect();
        let bytes = batch::build(Offset(0), 0, &records);
        let appended = partition.append(Bytes::from(bytes), false);
        match appended {
            Ok((AppendOutcome::Appended(info), _)) => {
                if let Err(e) = info.completion.until(Stage::Durable).await {
                    return ErrorCode::from(&e);
                }
                partition.on_local_progress();
            }
            Ok(_) => {}
            Err((code, _)) => return code,
        }
        let mut offsets = lock(&self.offsets);
        let mut applied = lock(&self.applied_at);
        for (t, p) in keys {
            let key = (group_id.to_string(), t, p);
            offsets.remove(&key);
            applied.remove(&key);
        }
        ErrorCode::None
    }

    /// Consumer lag per committed partition: (group, topic, partition, high watermark - offset).
    pub fn lags(&self, broker: &Broker) -> Vec<(String, String, i32, i64)> {
        lock(&self.offsets)
            .iter()
            .filter_map(|((g, t, p), c)| {
                let hw = broker.topic(t)?.partition(*p)?.high_watermark().0;
                Some((g.clone(), t.clone(), *p, (hw - c.offset).max(0)))
            })
            .collect()
    }
}

/// The topics of a consumer-protocol subscription (`version: i16, topics: [string], ...`), as
/// members send it in JoinGroup; `None` when it does not parse.
fn subscription_topics(meta: &[u8]) -> Option<Vec<String>> {
    let mut b = meta;
    if b.len() < 6 {
        return None;
    }
    b.advance(2);
    let n = usize::try_from(b.get_i32()).ok()?;
    let mut topics = Vec::with_capacity(n.min(b.len() / 2));
    for _ in 0..n {
        if b.len() < 2 {
            return None;
        }
        let len = usize::try_from(b.get_i16()).ok()?;
        let name = b.get(..len)?;
        topics.push(String::from_utf8(name.to_vec()).ok()?);
        b.advance(len);
    }
    Some(topics)
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.put_i16(s.len() as i16);
    buf.put_slice(s.as_bytes());
}

fn get_str(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(String::new());
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

/// Kafka's OffsetCommitKey v1: group, topic, partition.
fn encode_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    let mut b = Vec::with_capacity(8 + group.len() + topic.len());
    b.put_i16(1);
    put_str(&mut b, group);
    put_str(&mut b, topic);
    b.put_i32(partition);
    b
}

fn decode_key(mut b: &[u8]) -> Option<OffsetKey> {
    if b.remaining() < 2 || b.get_i16() > 1 {
        return None; // versions 2+ are group metadata, not offsets
    }
    let group = get_str(&mut b)?;
    let topic = get_str(&mut b)?;
    if b.remaining() < 4 {
        return None;
    }
    Some((group, topic, b.get_i32()))
}

/// Kafka's OffsetCommitValue v3: offset, leader epoch, metadata, commit timestamp.
fn encode_value(c: &CommittedOffset, now: i64) -> Vec<u8> {
    let meta = c.metadata.clone().unwrap_or_default();
    let mut b = Vec::with_capacity(26 + meta.len());
    b.put_i16(3);
    b.put_i64(c.offset);
    b.put_i32(c.leader_epoch);
    put_str(&mut b, &meta);
    b.put_i64(now);
    b
}

fn decode_value(mut b: &[u8]) -> Option<CommittedOffset> {
    if b.remaining() < 2 || b.get_i16() != 3 || b.remaining() < 12 {
        return None;
    }
    let offset = b.get_i64();
    let leader_epoch = b.get_i32();
    let metadata = get_str(&mut b)?;
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata: Some(metadata),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Commits of one partition reach the cache in log order: a commit whose record is earlier
    /// in `__consumer_offsets` than the one already applied is not applied after it (the
    /// regression strata-chaos once saw as "committed offset went backwards").
    #[test]
    fn commits_reach_the_cache_in_log_order() {
        let commit = |offset| CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: None,
        };
        let key = ("g".to_string(), "t".to_string(), 0);
        let (mut offsets, mut applied) = (BTreeMap::new(), HashMap::new());
        apply_in_log_order(
            &mut offsets,
            &mut applied,
            key.clone(),
            commit(14_025),
            Offset(7),
        );
        // The earlier record (13,990 at log offset 6) settles last: it must not win.
        apply_in_log_order(
            &mut offsets,
            &mut applied,
            key.clone(),
            commit(13_990),
            Offset(6),
        );
        assert_eq!(offsets.get(&key).map(|c| c.offset), Some(14_025));
        // A later record does win.
        apply_in_log_order(
            &mut offsets,
            &mut applied,
            key.clone(),
            commit(14_100),
            Offset(8),
        );
        assert_eq!(offsets.get(&key).map(|c| c.offset), Some(14_100));
        // Another partition is independent.
        let other = ("g".to_string(), "t".to_string(), 1);
        apply_in_log_order(
            &mut offsets,
            &mut applied,
            other.clone(),
            commit(5),
            Offset(1),
        );
        assert_eq!(offsets.get(&other).map(|c| c.offset), Some(5));
    }

    #[test]
    fn offset_records_round_trip() {
        let k = encode_key("g", "t", 3);
        assert_eq!(decode_key(&k), Some(("g".into(), "t".into(), 3)));
        let c = CommittedOffset {
            offset: 42,
            leader_epoch: 1,
            metadata: Some("meta".into()),
        };
        assert_eq!(decode_value(&encode_value(&c, 5)), Some(c));
    }
}
