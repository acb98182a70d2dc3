//! The broker's membership in the cluster: it registers with the active controller, heartbeats
//! every `broker.heartbeat.interval.ms`, keeps a metadata watch open so each committed change
//! reaches it at once, applies every new image (`replica_manager`), runs the leader's periodic
//! ISR checks, and on SIGTERM asks for a controlled shutdown.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_replication::BrokerId;
use strata_replication::controller::MetadataImage;

use super::controller_client::ControllerClient;
use super::wire::{ControllerRequest, ControllerResponse};
use super::{replica_fetcher, replica_manager};
use crate::broker::Broker;
use crate::error_code::ErrorCode;
use crate::group::GroupCoordinator;

/// The stores a cluster member fills from each metadata image, before the image is in use.
#[derive(Debug, Clone)]
pub struct Security {
    /// SCRAM credentials.
    pub scram: Arc<crate::sasl::ScramStore>,
    /// ACLs.
    pub acl: Arc<crate::acl::Authorizer>,
    /// Client quotas.
    pub quotas: Arc<crate::quota::QuotaStore>,
}

/// Starts the membership tasks.
pub fn start(
    broker: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    txns: Arc<crate::txn::TransactionCoordinator>,
    security: Security,
) {
    tokio::spawn(heartbeats(broker.clone()));
    tokio::spawn(metadata_watch(broker.clone(), groups, txns, security));
    tokio::spawn(leader_ticks(broker));
}

async fn register(broker: &Broker, client: &ControllerClient) -> u64 {
    // Every Kafka listener's advertised address; the inter-broker listener's is the one peers
    // replicate from (`validate` checked it is among them).
    let listeners: std::collections::BTreeMap<String, String> = broker
        .config
        .resolved_listeners()
        .unwrap_or_default()
        .into_iter()
        .map(|l| (l.name, format!("{}:{}", l.advertised.0, l.advertised.1)))
        .collect();
    let endpoint = broker.config.inter_broker_endpoint();
    loop {
        let req = ControllerRequest::Register {
            id: broker.config.node_id,
            endpoint: endpoint.clone(),
            rack: broker.config.rack.clone(),
            directory_id: Some(broker.directory_id.as_u128()),
            listeners: listeners.clone(),
        };
        match client.call(req, Duration::from_secs(2)).await {
            Ok(ControllerResponse::Registered { epoch }) => {
                tracing::info!(epoch, "registered with the controller");
                return epoch;
            }
            other => {
                tracing::debug!(answer = ?other, "registration not accepted yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn heartbeats(broker: Arc<Broker>) {
    let Some(cluster) = broker.cluster.as_ref() else {
        return;
    };
    let client = ControllerClient::new(&broker.config);
    let every = Duration::from_millis(broker.config.broker_heartbeat_interval_ms);
    let patience = Duration::from_millis(broker.config.broker_session_timeout_ms);
    loop {
        let epoch = register(&broker, &client).await;
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let req = ControllerRequest::Heartbeat {
                id: broker.config.node_id,
                epoch,
                shutting_down: cluster.is_shutting_down(),
            };
            let sent = cluster.now_ms();
            match client.call(req, patience).await {
                Ok(ControllerResponse::Heartbeat { fenced, .. }) => {
                    if !fenced || cluster.is_shutting_down() {
                        cluster.renew_lease(sent);
                    }
                }
                Ok(ControllerResponse::Error { code, message })
                    if code == ErrorCode::StaleBrokerEpoch.code() =>
                {
                    tracing::warn!(%message, "the controller does not know this incarnation; registering again");
                    break;
                }
                other => tracing::debug!(answer = ?other, "heartbeat not answered"),
            }
        }
    }
}

async fn metadata_watch(
    broker: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    txns: Arc<crate::txn::TransactionCoordinator>,
    security: Security,
) {
    let Some(cluster) = broker.cluster.as_ref() else {
        return;
    };
    let client = ControllerClient::new(&broker.config);
    let mut known = 0u64;
    loop {
        let answer = client
            .call(
                ControllerRequest::WatchMetadata { known },
                Duration::from_secs(5),
            )
            .await;
        let (offset, json) = match answer {
            Ok(ControllerResponse::Metadata {
                offset,
                image: Some(json),
            }) => (offset, json),
            Ok(ControllerResponse::Metadata { .. }) => continue,
            other => {
                tracing::debug!(answer = ?other, "metadata watch failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let image = match MetadataImage::from_snapshot_bytes(json.as_bytes()) {
            Ok(i) => Arc::new(i),
            Err(e) => {
                tracing::error!(error = %e, "undecodable metadata image");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let b = broker.clone();
        let img = image.clone();
        let now = cluster.now_ms();
        let changes = match tokio::task::spawn_blocking(move || {
            replica_manager::apply(&b, &img, now)
        })
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "applying metadata failed");
                continue;
            }
        };
        cluster.clear_unreachable();
        // Before the image is published: an admin call that waits for its offset (CreateAcls,
        // say) then finds its change in force here.
        security.acl.sync(&image.acls);
        security.scram.sync(&image.scram);
        security.quotas.sync(&image.client_quotas);
        cluster.set_image(image, offset);
        known = offset;
        broker.notify_append();
        for leader in changes.leaders {
            replica_fetcher::ensure(&broker, leader);
        }
        for p in changes.offsets_lost {
            groups.unload_partition(p);
        }
        for p in changes.offsets_gained {
            let g = groups.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || g.load_partition(p)).await {
                tracing::error!(partition = p, error = %e, "loading group offsets");
            }
        }
        for p in changes.txn_lost {
            txns.unload_partition(p);
        }
        for p in changes.txn_gained {
            // Reading the partition waits on the disk; the transactions it finds prepared
            // are finished by tasks it spawns on this runtime.
            let t = txns.clone();
            tokio::task::block_in_place(|| t.load_partition(p));
        }
    }
}

async fn leader_ticks(broker: Arc<Broker>) {
    let Some(cluster) = broker.cluster.as_ref() else {
        return;
    };
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        let now = cluster.now_ms();
        for t in broker.topics() {
            for p in t.local_partitions() {
                if let Some(alter) = p.tick(now) {
                    replica_manager::propose_isr(&broker, &p, alter);
                }
            }
        }
    }
}

/// SIGTERM: asks the controller to move this broker's leaderships away and waits (up to
/// `controlled.shutdown.timeout.ms`) until the metadata shows it leads nothing.
pub async fn controlled_shutdown(broker: &Broker) {
    let Some(cluster) = broker.cluster.as_ref() else {
        return;
    };
    cluster.shutting_down.store(true, Ordering::SeqCst);
    let me = BrokerId(broker.config.node_id);
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(broker.config.controlled_shutdown_timeout_ms);
    loop {
        let image = cluster.image();
        let leads = image
            .topics
            .values()
            .flat_map(|t| t.partitions.iter())
            .any(|p| p.leader == Some(me));
        if !image.is_live(me) && !leads {
            tracing::info!("controlled shutdown: no leaderships left");
            return;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("controlled shutdown timed out; stopping anyway");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
