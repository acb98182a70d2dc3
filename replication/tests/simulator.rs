//! Deterministic simulation of one partition replicated on three brokers, driven only through
//! the sans-IO `Partition` state machine: a seeded network that delays, reorders and drops
//! messages; brokers that crash (keeping their durable log) and restart; a controller oracle
//! that fences silent brokers, elects leaders from the ISR (unclean election off) and rules on
//! ISR changes; clients appending with acks=all.
//!
//! Checked at every step: at most one leader per epoch; the controller's current leader holds
//! every acknowledged record at its offset. Checked after healing: every replica matches the
//! leader up to the high watermark, and every acknowledged record is below it. A failing seed is
//! printed with the violation.

use std::collections::{BTreeMap, BTreeSet};

use strata_engine::{LeaderEpoch, Offset};
use strata_replication::partition::truncation_offset;
use strata_replication::{BrokerId, Partition, PartitionConfig, Role};

const NODES: i32 = 3;
const SESSION_TIMEOUT_MS: u64 = 60;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    epoch: i32,
    value: u64,
}

#[derive(Clone, Debug)]
enum Msg {
    Fetch {
        from: i32,
        to: i32,
        epoch: i32,
        offset: i64,
    },
    FetchOk {
        to: i32,
        epoch: i32,
        start: i64,
        entries: Vec<Entry>,
        hw: i64,
    },
    FetchErr {
        to: i32,
        epoch: i32,
        out_of_range_leo: Option<i64>,
    },
    EpochReq {
        from: i32,
        to: i32,
        epoch: i32,
        last_epoch: i32,
    },
    EpochResp {
        to: i32,
        epoch: i32,
        answer: Option<(i32, i64)>,
    },
    AlterIsr {
        from: i32,
        epoch: i32,
        isr: BTreeSet<BrokerId>,
    },
    LeaderAndIsr {
        to: i32,
        epoch: i32,
        leader: Option<i32>,
        isr: BTreeSet<BrokerId>,
    },
}

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

struct Node {
    id: i32,
    alive: bool,
    part: Partition,
    log: Vec<Entry>,
    fetch_sent_at: Option<u64>,
    truncated_for_epoch: Option<i32>,
    pending_acks: Vec<(i64, u64, i32)>,
}

impl Node {
    fn leo(&self) -> Offset {
        Offset(self.log.len() as i64)
    }
    /// End offset of the largest local epoch <= `epoch` (start of the next larger one, or LEO).
    fn end_for(&self, epoch: i32) -> Offset {
        self.log
            .iter()
            .position(|e| e.epoch > epoch)
            .map_or(self.leo(), |p| Offset(p as i64))
    }
    /// OffsetForLeaderEpoch as a leader answers it.
    fn answer_for(&self, epoch: i32) -> Option<(i32, i64)> {
        let largest = self
            .log
            .iter()
            .map(|e| e.epoch)
            .filter(|e| *e <= epoch)
            .max()?;
        Some((largest, self.end_for(largest).0))
    }
    fn last_epoch(&self) -> i32 {
        self.log.last().map_or(-1, |e| e.epoch)
    }
}

struct Controller {
    epoch: i32,
    leader: Option<i32>,
    isr: BTreeSet<BrokerId>,
    fenced: BTreeSet<i32>,
}

struct Sim {
    seed: u64,
    now: u64,
    rng: Rng,
    nodes: Vec<Node>,
    ctl: Controller,
    net: Vec<(u64, Msg)>,
    drop_per_mille: u64,
    crashed_at: BTreeMap<i32, u64>,
    leaders_by_epoch: BTreeMap<i32, i32>,
    acked: BTreeMap<i64, u64>,
    next_value: u64,
}

fn b(id: i32) -> BrokerId {
    BrokerId(id)
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let config = PartitionConfig {
            replica_lag_time_max_ms: 40,
            min_insync_replicas: 2,
        };
        let nodes = (0..NODES)
            .map(|id| Node {
                id,
                alive: true,
                part: Partition::new(b(id), config, Offset(0)),
                log: Vec::new(),
                fetch_sent_at: None,
                truncated_for_epoch: None,
                pending_acks: Vec::new(),
            })
            .collect();
        let mut s = Sim {
            seed,
            now: 0,
            rng: Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1),
            nodes,
            ctl: Controller {
                epoch: 0,
                leader: Some(0),
                isr: (0..NODES).map(b).collect(),
                fenced: BTreeSet::new(),
            },
            net: Vec::new(),
            drop_per_mille: 50,
            crashed_at: BTreeMap::new(),
            leaders_by_epoch: BTreeMap::new(),
            acked: BTreeMap::new(),
            next_value: 1,
        };
        s.broadcast();
        s
    }

    fn fail(&self, what: String) -> ! {
        panic!("seed {}: t={}ms: {what}", self.seed, self.now);
    }

    fn send(&mut self, m: Msg) {
        if self.rng.chance(self.drop_per_mille) {
            return;
        }
        let delay = 1 + self.rng.next() % 5;
        self.net.push((self.now + delay, m));
    }

    fn broadcast(&mut self) {
        for to in 0..NODES {
            let m = Msg::LeaderAndIsr {
                to,
                epoch: self.ctl.epoch,
                leader: self.ctl.leader,
                isr: self.ctl.isr.clone(),
            };
            self.send(m);
        }
    }

    fn controller_tick(&mut self) {
        // Fence brokers silent for the session timeout; move leadership within the ISR.
        let expired: Vec<i32> = self
            .crashed_at
            .iter()
            .filter(|(n, t)| self.now >= **t + SESSION_TIMEOUT_MS && !self.ctl.fenced.contains(n))
            .map(|(n, _)| *n)
            .collect();
        for n in expired {
            self.ctl.fenced.insert(n);
            if self.ctl.isr.len() > 1 {
                self.ctl.isr.remove(&b(n));
            }
            if self.ctl.leader == Some(n) {
                let next = self
                    .ctl
                    .isr
                    .iter()
                    .map(|x| x.0)
                    .find(|x| !self.ctl.fenced.contains(x));
                self.ctl.epoch += 1;
                self.ctl.leader = next;
            }
        }
        // An offline partition comes back when its last ISR member returns.
        if self.ctl.leader.is_none()
            && let Some(n) = self
                .ctl
                .isr
                .iter()
                .map(|x| x.0)
                .find(|x| !self.ctl.fenced.contains(x))
        {
            self.ctl.epoch += 1;
            self.ctl.leader = Some(n);
        }
        if self.now.is_multiple_of(20) {
            self.broadcast();
        }
    }

    fn deliver(&mut self, m: Msg) {
        match m {
            Msg::AlterIsr { from, epoch, isr } => {
                let ok = self.ctl.leader == Some(from)
                    && epoch == self.ctl.epoch
                    && isr.contains(&b(from))
                    && isr.iter().all(|x| !self.ctl.fenced.contains(&x.0));
                if ok {
                    self.ctl.isr = isr;
                }
                self.broadcast();
            }
            Msg::LeaderAndIsr {
                to,
                epoch,
                leader,
                isr,
            } => self.on_leader_and_isr(to, epoch, leader, isr),
            Msg::Fetch {
                from,
                to,
                epoch,
                offset,
            } => {
                let now = self.now;
                let n = &mut self.nodes[to as usize];
                if !n.alive {
                    return;
                }
                let leo = n.leo();
                if offset > leo.0 {
                    let reply = Msg::FetchErr {
                        to: from,
                        epoch,
                        out_of_range_leo: Some(leo.0),
                    };
                    self.send(reply);
                    return;
                }
                match n
                    .part
                    .on_fetch(b(from), LeaderEpoch(epoch), Offset(offset), leo, now)
                {
                    Ok(ready) => {
                        let end = (offset as usize + 8).min(n.log.len());
                        let entries = n.log[offset as usize..end].to_vec();
                        let hw = n.part.high_watermark().0;
                        let isr = ready.alter_isr.clone();
                        let leader_epoch = n.part.leader_epoch().0;
                        self.send(Msg::FetchOk {
                            to: from,
                            epoch,
                            start: offset,
                            entries,
                            hw,
                        });
                        if let Some(p) = isr {
                            self.send(Msg::AlterIsr {
                                from: to,
                                epoch: leader_epoch,
                                isr: p.isr,
                            });
                        }
                    }
                    Err(_) => self.send(Msg::FetchErr {
                        to: from,
                        epoch,
                        out_of_range_leo: None,
                    }),
                }
            }
            Msg::FetchOk {
                to,
                epoch,
                start,
                entries,
                hw,
            } => {
                let n = &mut self.nodes[to as usize];
                n.fetch_sent_at = None;
                if !n.alive
                    || n.part.leader_epoch().0 != epoch
                    || !matches!(n.part.role(), Role::Follower(_))
                {
                    return;
                }
                if start != n.log.len() as i64 {
                    return; // a stale response
                }
                n.log.extend(entries);
                let leo = n.leo();
                n.part.on_leader_high_watermark(Offset(hw), leo);
            }
            Msg::FetchErr {
                to,
                epoch,
                out_of_range_leo,
            } => {
                let n = &mut self.nodes[to as usize];
                n.fetch_sent_at = None;
                if let (Some(leo), true) = (out_of_range_leo, n.part.leader_epoch().0 == epoch) {
                    n.log.truncate(leo as usize);
                    let l = n.leo();
                    n.part.on_truncated(l);
                }
            }
            Msg::EpochReq {
                from,
                to,
                epoch,
                last_epoch,
            } => {
                let n = &self.nodes[to as usize];
                if !n.alive || !n.part.is_leader() || n.part.leader_epoch().0 != epoch {
                    return;
                }
                let answer = n.answer_for(last_epoch);
                self.send(Msg::EpochResp {
                    to: from,
                    epoch,
                    answer,
                });
            }
            Msg::EpochResp { to, epoch, answer } => {
                let n = &mut self.nodes[to as usize];
                if !n.alive
                    || n.part.leader_epoch().0 != epoch
                    || n.truncated_for_epoch == Some(epoch)
                {
                    return;
                }
                let at = truncation_offset(
                    n.leo(),
                    answer.map(|(e, o)| (LeaderEpoch(e), Offset(o))),
                    |e| n.end_for(e.0),
                );
                n.log.truncate(at.0 as usize);
                let leo = n.leo();
                n.part.on_truncated(leo);
                n.truncated_for_epoch = Some(epoch);
            }
        }
    }

    fn on_leader_and_isr(
        &mut self,
        to: i32,
        epoch: i32,
        leader: Option<i32>,
        isr: BTreeSet<BrokerId>,
    ) {
        let now = self.now;
        let n = &mut self.nodes[to as usize];
        if !n.alive || epoch < n.part.leader_epoch().0 {
            return;
        }
        let current = n.part.leader_epoch().0;
        match leader {
            Some(l) if l == to => {
                if epoch > current || !n.part.is_leader() {
                    let leo = n.leo();
                    n.part.become_leader(
                        LeaderEpoch(epoch),
                        (0..NODES).map(b).collect(),
                        isr,
                        leo,
                        now,
                    );
                    if let Some(prev) = self.leaders_by_epoch.insert(epoch, to)
                        && prev != to
                    {
                        self.fail(format!("two leaders in epoch {epoch}: {prev} and {to}"));
                    }
                } else {
                    let leo = n.leo();
                    n.part.on_isr_changed(LeaderEpoch(epoch), isr, leo);
                }
            }
            Some(l) => {
                if epoch > current || n.part.role() != &Role::Follower(b(l)) {
                    n.part.become_follower(LeaderEpoch(epoch), b(l));
                    n.pending_acks.clear();
                    n.fetch_sent_at = None;
                    if n.log.is_empty() {
                        n.truncated_for_epoch = Some(epoch);
                    } else {
                        n.truncated_for_epoch = None;
                    }
                }
            }
            None => {
                n.part.become_offline();
                n.pending_acks.clear();
            }
        }
    }

    fn node_tick(&mut self, id: i32) {
        let now = self.now;
        let n = &mut self.nodes[id as usize];
        if !n.alive {
            return;
        }
        match n.part.role().clone() {
            Role::Leader => {
                let leo = n.leo();
                let ready = n.part.tick(now, leo);
                let epoch = n.part.leader_epoch().0;
                if let Some(p) = ready.alter_isr {
                    self.send(Msg::AlterIsr {
                        from: id,
                        epoch,
                        isr: p.isr,
                    });
                }
                // Clients: append with acks=all.
                if self.rng.chance(300) {
                    let n = &mut self.nodes[id as usize];
                    if n.part.check_acks_all().is_ok() {
                        let value = self.next_value;
                        self.next_value += 1;
                        n.log.push(Entry { epoch, value });
                        let offset = n.log.len() as i64 - 1;
                        n.pending_acks.push((offset, value, epoch));
                        let leo = n.leo();
                        n.part.on_leader_append(leo);
                    }
                }
                // Acknowledge what the high watermark covers.
                let n = &mut self.nodes[id as usize];
                let hw = n.part.high_watermark().0;
                let mut acked = Vec::new();
                n.pending_acks.retain(|(o, v, e)| {
                    if *o < hw && *e == epoch {
                        acked.push((*o, *v));
                        false
                    } else {
                        true
                    }
                });
                for (o, v) in acked {
                    if let Some(prev) = self.acked.insert(o, v)
                        && prev != v
                    {
                        self.fail(format!(
                            "offset {o} acknowledged with two values {prev} and {v}"
                        ));
                    }
                }
            }
            Role::Follower(leader) => {
                let epoch = n.part.leader_epoch().0;
                if n.truncated_for_epoch != Some(epoch) {
                    if now.is_multiple_of(10) {
                        let last_epoch = n.last_epoch();
                        self.send(Msg::EpochReq {
                            from: id,
                            to: leader.0,
                            epoch,
                            last_epoch,
                        });
                    }
                } else if n.fetch_sent_at.is_none_or(|t| now > t + 15) {
                    n.fetch_sent_at = Some(now);
                    let offset = n.log.len() as i64;
                    self.send(Msg::Fetch {
                        from: id,
                        to: leader.0,
                        epoch,
                        offset,
                    });
                }
            }
            Role::Offline => {}
        }
    }

    fn check(&self) {
        let Some(l) = self.ctl.leader else { return };
        let n = &self.nodes[l as usize];
        if !n.alive || !n.part.is_leader() || n.part.leader_epoch().0 != self.ctl.epoch {
            return; // the elected leader has not learned it yet
        }
        for (o, v) in &self.acked {
            match n.log.get(*o as usize) {
                Some(e) if e.value == *v => {}
                other => self.fail(format!(
                    "leader {l} (epoch {}) lost acknowledged offset {o} = {v}: has {other:?}",
                    self.ctl.epoch
                )),
            }
        }
    }

    fn step(&mut self, faults: bool) {
        self.now += 1;
        if faults {
            // Crash a live broker now and then, keeping at least one ISR member alive most of the time.
            if self.rng.chance(4) {
                let id = (self.rng.next() % NODES as u64) as i32;
                if self.nodes[id as usize].alive {
                    let n = &mut self.nodes[id as usize];
                    n.alive = false;
                    n.pending_acks.clear();
                    self.crashed_at.insert(id, self.now);
                }
            }
            if self.rng.chance(8) {
                let id = (self.rng.next() % NODES as u64) as i32;
                self.restart(id);
            }
        }
        self.controller_tick();
        let mut due: Vec<Msg> = Vec::new();
        let now = self.now;
        self.net.retain(|(t, m)| {
            if *t <= now {
                due.push(m.clone());
                false
            } else {
                true
            }
        });
        for m in due {
            self.deliver(m);
        }
        for id in 0..NODES {
            self.node_tick(id);
        }
        self.check();
    }

    fn restart(&mut self, id: i32) {
        let n = &mut self.nodes[id as usize];
        if n.alive {
            return;
        }
        n.alive = true;
        // A restarted broker keeps its durable log and forgets everything else.
        n.part = Partition::new(
            b(id),
            PartitionConfig {
                replica_lag_time_max_ms: 40,
                min_insync_replicas: 2,
            },
            Offset(0),
        );
        n.fetch_sent_at = None;
        n.truncated_for_epoch = None;
        self.crashed_at.remove(&id);
        self.ctl.fenced.remove(&id);
    }

    fn heal_and_settle(&mut self) {
        self.drop_per_mille = 0;
        for id in 0..NODES {
            self.restart(id);
        }
        for _ in 0..3000 {
            self.step(false);
        }
        let Some(l) = self.ctl.leader else {
            self.fail("no leader after healing".into())
        };
        let leader = &self.nodes[l as usize];
        let hw = leader.part.high_watermark().0 as usize;
        for (o, v) in &self.acked {
            if *o as usize >= hw {
                self.fail(format!(
                    "acknowledged offset {o} = {v} is above the settled high watermark {hw}"
                ));
            }
        }
        for n in &self.nodes {
            if n.log.len() < hw || n.log[..hw] != leader.log[..hw] {
                self.fail(format!(
                    "replica {} does not match leader {l} below the high watermark {hw}",
                    n.id
                ));
            }
        }
    }
}

fn run(seed: u64, steps: u64) -> (usize, u64) {
    let mut sim = Sim::new(seed);
    for _ in 0..steps {
        sim.step(true);
    }
    sim.heal_and_settle();
    (sim.acked.len(), sim.ctl.epoch as u64)
}

#[test]
fn replication_invariants_hold_under_loss_reordering_and_crashes() {
    // STRATA_SIM_SEEDS=N runs more seeds (the default keeps the test suite quick);
    // STRATA_SIM_SEED=S replays one.
    let seeds: Vec<u64> = match (
        std::env::var("STRATA_SIM_SEED"),
        std::env::var("STRATA_SIM_SEEDS"),
    ) {
        (Ok(s), _) => vec![s.parse().expect("STRATA_SIM_SEED is a number")],
        (_, Ok(n)) => (1..=n.parse().expect("STRATA_SIM_SEEDS is a number")).collect(),
        _ => (1..=40).collect(),
    };
    let mut total_acked = 0;
    let mut total_epochs = 0;
    for seed in &seeds {
        let (acked, epochs) = run(*seed, 3000);
        total_acked += acked;
        total_epochs += epochs;
    }
    // The faults really moved leadership around and writes were acknowledged through it.
    let n = seeds.len() as u64;
    assert!(
        total_epochs > n,
        "leader changes: {total_epochs} over {n} seeds"
    );
    assert!(
        total_acked as u64 > 50 * n,
        "acknowledged records: {total_acked} over {n} seeds"
    );
}
