//! Turns a metadata image into this broker's partitions: opens the logs of partitions it holds
//! a replica of, gives each its role (leader or follower of the image's leader, in the image's
//! epoch), applies topic configs, and removes what the image no longer assigns here.
//!
//! Also the leader side of ISR changes: a leader's proposal goes to the controller, and the
//! committed answer comes back in the next image.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use strata_replication::controller::MetadataImage;
use strata_replication::{AlterIsr, BrokerId};
use uuid::Uuid;

use super::wire::{ControllerRequest, ControllerResponse};
use crate::broker::{Broker, OFFSETS_TOPIC};
use crate::topic::{Partition, Topic};

/// What changed for the rest of the broker.
#[derive(Debug, Default)]
pub struct Changes {
    /// Leaders this broker follows at least one partition of.
    pub leaders: BTreeSet<i32>,
    /// `__consumer_offsets` partitions this broker now leads.
    pub offsets_gained: Vec<i32>,
    /// `__consumer_offsets` partitions this broker no longer leads.
    pub offsets_lost: Vec<i32>,
    /// `__transaction_state` partitions this broker now leads.
    pub txn_gained: Vec<i32>,
    /// `__transaction_state` partitions this broker no longer leads.
    pub txn_lost: Vec<i32>,
}

fn new_topic(
    broker: &Broker,
    name: &str,
    id: Uuid,
    configs: &BTreeMap<String, String>,
) -> Arc<Topic> {
    let config = broker.log_config(configs).unwrap_or_else(|e| {
        tracing::warn!(topic = name, error = %e, "invalid topic config in the metadata; using defaults");
        broker.effective_config().log_defaults.clone()
    });
    Arc::new(Topic {
        name: name.to_string(),
        id,
        internal: crate::broker::is_internal_topic(name),
        partitions: RwLock::new(BTreeMap::new()),
        overrides: RwLock::new(configs.clone()),
        config: RwLock::new(config),
    })
}

/// Applies `image` to the broker's partitions. Blocking (opens and recovers logs).
pub fn apply(broker: &Broker, image: &MetadataImage, now_ms: u64) -> Changes {
    let me = BrokerId(broker.config.node_id);
    let mut changes = Changes::default();
    // Dynamic broker configs first: topics created below inherit from them.
    let dynamic = crate::dynamic_config::DynamicConfigs::from_resources(&image.broker_configs);
    if dynamic != broker.dynamic_configs()
        && let Err(e) = broker.set_dynamic_configs(dynamic)
    {
        tracing::warn!(error = %e, "dynamic broker configs in the metadata do not apply here; keeping the previous ones");
    }
    for (name, ti) in &image.topics {
        let id = Uuid::from_u128(ti.id);
        let topic = match broker.topic(name) {
            Some(t) if t.id == id => t,
            existing => {
                if existing.is_some() {
                    // Deleted and created again under the same name: the old data goes.
                    broker.remove_topic(name);
                }
                let t = new_topic(broker, name, id, &ti.configs);
                broker.insert_topic(t.clone());
                t
            }
        };
        let overrides_changed =
            *topic.overrides.read().unwrap_or_else(|p| p.into_inner()) != ti.configs;
        if overrides_changed && let Ok(config) = broker.log_config(&ti.configs) {
            let min_insync = broker.min_insync_replicas(&ti.configs);
            for p in topic.local_partitions() {
                if let Err(e) = p.log.set_config(config.clone()) {
                    tracing::warn!(topic = %name, partition = p.index, error = %e, "applying topic config");
                }
                p.set_min_insync_replicas(min_insync);
            }
            *topic.overrides.write().unwrap_or_else(|p| p.into_inner()) = ti.configs.clone();
            *topic.config.write().unwrap_or_else(|p| p.into_inner()) = config;
        }
        let config = topic
            .config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let min_insync = broker.min_insync_replicas(&ti.configs);
        for (i, reg) in ti.partitions.iter().enumerate() {
            let Ok(index) = i32::try_from(i) else {
                continue;
            };
            let hosted = reg.replicas.contains(&me);
            let local = match (topic.partition(index), hosted) {
                (Some(p), true) => Some(p),
                (None, true) => match broker.open_partition(name, index, &config, min_insync) {
                    Ok(p) => {
                        if p.corrupt_from().is_some() {
                            report_failed_replica(broker, &p);
                        }
                        topic
                            .partitions
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(index, p.clone());
                        Some(p)
                    }
                    Err(e) => {
                        tracing::error!(topic = %name, partition = index, error = %e, "opening a replica's log");
                        None
                    }
                },
                (Some(p), false) => {
                    topic
                        .partitions
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&index);
                    p.with_replica(|r| r.machine.become_offline());
                    let _ = p.log.close();
                    let dir = broker.partition_dir(name, index);
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = ?dir, error = %e, "removing a moved replica");
                    }
                    None
                }
                (None, false) => None,
            };
            let Some(p) = local else { continue };
            let was_leader = p.is_leader();
            p.apply_assignment(
                reg.leader,
                reg.leader_epoch,
                &reg.replicas,
                &reg.isr,
                now_ms,
            );
            if let Some(l) = reg.leader
                && l != me
            {
                changes.leaders.insert(l.0);
            }
            if topic.internal {
                let offsets = topic.name == OFFSETS_TOPIC;
                match (was_leader, p.is_leader(), offsets) {
                    (false, true, true) => changes.offsets_gained.push(index),
                    (true, false, true) => changes.offsets_lost.push(index),
                    (false, true, false) => changes.txn_gained.push(index),
                    (true, false, false) => changes.txn_lost.push(index),
                    _ => {}
                }
            }
        }
    }
    for t in broker.topics() {
        if !image.topics.contains_key(&t.name) {
            if t.internal {
                let lost = if t.name == OFFSETS_TOPIC {
                    &mut changes.offsets_lost
                } else {
                    &mut changes.txn_lost
                };
                lost.extend(t.local_partitions().iter().map(|p| p.index));
            }
            tracing::info!(topic = %t.name, "topic deleted");
            broker.remove_topic(&t.name);
        }
    }
    changes
}

/// After a refused ISR proposal, how long the leader waits before it may propose again. A
/// follower the controller has fenced (its heartbeats cut off while its fetches still arrive)
/// is refused until it is unfenced: without a pause every fetch of it made a new proposal (a
/// chaos run logged 2,400 refusals a minute on one broker).
const ISR_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Sends a leader's ISR proposal to the controller. The committed change arrives with the
/// next image; a refusal or a timeout clears the proposal, after a short pause, so a new
/// one can be made.
pub fn propose_isr(broker: &Arc<Broker>, partition: &Arc<Partition>, alter: AlterIsr) {
    if broker.cluster.is_none() {
        return;
    }
    let broker = broker.clone();
    let partition = partition.clone();
    tokio::spawn(async move {
        let Some(cluster) = broker.cluster.as_ref() else {
            return;
        };
        let req = ControllerRequest::AlterPartition {
            topic: partition.topic.clone(),
            partition: u32::try_from(partition.index).unwrap_or(0),
            from: broker.config.node_id,
            leader_epoch: alter.leader_epoch.0,
            isr: alter.isr.iter().map(|b| b.0).collect(),
        };
        tracing::info!(topic = %partition.topic, partition = partition.index, isr = ?req, "proposing an ISR change");
        match cluster.isr.call(req, Duration::from_secs(3)).await {
            Ok(ControllerResponse::Done { .. }) => {}
            other => {
                tracing::warn!(topic = %partition.topic, partition = partition.index, answer = ?other, "ISR change refused");
                tokio::time::sleep(ISR_RETRY_PAUSE).await;
                partition.with_replica(|r| r.machine.on_isr_rejected());
            }
        }
    });
}

/// Reports to the controller that this broker's replica of `partition` failed (a corrupt batch
/// on its disk): the controller takes it out of the ISR and, if it leads, elects another
/// leader from the ISR. As a follower it is then cut back to the corrupt batch and refilled.
pub fn report_failed_replica(broker: &Broker, partition: &Arc<Partition>) {
    if broker.cluster.is_none() || !partition.mark_failed() {
        return;
    }
    tracing::error!(topic = %partition.topic, partition = partition.index, "this replica failed (a write failed or a batch is corrupt): reporting it to the controller");
    // A client of its own: this is rare, and the caller may not own the broker.
    let client = super::controller_client::ControllerClient::new(&broker.config);
    let req = ControllerRequest::ReplicaFailed {
        topic: partition.topic.clone(),
        partition: u32::try_from(partition.index).unwrap_or(0),
        from: broker.config.node_id,
    };
    let partition = partition.clone();
    tokio::spawn(async move {
        match client.call(req, Duration::from_secs(5)).await {
            Ok(ControllerResponse::Done { .. }) => {
                tracing::warn!(topic = %partition.topic, partition = partition.index, "failed replica reported; it leaves the ISR")
            }
            other => {
                tracing::error!(topic = %partition.topic, partition = partition.index, answer = ?other, "the controller did not take the failed replica out of the ISR")
            }
        }
    });
}
