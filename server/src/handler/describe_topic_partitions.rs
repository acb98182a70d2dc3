//! DescribeTopicPartitions (KIP-966): what Metadata says of topics' partitions, for
//! `Admin::describeTopics` of Kafka 3.9+ clients, in pages.
//!
//! The answer is built from this broker's Metadata answer (so both agree, in both modes) with
//! Kafka's paging: topics in name order, at most `response_partition_limit` partitions (and at
//! most [`PARTITION_LIMIT`]), and a cursor naming the first partition left out; a request with
//! a cursor starts there. Eligible leader replicas (KIP-966's ELR) are not kept: empty lists.

use kafka_protocol::messages::describe_topic_partitions_request::DescribeTopicPartitionsRequest;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponse, DescribeTopicPartitionsResponsePartition,
    DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};

use super::Context;

/// The most partitions one answer holds, whatever the request asks (Kafka's
/// `max.request.partition.size.limit` default).
pub const PARTITION_LIMIT: usize = 2000;

/// DescribeTopicPartitions v0.
pub async fn handle(
    ctx: &Context,
    r: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let limit = usize::try_from(r.response_partition_limit)
        .unwrap_or(1)
        .clamp(1, PARTITION_LIMIT);
    // No topics named: every topic.
    let metadata = msg!(MetadataRequest {
        topics: (!r.topics.is_empty()).then(|| {
            r.topics
                .iter()
                .map(|t| {
                    msg!(MetadataRequestTopic {
                        name: Some(t.name.clone()),
                    })
                })
                .collect()
        }),
        allow_auto_topic_creation: false,
        include_topic_authorized_operations: true,
    });
    let mut topics = super::metadata::handle(ctx, metadata, 12).await.topics;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let cursor = r
        .cursor
        .map(|c| (c.topic_name.0.as_str().to_string(), c.partition_index));

    let mut out = Vec::new();
    let mut room = limit;
    let mut next_cursor = None;
    for mut t in topics {
        let name = t.name.as_ref().map_or("", |n| n.0.as_str()).to_string();
        let mut first = 0;
        if let Some((from_topic, from_partition)) = &cursor {
            if name < *from_topic {
                continue;
            }
            if name == *from_topic {
                first = (*from_partition).max(0);
            }
        }
        t.partitions.retain(|p| p.partition_index >= first);
        t.partitions.sort_by_key(|p| p.partition_index);
        // The page is full: the cursor names this topic's first partition. (Topics without
        // partitions, the unknown ones, still fit: they carry only their error.)
        if room == 0
            && let Some(p) = t.partitions.first()
        {
            next_cursor = Some(msg!(Cursor {
                topic_name: t.name.clone().unwrap_or_default(),
                partition_index: p.partition_index,
            }));
            break;
        }
        if t.partitions.len() > room {
            let rest = t.partitions.split_off(room);
            next_cursor = rest.first().map(|p| {
                msg!(Cursor {
                    topic_name: t.name.clone().unwrap_or_default(),
                    partition_index: p.partition_index,
                })
            });
        }
        room -= t.partitions.len();
        let stop = next_cursor.is_some();
        out.push(msg!(DescribeTopicPartitionsResponseTopic {
            error_code: t.error_code,
            name: t.name,
            topic_id: t.topic_id,
            is_internal: t.is_internal,
            topic_authorized_operations: t.topic_authorized_operations,
            partitions: t
                .partitions
                .into_iter()
                .map(|p| {
                    msg!(DescribeTopicPartitionsResponsePartition {
                        error_code: p.error_code,
                        partition_index: p.partition_index,
                        leader_id: p.leader_id,
                        leader_epoch: p.leader_epoch,
                        replica_nodes: p.replica_nodes,
                        isr_nodes: p.isr_nodes,
                        eligible_leader_replicas: Some(Vec::new()),
                        last_known_elr: Some(Vec::new()),
                        offline_replicas: p.offline_replicas,
                    })
                })
                .collect(),
        }));
        if stop {
            break;
        }
    }
    msg!(DescribeTopicPartitionsResponse {
        topics: out,
        next_cursor,
    })
}
