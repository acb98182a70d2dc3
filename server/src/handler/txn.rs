//! The transaction APIs (KIP-98, KIP-447, KIP-664): InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit, WriteTxnMarkers (between
//! brokers), DescribeTransactions and ListTransactions. The state machine is `crate::txn`.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{Context, s};
use crate::acl::{Operation, ResourceType};
use crate::broker::OFFSETS_TOPIC;
use crate::error_code::ErrorCode;
use crate::group::CommittedOffset;

/// PRODUCER_FENCED as a version knows it: versions before `since` have only
/// INVALID_PRODUCER_EPOCH (Kafka answers them so).
fn fenced_for(code: ErrorCode, version: i16, since: i16) -> ErrorCode {
    if code == ErrorCode::ProducerFenced && version < since {
        ErrorCode::InvalidProducerEpoch
    } else {
        code
    }
}

/// InitProducerId with a transactional id.
pub async fn init_producer_id(
    ctx: &Context,
    r: InitProducerIdRequest,
    version: i16,
) -> InitProducerIdResponse {
    let id = r
        .transactional_id
        .as_ref()
        .map_or("", |t| t.0.as_str())
        .to_string();
    let answer = if !ctx.authorized(Operation::Write, ResourceType::TransactionalId, &id) {
        Err(ErrorCode::TransactionalIdAuthorizationFailed)
    } else {
        let expected = (r.producer_id.0 >= 0 && r.producer_epoch >= 0)
            .then_some((r.producer_id.0, r.producer_epoch));
        ctx.txns
            .init_producer_id(&id, r.transaction_timeout_ms, expected)
            .await
    };
    match answer {
        Ok((pid, epoch)) => msg!(InitProducerIdResponse {
            error_code: ErrorCode::None.code(),
            producer_id: ProducerId(pid),
            producer_epoch: epoch,
        }),
        Err(code) => msg!(InitProducerIdResponse {
            error_code: fenced_for(code, version, 4).code(),
            producer_id: ProducerId(-1),
            producer_epoch: -1,
        }),
    }
}

/// AddPartitionsToTxn: v0-3 from producers (one transaction), v4 from brokers (several, and
/// `verify_only` for KIP-890's check before a partition appends a transactional batch).
pub async fn add_partitions(
    ctx: &Context,
    r: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let result = add_one(
            ctx,
            &r.v3_and_below_transactional_id,
            r.v3_and_below_producer_id.0,
            r.v3_and_below_producer_epoch,
            &r.v3_and_below_topics,
            false,
            version,
        )
        .await;
        return msg!(AddPartitionsToTxnResponse {
            results_by_topic_v3_and_below: result.topic_results,
        });
    }
    // Between brokers: the caller needs CLUSTER_ACTION.
    if !ctx.authorized_on_cluster(Operation::ClusterAction) {
        return msg!(AddPartitionsToTxnResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
        });
    }
    let mut results = Vec::with_capacity(r.transactions.len());
    for t in &r.transactions {
        results.push(
            add_one(
                ctx,
                &t.transactional_id,
                t.producer_id.0,
                t.producer_epoch,
                &t.topics,
                t.verify_only,
                version,
            )
            .await,
        );
    }
    msg!(AddPartitionsToTxnResponse {
        results_by_transaction: results,
    })
}

async fn add_one(
    ctx: &Context,
    transactional_id: &TransactionalId,
    producer_id: i64,
    producer_epoch: i16,
    topics: &[kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> AddPartitionsToTxnResult {
    let id = transactional_id.0.as_str();
    let mut codes: Vec<((String, i32), ErrorCode)> = Vec::new();
    let mut wanted = Vec::new();
    let allowed_id =
        verify_only || ctx.authorized(Operation::Write, ResourceType::TransactionalId, id);
    for t in topics {
        let name = t.name.0.as_str().to_string();
        let allowed = verify_only || ctx.authorized(Operation::Write, ResourceType::Topic, &name);
        for p in &t.partitions {
            let code = if !allowed_id {
                ErrorCode::TransactionalIdAuthorizationFailed
            } else if !allowed {
                ErrorCode::TopicAuthorizationFailed
            } else if !ctx.broker.partition_exists_anywhere(&name, *p) {
                ErrorCode::UnknownTopicOrPartition
            } else {
                wanted.push((name.clone(), *p));
                ErrorCode::None
            };
            codes.push(((name.clone(), *p), code));
        }
    }
    let refused = codes.iter().any(|(_, c)| *c != ErrorCode::None);
    let outcome: Result<(), ErrorCode> = if refused {
        // Kafka adds nothing if any partition is refused; the others are not attempted.
        Err(ErrorCode::OperationNotAttempted)
    } else if verify_only {
        Ok(())
    } else {
        ctx.txns
            .add_partitions(id, producer_id, producer_epoch, &wanted)
            .await
    };
    for (tp, code) in &mut codes {
        *code = if verify_only && !refused {
            match ctx
                .txns
                .verify_partition(id, producer_id, producer_epoch, tp)
            {
                Ok(()) => ErrorCode::None,
                Err(e) => e,
            }
        } else {
            match (&outcome, *code) {
                (_, c) if c != ErrorCode::None => c,
                (Ok(()), _) => ErrorCode::None,
                (Err(e), _) => fenced_for(*e, version, 2),
            }
        };
    }
    let mut topic_results: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for ((name, p), code) in codes {
        let result = msg!(AddPartitionsToTxnPartitionResult {
            partition_index: p,
            partition_error_code: code.code(),
        });
        match topic_results.iter_mut().find(|t| t.name.0.as_str() == name) {
            Some(t) => t.results_by_partition.push(result),
            None => topic_results.push(msg!(AddPartitionsToTxnTopicResult {
                name: kafka_protocol::messages::TopicName(s(&name)),
                results_by_partition: vec![result],
            })),
        }
    }
    msg!(AddPartitionsToTxnResult {
        transactional_id: transactional_id.clone(),
        topic_results,
    })
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
pub async fn add_offsets(
    ctx: &Context,
    r: AddOffsetsToTxnRequest,
    version: i16,
) -> AddOffsetsToTxnResponse {
    let id = r.transactional_id.0.as_str();
    let group = r.group_id.0.as_str();
    let code = if !ctx.authorized(Operation::Write, ResourceType::TransactionalId, id) {
        ErrorCode::TransactionalIdAuthorizationFailed
    } else if !ctx.authorized(Operation::Read, ResourceType::Group, group) {
        ErrorCode::GroupAuthorizationFailed
    } else {
        let partition = (OFFSETS_TOPIC.to_string(), ctx.groups.partition_for(group));
        match ctx
            .txns
            .add_partitions(id, r.producer_id.0, r.producer_epoch, &[partition])
            .await
        {
            Ok(()) => ErrorCode::None,
            Err(e) => fenced_for(e, version, 2),
        }
    };
    msg!(AddOffsetsToTxnResponse {
        error_code: code.code(),
    })
}

/// The first EndTxn and TxnOffsetCommit version of a transaction-version-2 client (KIP-890
/// part 2), which adds no partitions itself and continues with the epoch EndTxn returns.
pub const TV2_VERSION: i16 = 5;

/// EndTxn: commit or abort (v5+: with the epoch bump of transaction version 2).
pub async fn end_txn(ctx: &Context, r: EndTxnRequest, version: i16) -> EndTxnResponse {
    let id = r.transactional_id.0.as_str();
    let answer = if !ctx.authorized(Operation::Write, ResourceType::TransactionalId, id) {
        Err(ErrorCode::TransactionalIdAuthorizationFailed)
    } else {
        ctx.txns
            .end_txn(
                id,
                r.producer_id.0,
                r.producer_epoch,
                r.committed,
                version >= TV2_VERSION,
            )
            .await
    };
    let (code, (pid, epoch)) = match answer {
        Ok(next) => (ErrorCode::None, next),
        Err(e) => (fenced_for(e, version, 2), (-1, -1)),
    };
    msg!(EndTxnResponse {
        error_code: code.code(),
        producer_id: ProducerId(pid),
        producer_epoch: epoch,
    })
}

/// TxnOffsetCommit: offsets written inside the producer's transaction; the group sees them
/// once the transaction commits (KIP-98, KIP-447's generation and member checks).
pub async fn txn_offset_commit(
    ctx: &Context,
    r: TxnOffsetCommitRequest,
    version: i16,
) -> TxnOffsetCommitResponse {
    use kafka_protocol::messages::txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    let group = r.group_id.0.as_str();
    let check = if !ctx.authorized(
        Operation::Write,
        ResourceType::TransactionalId,
        r.transactional_id.0.as_str(),
    ) {
        ErrorCode::TransactionalIdAuthorizationFailed
    } else if !ctx.authorized(Operation::Read, ResourceType::Group, group) {
        ErrorCode::GroupAuthorizationFailed
    } else if r.generation_id >= 0 {
        ctx.groups
            .validate_commit(group, r.generation_id, r.member_id.as_str())
    } else {
        ctx.groups.check_coordinator(group)
    };
    // Transaction version 2 sends no AddOffsetsToTxn: the group's partition joins here.
    let check = if check == ErrorCode::None && version >= TV2_VERSION {
        let partition = (OFFSETS_TOPIC.to_string(), ctx.groups.partition_for(group));
        match ctx
            .txns
            .join(
                r.transactional_id.0.as_str(),
                r.producer_id.0,
                r.producer_epoch,
                vec![partition],
            )
            .await
        {
            Ok(codes) => codes
                .into_iter()
                .map(|(_, code)| code)
                .find(|c| *c != ErrorCode::None)
                .unwrap_or(ErrorCode::None),
            // Retriable: the client sends it again.
            Err(_) => ErrorCode::CoordinatorNotAvailable,
        }
    } else {
        check
    };
    let mut commits = Vec::new();
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in &r.topics {
        let name = t.name.0.as_str();
        let allowed = ctx.authorized(Operation::Read, ResourceType::Topic, name);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let code = if check != ErrorCode::None {
                check
            } else if !allowed {
                ErrorCode::TopicAuthorizationFailed
            } else if !ctx
                .broker
                .partition_exists_anywhere(name, p.partition_index)
            {
                ErrorCode::UnknownTopicOrPartition
            } else {
                commits.push((
                    (name.to_string(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    },
                ));
                ErrorCode::None
            };
            partitions.push(msg!(TxnOffsetCommitResponsePartition {
                partition_index: p.partition_index,
                error_code: code.code(),
            }));
        }
        topics.push(msg!(TxnOffsetCommitResponseTopic {
            name: t.name.clone(),
            partitions,
        }));
    }
    if let Err(code) = ctx
        .groups
        .txn_commit(group, r.producer_id.0, r.producer_epoch, commits)
        .await
    {
        let code = fenced_for(code, version, 3);
        for t in &mut topics {
            for p in &mut t.partitions {
                if p.error_code == 0 {
                    p.error_code = code.code();
                }
            }
        }
    }
    msg!(TxnOffsetCommitResponse { topics })
}

/// WriteTxnMarkers, from a transaction coordinator: each marker written to the partitions
/// this broker leads (all at once), answered once durable and replicated.
pub async fn write_txn_markers(
    ctx: &Context,
    r: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = ctx.authorized_on_cluster(Operation::ClusterAction);
    let mut writes = tokio::task::JoinSet::new();
    let mut markers = Vec::with_capacity(r.markers.len());
    for (mi, m) in r.markers.into_iter().enumerate() {
        let mut topics = Vec::with_capacity(m.topics.len());
        for (ti, t) in m.topics.into_iter().enumerate() {
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for (pi, p) in t.partition_indexes.iter().copied().enumerate() {
                // Overwritten by the write's outcome (a task that failed stays unknown).
                let refused = if allowed {
                    ErrorCode::UnknownServerError
                } else {
                    ErrorCode::ClusterAuthorizationFailed
                };
                partitions.push(msg!(WritableTxnMarkerPartitionResult {
                    partition_index: p,
                    error_code: refused.code(),
                }));
                if !allowed {
                    continue;
                }
                let (broker, groups) = (ctx.broker.clone(), ctx.groups.clone());
                let topic = t.name.0.as_str().to_string();
                let (pid, epoch, commit, coordinator_epoch) = (
                    m.producer_id.0,
                    m.producer_epoch,
                    m.transaction_result,
                    m.coordinator_epoch,
                );
                writes.spawn(async move {
                    let code = crate::txn::write_marker_local(
                        &broker,
                        &groups,
                        &topic,
                        p,
                        pid,
                        epoch,
                        commit,
                        coordinator_epoch,
                    )
                    .await;
                    (mi, ti, pi, code)
                });
            }
            topics.push(msg!(WritableTxnMarkerTopicResult {
                name: t.name,
                partitions,
            }));
        }
        markers.push(msg!(WritableTxnMarkerResult {
            producer_id: m.producer_id,
            topics,
        }));
    }
    while let Some(done) = writes.join_next().await {
        let (mi, ti, pi, code) = done.unwrap_or((usize::MAX, 0, 0, ErrorCode::UnknownServerError));
        if let Some(p) = markers
            .get_mut(mi)
            .and_then(|m| m.topics.get_mut(ti))
            .and_then(|t| t.partitions.get_mut(pi))
        {
            p.error_code = code.code();
        }
    }
    msg!(WriteTxnMarkersResponse { markers })
}

/// DescribeTransactions (KIP-664).
pub fn describe(ctx: &Context, r: DescribeTransactionsRequest) -> DescribeTransactionsResponse {
    use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
    let transaction_states = r
        .transactional_ids
        .into_iter()
        .map(|id| {
            let name = id.0.as_str().to_string();
            let mut out = msg!(TransactionState {
                transactional_id: id,
                transaction_state: StrBytes::default(),
                transaction_timeout_ms: 0,
                transaction_start_time_ms: -1,
                producer_id: ProducerId(-1),
                producer_epoch: -1,
            });
            if !ctx.authorized(Operation::Describe, ResourceType::TransactionalId, &name) {
                out.error_code = ErrorCode::TransactionalIdAuthorizationFailed.code();
                return out;
            }
            if let Err(code) = ctx.txns.check_coordinator(&name) {
                out.error_code = code.code();
                return out;
            }
            let Some(meta) = ctx.txns.get(&name) else {
                out.error_code = ErrorCode::TransactionalIdNotFound.code();
                return out;
            };
            out.transaction_state = s(meta.state.name());
            out.transaction_timeout_ms = meta.timeout_ms;
            out.transaction_start_time_ms = meta.start_ms;
            out.producer_id = ProducerId(meta.producer_id);
            out.producer_epoch = meta.producer_epoch;
            let mut topics: Vec<TopicData> = Vec::new();
            for (t, p) in meta.partitions {
                match topics.iter_mut().find(|d| d.topic.0.as_str() == t) {
                    Some(d) => d.partitions.push(p),
                    None => topics.push(msg!(TopicData {
                        topic: kafka_protocol::messages::TopicName(s(&t)),
                        partitions: vec![p],
                    })),
                }
            }
            out.topics = topics;
            out
        })
        .collect();
    msg!(DescribeTransactionsResponse { transaction_states })
}

/// ListTransactions (KIP-664; v1's duration filter, KIP-994).
pub fn list(ctx: &Context, r: ListTransactionsRequest) -> ListTransactionsResponse {
    use kafka_protocol::messages::list_transactions_response::TransactionState;
    let known: Vec<&str> = crate::txn::TxnState::ALL.iter().map(|s| s.name()).collect();
    let unknown_state_filters: Vec<StrBytes> = r
        .state_filters
        .iter()
        .filter(|f| !known.contains(&f.as_str()))
        .cloned()
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let transaction_states = ctx
        .txns
        .list()
        .into_iter()
        .filter(|t| {
            r.state_filters.is_empty()
                || r.state_filters.iter().any(|f| f.as_str() == t.state.name())
        })
        .filter(|t| {
            r.producer_id_filters.is_empty()
                || r.producer_id_filters.iter().any(|p| p.0 == t.producer_id)
        })
        .filter(|t| {
            r.duration_filter < 0 || (t.start_ms >= 0 && now - t.start_ms >= r.duration_filter)
        })
        .filter(|t| ctx.may_see(ResourceType::TransactionalId, &t.transactional_id))
        .map(|t| {
            msg!(TransactionState {
                transactional_id: TransactionalId(s(&t.transactional_id)),
                producer_id: ProducerId(t.producer_id),
                transaction_state: s(t.state.name()),
            })
        })
        .collect();
    msg!(ListTransactionsResponse {
        error_code: ErrorCode::None.code(),
        unknown_state_filters,
        transaction_states,
    })
}
