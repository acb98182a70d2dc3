"""Transactions with kafka-python (a third protocol implementation): a committed, an aborted
and a second committed transaction read back by read_committed (committed only) and
read_uncommitted (all) consumers; consume-transform-produce with send_offsets_to_transaction,
the group's committed offset at the end of the input; a second producer with the same
transactional id fencing the first. Usage: kafka_python_transactions.py HOST:PORT"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata

BOOTSTRAP = sys.argv[1]


def read(topic, isolation, n, timeout=20):
    consumer = KafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        isolation_level=isolation,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        batch = consumer.poll(timeout_ms=300)
        for msgs in batch.values():
            got.extend(m.value.decode() for m in msgs)
        if len(got) >= n and not batch:
            break
    consumer.close()
    return got


def producer(txn_id):
    p = KafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=txn_id)
    p.init_transactions()
    return p


def commit_and_abort():
    p = producer("kp-txn")
    p.begin_transaction()
    for i in range(10):
        p.send("kp-txn-topic", b"c1-%d" % i, partition=0)
    p.commit_transaction()
    p.begin_transaction()
    for i in range(10):
        p.send("kp-txn-topic", b"a1-%d" % i, partition=0)
    p.flush()
    p.abort_transaction()
    p.begin_transaction()
    for i in range(5):
        p.send("kp-txn-topic", b"c2-%d" % i, partition=0)
    p.commit_transaction()
    p.close()
    expected = ["c1-%d" % i for i in range(10)] + ["c2-%d" % i for i in range(5)]
    got = read("kp-txn-topic", "read_committed", len(expected))
    assert got == expected, got
    everything = read("kp-txn-topic", "read_uncommitted", 25)
    assert len(everything) == 25, everything
    print("kafka-python: read_committed sees commits only")


def consume_transform_produce():
    plain = KafkaProducer(bootstrap_servers=BOOTSTRAP)
    for i in range(20):
        plain.send("kp-in", b"in-%d" % i, partition=0)
    plain.flush()
    plain.close()
    consumer = KafkaConsumer(
        "kp-in",
        bootstrap_servers=BOOTSTRAP,
        group_id="kp-ctp",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    p = producer("kp-ctp-app")
    seen = 0
    deadline = time.time() + 60
    while seen < 20 and time.time() < deadline:
        batch = consumer.poll(timeout_ms=1000)
        for tp, msgs in batch.items():
            p.begin_transaction()
            for m in msgs:
                p.send("kp-out", m.value.replace(b"in-", b"out-"), partition=0)
            p.send_offsets_to_transaction(
                {tp: OffsetAndMetadata(msgs[-1].offset + 1, "", -1)}, "kp-ctp"
            )
            p.commit_transaction()
            seen += len(msgs)
    assert seen == 20, seen
    committed = None
    for _ in range(50):
        committed = consumer.committed(TopicPartition("kp-in", 0))
        if committed == 20:
            break
        time.sleep(0.1)
    assert committed == 20, committed
    consumer.close()
    p.close()
    got = read("kp-out", "read_committed", 20)
    assert got == ["out-%d" % i for i in range(20)], got
    print("kafka-python: consume-transform-produce exactly once")


def fencing():
    zombie = producer("kp-fenced")
    zombie.begin_transaction()
    zombie.send("kp-fence-topic", b"zombie", partition=0)
    zombie.flush()
    fresh = producer("kp-fenced")
    fresh.begin_transaction()
    fresh.send("kp-fence-topic", b"fresh", partition=0)
    fresh.commit_transaction()
    try:
        zombie.commit_transaction()
        raise AssertionError("the fenced producer committed")
    except KafkaError as e:
        print("kafka-python: zombie fenced (%s)" % type(e).__name__)
    zombie.close(timeout=1)
    fresh.close()
    got = read("kp-fence-topic", "read_committed", 1)
    assert got == ["fresh"], got


commit_and_abort()
consume_transform_produce()
fencing()
print("kafka-python: transactions ok")
