//! DescribeClientQuotas and AlterClientQuotas (KIP-546) over the broker's client quotas
//! (`quota.rs`): describing needs DESCRIBE_CONFIGS on the cluster, altering ALTER_CONFIGS, as
//! Kafka checks them. An alteration is checked entry by entry (INVALID_REQUEST with the reason);
//! the valid entries are applied together (in a cluster, through the metadata quorum).

use kafka_protocol::messages::alter_client_quotas_request::AlterClientQuotasRequest;
use kafka_protocol::messages::alter_client_quotas_response::{
    AlterClientQuotasResponse, EntityData as AlteredEntity, EntryData as AlteredEntry,
};
use kafka_protocol::messages::describe_client_quotas_request::DescribeClientQuotasRequest;
use kafka_protocol::messages::describe_client_quotas_response::{
    DescribeClientQuotasResponse, EntityData, EntryData, ValueData,
};
use strata_replication::controller::QuotaEntity;

use super::{Context, s};
use crate::acl::Operation;
use crate::cluster::wire::ControllerRequest;
use crate::error_code::ErrorCode;
use crate::quota::{Component, Matching};

/// DescribeClientQuotas: the entities matching the filter, with their values.
pub fn describe(ctx: &Context, r: DescribeClientQuotasRequest) -> DescribeClientQuotasResponse {
    let refuse = |code: ErrorCode, message: String| {
        msg!(DescribeClientQuotasResponse {
            error_code: code.code(),
            error_message: Some(s(&message)),
            entries: None,
        })
    };
    if !ctx.authorized_on_cluster(Operation::DescribeConfigs) {
        return refuse(
            ErrorCode::ClusterAuthorizationFailed,
            "not authorized to describe the cluster's configs".into(),
        );
    }
    let mut filter = Vec::new();
    for c in &r.components {
        let entity_type = c.entity_type.to_string();
        if ![
            crate::quota::USER,
            crate::quota::CLIENT_ID,
            crate::quota::IP,
        ]
        .contains(&entity_type.as_str())
        {
            return refuse(
                ErrorCode::InvalidRequest,
                format!("unknown entity type {entity_type:?}"),
            );
        }
        let matching = match (c.match_type, &c._match) {
            (0, Some(name)) => Matching::Exact(name.to_string()),
            (0, None) => {
                return refuse(
                    ErrorCode::InvalidRequest,
                    "an exact match needs a name".into(),
                );
            }
            (1, _) => Matching::Default,
            (2, _) => Matching::Any,
            (t, _) => {
                return refuse(ErrorCode::InvalidRequest, format!("unknown match type {t}"));
            }
        };
        filter.push(Component {
            entity_type,
            matching,
        });
    }
    let entries = ctx
        .quotas
        .describe()
        .into_iter()
        .filter(|(entity, _)| crate::quota::matches(entity, &filter, r.strict))
        .map(|(entity, values)| {
            msg!(EntryData {
                entity: entity
                    .iter()
                    .map(|(t, n)| msg!(EntityData {
                        entity_type: s(t),
                        entity_name: n.as_deref().map(s),
                    }))
                    .collect(),
                values: values
                    .iter()
                    .map(|(k, v)| msg!(ValueData {
                        key: s(k),
                        value: *v,
                    }))
                    .collect(),
            })
        })
        .collect();
    msg!(DescribeClientQuotasResponse {
        error_code: 0,
        entries: Some(entries),
    })
}

/// AlterClientQuotas: sets and removes quotas, answered per entity.
pub async fn alter(ctx: &Context, r: AlterClientQuotasRequest) -> AlterClientQuotasResponse {
    let echo = |entity: &[(String, Option<String>)]| -> Vec<AlteredEntity> {
        entity
            .iter()
            .map(|(t, n)| {
                msg!(AlteredEntity {
                    entity_type: s(t),
                    entity_name: n.as_deref().map(s),
                })
            })
            .collect()
    };
    let authorized = ctx.authorized_on_cluster(Operation::AlterConfigs);
    // Each entry: its entity as sent, and its changes or why it is refused.
    type Checked = (
        Vec<(String, Option<String>)>,
        Result<Vec<(QuotaEntity, String, Option<f64>)>, (ErrorCode, String)>,
    );
    let checked: Vec<Checked> = r
        .entries
        .iter()
        .map(|e| {
            let sent: Vec<(String, Option<String>)> = e
                .entity
                .iter()
                .map(|d| {
                    (
                        d.entity_type.to_string(),
                        d.entity_name.as_ref().map(|n| n.to_string()),
                    )
                })
                .collect();
            if !authorized {
                return (
                    sent,
                    Err((
                        ErrorCode::ClusterAuthorizationFailed,
                        "not authorized to alter the cluster's configs".into(),
                    )),
                );
            }
            let outcome = crate::quota::entity(sent.clone())
                .and_then(|entity| {
                    e.ops
                        .iter()
                        .map(|op| {
                            let key = op.key.to_string();
                            crate::quota::check_op(&entity, &key, op.value, op.remove)?;
                            Ok((entity.clone(), key, (!op.remove).then_some(op.value)))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| (ErrorCode::InvalidRequest, e.0));
            (sent, outcome)
        })
        .collect();
    let changes: Vec<(QuotaEntity, String, Option<f64>)> = checked
        .iter()
        .filter_map(|(_, c)| c.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let applied: Result<(), (ErrorCode, String)> = if r.validate_only || changes.is_empty() {
        Ok(())
    } else {
        match &ctx.broker.cluster {
            // The standalone broker writes and fsyncs its quota file.
            None => crate::blocking::run(|| ctx.quotas.alter(&changes))
                .map_err(|e| (ErrorCode::UnknownServerError, e)),
            Some(cluster) => {
                cluster
                    .admin_call(ControllerRequest::AlterClientQuotas {
                        changes: changes.clone(),
                    })
                    .await
            }
        }
    };
    let entries = checked
        .into_iter()
        .map(|(sent, outcome)| {
            let (code, message) = match (outcome, &applied) {
                (Err((code, m)), _) => (code, Some(m)),
                (Ok(_), Err((code, m))) => (*code, Some(m.clone())),
                (Ok(_), Ok(())) => (ErrorCode::None, None),
            };
            if code == ErrorCode::None && !r.validate_only {
                tracing::info!(entity = ?sent, by = %crate::connection::principal(), "client quotas altered");
            }
            msg!(AlteredEntry {
                error_code: code.code(),
                error_message: message.as_deref().map(s),
                entity: echo(&sent),
            })
        })
        .collect();
    msg!(AlterClientQuotasResponse { entries })
}
