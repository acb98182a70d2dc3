//! One chaos run: a cluster, clients, the fault schedule, healing, the final read, the check.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::checker::{self, Findings};
use crate::cluster::Cluster;
use crate::history::{Event, Recorder};
use crate::schedule::{self, FaultKind, Step};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Settings every chaos cluster starts with (before `--set`): RF=3, min.insync.replicas=2,
/// fsync before acknowledging, and a broker fenced for 5 s replaced (its replicas re-created on
/// the others, when there are others to take them).
pub const DEFAULT_SETTINGS: &[&str] = &[
    "broker.replacement.delay.ms=5000",
    "min.insync.replicas=2",
    "default.replication.factor=3",
    "offsets.topic.replication.factor=3",
    "offsets.topic.num.partitions=3",
    "log.flush.policy=always",
    "log.segment.bytes=16384",
];

/// Size of the tmpfs the last broker's data lives on when `disk-full` is among the faults.
pub const SMALL_DISK_BYTES: u64 = 512 << 20;

/// What a run does.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Options {
    /// Seed of the fault schedule.
    pub seed: u64,
    /// Seconds of faults and load (healing and the final read come after).
    pub duration_s: u64,
    /// Brokers (the first three also controllers, the others brokers only).
    pub brokers: usize,
    /// Partitions of the topic under test.
    pub partitions: i32,
    /// Producers; the first half idempotent.
    pub producers: u32,
    /// Messages per second of each producer.
    pub rate: u64,
    /// Group consumers.
    pub consumers: u32,
    /// Broker settings after the defaults (`key=value`).
    pub settings: Vec<String>,
    /// Fault kinds to draw from.
    pub faults: Vec<String>,
    /// The cluster's own links secured: SASL_SSL (SCRAM-SHA-512) between brokers, mutual TLS
    /// to the controllers, and an authorizer (the clients stay on PLAINTEXT: this librdkafka
    /// is built without OpenSSL).
    #[serde(default)]
    pub secure_links: bool,
    /// The transactional workload too: a transactional writer, a consume-transform-produce
    /// worker over the main topic and a read_committed observer (`transactions.rs`).
    #[serde(default)]
    pub transactions: bool,
}

/// What a run found.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub findings: Findings,
    /// Fraction of 1-second windows with at most one broker faulty in which an acks=all
    /// produce was acknowledged.
    pub availability: f64,
    /// Those windows.
    pub eligible_windows: u64,
    /// Partitions not back at their replication factor (in sync, on live brokers) two
    /// minutes after the faults ended: `topic-partition replicas isr`.
    pub under_replicated: Vec<String>,
}

impl Outcome {
    /// No anomaly, and every partition fully replicated at the end.
    pub fn clean(&self) -> bool {
        self.findings.clean() && self.under_replicated.is_empty()
    }
}

/// Waits until every partition of every topic has `rf` replicas, all in sync and none on a
/// `lost` broker; returns those that are not, when `timeout` passes first.
fn wait_fully_replicated(
    bootstrap: &str,
    rf: usize,
    lost: &std::collections::BTreeSet<usize>,
    timeout: Duration,
) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut short = vec!["no metadata".to_string()];
    while Instant::now() < deadline {
        let client: Result<BaseConsumer, _> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("log_level", "3")
            .create();
        if let Ok(md) = client.and_then(|c| c.fetch_metadata(None, Duration::from_secs(3))) {
            short = md
                .topics()
                .iter()
                .flat_map(|t| {
                    t.partitions().iter().filter_map(move |p| {
                        let on_lost = p
                            .replicas()
                            .iter()
                            .any(|r| usize::try_from(*r).is_ok_and(|r| lost.contains(&r)));
                        let ok = p.replicas().len() == rf
                            && p.isr().len() == rf
                            && p.leader() >= 0
                            && !on_lost;
                        (!ok).then(|| {
                            format!(
                                "{}-{} replicas {:?} isr {:?}",
                                t.name(),
                                p.id(),
                                p.replicas(),
                                p.isr()
                            )
                        })
                    })
                })
                .collect();
            if short.is_empty() {
                return short;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    short
}

fn wait_live(bootstrap: &str, n: usize, timeout: Duration) -> Result<(), BoxError> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()?;
    let deadline = Instant::now() + timeout;
    let mut seen: Option<Vec<i32>> = None;
    while Instant::now() < deadline {
        match c.fetch_metadata(None, Duration::from_secs(2)) {
            Ok(md) if md.brokers().len() == n => return Ok(()),
            Ok(md) => seen = Some(md.brokers().iter().map(|b| b.id()).collect()),
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(
        format!("{n} brokers were not live within {timeout:?} (the metadata last listed {seen:?})")
            .into(),
    )
}

/// The last lines of every node's log, for a run that could not start.
fn log_tails(dir: &Path, n: usize) -> String {
    (1..=n)
        .map(|id| {
            let text =
                std::fs::read_to_string(dir.join(format!("node-{id}.log"))).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(8)..].join("\n  ");
            format!("node {id}:\n  {tail}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The leader of `topic`/`partition` as the live brokers report it.
fn leader(bootstrap: &str, topic: &str, partition: i32) -> Option<usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(2)).ok()?;
    let p = md
        .topics()
        .first()?
        .partitions()
        .iter()
        .find(|p| p.id() == partition)?;
    usize::try_from(p.leader()).ok().filter(|l| *l > 0)
}

/// A fault as applied: what it touched, for healing and for the availability account.
struct Applied {
    kind: FaultKind,
    killed: Vec<usize>,
    paused: Vec<usize>,
    /// A full disk to free (and its broker to restart).
    filled: Option<usize>,
    /// Brokers counted faulty while it lasts.
    faulty: usize,
}

fn apply(
    c: &mut Cluster,
    step: &Step,
    topic: &str,
    partitions: i32,
    lost: &mut std::collections::BTreeSet<usize>,
) -> Result<(Applied, Vec<usize>), BoxError> {
    let n = c.nodes.len();
    // A broker lost for good is not there to fault again: another takes its turn.
    let drawn = step.nodes.first().copied().unwrap_or(1);
    let one = if lost.contains(&drawn) {
        (1..=n).find(|i| !lost.contains(i)).unwrap_or(1)
    } else {
        drawn
    };
    let mut a = Applied {
        kind: step.kind,
        killed: Vec::new(),
        paused: Vec::new(),
        filled: None,
        faulty: 1,
    };
    let others = |x: usize| (1..=n).filter(move |i| *i != x).collect::<Vec<_>>();
    let nodes = match step.kind {
        FaultKind::Kill => {
            c.kill(one)?;
            a.killed.push(one);
            vec![one]
        }
        FaultKind::KillController => {
            let id = c.active_controller().unwrap_or(one);
            c.kill(id)?;
            a.killed.push(id);
            vec![id]
        }
        FaultKind::KillAll => {
            for id in (1..=n).filter(|i| !lost.contains(i)) {
                c.kill(id)?;
                a.killed.push(id);
            }
            a.faulty = n;
            a.killed.clone()
        }
        FaultKind::Pause => {
            c.pause(one)?;
            a.paused.push(one);
            vec![one]
        }
        FaultKind::Isolate => {
            c.cut_between(&[one], &others(one));
            vec![one]
        }
        FaultKind::LeaderCut | FaultKind::LeaderCutKill => {
            let l = leader(&c.bootstrap(), topic, 0).unwrap_or(one);
            c.cut_replication(l, &others(l));
            vec![l]
        }
        FaultKind::Split => {
            let majority: Vec<usize> = (1..=n).filter(|i| !step.nodes.contains(i)).collect();
            c.cut_between(&step.nodes, &majority);
            a.faulty = step.nodes.len();
            step.nodes.clone()
        }
        FaultKind::OneWay => {
            let to = step.nodes.get(1).copied().unwrap_or(1);
            c.stall_one_way(one, to);
            vec![one, to]
        }
        FaultKind::Slow => {
            c.slow(one, Duration::from_millis(step.delay_ms));
            vec![one]
        }
        FaultKind::Corrupt => {
            c.kill(one)?;
            let flipped = c.corrupt_segment(one, topic)?;
            c.start_node(one)?;
            match flipped {
                Some((file, pos)) => {
                    eprintln!(
                        "strata-chaos: flipped the byte at {pos} of {}",
                        file.display()
                    )
                }
                None => eprintln!(
                    "strata-chaos: corrupt: node {one} has no closed segment yet; it was only restarted"
                ),
            }
            vec![one]
        }
        FaultKind::DiskFull if lost.contains(&drawn) => {
            // Only the lost broker had the small disk.
            eprintln!("strata-chaos: disk-full skipped: node {drawn}, the small disk's, is lost");
            a.faulty = 0;
            Vec::new()
        }
        FaultKind::DiskFull => {
            c.fill_disk(one)?;
            a.filled = Some(one);
            vec![one]
        }
        FaultKind::Reassign => {
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(step.at_ms);
            let partition = rand::Rng::random_range(&mut rng, 0..partitions.max(1));
            let target: Vec<String> = step.nodes.iter().map(usize::to_string).collect();
            let outcome = c.strata(&[
                "cluster",
                "reassign",
                "--bootstrap-server",
                &c.bootstrap(),
                "--topic",
                topic,
                "--partition",
                &partition.to_string(),
                "--replicas",
                &target.join(","),
            ]);
            eprintln!(
                "strata-chaos: reassign {topic}-{partition} to {:?}: {}",
                step.nodes,
                outcome.err().unwrap_or_else(|| "started".into())
            );
            a.faulty = 0;
            step.nodes.clone()
        }
        FaultKind::Wipe => {
            c.kill(one)?;
            let removed = c.wipe(one)?;
            c.start_node(one)?;
            eprintln!(
                "strata-chaos: node {one} restarted on an empty disk ({removed} entries removed)"
            );
            vec![one]
        }
        FaultKind::LoseBroker => {
            c.kill(drawn)?;
            lost.insert(drawn);
            eprintln!("strata-chaos: node {drawn} is lost for good");
            vec![drawn]
        }
        FaultKind::LoseUnsynced => {
            c.kill(one)?;
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(step.at_ms);
            let dropped = c.lose_unsynced(one, &mut rng)?;
            eprintln!("strata-chaos: dropped {dropped} unsynced bytes of node {one}");
            a.killed.push(one);
            vec![one]
        }
    };
    Ok((a, nodes))
}

fn heal(c: &mut Cluster, a: &Applied) -> Result<(), BoxError> {
    c.heal_links();
    if let Some(id) = a.filled {
        // A log that failed a write stays offline until its broker restarts (as in Kafka).
        c.empty_disk(id)?;
        c.kill(id)?;
        c.start_node(id)?;
    }
    for id in &a.paused {
        c.resume(*id)?;
    }
    for id in &a.killed {
        c.start_node(*id)?;
    }
    Ok(())
}

/// Runs the chaos test described by `opts` with the `strata` binary `bin`, writing
/// everything into `dir`.
pub fn run(opts: &Options, bin: &Path, dir: &Path) -> Result<Outcome, BoxError> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("options.json"), serde_json::to_vec_pretty(opts)?)?;
    let kinds: Vec<FaultKind> = opts
        .faults
        .iter()
        .map(|f| FaultKind::parse(f).ok_or_else(|| format!("unknown fault {f:?}")))
        .collect::<Result<_, _>>()?;
    let steps = schedule::generate(opts.seed, opts.duration_s * 1000, opts.brokers, &kinds);
    let plan: Vec<String> = steps
        .iter()
        .map(|s| {
            format!(
                "{:>8} ms  hold {:>5} ms  {:<16} nodes {:?}",
                s.at_ms,
                s.hold_ms,
                s.kind.name(),
                s.nodes
            )
        })
        .collect();
    std::fs::write(
        dir.join("schedule.txt"),
        format!("seed {}\n{}\n", opts.seed, plan.join("\n")),
    )?;
    let mut settings: Vec<String> = DEFAULT_SETTINGS.iter().map(|s| s.to_string()).collect();
    settings.extend(opts.settings.iter().cloned());
    let data = dir.join("cluster");
    let _ = std::fs::remove_dir_all(&data);
    let wants_small_disk = kinds.contains(&FaultKind::DiskFull);
    let mut cluster = Cluster::start(
        bin,
        &data,
        opts.brokers,
        &settings,
        wants_small_disk.then_some(SMALL_DISK_BYTES),
        opts.secure_links,
    )?;
    let bootstrap = cluster.bootstrap();
    // Generous: a loaded CI machine starts several clusters at once.
    if let Err(e) = wait_live(&bootstrap, opts.brokers, Duration::from_secs(120)) {
        return Err(format!("{e}\n{}", log_tails(&data, opts.brokers)).into());
    }
    let topic = "chaos";
    let rf = i32::try_from(opts.brokers.min(3))?;
    strata_testkit::create_topic(
        &bootstrap,
        topic,
        opts.partitions,
        rf,
        Duration::from_secs(60),
    )?;
    if opts.transactions {
        strata_testkit::create_topic(
            &bootstrap,
            crate::transactions::TXN_TOPIC,
            crate::transactions::WRITER_SPAN,
            rf,
            Duration::from_secs(60),
        )?;
    }
    let rec = Arc::new(Recorder::create(&dir.join("history.jsonl"))?);
    // The workload's clients: over SASL_SSL with secure links; the harness's own checks
    // (liveness, topic creation, replication) stay on the PLAINTEXT listener.
    let endpoint = cluster.client_endpoint();
    let stop_producers = Arc::new(AtomicBool::new(false));
    let stop_consumers = Arc::new(AtomicBool::new(false));
    let mut producers = Vec::new();
    for id in 0..opts.producers {
        let (b, r, s) = (endpoint.clone(), rec.clone(), stop_producers.clone());
        let (idem, rate) = (id < opts.producers.div_ceil(2), opts.rate);
        producers.push(std::thread::spawn(move || {
            crate::clients::produce(id, idem, &b, topic, rate, r, s)
        }));
    }
    let mut consumers = Vec::new();
    for id in 0..opts.consumers {
        let (b, r, s) = (endpoint.clone(), rec.clone(), stop_consumers.clone());
        consumers.push(std::thread::spawn(move || {
            crate::clients::consume(id, &b, topic, r, s)
        }));
    }
    {
        let (b, r, s, p) = (
            endpoint.clone(),
            rec.clone(),
            stop_consumers.clone(),
            opts.partitions,
        );
        consumers.push(std::thread::spawn(move || {
            crate::clients::observe_commits(&b, topic, p, r, s)
        }));
    }
    if opts.transactions {
        let (b, r, s) = (endpoint.clone(), rec.clone(), stop_producers.clone());
        producers.push(std::thread::spawn(move || {
            crate::transactions::writer(&b, r, s)
        }));
        let (b, s) = (endpoint.clone(), stop_producers.clone());
        producers.push(std::thread::spawn(move || {
            crate::transactions::transform(&b, topic, s)
        }));
        let (b, r, s) = (endpoint.clone(), rec.clone(), stop_consumers.clone());
        consumers.push(std::thread::spawn(move || {
            crate::transactions::observe(&b, r, s)
        }));
    }
    // Faulty broker count over time, for availability: (from ms, to ms, faulty).
    let mut faulty: Vec<(u64, u64, usize)> = Vec::new();
    // Brokers lost for good (`lose-broker`): never restarted.
    let mut lost = std::collections::BTreeSet::new();
    let started = Instant::now();
    for step in &steps {
        if let Some(wait) = Duration::from_millis(step.at_ms).checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let from = rec.now_ms();
        let (applied, nodes) = apply(&mut cluster, step, topic, opts.partitions, &mut lost)?;
        eprintln!(
            "strata-chaos: {:>6.1}s {} {:?}",
            started.elapsed().as_secs_f64(),
            step.kind.name(),
            nodes
        );
        rec.record(&Event::Fault {
            t_ms: from,
            kind: step.kind.name().into(),
            nodes: nodes.clone(),
        });
        if step.kind == FaultKind::LeaderCutKill {
            // Cut first, then kill the leader while cut: what it acknowledged alone is at
            // stake.
            std::thread::sleep(Duration::from_millis(step.hold_ms / 2));
            if let Some(l) = nodes.first() {
                cluster.kill(*l)?;
            }
            std::thread::sleep(Duration::from_millis(step.hold_ms / 2));
            heal(&mut cluster, &applied)?;
            if let Some(l) = nodes.first() {
                cluster.start_node(*l)?;
            }
        } else {
            std::thread::sleep(Duration::from_millis(step.hold_ms));
            heal(&mut cluster, &applied)?;
        }
        let to = rec.now_ms();
        rec.record(&Event::Heal {
            t_ms: to,
            kind: applied.kind.name().into(),
        });
        faulty.push((from, to, applied.faulty));
    }
    if let Some(wait) = Duration::from_secs(opts.duration_s).checked_sub(started.elapsed()) {
        std::thread::sleep(wait);
    }
    let load_end_ms = rec.now_ms();
    eprintln!("strata-chaos: load done; draining producers");
    stop_producers.store(true, std::sync::atomic::Ordering::Relaxed);
    // A librdkafka transactional call can wait past its timeout (seen: a transform worker in
    // send_offsets_to_transaction at the end of a 30-minute run): wait a bounded time, then
    // go on; a transaction it left open is aborted by its coordinator's timeout before the
    // final read ends.
    join_bounded(producers, "producer", Duration::from_secs(90))?;
    // Consumers read what was acknowledged last before they stop.
    std::thread::sleep(Duration::from_secs(5));
    stop_consumers.store(true, std::sync::atomic::Ordering::Relaxed);
    // A librdkafka consumer's close waits on its group (seen stuck for minutes once, at the
    // end of a 30-minute run): wait a bounded time, then go on to the final read.
    join_bounded(consumers, "consumer", Duration::from_secs(60))?;
    eprintln!("strata-chaos: final read");
    wait_live(
        &bootstrap,
        opts.brokers - lost.len(),
        Duration::from_secs(60),
    )?;
    crate::clients::final_read(
        &endpoint,
        topic,
        opts.partitions,
        &rec,
        Duration::from_secs(90),
    )?;
    if opts.transactions {
        // Longer than transaction.timeout.ms (30 s): a transaction a client left open is
        // aborted by its coordinator by then, and the last stable offset moves on.
        crate::transactions::final_read(
            &endpoint,
            topic,
            opts.partitions,
            &rec,
            Duration::from_secs(120),
        )?;
    }
    rec.flush()?;
    // Self-healing: every partition back at its replication factor, wholly in sync, on live
    // brokers only (a lost broker's replicas re-created elsewhere).
    let under_replicated = wait_fully_replicated(
        &bootstrap,
        usize::try_from(rf)?,
        &lost,
        Duration::from_secs(120),
    );
    cluster.stop();
    let events = crate::history::load(&dir.join("history.jsonl")).map_err(|e| e.to_string())?;
    let findings = checker::check(&events);
    let (availability, eligible) = availability(&events, &faulty, load_end_ms);
    let outcome = Outcome {
        findings,
        availability,
        eligible_windows: eligible,
        under_replicated,
    };
    write_report(dir, &outcome)?;
    Ok(outcome)
}

/// Joins client threads, waiting at most `limit` for all of them; one still running then is
/// left behind (reported), one that failed fails the run.
fn join_bounded(
    threads: Vec<std::thread::JoinHandle<Result<(), BoxError>>>,
    what: &str,
    limit: Duration,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + limit;
    for t in threads {
        while !t.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if t.is_finished() {
            t.join().map_err(|_| format!("a {what} panicked"))??;
        } else {
            eprintln!(
                "strata-chaos: a {what} did not stop within {} s; going on without it",
                limit.as_secs()
            );
        }
    }
    Ok(())
}

/// Availability over 1-second windows from the first fault's quiet start to the end of the
/// load: of the windows with at most one broker faulty, the fraction in which at least one
/// acks=all produce was acknowledged.
fn availability(events: &[Event], faulty: &[(u64, u64, usize)], end_ms: u64) -> (f64, u64) {
    let mut acked_in = std::collections::HashSet::new();
    for e in events {
        if let Event::Ack { t_ms, .. } = e {
            acked_in.insert(t_ms / 1000);
        }
    }
    let (mut eligible, mut available) = (0u64, 0u64);
    // The first seconds are the cluster warming up its clients; start at 3 s.
    for w in 3..end_ms / 1000 {
        let (from, to) = (w * 1000, (w + 1) * 1000);
        let worst = faulty
            .iter()
            .filter(|(f, t, _)| *f < to && *t > from)
            .map(|(_, _, n)| *n)
            .max()
            .unwrap_or(0);
        if worst <= 1 {
            eligible += 1;
            if acked_in.contains(&w) {
                available += 1;
            }
        }
    }
    (available as f64 / eligible.max(1) as f64, eligible)
}

/// Writes `findings.json`, `anomalies.txt` and `summary.txt` into `dir`.
pub fn write_report(dir: &Path, o: &Outcome) -> Result<(), BoxError> {
    std::fs::write(dir.join("findings.json"), serde_json::to_vec_pretty(o)?)?;
    let lines: Vec<String> = o
        .findings
        .anomalies
        .iter()
        .map(|a| {
            format!(
                "{:<20} partition {:>3} offset {:>8}  {}",
                a.kind.name(),
                a.partition,
                a.offset,
                a.detail
            )
        })
        .collect();
    std::fs::write(dir.join("anomalies.txt"), lines.join("\n") + "\n")?;
    std::fs::write(dir.join("summary.txt"), summary(o))?;
    Ok(())
}

/// The summary table of an outcome.
pub fn summary(o: &Outcome) -> String {
    let replication = if o.under_replicated.is_empty() {
        "every partition back at its replication factor\n".to_string()
    } else {
        format!(
            "NOT FULLY REPLICATED at the end: {}\n",
            o.under_replicated.join("; ")
        )
    };
    format!(
        "{}availability: {:.1}% of {} one-second windows with at most one broker faulty had an acknowledged acks=all produce\n{replication}verdict: {}\n",
        o.findings.table(),
        o.availability * 100.0,
        o.eligible_windows,
        if o.clean() {
            "no anomaly found"
        } else if o.findings.clean() {
            "NOT HEALED (see above)"
        } else {
            "ANOMALIES FOUND (see anomalies.txt)"
        }
    )
}

/// The run directory to use when none is given: `target/strata-chaos/<seed>`.
pub fn default_dir(seed: u64) -> PathBuf {
    PathBuf::from("target/strata-chaos").join(seed.to_string())
}
