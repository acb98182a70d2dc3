//! Cluster events, found by comparing two looks at the cluster: brokers fenced, returning,
//! joining and leaving; leader elections; ISR shrinks and expansions; partitions going offline
//! and coming back; topics created and deleted. The console keeps the recent ones.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::admin::view::{BrokerState, ClusterView, PartitionView};

/// How much an event matters to the person on call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Things are back to normal, or changed as asked.
    Info,
    /// Redundancy is reduced.
    Warning,
    /// Something is unavailable.
    Critical,
}

/// One event.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the Unix epoch at which the change was seen.
    pub at_ms: i64,
    /// How much it matters.
    pub severity: Severity,
    /// `broker`, `controller`, `election`, `isr`, `partition`, `topic`.
    pub kind: &'static str,
    /// What happened, in a sentence.
    pub message: String,
}

fn ids(v: &[i32]) -> String {
    crate::admin::output::ids(v)
}

/// The events between `before` and `after`, seen at `at_ms`.
pub fn diff(before: &ClusterView, after: &ClusterView, at_ms: i64) -> Vec<Event> {
    let mut out = Vec::new();
    let mut event = |severity, kind, message: String| {
        out.push(Event {
            at_ms,
            severity,
            kind,
            message,
        })
    };
    match (&before.quorum, &after.quorum) {
        (Some(a), Some(b)) if a.leader != b.leader => event(
            Severity::Warning,
            "controller",
            format!(
                "the active controller moved from {} to {} (epoch {} -> {})",
                a.leader, b.leader, a.epoch, b.epoch
            ),
        ),
        _ => {}
    }
    if let (Some(a), Some(b)) = (&before.quorum, &after.quorum) {
        for v in &b.voters {
            let was = a
                .voters
                .iter()
                .find(|o| o.id == v.id)
                .is_none_or(|o| o.reachable);
            if was && !v.reachable {
                event(
                    Severity::Warning,
                    "controller",
                    format!("controller quorum voter {} is not heard from", v.id),
                );
            } else if !was && v.reachable {
                event(
                    Severity::Info,
                    "controller",
                    format!("controller quorum voter {} is heard from again", v.id),
                );
            }
        }
    }
    let old_brokers: BTreeMap<i32, BrokerState> =
        before.brokers.iter().map(|b| (b.id, b.state)).collect();
    for b in &after.brokers {
        match (old_brokers.get(&b.id), b.state) {
            (None, BrokerState::Up) => {
                event(Severity::Info, "broker", format!("broker {} joined", b.id))
            }
            (Some(BrokerState::Up), BrokerState::Fenced) => event(
                Severity::Critical,
                "broker",
                format!("broker {} is down: fenced by the controller", b.id),
            ),
            (Some(BrokerState::Up), BrokerState::Missing) => event(
                Severity::Critical,
                "broker",
                format!("broker {} is down: no longer registered", b.id),
            ),
            (Some(s), BrokerState::Up) if *s != BrokerState::Up => event(
                Severity::Info,
                "broker",
                format!("broker {} is back up", b.id),
            ),
            _ => {}
        }
    }
    for (id, _) in old_brokers
        .iter()
        .filter(|(id, _)| !after.brokers.iter().any(|b| b.id == **id))
    {
        event(
            Severity::Info,
            "broker",
            format!("broker {id} left the cluster"),
        );
    }
    let old_topics: BTreeMap<&str, &[PartitionView]> = before
        .topics
        .iter()
        .map(|t| (t.name.as_str(), t.partitions.as_slice()))
        .collect();
    for t in &after.topics {
        let Some(old) = old_topics.get(t.name.as_str()) else {
            event(
                Severity::Info,
                "topic",
                format!(
                    "topic {} created ({} partition{}, replication factor {})",
                    t.name,
                    t.partitions.len(),
                    if t.partitions.len() == 1 { "" } else { "s" },
                    t.replication_factor
                ),
            );
            continue;
        };
        for p in &t.partitions {
            let Some(o) = old.iter().find(|o| o.partition == p.partition) else {
                event(
                    Severity::Info,
                    "topic",
                    format!("{}-{} added", t.name, p.partition),
                );
                continue;
            };
            let name = format!("{}-{}", t.name, p.partition);
            match (o.leader, p.leader) {
                (Some(_), None) => event(
                    Severity::Critical,
                    "partition",
                    format!("{name} is offline: no leader"),
                ),
                (None, Some(l)) => event(
                    Severity::Info,
                    "election",
                    format!(
                        "{name} is back online: broker {l} leads (epoch {})",
                        p.leader_epoch
                    ),
                ),
                (Some(a), Some(b)) if a != b || p.leader_epoch != o.leader_epoch => event(
                    Severity::Info,
                    "election",
                    format!(
                        "{name}: leader {a} -> {b} (epoch {} -> {})",
                        o.leader_epoch, p.leader_epoch
                    ),
                ),
                _ => {}
            }
            let left: Vec<i32> = o
                .isr
                .iter()
                .filter(|r| !p.isr.contains(r))
                .copied()
                .collect();
            let joined: Vec<i32> = p
                .isr
                .iter()
                .filter(|r| !o.isr.contains(r))
                .copied()
                .collect();
            if !left.is_empty() {
                event(
                    Severity::Warning,
                    "isr",
                    format!("{name}: ISR shrank by {} to [{}]", ids(&left), ids(&p.isr)),
                );
            }
            if !joined.is_empty() {
                event(
                    Severity::Info,
                    "isr",
                    format!(
                        "{name}: ISR expanded by {} to [{}]",
                        ids(&joined),
                        ids(&p.isr)
                    ),
                );
            }
            if o.replicas != p.replicas {
                event(
                    Severity::Info,
                    "partition",
                    format!(
                        "{name}: replicas [{}] -> [{}]",
                        ids(&o.replicas),
                        ids(&p.replicas)
                    ),
                );
            }
        }
    }
    for name in old_topics
        .keys()
        .filter(|n| !after.topics.iter().any(|t| t.name == **n))
    {
        event(Severity::Info, "topic", format!("topic {name} deleted"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::view::{BrokerView, Health, TopicView};

    fn broker(id: i32, state: BrokerState) -> BrokerView {
        BrokerView {
            id,
            host: "127.0.0.1".into(),
            port: 9092,
            rack: None,
            state,
            leaders: 0,
            replicas: 0,
            size_bytes: None,
        }
    }

    fn partition(leader: Option<i32>, epoch: i32, isr: &[i32]) -> PartitionView {
        PartitionView {
            partition: 0,
            leader,
            leader_epoch: epoch,
            replicas: vec![1, 2, 3],
            isr: isr.to_vec(),
            offline_replicas: vec![],
            under_replicated: isr.len() < 3,
            under_min_isr: false,
            offline: leader.is_none(),
            start_offset: None,
            end_offset: None,
            size_bytes: None,
        }
    }

    fn view(states: [BrokerState; 3], p: PartitionView) -> ClusterView {
        ClusterView {
            cluster_id: None,
            controller: Some(1),
            quorum: None,
            brokers: (1..=3).map(|i| broker(i, states[i as usize - 1])).collect(),
            topics: vec![TopicView {
                name: "orders".into(),
                topic_id: String::new(),
                internal: false,
                replication_factor: 3,
                min_insync_replicas: None,
                partitions: vec![p],
                size_bytes: None,
            }],
            health: Health::default(),
        }
    }

    #[test]
    fn a_killed_leader_shows_as_fenced_elected_away_and_out_of_the_isr() {
        use BrokerState::*;
        let before = view([Up, Up, Up], partition(Some(3), 4, &[1, 2, 3]));
        let after = view([Up, Up, Fenced], partition(Some(1), 5, &[1, 2]));
        let events = diff(&before, &after, 7);
        let messages: Vec<&str> = events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "broker 3 is down: fenced by the controller",
                "orders-0: leader 3 -> 1 (epoch 4 -> 5)",
                "orders-0: ISR shrank by 3 to [1,2]",
            ]
        );
        assert_eq!(events[0].severity, Severity::Critical);
        assert!(events.iter().all(|e| e.at_ms == 7));
        // And back.
        let back = view([Up, Up, Up], partition(Some(1), 5, &[1, 2, 3]));
        let messages: Vec<String> = diff(&after, &back, 8)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(
            messages,
            [
                "broker 3 is back up",
                "orders-0: ISR expanded by 3 to [1,2,3]"
            ]
        );
        assert!(diff(&back, &back, 9).is_empty());
    }

    #[test]
    fn the_active_controller_moving_and_a_silent_voter_are_events() {
        use crate::admin::view::{QuorumView, VoterView};
        use BrokerState::*;
        let voter = |id, reachable| VoterView {
            id,
            log_end_offset: 10,
            lag: 0,
            last_contact_ms_ago: Some(if reachable { 10 } else { 9_000 }),
            reachable,
        };
        let quorum = |leader, epoch, third_reachable| QuorumView {
            leader,
            epoch,
            high_watermark: 10,
            voters: vec![voter(1, true), voter(2, true), voter(3, third_reachable)],
        };
        let mut before = view([Up, Up, Up], partition(Some(1), 1, &[1, 2, 3]));
        before.quorum = Some(quorum(3, 4, true));
        let mut after = before.clone();
        after.quorum = Some(quorum(1, 5, false));
        let messages: Vec<String> = diff(&before, &after, 0)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert_eq!(
            messages,
            [
                "the active controller moved from 3 to 1 (epoch 4 -> 5)",
                "controller quorum voter 3 is not heard from",
            ]
        );
        let back: Vec<String> = diff(&after, &before, 0)
            .into_iter()
            .map(|e| e.message)
            .collect();
        assert!(back.contains(&"controller quorum voter 3 is heard from again".to_string()));
    }

    #[test]
    fn offline_partitions_and_topic_changes_are_events() {
        use BrokerState::*;
        let before = view([Up, Up, Up], partition(Some(2), 1, &[2]));
        let after = view([Up, Up, Up], partition(None, 1, &[2]));
        let e = diff(&before, &after, 0);
        assert_eq!(e[0].message, "orders-0 is offline: no leader");
        assert_eq!(e[0].severity, Severity::Critical);
        let mut gone = after.clone();
        gone.topics.clear();
        assert_eq!(diff(&after, &gone, 0)[0].message, "topic orders deleted");
        assert!(
            diff(&gone, &after, 0)[0]
                .message
                .starts_with("topic orders created")
        );
    }
}
