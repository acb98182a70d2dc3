//! Dynamic broker configs: the broker settings AlterConfigs and IncrementalAlterConfigs may
//! change at runtime, on the cluster-wide default resource (broker name "") or on one broker
//! (its id), as in Kafka.
//!
//! What may change is what topics inherit: the `log.*` defaults of the topic configs
//! (`log.retention.ms` for `retention.ms`, ...), `message.max.bytes` and
//! `min.insync.replicas`; and the replication throttles (`leader.replication.throttled.rate`,
//! `follower.replication.throttled.rate`, KIP-73). Every other broker setting is fixed at start and refused with Kafka's
//! "Cannot update these configs dynamically". Precedence, most specific first (Kafka's): the
//! broker's own dynamic value, the cluster-wide dynamic default, the static config (file or
//! `--set`), the built-in default. A topic's own override beats all of them.
//!
//! Where they are kept: standalone, in `broker-configs.toml` in the data directory (written
//! atomically before the change is applied, so a restart keeps it); in a cluster, in the
//! metadata log (a `SetBrokerConfig` record), so every broker applies the same values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::{BrokerConfig, ConfigError};

/// The broker configs that may change at runtime.
pub const DYNAMIC: &[&str] = &[
    "log.segment.bytes",
    "log.roll.ms",
    "log.retention.ms",
    "log.retention.bytes",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "message.max.bytes",
    "log.flush.policy",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.cleanup.policy",
    "min.insync.replicas",
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// The file of a standalone broker's dynamic configs.
pub const FILE: &str = "broker-configs.toml";

/// Whether `name` may change at runtime.
pub fn is_dynamic(name: &str) -> bool {
    DYNAMIC.contains(&name)
}

/// Where a broker config's value comes from, most specific first (Kafka's ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    /// Set on this broker at runtime (DYNAMIC_BROKER_CONFIG).
    Broker,
    /// Set on the cluster-wide default at runtime (DYNAMIC_DEFAULT_BROKER_CONFIG).
    ClusterDefault,
    /// Given at start (STATIC_BROKER_CONFIG).
    Static,
    /// The built-in default (DEFAULT_CONFIG).
    Default,
}

/// The dynamic values: the cluster-wide default and per broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicConfigs {
    /// Resource "": applies to every broker.
    #[serde(default)]
    pub cluster_default: BTreeMap<String, String>,
    /// Resource "`<id>`": one broker's, by id.
    #[serde(default)]
    pub brokers: BTreeMap<String, BTreeMap<String, String>>,
}

impl DynamicConfigs {
    /// The values of a resource ("" or a broker id).
    pub fn resource(&self, name: &str) -> BTreeMap<String, String> {
        if name.is_empty() {
            self.cluster_default.clone()
        } else {
            self.brokers.get(name).cloned().unwrap_or_default()
        }
    }

    /// These configs with a resource's values replaced by `values`.
    pub fn with_resource(&self, name: &str, values: BTreeMap<String, String>) -> DynamicConfigs {
        let mut out = self.clone();
        if name.is_empty() {
            out.cluster_default = values;
        } else if values.is_empty() {
            out.brokers.remove(name);
        } else {
            out.brokers.insert(name.to_string(), values);
        }
        out
    }

    /// The effective config of broker `node`: `base` (the static config) with the cluster-wide
    /// dynamic values and then the broker's own set on it. Fails on a value `base` refuses.
    pub fn apply_to(&self, base: &BrokerConfig, node: i32) -> Result<BrokerConfig, ConfigError> {
        let mut c = base.clone();
        let own = self.brokers.get(&node.to_string());
        for (k, v) in self.cluster_default.iter().chain(own.into_iter().flatten()) {
            c.set(k, v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Which layer `name`'s value on broker `node` comes from, and the value of each layer
    /// that sets it, most specific first (the built-in default last).
    pub fn layers(
        &self,
        base: &BrokerConfig,
        node: i32,
        name: &str,
    ) -> Vec<(Layer, Option<String>)> {
        let mut out = Vec::new();
        if let Some(v) = self
            .brokers
            .get(&node.to_string())
            .and_then(|m| m.get(name))
        {
            out.push((Layer::Broker, Some(v.clone())));
        }
        if let Some(v) = self.cluster_default.get(name) {
            out.push((Layer::ClusterDefault, Some(v.clone())));
        }
        let value_in = |c: &BrokerConfig| c.describe().into_iter().find(|e| e.name == name);
        let default = value_in(&BrokerConfig::default());
        let given = value_in(base);
        if let Some(g) = &given
            && default.as_ref().is_none_or(|d| d.value != g.value)
        {
            out.push((Layer::Static, g.value.clone()));
        }
        if let Some(d) = default.or(given) {
            out.push((Layer::Default, d.value));
        }
        out
    }

    /// A standalone broker's dynamic configs, from its data directory (none if the file is
    /// absent).
    pub fn load(dir: &Path) -> anyhow::Result<DynamicConfigs> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{path:?}: {e}")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DynamicConfigs::default()),
            Err(e) => Err(anyhow::anyhow!("{path:?}: {e}")),
        }
    }

    /// The text of the standalone file.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// From the metadata image's form: resource name to values.
    pub fn from_resources(
        resources: &BTreeMap<String, BTreeMap<String, String>>,
    ) -> DynamicConfigs {
        let mut out = DynamicConfigs::default();
        for (name, values) in resources {
            out = out.with_resource(name, values.clone());
        }
        out
    }
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn the_broker_value_beats_the_cluster_default_which_beats_the_static_one() {
        let mut base = BrokerConfig::default();
        base.set("log.retention.ms", "1000").unwrap();
        let d = DynamicConfigs::default().with_resource(
            "",
            BTreeMap::from([("log.retention.ms".into(), "2000".into())]),
        );
        assert_eq!(
            d.apply_to(&base, 1).unwrap().log_defaults.retention_ms,
            2000
        );
        let d = d.with_resource(
            "1",
            BTreeMap::from([("log.retention.ms".into(), "3000".into())]),
        );
        assert_eq!(
            d.apply_to(&base, 1).unwrap().log_defaults.retention_ms,
            3000
        );
        assert_eq!(
            d.apply_to(&base, 2).unwrap().log_defaults.retention_ms,
            2000
        );
        let layers: Vec<Layer> = d
            .layers(&base, 1, "log.retention.ms")
            .into_iter()
            .map(|(l, _)| l)
            .collect();
        assert_eq!(
            layers,
            vec![
                Layer::Broker,
                Layer::ClusterDefault,
                Layer::Static,
                Layer::Default
            ]
        );
        assert_eq!(
            d.layers(&base, 1, "log.retention.ms")[3].1.as_deref(),
            Some("604800000")
        );
    }

    #[test]
    fn a_bad_value_is_refused_by_the_same_checks_as_at_start() {
        let d = DynamicConfigs::default().with_resource(
            "",
            BTreeMap::from([("log.segment.bytes".into(), "-5".into())]),
        );
        assert!(d.apply_to(&BrokerConfig::default(), 1).is_err());
    }

    #[test]
    fn only_what_topics_inherit_is_dynamic() {
        assert!(is_dynamic("log.retention.ms"));
        assert!(is_dynamic("min.insync.replicas"));
        assert!(!is_dynamic("listeners"));
        assert!(!is_dynamic("node.id"));
    }

    #[test]
    fn the_file_round_trips() {
        let d = DynamicConfigs::default()
            .with_resource(
                "",
                BTreeMap::from([("log.retention.ms".into(), "2000".into())]),
            )
            .with_resource(
                "3",
                BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            );
        let back: DynamicConfigs = toml::from_str(&d.to_toml()).unwrap();
        assert_eq!(back, d);
    }
}
