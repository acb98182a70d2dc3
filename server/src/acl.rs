//! Authorization with Kafka's ACL model: who (a principal, from a host) may do what (an
//! operation) to which resource (a topic, group, the cluster, a transactional id), by ACLs that
//! allow or deny. The rules are Kafka's `StandardAuthorizer`'s:
//!
//! - An ACL names a resource by a LITERAL name (`*` matches every name of its type) or a
//!   PREFIXED one (every name that starts with it); a principal (`User:alice`, `User:*` for
//!   any); a host (`*` for any); an operation (ALL for any); ALLOW or DENY.
//! - A request is denied if any matching ACL denies it; else allowed if one allows it. DESCRIBE
//!   is allowed by an ALLOW of READ, WRITE, DELETE or ALTER; DESCRIBE_CONFIGS by one of
//!   ALTER_CONFIGS. (A DENY denies only the operations it names, or all with ALL.)
//! - `super.users` may do everything. A resource no ACL matches at all is open only with
//!   `allow.everyone.if.no.acl.found=true` (default false).
//!
//! The broker authorizes only when `authorizer.class.name` is set (Kafka's class names are
//! accepted as they are). ACLs of a standalone broker are kept in `<data>/acls.json`, written
//! atomically on every change.
//!
//! Invariant: a stored ACL is concrete: its resource type, pattern type, operation and
//! permission are never ANY, MATCH or UNKNOWN (`AclBinding::validate` at creation).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

/// Resource types, with Kafka's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ResourceType {
    /// A topic.
    Topic,
    /// A consumer group.
    Group,
    /// The cluster (the only name is `kafka-cluster`).
    Cluster,
    /// A transactional id.
    TransactionalId,
    /// A delegation token.
    DelegationToken,
    /// A user (quotas, SCRAM credentials).
    User,
}

impl ResourceType {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            ResourceType::Topic => 2,
            ResourceType::Group => 3,
            ResourceType::Cluster => 4,
            ResourceType::TransactionalId => 5,
            ResourceType::DelegationToken => 6,
            ResourceType::User => 7,
        }
    }

    /// The type of a concrete code.
    pub fn from_code(code: i8) -> Option<ResourceType> {
        Some(match code {
            2 => ResourceType::Topic,
            3 => ResourceType::Group,
            4 => ResourceType::Cluster,
            5 => ResourceType::TransactionalId,
            6 => ResourceType::DelegationToken,
            7 => ResourceType::User,
            _ => return None,
        })
    }
}

/// The cluster resource's one name.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Pattern types of stored ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PatternType {
    /// The name as it is (`*`: every name).
    Literal,
    /// Every name starting with it.
    Prefixed,
}

impl PatternType {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            PatternType::Literal => 3,
            PatternType::Prefixed => 4,
        }
    }
}

/// Pattern type filter codes (DescribeAcls, DeleteAcls).
const PATTERN_ANY: i8 = 1;
const PATTERN_MATCH: i8 = 2;
/// Any resource type, operation or permission in a filter.
const ANY: i8 = 1;

/// Operations, with Kafka's codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Operation {
    /// Every operation.
    All,
    /// Consume; commit offsets.
    Read,
    /// Produce.
    Write,
    /// Create topics.
    Create,
    /// Delete topics, records, groups.
    Delete,
    /// Change partitions, the cluster.
    Alter,
    /// See that it exists.
    Describe,
    /// Inter-broker actions.
    ClusterAction,
    /// Read configs.
    DescribeConfigs,
    /// Change configs.
    AlterConfigs,
    /// Idempotent produce.
    IdempotentWrite,
    /// Create delegation tokens.
    CreateTokens,
    /// Describe delegation tokens.
    DescribeTokens,
}

impl Operation {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            Operation::All => 2,
            Operation::Read => 3,
            Operation::Write => 4,
            Operation::Create => 5,
            Operation::Delete => 6,
            Operation::Alter => 7,
            Operation::Describe => 8,
            Operation::ClusterAction => 9,
            Operation::DescribeConfigs => 10,
            Operation::AlterConfigs => 11,
            Operation::IdempotentWrite => 12,
            Operation::CreateTokens => 13,
            Operation::DescribeTokens => 14,
        }
    }

    /// The operation of a concrete code.
    pub fn from_code(code: i8) -> Option<Operation> {
        Some(match code {
            2 => Operation::All,
            3 => Operation::Read,
            4 => Operation::Write,
            5 => Operation::Create,
            6 => Operation::Delete,
            7 => Operation::Alter,
            8 => Operation::Describe,
            9 => Operation::ClusterAction,
            10 => Operation::DescribeConfigs,
            11 => Operation::AlterConfigs,
            12 => Operation::IdempotentWrite,
            13 => Operation::CreateTokens,
            14 => Operation::DescribeTokens,
            _ => return None,
        })
    }

    /// The operations whose ALLOW also allows this one (Kafka's implied operations).
    fn allowed_by(self) -> &'static [Operation] {
        match self {
            Operation::Describe => &[
                Operation::Describe,
                Operation::Read,
                Operation::Write,
                Operation::Delete,
                Operation::Alter,
            ],
            Operation::DescribeConfigs => &[Operation::DescribeConfigs, Operation::AlterConfigs],
            Operation::Read => &[Operation::Read],
            Operation::Write => &[Operation::Write],
            Operation::Create => &[Operation::Create],
            Operation::Delete => &[Operation::Delete],
            Operation::Alter => &[Operation::Alter],
            Operation::ClusterAction => &[Operation::ClusterAction],
            Operation::AlterConfigs => &[Operation::AlterConfigs],
            Operation::IdempotentWrite => &[Operation::IdempotentWrite],
            Operation::CreateTokens => &[Operation::CreateTokens],
            Operation::DescribeTokens => &[Operation::DescribeTokens],
            Operation::All => &[],
        }
    }
}

/// ALLOW or DENY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Permission {
    /// Denies; wins over any ALLOW.
    Deny,
    /// Allows.
    Allow,
}

impl Permission {
    /// Kafka's code.
    pub fn code(self) -> i8 {
        match self {
            Permission::Deny => 2,
            Permission::Allow => 3,
        }
    }

    fn from_code(code: i8) -> Option<Permission> {
        match code {
            2 => Some(Permission::Deny),
            3 => Some(Permission::Allow),
            _ => None,
        }
    }
}

/// One ACL: a resource pattern and an access control entry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AclBinding {
    /// The resource type.
    pub resource_type: ResourceType,
    /// The resource name (or prefix).
    pub name: String,
    /// LITERAL or PREFIXED.
    pub pattern: PatternType,
    /// `User:alice`, or `User:*`.
    pub principal: String,
    /// An address, or `*`.
    pub host: String,
    /// The operation.
    pub operation: Operation,
    /// ALLOW or DENY.
    pub permission: Permission,
}

/// Why an ACL cannot be created (INVALID_REQUEST with this message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// An ACL from CreateAcls' codes, checked as Kafka checks them.
    #[allow(clippy::too_many_arguments)]
    pub fn from_codes(
        resource_type: i8,
        name: &str,
        pattern: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, InvalidAcl> {
        let bad = |what: String| Err(InvalidAcl(what));
        let Some(resource_type) = ResourceType::from_code(resource_type) else {
            return bad(format!("invalid resource type {resource_type}"));
        };
        let pattern = match pattern {
            3 => PatternType::Literal,
            4 => PatternType::Prefixed,
            p => return bad(format!("invalid pattern type {p}: LITERAL or PREFIXED")),
        };
        let Some(operation) = Operation::from_code(operation) else {
            return bad(format!("invalid operation {operation}"));
        };
        let Some(permission) = Permission::from_code(permission) else {
            return bad(format!(
                "invalid permission type {permission}: ALLOW or DENY"
            ));
        };
        if name.is_empty() {
            return bad("the resource name is empty".into());
        }
        if resource_type == ResourceType::Cluster && name != CLUSTER_NAME {
            return bad(format!("the cluster resource is named {CLUSTER_NAME}"));
        }
        match principal.split_once(':') {
            Some((kind, who)) if !kind.is_empty() && !who.is_empty() => {}
            _ => {
                return bad(format!(
                    "invalid principal {principal:?}: expected User:<name>"
                ));
            }
        }
        if host.is_empty() {
            return bad("the host is empty (use * for any)".into());
        }
        Ok(AclBinding {
            resource_type,
            name: name.to_string(),
            pattern,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        })
    }

    /// The ACL as the metadata log records it.
    pub fn to_entry(&self) -> strata_replication::controller::AclEntry {
        strata_replication::controller::AclEntry {
            resource_type: self.resource_type.code(),
            resource_name: self.name.clone(),
            pattern_type: self.pattern.code(),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: self.operation.code(),
            permission_type: self.permission.code(),
        }
    }

    /// An ACL from the metadata log (`None` if a code is not one this broker knows).
    pub fn from_entry(e: &strata_replication::controller::AclEntry) -> Option<AclBinding> {
        AclBinding::from_codes(
            e.resource_type,
            &e.resource_name,
            e.pattern_type,
            &e.principal,
            &e.host,
            e.operation,
            e.permission_type,
        )
        .ok()
    }

    /// Whether this ACL's pattern covers `name` of `resource_type`.
    fn covers(&self, resource_type: ResourceType, name: &str) -> bool {
        self.resource_type == resource_type
            && match self.pattern {
                PatternType::Literal => self.name == name || self.name == "*",
                PatternType::Prefixed => name.starts_with(&self.name),
            }
    }
}

/// A DescribeAcls or DeleteAcls filter, in Kafka's codes.
#[derive(Debug, Clone, Default)]
pub struct AclFilter {
    /// ANY (1) or a type.
    pub resource_type: i8,
    /// `None`: any name.
    pub name: Option<String>,
    /// ANY (1), MATCH (2), LITERAL (3) or PREFIXED (4).
    pub pattern: i8,
    /// `None`: any principal.
    pub principal: Option<String>,
    /// `None`: any host.
    pub host: Option<String>,
    /// ANY (1) or an operation.
    pub operation: i8,
    /// ANY (1) or a permission.
    pub permission: i8,
}

impl AclFilter {
    /// Whether the filter is one Kafka accepts: known codes, and no UNKNOWN (0).
    pub fn validate(&self) -> Result<(), InvalidAcl> {
        let ok = (self.resource_type == ANY
            || ResourceType::from_code(self.resource_type).is_some())
            && (1..=4).contains(&self.pattern)
            && (self.operation == ANY || Operation::from_code(self.operation).is_some())
            && (self.permission == ANY || Permission::from_code(self.permission).is_some());
        if ok {
            Ok(())
        } else {
            Err(InvalidAcl(format!("invalid ACL filter {self:?}")))
        }
    }

    /// Whether `acl` matches this filter.
    pub fn matches(&self, acl: &AclBinding) -> bool {
        let type_ok = self.resource_type == ANY || self.resource_type == acl.resource_type.code();
        let name_ok = match (&self.name, self.pattern) {
            (None, _) => true,
            (Some(n), PATTERN_MATCH) => acl.covers(acl.resource_type, n),
            (Some(n), _) => &acl.name == n,
        };
        let pattern_ok = match self.pattern {
            PATTERN_ANY | PATTERN_MATCH => true,
            p => p == acl.pattern.code(),
        };
        type_ok
            && name_ok
            && pattern_ok
            && self.principal.as_ref().is_none_or(|p| p == &acl.principal)
            && self.host.as_ref().is_none_or(|h| h == &acl.host)
            && (self.operation == ANY || self.operation == acl.operation.code())
            && (self.permission == ANY || self.permission == acl.permission.code())
    }
}

/// The broker's authorizer: its ACLs and settings.
#[derive(Debug, Default)]
pub struct Authorizer {
    /// Whether requests are authorized at all (`authorizer.class.name` set).
    pub enabled: bool,
    /// `super.users`: principals that may do everything.
    pub super_users: Vec<String>,
    /// `allow.everyone.if.no.acl.found`.
    pub allow_if_no_acl: bool,
    path: Option<PathBuf>,
    acls: RwLock<AclSet>,
}

/// The ACLs, indexed by what a check looks up: the literal names (with `*`) and the prefixes
/// of each resource type, so a check costs a few hash lookups however many ACLs there are
/// (a name of n characters looks up at most n prefixes).
#[derive(Debug, Default)]
struct AclSet {
    list: Vec<AclBinding>,
    literal: HashMap<ResourceType, HashMap<String, Vec<usize>>>,
    prefixed: HashMap<ResourceType, HashMap<String, Vec<usize>>>,
}

impl AclSet {
    fn new(list: Vec<AclBinding>) -> AclSet {
        let mut set = AclSet {
            list,
            ..Default::default()
        };
        for (i, a) in set.list.iter().enumerate() {
            let index = match a.pattern {
                PatternType::Literal => &mut set.literal,
                PatternType::Prefixed => &mut set.prefixed,
            };
            index
                .entry(a.resource_type)
                .or_default()
                .entry(a.name.clone())
                .or_default()
                .push(i);
        }
        set
    }

    /// The ACLs whose pattern covers `name` of `resource_type`.
    fn covering<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &'a str,
    ) -> impl Iterator<Item = &'a AclBinding> + 'a {
        let literal = self.literal.get(&resource_type);
        let exact = literal.and_then(|m| m.get(name)).into_iter().flatten();
        let wildcard = literal
            .filter(|_| name != "*")
            .and_then(|m| m.get("*"))
            .into_iter()
            .flatten();
        let prefixed = self.prefixed.get(&resource_type);
        let prefixes = prefixed
            .into_iter()
            .flat_map(move |m| {
                name.char_indices()
                    .map(|(i, c)| i + c.len_utf8())
                    .filter_map(move |end| m.get(&name[..end]))
            })
            .flatten();
        exact
            .chain(wildcard)
            .chain(prefixes)
            .map(move |&i| &self.list[i])
    }
}

/// The file of a standalone broker's ACLs.
pub const ACL_FILE: &str = "acls.json";

impl Authorizer {
    /// The authorizer of a data directory (its ACLs loaded; none if it has no file).
    pub fn open(
        data_dir: &Path,
        enabled: bool,
        super_users: Vec<String>,
        allow_if_no_acl: bool,
    ) -> Result<Authorizer, String> {
        let path = data_dir.join(ACL_FILE);
        let acls: Vec<AclBinding> = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| format!("{path:?}: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("{path:?}: {e}")),
        };
        Ok(Authorizer {
            enabled,
            super_users,
            allow_if_no_acl,
            path: Some(path),
            acls: RwLock::new(AclSet::new(acls)),
        })
    }

    /// The authorizer of a cluster member: its ACLs are the metadata image's ([`Self::sync`]),
    /// never a local file.
    pub fn replicated(
        enabled: bool,
        super_users: Vec<String>,
        allow_if_no_acl: bool,
    ) -> Authorizer {
        Authorizer {
            enabled,
            super_users,
            allow_if_no_acl,
            path: None,
            acls: RwLock::new(AclSet::default()),
        }
    }

    /// Takes the ACLs of a new metadata image (a no-op when they did not change).
    pub fn sync(
        &self,
        entries: &std::collections::BTreeSet<strata_replication::controller::AclEntry>,
    ) {
        let mut next: Vec<AclBinding> = entries
            .iter()
            .filter_map(|e| {
                let acl = AclBinding::from_entry(e);
                if acl.is_none() {
                    tracing::warn!(
                        ?e,
                        "an ACL of the metadata log has codes this broker does not know; ignored"
                    );
                }
                acl
            })
            .collect();
        next.sort();
        let mut acls = self.acls.write().unwrap_or_else(|p| p.into_inner());
        let mut current = acls.list.clone();
        current.sort();
        if current != next {
            *acls = AclSet::new(next);
        }
    }

    /// An authorizer that keeps its ACLs in memory only (tests).
    pub fn in_memory(super_users: Vec<String>, allow_if_no_acl: bool) -> Authorizer {
        Authorizer {
            enabled: true,
            super_users,
            allow_if_no_acl,
            path: None,
            acls: RwLock::new(AclSet::default()),
        }
    }

    /// Whether `principal` from `host` may do `operation` on `name` of `resource_type`.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.acls.read().unwrap_or_else(|p| p.into_inner());
        let mut any_for_resource = false;
        let mut allowed = false;
        for acl in acls.covering(resource_type, name) {
            debug_assert!(acl.covers(resource_type, name));
            any_for_resource = true;
            let who = acl.principal == principal || acl.principal == "User:*";
            let from = acl.host == "*" || acl.host == host;
            if !(who && from) {
                continue;
            }
            match acl.permission {
                Permission::Deny
                    if acl.operation == operation || acl.operation == Operation::All =>
                {
                    return false;
                }
                Permission::Deny => {}
                Permission::Allow => {
                    allowed |= acl.operation == Operation::All
                        || operation.allowed_by().contains(&acl.operation);
                }
            }
        }
        allowed || (!any_for_resource && self.allow_if_no_acl)
    }

    /// Whether `principal` may do `operation` on any resource of `resource_type` (Kafka's
    /// `authorizeByResourceType`: some ALLOW of a name, with no DENY of every name). Used for
    /// idempotent producers, which need WRITE on some topic.
    pub fn authorize_any(
        &self,
        principal: &str,
        host: &str,
        operation: Operation,
        resource_type: ResourceType,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|s| s == principal) {
            return true;
        }
        let acls = self.acls.read().unwrap_or_else(|p| p.into_inner());
        let applies = |a: &&AclBinding| {
            a.resource_type == resource_type
                && (a.principal == principal || a.principal == "User:*")
                && (a.host == "*" || a.host == host)
                && (a.operation == operation || a.operation == Operation::All)
        };
        let denied_everywhere = acls.list.iter().filter(applies).any(|a| {
            a.permission == Permission::Deny && a.pattern == PatternType::Literal && a.name == "*"
        });
        !denied_everywhere
            && acls
                .list
                .iter()
                .filter(applies)
                .any(|a| a.permission == Permission::Allow)
    }

    /// Adds ACLs (an ACL already there is not added twice) and makes them durable.
    pub fn create(&self, new: Vec<AclBinding>) -> Result<(), String> {
        let mut acls = self.acls.write().unwrap_or_else(|p| p.into_inner());
        let mut next = acls.list.clone();
        for a in new {
            if !next.contains(&a) {
                next.push(a);
            }
        }
        self.persist(&next)?;
        *acls = AclSet::new(next);
        Ok(())
    }

    /// The ACLs a filter matches.
    pub fn describe(&self, filter: &AclFilter) -> Vec<AclBinding> {
        let acls = self.acls.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<AclBinding> = acls
            .list
            .iter()
            .filter(|a| filter.matches(a))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Removes the ACLs each filter matches, durably; returns them per filter.
    pub fn delete(&self, filters: &[AclFilter]) -> Result<Vec<Vec<AclBinding>>, String> {
        let mut acls = self.acls.write().unwrap_or_else(|p| p.into_inner());
        let removed: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| acls.list.iter().filter(|a| f.matches(a)).cloned().collect())
            .collect();
        let next: Vec<AclBinding> = acls
            .list
            .iter()
            .filter(|a| !filters.iter().any(|f| f.matches(a)))
            .cloned()
            .collect();
        self.persist(&next)?;
        *acls = AclSet::new(next);
        Ok(removed)
    }

    fn persist(&self, acls: &[AclBinding]) -> Result<(), String> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let json = serde_json::to_vec_pretty(acls).map_err(|e| e.to_string())?;
        let dir = path.parent().unwrap_or(Path::new("."));
        crate::broker::atomic_write(dir, ACL_FILE, &json).map_err(|e| format!("{path:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        t: ResourceType,
        name: &str,
        pattern: PatternType,
        principal: &str,
        op: Operation,
        permission: Permission,
    ) -> AclBinding {
        AclBinding {
            resource_type: t,
            name: name.into(),
            pattern,
            principal: principal.into(),
            host: "*".into(),
            operation: op,
            permission,
        }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn deny_wins_implied_operations_and_patterns() {
        let a = Authorizer::in_memory(vec!["User:admin".into()], false);
        a.create(vec![
            acl(Topic, "orders", Literal, "User:alice", Read, Allow),
            acl(Topic, "logs-", Prefixed, "User:alice", Write, Allow),
            acl(Topic, "logs-secret", Literal, "User:alice", Write, Deny),
            acl(Topic, "*", Literal, "User:bob", All, Allow),
            acl(Topic, "orders", Literal, "User:bob", Read, Deny),
        ])
        .unwrap();
        let can = |p: &str, op, name: &str| a.authorize(p, "127.0.0.1", op, Topic, name);
        assert!(can("User:alice", Read, "orders"));
        assert!(
            can("User:alice", Describe, "orders"),
            "READ implies DESCRIBE"
        );
        assert!(!can("User:alice", Write, "orders"));
        assert!(can("User:alice", Write, "logs-app"), "prefixed");
        assert!(!can("User:alice", Write, "logs-secret"), "deny wins");
        assert!(
            can("User:alice", Describe, "logs-secret"),
            "a DENY of WRITE denies only WRITE"
        );
        assert!(!can("User:alice", Read, "other"), "no ACL of hers: denied");
        assert!(can("User:bob", Write, "anything"), "ALL on *");
        assert!(!can("User:bob", Read, "orders"), "deny wins over ALL");
        assert!(can("User:admin", Delete, "orders"), "a super user");
        assert!(
            !can("User:carol", Read, "untouched"),
            "no ACL at all: denied by default"
        );
        let open = Authorizer::in_memory(vec![], true);
        assert!(open.authorize("User:carol", "h", Read, Topic, "untouched"));
        assert!(a.authorize_any("User:alice", "h", Write, Topic));
        assert!(!a.authorize_any("User:carol", "h", Write, Topic));
    }

    /// The index finds exactly the ACLs a scan of all of them finds.
    #[test]
    fn the_index_finds_what_a_scan_finds() {
        let names = ["a", "ab", "abc", "b", "*", "é", "éx", "orders", "ord"];
        let mut list = Vec::new();
        for (i, n) in names.iter().enumerate() {
            for t in [Topic, Group] {
                let pattern = if i % 2 == 0 { Literal } else { Prefixed };
                list.push(acl(t, n, pattern, "User:x", Read, Allow));
                list.push(acl(t, n, Literal, "User:y", Write, Deny));
                list.push(acl(t, n, Prefixed, "User:z", All, Allow));
            }
        }
        let set = AclSet::new(list.clone());
        for t in [Topic, Group, Cluster] {
            for n in names.iter().chain(["abcd", "x", "ordersé", ""].iter()) {
                let mut found: Vec<&AclBinding> = set.covering(t, n).collect();
                let mut scanned: Vec<&AclBinding> =
                    list.iter().filter(|a| a.covers(t, n)).collect();
                found.sort();
                scanned.sort();
                assert_eq!(found, scanned, "{t:?} {n:?}");
            }
        }
    }

    #[test]
    fn hosts_and_wildcard_principals() {
        let a = Authorizer::in_memory(vec![], false);
        let mut only_local = acl(Group, "g", Literal, "User:*", Read, Allow);
        only_local.host = "127.0.0.1".into();
        a.create(vec![only_local]).unwrap();
        assert!(a.authorize("User:x", "127.0.0.1", Read, Group, "g"));
        assert!(!a.authorize("User:x", "10.0.0.1", Read, Group, "g"));
    }

    #[test]
    fn filters_match_as_kafka_describes_and_deletes() {
        let a = Authorizer::in_memory(vec![], false);
        a.create(vec![
            acl(Topic, "orders", Literal, "User:alice", Read, Allow),
            acl(Topic, "ord", Prefixed, "User:alice", Write, Allow),
            acl(Group, "g", Literal, "User:alice", Read, Allow),
        ])
        .unwrap();
        let all = AclFilter {
            resource_type: 1,
            pattern: 1,
            operation: 1,
            permission: 1,
            ..Default::default()
        };
        assert_eq!(a.describe(&all).len(), 3);
        let matching = AclFilter {
            resource_type: Topic.code(),
            name: Some("orders".into()),
            pattern: 2,
            ..all.clone()
        };
        assert_eq!(
            a.describe(&matching).len(),
            2,
            "MATCH: literal and prefixed"
        );
        let literal = AclFilter {
            pattern: 3,
            ..matching.clone()
        };
        assert_eq!(a.describe(&literal).len(), 1);
        let removed = a.delete(&[literal]).unwrap();
        assert_eq!(removed[0].len(), 1);
        assert_eq!(a.describe(&all).len(), 2);
        assert!(AclBinding::from_codes(4, "x", 3, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_codes(2, "t", 1, "User:a", "*", 3, 3).is_err());
        assert!(AclBinding::from_codes(2, "t", 3, "alice", "*", 3, 3).is_err());
        assert!(AclBinding::from_codes(2, "t", 3, "User:a", "*", 3, 3).is_ok());
    }
}
