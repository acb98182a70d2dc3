//! Followers copying from their leader: one task per leader broker fetches every partition this
//! broker follows there, in one Fetch request with this broker's replica id.
//!
//! Per partition: after a leader change, the follower first asks the leader for the end offset
//! of its own latest epoch (OffsetForLeaderEpoch) and truncates to the divergence point, so it
//! keeps no history the leader lacks. Then it fetches from its log end offset, appends what
//! comes (offsets and epochs as the leader assigned them) and sends the next fetch only once
//! those appends are durable: the offset the leader sees is what this replica has fsynced, and
//! the leader's high watermark never counts a record a crash here could lose.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderEpochResponse;
use kafka_protocol::messages::{ApiKey, BrokerId as WireBrokerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use strata_engine::{FlushPolicy, LeaderEpoch, Offset, Stage};
use strata_replication::{BrokerId, Role};

use super::kafka_client::{KafkaClientError, KafkaConnection};
use super::replica_manager::report_failed_replica;
use super::throttle;
use crate::broker::Broker;
use crate::error_code::ErrorCode;
use crate::topic::Partition;

const FETCH_VERSION: i16 = 12;
const EPOCH_VERSION: i16 = 4;
/// Bytes per partition per fetch.
const PARTITION_MAX_BYTES: i32 = 1 << 20;
/// Pause after the leader refuses a partition (its metadata may be a moment behind ours).
const RETRY_AFTER: Duration = Duration::from_millis(50);

/// Makes sure a fetcher runs for `leader`.
pub fn ensure(broker: &Arc<Broker>, leader: i32) {
    let Some(cluster) = broker.cluster.as_ref() else {
        return;
    };
    let mut fetchers = cluster.fetchers.lock().unwrap_or_else(|p| p.into_inner());
    if fetchers.get(&leader).is_some_and(|h| !h.is_finished()) {
        return;
    }
    fetchers.insert(leader, tokio::spawn(run(broker.clone(), leader)));
}

/// The partitions this broker follows on `leader`, ready to fetch now. A replica whose log is
/// offline (a failed write) is left out: it was reported failed and waits for a restart.
fn followed(broker: &Broker, leader: i32) -> Vec<Arc<Partition>> {
    let now = Instant::now();
    broker
        .topics()
        .iter()
        .flat_map(|t| t.local_partitions())
        .filter(|p| !p.log.is_offline())
        .filter(|p| {
            p.with_replica(|r| {
                r.machine.role() == &Role::Follower(BrokerId(leader))
                    && r.retry_at.is_none_or(|t| t <= now)
            })
            .unwrap_or(false)
        })
        .collect()
}

pub(crate) fn endpoint(broker: &Broker, leader: i32) -> Option<String> {
    if let Some((_, addr)) = broker
        .config
        .inter_broker_address_overrides
        .iter()
        .find(|(id, _)| *id == leader)
    {
        return Some(addr.to_string());
    }
    let cluster = broker.cluster.as_ref()?;
    cluster
        .image()
        .brokers
        .get(&BrokerId(leader))
        .map(|b| b.endpoint.clone())
}

async fn run(broker: Arc<Broker>, leader: i32) {
    let client_id = format!("strata-replica-{}", broker.config.node_id);
    let mut conn: Option<(String, KafkaConnection)> = None;
    let mut last_error = String::new();
    // Since when nothing has been followed from this leader: a connection unused for a minute
    // is let go, before the leader's `connections.max.idle.ms` closes it under us.
    let mut unused_since: Option<tokio::time::Instant> = None;
    loop {
        if broker
            .cluster
            .as_ref()
            .is_none_or(|c| c.is_shutting_down() && broker.topics().is_empty())
        {
            return;
        }
        let partitions = followed(&broker, leader);
        if partitions.is_empty() {
            let since = *unused_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > Duration::from_secs(60) {
                conn = None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        unused_since = None;
        let Some(addr) = endpoint(&broker, leader) else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(cluster) = broker.cluster.as_ref() else {
            return;
        };
        if conn.as_ref().is_none_or(|(a, _)| *a != addr) {
            match KafkaConnection::connect(&addr, &client_id, &cluster.inter_broker).await {
                Ok(c) => conn = Some((addr, c)),
                Err(e) => {
                    // A TLS failure surfaces as invalid data.
                    let refused = match &e {
                        KafkaClientError::Authentication(_) => true,
                        KafkaClientError::Io(io) => io.kind() == std::io::ErrorKind::InvalidData,
                        KafkaClientError::Protocol(_) => false,
                    };
                    if refused && e.to_string() != last_error {
                        // A refused login or certificate is a configuration error the operator
                        // must see; logged once per change, not per retry.
                        tracing::warn!(leader, error = %e, "cannot follow the leader: connecting to its inter-broker listener failed");
                        last_error = e.to_string();
                    } else {
                        tracing::debug!(leader, error = %e, "connecting to the leader");
                    }
                    cluster.mark_unreachable(leader);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let Some((_, c)) = conn.as_mut() else {
            continue;
        };
        match round(&broker, c, partitions).await {
            Ok(()) => cluster.mark_reachable(leader),
            Err(e) => {
                tracing::debug!(leader, error = %e, "replica fetch failed");
                if matches!(e, KafkaClientError::Io(_)) {
                    cluster.mark_unreachable(leader);
                }
                conn = None;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn round(
    broker: &Arc<Broker>,
    conn: &mut KafkaConnection,
    partitions: Vec<Arc<Partition>>,
) -> Result<(), KafkaClientError> {
    let (truncating, fetching): (Vec<_>, Vec<_>) = partitions
        .into_iter()
        .partition(|p| p.with_replica(|r| r.needs_truncation).unwrap_or(false));
    if !truncating.is_empty() {
        truncate(broker, conn, &truncating).await?;
    }
    if fetching.is_empty() {
        return Ok(());
    }
    fetch(broker, conn, &fetching).await
}

fn key(p: &Partition) -> (String, i32) {
    (p.topic.clone(), p.index)
}

fn retry_later(p: &Partition) {
    p.with_replica(|r| r.retry_at = Some(Instant::now() + RETRY_AFTER));
}

/// OffsetForLeaderEpoch for each partition, then truncation to the divergence point.
async fn truncate(
    broker: &Arc<Broker>,
    conn: &mut KafkaConnection,
    partitions: &[Arc<Partition>],
) -> Result<(), KafkaClientError> {
    let mut by_topic: BTreeMap<String, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    let mut asked = BTreeMap::new();
    for p in partitions {
        let Some(latest) = p.log.leader_epochs().latest_epoch() else {
            // Nothing with an epoch here: nothing can diverge.
            p.with_replica(|r| r.needs_truncation = false);
            continue;
        };
        let mut op = OffsetForLeaderPartition::default();
        op.partition = p.index;
        op.current_leader_epoch = p.leader_epoch().0;
        op.leader_epoch = latest.0;
        by_topic.entry(p.topic.clone()).or_default().push(op);
        asked.insert(key(p), (p.clone(), p.leader_epoch()));
    }
    if by_topic.is_empty() {
        return Ok(());
    }
    let mut req = OffsetForLeaderEpochRequest::default();
    req.replica_id = WireBrokerId(broker.config.node_id);
    req.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut ot = OffsetForLeaderTopic::default();
            ot.topic = TopicName(StrBytes::from_string(t));
            ot.partitions = ps;
            ot
        })
        .collect();
    let resp: OffsetForLeaderEpochResponse = conn
        .request(
            ApiKey::OffsetForLeaderEpoch,
            EPOCH_VERSION,
            &req,
            Duration::from_secs(5),
        )
        .await?;
    for t in resp.topics {
        for r in t.partitions {
            let Some((p, epoch)) = asked.remove(&(t.topic.0.to_string(), r.partition)) else {
                continue;
            };
            if p.leader_epoch() != epoch {
                continue; // the role changed meanwhile; the next round starts over
            }
            if r.error_code != 0 {
                retry_later(&p);
                continue;
            }
            let answer = (r.leader_epoch >= 0 && r.end_offset >= 0)
                .then_some((LeaderEpoch(r.leader_epoch), Offset(r.end_offset)));
            let leo = p.log.log_end_offset();
            let target = strata_replication::partition::truncation_offset(leo, answer, |e| {
                p.log.end_offset_for_epoch(e).map_or(leo, |(_, end)| end)
            });
            let p2 = p.clone();
            let truncated = tokio::task::spawn_blocking(move || p2.truncate_to(target)).await;
            match truncated {
                Ok(Ok(end)) => {
                    if end < leo {
                        tracing::info!(topic = %p.topic, partition = p.index, from = leo.0, to = end.0, "truncated to the leader's history");
                    }
                    p.with_replica(|r| r.needs_truncation = false);
                }
                Ok(Err(e)) => {
                    tracing::error!(topic = %p.topic, partition = p.index, error = %e, "truncation failed");
                    retry_later(&p);
                }
                Err(e) => {
                    tracing::error!(error = %e, "truncation task failed");
                    retry_later(&p);
                }
            }
        }
    }
    Ok(())
}

async fn fetch(
    broker: &Arc<Broker>,
    conn: &mut KafkaConnection,
    partitions: &[Arc<Partition>],
) -> Result<(), KafkaClientError> {
    let mut by_topic: BTreeMap<String, Vec<FetchPartition>> = BTreeMap::new();
    let mut asked = BTreeMap::new();
    let me = broker.config.node_id;
    let rate = broker
        .effective_config()
        .follower_replication_throttled_rate;
    let mut throttled = std::collections::BTreeSet::new();
    for p in partitions {
        let mut fp = FetchPartition::default();
        fp.partition = p.index;
        fp.current_leader_epoch = p.leader_epoch().0;
        fp.fetch_offset = p.local_end().0;
        fp.last_fetched_epoch = -1;
        fp.log_start_offset = -1;
        fp.partition_max_bytes = PARTITION_MAX_BYTES;
        // KIP-73: an out-of-sync replica the topic throttles fetches at the follower rate.
        if let Some(cluster) = broker.cluster.as_ref()
            && rate < throttle::UNLIMITED
            && !cluster.in_isr(&p.topic, p.index, me)
            && broker.topic(&p.topic).is_some_and(|t| {
                throttle::replica_throttled(&t, throttle::FOLLOWER_REPLICAS, p.index, me)
            })
        {
            if let Some(wait) = cluster.follower_throttle.delay(rate) {
                p.with_replica(|r| r.retry_at = Some(Instant::now() + wait));
                continue;
            }
            fp.partition_max_bytes = throttle::Throttle::quantum(rate, PARTITION_MAX_BYTES);
            throttled.insert(key(p));
        }
        by_topic.entry(p.topic.clone()).or_default().push(fp);
        asked.insert(key(p), (p.clone(), p.leader_epoch()));
    }
    if by_topic.is_empty() {
        return Ok(());
    }
    let mut req = FetchRequest::default();
    req.replica_id = WireBrokerId(broker.config.node_id);
    req.max_wait_ms = i32::try_from(broker.config.replica_fetch_wait_max_ms).unwrap_or(500);
    req.min_bytes = 1;
    req.max_bytes = 16 << 20;
    req.session_epoch = -1;
    req.topics = by_topic
        .into_iter()
        .map(|(t, ps)| {
            let mut ft = FetchTopic::default();
            ft.topic = TopicName(StrBytes::from_string(t));
            ft.partitions = ps;
            ft
        })
        .collect();
    let wait =
        Duration::from_millis(broker.config.replica_fetch_wait_max_ms) + Duration::from_secs(5);
    let resp: FetchResponse = conn
        .request(ApiKey::Fetch, FETCH_VERSION, &req, wait)
        .await?;
    let mut appended = Vec::new();
    for t in resp.responses {
        for pd in t.partitions {
            let Some((p, epoch)) = asked.remove(&(t.topic.0.to_string(), pd.partition_index))
            else {
                continue;
            };
            if p.leader_epoch() != epoch || p.is_leader() {
                continue;
            }
            match ErrorCode::from_code(pd.error_code) {
                Some(ErrorCode::None) => {}
                Some(ErrorCode::OffsetOutOfRange) => {
                    let leader_start = Offset(pd.log_start_offset);
                    if p.local_end() < leader_start {
                        // What we would fetch next is gone from the leader (retention or
                        // DeleteRecords): start over at its log start.
                        tracing::warn!(topic = %p.topic, partition = p.index, from = p.local_end().0, to = leader_start.0, "behind the leader's log start; starting over there");
                        let p2 = p.clone();
                        let restarted =
                            tokio::task::spawn_blocking(move || p2.restart_at(leader_start)).await;
                        if !matches!(restarted, Ok(Ok(_))) {
                            tracing::error!(topic = %p.topic, partition = p.index, outcome = ?restarted.map(|r| r.map(|o| o.0)), "restarting the replica's log");
                        }
                    } else {
                        tracing::warn!(topic = %p.topic, partition = p.index, "fetch offset past the leader's end; checking for divergence");
                        p.with_replica(|r| r.needs_truncation = true);
                    }
                    retry_later(&p);
                    continue;
                }
                other => {
                    tracing::debug!(topic = %p.topic, partition = p.index, code = ?other, "leader refused the fetch");
                    retry_later(&p);
                    continue;
                }
            }
            // DeleteRecords on the leader: move our log start with it (never past our end).
            let leader_start = Offset(pd.log_start_offset);
            if leader_start > p.log.log_start_offset() {
                let to = leader_start.min(p.log.log_end_offset());
                let p2 = p.clone();
                match tokio::task::spawn_blocking(move || p2.log.delete_records_before(to)).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(topic = %p.topic, partition = p.index, error = %e, "following the leader's log start")
                    }
                    Err(e) => tracing::warn!(error = %e, "log start task failed"),
                }
            }
            let records = pd.records.unwrap_or_default();
            if throttled.contains(&key(&p))
                && let Some(cluster) = broker.cluster.as_ref()
            {
                cluster.follower_throttle.record(rate, records.len());
            }
            if records.is_empty() {
                let leo = p.local_end();
                p.with_replica(|r| {
                    r.machine
                        .on_leader_high_watermark(Offset(pd.high_watermark), leo)
                });
                continue;
            }
            match p.append_as_follower(records) {
                Ok(info) => appended.push((p, info, Offset(pd.high_watermark))),
                // A failed write: the log is offline until the broker restarts, so this replica
                // cannot confirm anything; the controller takes it out of the ISR at once
                // (acks=all need not wait `replica.lag.time.max.ms` for it).
                Err(_) if p.log.is_offline() => report_failed_replica(broker, &p),
                Err((code, message)) => {
                    tracing::warn!(topic = %p.topic, partition = p.index, ?code, %message, "appending fetched records failed; checking for divergence");
                    p.with_replica(|r| r.needs_truncation = true);
                    retry_later(&p);
                }
            }
        }
    }
    // The next fetch reports these offsets as ours: they must be durable first.
    for (p, info, leader_hw) in appended {
        let stage = match p.log.flush_policy() {
            FlushPolicy::Always => Stage::Durable,
            _ => Stage::Written,
        };
        if let Err(e) = info.completion.until(stage).await {
            tracing::error!(topic = %p.topic, partition = p.index, error = %e, "follower append failed");
            if p.log.is_offline() {
                report_failed_replica(broker, &p);
            }
            retry_later(&p);
            continue;
        }
        let leo = p.local_end();
        p.with_replica(|r| r.machine.on_leader_high_watermark(leader_hw, leo));
    }
    Ok(())
}
