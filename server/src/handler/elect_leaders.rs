//! ElectLeaders (KIP-183, KIP-460): moves a partition's leadership to its preferred replica, or
//! gives a leaderless partition any live replica (unclean), on an operator's request
//! (`kafka-leader-election.sh`, `Admin::electLeaders`).
//!
//! As in Kafka: a request naming no partitions means every partition, and then only partitions
//! where an election happened or failed are reported (ELECTION_NOT_NEEDED ones are left out).

use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::elect_leaders_request::ElectLeadersRequest;
use kafka_protocol::messages::elect_leaders_response::{
    ElectLeadersResponse, PartitionResult, ReplicaElectionResult,
};
use strata_replication::controller::Election;

use super::admin::code_message;
use super::{Context, s};
use crate::error_code::ErrorCode;

/// ElectLeaders. v0 is always a preferred election; v1+ names the type (0 preferred, 1
/// unclean).
pub async fn handle(ctx: &Context, r: ElectLeadersRequest) -> ElectLeadersResponse {
    if !ctx.authorized_on_cluster(crate::acl::Operation::Alter) {
        return msg!(ElectLeadersResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            replica_election_results: denied(&r),
        });
    }
    let election = match r.election_type {
        0 => Election::Preferred,
        1 => Election::Unclean,
        other => {
            return msg!(ElectLeadersResponse {
                error_code: ErrorCode::InvalidRequest.code(),
                replica_election_results: unknown_type(&r, other),
            });
        }
    };
    let every = r.topic_partitions.is_none();
    let wanted: Vec<(String, Vec<i32>)> = match r.topic_partitions {
        Some(topics) => topics
            .into_iter()
            .map(|t| (t.topic.0.as_str().to_string(), t.partitions))
            .collect(),
        None => ctx
            .broker
            .partition_counts()
            .into_iter()
            .map(|(t, n)| (t, (0..n as i32).collect()))
            .collect(),
    };
    let mut results = Vec::with_capacity(wanted.len());
    for (topic, partitions) in wanted {
        let mut partition_result = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let outcome = ctx
                .broker
                .admin_elect_leader(&topic, partition, election)
                .await;
            let (error_code, error_message) = code_message(outcome);
            if every && error_code == ErrorCode::ElectionNotNeeded.code() {
                continue;
            }
            partition_result.push(msg!(PartitionResult {
                partition_id: partition,
                error_code,
                error_message,
            }));
        }
        if !partition_result.is_empty() || !every {
            results.push(msg!(ReplicaElectionResult {
                topic: TopicName(s(&topic)),
                partition_result,
            }));
        }
    }
    msg!(ElectLeadersResponse {
        error_code: 0,
        replica_election_results: results,
    })
}

/// Every named partition answered INVALID_REQUEST for an election type Kafka does not define.
fn unknown_type(r: &ElectLeadersRequest, election_type: i8) -> Vec<ReplicaElectionResult> {
    let message = format!("election type {election_type} is neither preferred (0) nor unclean (1)");
    every_partition(r, ErrorCode::InvalidRequest, &message)
}

/// CLUSTER_AUTHORIZATION_FAILED for every partition named.
fn denied(r: &ElectLeadersRequest) -> Vec<ReplicaElectionResult> {
    every_partition(
        r,
        ErrorCode::ClusterAuthorizationFailed,
        "not authorized to alter the cluster",
    )
}

/// The same error for every partition the request names.
fn every_partition(
    r: &ElectLeadersRequest,
    code: ErrorCode,
    message: &str,
) -> Vec<ReplicaElectionResult> {
    r.topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            msg!(ReplicaElectionResult {
                topic: t.topic.clone(),
                partition_result: t
                    .partitions
                    .iter()
                    .map(|p| {
                        msg!(PartitionResult {
                            partition_id: *p,
                            error_code: code.code(),
                            error_message: Some(s(message)),
                        })
                    })
                    .collect(),
            })
        })
        .collect()
}
