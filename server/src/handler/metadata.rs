//! Metadata: the broker list (this broker) and each topic's partitions, with auto-creation.

use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::metadata_response::{
    MetadataResponse, MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, TopicName};

use super::{Context, s};
use crate::error_code::ErrorCode;
use crate::topic::Topic;

/// The broker entry clients connect to.
pub fn broker_entry(ctx: &Context) -> MetadataResponseBroker {
    let (host, port) = &ctx.broker.config.advertised;
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

/// Handles Metadata.
pub fn handle(ctx: &Context, r: MetadataRequest, version: i16) -> MetadataResponse {
    let broker = &ctx.broker;
    let topics = match r.topics {
        // v0: an empty list means all topics; v1+: null means all.
        None => broker
            .topics()
            .iter()
            .map(|t| topic_entry(ctx, t))
            .collect(),
        Some(list) if list.is_empty() && version == 0 => broker
            .topics()
            .iter()
            .map(|t| topic_entry(ctx, t))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|req| {
                let by_name = req.name.as_ref().map(|n| n.0.as_str().to_string());
                let existing = match &by_name {
                    Some(n) => broker.topic(n),
                    None => broker.topic_by_id(req.topic_id),
                };
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
