"""Transactions with aiokafka (its own protocol implementation): a committed, an aborted and a
second committed transaction, read back by a read_committed consumer (the committed ones only)
and a read_uncommitted one (all); a consume-transform-produce round whose offsets go to the
group with send_offsets_to_transaction; and a second producer with the same transactional id
fencing the first. Prints one line per step; exits non-zero on the first difference.
Usage: aiokafka_transactions.py HOST:PORT"""
import asyncio
import sys

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced

BOOTSTRAP = sys.argv[1]


async def read(topic, isolation, n, timeout=20):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=BOOTSTRAP,
        isolation_level=isolation,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got = []
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(tp, timeout_ms=300)
            for msgs in batch.values():
                got.extend(m.value.decode() for m in msgs)
            if len(got) >= n and not batch:
                break
        return got
    finally:
        await consumer.stop()


def producer(txn_id):
    return AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, transactional_id=txn_id)


async def commit_and_abort():
    p = producer("aio-txn")
    await p.start()
    try:
        async with p.transaction():
            for i in range(10):
                await p.send("aio-txn-topic", b"c1-%d" % i, partition=0)
        await p.begin_transaction()
        for i in range(10):
            await p.send("aio-txn-topic", b"a1-%d" % i, partition=0)
        await p.abort_transaction()
        async with p.transaction():
            for i in range(5):
                await p.send("aio-txn-topic", b"c2-%d" % i, partition=0)
    finally:
        await p.stop()
    expected = ["c1-%d" % i for i in range(10)] + ["c2-%d" % i for i in range(5)]
    got = await read("aio-txn-topic", "read_committed", len(expected))
    assert got == expected, got
    everything = await read("aio-txn-topic", "read_uncommitted", 25)
    assert len(everything) == 25, everything
    print("aiokafka: read_committed sees commits only")


async def consume_transform_produce():
    plain = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP)
    await plain.start()
    for i in range(20):
        await plain.send_and_wait("aio-in", b"in-%d" % i, partition=0)
    await plain.stop()
    consumer = AIOKafkaConsumer(
        "aio-in",
        bootstrap_servers=BOOTSTRAP,
        group_id="aio-ctp",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    p = producer("aio-ctp-app")
    await p.start()
    try:
        seen = []
        while len(seen) < 20:
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, msgs in batch.items():
                async with p.transaction():
                    for m in msgs:
                        await p.send("aio-out", m.value.replace(b"in-", b"out-"), partition=0)
                    seen.extend(msgs)
                    await p.send_offsets_to_transaction(
                        {tp: msgs[-1].offset + 1}, "aio-ctp"
                    )
        # The offsets count once the commit marker reaches the group's partition, which the
        # coordinator writes after answering EndTxn: an older OffsetFetch (no require_stable)
        # may see the previous commit for a moment, as with Kafka.
        committed = None
        for _ in range(50):
            committed = await consumer.committed(TopicPartition("aio-in", 0))
            if committed == 20:
                break
            await asyncio.sleep(0.1)
        assert committed == 20, committed
    finally:
        await p.stop()
        await consumer.stop()
    got = await read("aio-out", "read_committed", 20)
    assert got == ["out-%d" % i for i in range(20)], got
    print("aiokafka: consume-transform-produce exactly once")


async def fencing():
    zombie = producer("aio-fenced")
    await zombie.start()
    await zombie.begin_transaction()
    await zombie.send_and_wait("aio-fence-topic", b"zombie", partition=0)
    fresh = producer("aio-fenced")
    await fresh.start()
    async with fresh.transaction():
        await fresh.send("aio-fence-topic", b"fresh", partition=0)
    try:
        await zombie.commit_transaction()
        raise AssertionError("the fenced producer committed")
    except (ProducerFenced, KafkaError) as e:
        print("aiokafka: zombie fenced (%s)" % type(e).__name__)
    finally:
        await zombie.stop()
        await fresh.stop()
    got = await read("aio-fence-topic", "read_committed", 1)
    assert got == ["fresh"], got


async def main():
    await commit_and_abort()
    await consume_transform_produce()
    await fencing()
    print("aiokafka: transactions ok")


asyncio.run(main())
