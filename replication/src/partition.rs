//! One replica's view of a partition, Kafka's ISR model, sans-IO.
//!
//! As leader it tracks each follower's log end offset (the offset of its last fetch: a follower
//! fetches from its *durable* end, so the leader's view of it is what it has fsynced), advances
//! the high watermark to the minimum over the ISR, and proposes ISR changes: a follower that has
//! not caught up for `replica_lag_time_max_ms` leaves, a follower that has reached the high
//! watermark (and the start of this leader's epoch) comes back. The controller's answer is the
//! truth (`on_isr_changed`). As follower it only carries the epoch and the leader's high
//! watermark.
//!
//! Invariants:
//! - the high watermark never decreases while the replica keeps one role and epoch, and never
//!   passes the leader's log end offset;
//! - the high watermark is computed over the *maximal* ISR (the committed ISR plus any pending
//!   additions), so a record below it is on every replica that is or may become in-sync;
//! - at most one ISR change is in flight at a time, and it names the epoch it was computed in.

use std::collections::{BTreeMap, BTreeSet};

use strata_engine::{LeaderEpoch, Offset};

use crate::broker_id::BrokerId;

/// Limits of the partition state machine.
#[derive(Clone, Copy, Debug)]
pub struct PartitionConfig {
    /// `replica.lag.time.max.ms`: a follower that has not caught up for this long leaves the
    /// ISR. Default: 10000.
    pub replica_lag_time_max_ms: u64,
    /// `min.insync.replicas`: acks=all needs at least this many ISR members. Default: 1.
    pub min_insync_replicas: usize,
}

impl Default for PartitionConfig {
    fn default() -> PartitionConfig {
        PartitionConfig {
            replica_lag_time_max_ms: 10_000,
            min_insync_replicas: 1,
        }
    }
}

/// Errors a replica returns to requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicationError {
    /// This replica does not lead the partition.
    #[error("not the leader")]
    NotLeader,
    /// The request's epoch is older than this replica's.
    #[error("fenced leader epoch: request {request}, current {current}")]
    FencedLeaderEpoch {
        /// Epoch in the request.
        request: LeaderEpoch,
        /// This replica's epoch.
        current: LeaderEpoch,
    },
    /// The request's epoch is newer than this replica knows.
    #[error("unknown leader epoch {0}")]
    UnknownLeaderEpoch(LeaderEpoch),
    /// The fetching broker is not a replica of the partition.
    #[error("broker {0} is not a replica")]
    UnknownReplica(BrokerId),
    /// Fewer ISR members than `min.insync.replicas`.
    #[error("not enough replicas: ISR has {isr}, min.insync.replicas is {min}")]
    NotEnoughReplicas {
        /// ISR size.
        isr: usize,
        /// The minimum.
        min: usize,
    },
}

/// An ISR change the leader asks the controller for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterIsr {
    /// Epoch the proposal was made in (the controller refuses stale ones).
    pub leader_epoch: LeaderEpoch,
    /// The proposed ISR.
    pub isr: BTreeSet<BrokerId>,
}

/// What the driver must act on after an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ready {
    /// The high watermark advanced to this offset: release acks=all waiters below it, wake
    /// consumers.
    pub high_watermark: Option<Offset>,
    /// Send this ISR change to the controller.
    pub alter_isr: Option<AlterIsr>,
}

/// What the leader knows of one follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FollowerState {
    log_end_offset: Option<Offset>,
    last_caught_up_ms: u64,
    last_fetch_ms: u64,
    leader_leo_at_last_fetch: Offset,
}

/// The replica's role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Neither leader nor follower (not assigned yet, or shut down).
    Offline,
    /// Leads the partition.
    Leader,
    /// Follows `leader`.
    Follower(BrokerId),
}

/// One replica of one partition.
#[derive(Debug, Clone)]
pub struct Partition {
    id: BrokerId,
    config: PartitionConfig,
    role: Role,
    epoch: LeaderEpoch,
    high_watermark: Offset,
    replicas: Vec<BrokerId>,
    isr: BTreeSet<BrokerId>,
    pending_isr: Option<AlterIsr>,
    followers: BTreeMap<BrokerId, FollowerState>,
    epoch_start_offset: Offset,
}

impl Partition {
    /// Changes `min.insync.replicas` (at least 1); it applies from the next acks=all append.
    pub fn set_min_insync_replicas(&mut self, n: usize) {
        self.config.min_insync_replicas = n.max(1);
    }

    /// A replica that is not yet leader or follower.
    pub fn new(id: BrokerId, config: PartitionConfig, high_watermark: Offset) -> Partition {
        Partition {
            id,
            config,
            role: Role::Offline,
            epoch: LeaderEpoch(-1),
            high_watermark,
            replicas: Vec::new(),
            isr: BTreeSet::new(),
            pending_isr: None,
            followers: BTreeMap::new(),
            epoch_start_offset: Offset::ZERO,
        }
    }

    /// This replica's broker.
    pub fn id(&self) -> BrokerId {
        self.id
    }

    /// The current role.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// Whether this replica leads.
    pub fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.epoch
    }

    /// The high watermark: consumers read below it, acks=all completes once it passes a batch.
    pub fn high_watermark(&self) -> Offset {
        self.high_watermark
    }

    /// The committed ISR.
    pub fn isr(&self) -> &BTreeSet<BrokerId> {
        &self.isr
    }

    /// As leader: the in-sync followers whose log (as their last fetch showed) reaches
    /// `offset`, with that end offset; the replicas a consumer reading from `offset` may be sent
    /// to instead of the leader (KIP-392).
    pub fn read_replicas(&self, offset: Offset) -> Vec<(BrokerId, Offset)> {
        if !self.is_leader() {
            return Vec::new();
        }
        self.followers
            .iter()
            .filter(|(b, _)| self.isr.contains(b))
            .filter_map(|(b, f)| f.log_end_offset.map(|leo| (*b, leo)))
            .filter(|(_, leo)| *leo >= offset)
            .collect()
    }

    /// The ISR change waiting for the controller, if any.
    pub fn pending_isr(&self) -> Option<&AlterIsr> {
        self.pending_isr.as_ref()
    }

    /// Becomes leader of `epoch` with `replicas` and `isr` (as the controller decided), with the
    /// local log ending at `log_end_offset`.
    pub fn become_leader(
        &mut self,
        epoch: LeaderEpoch,
        replicas: Vec<BrokerId>,
        isr: BTreeSet<BrokerId>,
        log_end_offset: Offset,
        now_ms: u64,
    ) -> Ready {
        assert!(
            epoch > self.epoch || (epoch == self.epoch && self.role != Role::Leader),
            "leader epochs only grow"
        );
        assert!(isr.contains(&self.id), "a leader is in its own ISR");
        self.role = Role::Leader;
        self.epoch = epoch;
        self.replicas = replicas;
        self.isr = isr;
        self.pending_isr = None;
        self.epoch_start_offset = log_end_offset;
        self.high_watermark = self.high_watermark.min(log_end_offset);
        // Follower positions from an earlier leadership are unknown now; until each fetches,
        // it holds the high watermark back if it is in the ISR.
        self.followers = self
            .replicas
            .iter()
            .filter(|r| **r != self.id)
            .map(|r| {
                (
                    *r,
                    FollowerState {
                        log_end_offset: None,
                        last_caught_up_ms: now_ms,
                        last_fetch_ms: now_ms,
                        leader_leo_at_last_fetch: log_end_offset,
                    },
                )
            })
            .collect();
        self.maybe_advance_hw(log_end_offset)
    }

    /// The replicas this replica knows of (as leader: those it tracks).
    pub fn replicas(&self) -> &[BrokerId] {
        &self.replicas
    }

    /// As leader, within its epoch: the replica set changed (a reassignment added or removed
    /// replicas) and the ISR is `isr`. A new replica is tracked from its first fetch; one that
    /// left is forgotten. The ISR is the controller's, as in `on_isr_changed`.
    pub fn update_replicas(
        &mut self,
        replicas: Vec<BrokerId>,
        isr: BTreeSet<BrokerId>,
        leader_leo: Offset,
        now_ms: u64,
    ) -> Ready {
        if !self.is_leader() {
            self.replicas = replicas;
            return Ready::default();
        }
        assert!(isr.contains(&self.id), "a leader is in its own ISR");
        self.followers.retain(|b, _| replicas.contains(b));
        for r in &replicas {
            if *r != self.id {
                self.followers.entry(*r).or_insert(FollowerState {
                    log_end_offset: None,
                    last_caught_up_ms: now_ms,
                    last_fetch_ms: now_ms,
                    leader_leo_at_last_fetch: leader_leo,
                });
            }
        }
        self.replicas = replicas;
        // The controller's record is its answer to any pending proposal (applied with it, as
        // when a join completes a reassignment, or superseded), as in `on_isr_changed`.
        self.pending_isr = None;
        self.isr = isr;
        self.maybe_advance_hw(leader_leo)
    }

    /// Becomes a follower of `leader` in `epoch`.
    pub fn become_follower(&mut self, epoch: LeaderEpoch, leader: BrokerId) {
        assert!(epoch >= self.epoch, "leader epochs only grow");
        assert_ne!(leader, self.id, "a follower follows another broker");
        self.role = Role::Follower(leader);
        self.epoch = epoch;
        self.pending_isr = None;
        self.followers.clear();
    }

    /// Stops being leader or follower (shutdown, or the partition moved away).
    pub fn become_offline(&mut self) {
        self.role = Role::Offline;
        self.pending_isr = None;
        self.followers.clear();
    }

    /// acks=all admission: the ISR must have at least `min.insync.replicas` members.
    pub fn check_acks_all(&self) -> Result<(), ReplicationError> {
        if !self.is_leader() {
            return Err(ReplicationError::NotLeader);
        }
        if self.isr.len() < self.config.min_insync_replicas {
            return Err(ReplicationError::NotEnoughReplicas {
                isr: self.isr.len(),
                min: self.config.min_insync_replicas,
            });
        }
        Ok(())
    }

    /// The ISR plus pending additions: the set the high watermark must respect.
    fn maximal_isr(&self) -> BTreeSet<BrokerId> {
        let mut m = self.isr.clone();
        if let Some(p) = &self.pending_isr {
            m.extend(p.isr.iter().copied());
        }
        m
    }

    fn maybe_advance_hw(&mut self, leader_leo: Offset) -> Ready {
        let mut candidate = leader_leo;
        for b in self.maximal_isr() {
            if b == self.id {
                continue;
            }
            match self.followers.get(&b).and_then(|f| f.log_end_offset) {
                Some(leo) => candidate = candidate.min(leo),
                None => candidate = candidate.min(self.high_watermark),
            }
        }
        let mut ready = Ready::default();
        if candidate > self.high_watermark {
            self.high_watermark = candidate;
            ready.high_watermark = Some(candidate);
        }
        ready
    }

    /// The leader's own log grew to `leader_leo` (and is durable there).
    pub fn on_leader_append(&mut self, leader_leo: Offset) -> Ready {
        if !self.is_leader() {
            return Ready::default();
        }
        self.maybe_advance_hw(leader_leo)
    }

    /// A follower fetched from `fetch_offset` (everything below it is durable on the follower)
    /// in `epoch`. Returns what to do; the driver answers the fetch with records from
    /// `fetch_offset` and this replica's high watermark.
    pub fn on_fetch(
        &mut self,
        follower: BrokerId,
        epoch: LeaderEpoch,
        fetch_offset: Offset,
        leader_leo: Offset,
        now_ms: u64,
    ) -> Result<Ready, ReplicationError> {
        if !self.is_leader() {
            return Err(ReplicationError::NotLeader);
        }
        if epoch < self.epoch {
            return Err(ReplicationError::FencedLeaderEpoch {
                request: epoch,
                current: self.epoch,
            });
        }
        if epoch > self.epoch {
            return Err(ReplicationError::UnknownLeaderEpoch(epoch));
        }
        let state = self
            .followers
            .get_mut(&follower)
            .ok_or(ReplicationError::UnknownReplica(follower))?;
        let fetch_offset = fetch_offset.min(leader_leo);
        // Caught up: it has everything the leader had, now or at its previous fetch.
        if fetch_offset >= leader_leo {
            state.last_caught_up_ms = now_ms;
        } else if fetch_offset >= state.leader_leo_at_last_fetch {
            state.last_caught_up_ms = state.last_caught_up_ms.max(state.last_fetch_ms);
        }
        state.last_fetch_ms = now_ms;
        state.leader_leo_at_last_fetch = leader_leo;
        state.log_end_offset = Some(fetch_offset);
        let mut ready = self.maybe_advance_hw(leader_leo);
        // A follower outside the ISR that reached the high watermark and this epoch's start
        // comes back in.
        if self.pending_isr.is_none()
            && !self.isr.contains(&follower)
            && fetch_offset >= self.high_watermark
            && fetch_offset >= self.epoch_start_offset
        {
            let mut isr = self.isr.clone();
            isr.insert(follower);
            ready.alter_isr = Some(self.propose(isr));
        }
        Ok(ready)
    }

    fn propose(&mut self, isr: BTreeSet<BrokerId>) -> AlterIsr {
        let p = AlterIsr {
            leader_epoch: self.epoch,
            isr,
        };
        self.pending_isr = Some(p.clone());
        p
    }

    /// Time passes: followers that have not caught up for `replica_lag_time_max_ms` are
    /// proposed out of the ISR.
    pub fn tick(&mut self, now_ms: u64, leader_leo: Offset) -> Ready {
        if !self.is_leader() || self.pending_isr.is_some() {
            return Ready::default();
        }
        let lagging: Vec<BrokerId> = self
            .isr
            .iter()
            .filter(|b| **b != self.id)
            .filter(|b| {
                self.followers.get(b).is_some_and(|f| {
                    now_ms.saturating_sub(f.last_caught_up_ms) > self.config.replica_lag_time_max_ms
                })
            })
            .copied()
            .collect();
        if lagging.is_empty() {
            return self.maybe_advance_hw(leader_leo);
        }
        let isr: BTreeSet<BrokerId> = self
            .isr
            .iter()
            .filter(|b| !lagging.contains(b))
            .copied()
            .collect();
        Ready {
            high_watermark: None,
            alter_isr: Some(self.propose(isr)),
        }
    }

    /// The controller's answer: the ISR is now `isr` (in `epoch`). A stale answer is ignored.
    pub fn on_isr_changed(
        &mut self,
        epoch: LeaderEpoch,
        isr: BTreeSet<BrokerId>,
        leader_leo: Offset,
    ) -> Ready {
        if epoch != self.epoch || !self.is_leader() {
            return Ready::default();
        }
        self.isr = isr;
        self.pending_isr = None;
        self.maybe_advance_hw(leader_leo)
    }

    /// The controller refused the pending change (stale epoch or conflict): forget it.
    pub fn on_isr_rejected(&mut self) {
        self.pending_isr = None;
    }

    /// As follower: the leader's high watermark arrived with a fetch response; ours is that,
    /// bounded by what we have.
    pub fn on_leader_high_watermark(&mut self, leader_hw: Offset, local_leo: Offset) -> Ready {
        let hw = leader_hw.min(local_leo);
        if matches!(self.role, Role::Follower(_)) && hw > self.high_watermark {
            self.high_watermark = hw;
            return Ready {
                high_watermark: Some(hw),
                alter_isr: None,
            };
        }
        Ready::default()
    }

    /// As follower after truncation: the high watermark cannot exceed the truncated end.
    pub fn on_truncated(&mut self, local_leo: Offset) {
        self.high_watermark = self.high_watermark.min(local_leo);
    }
}

/// Where a follower must truncate, given its own end offset for `epoch` (the largest epoch it
/// has) and the leader's answer to OffsetForLeaderEpoch for that epoch (KIP-101/279). `None`
/// from the leader means it knows nothing that old: truncate to the start.
pub fn truncation_offset(
    local_leo: Offset,
    leader_answer: Option<(LeaderEpoch, Offset)>,
    local_end_for: impl Fn(LeaderEpoch) -> Offset,
) -> Offset {
    match leader_answer {
        None => Offset::ZERO,
        Some((epoch, end)) => {
            // The leader's largest epoch <= ours ends at `end`; our log for that epoch ends at
            // local_end_for(epoch). Records beyond the smaller of the two diverge.
            end.min(local_end_for(epoch)).min(local_leo)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[i32]) -> BTreeSet<BrokerId> {
        v.iter().map(|b| BrokerId(*b)).collect()
    }

    fn leader() -> Partition {
        let mut p = Partition::new(
            BrokerId(1),
            PartitionConfig {
                replica_lag_time_max_ms: 100,
                min_insync_replicas: 2,
            },
            Offset(0),
        );
        p.become_leader(
            LeaderEpoch(1),
            vec![BrokerId(1), BrokerId(2), BrokerId(3)],
            set(&[1, 2, 3]),
            Offset(0),
            0,
        );
        p
    }

    #[test]
    fn high_watermark_is_the_minimum_over_the_isr() {
        let mut p = leader();
        assert_eq!(
            p.on_leader_append(Offset(10)).high_watermark,
            None,
            "followers have not fetched"
        );
        p.on_fetch(BrokerId(2), LeaderEpoch(1), Offset(7), Offset(10), 1)
            .unwrap();
        assert_eq!(p.high_watermark(), Offset(0));
        let r = p
            .on_fetch(BrokerId(3), LeaderEpoch(1), Offset(5), Offset(10), 1)
            .unwrap();
        assert_eq!(r.high_watermark, Some(Offset(5)));
        let r = p
            .on_fetch(BrokerId(3), LeaderEpoch(1), Offset(10), Offset(10), 2)
            .unwrap();
        assert_eq!(r.high_watermark, Some(Offset(7)));
    }

    #[test]
    fn a_lagging_follower_is_proposed_out_and_back_in() {
        let mut p = leader();
        p.on_leader_append(Offset(10));
        p.on_fetch(BrokerId(2), LeaderEpoch(1), Offset(10), Offset(10), 50)
            .unwrap();
        p.on_fetch(BrokerId(3), LeaderEpoch(1), Offset(3), Offset(10), 50)
            .unwrap();
        let r = p.tick(150, Offset(10));
        assert_eq!(
            r.alter_isr,
            Some(AlterIsr {
                leader_epoch: LeaderEpoch(1),
                isr: set(&[1, 2])
            })
        );
        let r = p.on_isr_changed(LeaderEpoch(1), set(&[1, 2]), Offset(10));
        assert_eq!(r.high_watermark, Some(Offset(10)));
        assert!(p.check_acks_all().is_ok());
        let r = p
            .on_fetch(BrokerId(3), LeaderEpoch(1), Offset(10), Offset(10), 160)
            .unwrap();
        assert_eq!(
            r.alter_isr,
            Some(AlterIsr {
                leader_epoch: LeaderEpoch(1),
                isr: set(&[1, 2, 3])
            })
        );
    }

    #[test]
    fn acks_all_needs_min_insync_replicas() {
        let mut p = leader();
        p.on_isr_changed(LeaderEpoch(1), set(&[1]), Offset(0));
        assert_eq!(
            p.check_acks_all(),
            Err(ReplicationError::NotEnoughReplicas { isr: 1, min: 2 })
        );
    }

    #[test]
    fn stale_and_future_epochs_are_refused() {
        let mut p = leader();
        assert!(matches!(
            p.on_fetch(BrokerId(2), LeaderEpoch(0), Offset(0), Offset(0), 0),
            Err(ReplicationError::FencedLeaderEpoch { .. })
        ));
        assert!(matches!(
            p.on_fetch(BrokerId(2), LeaderEpoch(2), Offset(0), Offset(0), 0),
            Err(ReplicationError::UnknownLeaderEpoch(_))
        ));
        assert!(matches!(
            p.on_fetch(BrokerId(9), LeaderEpoch(1), Offset(0), Offset(0), 0),
            Err(ReplicationError::UnknownReplica(_))
        ));
    }

    /// A reassignment within the epoch: a new replica is tracked (its fetches accepted, and it
    /// joins the ISR once caught up, without holding the high watermark back before), a
    /// removed one is forgotten.
    #[test]
    fn replicas_added_and_removed_within_an_epoch() {
        let mut p = leader();
        for f in [2, 3] {
            p.on_fetch(BrokerId(f), LeaderEpoch(1), Offset(0), Offset(10), 1)
                .unwrap();
        }
        p.on_leader_append(Offset(10));
        p.update_replicas(
            vec![BrokerId(1), BrokerId(2), BrokerId(3), BrokerId(4)],
            set(&[1, 2, 3]),
            Offset(10),
            2,
        );
        let r = p
            .on_fetch(BrokerId(2), LeaderEpoch(1), Offset(10), Offset(10), 3)
            .unwrap();
        assert!(r.alter_isr.is_none());
        p.on_fetch(BrokerId(3), LeaderEpoch(1), Offset(10), Offset(10), 3)
            .unwrap();
        assert_eq!(p.high_watermark(), Offset(10), "4 holds nothing back");
        let r = p
            .on_fetch(BrokerId(4), LeaderEpoch(1), Offset(10), Offset(10), 4)
            .unwrap();
        assert_eq!(r.alter_isr.map(|a| a.isr), Some(set(&[1, 2, 3, 4])));
        // The move completes in the same record that takes 4 in: 1 keeps leading, 3 is gone,
        // and the proposal is answered (another one can be made).
        assert!(p.pending_isr().is_some());
        p.update_replicas(
            vec![BrokerId(1), BrokerId(2), BrokerId(4)],
            set(&[1, 2, 4]),
            Offset(10),
            5,
        );
        assert!(matches!(
            p.on_fetch(BrokerId(3), LeaderEpoch(1), Offset(10), Offset(10), 6),
            Err(ReplicationError::UnknownReplica(_))
        ));
        assert_eq!(p.isr(), &set(&[1, 2, 4]));
        assert!(
            p.pending_isr().is_none(),
            "the record answered the proposal"
        );
        // A follower that falls out can be proposed out again.
        let r = p.tick(1_000, Offset(10));
        assert!(r.alter_isr.is_some());
    }

    #[test]
    fn truncation_goes_to_the_divergence_point() {
        // We have epochs 1 (0..5) and 2 (5..9); the new leader has epoch 1 ending at 7.
        let local_end = |e: LeaderEpoch| if e.0 <= 1 { Offset(5) } else { Offset(9) };
        assert_eq!(
            truncation_offset(Offset(9), Some((LeaderEpoch(1), Offset(7))), local_end),
            Offset(5)
        );
        assert_eq!(
            truncation_offset(Offset(9), Some((LeaderEpoch(2), Offset(12))), local_end),
            Offset(9)
        );
        assert_eq!(truncation_offset(Offset(9), None, local_end), Offset(0));
    }
}
