//! Partition reassignment (KIP-455): AlterPartitionReassignments starts, replaces or cancels
//! the move of partitions to new replicas; ListPartitionReassignments shows the moves under
//! way (`kafka-reassign-partitions.sh`, `Admin::alterPartitionReassignments`). The controller
//! carries each move out (`strata_replication::controller`, module `reassignment`).

use crate::error_code::ErrorCode;
use kafka_protocol::messages::alter_partition_reassignments_request::AlterPartitionReassignmentsRequest;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    AlterPartitionReassignmentsResponse, ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsRequest;
use kafka_protocol::messages::list_partition_reassignments_response::{
    ListPartitionReassignmentsResponse, OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{BrokerId, TopicName};

use super::admin::code_message;
use super::{Context, s};

/// AlterPartitionReassignments: each partition's target (`replicas`, or null to cancel) goes to
/// the controller; each gets its own error. v0 always allows a replication factor change; v1
/// says whether it does (KIP-860).
pub async fn alter(
    ctx: &Context,
    r: AlterPartitionReassignmentsRequest,
    version: i16,
) -> AlterPartitionReassignmentsResponse {
    let allow_rf_change = version < 1 || r.allow_replication_factor_change;
    if !ctx.authorized_on_cluster(crate::acl::Operation::Alter) {
        return msg!(AlterPartitionReassignmentsResponse {
            allow_replication_factor_change: allow_rf_change,
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            error_message: Some(s("not authorized to alter the cluster")),
        });
    }
    let mut responses = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let topic = t.name.0.as_str().to_string();
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let target = p
                .replicas
                .map(|replicas| replicas.into_iter().map(|b| b.0).collect());
            let outcome = ctx
                .broker
                .admin_reassign_partition(&topic, p.partition_index, target, allow_rf_change)
                .await;
            let (error_code, error_message) = code_message(outcome);
            partitions.push(msg!(ReassignablePartitionResponse {
                partition_index: p.partition_index,
                error_code,
                error_message,
            }));
        }
        responses.push(msg!(ReassignableTopicResponse {
            name: TopicName(s(&topic)),
            partitions,
        }));
    }
    msg!(AlterPartitionReassignmentsResponse {
        allow_replication_factor_change: allow_rf_change,
        error_code: 0,
        error_message: None,
        responses,
    })
}

/// ListPartitionReassignments: the partitions with a move under way (all of them, or among
/// those named), each with its full replica set and the replicas being added and removed.
/// Partitions that are not moving, and names that do not exist, are left out, as Kafka does.
pub fn list(
    ctx: &Context,
    r: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let mut topics = Vec::new();
    if !ctx.authorized_on_cluster(crate::acl::Operation::Describe) {
        return msg!(ListPartitionReassignmentsResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            error_message: Some(s("not authorized to describe the cluster")),
        });
    }
    if let Some(cluster) = &ctx.broker.cluster {
        let image = cluster.image();
        let wanted: Vec<(String, Option<Vec<i32>>)> = match r.topics {
            Some(named) => named
                .into_iter()
                .map(|t| (t.name.0.as_str().to_string(), Some(t.partition_indexes)))
                .collect(),
            None => image.topics.keys().map(|n| (n.clone(), None)).collect(),
        };
        for (name, indexes) in wanted {
            let Some(ti) = image.topics.get(&name) else {
                continue;
            };
            let ids =
                |v: &[strata_replication::BrokerId]| v.iter().map(|b| BrokerId(b.0)).collect();
            let partitions: Vec<OngoingPartitionReassignment> = ti
                .partitions
                .iter()
                .enumerate()
                .filter(|(i, p)| {
                    p.is_reassigning()
                        && indexes
                            .as_ref()
                            .is_none_or(|ix| ix.iter().any(|x| *x as usize == *i && *x >= 0))
                })
                .map(|(i, p)| {
                    msg!(OngoingPartitionReassignment {
                        partition_index: i as i32,
                        replicas: ids(&p.replicas),
                        adding_replicas: ids(&p.adding_replicas),
                        removing_replicas: ids(&p.removing_replicas),
                    })
                })
                .collect();
            if !partitions.is_empty() {
                topics.push(msg!(OngoingTopicReassignment {
                    name: TopicName(s(&name)),
                    partitions,
                }));
            }
        }
    }
    msg!(ListPartitionReassignmentsResponse {
        error_code: 0,
        error_message: None,
        topics,
    })
}
