"""kafka-python against a 3-node Strata cluster with an authorizer, over SASL_SSL: SCRAM users
and ACLs created through one broker are in force on the others (they travel through the
metadata quorum), and survive the whole cluster being killed and restarted.
`setup BOOTSTRAP1 BOOTSTRAP2 BOOTSTRAP3`: admin (PLAIN, a super user) adds SCRAM user bob and
his ACLs through node 1; bob (SCRAM-SHA-512) produces and consumes through node 2 only, is
refused another topic, and loses his read through a DeleteAcls on node 3.
`after-restart BOOTSTRAP`: bob still logs in, may still write, may no longer read.
Usage: kafka_python_cluster_acls.py CA_FILE PHASE BOOTSTRAP..."""
import sys
import time

import kafka.errors as Errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
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
    ScramMechanism,
    UserScramCredentialUpsertion,
)

cafile, phase = sys.argv[1], sys.argv[2]
nodes = sys.argv[3:]


def admin_on(bootstrap):
    return dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=cafile,
        sasl_mechanism="PLAIN",
        sasl_plain_username="admin",
        sasl_plain_password="admin-secret",
    )


def bob_on(bootstrap):
    return dict(
        bootstrap_servers=bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=cafile,
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="bob",
        sasl_plain_password="bob-secret",
    )


def acl(op, rtype, name):
    return ACL(
        principal="User:bob",
        host="*",
        operation=op,
        permission_type=ACLPermissionType.ALLOW,
        resource_pattern=ResourcePattern(rtype, name, ACLResourcePatternType.LITERAL),
    )


def produce(bootstrap, topic, value):
    p = KafkaProducer(acks="all", retries=20, max_block_ms=15000, **bob_on(bootstrap))
    try:
        p.send(topic, value=value).get(timeout=30)
    finally:
        p.close()


def consume_one(bootstrap, topic):
    c = KafkaConsumer(consumer_timeout_ms=10000, **bob_on(bootstrap))
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        for m in c:
            return m.value
        raise AssertionError("nothing read from %s" % topic)
    finally:
        c.close()


def refused(what, error, fn, within=10.0):
    """Expects `error` from fn, retried until `within` seconds pass (a change made through
    another broker reaches this one within milliseconds)."""
    deadline = time.time() + within
    while True:
        try:
            fn()
        except Errors.KafkaError as e:
            if isinstance(e, error) or error.__name__ in repr(e):
                print("cluster-acls: %s refused (%s)" % (what, error.__name__))
                return
            raise
        if time.time() > deadline:
            raise AssertionError("%s was allowed" % what)
        time.sleep(0.2)


if phase == "setup":
    one, two, three = nodes
    admin = KafkaAdminClient(**admin_on(one))
    r = admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("bob", ScramMechanism.SCRAM_SHA_512, "bob-secret")]
    )
    assert r == {"bob": None}, r
    admin.create_topics([NewTopic("secured", 1, 3), NewTopic("other", 1, 3)])
    result = admin.create_acls(
        [
            acl(ACLOperation.WRITE, ResourceType.TOPIC, "secured"),
            acl(ACLOperation.READ, ResourceType.TOPIC, "secured"),
        ]
    )
    assert not result["failed"], result
    admin.close()
    # Through another broker: the credential and the ACLs are there.
    produce(two, "secured", b"from bob")
    assert consume_one(two, "secured") == b"from bob"
    print("cluster-acls: bob writes and reads through node 2")
    refused("bob writing another topic", Errors.TopicAuthorizationFailedError,
            lambda: produce(two, "other", b"x"))
    admin3 = KafkaAdminClient(**admin_on(three))
    acls, _ = admin3.describe_acls(
        ACLFilter("User:bob", None, ACLOperation.ANY, ACLPermissionType.ANY,
                  ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY))
    )
    assert len(acls) == 2, acls
    deleted = admin3.delete_acls(
        [ACLFilter("User:bob", None, ACLOperation.READ, ACLPermissionType.ANY,
                   ResourcePatternFilter(ResourceType.TOPIC, "secured", ACLResourcePatternType.LITERAL))]
    )
    assert len(deleted) == 1 and len(deleted[0][1]) == 1, deleted
    admin3.close()
    refused("bob reading after his READ was deleted on node 3", Errors.TopicAuthorizationFailedError,
            lambda: consume_one(two, "secured"))
    print("cluster-acls: setup ok")
elif phase == "after-restart":
    (bootstrap,) = nodes
    produce(bootstrap, "secured", b"after restart")
    print("cluster-acls: bob still writes")
    refused("bob reading", Errors.TopicAuthorizationFailedError,
            lambda: consume_one(bootstrap, "secured"))
    print("cluster-acls: after-restart ok")
else:
    sys.exit("unknown phase " + phase)
