//! Request handlers: one module per area, each turning a decoded request into engine calls and
//! a response. `supported_versions` is the single table of what this broker implements; the
//! ApiVersions response is built from it, so what is advertised is exactly what is handled.

pub mod acls;
pub mod admin;
pub mod api_versions;
pub mod authorized;
pub mod configs;
pub mod consumer_group;
pub mod describe_topic_partitions;
pub mod elect_leaders;
pub mod fetch;
pub mod group;
pub mod leader_hint;
pub mod log_dirs;
pub mod metadata;
pub mod produce;
pub mod producers;
pub mod quorum;
pub mod quotas;
pub mod reassignments;
pub mod scram_users;
pub mod txn;

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseKind};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::group::GroupCoordinator;
use crate::metrics::Metrics;

/// What every handler can reach.
#[derive(Debug)]
pub struct Context {
    /// The broker.
    pub broker: Arc<Broker>,
    /// The group coordinator.
    pub groups: Arc<GroupCoordinator>,
    /// The transaction coordinator.
    pub txns: Arc<crate::txn::TransactionCoordinator>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The controller, if this node is a quorum member.
    pub controller: Option<Arc<crate::cluster::controller::Controller>>,
    /// Per-peer backoff of clients whose connections keep failing.
    pub backoff: crate::error_backoff::ErrorBackoff,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: crate::fetch_session::FetchSessions,
    /// SCRAM credentials (`sasl.rs`).
    pub scram: Arc<crate::sasl::ScramStore>,
    /// ACLs and the authorizer's settings (`acl.rs`).
    pub acl: Arc<crate::acl::Authorizer>,
    /// Client quotas and the rates measured against them (`quota.rs`).
    pub quotas: Arc<crate::quota::QuotaStore>,
    /// The OAUTHBEARER token validator, when the mechanism is enabled (`oauth.rs`).
    pub oauth: Option<Arc<crate::oauth::Validator>>,
}

impl Context {
    /// Whether the request's principal may do `operation` on `name` of `resource_type`; a
    /// denial is counted and logged (thinned to powers of two).
    pub fn authorized(
        &self,
        operation: crate::acl::Operation,
        resource_type: crate::acl::ResourceType,
        name: &str,
    ) -> bool {
        if !self.acl.enabled {
            return true;
        }
        let principal = crate::connection::principal();
        let host = crate::connection::client_ip();
        let ok = self
            .acl
            .authorize(&principal, &host, operation, resource_type, name);
        if !ok {
            self.metrics.authorization_denials.inc();
            let n = self.metrics.authorization_denials.get();
            if n <= 3 || n.is_power_of_two() {
                tracing::warn!(%principal, %host, ?operation, ?resource_type, resource = name, denials = n, "authorization denied");
            }
        }
        ok
    }

    /// As [`Context::authorized`], without counting or logging a denial: for what a response
    /// leaves out rather than refuses (Metadata's topic list, ListGroups' groups).
    pub fn may_see(&self, resource_type: crate::acl::ResourceType, name: &str) -> bool {
        self.allows(crate::acl::Operation::Describe, resource_type, name)
    }

    /// Whether the principal may do `operation`, without counting or logging a denial (for a
    /// check that has another way through, like CREATE on the cluster or else on the topic).
    pub fn allows(
        &self,
        operation: crate::acl::Operation,
        resource_type: crate::acl::ResourceType,
        name: &str,
    ) -> bool {
        !self.acl.enabled
            || self.acl.authorize(
                &crate::connection::principal(),
                &crate::connection::client_ip(),
                operation,
                resource_type,
                name,
            )
    }

    /// Whether the principal may create topic `name`: CREATE on the cluster, or on the topic.
    pub fn may_create_topic(&self, name: &str) -> bool {
        use crate::acl::{CLUSTER_NAME, Operation, ResourceType};
        self.allows(Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
            || self.authorized(Operation::Create, ResourceType::Topic, name)
    }

    /// [`Context::authorized`] on the cluster resource.
    pub fn authorized_on_cluster(&self, operation: crate::acl::Operation) -> bool {
        self.authorized(
            operation,
            crate::acl::ResourceType::Cluster,
            crate::acl::CLUSTER_NAME,
        )
    }
}

/// The versions this broker implements, per API: `(min, max)`, or `None` if not implemented.
/// Versions below the codec crate's floor (ListOffsets v0, OffsetCommit v0-1, OffsetFetch v0,
/// DescribeConfigs v0, CreateTopics v0-1, DeleteTopics v0) go through `wire::legacy`; requests
/// of OffsetCommit and OffsetFetch v10, above the crate's decoders, through `wire::topic_ids`.
/// Produce advertises a minimum of 0 because librdkafka refuses brokers that do not, but
/// versions 0-2 (message formats v0/v1) are not decoded: such requests close the connection.
pub fn supported_versions(key: ApiKey) -> Option<(i16, i16)> {
    Some(match key {
        ApiKey::Produce => (3, 13),
        ApiKey::Fetch => (4, 18),
        ApiKey::ListOffsets => (0, 10),
        ApiKey::Metadata => (0, 13),
        ApiKey::OffsetCommit => (0, 10),
        ApiKey::OffsetFetch => (0, 10),
        ApiKey::FindCoordinator => (0, 6),
        ApiKey::JoinGroup => (0, 9),
        ApiKey::Heartbeat => (0, 4),
        ApiKey::LeaveGroup => (0, 5),
        ApiKey::SyncGroup => (0, 5),
        ApiKey::DescribeGroups => (0, 5),
        ApiKey::ListGroups => (0, 5),
        ApiKey::ApiVersions => (0, 4),
        ApiKey::CreateTopics => (0, 7),
        ApiKey::DeleteTopics => (0, 6),
        ApiKey::DeleteRecords => (0, 2),
        ApiKey::InitProducerId => (0, 5),
        ApiKey::OffsetForLeaderEpoch => (2, 4),
        ApiKey::DescribeConfigs => (0, 4),
        ApiKey::DescribeLogDirs => (1, 4),
        ApiKey::AlterConfigs => (0, 2),
        ApiKey::CreatePartitions => (0, 3),
        ApiKey::DeleteGroups => (0, 2),
        ApiKey::OffsetDelete => (0, 0),
        ApiKey::ElectLeaders => (0, 2),
        ApiKey::AlterPartitionReassignments => (0, 1),
        ApiKey::ListPartitionReassignments => (0, 0),
        ApiKey::IncrementalAlterConfigs => (0, 1),
        ApiKey::DescribeCluster => (0, 2),
        ApiKey::DescribeQuorum => (0, 2),
        ApiKey::UnregisterBroker => (0, 0),
        ApiKey::DescribeProducers => (0, 0),
        ApiKey::DescribeTopicPartitions => (0, 0),
        ApiKey::ConsumerGroupHeartbeat => (0, 1),
        ApiKey::ConsumerGroupDescribe => (0, 1),
        ApiKey::SaslHandshake => (1, 1),
        ApiKey::SaslAuthenticate => (0, 2),
        ApiKey::CreateAcls => (1, 3),
        ApiKey::DescribeAcls => (1, 3),
        ApiKey::DeleteAcls => (1, 3),
        ApiKey::DescribeUserScramCredentials => (0, 0),
        ApiKey::DescribeClientQuotas => (0, 1),
        ApiKey::AlterClientQuotas => (0, 1),
        ApiKey::AlterUserScramCredentials => (0, 0),
        ApiKey::AddPartitionsToTxn => (0, 5),
        ApiKey::AddOffsetsToTxn => (0, 4),
        ApiKey::EndTxn => (0, 5),
        ApiKey::WriteTxnMarkers => (1, 1),
        ApiKey::TxnOffsetCommit => (0, 5),
        ApiKey::DescribeTransactions => (0, 0),
        ApiKey::ListTransactions => (0, 1),
        _ => return None,
    })
}

/// The advertised range: as supported, except Produce whose minimum is advertised as 0.
pub fn advertised_versions(key: ApiKey) -> Option<(i16, i16)> {
    supported_versions(key).map(|(min, max)| {
        if key == ApiKey::Produce {
            (0, max)
        } else {
            (min, max)
        }
    })
}

/// Sets `throttle_time_ms` of a response whose API has it (a client over a quota).
pub fn set_throttle_time(response: &mut ResponseKind, ms: i32) {
    macro_rules! throttled {
        ($($kind:ident),* $(,)?) => {
            match response {
                $(ResponseKind::$kind(r) => r.throttle_time_ms = ms,)*
                _ => {}
            }
        };
    }
    throttled!(
        Produce,
        Fetch,
        ListOffsets,
        Metadata,
        OffsetCommit,
        OffsetFetch,
        FindCoordinator,
        JoinGroup,
        Heartbeat,
        LeaveGroup,
        SyncGroup,
        DescribeGroups,
        ListGroups,
        ApiVersions,
        CreateTopics,
        DeleteTopics,
        DeleteRecords,
        InitProducerId,
        OffsetForLeaderEpoch,
        DescribeConfigs,
        AlterConfigs,
        DescribeLogDirs,
        CreatePartitions,
        DeleteGroups,
        OffsetDelete,
        ElectLeaders,
        IncrementalAlterConfigs,
        AlterPartitionReassignments,
        ListPartitionReassignments,
        DescribeCluster,
        UnregisterBroker,
        DescribeProducers,
        DescribeTopicPartitions,
        ConsumerGroupHeartbeat,
        ConsumerGroupDescribe,
        CreateAcls,
        DescribeAcls,
        DeleteAcls,
        DescribeUserScramCredentials,
        AlterUserScramCredentials,
        DescribeClientQuotas,
        AlterClientQuotas,
        AddPartitionsToTxn,
        AddOffsetsToTxn,
        EndTxn,
        TxnOffsetCommit,
        DescribeTransactions,
        ListTransactions,
    );
}

/// A `StrBytes` from a `&str`.
pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// Dispatches a decoded request. `None`: send no response (acks=0).
pub async fn handle(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<Response> {
    let v = header.request_api_version;
    if let RequestKind::Fetch(r) = request {
        let (mut resp, files) = fetch::handle(ctx, r, v).await;
        leader_hint::fetch(ctx, &mut resp);
        return Some((ResponseKind::Fetch(resp), files));
    }
    Some((dispatch(ctx, header, request).await?, Vec::new()))
}

/// A response and the file slices its markers stand for (Fetch record bytes, sent zero-copy).
pub type Response = (ResponseKind, Vec<strata_engine::FileSlice>);

async fn dispatch(
    ctx: &Arc<Context>,
    header: &RequestHeader,
    request: RequestKind,
) -> Option<ResponseKind> {
    let v = header.request_api_version;
    Some(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        // A connection on a SASL listener authenticates before any request reaches here
        // (`connection.rs`); here SASL requests are out of their place, as Kafka answers them.
        RequestKind::SaslHandshake(_) => {
            ResponseKind::SaslHandshake(msg!(kafka_protocol::messages::SaslHandshakeResponse {
                error_code: crate::error_code::ErrorCode::IllegalSaslState.code(),
            }))
        }
        RequestKind::SaslAuthenticate(_) => ResponseKind::SaslAuthenticate(msg!(
            kafka_protocol::messages::SaslAuthenticateResponse {
                error_code: crate::error_code::ErrorCode::IllegalSaslState.code(),
                error_message: Some(s(
                    "SASL requests are answered only before a SASL listener's connection authenticates"
                )),
            }
        )),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(ctx, r, v).await),
        // Creating and deleting ACLs and credentials write and fsync their file (standalone)
        // or go through the metadata quorum (cluster).
        RequestKind::CreateAcls(r) => ResponseKind::CreateAcls(acls::create(ctx, r).await),
        RequestKind::DescribeAcls(r) => ResponseKind::DescribeAcls(acls::describe(ctx, r)),
        RequestKind::DeleteAcls(r) => ResponseKind::DeleteAcls(acls::delete(ctx, r).await),
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(quotas::describe(ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(quotas::alter(ctx, r).await)
        }
        RequestKind::DescribeUserScramCredentials(r) => {
            ResponseKind::DescribeUserScramCredentials(scram_users::describe(ctx, r))
        }
        RequestKind::AlterUserScramCredentials(r) => {
            ResponseKind::AlterUserScramCredentials(scram_users::alter(ctx, r).await)
        }
        RequestKind::Produce(r) => {
            return produce::handle(ctx, r, v).await.map(ResponseKind::Produce);
        }
        // By timestamp it reads batch headers, which may wait on the disk.
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(crate::blocking::run(|| fetch::list_offsets(ctx, r)))
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(fetch::offset_for_leader_epoch(ctx, r))
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(ctx, r, v).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(ctx, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter_configs(ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter_configs(ctx, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(admin::describe_cluster(ctx, r))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(quorum::describe_quorum(ctx, r, v).await)
        }
        RequestKind::UnregisterBroker(r) => {
            ResponseKind::UnregisterBroker(admin::unregister_broker(ctx, r).await)
        }
        RequestKind::DeleteRecords(r) => ResponseKind::DeleteRecords(admin::delete_records(ctx, r)),
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(produce::init_producer_id(ctx, r, v).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(group::find_coordinator(ctx, r, v).await)
        }
        RequestKind::JoinGroup(r) => {
            let client = header
                .client_id
                .as_ref()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default();
            ResponseKind::JoinGroup(group::join_group(ctx, r, v, &client).await)
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(group::sync_group(ctx, r).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(group::heartbeat(ctx, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(group::leave_group(ctx, r, v)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(group::offset_commit(ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(group::offset_fetch(ctx, r, v)),
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(group::describe_groups(ctx, r))
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(group::list_groups(ctx, r)),
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(log_dirs::describe_log_dirs(ctx, r))
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(group::offset_delete(ctx, r).await)
        }
        RequestKind::DescribeTopicPartitions(r) => {
            ResponseKind::DescribeTopicPartitions(describe_topic_partitions::handle(ctx, r).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(producers::handle(ctx, r))
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(elect_leaders::handle(ctx, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => {
            ResponseKind::AlterPartitionReassignments(reassignments::alter(ctx, r, v).await)
        }
        RequestKind::ListPartitionReassignments(r) => {
            ResponseKind::ListPartitionReassignments(reassignments::list(ctx, r))
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::heartbeat(ctx, header, r).await)
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::describe(ctx, r))
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(group::delete_groups(ctx, r).await)
        }
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions(ctx, r, v).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn::add_offsets(ctx, r, v).await)
        }
        RequestKind::EndTxn(r) => ResponseKind::EndTxn(txn::end_txn(ctx, r, v).await),
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn::txn_offset_commit(ctx, r, v).await)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(txn::write_txn_markers(ctx, r).await)
        }
        RequestKind::DescribeTransactions(r) => {
            ResponseKind::DescribeTransactions(txn::describe(ctx, r))
        }
        RequestKind::ListTransactions(r) => ResponseKind::ListTransactions(txn::list(ctx, r)),
        other => {
            tracing::warn!(request = ?std::mem::discriminant(&other), "request of an API that is not advertised");
            return None;
        }
    })
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    /// docs/compatibility.md lists exactly the supported-versions table: every API with its key
    /// and range, and no other. On failure it prints the rows the page should have.
    #[test]
    fn docs_compatibility_lists_the_supported_versions() {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docs/compatibility.md"
        ))
        .unwrap();
        let table = doc
            .split("<!-- supported-versions:start -->")
            .nth(1)
            .and_then(|t| t.split("<!-- supported-versions:end -->").next())
            .expect("the page marks its table");
        let documented: Vec<(String, i16, String)> = table
            .lines()
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let key = cells.get(2)?.parse().ok()?;
                Some((cells[1].to_string(), key, cells[3].to_string()))
            })
            .collect();
        let expected: Vec<(String, i16, String)> = ApiKey::iter()
            .filter_map(|api| {
                let (min, max) = supported_versions(api)?;
                Some((format!("{api:?}"), api as i16, format!("{min}-{max}")))
            })
            .collect();
        let rows: String = expected
            .iter()
            .map(|(n, k, v)| format!("| {n} | {k} | {v} | |\n"))
            .collect();
        assert_eq!(
            documented, expected,
            "docs/compatibility.md should list:\n{rows}"
        );
    }
}
