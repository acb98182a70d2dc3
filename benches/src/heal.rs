//! `strata-bench heal`: moving data between brokers, on a local four-node cluster, with a
//! client writing acks=all throughout.
//!
//! 1. A topic is filled (`--mib`, RF=3, over all four brokers).
//! 2. Scale in: `strata cluster rebalance --exclude 4 --execute --wait` drains broker 4, with
//!    or without `--throttle`. Reported: the bytes moved, the time, and the client's produce
//!    p99 before and during the move.
//! 3. Self-healing: broker 3 is SIGKILLed for good; with `broker.replacement.delay.ms=1000` the
//!    controller re-creates its replicas on the others (broker 4 among them). Reported: the time
//!    from the kill until every partition is back at three in-sync replicas, less the delay.
//!
//! The baseline, measured in the same run: the same bytes over one loopback TCP connection into
//! a file (fdatasync every 16 MiB), what a copy between two local processes costs at best.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::clients::{self, Shared};
use crate::local_cluster::{Node, bootstrap, start_nodes};
use crate::report;
use crate::workload::Workload;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options of `heal`.
#[derive(clap::Args, Debug, Clone)]
pub struct HealArgs {
    /// Path of the `strata` binary (default: next to this tool).
    #[arg(long)]
    strata_bin: Option<PathBuf>,
    /// MiB written to the topic before the moves (each broker holds about 3/4 of it).
    #[arg(long, default_value_t = 256)]
    mib: u64,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Throttle of the scale-in move, bytes per second per broker (none when absent).
    #[arg(long)]
    throttle: Option<u64>,
    /// Messages per second of the client that writes throughout (1 KiB, acks=all).
    #[arg(long, default_value_t = 1000)]
    rate: u64,
}

/// Bytes of the `.log` segments under `dir`.
fn log_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if !p.ends_with("__cluster_metadata") {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "log") {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

/// Whether every partition of every topic has 3 in-sync replicas, none on `gone`.
fn fully_replicated(servers: &str, gone: Option<i32>) -> bool {
    let Ok(c) = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("log_level", "3")
        .create::<BaseConsumer>()
    else {
        return false;
    };
    let Ok(md) = c.fetch_metadata(None, Duration::from_secs(3)) else {
        return false;
    };
    md.topics().iter().all(|t| {
        t.partitions().iter().all(|p| {
            p.replicas().len() == 3
                && p.isr().len() == 3
                && gone.is_none_or(|g| !p.replicas().contains(&g))
        })
    })
}

/// The produce p99 (ms) of what the client acknowledged since the last call.
fn p99_since(shared: &Shared) -> f64 {
    shared.produce_latency.lock().map_or(0.0, |mut h| {
        let p = report::ms(&h, 0.99);
        h.reset();
        p
    })
}

/// Runs `heal`.
pub fn run(args: HealArgs) -> Result<(), BoxError> {
    let bin = strata_testkit::strata_bin(args.strata_bin.as_deref())?;
    let dir = tempfile::tempdir()?;
    let mut nodes = start_nodes(
        &bin,
        dir.path(),
        4,
        &[
            "min.insync.replicas=2",
            "default.replication.factor=3",
            "broker.replacement.delay.ms=1000",
            "log.segment.bytes=67108864",
        ],
    )?;
    let servers = bootstrap(&nodes, None);
    std::thread::sleep(Duration::from_secs(2));
    strata_testkit::create_topic(
        &servers,
        "heal",
        args.partitions,
        3,
        Duration::from_secs(60),
    )?;
    // 1. Fill.
    let fill = Workload {
        message_bytes: 16 << 10,
        rate: 0,
        acks: "1".into(),
        linger_ms: 5,
        ..Workload::default()
    };
    let messages = (args.mib << 20) / fill.message_bytes as u64;
    let started = Instant::now();
    clients::producer_loop(&fill, &servers, "heal", &Shared::new(), Some(messages))?;
    eprintln!(
        "strata-bench heal: {} MiB written in {:.1} s",
        args.mib,
        started.elapsed().as_secs_f64()
    );
    // The client that writes throughout.
    let client = Workload {
        message_bytes: 1024,
        rate: args.rate,
        acks: "all".into(),
        linger_ms: 1,
        ..Workload::default()
    };
    let shared = Shared::new();
    shared.measuring.store(true, Ordering::Relaxed);
    let writer = {
        let (s, sh, w) = (servers.clone(), shared.clone(), client.clone());
        std::thread::spawn(move || clients::producer_loop(&w, &s, "heal", &sh, None))
    };
    std::thread::sleep(Duration::from_secs(3));
    let _ = p99_since(&shared);
    std::thread::sleep(Duration::from_secs(5));
    let p99_before = p99_since(&shared);

    // 2. Scale in: drain broker 4.
    let drained_bytes = log_bytes(&dir.path().join("node-4"));
    let mut cmd = Command::new(&bin);
    cmd.args([
        "cluster",
        "rebalance",
        "--bootstrap-server",
        &servers,
        "--exclude",
        "4",
        "--execute",
        "--wait",
    ]);
    if let Some(t) = args.throttle {
        cmd.args(["--throttle", &t.to_string()]);
    }
    let started = Instant::now();
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!(
            "strata cluster rebalance failed: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let move_s = started.elapsed().as_secs_f64();
    let p99_moving = p99_since(&shared);

    // 3. Self-healing: broker 3 is lost for good.
    std::thread::sleep(Duration::from_secs(2));
    let _ = p99_since(&shared);
    let lost_bytes = log_bytes(&dir.path().join("node-3"));
    let victim: &mut Node = nodes.get_mut(2).ok_or("no node 3")?;
    let killed = Instant::now();
    victim.kill()?;
    let others = bootstrap(&nodes, Some(2));
    let deadline = Instant::now() + Duration::from_secs(600);
    while !fully_replicated(&others, Some(3)) {
        if Instant::now() > deadline {
            return Err("not fully replicated 10 minutes after the loss".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let heal_s = killed.elapsed().as_secs_f64() - 1.0;
    let p99_healing = p99_since(&shared);
    shared.stop.store(true, Ordering::Relaxed);
    writer.join().map_err(|_| "the writer panicked")??;
    let failed = shared.failed.load(Ordering::Relaxed);

    // The baseline: the same bytes over loopback into a file.
    let copy = |bytes: u64| -> Result<f64, BoxError> {
        Ok(
            crate::baseline::socket_to_file(dir.path(), bytes.max(1 << 20), 1 << 20, 16 << 20)?
                .as_secs_f64(),
        )
    };
    let (move_base, heal_base) = (copy(drained_bytes)?, copy(lost_bytes)?);
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "strata-bench heal: {} MiB over 4 brokers, RF=3, {} partitions; a client writing {} msgs/s acks=all throughout ({failed} sends failed)",
        args.mib, args.partitions, args.rate
    );
    println!(
        "  scale in (drain broker 4{}): {:.0} MB in {move_s:.1} s = {:.0} MB/s; loopback copy of the same bytes {move_base:.2} s ({:.1}x); produce p99 {p99_before:.1} ms before, {p99_moving:.1} ms during",
        args.throttle
            .map_or(String::new(), |t| format!(", throttled to {t} B/s")),
        mb(drained_bytes),
        mb(drained_bytes) / move_s.max(1e-9),
        move_s / move_base.max(1e-9),
    );
    println!(
        "  broker 3 lost for good: every partition back at 3 in-sync replicas {heal_s:.1} s after the 1 s replacement delay; {:.0} MB re-created = {:.0} MB/s; loopback copy {heal_base:.2} s ({:.1}x); produce p99 {p99_healing:.1} ms during",
        mb(lost_bytes),
        mb(lost_bytes) / heal_s.max(1e-9),
        heal_s / heal_base.max(1e-9),
    );
    Ok(())
}
