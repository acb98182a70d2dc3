//! Makes a response valid for the version it is sent at: every field the version lacks is put
//! back to its default, in this one place, so handlers can fill in everything they know.
//!
//! The codec refuses to encode a message whose fields the chosen version cannot carry (unless
//! they hold their defaults), and before this module a handler that set, say, ListOffsets'
//! `leader_epoch` (v4+) broke every v1-v3 response. The version-gated fields listed here are
//! the ones the codec checks (its "field is set that is not available" cases) for the responses
//! this broker sends; the version matrix test (`server/tests/version_matrix.rs`) encodes every
//! API at every advertised version, so a field missed here fails a test.
//!
//! Invariant: `fit(response, v)` only resets fields that version `v` of the API cannot carry;
//! what the client can see is unchanged.

use kafka_protocol::messages::ResponseKind;

/// Resets the fields of `response` that version `version` of its API lacks.
pub fn fit(response: &mut ResponseKind, version: i16) {
    match response {
        ResponseKind::Produce(r) => {
            if version < 10 {
                r.node_endpoints.clear();
            }
            for p in r
                .responses
                .iter_mut()
                .flat_map(|t| &mut t.partition_responses)
            {
                if version < 8 {
                    p.record_errors.clear();
                    p.error_message = None;
                }
                if version < 10 {
                    p.current_leader = Default::default();
                }
            }
        }
        ResponseKind::Fetch(r) => {
            if version < 7 {
                r.session_id = 0;
            }
            if version < 16 {
                r.node_endpoints.clear();
            }
            for p in r.responses.iter_mut().flat_map(|t| &mut t.partitions) {
                if version < 11 {
                    p.preferred_read_replica = (-1).into();
                }
                if version < 12 {
                    p.diverging_epoch = Default::default();
                    p.current_leader = Default::default();
                    p.snapshot_id = Default::default();
                }
            }
        }
        ResponseKind::ListOffsets(r) => {
            for p in r.topics.iter_mut().flat_map(|t| &mut t.partitions) {
                if version < 4 {
                    p.leader_epoch = -1;
                }
            }
        }
        ResponseKind::Metadata(r) => {
            if !(8..=10).contains(&version) {
                r.cluster_authorized_operations = i32::MIN;
            }
            for t in &mut r.topics {
                if version < 8 {
                    t.topic_authorized_operations = i32::MIN;
                }
            }
        }
        ResponseKind::OffsetFetch(r) => fit_offset_fetch(r, version),
        ResponseKind::FindCoordinator(r) => {
            if version < 4 {
                r.coordinators.clear();
            } else {
                r.error_code = 0;
                r.error_message = None;
                r.node_id = Default::default();
                r.host = Default::default();
                r.port = 0;
            }
        }
        ResponseKind::JoinGroup(r) if version < 9 => r.skip_assignment = false,
        ResponseKind::LeaveGroup(r) if version < 3 => r.members.clear(),
        ResponseKind::DescribeGroups(r) => {
            for g in &mut r.groups {
                if version < 3 {
                    g.authorized_operations = i32::MIN;
                }
                if version < 6 {
                    g.error_message = None;
                }
            }
        }
        ResponseKind::ApiVersions(r) if version < 3 => {
            r.supported_features.clear();
            r.finalized_features.clear();
            r.finalized_features_epoch = -1;
            r.zk_migration_ready = false;
        }
        ResponseKind::CreateTopics(r) => {
            for t in &mut r.topics {
                if version < 5 {
                    t.configs = None;
                    t.topic_config_error_code = 0;
                }
            }
        }
        ResponseKind::DescribeCluster(r) => {
            if version < 1 {
                r.endpoint_type = 1;
            }
            for b in &mut r.brokers {
                if version < 2 {
                    b.is_fenced = false;
                }
            }
        }
        _ => {}
    }
}

/// OffsetFetch moved from one group's `topics` (v0-7) to a list of `groups` (v8+).
fn fit_offset_fetch(
    r: &mut kafka_protocol::messages::offset_fetch_response::OffsetFetchResponse,
    version: i16,
) {
    if version >= 8 {
        r.topics.clear();
        r.error_code = 0;
        return;
    }
    r.groups.clear();
    if version < 2 {
        r.error_code = 0;
    }
    for p in r.topics.iter_mut().flat_map(|t| &mut t.partitions) {
        if version < 5 {
            p.committed_leader_epoch = -1;
        }
    }
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsResponse, ListOffsetsTopicResponse,
    };

    use super::*;

    /// The bug that broke every consumer but librdkafka's newest: ListOffsets v1-v3 with a
    /// leader epoch set. After `fit` it encodes at every version, and v4+ keep the epoch.
    #[test]
    fn list_offsets_leader_epoch_is_dropped_below_v4_only() {
        let mut p = ListOffsetsPartitionResponse::default();
        p.leader_epoch = 7;
        p.offset = 42;
        let mut t = ListOffsetsTopicResponse::default();
        t.partitions = vec![p];
        let mut r = ListOffsetsResponse::default();
        r.topics = vec![t];
        for v in 1..=9 {
            let mut body = ResponseKind::ListOffsets(r.clone());
            assert!(
                body.encode(&mut bytes::BytesMut::new(), v).is_err() == (v < 4),
                "v{v} without fit"
            );
            fit(&mut body, v);
            body.encode(&mut bytes::BytesMut::new(), v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
            let ResponseKind::ListOffsets(fitted) = body else {
                unreachable!()
            };
            let p = &fitted.topics[0].partitions[0];
            assert_eq!(p.offset, 42);
            assert_eq!(p.leader_epoch, if v < 4 { -1 } else { 7 });
        }
    }
}
