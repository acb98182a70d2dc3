"""kafka-python over SASL_SSL (PLAIN) against a Strata cluster whose own links run on TLS.
`produce FROM TO`: sends values FROM..TO to partition 0 with acks=all and waits for every
acknowledgement; `consume COUNT`: reads partition 0 from the start until COUNT distinct values
came, printing the ports the cluster's metadata named (they must be the SASL_SSL listener's).
Usage: kafka_python_cluster_sasl_ssl.py CA_FILE BOOTSTRAP TOPIC produce FROM TO | consume COUNT"""
import sys

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

cafile, bootstrap, topic, phase = sys.argv[1:5]
config = dict(
    bootstrap_servers=bootstrap,
    security_protocol="SASL_SSL",
    ssl_cafile=cafile,
    sasl_mechanism="PLAIN",
    sasl_plain_username="alice",
    sasl_plain_password="alice-secret",
)

if phase == "produce":
    first, last = int(sys.argv[5]), int(sys.argv[6])
    producer = KafkaProducer(acks="all", retries=50, retry_backoff_ms=100, linger_ms=5, **config)
    futures = [producer.send(topic, value=b"%d" % i, partition=0) for i in range(first, last)]
    acked = sum(1 for f in futures if f.get(timeout=60) is not None)
    producer.close()
    print("acked %d" % acked)
elif phase == "consume":
    want = int(sys.argv[5])
    consumer = KafkaConsumer(consumer_timeout_ms=20000, **config)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    seen = set()
    for m in consumer:
        seen.add(int(m.value))
        if len(seen) >= want:
            break
    ports = sorted(b.port for b in consumer._client.cluster.brokers())
    consumer.close()
    print("read %d distinct, max %d" % (len(seen), max(seen) if seen else -1))
    print("brokers on ports %s" % ",".join(str(p) for p in ports))
else:
    sys.exit("unknown phase " + phase)
