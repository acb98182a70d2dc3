//! The clients of a chaos run, all librdkafka: acks=all producers (idempotent and not) that
//! record every send and its outcome, group consumers that record every read and assignment,
//! an observer of the group's committed offsets, and the final reader.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext, Offset, TopicPartitionList};

use crate::history::{Event, Recorder};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The consumer group of a run.
pub const GROUP: &str = "strata-chaos";

struct Deliveries {
    rec: Arc<Recorder>,
    /// Producer id, to tell the lines of librdkafka's debug log apart.
    id: u32,
    /// Print librdkafka's log (`STRATA_CHAOS_RDKAFKA_DEBUG`); otherwise it is dropped (the
    /// history records every outcome).
    print_log: bool,
}

impl ClientContext for Deliveries {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, fac: &str, line: &str) {
        if self.print_log {
            eprintln!("rdkafka p{} {} {fac}: {line}", self.id, self.rec.now_ms());
        }
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let t_ms = self.rec.now_ms();
        match result {
            Ok(m) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                self.rec.record(&Event::Ack {
                    t_ms,
                    value,
                    partition: m.partition(),
                    offset: m.offset(),
                });
            }
            Err((e, m)) => {
                let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
                // SAFETY: the message pointer is valid for the duration of the callback.
                let status = unsafe { rdkafka::bindings::rd_kafka_message_status(m.ptr()) };
                self.rec.record(&Event::Fail {
                    t_ms,
                    value,
                    definite: status
                        == rdkafka::bindings::rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED,
                    error: e.to_string(),
                });
            }
        }
    }
}

/// Where and how the workload's clients connect.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// Further librdkafka settings (security).
    pub security: Vec<(String, String)>,
}

impl Endpoint {
    /// A librdkafka configuration for this endpoint.
    pub fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        for (k, v) in &self.security {
            c.set(k, v);
        }
        c
    }
}

/// Produces `p<id>-<seq>` values to `topic` at `rate` per second until `stop`, then waits
/// (up to the message timeout) for every outcome.
pub fn produce(
    id: u32,
    idempotent: bool,
    endpoint: &Endpoint,
    topic: &str,
    rate: u64,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let mut config = endpoint.config();
    config
        .set("acks", "all")
        .set("enable.idempotence", idempotent.to_string())
        .set("linger.ms", "2")
        // Idempotent producers never time a message out: after a timeout librdkafka bumps the
        // producer epoch and re-sends what was in flight under new sequence numbers, which no
        // broker can tell from new records (seen in the first runs of this tool).
        .set("message.timeout.ms", if idempotent { "0" } else { "10000" })
        .set("request.timeout.ms", "5000")
        .set("log_level", "3");
    // STRATA_CHAOS_RDKAFKA_DEBUG=eos,msg (librdkafka's `debug` contexts) prints the
    // producers' debug log on stderr, each line with its producer and run time in ms.
    let debug = std::env::var("STRATA_CHAOS_RDKAFKA_DEBUG").ok();
    if let Some(contexts) = &debug {
        config.set("debug", contexts);
        config.set_log_level(rdkafka::config::RDKafkaLogLevel::Debug);
    }
    let producer: ThreadedProducer<Deliveries> = config.create_with_context(Deliveries {
        rec: rec.clone(),
        id,
        print_log: debug.is_some(),
    })?;
    let start = Instant::now();
    let mut seq: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_secs_f64(seq as f64 / rate.max(1) as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let value = format!("p{id}-{seq}");
        let key = seq.to_string();
        rec.record(&Event::Send {
            t_ms: rec.now_ms(),
            producer: id,
            idempotent,
            value: value.clone(),
        });
        let mut record = BaseRecord::to(topic).payload(&value).key(&key);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if !stop.load(Ordering::Relaxed) =>
                {
                    // The local queue is full: wait, and send the same record.
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => {
                    // Never enqueued, so never written.
                    rec.record(&Event::Fail {
                        t_ms: rec.now_ms(),
                        value: value.clone(),
                        definite: true,
                        error: e.to_string(),
                    });
                    break;
                }
            }
        }
        seq += 1;
        // An idempotent producer that hit a fatal error (librdkafka: it saw acknowledged
        // records vanish, say) refuses everything from then on: it is done.
        if let Some((code, reason)) = producer.client().fatal_error() {
            eprintln!("strata-chaos: producer {id} stopped on a fatal error: {code:?} {reason}");
            break;
        }
    }
    let _ = producer.flush(Duration::from_secs(30));
    Ok(())
}

struct Assignments {
    id: u32,
    rec: Arc<Recorder>,
}

impl ClientContext for Assignments {}

impl ConsumerContext for Assignments {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = match rebalance {
            Rebalance::Assign(tpl) => tpl.elements().iter().map(|e| e.partition()).collect(),
            _ => Vec::new(),
        };
        self.rec.record(&Event::Assign {
            t_ms: self.rec.now_ms(),
            consumer: self.id,
            partitions,
        });
    }
}

/// A group member reading `topic` and recording every read, until `stop`.
pub fn consume(
    id: u32,
    endpoint: &Endpoint,
    topic: &str,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let c: BaseConsumer<Assignments> = endpoint
        .config()
        .set("group.id", GROUP)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "200")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("log_level", "3")
        .create_with_context(Assignments {
            id,
            rec: rec.clone(),
        })?;
    c.subscribe(&[topic])?;
    while !stop.load(Ordering::Relaxed) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        rec.record(&Event::Read {
            t_ms: rec.now_ms(),
            consumer: id,
            partition: m.partition(),
            offset: m.offset(),
            value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        });
    }
    Ok(())
}

/// Records the group's committed offsets whenever they change, until `stop`.
pub fn observe_commits(
    endpoint: &Endpoint,
    topic: &str,
    partitions: i32,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let c: BaseConsumer = endpoint
        .config()
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let mut last: HashMap<i32, i64> = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(500));
        let Ok(got) = c.committed_offsets(tpl.clone(), Duration::from_secs(2)) else {
            continue;
        };
        for e in got.elements() {
            if let Offset::Offset(o) = e.offset()
                && last.get(&e.partition()) != Some(&o)
            {
                last.insert(e.partition(), o);
                rec.record(&Event::Committed {
                    t_ms: rec.now_ms(),
                    partition: e.partition(),
                    offset: o,
                });
            }
        }
    }
    Ok(())
}

/// Reads every partition of `topic` from its start to its high watermark and records each
/// record (`Final`) and each partition it finished (`FinalEnd`). Gives up after `timeout`.
pub fn final_read(
    endpoint: &Endpoint,
    topic: &str,
    partitions: i32,
    rec: &Recorder,
    timeout: Duration,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + timeout;
    let c: BaseConsumer = endpoint
        .config()
        .set("group.id", "strata-chaos-final")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()?;
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for p in 0..partitions {
        while Instant::now() < deadline {
            if let Ok((_, high)) = c.fetch_watermarks(topic, p, Duration::from_secs(2)) {
                ends.insert(p, high);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let mut next: HashMap<i32, i64> = ends.keys().map(|p| (*p, 0)).collect();
    let done = |next: &HashMap<i32, i64>| ends.iter().all(|(p, end)| next.get(p) >= Some(end));
    while !done(&next) && Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        if m.offset() >= ends.get(&m.partition()).copied().unwrap_or(0) {
            continue;
        }
        rec.record(&Event::Final {
            partition: m.partition(),
            offset: m.offset(),
            value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        });
        next.insert(m.partition(), m.offset() + 1);
    }
    for (p, end) in &ends {
        if next.get(p) >= Some(end) {
            rec.record(&Event::FinalEnd {
                partition: *p,
                end: *end,
            });
        }
    }
    Ok(())
}
