"""kafka-python's newer admin calls against Strata: describe_topic_partitions (KIP-966) paged
with its cursor, and describe_producers (KIP-664) after an idempotent producer's sends.
Usage: kafka_python_admin.py HOST:PORT"""
import sys

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-admin-new")
admin.create_topics([
    NewTopic("py-pages-a", num_partitions=3, replication_factor=1),
    NewTopic("py-pages-b", num_partitions=2, replication_factor=1),
])

# Two partitions a page, following the cursor: every partition once, in order.
seen, cursor, pages = [], None, 0
while True:
    page = admin.describe_topic_partitions(
        ["py-pages-b", "py-pages-a"], response_partition_limit=2, cursor=cursor)
    pages += 1
    in_page = 0
    for t in page["topics"]:
        assert t["error_code"] == 0, t
        for p in t["partitions"]:
            seen.append((t["name"], p["partition_index"]))
            assert p["leader_id"] == 1 and p["replica_nodes"] == [1], p
            in_page += 1
    assert in_page <= 2, page
    cursor = page["next_cursor"]
    if cursor is None:
        break
    assert pages < 10, "the cursor ends"
expected = [("py-pages-a", i) for i in range(3)] + [("py-pages-b", i) for i in range(2)]
assert seen == expected, seen
assert pages == 3, pages

producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, acks="all")
for i in range(7):
    producer.send("py-pages-a", value=b"v%d" % i, partition=1).get(timeout=30)
producer.flush()
states = admin.describe_producers([TopicPartition("py-pages-a", 1)])
state = states[TopicPartition("py-pages-a", 1)]
assert len(state.active_producers) == 1, state
p = state.active_producers[0]
assert p.last_sequence == 6, p
assert p.producer_id >= 0 and p.last_timestamp > 0, p
assert p.current_transaction_start_offset == -1, p
producer.close()
admin.close()
print("kafka-python: admin ok")
