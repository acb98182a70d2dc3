//! A balanced placement for a running cluster: which replicas to move so that every partition
//! lives on the brokers given (a broker left out is drained: decommission), replicas and
//! preferred leaders are spread evenly, and racks stay distinct where they were. The moves are
//! carried out by reassignment (`ControllerLogic::reassign_partition`); this only plans them.
//!
//! The plan moves as little as it can: first every replica on a broker that is not eligible
//! goes to an eligible one (a rack the partition does not use yet, then the least loaded);
//! then, while one broker holds two replicas more than another, one replica moves from the
//! fullest to the emptiest where that keeps the partition's racks as distinct as before; then
//! preferred leaders (first replicas) are evened out by reordering replicas, which moves no
//! data. A partition is in the plan only if its replica list changed.
//!
//! Invariants (asserted): every planned list has the partition's replication factor, names
//! each broker once, and only eligible brokers (when there are enough of them).

use std::collections::{BTreeMap, BTreeSet};

use crate::broker_id::BrokerId;

/// One partition's replicas, preferred leader first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: u32,
    /// Replicas, preferred leader first.
    pub replicas: Vec<BrokerId>,
}

/// The placements to change so that `partitions` are balanced over `brokers` (eligible
/// brokers and their racks).
pub fn plan(
    brokers: &BTreeMap<BrokerId, Option<String>>,
    partitions: &[Placement],
) -> Vec<Placement> {
    if brokers.is_empty() {
        return Vec::new();
    }
    let rack = |b: &BrokerId| brokers.get(b).cloned().flatten();
    let mut lists: Vec<Vec<BrokerId>> = partitions.iter().map(|p| p.replicas.clone()).collect();
    let mut load: BTreeMap<BrokerId, usize> = brokers.keys().map(|b| (*b, 0)).collect();
    for l in &lists {
        for b in l {
            if let Some(n) = load.get_mut(b) {
                *n += 1;
            }
        }
    }
    // 1. Replicas on brokers that are not eligible move to eligible ones.
    for list in lists.iter_mut() {
        for i in 0..list.len() {
            if brokers.contains_key(&list[i]) {
                continue;
            }
            let used: BTreeSet<Option<String>> = list
                .iter()
                .filter(|b| brokers.contains_key(b))
                .map(rack)
                .collect();
            let pick = brokers
                .keys()
                .filter(|b| !list.contains(b))
                .min_by_key(|b| (used.contains(&rack(b)), load[*b], **b))
                .copied();
            if let Some(b) = pick {
                list[i] = b;
                *load.entry(b).or_default() += 1;
            }
        }
    }
    // 2. Even out replica counts, one move at a time from the fullest broker.
    let distinct_racks = |l: &[BrokerId]| l.iter().map(rack).collect::<BTreeSet<_>>().len();
    for _ in 0..lists.iter().map(Vec::len).sum::<usize>() {
        let mut by_load: Vec<BrokerId> = load.keys().copied().collect();
        by_load.sort_by_key(|b| (load[b], *b));
        let mut moved = false;
        'pairs: for hi in by_load.iter().rev() {
            for lo in by_load.iter() {
                if load[hi] < load[lo] + 2 {
                    break;
                }
                for list in lists.iter_mut() {
                    let Some(i) = list.iter().position(|b| b == hi) else {
                        continue;
                    };
                    if list.contains(lo) {
                        continue;
                    }
                    let before = distinct_racks(list);
                    let mut candidate = list.clone();
                    candidate[i] = *lo;
                    if distinct_racks(&candidate) < before {
                        continue;
                    }
                    *list = candidate;
                    *load.entry(*hi).or_default() -= 1;
                    *load.entry(*lo).or_default() += 1;
                    moved = true;
                    break 'pairs;
                }
            }
        }
        if !moved {
            break;
        }
    }
    // 3. Even out preferred leaders by reordering (no data moves).
    let mut leaders: BTreeMap<BrokerId, usize> = brokers.keys().map(|b| (*b, 0)).collect();
    for l in &lists {
        if let Some(first) = l.first()
            && let Some(n) = leaders.get_mut(first)
        {
            *n += 1;
        }
    }
    for _ in 0..lists.len() {
        let mut by_count: Vec<BrokerId> = leaders.keys().copied().collect();
        by_count.sort_by_key(|b| (leaders[b], *b));
        let mut swapped = false;
        'leaders: for hi in by_count.iter().rev() {
            for lo in by_count.iter() {
                if leaders[hi] < leaders[lo] + 2 {
                    break;
                }
                for list in lists.iter_mut() {
                    if list.first() != Some(hi) {
                        continue;
                    }
                    let Some(j) = list.iter().position(|b| b == lo) else {
                        continue;
                    };
                    list.swap(0, j);
                    *leaders.entry(*hi).or_default() -= 1;
                    *leaders.entry(*lo).or_default() += 1;
                    swapped = true;
                    break 'leaders;
                }
            }
        }
        if !swapped {
            break;
        }
    }
    let out: Vec<Placement> = partitions
        .iter()
        .zip(lists)
        .filter(|(p, l)| p.replicas != *l)
        .map(|(p, l)| Placement {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas: l,
        })
        .collect();
    for p in &out {
        let distinct: BTreeSet<&BrokerId> = p.replicas.iter().collect();
        assert_eq!(
            distinct.len(),
            p.replicas.len(),
            "a broker at most once: {p:?}"
        );
        assert!(
            brokers.len() < p.replicas.len() || p.replicas.iter().all(|b| brokers.contains_key(b)),
            "only eligible brokers: {p:?}"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brokers(racks: &[&str]) -> BTreeMap<BrokerId, Option<String>> {
        racks
            .iter()
            .enumerate()
            .map(|(i, r)| (BrokerId(i as i32 + 1), Some(r.to_string())))
            .collect()
    }

    fn parts(lists: &[&[i32]]) -> Vec<Placement> {
        lists
            .iter()
            .enumerate()
            .map(|(i, l)| Placement {
                topic: "t".into(),
                partition: i as u32,
                replicas: l.iter().map(|b| BrokerId(*b)).collect(),
            })
            .collect()
    }

    fn after(partitions: &[Placement], plan: &[Placement]) -> Vec<Vec<BrokerId>> {
        partitions
            .iter()
            .map(|p| {
                plan.iter()
                    .find(|m| m.partition == p.partition)
                    .map_or(p.replicas.clone(), |m| m.replicas.clone())
            })
            .collect()
    }

    fn count(lists: &[Vec<BrokerId>], b: i32, leaders_only: bool) -> usize {
        lists
            .iter()
            .map(|l| {
                if leaders_only {
                    usize::from(l.first() == Some(&BrokerId(b)))
                } else {
                    l.iter().filter(|x| **x == BrokerId(b)).count()
                }
            })
            .sum()
    }

    /// A new broker takes its share (replicas and preferred leaders), and a balanced cluster
    /// plans nothing.
    #[test]
    fn a_new_broker_takes_its_share() {
        let ps = parts(&[&[1, 2], &[2, 3], &[3, 1], &[1, 2], &[2, 3], &[3, 1]]);
        assert!(plan(&brokers(&["a", "b", "c"]), &ps).is_empty());
        let b4 = brokers(&["a", "b", "c", "d"]);
        let moves = plan(&b4, &ps);
        let lists = after(&ps, &moves);
        for b in 1..=4 {
            assert!((2..=4).contains(&count(&lists, b, false)), "{b}: {lists:?}");
        }
        assert!(count(&lists, 4, false) >= 2);
        let leads: Vec<usize> = (1..=4).map(|b| count(&lists, b, true)).collect();
        assert!(
            leads.iter().max().unwrap() - leads.iter().min().unwrap() <= 1,
            "{leads:?}"
        );
        assert!(moves.len() <= 4, "few moves: {moves:?}");
        // Balanced now: a second plan is empty.
        let again: Vec<Placement> = ps
            .iter()
            .zip(&lists)
            .map(|(p, l)| Placement {
                replicas: l.clone(),
                ..p.clone()
            })
            .collect();
        assert!(plan(&b4, &again).is_empty());
    }

    /// A broker left out is drained, its replicas going where their racks stay distinct.
    #[test]
    fn a_decommissioned_broker_is_drained_rack_aware() {
        let ps = parts(&[&[1, 2, 3], &[2, 3, 4], &[3, 4, 1], &[4, 1, 2]]);
        let eligible = brokers(&["a", "b", "c", "c", "a"]);
        let mut eligible = eligible;
        eligible.remove(&BrokerId(4));
        let lists = after(&ps, &plan(&eligible, &ps));
        assert_eq!(count(&lists, 4, false), 0, "{lists:?}");
        for l in &lists {
            let racks: BTreeSet<_> = l.iter().map(|b| eligible[b].clone()).collect();
            assert_eq!(racks.len(), 3, "three racks for three replicas: {l:?}");
        }
    }
}
