"""kafka-python over TLS against Strata's SSL listener (mutual TLS), and what is refused there.
Usage: kafka_python_tls.py CERT_DIR SSL_BOOTSTRAP PLAIN_BOOTSTRAP"""
import os
import sys

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError

certs, ssl_bootstrap, plain_bootstrap = sys.argv[1], sys.argv[2], sys.argv[3]


def path(name):
    return os.path.join(certs, name)


def tls(**extra):
    base = dict(
        bootstrap_servers=ssl_bootstrap,
        security_protocol="SSL",
        ssl_cafile=path("ca.pem"),
        ssl_certfile=path("client.crt"),
        ssl_keyfile=path("client.key"),
        bootstrap_timeout_ms=3000,
    )
    base.update(extra)
    return base


# 1. Mutual TLS: create, produce with acks=all, consume in a group.
admin = KafkaAdminClient(**tls(client_id="tls-admin"))
admin.create_topics([NewTopic("tls-topic", num_partitions=2, replication_factor=1)])
brokers = admin._client.cluster.brokers()
ssl_port = int(ssl_bootstrap.rsplit(":", 1)[1])
assert [b.port for b in brokers] == [ssl_port], ("metadata names the SSL listener", brokers)
admin.close()

producer = KafkaProducer(**tls(acks="all", linger_ms=5))
sent = set()
for i in range(300):
    md = producer.send("tls-topic", key=b"k%d" % (i % 5), value=b"secret-%d" % i).get(timeout=30)
    sent.add(b"secret-%d" % i)
producer.close()

consumer = KafkaConsumer(
    "tls-topic",
    **tls(group_id="tls-group", auto_offset_reset="earliest", consumer_timeout_ms=10000),
)
got = set()
for m in consumer:
    got.add(m.value)
    if len(got) == len(sent):
        break
consumer.close()
assert got == sent, (len(got), len(sent))
print("tls: mutual TLS ok %d records" % len(got))


def refused(what, **config):
    try:
        p = KafkaProducer(**config)
    except KafkaError as e:
        # kafka-python cannot complete its first request: no broker it could talk to.
        print("tls: refused %s (%s)" % (what, type(e).__name__))
        return
    p.close()
    raise AssertionError("%s was served" % what)


# 2. What the SSL listener refuses.
refused("a client without a certificate", **tls(ssl_certfile=None, ssl_keyfile=None))
refused(
    "a certificate from another CA",
    **tls(ssl_certfile=path("rogue.crt"), ssl_keyfile=path("rogue.key")),
)
refused("a plaintext client", bootstrap_servers=ssl_bootstrap, bootstrap_timeout_ms=3000)
# 3. And the client refuses a broker its CA did not sign.
refused("a broker certificate the client's CA did not sign", **tls(ssl_cafile=path("rogue-ca.pem")))

# 4. The plaintext listener still serves, and names itself.
plain_port = int(plain_bootstrap.rsplit(":", 1)[1])
producer = KafkaProducer(bootstrap_servers=plain_bootstrap, acks="all")
producer.send("tls-topic", value=b"plain").get(timeout=30)
assert [b.port for b in producer._metadata.brokers()] == [plain_port], producer._metadata.brokers()
producer.close()
print("tls: ok")
