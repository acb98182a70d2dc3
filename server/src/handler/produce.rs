//! Produce and InitProducerId.
//!
//! acks=0 gets no response; acks=1 and acks=all are answered once the batch is durable under the
//! topic's flush policy (after fdatasync for the default `always`), or written for `os` and
//! `interval`. On a single broker the ISR is this broker, so acks=all and acks=1 wait for the
//! same thing; in a cluster acks=all also waits until the high watermark (the minimum over the
//! ISR of what each replica has made durable) passes the batch, and is refused with
//! NOT_ENOUGH_REPLICAS when the ISR is smaller than `min.insync.replicas`. A request that waits
//! longer than its `timeout_ms` gets REQUEST_TIMED_OUT.

use std::time::Duration;

use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse;
use kafka_protocol::messages::produce_request::ProduceRequest;
use kafka_protocol::messages::produce_response::{
    PartitionProduceResponse, ProduceResponse, TopicProduceResponse,
};
use strata_engine::{FlushPolicy, Offset, Stage};

use super::{Context, s};
use crate::error_code::ErrorCode;
use crate::topic::{AppendOutcome, Partition};

fn error(index: i32, code: ErrorCode, message: Option<String>) -> PartitionProduceResponse {
    msg!(PartitionProduceResponse {
        index,
        error_code: code.code(),
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
        error_message: message.map(|m| s(&m)),
    })
}

/// The response refusing `records` if `topic` is compacted and some record has no key: each
/// such record named by its index in the batch; `None` if the records may be appended (records
/// that do not decode are left to the append, which refuses them with its own error).
fn keyless_in_compacted(
    topic: &crate::topic::Topic,
    records: &bytes::Bytes,
    index: i32,
) -> Option<PartitionProduceResponse> {
    let compacted = topic
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .cleanup_policy
        .compacts();
    if !compacted {
        return None;
    }
    let keyless: Vec<i32> = strata_engine::RecordReader::new(records.clone(), Offset(i64::MIN))
        .map_while(Result::ok)
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .map(|(i, _)| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    if keyless.is_empty() {
        return None;
    }
    let message = format!(
        "Compacted topic cannot accept message without key in topic partition {}-{index}.",
        topic.name
    );
    let mut response = error(index, ErrorCode::InvalidRecord, Some(message.clone()));
    response.record_errors = keyless
        .into_iter()
        .map(|batch_index| {
            msg!(
                kafka_protocol::messages::produce_response::BatchIndexAndErrorMessage {
                    batch_index,
                    batch_index_error_message: Some(s(&message)),
                }
            )
        })
        .collect();
    Some(response)
}

/// Handles Produce. `None` for acks=0.
pub async fn handle(
    ctx: &std::sync::Arc<Context>,
    r: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let refused = verify_with_coordinator(ctx, &r, version).await;
    start(ctx, r, refused).finish().await
}

/// A produce request whose batches are appended (or refused) and whose response waits for
/// their durability and replication. Appends happen in [`start`], in request order; the
/// waiting can overlap with later requests of the same connection (pipelining), whose
/// batches then share the same fsync and the same follower fetch.
#[derive(Debug)]
pub struct InFlight {
    acks: i16,
    topics: Vec<TopicProduceResponse>,
    waits: Vec<Wait>,
    deadline: tokio::time::Instant,
    ctx: std::sync::Arc<Context>,
}

/// One appended batch's wait: (partition response index, topic index, durability, for
/// acks=all the offset the high watermark must pass and the leader epoch, the partition).
type Wait = (
    usize,
    usize,
    strata_engine::completion::StageFuture,
    Option<(Offset, strata_engine::LeaderEpoch)>,
    std::sync::Arc<crate::topic::Partition>,
);

/// Appends every batch of a produce request now, without waiting for durability or
/// replication (an append that would wait on the disk, for a roll or a full commit pipeline,
/// runs through [`crate::blocking::run`]: see `Partition::append`).
pub fn start(ctx: &std::sync::Arc<Context>, r: ProduceRequest, refused: Refused) -> InFlight {
    let acks = r.acks;
    let timeout = Duration::from_millis(u64::try_from(r.timeout_ms).unwrap_or(0).max(1));
    let mut topics = Vec::with_capacity(r.topic_data.len());
    let mut waits = Vec::new();
    let transactional_id = r
        .transactional_id
        .as_ref()
        .map(|t| t.0.as_str().to_string())
        .filter(|t| !t.is_empty());
    let txn_allowed = transactional_id.as_deref().is_none_or(|id| {
        ctx.authorized(
            crate::acl::Operation::Write,
            crate::acl::ResourceType::TransactionalId,
            id,
        )
    });
    for td in r.topic_data {
        let topic = if td.name.0.is_empty() {
            ctx.broker.topic_by_id(td.topic_id)
        } else {
            ctx.broker.topic(td.name.0.as_str())
        };
        let mut partitions = Vec::with_capacity(td.partition_data.len());
        // WRITE on the topic (by its name, also when the request names it by id).
        let name = topic
            .as_ref()
            .map_or(td.name.0.as_str(), |t| t.name.as_str());
        let allowed = ctx.authorized(
            crate::acl::Operation::Write,
            crate::acl::ResourceType::Topic,
            name,
        );
        for pd in td.partition_data {
            let index = pd.index;
            if !allowed {
                partitions.push(error(index, ErrorCode::TopicAuthorizationFailed, None));
                continue;
            }
            if !(-1..=1).contains(&acks) {
                partitions.push(error(index, ErrorCode::InvalidRequiredAcks, None));
                continue;
            }
            if let Some(id) = transactional_id.as_deref()
                && !txn_allowed
            {
                partitions.push(error(
                    index,
                    ErrorCode::TransactionalIdAuthorizationFailed,
                    Some(format!("no WRITE on transactional id {id}")),
                ));
                continue;
            }
            // Clients may not write to internal topics: only the group coordinator appends to
            // `__consumer_offsets`.
            if topic.as_ref().is_some_and(|t| t.internal) {
                partitions.push(error(
                    index,
                    ErrorCode::InvalidTopicException,
                    Some("cannot produce to an internal topic".into()),
                ));
                continue;
            }
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(index)) else {
                // v13+ names topics by id (KIP-516).
                let code = if td.name.0.is_empty() && topic.is_none() {
                    ErrorCode::UnknownTopicId
                } else {
                    ctx.broker.missing_partition_code(topic.as_deref(), index)
                };
                partitions.push(error(index, code, None));
                continue;
            };
            if !ctx.broker.serving() {
                partitions.push(error(
                    index,
                    ErrorCode::NotLeaderOrFollower,
                    Some("this broker lost contact with the controller".into()),
                ));
                continue;
            }
            let Some(records) = pd.records.filter(|r| !r.is_empty()) else {
                partitions.push(error(
                    index,
                    ErrorCode::CorruptMessage,
                    Some("no records".into()),
                ));
                continue;
            };
            ctx.metrics.bytes_in.inc_by(records.len() as u64);
            // A compacted topic keeps the last record of each key, so a record without one is
            // refused, with the whole batch (Kafka's INVALID_RECORD with record errors, KIP-467).
            if let Some(t) = &topic
                && let Some(rejected) = keyless_in_compacted(t, &records, index)
            {
                partitions.push(rejected);
                continue;
            }
            // (Refused partitions are rare: no key is built for a produce without any.)
            let refused_here = (!refused.is_empty())
                .then(|| refused.get(&(partition.topic.clone(), index)).cloned())
                .flatten();
            if let Some((code, message)) = refused_here.or_else(|| {
                verify_transactional(ctx, transactional_id.as_deref(), &partition, &records)
            }) {
                partitions.push(error(index, code, Some(message)));
                continue;
            }
            // The request's bytes go to the log as they arrived (no copy; see `Log::append`).
            match partition.append(records, acks == -1) {
                Ok((AppendOutcome::Appended(info), epoch)) => {
                    let stage = ack_stage(&partition);
                    watch_progress(&partition, info.completion.clone(), stage);
                    let replicated =
                        (acks == -1).then_some((Offset(info.last_offset.0 + 1), epoch));
                    waits.push((
                        partitions.len(),
                        topics.len(),
                        info.completion.until(stage),
                        replicated,
                        partition.clone(),
                    ));
                    partitions.push(msg!(PartitionProduceResponse {
                        index,
                        error_code: ErrorCode::None.code(),
                        base_offset: info.first_offset.0,
                        log_append_time_ms: -1,
                        log_start_offset: partition.log.log_start_offset().0,
                    }));
                }
                Ok((AppendOutcome::Duplicate { base, next }, epoch)) => {
                    ctx.metrics.duplicate_batches.inc();
                    // The batch retried may still be on its way to the disk, or (after a
                    // restart or a change of leader) above the high watermark, where a new
                    // leader may cut it away: it is confirmed only after the waits its first
                    // append would have had. (Seen in a chaos run: a retry answered at once by a
                    // leader that had the batch only in its unreplicated tail, which the next
                    // leader did not have: an acknowledged record lost.)
                    let stage = ack_stage(&partition);
                    let durable = if partition.log.recovery_point() >= next {
                        Ok(strata_engine::Completion::done())
                    } else {
                        partition.log.flush_async()
                    };
                    let completion = match durable {
                        Ok(c) => c,
                        Err(e) => {
                            partitions.push(error(
                                index,
                                ErrorCode::KafkaStorageError,
                                Some(e.to_string()),
                            ));
                            continue;
                        }
                    };
                    watch_progress(&partition, completion.clone(), stage);
                    waits.push((
                        partitions.len(),
                        topics.len(),
                        completion.until(stage),
                        (acks == -1).then_some((next, epoch)),
                        partition.clone(),
                    ));
                    partitions.push(msg!(PartitionProduceResponse {
                        index,
                        error_code: ErrorCode::None.code(),
                        base_offset: base.0,
                        log_append_time_ms: -1,
                        log_start_offset: partition.log.log_start_offset().0,
                    }))
                }
                Err((code, message)) => {
                    tracing::debug!(topic = %partition.topic, partition = index, ?code, %message, "produce refused");
                    if code == ErrorCode::KafkaStorageError {
                        crate::cluster::replica_manager::report_failed_replica(
                            &ctx.broker,
                            &partition,
                        );
                    }
                    partitions.push(error(index, code, Some(message)))
                }
            }
        }
        topics.push(msg!(TopicProduceResponse {
            name: td.name,
            topic_id: td.topic_id,
            partition_responses: partitions,
        }));
    }
    InFlight {
        acks,
        topics,
        waits,
        deadline: tokio::time::Instant::now() + timeout,
        ctx: ctx.clone(),
    }
}

/// KIP-890: before a partition appends a producer's first transactional batch of a
/// transaction, the transaction's coordinator must have the partition in the producer's open
/// transaction; otherwise a late batch of an ended transaction (a hanging transaction, which
/// would hold the last stable offset back forever) would open a new one no marker ever ends.
/// Checked where the coordinator is this broker (always standalone).
fn verify_transactional(
    ctx: &Context,
    transactional_id: Option<&str>,
    partition: &Partition,
    records: &bytes::Bytes,
) -> Option<(ErrorCode, String)> {
    let h = strata_engine::batch::parse_header(records, 0).ok()?;
    if h.is_control() {
        // Markers are the coordinators' (`Partition::append` refuses them too).
        return Some((
            ErrorCode::InvalidRecord,
            "control batches (transaction markers) cannot be produced".into(),
        ));
    }
    if !h.is_transactional() {
        return None;
    }
    // Kafka authorizes a transactional batch by its request's transactional id: none, none.
    let Some(transactional_id) = transactional_id else {
        return Some((
            ErrorCode::TransactionalIdAuthorizationFailed,
            "a transactional batch in a produce without a transactional id".into(),
        ));
    };
    if partition.in_transaction(h.producer_id) {
        return None;
    }
    ctx.txns.check_coordinator(transactional_id).ok()?;
    let tp = (partition.topic.clone(), partition.index);
    ctx.txns
        .verify_partition(transactional_id, h.producer_id, h.producer_epoch, &tp)
        .err()
        .map(|code| {
            (
                // A fenced producer hears it as Produce says it.
                if code == ErrorCode::ProducerFenced {
                    ErrorCode::InvalidProducerEpoch
                } else {
                    code
                },
                format!(
                    "{}-{} is not in an open transaction of {transactional_id}",
                    tp.0, tp.1
                ),
            )
        })
}

/// Partitions of a produce refused before appending, with the code and message to answer.
pub type Refused = std::collections::HashMap<(String, i32), (ErrorCode, String)>;

/// The first Produce version of a transaction-version-2 client (KIP-890 part 2): it sends no
/// AddPartitionsToTxn, its first batch in a partition adds the partition to the transaction.
pub const TV2_PRODUCE_VERSION: i16 = 12;

/// KIP-890 before anything is appended, for the partitions this broker leads whose batch
/// would open the producer's transaction here. Produce v12+ (transaction version 2): the
/// partitions join the transaction at its coordinator, here or elsewhere. Older versions,
/// where the coordinator is another broker: that coordinator confirms they are in the open
/// transaction (AddPartitionsToTxn v4, `verify_only`; a local coordinator is asked in
/// `start`). Partitions not confirmed are refused; a coordinator that cannot answer now makes
/// the batch retriable (NOT_ENOUGH_REPLICAS, as Kafka answers producers that predate the
/// coordinator errors).
pub async fn verify_with_coordinator(ctx: &Context, r: &ProduceRequest, version: i16) -> Refused {
    let mut refused = Refused::new();
    let Some(id) = r
        .transactional_id
        .as_ref()
        .map(|t| t.0.as_str())
        .filter(|t| !t.is_empty())
    else {
        return refused;
    };
    let tv2 = version >= TV2_PRODUCE_VERSION;
    if !tv2 && (ctx.broker.cluster.is_none() || ctx.txns.check_coordinator(id).is_ok()) {
        return refused;
    }
    let mut wanted = Vec::new();
    let mut producer = None;
    for td in &r.topic_data {
        let topic = if td.name.0.is_empty() {
            ctx.broker.topic_by_id(td.topic_id)
        } else {
            ctx.broker.topic(td.name.0.as_str())
        };
        let Some(topic) = topic else {
            continue;
        };
        for pd in &td.partition_data {
            let Some(partition) = topic.partition(pd.index) else {
                continue;
            };
            let Some(h) = pd
                .records
                .as_ref()
                .and_then(|b| strata_engine::batch::parse_header(b, 0).ok())
            else {
                continue;
            };
            if h.is_transactional()
                && partition.is_leader()
                && !partition.in_transaction(h.producer_id)
            {
                producer = Some((h.producer_id, h.producer_epoch));
                wanted.push((topic.name.clone(), pd.index));
            }
        }
    }
    let Some((pid, epoch)) = producer else {
        return refused;
    };
    let answers = if tv2 {
        ctx.txns.join(id, pid, epoch, wanted.clone()).await
    } else {
        ctx.txns
            .ask_remote(id, pid, epoch, wanted.clone(), true)
            .await
    };
    match answers {
        Ok(answers) => {
            for (tp, code) in answers {
                if code != ErrorCode::None {
                    let code = match code {
                        ErrorCode::ProducerFenced => ErrorCode::InvalidProducerEpoch,
                        ErrorCode::InvalidTxnState | ErrorCode::InvalidProducerIdMapping => {
                            ErrorCode::InvalidTxnState
                        }
                        _ => ErrorCode::NotEnoughReplicas,
                    };
                    let message =
                        format!("{}-{} is not in an open transaction of {id}", tp.0, tp.1);
                    refused.insert(tp, (code, message));
                }
            }
        }
        Err(e) => {
            for tp in wanted {
                refused.insert(
                    tp,
                    (
                        ErrorCode::NotEnoughReplicas,
                        format!("the transaction coordinator could not confirm it: {e}"),
                    ),
                );
            }
        }
    }
    refused
}

/// What an acknowledgement waits for locally: durability under `flush.policy=always`, the
/// write otherwise.
fn ack_stage(partition: &Partition) -> Stage {
    match partition.log.flush_policy() {
        FlushPolicy::Always => Stage::Durable,
        _ => Stage::Written,
    }
}

/// Followers may copy a batch once it is written; consumers wait for the high watermark, which
/// moves once it is durable here (and, in a cluster, on the in-sync followers): wakes the
/// fetches waiting on this partition as `completion` gets there.
fn watch_progress(
    partition: &std::sync::Arc<Partition>,
    completion: strata_engine::Completion,
    stage: Stage,
) {
    let p = partition.clone();
    tokio::spawn(async move {
        if completion.until(Stage::Written).await.is_ok() {
            p.wake_fetches();
        }
        if completion.until(stage).await.is_ok() {
            p.on_local_progress();
        }
    });
}

impl InFlight {
    /// Waits for what acks asks for; `None` for acks=0 (no response).
    pub async fn finish(self) -> Option<ProduceResponse> {
        let InFlight {
            acks,
            mut topics,
            waits,
            deadline,
            ctx,
        } = self;
        if acks == 0 {
            return None;
        }
        for (p, t, wait, replicated, partition) in waits {
            let mut code = match tokio::time::timeout_at(deadline, wait).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    // The log failed to write (a full disk, an I/O error): it is offline until
                    // reopened, so another replica must lead.
                    tracing::debug!(topic = %partition.topic, partition = partition.index, error = %e, "write failed");
                    crate::cluster::replica_manager::report_failed_replica(&ctx.broker, &partition);
                    // Part of the round may be on the disk (and copied by followers): "maybe",
                    // not KAFKA_STORAGE_ERROR, which clients take for "not written".
                    Some((
                        ErrorCode::RequestTimedOut,
                        format!("the write failed after the batch was handed to the log: {e}"),
                    ))
                }
                Err(_) => Some((
                    ErrorCode::RequestTimedOut,
                    "not durable within timeout_ms".to_string(),
                )),
            };
            if code.is_none()
                && let Some((next, epoch)) = replicated
            {
                code = partition.wait_replicated(next, epoch, deadline).await.err();
            }
            if let Some((code, message)) = &code {
                tracing::debug!(topic = %partition.topic, partition = partition.index, ?code, %message, "appended batch answered with an error");
            }
            if let Some((code, message)) = code
                && let Some(resp) = topics
                    .get_mut(t)
                    .and_then(|t| t.partition_responses.get_mut(p))
            {
                *resp = error(resp.index, code, Some(message));
            }
        }
        let mut response = msg!(ProduceResponse { responses: topics });
        super::leader_hint::produce(&ctx, &mut response);
        Some(response)
    }
}

/// Handles InitProducerId: idempotent producers here, transactional ones in `handler::txn`.
pub async fn init_producer_id(
    ctx: &Context,
    r: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let failed = |code: ErrorCode| {
        msg!(InitProducerIdResponse {
            error_code: code.code(),
            producer_id: ProducerId(-1),
            producer_epoch: -1,
        })
    };
    if r.transactional_id.as_ref().is_some_and(|t| !t.0.is_empty()) {
        return super::txn::init_producer_id(ctx, r, version).await;
    }
    // An idempotent producer needs IDEMPOTENT_WRITE on the cluster, or WRITE on some topic
    // (Kafka 2.8+).
    if ctx.acl.enabled {
        use crate::acl::{CLUSTER_NAME, Operation, ResourceType};
        let principal = crate::connection::principal();
        let host = crate::connection::client_ip();
        let allowed =
            ctx.allows(
                Operation::IdempotentWrite,
                ResourceType::Cluster,
                CLUSTER_NAME,
            ) || ctx
                .acl
                .authorize_any(&principal, &host, Operation::Write, ResourceType::Topic);
        if !allowed {
            ctx.metrics.authorization_denials.inc();
            return failed(ErrorCode::ClusterAuthorizationFailed);
        }
    }
    // KIP-360: a producer that asks with its current id gets the next epoch of it.
    if r.producer_id.0 >= 0 && r.producer_epoch >= 0 && r.producer_epoch < i16::MAX - 1 {
        return msg!(InitProducerIdResponse {
            error_code: ErrorCode::None.code(),
            producer_id: r.producer_id,
            producer_epoch: r.producer_epoch + 1,
        });
    }
    match ctx.broker.allocate_producer_id().await {
        Ok(id) => msg!(InitProducerIdResponse {
            error_code: ErrorCode::None.code(),
            producer_id: ProducerId(id),
            producer_epoch: 0,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "allocating a producer id");
            failed(e.code())
        }
    }
}
