"""kafka-python against a Strata broker with ACLs (Kafka's model), over SASL PLAIN: a super
user manages ACLs with CreateAcls/DescribeAcls/DeleteAcls; other users may do exactly what
their ACLs allow, and are told TOPIC_/GROUP_/CLUSTER_AUTHORIZATION_FAILED otherwise.
Usage: kafka_python_acls.py BOOTSTRAP PHASE   (PHASE: setup, or after-restart)"""
import sys

import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    NewTopic,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)

bootstrap, phase = sys.argv[1], sys.argv[2]


def as_user(user, **extra):
    base = dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username=user,
        sasl_plain_password=user + "-secret",
        bootstrap_timeout_ms=5000,
    )
    base.update(extra)
    return base


def allow(user, op, rtype, name, pattern=ACLResourcePatternType.LITERAL, perm=ACLPermissionType.ALLOW):
    return ACL(
        principal="User:" + user,
        host="*",
        operation=op,
        permission_type=perm,
        resource_pattern=ResourcePattern(rtype, name, pattern),
    )


def expect(error, what, fn):
    try:
        fn()
    except error as e:
        print("acls: %s refused (%s)" % (what, type(e).__name__))
        return
    except Errors.KafkaError as e:
        # Clients wrap some errors: accept the one asked for inside another.
        if isinstance(getattr(e, "__cause__", None), error) or error.__name__ in repr(e):
            print("acls: %s refused (%s)" % (what, error.__name__))
            return
        raise AssertionError("%s: %r, expected %s" % (what, e, error.__name__))
    raise AssertionError("%s was allowed" % what)


def produce(user, topic, value):
    p = KafkaProducer(acks="all", max_block_ms=5000, retries=0, **as_user(user))
    try:
        p.send(topic, value=value).get(timeout=10)
    finally:
        p.close(timeout=2)


def consume(user, topic, group, n):
    c = KafkaConsumer(
        topic,
        group_id=group,
        auto_offset_reset="earliest",
        consumer_timeout_ms=8000,
        **as_user(user),
    )
    try:
        got = []
        for m in c:
            got.append(m.value)
            if len(got) == n:
                break
        c.commit()
        return got
    finally:
        c.close()


admin = KafkaAdminClient(**as_user("admin"))

if phase == "setup":
    admin.create_topics(
        [NewTopic(t, num_partitions=1, replication_factor=1) for t in ("orders", "payments")]
    )
    result = admin.create_acls(
        [
            allow("alice", ACLOperation.WRITE, ResourceType.TOPIC, "orders"),
            allow("alice", ACLOperation.READ, ResourceType.TOPIC, "orders"),
            allow("alice", ACLOperation.READ, ResourceType.GROUP, "alice-", ACLResourcePatternType.PREFIXED),
            allow("alice", ACLOperation.WRITE, ResourceType.TOPIC, "logs-", ACLResourcePatternType.PREFIXED),
        ]
    )
    assert len(result["succeeded"]) == 4 and not result["failed"], result
    # An invalid ACL is refused on its own (the cluster resource has one name).
    bad = admin.create_acls([allow("bob", ACLOperation.ALTER, ResourceType.CLUSTER, "not-the-cluster")])
    assert not bad["succeeded"] and bad["failed"], bad
    print("acls: created")

    # alice: what her ACLs allow.
    produce("alice", "orders", b"o-1")
    produce("alice", "orders", b"o-2")
    expect(Errors.TopicAuthorizationFailedError, "alice producing to payments",
           lambda: produce("alice", "payments", b"x"))
    got = consume("alice", "orders", "alice-readers", 2)
    assert got == [b"o-1", b"o-2"], got
    expect(Errors.GroupAuthorizationFailedError, "alice consuming in another group",
           lambda: consume("alice", "orders", "other-group", 1))
    a = KafkaAdminClient(**as_user("alice"))
    topics = set(a.list_topics())
    assert topics == {"orders"}, ("alice sees only what she may describe", topics)
    # KIP-430: what she may do to the topic, as the authorizer says (DESCRIBE implied).
    described = a.describe_topics(["orders"])[0]
    ops = next(v for k, v in described.items() if k.endswith("authorized_operations"))
    assert set(ops) == {"READ", "WRITE", "DESCRIBE"}, described
    admin_ops = next(
        v for k, v in admin.describe_topics(["orders"])[0].items() if k.endswith("authorized_operations")
    )
    assert {"ALTER", "DELETE", "ALTER_CONFIGS"} <= set(admin_ops), admin_ops
    print("acls: authorized operations", sorted(ops))
    expect(Errors.TopicAuthorizationFailedError, "alice creating a topic",
           lambda: a.create_topics([NewTopic("alice-new", 1, 1)]))
    expect(Errors.ClusterAuthorizationFailedError, "alice describing ACLs",
           lambda: a.describe_acls(ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                                             ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))))
    a.close()

    # bob: nothing.
    expect(Errors.TopicAuthorizationFailedError, "bob producing to orders",
           lambda: produce("bob", "orders", b"x"))

    # A DENY wins over her ALLOW.
    admin.create_acls([allow("alice", ACLOperation.READ, ResourceType.TOPIC, "orders", perm=ACLPermissionType.DENY)])
    expect(Errors.TopicAuthorizationFailedError, "alice reading orders under a DENY",
           lambda: consume("alice", "orders", "alice-readers-2", 1))
    # ... and goes away with DeleteAcls.
    deleted = admin.delete_acls(
        [ACLFilter("User:alice", None, ACLOperation.READ, ACLPermissionType.DENY,
                   ResourcePatternFilter(ResourceType.TOPIC, "orders", ACLResourcePatternType.LITERAL))]
    )
    assert len(deleted) == 1 and len(deleted[0][1]) == 1, deleted
    print("acls: setup ok")
else:
    # After a restart the ACLs are still there.
    acls, err = admin.describe_acls(
        ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                  ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    )
    assert len(acls) == 4, acls
    matching, _ = admin.describe_acls(
        ACLFilter(None, None, ACLOperation.ANY, ACLPermissionType.ANY,
                  ResourcePatternFilter(ResourceType.TOPIC, "logs-app", ACLResourcePatternType.MATCH))
    )
    assert len(matching) == 1 and matching[0].resource_pattern.resource_name == "logs-", matching
    produce("alice", "orders", b"o-3")
    expect(Errors.TopicAuthorizationFailedError, "bob producing after the restart",
           lambda: produce("bob", "orders", b"x"))
    print("acls: after restart ok")
admin.close()
