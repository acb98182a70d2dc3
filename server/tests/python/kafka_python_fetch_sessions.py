"""kafka-python's consumer, which uses incremental fetch sessions (KIP-227), reading three
partitions in many small fetches while a producer keeps writing to one of them: every record
arrives once, in order per partition. Usage: kafka_python_fetch_sessions.py HOST:PORT"""
import sys
import threading

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = sys.argv[1]
topic = "py-sessions"
admin = KafkaAdminClient(bootstrap_servers=bootstrap)
admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
admin.close()

producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, batch_size=100)
per_partition = {0: 600, 1: 600, 2: 600}
for p, n in per_partition.items():
    for i in range(n):
        producer.send(topic, value=b"%d-%d" % (p, i), partition=p)
producer.flush()

# More records for partition 2 while the consumer reads: incremental answers carry data for
# some partitions and not others.
late = 400
late_from = per_partition[2]


def write_late():
    for i in range(late_from, late_from + late):
        producer.send(topic, value=b"2-%d" % i, partition=2)
    producer.flush()


writer = threading.Thread(target=write_late)
consumer = KafkaConsumer(
    bootstrap_servers=bootstrap,
    enable_auto_commit=False,
    max_partition_fetch_bytes=2048,
    fetch_max_wait_ms=50,
    consumer_timeout_ms=15000,
)
consumer.assign([TopicPartition(topic, p) for p in per_partition])
consumer.seek_to_beginning()
per_partition[2] += late
want = sum(per_partition.values())
got = {p: [] for p in per_partition}
count = 0
writer.start()
for m in consumer:
    got[m.partition].append((m.offset, m.value))
    count += 1
    if count == want:
        break
writer.join()
consumer.close()
producer.close()
for p, n in per_partition.items():
    assert [o for o, _ in got[p]] == list(range(n)), (p, len(got[p]))
    assert [v for _, v in got[p]] == [b"%d-%d" % (p, i) for i in range(n)], p
print("kafka-python: fetch sessions ok", count)
