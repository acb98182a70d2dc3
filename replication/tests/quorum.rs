//! The metadata quorum with real raft-rs and raft-engine logs in temporary directories, three
//! members wired through an in-memory network: a leader is elected, records commit and every
//! member applies them in the same order; the leader is killed and another takes over; the
//! killed member restarts from its log and catches up; a member that missed compacted entries is
//! brought back by a snapshot, and snapshots keep the log bounded.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;

mod support;

use strata_replication::BrokerId;
use strata_replication::controller::MetadataRecord;
use support::Member;

struct Cluster {
    dirs: Vec<PathBuf>,
    nodes: BTreeMap<u64, Member>,
    queue: VecDeque<raft::eraftpb::Message>,
    _tmp: tempfile::TempDir,
}

const VOTERS: [u64; 3] = [1, 2, 3];
const SNAPSHOT_EVERY: u64 = 25;

impl Cluster {
    fn new() -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = VOTERS
            .iter()
            .map(|id| tmp.path().join(format!("controller-{id}")))
            .collect();
        let mut c = Cluster {
            dirs,
            nodes: BTreeMap::new(),
            queue: VecDeque::new(),
            _tmp: tmp,
        };
        for id in VOTERS {
            c.start(id);
        }
        c
    }

    fn start(&mut self, id: u64) {
        let node = Member::start(
            id,
            &VOTERS,
            self.dirs[(id - 1) as usize].clone(),
            SNAPSHOT_EVERY,
        );
        self.nodes.insert(id, node);
    }

    fn kill(&mut self, id: u64) {
        self.nodes.remove(&id);
    }

    /// Runs `rounds` rounds: every member ticks, then messages are delivered until quiet.
    fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for n in self.nodes.values() {
                n.call(|n| n.tick());
            }
            for _ in 0..50 {
                for n in self.nodes.values() {
                    self.queue.extend(n.call(|n| n.handle_ready().unwrap()));
                }
                if self.queue.is_empty() {
                    break;
                }
                while let Some(m) = self.queue.pop_front() {
                    if let Some(n) = self.nodes.get(&m.to) {
                        n.call(move |n| n.step(m).unwrap());
                    }
                }
            }
        }
    }

    fn leader(&self) -> Option<u64> {
        self.nodes
            .values()
            .find(|n| n.call(|n| n.is_leader()))
            .map(|n| n.id())
    }

    fn elect(&mut self) -> u64 {
        for _ in 0..100 {
            self.run(1);
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no controller leader elected");
    }

    fn propose(&mut self, records: &[MetadataRecord]) {
        let l = self.elect();
        let records = records.to_vec();
        self.nodes[&l].call(move |n| n.propose(&records).unwrap());
        self.run(3);
    }
}

fn register(id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker {
        id: BrokerId(id),
        epoch: id as u64,
        endpoint: format!("127.0.0.1:{}", 9000 + id),
        rack: None,
        directory_id: None,
        listeners: Default::default(),
    }
}

#[test]
fn records_commit_on_all_members_and_survive_leader_loss() {
    let mut c = Cluster::new();
    let first = c.elect();
    for i in 0..10 {
        c.propose(&[register(i)]);
    }
    c.run(5);
    for n in c.nodes.values() {
        assert_eq!(
            n.call(|n| n.image().brokers.len()),
            10,
            "member {} applied everything",
            n.id()
        );
    }
    // Kill the active controller: another takes over and keeps committing.
    c.kill(first);
    let second = c.elect();
    assert_ne!(first, second);
    for i in 10..20 {
        c.propose(&[register(i)]);
    }
    c.run(5);
    assert_eq!(c.nodes[&second].call(|n| n.image().brokers.len()), 20);
    // The old leader restarts from its raft-engine log (and snapshot) and catches up.
    c.start(first);
    c.run(20);
    let images: Vec<_> = c
        .nodes
        .values()
        .map(|n| n.call(|n| n.image().clone()))
        .collect();
    assert!(images.windows(2).all(|w| w[0] == w[1]), "all members agree");
    assert_eq!(images[0].brokers.len(), 20);
}

#[test]
fn snapshots_bound_the_log_and_catch_up_a_member_that_missed_compacted_entries() {
    let mut c = Cluster::new();
    let leader = c.elect();
    let lagging = VOTERS.iter().copied().find(|id| *id != leader).unwrap();
    c.kill(lagging);
    for i in 0..200 {
        c.propose(&[
            register(i % 50),
            MetadataRecord::FenceBroker {
                id: BrokerId(i % 50),
            },
        ]);
    }
    c.run(5);
    let lid = c.elect();
    let entries = c.nodes[&lid].call(|n| n.log_entries());
    assert!(
        entries <= 2 * SNAPSHOT_EVERY + 10,
        "log bounded by snapshots: {entries} entries"
    );
    // The lagging member's entries were compacted away on the others: it needs a snapshot.
    c.start(lagging);
    c.run(30);
    let images: Vec<_> = c
        .nodes
        .values()
        .map(|n| n.call(|n| n.image().clone()))
        .collect();
    assert!(
        images.windows(2).all(|w| w[0] == w[1]),
        "the restarted member caught up through a snapshot"
    );
    assert_eq!(images[0].brokers.len(), 50);
    assert!(images[0].brokers.values().all(|b| b.fenced));
}

/// A member told its leader is gone campaigns at once: a new leader is elected within one
/// round of messages, without the 6-12 ticks of an election timeout (and past the leader's
/// lease, which would make the other member ignore an ordinary campaign); records commit on.
/// Told about a leader it does not have, a member does nothing.
#[test]
fn a_member_that_knows_its_leader_is_gone_takes_over_at_once() {
    let mut c = Cluster::new();
    c.propose(&[register(1)]);
    let old = c.elect();
    c.run(2);
    c.kill(old);
    let next = VOTERS.iter().copied().find(|id| *id != old).unwrap();
    assert!(!c.nodes[&next].call(move |n| n.leader_gone(old + 10).unwrap()));
    assert!(c.nodes[&next].call(move |n| n.leader_gone(old).unwrap()));
    // Deliver messages only: no tick, so no election timeout can be what elects.
    for _ in 0..50 {
        for n in c.nodes.values() {
            c.queue.extend(n.call(|n| n.handle_ready().unwrap()));
        }
        if c.queue.is_empty() {
            break;
        }
        while let Some(m) = c.queue.pop_front() {
            if let Some(n) = c.nodes.get(&m.to) {
                n.call(move |n| n.step(m).unwrap());
            }
        }
    }
    assert_eq!(c.leader(), Some(next), "elected without a tick");
    c.propose(&[register(2)]);
    for n in c.nodes.values() {
        assert_eq!(n.call(|n| n.image().brokers.len()), 2);
    }
}
