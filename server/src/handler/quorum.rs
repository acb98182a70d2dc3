//! DescribeQuorum (KIP-595, KIP-836; what `kafka-metadata-quorum.sh describe` and
//! `strata cluster info` ask): the metadata quorum as the active controller sees it: who
//! leads, in which term, the committed index, and every voter's log end and last contact.
//! Any broker answers by asking the active controller. A standalone broker is its own
//! one-voter quorum.

use std::time::Duration;

use kafka_protocol::messages::BrokerId;
use kafka_protocol::messages::describe_quorum_request::DescribeQuorumRequest;
use kafka_protocol::messages::describe_quorum_response::{
    DescribeQuorumResponse, PartitionData, ReplicaState, TopicData,
};

use super::{Context, s};
use crate::acl::Operation;
use crate::clock::now_ms;
use crate::cluster::wire::{ControllerRequest, ControllerResponse};
use crate::error_code::ErrorCode;

/// The metadata log's name, as Kafka's clients ask for it.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

fn answer(
    error_code: i16,
    message: Option<String>,
    partition: PartitionData,
) -> DescribeQuorumResponse {
    let mut topic = TopicData::default();
    topic.topic_name = kafka_protocol::messages::TopicName(s(METADATA_TOPIC));
    topic.partitions = vec![partition];
    let mut r = DescribeQuorumResponse::default();
    r.error_code = error_code;
    r.error_message = message.map(|m| s(&m));
    r.topics = if error_code == 0 { vec![topic] } else { vec![] };
    r
}

fn failed(code: ErrorCode, message: String) -> DescribeQuorumResponse {
    answer(code.code(), Some(message), PartitionData::default())
}

/// Serves DescribeQuorum at `version` (0-2).
pub async fn describe_quorum(
    ctx: &Context,
    r: DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    if !ctx.authorized_on_cluster(Operation::Describe) {
        return failed(
            ErrorCode::ClusterAuthorizationFailed,
            "not authorized to describe the cluster".into(),
        );
    }
    let asks_for_metadata_log = r.topics.len() == 1
        && r.topics[0].topic_name.0.as_str() == METADATA_TOPIC
        && r.topics[0].partitions.len() == 1
        && r.topics[0].partitions[0].partition_index == 0;
    let mut p = PartitionData::default();
    p.partition_index = 0;
    if !asks_for_metadata_log {
        p.error_code = ErrorCode::UnknownTopicOrPartition.code();
        p.leader_id = BrokerId(-1);
        return answer(0, None, p);
    }
    let now = now_ms();
    let replica = |id: i32, leo: u64, heard_ms_ago: Option<u64>, caught_up: bool| {
        let mut v = ReplicaState::default();
        v.replica_id = BrokerId(id);
        v.log_end_offset = i64::try_from(leo).unwrap_or(i64::MAX);
        if version >= 1 {
            let heard = heard_ms_ago.map_or(-1, |ago| now - i64::try_from(ago).unwrap_or(0));
            v.last_fetch_timestamp = heard;
            v.last_caught_up_timestamp = if caught_up { heard } else { -1 };
        }
        v
    };
    match &ctx.broker.cluster {
        None => {
            let me = ctx.broker.config.node_id;
            p.leader_id = BrokerId(me);
            p.leader_epoch = 0;
            p.high_watermark = 0;
            p.current_voters = vec![replica(me, 0, Some(0), true)];
        }
        Some(cluster) => {
            match cluster
                .admin
                .call(ControllerRequest::DescribeQuorum, Duration::from_secs(5))
                .await
            {
                Ok(ControllerResponse::Quorum {
                    leader,
                    term,
                    high_watermark,
                    voters,
                }) => {
                    p.leader_id = BrokerId(leader);
                    p.leader_epoch = i32::try_from(term).unwrap_or(i32::MAX);
                    p.high_watermark = i64::try_from(high_watermark).unwrap_or(i64::MAX);
                    p.current_voters = voters
                        .iter()
                        .map(|v| replica(v.id, v.log_end_offset, v.last_heard_ms_ago, v.caught_up))
                        .collect();
                }
                Ok(ControllerResponse::Error { code, message }) => {
                    return answer(code, Some(message), PartitionData::default());
                }
                Ok(other) => {
                    return failed(
                        ErrorCode::UnknownServerError,
                        format!("unexpected controller answer {other:?}"),
                    );
                }
                Err(e) => {
                    return failed(
                        ErrorCode::RequestTimedOut,
                        format!("the active controller did not answer: {e}"),
                    );
                }
            }
        }
    }
    answer(0, None, p)
}
