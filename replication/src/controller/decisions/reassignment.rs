//! Partition reassignment (KIP-455), and the controller's own repair that uses it: replicas of a
//! broker gone for good re-created on live brokers.
//!
//! A reassignment of a partition from replicas R to a target T is one record: the replica set
//! becomes T followed by R \ T (so T's first replica is the preferred leader), with `adding` =
//! T \ R and `removing` = R \ T. Leader and ISR stay as they are: an added replica fetches like
//! any follower, and the leader proposes it into the ISR once it has caught up. When every
//! member of T is in the ISR, a second record completes the move: the replicas become T, the
//! ISR its intersection with T, and a leader outside T hands over to an in-sync member of T (a
//! new leader epoch). A removed replica sees it is no longer assigned and deletes its log.
//!
//! A cancel returns to R (the replicas less `adding`). Both states live in the metadata log,
//! so a controller that fails over mid-move carries on from where the last one was, and a kill
//! of any broker mid-move is an ordinary failure of a replica.
//!
//! Invariants: a target is never empty and names registered brokers only, each once; neither a
//! new target nor a cancel ever leaves the ISR without a member (that would need an unclean
//! election, which is refused); a completion happens only with the whole target in sync.

use std::collections::{BTreeMap, BTreeSet};

use strata_engine::LeaderEpoch;

use super::{Batch, ControllerError, ControllerLogic};
use crate::broker_id::BrokerId;
use crate::controller::image::{MetadataImage, PartitionRegistration};
use crate::controller::records::MetadataRecord;

impl ControllerLogic {
    /// AlterPartitionReassignments for one partition: `Some(target)` moves it to those
    /// replicas (replacing a reassignment under way), `None` cancels the one under way.
    /// `allow_replication_factor_change` false refuses a target of another size than the
    /// partition's replication factor (KIP-860). A target equal to the current replicas is
    /// nothing to do (no records).
    pub fn reassign_partition(
        &self,
        image: &MetadataImage,
        topic: &str,
        partition: u32,
        target: Option<Vec<BrokerId>>,
        allow_replication_factor_change: bool,
    ) -> Result<Vec<MetadataRecord>, ControllerError> {
        let p = super::partition_of(image, topic, partition)?.clone();
        let name = format!("{topic}-{partition}");
        let original = p.original_replicas();
        let Some(target) = target else {
            if !p.is_reassigning() {
                return Err(ControllerError::NoReassignmentInProgress(name));
            }
            let mut batch = Batch::new(image);
            self.move_into(
                &mut batch, topic, partition, &p, &original, &original, &name,
            )?;
            return Ok(batch.records);
        };
        check_target(image, &target, &name)?;
        if !allow_replication_factor_change && target.len() != original.len() {
            return Err(ControllerError::ReplicationFactorChange {
                partition: name,
                from: original.len(),
                to: target.len(),
            });
        }
        if !p.is_reassigning() && target == p.replicas {
            return Ok(Vec::new());
        }
        let mut batch = Batch::new(image);
        self.move_into(&mut batch, topic, partition, &p, &original, &target, &name)?;
        Ok(batch.records)
    }

    /// Records that set `p` moving from `original` to `target` (a cancel: both equal), then
    /// complete the move at once if the target is already in sync.
    #[expect(
        clippy::too_many_arguments,
        reason = "one partition's move, spelled out"
    )]
    fn move_into(
        &self,
        batch: &mut Batch,
        topic: &str,
        partition: u32,
        p: &PartitionRegistration,
        original: &[BrokerId],
        target: &[BrokerId],
        name: &str,
    ) -> Result<(), ControllerError> {
        let mut replicas: Vec<BrokerId> = target.to_vec();
        replicas.extend(original.iter().filter(|b| !target.contains(b)));
        let adding: Vec<BrokerId> = target
            .iter()
            .copied()
            .filter(|b| !original.contains(b))
            .collect();
        let removing: Vec<BrokerId> = original
            .iter()
            .copied()
            .filter(|b| !target.contains(b))
            .collect();
        // Replicas a replaced reassignment was adding, and are not in this one, leave the ISR.
        let isr: Vec<BrokerId> = p
            .isr
            .iter()
            .copied()
            .filter(|b| replicas.contains(b))
            .collect();
        if isr.is_empty() {
            return Err(ControllerError::InvalidReplicaAssignment(format!(
                "{name}: none of the in-sync replicas {:?} would remain, which needs an unclean election",
                p.isr
            )));
        }
        let (leader, isr, leader_epoch) = match p.leader {
            Some(l) if isr.contains(&l) => (Some(l), isr, p.leader_epoch),
            // No leader, or one leaving: elect within what remains.
            _ => {
                let (leader, isr) = self.choose_leader(&batch.image, &replicas, &isr);
                (leader, isr, LeaderEpoch(p.leader_epoch.0 + 1))
            }
        };
        batch.push(MetadataRecord::ReassignPartition {
            topic: topic.to_string(),
            partition,
            replicas,
            adding,
            removing,
            leader,
            isr,
            leader_epoch,
        });
        self.complete_into(batch, topic, partition);
        Ok(())
    }

    /// Completes the reassignment of `topic`-`partition` if its whole target is in sync.
    pub(super) fn complete_into(&self, batch: &mut Batch, topic: &str, partition: u32) {
        let Some(p) = batch
            .image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
            .cloned()
        else {
            return;
        };
        if !p.is_reassigning() {
            return;
        }
        let target = p.target_replicas();
        if !target.iter().all(|b| p.isr.contains(b)) {
            return;
        }
        let isr: Vec<BrokerId> = p
            .isr
            .iter()
            .copied()
            .filter(|b| target.contains(b))
            .collect();
        let (leader, isr, leader_epoch) = match p.leader {
            Some(l) if target.contains(&l) => (Some(l), isr, p.leader_epoch),
            _ => {
                let (leader, isr) = self.choose_leader(&batch.image, &target, &isr);
                if leader.is_none() {
                    // No live member of the target can lead yet: the move waits.
                    return;
                }
                (leader, isr, LeaderEpoch(p.leader_epoch.0 + 1))
            }
        };
        batch.push(MetadataRecord::ReassignPartition {
            topic: topic.to_string(),
            partition,
            replicas: target,
            adding: Vec::new(),
            removing: Vec::new(),
            leader,
            isr,
            leader_epoch,
        });
    }

    /// Completions that are due: every partition whose reassignment target is wholly in sync.
    /// The ISR change that made it so normally completes it (`alter_isr`); this catches the
    /// rest (a controller that took over mid-move, a target reached by a fencing).
    pub fn reassignment_progress(&self, image: &MetadataImage) -> Vec<MetadataRecord> {
        let due: Vec<(String, u32)> = image
            .topics
            .iter()
            .flat_map(|(name, t)| {
                t.partitions
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| {
                        p.is_reassigning() && p.target_replicas().iter().all(|b| p.isr.contains(b))
                    })
                    .map(move |(i, _)| (name.clone(), i as u32))
            })
            .collect();
        if due.is_empty() {
            return Vec::new();
        }
        let mut batch = Batch::new(image);
        for (topic, partition) in due {
            self.complete_into(&mut batch, &topic, partition);
        }
        batch.records
    }

    /// Re-replication: every partition with a replica (or a reassignment's target replica) on
    /// one of the `lost` brokers (fenced for longer than the operator allows) is moved to a target
    /// where each lost broker is replaced by a live one: first one in a rack the partition's
    /// other replicas do not use, then the one holding the fewest replicas. A partition whose
    /// only in-sync copies are on lost brokers is left alone (only they may hold its
    /// acknowledged records), as is one with no live broker to take the replica.
    pub fn replace_lost_brokers(
        &self,
        image: &MetadataImage,
        lost: &BTreeSet<BrokerId>,
    ) -> Vec<MetadataRecord> {
        if lost.is_empty() {
            return Vec::new();
        }
        let live: Vec<BrokerId> = image
            .live_brokers()
            .iter()
            .map(|b| b.id)
            .filter(|b| !lost.contains(b))
            .collect();
        let rack_of = |b: BrokerId| image.brokers.get(&b).and_then(|r| r.rack.clone());
        let mut load = replica_load(image, &live);
        let mut batch = Batch::new(image);
        for (topic, t) in &image.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                // The replicas it is to have: its own, or a reassignment's target (a move
                // onto a broker that was then lost is redirected).
                let current = p.target_replicas();
                if !current.iter().any(|r| lost.contains(r)) {
                    continue;
                }
                if !p.isr.iter().any(|r| !lost.contains(r)) {
                    continue;
                }
                let mut target: Vec<BrokerId> = Vec::with_capacity(current.len());
                let mut complete = true;
                for r in &current {
                    if !lost.contains(r) {
                        target.push(*r);
                        continue;
                    }
                    let keep: Vec<BrokerId> = current
                        .iter()
                        .copied()
                        .filter(|b| !lost.contains(b))
                        .chain(target.iter().copied())
                        .collect();
                    let used_racks: BTreeSet<Option<String>> =
                        keep.iter().map(|b| rack_of(*b)).collect();
                    let pick = live
                        .iter()
                        .copied()
                        .filter(|b| !keep.contains(b))
                        .min_by_key(|b| {
                            (
                                used_racks.contains(&rack_of(*b)),
                                load.get(b).copied().unwrap_or(0),
                                *b,
                            )
                        });
                    match pick {
                        Some(b) => {
                            *load.entry(b).or_default() += 1;
                            target.push(b);
                        }
                        None => {
                            complete = false;
                            break;
                        }
                    }
                }
                if !complete {
                    continue;
                }
                let name = format!("{topic}-{i}");
                let original = p.original_replicas();
                // Errors cannot happen here (the ISR keeps a member outside `lost`); skip if so.
                let _ = self.move_into(&mut batch, topic, i as u32, p, &original, &target, &name);
            }
        }
        batch.records
    }
}

impl ControllerLogic {
    /// Rack repair, once capacity returns: a partition whose replicas share a rack while a
    /// live broker (among `candidates`, those live long enough to be trusted) sits in a rack it
    /// does not use is moved so that the duplicate goes there (the later one in the list, never
    /// the preferred leader; the least loaded broker of that rack). At most `limit` partitions
    /// per call, and only while no other move is under way, so repairs trickle in one batch at
    /// a time. Partitions on brokers without a rack are left alone.
    pub fn rack_repairs(
        &self,
        image: &MetadataImage,
        candidates: &BTreeSet<BrokerId>,
        limit: usize,
    ) -> Vec<MetadataRecord> {
        let moving = image
            .topics
            .values()
            .flat_map(|t| &t.partitions)
            .any(PartitionRegistration::is_reassigning);
        if moving || limit == 0 {
            return Vec::new();
        }
        let rack_of = |b: &BrokerId| image.brokers.get(b).and_then(|r| r.rack.clone());
        let live: Vec<BrokerId> = image
            .live_brokers()
            .iter()
            .map(|b| b.id)
            .filter(|b| candidates.contains(b))
            .collect();
        let mut load = replica_load(image, &live);
        let mut batch = Batch::new(image);
        let mut repaired = 0;
        'partitions: for (topic, t) in &image.topics {
            for (i, p) in t.partitions.iter().enumerate() {
                if repaired >= limit {
                    break 'partitions;
                }
                let racks: Vec<Option<String>> = p.replicas.iter().map(rack_of).collect();
                if racks.iter().any(Option::is_none)
                    || !p
                        .replicas
                        .iter()
                        .all(|b| image.is_live(*b) && p.isr.contains(b))
                {
                    continue;
                }
                // The later of two replicas in one rack.
                let Some(dup) = (1..racks.len()).find(|j| racks[..*j].contains(&racks[*j])) else {
                    continue;
                };
                let pick = live
                    .iter()
                    .filter(|b| !p.replicas.contains(b))
                    .filter(|b| rack_of(b).is_some_and(|r| !racks.contains(&Some(r))))
                    .min_by_key(|b| (load.get(b).copied().unwrap_or(0), **b))
                    .copied();
                let Some(to) = pick else { continue };
                let mut target = p.replicas.clone();
                target[dup] = to;
                let name = format!("{topic}-{i}");
                if self
                    .move_into(&mut batch, topic, i as u32, p, &p.replicas, &target, &name)
                    .is_ok()
                {
                    *load.entry(to).or_default() += 1;
                    repaired += 1;
                }
            }
        }
        batch.records
    }
}

/// How many replicas each of `brokers` holds.
fn replica_load(image: &MetadataImage, brokers: &[BrokerId]) -> BTreeMap<BrokerId, usize> {
    let mut load: BTreeMap<BrokerId, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    for p in image.topics.values().flat_map(|t| &t.partitions) {
        for r in &p.replicas {
            if let Some(n) = load.get_mut(r) {
                *n += 1;
            }
        }
    }
    load
}

/// A target names at least one broker, each registered and named once.
fn check_target(
    image: &MetadataImage,
    target: &[BrokerId],
    name: &str,
) -> Result<(), ControllerError> {
    let invalid = |m: String| Err(ControllerError::InvalidReplicaAssignment(m));
    if target.is_empty() {
        return invalid(format!("{name}: the target replica list is empty"));
    }
    let distinct: BTreeSet<BrokerId> = target.iter().copied().collect();
    if distinct.len() != target.len() {
        return invalid(format!(
            "{name}: the target names a broker twice: {target:?}"
        ));
    }
    if let Some(b) = target.iter().find(|b| !image.brokers.contains_key(b)) {
        return invalid(format!(
            "{name}: the target includes broker {b}, but no such broker is registered"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::super::ControllerConfig;
    use super::*;

    fn b(ids: &[i32]) -> Vec<BrokerId> {
        ids.iter().map(|i| BrokerId(*i)).collect()
    }

    fn apply_all(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for r in records {
            image.apply(r);
        }
    }

    /// Brokers 1.. on `racks`, live, and topic `t` with one partition on `replicas`.
    fn cluster(racks: &[&str], replicas: &[i32]) -> (MetadataImage, ControllerLogic) {
        let mut image = MetadataImage::default();
        let mut c = ControllerLogic::new(ControllerConfig::default());
        for (i, rack) in racks.iter().enumerate() {
            let id = BrokerId(i as i32 + 1);
            let (epoch, recs) =
                c.register_broker(&image, id, "127.0.0.1:1", Some(rack), Some(i as u128), 0);
            apply_all(&mut image, &recs);
            let recs = c.heartbeat(&image, id, epoch, 0).unwrap();
            apply_all(&mut image, &recs);
        }
        let r = c
            .create_topic_assigned(&image, "t", 1, vec![b(replicas)], BTreeMap::new())
            .unwrap();
        image.apply(&r);
        (image, c)
    }

    fn part(image: &MetadataImage) -> PartitionRegistration {
        image.topics["t"].partitions[0].clone()
    }

    /// The leader's ISR proposal adding `joiner`, as the controller rules on it.
    fn join(c: &ControllerLogic, image: &mut MetadataImage, joiner: i32) -> Vec<MetadataRecord> {
        let p = part(image);
        let mut isr = p.isr.clone();
        isr.push(BrokerId(joiner));
        let recs = c
            .alter_isr(image, "t", 0, p.leader.unwrap(), p.leader_epoch, isr)
            .unwrap();
        apply_all(image, &recs);
        recs
    }

    /// A move from {1,2,3} to {2,3,4}: 4 is added, 1 stays (and leads) until 4 is in sync;
    /// then the replicas are the target, 1 leaves the ISR and the leadership moves to 2.
    #[test]
    fn a_move_adds_then_removes_and_hands_leadership_over() {
        let (mut image, c) = cluster(&["a", "b", "c", "d"], &[1, 2, 3]);
        let recs = c
            .reassign_partition(&image, "t", 0, Some(b(&[2, 3, 4])), false)
            .unwrap();
        assert_eq!(recs.len(), 1, "nothing completes before 4 is in sync");
        apply_all(&mut image, &recs);
        let p = part(&image);
        assert_eq!(p.replicas, b(&[2, 3, 4, 1]));
        assert_eq!(p.adding_replicas, b(&[4]));
        assert_eq!(p.removing_replicas, b(&[1]));
        assert_eq!(p.leader, Some(BrokerId(1)));
        assert_eq!(p.leader_epoch, LeaderEpoch(0));
        assert!(c.reassignment_progress(&image).is_empty());
        let recs = join(&c, &mut image, 4);
        assert_eq!(recs.len(), 2, "the join completes the move");
        let p = part(&image);
        assert!(!p.is_reassigning());
        assert_eq!(p.replicas, b(&[2, 3, 4]));
        assert_eq!(p.isr, b(&[2, 3, 4]));
        assert_eq!(p.leader, Some(BrokerId(2)));
        assert_eq!(p.leader_epoch, LeaderEpoch(1));
        // Done: cancelling now is an error, and the same target again is nothing to do.
        assert!(matches!(
            c.reassign_partition(&image, "t", 0, None, true),
            Err(ControllerError::NoReassignmentInProgress(_))
        ));
        assert!(
            c.reassign_partition(&image, "t", 0, Some(b(&[2, 3, 4])), true)
                .unwrap()
                .is_empty()
        );
    }

    /// A cancel returns to the original replicas; an added replica that had joined the ISR
    /// leaves it. A new target replaces the one under way, keeping what it shares.
    #[test]
    fn cancel_and_replace_a_move_under_way() {
        let (mut image, c) = cluster(&["a", "b", "c", "d", "e"], &[1, 2]);
        let recs = c
            .reassign_partition(&image, "t", 0, Some(b(&[3, 4])), true)
            .unwrap();
        apply_all(&mut image, &recs);
        join(&c, &mut image, 3);
        assert!(part(&image).is_reassigning(), "4 is not in sync yet");
        // Replace: {3, 5}. 3 keeps its place in the ISR; 4 is no longer added.
        let recs = c
            .reassign_partition(&image, "t", 0, Some(b(&[3, 5])), true)
            .unwrap();
        apply_all(&mut image, &recs);
        let p = part(&image);
        assert_eq!(p.replicas, b(&[3, 5, 1, 2]));
        assert_eq!(p.adding_replicas, b(&[3, 5]));
        assert_eq!(p.removing_replicas, b(&[1, 2]));
        assert_eq!(p.isr, b(&[1, 2, 3]));
        // Cancel: back to {1, 2}; 3 leaves the ISR.
        let recs = c.reassign_partition(&image, "t", 0, None, true).unwrap();
        apply_all(&mut image, &recs);
        let p = part(&image);
        assert!(!p.is_reassigning());
        assert_eq!(p.replicas, b(&[1, 2]));
        assert_eq!(p.isr, b(&[1, 2]));
        assert_eq!(p.leader, Some(BrokerId(1)));
    }

    /// A target already in sync completes at once (shrinking the replication factor), and a
    /// move whose leader leaves elects within the target.
    #[test]
    fn a_target_already_in_sync_completes_at_once() {
        let (mut image, c) = cluster(&["a", "b", "c"], &[1, 2, 3]);
        let recs = c
            .reassign_partition(&image, "t", 0, Some(b(&[3, 2])), true)
            .unwrap();
        assert_eq!(recs.len(), 2);
        apply_all(&mut image, &recs);
        let p = part(&image);
        assert_eq!(p.replicas, b(&[3, 2]));
        assert_eq!(p.isr, b(&[2, 3]));
        assert_eq!(
            p.leader,
            Some(BrokerId(3)),
            "the target's first in-sync replica"
        );
        assert_eq!(p.leader_epoch, LeaderEpoch(1));
    }

    /// Kafka's checks of a target.
    #[test]
    fn invalid_targets_are_refused() {
        let (image, c) = cluster(&["a", "b", "c"], &[1, 2]);
        let err = |target: Option<Vec<BrokerId>>, allow: bool| {
            c.reassign_partition(&image, "t", 0, target, allow)
                .unwrap_err()
        };
        assert!(matches!(
            err(Some(vec![]), true),
            ControllerError::InvalidReplicaAssignment(_)
        ));
        assert!(matches!(
            err(Some(b(&[2, 2])), true),
            ControllerError::InvalidReplicaAssignment(_)
        ));
        assert!(matches!(
            err(Some(b(&[1, 9])), true),
            ControllerError::InvalidReplicaAssignment(_)
        ));
        assert!(matches!(
            err(Some(b(&[1, 2, 3])), false),
            ControllerError::ReplicationFactorChange { from: 2, to: 3, .. }
        ));
        assert!(matches!(
            err(None, true),
            ControllerError::NoReassignmentInProgress(_)
        ));
        assert!(matches!(
            c.reassign_partition(&image, "t", 7, Some(b(&[1])), true),
            Err(ControllerError::UnknownTopicOrPartition(_))
        ));
    }

    /// A cancel whose original replicas have all left the ISR would need an unclean election:
    /// refused, and the move goes on.
    #[test]
    fn a_cancel_that_needs_an_unclean_election_is_refused() {
        let (mut image, mut c) = cluster(&["a", "b", "c"], &[1]);
        let recs = c
            .reassign_partition(&image, "t", 0, Some(b(&[2, 3])), true)
            .unwrap();
        apply_all(&mut image, &recs);
        join(&c, &mut image, 2);
        // The original replica dies: 2 (in sync) leads; 3 is still catching up.
        let recs = c.controlled_shutdown(&image, BrokerId(1));
        apply_all(&mut image, &recs);
        let p = part(&image);
        assert_eq!((p.leader, p.isr.clone()), (Some(BrokerId(2)), b(&[2])));
        assert!(matches!(
            c.reassign_partition(&image, "t", 0, None, true),
            Err(ControllerError::InvalidReplicaAssignment(m)) if m.contains("unclean")
        ));
        join(&c, &mut image, 3);
        let p = part(&image);
        assert_eq!(p.replicas, b(&[2, 3]), "the move completes without 1");
        assert!(!p.is_reassigning());
    }

    /// A broker gone for good: each of its replicas moves to a live broker in a rack the
    /// partition does not use yet, the least loaded first; a partition whose only in-sync copy
    /// was on the lost broker stays.
    #[test]
    fn replicas_of_a_lost_broker_are_recreated_rack_aware() {
        // Broker 4 shares rack a with replica 1; broker 5 is alone in rack d.
        let (mut image, mut c) = cluster(&["a", "b", "c", "a", "d"], &[1, 2, 3]);
        let r = c
            .create_topic_assigned(&image, "solo", 2, vec![b(&[3])], BTreeMap::new())
            .unwrap();
        image.apply(&r);
        let recs = c.controlled_shutdown(&image, BrokerId(3));
        apply_all(&mut image, &recs);
        let lost: BTreeSet<BrokerId> = [BrokerId(3)].into();
        let recs = c.replace_lost_brokers(&image, &lost);
        apply_all(&mut image, &recs);
        let p = part(&image);
        assert_eq!(
            p.replicas,
            b(&[1, 2, 5, 3]),
            "5 takes 3's place: a rack of its own"
        );
        assert_eq!(p.adding_replicas, b(&[5]));
        assert_eq!(p.removing_replicas, b(&[3]));
        let solo = &image.topics["solo"].partitions[0];
        assert!(
            !solo.is_reassigning(),
            "its only in-sync copy is on the lost broker"
        );
        // Once 5 catches up the move completes and the lost broker is no replica any more.
        join(&c, &mut image, 5);
        let p = part(&image);
        assert_eq!(p.replicas, b(&[1, 2, 5]));
        assert!(c.replace_lost_brokers(&image, &lost).is_empty());
        // With rack a only left to choose from, load decides: 4 holds nothing.
        let lost: BTreeSet<BrokerId> = [BrokerId(5)].into();
        let recs = c.controlled_shutdown(&image, BrokerId(5));
        apply_all(&mut image, &recs);
        let recs = c.replace_lost_brokers(&image, &lost);
        apply_all(&mut image, &recs);
        assert_eq!(part(&image).adding_replicas, b(&[4]));
    }

    /// Capacity returns in the rack that had none: one of two replicas sharing a rack moves
    /// there (not the preferred leader); nothing moves while another move is under way, or
    /// onto a broker that is not a candidate yet.
    #[test]
    fn rack_placement_is_repaired_when_a_rack_has_a_broker_again() {
        // Brokers 1 (a), 2 (b), 3 (b), 4 (c): the partition uses racks a, b, b.
        let (mut image, c) = cluster(&["a", "b", "b", "c"], &[1, 2, 3]);
        let all: BTreeSet<BrokerId> = (1..=4).map(BrokerId).collect();
        let not_yet: BTreeSet<BrokerId> = (1..=3).map(BrokerId).collect();
        assert!(c.rack_repairs(&image, &not_yet, 8).is_empty());
        let recs = c.rack_repairs(&image, &all, 8);
        apply_all(&mut image, &recs);
        let p = part(&image);
        assert_eq!(p.replicas, b(&[1, 2, 4, 3]));
        assert_eq!(
            (p.adding_replicas.clone(), p.removing_replicas.clone()),
            (b(&[4]), b(&[3]))
        );
        assert!(
            c.rack_repairs(&image, &all, 8).is_empty(),
            "one move at a time"
        );
        join(&c, &mut image, 4);
        assert_eq!(part(&image).replicas, b(&[1, 2, 4]));
        assert!(
            c.rack_repairs(&image, &all, 8).is_empty(),
            "racks distinct now"
        );
    }

    /// A broker that registers again with another directory id (an empty disk) leaves every
    /// ISR, even as its last member, and is not elected from its empty log; with the same
    /// directory it stays the last member, the one to wait for.
    #[test]
    fn a_broker_back_on_an_empty_disk_is_not_in_sync() {
        for (directory, trusted) in [(Some(1), true), (Some(99), false)] {
            let (mut image, mut c) = cluster(&["a", "b"], &[1, 2]);
            let r = c
                .create_topic_assigned(&image, "solo", 2, vec![b(&[2])], BTreeMap::new())
                .unwrap();
            image.apply(&r);
            // Broker 2 (directory id 1) goes silent and is fenced; it comes back.
            let e1 = image.brokers[&BrokerId(1)].epoch;
            c.heartbeat(&image, BrokerId(1), e1, 5_000).unwrap();
            let recs = c.tick(&image, 5_000);
            apply_all(&mut image, &recs);
            assert!(!image.is_live(BrokerId(2)));
            let (epoch, recs) = c.register_broker(
                &image,
                BrokerId(2),
                "127.0.0.1:1",
                Some("b"),
                directory,
                5_000,
            );
            apply_all(&mut image, &recs);
            let recs = c.heartbeat(&image, BrokerId(2), epoch, 5_000).unwrap();
            apply_all(&mut image, &recs);
            let solo = &image.topics["solo"].partitions[0];
            if trusted {
                assert_eq!(solo.isr, b(&[2]));
                assert_eq!(
                    solo.leader,
                    Some(BrokerId(2)),
                    "back with its data: it leads"
                );
            } else {
                assert!(solo.isr.is_empty(), "its only copy is gone: {solo:?}");
                assert_eq!(solo.leader, None, "never elected from an empty log");
            }
            assert!(!part(&image).isr.contains(&BrokerId(2)));
        }
    }
}
