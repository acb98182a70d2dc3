//! `strata txn ...`: transactions (ListTransactions from every broker, DescribeTransactions at
//! each id's coordinator) and the producers a partition knows (DescribeProducers at its leader),
//! as `kafka-transactions.sh` shows them: what an operator needs to find a hanging transaction.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_producers_request::{
    DescribeProducersRequest, TopicRequest,
};
use kafka_protocol::messages::describe_producers_response::DescribeProducersResponse;
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_transactions_response::DescribeTransactionsResponse;
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::list_transactions_response::ListTransactionsResponse;
use kafka_protocol::messages::{ApiKey, TransactionalId};
use serde::Serialize;

use super::client::{AdminClient, AdminResult, check, topic_name, wire_str};
use super::output::{self, Format, Table};
use super::view::{ClusterView, Detail};

/// A transactional id as ListTransactions names it.
#[derive(Debug, Clone, Serialize)]
pub struct ListedTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// `Ongoing`, `PrepareCommit`, `CompleteAbort`, `Empty`, ...
    pub state: String,
    /// Its coordinator.
    pub coordinator: i32,
}

/// `strata txn list`.
pub async fn list(
    client: &mut AdminClient,
    states: &[String],
    format: Format,
) -> AdminResult<Vec<ListedTransaction>> {
    client.metadata(Some(&[])).await?;
    let brokers: Vec<(i32, String)> = client
        .brokers()
        .iter()
        .map(|(i, a)| (*i, a.clone()))
        .collect();
    let mut out = Vec::new();
    for (id, addr) in brokers {
        let version = client
            .version(&addr, ApiKey::ListTransactions, 0, 1)
            .await?;
        let mut req = ListTransactionsRequest::default();
        req.state_filters = states.iter().map(|s| wire_str(s)).collect();
        req.duration_filter = -1;
        let r: ListTransactionsResponse = client
            .send(&addr, ApiKey::ListTransactions, version, &req)
            .await?;
        check(
            r.error_code,
            || format!("listing the transactions of broker {id}"),
            None,
        )?;
        for t in r.transaction_states {
            out.push(ListedTransaction {
                transactional_id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                state: t.transaction_state.to_string(),
                coordinator: id,
            });
        }
    }
    out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
    output::print(format, &out, || {
        let mut t = Table::new(&["TRANSACTIONAL ID", "PRODUCER ID", "STATE", "COORDINATOR"]);
        for x in &out {
            t.row(vec![
                x.transactional_id.clone(),
                x.producer_id.to_string(),
                x.state.clone(),
                x.coordinator.to_string(),
            ]);
        }
        if t.is_empty() {
            "(no transactional ids)\n".to_string()
        } else {
            t.render()
        }
    });
    Ok(out)
}

/// One transactional id's state.
#[derive(Debug, Clone, Serialize)]
pub struct DescribedTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// Its state.
    pub state: String,
    /// Producer id and epoch.
    pub producer_id: i64,
    /// The epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms`.
    pub timeout_ms: i32,
    /// When the open transaction started (ms since the epoch), -1 when none is open.
    pub start_time_ms: i64,
    /// Topic → partitions in the open transaction.
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// The coordinator.
    pub coordinator: String,
}

/// `strata txn describe`.
pub async fn describe(
    client: &mut AdminClient,
    id: &str,
    format: Format,
) -> AdminResult<DescribedTransaction> {
    let coordinator = client.coordinator(id, 1).await?;
    let version = client
        .version(&coordinator, ApiKey::DescribeTransactions, 0, 0)
        .await?;
    let mut req = DescribeTransactionsRequest::default();
    req.transactional_ids = vec![TransactionalId(wire_str(id))];
    let r: DescribeTransactionsResponse = client
        .send(&coordinator, ApiKey::DescribeTransactions, version, &req)
        .await?;
    let t = r.transaction_states.into_iter().next().ok_or_else(|| {
        super::client::AdminError::Usage(format!("no answer for transactional id {id:?}"))
    })?;
    check(
        t.error_code,
        || format!("describing transactional id {id:?}"),
        None,
    )?;
    let d = DescribedTransaction {
        transactional_id: id.to_string(),
        state: t.transaction_state.to_string(),
        producer_id: t.producer_id.0,
        producer_epoch: t.producer_epoch,
        timeout_ms: t.transaction_timeout_ms,
        start_time_ms: t.transaction_start_time_ms,
        partitions: t
            .topics
            .into_iter()
            .map(|tp| (tp.topic.0.to_string(), tp.partitions))
            .collect(),
        coordinator,
    };
    output::print(format, &d, || {
        format!(
            "Transactional id {}  state {}  producer {} epoch {}  timeout {} ms  coordinator {}\n{}",
            d.transactional_id,
            d.state,
            d.producer_id,
            d.producer_epoch,
            d.timeout_ms,
            d.coordinator,
            if d.partitions.is_empty() {
                "no open transaction\n".to_string()
            } else {
                format!(
                    "open since {} ms ago, in {}\n",
                    (crate::clock::now_ms() - d.start_time_ms).max(0),
                    d.partitions
                        .iter()
                        .map(|(t, ps)| format!("{t}:{}", output::ids(ps)))
                        .collect::<Vec<_>>()
                        .join(" ")
                )
            }
        )
    });
    Ok(d)
}

/// A producer a partition knows.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionProducer {
    /// The partition.
    pub partition: i32,
    /// Producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i32,
    /// Its last sequence.
    pub last_sequence: i32,
    /// Its last write (ms since the epoch).
    pub last_timestamp: i64,
    /// The first offset of its open transaction, -1 when none: a low one that does not move
    /// is a hanging transaction holding back read_committed consumers.
    pub current_txn_start_offset: i64,
}

/// `strata txn producers`: the producers of `topic`'s partitions (all, or `partition`).
pub async fn producers(
    client: &mut AdminClient,
    topic: &str,
    partition: Option<i32>,
    format: Format,
) -> AdminResult<Vec<PartitionProducer>> {
    let view = ClusterView::fetch(client, Some(&[topic.to_string()]), Detail::default()).await?;
    let t = view.topic(topic)?;
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &t.partitions {
        if partition.is_none_or(|only| only == p.partition)
            && let Some(l) = p.leader
        {
            by_leader.entry(l).or_default().push(p.partition);
        }
    }
    let mut out = Vec::new();
    for (leader, partitions) in by_leader {
        let addr = client.broker_addr(leader).await?;
        let version = client
            .version(&addr, ApiKey::DescribeProducers, 0, 0)
            .await?;
        let mut tr = TopicRequest::default();
        tr.name = topic_name(topic);
        tr.partition_indexes = partitions;
        let mut req = DescribeProducersRequest::default();
        req.topics = vec![tr];
        let r: DescribeProducersResponse = client
            .send(&addr, ApiKey::DescribeProducers, version, &req)
            .await?;
        for t in r.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    || format!("describing the producers of {topic}-{}", p.partition_index),
                    p.error_message.as_deref(),
                )?;
                for s in p.active_producers {
                    out.push(PartitionProducer {
                        partition: p.partition_index,
                        producer_id: s.producer_id.0,
                        producer_epoch: s.producer_epoch,
                        last_sequence: s.last_sequence,
                        last_timestamp: s.last_timestamp,
                        current_txn_start_offset: s.current_txn_start_offset,
                    });
                }
            }
        }
    }
    out.sort_by_key(|p| (p.partition, p.producer_id));
    output::print(format, &out, || {
        let mut t = Table::new(&[
            "PARTITION",
            "PRODUCER ID",
            "EPOCH",
            "LAST SEQUENCE",
            "LAST WRITE (MS AGO)",
            "OPEN TRANSACTION FROM",
        ]);
        let now = crate::clock::now_ms();
        for p in &out {
            t.row(vec![
                p.partition.to_string(),
                p.producer_id.to_string(),
                p.producer_epoch.to_string(),
                p.last_sequence.to_string(),
                (now - p.last_timestamp).max(0).to_string(),
                if p.current_txn_start_offset >= 0 {
                    p.current_txn_start_offset.to_string()
                } else {
                    "-".to_string()
                },
            ]);
        }
        if t.is_empty() {
            "(no producers)\n".to_string()
        } else {
            t.render()
        }
    });
    Ok(out)
}
