//! `strata-bench engine`: measures the engine and a plain sequential-write loop of the same
//! bytes in one run, in the same directory, and prints each figure with its ratio.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use strata_engine::io::{Backend, open_backend};
use strata_engine::{
    AppendInfo, CommitPipeline, FlushPolicy, LeaderEpoch, Log, LogConfig, Offset, ReadLimits, batch,
};

type BoxError = Box<dyn std::error::Error>;

/// Options of `strata-bench engine`.
#[derive(clap::Args, Debug)]
pub struct EngineArgs {
    /// Directory to benchmark in (default: a new temporary directory under ./bench-results).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Bytes appended per throughput run.
    #[arg(long, default_value_t = 512 << 20)]
    bytes: u64,
    /// Concurrent appenders in the flush=always run.
    #[arg(long, default_value_t = 256)]
    appenders: usize,
    /// Batch size in the flush=always run.
    #[arg(long, default_value_t = 16 << 10)]
    always_batch_bytes: usize,
    /// Log size (GiB) of the recovery run.
    #[arg(long, default_value_t = 4.0)]
    recovery_log_gib: f64,
    /// Unsynced tail (MiB) of the recovery run.
    #[arg(long, default_value_t = 64)]
    recovery_tail_mib: u64,
    /// Storage backend: auto, uring or std.
    #[arg(long, default_value = "auto")]
    backend: String,
    /// Runs of each flush=os pair (engine and baseline); the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Skip the recovery run (it writes the most data).
    #[arg(long)]
    skip_recovery: bool,
}

fn backend(name: &str) -> Result<Backend, BoxError> {
    Ok(match name {
        "auto" => Backend::Auto,
        "uring" | "io_uring" => Backend::Uring,
        "std" => Backend::Std,
        other => return Err(format!("unknown backend {other:?} (auto, uring, std)").into()),
    })
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

/// A batch of `batch_bytes` total size, records of about 1 KiB (or one record if smaller).
fn make_batch(batch_bytes: usize) -> Vec<u8> {
    let record = 1000.min(batch_bytes.saturating_sub(80)).max(1);
    let count = (batch_bytes / (record + 10)).max(1);
    let value = vec![b'x'; record];
    let recs: Vec<batch::KeyValue<'_>> =
        (0..count).map(|_| (None, Some(value.as_slice()))).collect();
    batch::build(Offset(0), 1_700_000_000_000, &recs)
}

/// The baseline: the same bytes written sequentially with pwrite, then (optionally) one
/// fdatasync every `sync_every` writes, and at the end.
fn plain_write_loop(
    path: &Path,
    chunk: &[u8],
    total: u64,
    sync_every: Option<u64>,
) -> Result<Duration, BoxError> {
    let f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .open(path)?;
    let start = Instant::now();
    let mut pos = 0u64;
    let mut writes = 0u64;
    while pos < total {
        f.write_all_at(chunk, pos)?;
        pos += chunk.len() as u64;
        writes += 1;
        if let Some(n) = sync_every
            && writes.is_multiple_of(n.max(1))
        {
            f.sync_data()?;
        }
    }
    if sync_every.is_some() {
        f.sync_data()?;
    }
    let d = start.elapsed();
    drop(f);
    std::fs::remove_file(path)?;
    Ok(d)
}

struct Env {
    root: PathBuf,
    backend: Backend,
    run: u32,
}

impl Env {
    fn fresh_dir(&mut self, name: &str) -> PathBuf {
        self.run += 1;
        self.root.join(format!("{name}-{}", self.run))
    }

    fn pipeline(&self) -> Result<CommitPipeline, BoxError> {
        Ok(CommitPipeline::start(
            open_backend(self.backend)?,
            Default::default(),
        )?)
    }
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        flush,
        max_message_bytes: 16 << 20,
        ..LogConfig::default()
    }
}

/// Appends `total` bytes of `batch`-sized batches from one appender with flush=os.
fn engine_append_os(env: &mut Env, chunk: &[u8], total: u64) -> Result<Duration, BoxError> {
    let dir = env.fresh_dir("append-os");
    let pipeline = env.pipeline()?;
    let log = Log::open(&dir, config(FlushPolicy::Os), &pipeline.handle())?;
    let template = BytesMut::from(chunk);
    let start = Instant::now();
    let mut pos = 0u64;
    let mut last = None;
    while pos < total {
        let info = log.append(template.clone(), LeaderEpoch(0))?;
        pos += chunk.len() as u64;
        last = Some(info);
    }
    let appended = start.elapsed();
    if let Some(l) = last {
        l.completion.wait_written()?;
    }
    let d = start.elapsed();
    if std::env::var_os("STRATA_BENCH_DEBUG").is_some() {
        eprintln!("appends returned after {appended:?}, all written after {d:?}");
    }
    drop(log);
    drop(pipeline);
    std::fs::remove_dir_all(&dir)?;
    Ok(d)
}

struct AlwaysResult {
    elapsed: Duration,
    fsyncs: u64,
    batches_per_fsync: f64,
}

/// `appenders` appenders each keep one batch in flight with flush=always: each waits for its
/// batch to be durable before sending the next. Driven by a few threads that each own a share
/// of the appenders and wait on them in turn.
fn engine_append_always(
    env: &mut Env,
    chunk: &[u8],
    total: u64,
    appenders: usize,
) -> Result<AlwaysResult, BoxError> {
    let dir = env.fresh_dir("append-always");
    let pipeline = env.pipeline()?;
    let stats = pipeline.stats().clone();
    let log = Arc::new(Log::open(
        &dir,
        config(FlushPolicy::Always),
        &pipeline.handle(),
    )?);
    let threads = 4.min(appenders).max(1);
    let per_thread_bytes = total / threads as u64;
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let log = log.clone();
            let template = BytesMut::from(chunk);
            let in_flight_max = appenders / threads + usize::from(t < appenders % threads);
            std::thread::spawn(move || -> Result<(), String> {
                let mut q: VecDeque<AppendInfo> = VecDeque::new();
                let mut sent = 0u64;
                while sent < per_thread_bytes || !q.is_empty() {
                    while q.len() < in_flight_max && sent < per_thread_bytes {
                        q.push_back(
                            log.append(template.clone(), LeaderEpoch(0))
                                .map_err(|e| e.to_string())?,
                        );
                        sent += template.len() as u64;
                    }
                    if let Some(done) = q.pop_front() {
                        done.completion.wait_durable().map_err(|e| e.to_string())?;
                    }
                }
                Ok(())
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "appender panicked")??;
    }
    let elapsed = start.elapsed();
    let fsyncs = stats.fsyncs.load(Ordering::Relaxed);
    let batches_per_fsync = stats.batches_per_fsync();
    drop(log);
    drop(pipeline);
    std::fs::remove_dir_all(&dir)?;
    Ok(AlwaysResult {
        elapsed,
        fsyncs,
        batches_per_fsync,
    })
}

/// Fills a log with flush=os and returns it (for read and lookup runs).
fn fill(
    env: &mut Env,
    name: &str,
    chunk: &[u8],
    total: u64,
) -> Result<(PathBuf, CommitPipeline, Log), BoxError> {
    let dir = env.fresh_dir(name);
    let pipeline = env.pipeline()?;
    let log = Log::open(&dir, config(FlushPolicy::Os), &pipeline.handle())?;
    let template = BytesMut::from(chunk);
    let mut pos = 0u64;
    while pos < total {
        log.append(template.clone(), LeaderEpoch(0))?;
        pos += chunk.len() as u64;
    }
    log.flush()?;
    Ok((dir, pipeline, log))
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn row(name: &str, value: String, ratio: Option<(f64, &str)>) {
    match ratio {
        Some((r, base)) => println!("{name:<52} {value:>18}   {r:>6.2}x {base}"),
        None => println!("{name:<52} {value:>18}"),
    }
}

/// Runs every engine measurement and prints the table.
pub fn run(args: EngineArgs) -> Result<(), BoxError> {
    let root = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::fs::create_dir_all("bench-results")?;
            tempfile::Builder::new()
                .prefix("engine-")
                .tempdir_in("bench-results")?
                .keep()
        }
    };
    std::fs::create_dir_all(&root)?;
    let mut env = Env {
        root: root.clone(),
        backend: backend(&args.backend)?,
        run: 0,
    };
    let storage_name = open_backend(env.backend)?.name();
    println!(
        "strata-bench engine: dir {root:?}, backend {storage_name}, {} MiB per run",
        args.bytes >> 20
    );
    println!("{}", filesystem_note(&root));
    println!();

    // 1. Append throughput, flush=os, against the plain write loop, for 1 KiB and 64 KiB batches.
    // The machine is shared and writeback of earlier runs interferes, so each pair runs
    // `--repeat` times back to back and the median of each is reported.
    for batch_bytes in [1usize << 10, 64 << 10] {
        let chunk = make_batch(batch_bytes);
        let mut bases = Vec::new();
        let mut engs = Vec::new();
        for _ in 0..args.repeat.max(1) {
            bases.push(plain_write_loop(
                &root.join("baseline.bin"),
                &chunk,
                args.bytes,
                None,
            )?);
            engs.push(engine_append_os(&mut env, &chunk, args.bytes)?);
        }
        let (base, eng) = (median(bases), median(engs));
        let label = format!("{} KiB batches", batch_bytes >> 10);
        row(
            &format!("plain write loop, {label}"),
            format!("{:.0} MB/s", mbps(args.bytes, base)),
            None,
        );
        row(
            &format!("engine append flush=os, {label}"),
            format!("{:.0} MB/s", mbps(args.bytes, eng)),
            Some((
                base.as_secs_f64() / eng.as_secs_f64(),
                "of plain write loop (target >= 0.8)",
            )),
        );
    }

    // 2. flush=always with many appenders, one batch in flight each.
    let chunk = make_batch(args.always_batch_bytes);
    let always_bytes = args.bytes / 2;
    let os = engine_append_os(&mut env, &chunk, always_bytes)?;
    let always = engine_append_always(&mut env, &chunk, always_bytes, args.appenders)?;
    let batches_per_fsync = always.batches_per_fsync.max(1.0).round() as u64;
    let synced_base = plain_write_loop(
        &root.join("baseline.bin"),
        &chunk,
        always_bytes,
        Some(batches_per_fsync),
    )?;
    let label = format!(
        "{} appenders x {} KiB",
        args.appenders,
        args.always_batch_bytes >> 10
    );
    row(
        &format!("engine append flush=os, {label}"),
        format!("{:.0} MB/s", mbps(always_bytes, os)),
        None,
    );
    row(
        &format!("engine append flush=always, {label}"),
        format!("{:.0} MB/s", mbps(always_bytes, always.elapsed)),
        Some((
            os.as_secs_f64() / always.elapsed.as_secs_f64(),
            "of flush=os (target >= 0.5)",
        )),
    );
    row(
        "  fdatasyncs per second",
        format!("{:.0}", always.fsyncs as f64 / always.elapsed.as_secs_f64()),
        None,
    );
    row(
        "  batches per fdatasync",
        format!("{:.1}", always.batches_per_fsync),
        Some((always.batches_per_fsync / 32.0, "of target 32")),
    );
    row(
        &format!("plain write loop + fdatasync every {batches_per_fsync} writes"),
        format!("{:.0} MB/s", mbps(always_bytes, synced_base)),
        Some((
            synced_base.as_secs_f64() / always.elapsed.as_secs_f64(),
            "engine flush=always vs this",
        )),
    );

    // 3. Reads: sequential, through the file slice, against reading the file directly.
    let read_bytes = args.bytes / 2;
    let chunk = make_batch(1 << 10);
    let (dir, pipeline, log) = fill(&mut env, "read", &chunk, read_bytes)?;
    let start = Instant::now();
    let mut next = log.log_start_offset();
    let mut total = 0u64;
    let mut buf = Vec::new();
    while let Some(s) = log.read(next, ReadLimits::bytes(1 << 20))?.slice {
        buf.resize(s.len(), 0);
        let n = s.file().read_at(&mut buf, s.position())?;
        total += n as u64;
        next = s.next_offset();
    }
    let eng_read = start.elapsed();
    let seg = std::fs::read_dir(&dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect::<Vec<_>>();
    let start = Instant::now();
    let mut raw_total = 0u64;
    for p in &seg {
        let f = std::fs::File::open(p)?;
        let mut pos = 0u64;
        buf.resize(1 << 20, 0);
        loop {
            let n = f.read_at(&mut buf, pos)?;
            if n == 0 {
                break;
            }
            pos += n as u64;
            raw_total += n as u64;
        }
    }
    let raw_read = start.elapsed();
    row(
        "plain file read, 1 MiB reads (page cache)",
        format!("{:.0} MB/s", mbps(raw_total, raw_read)),
        None,
    );
    row(
        "engine read, 1 MiB of whole 1 KiB batches per read",
        format!("{:.0} MB/s", mbps(total, eng_read)),
        Some((
            raw_read.as_secs_f64() / eng_read.as_secs_f64(),
            "of plain file read",
        )),
    );

    // 4. Random offset lookups (index lookup + header scan to the batch).
    let leo = log.log_end_offset().0;
    let lookups = 200_000u64;
    let mut x = 0x9e3779b97f4a7c15u64;
    let start = Instant::now();
    for _ in 0..lookups {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = Offset((x % leo as u64) as i64);
        let s = log
            .read(off, ReadLimits::bytes(1))?
            .slice
            .ok_or("lookup found nothing")?;
        assert!(s.first_offset() <= off && off < s.next_offset());
    }
    let d = start.elapsed();
    row(
        "random offset lookups (index + header scan)",
        format!("{:.0}/s", lookups as f64 / d.as_secs_f64()),
        None,
    );
    drop(log);
    drop(pipeline);
    std::fs::remove_dir_all(&dir)?;

    // 5. Recovery after an unclean shutdown, with an unsynced tail.
    if !args.skip_recovery {
        let log_bytes = (args.recovery_log_gib * (1u64 << 30) as f64) as u64;
        let tail_bytes = args.recovery_tail_mib << 20;
        let chunk = make_batch(64 << 10);
        let (dir, pipeline, log) = fill(&mut env, "recovery", &chunk, log_bytes)?;
        let template = BytesMut::from(chunk.as_slice());
        let mut pos = 0u64;
        let mut last = None;
        while pos < tail_bytes {
            last = Some(log.append(template.clone(), LeaderEpoch(0))?);
            pos += chunk.len() as u64;
        }
        if let Some(l) = last {
            l.completion.wait_written()?;
        }
        let leo = log.log_end_offset();
        drop(log); // no close(): an unclean shutdown, the tail never fsynced by the log
        drop(pipeline);
        let pipeline = env.pipeline()?;
        let start = Instant::now();
        let log = Log::open(&dir, config(FlushPolicy::Os), &pipeline.handle())?;
        let d = start.elapsed();
        if log.log_end_offset() != leo {
            return Err(format!("recovered LEO {} != {leo}", log.log_end_offset()).into());
        }
        let report = log.recovery_report().clone();
        row(
            &format!(
                "recovery, {:.1} GiB log, {} MiB unsynced tail",
                args.recovery_log_gib, args.recovery_tail_mib
            ),
            format!("{:.3} s", d.as_secs_f64()),
            Some((d.as_secs_f64(), "of target 1 s")),
        );
        row(
            "  scanned (CRC-checked) by recovery",
            format!(
                "{:.1} MiB",
                report.bytes_scanned as f64 / (1u64 << 20) as f64
            ),
            None,
        );
        row(
            "  recovery seconds per GiB of unsynced tail",
            format!(
                "{:.3}",
                d.as_secs_f64() / (tail_bytes as f64 / (1u64 << 30) as f64)
            ),
            None,
        );
        drop(log);
        drop(pipeline);
        std::fs::remove_dir_all(&dir)?;
    }
    if args.dir.is_none() {
        std::fs::remove_dir_all(&root)?;
    }
    std::io::stdout().flush()?;
    Ok(())
}

/// The disk and filesystem the figures come from, as every benchmark result must state.
fn filesystem_note(dir: &Path) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let mut best: Option<(&str, &str, &str)> = None;
    for line in mounts.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 3 && dir.starts_with(f[1]) && best.is_none_or(|b| f[1].len() >= b.1.len()) {
            best = Some((f[0], f[1], f[2]));
        }
    }
    match best {
        Some((dev, mnt, fs)) => format!(
            "filesystem: {fs} on {dev} (mounted at {mnt}); {} CPUs",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
        None => "filesystem: unknown".into(),
    }
}
