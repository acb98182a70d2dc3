//! DescribeProducers (KIP-664): the idempotent producers a partition's leader knows, with
//! their epochs, last sequences and last timestamps, for `kafka-transactions.sh
//! describe-producers` and `Admin::describeProducers`, and the first offset of each one's open
//! transaction there (`current_txn_start_offset`, -1 if none; a transaction hanging there is
//! found this way, KIP-664), and the coordinator epoch of its last marker (-1: none).

use crate::error_code::ErrorCode;
use kafka_protocol::messages::ProducerId;
use kafka_protocol::messages::describe_producers_request::DescribeProducersRequest;
use kafka_protocol::messages::describe_producers_response::{
    DescribeProducersResponse, PartitionResponse, ProducerState, TopicResponse,
};

use super::Context;

/// DescribeProducers v0. Answered by the partition's leader only (NOT_LEADER_OR_FOLLOWER
/// elsewhere, as Kafka does).
pub fn handle(ctx: &Context, r: DescribeProducersRequest) -> DescribeProducersResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(t.name.0.as_str());
            let allowed = ctx.authorized(
                crate::acl::Operation::Read,
                crate::acl::ResourceType::Topic,
                t.name.0.as_str(),
            );
            let partitions = t
                .partition_indexes
                .into_iter()
                .map(|index| {
                    let mut out = msg!(PartitionResponse {
                        partition_index: index,
                    });
                    if !allowed {
                        out.error_code = ErrorCode::TopicAuthorizationFailed.code();
                        return out;
                    }
                    let partition = match ctx.broker.leader_partition(topic.as_deref(), index) {
                        Ok(p) => p,
                        Err(code) => {
                            out.error_code = code.code();
                            return out;
                        }
                    };
                    out.active_producers = partition
                        .active_producers()
                        .into_iter()
                        .map(|p| {
                            msg!(ProducerState {
                                producer_id: ProducerId(p.producer_id),
                                producer_epoch: i32::from(p.producer_epoch),
                                last_sequence: p.last_sequence,
                                last_timestamp: p.last_timestamp,
                                coordinator_epoch: p.coordinator_epoch,
                                current_txn_start_offset: p
                                    .current_txn_start_offset
                                    .map_or(-1, |o| o.0),
                            })
                        })
                        .collect();
                    out
                })
                .collect();
            msg!(TopicResponse {
                name: t.name,
                partitions,
            })
        })
        .collect();
    msg!(DescribeProducersResponse { topics })
}
