//! The transactional workload of a chaos run (`--transactions`), all librdkafka:
//! - a writer whose every transaction puts one record on each of three partitions of
//!   [`TXN_TOPIC`] and commits (every fourth aborts), recording each transaction's values and
//!   what the client learnt of its end;
//! - a consume-transform-produce worker reading the run's main topic with a read_committed
//!   consumer in group [`CTP_GROUP`] and writing each record, tagged with its input partition
//!   and offset, to [`TXN_TOPIC`] in a transaction together with the group's offsets
//!   (`send_offsets_to_transaction`), rewinding to the committed offsets after an abort;
//! - a read_committed observer of [`TXN_TOPIC`] recording every read;
//! - after the faults, a read_committed final read of [`TXN_TOPIC`] and the group's committed
//!   offsets.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

use crate::clients::Endpoint;
use crate::history::{Event, Recorder};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The topic transactions write to.
pub const TXN_TOPIC: &str = "chaos-txn";
/// The consume-transform-produce worker's group.
pub const CTP_GROUP: &str = "strata-chaos-ctp";
/// Records per writer transaction (one per partition of [`TXN_TOPIC`]).
pub const WRITER_SPAN: i32 = 3;

const API_TIMEOUT: Duration = Duration::from_secs(20);

fn producer(
    endpoint: &Endpoint,
    transactional_id: &str,
) -> Option<ThreadedProducer<DefaultProducerContext>> {
    let p: ThreadedProducer<DefaultProducerContext> = endpoint
        .config()
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "30000")
        .set("message.timeout.ms", "30000")
        .set("request.timeout.ms", "5000")
        .set("log_level", "3")
        .create()
        .ok()?;
    p.init_transactions(API_TIMEOUT).ok().map(|()| p)
}

/// Aborts after a failed step if the error allows it; `true` if the abort is known done.
fn abort_after(p: &ThreadedProducer<DefaultProducerContext>, e: &KafkaError) -> bool {
    let abortable = matches!(e, KafkaError::Transaction(t) if t.txn_requires_abort());
    abortable && p.abort_transaction(API_TIMEOUT).is_ok()
}

/// The writer: transactions of [`WRITER_SPAN`] records until `stop`.
pub fn writer(
    endpoint: &Endpoint,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let mut p = None;
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(prod) = p.as_ref() else {
            p = producer(endpoint, "strata-chaos-writer");
            if p.is_none() {
                std::thread::sleep(Duration::from_millis(500));
            }
            continue;
        };
        let values: Vec<String> = (0..WRITER_SPAN).map(|k| format!("t{n}-{k}")).collect();
        let abort = n % 4 == 3;
        let outcome = (|| -> Result<&'static str, KafkaError> {
            prod.begin_transaction()?;
            for (k, v) in values.iter().enumerate() {
                prod.send(
                    BaseRecord::<(), str>::to(TXN_TOPIC)
                        .partition(k as i32)
                        .payload(v),
                )
                .map_err(|(e, _)| e)?;
            }
            if abort {
                prod.abort_transaction(API_TIMEOUT)?;
                Ok("aborted")
            } else {
                prod.commit_transaction(API_TIMEOUT)?;
                Ok("committed")
            }
        })();
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                if abort_after(prod, &e) {
                    "aborted"
                } else {
                    // Fatal (fenced after a coordinator lost track of it), or the abort failed:
                    // a new producer, whose InitProducerId aborts what this one left open.
                    p = None;
                    "unknown"
                }
            }
        };
        rec.record(&Event::TxnEnd {
            t_ms: rec.now_ms(),
            txn: format!("t{n}"),
            values,
            outcome: outcome.into(),
        });
        n += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn ctp_consumer(endpoint: &Endpoint, input: &str) -> Result<BaseConsumer, BoxError> {
    let c: BaseConsumer = endpoint
        .config()
        .set("group.id", CTP_GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "10000")
        .set("log_level", "3")
        .create()?;
    c.subscribe(&[input])?;
    Ok(c)
}

/// Puts the consumer back at the group's committed offsets (after an abort, or a new
/// producer). `false` if it could not (the group's coordinator unreachable, say): then the
/// consumer must not go on from where it is, or the aborted records would be skipped (seen in
/// a 30-minute run: a rewind that failed during a split, and the next transaction committed
/// offsets past records whose outputs had been aborted).
#[must_use]
fn rewind(c: &BaseConsumer) -> bool {
    let Ok(assigned) = c.assignment() else {
        return false;
    };
    if assigned.count() == 0 {
        return false;
    }
    let Ok(committed) = c.committed_offsets(assigned.clone(), API_TIMEOUT) else {
        return false;
    };
    for e in committed.elements() {
        if e.error().is_err() {
            return false;
        }
        let at = match e.offset() {
            Offset::Offset(o) => Offset::Offset(o),
            _ => Offset::Beginning,
        };
        if c.seek(e.topic(), e.partition(), at, API_TIMEOUT).is_err() {
            return false;
        }
    }
    true
}

/// The consume-transform-produce worker, until `stop`.
pub fn transform(endpoint: &Endpoint, input: &str, stop: Arc<AtomicBool>) -> Result<(), BoxError> {
    let mut consumer = ctp_consumer(endpoint, input)?;
    let mut p = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(prod) = p.as_ref() else {
            p = producer(endpoint, "strata-chaos-transform");
            if p.is_none() {
                std::thread::sleep(Duration::from_millis(500));
            } else if !rewind(&consumer) {
                // A new member starts from the group's committed offsets.
                drop(consumer);
                consumer = ctp_consumer(endpoint, input)?;
            }
            continue;
        };
        let mut batch = Vec::new();
        let until = Instant::now() + Duration::from_millis(300);
        while batch.len() < 50 && Instant::now() < until {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
                batch.push((
                    m.partition(),
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ));
            }
        }
        if batch.is_empty() {
            continue;
        }
        let metadata = match consumer.group_metadata() {
            Some(m) => m,
            None => continue,
        };
        let mut next: HashMap<i32, i64> = HashMap::new();
        for (part, off, _) in &batch {
            next.insert(*part, off + 1);
        }
        let done = (|| -> Result<(), KafkaError> {
            prod.begin_transaction()?;
            for (part, off, v) in &batch {
                let out = format!("x{part}:{off}:{v}");
                prod.send(
                    BaseRecord::<(), str>::to(TXN_TOPIC)
                        .partition(part % WRITER_SPAN)
                        .payload(&out),
                )
                .map_err(|(e, _)| e)?;
            }
            let mut offsets = TopicPartitionList::new();
            for (part, o) in &next {
                offsets.add_partition_offset(input, *part, Offset::Offset(*o))?;
            }
            prod.send_offsets_to_transaction(&offsets, &metadata, API_TIMEOUT)?;
            prod.commit_transaction(API_TIMEOUT)
        })();
        if let Err(e) = done {
            if !abort_after(prod, &e) {
                p = None;
            }
            // Whatever this round wrote is aborted or will be: read it again from the
            // group's committed offsets, or with a new member that starts from them.
            if !rewind(&consumer) {
                drop(consumer);
                consumer = ctp_consumer(endpoint, input)?;
            }
        }
    }
    Ok(())
}

/// A read_committed reader of [`TXN_TOPIC`] recording every read, until `stop`.
pub fn observe(
    endpoint: &Endpoint,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> Result<(), BoxError> {
    let c: BaseConsumer = endpoint
        .config()
        .set("group.id", "strata-chaos-txn-observer")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("log_level", "3")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..WRITER_SPAN {
        tpl.add_partition_offset(TXN_TOPIC, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    while !stop.load(Ordering::Relaxed) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
            rec.record(&Event::TxnRead {
                t_ms: rec.now_ms(),
                partition: m.partition(),
                offset: m.offset(),
                value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            });
        }
    }
    Ok(())
}

/// After the faults: [`TXN_TOPIC`] read with read_committed up to each partition's last
/// stable offset (`TxnFinal`, `TxnFinalEnd`), and the transform group's committed offsets of
/// `input` (`TxnCommitted`).
pub fn final_read(
    endpoint: &Endpoint,
    input: &str,
    input_partitions: i32,
    rec: &Recorder,
    timeout: Duration,
) -> Result<(), BoxError> {
    let deadline = Instant::now() + timeout;
    let c: BaseConsumer = endpoint
        .config()
        .set("group.id", CTP_GROUP)
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("log_level", "3")
        .create()?;
    // The last stable offset: what read_committed's ListOffsets answers as the end.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    for p in 0..WRITER_SPAN {
        while Instant::now() < deadline {
            if let Ok((_, high)) = c.fetch_watermarks(TXN_TOPIC, p, Duration::from_secs(2)) {
                ends.insert(p, high);
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let mut tpl = TopicPartitionList::new();
    for p in ends.keys() {
        tpl.add_partition_offset(TXN_TOPIC, *p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    // Control records take offsets no message has, and the last batch of a partition is
    // always a marker: a partition is done once the consumer's position passes its end, or
    // reaches the offset before it with nothing more to read for 3 s (a read_committed
    // consumer held back by a transaction left open never gets that far).
    let mut last_read = Instant::now();
    let done = |c: &BaseConsumer, quiet: bool| {
        c.position().ok().is_some_and(|pos| {
            ends.iter().all(|(p, end)| {
                let at = match pos.find_partition(TXN_TOPIC, *p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o,
                    _ => 0,
                };
                *end == 0 || at >= *end || (quiet && at + 1 >= *end)
            })
        })
    };
    while !done(&c, last_read.elapsed() > Duration::from_secs(3)) && Instant::now() < deadline {
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        last_read = Instant::now();
        rec.record(&Event::TxnFinal {
            partition: m.partition(),
            offset: m.offset(),
            value: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
        });
    }
    if done(&c, last_read.elapsed() > Duration::from_secs(3)) {
        for (p, end) in &ends {
            rec.record(&Event::TxnFinalEnd {
                partition: *p,
                end: *end,
            });
        }
    }
    let mut wanted = TopicPartitionList::new();
    for p in 0..input_partitions {
        wanted.add_partition(input, p);
    }
    // The group's coordinator may still be coming back from the last fault: asked again until
    // the deadline (one timeout ended a 30-minute run before its verdict).
    let committed = loop {
        match c.committed_offsets(wanted.clone(), API_TIMEOUT) {
            Ok(committed) => break committed,
            Err(e) if Instant::now() >= deadline => return Err(e.into()),
            Err(e) => {
                eprintln!("strata-chaos: the group's committed offsets: {e}; asking again");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    };
    for e in committed.elements() {
        let offset = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        rec.record(&Event::TxnCommitted {
            partition: e.partition(),
            offset,
        });
    }
    Ok(())
}
