//! Prometheus metrics: request rates and latencies per API, bytes in and out, malformed
//! requests; and, computed at scrape time, log end offsets and high watermarks per partition,
//! fsyncs and batches per fsync, and consumer lag per group and partition. Served as text at
//! `GET /metrics` on `metrics.listen`.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::ApiKey;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::handler::Context;

/// Label of per-API metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabel {
    /// API name, e.g. `Produce`.
    pub api: String,
}

/// Label of per-partition metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabel {
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: String,
}

/// Label of consumer lag.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabel {
    /// Group id.
    pub group: String,
    /// Topic.
    pub topic: String,
    /// Partition index.
    pub partition: String,
}

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

/// The broker's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<ApiLabel, Counter>,
    latency: Family<ApiLabel, Histogram, fn() -> Histogram>,
    /// Record bytes received in Produce requests.
    pub bytes_in: Counter,
    /// Record bytes sent in Fetch responses.
    pub bytes_out: Counter,
    /// Record bytes a follower replica served to consumers (KIP-392 rack-aware reads).
    pub follower_read_bytes: Counter,
    /// Frames closed as malformed, oversized or unsupported.
    pub malformed_requests: Counter,
    /// Responses that did not encode at their request's version (a bug: answered with the
    /// API's error response), by API.
    response_encode_errors: Family<ApiLabel, Counter>,
    /// Produced batches recognised as retries of stored ones (idempotent producer).
    pub duplicate_batches: Counter,
    /// Batches found corrupt on disk when read (failed CRC-32C or framing).
    pub corrupt_batches: Counter,
    /// Transactions this broker coordinated to a commit (every marker written).
    pub transactions_committed: Counter,
    /// Transactions this broker coordinated to an abort (by the client, a new producer of the
    /// id, or a timeout).
    pub transactions_aborted: Counter,
    /// Transactions aborted because they were open past their `transaction.timeout.ms`.
    pub transactions_timed_out: Counter,
    /// Rounds of transaction markers that left some partition unwritten (retried).
    pub transaction_marker_retries: Counter,
    /// TLS handshakes that failed or timed out (a plaintext client on an SSL listener, a
    /// certificate the truststore does not vouch for, a client that never finished).
    pub tls_handshake_failures: Counter,
    /// Reloads of the TLS keystore or truststore after their files changed.
    pub tls_reloads: Counter,
    /// Connections refused at accept for `max.connections`.
    pub connections_refused_total_limit: Counter,
    /// Connections refused at accept for their address's limit.
    pub connections_refused_ip_limit: Counter,
    /// Connections that waited for `max.connection.creation.rate`.
    pub connections_creation_throttled: Counter,
    /// Connections closed after `connections.max.idle.ms` without a request.
    pub connections_closed_idle: Counter,
    /// Connections closed because a frame begun did not arrive whole in time.
    pub connections_closed_slow: Counter,
    /// SASL exchanges that failed (wrong credentials, unknown user, a malformed message).
    pub sasl_authentication_failures: Counter,
    /// Successful SASL re-authentications (KIP-368).
    pub sasl_reauthentications: Counter,
    /// Connections closed because their SASL session expired without a re-authentication.
    pub sasl_sessions_expired: Counter,
    /// Operations the authorizer denied.
    pub authorization_denials: Counter,
    /// Produce requests over their client quota (answered with a throttle time; the
    /// connection is muted for it).
    pub quota_produce_throttled: Counter,
    /// Fetch requests over their client quota.
    pub quota_fetch_throttled: Counter,
    /// Requests over their client's `request_percentage` quota.
    pub quota_request_throttled: Counter,
    /// Connections closed because their address was over its `connection_creation_rate`.
    pub connections_refused_ip_rate: Counter,
    /// Record bytes a fetch read and checked (framing, CRC-32C) before sending.
    pub fetch_checked_bytes: Counter,
    /// Record bytes a fetch sent without checking them again: checked by an earlier fetch and
    /// unchanged since (see the engine's `FileSlice::verify`).
    pub fetch_trusted_bytes: Counter,
    log_end_offset: Family<PartitionLabel, Gauge>,
    high_watermark: Family<PartitionLabel, Gauge>,
    fsyncs: Gauge,
    sync_rounds: Gauge,
    syncfs_rounds: Gauge,
    batches_synced: Gauge,
    batches_per_fsync: Gauge<f64, std::sync::atomic::AtomicU64>,
    consumer_lag: Family<LagLabel, Gauge>,
    /// 1 while this node is the active controller.
    pub controller_active: Gauge,
    /// Open fetch sessions (KIP-227).
    fetch_sessions: Gauge,
    /// Fetches answered within a session with only what changed.
    pub incremental_fetches: Counter,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("strata");
        let requests = Family::<ApiLabel, Counter>::default();
        let latency = Family::<ApiLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            histogram as fn() -> Histogram,
        );
        let m = Metrics {
            requests,
            latency,
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            follower_read_bytes: Counter::default(),
            malformed_requests: Counter::default(),
            response_encode_errors: Family::default(),
            duplicate_batches: Counter::default(),
            transactions_committed: Counter::default(),
            transactions_aborted: Counter::default(),
            transactions_timed_out: Counter::default(),
            transaction_marker_retries: Counter::default(),
            corrupt_batches: Counter::default(),
            tls_handshake_failures: Counter::default(),
            tls_reloads: Counter::default(),
            connections_refused_total_limit: Counter::default(),
            connections_refused_ip_limit: Counter::default(),
            connections_closed_idle: Counter::default(),
            connections_creation_throttled: Counter::default(),
            connections_closed_slow: Counter::default(),
            sasl_authentication_failures: Counter::default(),
            authorization_denials: Counter::default(),
            quota_produce_throttled: Counter::default(),
            quota_fetch_throttled: Counter::default(),
            quota_request_throttled: Counter::default(),
            connections_refused_ip_rate: Counter::default(),
            sasl_reauthentications: Counter::default(),
            sasl_sessions_expired: Counter::default(),
            fetch_checked_bytes: Counter::default(),
            fetch_trusted_bytes: Counter::default(),
            log_end_offset: Family::default(),
            high_watermark: Family::default(),
            fsyncs: Gauge::default(),
            sync_rounds: Gauge::default(),
            syncfs_rounds: Gauge::default(),
            batches_synced: Gauge::default(),
            batches_per_fsync: Gauge::default(),
            consumer_lag: Family::default(),
            controller_active: Gauge::default(),
            fetch_sessions: Gauge::default(),
            incremental_fetches: Counter::default(),
            registry: Registry::default(),
        };
        registry.register("requests", "Requests handled, by API", m.requests.clone());
        registry.register(
            "request_latency_seconds",
            "Request handling time, by API",
            m.latency.clone(),
        );
        registry.register(
            "duplicate_batches",
            "Produced batches acknowledged as retries of stored ones",
            m.duplicate_batches.clone(),
        );
        registry.register(
            "corrupt_batches",
            "Batches found corrupt on disk when read",
            m.corrupt_batches.clone(),
        );
        registry.register(
            "transactions_committed",
            "Transactions coordinated here to a commit (every marker written)",
            m.transactions_committed.clone(),
        );
        registry.register(
            "transactions_aborted",
            "Transactions coordinated here to an abort",
            m.transactions_aborted.clone(),
        );
        registry.register(
            "transactions_timed_out",
            "Transactions aborted past their transaction.timeout.ms",
            m.transactions_timed_out.clone(),
        );
        registry.register(
            "transaction_marker_retries",
            "Rounds of transaction markers that left some partition unwritten",
            m.transaction_marker_retries.clone(),
        );
        registry.register(
            "connections_refused_total_limit",
            "Connections closed at accept: max.connections reached",
            m.connections_refused_total_limit.clone(),
        );
        registry.register(
            "connections_refused_ip_limit",
            "Connections closed at accept: the address's max.connections.per.ip reached",
            m.connections_refused_ip_limit.clone(),
        );
        registry.register(
            "connections_creation_throttled",
            "New connections that waited for max.connection.creation.rate",
            m.connections_creation_throttled.clone(),
        );
        registry.register(
            "connections_closed_idle",
            "Connections closed after connections.max.idle.ms without a request",
            m.connections_closed_idle.clone(),
        );
        registry.register(
            "connections_closed_slow",
            "Connections closed because a request frame did not arrive whole within request.read.timeout.ms",
            m.connections_closed_slow.clone(),
        );
        registry.register(
            "tls_reloads",
            "Reloads of the TLS keystore or truststore after their files changed",
            m.tls_reloads.clone(),
        );
        registry.register(
            "tls_handshake_failures",
            "TLS handshakes on SSL listeners that failed or timed out",
            m.tls_handshake_failures.clone(),
        );
        registry.register(
            "quota_produce_throttled",
            "Produce requests over their client quota (throttled)",
            m.quota_produce_throttled.clone(),
        );
        registry.register(
            "quota_fetch_throttled",
            "Fetch requests over their client quota (throttled)",
            m.quota_fetch_throttled.clone(),
        );
        registry.register(
            "quota_request_throttled",
            "Requests over their client's request_percentage quota (throttled)",
            m.quota_request_throttled.clone(),
        );
        registry.register(
            "connections_refused_ip_rate",
            "Connections closed: their address was over its connection_creation_rate quota",
            m.connections_refused_ip_rate.clone(),
        );
        registry.register(
            "sasl_authentication_failures",
            "SASL exchanges that failed",
            m.sasl_authentication_failures.clone(),
        );
        registry.register(
            "sasl_reauthentications",
            "SASL re-authentications of open connections (KIP-368)",
            m.sasl_reauthentications.clone(),
        );
        registry.register(
            "sasl_sessions_expired",
            "Connections closed: their SASL session expired (connections.max.reauth.ms)",
            m.sasl_sessions_expired.clone(),
        );
        registry.register(
            "authorization_denials",
            "Operations the authorizer denied (ACLs)",
            m.authorization_denials.clone(),
        );
        registry.register(
            "fetch_checked_bytes",
            "Record bytes read and checked (framing, CRC-32C) by fetches before sending",
            m.fetch_checked_bytes.clone(),
        );
        registry.register(
            "fetch_trusted_bytes",
            "Record bytes fetches sent unchecked: checked before and unchanged since",
            m.fetch_trusted_bytes.clone(),
        );
        registry.register(
            "fetch_sessions",
            "Open incremental fetch sessions (KIP-227)",
            m.fetch_sessions.clone(),
        );
        registry.register(
            "incremental_fetches",
            "Fetches answered within a session with only what changed",
            m.incremental_fetches.clone(),
        );
        registry.register("bytes_in", "Record bytes produced", m.bytes_in.clone());
        registry.register("bytes_out", "Record bytes fetched", m.bytes_out.clone());
        registry.register(
            "follower_read_bytes",
            "Record bytes served to consumers by a follower replica (rack-aware reads)",
            m.follower_read_bytes.clone(),
        );
        registry.register(
            "malformed_requests",
            "Connections closed for malformed, oversized or unsupported frames",
            m.malformed_requests.clone(),
        );
        registry.register(
            "response_encode_errors",
            "Responses that did not encode at the request's version (answered UNKNOWN_SERVER_ERROR), by API",
            m.response_encode_errors.clone(),
        );
        registry.register(
            "log_end_offset",
            "Log end offset, by partition",
            m.log_end_offset.clone(),
        );
        registry.register(
            "high_watermark",
            "High watermark, by partition",
            m.high_watermark.clone(),
        );
        registry.register(
            "fsyncs",
            "Files made durable by the commit pipeline (one per fdatasync, or per file a syncfs covered)",
            m.fsyncs.clone(),
        );
        registry.register(
            "sync_rounds",
            "Sync rounds of the commit pipeline (all files due at once: fdatasyncs in flight together, or one syncfs per file system)",
            m.sync_rounds.clone(),
        );
        registry.register(
            "syncfs_rounds",
            "Sync rounds that used syncfs because many files were dirty",
            m.syncfs_rounds.clone(),
        );
        registry.register(
            "batches_synced",
            "Record batches made durable by fdatasync",
            m.batches_synced.clone(),
        );
        registry.register(
            "batches_per_fsync",
            "Record batches made durable per fdatasync",
            m.batches_per_fsync.clone(),
        );
        registry.register(
            "consumer_lag",
            "High watermark minus committed offset, by group and partition",
            m.consumer_lag.clone(),
        );
        registry.register(
            "controller_active",
            "1 while this node is the active controller of the metadata quorum",
            m.controller_active.clone(),
        );
        // Every API's encode-error count exists from the start (at 0), so a scrape shows it
        // and a rate over it starts from a sample.
        for api in ApiKey::iter() {
            if crate::handler::supported_versions(api).is_some() {
                let _ = m.response_encode_errors.get_or_create(&ApiLabel {
                    api: format!("{api:?}"),
                });
            }
        }
        Metrics { registry, ..m }
    }

    /// Counts a response that did not encode.
    pub fn response_encode_error(&self, api: ApiKey) {
        self.response_encode_errors
            .get_or_create(&ApiLabel {
                api: format!("{api:?}"),
            })
            .inc();
    }

    /// Counts a handled request and its latency.
    pub fn observe_request(&self, api: ApiKey, elapsed: Duration) {
        let label = ApiLabel {
            api: format!("{api:?}"),
        };
        self.requests.get_or_create(&label).inc();
        self.latency
            .get_or_create(&label)
            .observe(elapsed.as_secs_f64());
    }

    /// Refreshes the scrape-time values and encodes everything as Prometheus text.
    pub fn render(&self, ctx: &Context) -> String {
        let broker = &ctx.broker;
        let lags = ctx.groups.lags(broker);
        self.fetch_sessions.set(ctx.fetch_sessions.len() as i64);
        self.controller_active.set(i64::from(
            ctx.controller.as_ref().is_some_and(|c| c.is_active()),
        ));
        for t in broker.topics() {
            for p in t.local_partitions() {
                let l = PartitionLabel {
                    topic: t.name.clone(),
                    partition: p.index.to_string(),
                };
                self.log_end_offset
                    .get_or_create(&l)
                    .set(p.log.log_end_offset().0);
                self.high_watermark
                    .get_or_create(&l)
                    .set(p.high_watermark().0);
            }
        }
        let stats = broker.pipeline_stats();
        self.fsyncs
            .set(stats.fsyncs.load(std::sync::atomic::Ordering::Relaxed) as i64);
        self.sync_rounds
            .set(stats.sync_rounds.load(std::sync::atomic::Ordering::Relaxed) as i64);
        self.syncfs_rounds.set(
            stats
                .syncfs_rounds
                .load(std::sync::atomic::Ordering::Relaxed) as i64,
        );
        self.batches_synced.set(
            stats
                .batches_synced
                .load(std::sync::atomic::Ordering::Relaxed) as i64,
        );
        self.batches_per_fsync.set(stats.batches_per_fsync());
        self.consumer_lag.clear();
        for (group, topic, partition, lag) in lags {
            self.consumer_lag
                .get_or_create(&LagLabel {
                    group,
                    topic,
                    partition: partition.to_string(),
                })
                .set(lag);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves `GET /metrics` until shutdown.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<crate::handler::Context>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => return,
        };
        let Ok((mut stream, _)) = accepted else {
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            while n < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf[n..])).await
                {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => return,
                    Ok(Ok(k)) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics") {
                ("200 OK", ctx.metrics.render(&ctx))
            } else {
                ("404 Not Found", "try GET /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
