//! Configs as Kafka serves them: DescribeConfigs, AlterConfigs and IncrementalAlterConfigs of
//! topics and brokers.
//!
//! A topic config is described with its source (its own override, a dynamic broker config, a
//! broker setting given at start, or the default), its synonyms (the broker config that sets
//! its default: `retention.ms` ← `log.retention.ms`) and its type. A broker is described with
//! Kafka's names for every setting Strata has. The ones topics inherit may change at runtime
//! (`crate::dynamic_config`), on this broker or on the cluster-wide default (resource name "");
//! the rest are fixed at start, read-only, and altering one is refused as Kafka refuses
//! configs that cannot change at runtime. IncrementalAlterConfigs APPEND and SUBTRACT work on
//! list configs (`cleanup.policy`, `log.cleanup.policy`, the throttled-replica lists) against
//! the current value.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::alter_configs_request::AlterConfigsRequest;
use kafka_protocol::messages::alter_configs_response::{
    AlterConfigsResourceResponse, AlterConfigsResponse,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsRequest;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResponse, DescribeConfigsResult,
    DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::incremental_alter_configs_response::{
    AlterConfigsResourceResponse as IncrementalResult, IncrementalAlterConfigsResponse,
};

use super::admin::code_message;
use super::{Context, s};
use crate::broker::AdminError;
use crate::config::{BrokerConfig, BrokerConfigEntry};
use crate::dynamic_config::{self, DynamicConfigs, Layer};
use crate::error_code::ErrorCode;
use crate::topic_config;

/// ConfigResource type of topics.
const RESOURCE_TOPIC: i8 = 2;
/// ConfigResource type of brokers.
const RESOURCE_BROKER: i8 = 4;

/// Where a described value comes from (Kafka's ConfigSource).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
enum Source {
    /// The topic's own override.
    Topic = 1,
    /// Set on this broker at runtime.
    DynamicBroker = 2,
    /// Set on the cluster-wide default at runtime.
    DynamicDefaultBroker = 3,
    /// Given to the broker at start (config file or `--set`), different from the default.
    StaticBroker = 4,
    /// The built-in default.
    Default = 5,
}

/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

/// This broker's configs as they are in force, and where each value comes from.
struct BrokerValues {
    base: BrokerConfig,
    node: i32,
    dynamic: DynamicConfigs,
    current: Vec<BrokerConfigEntry>,
}

impl From<Layer> for Source {
    fn from(l: Layer) -> Source {
        match l {
            Layer::Broker => Source::DynamicBroker,
            Layer::ClusterDefault => Source::DynamicDefaultBroker,
            Layer::Static => Source::StaticBroker,
            Layer::Default => Source::Default,
        }
    }
}

impl BrokerValues {
    fn of(broker: &crate::broker::Broker) -> BrokerValues {
        BrokerValues {
            base: broker.config.clone(),
            node: broker.config.node_id,
            dynamic: broker.dynamic_configs(),
            current: broker.effective_config().describe(),
        }
    }

    /// The broker config's value and source, if Strata has it.
    fn get(&self, name: &str) -> Option<(Option<String>, Source)> {
        let e = self.current.iter().find(|e| e.name == name)?;
        let source = self
            .dynamic
            .layers(&self.base, self.node, name)
            .first()
            .map_or(Source::Default, |(l, _)| Source::from(*l));
        Some((e.value.clone(), source))
    }

    /// Synonyms of a broker config, most specific first: its dynamic values, its static value
    /// (each if set), then its default (`default` where Strata has no such broker config).
    fn synonyms(&self, name: &str, default: Option<String>) -> Vec<DescribeConfigsSynonym> {
        let layers = self.dynamic.layers(&self.base, self.node, name);
        if layers.is_empty() {
            return vec![synonym(name, default, Source::Default)];
        }
        layers
            .into_iter()
            .map(|(l, v)| synonym(name, v, Source::from(l)))
            .collect()
    }
}

fn synonym(name: &str, value: Option<String>, source: Source) -> DescribeConfigsSynonym {
    msg!(DescribeConfigsSynonym {
        name: s(name),
        value: value.as_deref().map(s),
        source: source as i8,
    })
}

/// `Err` unless the principal may do `operation` to the configs of a topic (on the topic) or
/// a broker (on the cluster), as Kafka checks them.
fn authorize_configs(
    ctx: &Context,
    resource_type: i8,
    name: &str,
    operation: crate::acl::Operation,
) -> Result<(), AdminError> {
    use crate::acl::ResourceType;
    match resource_type {
        RESOURCE_TOPIC if !ctx.authorized(operation, ResourceType::Topic, name) => Err(refused(
            ErrorCode::TopicAuthorizationFailed,
            format!("not authorized to {operation:?} topic {name}"),
        )),
        RESOURCE_BROKER if !ctx.authorized_on_cluster(operation) => Err(refused(
            ErrorCode::ClusterAuthorizationFailed,
            format!("not authorized to {operation:?} the cluster"),
        )),
        _ => Ok(()),
    }
}

fn refused(code: ErrorCode, message: impl Into<String>) -> AdminError {
    AdminError::Kafka {
        code,
        message: message.into(),
    }
}

/// Every config of a topic: (name, value, overridden by the topic).
fn topic_configs(
    broker: &crate::broker::Broker,
    topic: &crate::topic::Topic,
) -> Vec<(String, String, bool)> {
    let config = topic
        .config
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let overrides = topic
        .overrides
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let min_insync = broker.min_insync_replicas(&BTreeMap::new());
    topic_config::describe(&config, &overrides, min_insync)
}

/// The configs of one topic as DescribeConfigs reports them.
pub(super) fn describe_topic(
    ctx: &Context,
    topic: &crate::topic::Topic,
    wanted: &dyn Fn(&str) -> bool,
    with_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let broker = BrokerValues::of(&ctx.broker);
    topic_configs(&ctx.broker, topic)
        .into_iter()
        .filter(|(k, _, _)| wanted(k))
        .map(|(name, value, overridden)| {
            let synonym_name = topic_config::broker_synonym(&name);
            // Not overridden, the value is the broker's setting for it (or Kafka's default
            // where Strata has no such broker setting).
            let inherited = synonym_name
                .and_then(|b| broker.get(b))
                .map_or(Source::Default, |(_, source)| source);
            let mut synonyms = Vec::new();
            if with_synonyms {
                if overridden {
                    synonyms.push(synonym(&name, Some(value.clone()), Source::Topic));
                }
                if let Some(b) = synonym_name {
                    let default = topic_config::stored_config(&name)
                        .map(|c| c.default.to_string())
                        .or_else(|| (!overridden).then(|| value.clone()));
                    synonyms.extend(broker.synonyms(b, default));
                }
            }
            msg!(DescribeConfigsResourceResult {
                config_type: topic_config::config_type(&name) as i8,
                name: s(&name),
                value: Some(s(&value)),
                read_only: false,
                config_source: if overridden {
                    Source::Topic as i8
                } else {
                    inherited as i8
                },
                synonyms,
            })
        })
        .collect()
}

/// Checks that a broker resource names this broker (or is empty: the cluster-wide default).
fn this_broker(ctx: &Context, name: &str) -> Result<(), AdminError> {
    if name.is_empty() || name == ctx.broker.config.node_id.to_string() {
        Ok(())
    } else {
        Err(refused(
            ErrorCode::InvalidRequest,
            format!(
                "Unexpected broker id, expected {} or empty string, but received {name}",
                ctx.broker.config.node_id
            ),
        ))
    }
}

/// The configs of this broker as DescribeConfigs reports them; the cluster-wide default
/// resource (empty name) has the dynamic defaults set on it, as in Kafka.
fn describe_broker(
    ctx: &Context,
    name: &str,
    wanted: &dyn Fn(&str) -> bool,
    with_synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    let broker = BrokerValues::of(&ctx.broker);
    if name.is_empty() {
        return broker
            .dynamic
            .cluster_default
            .iter()
            .filter(|(k, _)| wanted(k))
            .map(|(k, v)| {
                let config_type = broker
                    .current
                    .iter()
                    .find(|e| e.name == k.as_str())
                    .map_or(crate::config::ConfigType::String, |e| e.config_type);
                msg!(DescribeConfigsResourceResult {
                    name: s(k),
                    value: Some(s(v)),
                    read_only: false,
                    config_source: Source::DynamicDefaultBroker as i8,
                    synonyms: if with_synonyms {
                        vec![synonym(k, Some(v.clone()), Source::DynamicDefaultBroker)]
                    } else {
                        Vec::new()
                    },
                    config_type: config_type as i8,
                })
            })
            .collect();
    }
    broker
        .current
        .iter()
        .filter(|e| wanted(e.name))
        .map(|e| {
            let source = broker.get(e.name).map_or(Source::Default, |(_, s)| s);
            msg!(DescribeConfigsResourceResult {
                name: s(e.name),
                value: e.value.as_deref().map(s),
                read_only: !dynamic_config::is_dynamic(e.name),
                config_source: source as i8,
                synonyms: if with_synonyms {
                    broker.synonyms(e.name, e.value.clone())
                } else {
                    Vec::new()
                },
                config_type: e.config_type as i8,
            })
        })
        .collect()
}

/// DescribeConfigs of topics and of this broker.
pub fn describe_configs(ctx: &Context, r: DescribeConfigsRequest) -> DescribeConfigsResponse {
    let results = r
        .resources
        .into_iter()
        .map(|res| {
            let name = res.resource_name.as_str().to_string();
            // Null or empty: every config (as Kafka's ConfigHelper does).
            let keys = res.configuration_keys.clone();
            let wanted = move |k: &str| {
                keys.as_ref()
                    .is_none_or(|keys| keys.is_empty() || keys.iter().any(|x| x.as_str() == k))
            };
            let authorized = authorize_configs(
                ctx,
                res.resource_type,
                &name,
                crate::acl::Operation::DescribeConfigs,
            );
            let outcome = match res.resource_type {
                _ if authorized.is_err() => authorized.map(|()| Vec::new()),
                RESOURCE_TOPIC => match ctx.broker.topic(&name) {
                    None => Err(refused(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("no topic {name}"),
                    )),
                    Some(t) => Ok(describe_topic(ctx, &t, &wanted, r.include_synonyms)),
                },
                RESOURCE_BROKER => this_broker(ctx, &name)
                    .map(|()| describe_broker(ctx, &name, &wanted, r.include_synonyms)),
                other => Err(refused(
                    ErrorCode::InvalidRequest,
                    format!("resource type {other} has no configs here (topics: 2, brokers: 4)"),
                )),
            };
            let (configs, outcome) = match outcome {
                Ok(configs) => (configs, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            let (error_code, error_message) = code_message(outcome);
            msg!(DescribeConfigsResult {
                error_code,
                error_message,
                resource_type: res.resource_type,
                resource_name: res.resource_name,
                configs,
            })
        })
        .collect();
    msg!(DescribeConfigsResponse { results })
}

/// Refuses changes to broker configs that are fixed at start.
fn only_dynamic<'a>(keys: impl Iterator<Item = &'a str>) -> Result<(), AdminError> {
    let fixed: Vec<&str> = keys.filter(|k| !dynamic_config::is_dynamic(k)).collect();
    if fixed.is_empty() {
        return Ok(());
    }
    Err(refused(
        ErrorCode::InvalidRequest,
        format!(
            "Cannot update these configs dynamically: {}; they are set at start (config file \
             or --set). Dynamic: {}",
            fixed.join(", "),
            dynamic_config::DYNAMIC.join(", ")
        ),
    ))
}

/// AlterConfigs of a broker resource: its dynamic values become exactly the ones given.
async fn alter_broker(
    ctx: &Context,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    validate_only: bool,
) -> Result<(), AdminError> {
    this_broker(ctx, name)?;
    only_dynamic(changes.iter().map(|(k, _)| k.as_str()))?;
    let mut values = BTreeMap::new();
    for (k, v) in changes {
        let Some(v) = v else {
            return Err(refused(
                ErrorCode::InvalidRequest,
                format!("Null value not supported for : {k}"),
            ));
        };
        values.insert(k, v);
    }
    ctx.broker
        .admin_set_broker_config(name, values, validate_only)
        .await
}

/// IncrementalAlterConfigs of a broker resource: SET, DELETE, APPEND and SUBTRACT against its
/// dynamic values (APPEND/SUBTRACT against the value in force).
async fn incremental_alter_broker(
    ctx: &Context,
    name: &str,
    ops: &[(String, i8, Option<String>)],
    validate_only: bool,
) -> Result<(), AdminError> {
    this_broker(ctx, name)?;
    only_dynamic(ops.iter().map(|(k, _, _)| k.as_str()))?;
    let mut values = ctx.broker.dynamic_configs().resource(name);
    let in_force = ctx.broker.effective_config().describe();
    for (key, op, value) in ops {
        match *op {
            OP_SET => {
                values.insert(key.clone(), value.clone().unwrap_or_default());
            }
            OP_DELETE => {
                values.remove(key);
            }
            OP_APPEND | OP_SUBTRACT => {
                let entry = in_force.iter().find(|e| e.name == key.as_str());
                if entry.is_none_or(|e| e.config_type != crate::config::ConfigType::List) {
                    let verb = if *op == OP_APPEND {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err(refused(
                        ErrorCode::InvalidConfig,
                        format!("Config value {verb} is not allowed for config key: {key}"),
                    ));
                }
                let now = values
                    .get(key)
                    .cloned()
                    .or_else(|| entry.and_then(|e| e.value.clone()))
                    .unwrap_or_default();
                let given = value.as_deref().unwrap_or_default();
                values.insert(key.clone(), list_op(&now, *op, given));
            }
            other => {
                return Err(refused(
                    ErrorCode::InvalidRequest,
                    format!("unknown config operation {other} for {key}"),
                ));
            }
        }
    }
    ctx.broker
        .admin_set_broker_config(name, values, validate_only)
        .await
}

/// AlterConfigs: replaces a topic's overrides.
pub async fn alter_configs(ctx: &Context, r: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(r.resources.len());
    for res in r.resources {
        let changes: Vec<(String, Option<String>)> = res
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.as_str().to_string(),
                    c.value.as_ref().map(|v| v.as_str().to_string()),
                )
            })
            .collect();
        let authorized = authorize_configs(
            ctx,
            res.resource_type,
            res.resource_name.as_str(),
            crate::acl::Operation::AlterConfigs,
        );
        let outcome = match res.resource_type {
            _ if authorized.is_err() => authorized,
            RESOURCE_TOPIC => {
                ctx.broker
                    .admin_alter_topic_config(
                        res.resource_name.as_str(),
                        changes,
                        false,
                        r.validate_only,
                    )
                    .await
            }
            RESOURCE_BROKER => {
                alter_broker(ctx, res.resource_name.as_str(), changes, r.validate_only).await
            }
            other => Err(refused(
                ErrorCode::InvalidRequest,
                format!("resource type {other} cannot be altered"),
            )),
        };
        let (code, message) = code_message(outcome);
        responses.push(msg!(AlterConfigsResourceResponse {
            error_code: code,
            error_message: message,
            resource_type: res.resource_type,
            resource_name: res.resource_name,
        }));
    }
    msg!(AlterConfigsResponse { responses })
}

/// Applies APPEND or SUBTRACT of `values` (comma-separated) to a list config's `current`
/// value: APPEND adds the values not present yet, SUBTRACT removes those present.
fn list_op(current: &str, op: i8, values: &str) -> String {
    let split = |v: &str| -> Vec<String> {
        v.split(',')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect()
    };
    let mut list = split(current);
    let given = split(values);
    if op == OP_APPEND {
        for v in given {
            if !list.contains(&v) {
                list.push(v);
            }
        }
    } else {
        let remove: BTreeSet<String> = given.into_iter().collect();
        list.retain(|v| !remove.contains(v));
    }
    list.join(",")
}

/// The SET/DELETE changes an IncrementalAlterConfigs resource of a topic amounts to, APPEND
/// and SUBTRACT resolved against the topic's current values.
fn incremental_topic_changes(
    ctx: &Context,
    topic: &str,
    ops: &[(String, i8, Option<String>)],
) -> Result<Vec<(String, Option<String>)>, AdminError> {
    let current: BTreeMap<String, String> = match ctx.broker.topic(topic) {
        Some(t) => topic_configs(&ctx.broker, &t)
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect(),
        None => BTreeMap::new(), // the alter itself answers UNKNOWN_TOPIC_OR_PARTITION
    };
    ops.iter()
        .map(|(name, op, value)| match *op {
            OP_SET => Ok((name.clone(), value.clone())),
            OP_DELETE => Ok((name.clone(), None)),
            OP_APPEND | OP_SUBTRACT => {
                let verb = if *op == OP_APPEND {
                    "append"
                } else {
                    "subtract"
                };
                if !topic_config::is_list(name) {
                    return Err(refused(
                        ErrorCode::InvalidConfig,
                        format!("Config value {verb} is not allowed for config key: {name}"),
                    ));
                }
                let now = current.get(name).map_or("", String::as_str);
                let given = value.as_deref().unwrap_or_default();
                Ok((name.clone(), Some(list_op(now, *op, given))))
            }
            other => Err(refused(
                ErrorCode::InvalidRequest,
                format!("unknown config operation {other} for {name}"),
            )),
        })
        .collect()
}

/// IncrementalAlterConfigs: SET, DELETE, APPEND and SUBTRACT on topic overrides.
pub async fn incremental_alter_configs(
    ctx: &Context,
    r: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(r.resources.len());
    for res in r.resources {
        let ops: Vec<(String, i8, Option<String>)> = res
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.as_str().to_string(),
                    c.config_operation,
                    c.value.as_ref().map(|v| v.as_str().to_string()),
                )
            })
            .collect();
        let distinct: BTreeSet<&str> = ops.iter().map(|(k, _, _)| k.as_str()).collect();
        let authorized = authorize_configs(
            ctx,
            res.resource_type,
            res.resource_name.as_str(),
            crate::acl::Operation::AlterConfigs,
        );
        let outcome = if authorized.is_err() {
            authorized
        } else if distinct.len() != ops.len() {
            Err(refused(
                ErrorCode::InvalidRequest,
                "Error due to duplicate config keys",
            ))
        } else {
            match res.resource_type {
                RESOURCE_TOPIC => {
                    let name = res.resource_name.as_str();
                    match incremental_topic_changes(ctx, name, &ops) {
                        Ok(changes) => {
                            ctx.broker
                                .admin_alter_topic_config(name, changes, true, r.validate_only)
                                .await
                        }
                        Err(e) => Err(e),
                    }
                }
                RESOURCE_BROKER => {
                    incremental_alter_broker(ctx, res.resource_name.as_str(), &ops, r.validate_only)
                        .await
                }
                other => Err(refused(
                    ErrorCode::InvalidRequest,
                    format!("resource type {other} cannot be altered"),
                )),
            }
        };
        let (code, message) = code_message(outcome);
        responses.push(msg!(IncrementalResult {
            error_code: code,
            error_message: message,
            resource_type: res.resource_type,
            resource_name: res.resource_name,
        }));
    }
    msg!(IncrementalAlterConfigsResponse { responses })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_adds_missing_values_and_subtract_removes_present_ones() {
        assert_eq!(list_op("delete", OP_APPEND, "compact"), "delete,compact");
        assert_eq!(list_op("delete", OP_APPEND, "delete"), "delete");
        assert_eq!(list_op("", OP_APPEND, "0:1, 1:2"), "0:1,1:2");
        assert_eq!(list_op("0:1,1:2,2:3", OP_SUBTRACT, "1:2,9:9"), "0:1,2:3");
        assert_eq!(list_op("delete", OP_SUBTRACT, "delete"), "");
    }
}
