//! The cost of an ACL check (`strata_server::acl::Authorizer::authorize`), which the broker
//! makes once per topic of each produce and fetch request: with the authorizer off, with 10
//! ACLs, and with 1,000 ACLs (900 literal topic ACLs of other users, 50 prefixed ones, 50 group
//! ACLs, and the one that allows). Compare the figure with a produce request's cost on the
//! same machine (`strata-bench run` reports the broker's CPU per 1M messages).
//!
//! `cargo bench -p strata-bench --bench authorizer -- --test` runs each once (CI does).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use strata_server::acl::{
    AclBinding, Authorizer, Operation, PatternType, Permission, ResourceType,
};

fn acl(
    t: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    op: Operation,
) -> AclBinding {
    AclBinding {
        resource_type: t,
        name: name.into(),
        pattern,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: Permission::Allow,
    }
}

fn authorizer(n: usize) -> Authorizer {
    let a = Authorizer::in_memory(vec!["User:admin".into()], false);
    let mut acls = vec![acl(
        ResourceType::Topic,
        "orders",
        PatternType::Literal,
        "User:alice",
        Operation::Write,
    )];
    for i in 0..n.saturating_sub(1) {
        let user = format!("User:u{}", i % 37);
        acls.push(match i % 20 {
            0 => acl(
                ResourceType::Topic,
                &format!("team-{i}-"),
                PatternType::Prefixed,
                &user,
                Operation::Read,
            ),
            1 => acl(
                ResourceType::Group,
                &format!("group-{i}"),
                PatternType::Literal,
                &user,
                Operation::Read,
            ),
            _ => acl(
                ResourceType::Topic,
                &format!("topic-{i}"),
                PatternType::Literal,
                &user,
                Operation::Write,
            ),
        });
    }
    a.create(acls).expect("in memory");
    a
}

fn checks(c: &mut Criterion) {
    let mut g = c.benchmark_group("authorize");
    let off = Authorizer::default();
    g.bench_function("off", |b| {
        b.iter(|| {
            black_box(off.authorize(
                "User:alice",
                "127.0.0.1",
                Operation::Write,
                ResourceType::Topic,
                black_box("orders"),
            ))
        })
    });
    for n in [10usize, 1000] {
        let a = authorizer(n);
        assert!(a.authorize(
            "User:alice",
            "127.0.0.1",
            Operation::Write,
            ResourceType::Topic,
            "orders"
        ));
        g.bench_with_input(BenchmarkId::new("allowed", n), &a, |b, a| {
            b.iter(|| {
                black_box(a.authorize(
                    "User:alice",
                    "127.0.0.1",
                    Operation::Write,
                    ResourceType::Topic,
                    black_box("orders"),
                ))
            })
        });
        g.bench_with_input(BenchmarkId::new("denied", n), &a, |b, a| {
            b.iter(|| {
                black_box(a.authorize(
                    "User:alice",
                    "127.0.0.1",
                    Operation::Write,
                    ResourceType::Topic,
                    black_box("payments-eu-west"),
                ))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
