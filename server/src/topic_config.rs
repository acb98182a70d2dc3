//! The topic-level configs Apache Kafka 4.x defines, as DescribeConfigs reports them and
//! AlterConfigs / CreateTopics accept them.
//!
//! Three kinds: configs the engine applies (`segment.bytes`, `retention.ms`, `flush.ms`, ...:
//! [`crate::config::describe_log_config`]); configs the broker applies per topic
//! (`min.insync.replicas`); and configs Strata accepts, checks and stores but does not act on
//! (tiered storage, compaction tuning, throttles, ...), listed in [`STORED`] with Kafka's
//! defaults, so that tools which copy a topic's configs, or set Kafka's usual ones, work.
//! `flush.policy` is Strata's own name for the flush policy (also expressible with Kafka's
//! `flush.messages`/`flush.ms`).
//!
//! Invariant: every (name, value) [`describe`] returns is accepted back unchanged by
//! `Broker::log_config` (the version matrix alters a topic with everything it described).

use std::collections::BTreeMap;

use strata_engine::LogConfig;

/// How a stored config's value is checked.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// An integer at or above the minimum.
    Long(i64),
    /// `true` or `false`.
    Bool,
    /// A number in `[0, 1]`.
    Ratio,
    /// One of these words (case-sensitive, as Kafka's validators are).
    OneOf(&'static [&'static str]),
    /// A comma-separated list (throttled replicas: `*` or `partition:broker` pairs).
    List,
}

/// A config Strata stores but does not act on.
#[derive(Debug, Clone, Copy)]
pub struct StoredConfig {
    /// Kafka's name.
    pub name: &'static str,
    /// Kafka's default.
    pub default: &'static str,
    /// How values are checked.
    pub kind: Kind,
}

const fn stored(name: &'static str, default: &'static str, kind: Kind) -> StoredConfig {
    StoredConfig {
        name,
        default,
        kind,
    }
}

/// Kafka 4.x topic configs that are accepted and stored, not applied.
pub const STORED: &[StoredConfig] = &[
    stored(
        "compression.type",
        "producer",
        Kind::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
    ),
    stored("compression.gzip.level", "-1", Kind::Long(-1)),
    stored("compression.lz4.level", "9", Kind::Long(1)),
    stored("compression.zstd.level", "3", Kind::Long(-131072)),
    stored("delete.retention.ms", "86400000", Kind::Long(0)),
    stored("file.delete.delay.ms", "60000", Kind::Long(0)),
    // The throttled-replica lists are checked and kept here, and read by the replication
    // throttles (`cluster::throttle`) from the topic's overrides.
    stored("follower.replication.throttled.replicas", "", Kind::List),
    stored("leader.replication.throttled.replicas", "", Kind::List),
    stored("local.retention.bytes", "-2", Kind::Long(-2)),
    stored("local.retention.ms", "-2", Kind::Long(-2)),
    stored(
        "max.compaction.lag.ms",
        "9223372036854775807",
        Kind::Long(1),
    ),
    stored("message.timestamp.after.max.ms", "3600000", Kind::Long(0)),
    stored(
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        Kind::Long(0),
    ),
    stored(
        "message.timestamp.type",
        "CreateTime",
        Kind::OneOf(&["CreateTime", "LogAppendTime"]),
    ),
    stored("min.cleanable.dirty.ratio", "0.5", Kind::Ratio),
    stored("min.compaction.lag.ms", "0", Kind::Long(0)),
    stored("preallocate", "false", Kind::Bool),
    stored("remote.storage.enable", "false", Kind::Bool),
    stored("remote.log.copy.disable", "false", Kind::Bool),
    stored("remote.log.delete.on.disable", "false", Kind::Bool),
    stored("segment.jitter.ms", "0", Kind::Long(0)),
    stored("unclean.leader.election.enable", "false", Kind::Bool),
];

/// A topic config's type, as DescribeConfigs v3+ reports it.
pub fn config_type(name: &str) -> crate::config::ConfigType {
    use crate::config::ConfigType::*;
    match name {
        "segment.bytes"
        | "index.interval.bytes"
        | "segment.index.bytes"
        | "max.message.bytes"
        | "min.insync.replicas"
        | "compression.gzip.level"
        | "compression.lz4.level"
        | "compression.zstd.level" => Int,
        "cleanup.policy"
        | "follower.replication.throttled.replicas"
        | "leader.replication.throttled.replicas" => List,
        "flush.policy" | "compression.type" | "message.timestamp.type" => String,
        "min.cleanable.dirty.ratio" => Double,
        "preallocate"
        | "remote.storage.enable"
        | "remote.log.copy.disable"
        | "remote.log.delete.on.disable"
        | "unclean.leader.election.enable" => Boolean,
        _ => Long,
    }
}

/// The broker config that gives a topic config its default (Kafka's synonym), if any.
pub fn broker_synonym(name: &str) -> Option<&'static str> {
    if let Some((broker, _)) = crate::config::LOG_SYNONYMS.iter().find(|(_, t)| *t == name) {
        return Some(broker);
    }
    Some(match name {
        "min.insync.replicas" => "min.insync.replicas",
        "unclean.leader.election.enable" => "unclean.leader.election.enable",
        "compression.type" => "compression.type",
        "compression.gzip.level" => "compression.gzip.level",
        "compression.lz4.level" => "compression.lz4.level",
        "compression.zstd.level" => "compression.zstd.level",
        "delete.retention.ms" => "log.cleaner.delete.retention.ms",
        "file.delete.delay.ms" => "log.segment.delete.delay.ms",
        "local.retention.bytes" => "log.local.retention.bytes",
        "local.retention.ms" => "log.local.retention.ms",
        "max.compaction.lag.ms" => "log.cleaner.max.compaction.lag.ms",
        "min.compaction.lag.ms" => "log.cleaner.min.compaction.lag.ms",
        "min.cleanable.dirty.ratio" => "log.cleaner.min.cleanable.ratio",
        "message.timestamp.after.max.ms" => "log.message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms" => "log.message.timestamp.before.max.ms",
        "message.timestamp.type" => "log.message.timestamp.type",
        "preallocate" => "log.preallocate",
        "segment.jitter.ms" => "log.roll.jitter.ms",
        _ => return None,
    })
}

/// Whether a topic config holds a comma-separated list (IncrementalAlterConfigs APPEND and
/// SUBTRACT apply to these only).
pub fn is_list(name: &str) -> bool {
    config_type(name) == crate::config::ConfigType::List
}

/// The stored config of that name.
pub fn stored_config(name: &str) -> Option<&'static StoredConfig> {
    STORED.iter().find(|c| c.name == name)
}

/// Checks a value of a stored config; the reason when it is refused.
pub fn check(c: &StoredConfig, value: &str) -> Result<(), String> {
    let v = value.trim();
    match c.kind {
        Kind::Long(min) => match v.parse::<i64>() {
            Ok(n) if n >= min => Ok(()),
            Ok(_) => Err(format!("must be at least {min}")),
            Err(e) => Err(e.to_string()),
        },
        Kind::Bool => match v {
            "true" | "false" => Ok(()),
            _ => Err("expected true or false".into()),
        },
        Kind::Ratio => match v.parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err("expected a number between 0 and 1".into()),
        },
        Kind::OneOf(words) => {
            if words.contains(&v) {
                Ok(())
            } else {
                Err(format!("expected one of {}", words.join(", ")))
            }
        }
        Kind::List => Ok(()),
    }
}

/// Every topic config, with its value and whether the topic overrides it: the engine's (from
/// `config`), `min.insync.replicas` (`min_insync` when not overridden), and the stored ones.
pub fn describe(
    config: &LogConfig,
    overrides: &BTreeMap<String, String>,
    min_insync: usize,
) -> Vec<(String, String, bool)> {
    let mut out: Vec<(String, String, bool)> = crate::config::describe_log_config(config)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v, overrides.contains_key(k)))
        .collect();
    let mir = "min.insync.replicas";
    out.push((
        mir.to_string(),
        overrides
            .get(mir)
            .cloned()
            .unwrap_or_else(|| min_insync.to_string()),
        overrides.contains_key(mir),
    ));
    for c in STORED {
        let value = overrides.get(c.name).map_or(c.default, String::as_str);
        out.push((
            c.name.to_string(),
            value.to_string(),
            overrides.contains_key(c.name),
        ));
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's defaults pass their own checks, and out-of-range values are refused.
    #[test]
    fn defaults_are_valid_and_bad_values_are_refused() {
        for c in STORED {
            assert_eq!(check(c, c.default), Ok(()), "{}", c.name);
        }
        let ratio = stored_config("min.cleanable.dirty.ratio").unwrap_or(&STORED[0]);
        assert!(check(ratio, "1.5").is_err());
        let ms = stored_config("delete.retention.ms").unwrap_or(&STORED[0]);
        assert!(check(ms, "-5").is_err() && check(ms, "x").is_err());
        let ts = stored_config("message.timestamp.type").unwrap_or(&STORED[0]);
        assert!(check(ts, "LogAppendTime").is_ok() && check(ts, "Now").is_err());
    }
}
