//! `strata topic ...`: create, list, describe, alter-config, add-partitions, delete, produce,
//! consume; each through the Kafka API a Java admin or client would use.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_partitions_response::CreatePartitionsResponse;
use kafka_protocol::messages::create_topics_request::{
    CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::create_topics_response::CreateTopicsResponse;
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::delete_topics_response::DeleteTopicsResponse;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchRequest, FetchTopic};
use kafka_protocol::messages::fetch_response::FetchResponse;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::produce_response::ProduceResponse;
use kafka_protocol::messages::{ApiKey, BrokerId};
use serde::Serialize;
use strata_engine::{BatchBuilder, Record, RecordReader};

use super::client::{AdminClient, AdminError, AdminResult, check, topic_name, wire_str};
use super::output::{self, Format, Table};
use super::view::{ClusterView, Detail, EARLIEST, LATEST, list_offsets};

/// `strata topic create`'s settings.
#[derive(Debug, Clone, Default)]
pub struct NewTopic {
    /// The name.
    pub name: String,
    /// Partitions (`None`: the cluster's `num.partitions`).
    pub partitions: Option<i32>,
    /// Replicas per partition (`None`: `default.replication.factor`).
    pub replication_factor: Option<i16>,
    /// Topic configs, `key=value`.
    pub configs: Vec<String>,
    /// Only check that it could be created.
    pub validate_only: bool,
}

fn key_value(kv: &str) -> AdminResult<(&str, &str)> {
    kv.split_once('=')
        .map(|(k, v)| (k.trim(), v.trim()))
        .ok_or_else(|| AdminError::Usage(format!("expected KEY=VALUE, got {kv:?}")))
}

/// Creates a topic.
pub async fn create(client: &mut AdminClient, t: &NewTopic) -> AdminResult<()> {
    let any = client.any_broker().await?;
    let version = client.version(&any, ApiKey::CreateTopics, 2, 7).await?;
    let mut topic = CreatableTopic::default();
    topic.name = topic_name(&t.name);
    topic.num_partitions = t.partitions.unwrap_or(-1);
    topic.replication_factor = t.replication_factor.unwrap_or(-1);
    for kv in &t.configs {
        let (k, v) = key_value(kv)?;
        let mut c = CreatableTopicConfig::default();
        c.name = wire_str(k);
        c.value = Some(wire_str(v));
        topic.configs.push(c);
    }
    if version < 4 && (t.partitions.is_none() || t.replication_factor.is_none()) {
        return Err(AdminError::Usage(format!(
            "{any} serves CreateTopics v{version}: give --partitions and --replication-factor"
        )));
    }
    let mut req = CreateTopicsRequest::default();
    req.topics = vec![topic];
    req.timeout_ms = 30_000;
    req.validate_only = t.validate_only;
    let r: CreateTopicsResponse = client
        .send(&any, ApiKey::CreateTopics, version, &req)
        .await?;
    for res in &r.topics {
        check(
            res.error_code,
            || format!("creating topic {:?}", t.name),
            res.error_message.as_deref(),
        )?;
    }
    Ok(())
}

/// The topic names in the cluster.
async fn names(client: &mut AdminClient) -> AdminResult<Vec<String>> {
    let md = client.metadata(None).await?;
    Ok(md
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect())
}

/// Fails with "does not exist (did you mean ...)" unless `name` is a topic.
async fn must_exist(client: &mut AdminClient, name: &str) -> AdminResult<()> {
    let all = names(client).await?;
    if all.iter().any(|t| t == name) {
        return Ok(());
    }
    Err(AdminError::Usage(format!(
        "topic {name:?} does not exist{}",
        output::suggestion(name, all.iter().map(String::as_str))
    )))
}

/// Prints the topics: partitions, replication, health, size, records.
pub async fn list(client: &mut AdminClient, internal: bool, format: Format) -> AdminResult<()> {
    let mut view = ClusterView::fetch(client, None, Detail::ALL).await?;
    view.topics.retain(|t| internal || !t.internal);
    output::print(format, &view.topics, || {
        let mut table = Table::new(&[
            "TOPIC",
            "PARTITIONS",
            "REPLICAS",
            "UNDER-REPLICATED",
            "OFFLINE",
            "RECORDS",
            "SIZE",
        ]);
        for t in &view.topics {
            table.row(vec![
                t.name.clone(),
                t.partitions.len().to_string(),
                t.replication_factor.to_string(),
                t.under_replicated().to_string(),
                t.offline().to_string(),
                t.records().map_or("?".into(), |r| r.to_string()),
                t.size_bytes.map_or("?".into(), output::bytes),
            ]);
        }
        if table.is_empty() {
            return "(no topics)\n".to_string();
        }
        table.render()
    });
    Ok(())
}

/// A topic config as `describe` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigEntry {
    /// The key.
    pub name: String,
    /// The value (`None` when sensitive or null).
    pub value: Option<String>,
    /// Where it comes from: `topic` (set on the topic), `broker`, `default`.
    pub source: &'static str,
}

async fn topic_configs(client: &mut AdminClient, name: &str) -> AdminResult<Vec<ConfigEntry>> {
    let any = client.any_broker().await?;
    let version = client.version(&any, ApiKey::DescribeConfigs, 1, 4).await?;
    let mut res = DescribeConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = wire_str(name);
    res.configuration_keys = None;
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![res];
    let r: DescribeConfigsResponse = client
        .send(&any, ApiKey::DescribeConfigs, version, &req)
        .await?;
    let mut out = Vec::new();
    for res in r.results {
        check(
            res.error_code,
            || format!("describing the configs of {name:?}"),
            res.error_message.as_deref(),
        )?;
        for c in res.configs {
            out.push(ConfigEntry {
                name: c.name.to_string(),
                value: c.value.map(|v| v.to_string()),
                source: match c.config_source {
                    1 => "topic",
                    2..=4 => "broker",
                    _ => "default",
                },
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Prints one topic: its partitions (leader, replicas, ISR, offsets, size) and the configs set
/// on it (all with `all_configs`).
pub async fn describe(
    client: &mut AdminClient,
    name: &str,
    all_configs: bool,
    format: Format,
) -> AdminResult<()> {
    must_exist(client, name).await?;
    let view = ClusterView::fetch(client, Some(&[name.to_string()]), Detail::ALL).await?;
    let topic = view.topic(name)?.clone();
    let mut configs = topic_configs(client, name).await?;
    if !all_configs {
        configs.retain(|c| c.source == "topic");
    }
    #[derive(Serialize)]
    struct Described {
        #[serde(flatten)]
        topic: super::view::TopicView,
        configs: Vec<ConfigEntry>,
    }
    let down = &view.health.brokers_down;
    output::print(
        format,
        &Described {
            topic: topic.clone(),
            configs: configs.clone(),
        },
        || {
            let mut s = format!(
                "Topic {}  id {}  partitions {}  replication factor {}  min.insync.replicas {}\n\n",
                topic.name,
                topic.topic_id,
                topic.partitions.len(),
                topic.replication_factor,
                topic
                    .min_insync_replicas
                    .map_or("?".into(), |m| m.to_string())
            );
            let mut table = Table::new(&[
                "PARTITION",
                "LEADER",
                "EPOCH",
                "REPLICAS",
                "ISR",
                "START",
                "END",
                "SIZE",
                "STATUS",
            ]);
            for p in &topic.partitions {
                let mut status = Vec::new();
                if p.offline {
                    status.push("OFFLINE".to_string());
                }
                if p.under_min_isr {
                    status.push("UNDER-MIN-ISR".to_string());
                }
                if p.under_replicated {
                    let missing: Vec<i32> = p
                        .replicas
                        .iter()
                        .filter(|r| !p.isr.contains(r))
                        .copied()
                        .collect();
                    status.push(format!(
                        "UNDER-REPLICATED (out of sync: {})",
                        output::ids(&missing)
                    ));
                }
                table.row(vec![
                    p.partition.to_string(),
                    p.leader.map_or("none".into(), |l| l.to_string()),
                    p.leader_epoch.to_string(),
                    replicas_marked(&p.replicas, down),
                    output::ids(&p.isr),
                    p.start_offset.map_or("?".into(), |o| o.to_string()),
                    p.end_offset.map_or("?".into(), |o| o.to_string()),
                    p.size_bytes.map_or("?".into(), output::bytes),
                    if status.is_empty() {
                        "ok".into()
                    } else {
                        status.join(" ")
                    },
                ]);
            }
            s.push_str(&table.render());
            if !configs.is_empty() {
                s.push('\n');
                let mut t = Table::new(&["CONFIG", "VALUE", "SOURCE"]);
                for c in &configs {
                    t.row(vec![
                        c.name.clone(),
                        c.value.clone().unwrap_or_else(|| "(sensitive)".into()),
                        c.source.to_string(),
                    ]);
                }
                s.push_str(&t.render());
            }
            s
        },
    );
    Ok(())
}

/// `1,2(down),3`: replicas with those on brokers that are down marked.
fn replicas_marked(replicas: &[i32], down: &[i32]) -> String {
    replicas
        .iter()
        .map(|r| {
            if down.contains(r) {
                format!("{r}(down)")
            } else {
                r.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Which partitions `describe_partitions` shows (none set: all).
#[derive(Debug, Clone, Copy, Default)]
pub struct PartitionFilter {
    /// Fewer in-sync replicas than replicas.
    pub under_replicated: bool,
    /// No leader.
    pub unavailable: bool,
    /// Below the topic's `min.insync.replicas`.
    pub under_min_isr: bool,
}

impl PartitionFilter {
    /// Whether any filter is set.
    pub fn any(&self) -> bool {
        self.under_replicated || self.unavailable || self.under_min_isr
    }

    fn keeps(&self, p: &super::view::PartitionView) -> bool {
        !self.any()
            || (self.under_replicated && p.under_replicated)
            || (self.unavailable && p.offline)
            || (self.under_min_isr && p.under_min_isr)
    }
}

/// One partition of `describe_partitions`.
#[derive(Debug, Clone, Serialize)]
pub struct TopicPartitionView {
    /// The topic.
    pub topic: String,
    /// The partition.
    #[serde(flatten)]
    pub partition: super::view::PartitionView,
}

/// The partitions of every topic (or `topic`) that `filter` keeps, one table across topics:
/// what an on-call engineer asks first (`--under-replicated-partitions`).
pub async fn describe_partitions(
    client: &mut AdminClient,
    topic: Option<&str>,
    filter: &PartitionFilter,
    format: Format,
) -> AdminResult<Vec<TopicPartitionView>> {
    let only: Option<Vec<String>> = topic.map(|t| vec![t.to_string()]);
    let view = ClusterView::fetch(
        client,
        only.as_deref(),
        Detail {
            sizes: false,
            offsets: false,
            min_isr: true,
        },
    )
    .await?;
    let down = view.health.brokers_down.clone();
    let rows: Vec<TopicPartitionView> = view
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| filter.keeps(p))
                .map(|p| TopicPartitionView {
                    topic: t.name.clone(),
                    partition: p.clone(),
                })
        })
        .collect();
    output::print(format, &rows, || {
        let mut table = Table::new(&[
            "TOPIC",
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "STATUS",
        ]);
        for r in &rows {
            let p = &r.partition;
            let status = if p.offline {
                "OFFLINE"
            } else if p.under_min_isr {
                "UNDER-MIN-ISR"
            } else if p.under_replicated {
                "UNDER-REPLICATED"
            } else {
                "ok"
            };
            table.row(vec![
                r.topic.clone(),
                p.partition.to_string(),
                p.leader.map_or("none".into(), |l| l.to_string()),
                p.leader_epoch.to_string(),
                replicas_marked(&p.replicas, &down),
                output::ids(&p.isr),
                status.to_string(),
            ]);
        }
        if table.is_empty() {
            if filter.any() {
                "(no such partitions)\n".to_string()
            } else {
                "(no partitions)\n".to_string()
            }
        } else {
            table.render()
        }
    });
    Ok(rows)
}

/// Sets (`set`: `key=value`) and removes (`delete`: keys, back to the default) topic configs.
pub async fn alter_config(
    client: &mut AdminClient,
    name: &str,
    set: &[String],
    delete: &[String],
) -> AdminResult<()> {
    if set.is_empty() && delete.is_empty() {
        return Err(AdminError::Usage(
            "nothing to change: give --set KEY=VALUE or --delete KEY".into(),
        ));
    }
    must_exist(client, name).await?;
    let any = client.any_broker().await?;
    let version = client
        .version(&any, ApiKey::IncrementalAlterConfigs, 0, 1)
        .await?;
    let mut res = AlterConfigsResource::default();
    res.resource_type = 2;
    res.resource_name = wire_str(name);
    for kv in set {
        let (k, v) = key_value(kv)?;
        let mut c = AlterableConfig::default();
        c.name = wire_str(k);
        c.config_operation = 0;
        c.value = Some(wire_str(v));
        res.configs.push(c);
    }
    for k in delete {
        let mut c = AlterableConfig::default();
        c.name = wire_str(k);
        c.config_operation = 1;
        res.configs.push(c);
    }
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![res];
    let r: IncrementalAlterConfigsResponse = client
        .send(&any, ApiKey::IncrementalAlterConfigs, version, &req)
        .await?;
    for res in r.responses {
        check(
            res.error_code,
            || format!("altering the configs of {name:?}"),
            res.error_message.as_deref(),
        )?;
    }
    Ok(())
}

/// Raises a topic's partition count to `count`.
pub async fn add_partitions(client: &mut AdminClient, name: &str, count: i32) -> AdminResult<()> {
    must_exist(client, name).await?;
    let any = client.any_broker().await?;
    let version = client.version(&any, ApiKey::CreatePartitions, 0, 3).await?;
    let mut t = CreatePartitionsTopic::default();
    t.name = topic_name(name);
    t.count = count;
    t.assignments = None;
    let mut req = CreatePartitionsRequest::default();
    req.topics = vec![t];
    req.timeout_ms = 30_000;
    let r: CreatePartitionsResponse = client
        .send(&any, ApiKey::CreatePartitions, version, &req)
        .await?;
    for res in r.results {
        check(
            res.error_code,
            || format!("adding partitions to {name:?}"),
            res.error_message.as_deref(),
        )?;
    }
    Ok(())
}

/// Deletes topics.
pub async fn delete(client: &mut AdminClient, topics: &[String]) -> AdminResult<()> {
    for name in topics {
        must_exist(client, name).await?;
    }
    let any = client.any_broker().await?;
    let version = client.version(&any, ApiKey::DeleteTopics, 1, 6).await?;
    let mut req = DeleteTopicsRequest::default();
    req.timeout_ms = 30_000;
    if version >= 6 {
        req.topics = topics
            .iter()
            .map(|t| {
                let mut s = DeleteTopicState::default();
                s.name = Some(topic_name(t));
                s
            })
            .collect();
    } else {
        req.topic_names = topics.iter().map(|t| topic_name(t)).collect();
    }
    let r: DeleteTopicsResponse = client
        .send(&any, ApiKey::DeleteTopics, version, &req)
        .await?;
    for res in r.responses {
        let name = res.name.map(|n| n.0.to_string()).unwrap_or_default();
        check(
            res.error_code,
            || format!("deleting topic {name:?}"),
            res.error_message.as_deref(),
        )?;
    }
    Ok(())
}

/// The partition of a keyed record among `partitions`, as Kafka's default partitioner
/// chooses it (murmur2 of the key, positive, modulo the count), so records keyed here land
/// where a Java or librdkafka producer with the default partitioner puts the same key.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    let hash = murmur2::murmur2(key, 0x9747_b28c) & 0x7fff_ffff;
    (hash % partitions.max(1) as u32) as i32
}

/// How `produce` reads its input.
#[derive(Debug, Clone, Default)]
pub struct ProduceOptions {
    /// Every record to this partition (else: by key, or spread when unkeyed).
    pub partition: Option<i32>,
    /// Splits each line into key and value at its first occurrence.
    pub key_separator: Option<String>,
    /// `acks`: -1 (all), 1 or 0.
    pub acks: i16,
}

/// Produces one record per line of `input`; returns how many were acknowledged.
pub async fn produce(
    client: &mut AdminClient,
    topic: &str,
    input: impl BufRead,
    options: &ProduceOptions,
) -> AdminResult<u64> {
    must_exist(client, topic).await?;
    let view = ClusterView::fetch(client, Some(&[topic.to_string()]), Detail::default()).await?;
    let t = view.topic(topic)?;
    let count = t.partitions.len() as i32;
    if let Some(p) = options.partition
        && !(0..count).contains(&p)
    {
        return Err(AdminError::Usage(format!(
            "{topic} has partitions 0-{} (asked for {p})",
            count - 1
        )));
    }
    let leaders: BTreeMap<i32, Option<i32>> = t
        .partitions
        .iter()
        .map(|p| (p.partition, p.leader))
        .collect();
    let mut pending: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    let mut sent = 0u64;
    let mut spread = 0i32;
    let mut pending_bytes = 0usize;
    for line in input.lines() {
        let line = line.map_err(|e| AdminError::Usage(format!("reading input: {e}")))?;
        let (key, value) = match &options.key_separator {
            Some(sep) => match line.split_once(sep.as_str()) {
                Some((k, v)) => (Some(k.to_string()), v.to_string()),
                None => (None, line.clone()),
            },
            None => (None, line.clone()),
        };
        let partition = match (options.partition, &key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k.as_bytes(), count),
            (None, None) => {
                spread = (spread + 1) % count;
                spread
            }
        };
        pending_bytes += line.len();
        let mut record = Record::new(Bytes::from(value));
        if let Some(k) = key {
            record = record.key(Bytes::from(k));
        }
        pending.entry(partition).or_default().push(record);
        if pending_bytes >= 512 << 10 {
            sent += send_batches(client, topic, &leaders, &mut pending, options.acks).await?;
            pending_bytes = 0;
        }
    }
    sent += send_batches(client, topic, &leaders, &mut pending, options.acks).await?;
    Ok(sent)
}

async fn send_batches(
    client: &mut AdminClient,
    topic: &str,
    leaders: &BTreeMap<i32, Option<i32>>,
    pending: &mut BTreeMap<i32, Vec<Record>>,
    acks: i16,
) -> AdminResult<u64> {
    let mut by_leader: BTreeMap<i32, Vec<(i32, Bytes, u64)>> = BTreeMap::new();
    for (partition, records) in std::mem::take(pending) {
        let n = records.len() as u64;
        let leader = leaders.get(&partition).copied().flatten().ok_or_else(|| {
            AdminError::Usage(format!("{topic}-{partition} has no leader (offline)"))
        })?;
        let batch = BatchBuilder::new()
            .records(records)
            .build()
            .map_err(|e| AdminError::Usage(format!("building a batch: {e}")))?;
        by_leader
            .entry(leader)
            .or_default()
            .push((partition, batch.freeze(), n));
    }
    let mut sent = 0;
    for (leader, batches) in by_leader {
        let addr = client.broker_addr(leader).await?;
        let version = client.version(&addr, ApiKey::Produce, 3, 9).await?;
        let mut td = TopicProduceData::default();
        td.name = topic_name(topic);
        for (partition, records, _) in &batches {
            let mut pd = PartitionProduceData::default();
            pd.index = *partition;
            pd.records = Some(records.clone());
            td.partition_data.push(pd);
        }
        let mut req = ProduceRequest::default();
        req.acks = acks;
        req.timeout_ms = 30_000;
        req.topic_data = vec![td];
        if acks == 0 {
            // No answer comes: the request is only written.
            let _ = client
                .send::<_, ProduceResponse>(&addr, ApiKey::Produce, version, &req)
                .await;
            sent += batches.iter().map(|b| b.2).sum::<u64>();
            continue;
        }
        let r: ProduceResponse = client.send(&addr, ApiKey::Produce, version, &req).await?;
        for t in r.responses {
            for p in t.partition_responses {
                check(
                    p.error_code,
                    || format!("producing to {topic}-{}", p.index),
                    p.error_message.as_deref(),
                )?;
                sent += batches.iter().find(|b| b.0 == p.index).map_or(0, |b| b.2);
            }
        }
    }
    Ok(sent)
}

/// Where `consume` starts in each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The log start.
    Beginning,
    /// The log end: only records produced from now on.
    End,
    /// This offset (in every partition consumed).
    Offset(i64),
}

/// How `consume` reads and prints.
#[derive(Debug, Clone)]
pub struct ConsumeOptions {
    /// Only this partition.
    pub partition: Option<i32>,
    /// Where to start.
    pub start: StartAt,
    /// Stop after this many records.
    pub count: Option<u64>,
    /// Stop at the end offsets that held when the command started.
    pub exit_at_end: bool,
    /// Print `key<separator>value`.
    pub print_key: Option<String>,
    /// Read only committed transactions' records.
    pub read_committed: bool,
    /// Lines or JSON objects.
    pub format: Format,
    /// Show a progress bar on the terminal when counting.
    pub progress: bool,
}

/// One consumed record, as `--format json` prints it.
#[derive(Debug, Serialize)]
struct Consumed<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp: i64,
    key: Option<String>,
    value: Option<String>,
    headers: BTreeMap<String, String>,
}

/// Prints records of `topic` to `out` until `options` say stop; returns how many.
pub async fn consume(
    client: &mut AdminClient,
    topic: &str,
    options: &ConsumeOptions,
    out: &mut impl Write,
) -> AdminResult<u64> {
    must_exist(client, topic).await?;
    let view = ClusterView::fetch(client, Some(&[topic.to_string()]), Detail::default()).await?;
    let t = view.topic(topic)?;
    let mut leaders: BTreeMap<i32, Option<i32>> = t
        .partitions
        .iter()
        .filter(|p| options.partition.is_none_or(|only| only == p.partition))
        .map(|p| (p.partition, p.leader))
        .collect();
    if let Some(p) = options.partition
        && leaders.is_empty()
    {
        return Err(AdminError::Usage(format!(
            "{topic} has partitions 0-{} (asked for {p})",
            t.partitions.len().saturating_sub(1)
        )));
    }
    let located: Vec<(String, i32, i32)> = leaders
        .iter()
        .filter_map(|(p, l)| Some((topic.to_string(), *p, (*l)?)))
        .collect();
    let mut positions: BTreeMap<i32, i64> = match options.start {
        StartAt::Offset(o) => leaders.keys().map(|p| (*p, o)).collect(),
        StartAt::Beginning | StartAt::End => {
            let at = if options.start == StartAt::End {
                LATEST
            } else {
                EARLIEST
            };
            list_offsets(client, &located, at)
                .await?
                .into_iter()
                .map(|((_, p), o)| (p, o))
                .collect()
        }
    };
    let ends: BTreeMap<i32, i64> = list_offsets(client, &located, LATEST)
        .await?
        .into_iter()
        .map(|((_, p), o)| (p, o))
        .collect();
    for p in leaders.keys() {
        positions.entry(*p).or_insert(0);
    }
    let bar = match (options.count, options.progress) {
        (Some(n), true) => {
            let b = indicatif::ProgressBar::new(n);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {pos}/{len} records [{bar:30}] {per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            Some(b)
        }
        _ => None,
    };
    let mut printed = 0u64;
    let write_err = |e: std::io::Error| AdminError::Usage(format!("writing output: {e}"));
    loop {
        if options.count.is_some_and(|n| printed >= n) {
            break;
        }
        if options.exit_at_end
            && positions
                .iter()
                .all(|(p, o)| ends.get(p).is_none_or(|end| o >= end))
        {
            break;
        }
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (p, l) in &leaders {
            if let Some(l) = l {
                by_leader.entry(*l).or_default().push(*p);
            }
        }
        if by_leader.is_empty() {
            return Err(AdminError::Usage(format!(
                "no partition of {topic} has a leader"
            )));
        }
        let mut stale = false;
        for (leader, partitions) in by_leader {
            let addr = client.broker_addr(leader).await?;
            let version = client.version(&addr, ApiKey::Fetch, 4, 12).await?;
            let mut ft = FetchTopic::default();
            ft.topic = topic_name(topic);
            ft.partitions = partitions
                .iter()
                .map(|p| {
                    let mut fp = FetchPartition::default();
                    fp.partition = *p;
                    fp.fetch_offset = positions[p];
                    fp.current_leader_epoch = -1;
                    fp.last_fetched_epoch = -1;
                    fp.log_start_offset = -1;
                    fp.partition_max_bytes = 1 << 20;
                    fp
                })
                .collect();
            let mut req = FetchRequest::default();
            req.replica_id = BrokerId(-1);
            req.max_wait_ms = 500;
            req.min_bytes = 1;
            req.max_bytes = 16 << 20;
            req.isolation_level = i8::from(options.read_committed);
            req.session_id = 0;
            req.session_epoch = -1;
            req.topics = vec![ft];
            let r: FetchResponse = match client.send(&addr, ApiKey::Fetch, version, &req).await {
                Ok(r) => r,
                Err(_) => {
                    stale = true;
                    continue;
                }
            };
            for rt in r.responses {
                for pd in rt.partitions {
                    let p = pd.partition_index;
                    match pd.error_code {
                        0 => {}
                        // Leadership moved: look the leaders up again.
                        6 | 3 | 74 | 75 => {
                            stale = true;
                            continue;
                        }
                        1 => {
                            // Out of range: restart at the log start (as auto.offset.reset=earliest).
                            positions.insert(p, pd.log_start_offset.max(0));
                            continue;
                        }
                        code => {
                            return Err(AdminError::kafka(
                                format!("fetching {topic}-{p}"),
                                code,
                                None,
                            ));
                        }
                    }
                    let Some(records) = pd.records else {
                        continue;
                    };
                    let from = positions[&p];
                    let (whole, last) = whole_batches(&records);
                    for record in
                        RecordReader::new(records.slice(..whole), strata_engine::Offset(from))
                    {
                        let record = record.map_err(|e| {
                            AdminError::Usage(format!("{topic}-{p} at {from}: {e}"))
                        })?;
                        let offset = record.offset.value();
                        positions.insert(p, offset + 1);
                        if options.count.is_some_and(|n| printed >= n) {
                            break;
                        }
                        print_record(out, topic, p, record, options).map_err(write_err)?;
                        printed += 1;
                        if let Some(b) = &bar {
                            b.set_position(printed);
                        }
                    }
                    // Past batches with nothing to print (control batches, compacted gaps).
                    if let Some(next) = last {
                        let at = positions[&p].max(next + 1);
                        positions.insert(p, at);
                    }
                }
            }
        }
        out.flush().map_err(write_err)?;
        if stale {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let view =
                ClusterView::fetch(client, Some(&[topic.to_string()]), Detail::default()).await?;
            for p in &view.topic(topic)?.partitions {
                if let Some(l) = leaders.get_mut(&p.partition) {
                    *l = p.leader;
                }
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(printed)
}

/// The whole batches at the start of `records` (a fetch may end inside one): their length,
/// and the last offset of the last of them.
fn whole_batches(records: &[u8]) -> (usize, Option<i64>) {
    let mut at = 0;
    let mut last = None;
    while let Some(rest) = records.get(at..) {
        let Ok(header) = strata_engine::batch::parse_header(rest, at) else {
            break;
        };
        if header.size() > rest.len() {
            break;
        }
        at += header.size();
        last = Some(header.last_offset().value());
    }
    (at, last)
}

fn print_record(
    out: &mut impl Write,
    topic: &str,
    partition: i32,
    r: strata_engine::StoredRecord,
    options: &ConsumeOptions,
) -> std::io::Result<()> {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match options.format {
        Format::Json => {
            let c = Consumed {
                topic,
                partition,
                offset: r.offset.value(),
                timestamp: r.timestamp,
                key: text(&r.key),
                value: text(&r.value),
                headers: r
                    .headers
                    .iter()
                    .map(|h| (h.key.clone(), text(&h.value).unwrap_or_default()))
                    .collect(),
            };
            writeln!(out, "{}", serde_json::to_string(&c).unwrap_or_default())
        }
        Format::Table => {
            if let Some(sep) = &options.print_key {
                write!(out, "{}{sep}", text(&r.key).unwrap_or_default())?;
            }
            writeln!(out, "{}", text(&r.value).unwrap_or_default())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_go_where_kafkas_default_partitioner_puts_them() {
        // Kafka's own test vectors of its murmur2 (seed 0x9747b28c).
        assert_eq!(murmur2::murmur2(b"21", 0x9747_b28c) as i32, -973932308);
        assert_eq!(murmur2::murmur2(b"foobar", 0x9747_b28c) as i32, -790332482);
        assert_eq!(
            murmur2::murmur2(b"a-little-bit-long-string", 0x9747_b28c) as i32,
            -985981536
        );
        assert_eq!(
            partition_for_key(b"21", 10),
            ((-973932308i32 & 0x7fffffff) % 10)
        );
    }

    #[test]
    fn a_fetch_cut_inside_a_batch_keeps_its_whole_batches() {
        let one = BatchBuilder::new()
            .record(Record::new("a"))
            .build()
            .unwrap();
        let mut two = one.to_vec();
        two.extend_from_slice(&one);
        // The second batch at offset 5 (the base offset lies outside the CRC).
        two[one.len()..one.len() + 8].copy_from_slice(&5i64.to_be_bytes());
        assert_eq!(whole_batches(&two), (two.len(), Some(5)));
        assert_eq!(whole_batches(&two[..two.len() - 3]), (one.len(), Some(0)));
        assert_eq!(whole_batches(&two[..5]), (0, None));
        assert_eq!(whole_batches(&[]), (0, None));
    }
}
