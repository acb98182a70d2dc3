//! Fetch (long-polling), ListOffsets and OffsetForLeaderEpoch.
//!
//! Fetch returns whole batches below the high watermark, starting with the batch that holds the
//! fetch offset, within the partition and response byte limits (the first partition with data
//! always gets at least one batch, KIP-74). With too little data it waits, woken by appends,
//! until `min_bytes` are there or `max_wait_ms` passes.

use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::fetch_request::FetchRequest;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchResponse, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_request::ListOffsetsRequest;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderEpochRequest;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderEpochResponse, OffsetForLeaderTopicResult,
};
use strata_engine::{FileSlice, LeaderEpoch, LogError, Offset, ReadLimits, Verification};

use crate::wire_out::marker;

use super::{Context, s};
use crate::error_code::ErrorCode;

/// Checks a client's view of the leader epoch (KIP-320): -1 skips the check.
fn epoch_check(current: i32, requested: i32) -> Option<ErrorCode> {
    if requested < 0 || requested == current {
        None
    } else if requested < current {
        Some(ErrorCode::FencedLeaderEpoch)
    } else {
        Some(ErrorCode::UnknownLeaderEpoch)
    }
}

/// KIP-392 with `replica.selector.class` rack-aware: for a consumer in `rack` (and a leader
/// elsewhere), the in-sync replica in that rack whose log reaches `fetch_offset`, the most
/// caught up first (the lower id on a tie); `None` keeps the consumer on the leader.
fn preferred_read_replica(
    ctx: &Context,
    partition: &crate::topic::Partition,
    rack: &str,
    fetch_offset: i64,
) -> Option<i32> {
    if !ctx.broker.config.rack_aware_reads || rack.is_empty() {
        return None;
    }
    if ctx.broker.config.rack.as_deref() == Some(rack) {
        return None;
    }
    let cluster = ctx.broker.cluster.as_ref()?;
    let image = cluster.image();
    partition
        .read_replicas(Offset(fetch_offset))
        .into_iter()
        .filter(|(b, _)| {
            image
                .brokers
                .get(b)
                .is_some_and(|r| !r.fenced && r.rack.as_deref() == Some(rack))
        })
        .max_by_key(|(b, leo)| (*leo, std::cmp::Reverse(b.0)))
        .map(|(b, _)| b.0)
}

fn build(
    ctx: &std::sync::Arc<Context>,
    r: &FetchRequest,
    version: i16,
) -> (FetchResponse, usize, Vec<FileSlice>) {
    let replica_id = if version >= 15 {
        r.replica_state.replica_id.0
    } else {
        r.replica_id.0
    };
    let rack = r.rack_id.as_str();
    let mut files = Vec::new();
    let mut remaining = usize::try_from(r.max_bytes).unwrap_or(0).max(1);
    let mut total = 0usize;
    let mut topics = Vec::with_capacity(r.topics.len());
    for ft in &r.topics {
        let topic = if version >= 13 {
            ctx.broker.topic_by_id(ft.topic_id)
        } else {
            ctx.broker.topic(ft.topic.0.as_str())
        };
        let mut partitions = Vec::with_capacity(ft.partitions.len());
        // Consumers need READ on the topic; a replica fetching (replica id >= 0) needs
        // CLUSTER_ACTION on the cluster, as Kafka checks.
        let allowed = if replica_id >= 0 {
            ctx.authorized_on_cluster(crate::acl::Operation::ClusterAction)
        } else {
            let name = topic
                .as_ref()
                .map_or(ft.topic.0.as_str(), |t| t.name.as_str());
            ctx.authorized(
                crate::acl::Operation::Read,
                crate::acl::ResourceType::Topic,
                name,
            )
        };
        for fp in &ft.partitions {
            let mut pd = msg!(PartitionData {
                partition_index: fp.partition,
                high_watermark: -1,
                last_stable_offset: -1,
                log_start_offset: -1,
                preferred_read_replica: (-1).into(),
                records: Some(Bytes::new()),
            });
            if !allowed {
                pd.error_code = if replica_id >= 0 {
                    ErrorCode::ClusterAuthorizationFailed
                } else {
                    ErrorCode::TopicAuthorizationFailed
                }
                .code();
                partitions.push(pd);
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(fp.partition)) else {
                pd.error_code = if version >= 13 && topic.is_none() {
                    ErrorCode::UnknownTopicId
                } else {
                    ctx.broker
                        .missing_partition_code(topic.as_deref(), fp.partition)
                }
                .code();
                partitions.push(pd);
                continue;
            };
            let follower = replica_id >= 0 && partition.is_replica();
            let mut leader_throttled = None;
            let mut follower_read = false;
            if follower {
                let now = ctx.broker.cluster.as_ref().map_or(0, |c| c.now_ms());
                // A high watermark this fetch moves wakes the consumers long-polling for this
                // partition (`Partition::with_replica`).
                let outcome = partition.on_follower_fetch(
                    strata_replication::BrokerId(replica_id),
                    LeaderEpoch(fp.current_leader_epoch),
                    Offset(fp.fetch_offset),
                    now,
                );
                match outcome {
                    Ok(Some(alter)) => {
                        crate::cluster::replica_manager::propose_isr(&ctx.broker, &partition, alter)
                    }
                    Ok(None) => {}
                    Err(code) => {
                        pd.error_code = code.code();
                        partitions.push(pd);
                        continue;
                    }
                }
                // KIP-73: what an out-of-sync follower of a throttled replica gets is capped
                // at the leader rate; while the bucket is in debt it gets no records.
                let rate = ctx
                    .broker
                    .effective_config()
                    .leader_replication_throttled_rate;
                let me = ctx.broker.config.node_id;
                if let Some(cluster) = ctx.broker.cluster.as_ref()
                    && rate < crate::cluster::throttle::UNLIMITED
                    && !cluster.in_isr(&partition.topic, partition.index, replica_id)
                    && topic.as_ref().is_some_and(|t| {
                        crate::cluster::throttle::replica_throttled(
                            t,
                            crate::cluster::throttle::LEADER_REPLICAS,
                            partition.index,
                            me,
                        )
                    })
                {
                    if cluster.leader_throttle.delay(rate).is_some() {
                        let hw = partition.high_watermark();
                        pd.high_watermark = hw.0;
                        pd.last_stable_offset = hw.0;
                        pd.log_start_offset = partition.log.log_start_offset().0;
                        partitions.push(pd);
                        continue;
                    }
                    leader_throttled = Some(rate);
                }
            } else if !partition.is_leader() {
                // KIP-392: a follower serves a consumer that sends its client metadata (v11+),
                // below its own high watermark, in its own leader epoch.
                if !(version >= 11 && partition.is_follower()) {
                    pd.error_code = ErrorCode::NotLeaderOrFollower.code();
                    partitions.push(pd);
                    continue;
                }
                if let Some(code) = epoch_check(partition.leader_epoch().0, fp.current_leader_epoch)
                {
                    pd.error_code = code.code();
                    partitions.push(pd);
                    continue;
                }
                follower_read = true;
            } else if let Some(code) =
                epoch_check(partition.leader_epoch().0, fp.current_leader_epoch)
            {
                pd.error_code = code.code();
                partitions.push(pd);
                continue;
            } else if version >= 11
                && let Some(replica) =
                    preferred_read_replica(ctx, &partition, rack, fp.fetch_offset)
            {
                // A replica in the consumer's rack has what it asks for: send it there, with
                // no records (KIP-392).
                let hw = partition.high_watermark();
                pd.high_watermark = hw.0;
                pd.last_stable_offset = hw.0;
                pd.log_start_offset = partition.log.log_start_offset().0;
                pd.preferred_read_replica = replica.into();
                partitions.push(pd);
                continue;
            }
            let hw = partition.high_watermark();
            let lso = partition.last_stable_offset();
            pd.high_watermark = hw.0;
            pd.last_stable_offset = lso.0;
            pd.log_start_offset = partition.log.log_start_offset().0;
            // read_committed consumers read below the last stable offset, and are told which
            // transactions in what they get aborted (KIP-98).
            let read_committed = !follower && r.isolation_level == 1;
            if read_committed {
                pd.aborted_transactions = Some(Vec::new());
            }
            let limits = ReadLimits {
                max_bytes: usize::try_from(fp.partition_max_bytes)
                    .unwrap_or(0)
                    .min(remaining)
                    .min(leader_throttled.map_or(usize::MAX, |rate| {
                        crate::cluster::throttle::Throttle::quantum(rate, i32::MAX) as usize
                    })),
                // Followers copy everything written; consumers see only what is replicated,
                // and read_committed ones only what no open transaction holds back.
                max_offset: (!follower).then_some(if read_committed { lso } else { hw }),
                min_one_batch: total == 0,
            };
            match partition.log.read(Offset(fp.fetch_offset), limits) {
                Ok(read) => {
                    if let Some(slice) = read.slice {
                        // Bytes are checked before they leave: a batch that changed on the disk
                        // since it was written never leaves this broker. Bytes an earlier fetch
                        // checked are trusted while their file is unchanged and cached.
                        let verified = slice.verify();
                        match verified {
                            Ok(Verification::Checked) => {
                                ctx.metrics.fetch_checked_bytes.inc_by(slice.len() as u64);
                            }
                            Ok(Verification::Trusted) => {
                                ctx.metrics.fetch_trusted_bytes.inc_by(slice.len() as u64);
                            }
                            Err(_) => {}
                        }
                        if let Err((at, position)) = verified {
                            ctx.metrics.corrupt_batches.inc();
                            if partition.report_corruption(at) {
                                tracing::error!(topic = %partition.topic, partition = partition.index, offset = at.0, position, "corrupt batch on disk: this replica steps down and is refilled from another");
                                crate::cluster::replica_manager::report_failed_replica(
                                    &ctx.broker,
                                    &partition,
                                );
                            }
                            pd.error_code = ErrorCode::KafkaStorageError.code();
                            partitions.push(pd);
                            continue;
                        }
                        let len = slice.len();
                        if read_committed {
                            let aborted = partition
                                .aborted_transactions(Offset(fp.fetch_offset), slice.next_offset());
                            pd.aborted_transactions = Some(
                                aborted
                                    .into_iter()
                                    .map(|a| {
                                        msg!(AbortedTransaction {
                                            producer_id: ProducerId(a.producer_id),
                                            first_offset: a.first_offset.0,
                                        })
                                    })
                                    .collect(),
                            );
                        }
                        // Zero-copy: a marker of the slice's length; the connection sends the
                        // file range itself with sendfile.
                        let records = match (slice.raw_fd(), marker(len)) {
                            (Some(_), Some(m)) => {
                                files.push(slice);
                                Ok(m)
                            }
                            _ => slice.read_to_vec().map(Bytes::from),
                        };
                        if let (Some(rate), Some(cluster)) =
                            (leader_throttled, ctx.broker.cluster.as_ref())
                        {
                            cluster.leader_throttle.record(rate, len);
                        }
                        match records {
                            Ok(b) => {
                                total += len;
                                remaining = remaining.saturating_sub(len);
                                ctx.metrics.bytes_out.inc_by(len as u64);
                                if follower_read {
                                    ctx.metrics.follower_read_bytes.inc_by(len as u64);
                                }
                                pd.records = Some(b);
                            }
                            Err(e) => {
                                tracing::error!(topic = %partition.topic, partition = partition.index, error = %e, "reading the log");
                                pd.error_code = ErrorCode::KafkaStorageError.code();
                            }
                        }
                    }
                }
                Err(LogError::OffsetOutOfRange { .. }) => {
                    pd.error_code = ErrorCode::OffsetOutOfRange.code()
                }
                Err(e) => {
                    if matches!(e, LogError::Corruption { .. } | LogError::Malformed { .. }) {
                        ctx.metrics.corrupt_batches.inc();
                        if partition.report_corruption(Offset(fp.fetch_offset)) {
                            tracing::error!(topic = %partition.topic, partition = partition.index, offset = fp.fetch_offset, error = %e, "corrupt log on disk: this replica steps down and is refilled from another");
                            crate::cluster::replica_manager::report_failed_replica(
                                &ctx.broker,
                                &partition,
                            );
                        }
                    }
                    pd.error_code = ErrorCode::from(&e).code()
                }
            }
            partitions.push(pd);
        }
        topics.push(msg!(FetchableTopicResponse {
            topic: ft.topic.clone(),
            topic_id: ft.topic_id,
            partitions,
        }));
    }
    (
        msg!(FetchResponse {
            error_code: ErrorCode::None.code(),
            session_id: 0,
            responses: topics,
        }),
        total,
        files,
    )
}

/// Handles Fetch, long-polling, within a fetch session (KIP-227) when the client asks for one:
/// the session says which partitions are fetched and which of them the answer carries.
pub async fn handle(
    ctx: &std::sync::Arc<Context>,
    r: FetchRequest,
    version: i16,
) -> (FetchResponse, Vec<FileSlice>) {
    let plan = match ctx.fetch_sessions.begin(r, version >= 7) {
        Ok(plan) => plan,
        Err(code) => {
            let response = msg!(FetchResponse {
                error_code: code.code(),
                session_id: 0,
            });
            return (response, Vec::new());
        }
    };
    if plan.incremental {
        ctx.metrics.incremental_fetches.inc();
    }
    let (mut response, files) = long_poll(ctx, &plan.request, version).await;
    ctx.fetch_sessions.finish(&plan, &mut response);
    (response, files)
}

/// Serves a fetch, waiting (woken by appends) for `min_bytes` or `max_wait_ms`.
async fn long_poll(
    ctx: &std::sync::Arc<Context>,
    r: &FetchRequest,
    version: i16,
) -> (FetchResponse, Vec<FileSlice>) {
    let wait = Duration::from_millis(u64::try_from(r.max_wait_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + wait;
    let min_bytes = usize::try_from(r.min_bytes).unwrap_or(0);
    // Woken by the partitions asked for (their writes and high watermark moves), or by a
    // broker-wide change (new metadata: leaders, topics).
    let mut appends = ctx.broker.appends.subscribe();
    let notify = std::sync::Arc::new(tokio::sync::Notify::new());
    let partitions = requested_partitions(ctx, r, version);
    loop {
        appends.borrow_and_update();
        // Registered before the response is built: an append after this point wakes us.
        for p in &partitions {
            p.watch_fetch(&notify);
        }
        // Reading may wait on the disk (headers, a first check of bytes read back from it).
        let (response, bytes, files) = crate::blocking::run(|| build(ctx, r, version));
        // Errors and redirections to a read replica (KIP-392) are answered at once.
        let errors = response
            .responses
            .iter()
            .flat_map(|t| &t.partitions)
            .any(|p| p.error_code != 0 || p.preferred_read_replica.0 >= 0);
        if bytes >= min_bytes.max(1) || errors || tokio::time::Instant::now() >= deadline {
            return (response, files);
        }
        let woken = async {
            tokio::select! {
                _ = notify.notified() => {}
                _ = appends.changed() => {}
            }
        };
        if tokio::time::timeout_at(deadline, woken).await.is_err() {
            let (response, _, files) = crate::blocking::run(|| build(ctx, r, version));
            return (response, files);
        }
    }
}

/// The local partitions a fetch asks for (by topic name, or id from v13).
fn requested_partitions(
    ctx: &Context,
    r: &FetchRequest,
    version: i16,
) -> Vec<std::sync::Arc<crate::topic::Partition>> {
    let mut out = Vec::new();
    for ft in &r.topics {
        let topic = if version >= 13 {
            ctx.broker.topic_by_id(ft.topic_id)
        } else {
            ctx.broker.topic(ft.topic.0.as_str())
        };
        let Some(topic) = topic else { continue };
        out.extend(
            ft.partitions
                .iter()
                .filter_map(|fp| topic.partition(fp.partition)),
        );
    }
    out
}

/// Handles ListOffsets: -1 latest (high watermark), -2 earliest, or the first offset at or
/// after a timestamp.
pub fn list_offsets(ctx: &Context, r: ListOffsetsRequest) -> ListOffsetsResponse {
    // read_committed (KIP-98): the latest offset is the last stable offset.
    let read_committed = r.isolation_level == 1;
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(t.name.0.as_str());
            let allowed = ctx.authorized(
                crate::acl::Operation::Describe,
                crate::acl::ResourceType::Topic,
                t.name.0.as_str(),
            );
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = msg!(ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        timestamp: -1,
                        offset: -1,
                        leader_epoch: 0,
                    });
                    if !allowed {
                        out.error_code = ErrorCode::TopicAuthorizationFailed.code();
                        return out;
                    }
                    let partition = match ctx
                        .broker
                        .leader_partition(topic.as_deref(), p.partition_index)
                    {
                        Ok(p) => p,
                        Err(code) => {
                            out.error_code = code.code();
                            return out;
                        }
                    };
                    if let Some(code) =
                        epoch_check(partition.leader_epoch().0, p.current_leader_epoch)
                    {
                        out.error_code = code.code();
                        return out;
                    }
                    out.leader_epoch = partition.leader_epoch().0;
                    let visible = if read_committed {
                        partition.last_stable_offset()
                    } else {
                        partition.high_watermark()
                    };
                    match p.timestamp {
                        -1 => out.offset = visible.0,
                        -2 => out.offset = partition.log.log_start_offset().0,
                        ts if ts >= 0 => match partition.log.offset_for_timestamp(ts) {
                            Ok(Some((o, found_ts))) if o < visible => {
                                out.offset = o.0;
                                out.timestamp = found_ts;
                            }
                            Ok(_) => {}
                            Err(e) => out.error_code = ErrorCode::from(&e).code(),
                        },
                        _ => out.error_code = ErrorCode::InvalidRequest.code(),
                    }
                    out
                })
                .collect();
            msg!(ListOffsetsTopicResponse {
                name: t.name,
                partitions,
            })
        })
        .collect();
    msg!(ListOffsetsResponse { topics })
}

/// Handles OffsetForLeaderEpoch from the leader epoch cache.
pub fn offset_for_leader_epoch(
    ctx: &Context,
    r: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(t.topic.0.as_str());
            // Replicas (replica id >= 0) need CLUSTER_ACTION, clients DESCRIBE on the topic.
            let allowed = if r.replica_id.0 >= 0 {
                ctx.authorized_on_cluster(crate::acl::Operation::ClusterAction)
            } else {
                ctx.authorized(
                    crate::acl::Operation::Describe,
                    crate::acl::ResourceType::Topic,
                    t.topic.0.as_str(),
                )
            };
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = msg!(EpochEndOffset {
                        partition: p.partition,
                        leader_epoch: -1,
                        end_offset: -1,
                    });
                    if !allowed {
                        out.error_code = ErrorCode::TopicAuthorizationFailed.code();
                        return out;
                    }
                    match topic.as_ref().and_then(|t| t.partition(p.partition)) {
                        None => {
                            out.error_code = ctx
                                .broker
                                .missing_partition_code(topic.as_deref(), p.partition)
                                .code()
                        }
                        Some(partition) if !partition.is_leader() => {
                            out.error_code = ErrorCode::NotLeaderOrFollower.code()
                        }
                        Some(partition) => {
                            if let Some((epoch, end)) = partition
                                .log
                                .end_offset_for_epoch(LeaderEpoch(p.leader_epoch))
                            {
                                out.leader_epoch = epoch.0;
                                out.end_offset = end.0;
                            }
                        }
                    }
                    out
                })
                .collect();
            msg!(OffsetForLeaderTopicResult {
                topic: TopicName(s(t.topic.0.as_str())),
                partitions,
            })
        })
        .collect();
    msg!(OffsetForLeaderEpochResponse { topics })
}
