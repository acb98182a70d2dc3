//! Server-side partition assignors of the consumer group protocol (KIP-848): `uniform` (the
//! default) and `range`, as `group.consumer.assignors` names them in Kafka.
//!
//! An assignor sees every member's subscription and current assignment and the subscribed
//! topics' ids and partition counts, and returns the target assignment of every member.
//! Invariants of every result (asserted in debug builds): each partition of a subscribed topic
//! goes to exactly one member, and only to a member subscribed to its topic.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// Partitions by topic id: a member's assignment.
pub type Partitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// A subscribed topic as the assignor sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicLayout {
    /// The topic id.
    pub id: Uuid,
    /// Its partition count.
    pub partitions: i32,
}

/// One member, as the assignor sees it.
#[derive(Clone, Debug)]
pub struct MemberSpec<'a> {
    /// The member id.
    pub id: &'a str,
    /// Topic ids the member subscribes to (names resolved; topics that do not exist left out).
    pub subscribed: BTreeSet<Uuid>,
    /// What the member has now (kept where possible: assignments are sticky).
    pub current: &'a Partitions,
}

/// The assignors this broker offers, the default first.
pub const ASSIGNORS: [Assignor; 2] = [Assignor::Uniform, Assignor::Range];

/// A server-side assignor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assignor {
    /// Balanced and sticky: every member gets as many partitions as any other member
    /// subscribed to the same topics, give or take one, and keeps what it had where balance
    /// allows.
    Uniform,
    /// Per topic, the members subscribed to it in member-id order get contiguous ranges of its
    /// partitions; the first `partitions % members` one partition more. Co-partitioned topics
    /// (same partition count, same subscribers) give a member the same partition numbers.
    Range,
}

impl Assignor {
    /// The assignor's name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The assignor named `name`, if this broker has it.
    pub fn named(name: &str) -> Option<Assignor> {
        ASSIGNORS.into_iter().find(|a| a.name() == name)
    }

    /// The target assignment of every member (members with nothing get an empty entry).
    pub fn assign(
        self,
        members: &[MemberSpec<'_>],
        topics: &[TopicLayout],
    ) -> BTreeMap<String, Partitions> {
        let out = match self {
            Assignor::Uniform => uniform(members, topics),
            Assignor::Range => range(members, topics),
        };
        debug_assert!(
            is_valid(&out, members, topics),
            "{self:?} produced an invalid assignment"
        );
        out
    }
}

fn range(members: &[MemberSpec<'_>], topics: &[TopicLayout]) -> BTreeMap<String, Partitions> {
    let mut out: BTreeMap<String, Partitions> = members
        .iter()
        .map(|m| (m.id.to_string(), Partitions::new()))
        .collect();
    for t in topics {
        let mut subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.subscribed.contains(&t.id))
            .map(|m| m.id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        subscribers.sort_unstable();
        let n = subscribers.len() as i32;
        let (each, extra) = (t.partitions / n, t.partitions % n);
        let mut next = 0;
        for (i, m) in subscribers.iter().enumerate() {
            let count = each + i32::from((i as i32) < extra);
            if count > 0 {
                let set: BTreeSet<i32> = (next..next + count).collect();
                out.entry(m.to_string()).or_default().insert(t.id, set);
            }
            next += count;
        }
    }
    out
}

fn uniform(members: &[MemberSpec<'_>], topics: &[TopicLayout]) -> BTreeMap<String, Partitions> {
    let layout: BTreeMap<Uuid, i32> = topics.iter().map(|t| (t.id, t.partitions)).collect();
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    let mut counts = vec![0usize; members.len()];
    // 1. Stickiness: a member keeps what it has that still exists and it still subscribes to
    //    (the first claimant wins a partition two members report).
    for (i, m) in members.iter().enumerate() {
        for (topic, ps) in m.current {
            let Some(&n) = layout.get(topic) else {
                continue;
            };
            if !m.subscribed.contains(topic) {
                continue;
            }
            for &p in ps.iter().filter(|p| (0..n).contains(*p)) {
                if let std::collections::btree_map::Entry::Vacant(e) = owner.entry((*topic, p)) {
                    e.insert(i);
                    counts[i] += 1;
                }
            }
        }
    }
    // 2. Every partition nobody keeps goes to the least loaded subscriber.
    for t in topics {
        for p in 0..t.partitions {
            if owner.contains_key(&(t.id, p)) {
                continue;
            }
            let eligible = (0..members.len()).filter(|&i| members[i].subscribed.contains(&t.id));
            if let Some(i) = eligible.min_by_key(|&i| (counts[i], members[i].id)) {
                owner.insert((t.id, p), i);
                counts[i] += 1;
            }
        }
    }
    // 3. Balance: move a partition from a member to a subscriber of its topic holding at least
    //    two fewer, until no such move exists. Each move lowers the sum of squared counts, so
    //    this ends; in a group whose members all subscribe to the same topics it leaves counts
    //    that differ by at most one.
    let budget = owner.len().saturating_mul(members.len()).max(1);
    for _ in 0..budget {
        let mut moved = false;
        let keys: Vec<(Uuid, i32)> = owner.keys().rev().copied().collect();
        for key in keys {
            let from = owner[&key];
            let target = (0..members.len())
                .filter(|&i| members[i].subscribed.contains(&key.0) && counts[i] + 1 < counts[from])
                .min_by_key(|&i| (counts[i], members[i].id));
            if let Some(to) = target {
                owner.insert(key, to);
                counts[from] -= 1;
                counts[to] += 1;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut out: BTreeMap<String, Partitions> = members
        .iter()
        .map(|m| (m.id.to_string(), Partitions::new()))
        .collect();
    for ((topic, p), i) in owner {
        out.entry(members[i].id.to_string())
            .or_default()
            .entry(topic)
            .or_default()
            .insert(p);
    }
    out
}

/// Each partition of a subscribed topic assigned exactly once, only to a subscriber.
fn is_valid(
    out: &BTreeMap<String, Partitions>,
    members: &[MemberSpec<'_>],
    topics: &[TopicLayout],
) -> bool {
    let mut seen = BTreeSet::new();
    for (id, a) in out {
        let Some(m) = members.iter().find(|m| m.id == id) else {
            return false;
        };
        for (topic, ps) in a {
            if !m.subscribed.contains(topic) {
                return false;
            }
            for p in ps {
                if !seen.insert((*topic, *p)) {
                    return false;
                }
            }
        }
    }
    topics.iter().all(|t| {
        !members.iter().any(|m| m.subscribed.contains(&t.id))
            || (0..t.partitions).all(|p| seen.contains(&(t.id, p)))
    })
}

/// The number of partitions in an assignment.
pub fn count(a: &Partitions) -> usize {
    a.values().map(BTreeSet::len).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128, partitions: i32) -> TopicLayout {
        TopicLayout {
            id: Uuid::from_u128(n),
            partitions,
        }
    }

    fn spec<'a>(id: &'a str, topics: &[TopicLayout], current: &'a Partitions) -> MemberSpec<'a> {
        MemberSpec {
            id,
            subscribed: topics.iter().map(|t| t.id).collect(),
            current,
        }
    }

    #[test]
    fn uniform_balances_a_homogeneous_group_to_within_one() {
        let topics = [topic(1, 7), topic(2, 3)];
        let none = Partitions::new();
        let members: Vec<MemberSpec<'_>> = ["a", "b", "c"]
            .iter()
            .map(|id| spec(id, &topics, &none))
            .collect();
        let out = Assignor::Uniform.assign(&members, &topics);
        let counts: Vec<usize> = out.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 10);
        assert!(
            counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1,
            "{counts:?}"
        );
    }

    #[test]
    fn uniform_keeps_what_members_have_when_one_joins() {
        let topics = [topic(1, 6)];
        let none = Partitions::new();
        let two: Vec<MemberSpec<'_>> = ["a", "b"]
            .iter()
            .map(|id| spec(id, &topics, &none))
            .collect();
        let before = Assignor::Uniform.assign(&two, &topics);
        let three: Vec<MemberSpec<'_>> = vec![
            spec("a", &topics, &before["a"]),
            spec("b", &topics, &before["b"]),
            spec("c", &topics, &none),
        ];
        let after = Assignor::Uniform.assign(&three, &topics);
        for id in ["a", "b", "c"] {
            assert_eq!(count(&after[id]), 2, "{after:?}");
        }
        // a and b only gave partitions away: each kept two of its three.
        for id in ["a", "b"] {
            let kept = after[id][&topics[0].id]
                .intersection(&before[id][&topics[0].id])
                .count();
            assert_eq!(kept, 2, "{id} keeps two of its partitions");
        }
    }

    #[test]
    fn uniform_gives_a_topic_only_to_its_subscribers() {
        let (t1, t2) = (topic(1, 4), topic(2, 4));
        let none = Partitions::new();
        let members = vec![spec("a", &[t1], &none), spec("b", &[t1, t2], &none)];
        let out = Assignor::Uniform.assign(&members, &[t1, t2]);
        assert!(!out["a"].contains_key(&t2.id));
        assert_eq!(count(&out["a"]) + count(&out["b"]), 8);
        // b takes all of t2 and so leaves t1 to a: a balance of 4 and 4.
        assert_eq!(count(&out["a"]), 4, "{out:?}");
    }

    #[test]
    fn range_gives_contiguous_ranges_and_the_remainder_to_the_first() {
        let topics = [topic(1, 5), topic(2, 5)];
        let none = Partitions::new();
        let members: Vec<MemberSpec<'_>> = ["b", "a"]
            .iter()
            .map(|id| spec(id, &topics, &none))
            .collect();
        let out = Assignor::Range.assign(&members, &topics);
        for t in &topics {
            assert_eq!(out["a"][&t.id], BTreeSet::from([0, 1, 2]));
            assert_eq!(out["b"][&t.id], BTreeSet::from([3, 4]));
        }
    }

    #[test]
    fn assignors_are_found_by_name_default_first() {
        assert_eq!(ASSIGNORS[0], Assignor::Uniform);
        assert_eq!(Assignor::named("range"), Some(Assignor::Range));
        assert_eq!(Assignor::named("sticky"), None);
    }
}
