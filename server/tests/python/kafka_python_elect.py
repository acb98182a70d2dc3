"""kafka-python's Admin.elect_leaders against Strata: one preferred election of the given
partitions, printing `TOPIC PARTITION ERROR_CODE` per result and the top-level code.
Usage: kafka_python_elect.py HOST:PORT TOPIC PARTITION..."""
import sys

from kafka import KafkaAdminClient

bootstrap, topic = sys.argv[1], sys.argv[2]
partitions = [int(p) for p in sys.argv[3:]]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-elect")
response = admin.elect_leaders(0, {topic: partitions}, timeout_ms=10000, raise_errors=False)
print("top", response.error_code)
for result in response.replica_election_results:
    for p in result.partition_result:
        print(result.topic, p.partition_id, p.error_code)
admin.close()
