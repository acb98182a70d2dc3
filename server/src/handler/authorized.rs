//! Authorized operations (KIP-430) as Metadata, DescribeGroups and DescribeCluster return them
//! when a client asks (`include_*_authorized_operations`): a bit field with bit `op` set for
//! every ACL operation the principal may perform on the resource. Without an authorizer every
//! operation Kafka defines for the resource type is allowed, as Kafka reports without one; with
//! one, [`for_resource`] asks it for each. Operation codes (Kafka's `AclOperation`): READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7,
//! DESCRIBE 8, CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.

const fn bits(ops: &[u8]) -> i32 {
    let mut out = 0i32;
    let mut i = 0;
    while i < ops.len() {
        out |= 1 << ops[i];
        i += 1;
    }
    out
}

/// A topic: READ, WRITE, CREATE, DELETE, ALTER, DESCRIBE, DESCRIBE_CONFIGS, ALTER_CONFIGS.
pub const TOPIC: i32 = bits(&[3, 4, 5, 6, 7, 8, 10, 11]);
/// A group: READ, DELETE, DESCRIBE.
pub const GROUP: i32 = bits(&[3, 6, 8]);
/// The cluster: CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS,
/// IDEMPOTENT_WRITE.
pub const CLUSTER: i32 = bits(&[5, 7, 8, 9, 10, 11, 12]);

const _: () = assert!(TOPIC == 3576 && GROUP == 328 && CLUSTER == 8096);

/// The operations of `all` (one of the sets above) the request's principal may perform on
/// `name` of `resource_type`.
pub fn for_resource(
    ctx: &super::Context,
    resource_type: crate::acl::ResourceType,
    name: &str,
    all: i32,
) -> i32 {
    if !ctx.acl.enabled {
        return all;
    }
    (0..31)
        .filter(|bit| all & (1 << bit) != 0)
        .filter(|bit| {
            crate::acl::Operation::from_code(*bit as i8)
                .is_some_and(|op| ctx.allows(op, resource_type, name))
        })
        .fold(0, |out, bit| out | (1 << bit))
}

/// A group's authorized operations when the request asks for them (`include`), else
/// `i32::MIN` (Kafka's "not requested"): DescribeGroups and ConsumerGroupDescribe.
pub fn group(ctx: &super::Context, include: bool, group: &str) -> i32 {
    if include {
        for_resource(ctx, crate::acl::ResourceType::Group, group, GROUP)
    } else {
        i32::MIN
    }
}
