//! `strata acl|user|quota ...`: ACLs (Describe/Create/DeleteAcls), SCRAM users
//! (Describe/AlterUserScramCredentials: the password is salted and hashed here, only the salted
//! password travels) and client quotas (Describe/AlterClientQuotas), in Kafka's names.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::alter_client_quotas_request::{
    AlterClientQuotasRequest, EntityData as AlterEntity, EntryData as AlterEntry, OpData,
};
use kafka_protocol::messages::alter_client_quotas_response::AlterClientQuotasResponse;
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    AlterUserScramCredentialsRequest, ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResponse;
use kafka_protocol::messages::create_acls_request::{AclCreation, CreateAclsRequest};
use kafka_protocol::messages::create_acls_response::CreateAclsResponse;
use kafka_protocol::messages::delete_acls_request::{DeleteAclsFilter, DeleteAclsRequest};
use kafka_protocol::messages::delete_acls_response::DeleteAclsResponse;
use kafka_protocol::messages::describe_acls_request::DescribeAclsRequest;
use kafka_protocol::messages::describe_acls_response::DescribeAclsResponse;
use kafka_protocol::messages::describe_client_quotas_request::{
    ComponentData, DescribeClientQuotasRequest,
};
use kafka_protocol::messages::describe_client_quotas_response::DescribeClientQuotasResponse;
use kafka_protocol::messages::describe_user_scram_credentials_request::{
    DescribeUserScramCredentialsRequest, UserName,
};
use kafka_protocol::messages::describe_user_scram_credentials_response::DescribeUserScramCredentialsResponse;
use serde::Serialize;

use super::client::{AdminClient, AdminError, AdminResult, check, wire_str};
use super::output::{self, Format, Table};

/// Kafka's resource types by name.
const RESOURCE_TYPES: [(&str, i8); 6] = [
    ("topic", 2),
    ("group", 3),
    ("cluster", 4),
    ("transactional-id", 5),
    ("delegation-token", 6),
    ("user", 7),
];
/// Kafka's ACL operations by name.
const OPERATIONS: [(&str, i8); 14] = [
    ("all", 2),
    ("read", 3),
    ("write", 4),
    ("create", 5),
    ("delete", 6),
    ("alter", 7),
    ("describe", 8),
    ("cluster-action", 9),
    ("describe-configs", 10),
    ("alter-configs", 11),
    ("idempotent-write", 12),
    ("create-tokens", 13),
    ("describe-tokens", 14),
    ("two-phase-commit", 15),
];

fn name_of(table: &[(&'static str, i8)], code: i8) -> String {
    table
        .iter()
        .find(|(_, c)| *c == code)
        .map_or(format!("unknown({code})"), |(n, _)| n.to_string())
}

fn code_of(table: &[(&'static str, i8)], what: &str, name: &str) -> AdminResult<i8> {
    let wanted = name.to_ascii_lowercase().replace('_', "-");
    table
        .iter()
        .find(|(n, _)| *n == wanted)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            AdminError::Usage(format!(
                "{what} {name:?}: one of {}{}",
                table.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                output::suggestion(&wanted, table.iter().map(|(n, _)| *n))
            ))
        })
}

/// The resource an ACL names: `topic:orders`, `group:billing`, `cluster`,
/// `transactional-id:tx-1`.
pub fn parse_resource(s: &str) -> AdminResult<(i8, String)> {
    let (kind, name) = s.split_once(':').unwrap_or((s, ""));
    let code = code_of(&RESOURCE_TYPES, "resource type", kind)?;
    let name = if code == 4 {
        "kafka-cluster".to_string()
    } else if name.is_empty() {
        return Err(AdminError::Usage(format!(
            "{s:?}: name the resource, as {kind}:NAME"
        )));
    } else {
        name.to_string()
    };
    Ok((code, name))
}

/// One ACL.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Acl {
    /// `topic`, `group`, `cluster`, ...
    pub resource_type: String,
    /// The resource's name (or prefix).
    pub resource_name: String,
    /// `literal` or `prefixed`.
    pub pattern: String,
    /// `User:alice`.
    pub principal: String,
    /// The client host, `*` for any.
    pub host: String,
    /// `read`, `write`, ...
    pub operation: String,
    /// `allow` or `deny`.
    pub permission: String,
}

fn pattern_name(code: i8) -> String {
    match code {
        3 => "literal".into(),
        4 => "prefixed".into(),
        c => format!("unknown({c})"),
    }
}

fn permission_name(code: i8) -> String {
    match code {
        2 => "deny".into(),
        3 => "allow".into(),
        c => format!("unknown({c})"),
    }
}

/// What `acl create|delete` names.
#[derive(Debug, Clone)]
pub struct AclSpec {
    /// `topic:orders`, `cluster`, ...
    pub resource: String,
    /// The name is a prefix.
    pub prefixed: bool,
    /// `User:alice`.
    pub principal: String,
    /// `*` unless given.
    pub host: String,
    /// Operations, by Kafka's names.
    pub operations: Vec<String>,
    /// Deny instead of allow.
    pub deny: bool,
}

/// `strata acl list`, every ACL (or those on `resource`).
pub async fn list_acls(
    client: &mut AdminClient,
    resource: Option<&str>,
    principal: Option<&str>,
    format: Format,
) -> AdminResult<Vec<Acl>> {
    let any = client.any_broker().await?;
    let version = client.version(&any, ApiKey::DescribeAcls, 1, 3).await?;
    let mut req = DescribeAclsRequest::default();
    req.resource_type_filter = 1; // any
    req.pattern_type_filter = 1; // any
    req.operation = 1;
    req.permission_type = 1;
    req.resource_name_filter = None;
    req.principal_filter = principal.map(wire_str);
    req.host_filter = None;
    if let Some(r) = resource {
        let (code, name) = parse_resource(r)?;
        req.resource_type_filter = code;
        req.resource_name_filter = Some(wire_str(&name));
    }
    let r: DescribeAclsResponse = client
        .send(&any, ApiKey::DescribeAcls, version, &req)
        .await?;
    check(
        r.error_code,
        || "listing ACLs".into(),
        r.error_message.as_deref(),
    )?;
    let mut acls = Vec::new();
    for res in r.resources {
        for a in res.acls {
            acls.push(Acl {
                resource_type: name_of(&RESOURCE_TYPES, res.resource_type),
                resource_name: res.resource_name.to_string(),
                pattern: pattern_name(res.pattern_type),
                principal: a.principal.to_string(),
                host: a.host.to_string(),
                operation: name_of(&OPERATIONS, a.operation),
                permission: permission_name(a.permission_type),
            });
        }
    }
    acls.sort_by(|a, b| {
        (
            &a.resource_type,
            &a.resource_name,
            &a.principal,
            &a.operation,
        )
            .cmp(&(
                &b.resource_type,
                &b.resource_name,
                &b.principal,
                &b.operation,
            ))
    });
    output::print(format, &acls, || {
        let mut t = Table::new(&[
            "RESOURCE",
            "PATTERN",
            "PRINCIPAL",
            "HOST",
            "OPERATION",
            "PERMISSION",
        ]);
        for a in &acls {
            t.row(vec![
                format!("{}:{}", a.resource_type, a.resource_name),
                a.pattern.clone(),
                a.principal.clone(),
                a.host.clone(),
                a.operation.clone(),
                a.permission.clone(),
            ]);
        }
        if t.is_empty() {
            "(no ACLs)\n".to_string()
        } else {
            t.render()
        }
    });
    Ok(acls)
}

fn check_principal(p: &str) -> AdminResult<()> {
    if p.split_once(':')
        .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty())
    {
        Ok(())
    } else {
        Err(AdminError::Usage(format!(
            "principal {p:?}: write it as Kafka does, User:NAME"
        )))
    }
}

/// `strata acl create`: one ACL per operation.
pub async fn create_acls(client: &mut AdminClient, spec: &AclSpec) -> AdminResult<usize> {
    check_principal(&spec.principal)?;
    let (resource_type, resource_name) = parse_resource(&spec.resource)?;
    let mut creations = Vec::new();
    for op in &spec.operations {
        let mut c = AclCreation::default();
        c.resource_type = resource_type;
        c.resource_name = wire_str(&resource_name);
        c.resource_pattern_type = if spec.prefixed { 4 } else { 3 };
        c.principal = wire_str(&spec.principal);
        c.host = wire_str(&spec.host);
        c.operation = code_of(&OPERATIONS, "operation", op)?;
        c.permission_type = if spec.deny { 2 } else { 3 };
        creations.push(c);
    }
    if creations.is_empty() {
        return Err(AdminError::Usage("give at least one --operation".into()));
    }
    let any = client.any_broker().await?;
    let version = client.version(&any, ApiKey::CreateAcls, 1, 3).await?;
    let mut req = CreateAclsRequest::default();
    let n = creations.len();
    req.creations = creations;
    let r: CreateAclsResponse = client.send(&any, ApiKey::CreateAcls, version, &req).await?;
    for res in r.results {
        check(
            res.error_code,
            || "creating an ACL".into(),
            res.error_message.as_deref(),
        )?;
    }
    Ok(n)
}

/// `strata acl delete`: the ACLs matching `spec` exactly; returns how many went.
pub async fn delete_acls(client: &mut AdminClient, spec: &AclSpec) -> AdminResult<usize> {
    check_principal(&spec.principal)?;
    let (resource_type, resource_name) = parse_resource(&spec.resource)?;
    let mut filters = Vec::new();
    for op in &spec.operations {
        let mut f = DeleteAclsFilter::default();
        f.resource_type_filter = resource_type;
        f.resource_name_filter = Some(wire_str(&resource_name));
        f.pattern_type_filter = if spec.prefixed { 4 } else { 3 };
        f.principal_filter = Some(wire_str(&spec.principal));
        f.host_filter = Some(wire_str(&spec.host));
        f.operation = code_of(&OPERATIONS, "operation", op)?;
        f.permission_type = if spec.deny { 2 } else { 3 };
        filters.push(f);
    }
    let any = client.any_broker().await?;
    let version = client.version(&any, ApiKey::DeleteAcls, 1, 3).await?;
    let mut req = DeleteAclsRequest::default();
    req.filters = filters;
    let r: DeleteAclsResponse = client.send(&any, ApiKey::DeleteAcls, version, &req).await?;
    let mut n = 0;
    for res in r.filter_results {
        check(
            res.error_code,
            || "deleting ACLs".into(),
            res.error_message.as_deref(),
        )?;
        n += res.matching_acls.len();
    }
    Ok(n)
}

fn mechanism_code(m: &str) -> AdminResult<i8> {
    match m.to_ascii_uppercase().as_str() {
        "SCRAM-SHA-256" => Ok(1),
        "SCRAM-SHA-512" => Ok(2),
        other => Err(AdminError::Usage(format!(
            "mechanism {other:?}: SCRAM-SHA-256 or SCRAM-SHA-512"
        ))),
    }
}

/// A SCRAM user: which mechanisms it has credentials for.
#[derive(Debug, Clone, Serialize)]
pub struct ScramUser {
    /// The user name.
    pub user: String,
    /// `(mechanism, iterations)`.
    pub credentials: Vec<(String, i32)>,
}

/// `strata user list`.
pub async fn list_users(
    client: &mut AdminClient,
    users: &[String],
    format: Format,
) -> AdminResult<Vec<ScramUser>> {
    let any = client.any_broker().await?;
    let version = client
        .version(&any, ApiKey::DescribeUserScramCredentials, 0, 0)
        .await?;
    let mut req = DescribeUserScramCredentialsRequest::default();
    req.users = if users.is_empty() {
        None
    } else {
        Some(
            users
                .iter()
                .map(|u| {
                    let mut n = UserName::default();
                    n.name = wire_str(u);
                    n
                })
                .collect(),
        )
    };
    let r: DescribeUserScramCredentialsResponse = client
        .send(&any, ApiKey::DescribeUserScramCredentials, version, &req)
        .await?;
    check(
        r.error_code,
        || "listing SCRAM users".into(),
        r.error_message.as_deref(),
    )?;
    let mut out = Vec::new();
    for res in r.results {
        check(
            res.error_code,
            || format!("user {:?}", res.user.as_str()),
            res.error_message.as_deref(),
        )?;
        out.push(ScramUser {
            user: res.user.to_string(),
            credentials: res
                .credential_infos
                .iter()
                .map(|c| {
                    (
                        match c.mechanism {
                            1 => "SCRAM-SHA-256".to_string(),
                            2 => "SCRAM-SHA-512".to_string(),
                            m => format!("unknown({m})"),
                        },
                        c.iterations,
                    )
                })
                .collect(),
        });
    }
    output::print(format, &out, || {
        let mut t = Table::new(&["USER", "CREDENTIALS"]);
        for u in &out {
            t.row(vec![
                u.user.clone(),
                u.credentials
                    .iter()
                    .map(|(m, i)| format!("{m} ({i} iterations)"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]);
        }
        if t.is_empty() {
            "(no SCRAM users)\n".to_string()
        } else {
            t.render()
        }
    });
    Ok(out)
}

/// `strata user set` (`Some(password)`) or `strata user delete` (`None`).
pub async fn alter_user(
    client: &mut AdminClient,
    user: &str,
    mechanism: &str,
    password: Option<(&str, u32)>,
) -> AdminResult<()> {
    let code = mechanism_code(mechanism)?;
    let mut req = AlterUserScramCredentialsRequest::default();
    match password {
        Some((password, iterations)) => {
            let m = crate::sasl::Mechanism::parse(&mechanism.to_ascii_uppercase())
                .ok_or_else(|| AdminError::Usage(format!("mechanism {mechanism:?}")))?;
            let (salt, salted) = crate::sasl::salt_password(m, password, iterations);
            let mut u = ScramCredentialUpsertion::default();
            u.name = wire_str(user);
            u.mechanism = code;
            u.iterations = i32::try_from(iterations).unwrap_or(i32::MAX);
            u.salt = bytes::Bytes::copy_from_slice(&salt);
            u.salted_password = bytes::Bytes::from(salted);
            req.upsertions = vec![u];
        }
        None => {
            let mut d = ScramCredentialDeletion::default();
            d.name = wire_str(user);
            d.mechanism = code;
            req.deletions = vec![d];
        }
    }
    let any = client.any_broker().await?;
    let version = client
        .version(&any, ApiKey::AlterUserScramCredentials, 0, 0)
        .await?;
    let r: AlterUserScramCredentialsResponse = client
        .send(&any, ApiKey::AlterUserScramCredentials, version, &req)
        .await?;
    for res in r.results {
        check(
            res.error_code,
            || format!("changing the credentials of {user:?}"),
            res.error_message.as_deref(),
        )?;
    }
    Ok(())
}

/// A quota entity: `user=alice`, `client-id=app`, `user=` (the default user), combinations
/// with `,`.
pub fn parse_entity(s: &str) -> AdminResult<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, name) = part.split_once('=').unwrap_or((part, ""));
        let kind = match kind {
            "user" | "client-id" | "ip" => kind.to_string(),
            other => {
                return Err(AdminError::Usage(format!(
                    "quota entity {other:?}: user, client-id or ip (user=alice, client-id=app, user= for the default)"
                )));
            }
        };
        out.push((kind, (!name.is_empty()).then(|| name.to_string())));
    }
    if out.is_empty() {
        return Err(AdminError::Usage("give an entity: user=alice".into()));
    }
    Ok(out)
}

/// One entity's quotas.
#[derive(Debug, Clone, Serialize)]
pub struct Quota {
    /// `user=alice,client-id=app` (an empty name is the default).
    pub entity: String,
    /// `producer_byte_rate` → value, ...
    pub values: Vec<(String, f64)>,
}

/// `strata quota list`: every quota.
pub async fn list_quotas(client: &mut AdminClient, format: Format) -> AdminResult<Vec<Quota>> {
    let any = client.any_broker().await?;
    let version = client
        .version(&any, ApiKey::DescribeClientQuotas, 0, 1)
        .await?;
    let mut req = DescribeClientQuotasRequest::default();
    let mut all = Vec::new();
    for kind in ["user", "client-id", "ip"] {
        // 1: the default entity; 2: every named one.
        for match_type in [1, 2] {
            let mut c = ComponentData::default();
            c.entity_type = wire_str(kind);
            c.match_type = match_type;
            c._match = None;
            all.push(c);
        }
    }
    let mut out: Vec<Quota> = Vec::new();
    // One component at a time: a request with several matches only entities having all.
    for c in all {
        req.components = vec![c];
        req.strict = false;
        let r: DescribeClientQuotasResponse = client
            .send(&any, ApiKey::DescribeClientQuotas, version, &req)
            .await?;
        check(
            r.error_code,
            || "listing quotas".into(),
            r.error_message.as_deref(),
        )?;
        for e in r.entries.unwrap_or_default() {
            let entity = e
                .entity
                .iter()
                .map(|d| {
                    format!(
                        "{}={}",
                        d.entity_type.as_str(),
                        d.entity_name.as_deref().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            if out.iter().any(|q| q.entity == entity) {
                continue;
            }
            out.push(Quota {
                entity,
                values: e
                    .values
                    .iter()
                    .map(|v| (v.key.to_string(), v.value))
                    .collect(),
            });
        }
    }
    out.sort_by(|a, b| a.entity.cmp(&b.entity));
    output::print(format, &out, || {
        let mut t = Table::new(&["ENTITY", "QUOTAS"]);
        for q in &out {
            t.row(vec![
                q.entity.clone(),
                q.values
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ]);
        }
        if t.is_empty() {
            "(no quotas)\n".to_string()
        } else {
            t.render()
        }
    });
    Ok(out)
}

/// `strata quota set`: sets (`KEY=VALUE`) and removes (`KEY`) quotas of one entity.
pub async fn alter_quota(
    client: &mut AdminClient,
    entity: &str,
    set: &[String],
    delete: &[String],
) -> AdminResult<()> {
    let entity = parse_entity(entity)?;
    let mut entry = AlterEntry::default();
    entry.entity = entity
        .iter()
        .map(|(k, n)| {
            let mut e = AlterEntity::default();
            e.entity_type = wire_str(k);
            e.entity_name = n.as_deref().map(wire_str);
            e
        })
        .collect();
    for kv in set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| AdminError::Usage(format!("expected KEY=VALUE, got {kv:?}")))?;
        let value: f64 = v
            .trim()
            .parse()
            .map_err(|_| AdminError::Usage(format!("{k}={v}: not a number")))?;
        let mut op = OpData::default();
        op.key = wire_str(k.trim());
        op.value = value;
        op.remove = false;
        entry.ops.push(op);
    }
    for k in delete {
        let mut op = OpData::default();
        op.key = wire_str(k);
        op.remove = true;
        entry.ops.push(op);
    }
    if entry.ops.is_empty() {
        return Err(AdminError::Usage(
            "nothing to change: give --set KEY=VALUE or --delete KEY".into(),
        ));
    }
    let any = client.any_broker().await?;
    let version = client
        .version(&any, ApiKey::AlterClientQuotas, 0, 1)
        .await?;
    let mut req = AlterClientQuotasRequest::default();
    req.entries = vec![entry];
    let r: AlterClientQuotasResponse = client
        .send(&any, ApiKey::AlterClientQuotas, version, &req)
        .await?;
    for e in r.entries {
        check(
            e.error_code,
            || "changing quotas".into(),
            e.error_message.as_deref(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_and_operations_read_as_kafka_names_them() {
        assert_eq!(
            parse_resource("topic:orders").unwrap(),
            (2, "orders".into())
        );
        assert_eq!(
            parse_resource("cluster").unwrap(),
            (4, "kafka-cluster".into())
        );
        assert_eq!(
            parse_resource("transactional-id:tx").unwrap(),
            (5, "tx".into())
        );
        assert!(parse_resource("topic").is_err());
        let e = parse_resource("topik:orders").unwrap_err().to_string();
        assert!(e.contains("did you mean \"topic\""), "{e}");
        assert_eq!(
            code_of(&OPERATIONS, "operation", "IDEMPOTENT_WRITE").unwrap(),
            12
        );
        assert_eq!(name_of(&OPERATIONS, 3), "read");
        assert_eq!(
            parse_entity("user=alice,client-id=").unwrap(),
            [
                ("user".into(), Some("alice".into())),
                ("client-id".into(), None)
            ]
        );
        assert!(parse_entity("group=x").is_err());
    }
}
