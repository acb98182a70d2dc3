//! Seeded simulation of the metadata quorum: three `QuorumNode`s on real raft-engine logs, a
//! network that drops, delays and reorders messages, members that crash (losing everything but
//! their raft-engine log) and restart, and proposals made wherever a leader is found (until the network heals).
//!
//! Checked throughout: at most one leader per Raft term; every member's applied history is a
//! prefix of one common history (no committed record is ever lost or reordered). After healing:
//! every member has applied the same records. A failing seed is printed; `STRATA_SIM_SEED=S`
//! replays it, `STRATA_SIM_SEEDS=N` runs more.

use std::collections::BTreeMap;
use std::path::PathBuf;

mod support;

use strata_replication::BrokerId;
use strata_replication::controller::{MetadataRecord, QuorumNode};
use support::Member;

const VOTERS: [u64; 3] = [1, 2, 3];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn chance(&mut self, per_mille: u64) -> bool {
        self.next() % 1000 < per_mille
    }
}

struct Sim {
    seed: u64,
    now: u64,
    rng: Rng,
    dirs: Vec<PathBuf>,
    nodes: BTreeMap<u64, Member>,
    net: Vec<(u64, raft::eraftpb::Message)>,
    drop_per_mille: u64,
    leaders_by_term: BTreeMap<u64, u64>,
    /// The broker ids registered, in the order the first member to apply them did: the history.
    history: Vec<i32>,
    next_broker: i32,
    _tmp: tempfile::TempDir,
}

/// The history a member has applied: registered broker ids in order of their epoch field.
fn applied_history(n: &QuorumNode) -> Vec<i32> {
    let mut v: Vec<(u64, i32)> = n
        .image()
        .brokers
        .values()
        .map(|b| (b.epoch, b.id.0))
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = VOTERS
            .iter()
            .map(|id| tmp.path().join(format!("c{id}")))
            .collect();
        let mut s = Sim {
            seed,
            now: 0,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            dirs,
            nodes: BTreeMap::new(),
            net: Vec::new(),
            drop_per_mille: 100,
            leaders_by_term: BTreeMap::new(),
            history: Vec::new(),
            next_broker: 1,
            _tmp: tmp,
        };
        for id in VOTERS {
            s.start(id);
        }
        s
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: step {}: {what}", self.seed, self.now);
    }

    fn start(&mut self, id: u64) {
        let n = Member::start(id, &VOTERS, self.dirs[(id - 1) as usize].clone(), 16);
        self.nodes.insert(id, n);
    }

    fn step(&mut self, faults: bool) {
        self.now += 1;
        if faults {
            if self.rng.chance(6) && self.nodes.len() == VOTERS.len() {
                let id = VOTERS[(self.rng.next() % 3) as usize];
                self.nodes.remove(&id);
            }
            if self.rng.chance(30) {
                for id in VOTERS {
                    if !self.nodes.contains_key(&id) {
                        self.start(id);
                        break;
                    }
                }
            }
        }
        for n in self.nodes.values() {
            n.call(|n| n.tick());
        }
        // Proposals, on whoever is leader now. Each record carries its sequence in the epoch
        // field, so the applied order can be compared.
        if faults
            && self.rng.chance(400)
            && let Some(l) = self.nodes.values().find(|n| n.call(|n| n.is_leader()))
        {
            let id = self.next_broker;
            let r = MetadataRecord::RegisterBroker {
                id: BrokerId(id),
                epoch: id as u64,
                endpoint: String::new(),
                rack: None,
                directory_id: None,
                listeners: Default::default(),
            };
            if l.call(move |n| n.propose(&[r]).is_ok()) {
                self.next_broker += 1;
            }
        }
        let mut out = Vec::new();
        for n in self.nodes.values() {
            out.extend(n.call(|n| n.handle_ready().unwrap()));
        }
        for m in out {
            if self.rng.chance(self.drop_per_mille) {
                continue;
            }
            let at = self.now + 1 + self.rng.next() % 4;
            self.net.push((at, m));
        }
        let now = self.now;
        let mut due = Vec::new();
        self.net.retain(|(t, m)| {
            if *t <= now {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        for m in due {
            if let Some(n) = self.nodes.get(&m.to) {
                // A message from a past incarnation may be refused; that is Raft's business.
                n.call(move |n| {
                    let _ = n.step(m);
                });
            }
        }
        self.check();
    }

    fn check(&mut self) {
        let states: Vec<(u64, bool, u64, Vec<i32>)> = self
            .nodes
            .values()
            .map(|n| n.call(|n| (n.id(), n.is_leader(), n.term(), applied_history(n))))
            .collect();
        for (id, leader, term, _) in &states {
            if *leader {
                let (id, term) = (*id, *term);
                if let Some(prev) = self.leaders_by_term.insert(term, id)
                    && prev != id
                {
                    self.fail(format!("two leaders in term {term}: {prev} and {id}"));
                }
            }
        }
        // Every applied history is a prefix of the longest one seen.
        for (id, _, _, h) in states {
            let common = h.len().min(self.history.len());
            if h[..common] != self.history[..common] {
                let at = (0..common)
                    .find(|i| h[*i] != self.history[*i])
                    .unwrap_or(common);
                self.fail(format!(
                    "member {id} diverges at position {at}: {:?} vs {:?}",
                    h.get(at),
                    self.history.get(at)
                ));
            }
            if h.len() > self.history.len() {
                self.history = h;
            }
        }
    }

    fn heal(&mut self) {
        self.drop_per_mille = 0;
        for id in VOTERS {
            if !self.nodes.contains_key(&id) {
                self.start(id);
            }
        }
        for _ in 0..600 {
            self.step(false);
        }
        let histories: Vec<Vec<i32>> = self
            .nodes
            .values()
            .map(|n| n.call(|n| applied_history(n)))
            .collect();
        if histories.windows(2).any(|w| w[0] != w[1]) {
            let lens: Vec<usize> = histories.iter().map(Vec::len).collect();
            self.fail(format!(
                "members did not converge: applied lengths {lens:?}"
            ));
        }
    }
}

#[test]
fn the_quorum_never_loses_or_reorders_committed_records() {
    let seeds: Vec<u64> = match (
        std::env::var("STRATA_SIM_SEED"),
        std::env::var("STRATA_SIM_SEEDS"),
    ) {
        (Ok(s), _) => vec![s.parse().expect("STRATA_SIM_SEED is a number")],
        (_, Ok(n)) => (1..=n.parse().expect("STRATA_SIM_SEEDS is a number")).collect(),
        _ => (1..=12).collect(),
    };
    let mut committed = 0;
    let mut terms = 0;
    for seed in &seeds {
        let mut sim = Sim::new(*seed);
        for _ in 0..1500 {
            sim.step(true);
        }
        sim.heal();
        committed += sim.history.len();
        terms += sim.leaders_by_term.len();
    }
    assert!(
        terms > seeds.len(),
        "leadership moved under the faults: {terms} terms"
    );
    assert!(
        committed > 20 * seeds.len(),
        "records committed through the faults: {committed}"
    );
}
