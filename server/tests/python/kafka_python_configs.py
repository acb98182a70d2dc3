"""Configs as kafka-python's admin client sees them against Strata: DescribeConfigs with
synonyms, sources and types for a topic and for the broker; IncrementalAlterConfigs SET,
APPEND and SUBTRACT on a list config, APPEND refused on a non-list one; broker configs
read-only and their alteration refused. The broker runs with log.retention.ms=1234567.
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

# The broker: Kafka's names, read-only, the static setting and broker.rack (unset: null).
broker = admin.describe_configs(
    [ConfigResource(ConfigResourceType.BROKER, "1")], include_synonyms=True, config_filter="all"
)["broker"]["1"]
assert broker["log.retention.ms"]["value"] == "1234567", broker["log.retention.ms"]
assert broker["log.retention.ms"]["config_source"] == "STATIC_BROKER_CONFIG"
assert broker["message.max.bytes"]["config_source"] == "DEFAULT_CONFIG"
assert "broker.rack" in broker and broker["broker.rack"]["value"] is None, broker.get("broker.rack")
assert all(c["read_only"] for c in broker.values())
result = alter({"log.retention.ms": "5"}, ConfigResource(ConfigResourceType.BROKER, "1"))
assert "InvalidRequestError" in result and "dynamically" in result, result
admin.close()
print("kafka-python: configs ok")
