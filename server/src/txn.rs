//! The transaction coordinator (KIP-98, KIP-447): transactional ids, the producer id and epoch
//! each one holds, and its current transaction's state and partitions.
//!
//! A transactional id belongs to one `__transaction_state` partition (Kafka's hash of the id);
//! the leader of that partition coordinates it, from the records it reads when it becomes
//! leader. Every change is a record written with acks=all semantics before it is answered.
//! Ending a transaction is two records around the markers: `PrepareCommit`/`PrepareAbort` (the
//! client is answered once it is safe), then a marker in every partition of the transaction
//! (WriteTxnMarkers to each partition's leader, retried until written), then
//! `CompleteCommit`/`CompleteAbort`. A coordinator that takes over a partition finishes every
//! transaction it finds prepared.
//!
//! Invariants: one change of an id at a time (each id has an async lock held across its write);
//! a transaction's partitions only grow while it is `Ongoing`; an epoch never goes back, and
//! fencing (a new producer with the id, a timeout) bumps it before the abort markers are
//! written with it, so the partitions refuse the old producer afterwards.

pub mod state_record;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use strata_engine::{Offset, batch};

use crate::broker::{Broker, OFFSETS_TOPIC, TXN_TOPIC};
use crate::clock::now_ms;
use crate::error_code::ErrorCode;
use crate::group::{GroupCoordinator, PendingAppend, partition_of};
use crate::topic::ControlType;
pub use state_record::{TxnMetadata, TxnState};

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a request waits for the id's previous transaction to complete before it answers
/// CONCURRENT_TRANSACTIONS.
const PREPARED_WAIT: Duration = Duration::from_secs(1);

/// A transaction as ListTransactions reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListedTxn {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// Its state.
    pub state: TxnState,
    /// When its current transaction began (ms since the epoch).
    pub start_ms: i64,
}

/// What InitProducerId answers.
pub type ProducerIdAndEpoch = (i64, i16);

/// The transaction coordinator of this broker.
#[derive(Debug)]
pub struct TransactionCoordinator {
    broker: Arc<Broker>,
    groups: Arc<GroupCoordinator>,
    metrics: Arc<crate::metrics::Metrics>,
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// One async lock per transactional id: its changes are written one at a time.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The `__transaction_state` partitions coordinated here, with the coordinator epoch of
    /// each (the partition's leader epoch when it was loaded; markers carry it).
    loaded: Mutex<HashMap<i32, i32>>,
    /// Bumped each time a transaction's markers are all written and it is recorded complete:
    /// requests that found it prepared wait for this instead of failing at once.
    completions: tokio::sync::watch::Sender<u64>,
    /// Idle connections to other brokers for WriteTxnMarkers, by broker id and address.
    links: Mutex<HashMap<(i32, String), Vec<crate::cluster::kafka_client::KafkaConnection>>>,
}

impl TransactionCoordinator {
    /// A coordinator; standalone, the partitions of an existing `__transaction_state` are
    /// loaded now (in a cluster, each when this broker becomes its leader).
    pub fn load(
        broker: Arc<Broker>,
        groups: Arc<GroupCoordinator>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> anyhow::Result<Arc<TransactionCoordinator>> {
        let tc = Arc::new(TransactionCoordinator {
            broker: broker.clone(),
            groups,
            metrics,
            txns: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            loaded: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            completions: tokio::sync::watch::channel(0).0,
        });
        if broker.cluster.is_none()
            && let Some(topic) = broker.topic(TXN_TOPIC)
        {
            for p in topic.local_partitions() {
                tc.load_partition(p.index);
            }
        }
        Ok(tc)
    }

    /// The `__transaction_state` partition of a transactional id.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        let n = match &self.broker.cluster {
            Some(c) => c
                .image()
                .topics
                .get(TXN_TOPIC)
                .map_or(self.broker.config.transaction_state_partitions, |t| {
                    t.partitions.len() as i32
                }),
            None => self
                .broker
                .topic(TXN_TOPIC)
                .map_or(self.broker.config.transaction_state_partitions, |t| {
                    t.partition_count() as i32
                }),
        };
        partition_of(transactional_id, n)
    }

    /// This broker leads `__transaction_state` partition `index` now: reads its ids and
    /// finishes every transaction found prepared (its markers may not all be written).
    pub fn load_partition(self: &Arc<Self>, index: i32) {
        let Some(p) = self
            .broker
            .topic(TXN_TOPIC)
            .and_then(|t| t.partition(index))
        else {
            return;
        };
        let mut found: BTreeMap<String, Option<TxnMetadata>> = BTreeMap::new();
        let mut next = p.log.log_start_offset();
        let read = (|| -> anyhow::Result<()> {
            loop {
                let r = p
                    .log
                    .read(next, strata_engine::ReadLimits::bytes(4 << 20))?;
                let Some(slice) = r.slice else { break };
                let bytes = slice.read_to_vec()?;
                let mut pos = 0usize;
                while pos < bytes.len() {
                    let h = batch::parse_header(&bytes[pos..], pos)?;
                    if let Some(records) = batch::records(&bytes[pos..pos + h.size()]) {
                        for r in records {
                            if let Some(id) = r.key.and_then(state_record::decode_key) {
                                found.insert(id, r.value.and_then(state_record::decode_value));
                            }
                        }
                    }
                    pos += h.size();
                }
                next = slice.next_offset();
            }
            Ok(())
        })();
        if let Err(e) = read {
            tracing::error!(partition = index, error = %e, "reading __transaction_state");
            return;
        }
        let mut prepared = Vec::new();
        {
            let mut txns = lock(&self.txns);
            txns.retain(|id, _| self.partition_for(id) != index);
            for (id, meta) in found {
                if let Some(meta) = meta {
                    if meta.state.is_prepared() {
                        prepared.push(id.clone());
                    }
                    txns.insert(id, meta);
                }
            }
        }
        lock(&self.loaded).insert(index, p.leader_epoch().0);
        tracing::info!(
            partition = index,
            finishing = prepared.len(),
            "coordinating the transactions of a __transaction_state partition"
        );
        for id in prepared {
            tokio::spawn(self.clone().complete(id));
        }
    }

    /// This broker no longer leads `__transaction_state` partition `index`.
    pub fn unload_partition(&self, index: i32) {
        lock(&self.loaded).remove(&index);
        lock(&self.txns).retain(|id, _| self.partition_for(id) != index);
    }

    /// The coordinator epoch of the id's partition, if this broker coordinates the id;
    /// otherwise what the client must hear: NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS or
    /// COORDINATOR_NOT_AVAILABLE.
    pub fn check_coordinator(&self, transactional_id: &str) -> Result<i32, ErrorCode> {
        let index = self.partition_for(transactional_id);
        let local = self
            .broker
            .topic(TXN_TOPIC)
            .and_then(|t| t.partition(index))
            .ok_or(ErrorCode::CoordinatorNotAvailable)?;
        if let Some(cluster) = &self.broker.cluster
            && !(local.is_leader() && cluster.holds_lease())
        {
            return Err(ErrorCode::NotCoordinator);
        }
        lock(&self.loaded)
            .get(&index)
            .copied()
            .ok_or(ErrorCode::CoordinatorLoadInProgress)
    }

    /// Standalone: creates `__transaction_state` on first use (as Kafka does) and coordinates
    /// all of it. In a cluster the FindCoordinator path asks the controller instead.
    pub async fn ensure_topic_standalone(self: &Arc<Self>) -> Result<(), ErrorCode> {
        if self.broker.cluster.is_some() || self.broker.topic(TXN_TOPIC).is_some() {
            return Ok(());
        }
        let broker = self.broker.clone();
        let created = tokio::task::spawn_blocking(move || {
            let mut configs = BTreeMap::new();
            configs.insert("cleanup.policy".to_string(), "compact".to_string());
            configs.insert("segment.bytes".to_string(), (100u64 << 20).to_string());
            let n = broker.config.transaction_state_partitions;
            match broker.create_topic(TXN_TOPIC, n, configs) {
                Ok(_) => Ok(()),
                Err(e) if e.code() == ErrorCode::TopicAlreadyExists => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|_| ErrorCode::UnknownServerError)?;
        if let Err(e) = created {
            tracing::warn!(error = %e, "creating {TXN_TOPIC}");
            return Err(ErrorCode::CoordinatorNotAvailable);
        }
        if let Some(topic) = self.broker.topic(TXN_TOPIC) {
            for p in topic.local_partitions() {
                if !lock(&self.loaded).contains_key(&p.index) {
                    self.load_partition(p.index);
                }
            }
        }
        Ok(())
    }

    /// Waits (up to [`PREPARED_WAIT`]) while the id's last transaction is being completed:
    /// its markers usually take a few milliseconds, and a producer that hears
    /// CONCURRENT_TRANSACTIONS backs off far longer (librdkafka: `retry.backoff.ms`, 100 ms)
    /// before its next transaction may start.
    async fn wait_while_prepared(&self, transactional_id: &str) {
        let mut rx = self.completions.subscribe();
        let deadline = tokio::time::Instant::now() + PREPARED_WAIT;
        while self
            .get(transactional_id)
            .is_some_and(|m| m.state.is_prepared())
        {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return;
            }
        }
    }

    fn id_lock(&self, transactional_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = lock(&self.locks);
        if locks.len() > 10_000 {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
        }
        locks
            .entry(transactional_id.to_string())
            .or_default()
            .clone()
    }

    /// The id's metadata, if known here.
    pub fn get(&self, transactional_id: &str) -> Option<TxnMetadata> {
        lock(&self.txns).get(transactional_id).cloned()
    }

    /// Writes the id's new metadata to its partition and waits until it is safe (durable and
    /// replicated like acks=all), then makes it the current one. Called with the id's lock.
    async fn store(&self, transactional_id: &str, meta: TxnMetadata) -> Result<(), ErrorCode> {
        let index = self.partition_for(transactional_id);
        let partition = self
            .broker
            .topic(TXN_TOPIC)
            .and_then(|t| t.partition(index))
            .ok_or(ErrorCode::NotCoordinator)?;
        let key = state_record::encode_key(transactional_id);
        let value = state_record::encode_value(&meta);
        let bytes = batch::build(
            Offset(0),
            meta.update_ms,
            &[(Some(key.as_slice()), Some(value.as_slice()))],
        );
        let (info, epoch) = partition
            .append_as_coordinator(Bytes::from(bytes))
            .map_err(|(code, _)| match code {
                ErrorCode::NotLeaderOrFollower => ErrorCode::NotCoordinator,
                other => other,
            })?;
        PendingAppend {
            partition,
            info,
            epoch,
        }
        .settle()
        .await?;
        lock(&self.txns).insert(transactional_id.to_string(), meta);
        Ok(())
    }

    /// InitProducerId with a transactional id: a new producer id (epoch 0) for a new id, else
    /// the next epoch of the id's producer id, which fences every older producer of the id. An
    /// open transaction is aborted first (CONCURRENT_TRANSACTIONS until it is: the client
    /// retries). `expected` is KIP-360's current producer id and epoch, if the client sent one.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, ErrorCode> {
        if timeout_ms <= 0 || timeout_ms > self.broker.config.transaction_max_timeout_ms {
            return Err(ErrorCode::InvalidTransactionTimeout);
        }
        self.check_coordinator(transactional_id)?;
        self.wait_while_prepared(transactional_id).await;
        let id_lock = self.id_lock(transactional_id);
        let _g = id_lock.lock().await;
        self.check_coordinator(transactional_id)?;
        let now = now_ms();
        let Some(mut meta) = self.get(transactional_id) else {
            let pid = self
                .broker
                .allocate_producer_id()
                .await
                .map_err(|e| e.code())?;
            let meta = TxnMetadata {
                producer_id: pid,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                update_ms: now,
                ended_by: None,
                markers_as: None,
            };
            self.store(transactional_id, meta).await?;
            return Ok((pid, 0));
        };
        if meta.state.is_prepared() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected
            && (pid != meta.producer_id || epoch != meta.producer_epoch)
        {
            return Err(ErrorCode::ProducerFenced);
        }
        if meta.state == TxnState::Ongoing {
            // The previous producer left a transaction open: fence it and abort it.
            self.fence_and_abort(transactional_id, meta).await?;
            return Err(ErrorCode::ConcurrentTransactions);
        }
        self.bump_epoch(&mut meta).await?;
        meta.timeout_ms = timeout_ms;
        meta.state = TxnState::Empty;
        meta.partitions.clear();
        meta.start_ms = -1;
        meta.update_ms = now;
        let answer = (meta.producer_id, meta.producer_epoch);
        self.store(transactional_id, meta).await?;
        Ok(answer)
    }

    /// The id's next producer epoch, or a new producer id at epoch 0 once its epochs are used
    /// up (the last, `i16::MAX`, is left to the markers of an overflowing bump).
    async fn bump_epoch(&self, meta: &mut TxnMetadata) -> Result<(), ErrorCode> {
        if meta.producer_epoch >= i16::MAX - 1 {
            meta.producer_id = self
                .broker
                .allocate_producer_id()
                .await
                .map_err(|e| e.code())?;
            meta.producer_epoch = 0;
        } else {
            meta.producer_epoch += 1;
        }
        Ok(())
    }

    /// Bumps the epoch of an open transaction's producer and aborts the transaction with it
    /// (its markers are written in the background). Called with the id's lock.
    async fn fence_and_abort(
        self: &Arc<Self>,
        transactional_id: &str,
        mut meta: TxnMetadata,
    ) -> Result<(), ErrorCode> {
        if meta.producer_epoch < i16::MAX - 1 {
            meta.producer_epoch += 1;
        }
        meta.state = TxnState::PrepareAbort;
        meta.markers_as = None;
        meta.update_ms = now_ms();
        self.store(transactional_id, meta).await?;
        tokio::spawn(self.clone().complete(transactional_id.to_string()));
        Ok(())
    }

    /// Checks that the caller is the id's current producer; CONCURRENT_TRANSACTIONS while the
    /// id's last transaction is being completed.
    fn check_producer(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<TxnMetadata, ErrorCode> {
        self.check_coordinator(transactional_id)?;
        let meta = self
            .get(transactional_id)
            .ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if meta.producer_id != producer_id {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if meta.producer_epoch != producer_epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        Ok(meta)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the
    /// partitions join the producer's transaction, which opens if none is.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), ErrorCode> {
        tracing::debug!(transactional_id, ?partitions, "AddPartitionsToTxn");
        self.wait_while_prepared(transactional_id).await;
        let id_lock = self.id_lock(transactional_id);
        let _g = id_lock.lock().await;
        let mut meta = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        if meta.state.is_prepared() {
            return Err(ErrorCode::ConcurrentTransactions);
        }
        let now = now_ms();
        if meta.state != TxnState::Ongoing {
            meta.partitions.clear();
            meta.start_ms = now;
        } else if partitions.iter().all(|p| meta.partitions.contains(p)) {
            return Ok(());
        }
        meta.state = TxnState::Ongoing;
        meta.partitions.extend(partitions.iter().cloned());
        meta.update_ms = now;
        self.store(transactional_id, meta).await
    }

    /// KIP-890: whether `partition` is in the producer's open transaction (a partition
    /// leader asks before it appends the producer's first transactional batch there).
    pub fn verify_partition(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partition: &(String, i32),
    ) -> Result<(), ErrorCode> {
        let meta = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        if meta.state == TxnState::Ongoing && meta.partitions.contains(partition) {
            Ok(())
        } else {
            Err(ErrorCode::InvalidTxnState)
        }
    }

    /// EndTxn: once the prepare record is safe the client is answered, and the markers are
    /// written in the background. A retry of an ended transaction's EndTxn succeeds again.
    ///
    /// `tv2` (KIP-890 part 2, EndTxn v5+): ending bumps the producer's epoch, the markers carry
    /// the new epoch (so a late batch of the ended transaction is fenced by every partition),
    /// and the client continues with the returned producer id and epoch (a new producer id if
    /// the epoch would overflow). Such a client may also abort with no transaction open, to
    /// fence what it may still have in flight. Without `tv2` the id and epoch stay.
    pub async fn end_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        tv2: bool,
    ) -> Result<ProducerIdAndEpoch, ErrorCode> {
        tracing::debug!(transactional_id, commit, tv2, "EndTxn");
        let id_lock = self.id_lock(transactional_id);
        let _g = id_lock.lock().await;
        self.check_coordinator(transactional_id)?;
        let ended = |state: TxnState| match (state, commit) {
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(()),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ErrorCode::ConcurrentTransactions)
            }
            _ => Err(ErrorCode::InvalidTxnState),
        };
        if tv2
            && let Some(meta) = self.get(transactional_id)
            && meta.ended_by == Some((producer_id, producer_epoch))
            && (meta.producer_id, meta.producer_epoch) != (producer_id, producer_epoch)
        {
            // The retry of the EndTxn that bumped the epoch: its outcome again.
            return match meta.state {
                TxnState::Empty | TxnState::Ongoing => Err(ErrorCode::ProducerFenced),
                state => ended(state).map(|()| (meta.producer_id, meta.producer_epoch)),
            };
        }
        let mut meta = self.check_producer(transactional_id, producer_id, producer_epoch)?;
        let open = meta.state == TxnState::Ongoing;
        let fence_only = tv2 && !commit && !open && !meta.state.is_prepared();
        if !open && !fence_only {
            ended(meta.state)?;
            return Ok((meta.producer_id, meta.producer_epoch));
        }
        if fence_only {
            meta.partitions.clear();
        }
        meta.state = if commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        meta.update_ms = now_ms();
        if tv2 {
            meta.ended_by = Some((producer_id, producer_epoch));
            // If the old id's epochs are used up, the markers end its transaction at the last
            // epoch, and the client goes on with a new producer id.
            meta.markers_as = (producer_epoch >= i16::MAX - 1).then_some((producer_id, i16::MAX));
            self.bump_epoch(&mut meta).await?;
        }
        let answer = (meta.producer_id, meta.producer_epoch);
        self.store(transactional_id, meta).await?;
        tokio::spawn(self.clone().complete(transactional_id.to_string()));
        Ok(answer)
    }

    /// Writes the markers of the id's prepared transaction to every partition of it, retrying
    /// until each is written (or the partition is gone), then records the transaction complete.
    /// Stops if this broker stops coordinating the id, even if it coordinates it again later
    /// (another coordinator epoch: that load finishes it, and the partitions refuse this
    /// task's markers from then on).
    async fn complete(self: Arc<Self>, transactional_id: String) {
        let mut backoff = Duration::from_millis(50);
        let Ok(coordinator_epoch) = self.check_coordinator(&transactional_id) else {
            return;
        };
        let Some(start) = self.get(&transactional_id) else {
            return;
        };
        if !start.state.is_prepared() {
            return;
        }
        let commit = start.state == TxnState::PrepareCommit;
        let (marker_pid, marker_epoch) = start.marker_producer();
        let mut remaining: Vec<(String, i32)> = start.partitions.iter().cloned().collect();
        loop {
            if self.check_coordinator(&transactional_id) != Ok(coordinator_epoch) {
                return;
            }
            remaining = self
                .write_markers(
                    marker_pid,
                    marker_epoch,
                    commit,
                    coordinator_epoch,
                    remaining,
                )
                .await;
            if remaining.is_empty() {
                break;
            }
            self.metrics.transaction_marker_retries.inc();
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        let id_lock = self.id_lock(&transactional_id);
        let _g = id_lock.lock().await;
        if self.check_coordinator(&transactional_id) != Ok(coordinator_epoch) {
            return;
        }
        let Some(mut meta) = self.get(&transactional_id) else {
            return;
        };
        if meta.state != start.state || meta.producer_epoch != start.producer_epoch {
            return;
        }
        meta.state = if commit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        meta.partitions.clear();
        meta.markers_as = None;
        meta.update_ms = now_ms();
        if let Err(e) = self.store(&transactional_id, meta).await {
            // The next coordinator (or a restart) finds it prepared and writes the markers
            // again: a marker written twice ends nothing twice.
            tracing::warn!(transactional_id, error = ?e, "recording a completed transaction");
        }
        self.completions.send_modify(|n| *n = n.wrapping_add(1));
        if commit {
            self.metrics.transactions_committed.inc();
        } else {
            self.metrics.transactions_aborted.inc();
        }
        tracing::debug!(transactional_id, "transaction complete");
    }

    /// Writes one marker to each partition (all at once); returns those not written yet.
    async fn write_markers(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: Vec<(String, i32)>,
    ) -> Vec<(String, i32)> {
        let me = self.broker.config.node_id;
        let mut remote: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        let mut failed = Vec::new();
        let mut writes: tokio::task::JoinSet<Vec<(String, i32)>> = tokio::task::JoinSet::new();
        let all = partitions.clone();
        for (topic, index) in partitions {
            let leader = match &self.broker.cluster {
                None => Some(me),
                Some(c) => match c.image().topics.get(&topic) {
                    // A deleted topic needs no marker.
                    None => continue,
                    Some(t) => t
                        .partitions
                        .get(usize::try_from(index).unwrap_or(usize::MAX))
                        .and_then(|p| p.leader)
                        .map(|l| l.0),
                },
            };
            match leader {
                Some(l) if l == me => {
                    let (broker, groups) = (self.broker.clone(), self.groups.clone());
                    writes.spawn(async move {
                        let code = write_marker_local(
                            &broker,
                            &groups,
                            &topic,
                            index,
                            producer_id,
                            producer_epoch,
                            commit,
                            coordinator_epoch,
                        )
                        .await;
                        if code == ErrorCode::None {
                            Vec::new()
                        } else {
                            tracing::debug!(
                                topic,
                                partition = index,
                                ?code,
                                "marker not written yet"
                            );
                            vec![(topic, index)]
                        }
                    });
                }
                Some(l) => remote.entry(l).or_default().push((topic, index)),
                None => failed.push((topic, index)),
            }
        }
        for (leader, parts) in remote {
            let this = self.clone();
            writes.spawn(async move {
                this.write_markers_remote(
                    leader,
                    producer_id,
                    producer_epoch,
                    commit,
                    coordinator_epoch,
                    parts,
                )
                .await
            });
        }
        while let Some(done) = writes.join_next().await {
            match done {
                Ok(left) => failed.extend(left),
                Err(e) => {
                    // Which partitions it had is lost with it: write them all again (a second
                    // marker of an ended transaction ends nothing).
                    tracing::error!(error = %e, "a marker write task failed");
                    return all;
                }
            }
        }
        failed
    }

    /// WriteTxnMarkers to another broker over the inter-broker listener; returns the
    /// partitions it did not write.
    async fn write_markers_remote(
        &self,
        leader: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        parts: Vec<(String, i32)>,
    ) -> Vec<(String, i32)> {
        use kafka_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        use kafka_protocol::messages::{
            ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
        };
        if self.broker.cluster.is_none() {
            return parts;
        }
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &parts {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let mut marker = WritableTxnMarker::default();
        marker.producer_id = ProducerId(producer_id);
        marker.producer_epoch = producer_epoch;
        marker.transaction_result = commit;
        marker.coordinator_epoch = coordinator_epoch;
        marker.topics = by_topic
            .into_iter()
            .map(|(t, ps)| {
                let mut topic = WritableTxnMarkerTopic::default();
                topic.name = TopicName(crate::handler::s(t));
                topic.partition_indexes = ps;
                topic
            })
            .collect();
        let mut req = WriteTxnMarkersRequest::default();
        req.markers = vec![marker];
        let sent: Result<WriteTxnMarkersResponse, _> = self
            .call_broker(leader, ApiKey::WriteTxnMarkers, 1, &req)
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(leader, error = %e, "sending transaction markers");
                return parts;
            }
        };
        let mut written = BTreeSet::new();
        for m in resp.markers {
            for t in m.topics {
                for p in t.partitions {
                    let code = ErrorCode::from_code(p.error_code);
                    if matches!(
                        code,
                        Some(ErrorCode::None | ErrorCode::UnknownTopicOrPartition)
                    ) {
                        written.insert((t.name.0.as_str().to_string(), p.partition_index));
                    }
                }
            }
        }
        parts.into_iter().filter(|p| !written.contains(p)).collect()
    }

    /// KIP-890 part 2: `partitions` join the producer's transaction on behalf of a client that
    /// does not add them itself (transaction version 2: a partition leader's produce v12+, the
    /// group coordinator's TxnOffsetCommit v5+). Here if this broker coordinates the id, else
    /// with the coordinator over AddPartitionsToTxn v4. The code per partition, or why the
    /// coordinator could not be asked.
    pub async fn join(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<((String, i32), ErrorCode)>, String> {
        if self.check_coordinator(transactional_id).is_ok() {
            let code = match self
                .add_partitions(transactional_id, producer_id, producer_epoch, &partitions)
                .await
            {
                Ok(()) => ErrorCode::None,
                Err(code) => code,
            };
            return Ok(partitions.into_iter().map(|tp| (tp, code)).collect());
        }
        self.ask_remote(
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            false,
        )
        .await
    }

    /// AddPartitionsToTxn v4 to the id's coordinator on another broker, adding `partitions` or
    /// (`verify_only`, KIP-890 from a partition leader whose produce carries
    /// `transactional_id`) only checking that each is in the producer's open transaction. The
    /// code per partition, or why the coordinator could not be asked.
    pub async fn ask_remote(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: Vec<(String, i32)>,
        verify_only: bool,
    ) -> Result<Vec<((String, i32), ErrorCode)>, String> {
        use kafka_protocol::messages::add_partitions_to_txn_request::{
            AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
        };
        use kafka_protocol::messages::{
            AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey, ProducerId, TopicName,
            TransactionalId,
        };
        let cluster = self.broker.cluster.as_ref().ok_or("standalone")?;
        let index = self.partition_for(transactional_id);
        let coordinator = cluster
            .image()
            .topics
            .get(TXN_TOPIC)
            .and_then(|t| t.partitions.get(usize::try_from(index).ok()?))
            .and_then(|p| p.leader)
            .ok_or("the transaction coordinator is not known")?;
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in &partitions {
            by_topic.entry(t.as_str()).or_default().push(*p);
        }
        let mut txn = AddPartitionsToTxnTransaction::default();
        txn.transactional_id = TransactionalId(crate::handler::s(transactional_id));
        txn.producer_id = ProducerId(producer_id);
        txn.producer_epoch = producer_epoch;
        txn.verify_only = verify_only;
        txn.topics = by_topic
            .into_iter()
            .map(|(t, ps)| {
                let mut topic = AddPartitionsToTxnTopic::default();
                topic.name = TopicName(crate::handler::s(t));
                topic.partitions = ps;
                topic
            })
            .collect();
        let mut req = AddPartitionsToTxnRequest::default();
        req.transactions = vec![txn];
        let resp: AddPartitionsToTxnResponse = self
            .call_broker(coordinator.0, ApiKey::AddPartitionsToTxn, 4, &req)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(code) = ErrorCode::from_code(resp.error_code)
            && code != ErrorCode::None
        {
            return Err(format!("the coordinator answered {code:?}"));
        }
        let mut out = Vec::new();
        for r in resp.results_by_transaction {
            for t in r.topic_results {
                for p in t.results_by_partition {
                    out.push((
                        (t.name.0.as_str().to_string(), p.partition_index),
                        ErrorCode::from_code(p.partition_error_code)
                            .unwrap_or(ErrorCode::UnknownServerError),
                    ));
                }
            }
        }
        Ok(out)
    }

    /// One request to broker `id` over the inter-broker listener, on a pooled connection
    /// (kept only after a clean exchange).
    async fn call_broker<Req, Resp>(
        &self,
        id: i32,
        api: kafka_protocol::messages::ApiKey,
        version: i16,
        req: &Req,
    ) -> Result<Resp, crate::cluster::kafka_client::KafkaClientError>
    where
        Req: kafka_protocol::protocol::Encodable,
        Resp: kafka_protocol::protocol::Decodable,
    {
        use crate::cluster::kafka_client::{KafkaClientError, KafkaConnection};
        let cluster = self
            .broker
            .cluster
            .as_ref()
            .ok_or_else(|| KafkaClientError::Protocol("standalone".into()))?;
        let addr = crate::cluster::replica_fetcher::endpoint(&self.broker, id)
            .ok_or_else(|| KafkaClientError::Protocol(format!("no address of broker {id}")))?;
        let key = (id, addr.clone());
        let idle = lock(&self.links).get_mut(&key).and_then(Vec::pop);
        let mut conn = match idle {
            Some(c) => c,
            None => {
                let client_id = format!("strata-txn-{}", self.broker.config.node_id);
                KafkaConnection::connect(&addr, &client_id, &cluster.inter_broker).await?
            }
        };
        let r = conn
            .request::<Req, Resp>(api, version, req, Duration::from_secs(30))
            .await?;
        let mut links = lock(&self.links);
        let pool = links.entry(key).or_default();
        if pool.len() < 4 {
            pool.push(conn);
        }
        Ok(r)
    }

    /// Aborts the transactions open longer than their timeout, fencing their producers.
    pub async fn abort_timed_out(self: &Arc<Self>) {
        let now = now_ms();
        let expired: Vec<String> = lock(&self.txns)
            .iter()
            .filter(|(_, m)| {
                m.state == TxnState::Ongoing
                    && m.start_ms >= 0
                    && now - m.start_ms > i64::from(m.timeout_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            if self.check_coordinator(&id).is_err() {
                continue;
            }
            let id_lock = self.id_lock(&id);
            let _g = id_lock.lock().await;
            let Some(meta) = self.get(&id) else { continue };
            if meta.state != TxnState::Ongoing {
                continue;
            }
            tracing::info!(transactional_id = %id, producer_id = meta.producer_id, "aborting a transaction past its timeout");
            self.metrics.transactions_timed_out.inc();
            if let Err(e) = self.fence_and_abort(&id, meta).await {
                tracing::warn!(transactional_id = %id, error = ?e, "aborting a timed-out transaction");
            }
        }
    }

    /// Every id coordinated here (ListTransactions).
    pub fn list(&self) -> Vec<ListedTxn> {
        let mut out: Vec<ListedTxn> = lock(&self.txns)
            .iter()
            .filter(|(id, _)| self.check_coordinator(id).is_ok())
            .map(|(id, m)| ListedTxn {
                transactional_id: id.clone(),
                producer_id: m.producer_id,
                state: m.state,
                start_ms: m.start_ms,
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}

/// Writes a marker to a partition this broker leads and waits until it is safe (durable and
/// replicated), then tells the group coordinator if it ends offsets committed in a
/// transaction. NONE also for a partition that no longer exists (nothing to end there) and for
/// a producer the partition knows a newer epoch of (a later coordinator ended it).
#[expect(
    clippy::too_many_arguments,
    reason = "a marker's fields, as WriteTxnMarkers carries them"
)]
pub async fn write_marker_local(
    broker: &Broker,
    groups: &GroupCoordinator,
    topic: &str,
    index: i32,
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> ErrorCode {
    let Some(t) = broker.topic(topic) else {
        return ErrorCode::UnknownTopicOrPartition;
    };
    let Some(partition) = t.partition(index) else {
        return ErrorCode::UnknownTopicOrPartition;
    };
    // The group coordinator applies or drops a transaction's offsets when its marker lands;
    // it must have read the partition first (the coordinator retries the marker).
    if topic == OFFSETS_TOPIC && !groups.is_loaded(index) {
        return ErrorCode::CoordinatorLoadInProgress;
    }
    let control = if commit {
        ControlType::Commit
    } else {
        ControlType::Abort
    };
    let (info, epoch) =
        match partition.append_marker(producer_id, producer_epoch, control, coordinator_epoch) {
            Ok(done) => done,
            Err((ErrorCode::InvalidProducerEpoch, _)) => return ErrorCode::None,
            Err((code, _)) => return code,
        };
    let settled = PendingAppend {
        partition: partition.clone(),
        info,
        epoch,
    }
    .settle()
    .await;
    partition.wake_fetches();
    if let Err(code) = settled {
        return match code {
            ErrorCode::NotCoordinator => ErrorCode::NotLeaderOrFollower,
            other => other,
        };
    }
    if topic == OFFSETS_TOPIC {
        groups.complete_txn(index, producer_id, commit);
    }
    ErrorCode::None
}
