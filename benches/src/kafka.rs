//! `strata-bench produce` and `strata-bench consume`: the Kafka protocol end to end with
//! librdkafka, against a broker this tool starts (the `strata` binary next to it, in a temporary
//! directory) or any `--bootstrap-servers`. Each run also measures its baseline in the same run:
//!
//! - produce: the same bytes pushed over one loopback TCP connection into a file, with an
//!   fdatasync at the same cadence (bytes per fdatasync) the broker reported;
//! - consume: the same bytes sent from a page-cached file over loopback with sendfile.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Options shared by produce and consume.
#[derive(clap::Args, Debug, Clone)]
pub struct KafkaArgs {
    /// Broker to use; without it, a `strata` broker is started in a temporary directory.
    #[arg(long)]
    bootstrap_servers: Option<String>,
    /// Path of the `strata` binary to start (default: next to this tool).
    #[arg(long)]
    strata_bin: Option<PathBuf>,
    /// Messages to send.
    #[arg(long, default_value_t = 200_000)]
    messages: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 1024)]
    message_bytes: usize,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// librdkafka linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// librdkafka batch.size.
    #[arg(long, default_value_t = 1 << 20)]
    batch_bytes: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 1)]
    partitions: i32,
    /// Also over TLS, against the plaintext figure of the same run, through this SSL listener
    /// of the same broker (`host:port`; the host is the name checked against its
    /// certificate): produce sends the same messages with librdkafka (OpenSSL) to a second
    /// topic; consume fetches the same bytes with plain Fetch requests (rustls).
    #[arg(long, requires = "tls_ca")]
    tls_bootstrap: Option<String>,
    /// The CA (PEM) that signed the SSL listener's certificate.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

struct ProduceResult {
    elapsed: Duration,
    latency: Histogram<u64>,
}

fn produce(
    bootstrap: &str,
    topic: &str,
    args: &KafkaArgs,
    tls_ca: Option<&std::path::Path>,
) -> Result<ProduceResult, BoxError> {
    let mut config = ClientConfig::new();
    if let Some(ca) = tls_ca {
        config
            .set("security.protocol", "SSL")
            .set("ssl.ca.location", ca.display().to_string());
    }
    let producer: FutureProducer = config
        .set("bootstrap.servers", bootstrap)
        .set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("batch.size", args.batch_bytes.to_string())
        .set("queue.buffering.max.kbytes", "1048576")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create()?;
    let payload = vec![b'x'; args.message_bytes];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let start = Instant::now();
    let mut last_print = Instant::now();
    rt.block_on(async {
        let mut in_flight = std::collections::VecDeque::new();
        for i in 0..args.messages {
            let sent_at = Instant::now();
            let fut = producer
                .send_result(FutureRecord::<(), _>::to(topic).payload(&payload))
                .map_err(|(e, _)| e)?;
            in_flight.push_back((sent_at, fut));
            while in_flight.len() > 50_000 {
                if let Some((t, f)) = in_flight.pop_front() {
                    f.await.map_err(|_| "cancelled")?.map_err(|(e, _)| e)?;
                    latency.record(t.elapsed().as_micros() as u64).ok();
                }
            }
            if last_print.elapsed() > Duration::from_secs(1) {
                last_print = Instant::now();
                let secs = start.elapsed().as_secs_f64();
                eprint!(
                    "\r  {secs:5.1}s  {:>9.0} msgs/s  {:>7.1} MB/s  p99 {:.1} ms   ",
                    i as f64 / secs,
                    i as f64 * args.message_bytes as f64 / secs / 1e6,
                    latency.value_at_quantile(0.99) as f64 / 1000.0
                );
            }
        }
        for (t, f) in in_flight {
            f.await.map_err(|_| "cancelled")?.map_err(|(e, _)| e)?;
            latency.record(t.elapsed().as_micros() as u64).ok();
        }
        Ok::<(), BoxError>(())
    })?;
    eprintln!();
    Ok(ProduceResult {
        elapsed: start.elapsed(),
        latency,
    })
}

fn consume(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    messages: u64,
) -> Result<(Duration, u64), BoxError> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "strata-bench")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", (50 << 20).to_string())
        .set("max.partition.fetch.bytes", (8 << 20).to_string())
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < messages {
        if start.elapsed() > Duration::from_secs(300) {
            return Err(format!("consumed only {n} of {messages}").into());
        }
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m?;
            bytes += m.payload().map_or(0, |p| p.len() as u64);
            n += 1;
        }
    }
    Ok((start.elapsed(), bytes))
}

/// Consumes with plain Fetch requests (kafka-protocol encoding, 50 MiB responses, record bytes
/// counted but not decoded): the broker's fetch path without a client library's per-record cost.
fn consume_raw(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    total_bytes: u64,
) -> Result<(Duration, u64), BoxError> {
    let mut s = TcpStream::connect(bootstrap)?;
    s.set_nodelay(true)?;
    consume_raw_on(&mut s, topic, partitions, total_bytes)
}

/// A TLS connection to `bootstrap` (rustls with ring, as the broker), trusting `ca`.
fn tls_stream(
    bootstrap: &str,
    ca: &std::path::Path,
) -> Result<
    tokio_rustls::rustls::StreamOwned<tokio_rustls::rustls::ClientConnection, TcpStream>,
    BoxError,
> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, ServerName};
    use std::sync::Arc;
    use tokio_rustls::rustls;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca)? {
        roots.add(cert?)?;
    }
    // ring, as the broker (rustls marks it deprecated for lacking post-quantum key exchange).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = bootstrap.rsplit_once(':').map_or(bootstrap, |(h, _)| h);
    let name = ServerName::try_from(host.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let tcp = TcpStream::connect(bootstrap)?;
    tcp.set_nodelay(true)?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// [`consume_raw`] over TLS.
fn consume_raw_tls(
    bootstrap: &str,
    ca: &std::path::Path,
    topic: &str,
    partitions: i32,
    total_bytes: u64,
) -> Result<(Duration, u64), BoxError> {
    let mut tls = tls_stream(bootstrap, ca)?;
    consume_raw_on(&mut tls, topic, partitions, total_bytes)
}

/// Produces `total_bytes` of `message_bytes` records to partition 0 of `topic` with plain
/// Produce requests (acks=all, batches of 256 KiB built once, 8 requests in flight): the
/// broker's produce path without a client library's per-record cost.
fn produce_raw_on<S: Read + Write>(
    s: &mut S,
    topic: &str,
    message_bytes: usize,
    total_bytes: u64,
) -> Result<Duration, BoxError> {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::produce_request::{
        PartitionProduceData, ProduceRequest, TopicProduceData,
    };
    use kafka_protocol::messages::{
        ApiKey, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    let version = 9i16;
    let per_batch = ((256usize << 10) / message_bytes.max(1)).max(1);
    let batch = Bytes::from(strata_engine::batch::build_filled(
        per_batch,
        message_bytes,
        b'x',
        0,
    ));
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(batch);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_string(topic.to_string()));
    td.partition_data = vec![pd];
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 30_000;
    req.topic_data = vec![td];
    let mut frame = BytesMut::new();
    let mut h = RequestHeader::default();
    h.request_api_key = ApiKey::Produce as i16;
    h.request_api_version = version;
    h.encode(&mut frame, ApiKey::Produce.request_header_version(version))?;
    req.encode(&mut frame, version)?;
    let mut framed = (frame.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&frame);
    let batches = total_bytes.div_ceil((per_batch * message_bytes) as u64);
    let start = Instant::now();
    let mut in_flight = 0u32;
    let mut buf = Vec::new();
    let mut read_one = |s: &mut S| -> Result<(), BoxError> {
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        buf.resize(i32::from_be_bytes(len) as usize, 0);
        s.read_exact(&mut buf)?;
        let mut b = Bytes::copy_from_slice(&buf);
        ResponseHeader::decode(&mut b, ApiKey::Produce.response_header_version(version))?;
        let resp = ProduceResponse::decode(&mut b, version)?;
        for t in resp.responses {
            for p in t.partition_responses {
                if p.error_code != 0 {
                    return Err(format!("produce error {}", p.error_code).into());
                }
            }
        }
        Ok(())
    };
    for _ in 0..batches {
        s.write_all(&framed)?;
        in_flight += 1;
        if in_flight >= 8 {
            read_one(s)?;
            in_flight -= 1;
        }
    }
    while in_flight > 0 {
        read_one(s)?;
        in_flight -= 1;
    }
    Ok(start.elapsed())
}

fn consume_raw_on<S: Read + Write>(
    s: &mut S,
    topic: &str,
    partitions: i32,
    total_bytes: u64,
) -> Result<(Duration, u64), BoxError> {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
    use kafka_protocol::messages::{
        ApiKey, FetchResponse, RequestHeader, ResponseHeader, TopicName,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    let version = 11i16;
    let mut offsets = vec![0i64; partitions as usize];
    let mut got = 0u64;
    let start = Instant::now();
    let mut buf = Vec::new();
    while got < total_bytes {
        if start.elapsed() > Duration::from_secs(300) {
            return Err("raw consume took too long".into());
        }
        let mut ft = FetchTopic::default();
        ft.topic = TopicName(StrBytes::from_string(topic.to_string()));
        ft.partitions = (0..partitions)
            .map(|p| {
                let mut fp = FetchPartition::default();
                fp.partition = p;
                fp.fetch_offset = offsets[p as usize];
                fp.partition_max_bytes = 16 << 20;
                fp
            })
            .collect();
        let mut req = FetchRequest::default();
        req.replica_id = (-1).into();
        req.max_wait_ms = 500;
        req.min_bytes = 1;
        req.max_bytes = 64 << 20;
        req.topics = vec![ft];
        let mut body = BytesMut::new();
        let mut h = RequestHeader::default();
        h.request_api_key = ApiKey::Fetch as i16;
        h.request_api_version = version;
        h.correlation_id = 1;
        h.encode(&mut body, ApiKey::Fetch.request_header_version(version))?;
        req.encode(&mut body, version)?;
        s.write_all(&(body.len() as i32).to_be_bytes())?;
        s.write_all(&body)?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        buf.resize(i32::from_be_bytes(len) as usize, 0);
        s.read_exact(&mut buf)?;
        let mut b = Bytes::copy_from_slice(&buf);
        ResponseHeader::decode(&mut b, ApiKey::Fetch.response_header_version(version))?;
        let resp = FetchResponse::decode(&mut b, version)?;
        for t in resp.responses {
            for p in t.partitions {
                let records = p.records.unwrap_or_default();
                // Advance past the last whole batch: its base offset + last offset delta + 1.
                let mut pos = 0usize;
                while pos + 61 <= records.len() {
                    let base = i64::from_be_bytes(records[pos..pos + 8].try_into()?);
                    let len =
                        i32::from_be_bytes(records[pos + 8..pos + 12].try_into()?) as usize + 12;
                    let delta = i32::from_be_bytes(records[pos + 23..pos + 27].try_into()?);
                    if pos + len > records.len() {
                        break;
                    }
                    offsets[p.partition_index as usize] = base + i64::from(delta) + 1;
                    pos += len;
                }
                got += records.len() as u64;
            }
        }
    }
    Ok((start.elapsed(), got))
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// Runs produce then consume (consume needs data) and prints both with their baselines.
pub fn run(args: KafkaArgs, do_produce: bool, do_consume: bool) -> Result<(), BoxError> {
    std::fs::create_dir_all("bench-results")?;
    let work = tempfile::Builder::new()
        .prefix("kafka-")
        .tempdir_in("bench-results")?;
    let started = match &args.bootstrap_servers {
        Some(_) => None,
        None => {
            let bin = strata_testkit::strata_bin(args.strata_bin.as_deref())
                .map_err(|e| e as BoxError)?;
            let mut nodes = crate::local_cluster::start_nodes(&bin, work.path(), 1, &[])
                .map_err(|e| e as BoxError)?;
            nodes.pop()
        }
    };
    let bootstrap = args
        .bootstrap_servers
        .clone()
        .or_else(|| started.as_ref().map(|b| format!("127.0.0.1:{}", b.port)))
        .ok_or("no broker")?;
    let topic = format!("bench-{}", std::process::id());
    strata_testkit::create_topic(
        &bootstrap,
        &topic,
        args.partitions,
        1,
        Duration::from_secs(60),
    )?;
    let total = args.messages * args.message_bytes as u64;
    println!(
        "strata-bench: {} messages x {} B, acks={}, {} partition(s), broker {bootstrap}",
        args.messages, args.message_bytes, args.acks, args.partitions
    );
    // Producing is needed for consuming.
    let fsyncs_before = started
        .as_ref()
        .and_then(|b| strata_testkit::metric(&b.metrics, "strata_fsyncs"))
        .unwrap_or(0.0);
    let p = produce(&bootstrap, &topic, &args, None)?;
    let fsyncs = started
        .as_ref()
        .and_then(|b| strata_testkit::metric(&b.metrics, "strata_fsyncs"))
        .map(|f| f - fsyncs_before);
    let produce_mbps = total as f64 / p.elapsed.as_secs_f64() / 1e6;
    if do_produce {
        println!(
            "produce   {:>10.0} msgs/s {:>8.1} MB/s   latency p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            args.messages as f64 / p.elapsed.as_secs_f64(),
            produce_mbps,
            ms(&p.latency, 0.5),
            ms(&p.latency, 0.99),
            ms(&p.latency, 0.999),
            p.latency.max() as f64 / 1000.0
        );
        let sync_every = match fsyncs {
            Some(f) if f >= 1.0 => {
                println!(
                    "  broker fdatasyncs: {f:.0} ({:.0} per second)",
                    f / p.elapsed.as_secs_f64()
                );
                (total as f64 / f) as u64
            }
            _ => u64::MAX,
        };
        let base =
            crate::baseline::socket_to_file(work.path(), total, 64 << 10, sync_every.max(1))?;
        let base_mbps = total as f64 / base.as_secs_f64() / 1e6;
        println!(
            "  baseline: loopback TCP into a file, fdatasync every {} KiB: {base_mbps:.1} MB/s -> produce is {:.2}x of it (target >= 0.5)",
            if sync_every == u64::MAX {
                0
            } else {
                sync_every >> 10
            },
            produce_mbps / base_mbps
        );
        if let (Some(tls), Some(ca)) = (&args.tls_bootstrap, &args.tls_ca) {
            // The broker's side alone: plain Produce requests over each listener.
            for t in ["raw", "raw-tls"] {
                strata_testkit::create_topic(
                    &bootstrap,
                    &format!("{topic}-{t}"),
                    1,
                    1,
                    Duration::from_secs(60),
                )?;
            }
            let mut plain = TcpStream::connect(&bootstrap)?;
            plain.set_nodelay(true)?;
            let rp = produce_raw_on(
                &mut plain,
                &format!("{topic}-raw"),
                args.message_bytes,
                total,
            )?;
            let mut tls_conn = tls_stream(tls, ca)?;
            let rt = produce_raw_on(
                &mut tls_conn,
                &format!("{topic}-raw-tls"),
                args.message_bytes,
                total,
            )?;
            let (rp_mbps, rt_mbps) = (
                total as f64 / rp.as_secs_f64() / 1e6,
                total as f64 / rt.as_secs_f64() / 1e6,
            );
            println!(
                "produce, plain Produce requests (256 KiB batches, 8 in flight): plaintext {rp_mbps:.1} MB/s, TLS {rt_mbps:.1} MB/s -> {:.2}x",
                rt_mbps / rp_mbps
            );
            let tls_topic = format!("{topic}-tls");
            strata_testkit::create_topic(
                &bootstrap,
                &tls_topic,
                args.partitions,
                1,
                Duration::from_secs(60),
            )?;
            let t = produce(tls, &tls_topic, &args, Some(ca))?;
            let tls_mbps = total as f64 / t.elapsed.as_secs_f64() / 1e6;
            println!(
                "produce over TLS ({tls}) {:>10.0} msgs/s {tls_mbps:>8.1} MB/s   latency p50 {:.2} ms  p99 {:.2} ms -> {:.2}x of plaintext in the same run (target >= 0.7)",
                args.messages as f64 / t.elapsed.as_secs_f64(),
                ms(&t.latency, 0.5),
                ms(&t.latency, 0.99),
                tls_mbps / produce_mbps
            );
        }
    }
    if do_consume {
        let (d, bytes) = consume(&bootstrap, &topic, args.partitions, args.messages)?;
        let consume_mbps = bytes as f64 / d.as_secs_f64() / 1e6;
        println!(
            "consume   {:>10.0} msgs/s {:>8.1} MB/s (from page cache)",
            args.messages as f64 / d.as_secs_f64(),
            consume_mbps
        );
        let log_bytes = total + total / 16; // record and batch overhead, roughly
        let (rd, rbytes) = consume_raw(&bootstrap, &topic, args.partitions, log_bytes.min(total))?;
        let raw_mbps = rbytes as f64 / rd.as_secs_f64() / 1e6;
        println!(
            "consume, plain Fetch requests (no per-record client work): {raw_mbps:.1} MB/s of record batches"
        );
        let base = crate::baseline::sendfile(work.path(), rbytes)?;
        let base_mbps = rbytes as f64 / base.as_secs_f64() / 1e6;
        println!(
            "  baseline: sendfile of a page-cached file over loopback: {base_mbps:.1} MB/s -> plain Fetch is {:.2}x of it (target >= 0.7), librdkafka {:.2}x",
            raw_mbps / base_mbps,
            consume_mbps / base_mbps
        );
        if let (Some(tls), Some(ca)) = (&args.tls_bootstrap, &args.tls_ca) {
            let (td, tbytes) =
                consume_raw_tls(tls, ca, &topic, args.partitions, log_bytes.min(total))?;
            let tls_mbps = tbytes as f64 / td.as_secs_f64() / 1e6;
            println!(
                "consume, plain Fetch requests over TLS ({tls}): {tls_mbps:.1} MB/s -> {:.2}x of plaintext in the same run (target >= 0.5)",
                tls_mbps / raw_mbps
            );
        }
    }
    drop(started);
    Ok(())
}
