//! `strata cluster ...`: the operator's commands for scaling a running cluster out and in,
//! through the Kafka APIs any admin client has (Metadata, AlterPartitionReassignments,
//! ListPartitionReassignments, IncrementalAlterConfigs, UnregisterBroker), so they work against
//! any broker of the cluster.
//!
//! - `rebalance`: plans a balanced, rack-aware placement over the live brokers (less those
//!   `--exclude`d, which are drained: decommission) with `strata_replication::controller::
//!   balance::plan`, prints it in the JSON of Kafka's `kafka-reassign-partitions.sh`, and with
//!   `--execute` starts the moves, optionally under a replication throttle (KIP-73) that is
//!   lifted once `--wait` sees every move done.
//! - `reassign`: moves one partition to the replicas given, or cancels its move.
//! - `unregister`: removes a broker that is gone for good; its replicas are re-created on the
//!   others.

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    AlterPartitionReassignmentsRequest, ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::alter_partition_reassignments_response::AlterPartitionReassignmentsResponse;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig, IncrementalAlterConfigsRequest,
};
use kafka_protocol::messages::incremental_alter_configs_response::IncrementalAlterConfigsResponse;
use kafka_protocol::messages::unregister_broker_request::UnregisterBrokerRequest;
use kafka_protocol::messages::unregister_broker_response::UnregisterBrokerResponse;
use kafka_protocol::messages::{ApiKey, BrokerId as WireBrokerId, TopicName};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use strata_replication::BrokerId;
use strata_replication::controller::balance::{Placement, plan};

use crate::admin::client::AdminClient;

const THROTTLE_RATES: [&str; 2] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];
const THROTTLE_REPLICAS: [&str; 2] = [
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// What `strata cluster rebalance` does beyond printing the plan.
#[derive(Debug, Clone, Default)]
pub struct RebalanceOptions {
    /// Brokers to drain (decommission): they get no replicas in the plan.
    pub exclude: Vec<i32>,
    /// Start the moves.
    pub execute: bool,
    /// Wait until every move is done.
    pub wait: bool,
    /// Bytes per second each broker may spend on the moves (KIP-73), while they run.
    pub throttle: Option<u64>,
}

/// Sends `req` to any broker at the newest version of `key` both sides serve (at least `min`).
async fn call<Req: Encodable, Resp: Decodable>(
    client: &mut AdminClient,
    key: ApiKey,
    (min, max): (i16, i16),
    req: &Req,
) -> anyhow::Result<Resp> {
    let any = client.any_broker().await?;
    let version = client.version(&any, key, min, max).await?;
    Ok(client.send(&any, key, version, req).await?)
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// The live brokers (with racks) and every partition's replicas, from Metadata.
async fn placement(
    client: &mut AdminClient,
) -> anyhow::Result<(BTreeMap<BrokerId, Option<String>>, Vec<Placement>)> {
    let md = client.metadata(None).await?;
    let brokers = md
        .brokers
        .iter()
        .map(|b| {
            (
                BrokerId(b.node_id.0),
                b.rack.as_ref().map(|r| r.to_string()),
            )
        })
        .collect();
    let mut partitions = Vec::new();
    for t in &md.topics {
        let Some(topic) = t.name.as_ref() else {
            continue;
        };
        for p in &t.partitions {
            partitions.push(Placement {
                topic: topic.0.to_string(),
                partition: u32::try_from(p.partition_index).unwrap_or(0),
                replicas: p.replica_nodes.iter().map(|b| BrokerId(b.0)).collect(),
            });
        }
    }
    partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok((brokers, partitions))
}

/// Kafka's reassignment JSON of `moves`.
pub fn reassignment_json(moves: &[Placement]) -> String {
    let partitions: Vec<serde_json::Value> = moves
        .iter()
        .map(|m| {
            serde_json::json!({
                "topic": m.topic,
                "partition": m.partition,
                "replicas": m.replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::json!({ "version": 1, "partitions": partitions }).to_string()
}

/// Sets (`Some`) or removes (`None`) the throttle: the rate on every broker (the cluster-wide
/// default) and `*` as the throttled replicas of the moving topics.
async fn set_throttle(
    client: &mut AdminClient,
    rate: Option<u64>,
    topics: &[String],
) -> anyhow::Result<()> {
    let op = |key: &str, value: Option<String>| {
        let mut c = AlterableConfig::default();
        c.name = StrBytes::from_string(key.to_string());
        c.config_operation = if value.is_some() { 0 } else { 1 };
        c.value = value.map(StrBytes::from_string);
        c
    };
    let mut broker = AlterConfigsResource::default();
    broker.resource_type = 4;
    broker.resource_name = StrBytes::from_static_str("");
    broker.configs = THROTTLE_RATES
        .iter()
        .map(|k| op(k, rate.map(|r| r.to_string())))
        .collect();
    let mut resources = vec![broker];
    for t in topics {
        let mut r = AlterConfigsResource::default();
        r.resource_type = 2;
        r.resource_name = StrBytes::from_string(t.clone());
        r.configs = THROTTLE_REPLICAS
            .iter()
            .map(|k| op(k, rate.map(|_| "*".to_string())))
            .collect();
        resources.push(r);
    }
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = resources;
    let resp: IncrementalAlterConfigsResponse =
        call(client, ApiKey::IncrementalAlterConfigs, (0, 1), &req).await?;
    for r in resp.responses {
        anyhow::ensure!(
            r.error_code == 0,
            "setting the throttle on {:?}: error {} {}",
            r.resource_name.as_str(),
            r.error_code,
            r.error_message.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// How many moves are under way.
async fn ongoing(client: &mut AdminClient) -> anyhow::Result<usize> {
    Ok(crate::admin::cluster::list_reassignments(client)
        .await?
        .len())
}

/// `strata cluster rebalance`.
pub async fn rebalance(client: &mut AdminClient, options: &RebalanceOptions) -> anyhow::Result<()> {
    let (mut brokers, partitions) = placement(client).await?;
    for b in &options.exclude {
        brokers.remove(&BrokerId(*b));
    }
    anyhow::ensure!(
        !brokers.is_empty(),
        "no live broker is left to place replicas on"
    );
    let moves = plan(&brokers, &partitions);
    println!("{}", reassignment_json(&moves));
    eprintln!(
        "strata cluster rebalance: {} of {} partitions to move over brokers {:?}",
        moves.len(),
        partitions.len(),
        brokers.keys().map(|b| b.0).collect::<Vec<_>>()
    );
    if !options.execute || moves.is_empty() {
        return Ok(());
    }
    let mut topics: Vec<String> = moves.iter().map(|m| m.topic.clone()).collect();
    topics.dedup();
    if let Some(rate) = options.throttle {
        set_throttle(client, Some(rate), &topics).await?;
        eprintln!("strata cluster rebalance: replication throttled to {rate} bytes/s per broker");
    }
    let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
    for m in &moves {
        let mut p = ReassignablePartition::default();
        p.partition_index = i32::try_from(m.partition).unwrap_or(i32::MAX);
        p.replicas = Some(m.replicas.iter().map(|b| WireBrokerId(b.0)).collect());
        by_topic.entry(&m.topic).or_default().push(p);
    }
    let mut req = AlterPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    req.allow_replication_factor_change = false;
    req.topics = by_topic
        .into_iter()
        .map(|(t, partitions)| {
            let mut rt = ReassignableTopic::default();
            rt.name = name(t);
            rt.partitions = partitions;
            rt
        })
        .collect();
    // The controller may take up to the request's 30 s to place every move.
    let usual = client.timeout();
    client.set_timeout(usual.max(Duration::from_secs(60)));
    let resp: anyhow::Result<AlterPartitionReassignmentsResponse> =
        call(client, ApiKey::AlterPartitionReassignments, (0, 1), &req).await;
    client.set_timeout(usual);
    let resp = resp?;
    anyhow::ensure!(
        resp.error_code == 0,
        "reassignment refused: error {} {}",
        resp.error_code,
        resp.error_message.as_deref().unwrap_or("")
    );
    let mut failed = 0;
    for t in &resp.responses {
        for p in &t.partitions {
            if p.error_code != 0 {
                failed += 1;
                eprintln!(
                    "strata cluster rebalance: {}-{}: error {} {}",
                    t.name.0.as_str(),
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_deref().unwrap_or("")
                );
            }
        }
    }
    eprintln!(
        "strata cluster rebalance: {} moves started",
        moves.len() - failed
    );
    if options.wait {
        // A bar on a terminal; nothing drawn when standard error is not one (a script).
        let started = (moves.len() - failed) as u64;
        let bar = indicatif::ProgressBar::new(started);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} moves done {pos}/{len} [{bar:30}] {elapsed_precise}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        let mut last = None;
        loop {
            let left = ongoing(client).await?;
            bar.set_position(started.saturating_sub(left as u64));
            if left == 0 {
                break;
            }
            if bar.is_hidden() && last != Some(left) {
                eprintln!("strata cluster rebalance: {left} moves under way");
                last = Some(left);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        bar.finish_and_clear();
        if options.throttle.is_some() {
            set_throttle(client, None, &topics).await?;
        }
        eprintln!("strata cluster rebalance: done");
    }
    anyhow::ensure!(failed == 0, "{failed} moves were refused");
    Ok(())
}

/// `strata cluster reassign`: moves one partition to `replicas`, or cancels its move (`None`).
pub async fn reassign(
    client: &mut AdminClient,
    topic: &str,
    partition: i32,
    replicas: Option<Vec<i32>>,
) -> anyhow::Result<()> {
    let mut p = ReassignablePartition::default();
    p.partition_index = partition;
    p.replicas = replicas
        .clone()
        .map(|r| r.into_iter().map(WireBrokerId).collect());
    let mut t = ReassignableTopic::default();
    t.name = name(topic);
    t.partitions = vec![p];
    let mut req = AlterPartitionReassignmentsRequest::default();
    req.timeout_ms = 30_000;
    req.topics = vec![t];
    let resp: AlterPartitionReassignmentsResponse =
        call(client, ApiKey::AlterPartitionReassignments, (0, 1), &req).await?;
    let code = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .map_or(resp.error_code, |p| p.error_code);
    let message = resp
        .responses
        .first()
        .and_then(|t| t.partitions.first())
        .and_then(|p| p.error_message.as_deref().map(str::to_string))
        .unwrap_or_default();
    anyhow::ensure!(
        code == 0,
        "reassigning {topic}-{partition}: error {code} {message}"
    );
    match replicas {
        Some(r) => eprintln!("strata cluster reassign: {topic}-{partition} is moving to {r:?}"),
        None => eprintln!("strata cluster reassign: the move of {topic}-{partition} is cancelled"),
    }
    Ok(())
}

/// `strata cluster unregister`.
pub async fn unregister(client: &mut AdminClient, broker: i32) -> anyhow::Result<()> {
    let mut req = UnregisterBrokerRequest::default();
    req.broker_id = WireBrokerId(broker);
    let resp: UnregisterBrokerResponse =
        call(client, ApiKey::UnregisterBroker, (0, 0), &req).await?;
    anyhow::ensure!(
        resp.error_code == 0,
        "unregistering broker {broker}: error {} {}",
        resp.error_code,
        resp.error_message.as_deref().unwrap_or("")
    );
    eprintln!(
        "strata cluster unregister: broker {broker} is gone; its replicas are re-created elsewhere"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_prints_as_kafkas_reassignment_json() {
        let json = reassignment_json(&[Placement {
            topic: "t".into(),
            partition: 3,
            replicas: vec![BrokerId(2), BrokerId(4)],
        }]);
        assert_eq!(
            json,
            r#"{"partitions":[{"partition":3,"replicas":[2,4],"topic":"t"}],"version":1}"#
        );
    }
}
