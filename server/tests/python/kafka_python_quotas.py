"""kafka-python under client quotas: produces or consumes COUNT records of 1 KiB as CLIENT_ID
and prints how long it took and the largest throttle time the broker told it.
Usage: kafka_python_quotas.py BOOTSTRAP TOPIC CLIENT_ID produce|produce-each|consume COUNT"""
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

bootstrap, topic, client_id, phase, count = sys.argv[1:6]
count = int(count)


def max_throttle(metrics):
    return max(
        [v for group in metrics.values() for k, v in group.items() if k.endswith("throttle-time-max")]
        or [0.0]
    )


start = time.time()
if phase == "produce":
    p = KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks=1, linger_ms=5)
    futures = [p.send(topic, value=b"x" * 1024, partition=0) for _ in range(count)]
    for f in futures:
        f.get(timeout=120)
    elapsed = time.time() - start
    throttle = max_throttle(p.metrics())
    p.close()
elif phase == "produce-each":
    # One request per record: the broker's CPU per request is what a request quota counts.
    p = KafkaProducer(bootstrap_servers=bootstrap, client_id=client_id, acks=1, linger_ms=0)
    for _ in range(count):
        p.send(topic, value=b"y" * 100, partition=0).get(timeout=120)
    elapsed = time.time() - start
    throttle = max_throttle(p.metrics())
    p.close()
elif phase == "consume":
    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id=client_id, consumer_timeout_ms=30000,
                      max_partition_fetch_bytes=65536, fetch_max_bytes=65536)
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek_to_beginning(tp)
    n = 0
    for m in c:
        n += 1
        if n >= count:
            break
    elapsed = time.time() - start
    throttle = max_throttle(c.metrics())
    c.close()
    assert n == count, "read %d of %d" % (n, count)
else:
    sys.exit("unknown phase " + phase)
print("quotas: %s %s %d in %.2f s, max throttle %.0f ms" % (client_id, phase, count, elapsed, throttle))
