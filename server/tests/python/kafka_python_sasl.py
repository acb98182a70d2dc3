"""kafka-python over SASL against Strata: PLAIN on a SASL_PLAINTEXT listener (users from the
listener's JAAS text), SCRAM-SHA-512 and SCRAM-SHA-256 on a SASL_SSL listener (users stored by
`strata scram add`), and what is refused: a wrong password, an unknown user, a mechanism the
broker does not enable, a client that skips SASL.
Usage: kafka_python_sasl.py CERT_DIR SASL_PLAINTEXT_BOOTSTRAP SASL_SSL_BOOTSTRAP"""
import os
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

certs, plain_bootstrap, ssl_bootstrap = sys.argv[1], sys.argv[2], sys.argv[3]


def sasl_plain(user, password, **extra):
    base = dict(
        bootstrap_servers=plain_bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_plain_username=user,
        sasl_plain_password=password,
        bootstrap_timeout_ms=3000,
    )
    base.update(extra)
    return base


def sasl_ssl(mechanism, user, password, **extra):
    base = dict(
        bootstrap_servers=ssl_bootstrap,
        security_protocol="SASL_SSL",
        ssl_cafile=os.path.join(certs, "ca.pem"),
        sasl_mechanism=mechanism,
        sasl_plain_username=user,
        sasl_plain_password=password,
        bootstrap_timeout_ms=3000,
    )
    base.update(extra)
    return base


def round_trip(label, topic, config):
    admin = KafkaAdminClient(**config)
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    admin.close()
    producer = KafkaProducer(acks="all", linger_ms=5, **config)
    sent = set()
    for i in range(200):
        producer.send(topic, key=b"k%d" % (i % 4), value=b"%s-%d" % (label.encode(), i)).get(
            timeout=30
        )
        sent.add(b"%s-%d" % (label.encode(), i))
    producer.close()
    consumer = KafkaConsumer(
        topic,
        group_id=topic + "-group",
        auto_offset_reset="earliest",
        consumer_timeout_ms=10000,
        **config,
    )
    got = set()
    for m in consumer:
        got.add(m.value)
        if len(got) == len(sent):
            break
    consumer.close()
    assert got == sent, (label, len(got), len(sent))
    print("sasl: %s ok %d records" % (label, len(got)))


round_trip("PLAIN", "sasl-plain", sasl_plain("alice", "alice-secret"))
round_trip("SCRAM-SHA-512", "sasl-scram512", sasl_ssl("SCRAM-SHA-512", "bob", "bob-secret"))
round_trip("SCRAM-SHA-256", "sasl-scram256", sasl_ssl("SCRAM-SHA-256", "carol", "carol-secret"))


def refused(what, **config):
    p = None
    try:
        p = KafkaProducer(max_block_ms=4000, **config)
        p.send("sasl-plain", value=b"must not land").get(timeout=5)
    except KafkaError as e:
        print("sasl: refused %s (%s)" % (what, type(e).__name__))
        return
    finally:
        if p is not None:
            p.close(timeout=1)
    raise AssertionError("%s was served" % what)


refused("a wrong PLAIN password", **sasl_plain("alice", "wrong"))
refused("an unknown PLAIN user", **sasl_plain("mallory", "alice-secret"))
refused("a wrong SCRAM-SHA-512 password", **sasl_ssl("SCRAM-SHA-512", "bob", "wrong"))
# carol has only a SCRAM-SHA-256 credential.
refused("a mechanism the user has no credential for", **sasl_ssl("SCRAM-SHA-512", "carol", "carol-secret"))
# PLAIN users are per listener: the SASL_SSL listener has none.
refused("PLAIN on a listener without PLAIN users", **sasl_ssl("PLAIN", "alice", "alice-secret"))
refused(
    "a client that skips SASL",
    bootstrap_servers=plain_bootstrap,
    bootstrap_timeout_ms=3000,
)
# SCRAM users managed online (KIP-554): bob adds erin, she connects, bob removes her.
from kafka.admin import ScramMechanism, UserScramCredentialDeletion, UserScramCredentialUpsertion

admin = KafkaAdminClient(**sasl_ssl("SCRAM-SHA-512", "bob", "bob-secret"))
r = admin.alter_user_scram_credentials(
    [UserScramCredentialUpsertion("erin", ScramMechanism.SCRAM_SHA_512, "erin-secret", iterations=8192)]
)
assert r == {"erin": None}, r
described = admin.describe_user_scram_credentials()
assert described["erin"]["credential_infos"] == [
    {"mechanism": ScramMechanism.SCRAM_SHA_512, "iterations": 8192}
], described
assert set(described) == {"bob", "carol", "erin"}, described
p = KafkaProducer(acks="all", **sasl_ssl("SCRAM-SHA-512", "erin", "erin-secret"))
p.send("sasl-scram512", value=b"from erin").get(timeout=30)
p.close()
r = admin.alter_user_scram_credentials([UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_512)])
assert r == {"erin": None}, r
# Deleting it again: RESOURCE_NOT_FOUND, said per user.
r = admin.alter_user_scram_credentials([UserScramCredentialDeletion("erin", ScramMechanism.SCRAM_SHA_512)])
assert r["erin"] is not None, r
admin.close()
refused("a user whose credential was deleted", **sasl_ssl("SCRAM-SHA-512", "erin", "erin-secret"))
print("sasl: KIP-554 ok")

# Nothing the refused clients sent landed.
consumer = KafkaConsumer(
    "sasl-plain",
    auto_offset_reset="earliest",
    consumer_timeout_ms=5000,
    **sasl_plain("alice", "alice-secret"),
)
values = [m.value for m in consumer]
consumer.close()
assert len(values) == 200 and b"must not land" not in values, len(values)
print("sasl: ok")
