//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DescribeCluster,
//! DeleteRecords. Configs are in [`super::configs`].

use crate::acl::{Operation, ResourceType};
use std::collections::BTreeMap;

use kafka_protocol::messages::create_partitions_request::CreatePartitionsRequest;
use kafka_protocol::messages::create_partitions_response::{
    CreatePartitionsResponse, CreatePartitionsTopicResult,
};
use kafka_protocol::messages::create_topics_request::CreateTopicsRequest;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult, CreateTopicsResponse,
};
use kafka_protocol::messages::delete_records_request::DeleteRecordsRequest;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsResponse, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicsRequest;
use kafka_protocol::messages::delete_topics_response::{
    DeletableTopicResult, DeleteTopicsResponse,
};
use kafka_protocol::messages::describe_cluster_response::{
    DescribeClusterBroker, DescribeClusterResponse,
};
use kafka_protocol::messages::{BrokerId, TopicName};
use strata_engine::{LogError, Offset};

use super::{Context, s};
use crate::broker::AdminError;
use crate::error_code::ErrorCode;

pub(super) fn code_message(
    r: Result<(), AdminError>,
) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    match r {
        Ok(()) => (0, None),
        Err(e) => (e.code().code(), Some(s(&e.to_string()))),
    }
}

/// A CreateTopics entry's manual replica assignment, as Kafka checks it: not together with a
/// partition count or replication factor, and naming partitions 0..n. `None` when it has none.
fn manual_assignment(
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<Option<Vec<Vec<i32>>>, AdminError> {
    if t.assignments.is_empty() {
        return Ok(None);
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err(AdminError::Kafka {
            code: ErrorCode::InvalidRequest,
            message: "Both numPartitions or replicationFactor and replicasAssignments were set. \
                      Both cannot be used at the same time."
                .into(),
        });
    }
    let mut by_index: Vec<_> = t.assignments.iter().collect();
    by_index.sort_by_key(|a| a.partition_index);
    if by_index
        .iter()
        .enumerate()
        .any(|(i, a)| a.partition_index != i as i32)
    {
        return Err(AdminError::Kafka {
            code: ErrorCode::InvalidReplicaAssignment,
            message: "partitions should be a consecutive 0-based integer sequence".into(),
        });
    }
    Ok(Some(
        by_index
            .into_iter()
            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
            .collect(),
    ))
}

/// CreateTopics.
pub async fn create_topics(ctx: &Context, r: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = &ctx.broker;
    let mut topics = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        let result = {
            let name = t.name.0.as_str().to_string();
            let manual = manual_assignment(&t);
            let (partitions, rf) = match &manual {
                Ok(Some(a)) => (a.len() as i32, a.first().map_or(0, Vec::len) as i16),
                _ => (
                    if t.num_partitions == -1 {
                        broker.config.num_partitions
                    } else {
                        t.num_partitions
                    },
                    if t.replication_factor == -1 {
                        broker.config.default_replication_factor
                    } else {
                        t.replication_factor
                    },
                ),
            };
            let configs: BTreeMap<String, String> = t
                .configs
                .iter()
                .filter_map(|c| {
                    c.value
                        .as_ref()
                        .map(|v| (c.name.as_str().to_string(), v.as_str().to_string()))
                })
                .collect();
            let mut result = msg!(CreatableTopicResult {
                name: t.name.clone(),
                num_partitions: partitions,
                replication_factor: rf,
            });
            let standalone = broker.cluster.is_none();
            let outcome = match manual {
                _ if !ctx.may_create_topic(&name) => Err(AdminError::Kafka {
                    code: ErrorCode::TopicAuthorizationFailed,
                    message: format!("not authorized to create topic {name}"),
                }),
                Err(e) => Err(e),
                Ok(None) if rf != 1 && standalone => Err(AdminError::Kafka {
                    code: ErrorCode::InvalidReplicationFactor,
                    message: format!(
                        "replication factor {rf} is larger than the 1 available broker"
                    ),
                }),
                Ok(assignments) if r.validate_only => match &assignments {
                    Some(a) if standalone => broker.check_standalone_assignment(a),
                    _ => Ok(()),
                }
                .and_then(|()| broker.log_config(&configs).map(|_| ())),
                Ok(assignments) => broker
                    .admin_create_topic(&name, partitions, rf, configs.clone(), assignments)
                    .await
                    .map(|id| {
                        result.topic_id = id;
                    }),
            };
            let (code, message) = code_message(outcome);
            result.error_code = code;
            result.error_message = message;
            if code == 0
                && let Some(topic) = broker.topic(&name)
            {
                // The same configs, sources and types DescribeConfigs gives.
                result.configs = Some(
                    super::configs::describe_topic(ctx, &topic, &|_| true, false)
                        .into_iter()
                        .map(|c| {
                            msg!(CreatableTopicConfigs {
                                name: c.name,
                                value: c.value,
                                read_only: c.read_only,
                                config_source: c.config_source,
                                is_sensitive: c.is_sensitive,
                            })
                        })
                        .collect(),
                );
            }
            result
        };
        topics.push(result);
    }
    msg!(CreateTopicsResponse { topics })
}

/// DeleteTopics (by name, or by id from v6).
pub async fn delete_topics(
    ctx: &Context,
    r: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    let targets: Vec<(Option<String>, uuid::Uuid)> = if version >= 6 {
        r.topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.as_str().to_string()),
                    t.topic_id,
                )
            })
            .collect()
    } else {
        r.topic_names
            .iter()
            .map(|n| (Some(n.0.as_str().to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let name = name.or_else(|| ctx.broker.topic_by_id(id).map(|t| t.name.clone()));
        let (code, message) = match &name {
            Some(n) if !ctx.authorized(Operation::Delete, ResourceType::Topic, n) => {
                (ErrorCode::TopicAuthorizationFailed.code(), None)
            }
            Some(n) => code_message(ctx.broker.admin_delete_topic(n).await),
            None => (ErrorCode::UnknownTopicId.code(), None),
        };
        responses.push(msg!(DeletableTopicResult {
            name: name.map(|n| TopicName(s(&n))),
            topic_id: id,
            error_code: code,
            error_message: message,
        }));
    }
    msg!(DeleteTopicsResponse { responses })
}

/// CreatePartitions.
pub async fn create_partitions(
    ctx: &Context,
    r: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(r.topics.len());
    for t in r.topics {
        // Null (or empty, as some clients send it): the controller places the new partitions;
        // a list: the replicas of each.
        let assignments = t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| {
            a.iter()
                .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let outcome = if ctx.authorized(Operation::Alter, ResourceType::Topic, t.name.0.as_str()) {
            ctx.broker
                .admin_create_partitions(t.name.0.as_str(), t.count, assignments, r.validate_only)
                .await
        } else {
            Err(AdminError::Kafka {
                code: ErrorCode::TopicAuthorizationFailed,
                message: format!("not authorized to alter topic {}", t.name.0.as_str()),
            })
        };
        let (code, message) = code_message(outcome);
        results.push(msg!(CreatePartitionsTopicResult {
            name: t.name,
            error_code: code,
            error_message: message,
        }));
    }
    msg!(CreatePartitionsResponse { results })
}

/// DescribeCluster: this broker.
/// DescribeCluster: the cluster's brokers; v2 with `include_fenced_brokers` lists the fenced
/// ones too, each marked (KIP-1073), so an operator sees a broker that is registered but down.
pub fn describe_cluster(
    ctx: &Context,
    r: kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest,
) -> DescribeClusterResponse {
    let include_fenced = r.include_fenced_brokers;
    if !ctx.authorized_on_cluster(Operation::Describe) {
        return msg!(DescribeClusterResponse {
            error_code: ErrorCode::ClusterAuthorizationFailed.code(),
            error_message: Some(s("not authorized to describe the cluster")),
            endpoint_type: 1,
            cluster_id: s(&ctx.broker.config.cluster_id),
            controller_id: BrokerId(-1),
            cluster_authorized_operations: i32::MIN,
        });
    }
    let (host, port) = &crate::connection::advertised(ctx);
    let this = msg!(DescribeClusterBroker {
        broker_id: BrokerId(ctx.broker.config.node_id),
        host: s(host),
        port: i32::from(*port),
        rack: ctx.broker.config.rack.as_deref().map(s),
        is_fenced: false,
    });
    // In a cluster: every registered broker of the metadata image that is unfenced (as
    // Metadata lists them), and the fenced ones when asked for.
    let listener = crate::connection::listener_name(ctx);
    let mut brokers: Vec<DescribeClusterBroker> = match &ctx.broker.cluster {
        None => vec![],
        Some(c) => c
            .image()
            .brokers
            .values()
            .filter(|b| include_fenced || !b.fenced)
            .filter_map(|b| {
                let (host, port) = b.endpoint_on(&listener)?.rsplit_once(':')?;
                Some(msg!(DescribeClusterBroker {
                    broker_id: BrokerId(b.id.0),
                    host: s(host),
                    port: port.parse().ok()?,
                    rack: b.rack.as_deref().map(s),
                    is_fenced: b.fenced,
                }))
            })
            .collect(),
    };
    if brokers.is_empty() {
        brokers.push(this);
    }
    msg!(DescribeClusterResponse {
        error_code: 0,
        endpoint_type: 1,
        cluster_id: s(&ctx.broker.config.cluster_id),
        // Any broker forwards administration to the active controller (as in Metadata).
        controller_id: BrokerId(ctx.broker.config.node_id),
        brokers,
        cluster_authorized_operations: if r.include_cluster_authorized_operations {
            super::authorized::for_resource(
                ctx,
                ResourceType::Cluster,
                crate::acl::CLUSTER_NAME,
                super::authorized::CLUSTER,
            )
        } else {
            i32::MIN
        },
    })
}

/// DeleteRecords: moves log start offsets (-1 means the high watermark).
pub fn delete_records(ctx: &Context, r: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            let topic = ctx.broker.topic(t.name.0.as_str());
            let allowed = ctx.authorized(Operation::Delete, ResourceType::Topic, t.name.0.as_str());
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut out = msg!(DeleteRecordsPartitionResult {
                        partition_index: p.partition_index,
                        low_watermark: -1,
                    });
                    if !allowed {
                        out.error_code = ErrorCode::TopicAuthorizationFailed.code();
                        return out;
                    }
                    // The leader moves the log start; followers follow it through their
                    // fetches (the response carries it).
                    let partition = match ctx
                        .broker
                        .leader_partition(topic.as_deref(), p.partition_index)
                    {
                        Ok(p) => p,
                        Err(code) => {
                            out.error_code = code.code();
                            return out;
                        }
                    };
                    let hw = partition.high_watermark();
                    let target = if p.offset == -1 { hw } else { Offset(p.offset) };
                    if target > hw || target.0 < 0 {
                        out.error_code = ErrorCode::OffsetOutOfRange.code();
                        return out;
                    }
                    match partition.log.delete_records_before(target) {
                        Ok(start) => out.low_watermark = start.0,
                        Err(e @ LogError::OffsetOutOfRange { .. }) => {
                            out.error_code = ErrorCode::from(&e).code()
                        }
                        Err(e) => out.error_code = ErrorCode::from(&e).code(),
                    }
                    out
                })
                .collect();
            msg!(DeleteRecordsTopicResult {
                name: t.name,
                partitions,
            })
        })
        .collect();
    msg!(DeleteRecordsResponse { topics })
}

/// UnregisterBroker (KIP-500, `kafka-cluster.sh unregister`): the broker leaves the cluster's
/// metadata for good. It is fenced first (out of every ISR, its leaderships moved), and its
/// replicas are re-created on the live brokers at once, as for a broker fenced past
/// `broker.replacement.delay.ms`. BROKER_ID_NOT_REGISTERED for an unknown id; a standalone
/// broker cannot unregister itself (INVALID_REQUEST).
pub async fn unregister_broker(
    ctx: &Context,
    r: kafka_protocol::messages::unregister_broker_request::UnregisterBrokerRequest,
) -> kafka_protocol::messages::unregister_broker_response::UnregisterBrokerResponse {
    let outcome = match &ctx.broker.cluster {
        _ if !ctx.authorized_on_cluster(Operation::Alter) => Err(AdminError::Kafka {
            code: ErrorCode::ClusterAuthorizationFailed,
            message: "not authorized to alter the cluster".into(),
        }),
        None if r.broker_id.0 == ctx.broker.config.node_id => Err(AdminError::Kafka {
            code: ErrorCode::InvalidRequest,
            message: "a standalone broker cannot leave: it is the whole cluster".into(),
        }),
        None => Err(AdminError::Kafka {
            code: ErrorCode::BrokerIdNotRegistered,
            message: format!("broker {} is not registered", r.broker_id.0),
        }),
        Some(cluster) => cluster
            .admin_call(crate::cluster::wire::ControllerRequest::UnregisterBroker {
                id: r.broker_id.0,
            })
            .await
            .map_err(|(code, message)| AdminError::Kafka { code, message }),
    };
    let (error_code, error_message) = code_message(outcome);
    msg!(
        kafka_protocol::messages::unregister_broker_response::UnregisterBrokerResponse {
            error_code,
            error_message,
        }
    )
}
