//! A controller node: one member of the Raft metadata quorum, and (when elected) the active
//! controller that makes the cluster's decisions.
//!
//! One thread owns the [`QuorumNode`] (its raft-engine log does blocking fsyncs) and is fed by
//! a channel: Raft messages from peers, requests from brokers, and a 50 ms tick. After each
//! round it runs `handle_ready`, hands outgoing messages to per-peer writer tasks, answers the
//! requests whose records are now applied, and answers metadata watchers.
//!
//! Invariants:
//! - decisions are made only by the leader, and only once it has applied every entry of
//!   earlier terms (its image is then the committed state plus its own pending proposals);
//! - a request is answered only after its records are committed and applied, so a broker
//!   never acts on a decision the quorum could still lose;
//! - Raft ids are `node.id + 1` (raft-rs reserves 0).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use raft::eraftpb::Message;
use strata_engine::LeaderEpoch;
use strata_replication::BrokerId;
use strata_replication::controller::{
    ControllerConfig, ControllerError, ControllerLogic, MetadataImage, MetadataRecord, QuorumNode,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::wire::{ControllerRequest, ControllerResponse, Frame};
use crate::config::BrokerConfig;
use crate::error_code::ErrorCode;

/// Raft tick period.
const TICK: Duration = Duration::from_millis(50);
/// Rack repairs started per preferred-leader check (every `leader.imbalance.check.interval`).
const RACK_REPAIRS_PER_ROUND: usize = 8;
/// Producer ids per block handed to a broker.
const PRODUCER_ID_BLOCK: i64 = 1000;
/// Metadata watchers are answered after this long even without news.
const WATCH_MAX: Duration = Duration::from_millis(1000);
/// Entries between snapshots of the metadata image.
const SNAPSHOT_EVERY: u64 = 1000;

/// The Raft id of a node.
pub fn raft_id(node: i32) -> u64 {
    u64::try_from(node).unwrap_or(0) + 1
}

fn node_of(raft: u64) -> i32 {
    i32::try_from(raft.saturating_sub(1)).unwrap_or(-1)
}

enum Input {
    Raft(Message),
    /// The connection a broker heartbeated on closed.
    ConnectionLost(i32),
    /// A connection a quorum peer sent Raft messages on closed.
    PeerLost(u64),
    /// A quorum peer's listener refuses connections: its process is gone.
    PeerGone(u64),
    Request(ControllerRequest, oneshot::Sender<ControllerResponse>),
    Stop,
}

/// A running controller node.
pub struct Controller {
    tx: Sender<Input>,
    active: Arc<AtomicBool>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller").finish_non_exhaustive()
    }
}

impl Controller {
    /// Opens the quorum member's log (`<log.dirs>/__cluster_metadata`), starts its thread, the
    /// peer writers, and the listener for peers and brokers.
    pub async fn start(
        config: &BrokerConfig,
        listener: TcpListener,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Arc<Self>> {
        let me = raft_id(config.node_id);
        let voters: Vec<u64> = config
            .controller_quorum_voters
            .iter()
            .map(|(id, _)| raft_id(*id))
            .collect();
        let dir = config.log_dir.join("__cluster_metadata");
        std::fs::create_dir_all(&dir)?;
        let node = {
            let voters = voters.clone();
            tokio::task::spawn_blocking(move || QuorumNode::open(me, &voters, &dir, SNAPSHOT_EVERY))
                .await??
        };
        let link = super::link::LinkSecurity::controller(config)?;
        let acceptor = super::link::controller_acceptor(config)?;
        let mut peers = HashMap::new();
        let mut peer_addrs = HashMap::new();
        for (id, addr) in &config.controller_quorum_voters {
            if raft_id(*id) == me {
                continue;
            }
            peer_addrs.insert(raft_id(*id), *addr);
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(peer_writer(*addr, link.clone(), rx));
            peers.insert(raft_id(*id), tx);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let logic_config = ControllerConfig {
            broker_session_timeout_ms: config.broker_session_timeout_ms,
            unclean_leader_election: config.unclean_leader_election,
        };
        let active = Arc::new(AtomicBool::new(false));
        let mut state = ControllerLoop {
            active: active.clone(),
            node,
            logic: ControllerLogic::new(logic_config),
            logic_config,
            peers,
            pending: VecDeque::new(),
            watchers: Vec::new(),
            leading_since: None,
            sessions_started: false,
            bootstrap_scram: crate::sasl::ScramStore::open(&config.log_dir)
                .map_err(anyhow::Error::msg)?
                .entries(),
            started: Instant::now(),
            rebalance_every_ms: config
                .auto_leader_rebalance
                .then_some(config.leader_imbalance_check_interval_ms),
            last_rebalance_ms: 0,
            leader_return_delay_ms: config.leader_return_delay_ms,
            live_since_ms: std::collections::HashMap::new(),
            connection_grace_ms: config.broker_heartbeat_interval_ms.saturating_mul(2),
            replacement_delay_ms: config.broker_replacement_delay_ms,
            fenced_since_ms: std::collections::HashMap::new(),
            peer_addrs,
            voters: voters.clone(),
            runtime: tokio::runtime::Handle::current(),
            tx: tx.clone(),
            gone_leader: None,
            last_heard: std::collections::HashMap::new(),
        };
        if voters.len() == 1 {
            state.node.campaign()?;
        }
        let thread = std::thread::Builder::new()
            .name("strata-controller".into())
            .spawn(move || state.run(rx))?;
        let controller = Arc::new(Controller {
            tx: tx.clone(),
            active,
            thread: Mutex::new(Some(thread)),
        });
        if let Some(a) = &acceptor {
            a.watch(config.ssl_reload_interval, metrics.clone());
        }
        let members = config.authorizer.then(|| {
            Arc::new(Members {
                super_users: config.super_users.clone(),
                rules: config.ssl_principal_rules.clone(),
            })
        });
        tokio::spawn(accept_loop(listener, tx, acceptor, metrics, members));
        Ok(controller)
    }

    /// Whether this node is the active controller now.
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Stops the controller thread (the node leaves the quorum's availability until restart).
    pub fn stop(&self) {
        let _ = self.tx.send(Input::Stop);
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// Who may use the controller listener when an authorizer is on: the principals of
/// `super.users` (the nodes' certificates' subjects, through `ssl.principal.mapping.rules`), as
/// Kafka requires CLUSTER_ACTION of its controllers' peers. Without an authorizer any
/// certificate the truststore vouches for is a member.
#[derive(Debug)]
struct Members {
    super_users: Vec<String>,
    rules: Vec<crate::tls::PrincipalRule>,
}

impl Members {
    /// `Err(why)` unless the peer's certificate names a super user.
    fn admit(&self, tls: &tokio_rustls::server::TlsStream<TcpStream>) -> Result<(), String> {
        let dn = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| crate::tls::subject_dn(cert.as_ref()))
            .ok_or("no readable client certificate")?;
        let name = crate::tls::map_principal(&self.rules, &dn)
            .ok_or_else(|| format!("no ssl.principal.mapping.rules rule matches {dn}"))?;
        let principal = format!("User:{name}");
        if self.super_users.contains(&principal) {
            Ok(())
        } else {
            Err(format!(
                "{principal} is not in super.users: only the cluster's nodes may use the controller listener"
            ))
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: Sender<Input>,
    tls: Option<Arc<crate::tls::ReloadingAcceptor>>,
    metrics: Arc<crate::metrics::Metrics>,
    members: Option<Arc<Members>>,
) {
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let Some(tls) = &tls else {
                    tokio::spawn(serve_connection(stream, tx.clone()));
                    continue;
                };
                // Mutual TLS: a peer without a certificate from the cluster's CAs is refused
                // before a single frame is read.
                let acceptor = tls.acceptor();
                let (tx, metrics, refused) = (tx.clone(), metrics.clone(), refused.clone());
                let members = members.clone();
                tokio::spawn(async move {
                    let why = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => match members.as_deref().map_or(Ok(()), |m| m.admit(&s)) {
                            Ok(()) => return serve_connection(s, tx).await,
                            Err(why) => why,
                        },
                        Ok(Err(e)) => e.to_string(),
                        Err(_) => "timed out".to_string(),
                    };
                    metrics.tls_handshake_failures.inc();
                    // Thinned to powers of two: a stranger retrying every few milliseconds
                    // must not flood the log.
                    let n = refused.fetch_add(1, Ordering::Relaxed) + 1;
                    if n.is_power_of_two() {
                        tracing::warn!(%peer, error = %why, refused = n, "controller listener: TLS handshake refused (a node without the cluster's certificate?)");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "controller listener accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One peer or broker connection: Raft messages go to the thread; requests are answered in
/// order on the same connection.
async fn serve_connection<S>(stream: S, tx: Sender<Input>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut heartbeating: Option<i32> = None;
    let mut raft_peer: Option<u64> = None;
    serve_frames(&mut rd, &mut wr, &tx, &mut heartbeating, &mut raft_peer).await;
    if let Some(id) = heartbeating {
        let _ = tx.send(Input::ConnectionLost(id));
    }
    if let Some(peer) = raft_peer {
        let _ = tx.send(Input::PeerLost(peer));
    }
}

async fn serve_frames<R, W>(
    rd: &mut R,
    wr: &mut W,
    tx: &Sender<Input>,
    heartbeating: &mut Option<i32>,
    raft_peer: &mut Option<u64>,
) where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    loop {
        match Frame::read(rd).await {
            Ok(Frame::Raft(m)) => {
                *raft_peer = Some(m.from);
                if tx.send(Input::Raft(m)).is_err() {
                    return;
                }
            }
            Ok(Frame::Request(req)) => {
                if let ControllerRequest::Heartbeat { id, .. } = &req {
                    *heartbeating = Some(*id);
                }
                let (otx, orx) = oneshot::channel();
                if tx.send(Input::Request(req, otx)).is_err() {
                    return;
                }
                let resp = orx
                    .await
                    .unwrap_or(ControllerResponse::NotController { leader: None });
                if Frame::Response(resp).write(wr).await.is_err() {
                    return;
                }
            }
            Ok(Frame::Response(_)) => return,
            Err(e) => {
                tracing::debug!(error = %e, "controller connection closed");
                return;
            }
        }
    }
}

/// Sends Raft messages to one peer, reconnecting as needed. Messages that cannot be sent are
/// dropped: Raft retransmits.
async fn peer_writer(
    addr: SocketAddr,
    link: super::link::LinkSecurity,
    mut rx: mpsc::UnboundedReceiver<Message>,
) {
    use tokio::io::AsyncWriteExt;
    let mut conn: Option<super::link::LinkStream> = None;
    let target = addr.to_string();
    while let Some(m) = rx.recv().await {
        let mut buf = Frame::Raft(m).encode().unwrap_or_default();
        while let Ok(m) = rx.try_recv() {
            buf.extend(Frame::Raft(m).encode().unwrap_or_default());
        }
        if conn.is_none() {
            match link.connect(&target, Duration::from_millis(200)).await {
                Ok(s) => conn = Some(s),
                Err(e) => {
                    tracing::debug!(peer = %target, error = %e, "connecting to a quorum peer");
                    continue;
                }
            }
        }
        if let Some(s) = conn.as_mut()
            && tokio::time::timeout(Duration::from_millis(500), s.write_all(&buf))
                .await
                .map_or(true, |r| r.is_err())
        {
            conn = None;
        }
    }
}

/// What to answer once a proposal is applied.
enum Reply {
    Registered(u64),
    ProducerIds(i64),
    Heartbeat(BrokerId),
    Done,
}

struct Pending {
    index: u64,
    records: Vec<MetadataRecord>,
    reply: Option<(oneshot::Sender<ControllerResponse>, Reply)>,
}

struct Watcher {
    known: u64,
    deadline: Instant,
    reply: oneshot::Sender<ControllerResponse>,
}

struct ControllerLoop {
    active: Arc<AtomicBool>,
    node: QuorumNode,
    logic: ControllerLogic,
    logic_config: ControllerConfig,
    peers: HashMap<u64, mpsc::UnboundedSender<Message>>,
    pending: VecDeque<Pending>,
    watchers: Vec<Watcher>,
    /// The index of this leadership's first entry; `None` while not leader.
    leading_since: Option<u64>,
    sessions_started: bool,
    /// SCRAM credentials of this node's data directory, proposed when the quorum has none.
    bootstrap_scram: Vec<(String, String, strata_replication::controller::ScramEntry)>,
    started: Instant,
    rebalance_every_ms: Option<u64>,
    last_rebalance_ms: u64,
    /// `leader.imbalance.return.delay.ms`: how long a broker must have been live before
    /// leaderships move back to it.
    leader_return_delay_ms: u64,
    /// Since when (controller clock) each live broker has been live, as this controller saw.
    live_since_ms: std::collections::HashMap<strata_replication::BrokerId, u64>,
    /// How long a broker whose heartbeat connection closed has to heartbeat again.
    connection_grace_ms: u64,
    /// `broker.replacement.delay.ms`: a broker fenced this long has its replicas re-created
    /// elsewhere (`None`: never).
    replacement_delay_ms: Option<u64>,
    /// Since when (controller clock) each fenced broker has been fenced, as this controller
    /// saw: a new active controller starts every clock afresh.
    fenced_since_ms: std::collections::HashMap<strata_replication::BrokerId, u64>,
    /// Quorum peers' controller addresses, to probe one whose connection closed.
    peer_addrs: HashMap<u64, SocketAddr>,
    /// Every voter's Raft id (the order decides who campaigns first when a leader is gone).
    voters: Vec<u64>,
    /// The runtime the probes run on.
    runtime: tokio::runtime::Handle,
    /// This loop's own input, for the probes' findings.
    tx: Sender<Input>,
    /// The last active controller found gone (its listener refused us), and when.
    gone_leader: Option<(u64, Instant)>,
    /// When each peer's last Raft message arrived (DescribeQuorum's last fetch).
    last_heard: std::collections::HashMap<u64, Instant>,
}

fn error_response(e: &ControllerError) -> ControllerResponse {
    let code = match e {
        ControllerError::InvalidReplicationFactor { .. } => ErrorCode::InvalidReplicationFactor,
        ControllerError::InvalidPartitions(_) => ErrorCode::InvalidPartitions,
        ControllerError::TopicExists(_) => ErrorCode::TopicAlreadyExists,
        ControllerError::UnknownTopicOrPartition(_) => ErrorCode::UnknownTopicOrPartition,
        ControllerError::UnknownBroker(_) => ErrorCode::StaleBrokerEpoch,
        ControllerError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ControllerError::NotLeader(_) => ErrorCode::NotLeaderOrFollower,
        ControllerError::IneligibleReplica(_) => ErrorCode::IneligibleReplica,
        ControllerError::InvalidReplicaAssignment(_) => ErrorCode::InvalidReplicaAssignment,
        ControllerError::ElectionNotNeeded(_) => ErrorCode::ElectionNotNeeded,
        ControllerError::PreferredLeaderNotAvailable(_) => ErrorCode::PreferredLeaderNotAvailable,
        ControllerError::EligibleLeadersNotAvailable(_) => ErrorCode::EligibleLeadersNotAvailable,
        ControllerError::NoReassignmentInProgress(_) => ErrorCode::NoReassignmentInProgress,
        ControllerError::BrokerIdNotRegistered(_) => ErrorCode::BrokerIdNotRegistered,
        ControllerError::ReplicationFactorChange { .. } => ErrorCode::InvalidReplicationFactor,
    };
    ControllerResponse::Error {
        code: code.code(),
        message: e.to_string(),
    }
}

/// Brokers that hold replicas but are no longer registered (UnregisterBroker): gone for good,
/// whatever `broker.replacement.delay.ms` says.
fn unregistered_replica_holders(image: &MetadataImage) -> std::collections::BTreeSet<BrokerId> {
    image
        .topics
        .values()
        .flat_map(|t| &t.partitions)
        .flat_map(|p| p.target_replicas())
        .filter(|b| !image.brokers.contains_key(b))
        .collect()
}

/// Broker ids of a request's replica lists.
fn broker_ids(assignments: Vec<Vec<i32>>) -> Vec<Vec<BrokerId>> {
    assignments
        .into_iter()
        .map(|r| r.into_iter().map(BrokerId).collect())
        .collect()
}

/// The committed image plus the records of proposals not yet applied (borrowed as it is when
/// nothing is pending: heartbeats, the common request, then copy nothing).
fn projected<'a>(
    node: &'a QuorumNode,
    pending: &VecDeque<Pending>,
) -> std::borrow::Cow<'a, MetadataImage> {
    let mut image = std::borrow::Cow::Borrowed(node.image());
    for r in pending.iter().flat_map(|p| &p.records) {
        image.to_mut().apply(r);
    }
    image
}

impl ControllerLoop {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn run(mut self, rx: Receiver<Input>) {
        let mut next_tick = Instant::now() + TICK;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(input) => {
                    self.input(input);
                    // Take what else is queued before paying for a ready round.
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(Input::Stop) => return,
                            Ok(input) => self.input(input),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + TICK;
                self.node.tick();
                self.leader_duties();
            }
            if let Err(e) = self.ready() {
                // The metadata log could not be written: this member cannot go on safely.
                tracing::error!(error = %e, "metadata quorum failed; stopping the process");
                std::process::exit(70);
            }
        }
    }

    /// A peer's connection closed. If the peer is the active controller, probe its listener:
    /// a refused connection means its process is gone (a SIGKILL or a crash closes the
    /// sockets at once), and waiting out the election timeout and lease would only add to the
    /// failover. The probe's finding comes back as `PeerGone`, later for each voter ranked
    /// after the first live one, so the survivors do not split their votes.
    fn probe_peer(&self, peer: u64) {
        if self.node.is_leader() || self.node.leader_id() != Some(peer) {
            tracing::debug!(peer, leader = ?self.node.leader_id(), "a peer's connection closed; not the active controller's");
            return;
        }
        let Some(addr) = self.peer_addrs.get(&peer).copied() else {
            return;
        };
        let me = self.node.id();
        let rank = self
            .voters
            .iter()
            .filter(|v| **v != peer)
            .position(|v| *v == me)
            .unwrap_or(0) as u32;
        let tx = self.tx.clone();
        self.runtime.spawn(async move {
            let refused = matches!(
                tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused
            );
            tracing::debug!(peer, refused, "probed the active controller's listener");
            if refused {
                tokio::time::sleep(Duration::from_millis(150) * rank).await;
                let _ = tx.send(Input::PeerGone(peer));
            }
        });
    }

    fn input(&mut self, input: Input) {
        match input {
            Input::PeerLost(peer) => self.probe_peer(peer),
            Input::PeerGone(peer) => {
                self.gone_leader = Some((peer, Instant::now()));
                match self.node.leader_gone(peer) {
                    Ok(true) => tracing::info!(
                        controller = node_of(peer),
                        "the active controller's process is gone: campaigning now"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::debug!(error = %e, "campaign refused"),
                }
            }
            Input::Raft(m) => {
                self.last_heard.insert(m.from, Instant::now());
                if let Err(e) = self.node.step(m) {
                    tracing::debug!(error = %e, "raft message refused");
                }
            }
            Input::Request(req, reply) => self.request(req, reply),
            Input::ConnectionLost(id) => {
                if self.deciding() {
                    let now = self.now_ms();
                    self.logic
                        .connection_lost(BrokerId(id), now, self.connection_grace_ms);
                }
            }
            Input::Stop => {}
        }
    }

    fn ready(&mut self) -> Result<(), strata_replication::controller::QuorumError> {
        // A proposal may commit within one ready round (a quorum of one); loop until quiet.
        for _ in 0..4 {
            let messages = self.node.handle_ready()?;
            let quiet = messages.is_empty();
            for m in messages {
                if let Some(p) = self.peers.get(&m.to) {
                    let _ = p.send(m);
                }
            }
            self.track_leadership();
            self.complete();
            if quiet {
                break;
            }
        }
        Ok(())
    }

    fn track_leadership(&mut self) {
        let leader = self.node.is_leader();
        self.active.store(self.deciding(), Ordering::Relaxed);
        match (leader, self.leading_since) {
            (true, None) => {
                self.leading_since = Some(self.node.last_index());
                self.sessions_started = false;
                self.logic = ControllerLogic::new(self.logic_config);
                self.fenced_since_ms.clear();
                tracing::info!(term = self.node.term(), "became the active controller");
            }
            (false, Some(_)) => {
                self.leading_since = None;
                let leader = self.node.leader_id().map(node_of);
                for p in self.pending.drain(..) {
                    if let Some((tx, _)) = p.reply {
                        let _ = tx.send(ControllerResponse::NotController { leader });
                    }
                }
                for w in self.watchers.drain(..) {
                    let _ = w.reply.send(ControllerResponse::NotController { leader });
                }
                tracing::info!(leader = ?leader, "no longer the active controller");
            }
            _ => {}
        }
        if let Some(since) = self.leading_since
            && !self.sessions_started
            && self.node.applied() >= since
        {
            let now = self.now_ms();
            // Live brokers find the new controller within a few heartbeats.
            let grace = self.connection_grace_ms.saturating_mul(2).max(300);
            self.logic.start_sessions(self.node.image(), now, grace);
            // The broker of a controller found gone (its process refused connections a moment
            // ago) died with it: fence it now, not after the grace for live brokers to find
            // this controller.
            if let Some((peer, at)) = self.gone_leader
                && at.elapsed() < Duration::from_secs(5)
            {
                tracing::info!(
                    broker = node_of(peer),
                    "fencing the broker of the controller that is gone"
                );
                self.logic.connection_lost(BrokerId(node_of(peer)), now, 0);
            }
            self.sessions_started = true;
            // A cluster's first SCRAM users come from the data directory's credential file
            // (`strata scram add` before the first start, as Kafka's storage tool adds them):
            // proposed once the quorum has none.
            if self.node.image().scram.is_empty() && !self.bootstrap_scram.is_empty() {
                tracing::info!(
                    credentials = self.bootstrap_scram.len(),
                    "the cluster has no SCRAM users: adding those of this node's data directory"
                );
                let records = self
                    .bootstrap_scram
                    .iter()
                    .map(|(user, mechanism, c)| MetadataRecord::SetScramCredential {
                        user: user.clone(),
                        mechanism: mechanism.clone(),
                        credential: Some(c.clone()),
                    })
                    .collect();
                self.propose(records, None);
            }
        }
    }

    /// Whether this member may decide: leader, with every earlier term's entries applied.
    fn deciding(&self) -> bool {
        self.leading_since.is_some() && self.sessions_started
    }

    fn answer(&self, reply: Reply) -> ControllerResponse {
        let offset = self.node.applied();
        match reply {
            Reply::Registered(epoch) => ControllerResponse::Registered { epoch },
            Reply::ProducerIds(start) => ControllerResponse::ProducerIds {
                start,
                len: PRODUCER_ID_BLOCK,
            },
            Reply::Heartbeat(id) => ControllerResponse::Heartbeat {
                fenced: !self.node.image().is_live(id),
                metadata_offset: offset,
            },
            Reply::Done => ControllerResponse::Done {
                metadata_offset: offset,
            },
        }
    }

    fn propose(
        &mut self,
        records: Vec<MetadataRecord>,
        reply: Option<(oneshot::Sender<ControllerResponse>, Reply)>,
    ) {
        if records.is_empty() {
            if let Some((tx, r)) = reply {
                let _ = tx.send(self.answer(r));
            }
            return;
        }
        match self.node.propose(&records) {
            Ok(index) => self.pending.push_back(Pending {
                index,
                records,
                reply,
            }),
            Err(e) => {
                tracing::warn!(error = %e, "metadata proposal failed");
                if let Some((tx, _)) = reply {
                    let _ = tx.send(ControllerResponse::NotController {
                        leader: self.node.leader_id().map(node_of),
                    });
                }
            }
        }
    }

    fn complete(&mut self) {
        let applied = self.node.applied();
        while self.pending.front().is_some_and(|p| p.index <= applied) {
            if let Some(p) = self.pending.pop_front()
                && let Some((tx, r)) = p.reply
            {
                let _ = tx.send(self.answer(r));
            }
        }
        let now = Instant::now();
        let watchers = std::mem::take(&mut self.watchers);
        for w in watchers {
            if applied > w.known {
                let image = String::from_utf8(self.node.image().to_snapshot_bytes()).ok();
                let _ = w.reply.send(ControllerResponse::Metadata {
                    offset: applied,
                    image,
                });
            } else if now >= w.deadline {
                let _ = w.reply.send(ControllerResponse::Metadata {
                    offset: applied,
                    image: None,
                });
            } else {
                self.watchers.push(w);
            }
        }
    }

    fn leader_duties(&mut self) {
        if !self.deciding() {
            return;
        }
        let now = self.now_ms();
        let image = projected(&self.node, &self.pending);
        let fenced = self.logic.tick(&image, now);
        if !fenced.is_empty() {
            tracing::info!(
                records = fenced.len(),
                "fencing brokers whose session expired"
            );
            self.propose(fenced, None);
            return;
        }
        // Reassignments whose target is in sync complete (normally with the ISR change that
        // made it so; this catches a move a previous controller left, or one a fencing ended).
        let completions = self.logic.reassignment_progress(&image);
        if !completions.is_empty() {
            tracing::info!(
                partitions = completions.len(),
                "completing reassignments whose target replicas are in sync"
            );
            self.propose(completions, None);
            return;
        }
        // Re-replication: brokers fenced for `broker.replacement.delay.ms` are taken as gone,
        // and their replicas move to live brokers.
        self.fenced_since_ms
            .retain(|b, _| image.brokers.get(b).is_some_and(|r| r.fenced));
        for b in image.brokers.values().filter(|b| b.fenced) {
            self.fenced_since_ms.entry(b.id).or_insert(now);
        }
        let gone = if self.pending.is_empty() {
            unregistered_replica_holders(&image)
        } else {
            Default::default()
        };
        if self.pending.is_empty()
            && let Some(delay) = self
                .replacement_delay_ms
                .or_else(|| (!gone.is_empty()).then_some(u64::MAX))
        {
            let mut lost: std::collections::BTreeSet<BrokerId> = self
                .fenced_since_ms
                .iter()
                .filter(|(_, since)| now.saturating_sub(**since) >= delay)
                .map(|(b, _)| *b)
                .collect();
            lost.extend(gone);
            let moves = self.logic.replace_lost_brokers(&image, &lost);
            if !moves.is_empty() {
                tracing::warn!(brokers = ?lost, records = moves.len(), delay_ms = delay, "brokers fenced past broker.replacement.delay.ms: re-creating their replicas on live brokers");
                self.propose(moves, None);
                return;
            }
        }
        // Leaderships go back to a preferred replica only once its broker has been live for a
        // while: clients that failed to reach it while it was down back off their reconnects
        // (librdkafka up to 10 s), and a leadership handed back at once would stall them for
        // that long (seen in the failover workload: consumers stalled 2.5-4 s).
        self.live_since_ms
            .retain(|b, _| image.brokers.get(b).is_some_and(|r| !r.fenced));
        for b in image.live_brokers() {
            self.live_since_ms.entry(b.id).or_insert(now);
        }
        let delay = self.leader_return_delay_ms;
        let (settled, returning): (Vec<_>, Vec<_>) = self
            .live_since_ms
            .iter()
            .partition(|(_, since)| now.saturating_sub(**since) >= delay);
        let settled: std::collections::BTreeSet<strata_replication::BrokerId> =
            settled.into_iter().map(|(b, _)| *b).collect();
        // Failover elections, too, prefer an in-sync replica that has been live a while.
        self.logic
            .set_returning(returning.into_iter().map(|(b, _)| *b).collect());
        if let Some(every) = self.rebalance_every_ms
            && now.saturating_sub(self.last_rebalance_ms) >= every
            && self.pending.is_empty()
        {
            self.last_rebalance_ms = now;
            let moves = self.logic.preferred_leader_elections(&image, &settled);
            if !moves.is_empty() {
                tracing::info!(
                    partitions = moves.len(),
                    "moving leaderships back to preferred replicas"
                );
                self.propose(moves, None);
                return;
            }
            // Self-healing, second half: once a rack has a (settled) broker again, partitions
            // that had to double up in another rack spread out again, a few at a time.
            if self.replacement_delay_ms.is_some() {
                let repairs = self
                    .logic
                    .rack_repairs(&image, &settled, RACK_REPAIRS_PER_ROUND);
                if !repairs.is_empty() {
                    tracing::info!(
                        records = repairs.len(),
                        "moving replicas that share a rack to a rack that has a broker again"
                    );
                    self.propose(repairs, None);
                }
            }
        }
    }

    fn request(&mut self, req: ControllerRequest, tx: oneshot::Sender<ControllerResponse>) {
        if !self.deciding() {
            let leader = self
                .node
                .leader_id()
                .map(node_of)
                .filter(|l| raft_id(*l) != self.node.id());
            let _ = tx.send(ControllerResponse::NotController { leader });
            return;
        }
        let now = self.now_ms();
        let image = projected(&self.node, &self.pending);
        match req {
            ControllerRequest::Register {
                id,
                endpoint,
                rack,
                directory_id,
                listeners,
            } => {
                let (epoch, records) = self.logic.register_broker_on(
                    &image,
                    BrokerId(id),
                    &endpoint,
                    listeners,
                    rack.as_deref(),
                    directory_id,
                    now,
                );
                tracing::info!(broker = id, epoch, %endpoint, "broker registered");
                self.propose(records, Some((tx, Reply::Registered(epoch))));
            }
            ControllerRequest::Heartbeat {
                id,
                epoch,
                shutting_down,
            } => {
                let b = BrokerId(id);
                if image.brokers.get(&b).is_none_or(|r| r.epoch != epoch) {
                    let _ = tx.send(error_response(&ControllerError::UnknownBroker(b)));
                    return;
                }
                if shutting_down {
                    let records = if image.is_live(b) {
                        tracing::info!(broker = id, "controlled shutdown");
                        self.logic.controlled_shutdown(&image, b)
                    } else {
                        Vec::new()
                    };
                    self.propose(records, Some((tx, Reply::Heartbeat(b))));
                    return;
                }
                match self.logic.heartbeat(&image, b, epoch, now) {
                    Ok(records) => self.propose(records, Some((tx, Reply::Heartbeat(b)))),
                    Err(e) => {
                        let _ = tx.send(error_response(&e));
                    }
                }
            }
            ControllerRequest::WatchMetadata { known } => {
                self.watchers.push(Watcher {
                    known,
                    deadline: Instant::now() + WATCH_MAX,
                    reply: tx,
                });
                self.complete();
            }
            ControllerRequest::CreateTopic {
                name,
                partitions,
                replication_factor,
                configs,
                assignments,
            } => {
                let id = uuid::Uuid::new_v4().as_u128();
                let decided = match assignments {
                    Some(a) => {
                        self.logic
                            .create_topic_assigned(&image, &name, id, broker_ids(a), configs)
                    }
                    None => self.logic.create_topic(
                        &image,
                        &name,
                        id,
                        partitions,
                        replication_factor as usize,
                        configs,
                    ),
                };
                match decided {
                    Ok(record) => {
                        tracing::info!(topic = %name, partitions, replication_factor, "creating topic");
                        self.propose(vec![record], Some((tx, Reply::Done)));
                    }
                    Err(e) => {
                        let _ = tx.send(error_response(&e));
                    }
                }
            }
            ControllerRequest::CreatePartitions {
                name,
                count,
                assignments,
            } => {
                let decided = match assignments {
                    Some(a) => self
                        .logic
                        .create_partitions_assigned(&image, &name, broker_ids(a)),
                    None => self.logic.create_partitions(&image, &name, count),
                };
                match decided {
                    Ok(record) => {
                        tracing::info!(topic = %name, count, "adding partitions");
                        self.propose(vec![record], Some((tx, Reply::Done)));
                    }
                    Err(e) => {
                        let _ = tx.send(error_response(&e));
                    }
                }
            }
            ControllerRequest::DeleteTopic { name } => {
                if !image.topics.contains_key(&name) {
                    let _ = tx.send(error_response(&ControllerError::UnknownTopicOrPartition(
                        name,
                    )));
                    return;
                }
                self.propose(
                    vec![MetadataRecord::DeleteTopic { name }],
                    Some((tx, Reply::Done)),
                );
            }
            ControllerRequest::SetTopicConfig { name, configs } => {
                if !image.topics.contains_key(&name) {
                    let _ = tx.send(error_response(&ControllerError::UnknownTopicOrPartition(
                        name,
                    )));
                    return;
                }
                self.propose(
                    vec![MetadataRecord::SetTopicConfig {
                        topic: name,
                        configs,
                    }],
                    Some((tx, Reply::Done)),
                );
            }
            ControllerRequest::CreateAcls { acls } => {
                let acls: Vec<_> = acls
                    .into_iter()
                    .filter(|a| !image.acls.contains(a))
                    .collect();
                tracing::info!(count = acls.len(), "creating ACLs");
                self.propose(
                    vec![MetadataRecord::CreateAcls { acls }],
                    Some((tx, Reply::Done)),
                );
            }
            ControllerRequest::RemoveAcls { acls } => {
                let acls: Vec<_> = acls
                    .into_iter()
                    .filter(|a| image.acls.contains(a))
                    .collect();
                tracing::info!(count = acls.len(), "removing ACLs");
                self.propose(
                    vec![MetadataRecord::RemoveAcls { acls }],
                    Some((tx, Reply::Done)),
                );
            }
            ControllerRequest::AlterClientQuotas { changes } => {
                let records = changes
                    .into_iter()
                    .map(|(entity, key, value)| MetadataRecord::SetClientQuota {
                        entity,
                        key,
                        value: value.map(strata_replication::controller::QuotaValue),
                    })
                    .collect();
                self.propose(records, Some((tx, Reply::Done)));
            }
            ControllerRequest::AlterScramCredentials { changes } => {
                let records = changes
                    .into_iter()
                    .map(|(user, mechanism, credential)| {
                        tracing::info!(%user, %mechanism, delete = credential.is_none(), "altering a SCRAM credential");
                        MetadataRecord::SetScramCredential {
                            user,
                            mechanism,
                            credential,
                        }
                    })
                    .collect();
                self.propose(records, Some((tx, Reply::Done)));
            }
            ControllerRequest::SetBrokerConfig { resource, configs } => {
                self.propose(
                    vec![MetadataRecord::SetBrokerConfig { resource, configs }],
                    Some((tx, Reply::Done)),
                );
            }
            ControllerRequest::ElectLeader {
                topic,
                partition,
                election,
            } => match self.logic.elect_leader(&image, &topic, partition, election) {
                Ok(record) => {
                    tracing::info!(topic = %topic, partition, ?election, "electing a leader on request");
                    self.propose(vec![record], Some((tx, Reply::Done)));
                }
                Err(e) => {
                    let _ = tx.send(error_response(&e));
                }
            },
            ControllerRequest::UnregisterBroker { id } => {
                match self.logic.unregister_broker(&image, BrokerId(id)) {
                    Ok(records) => {
                        tracing::warn!(
                            broker = id,
                            "unregistering a broker: its replicas will be re-created elsewhere"
                        );
                        self.propose(records, Some((tx, Reply::Done)));
                    }
                    Err(e) => {
                        let _ = tx.send(error_response(&e));
                    }
                }
            }
            ControllerRequest::ReassignPartition {
                topic,
                partition,
                target,
                allow_replication_factor_change,
            } => {
                let target = target.map(|t| t.into_iter().map(BrokerId).collect());
                match self.logic.reassign_partition(
                    &image,
                    &topic,
                    partition,
                    target.clone(),
                    allow_replication_factor_change,
                ) {
                    Ok(records) => {
                        tracing::info!(topic = %topic, partition, target = ?target, "reassigning a partition on request");
                        self.propose(records, Some((tx, Reply::Done)));
                    }
                    Err(e) => {
                        let _ = tx.send(error_response(&e));
                    }
                }
            }
            ControllerRequest::DescribeQuorum => {
                let status = self.node.status();
                let me = self.node.id();
                let voters = status
                    .voters
                    .iter()
                    .map(|v| crate::cluster::wire::VoterState {
                        id: node_of(v.id),
                        log_end_offset: v.matched,
                        last_heard_ms_ago: if v.id == me {
                            Some(0)
                        } else {
                            self.last_heard
                                .get(&v.id)
                                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX))
                        },
                        caught_up: v.matched >= status.commit,
                    })
                    .collect();
                let _ = tx.send(ControllerResponse::Quorum {
                    leader: node_of(me),
                    term: status.term,
                    high_watermark: status.commit,
                    voters,
                });
            }
            ControllerRequest::AllocateProducerIds => {
                let start = image.next_producer_id;
                self.propose(
                    vec![MetadataRecord::ProducerIdsAllocated {
                        next: start + PRODUCER_ID_BLOCK,
                    }],
                    Some((tx, Reply::ProducerIds(start))),
                );
            }
            ControllerRequest::ReplicaFailed {
                topic,
                partition,
                from,
            } => match self
                .logic
                .replica_failed(&image, &topic, partition, BrokerId(from))
            {
                Ok(record) => {
                    tracing::warn!(topic = %topic, partition, broker = from, change = ?record, "a replica failed");
                    self.propose(record.into_iter().collect(), Some((tx, Reply::Done)));
                }
                Err(e) => {
                    let _ = tx.send(error_response(&e));
                }
            },
            ControllerRequest::AlterPartition {
                topic,
                partition,
                from,
                leader_epoch,
                isr,
            } => {
                match self.logic.alter_isr(
                    &image,
                    &topic,
                    partition,
                    BrokerId(from),
                    LeaderEpoch(leader_epoch),
                    isr.into_iter().map(BrokerId).collect(),
                ) {
                    Ok(records) => {
                        if records.len() > 1 {
                            tracing::info!(topic = %topic, partition, "reassignment complete: the target replicas are in sync");
                        }
                        self.propose(records, Some((tx, Reply::Done)))
                    }
                    Err(e) => {
                        let _ = tx.send(error_response(&e));
                    }
                }
            }
        }
    }
}
