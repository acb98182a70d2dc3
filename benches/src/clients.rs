//! The load of a workload: librdkafka producers (`ThreadedProducer` with delivery callbacks)
//! and consumers (`BaseConsumer` in one group), on their own threads, counting into [`Shared`].

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;

use crate::workload::Workload;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Nanoseconds since the Unix epoch (the send stamp in every payload).
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Microseconds, 1 µs to 2 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).expect("constant bounds are valid")
}

/// A leader kill waiting for its first acknowledgement from a new leader.
#[derive(Debug, Clone, Copy)]
pub struct PendingKill {
    /// When the SIGKILL was sent.
    pub at: Instant,
}

/// What producers, consumers and the sampler share while running.
pub struct Shared {
    /// Latencies are recorded only while measuring (not during warm-up).
    pub measuring: AtomicBool,
    /// Producers and consumers stop.
    pub stop: AtomicBool,
    /// Messages enqueued, acknowledged, failed, received.
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub failed: AtomicU64,
    pub received: AtomicU64,
    /// Produce latency (µs) since the sampler last took it.
    pub produce_latency: Mutex<Histogram<u64>>,
    /// End-to-end latency (µs) since the sampler last took it.
    pub e2e_latency: Mutex<Histogram<u64>>,
    /// Set while a leader kill waits for its first acknowledgement (failover workloads).
    pub kill_pending: AtomicBool,
    pub kill: Mutex<Option<PendingKill>>,
    /// Kill-to-first-acknowledgement times, in order.
    pub failovers: Mutex<Vec<Duration>>,
    /// Set (to the kill's wall-clock time, ns) while a kill waits for a consumer to read a
    /// record produced after it; the consumer that does records the time in `resumed`.
    pub resume_after_nanos: AtomicU64,
    /// Kill-to-consumer-resume time of the last kill.
    pub resumed: Mutex<Option<Duration>>,
}

impl Shared {
    /// Nothing counted yet.
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            measuring: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sent: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            received: AtomicU64::new(0),
            produce_latency: Mutex::new(histogram()),
            e2e_latency: Mutex::new(histogram()),
            kill_pending: AtomicBool::new(false),
            kill: Mutex::new(None),
            failovers: Mutex::new(Vec::new()),
            resume_after_nanos: AtomicU64::new(0),
            resumed: Mutex::new(None),
        })
    }

    /// A delivery to `partition` acknowledged now, of a message meant to be sent at
    /// `intended`: the first one of partition 0 meant after a pending kill ends that failover
    /// (an acknowledgement only the new leader can have given).
    fn acknowledged(&self, partition: i32, intended: Instant) {
        if partition != 0 || !self.kill_pending.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut kill) = self.kill.lock() else {
            return;
        };
        if let Some(k) = *kill
            && intended > k.at
        {
            *kill = None;
            self.kill_pending.store(false, Ordering::Release);
            if let Ok(mut f) = self.failovers.lock() {
                f.push(k.at.elapsed());
            }
        }
    }
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
        match result {
            Ok(m) => {
                self.shared.acked.fetch_add(1, Ordering::Relaxed);
                if measured && let Ok(mut h) = self.shared.produce_latency.lock() {
                    let _ = h.record((intended.elapsed().as_micros() as u64).max(1));
                }
                self.shared.acknowledged(m.partition(), intended);
            }
            Err(_) => {
                self.shared.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Produces `w`'s messages to `topic` at `w.rate / w.producers` per second (or unthrottled)
/// until `shared.stop`, or until `limit` messages are acknowledged-or-failed; then flushes.
pub fn producer_loop(
    w: &Workload,
    bootstrap: &str,
    topic: &str,
    shared: &Arc<Shared>,
    limit: Option<u64>,
) -> Result<(), BoxError> {
    use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
    // librdkafka's own thread serves the delivery reports; this one paces and enqueues.
    let producer: ThreadedProducer<Reports> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", &w.acks)
        .set("linger.ms", w.linger_ms.to_string())
        .set("batch.size", w.batch_bytes.to_string())
        .set("compression.type", &w.compression)
        .set("enable.idempotence", w.idempotence.to_string())
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
    while !shared.stop.load(Ordering::Relaxed) && limit.is_none_or(|l| i < l) {
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
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

/// Consumes `topic` in group `group` until `shared.stop`: from the start of the log when
/// `from_earliest` (a backlog), otherwise from its end, recording end-to-end latency from the
/// send stamp of each payload while measuring (unless `from_earliest`: a backlog's age is not
/// a latency).
pub fn consumer_loop(
    bootstrap: &str,
    topic: &str,
    group: &str,
    from_earliest: bool,
    shared: &Shared,
) -> Result<(), BoxError> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set(
            "auto.offset.reset",
            if from_earliest { "earliest" } else { "latest" },
        )
        .set("enable.auto.commit", "true")
        .set("fetch.wait.max.ms", "100")
        .create()?;
    c.subscribe(&[topic])?;
    while !shared.stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        shared.received.fetch_add(1, Ordering::Relaxed);
        if from_earliest || !shared.measuring.load(Ordering::Relaxed) {
            continue;
        }
        if let Some(stamp) = m.payload().and_then(|p| p.get(..8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(stamp);
            let sent = u64::from_be_bytes(b);
            let now = now_nanos();
            // The first record sent after a kill ends the consumer's failover.
            let kill = shared.resume_after_nanos.load(Ordering::Acquire);
            if kill > 0
                && sent >= kill
                && shared
                    .resume_after_nanos
                    .compare_exchange(kill, 0, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
                && let Ok(mut r) = shared.resumed.lock()
            {
                *r = Some(Duration::from_nanos(now.saturating_sub(kill)));
            }
            let us = now.saturating_sub(sent) / 1000;
            if let Ok(mut h) = shared.e2e_latency.lock() {
                let _ = h.record(us.max(1));
            }
        }
    }
    Ok(())
}
