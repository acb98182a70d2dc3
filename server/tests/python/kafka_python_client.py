"""A second, independent Kafka client against Strata: kafka-python (pure Python, its own
protocol implementation). Produces with acks=all, consumes in a group, commits, and checks that
a new consumer of the group resumes at the commit. Usage: kafka_python_client.py HOST:PORT"""
import sys
import time

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = sys.argv[1]
topic = "py-topic"

admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-admin")
admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
assert topic in admin.list_topics(), admin.list_topics()

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
sent = {}
for i in range(200):
    md = producer.send(topic, key=b"k%d" % (i % 7), value=b"value-%d" % i).get(timeout=30)
    sent[(md.partition, md.offset)] = b"value-%d" % i
producer.flush()
producer.close()

consumer = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id="py-group",
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=10000,
)
got = {}
for m in consumer:
    got[(m.partition, m.offset)] = m.value
    if len(got) == 150:
        break
assert len(got) == 150, len(got)
for k, v in got.items():
    assert sent[k] == v, (k, v)
consumer.commit()
committed = {tp: consumer.committed(tp) for tp in consumer.assignment()}
consumer.close()

# A new member of the group resumes exactly after what was committed.
consumer = KafkaConsumer(
    topic,
    bootstrap_servers=bootstrap,
    group_id="py-group",
    auto_offset_reset="earliest",
    enable_auto_commit=False,
    consumer_timeout_ms=10000,
)
rest = {}
for m in consumer:
    rest[(m.partition, m.offset)] = m.value
    if len(got) + len(rest) == 200:
        break
consumer.close()
assert not (set(rest) & set(got)), "re-delivered committed records"
assert set(rest) | set(got) == set(sent), "every record consumed once"
for tp, off in committed.items():
    assert all(o >= off for (p, o) in rest if p == tp.partition), (tp, off)
print("kafka-python: ok", len(sent), "records")
