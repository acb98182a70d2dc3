"""An independent client against Strata: aiokafka (asyncio, its own protocol implementation).
Admin (create, list, describe configs, delete), produce with keys and headers (acks=all),
consume from the start and from an offset, and a consumer group that commits and whose next
member resumes exactly after the commit. Prints one line per step; exits non-zero on the first
difference. Usage: aiokafka_client.py HOST:PORT"""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

BOOTSTRAP = sys.argv[1]
TOPIC = "aio-topic"
N = 100


def record(i):
    return (b"k%d" % (i % 5), b"value-%d" % i, [("h", b"%d" % i)])


async def admin_steps():
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, num_partitions=2, replication_factor=1)])
        await admin.create_topics([NewTopic("aio-doomed", num_partitions=1, replication_factor=1)])
        topics = await admin.list_topics()
        assert TOPIC in topics and "aio-doomed" in topics, topics
        configs = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, TOPIC)])
        names = {c[0] for c in configs[0].resources[0][4]}
        assert "retention.ms" in names, names
        await admin.delete_topics(["aio-doomed"])
        print("aiokafka: admin ok")
    finally:
        await admin.close()


async def produce():
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all")
    await producer.start()
    sent = {}
    try:
        for i in range(N):
            key, value, headers = record(i)
            md = await producer.send_and_wait(TOPIC, value=value, key=key, headers=headers)
            sent[(md.partition, md.offset)] = i
    finally:
        await producer.stop()
    assert len(sent) == N
    print("aiokafka: produced", N)
    return sent


async def read(consumer, count):
    got = {}
    while len(got) < count:
        batch = await asyncio.wait_for(consumer.getmany(timeout_ms=1000), 15)
        for tp, msgs in batch.items():
            for m in msgs:
                got[(tp.partition, m.offset)] = m
    return got


async def from_start_and_offset(sent):
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got = await read(consumer, N)
        assert set(got) == set(sent), "every record from the start"
        for pos, m in got.items():
            key, value, headers = record(sent[pos])
            assert (m.key, m.value) == (key, value), (pos, m)
            assert list(m.headers) == headers, (pos, m.headers)
        print("aiokafka: consumed from the start", len(got))
        end = await consumer.end_offsets([tps[0]])
        assert end[tps[0]] == sum(1 for p, _ in sent if p == 0), end
        consumer.seek(tps[0], 5)
        one = await asyncio.wait_for(consumer.getone(tps[0]), 15)
        assert one.offset == 5, one.offset
        print("aiokafka: consumed from offset 5")
    finally:
        await consumer.stop()


async def group(sent):
    first = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=BOOTSTRAP,
        group_id="aio-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=10,
    )
    await first.start()
    try:
        got = await read(first, 60)
        # Commit exactly what was consumed: the next offset of each partition.
        offsets = {}
        for (p, o) in got:
            tp = TopicPartition(TOPIC, p)
            offsets[tp] = max(offsets.get(tp, 0), o + 1)
        # Only a contiguous prefix per partition counts as consumed.
        for tp in list(offsets):
            n = 0
            while (tp.partition, n) in got:
                n += 1
            offsets[tp] = n
        await first.commit(offsets)
        committed = {tp: await first.committed(tp) for tp in offsets}
        assert committed == offsets, (committed, offsets)
    finally:
        await first.stop()
    consumed = {pos for pos in got if pos[1] < offsets[TopicPartition(TOPIC, pos[0])]}
    second = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=BOOTSTRAP,
        group_id="aio-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await second.start()
    try:
        rest = await read(second, N - len(consumed))
    finally:
        await second.stop()
    assert not (set(rest) & consumed), "re-delivered committed records"
    assert set(rest) | consumed == set(sent), "every record consumed once"
    assert 0 < len(consumed) < N, "the first member committed part of the topic"
    print("aiokafka: group resumed after its commit", len(consumed), len(rest))


async def main():
    await admin_steps()
    sent = await produce()
    await from_start_and_offset(sent)
    await group(sent)
    print("aiokafka: ok")


asyncio.run(main())
