//! `strata-bench run`: a workload from a TOML file (`benches/workloads/`) and `--set` flags,
//! against brokers this tool starts (one standalone broker or a local cluster) or any
//! `--bootstrap-servers`. Producers and consumers are librdkafka (the `rdkafka` crate).
//!
//! Produce latency is measured from each message's *intended* send time when a rate is set
//! (so a stalled broker is charged for every message it delayed: no coordinated omission), from
//! its enqueue time when unthrottled. End-to-end latency is from the send time written into the
//! first 8 bytes of each payload to its arrival at a consumer. The baseline, measured in the
//! same run, is the same bytes over one loopback TCP connection into a file with an fdatasync
//! at the broker's measured cadence.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::local_cluster::{Node, bootstrap, start_nodes, strata_bin};

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
    /// librdkafka `linger.ms`.
    pub linger_ms: u64,
    /// librdkafka `batch.size`.
    pub batch_bytes: usize,
    /// `compression.type`.
    pub compression: String,
    /// Consumers in one group (0: none).
    pub consumers: usize,
    /// Measured seconds.
    pub duration_s: u64,
    /// Seconds run before measuring.
    pub warmup_s: u64,
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
            linger_ms: 5,
            batch_bytes: 1 << 20,
            compression: "none".into(),
            consumers: 0,
            duration_s: 20,
            warmup_s: 3,
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
    /// Where to write the JSON report (default: `target/strata-bench/<file stem>.json`).
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
    Ok(w)
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Microseconds, 1 µs to 2 minutes, 3 significant digits.
fn histogram() -> Result<Histogram<u64>, BoxError> {
    Ok(Histogram::new_with_bounds(1, 120_000_000, 3)?)
}

/// What producers and consumers share while running.
struct Shared {
    measuring: AtomicBool,
    stop: AtomicBool,
    sent: AtomicU64,
    acked: AtomicU64,
    failed: AtomicU64,
    received: AtomicU64,
    produce_latency: Mutex<Histogram<u64>>,
    e2e_latency: Mutex<Histogram<u64>>,
}

/// Records each delivery report: latency from the message's intended send time.
struct Reports {
    shared: Arc<Shared>,
}

impl rdkafka::ClientContext for Reports {}

impl rdkafka::producer::ProducerContext for Reports {
    /// The intended send time, and whether the message was sent while measuring.
    type DeliveryOpaque = Box<(Instant, bool)>;

    fn delivery(
        &self,
        result: &rdkafka::producer::DeliveryResult<'_>,
        opaque: Self::DeliveryOpaque,
    ) {
        let (intended, measured) = *opaque;
        if result.is_ok() {
            self.shared.acked.fetch_add(1, Ordering::Relaxed);
            if measured && let Ok(mut h) = self.shared.produce_latency.lock() {
                let _ = h.record((intended.elapsed().as_micros() as u64).max(1));
            }
        } else {
            self.shared.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn producer_loop(
    w: &Workload,
    bootstrap: &str,
    topic: &str,
    shared: &Arc<Shared>,
) -> Result<(), BoxError> {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    // librdkafka's own thread serves the delivery reports; this one paces and enqueues.
    let producer: ThreadedProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", &w.acks)
        .set("linger.ms", w.linger_ms.to_string())
        .set("batch.size", w.batch_bytes.to_string())
        .set("compression.type", &w.compression)
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create_with_context(Reports {
            shared: shared.clone(),
        })?;
    let per_producer = w.rate as f64 / w.producers.max(1) as f64;
    let mut payload = vec![b'x'; w.message_bytes];
    let start = Instant::now();
    let mut i: u64 = 0;
    while !shared.stop.load(Ordering::Relaxed) {
        // The intended send time at a fixed rate; now when unthrottled.
        let intended = if per_producer > 0.0 {
            let t = start + Duration::from_secs_f64(i as f64 / per_producer);
            if let Some(wait) = t.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            t
        } else {
            Instant::now()
        };
        if let Some(stamp) = payload.get_mut(..8) {
            stamp.copy_from_slice(&now_nanos().to_be_bytes());
        }
        let key = (w.keys > 0).then(|| (i % w.keys).to_string());
        let opaque = Box::new((intended, shared.measuring.load(Ordering::Relaxed)));
        let mut rec = BaseRecord::with_opaque_to(topic, opaque).payload(&payload);
        if let Some(k) = key.as_deref() {
            rec = rec.key(k);
        }
        match producer.send(rec) {
            Ok(()) => {
                shared.sent.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                _,
            )) => std::thread::sleep(Duration::from_millis(1)),
            Err((e, _)) => return Err(e.into()),
        }
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

fn consumer_loop(bootstrap: &str, topic: &str, shared: &Shared) -> Result<(), BoxError> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strata-bench")
        .set("auto.offset.reset", "latest")
        .set("enable.auto.commit", "true")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    c.subscribe(&[topic])?;
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        shared.received.fetch_add(1, Ordering::Relaxed);
        if let Some(stamp) = m.payload().and_then(|p| p.get(..8))
            && shared.measuring.load(Ordering::Relaxed)
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(stamp);
            let sent = u64::from_be_bytes(b);
            let us = now_nanos().saturating_sub(sent) / 1000;
            if let Ok(mut h) = shared.e2e_latency.lock() {
                let _ = h.record(us.max(1));
            }
        }
    }
    Ok(())
}

fn create_topic(bootstrap: &str, w: &Workload, topic: &str) -> Result<(), BoxError> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let res = rt.block_on(admin.create_topics(
            &[NewTopic::new(
                topic,
                w.partitions,
                TopicReplication::Fixed(w.replication_factor),
            )],
            &AdminOptions::new(),
        ))?;
        match res.into_iter().next() {
            Some(Ok(_)) | None => return Ok(()),
            Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => return Ok(()),
            // A cluster that is still forming: not enough live brokers yet.
            Some(Err((_, e))) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Some(Err((t, e))) => return Err(format!("creating {t}: {e}").into()),
        }
    }
}

/// p50, p99, p99.9 and max of a microsecond histogram, in milliseconds.
#[derive(serde::Serialize)]
struct Percentiles {
    p50: f64,
    p99: f64,
    p999: f64,
    max: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        Percentiles {
            p50: ms(h, 0.5),
            p99: ms(h, 0.99),
            p999: ms(h, 0.999),
            max: h.max() as f64 / 1000.0,
        }
    }
}

impl std::fmt::Display for Percentiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}",
            self.p50, self.p99, self.p999, self.max
        )
    }
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn broker_counter(nodes: &[Node], name: &str) -> f64 {
    nodes
        .iter()
        .filter_map(|n| crate::kafka::metric(&n.metrics, name))
        .sum()
}

/// Runs a workload and prints (and writes as JSON) its report.
pub fn run(args: RunArgs) -> Result<(), BoxError> {
    let w = load(&args)?;
    let dir = tempfile::tempdir()?;
    let nodes = match &args.bootstrap_servers {
        Some(_) => Vec::new(),
        None => {
            let bin = strata_bin(args.strata_bin.as_ref())?;
            let settings: Vec<&str> = w.broker_settings.iter().map(String::as_str).collect();
            start_nodes(&bin, dir.path(), w.brokers.max(1), &settings)?
        }
    };
    let servers = args
        .bootstrap_servers
        .clone()
        .unwrap_or_else(|| bootstrap(&nodes, None));
    let topic = format!("bench-{}", now_nanos() % 1_000_000_000);
    println!("workload: {} against {servers}", w.name);
    create_topic(&servers, &w, &topic)?;
    let shared = Arc::new(Shared {
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        received: AtomicU64::new(0),
        produce_latency: Mutex::new(histogram()?),
        e2e_latency: Mutex::new(histogram()?),
    });
    let mut threads = Vec::new();
    for _ in 0..w.consumers {
        let (s, t, sh) = (servers.clone(), topic.clone(), shared.clone());
        threads.push(std::thread::spawn(move || consumer_loop(&s, &t, &sh)));
    }
    for _ in 0..w.producers.max(1) {
        let (s, t, sh, wl) = (servers.clone(), topic.clone(), shared.clone(), w.clone());
        threads.push(std::thread::spawn(move || producer_loop(&wl, &s, &t, &sh)));
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
    let (acked0, received0) = (
        shared.acked.load(Ordering::Relaxed),
        shared.received.load(Ordering::Relaxed),
    );
    let (fsyncs0, synced0) = (
        broker_counter(&nodes, "strata_fsyncs"),
        broker_counter(&nodes, "strata_batches_synced"),
    );
    shared.measuring.store(true, Ordering::Relaxed);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(w.duration_s) {
        std::thread::sleep(Duration::from_secs(1));
        let secs = start.elapsed().as_secs_f64();
        let acked = shared.acked.load(Ordering::Relaxed) - acked0;
        let p99 = shared
            .produce_latency
            .lock()
            .map(|h| ms(&h, 0.99))
            .unwrap_or(0.0);
        eprintln!(
            "  {secs:5.1}s  {:>9.0} msgs/s  {:>7.1} MB/s  produce p99 {p99:.2} ms   ",
            acked as f64 / secs,
            acked as f64 * w.message_bytes as f64 / secs / 1e6,
        );
    }
    let elapsed = start.elapsed().as_secs_f64();
    let acked = shared.acked.load(Ordering::Relaxed) - acked0;
    let received = shared.received.load(Ordering::Relaxed) - received0;
    let fsyncs = broker_counter(&nodes, "strata_fsyncs") - fsyncs0;
    let synced = broker_counter(&nodes, "strata_batches_synced") - synced0;
    shared.measuring.store(false, Ordering::Relaxed);
    shared.stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "a client thread panicked")??;
    }
    eprintln!();
    let bytes = acked as f64 * w.message_bytes as f64;
    let mbps = bytes / elapsed / 1e6;
    // Baseline: the same bytes over loopback TCP into a file, fdatasync at the broker's cadence.
    let sync_every = if fsyncs > 0.0 {
        (bytes / fsyncs) as u64
    } else {
        u64::MAX
    };
    let baseline = crate::kafka::socket_to_file_baseline(
        dir.path(),
        bytes as u64,
        w.message_bytes.max(1) * 64,
        sync_every.max(1),
    )
    .map_err(|e| e.to_string())?;
    let baseline_mbps = bytes / baseline.as_secs_f64() / 1e6;
    let pl = shared
        .produce_latency
        .lock()
        .map_err(|_| "poisoned")?
        .clone();
    let el = shared.e2e_latency.lock().map_err(|_| "poisoned")?.clone();
    println!(
        "throughput: {:.0} msgs/s, {mbps:.1} MB/s ({:.2}x the raw socket into a file at the same fsync cadence, {baseline_mbps:.1} MB/s)",
        acked as f64 / elapsed,
        mbps / baseline_mbps.max(1e-9)
    );
    let (pl, el) = (Percentiles::of(&pl), Percentiles::of(&el));
    println!("produce latency ms: {pl}");
    if w.consumers > 0 {
        println!("end-to-end latency ms: {el}  ({received} received)");
    }
    if !nodes.is_empty() {
        println!(
            "brokers: {:.0} fsyncs/s, {:.1} batches per fsync",
            fsyncs / elapsed,
            if fsyncs > 0.0 { synced / fsyncs } else { 0.0 }
        );
    }
    let failed = shared.failed.load(Ordering::Relaxed);
    if failed > 0 {
        println!("failed sends: {failed}");
    }
    let report = serde_json::json!({
        "workload": w,
        "bootstrap_servers": servers,
        "seconds": elapsed,
        "msgs_per_s": acked as f64 / elapsed,
        "mb_per_s": mbps,
        "baseline_socket_to_file_mb_per_s": baseline_mbps,
        "ratio_to_baseline": mbps / baseline_mbps.max(1e-9),
        "produce_latency_ms": pl,
        "e2e_latency_ms": el,
        "e2e_received": received,
        "fsyncs_per_s": fsyncs / elapsed,
        "batches_per_fsync": if fsyncs > 0.0 { synced / fsyncs } else { 0.0 },
        "failed_sends": failed,
    });
    let path = args.json.clone().unwrap_or_else(|| {
        let stem = args
            .workload
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workload".into());
        PathBuf::from("target/strata-bench").join(format!("{stem}.json"))
    });
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
    println!("report: {}", path.display());
    Ok(())
}
