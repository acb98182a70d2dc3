//! Metadata: the broker list (this broker) and each topic's partitions, with auto-creation.

use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};

use strata_replication::controller::{MetadataImage, TopicImage};

use super::{Context, s};
use crate::error_code::ErrorCode;
use crate::topic::Topic;

/// The broker entry clients connect to.
pub fn broker_entry(ctx: &Context) -> MetadataResponseBroker {
    let (host, port) = &crate::connection::advertised(ctx);
    msg!(MetadataResponseBroker {
        node_id: BrokerId(ctx.broker.config.node_id),
        host: s(host),
        port: i32::from(*port),
        rack: ctx.broker.config.rack.as_deref().map(s),
    })
}

fn topic_entry(ctx: &Context, t: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(ctx.broker.config.node_id);
    let partitions = (0..t.partition_count() as i32)
        .map(|i| {
            msg!(MetadataResponsePartition {
                error_code: ErrorCode::None.code(),
                partition_index: i,
                leader_id: node,
                leader_epoch: 0,
                replica_nodes: vec![node],
                isr_nodes: vec![node],
                offline_replicas: vec![],
            })
        })
        .collect();
    msg!(MetadataResponseTopic {
        error_code: ErrorCode::None.code(),
        name: Some(TopicName(s(&t.name))),
        topic_id: t.id,
        is_internal: t.internal,
        partitions,
        topic_authorized_operations: -2147483648,
    })
}

fn cluster_topic_entry(
    cluster: &crate::cluster::ClusterState,
    image: &MetadataImage,
    name: &str,
    t: &TopicImage,
) -> MetadataResponseTopic {
    let partitions = t
        .partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ids = |v: &[strata_replication::BrokerId]| -> Vec<BrokerId> {
                v.iter().map(|b| BrokerId(b.0)).collect()
            };
            // A leader this broker just lost its replication connection to is most likely
            // dead: until the controller rules, say so, so clients re-query quickly.
            let leader = p.leader.filter(|l| !cluster.is_unreachable(l.0));
            msg!(MetadataResponsePartition {
                error_code: if leader.is_some() {
                    ErrorCode::None
                } else {
                    ErrorCode::LeaderNotAvailable
                }
                .code(),
                partition_index: i as i32,
                leader_id: BrokerId(leader.map_or(-1, |l| l.0)),
                leader_epoch: p.leader_epoch.0,
                replica_nodes: ids(&p.replicas),
                isr_nodes: ids(&p.isr),
                offline_replicas: p
                    .replicas
                    .iter()
                    .filter(|b| !image.is_live(**b))
                    .map(|b| BrokerId(b.0))
                    .collect(),
            })
        })
        .collect();
    msg!(MetadataResponseTopic {
        error_code: ErrorCode::None.code(),
        name: Some(TopicName(s(name))),
        topic_id: uuid::Uuid::from_u128(t.id),
        is_internal: crate::broker::is_internal_topic(name),
        partitions,
        topic_authorized_operations: -2147483648,
    })
}

/// Metadata in a cluster: every live broker, and each partition's leader, replicas and ISR as
/// the metadata image has them. Auto-creation asks the controller.
async fn handle_cluster(
    ctx: &Context,
    cluster: &crate::cluster::ClusterState,
    r: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let broker = &ctx.broker;
    let mut image = cluster.image();
    let wanted: Option<Vec<(Option<String>, uuid::Uuid)>> = match r.topics {
        None => None,
        Some(list) if list.is_empty() && version == 0 => None,
        Some(list) => Some(
            list.into_iter()
                .map(|t| (t.name.map(|n| n.0.as_str().to_string()), t.topic_id))
                .collect(),
        ),
    };
    let auto = broker.config.auto_create_topics && (version < 4 || r.allow_auto_topic_creation);
    if auto && let Some(list) = &wanted {
        let mut created = false;
        for (name, _) in list {
            let Some(name) = name else { continue };
            if image.topics.contains_key(name) || !crate::topic::valid_topic_name(name) {
                continue;
            }
            let req = crate::cluster::wire::ControllerRequest::CreateTopic {
                name: name.clone(),
                partitions: u32::try_from(broker.config.num_partitions).unwrap_or(1),
                replication_factor: u32::try_from(broker.config.default_replication_factor)
                    .unwrap_or(1),
                configs: Default::default(),
                assignments: None,
            };
            match cluster.admin_call(req).await {
                Ok(()) => created = true,
                Err((code, message)) => {
                    tracing::debug!(topic = %name, ?code, %message, "auto-creation refused")
                }
            }
        }
        if created {
            image = cluster.image();
        }
    }
    let topics = match wanted {
        None => image
            .topics
            .iter()
            .map(|(n, t)| cluster_topic_entry(cluster, &image, n, t))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(n) => image.topics.get_key_value(n),
                    None => image
                        .topics
                        .iter()
                        .find(|(_, t)| uuid::Uuid::from_u128(t.id) == id),
                };
                match (found, name) {
                    (Some((n, t)), _) => cluster_topic_entry(cluster, &image, n, t),
                    // No image yet (just started): the topic may well exist. UNKNOWN_TOPIC
                    // would make clients fail queued records; this makes them ask again.
                    (None, Some(n)) if image.brokers.is_empty() => msg!(MetadataResponseTopic {
                        error_code: ErrorCode::LeaderNotAvailable.code(),
                        name: Some(TopicName(s(&n))),
                    }),
                    (None, Some(n)) => msg!(MetadataResponseTopic {
                        error_code: ErrorCode::UnknownTopicOrPartition.code(),
                        name: Some(TopicName(s(&n))),
                    }),
                    (None, None) => msg!(MetadataResponseTopic {
                        error_code: ErrorCode::UnknownTopicId.code(),
                        topic_id: id,
                    }),
                }
            })
            .collect(),
    };
    let listener = crate::connection::listener_name(ctx);
    let mut brokers: Vec<MetadataResponseBroker> = image
        .brokers
        .values()
        .filter(|b| !b.fenced || cluster.recently_fenced(b.id.0))
        .filter_map(|b| {
            let (host, port) = b.endpoint_on(&listener)?.rsplit_once(':')?;
            Some(msg!(MetadataResponseBroker {
                node_id: BrokerId(b.id.0),
                host: s(host),
                port: port.parse().ok()?,
                rack: b.rack.as_deref().map(s),
            }))
        })
        .collect();
    if brokers.is_empty() {
        brokers.push(broker_entry(ctx));
    }
    msg!(MetadataResponse {
        brokers,
        cluster_id: Some(s(&broker.config.cluster_id)),
        // Any broker forwards administration to the active controller.
        controller_id: BrokerId(broker.config.node_id),
        topics,
        cluster_authorized_operations: -2147483648,
    })
}

/// Handles Metadata, the same way in both modes for what follows the lookup: a topic that does
/// not exist and cannot (an invalid name) is INVALID_TOPIC_EXCEPTION, as Kafka answers, so a
/// producer to it fails at once instead of waiting for the topic; authorized operations are
/// returned when asked for (everything, while there is no authorizer).
pub async fn handle(ctx: &Context, r: MetadataRequest, version: i16) -> MetadataResponse {
    let topic_ops = r.include_topic_authorized_operations;
    let cluster_ops = r.include_cluster_authorized_operations;
    let mut response = match &ctx.broker.cluster {
        Some(cluster) => handle_cluster(ctx, cluster, r, version).await,
        None => handle_standalone(ctx, r, version),
    };
    for t in &mut response.topics {
        let invalid = t
            .name
            .as_ref()
            .is_some_and(|n| !crate::topic::valid_topic_name(n.0.as_str()));
        if t.error_code == ErrorCode::UnknownTopicOrPartition.code() && invalid {
            t.error_code = ErrorCode::InvalidTopicException.code();
        }
        if topic_ops && t.error_code == ErrorCode::None.code() {
            let name = t.name.as_ref().map_or("", |n| n.0.as_str());
            t.topic_authorized_operations = super::authorized::for_resource(
                ctx,
                crate::acl::ResourceType::Topic,
                name,
                super::authorized::TOPIC,
            );
        }
    }
    if cluster_ops {
        response.cluster_authorized_operations = super::authorized::for_resource(
            ctx,
            crate::acl::ResourceType::Cluster,
            crate::acl::CLUSTER_NAME,
            super::authorized::CLUSTER,
        );
    }
    response
}

fn handle_standalone(ctx: &Context, r: MetadataRequest, version: i16) -> MetadataResponse {
    let broker = &ctx.broker;
    // All topics: those the principal may describe.
    let all = || -> Vec<MetadataResponseTopic> {
        broker
            .topics()
            .iter()
            .filter(|t| ctx.may_see(crate::acl::ResourceType::Topic, &t.name))
            .map(|t| topic_entry(ctx, t))
            .collect()
    };
    let denied = |name: &str| {
        msg!(MetadataResponseTopic {
            error_code: ErrorCode::TopicAuthorizationFailed.code(),
            name: Some(TopicName(s(name))),
        })
    };
    let topics = match r.topics {
        // v0: an empty list means all topics; v1+: null means all.
        None => all(),
        Some(list) if list.is_empty() && version == 0 => all(),
        Some(list) => list
            .into_iter()
            .map(|req| {
                let by_name = req.name.as_ref().map(|n| n.0.as_str().to_string());
                let existing = match &by_name {
                    Some(n) => broker.topic(n),
                    None => broker.topic_by_id(req.topic_id),
                };
                let name = existing
                    .as_ref()
                    .map(|t| t.name.clone())
                    .or_else(|| by_name.clone());
                if let Some(n) = &name
                    && !ctx.authorized(
                        crate::acl::Operation::Describe,
                        crate::acl::ResourceType::Topic,
                        n,
                    )
                {
                    return denied(n);
                }
                if let Some(t) = existing {
                    return topic_entry(ctx, &t);
                }
                let Some(name) = by_name else {
                    return msg!(MetadataResponseTopic {
                        error_code: ErrorCode::UnknownTopicId.code(),
                        topic_id: req.topic_id,
                    });
                };
                let auto = broker.config.auto_create_topics
                    && (version < 4 || r.allow_auto_topic_creation);
                if auto && !ctx.may_create_topic(&name) {
                    return denied(&name);
                }
                if auto {
                    match broker.create_topic(
                        &name,
                        broker.config.num_partitions,
                        Default::default(),
                    ) {
                        Ok(t) => return topic_entry(ctx, &t),
                        Err(e) if e.code() == ErrorCode::TopicAlreadyExists => {
                            if let Some(t) = broker.topic(&name) {
                                return topic_entry(ctx, &t);
                            }
                        }
                        Err(e) => {
                            return msg!(MetadataResponseTopic {
                                error_code: e.code().code(),
                                name: Some(TopicName(s(&name))),
                            });
                        }
                    }
                }
                msg!(MetadataResponseTopic {
                    error_code: ErrorCode::UnknownTopicOrPartition.code(),
                    name: Some(TopicName(s(&name))),
                })
            })
            .collect(),
    };
    msg!(MetadataResponse {
        brokers: vec![broker_entry(ctx)],
        cluster_id: Some(s(&broker.config.cluster_id)),
        controller_id: BrokerId(broker.config.node_id),
        topics,
        cluster_authorized_operations: -2147483648,
    })
}
