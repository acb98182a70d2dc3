//! Group APIs on the wire: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, DescribeGroups, ListGroups, DeleteGroups. The state machine lives
//! in `crate::group`.

use crate::acl::{Operation, ResourceType};
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_groups_response::{
    DeletableGroupResult, DeleteGroupsResponse,
};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_groups_response::{
    DescribeGroupsResponse, DescribedGroup, DescribedGroupMember,
};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::find_coordinator_response::{Coordinator, FindCoordinatorResponse};
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::heartbeat_response::HeartbeatResponse;
use kafka_protocol::messages::join_group_request::JoinGroupRequest;
use kafka_protocol::messages::join_group_response::{JoinGroupResponse, JoinGroupResponseMember};
use kafka_protocol::messages::leave_group_request::LeaveGroupRequest;
use kafka_protocol::messages::leave_group_response::{LeaveGroupResponse, MemberResponse};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_groups_response::{ListGroupsResponse, ListedGroup};
use kafka_protocol::messages::offset_commit_request::OffsetCommitRequest;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponse, OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequest;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponse, OffsetFetchResponseGroup, OffsetFetchResponsePartition,
    OffsetFetchResponsePartitions, OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequest;
use kafka_protocol::messages::sync_group_response::SyncGroupResponse;
use kafka_protocol::messages::{BrokerId, GroupId, TopicName};

use kafka_protocol::protocol::StrBytes;

use super::{Context, s};
use crate::broker::OFFSETS_TOPIC;
use crate::error_code::ErrorCode;
use crate::group::{CommittedOffset, JoinRequest};

/// Largest offset metadata string accepted (Kafka's offset.metadata.max.bytes).
const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// The coordinator of `key`: standalone, this broker; in a cluster, the leader of the group's
/// `__consumer_offsets` partition, or with `transactional` of the transactional id's
/// `__transaction_state` partition (either topic created on first use, like Kafka).
async fn coordinator_of(
    ctx: &Context,
    key: &str,
    transactional: bool,
) -> Result<(i32, String, i32), ErrorCode> {
    let Some(cluster) = &ctx.broker.cluster else {
        if transactional {
            ctx.txns.ensure_topic_standalone().await?;
        }
        let (host, port) = &crate::connection::advertised(ctx);
        return Ok((ctx.broker.config.node_id, host.clone(), i32::from(*port)));
    };
    let cfg = &ctx.broker.config;
    let (topic, partitions, replication) = if transactional {
        (
            crate::broker::TXN_TOPIC,
            cfg.transaction_state_partitions,
            cfg.transaction_state_replication_factor,
        )
    } else {
        (
            OFFSETS_TOPIC,
            cfg.offsets_topic_partitions,
            cfg.offsets_topic_replication_factor,
        )
    };
    if !cluster.image().topics.contains_key(topic) {
        let mut configs = std::collections::BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact".to_string());
        configs.insert("segment.bytes".to_string(), (100u64 << 20).to_string());
        let req = crate::cluster::wire::ControllerRequest::CreateTopic {
            name: topic.to_string(),
            partitions: u32::try_from(partitions).unwrap_or(1),
            replication_factor: u32::try_from(replication).unwrap_or(1),
            configs,
            assignments: None,
        };
        if let Err((code, message)) = cluster.admin_call(req).await
            && code != ErrorCode::TopicAlreadyExists
        {
            tracing::info!(?code, %message, "cannot create {topic} yet");
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
    }
    let image = cluster.image();
    let index = if transactional {
        ctx.txns.partition_for(key)
    } else {
        ctx.groups.partition_for(key)
    };
    let leader = image
        .topics
        .get(topic)
        .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
        .and_then(|p| p.leader)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let endpoint = image
        .brokers
        .get(&leader)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint_on(&crate::connection::listener_name(ctx)))
        .map(str::to_string)
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or(ErrorCode::CoordinatorNotAvailable)?;
    Ok((
        leader.0,
        host.to_string(),
        port.parse()
            .map_err(|_| ErrorCode::CoordinatorNotAvailable)?,
    ))
}

/// FindCoordinator.
pub async fn find_coordinator(
    ctx: &Context,
    r: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let transactional = r.key_type == 1;
    let keys: Vec<StrBytes> = if version >= 4 {
        r.coordinator_keys
    } else {
        vec![r.key]
    };
    let mut coordinators = Vec::with_capacity(keys.len());
    for key in keys {
        let found = if transactional {
            if ctx.authorized(
                Operation::Describe,
                ResourceType::TransactionalId,
                key.as_str(),
            ) {
                coordinator_of(ctx, key.as_str(), true).await
            } else {
                Err(ErrorCode::TransactionalIdAuthorizationFailed)
            }
        } else if !ctx.authorized(Operation::Describe, ResourceType::Group, key.as_str()) {
            Err(ErrorCode::GroupAuthorizationFailed)
        } else {
            coordinator_of(ctx, key.as_str(), false).await
        };
        let (node, host, port, error) = match found {
            Ok((node, host, port)) => (node, host, port, ErrorCode::None),
            Err(e) => (-1, String::new(), -1, e),
        };
        coordinators.push(msg!(Coordinator {
            key,
            node_id: BrokerId(node),
            host: s(&host),
            port,
            error_code: error.code(),
        }));
    }
    if version >= 4 {
        msg!(FindCoordinatorResponse { coordinators })
    } else {
        let c = coordinators.pop().unwrap_or_default();
        msg!(FindCoordinatorResponse {
            error_code: c.error_code,
            node_id: c.node_id,
            host: c.host,
            port: c.port,
        })
    }
}

/// JoinGroup.
pub async fn join_group(
    ctx: &std::sync::Arc<Context>,
    r: JoinGroupRequest,
    version: i16,
    client_id: &str,
) -> JoinGroupResponse {
    if !ctx.authorized(Operation::Read, ResourceType::Group, r.group_id.0.as_str()) {
        return msg!(JoinGroupResponse {
            error_code: ErrorCode::GroupAuthorizationFailed.code(),
            generation_id: -1,
            protocol_name: Some(s("")),
            member_id: r.member_id,
        });
    }
    let req = JoinRequest {
        group_id: r.group_id.0.as_str().to_string(),
        member_id: r.member_id.as_str().to_string(),
        group_instance_id: r.group_instance_id.as_ref().map(|g| g.as_str().to_string()),
        client_id: client_id.to_string(),
        client_host: crate::connection::client_host(),
        session_timeout_ms: r.session_timeout_ms,
        rebalance_timeout_ms: if version == 0 {
            r.session_timeout_ms
        } else {
            r.rebalance_timeout_ms
        },
        protocol_type: r.protocol_type.as_str().to_string(),
        protocols: r
            .protocols
            .iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata.clone()))
            .collect(),
        requires_known_member_id: version >= 4,
    };
    let res = ctx.groups.join(req).await;
    msg!(JoinGroupResponse {
        error_code: res.error.code(),
        generation_id: res.generation_id,
        protocol_type: res.protocol_type.as_deref().map(s),
        protocol_name: Some(s(res.protocol_name.as_deref().unwrap_or(""))),
        leader: s(&res.leader),
        member_id: s(&res.member_id),
        members: res
            .members
            .into_iter()
            .map(|(id, instance, metadata)| msg!(JoinGroupResponseMember {
                member_id: s(&id),
                group_instance_id: instance.as_deref().map(s),
                metadata,
            }))
            .collect(),
    })
}

/// SyncGroup.
pub async fn sync_group(ctx: &Context, r: SyncGroupRequest) -> SyncGroupResponse {
    if !ctx.authorized(Operation::Read, ResourceType::Group, r.group_id.0.as_str()) {
        return msg!(SyncGroupResponse {
            error_code: ErrorCode::GroupAuthorizationFailed.code(),
        });
    }
    let assignments = r
        .assignments
        .iter()
        .map(|a| (a.member_id.as_str().to_string(), a.assignment.clone()))
        .collect();
    let (code, assignment) = ctx
        .groups
        .sync(
            r.group_id.0.as_str(),
            r.generation_id,
            r.member_id.as_str(),
            assignments,
        )
        .await;
    let (_, protocol_type, protocol_name, _) = ctx.groups.describe(r.group_id.0.as_str());
    msg!(SyncGroupResponse {
        error_code: code.code(),
        protocol_type: Some(s(&protocol_type)),
        protocol_name: Some(s(&protocol_name)),
        assignment,
    })
}

/// Heartbeat.
pub fn heartbeat(ctx: &std::sync::Arc<Context>, r: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.authorized(Operation::Read, ResourceType::Group, r.group_id.0.as_str()) {
        return msg!(HeartbeatResponse {
            error_code: ErrorCode::GroupAuthorizationFailed.code(),
        });
    }
    msg!(HeartbeatResponse {
        error_code: ctx
            .groups
            .heartbeat(r.group_id.0.as_str(), r.generation_id, r.member_id.as_str())
            .code(),
    })
}

/// LeaveGroup (one member before v3, a batch from v3).
pub fn leave_group(
    ctx: &std::sync::Arc<Context>,
    r: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    let group = r.group_id.0.as_str();
    if !ctx.authorized(Operation::Read, ResourceType::Group, group) {
        return msg!(LeaveGroupResponse {
            error_code: ErrorCode::GroupAuthorizationFailed.code(),
        });
    }
    if version < 3 {
        let codes = ctx.groups.leave(group, &[r.member_id.as_str().to_string()]);
        return msg!(LeaveGroupResponse {
            error_code: codes.first().copied().unwrap_or(ErrorCode::None).code(),
        });
    }
    let ids: Vec<String> = r
        .members
        .iter()
        .map(|m| m.member_id.as_str().to_string())
        .collect();
    let codes = ctx.groups.leave(group, &ids);
    msg!(LeaveGroupResponse {
        error_code: 0,
        members: r
            .members
            .into_iter()
            .zip(codes)
            .map(|(m, c)| msg!(MemberResponse {
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
                error_code: c.code(),
            }))
            .collect(),
    })
}

/// OffsetCommit: validated against the group's generation, appended durably.
pub async fn offset_commit(ctx: &Context, r: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = r.group_id.0.as_str().to_string();
    let check = if ctx.authorized(Operation::Read, ResourceType::Group, &group) {
        ctx.groups.validate_commit(
            &group,
            r.generation_id_or_member_epoch,
            r.member_id.as_str(),
        )
    } else {
        ErrorCode::GroupAuthorizationFailed
    };
    let mut commits = Vec::new();
    let mut topics: Vec<OffsetCommitResponseTopic> = Vec::new();
    for t in &r.topics {
        // v10 names the topic by id.
        let by_id = t.name.0.is_empty() && !t.topic_id.is_nil();
        let topic = if by_id {
            ctx.broker.topic_by_id(t.topic_id)
        } else {
            ctx.broker.topic(t.name.0.as_str())
        };
        let name = match (&topic, by_id) {
            (Some(topic), true) => topic.name.clone(),
            _ => t.name.0.as_str().to_string(),
        };
        let mut partitions = Vec::new();
        for p in &t.partitions {
            let code = if check != ErrorCode::None {
                check
            } else if !ctx.authorized(Operation::Read, ResourceType::Topic, &name) {
                ErrorCode::TopicAuthorizationFailed
            } else if by_id && topic.is_none() {
                ErrorCode::UnknownTopicId
            } else if !ctx
                .broker
                .partition_exists(topic.as_deref(), p.partition_index)
            {
                ErrorCode::UnknownTopicOrPartition
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
            {
                ErrorCode::OffsetMetadataTooLarge
            } else {
                commits.push((
                    (name.clone(), p.partition_index),
                    CommittedOffset {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p
                            .committed_metadata
                            .as_ref()
                            .map(|m| m.as_str().to_string()),
                    },
                ));
                ErrorCode::None
            };
            partitions.push(msg!(OffsetCommitResponsePartition {
                partition_index: p.partition_index,
                error_code: code.code(),
            }));
        }
        topics.push(msg!(OffsetCommitResponseTopic {
            name: t.name.clone(),
            topic_id: t.topic_id,
            partitions,
        }));
    }
    if let Err(code) = ctx.groups.commit(&group, commits).await {
        for t in &mut topics {
            for p in &mut t.partitions {
                if p.error_code == 0 {
                    p.error_code = code.code();
                }
            }
        }
    }
    msg!(OffsetCommitResponse { topics })
}

/// Committed offsets of one topic: (partition, offset if committed).
type TopicOffsets = (TopicName, Vec<(i32, Committed)>);

/// A topic's committed offsets, `Err` for a topic the principal may not describe.
type Committed = Result<Option<CommittedOffset>, ErrorCode>;

fn fetch_one(
    ctx: &Context,
    group: &str,
    topics: Option<Vec<(TopicName, Vec<i32>)>>,
    require_stable: bool,
) -> Vec<TopicOffsets> {
    match topics {
        Some(list) => list
            .into_iter()
            .map(|(name, parts)| {
                let n = name.0.as_str().to_string();
                let allowed = ctx.authorized(Operation::Describe, ResourceType::Topic, &n);
                let ps = parts
                    .into_iter()
                    .map(|p| {
                        // KIP-447: a consumer that asks for stable offsets waits (retries)
                        // while an open transaction has committed one of this partition.
                        let c = if !allowed {
                            Err(ErrorCode::TopicAuthorizationFailed)
                        } else if require_stable && ctx.groups.has_pending_txn_offset(group, &n, p)
                        {
                            Err(ErrorCode::UnstableOffsetCommit)
                        } else if allowed {
                            Ok(ctx.groups.committed(group, &n, p))
                        } else {
                            Err(ErrorCode::TopicAuthorizationFailed)
                        };
                        (p, c)
                    })
                    .collect();
                (name, ps)
            })
            .collect(),
        None => {
            let mut by_topic: std::collections::BTreeMap<
                String,
                Vec<(i32, Option<CommittedOffset>)>,
            > = Default::default();
            for (t, p, c) in ctx.groups.committed_all(group) {
                by_topic.entry(t).or_default().push((p, Some(c)));
            }
            // All topics: those the principal may describe.
            by_topic
                .into_iter()
                .filter(|(t, _)| ctx.may_see(ResourceType::Topic, t))
                .map(|(t, ps)| {
                    let ps = ps.into_iter().map(|(p, c)| (p, Ok(c))).collect();
                    (TopicName(s(&t)), ps)
                })
                .collect()
        }
    }
}

/// OffsetFetch (one group before v8, several from v8).
pub fn offset_fetch(ctx: &Context, r: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version >= 8 {
        let groups = r
            .groups
            .into_iter()
            .map(|g| {
                // v10 names topics by id: those this broker does not know are answered
                // UNKNOWN_TOPIC_ID, the others looked up by name.
                let mut unknown_ids = Vec::new();
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .filter_map(|t| {
                            if version < 10 {
                                return Some((t.name, t.partition_indexes));
                            }
                            match ctx.broker.topic_by_id(t.topic_id) {
                                Some(topic) => {
                                    Some((TopicName(s(&topic.name)), t.partition_indexes))
                                }
                                None => {
                                    unknown_ids.push((t.topic_id, t.partition_indexes));
                                    None
                                }
                            }
                        })
                        .collect()
                });
                let mut coordinator = ctx.groups.check_coordinator(g.group_id.0.as_str());
                if coordinator == ErrorCode::None
                    && !ctx.authorized(
                        Operation::Describe,
                        ResourceType::Group,
                        g.group_id.0.as_str(),
                    )
                {
                    coordinator = ErrorCode::GroupAuthorizationFailed;
                }
                if coordinator == ErrorCode::None && g.member_id.is_some() {
                    // v9: a member of a consumer group (KIP-848) fetches at its epoch.
                    coordinator = ctx.groups.validate_offset_fetch(
                        g.group_id.0.as_str(),
                        g.member_id.as_ref().map_or("", |m| m.as_str()),
                        g.member_epoch,
                    );
                }
                let found = if coordinator == ErrorCode::None {
                    fetch_one(ctx, g.group_id.0.as_str(), wanted, r.require_stable)
                } else {
                    unknown_ids.clear();
                    Vec::new()
                };
                let unknown = unknown_ids.into_iter().map(|(topic_id, ps)| {
                    msg!(OffsetFetchResponseTopics {
                        topic_id,
                        partitions: ps
                            .into_iter()
                            .map(|p| msg!(OffsetFetchResponsePartitions {
                                partition_index: p,
                                committed_offset: -1,
                                committed_leader_epoch: -1,
                                error_code: ErrorCode::UnknownTopicId.code(),
                            }))
                            .collect(),
                    })
                });
                msg!(OffsetFetchResponseGroup {
                    group_id: g.group_id,
                    topics: found
                        .into_iter()
                        .map(|(name, ps)| msg!(OffsetFetchResponseTopics {
                            topic_id: if version >= 10 {
                                ctx.broker
                                    .topic(name.0.as_str())
                                    .map_or(uuid::Uuid::nil(), |t| t.id)
                            } else {
                                uuid::Uuid::nil()
                            },
                            name,
                            partitions: ps
                                .into_iter()
                                .map(|(p, c)| {
                                    let error_code = c.as_ref().err().map_or(0, |e| e.code());
                                    let c = c.ok().flatten();
                                    msg!(OffsetFetchResponsePartitions {
                                        partition_index: p,
                                        committed_offset: c.as_ref().map_or(-1, |c| c.offset),
                                        committed_leader_epoch: c
                                            .as_ref()
                                            .map_or(-1, |c| c.leader_epoch),
                                        metadata: Some(s(c
                                            .as_ref()
                                            .and_then(|c| c.metadata.as_deref())
                                            .unwrap_or(""))),
                                        error_code,
                                    })
                                })
                                .collect(),
                        }))
                        .chain(unknown)
                        .collect(),
                    error_code: coordinator.code(),
                })
            })
            .collect();
        return msg!(OffsetFetchResponse { groups });
    }
    let wanted = r.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let mut coordinator = ctx.groups.check_coordinator(r.group_id.0.as_str());
    if coordinator == ErrorCode::None
        && !ctx.authorized(
            Operation::Describe,
            ResourceType::Group,
            r.group_id.0.as_str(),
        )
    {
        coordinator = ErrorCode::GroupAuthorizationFailed;
    }
    if coordinator != ErrorCode::None {
        return msg!(OffsetFetchResponse {
            error_code: coordinator.code(),
        });
    }
    let found = fetch_one(ctx, r.group_id.0.as_str(), wanted, r.require_stable);
    msg!(OffsetFetchResponse {
        topics: found
            .into_iter()
            .map(|(name, ps)| msg!(OffsetFetchResponseTopic {
                name,
                partitions: ps
                    .into_iter()
                    .map(|(p, c)| {
                        let error_code = c.as_ref().err().map_or(0, |e| e.code());
                        let c = c.ok().flatten();
                        msg!(OffsetFetchResponsePartition {
                            partition_index: p,
                            committed_offset: c.as_ref().map_or(-1, |c| c.offset),
                            committed_leader_epoch: c.as_ref().map_or(-1, |c| c.leader_epoch),
                            metadata: Some(s(c
                                .as_ref()
                                .and_then(|c| c.metadata.as_deref())
                                .unwrap_or(""))),
                            error_code,
                        })
                    })
                    .collect(),
            }))
            .collect(),
        error_code: 0,
    })
}

/// DescribeGroups.
pub fn describe_groups(ctx: &Context, r: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let groups = r
        .groups
        .into_iter()
        .map(|g| {
            let ops = super::authorized::group(ctx, r.include_authorized_operations, g.0.as_str());
            // A consumer group (KIP-848) is not a classic group: Kafka describes it as Dead
            // here, and with ConsumerGroupDescribe.
            let known =
                ctx.groups.exists(g.0.as_str()) && !ctx.groups.is_consumer_group(g.0.as_str());
            if !ctx.authorized(Operation::Describe, ResourceType::Group, g.0.as_str()) {
                return msg!(DescribedGroup {
                    error_code: ErrorCode::GroupAuthorizationFailed.code(),
                    group_id: g,
                    authorized_operations: ops,
                });
            }
            let (state, protocol_type, protocol_name, members) = ctx.groups.describe(g.0.as_str());
            msg!(DescribedGroup {
                error_code: 0,
                group_id: g,
                // Kafka describes a group it does not know as Dead (with no error).
                group_state: s(if known { state.name() } else { "Dead" }),
                protocol_type: s(&protocol_type),
                protocol_data: s(&protocol_name),
                members: members
                    .into_iter()
                    .map(|(id, instance, client, host, meta, assignment)| msg!(
                        DescribedGroupMember {
                            member_id: s(&id),
                            group_instance_id: instance.as_deref().map(s),
                            client_id: s(&client),
                            client_host: s(&host),
                            member_metadata: meta,
                            member_assignment: assignment,
                        }
                    ))
                    .collect(),
                authorized_operations: ops,
            })
        })
        .collect();
    msg!(DescribeGroupsResponse { groups })
}

/// ListGroups, with the state filter of v4+ and the type filter of v5+.
pub fn list_groups(ctx: &Context, r: ListGroupsRequest) -> ListGroupsResponse {
    let matches = |filter: &[StrBytes], value: &str| {
        filter.is_empty()
            || filter
                .iter()
                .any(|f| f.as_str().eq_ignore_ascii_case(value))
    };
    // DESCRIBE on the cluster lists every group; without it, those the principal may
    // describe.
    let all = ctx.allows(
        Operation::Describe,
        ResourceType::Cluster,
        crate::acl::CLUSTER_NAME,
    );
    let groups = ctx
        .groups
        .list()
        .into_iter()
        .filter(|g| all || ctx.may_see(ResourceType::Group, &g.group_id))
        .filter(|g| matches(&r.states_filter, g.state))
        .filter(|g| matches(&r.types_filter, g.group_type))
        .map(|g| {
            msg!(ListedGroup {
                group_id: GroupId(s(&g.group_id)),
                protocol_type: s(&g.protocol_type),
                group_state: s(g.state),
                group_type: s(g.group_type),
            })
        })
        .collect();
    msg!(ListGroupsResponse { groups })
}

/// DeleteGroups.
pub async fn delete_groups(ctx: &Context, r: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for g in r.groups_names {
        let code = if ctx.authorized(Operation::Delete, ResourceType::Group, g.0.as_str()) {
            ctx.groups.delete(g.0.as_str()).await
        } else {
            ErrorCode::GroupAuthorizationFailed
        };
        results.push(msg!(DeletableGroupResult {
            group_id: g,
            error_code: code.code(),
        }));
    }
    msg!(DeleteGroupsResponse { results })
}

/// OffsetDelete (KIP-496): removes a group's committed offsets of partitions no active member
/// subscribes to.
pub async fn offset_delete(
    ctx: &Context,
    r: kafka_protocol::messages::offset_delete_request::OffsetDeleteRequest,
) -> kafka_protocol::messages::offset_delete_response::OffsetDeleteResponse {
    use kafka_protocol::messages::offset_delete_response::*;
    let partitions: Vec<(String, i32)> = r
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.as_str().to_string(), p.partition_index))
        })
        .collect();
    if !ctx.authorized(
        Operation::Delete,
        ResourceType::Group,
        r.group_id.0.as_str(),
    ) {
        return msg!(OffsetDeleteResponse {
            error_code: ErrorCode::GroupAuthorizationFailed.code(),
        });
    }
    // Partitions of topics the principal may not read are refused one by one.
    let (partitions, denied): (Vec<_>, Vec<_>) = partitions
        .into_iter()
        .partition(|(t, _)| ctx.authorized(Operation::Read, ResourceType::Topic, t));
    let outcome = ctx
        .groups
        .delete_offsets(r.group_id.0.as_str(), partitions)
        .await
        .map(|mut results| {
            results.extend(
                denied
                    .into_iter()
                    .map(|p| (p, ErrorCode::TopicAuthorizationFailed)),
            );
            results
        });
    let (error_code, results) = match outcome {
        Ok(results) => (0, results),
        Err(code) => (code.code(), Vec::new()),
    };
    let mut topics: Vec<OffsetDeleteResponseTopic> = Vec::new();
    for ((topic, partition), code) in results {
        let p = msg!(OffsetDeleteResponsePartition {
            partition_index: partition,
            error_code: code.code(),
        });
        match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(msg!(OffsetDeleteResponseTopic {
                name: TopicName(s(&topic)),
                partitions: vec![p],
            })),
        }
    }
    msg!(OffsetDeleteResponse { error_code, topics })
}
