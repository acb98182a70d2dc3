//! `strata-bench failover`: the time from the SIGKILL of a partition leader to the first
//! acks=all produce acknowledged by the new leader, on a local three-node cluster, as a client
//! (librdkafka) sees it. Repeated runs give a median; the baseline is the same cluster with
//! Kafka's default failure-detection timing (`broker.session.timeout.ms=9000`,
//! `broker.heartbeat.interval.ms=2000`), measured in the same invocation.
//!
//! Each run also records when the surviving brokers' metadata first names the new leader, so
//! the broker-side part of the failover can be told apart from the client's.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::local_cluster::{bootstrap, start_nodes};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options of `failover`.
#[derive(clap::Args, Debug, Clone)]
pub struct FailoverArgs {
    /// Path of the `strata` binary (default: next to this tool).
    #[arg(long)]
    strata_bin: Option<PathBuf>,
    /// Runs with Strata's default timing.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Runs with Kafka's default failure-detection timing (the baseline); 0 skips it.
    #[arg(long, default_value_t = 3)]
    baseline_runs: usize,
}

struct Printing;
impl rdkafka::ClientContext for Printing {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        eprintln!(
            "{:?} rdkafka {fac}: {log_message}",
            std::time::SystemTime::now()
        );
    }
}

/// Live brokers as `bootstrap` reports them.
fn live_brokers(bootstrap: &str) -> Option<usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(None, Duration::from_secs(2)).ok()?;
    Some(md.brokers().len())
}

/// (leader, ISR size, live brokers) of `topic`-0 as `bootstrap` reports it.
pub(crate) fn leader(bootstrap: &str, topic: &str) -> Option<(i32, usize, usize)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(2)).ok()?;
    let p = md
        .topics()
        .iter()
        .find(|t| t.name() == topic)?
        .partitions()
        .first()?;
    Some((p.leader(), p.isr().len(), md.brokers().len()))
}

/// One failover: (to the first ack by the new leader, to the new leader in metadata).
fn one_run(bin: &std::path::Path, extra: &[&str]) -> Result<(Duration, Duration), BoxError> {
    let dir = tempfile::tempdir()?;
    let mut extra_all = vec!["min.insync.replicas=2"];
    extra_all.extend_from_slice(extra);
    let mut nodes = start_nodes(bin, dir.path(), 3, &extra_all)?;
    let all = bootstrap(&nodes, None);
    let deadline = Instant::now() + Duration::from_secs(60);
    // All three registered and unfenced.
    loop {
        if live_brokers(&all) == Some(3) {
            break;
        }
        if Instant::now() > deadline {
            return Err("cluster did not form".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    strata_testkit::create_topic(&all, "failover", 1, 3, Duration::from_secs(10))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let old = loop {
        if let Some((l, isr, _)) = leader(&all, "failover")
            && l > 0
            && isr == 3
        {
            break l;
        }
        if Instant::now() > deadline {
            return Err("topic did not get a full ISR".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut pc = ClientConfig::new();
    if let Ok(d) = std::env::var("RDKAFKA_DEBUG") {
        pc.set("debug", d);
        pc.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let producer: FutureProducer<Printing> = pc
        .set("bootstrap.servers", &all)
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "60000")
        .create_with_context(Printing)?;
    for i in 0..20u64 {
        let payload = i.to_string();
        let f = producer.send(
            FutureRecord::<(), _>::to("failover").payload(&payload),
            Duration::from_secs(5),
        );
        if rt.block_on(f).is_err() {
            return Err("warm-up produce failed".into());
        }
    }
    let victim = usize::try_from(old - 1)?;
    let survivors = bootstrap(&nodes, Some(victim));
    // Watch the survivors' metadata for the new leader in parallel.
    let watcher = {
        let survivors = survivors.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < Duration::from_secs(60) {
                if let Some((l, _, _)) = leader(&survivors, "failover")
                    && l > 0
                    && l != old
                {
                    return Some(Instant::now());
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            None
        })
    };
    // A steady stream (a message every 2 ms, each acks=all) across the kill, as a
    // producing application would have; the figure is the first acknowledgement of a message
    // sent after the kill (only the new leader can give it).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, bool)>();
    let mut killed = None;
    let start = Instant::now();
    let mut i = 1000u64;
    let acked = rt.block_on(async {
        loop {
            i += 1;
            let payload = i.to_string();
            let sent = Instant::now();
            match producer.send_result(FutureRecord::<(), _>::to("failover").payload(&payload)) {
                Ok(f) => {
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let ok = matches!(f.await, Ok(Ok(_)));
                        let _ = tx.send((sent, ok));
                    });
                }
                Err((e, _)) => return Err(format!("enqueue failed: {e}")),
            }
            if killed.is_none() && start.elapsed() > Duration::from_millis(200) {
                killed = Some(Instant::now());
                nodes[victim].child.kill().map_err(|e| e.to_string())?;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
            while let Ok((sent, ok)) = rx.try_recv() {
                if let Some(k) = killed
                    && ok
                    && sent > k
                {
                    return Ok(Instant::now());
                }
            }
            if start.elapsed() > Duration::from_secs(60) {
                return Err("no produce was acknowledged after the kill".to_string());
            }
        }
    })?;
    let killed = killed.ok_or("never killed")?;
    let seen = watcher
        .join()
        .map_err(|_| "watcher panicked")?
        .ok_or("the metadata never named a new leader")?;
    Ok((acked - killed, seen.saturating_duration_since(killed)))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn series(
    bin: &std::path::Path,
    runs: usize,
    extra: &[&str],
    label: &str,
) -> Result<Duration, BoxError> {
    let mut acks = Vec::new();
    let mut metas = Vec::new();
    for r in 0..runs {
        let (ack, meta) = one_run(bin, extra)?;
        println!(
            "  {label} run {}: first ack by the new leader {:.0} ms after the kill (new leader in metadata at {:.0} ms)",
            r + 1,
            ack.as_secs_f64() * 1e3,
            meta.as_secs_f64() * 1e3
        );
        acks.push(ack);
        metas.push(meta);
    }
    let m = median(&mut acks);
    println!(
        "{label}: median {:.0} ms to the first acks=all ack (min {:.0}, max {:.0}); median {:.0} ms to the new leader in metadata",
        m.as_secs_f64() * 1e3,
        acks.first().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        acks.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
        median(&mut metas).as_secs_f64() * 1e3
    );
    Ok(m)
}

/// Runs the failover benchmark.
pub fn run(args: FailoverArgs) -> Result<(), BoxError> {
    let bin = strata_testkit::strata_bin(args.strata_bin.as_deref())?;
    println!("failover: 3 nodes, rf=3, min.insync.replicas=2, SIGKILL of the partition leader");
    let strata = series(&bin, args.runs.max(1), &[], "strata defaults")?;
    if args.baseline_runs > 0 {
        let kafka = series(
            &bin,
            args.baseline_runs,
            &[
                "broker.session.timeout.ms=9000",
                "broker.heartbeat.interval.ms=2000",
            ],
            "kafka default timing",
        )?;
        println!(
            "ratio: strata failover takes {:.2}x the time of the same cluster with Kafka's default timing",
            strata.as_secs_f64() / kafka.as_secs_f64().max(1e-9)
        );
    }
    Ok(())
}
