//! CreateAcls, DescribeAcls and DeleteAcls (KIP-140 with KIP-290's prefixed patterns) over the
//! broker's authorizer (`acl.rs`). Without an authorizer each answers SECURITY_DISABLED, as
//! Kafka does; creating and deleting need ALTER on the cluster, describing DESCRIBE.

use kafka_protocol::messages::create_acls_request::CreateAclsRequest;
use kafka_protocol::messages::create_acls_response::{AclCreationResult, CreateAclsResponse};
use kafka_protocol::messages::delete_acls_request::{DeleteAclsFilter, DeleteAclsRequest};
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl, DeleteAclsResponse,
};
use kafka_protocol::messages::describe_acls_request::DescribeAclsRequest;
use kafka_protocol::messages::describe_acls_response::{
    AclDescription, DescribeAclsResource, DescribeAclsResponse,
};

use super::{Context, s};
use crate::acl::{AclBinding, AclFilter, Operation};
use crate::cluster::wire::ControllerRequest;
use crate::error_code::ErrorCode;

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker (authorizer.class.name)";

/// `Err((code, message))` unless ACLs may be managed: an authorizer, and `operation` on the
/// cluster.
fn check(ctx: &Context, operation: Operation) -> Result<(), (ErrorCode, &'static str)> {
    if !ctx.acl.enabled {
        return Err((ErrorCode::SecurityDisabled, NO_AUTHORIZER));
    }
    if !ctx.authorized_on_cluster(operation) {
        return Err((
            ErrorCode::ClusterAuthorizationFailed,
            "not authorized on the cluster",
        ));
    }
    Ok(())
}

/// CreateAcls: each creation is checked on its own; the valid ones are stored together (in a
/// cluster, through the metadata quorum: every broker enforces them once they are committed,
/// this one before it answers).
pub async fn create(ctx: &Context, r: CreateAclsRequest) -> CreateAclsResponse {
    if let Err((code, message)) = check(ctx, Operation::Alter) {
        let results = r
            .creations
            .iter()
            .map(|_| {
                msg!(AclCreationResult {
                    error_code: code.code(),
                    error_message: Some(s(message)),
                })
            })
            .collect();
        return msg!(CreateAclsResponse { results });
    }
    let parsed: Vec<Result<AclBinding, String>> = r
        .creations
        .iter()
        .map(|c| {
            AclBinding::from_codes(
                c.resource_type,
                c.resource_name.as_str(),
                c.resource_pattern_type,
                c.principal.as_str(),
                c.host.as_str(),
                c.operation,
                c.permission_type,
            )
            .map_err(|e| e.0)
        })
        .collect();
    let valid: Vec<AclBinding> = parsed.iter().filter_map(|p| p.clone().ok()).collect();
    let stored: Result<(), (ErrorCode, String)> = match &ctx.broker.cluster {
        // The standalone broker writes and fsyncs its ACL file.
        None => crate::blocking::run(|| ctx.acl.create(valid))
            .map_err(|e| (ErrorCode::UnknownServerError, e)),
        Some(cluster) => {
            cluster
                .admin_call(ControllerRequest::CreateAcls {
                    acls: valid.iter().map(AclBinding::to_entry).collect(),
                })
                .await
        }
    };
    let results = parsed
        .into_iter()
        .map(|p| match (p, &stored) {
            (Err(why), _) => msg!(AclCreationResult {
                error_code: ErrorCode::InvalidRequest.code(),
                error_message: Some(s(&why)),
            }),
            (Ok(_), Err((code, e))) => msg!(AclCreationResult {
                error_code: code.code(),
                error_message: Some(s(e)),
            }),
            (Ok(acl), Ok(())) => {
                tracing::info!(?acl, principal = %crate::connection::principal(), "ACL created");
                msg!(AclCreationResult {
                    error_code: 0,
                    error_message: None,
                })
            }
        })
        .collect();
    msg!(CreateAclsResponse { results })
}

/// DescribeAcls: the ACLs a filter matches, grouped by resource pattern.
pub fn describe(ctx: &Context, r: DescribeAclsRequest) -> DescribeAclsResponse {
    if let Err((code, message)) = check(ctx, Operation::Describe) {
        return msg!(DescribeAclsResponse {
            error_code: code.code(),
            error_message: Some(s(message)),
        });
    }
    let filter = AclFilter {
        resource_type: r.resource_type_filter,
        name: r.resource_name_filter.map(|n| n.as_str().to_string()),
        pattern: r.pattern_type_filter,
        principal: r.principal_filter.map(|p| p.as_str().to_string()),
        host: r.host_filter.map(|h| h.as_str().to_string()),
        operation: r.operation,
        permission: r.permission_type,
    };
    if let Err(e) = filter.validate() {
        return msg!(DescribeAclsResponse {
            error_code: ErrorCode::InvalidRequest.code(),
            error_message: Some(s(&e.0)),
        });
    }
    let mut resources: Vec<DescribeAclsResource> = Vec::new();
    for acl in ctx.acl.describe(&filter) {
        let entry = msg!(AclDescription {
            principal: s(&acl.principal),
            host: s(&acl.host),
            operation: acl.operation.code(),
            permission_type: acl.permission.code(),
        });
        let same = |res: &&mut DescribeAclsResource| {
            res.resource_type == acl.resource_type.code()
                && res.resource_name.as_str() == acl.name
                && res.pattern_type == acl.pattern.code()
        };
        match resources.iter_mut().find(same) {
            Some(res) => res.acls.push(entry),
            None => resources.push(msg!(DescribeAclsResource {
                resource_type: acl.resource_type.code(),
                resource_name: s(&acl.name),
                pattern_type: acl.pattern.code(),
                acls: vec![entry],
            })),
        }
    }
    msg!(DescribeAclsResponse {
        error_code: 0,
        resources,
    })
}

/// DeleteAcls: removes what each filter matches and lists it (in a cluster, what it matches in
/// this broker's image, removed through the metadata quorum).
pub async fn delete(ctx: &Context, r: DeleteAclsRequest) -> DeleteAclsResponse {
    let refused = |code: ErrorCode, message: &str| {
        msg!(DeleteAclsFilterResult {
            error_code: code.code(),
            error_message: Some(s(message)),
        })
    };
    if let Err((code, message)) = check(ctx, Operation::Alter) {
        let filter_results = r.filters.iter().map(|_| refused(code, message)).collect();
        return msg!(DeleteAclsResponse { filter_results });
    }
    let filters: Vec<Result<AclFilter, String>> = r
        .filters
        .iter()
        .map(|f: &DeleteAclsFilter| {
            let filter = AclFilter {
                resource_type: f.resource_type_filter,
                name: f
                    .resource_name_filter
                    .as_ref()
                    .map(|n| n.as_str().to_string()),
                pattern: f.pattern_type_filter,
                principal: f.principal_filter.as_ref().map(|p| p.as_str().to_string()),
                host: f.host_filter.as_ref().map(|h| h.as_str().to_string()),
                operation: f.operation,
                permission: f.permission_type,
            };
            filter.validate().map(|()| filter).map_err(|e| e.0)
        })
        .collect();
    let valid: Vec<AclFilter> = filters.iter().filter_map(|f| f.clone().ok()).collect();
    let removed: Result<Vec<Vec<AclBinding>>, (ErrorCode, String)> = match &ctx.broker.cluster {
        None => crate::blocking::run(|| ctx.acl.delete(&valid))
            .map_err(|e| (ErrorCode::UnknownServerError, e)),
        Some(cluster) => {
            let matched: Vec<Vec<AclBinding>> = valid.iter().map(|f| ctx.acl.describe(f)).collect();
            let acls: std::collections::BTreeSet<_> =
                matched.iter().flatten().map(AclBinding::to_entry).collect();
            cluster
                .admin_call(ControllerRequest::RemoveAcls {
                    acls: acls.into_iter().collect(),
                })
                .await
                .map(|()| matched)
        }
    };
    let mut removed = match removed {
        Ok(removed) => removed.into_iter(),
        Err((code, e)) => {
            let filter_results = r.filters.iter().map(|_| refused(code, &e)).collect();
            return msg!(DeleteAclsResponse { filter_results });
        }
    };
    let filter_results = filters
        .into_iter()
        .map(|f| match f {
            Err(why) => refused(ErrorCode::InvalidRequest, &why),
            Ok(_) => {
                let matching_acls = removed
                    .next()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|acl| {
                        tracing::info!(?acl, principal = %crate::connection::principal(), "ACL deleted");
                        msg!(DeleteAclsMatchingAcl {
                            error_code: 0,
                            resource_type: acl.resource_type.code(),
                            resource_name: s(&acl.name),
                            pattern_type: acl.pattern.code(),
                            principal: s(&acl.principal),
                            host: s(&acl.host),
                            operation: acl.operation.code(),
                            permission_type: acl.permission.code(),
                        })
                    })
                    .collect();
                msg!(DeleteAclsFilterResult {
                    error_code: 0,
                    matching_acls,
                })
            }
        })
        .collect();
    msg!(DeleteAclsResponse { filter_results })
}
