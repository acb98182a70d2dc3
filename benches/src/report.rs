//! The report of a workload run: the table printed at the end, the JSON file, and the PNG
//! charts beside it. Every throughput is also given as a ratio against the baselines measured
//! in the same run.

use std::path::Path;

use hdrhistogram::Histogram;

use crate::chart::{self, Line};
use crate::resources::Tracker;
use crate::workload::Workload;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `q` quantile of a microsecond histogram, in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// p50, p99, p99.9 and max of a microsecond histogram, in milliseconds.
#[derive(Debug, serde::Serialize)]
pub struct Percentiles {
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

/// The latency percentile curve: (nines, ms) with nines = `-log10(1 - q)`, up to 99.999.
fn curve(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=50)
        .map(|i| {
            let nines = f64::from(i) / 10.0;
            (nines, ms(h, 1.0 - 10f64.powf(-nines)))
        })
        .collect()
}

/// One second of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Point {
    /// Seconds since measuring started.
    pub t_s: f64,
    pub produced_msgs_per_s: f64,
    pub produced_mb_per_s: f64,
    pub consumed_msgs_per_s: f64,
    pub consumed_mb_per_s: f64,
    /// p99 of the produce latency of this second alone.
    pub produce_p99_ms: f64,
}

/// Brokers' and clients' CPU and memory over the measured window.
#[derive(Debug, Default, serde::Serialize)]
pub struct Resources {
    /// CPU used by each started broker, in cores (1.0 = one core busy all the time).
    broker_cpu_cores: Vec<f64>,
    /// Peak resident memory of each started broker, in MB.
    broker_peak_rss_mb: Vec<f64>,
    /// CPU used by this tool (the librdkafka clients), in cores.
    client_cpu_cores: f64,
}

impl Resources {
    /// Usage of the trackers over `elapsed` seconds.
    pub fn of(brokers: &[Tracker], me: &Tracker, elapsed: f64) -> Resources {
        Resources {
            broker_cpu_cores: brokers.iter().map(|t| t.cpu_s() / elapsed).collect(),
            broker_peak_rss_mb: brokers
                .iter()
                .map(|t| t.peak_rss_bytes as f64 / 1e6)
                .collect(),
            client_cpu_cores: me.cpu_s() / elapsed,
        }
    }
}

/// One SIGKILL of a leader in a failover run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Kill {
    /// Seconds since measuring started.
    pub at_s: f64,
    /// The broker killed.
    pub victim: i32,
    /// From the kill to the first acknowledgement of a partition-0 message meant to be sent
    /// after it; `None` when none came within 30 s.
    pub first_ack_ms: Option<f64>,
    /// From the kill to a consumer reading the first record produced after it; `None` when
    /// none did within 30 s (or the workload has no consumers).
    pub consumer_resumed_ms: Option<f64>,
}

/// The kills of a failover run and their summary.
#[derive(Debug, serde::Serialize)]
pub struct Failover {
    kills: Vec<Kill>,
    median_ms: Option<f64>,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
    unrecovered: usize,
    /// The configured failure-detection time (`broker.session.timeout.ms`): the baseline.
    detection_ms: f64,
    /// Median, min and max kill-to-consumer-resume times.
    consumer_median_ms: Option<f64>,
    consumer_min_ms: Option<f64>,
    consumer_max_ms: Option<f64>,
}

impl Failover {
    /// Summarises `kills`; the detection time is read from the brokers' settings.
    pub fn of(kills: Vec<Kill>, settings: &[String]) -> Failover {
        let mut times: Vec<f64> = kills.iter().filter_map(|k| k.first_ack_ms).collect();
        times.sort_by(f64::total_cmp);
        let detection_ms = settings
            .iter()
            .rev()
            .filter_map(|s| s.strip_prefix("broker.session.timeout.ms="))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or(600.0);
        let mut resumed: Vec<f64> = kills.iter().filter_map(|k| k.consumer_resumed_ms).collect();
        resumed.sort_by(f64::total_cmp);
        Failover {
            consumer_median_ms: resumed.get(resumed.len() / 2).copied(),
            consumer_min_ms: resumed.first().copied(),
            consumer_max_ms: resumed.last().copied(),
            unrecovered: kills.len() - times.len(),
            median_ms: times.get(times.len() / 2).copied(),
            min_ms: times.first().copied(),
            max_ms: times.last().copied(),
            kills,
            detection_ms,
        }
    }
}

/// A backlog run's catch-up.
#[derive(Debug, serde::Serialize)]
pub struct Backlog {
    /// Seconds to produce the backlog.
    pub produce_s: f64,
    /// Seconds from the consumers' start to their first message (group join).
    pub first_message_s: f64,
    /// Seconds from the consumers' start to the last message.
    pub catch_up_s: f64,
    /// Rate from the first message to the last.
    pub consume_msgs_per_s: f64,
    pub consume_mb_per_s: f64,
}

/// Baselines measured in the same run.
#[derive(Debug, Default, serde::Serialize)]
pub struct Baselines {
    /// The same bytes over loopback TCP into a file, at the brokers' fsync cadence.
    pub socket_to_file_mb_per_s: Option<f64>,
    /// The same bytes written sequentially to a file, at the brokers' fsync cadence.
    pub disk_mb_per_s: Option<f64>,
    /// The backlog's bytes sent from a page-cached file over loopback with sendfile.
    pub sendfile_mb_per_s: Option<f64>,
}

/// Everything a run found.
#[derive(Debug)]
pub struct Report {
    pub workload: Workload,
    pub bootstrap_servers: String,
    /// steady, backlog or failover.
    pub mode: String,
    pub seconds: f64,
    pub acked: u64,
    pub received: u64,
    message_bytes: usize,
    pub failed_sends: u64,
    pub produce_latency: Histogram<u64>,
    pub e2e_latency: Option<Histogram<u64>>,
    pub series: Vec<Point>,
    /// (fsyncs, batches synced) over the window, from the started brokers' metrics.
    pub fsyncs: Option<(f64, f64)>,
    /// (sync rounds of the brokers' commit pipelines, flush requests the disk completed) over
    /// the window: a round makes every due file durable at once, with one device flush when it
    /// uses syncfs. The disk's count includes anything else on the machine.
    pub sync_rounds: Option<(f64, Option<u64>)>,
    pub resources: Resources,
    pub baselines: Baselines,
    pub failover: Option<Failover>,
    pub backlog: Option<Backlog>,
}

impl Report {
    /// The brokers' CPU (all of them, in cores) per million messages per second acknowledged:
    /// what a message costs the brokers, comparable across runs whatever their rate.
    pub fn broker_cores_per_million_msgs(&self) -> Option<f64> {
        let rate = self.acked as f64 / self.seconds.max(1e-9);
        let cores: f64 = self.resources.broker_cpu_cores.iter().sum();
        (rate > 0.0 && !self.resources.broker_cpu_cores.is_empty()).then(|| cores / (rate / 1e6))
    }

    /// A report of `acked` messages of `message_bytes` over `seconds`.
    pub fn new(mode: &str, seconds: f64, acked: u64, message_bytes: usize) -> Report {
        Report {
            workload: Workload::default(),
            bootstrap_servers: String::new(),
            mode: mode.into(),
            seconds,
            acked,
            received: 0,
            message_bytes,
            failed_sends: 0,
            produce_latency: crate::clients::histogram(),
            e2e_latency: None,
            series: Vec::new(),
            fsyncs: None,
            sync_rounds: None,
            resources: Resources::default(),
            baselines: Baselines::default(),
            failover: None,
            backlog: None,
        }
    }

    /// Copies of every byte written to this machine's disk: the replication factor when this
    /// tool started the brokers (they share one disk), else 1.
    fn disk_copies(&self) -> usize {
        if self.resources.broker_cpu_cores.is_empty() {
            1
        } else {
            usize::try_from(self.workload.replication_factor)
                .unwrap_or(1)
                .clamp(1, self.resources.broker_cpu_cores.len())
        }
    }

    /// Bytes acknowledged.
    pub fn bytes(&self) -> u64 {
        self.acked * self.message_bytes as u64
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes() as f64 / self.seconds.max(1e-9) / 1e6
    }

    fn ratio(x: f64, base: Option<f64>) -> Option<f64> {
        base.filter(|b| *b > 0.0).map(|b| x / b)
    }

    /// Prints the final table.
    pub fn print(&self) {
        let mbps = self.mb_per_s();
        if let Some(b) = &self.backlog {
            println!(
                "backlog: {} messages produced in {:.1} s; consumers caught up in {:.1} s (first message after {:.2} s)",
                self.acked, b.produce_s, b.catch_up_s, b.first_message_s
            );
            println!(
                "consume throughput: {:.0} msgs/s, {:.1} MB/s",
                b.consume_msgs_per_s, b.consume_mb_per_s
            );
            if let Some(base) = self.baselines.sendfile_mb_per_s {
                println!(
                    "  {:.2}x sendfile of the same bytes from the page cache over loopback ({base:.1} MB/s)",
                    b.consume_mb_per_s / base
                );
            }
        } else {
            println!(
                "throughput: {:.0} msgs/s, {mbps:.1} MB/s",
                self.acked as f64 / self.seconds.max(1e-9)
            );
            if let Some(r) = Self::ratio(mbps, self.baselines.socket_to_file_mb_per_s) {
                println!(
                    "  {r:.2}x the raw socket into a file at the same fsync cadence ({:.1} MB/s)",
                    self.baselines.socket_to_file_mb_per_s.unwrap_or(0.0)
                );
            }
            if let Some(r) = Self::ratio(mbps, self.baselines.disk_mb_per_s) {
                println!(
                    "  {r:.2}x the raw disk, sequential writes at the same fsync cadence ({:.1} MB/s)",
                    self.baselines.disk_mb_per_s.unwrap_or(0.0)
                );
                let copies = self.disk_copies();
                if copies > 1 {
                    println!(
                        "  the {copies} brokers share this disk: {:.2}x the raw disk counting every copy",
                        r * copies as f64
                    );
                }
            }
            println!(
                "produce latency ms: {}",
                Percentiles::of(&self.produce_latency)
            );
        }
        if let Some(e) = &self.e2e_latency {
            println!(
                "end-to-end latency ms: {}  ({} received)",
                Percentiles::of(e),
                self.received
            );
        }
        if let Some((f, s)) = self.fsyncs {
            println!(
                "brokers: {:.0} fsyncs/s, {:.1} batches per fsync",
                f / self.seconds.max(1e-9),
                if f > 0.0 { s / f } else { 0.0 }
            );
        }
        if let Some((rounds, flushes)) = self.sync_rounds {
            let per_round = match flushes {
                Some(n) if rounds > 0.0 => format!("{:.2}", n as f64 / rounds),
                _ => "-".into(),
            };
            println!(
                "brokers: {:.0} sync rounds/s, {:.1} files per round; disk: {per_round} flush requests per sync round",
                rounds / self.seconds.max(1e-9),
                self.fsyncs
                    .map_or(0.0, |(f, _)| if rounds > 0.0 { f / rounds } else { 0.0 })
            );
        }
        let r = &self.resources;
        if !r.broker_cpu_cores.is_empty() {
            println!(
                "broker CPU (cores): {}; peak memory (MB): {}; clients' CPU: {:.2} cores",
                join(&r.broker_cpu_cores, 2),
                join(&r.broker_peak_rss_mb, 0),
                r.client_cpu_cores
            );
            if let Some(per_million) = self.broker_cores_per_million_msgs() {
                println!(
                    "brokers' CPU per 1M msgs/s acknowledged: {per_million:.3} cores (all brokers together)"
                );
            }
        }
        if let Some(f) = &self.failover {
            for k in &f.kills {
                println!(
                    "  kill of broker {} at {:.1} s: {}; {}",
                    k.victim,
                    k.at_s,
                    k.first_ack_ms.map_or(
                        "no acknowledgement by a new leader within 30 s".into(),
                        |m| { format!("first acks=all ack by the new leader after {m:.0} ms") }
                    ),
                    k.consumer_resumed_ms.map_or(
                        "no consumer read a later record within 30 s".into(),
                        |m| format!(
                            "a consumer read a record produced after the kill at {m:.0} ms"
                        )
                    )
                );
            }
            if let Some(m) = f.median_ms {
                println!(
                    "failover: {} kills, median {m:.0} ms from SIGKILL to the first acknowledged produce (min {:.0}, max {:.0}); {:.2}x the configured detection time ({:.0} ms)",
                    f.kills.len(),
                    f.min_ms.unwrap_or(0.0),
                    f.max_ms.unwrap_or(0.0),
                    m / f.detection_ms.max(1e-9),
                    f.detection_ms
                );
            }
            if let Some(m) = f.consumer_median_ms {
                println!(
                    "consumer failover: median {m:.0} ms from SIGKILL to reading a record produced after it (min {:.0}, max {:.0})",
                    f.consumer_min_ms.unwrap_or(0.0),
                    f.consumer_max_ms.unwrap_or(0.0),
                );
            }
            if f.unrecovered > 0 {
                println!(
                    "failover: {} kills saw no new leader within 30 s",
                    f.unrecovered
                );
            }
        }
        if self.failed_sends > 0 {
            println!("failed sends: {}", self.failed_sends);
        }
    }

    /// Writes the JSON report to `path` and the charts beside it (`<stem>-throughput.png`,
    /// `<stem>-latency.png`). A missing font costs the charts only, with a warning.
    pub fn write(&self, path: &Path) -> Result<(), BoxError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mbps = self.mb_per_s();
        let e2e = self.e2e_latency.as_ref();
        let json = serde_json::json!({
            "workload": self.workload,
            "bootstrap_servers": self.bootstrap_servers,
            "mode": self.mode,
            "seconds": self.seconds,
            "msgs_per_s": self.acked as f64 / self.seconds.max(1e-9),
            "mb_per_s": mbps,
            "baselines": self.baselines,
            "ratio_to_socket_baseline": Self::ratio(mbps, self.baselines.socket_to_file_mb_per_s),
            "ratio_to_disk_baseline": Self::ratio(mbps, self.baselines.disk_mb_per_s),
            "disk_copies": self.disk_copies(),
            "backlog": self.backlog,
            "ratio_of_consume_to_sendfile_baseline": self.backlog.as_ref().and_then(|b| Self::ratio(b.consume_mb_per_s, self.baselines.sendfile_mb_per_s)),
            "produce_latency_ms": Percentiles::of(&self.produce_latency),
            "produce_latency_curve_ms": curve(&self.produce_latency),
            "e2e_latency_ms": e2e.map(Percentiles::of),
            "e2e_latency_curve_ms": e2e.map(curve),
            "received": self.received,
            "fsyncs_per_s": self.fsyncs.map(|(f, _)| f / self.seconds.max(1e-9)),
            "batches_per_fsync": self.fsyncs.map(|(f, s)| if f > 0.0 { s / f } else { 0.0 }),
            "broker_cores_per_million_msgs_per_s": self.broker_cores_per_million_msgs(),
            "sync_rounds_per_s": self.sync_rounds.map(|(r, _)| r / self.seconds.max(1e-9)),
            "device_flushes_per_sync_round": self.sync_rounds.and_then(|(r, f)| f.map(|f| if r > 0.0 { f as f64 / r } else { 0.0 })),
            "resources": self.resources,
            "failover": self.failover,
            "failed_sends": self.failed_sends,
            "series": self.series,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json)?)?;
        println!("report: {}", path.display());
        match self.charts(path) {
            Ok(files) => {
                for f in files {
                    println!("chart: {}", f.display());
                }
            }
            Err(e) => eprintln!("strata-bench: charts not drawn: {e}"),
        }
        Ok(())
    }

    fn charts(&self, json: &Path) -> Result<Vec<std::path::PathBuf>, BoxError> {
        let stem = json
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "workload".into());
        let dir = json.parent().unwrap_or(Path::new("."));
        let tp = dir.join(format!("{stem}-throughput.png"));
        let mut lines = Vec::new();
        if self.backlog.is_none() {
            lines.push(Line {
                label: "produced (acknowledged)",
                points: self
                    .series
                    .iter()
                    .map(|p| (p.t_s, p.produced_mb_per_s))
                    .collect(),
            });
        }
        if self.received > 0 {
            lines.push(Line {
                label: "consumed",
                points: self
                    .series
                    .iter()
                    .map(|p| (p.t_s, p.consumed_mb_per_s))
                    .collect(),
            });
        }
        let kills: Vec<f64> = self
            .failover
            .iter()
            .flat_map(|f| f.kills.iter().map(|k| k.at_s))
            .collect();
        let title = if kills.is_empty() {
            format!("{}: throughput", self.workload.name)
        } else {
            format!(
                "{}: throughput (grey: leader SIGKILLed)",
                self.workload.name
            )
        };
        chart::throughput(&tp, &title, &lines, &kills)?;
        let lc = dir.join(format!("{stem}-latency.png"));
        let mut lines = vec![Line {
            label: "produce",
            points: curve(&self.produce_latency),
        }];
        if let Some(e) = &self.e2e_latency {
            lines.push(Line {
                label: "end to end",
                points: curve(e),
            });
        }
        chart::latency_curve(
            &lc,
            &format!("{}: latency by percentile", self.workload.name),
            &lines,
        )?;
        Ok(vec![tp, lc])
    }
}

fn join(v: &[f64], decimals: usize) -> String {
    v.iter()
        .map(|x| format!("{x:.decimals$}"))
        .collect::<Vec<_>>()
        .join(", ")
}
