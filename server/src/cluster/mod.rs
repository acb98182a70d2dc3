//! Cluster mode: the controller quorum, broker membership, and replication between brokers.
//!
//! - [`controller`]: a quorum member (raft-rs over raft-engine) and, when elected, the active
//!   controller deciding with `strata_replication::controller::ControllerLogic`;
//! - [`membership`]: the broker's side: registration, heartbeats, the metadata watch, and
//!   controlled shutdown;
//! - [`replica_manager`]: turns each metadata image into local partitions and roles;
//! - [`replica_fetcher`]: followers copying from leaders (Fetch with a replica id, truncation
//!   by OffsetForLeaderEpoch);
//! - [`throttle`]: replication throttles (KIP-73) for out-of-sync replicas;
//! - [`wire`], [`controller_client`], [`kafka_client`]: the transports.

pub mod controller;
pub mod controller_client;
pub mod kafka_client;
pub mod link;
pub mod membership;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod throttle;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use strata_replication::controller::MetadataImage;

use crate::config::BrokerConfig;
use crate::error_code::ErrorCode;
use controller_client::ControllerClient;
use wire::{ControllerRequest, ControllerResponse};

/// How long Metadata keeps listing a fenced broker.
const FENCED_LISTING: Duration = Duration::from_secs(3);

/// A broker's view of the cluster.
#[derive(Debug)]
pub struct ClusterState {
    image: RwLock<Arc<MetadataImage>>,
    offset: tokio::sync::watch::Sender<u64>,
    /// Client for administration requests (topics, configs).
    pub admin: ControllerClient,
    /// Client for ISR changes.
    pub isr: ControllerClient,
    /// How followers dial their leaders' inter-broker listener.
    pub inter_broker: link::LinkSecurity,
    /// Set by SIGTERM: heartbeats ask for a controlled shutdown.
    pub shutting_down: AtomicBool,
    /// This broker's block of producer ids: next, end.
    pub producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Leaders this broker's fetchers just lost their connection to, and since when. Until the
    /// controller rules (or the connection is back, or the hint expires), Metadata answers
    /// LEADER_NOT_AVAILABLE for their partitions instead of naming a leader that is likely
    /// dead, so clients keep re-querying quickly instead of waiting on a dead address.
    pub unreachable: Mutex<HashMap<i32, Instant>>,
    /// Follower fetchers, by leader id.
    pub fetchers: Mutex<HashMap<i32, tokio::task::JoinHandle<()>>>,
    /// `leader.replication.throttled.rate`'s bucket.
    pub leader_throttle: throttle::Throttle,
    /// `follower.replication.throttled.rate`'s bucket.
    pub follower_throttle: throttle::Throttle,
    hint_ttl: Duration,
    recently_fenced: Mutex<HashMap<i32, Instant>>,
    /// When the last heartbeat the controller answered was sent (ms since start; 0: none).
    lease_from_ms: AtomicU64,
    lease_ms: u64,
    started: Instant,
}

impl ClusterState {
    /// A broker that has not heard from the controller yet.
    pub fn new(config: &BrokerConfig) -> ClusterState {
        let (offset, _) = tokio::sync::watch::channel(0);
        ClusterState {
            image: RwLock::new(Arc::new(MetadataImage::default())),
            offset,
            admin: ControllerClient::new(config),
            isr: ControllerClient::new(config),
            // `validate` refused settings that do not load before the node started.
            inter_broker: link::LinkSecurity::inter_broker(config).unwrap_or_else(|e| {
                tracing::error!(error = %e, "the inter-broker link's settings do not load");
                link::LinkSecurity::default()
            }),
            shutting_down: AtomicBool::new(false),
            fetchers: Mutex::new(HashMap::new()),
            leader_throttle: throttle::Throttle::default(),
            follower_throttle: throttle::Throttle::default(),
            unreachable: Mutex::new(HashMap::new()),
            recently_fenced: Mutex::new(HashMap::new()),
            lease_from_ms: AtomicU64::new(0),
            // Expires before the controller's session does: the session counts from when a
            // heartbeat arrived, the lease from when it was sent.
            lease_ms: config
                .broker_session_timeout_ms
                .saturating_sub(config.broker_heartbeat_interval_ms),
            hint_ttl: Duration::from_millis(config.broker_session_timeout_ms.saturating_mul(2)),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            started: Instant::now(),
        }
    }

    /// The latest metadata image this broker has applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Installs an applied image at metadata `offset`.
    pub fn set_image(&self, image: Arc<MetadataImage>, offset: u64) {
        let mut current = self.image.write().unwrap_or_else(|p| p.into_inner());
        {
            let mut fenced = self
                .recently_fenced
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for b in current.live_brokers() {
                if !image.is_live(b.id) {
                    fenced.insert(b.id.0, Instant::now());
                }
            }
            fenced.retain(|id, since| {
                !image.is_live(strata_replication::BrokerId(*id))
                    && since.elapsed() < FENCED_LISTING
            });
        }
        *current = image;
        drop(current);
        self.offset.send_replace(offset);
    }

    /// Whether `id` was fenced within the last few seconds. Metadata keeps listing such a
    /// broker for a moment: librdkafka, seeing a leader move and the old leader's broker vanish
    /// from the list in the same response, parks the moved partitions for a second. (A fenced
    /// broker that is in fact alive but cut off drops its client connections once its lease
    /// lapses, so listing it sends no client there for long.)
    pub fn recently_fenced(&self, id: i32) -> bool {
        self.recently_fenced
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .is_some_and(|since| since.elapsed() < FENCED_LISTING)
    }

    /// Whether this broker held a lease and lost it (cut off from the controller), outside a
    /// controlled shutdown. Such a broker closes client connections after answering, so
    /// clients reconnect to brokers that can serve them.
    pub fn lease_lost(&self) -> bool {
        self.lease_from_ms.load(Ordering::SeqCst) > 0
            && !self.holds_lease()
            && !self.is_shutting_down()
    }

    /// Milliseconds since the broker started (the replication state machines' clock).
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records that the connection to `leader` failed (first failure wins the timestamp).
    pub fn mark_unreachable(&self, leader: i32) {
        self.unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(leader)
            .or_insert_with(Instant::now);
    }

    /// Records that `leader` answered.
    pub fn mark_reachable(&self, leader: i32) {
        self.unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&leader);
    }

    /// Whether `leader` is believed unreachable (a fresh hint, not yet ruled on).
    pub fn is_unreachable(&self, leader: i32) -> bool {
        self.unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&leader)
            .is_some_and(|since| since.elapsed() < self.hint_ttl)
    }

    /// Whether `broker` is in the committed ISR of `topic`-`partition`.
    pub fn in_isr(&self, topic: &str, partition: i32, broker: i32) -> bool {
        let image = self.image.read().unwrap_or_else(|p| p.into_inner());
        image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .is_some_and(|p| p.isr.contains(&strata_replication::BrokerId(broker)))
    }

    /// Forgets every hint (a new image has the controller's word on leaders).
    pub fn clear_unreachable(&self) {
        self.unreachable
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// The controller answered a heartbeat sent at `sent_ms` (see [`ClusterState::now_ms`]).
    pub fn renew_lease(&self, sent_ms: u64) {
        self.lease_from_ms
            .fetch_max(sent_ms.max(1), Ordering::SeqCst);
    }

    /// Whether this broker may still act on its metadata: the controller answered one of its
    /// heartbeats recently enough that it cannot have been fenced yet. A broker cut off from
    /// the controller stops serving as leader when its lease runs out, so clients go to the
    /// leader the controller elected instead (it fences itself).
    pub fn holds_lease(&self) -> bool {
        let from = self.lease_from_ms.load(Ordering::SeqCst);
        from > 0 && self.now_ms() < from.saturating_add(self.lease_ms)
    }

    /// Whether SIGTERM started a controlled shutdown.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Sends an administrative request and waits until this broker's image includes its
    /// effect, so that the client's next request here sees it.
    pub async fn admin_call(&self, req: ControllerRequest) -> Result<(), (ErrorCode, String)> {
        if !self.holds_lease() {
            return Err((
                ErrorCode::NotController,
                "this broker is not in contact with the controller; ask another".into(),
            ));
        }
        match self.admin.call(req, Duration::from_secs(10)).await {
            Ok(ControllerResponse::Done { metadata_offset }) => {
                let mut rx = self.offset.subscribe();
                let _ = tokio::time::timeout(
                    Duration::from_secs(5),
                    rx.wait_for(|o| *o >= metadata_offset),
                )
                .await;
                Ok(())
            }
            Ok(ControllerResponse::Error { code, message }) => Err((
                ErrorCode::from_code(code).unwrap_or(ErrorCode::UnknownServerError),
                message,
            )),
            Ok(other) => Err((
                ErrorCode::UnknownServerError,
                format!("unexpected controller answer {other:?}"),
            )),
            Err(e) => Err((ErrorCode::RequestTimedOut, e.to_string())),
        }
    }
}
