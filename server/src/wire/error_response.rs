//! The response an API defines for a request the broker could not answer: the same topics,
//! partitions, groups or resources the failed response named, each with `UNKNOWN_SERVER_ERROR`
//! and every other field at its default (Kafka's `AbstractRequest::getErrorResponse`).
//!
//! Used when a handler's response does not encode at the request's version: that is a bug of
//! ours, and the client must see an error it understands (and retries or reports), not a closed
//! connection that it reconnects after in a loop.
//!
//! Invariant: the result carries no field beyond keys and error codes, so it encodes at every
//! version whenever its keys do.

use kafka_protocol::messages::ResponseKind;

use crate::error_code::ErrorCode;

const ERROR: i16 = ErrorCode::UnknownServerError.code();

/// `UNKNOWN_SERVER_ERROR` for everything `failed` answered; `None` for an API without an
/// error code to carry it (the connection is then closed).
pub fn for_response(failed: &ResponseKind) -> Option<ResponseKind> {
    Some(match failed {
        ResponseKind::Produce(r) => {
            let mut out = r.clone();
            out.node_endpoints.clear();
            for t in &mut out.responses {
                for p in &mut t.partition_responses {
                    *p = msg!(
                        kafka_protocol::messages::produce_response::PartitionProduceResponse {
                            index: p.index,
                            error_code: ERROR,
                            base_offset: -1,
                        }
                    );
                }
            }
            ResponseKind::Produce(out)
        }
        ResponseKind::Fetch(r) => {
            let mut out = kafka_protocol::messages::fetch_response::FetchResponse::default();
            out.error_code = ERROR;
            out.responses = r
                .responses
                .iter()
                .map(|t| {
                    let mut t2 = t.clone();
                    for p in &mut t2.partitions {
                        *p = msg!(kafka_protocol::messages::fetch_response::PartitionData {
                            partition_index: p.partition_index,
                            error_code: ERROR,
                            high_watermark: -1,
                            last_stable_offset: -1,
                            log_start_offset: -1,
                        });
                    }
                    t2
                })
                .collect();
            ResponseKind::Fetch(out)
        }
        ResponseKind::ListOffsets(r) => {
            let mut out = r.clone();
            for p in out.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                *p = msg!(
                    kafka_protocol::messages::list_offsets_response::ListOffsetsPartitionResponse {
                        partition_index: p.partition_index,
                        error_code: ERROR,
                        timestamp: -1,
                        offset: -1,
                    }
                );
            }
            ResponseKind::ListOffsets(out)
        }
        ResponseKind::Metadata(r) => {
            let mut out = kafka_protocol::messages::metadata_response::MetadataResponse::default();
            out.topics = r
                .topics
                .iter()
                .map(|t| {
                    msg!(
                        kafka_protocol::messages::metadata_response::MetadataResponseTopic {
                            error_code: ERROR,
                            name: t.name.clone(),
                            topic_id: t.topic_id,
                        }
                    )
                })
                .collect();
            ResponseKind::Metadata(out)
        }
        ResponseKind::OffsetCommit(r) => {
            let mut out = r.clone();
            for p in out.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                p.error_code = ERROR;
            }
            ResponseKind::OffsetCommit(out)
        }
        ResponseKind::OffsetFetch(r) => {
            let mut out = r.clone();
            out.error_code = ERROR;
            for p in out.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                *p = msg!(
                    kafka_protocol::messages::offset_fetch_response::OffsetFetchResponsePartition {
                        partition_index: p.partition_index,
                        committed_offset: -1,
                        error_code: ERROR,
                    }
                );
            }
            for g in &mut out.groups {
                g.error_code = ERROR;
                g.topics.clear();
            }
            ResponseKind::OffsetFetch(out)
        }
        ResponseKind::OffsetForLeaderEpoch(r) => {
            let mut out = r.clone();
            for p in out.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                *p = msg!(
                    kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset {
                        partition: p.partition,
                        error_code: ERROR,
                        leader_epoch: -1,
                        end_offset: -1,
                    }
                );
            }
            ResponseKind::OffsetForLeaderEpoch(out)
        }
        ResponseKind::FindCoordinator(r) => {
            let mut out = kafka_protocol::messages::find_coordinator_response::FindCoordinatorResponse::default();
            out.error_code = ERROR;
            out.coordinators = r
                .coordinators
                .iter()
                .map(|c| {
                    msg!(
                        kafka_protocol::messages::find_coordinator_response::Coordinator {
                            key: c.key.clone(),
                            error_code: ERROR,
                        }
                    )
                })
                .collect();
            ResponseKind::FindCoordinator(out)
        }
        ResponseKind::JoinGroup(_) => ResponseKind::JoinGroup(msg!(
            kafka_protocol::messages::join_group_response::JoinGroupResponse { error_code: ERROR }
        )),
        ResponseKind::SyncGroup(_) => ResponseKind::SyncGroup(msg!(
            kafka_protocol::messages::sync_group_response::SyncGroupResponse { error_code: ERROR }
        )),
        ResponseKind::Heartbeat(_) => ResponseKind::Heartbeat(msg!(
            kafka_protocol::messages::heartbeat_response::HeartbeatResponse { error_code: ERROR }
        )),
        ResponseKind::LeaveGroup(_) => ResponseKind::LeaveGroup(msg!(
            kafka_protocol::messages::leave_group_response::LeaveGroupResponse {
                error_code: ERROR
            }
        )),
        ResponseKind::ListGroups(_) => ResponseKind::ListGroups(msg!(
            kafka_protocol::messages::list_groups_response::ListGroupsResponse {
                error_code: ERROR
            }
        )),
        ResponseKind::DescribeGroups(r) => {
            let mut out = r.clone();
            for g in &mut out.groups {
                *g = msg!(
                    kafka_protocol::messages::describe_groups_response::DescribedGroup {
                        error_code: ERROR,
                        group_id: g.group_id.clone(),
                    }
                );
            }
            ResponseKind::DescribeGroups(out)
        }
        ResponseKind::ConsumerGroupDescribe(r) => {
            let mut out = r.clone();
            for g in &mut out.groups {
                *g = msg!(
                    kafka_protocol::messages::consumer_group_describe_response::DescribedGroup {
                        error_code: ERROR,
                        group_id: g.group_id.clone(),
                    }
                );
            }
            ResponseKind::ConsumerGroupDescribe(out)
        }
        ResponseKind::ConsumerGroupHeartbeat(_) => ResponseKind::ConsumerGroupHeartbeat(msg!(
            kafka_protocol::messages::consumer_group_heartbeat_response::ConsumerGroupHeartbeatResponse {
                error_code: ERROR,
            }
        )),
        ResponseKind::DescribeLogDirs(_) => ResponseKind::DescribeLogDirs(msg!(
            kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResponse {
                error_code: ERROR,
            }
        )),
        ResponseKind::OffsetDelete(_) => ResponseKind::OffsetDelete(msg!(
            kafka_protocol::messages::offset_delete_response::OffsetDeleteResponse {
                error_code: ERROR,
            }
        )),
        ResponseKind::DeleteGroups(r) => {
            let mut out = r.clone();
            for g in &mut out.results {
                g.error_code = ERROR;
            }
            ResponseKind::DeleteGroups(out)
        }
        ResponseKind::InitProducerId(_) => ResponseKind::InitProducerId(msg!(
            kafka_protocol::messages::init_producer_id_response::InitProducerIdResponse {
                error_code: ERROR,
                producer_id: kafka_protocol::messages::ProducerId(-1),
                producer_epoch: -1,
            }
        )),
        ResponseKind::CreateTopics(r) => {
            let mut out = r.clone();
            for t in &mut out.topics {
                *t = msg!(
                    kafka_protocol::messages::create_topics_response::CreatableTopicResult {
                        name: t.name.clone(),
                        error_code: ERROR,
                        num_partitions: -1,
                        replication_factor: -1,
                    }
                );
            }
            ResponseKind::CreateTopics(out)
        }
        ResponseKind::DeleteTopics(r) => {
            let mut out = r.clone();
            for t in &mut out.responses {
                t.error_code = ERROR;
                t.error_message = None;
            }
            ResponseKind::DeleteTopics(out)
        }
        ResponseKind::DeleteRecords(r) => {
            let mut out = r.clone();
            for p in out.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                p.error_code = ERROR;
                p.low_watermark = -1;
            }
            ResponseKind::DeleteRecords(out)
        }
        ResponseKind::CreatePartitions(r) => {
            let mut out = r.clone();
            for t in &mut out.results {
                t.error_code = ERROR;
                t.error_message = None;
            }
            ResponseKind::CreatePartitions(out)
        }
        ResponseKind::DescribeConfigs(r) => {
            let mut out = r.clone();
            for c in &mut out.results {
                c.error_code = ERROR;
                c.error_message = None;
                c.configs.clear();
            }
            ResponseKind::DescribeConfigs(out)
        }
        ResponseKind::AlterConfigs(r) => {
            let mut out = r.clone();
            for c in &mut out.responses {
                c.error_code = ERROR;
                c.error_message = None;
            }
            ResponseKind::AlterConfigs(out)
        }
        ResponseKind::IncrementalAlterConfigs(r) => {
            let mut out = r.clone();
            for c in &mut out.responses {
                c.error_code = ERROR;
                c.error_message = None;
            }
            ResponseKind::IncrementalAlterConfigs(out)
        }
        ResponseKind::DescribeCluster(_) => ResponseKind::DescribeCluster(msg!(
            kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse {
                error_code: ERROR,
            }
        )),
        ResponseKind::DescribeQuorum(_) => ResponseKind::DescribeQuorum(msg!(
            kafka_protocol::messages::describe_quorum_response::DescribeQuorumResponse {
                error_code: ERROR,
            }
        )),
        ResponseKind::ApiVersions(_) => ResponseKind::ApiVersions(msg!(
            kafka_protocol::messages::api_versions_response::ApiVersionsResponse {
                error_code: ERROR,
            }
        )),
        _ => return None,
    })
}
