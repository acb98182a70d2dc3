//! The consumer group protocol on the wire (KIP-848): ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. The state machine lives in `crate::group::consumer_group`.

use kafka_protocol::messages::consumer_group_describe_request::ConsumerGroupDescribeRequest;
use kafka_protocol::messages::consumer_group_describe_response as describe;
use kafka_protocol::messages::consumer_group_heartbeat_request::ConsumerGroupHeartbeatRequest;
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, ConsumerGroupHeartbeatResponse, TopicPartitions,
};
use kafka_protocol::messages::{RequestHeader, TopicName};

use super::{Context, s};
use crate::error_code::ErrorCode;
use crate::group::assignor::Partitions;
use crate::group::consumer_group::Heartbeat;

/// ConsumerGroupHeartbeat.
pub async fn heartbeat(
    ctx: &Context,
    header: &RequestHeader,
    r: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    use crate::acl::{Operation, ResourceType};
    if !ctx.authorized(Operation::Read, ResourceType::Group, r.group_id.0.as_str()) {
        return msg!(ConsumerGroupHeartbeatResponse {
            error_code: ErrorCode::GroupAuthorizationFailed.code(),
            error_message: Some(s("not authorized to read the group")),
            member_epoch: -1,
        });
    }
    let hb = Heartbeat {
        member_id: r.member_id.as_str().to_string(),
        member_epoch: r.member_epoch,
        instance_id: r.instance_id.map(|v| v.as_str().to_string()),
        rack_id: r.rack_id.map(|v| v.as_str().to_string()),
        rebalance_timeout_ms: r.rebalance_timeout_ms,
        subscribed_topic_names: r
            .subscribed_topic_names
            .map(|ts| ts.into_iter().map(|t| t.0.as_str().to_string()).collect()),
        subscribed_topic_regex: r.subscribed_topic_regex.map(|v| v.as_str().to_string()),
        server_assignor: r.server_assignor.map(|v| v.as_str().to_string()),
        owned: r.topic_partitions.map(|ts| {
            let mut owned = Partitions::new();
            for t in ts {
                owned.entry(t.topic_id).or_default().extend(t.partitions);
            }
            owned
        }),
        client_id: header
            .client_id
            .as_ref()
            .map(|c| c.as_str().to_string())
            .unwrap_or_default(),
        client_host: crate::connection::client_host(),
    };
    let reply = ctx
        .groups
        .consumer_heartbeat(r.group_id.0.as_str(), hb, header.request_api_version)
        .await;
    if reply.error != ErrorCode::None {
        tracing::debug!(group = r.group_id.0.as_str(), error = ?reply.error, message = ?reply.message, "consumer group heartbeat refused");
    }
    let ok = reply.error == ErrorCode::None;
    msg!(ConsumerGroupHeartbeatResponse {
        throttle_time_ms: 0,
        error_code: reply.error.code(),
        error_message: reply.message.as_deref().map(s),
        member_id: ok.then(|| s(&reply.member_id)),
        member_epoch: reply.member_epoch,
        heartbeat_interval_ms: if ok {
            ctx.broker.config.group_consumer_heartbeat_interval_ms
        } else {
            0
        },
        assignment: reply.assignment.map(|a| msg!(Assignment {
            topic_partitions: a
                .into_iter()
                .map(|(topic_id, ps)| msg!(TopicPartitions {
                    topic_id,
                    partitions: ps.into_iter().collect(),
                }))
                .collect(),
        })),
    })
}

/// ConsumerGroupDescribe: each group's epochs, assignor and members, with their current and
/// target assignments; GROUP_ID_NOT_FOUND for an id that is not a consumer group.
pub fn describe(
    ctx: &Context,
    r: ConsumerGroupDescribeRequest,
) -> describe::ConsumerGroupDescribeResponse {
    let view = ctx.groups.topics_view();
    let names: std::collections::BTreeMap<uuid::Uuid, &str> =
        view.iter().map(|(n, l)| (l.id, n.as_str())).collect();
    let assignment = |a: &Partitions| {
        msg!(describe::Assignment {
            topic_partitions: a
                .iter()
                .map(|(id, ps)| msg!(describe::TopicPartitions {
                    topic_id: *id,
                    topic_name: TopicName(s(names.get(id).copied().unwrap_or(""))),
                    partitions: ps.iter().copied().collect(),
                }))
                .collect(),
        })
    };
    let groups = r
        .group_ids
        .into_iter()
        .map(|id| {
            let ops = super::authorized::group(ctx, r.include_authorized_operations, id.0.as_str());
            let mut coordinator = ctx.groups.check_coordinator(id.0.as_str());
            if coordinator == ErrorCode::None
                && !ctx.authorized(
                    crate::acl::Operation::Describe,
                    crate::acl::ResourceType::Group,
                    id.0.as_str(),
                )
            {
                coordinator = ErrorCode::GroupAuthorizationFailed;
            }
            if coordinator != ErrorCode::None {
                return msg!(describe::DescribedGroup {
                    error_code: coordinator.code(),
                    group_id: id,
                    authorized_operations: ops,
                });
            }
            let Some(d) = ctx.groups.consumer_group_describe(id.0.as_str()) else {
                let message = format!("Group {} is not a consumer group.", id.0.as_str());
                return msg!(describe::DescribedGroup {
                    error_code: ErrorCode::GroupIdNotFound.code(),
                    error_message: Some(s(&message)),
                    group_id: id,
                    group_state: s("Dead"),
                    authorized_operations: ops,
                });
            };
            msg!(describe::DescribedGroup {
                error_code: 0,
                error_message: None,
                group_id: id,
                group_state: s(d.state.name()),
                group_epoch: d.group_epoch,
                assignment_epoch: d.assignment_epoch,
                assignor_name: s(d.assignor),
                members: d
                    .members
                    .iter()
                    .map(|(member_id, m, target)| msg!(describe::Member {
                        member_id: s(member_id),
                        instance_id: m.instance_id.as_deref().map(s),
                        rack_id: m.rack_id.as_deref().map(s),
                        member_epoch: m.member_epoch,
                        client_id: s(&m.client_id),
                        client_host: s(&m.client_host),
                        subscribed_topic_names: m
                            .subscribed_topic_names
                            .iter()
                            .map(|t| TopicName(s(t)))
                            .collect(),
                        subscribed_topic_regex: m.subscribed_topic_regex.as_deref().map(s),
                        assignment: assignment(&m.assigned),
                        target_assignment: assignment(target),
                        // v1: 1 = a member of the consumer protocol (0: classic).
                        member_type: 1,
                    }))
                    .collect(),
                authorized_operations: ops,
            })
        })
        .collect();
    msg!(describe::ConsumerGroupDescribeResponse {
        throttle_time_ms: 0,
        groups,
    })
}
