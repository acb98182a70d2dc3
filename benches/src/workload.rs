//! `strata-bench run`: a workload from a TOML file (`benches/workloads/`) and `--set` flags,
//! against brokers this tool starts (one standalone broker or a local cluster) or any
//! `--bootstrap-servers`. Producers and consumers are librdkafka (the `rdkafka` crate).
//!
//! Three shapes of run, chosen by the workload's fields:
//! - steady (the default): producers (and consumers reading the tail) for `duration_s`;
//! - backlog (`backlog_messages > 0`): the messages are produced first, then the consumers read
//!   them from the start of the log, and the figure is their catch-up rate;
//! - failover (`kill_leader_every_s > 0`, a cluster this tool starts): a steady run in which the
//!   leader of partition 0 is SIGKILLed every so often and restarted once a new leader acked.
//!
//! Produce latency is measured from each message's *intended* send time when a rate is set
//! (so a stalled broker is charged for every message it delayed: no coordinated omission), from
//! its enqueue time when unthrottled. End-to-end latency is from the send time written into the
//! first 8 bytes of each payload to its arrival at a consumer. Baselines are measured in the same
//! run (see [`crate::baseline`]), and the report (table, JSON, PNG charts) gives every figure as a
//! ratio against them.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::clients::{self, PendingKill, Shared};
use crate::local_cluster::{Node, bootstrap, start_nodes};
use crate::report::{self, Failover, Kill, Point, Report, Resources};
use crate::resources::Tracker;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A workload. Every field has a default, so a file names only what it changes.
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Workload {
    /// Shown in reports.
    pub name: String,
    /// Brokers to start (1: standalone; 3: a cluster); ignored with `--bootstrap-servers`.
    pub brokers: usize,
    /// Broker settings (`--set` of each started broker), e.g. `["log.flush.policy=always"]`.
    pub broker_settings: Vec<String>,
    /// Partitions of the topic.
    pub partitions: i32,
    /// Replication factor of the topic.
    pub replication_factor: i32,
    /// Message value size in bytes (at least 8: the send time is written in front).
    pub message_bytes: usize,
    /// Distinct keys (0: no keys).
    pub keys: u64,
    /// Producer clients.
    pub producers: usize,
    /// Messages per second over all producers; 0: as fast as they go.
    pub rate: u64,
    /// `acks`: 0, 1 or all.
    pub acks: String,
    /// librdkafka `enable.idempotence`.
    pub idempotence: bool,
    /// librdkafka `linger.ms`.
    pub linger_ms: u64,
    /// librdkafka `batch.size`.
    pub batch_bytes: usize,
    /// `compression.type`.
    pub compression: String,
    /// Consumers in one group (0: none).
    pub consumers: usize,
    /// Measured seconds (a steady or failover run).
    pub duration_s: u64,
    /// Seconds run before measuring.
    pub warmup_s: u64,
    /// A backlog run: produce this many messages first, then measure the consumers reading
    /// them from the start (0: a steady run).
    pub backlog_messages: u64,
    /// A failover run: SIGKILL the leader of partition 0 this often (0: never). Needs a
    /// cluster this tool starts.
    pub kill_leader_every_s: u64,
}

impl Default for Workload {
    fn default() -> Workload {
        Workload {
            name: "unnamed".into(),
            brokers: 1,
            broker_settings: Vec::new(),
            partitions: 1,
            replication_factor: 1,
            message_bytes: 1024,
            keys: 0,
            producers: 1,
            rate: 0,
            acks: "all".into(),
            idempotence: false,
            linger_ms: 5,
            batch_bytes: 1 << 20,
            compression: "none".into(),
            consumers: 0,
            duration_s: 20,
            warmup_s: 3,
            backlog_messages: 0,
            kill_leader_every_s: 0,
        }
    }
}

/// Options of `run`.
#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// The workload file.
    #[arg(long)]
    workload: PathBuf,
    /// Overrides one workload field: `--set rate=20000`. Repeatable.
    #[arg(long = "set", value_name = "FIELD=VALUE")]
    set: Vec<String>,
    /// Run against these brokers instead of starting Strata.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Path of the `strata` binary (default: next to this tool).
    #[arg(long)]
    strata_bin: Option<PathBuf>,
    /// Where to write the JSON report; the charts go beside it (default:
    /// `target/strata-bench/<file stem>.json`).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn load(args: &RunArgs) -> Result<Workload, BoxError> {
    let text =
        std::fs::read_to_string(&args.workload).map_err(|e| format!("{:?}: {e}", args.workload))?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|e| format!("{:?}: {e}", args.workload))?;
    for kv in &args.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("--set expects FIELD=VALUE, got {kv:?}"))?;
        // A value that parses as TOML keeps its type (numbers); anything else is a string.
        let value = format!("v = {v}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|t| t.get("v").cloned())
            .unwrap_or_else(|| toml::Value::String(v.to_string()));
        table.insert(k.trim().to_string(), value);
    }
    let w: Workload = toml::Value::Table(table)
        .try_into()
        .map_err(|e| format!("{:?}: {e}", args.workload))?;
    if w.message_bytes < 8 {
        return Err("message_bytes must be at least 8".into());
    }
    if w.backlog_messages > 0 && w.consumers == 0 {
        return Err("a backlog workload needs consumers".into());
    }
    if w.backlog_messages > 0 && w.kill_leader_every_s > 0 {
        return Err("a workload is either a backlog or a failover run, not both".into());
    }
    if w.kill_leader_every_s > 0
        && (args.bootstrap_servers.is_some() || w.brokers < 3 || w.replication_factor < 2)
    {
        return Err(
            "a failover workload needs a cluster this tool starts (brokers >= 3, replication_factor >= 2, no --bootstrap-servers)"
                .into(),
        );
    }
    Ok(w)
}

/// The brokers of a run: started by this tool (with usage tracking) or external.
struct Brokers {
    nodes: Arc<Mutex<Vec<Node>>>,
    trackers: Vec<Tracker>,
    metrics: Vec<String>,
}

impl Brokers {
    fn pids(&self) -> Vec<Option<u32>> {
        match self.nodes.lock() {
            Ok(n) => n.iter().map(|n| Some(n.child.id())).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn restart_tracking(&mut self) {
        self.trackers = self.pids().into_iter().map(Tracker::new).collect();
    }

    fn sample(&mut self) {
        let pids = self.pids();
        for (t, pid) in self.trackers.iter_mut().zip(pids) {
            t.sample(pid);
        }
    }

    /// A counter summed over the brokers, per broker so that a restart (which zeroes its
    /// counters) can be told from progress.
    fn counters(&self, name: &str) -> Vec<f64> {
        self.metrics
            .iter()
            .map(|m| strata_testkit::metric(m, name).unwrap_or(0.0))
            .collect()
    }
}

/// Growth of per-broker counters from `before` to `after`; a broker whose counter went down
/// was restarted and counts from zero.
fn growth(before: &[f64], after: &[f64]) -> f64 {
    before
        .iter()
        .zip(after)
        .map(|(b, a)| if a >= b { a - b } else { *a })
        .sum()
}

/// One-second samples of the counters, printed as the progress line.
struct Sampler {
    start: Instant,
    last: Instant,
    last_acked: u64,
    last_received: u64,
    message_bytes: f64,
    produce: Histogram<u64>,
    e2e: Histogram<u64>,
    series: Vec<Point>,
}

impl Sampler {
    fn new(shared: &Shared, message_bytes: usize) -> Sampler {
        let now = Instant::now();
        // What was recorded during warm-up is not measured.
        for h in [&shared.produce_latency, &shared.e2e_latency] {
            if let Ok(mut h) = h.lock() {
                h.reset();
            }
        }
        Sampler {
            start: now,
            last: now,
            last_acked: shared.acked.load(Ordering::Relaxed),
            last_received: shared.received.load(Ordering::Relaxed),
            message_bytes: message_bytes as f64,
            produce: clients::histogram(),
            e2e: clients::histogram(),
            series: Vec::new(),
        }
    }

    /// Folds in what was recorded since the last sample, without a point of its own (the
    /// clients are draining, not running).
    fn finish(&mut self, shared: &Shared) {
        for (from, into) in [
            (&shared.produce_latency, &mut self.produce),
            (&shared.e2e_latency, &mut self.e2e),
        ] {
            if let Ok(mut h) = from.lock() {
                let _ = into.add(&*h);
                h.reset();
            }
        }
    }

    fn sample(&mut self, shared: &Shared) {
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64().max(1e-9);
        let (acked, received) = (
            shared.acked.load(Ordering::Relaxed),
            shared.received.load(Ordering::Relaxed),
        );
        let interval = shared
            .produce_latency
            .lock()
            .map(|mut h| {
                let taken = h.clone();
                h.reset();
                taken
            })
            .unwrap_or_else(|_| clients::histogram());
        if let Ok(mut h) = shared.e2e_latency.lock() {
            let _ = self.e2e.add(&*h);
            h.reset();
        }
        let _ = self.produce.add(&interval);
        let produced = (acked - self.last_acked) as f64 / dt;
        let consumed = (received - self.last_received) as f64 / dt;
        let p = Point {
            t_s: now.duration_since(self.start).as_secs_f64(),
            produced_msgs_per_s: produced,
            produced_mb_per_s: produced * self.message_bytes / 1e6,
            consumed_msgs_per_s: consumed,
            consumed_mb_per_s: consumed * self.message_bytes / 1e6,
            produce_p99_ms: report::ms(&interval, 0.99),
        };
        eprintln!(
            "  {:6.1}s  {:>9.0} msgs/s  {:>7.1} MB/s  consumed {:>9.0} msgs/s  produce p99 so far {:.2} ms",
            p.t_s,
            p.produced_msgs_per_s,
            p.produced_mb_per_s,
            p.consumed_msgs_per_s,
            report::ms(&self.produce, 0.99)
        );
        self.series.push(p);
        self.last = now;
        self.last_acked = acked;
        self.last_received = received;
    }
}

/// Runs a workload and prints (and writes as JSON and PNG) its report.
pub fn run(args: RunArgs) -> Result<(), BoxError> {
    let w = load(&args)?;
    let dir = tempfile::tempdir()?;
    let nodes = match &args.bootstrap_servers {
        Some(_) => Vec::new(),
        None => {
            let bin = strata_testkit::strata_bin(args.strata_bin.as_deref())?;
            let settings: Vec<&str> = w.broker_settings.iter().map(String::as_str).collect();
            start_nodes(&bin, dir.path(), w.brokers.max(1), &settings)?
        }
    };
    let servers = args
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| bootstrap(&nodes, None));
    let metrics = nodes.iter().map(|n| n.metrics.clone()).collect();
    let mut brokers = Brokers {
        nodes: Arc::new(Mutex::new(nodes)),
        trackers: Vec::new(),
        metrics,
    };
    let topic = format!("bench-{}", clients::now_nanos() % 1_000_000_000);
    println!("workload: {} against {servers}", w.name);
    strata_testkit::create_topic(
        &servers,
        &topic,
        w.partitions,
        w.replication_factor,
        Duration::from_secs(60),
    )?;
    let mut report = if w.backlog_messages > 0 {
        backlog(&w, &servers, &topic, &mut brokers)?
    } else {
        steady(&w, &servers, &topic, &mut brokers)?
    };
    report.bootstrap_servers = servers;
    report.workload = w.clone();
    baselines(&mut report, &w, dir.path())?;
    report.print();
    let path = args.json.clone().unwrap_or_else(|| {
        let stem = args
            .workload
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workload".into());
        PathBuf::from("target/strata-bench").join(format!("{stem}.json"))
    });
    report.write(&path)?;
    Ok(())
}

/// A steady run (with leader kills for a failover workload).
fn steady(
    w: &Workload,
    servers: &str,
    topic: &str,
    brokers: &mut Brokers,
) -> Result<Report, BoxError> {
    let shared = Shared::new();
    let mut threads = Vec::new();
    for _ in 0..w.consumers {
        let (s, t, sh) = (servers.to_string(), topic.to_string(), shared.clone());
        threads.push(std::thread::spawn(move || {
            clients::consumer_loop(&s, &t, "strata-bench", false, &sh)
        }));
    }
    for _ in 0..w.producers.max(1) {
        let (s, t, sh, wl) = (
            servers.to_string(),
            topic.to_string(),
            shared.clone(),
            w.clone(),
        );
        threads.push(std::thread::spawn(move || {
            clients::producer_loop(&wl, &s, &t, &sh, None)
        }));
    }
    std::thread::sleep(Duration::from_secs(w.warmup_s));
    // Consumers must have joined their group (and be receiving) before measuring starts.
    let joined_by = Instant::now() + Duration::from_secs(60);
    while w.consumers > 0
        && shared.received.load(Ordering::Relaxed) == 0
        && Instant::now() < joined_by
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let (fsyncs0, synced0, rounds0) = (
        brokers.counters("strata_fsyncs"),
        brokers.counters("strata_batches_synced"),
        brokers.counters("strata_sync_rounds"),
    );
    // The brokers' data directories are under the temporary directory: its disk's flushes.
    let flushes0 = crate::sync_options::device_flushes(&std::env::temp_dir());
    let (acked0, received0) = (
        shared.acked.load(Ordering::Relaxed),
        shared.received.load(Ordering::Relaxed),
    );
    brokers.restart_tracking();
    let mut me = Tracker::new(None);
    let mut sampler = Sampler::new(&shared, w.message_bytes);
    shared.measuring.store(true, Ordering::Relaxed);
    let killer = (w.kill_leader_every_s > 0).then(|| {
        let (nodes, sh, s, t) = (
            brokers.nodes.clone(),
            shared.clone(),
            servers.to_string(),
            topic.to_string(),
        );
        let (every, start) = (Duration::from_secs(w.kill_leader_every_s), sampler.start);
        // No kill in the run's last 3 s: its failover could not be seen to the end.
        let last_kill =
            start + Duration::from_secs(w.duration_s).saturating_sub(Duration::from_secs(3));
        std::thread::spawn(move || kill_leaders(&nodes, &sh, &s, &t, every, start, last_kill))
    });
    while sampler.start.elapsed() < Duration::from_secs(w.duration_s) {
        std::thread::sleep(Duration::from_secs(1));
        sampler.sample(&shared);
        brokers.sample();
        me.sample(None);
    }
    let elapsed = sampler.start.elapsed().as_secs_f64();
    let acked = shared.acked.load(Ordering::Relaxed) - acked0;
    let received = shared.received.load(Ordering::Relaxed) - received0;
    let fsyncs = growth(&fsyncs0, &brokers.counters("strata_fsyncs"));
    let synced = growth(&synced0, &brokers.counters("strata_batches_synced"));
    let rounds = growth(&rounds0, &brokers.counters("strata_sync_rounds"));
    let flushes = flushes0.and_then(|a| {
        crate::sync_options::device_flushes(&std::env::temp_dir()).map(|b| b.saturating_sub(a))
    });
    brokers.sample();
    me.sample(None);
    shared.measuring.store(false, Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    let kills = match killer {
        Some(k) => k.join().map_err(|_| "the leader killer panicked")??,
        None => Vec::new(),
    };
    for t in threads {
        t.join().map_err(|_| "a client thread panicked")??;
    }
    sampler.finish(&shared);
    eprintln!();
    let mut r = Report::new("steady", elapsed, acked, w.message_bytes);
    r.received = received;
    r.produce_latency = sampler.produce;
    r.e2e_latency = (w.consumers > 0).then_some(sampler.e2e);
    r.series = sampler.series;
    r.fsyncs = (!brokers.metrics.is_empty()).then_some((fsyncs, synced));
    r.sync_rounds = (!brokers.metrics.is_empty()).then_some((rounds, flushes));
    r.resources = Resources::of(&brokers.trackers, &me, elapsed);
    r.failed_sends = shared.failed.load(Ordering::Relaxed);
    if w.kill_leader_every_s > 0 {
        r.mode = "failover".into();
        r.failover = Some(Failover::of(kills, &w.broker_settings));
    }
    Ok(r)
}

/// Kills the leader of partition 0 every `every` until `shared.stop` (none after `last_kill`):
/// waits for a full ISR, SIGKILLs the leader, waits for the first acknowledgement by a new
/// leader (recorded by the producers' delivery reports) and for a consumer to read a record
/// produced after the kill, then restarts the killed broker.
fn kill_leaders(
    nodes: &Mutex<Vec<Node>>,
    shared: &Shared,
    servers: &str,
    topic: &str,
    every: Duration,
    start: Instant,
    last_kill: Instant,
) -> Result<Vec<Kill>, BoxError> {
    let mut kills = Vec::new();
    let mut next = Instant::now() + every;
    let stopped = || shared.stop.load(Ordering::Relaxed);
    while !stopped() {
        if Instant::now() > last_kill {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        if Instant::now() < next {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let Some((leader, isr, _)) = crate::failover::leader(servers, topic) else {
            continue;
        };
        let replicas = nodes.lock().map_err(|_| "poisoned")?.len();
        if leader <= 0 || isr < replicas {
            // Not yet healed from the last kill: kill only a fully replicated partition.
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let victim = usize::try_from(leader - 1)?;
        let measured_before = shared.failovers.lock().map_or(0, |f| f.len());
        {
            let mut nodes = nodes.lock().map_err(|_| "poisoned")?;
            let node = nodes
                .get_mut(victim)
                .ok_or("leader id is not a started node")?;
            let mut kill = shared.kill.lock().map_err(|_| "poisoned")?;
            *kill = Some(PendingKill { at: Instant::now() });
            shared.kill_pending.store(true, Ordering::Release);
            if let Ok(mut r) = shared.resumed.lock() {
                *r = None;
            }
            shared
                .resume_after_nanos
                .store(crate::clients::now_nanos(), Ordering::Release);
            node.kill()?;
        }
        let at_s = start.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(30);
        while shared.kill_pending.load(Ordering::Acquire) && Instant::now() < deadline && !stopped()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        // A kill that never saw a new leader's ack stays unmeasured (reported as such).
        shared.kill_pending.store(false, Ordering::Release);
        if let Ok(mut k) = shared.kill.lock() {
            *k = None;
        }
        let first_ack = shared
            .failovers
            .lock()
            .ok()
            .filter(|f| f.len() > measured_before)
            .and_then(|f| f.last().copied());
        // The victim stays down until a consumer has read a record produced after the kill
        // (or 30 s passed): that is the consumers' failover, measured like the producers'.
        let deadline = Instant::now() + Duration::from_secs(30);
        while shared.resume_after_nanos.load(Ordering::Acquire) != 0
            && Instant::now() < deadline
            && !stopped()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        shared.resume_after_nanos.store(0, Ordering::Release);
        let resumed = shared.resumed.lock().ok().and_then(|r| *r);
        kills.push(Kill {
            at_s,
            victim: leader,
            first_ack_ms: first_ack.map(|d| d.as_secs_f64() * 1e3),
            consumer_resumed_ms: resumed.map(|d| d.as_secs_f64() * 1e3),
        });
        nodes
            .lock()
            .map_err(|_| "poisoned")?
            .get_mut(victim)
            .ok_or("victim vanished")?
            .restart()?;
        next = Instant::now() + every;
    }
    Ok(kills)
}

/// A backlog run: produce `backlog_messages`, then time the consumers reading them all.
fn backlog(
    w: &Workload,
    servers: &str,
    topic: &str,
    brokers: &mut Brokers,
) -> Result<Report, BoxError> {
    let shared = Shared::new();
    let per = w.backlog_messages.div_ceil(w.producers.max(1) as u64);
    let total = per * w.producers.max(1) as u64;
    eprintln!("  producing a backlog of {total} messages");
    let produced_at = Instant::now();
    let producers: Vec<_> = (0..w.producers.max(1))
        .map(|_| {
            let (s, t, sh, wl) = (
                servers.to_string(),
                topic.to_string(),
                shared.clone(),
                w.clone(),
            );
            std::thread::spawn(move || clients::producer_loop(&wl, &s, &t, &sh, Some(per)))
        })
        .collect();
    for p in producers {
        p.join().map_err(|_| "a producer panicked")??;
    }
    let produce_s = produced_at.elapsed().as_secs_f64();
    let acked = shared.acked.load(Ordering::Relaxed);
    if acked < total {
        return Err(format!("only {acked} of {total} backlog messages were acknowledged").into());
    }
    eprintln!(
        "  backlog produced in {produce_s:.1} s ({:.0} msgs/s); consumers start from the beginning",
        acked as f64 / produce_s
    );
    brokers.restart_tracking();
    let mut me = Tracker::new(None);
    let mut sampler = Sampler::new(&shared, w.message_bytes);
    shared.measuring.store(true, Ordering::Relaxed);
    let consumers: Vec<_> = (0..w.consumers)
        .map(|_| {
            let (s, t, sh) = (servers.to_string(), topic.to_string(), shared.clone());
            std::thread::spawn(move || {
                clients::consumer_loop(&s, &t, "strata-bench-backlog", true, &sh)
            })
        })
        .collect();
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(600);
    while shared.received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
        if first.is_none() && shared.received.load(Ordering::Relaxed) > 0 {
            first = Some(Instant::now());
        }
        if sampler.last.elapsed() >= Duration::from_secs(1) {
            sampler.sample(&shared);
            brokers.sample();
            me.sample(None);
        }
    }
    let elapsed = sampler.start.elapsed().as_secs_f64();
    let received = shared.received.load(Ordering::Relaxed);
    brokers.sample();
    me.sample(None);
    shared.stop.store(true, Ordering::Relaxed);
    for c in consumers {
        c.join().map_err(|_| "a consumer panicked")??;
    }
    sampler.sample(&shared);
    eprintln!();
    if received < total {
        return Err(
            format!("consumers read {received} of {total} backlog messages in 600 s").into(),
        );
    }
    let first = first.map_or(0.0, |f| f.duration_since(sampler.start).as_secs_f64());
    let mut r = Report::new("backlog", elapsed, acked, w.message_bytes);
    r.received = received;
    r.backlog = Some(report::Backlog {
        produce_s,
        first_message_s: first,
        catch_up_s: elapsed,
        consume_msgs_per_s: received as f64 / (elapsed - first).max(1e-9),
        consume_mb_per_s: received as f64 * w.message_bytes as f64
            / (elapsed - first).max(1e-9)
            / 1e6,
    });
    r.produce_latency = sampler.produce;
    r.series = sampler.series;
    r.resources = Resources::of(&brokers.trackers, &me, elapsed);
    r.failed_sends = shared.failed.load(Ordering::Relaxed);
    Ok(r)
}

/// Measures the baselines for `r` in this run, on the same disk and loopback.
fn baselines(r: &mut Report, w: &Workload, dir: &Path) -> Result<(), BoxError> {
    let bytes = r.bytes();
    if r.backlog.is_some() {
        let consumed = r.received as f64 * w.message_bytes as f64;
        let d = crate::baseline::sendfile(dir, consumed as u64)?;
        r.baselines.sendfile_mb_per_s = Some(consumed / d.as_secs_f64() / 1e6);
        return Ok(());
    }
    if bytes == 0 {
        return Ok(());
    }
    // The same fsync cadence as the brokers (bytes per fsync); none for external brokers.
    let sync_every = match r.fsyncs {
        Some((f, _)) if f > 0.0 => (bytes as f64 / f) as u64,
        _ => u64::MAX,
    };
    let chunk = w.message_bytes.max(1) * 64;
    let d = crate::baseline::socket_to_file(dir, bytes, chunk, sync_every.max(1))?;
    r.baselines.socket_to_file_mb_per_s = Some(bytes as f64 / d.as_secs_f64() / 1e6);
    let d = crate::baseline::disk(dir, bytes, chunk, sync_every.max(1))?;
    r.baselines.disk_mb_per_s = Some(bytes as f64 / d.as_secs_f64() / 1e6);
    Ok(())
}
