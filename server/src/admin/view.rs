//! `ClusterView`: one look at a cluster through the Kafka APIs any admin client has (Metadata,
//! DescribeCluster, DescribeLogDirs, DescribeConfigs, ListOffsets): brokers and their states,
//! topics with partitions, leaders, ISR, sizes and end offsets, and the health that follows.
//! `strata cluster info|health`, `strata topic list|describe` and the console all read it.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterResponse;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResponse;
use kafka_protocol::messages::describe_log_dirs_request::DescribeLogDirsRequest;
use kafka_protocol::messages::describe_log_dirs_response::DescribeLogDirsResponse;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::list_offsets_response::ListOffsetsResponse;
use kafka_protocol::messages::{ApiKey, BrokerId};
use serde::Serialize;

use super::client::{AdminClient, AdminError, AdminResult, topic_name, wire_str};

/// Whether a broker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BrokerState {
    /// Registered and serving.
    Up,
    /// Registered but fenced by the controller: it stopped heartbeating (down, or cut off).
    Fenced,
    /// Named as a replica but not registered at all (never started, or unregistered).
    Missing,
}

impl BrokerState {
    /// How the tables print it.
    pub fn label(self) -> &'static str {
        match self {
            BrokerState::Up => "up",
            BrokerState::Fenced => "DOWN (fenced)",
            BrokerState::Missing => "DOWN (not registered)",
        }
    }
}

/// One broker.
#[derive(Debug, Clone, Serialize)]
pub struct BrokerView {
    /// `node.id`.
    pub id: i32,
    /// Advertised host ("" when unknown).
    pub host: String,
    /// Advertised port (0 when unknown).
    pub port: i32,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// Up or down.
    pub state: BrokerState,
    /// Partitions it leads.
    pub leaders: usize,
    /// Replicas it holds.
    pub replicas: usize,
    /// Bytes of its replicas, when DescribeLogDirs answered.
    pub size_bytes: Option<u64>,
}

impl BrokerView {
    fn new(id: i32, host: &str, port: i32, rack: Option<&str>, state: BrokerState) -> BrokerView {
        BrokerView {
            id,
            host: host.to_string(),
            port,
            rack: rack.map(str::to_string),
            state,
            leaders: 0,
            replicas: 0,
            size_bytes: None,
        }
    }
}

/// One partition.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionView {
    /// The partition index.
    pub partition: i32,
    /// The leader, `None` when offline.
    pub leader: Option<i32>,
    /// The leader epoch.
    pub leader_epoch: i32,
    /// Replicas, the preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas on brokers that are down.
    pub offline_replicas: Vec<i32>,
    /// Fewer in-sync replicas than replicas.
    pub under_replicated: bool,
    /// Fewer in-sync replicas than the topic's `min.insync.replicas`: acks=all produces fail.
    pub under_min_isr: bool,
    /// No leader: neither produce nor consume works.
    pub offline: bool,
    /// The log start offset, when asked for.
    pub start_offset: Option<i64>,
    /// The end offset (high watermark), when asked for.
    pub end_offset: Option<i64>,
    /// Bytes of the leader's replica, when DescribeLogDirs answered.
    pub size_bytes: Option<u64>,
}

/// One topic.
#[derive(Debug, Clone, Serialize)]
pub struct TopicView {
    /// The name.
    pub name: String,
    /// The topic id.
    pub topic_id: String,
    /// An internal topic (`__consumer_offsets`, `__transaction_state`).
    pub internal: bool,
    /// Replicas per partition (of partition 0).
    pub replication_factor: usize,
    /// `min.insync.replicas`, when DescribeConfigs answered.
    pub min_insync_replicas: Option<usize>,
    /// Its partitions, by index.
    pub partitions: Vec<PartitionView>,
    /// Bytes of its leaders' replicas, when known.
    pub size_bytes: Option<u64>,
}

impl TopicView {
    /// Partitions with fewer in-sync replicas than replicas.
    pub fn under_replicated(&self) -> usize {
        self.partitions
            .iter()
            .filter(|p| p.under_replicated)
            .count()
    }

    /// Partitions without a leader.
    pub fn offline(&self) -> usize {
        self.partitions.iter().filter(|p| p.offline).count()
    }

    /// Records between start and end offsets, when known.
    pub fn records(&self) -> Option<i64> {
        self.partitions
            .iter()
            .map(|p| Some(p.end_offset? - p.start_offset?))
            .sum()
    }
}

/// A voter of the metadata quorum.
#[derive(Debug, Clone, Serialize)]
pub struct VoterView {
    /// Node id.
    pub id: i32,
    /// Its metadata log end offset.
    pub log_end_offset: i64,
    /// How far it is behind the high watermark.
    pub lag: i64,
    /// Milliseconds since the active controller last heard from it, if known.
    pub last_contact_ms_ago: Option<i64>,
    /// Heard from within the last few seconds (the active controller always is).
    pub reachable: bool,
}

/// The metadata quorum (DescribeQuorum).
#[derive(Debug, Clone, Serialize)]
pub struct QuorumView {
    /// The active controller.
    pub leader: i32,
    /// Its epoch (Raft term).
    pub epoch: i32,
    /// The committed metadata offset.
    pub high_watermark: i64,
    /// Every voter.
    pub voters: Vec<VoterView>,
}

/// A voter not heard from for this long is reported unreachable.
pub const VOTER_SILENCE_MS: i64 = 5_000;

/// What is wrong, if anything.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Health {
    /// Nothing below.
    pub healthy: bool,
    /// Brokers that are not up.
    pub brokers_down: Vec<i32>,
    /// `topic-partition`s without a leader.
    pub offline_partitions: Vec<String>,
    /// `topic-partition`s below `min.insync.replicas`.
    pub under_min_isr_partitions: Vec<String>,
    /// `topic-partition`s with fewer in-sync replicas than replicas.
    pub under_replicated_partitions: Vec<String>,
    /// Quorum voters the active controller has not heard from lately.
    pub controllers_unreachable: Vec<i32>,
    /// Why the quorum could not be described (no active controller, say), if it could not.
    pub quorum_error: Option<String>,
}

/// One look at a cluster.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The cluster id.
    pub cluster_id: Option<String>,
    /// The active controller (the quorum's leader; where DescribeQuorum is not served, the
    /// controller DescribeCluster names).
    pub controller: Option<i32>,
    /// The metadata quorum, where the cluster serves DescribeQuorum.
    pub quorum: Option<QuorumView>,
    /// Every broker, up or down, by id.
    pub brokers: Vec<BrokerView>,
    /// Every topic, by name.
    pub topics: Vec<TopicView>,
    /// What follows from the above.
    pub health: Health,
}

/// What to ask for beyond Metadata and DescribeCluster.
#[derive(Debug, Clone, Copy, Default)]
pub struct Detail {
    /// Replica sizes (DescribeLogDirs to every broker up).
    pub sizes: bool,
    /// Start and end offsets (ListOffsets to every leader).
    pub offsets: bool,
    /// `min.insync.replicas` of every topic (DescribeConfigs).
    pub min_isr: bool,
}

impl Detail {
    /// Everything.
    pub const ALL: Detail = Detail {
        sizes: true,
        offsets: true,
        min_isr: true,
    };
}

impl ClusterView {
    /// Looks at the cluster; `topics` limits the topics (`None`: all).
    pub async fn fetch(
        client: &mut AdminClient,
        topics: Option<&[String]>,
        detail: Detail,
    ) -> AdminResult<ClusterView> {
        let md = client.metadata(topics).await?;
        let mut brokers: BTreeMap<i32, BrokerView> = md
            .brokers
            .iter()
            .map(|b| {
                let rack = b.rack.as_deref();
                let view = BrokerView::new(b.node_id.0, &b.host, b.port, rack, BrokerState::Up);
                (b.node_id.0, view)
            })
            .collect();
        let mut cluster_id = md.cluster_id.as_ref().map(|c| c.to_string());
        let mut controller = (md.controller_id.0 >= 0).then_some(md.controller_id.0);
        // DescribeCluster v2 also lists fenced brokers (KIP-1073); older brokers list the
        // live ones, as Metadata does.
        let any = client.any_broker().await?;
        if let Ok(version) = client.version(&any, ApiKey::DescribeCluster, 0, 2).await {
            let mut req = DescribeClusterRequest::default();
            req.include_fenced_brokers = version >= 2;
            req.endpoint_type = 1;
            let r: DescribeClusterResponse = client
                .send(&any, ApiKey::DescribeCluster, version, &req)
                .await?;
            if r.error_code == 0 {
                cluster_id = Some(r.cluster_id.to_string());
                controller = (r.controller_id.0 >= 0).then_some(r.controller_id.0);
                for b in &r.brokers {
                    let view = brokers.entry(b.broker_id.0).or_insert_with(|| {
                        let rack = b.rack.as_deref();
                        BrokerView::new(b.broker_id.0, &b.host, b.port, rack, BrokerState::Up)
                    });
                    if b.is_fenced {
                        view.state = BrokerState::Fenced;
                    }
                }
            }
        }
        let mut quorum = None;
        let mut quorum_error = None;
        if let Ok(version) = client.version(&any, ApiKey::DescribeQuorum, 0, 2).await {
            match describe_quorum(client, &any, version).await {
                Ok(q) => {
                    controller = Some(q.leader);
                    quorum = Some(q);
                }
                Err(e) => quorum_error = Some(e.to_string()),
            }
        }
        let mut views = Vec::new();
        for t in &md.topics {
            let Some(name) = t.name.as_ref().map(|n| n.0.to_string()) else {
                continue;
            };
            if t.error_code != 0 {
                if topics.is_none() {
                    continue;
                }
                if t.error_code == 3 {
                    let all = client.metadata(None).await?;
                    let names: Vec<String> = all
                        .topics
                        .iter()
                        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
                        .collect();
                    return Err(AdminError::Usage(format!(
                        "topic {name:?} does not exist{}",
                        super::output::suggestion(&name, names.iter().map(String::as_str))
                    )));
                }
                return Err(AdminError::kafka(
                    format!("topic {name:?}"),
                    t.error_code,
                    None,
                ));
            }
            let mut partitions: Vec<PartitionView> = t
                .partitions
                .iter()
                .map(|p| {
                    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
                    let replicas = ids(&p.replica_nodes);
                    let isr = ids(&p.isr_nodes);
                    PartitionView {
                        partition: p.partition_index,
                        leader: (p.leader_id.0 >= 0).then_some(p.leader_id.0),
                        leader_epoch: p.leader_epoch,
                        under_replicated: isr.len() < replicas.len(),
                        under_min_isr: false,
                        offline: p.leader_id.0 < 0,
                        offline_replicas: ids(&p.offline_replicas),
                        replicas,
                        isr,
                        start_offset: None,
                        end_offset: None,
                        size_bytes: None,
                    }
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            views.push(TopicView {
                replication_factor: partitions.first().map_or(0, |p| p.replicas.len()),
                name,
                topic_id: t.topic_id.to_string(),
                internal: t.is_internal || t.name.as_ref().is_some_and(|n| n.0.starts_with("__")),
                min_insync_replicas: None,
                partitions,
                size_bytes: None,
            });
        }
        views.sort_by(|a, b| a.name.cmp(&b.name));
        // Brokers named as replicas that no answer listed.
        for t in &views {
            for p in &t.partitions {
                for r in &p.replicas {
                    brokers
                        .entry(*r)
                        .or_insert_with(|| BrokerView::new(*r, "", 0, None, BrokerState::Missing));
                }
            }
        }
        for t in &views {
            for p in &t.partitions {
                for r in &p.replicas {
                    if let Some(b) = brokers.get_mut(r) {
                        b.replicas += 1;
                    }
                }
                if let Some(b) = p.leader.and_then(|l| brokers.get_mut(&l)) {
                    b.leaders += 1;
                }
            }
        }
        let mut view = ClusterView {
            cluster_id,
            controller,
            quorum,
            brokers: brokers.into_values().collect(),
            topics: views,
            health: Health::default(),
        };
        if detail.sizes {
            view.fill_sizes(client).await;
        }
        if detail.min_isr {
            view.fill_min_isr(client).await?;
        }
        if detail.offsets {
            view.fill_offsets(client).await?;
        }
        view.health = view.judge();
        view.health.quorum_error = quorum_error;
        view.health.healthy &= view.health.quorum_error.is_none();
        Ok(view)
    }

    fn judge(&self) -> Health {
        let mut h = Health {
            brokers_down: self
                .brokers
                .iter()
                .filter(|b| b.state != BrokerState::Up)
                .map(|b| b.id)
                .collect(),
            ..Health::default()
        };
        for t in &self.topics {
            for p in &t.partitions {
                let name = format!("{}-{}", t.name, p.partition);
                if p.offline {
                    h.offline_partitions.push(name.clone());
                }
                if p.under_min_isr {
                    h.under_min_isr_partitions.push(name.clone());
                }
                if p.under_replicated {
                    h.under_replicated_partitions.push(name);
                }
            }
        }
        h.controllers_unreachable = self
            .quorum
            .iter()
            .flat_map(|q| q.voters.iter().filter(|v| !v.reachable).map(|v| v.id))
            .collect();
        h.healthy = h.brokers_down.is_empty()
            && h.controllers_unreachable.is_empty()
            && h.offline_partitions.is_empty()
            && h.under_min_isr_partitions.is_empty()
            && h.under_replicated_partitions.is_empty();
        h
    }

    /// Sizes from DescribeLogDirs of every broker up; a broker that does not answer leaves
    /// its replicas' sizes unknown.
    async fn fill_sizes(&mut self, client: &mut AdminClient) {
        let mut sizes: BTreeMap<(i32, String, i32), u64> = BTreeMap::new();
        for b in self
            .brokers
            .iter_mut()
            .filter(|b| b.state == BrokerState::Up)
        {
            let addr = format!("{}:{}", b.host, b.port);
            let Ok(version) = client.version(&addr, ApiKey::DescribeLogDirs, 1, 4).await else {
                continue;
            };
            let mut req = DescribeLogDirsRequest::default();
            req.topics = None; // every replica
            let Ok(r) = client
                .send::<_, DescribeLogDirsResponse>(&addr, ApiKey::DescribeLogDirs, version, &req)
                .await
            else {
                continue;
            };
            let mut total = 0;
            for dir in r.results.iter().filter(|d| d.error_code == 0) {
                for t in &dir.topics {
                    for p in &t.partitions {
                        let size = u64::try_from(p.partition_size).unwrap_or(0);
                        total += size;
                        *sizes
                            .entry((b.id, t.name.0.to_string(), p.partition_index))
                            .or_default() += size;
                    }
                }
            }
            b.size_bytes = Some(total);
        }
        for t in &mut self.topics {
            let mut total = Some(0u64);
            for p in &mut t.partitions {
                p.size_bytes = p
                    .leader
                    .and_then(|l| sizes.get(&(l, t.name.clone(), p.partition)).copied());
                total = total.zip(p.size_bytes).map(|(a, b)| a + b);
            }
            t.size_bytes = total;
        }
    }

    async fn fill_min_isr(&mut self, client: &mut AdminClient) -> AdminResult<()> {
        if self.topics.is_empty() {
            return Ok(());
        }
        let any = client.any_broker().await?;
        let version = client.version(&any, ApiKey::DescribeConfigs, 1, 4).await?;
        let mut req = DescribeConfigsRequest::default();
        req.resources = self
            .topics
            .iter()
            .map(|t| {
                let mut r = DescribeConfigsResource::default();
                r.resource_type = 2;
                r.resource_name = wire_str(&t.name);
                r.configuration_keys = Some(vec![wire_str("min.insync.replicas")]);
                r
            })
            .collect();
        let r: DescribeConfigsResponse = client
            .send(&any, ApiKey::DescribeConfigs, version, &req)
            .await?;
        let by_topic: BTreeMap<String, usize> = r
            .results
            .iter()
            .filter(|r| r.error_code == 0)
            .filter_map(|r| {
                let v = r
                    .configs
                    .iter()
                    .find(|c| c.name.as_str() == "min.insync.replicas")?;
                Some((r.resource_name.to_string(), v.value.as_ref()?.parse().ok()?))
            })
            .collect();
        for t in &mut self.topics {
            t.min_insync_replicas = by_topic.get(&t.name).copied();
            if let Some(min) = t.min_insync_replicas {
                for p in &mut t.partitions {
                    p.under_min_isr = !p.offline && p.isr.len() < min.min(p.replicas.len());
                }
            }
        }
        Ok(())
    }

    async fn fill_offsets(&mut self, client: &mut AdminClient) -> AdminResult<()> {
        let partitions: Vec<(String, i32, i32)> = self
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter_map(|p| Some((t.name.clone(), p.partition, p.leader?)))
            })
            .collect();
        let start = list_offsets(client, &partitions, EARLIEST).await?;
        let end = list_offsets(client, &partitions, LATEST).await?;
        for t in &mut self.topics {
            for p in &mut t.partitions {
                let key = (t.name.clone(), p.partition);
                p.start_offset = start.get(&key).copied();
                p.end_offset = end.get(&key).copied();
            }
        }
        Ok(())
    }

    /// The topic named `name`, or an error that suggests the closest name.
    pub fn topic(&self, name: &str) -> AdminResult<&TopicView> {
        self.topics.iter().find(|t| t.name == name).ok_or_else(|| {
            AdminError::Usage(format!(
                "topic {name:?} does not exist{}",
                super::output::suggestion(name, self.topics.iter().map(|t| t.name.as_str()))
            ))
        })
    }
}

/// DescribeQuorum of the metadata log at `addr`.
async fn describe_quorum(
    client: &mut AdminClient,
    addr: &str,
    version: i16,
) -> AdminResult<QuorumView> {
    use kafka_protocol::messages::describe_quorum_request::{
        DescribeQuorumRequest, PartitionData, TopicData,
    };
    use kafka_protocol::messages::describe_quorum_response::DescribeQuorumResponse;
    let mut p = PartitionData::default();
    p.partition_index = 0;
    let mut t = TopicData::default();
    t.topic_name = topic_name("__cluster_metadata");
    t.partitions = vec![p];
    let mut req = DescribeQuorumRequest::default();
    req.topics = vec![t];
    let r: DescribeQuorumResponse = client
        .send(addr, ApiKey::DescribeQuorum, version, &req)
        .await?;
    super::client::check(
        r.error_code,
        || "describing the metadata quorum".into(),
        r.error_message.as_deref(),
    )?;
    let p = r
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .ok_or_else(|| AdminError::Usage("DescribeQuorum answered no partition".into()))?;
    super::client::check(
        p.error_code,
        || "describing the metadata quorum".into(),
        p.error_message.as_deref(),
    )?;
    let now = crate::clock::now_ms();
    let voters = p
        .current_voters
        .iter()
        .map(|v| {
            let ago = (v.last_fetch_timestamp >= 0).then(|| (now - v.last_fetch_timestamp).max(0));
            VoterView {
                id: v.replica_id.0,
                log_end_offset: v.log_end_offset,
                lag: (p.high_watermark - v.log_end_offset).max(0),
                last_contact_ms_ago: ago,
                // Before v1 there are no times: only the leader is known to be there.
                reachable: v.replica_id == p.leader_id
                    || ago.is_some_and(|a| a <= VOTER_SILENCE_MS)
                    || (version == 0 && v.log_end_offset >= p.high_watermark),
            }
        })
        .collect();
    Ok(QuorumView {
        leader: p.leader_id.0,
        epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters,
    })
}

/// ListOffsets' timestamp for the log end offset.
pub const LATEST: i64 = -1;
/// ListOffsets' timestamp for the log start offset.
pub const EARLIEST: i64 = -2;

/// The offsets of `partitions` (`(topic, partition, leader)`) at `timestamp` (a time in ms, or
/// [`LATEST`] / [`EARLIEST`]), asked of each leader once. A partition whose leader does not
/// answer, or that has no record at or after the time, is left out.
pub async fn list_offsets(
    client: &mut AdminClient,
    partitions: &[(String, i32, i32)],
    timestamp: i64,
) -> AdminResult<BTreeMap<(String, i32), i64>> {
    let mut by_leader: BTreeMap<i32, BTreeMap<&str, Vec<i32>>> = BTreeMap::new();
    for (t, p, leader) in partitions {
        by_leader
            .entry(*leader)
            .or_default()
            .entry(t)
            .or_default()
            .push(*p);
    }
    let mut out = BTreeMap::new();
    for (leader, topics) in by_leader {
        let Ok(addr) = client.broker_addr(leader).await else {
            continue;
        };
        let version = client.version(&addr, ApiKey::ListOffsets, 1, 7).await?;
        let mut req = ListOffsetsRequest::default();
        req.replica_id = BrokerId(-1);
        req.topics = topics
            .into_iter()
            .map(|(t, ps)| {
                let mut lt = ListOffsetsTopic::default();
                lt.name = topic_name(t);
                lt.partitions = ps
                    .into_iter()
                    .map(|p| {
                        let mut lp = ListOffsetsPartition::default();
                        lp.partition_index = p;
                        lp.current_leader_epoch = -1;
                        lp.timestamp = timestamp;
                        lp
                    })
                    .collect();
                lt
            })
            .collect();
        let Ok(r) = client
            .send::<_, ListOffsetsResponse>(&addr, ApiKey::ListOffsets, version, &req)
            .await
        else {
            continue;
        };
        for t in r.topics {
            for p in t.partitions {
                if p.error_code == 0 && p.offset >= 0 {
                    out.insert((t.name.0.to_string(), p.partition_index), p.offset);
                }
            }
        }
    }
    Ok(out)
}
