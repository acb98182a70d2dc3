//! `strata-bench transactions`: what exactly-once costs, against the same thing without it in
//! the same run on the same broker. Produce: a librdkafka transactional producer committing a
//! transaction every `--transaction-ms` (every `--abort-every`th aborted instead) against an
//! idempotent producer with the same settings, both acks=all, alternated `--rounds` times;
//! commit latency (commit_transaction, which flushes and ends the transaction) p50/p99.
//! Consume: the transactional topic read from the start by a read_committed consumer (which
//! skips the aborted transactions) against a read_uncommitted one reading the same log.

use std::time::{Duration, Instant};

use rdkafka::Message;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options of `strata-bench transactions`.
#[derive(clap::Args, Debug, Clone)]
pub struct TransactionsArgs {
    /// Seconds of producing per measurement.
    #[arg(long, default_value_t = 6.0)]
    seconds: f64,
    /// Idempotent / transactional pairs of measurements.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Message value size in bytes.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// Partitions of each topic (each transaction writes to all of them).
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// How long each transaction sends before it commits.
    #[arg(long, default_value_t = 100)]
    transaction_ms: u64,
    /// Abort every Nth transaction instead of committing it (0: never).
    #[arg(long, default_value_t = 10)]
    abort_every: u64,
    /// Run against this broker instead of starting Strata.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Path of the `strata` binary (default: next to this tool).
    #[arg(long)]
    strata_bin: Option<std::path::PathBuf>,
}

fn producer(
    bootstrap: &str,
    transactional_id: Option<&str>,
) -> Result<ThreadedProducer<DefaultProducerContext>, BoxError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .set("batch.size", "1048576")
        .set("queue.buffering.max.kbytes", "262144");
    if let Some(id) = transactional_id {
        c.set("transactional.id", id);
    }
    let p: ThreadedProducer<DefaultProducerContext> = c.create()?;
    if transactional_id.is_some() {
        p.init_transactions(Duration::from_secs(30))?;
    }
    Ok(p)
}

/// Sends one message, waiting for room in librdkafka's queue.
fn send(
    p: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    value: &[u8],
) -> Result<(), BoxError> {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .partition(partition)
        .payload(value);
    loop {
        match p.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                r,
            )) => {
                record = r;
                std::thread::sleep(Duration::from_micros(200));
            }
            Err((e, _)) => return Err(e.into()),
        }
    }
}

/// Idempotent producing for `seconds`: messages per second acknowledged.
fn idempotent(args: &TransactionsArgs, bootstrap: &str, topic: &str) -> Result<f64, BoxError> {
    let p = producer(bootstrap, None)?;
    let value = vec![b'i'; args.message_bytes];
    let start = Instant::now();
    let mut sent = 0u64;
    while start.elapsed().as_secs_f64() < args.seconds {
        send(&p, topic, (sent % args.partitions as u64) as i32, &value)?;
        sent += 1;
    }
    p.flush(Duration::from_secs(60))?;
    Ok(sent as f64 / start.elapsed().as_secs_f64())
}

/// What a transactional measurement found.
struct TxnRun {
    /// Committed messages per second.
    rate: f64,
    /// commit_transaction latencies, microseconds, including the wait for the producer's
    /// queued messages (the backlog of an unthrottled producer).
    commits: hdrhistogram::Histogram<u64>,
    /// commit_transaction latencies after the queue was flushed: EndTxn's round trip and
    /// librdkafka's state changes, microseconds.
    end_txns: hdrhistogram::Histogram<u64>,
    committed_messages: u64,
    aborted_messages: u64,
}

fn transactional(
    args: &TransactionsArgs,
    bootstrap: &str,
    topic: &str,
    round: usize,
) -> Result<TxnRun, BoxError> {
    let p = producer(bootstrap, Some(&format!("strata-bench-txn-{round}")))?;
    // Committed transactions' messages are all 't', aborted ones' all 'a': a read_committed
    // consumer must never see an 'a'.
    let value = vec![b't'; args.message_bytes];
    let doomed = vec![b'a'; args.message_bytes];
    let mut commits = crate::clients::histogram();
    let mut end_txns = crate::clients::histogram();
    let (mut committed, mut aborted, mut n) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < args.seconds {
        p.begin_transaction()?;
        let txn_start = Instant::now();
        let mut sent = 0u64;
        n += 1;
        let abort = args.abort_every > 0 && n % args.abort_every == 0;
        let v = if abort { &doomed } else { &value };
        while txn_start.elapsed() < Duration::from_millis(args.transaction_ms) {
            send(&p, topic, (sent % args.partitions as u64) as i32, v)?;
            sent += 1;
        }
        if abort {
            p.abort_transaction(Duration::from_secs(60))?;
            aborted += sent;
        } else {
            // Every other commit flushes first, to time the commit itself apart from the
            // producer's backlog.
            let flushed_first = n % 2 == 0;
            let t = Instant::now();
            if flushed_first {
                p.flush(Duration::from_secs(60))?;
            }
            let t_end = Instant::now();
            p.commit_transaction(Duration::from_secs(60))?;
            let whole = t.elapsed().as_micros() as u64;
            commits.record(whole).ok();
            if flushed_first {
                end_txns.record(t_end.elapsed().as_micros() as u64).ok();
            }
            committed += sent;
        }
    }
    Ok(TxnRun {
        rate: committed as f64 / start.elapsed().as_secs_f64(),
        commits,
        end_txns,
        committed_messages: committed,
        aborted_messages: aborted,
    })
}

/// Reads `topic` from the start at `isolation` until `expected` messages arrived (or nothing
/// new came for 5 s); the messages read and the seconds it took to read them.
fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    isolation: &str,
    expected: u64,
) -> Result<(u64, f64), BoxError> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("strata-bench-{isolation}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", isolation)
        .set("fetch.max.bytes", "52428800")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    let start = Instant::now();
    let mut last = Instant::now();
    let mut read = 0u64;
    while read < expected && last.elapsed() < Duration::from_secs(5) {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if let Some(v) = m.payload() {
                    read += 1;
                    if isolation == "read_committed" && v.first() == Some(&b'a') {
                        return Err(format!(
                            "read_committed delivered a message of an aborted transaction at {}-{} offset {}",
                            m.topic(),
                            m.partition(),
                            m.offset()
                        )
                        .into());
                    }
                }
                last = Instant::now();
            }
            Some(Err(e)) => return Err(e.into()),
            None => {}
        }
    }
    Ok((read, (last - start).as_secs_f64().max(1e-3)))
}

fn ms(h: &hdrhistogram::Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Runs the measurements and prints them with their ratios.
pub fn run(args: TransactionsArgs) -> Result<(), BoxError> {
    std::fs::create_dir_all("bench-results")?;
    let work = tempfile::Builder::new()
        .prefix("transactions-")
        .tempdir_in("bench-results")?;
    let started = match &args.bootstrap_servers {
        Some(_) => None,
        None => {
            let bin = strata_testkit::strata_bin(args.strata_bin.as_deref())?;
            let mut nodes = crate::local_cluster::start_nodes(&bin, work.path(), 1, &[])?;
            nodes.pop()
        }
    };
    let bootstrap = args
        .bootstrap_servers
        .clone()
        .or_else(|| started.as_ref().map(|b| format!("127.0.0.1:{}", b.port)))
        .ok_or("no broker")?;
    println!(
        "strata-bench transactions: {} s per measurement, {} B messages, {} partitions, {} ms transactions (every {}th aborted), acks=all, broker {bootstrap}",
        args.seconds, args.message_bytes, args.partitions, args.transaction_ms, args.abort_every
    );
    let mut commits = crate::clients::histogram();
    let mut end_txns = crate::clients::histogram();
    let mut ratios = Vec::new();
    let txn_topic = format!("txn-{}", std::process::id());
    strata_testkit::create_topic(
        &bootstrap,
        &txn_topic,
        args.partitions,
        1,
        Duration::from_secs(60),
    )?;
    let (mut committed, mut aborted) = (0u64, 0u64);
    for round in 0..args.rounds {
        let idem_topic = format!("idem-{}-{round}", std::process::id());
        strata_testkit::create_topic(
            &bootstrap,
            &idem_topic,
            args.partitions,
            1,
            Duration::from_secs(60),
        )?;
        let base = idempotent(&args, &bootstrap, &idem_topic)?;
        // Its data is not read again: the disk is freed for the next measurements.
        strata_testkit::delete_topic(&bootstrap, &idem_topic)?;
        let t = transactional(&args, &bootstrap, &txn_topic, round)?;
        commits.add(&t.commits).ok();
        end_txns.add(&t.end_txns).ok();
        committed += t.committed_messages;
        aborted += t.aborted_messages;
        let ratio = t.rate / base;
        ratios.push(ratio);
        println!(
            "round {round}: idempotent {base:>9.0} msgs/s   transactional {:>9.0} msgs/s committed -> {ratio:.2}x (target >= 0.8)   commit p50 {:.2} ms p99 {:.2} ms",
            t.rate,
            ms(&t.commits, 0.5),
            ms(&t.commits, 0.99),
        );
    }
    println!(
        "produce: transactional / idempotent {:.2}x-{:.2}x; commit_transaction over {} commits (with the backlog it flushes) p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max),
        commits.len(),
        ms(&commits, 0.5),
        ms(&commits, 0.99),
        commits.max() as f64 / 1000.0
    );
    println!(
        "commit after a flush (EndTxn round trip; markers follow in the background) over {} commits: p50 {:.2} ms p99 {:.2} ms max {:.2} ms",
        end_txns.len(),
        ms(&end_txns, 0.5),
        ms(&end_txns, 0.99),
        end_txns.max() as f64 / 1000.0
    );
    // The same log both ways, alternated.
    for round in 0..args.rounds {
        // librdkafka purges an aborted transaction's queued messages, so how many of them
        // reached the log is not known here: read_uncommitted reads until it is quiet.
        let (n_unc, t_unc) = consume(
            &bootstrap,
            &txn_topic,
            args.partitions,
            "read_uncommitted",
            u64::MAX,
        )?;
        let (n_com, t_com) = consume(
            &bootstrap,
            &txn_topic,
            args.partitions,
            "read_committed",
            committed,
        )?;
        if n_com != committed || n_unc < committed || n_unc > committed + aborted {
            return Err(format!(
                "read_committed read {n_com} of {committed} committed, read_uncommitted {n_unc} (between {committed} and {})",
                committed + aborted
            )
            .into());
        }
        // Both read the same log to its end; read_committed also fetches the aborted
        // transactions' records (the client drops them), so per message delivered it is
        // slower by their share whatever the broker does. The target is on the log.
        let (unc, com) = (n_unc as f64 / t_unc, n_com as f64 / t_com);
        println!(
            "consume round {round}: read_uncommitted {unc:>9.0} msgs/s ({n_unc} in {t_unc:.2} s)   read_committed {com:>9.0} msgs/s ({n_com} in {t_com:.2} s, aborted skipped) -> the log read at {:.2}x the rate (target >= 0.9), {:.2}x per message delivered",
            t_unc / t_com,
            com / unc
        );
    }
    Ok(())
}
