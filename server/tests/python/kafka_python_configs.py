"""Configs as kafka-python's admin client sees them against Strata: DescribeConfigs with
synonyms, sources and types for a topic and for the broker; IncrementalAlterConfigs SET,
APPEND and SUBTRACT on a list config, APPEND refused on a non-list one; dynamic broker
configs on the broker and on the cluster-wide default, with their precedence, inherited by
topics, and the static ones refused. The broker runs with log.retention.ms=1234567.
Usage: kafka_python_configs.py HOST:PORT"""
import sys

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

bootstrap = sys.argv[1]
admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="py-configs")
admin.create_topics([NewTopic("py-configs", num_partitions=1, replication_factor=1)])
topic = ConfigResource(ConfigResourceType.TOPIC, "py-configs")


def describe_topic(config_filter="all"):
    r = admin.describe_configs([topic], include_synonyms=True, config_filter=config_filter)
    return r["topic"]["py-configs"]


def alter(configs, resource=topic):
    r = admin.alter_configs(
        [ConfigResource(resource.resource_type, resource.name, configs=configs)],
        raise_on_unknown=False,
    )
    return r[resource.resource_type.name.lower()][resource.name]


configs = describe_topic()
# Not overridden: the broker's static setting, and its synonyms from most to least specific.
retention = configs["retention.ms"]
assert retention["value"] == "1234567", retention
assert retention["config_source"] == "STATIC_BROKER_CONFIG", retention
assert retention["config_type"] == "LONG", retention
assert [(s["name"], s["value"], s["source"]) for s in retention["synonyms"]] == [
    ("log.retention.ms", "1234567", "STATIC_BROKER_CONFIG"),
    ("log.retention.ms", "604800000", "DEFAULT_CONFIG"),
], retention
cleanup = configs["cleanup.policy"]
assert cleanup["config_source"] == "DEFAULT_CONFIG" and cleanup["config_type"] == "LIST", cleanup
assert configs["min.cleanable.dirty.ratio"]["config_type"] == "DOUBLE"

# An override: the topic's own value comes first among the synonyms.
assert alter({"retention.ms": ("SET", "600000")}) == "OK"
retention = describe_topic()["retention.ms"]
assert retention["value"] == "600000", retention
assert retention["config_source"] == "DYNAMIC_TOPIC_CONFIG", retention
assert retention["synonyms"][0] == {
    "name": "retention.ms",
    "value": "600000",
    "source": "DYNAMIC_TOPIC_CONFIG",
}, retention

# APPEND and SUBTRACT on a list config; APPEND on a number is refused with INVALID_CONFIG.
throttled = "leader.replication.throttled.replicas"
assert alter({throttled: ("APPEND", "0:1,0:2")}) == "OK"
assert alter({throttled: ("APPEND", "0:2,0:3")}) == "OK"
assert describe_topic()[throttled]["value"] == "0:1,0:2,0:3"
assert alter({throttled: ("SUBTRACT", "0:1")}) == "OK"
assert describe_topic()[throttled]["value"] == "0:2,0:3"
assert alter({"cleanup.policy": ("APPEND", "compact")}) == "OK"
assert describe_topic()["cleanup.policy"]["value"] == "compact,delete"
assert alter({"cleanup.policy": ("SUBTRACT", "delete")}) == "OK"
assert describe_topic()["cleanup.policy"]["value"] == "compact"
assert alter({"cleanup.policy": ("DELETE", None)}) == "OK"
result = alter({"retention.ms": ("APPEND", "5")})
assert "InvalidConfigurationError" in result and "retention.ms" in result, result
assert describe_topic()["retention.ms"]["value"] == "600000", "a refused change changes nothing"
modified = describe_topic("modified")
assert set(modified) == {"retention.ms", throttled}, modified

# The broker: Kafka's names, the static setting and broker.rack (unset: null). What topics
# inherit may change at runtime; the rest is read-only and refused.
def describe_broker(name="1"):
    return admin.describe_configs(
        [ConfigResource(ConfigResourceType.BROKER, name)], include_synonyms=True, config_filter="all"
    )["broker"][name]


broker = describe_broker()
assert broker["log.retention.ms"]["value"] == "1234567", broker["log.retention.ms"]
assert broker["log.retention.ms"]["config_source"] == "STATIC_BROKER_CONFIG"
assert not broker["log.retention.ms"]["read_only"]
assert broker["message.max.bytes"]["config_source"] == "DEFAULT_CONFIG"
assert "broker.rack" in broker and broker["broker.rack"]["value"] is None, broker.get("broker.rack")
assert broker["listeners"]["read_only"] and broker["node.id"]["read_only"]
node = ConfigResource(ConfigResourceType.BROKER, "1")
result = alter({"num.partitions": ("SET", "3")}, node)
assert "InvalidRequestError" in result and "dynamically" in result, result
result = alter({"log.retention.ms": ("SET", "-5x")}, node)
assert "InvalidConfigurationError" in result, result

# A per-broker dynamic value beats the static one, and topics without an override inherit it.
assert alter({"log.retention.ms": ("SET", "7777")}, node) == "OK"
retention = describe_broker()["log.retention.ms"]
assert (retention["value"], retention["config_source"]) == ("7777", "DYNAMIC_BROKER_CONFIG"), retention
assert [(s["value"], s["source"]) for s in retention["synonyms"]] == [
    ("7777", "DYNAMIC_BROKER_CONFIG"),
    ("1234567", "STATIC_BROKER_CONFIG"),
    ("604800000", "DEFAULT_CONFIG"),
], retention
admin.create_topics([NewTopic("py-inherits", num_partitions=1, replication_factor=1)])
inherited = admin.describe_configs(
    [ConfigResource(ConfigResourceType.TOPIC, "py-inherits")], include_synonyms=True
)["topic"]["py-inherits"]["retention.ms"]
assert (inherited["value"], inherited["config_source"]) == ("7777", "DYNAMIC_BROKER_CONFIG"), inherited

# DELETE: back to the static value. (kafka-python cannot name the cluster-wide default
# resource "": server/tests/dynamic_configs.rs covers it.)
assert alter({"log.retention.ms": ("DELETE", None)}, node) == "OK"
retention = describe_broker()["log.retention.ms"]
assert (retention["value"], retention["config_source"]) == ("1234567", "STATIC_BROKER_CONFIG"), retention

# APPEND on a list broker config, against the value in force; topics inherit the list.
assert alter({"log.cleanup.policy": ("APPEND", "compact")}, node) == "OK"
assert describe_broker()["log.cleanup.policy"]["value"] == "compact,delete"
inherited = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "py-inherits")])
assert inherited["topic"]["py-inherits"]["cleanup.policy"]["value"] == "compact,delete", inherited
assert alter({"log.cleanup.policy": ("DELETE", None)}, node) == "OK"
assert describe_broker()["log.cleanup.policy"]["config_source"] == "DEFAULT_CONFIG"
admin.close()
print("kafka-python: configs ok")
