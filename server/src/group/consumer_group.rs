//! Consumer groups of the new protocol (KIP-848): membership by ConsumerGroupHeartbeat, the
//! assignment computed here by a server-side assignor, and each member reconciled to it.
//!
//! The group has an epoch, bumped whenever membership, a subscription, or the subscribed
//! topics' partition counts change. A bump makes the assignor compute a new target assignment
//! (tagged with that epoch) at the next heartbeat. Each member then moves to its target in
//! steps it can take safely, which is what lets a consumer keep consuming through a rebalance:
//!
//! - a member that must give partitions up is first told its assignment without them and stays
//!   at its epoch (`UnrevokedPartitions`) until a heartbeat says it no longer owns them;
//! - it then moves to the target epoch and gets the partitions of its target that no other
//!   member still owns; those another member has not released yet come later
//!   (`UnreleasedPartitions`), on a heartbeat after their owner let them go.
//!
//! Invariant (asserted after every change in debug builds): no partition is assigned to, or
//! pending revocation from, two members at once. So two members of a group never consume one
//! partition at the same time, whatever the order their heartbeats arrive in.
//!
//! Every change is stored in `__consumer_offsets` (`consumer_group_record`) before the member
//! is answered, so the coordinator that takes the group over (a failover, a restart) loads it
//! and its members heartbeat on at their epochs, with their assignments.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assignor::{ASSIGNORS, Assignor, MemberSpec, Partitions, TopicLayout};
use super::consumer_group_record::{StoredConsumerGroup, StoredConsumerMember};
use crate::error_code::ErrorCode;

/// The member epoch a heartbeat carries to leave the group.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch a static member's heartbeat carries to leave for now, keeping its
/// assignment for its instance id until its session expires.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// Where a member is in reconciling to its target assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberState {
    /// At the target epoch with all of its target.
    Stable,
    /// Told to give up partitions, not yet confirmed.
    UnrevokedPartitions,
    /// At the target epoch, waiting for partitions other members still own.
    UnreleasedPartitions,
}

impl MemberState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "STABLE",
            MemberState::UnrevokedPartitions => "UNREVOKED_PARTITIONS",
            MemberState::UnreleasedPartitions => "UNRELEASED_PARTITIONS",
        }
    }
}

/// A consumer group's state, named as Kafka reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumerGroupState {
    /// No members.
    Empty,
    /// A target assignment for the current group epoch is not computed yet.
    Assigning,
    /// Some member is not yet at its target.
    Reconciling,
    /// Every member has its target.
    Stable,
}

impl ConsumerGroupState {
    /// Kafka's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
        }
    }
}

/// A member of a consumer group.
#[derive(Clone, Debug)]
pub struct ConsumerMember {
    /// The member's epoch: the group epoch whose target it last moved to.
    pub member_epoch: i32,
    previous_epoch: i32,
    /// Its reconciliation state.
    pub state: MemberState,
    /// Static membership id.
    pub instance_id: Option<String>,
    /// The rack the member says it is in.
    pub rack_id: Option<String>,
    /// The client id of its last heartbeat.
    pub client_id: String,
    /// The address of its last heartbeat.
    pub client_host: String,
    rebalance_timeout: Duration,
    /// Topic names it subscribes to.
    pub subscribed_topic_names: Vec<String>,
    /// The regular expression it subscribes with, as sent.
    pub subscribed_topic_regex: Option<String>,
    regex: Option<regex::Regex>,
    server_assignor: Option<Assignor>,
    /// What it owns now (as told in the last response).
    pub assigned: Partitions,
    /// What it was told to give up and has not confirmed yet.
    pub pending_revocation: Partitions,
    last_heartbeat: Instant,
    revoke_deadline: Option<Instant>,
}

impl ConsumerMember {
    fn new(now: Instant) -> ConsumerMember {
        ConsumerMember {
            member_epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout: Duration::from_secs(300),
            subscribed_topic_names: Vec::new(),
            subscribed_topic_regex: None,
            regex: None,
            server_assignor: None,
            assigned: Partitions::new(),
            pending_revocation: Partitions::new(),
            last_heartbeat: now,
            revoke_deadline: None,
        }
    }

    /// Whether the member subscribes to `topic`.
    fn subscribes(&self, topic: &str) -> bool {
        self.subscribed_topic_names.iter().any(|t| t == topic)
            || self.regex.as_ref().is_some_and(|r| r.is_match(topic))
    }
}

/// A ConsumerGroupHeartbeat, decoded.
#[derive(Clone, Debug)]
pub struct Heartbeat {
    /// The member id (v1: chosen by the client; v0: empty on the first heartbeat).
    pub member_id: String,
    /// 0 to join, the current epoch, or [`LEAVE_EPOCH`] / [`STATIC_LEAVE_EPOCH`].
    pub member_epoch: i32,
    /// Static membership id, if set or changed.
    pub instance_id: Option<String>,
    /// Rack id, if set or changed.
    pub rack_id: Option<String>,
    /// -1 if unchanged.
    pub rebalance_timeout_ms: i32,
    /// Subscribed names, if changed.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// Subscription regular expression, if changed.
    pub subscribed_topic_regex: Option<String>,
    /// Server-side assignor wanted, if changed.
    pub server_assignor: Option<String>,
    /// The partitions the member owns, if changed.
    pub owned: Option<Partitions>,
    /// The request header's client id.
    pub client_id: String,
    /// The client's address.
    pub client_host: String,
}

/// What a heartbeat gets back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeartbeatReply {
    /// Error, or none.
    pub error: ErrorCode,
    /// What went wrong, in words.
    pub message: Option<String>,
    /// The member id (the one given, or made here for a v0 join).
    pub member_id: String,
    /// The member's epoch now.
    pub member_epoch: i32,
    /// The member's assignment, when the request was a full one or the assignment changed.
    pub assignment: Option<Partitions>,
}

impl HeartbeatReply {
    /// A reply carrying only an error.
    pub fn error(error: ErrorCode, message: impl Into<String>) -> HeartbeatReply {
        HeartbeatReply {
            error,
            message: Some(message.into()),
            member_id: String::new(),
            member_epoch: -1,
            assignment: None,
        }
    }
}

/// Checks a heartbeat on its own, as Kafka does before looking at the group: the fields a
/// join must carry, the epochs that exist, the assignors this broker has.
pub fn validate(hb: &Heartbeat, version: i16) -> Result<(), HeartbeatReply> {
    let invalid = |m: &str| Err(HeartbeatReply::error(ErrorCode::InvalidRequest, m));
    if (version >= 1 || hb.member_epoch > 0 || hb.member_epoch == LEAVE_EPOCH)
        && hb.member_id.is_empty()
    {
        return invalid("MemberId can't be empty.");
    }
    if hb.instance_id.as_deref() == Some("") {
        return invalid("InstanceId can't be empty.");
    }
    if hb.rack_id.as_deref() == Some("") {
        return invalid("RackId can't be empty.");
    }
    match hb.member_epoch {
        0 => {
            if hb.rebalance_timeout_ms == -1 {
                return invalid("RebalanceTimeoutMs must be provided in first request.");
            }
            if hb.owned.as_ref().is_none_or(|o| !o.is_empty()) {
                return invalid("TopicPartitions must be empty when (re-)joining.");
            }
            if hb.subscribed_topic_names.is_none() && hb.subscribed_topic_regex.is_none() {
                return invalid(
                    "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when \
                     (re-)joining.",
                );
            }
        }
        STATIC_LEAVE_EPOCH if hb.instance_id.is_none() => {
            return invalid("InstanceId can't be null.");
        }
        e if e < STATIC_LEAVE_EPOCH => return invalid("MemberEpoch is invalid."),
        _ => {}
    }
    if let Some(a) = &hb.server_assignor
        && Assignor::named(a).is_none()
    {
        let names: Vec<&str> = ASSIGNORS.iter().map(|a| a.name()).collect();
        return Err(HeartbeatReply::error(
            ErrorCode::UnsupportedAssignor,
            format!(
                "ServerAssignor {a} is not supported. Supported assignors: {}.",
                names.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Compiles a subscription regular expression; it must match a whole topic name, as Kafka's
/// `Pattern.matches` does.
fn compile(re: &str) -> Result<regex::Regex, HeartbeatReply> {
    regex::Regex::new(&format!("^(?:{re})$")).map_err(|e| {
        HeartbeatReply::error(
            ErrorCode::InvalidRegularExpression,
            format!("SubscribedTopicRegex `{re}` is not a valid regular expression: {e}."),
        )
    })
}

/// The topics a group can subscribe to: every topic but the internal ones, by name.
pub type TopicsView = BTreeMap<String, TopicLayout>;

/// One consumer group.
#[derive(Debug)]
pub struct ConsumerGroup {
    /// Bumped on every change that needs a new assignment.
    pub group_epoch: i32,
    /// The group epoch the target assignment was computed at.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, ConsumerMember>,
    /// Each member's target assignment at `assignment_epoch`.
    pub target: BTreeMap<String, Partitions>,
    /// The subscribed topics' layouts the target was computed from.
    subscribed: BTreeMap<String, TopicLayout>,
    /// The assignor of the current target.
    pub assignor: Assignor,
}

impl Default for ConsumerGroup {
    fn default() -> Self {
        ConsumerGroup::new()
    }
}

impl ConsumerGroup {
    /// A new, empty group at epoch 0.
    pub fn new() -> ConsumerGroup {
        ConsumerGroup {
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            target: BTreeMap::new(),
            subscribed: BTreeMap::new(),
            assignor: ASSIGNORS[0],
        }
    }

    /// The group as its `__consumer_offsets` record keeps it (everything but the clocks).
    pub fn to_stored(&self) -> StoredConsumerGroup {
        StoredConsumerGroup {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor.name().to_string(),
            subscribed: self
                .subscribed
                .iter()
                .map(|(t, l)| (t.clone(), (l.id, l.partitions)))
                .collect(),
            target: self.target.clone(),
            members: self
                .members
                .iter()
                .map(|(id, m)| {
                    (
                        id.clone(),
                        StoredConsumerMember {
                            member_epoch: m.member_epoch,
                            previous_epoch: m.previous_epoch,
                            state: m.state.name().to_string(),
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            rebalance_timeout_ms: m.rebalance_timeout.as_millis() as u64,
                            subscribed_topic_names: m.subscribed_topic_names.clone(),
                            subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                            server_assignor: m.server_assignor.map(|a| a.name().to_string()),
                            assigned: m.assigned.clone(),
                            pending_revocation: m.pending_revocation.clone(),
                        },
                    )
                })
                .collect(),
        }
    }

    /// A group loaded from its record by the coordinator that takes it over: every member's
    /// session (and revocation deadline) starts again from `now`. `None` if the record gives a
    /// partition two owners.
    pub fn from_stored(s: StoredConsumerGroup, now: Instant) -> Option<ConsumerGroup> {
        let members = s
            .members
            .into_iter()
            .map(|(id, m)| {
                let state = match m.state.as_str() {
                    "UNREVOKED_PARTITIONS" => MemberState::UnrevokedPartitions,
                    "UNRELEASED_PARTITIONS" => MemberState::UnreleasedPartitions,
                    _ => MemberState::Stable,
                };
                let rebalance_timeout = Duration::from_millis(m.rebalance_timeout_ms);
                let member = ConsumerMember {
                    member_epoch: m.member_epoch,
                    previous_epoch: m.previous_epoch,
                    state,
                    instance_id: m.instance_id,
                    rack_id: m.rack_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    rebalance_timeout,
                    subscribed_topic_names: m.subscribed_topic_names,
                    regex: m
                        .subscribed_topic_regex
                        .as_deref()
                        .and_then(|re| compile(re).ok()),
                    subscribed_topic_regex: m.subscribed_topic_regex,
                    server_assignor: m.server_assignor.as_deref().and_then(Assignor::named),
                    revoke_deadline: (!m.pending_revocation.is_empty())
                        .then(|| now + rebalance_timeout),
                    assigned: m.assigned,
                    pending_revocation: m.pending_revocation,
                    last_heartbeat: now,
                };
                (id, member)
            })
            .collect();
        let subscribed = s
            .subscribed
            .into_iter()
            .map(|(t, (id, partitions))| (t, TopicLayout { id, partitions }))
            .collect();
        let g = ConsumerGroup {
            group_epoch: s.group_epoch,
            assignment_epoch: s.assignment_epoch,
            members,
            target: s.target,
            subscribed,
            assignor: Assignor::named(&s.assignor).unwrap_or(ASSIGNORS[0]),
        };
        // A record that breaks the one-owner rule is not trusted: its members join again.
        g.owned_twice().is_none().then_some(g)
    }

    /// The group's state.
    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.assignment_epoch < self.group_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .all(|m| m.state == MemberState::Stable && m.member_epoch == self.assignment_epoch)
        {
            ConsumerGroupState::Stable
        } else {
            ConsumerGroupState::Reconciling
        }
    }

    /// The topic names any member subscribes to, among `topics` (and the names members list
    /// that do not exist yet).
    pub fn subscribed_topics(&self, topics: &TopicsView) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for m in self.members.values() {
            out.extend(m.subscribed_topic_names.iter().cloned());
            if let Some(re) = &m.regex {
                out.extend(topics.keys().filter(|t| re.is_match(t)).cloned());
            }
        }
        out
    }

    /// Handles a heartbeat that is not a leave ([`validate`] passed).
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &TopicsView,
        now: Instant,
    ) -> HeartbeatReply {
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&hb.member_id, hb.member_epoch);
        }
        let full_request = hb.member_epoch == 0
            || (hb.rebalance_timeout_ms != -1
                && hb.subscribed_topic_names.is_some()
                && hb.owned.is_some());
        let member_id = if hb.member_id.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            hb.member_id.clone()
        };
        // Everything that can refuse the heartbeat, before anything changes.
        // Some(None): the member dropped its regex (sent an empty one).
        let regex: Option<Option<regex::Regex>> = match &hb.subscribed_topic_regex {
            None => None,
            Some(re) if re.is_empty() => Some(None),
            Some(re) => match compile(re) {
                Ok(r) => Some(Some(r)),
                Err(reply) => return reply,
            },
        };
        let mut new_member = false;
        if let Some(instance) = &hb.instance_id
            && let Some((holder, held)) = self
                .members
                .iter()
                .find(|(id, m)| m.instance_id.as_ref() == Some(instance) && **id != member_id)
        {
            if held.member_epoch != STATIC_LEAVE_EPOCH {
                return HeartbeatReply::error(
                    ErrorCode::UnreleasedInstanceId,
                    format!(
                        "Static member {member_id} with instance id {instance} cannot join the \
                         group because the instance id is owned by {holder} member."
                    ),
                );
            }
            if hb.member_epoch != 0 {
                return HeartbeatReply::error(
                    ErrorCode::FencedMemberEpoch,
                    "A static member takes over its instance id by joining at epoch 0.",
                );
            }
            // The static member is back under a new member id: it takes over the member it
            // was, assignment and all, so the group does not rebalance.
            let holder = holder.clone();
            if let Some(mut m) = self.members.remove(&holder) {
                m.member_epoch = 0;
                m.previous_epoch = 0;
                m.state = MemberState::Stable;
                self.members.insert(member_id.clone(), m);
            }
            if let Some(t) = self.target.remove(&holder) {
                self.target.insert(member_id.clone(), t);
            }
        }
        match self.members.get(&member_id) {
            None if hb.member_epoch != 0 => {
                return HeartbeatReply::error(
                    ErrorCode::UnknownMemberId,
                    format!("Member {member_id} is not a member of the group."),
                );
            }
            None => {
                new_member = true;
            }
            Some(m) if hb.member_epoch > m.member_epoch => {
                return fenced(hb.member_epoch, m.member_epoch, "greater");
            }
            Some(m) if hb.member_epoch != 0 && hb.member_epoch < m.member_epoch => {
                // The previous epoch is accepted when the member owns no more than it is
                // assigned: the response that moved it on may have been lost.
                let subset = hb.owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned));
                if hb.member_epoch != m.previous_epoch || !subset {
                    return fenced(hb.member_epoch, m.member_epoch, "smaller");
                }
            }
            Some(_) => {}
        }

        // The member, created or updated.
        let before = self.members.get(&member_id).cloned();
        let m = self
            .members
            .entry(member_id.clone())
            .or_insert_with(|| ConsumerMember::new(now));
        let mut subscription_changed = new_member;
        if let Some(names) = hb.subscribed_topic_names {
            let mut names = names;
            names.sort();
            names.dedup();
            subscription_changed |= names != m.subscribed_topic_names;
            m.subscribed_topic_names = names;
        }
        if let Some(re) = regex {
            subscription_changed |= hb.subscribed_topic_regex != m.subscribed_topic_regex;
            m.subscribed_topic_regex = hb.subscribed_topic_regex.filter(|r| !r.is_empty());
            m.regex = re;
        }
        if let Some(a) = hb.server_assignor.as_deref().and_then(Assignor::named) {
            subscription_changed |= m.server_assignor != Some(a);
            m.server_assignor = Some(a);
        }
        if hb.instance_id.is_some() {
            m.instance_id = hb.instance_id;
        }
        if hb.rack_id.is_some() {
            m.rack_id = hb.rack_id;
        }
        if hb.rebalance_timeout_ms > 0 {
            m.rebalance_timeout = Duration::from_millis(hb.rebalance_timeout_ms as u64);
        }
        m.client_id = hb.client_id;
        m.client_host = hb.client_host;
        m.last_heartbeat = now;

        // A new group epoch if membership, a subscription, or the subscribed topics changed.
        let layouts: BTreeMap<String, TopicLayout> = self
            .subscribed_topics(topics)
            .into_iter()
            .filter_map(|t| topics.get(&t).map(|l| (t, *l)))
            .collect();
        if self.group_epoch == 0 || subscription_changed || layouts != self.subscribed {
            self.group_epoch += 1;
            self.subscribed = layouts;
            tracing::info!(member = %member_id, epoch = self.group_epoch, "consumer group epoch bumped");
        }
        if self.group_epoch > self.assignment_epoch {
            self.compute_target(topics);
        }
        self.reconcile(&member_id, hb.owned.as_ref(), now);
        self.check_invariant();

        let m = &self.members[&member_id];
        let changed = before.is_none_or(|b| b.assigned != m.assigned);
        HeartbeatReply {
            error: ErrorCode::None,
            message: None,
            member_id,
            member_epoch: m.member_epoch,
            assignment: (full_request || changed).then(|| m.assigned.clone()),
        }
    }

    /// A member leaves: `LEAVE_EPOCH` removes it; `STATIC_LEAVE_EPOCH` keeps its assignment
    /// for its instance id to take back.
    fn leave(&mut self, member_id: &str, epoch: i32) -> HeartbeatReply {
        if !self.members.contains_key(member_id) {
            return HeartbeatReply::error(
                ErrorCode::UnknownMemberId,
                format!("Member {member_id} is not a member of the group."),
            );
        }
        if epoch == STATIC_LEAVE_EPOCH {
            if let Some(m) = self.members.get_mut(member_id) {
                m.previous_epoch = m.member_epoch;
                m.member_epoch = STATIC_LEAVE_EPOCH;
            }
        } else {
            self.remove_member(member_id);
        }
        HeartbeatReply {
            error: ErrorCode::None,
            message: None,
            member_id: member_id.to_string(),
            member_epoch: epoch,
            assignment: None,
        }
    }

    /// Removes a member (left, session expired, or did not revoke in time): its partitions
    /// are free, and the group gets a new epoch.
    pub fn remove_member(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.target.remove(member_id);
            self.group_epoch += 1;
        }
    }

    /// Members whose session expired, or who did not give up partitions within their
    /// rebalance timeout: removed, and returned.
    pub fn expire(&mut self, now: Instant, session_timeout: Duration) -> Vec<String> {
        let gone: Vec<String> = self
            .members
            .iter()
            .filter(|(_, m)| {
                now.duration_since(m.last_heartbeat) > session_timeout
                    || m.revoke_deadline.is_some_and(|d| now > d)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            self.remove_member(id);
        }
        gone
    }

    /// Whether a commit or an offset fetch naming `member_id` at `epoch` comes from the
    /// group: from outside it (epoch < 0, no member id) only while it has no members.
    pub fn check_member_epoch(&self, member_id: &str, epoch: i32) -> ErrorCode {
        if epoch < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                ErrorCode::None
            } else {
                ErrorCode::UnknownMemberId
            };
        }
        match self.members.get(member_id) {
            None => ErrorCode::UnknownMemberId,
            Some(m) if m.member_epoch != epoch => ErrorCode::StaleMemberEpoch,
            Some(_) => ErrorCode::None,
        }
    }

    /// A new target assignment at the group epoch, by the assignor most members ask for (the
    /// default when none asks), sticky to the previous target.
    fn compute_target(&mut self, topics: &TopicsView) {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = m.server_assignor {
                *votes.entry(a.name()).or_default() += 1;
            }
        }
        self.assignor = ASSIGNORS
            .into_iter()
            .max_by_key(|a| {
                let rank = ASSIGNORS.len() - ASSIGNORS.iter().position(|b| b == a).unwrap_or(0);
                (votes.get(a.name()).copied().unwrap_or(0), rank)
            })
            .unwrap_or(ASSIGNORS[0]);
        let empty = Partitions::new();
        let layouts: Vec<TopicLayout> = self.subscribed.values().copied().collect();
        let specs: Vec<MemberSpec<'_>> = self
            .members
            .iter()
            .map(|(id, m)| MemberSpec {
                id,
                subscribed: topics
                    .iter()
                    .filter(|(name, _)| m.subscribes(name))
                    .map(|(_, l)| l.id)
                    .collect(),
                current: self.target.get(id).unwrap_or(&empty),
            })
            .collect();
        self.target = self.assignor.assign(&specs, &layouts);
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves a member toward its target as far as is safe (see the module docs).
    fn reconcile(&mut self, member_id: &str, owned: Option<&Partitions>, now: Instant) {
        let target_epoch = self.assignment_epoch;
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        let proceed = match m.state {
            MemberState::Stable => m.member_epoch != target_epoch,
            MemberState::UnrevokedPartitions => {
                owned.is_some_and(|o| !intersects(o, &m.pending_revocation))
            }
            MemberState::UnreleasedPartitions => true,
        };
        if !proceed {
            return;
        }
        let mut held_elsewhere: BTreeSet<(uuid::Uuid, i32)> = BTreeSet::new();
        for (id, other) in &self.members {
            if id != member_id {
                for a in [&other.assigned, &other.pending_revocation] {
                    for (t, ps) in a {
                        held_elsewhere.extend(ps.iter().map(|p| (*t, *p)));
                    }
                }
            }
        }
        let Some(m) = self.members.get_mut(member_id) else {
            return;
        };
        let mut kept = Partitions::new();
        let mut revoke = Partitions::new();
        for (t, ps) in &m.assigned {
            for p in ps {
                let dest = if target.get(t).is_some_and(|s| s.contains(p)) {
                    &mut kept
                } else {
                    &mut revoke
                };
                dest.entry(*t).or_default().insert(*p);
            }
        }
        if !revoke.is_empty() {
            m.assigned = kept;
            m.pending_revocation = revoke;
            m.state = MemberState::UnrevokedPartitions;
            m.revoke_deadline = Some(now + m.rebalance_timeout);
            return;
        }
        let mut unreleased = false;
        for (t, ps) in &target {
            for p in ps {
                if kept.get(t).is_some_and(|s| s.contains(p)) {
                    continue;
                }
                if held_elsewhere.contains(&(*t, *p)) {
                    unreleased = true;
                } else {
                    kept.entry(*t).or_default().insert(*p);
                }
            }
        }
        if m.member_epoch != target_epoch {
            m.previous_epoch = m.member_epoch;
            m.member_epoch = target_epoch;
        }
        m.assigned = kept;
        m.pending_revocation.clear();
        m.revoke_deadline = None;
        m.state = if unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
    }

    /// No partition is owned (assigned or pending revocation) by two members.
    fn check_invariant(&self) {
        if cfg!(debug_assertions)
            && let Some((id, t, p)) = self.owned_twice()
        {
            panic!("partition {t}-{p} owned twice (member {id})");
        }
    }

    /// A partition owned (assigned or pending revocation) by two members, if any.
    fn owned_twice(&self) -> Option<(&str, uuid::Uuid, i32)> {
        let mut seen = BTreeSet::new();
        for (id, m) in &self.members {
            for a in [&m.assigned, &m.pending_revocation] {
                for (t, ps) in a {
                    for p in ps {
                        if !seen.insert((*t, *p)) {
                            return Some((id, *t, *p));
                        }
                    }
                }
            }
        }
        None
    }
}

/// A consumer group as ConsumerGroupDescribe reports it.
#[derive(Clone, Debug)]
pub struct Description {
    /// The group's state.
    pub state: ConsumerGroupState,
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the target assignment.
    pub assignment_epoch: i32,
    /// The assignor of the target assignment.
    pub assignor: &'static str,
    /// Each member with its target assignment.
    pub members: Vec<(String, ConsumerMember, Partitions)>,
}

impl super::GroupCoordinator {
    /// Handles a ConsumerGroupHeartbeat of `group_id` (request version `version`).
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        hb: Heartbeat,
        version: i16,
    ) -> HeartbeatReply {
        if group_id.is_empty() {
            return HeartbeatReply::error(ErrorCode::InvalidRequest, "GroupId can't be empty.");
        }
        if let Err(reply) = validate(&hb, version) {
            return reply;
        }
        let coordinator = self.check_coordinator(group_id);
        if coordinator != ErrorCode::None {
            return HeartbeatReply::error(
                coordinator,
                "This broker does not coordinate the group.",
            );
        }
        {
            // A group id is one kind of group at a time. An empty classic group (one that
            // only has committed offsets, say) becomes a consumer group, keeping its offsets.
            let mut classic = super::lock(&self.groups);
            if let Some(g) = classic.get(group_id) {
                if !g.members.is_empty() {
                    return HeartbeatReply::error(
                        ErrorCode::GroupIdNotFound,
                        format!("Group {group_id} is not a consumer group."),
                    );
                }
                if hb.member_epoch == 0 {
                    classic.remove(group_id);
                }
            }
        }
        let topics = self.topics_view();
        let (reply, pending) = {
            let mut groups = super::lock(&self.consumer_groups);
            let group = match groups.get_mut(group_id) {
                Some(g) => g,
                None if hb.member_epoch == 0 => groups.entry(group_id.to_string()).or_default(),
                // The group's record was loaded with the partition: a group unknown here has
                // no members to heartbeat; the member joins again.
                None => {
                    return HeartbeatReply::error(
                        ErrorCode::UnknownMemberId,
                        format!(
                            "Group {group_id} has no member {} here: join again at epoch 0.",
                            hb.member_id
                        ),
                    );
                }
            };
            let before = group.to_stored();
            let reply = group.heartbeat(hb, &topics, Instant::now());
            let after = group.to_stored();
            if after == before {
                return reply;
            }
            // The group changed: its record is written (in the order of the changes, under
            // the lock) and is safe on the in-sync replicas before the member hears of the
            // change, so a coordinator that takes over knows every epoch and assignment a
            // member was told.
            (reply, self.store_consumer_group(group_id, &after))
        };
        let settled = match pending {
            Ok(p) => p.settle().await,
            Err(code) => Err(code),
        };
        match settled {
            Ok(()) => reply,
            Err(code) => {
                tracing::warn!(group = %group_id, error = ?code, "storing a consumer group");
                HeartbeatReply::error(code, "The group's change could not be stored; retry.")
            }
        }
    }

    /// The consumer group `group_id`, if there is one.
    pub fn consumer_group_describe(&self, group_id: &str) -> Option<Description> {
        let groups = super::lock(&self.consumer_groups);
        let g = groups.get(group_id)?;
        Some(Description {
            state: g.state(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor.name(),
            members: g
                .members
                .iter()
                .map(|(id, m)| {
                    let target = g.target.get(id).cloned().unwrap_or_default();
                    (id.clone(), m.clone(), target)
                })
                .collect(),
        })
    }

    /// Every topic a consumer group can subscribe to (all but the internal ones).
    pub fn topics_view(&self) -> TopicsView {
        match &self.broker.cluster {
            Some(c) => c
                .image()
                .topics
                .iter()
                .filter(|(name, _)| name.as_str() != crate::broker::OFFSETS_TOPIC)
                .map(|(name, t)| {
                    let layout = TopicLayout {
                        id: uuid::Uuid::from_u128(t.id),
                        partitions: i32::try_from(t.partitions.len()).unwrap_or(i32::MAX),
                    };
                    (name.clone(), layout)
                })
                .collect(),
            None => self
                .broker
                .topics()
                .iter()
                .filter(|t| !t.internal)
                .map(|t| {
                    let layout = TopicLayout {
                        id: t.id,
                        partitions: i32::try_from(t.partition_count()).unwrap_or(i32::MAX),
                    };
                    (t.name.clone(), layout)
                })
                .collect(),
        }
    }
}

fn fenced(received: i32, known: i32, which: &str) -> HeartbeatReply {
    HeartbeatReply::error(
        ErrorCode::FencedMemberEpoch,
        format!(
            "The consumer group member has a {which} member epoch ({received}) than the one \
             known by the group coordinator ({known}). The member must abandon all its \
             partitions and rejoin."
        ),
    )
}

fn is_subset(a: &Partitions, b: &Partitions) -> bool {
    a.iter()
        .all(|(t, ps)| ps.is_empty() || b.get(t).is_some_and(|s| ps.is_subset(s)))
}

fn intersects(a: &Partitions, b: &Partitions) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|s| !ps.is_disjoint(s)))
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use uuid::Uuid;

    const T: Uuid = Uuid::from_u128(7);

    fn topics(partitions: i32) -> TopicsView {
        BTreeMap::from([("orders".to_string(), TopicLayout { id: T, partitions })])
    }

    fn join(id: &str) -> Heartbeat {
        Heartbeat {
            member_id: id.into(),
            member_epoch: 0,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed_topic_names: Some(vec!["orders".into()]),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(Partitions::new()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
        }
    }

    fn beat(id: &str, epoch: i32, owned: Option<&Partitions>) -> Heartbeat {
        Heartbeat {
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            subscribed_topic_names: None,
            owned: owned.cloned(),
            ..join(id)
        }
    }

    fn parts(a: &Option<Partitions>) -> BTreeSet<i32> {
        a.as_ref()
            .and_then(|a| a.get(&T).cloned())
            .unwrap_or_default()
    }

    #[test]
    fn a_lone_member_gets_every_partition_at_the_first_epoch() {
        let mut g = ConsumerGroup::new();
        let r = g.heartbeat(join("a"), &topics(4), Instant::now());
        assert_eq!(r.error, ErrorCode::None);
        assert_eq!(r.member_epoch, 1);
        assert_eq!(parts(&r.assignment), BTreeSet::from([0, 1, 2, 3]));
        assert_eq!(g.state(), ConsumerGroupState::Stable);
    }

    /// The KIP-848 handover: b joins; a is first asked to revoke and keeps its epoch; b gets
    /// nothing a still owns until a confirms; then both are at the new epoch, with two each.
    /// A group stored mid-rebalance (one member revoking, one waiting) and loaded by another
    /// coordinator is the same group: the reconciliation carries on from where it was.
    #[test]
    fn a_stored_group_loads_as_it_was_and_reconciles_on() {
        let now = Instant::now();
        let view = topics(4);
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a"), &view, now);
        g.heartbeat(join("b"), &view, now);
        let a2 = g.heartbeat(beat("a", 1, None), &view, now);
        let a_kept = a2.assignment.clone().unwrap();
        let stored = g.to_stored();
        let mut loaded = ConsumerGroup::from_stored(stored.clone(), now).unwrap();
        assert_eq!(loaded.to_stored(), stored);
        assert_eq!(loaded.state(), ConsumerGroupState::Reconciling);
        // a confirms its revocation to the new coordinator, then b gets the freed partitions.
        let a3 = loaded.heartbeat(beat("a", 1, Some(&a_kept)), &view, now);
        assert_eq!(a3.member_epoch, 2);
        let b3 = loaded.heartbeat(beat("b", 2, Some(&Partitions::new())), &view, now);
        assert_eq!(parts(&b3.assignment).len(), 2);
        assert_eq!(loaded.state(), ConsumerGroupState::Stable);
        // A record giving one partition two owners is not trusted.
        let mut bad = loaded.to_stored();
        let a_owned = bad.members["a"].assigned.clone();
        bad.members.get_mut("b").unwrap().assigned = a_owned;
        assert!(ConsumerGroup::from_stored(bad, now).is_none());
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_gives_it_up() {
        let now = Instant::now();
        let view = topics(4);
        let mut g = ConsumerGroup::new();
        let a = g.heartbeat(join("a"), &view, now);
        let a_all = a.assignment.clone().unwrap();
        let b = g.heartbeat(join("b"), &view, now);
        assert_eq!(b.member_epoch, 2);
        assert!(parts(&b.assignment).is_empty(), "a still owns everything");
        assert_eq!(g.members["b"].state, MemberState::UnreleasedPartitions);

        let a2 = g.heartbeat(beat("a", 1, None), &view, now);
        assert_eq!(a2.member_epoch, 1, "a stays at its epoch while it revokes");
        let a_kept = a2.assignment.clone().unwrap();
        assert_eq!(parts(&a2.assignment).len(), 2);
        assert_eq!(g.members["a"].state, MemberState::UnrevokedPartitions);
        assert_eq!(g.state(), ConsumerGroupState::Reconciling);

        // b asks again before a confirmed: still nothing.
        let b2 = g.heartbeat(beat("b", 2, Some(&Partitions::new())), &view, now);
        assert!(
            parts(&g.members["b"].assigned.clone().into()).is_empty(),
            "{b2:?}"
        );
        // a reports owning only what it kept: it moves to epoch 2.
        let a3 = g.heartbeat(beat("a", 1, Some(&a_kept)), &view, now);
        assert_eq!(a3.member_epoch, 2);
        // Now b gets the two a gave up.
        let b3 = g.heartbeat(beat("b", 2, Some(&Partitions::new())), &view, now);
        let got = parts(&b3.assignment);
        assert_eq!(got.len(), 2);
        assert!(got.is_disjoint(&a_kept[&T]));
        assert_eq!(got.union(&a_kept[&T]).count(), a_all[&T].len());
        assert_eq!(g.state(), ConsumerGroupState::Stable);
    }

    #[test]
    fn a_leaving_member_frees_its_partitions_for_the_others() {
        let now = Instant::now();
        let view = topics(2);
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a"), &view, now);
        g.heartbeat(join("b"), &view, now);
        let a = g.heartbeat(beat("a", 1, None), &view, now);
        g.heartbeat(beat("a", 1, a.assignment.as_ref()), &view, now);
        g.heartbeat(beat("b", 2, Some(&Partitions::new())), &view, now);
        assert_eq!(g.members["b"].assigned[&T].len(), 1);
        let left = g.heartbeat(beat("a", LEAVE_EPOCH, None), &view, now);
        assert_eq!((left.error, left.member_epoch), (ErrorCode::None, -1));
        let b = g.heartbeat(beat("b", 2, None), &view, now);
        assert_eq!(parts(&b.assignment), BTreeSet::from([0, 1]));
        assert_eq!(b.member_epoch, g.group_epoch);
    }

    #[test]
    fn wrong_epochs_and_unknown_members_are_fenced() {
        let now = Instant::now();
        let view = topics(1);
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a"), &view, now);
        assert_eq!(
            g.heartbeat(beat("a", 5, None), &view, now).error,
            ErrorCode::FencedMemberEpoch
        );
        assert_eq!(
            g.heartbeat(beat("x", 1, None), &view, now).error,
            ErrorCode::UnknownMemberId
        );
        // b joins (epoch 2); a, at 1, moves to 2 when it heartbeats (nothing to revoke: a
        // keeps its one partition). Its previous epoch 1 is then still accepted while it owns
        // no more than it is assigned.
        g.heartbeat(join("b"), &view, now);
        let a = g.heartbeat(beat("a", 1, None), &view, now);
        assert_eq!(a.member_epoch, 2);
        let owned = g.members["a"].assigned.clone();
        assert_eq!(
            g.heartbeat(beat("a", 1, Some(&owned)), &view, now).error,
            ErrorCode::None
        );
        let mut more = owned.clone();
        more.entry(T).or_default().insert(9);
        assert_eq!(
            g.heartbeat(beat("a", 1, Some(&more)), &view, now).error,
            ErrorCode::FencedMemberEpoch
        );
    }

    #[test]
    fn a_member_that_stops_heartbeating_is_removed_and_its_partitions_reassigned() {
        let t0 = Instant::now();
        let view = topics(2);
        let mut g = ConsumerGroup::new();
        g.heartbeat(join("a"), &view, t0);
        let later = t0 + Duration::from_secs(10);
        g.heartbeat(join("b"), &view, later);
        let gone = g.expire(later + Duration::from_secs(1), Duration::from_secs(5));
        assert_eq!(gone, vec!["a".to_string()]);
        let b = g.heartbeat(beat("b", 2, Some(&Partitions::new())), &view, later);
        assert_eq!(parts(&b.assignment), BTreeSet::from([0, 1]));
    }

    #[test]
    fn new_partitions_and_regex_subscriptions_bump_the_epoch() {
        let now = Instant::now();
        let mut g = ConsumerGroup::new();
        let mut hb = join("a");
        hb.subscribed_topic_names = None;
        hb.subscribed_topic_regex = Some("ord.*".into());
        let r = g.heartbeat(hb, &topics(1), now);
        assert_eq!(parts(&r.assignment), BTreeSet::from([0]));
        let r = g.heartbeat(beat("a", 1, None), &topics(3), now);
        assert_eq!(r.member_epoch, 2);
        assert_eq!(parts(&r.assignment), BTreeSet::from([0, 1, 2]));
        let mut bad = join("b");
        bad.subscribed_topic_regex = Some("(".into());
        assert_eq!(
            g.heartbeat(bad, &topics(3), now).error,
            ErrorCode::InvalidRegularExpression
        );
    }

    #[test]
    fn a_static_member_takes_its_assignment_back_without_a_rebalance() {
        let now = Instant::now();
        let view = topics(2);
        let mut g = ConsumerGroup::new();
        let mut hb = join("a");
        hb.instance_id = Some("i1".into());
        g.heartbeat(hb.clone(), &view, now);
        let mut other = hb.clone();
        other.member_id = "a2".into();
        assert_eq!(
            g.heartbeat(other.clone(), &view, now).error,
            ErrorCode::UnreleasedInstanceId
        );
        let mut leave = beat("a", STATIC_LEAVE_EPOCH, None);
        leave.instance_id = Some("i1".into());
        assert_eq!(
            g.heartbeat(leave, &view, now).member_epoch,
            STATIC_LEAVE_EPOCH
        );
        let epoch = g.group_epoch;
        let back = g.heartbeat(other, &view, now);
        assert_eq!(back.error, ErrorCode::None);
        assert_eq!(parts(&back.assignment), BTreeSet::from([0, 1]));
        assert_eq!(g.group_epoch, epoch, "no rebalance");
        assert!(!g.members.contains_key("a"));
    }

    #[test]
    fn validation_follows_kafka() {
        let mut hb = join("");
        assert_eq!(
            validate(&hb, 1).unwrap_err().error,
            ErrorCode::InvalidRequest
        );
        assert!(
            validate(&hb, 0).is_ok(),
            "v0: the coordinator names the member"
        );
        hb.member_id = "m".into();
        hb.rebalance_timeout_ms = -1;
        assert_eq!(
            validate(&hb, 1).unwrap_err().error,
            ErrorCode::InvalidRequest
        );
        let mut hb = join("m");
        hb.server_assignor = Some("sticky".into());
        assert_eq!(
            validate(&hb, 1).unwrap_err().error,
            ErrorCode::UnsupportedAssignor
        );
        let mut hb = beat("m", -3, None);
        hb.instance_id = None;
        assert_eq!(
            validate(&hb, 1).unwrap_err().error,
            ErrorCode::InvalidRequest
        );
        assert!(validate(&beat("m", 4, None), 1).is_ok());
    }

    #[test]
    fn commits_need_the_current_member_epoch() {
        let mut g = ConsumerGroup::new();
        assert_eq!(g.check_member_epoch("", -1), ErrorCode::None);
        g.heartbeat(join("a"), &topics(1), Instant::now());
        assert_eq!(g.check_member_epoch("", -1), ErrorCode::UnknownMemberId);
        assert_eq!(g.check_member_epoch("a", 1), ErrorCode::None);
        assert_eq!(g.check_member_epoch("a", 0), ErrorCode::StaleMemberEpoch);
        assert_eq!(g.check_member_epoch("z", 1), ErrorCode::UnknownMemberId);
    }
}
