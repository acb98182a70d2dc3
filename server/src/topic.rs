//! Topics and partitions as this broker holds them: each partition owns its `Log` and the
//! idempotent-producer state of that log.
//!
//! Invariant: a partition's appends and its producer-sequence checks happen under one lock
//! (`Partition::append`), so a retried batch is checked against the state that includes every
//! batch appended before it.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use strata_engine::{
    AppendInfo, FlushPolicy, LeaderEpoch, Log, LogConfig, Offset, TryAppend, batch,
};
use strata_replication::{AlterIsr, BrokerId, ReplicationError, Role};
use uuid::Uuid;

use crate::error_code::ErrorCode;

mod producer_snapshot;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5, the
/// most in-flight requests an idempotent producer may have).
pub const PRODUCER_BATCHES_MAX: usize = 5;

/// One remembered batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProducerBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: Offset,
}

/// What a partition knows of one idempotent producer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<ProducerBatch>,
    /// Largest record timestamp of its last batch.
    last_timestamp: i64,
    /// First offset of its transaction that no marker has ended yet, if one is open here.
    txn_first: Option<Offset>,
    /// The coordinator epoch of its last marker here (-1: none): a marker of an older
    /// coordinator (one that lost the transactional id and came back, say) is refused.
    coordinator_epoch: i32,
}

impl Default for ProducerEntry {
    fn default() -> ProducerEntry {
        ProducerEntry {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: 0,
            txn_first: None,
            coordinator_epoch: -1,
        }
    }
}

/// A transaction a marker aborted, as Fetch reports it to read_committed consumers: its
/// records from `first_offset` up to the marker at `last_offset` are to be skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer whose records these are.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: Offset,
    /// Offset of the abort marker.
    pub last_offset: Offset,
}

/// What a control batch says: the marker that ends a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    /// The transaction aborted.
    Abort,
    /// The transaction committed.
    Commit,
}

impl ControlType {
    /// Reads the control record of a control batch's bytes: its type (key: version i16,
    /// type i16) and the coordinator epoch of its value (version i16, coordinator epoch i32;
    /// -1 if absent). `None` for a key this broker does not know (a newer control type: not a
    /// marker).
    pub fn of_batch(bytes: &[u8]) -> Option<(ControlType, i32)> {
        let records = batch::records(bytes)?;
        let record = records.first()?;
        let control = match record.key?.get(2..4)? {
            [0, 0] => ControlType::Abort,
            [0, 1] => ControlType::Commit,
            _ => return None,
        };
        let coordinator_epoch = record
            .value
            .and_then(|v| v.get(2..6))
            .and_then(|e| <[u8; 4]>::try_from(e).ok())
            .map_or(-1, i32::from_be_bytes);
        Some((control, coordinator_epoch))
    }

    /// A marker batch of one control record, for `producer_id` at `epoch`, written by the
    /// transaction coordinator of `coordinator_epoch`.
    pub fn marker(
        self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        timestamp: i64,
    ) -> Vec<u8> {
        let key = [0u8, 0, 0, u8::from(self == ControlType::Commit)];
        let mut value = vec![0u8, 0];
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let mut b = batch::build(
            Offset(0),
            timestamp,
            &[(Some(key.as_slice()), Some(value.as_slice()))],
        );
        batch::stamp_producer(&mut b, producer_id, producer_epoch, -1);
        batch::stamp_transactional(&mut b, true);
        b
    }
}

/// An idempotent producer a partition knows, as DescribeProducers reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveProducer {
    /// Producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Sequence of the last record appended.
    pub last_sequence: i32,
    /// Largest record timestamp of its last batch.
    pub last_timestamp: i64,
    /// First offset of its open transaction here, if any.
    pub current_txn_start_offset: Option<Offset>,
    /// The coordinator epoch of its last marker here (-1: none).
    pub coordinator_epoch: i32,
}

/// Outcome of the sequence check of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended at `base` (its last record just below `next`): acknowledge without
    /// appending, once that batch is as safe as an append would have to be.
    Duplicate {
        /// Base offset of the batch in the log.
        base: Offset,
        /// The offset after its last record.
        next: Offset,
    },
    /// Refuse with this code.
    Reject(ErrorCode),
}

/// Per-partition idempotent producer state and the partition's transactions, rebuilt from the
/// log at startup.
///
/// Invariant: `open` holds exactly the producers whose `txn_first` is set, keyed by it; the
/// last stable offset is the smallest key (or the high watermark when none).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open transactions by first offset.
    open: BTreeMap<Offset, i64>,
    /// Aborted transactions in the order of their markers (so by `last_offset`).
    aborted: VecDeque<AbortedTxn>,
}

impl ProducerStates {
    /// Checks a batch from producer `pid` with `epoch` and sequences `first..=last`.
    pub fn check(&self, pid: i64, epoch: i16, first: i32, last: i32) -> SequenceCheck {
        let Some(entry) = self.producers.get(&pid) else {
            // A producer this partition has not seen: its first batch must start at 0.
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        };
        if epoch < entry.epoch {
            return SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return SequenceCheck::Duplicate {
                base: b.base_offset,
                next: Offset(b.base_offset.0 + i64::from(b.last_seq.wrapping_sub(b.first_seq)) + 1),
            };
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| b.last_seq.wrapping_add(1));
        if first == expected {
            SequenceCheck::Append
        } else if entry
            .batches
            .iter()
            .any(|b| first <= b.last_seq && first >= b.first_seq)
        {
            SequenceCheck::Reject(ErrorCode::DuplicateSequenceNumber)
        } else {
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        }
    }

    /// Records an appended batch whose largest record timestamp is `timestamp`.
    pub fn record(
        &mut self,
        pid: i64,
        epoch: i16,
        first: i32,
        last: i32,
        base_offset: Offset,
        timestamp: i64,
    ) {
        let entry = self.producers.entry(pid).or_default();
        entry.last_timestamp = timestamp;
        if epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.batches.push_back(ProducerBatch {
            first_seq: first,
            last_seq: last,
            base_offset,
        });
        while entry.batches.len() > PRODUCER_BATCHES_MAX {
            entry.batches.pop_front();
        }
    }

    /// A transactional batch of `pid` appended at `base`: opens its transaction here unless
    /// one is open.
    pub fn record_transactional(&mut self, pid: i64, base: Offset) {
        let entry = self.producers.entry(pid).or_default();
        if entry.txn_first.is_none() {
            entry.txn_first = Some(base);
            self.open.insert(base, pid);
        }
    }

    /// A marker of `pid` at `epoch` was appended at `offset`: its open transaction here ends
    /// (an abort is remembered for read_committed fetches). The marker's epoch becomes the
    /// producer's (a coordinator that fenced the producer writes a bumped epoch).
    pub fn record_marker(
        &mut self,
        pid: i64,
        epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
        offset: Offset,
    ) {
        let entry = self.producers.entry(pid).or_default();
        entry.coordinator_epoch = entry.coordinator_epoch.max(coordinator_epoch);
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        if let Some(first) = entry.txn_first.take() {
            self.open.remove(&first);
            if control == ControlType::Abort {
                self.aborted.push_back(AbortedTxn {
                    producer_id: pid,
                    first_offset: first,
                    last_offset: offset,
                });
            }
        }
    }

    /// Checks a marker of `pid` at `epoch` from the coordinator of `coordinator_epoch`:
    /// INVALID_PRODUCER_EPOCH if the producer here has a newer epoch (it was fenced since),
    /// TRANSACTION_COORDINATOR_FENCED if a newer coordinator already wrote a marker here (this
    /// one is a zombie's, which could otherwise end a later transaction).
    pub fn check_marker(
        &self,
        pid: i64,
        epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<(), ErrorCode> {
        match self.producers.get(&pid) {
            Some(e) if e.epoch > epoch => Err(ErrorCode::InvalidProducerEpoch),
            Some(e) if e.coordinator_epoch > coordinator_epoch => {
                Err(ErrorCode::TransactionCoordinatorFenced)
            }
            _ => Ok(()),
        }
    }

    /// First offset of the oldest open transaction here, if any.
    pub fn first_unstable_offset(&self) -> Option<Offset> {
        self.open.keys().next().copied()
    }

    /// Whether `pid` has a transaction open here.
    pub fn in_transaction(&self, pid: i64) -> bool {
        self.producers
            .get(&pid)
            .is_some_and(|e| e.txn_first.is_some())
    }

    /// The aborted transactions whose records overlap `[from, to)`, for a read_committed fetch.
    pub fn aborted_between(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        // Markers come in offset order: skip those ending before `from`.
        let start = self.aborted.partition_point(|a| a.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .filter(|a| a.first_offset < to)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start offset (deleted records).
    pub fn forget_aborted_before(&mut self, log_start: Offset) {
        while self
            .aborted
            .front()
            .is_some_and(|a| a.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// Records a batch already in the log (rebuild, or copied from a leader): its producer's
    /// sequences if idempotent, its transaction if transactional, and for a marker (`control`:
    /// the control batch's bytes) the end of that transaction.
    pub fn record_batch(&mut self, h: &batch::BatchHeader, control: Option<&[u8]>) {
        if h.producer_id < 0 {
            return;
        }
        if h.is_control() {
            if let Some((c, coordinator_epoch)) = control.and_then(ControlType::of_batch) {
                self.record_marker(
                    h.producer_id,
                    h.producer_epoch,
                    c,
                    coordinator_epoch,
                    h.base_offset,
                );
            }
            return;
        }
        self.record_header(h);
        if h.is_transactional() {
            self.record_transactional(h.producer_id, h.base_offset);
        }
    }

    /// Records a batch already in the log (rebuild, or copied from a leader), if idempotent.
    pub fn record_header(&mut self, h: &batch::BatchHeader) {
        if h.producer_id >= 0 && h.base_sequence >= 0 {
            self.record(
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                h.base_sequence.wrapping_add(h.last_offset_delta),
                h.base_offset,
                h.max_timestamp,
            );
        }
    }

    /// The producers known, by id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .filter_map(|(pid, e)| {
                Some(ActiveProducer {
                    producer_id: *pid,
                    producer_epoch: e.epoch,
                    last_sequence: e.batches.back()?.last_seq,
                    last_timestamp: e.last_timestamp,
                    current_txn_start_offset: e.txn_first,
                    coordinator_epoch: e.coordinator_epoch,
                })
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Rebuilds the state by walking every batch header of the log.
    pub fn rebuild(log: &Log) -> strata_engine::Result<ProducerStates> {
        let mut st = ProducerStates::default();
        log.for_each_batch_header(|h, control| st.record_batch(h, control))?;
        st.forget_aborted_before(log.log_start_offset());
        Ok(st)
    }
}

/// Result of a partition append.
#[derive(Debug)]
pub enum AppendOutcome {
    /// Appended; wait on the completion.
    Appended(AppendInfo),
    /// A retried duplicate of a batch already in the log at `base`, ending just below `next`.
    /// It may not be durable or replicated yet (or ever, if this replica loses the leadership
    /// and is cut back): it is acknowledged only after the same waits as an append.
    Duplicate {
        /// Base offset of the batch in the log.
        base: Offset,
        /// The offset after its last record.
        next: Offset,
    },
}

/// A replica's replication state on this broker (cluster mode).
#[derive(Debug)]
pub struct ReplicaState {
    /// The sans-IO state machine: role, epoch, ISR, high watermark.
    pub machine: strata_replication::Partition,
    /// As follower: the log must be truncated to the divergence point before fetching.
    pub needs_truncation: bool,
    /// As follower: do not fetch before this instant (after an error from the leader).
    pub retry_at: Option<std::time::Instant>,
}

/// What acks=all waiters and long-polls watch: the role, epoch and high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HwView {
    /// Whether this replica leads.
    pub leader: bool,
    /// Leader epoch.
    pub epoch: LeaderEpoch,
    /// High watermark.
    pub hw: Offset,
}

/// One partition of a topic on this broker.
#[derive(Debug)]
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// The log.
    pub log: Log,
    producers: Mutex<ProducerStates>,
    /// Replication state; `None` on a standalone broker, which leads everything alone.
    replica: Option<Mutex<ReplicaState>>,
    hw: tokio::sync::watch::Sender<HwView>,
    /// The first batch found corrupt on this replica's disk (a failed CRC on read), if any:
    /// the replica is then cut back to it and refilled from a healthy leader.
    corrupt_from: Mutex<Option<Offset>>,
    /// This replica was reported failed to the controller (and not refilled since).
    failed: std::sync::atomic::AtomicBool,
    /// What the producer-state snapshots have written. Its lock is held while a snapshot is
    /// written and while the log is truncated (taken before `producers`).
    snapshots: Mutex<producer_snapshot::Written>,
    /// Long-polling fetches waiting on this partition (Kafka's delayed-fetch watchers, keyed
    /// by partition): woken when it has something new for them (a write, a high watermark
    /// move), so an append wakes only the fetches that asked for this partition. At most
    /// [`FETCH_WATCHERS_MAX`] entries beyond the live ones: dead ones are swept on insert.
    fetch_watchers: Mutex<Vec<std::sync::Weak<tokio::sync::Notify>>>,
}

/// Entries a partition's fetch-watcher list may hold before dead ones are swept.
const FETCH_WATCHERS_MAX: usize = 64;

fn replication_code(e: &ReplicationError) -> ErrorCode {
    match e {
        ReplicationError::NotLeader | ReplicationError::UnknownReplica(_) => {
            ErrorCode::NotLeaderOrFollower
        }
        ReplicationError::FencedLeaderEpoch { .. } => ErrorCode::FencedLeaderEpoch,
        ReplicationError::UnknownLeaderEpoch(_) => ErrorCode::UnknownLeaderEpoch,
        ReplicationError::NotEnoughReplicas { .. } => ErrorCode::NotEnoughReplicas,
    }
}

impl Partition {
    /// Wraps an opened log, rebuilding producer state from it. With `replica`, the partition
    /// is one replica of a cluster (offline until the metadata gives it a role).
    pub fn new(
        topic: &str,
        index: i32,
        log: Log,
        replica: Option<(BrokerId, strata_replication::PartitionConfig)>,
    ) -> strata_engine::Result<Partition> {
        let started = std::time::Instant::now();
        let (producers, walked_from) = producer_snapshot::load(&log)?;
        tracing::debug!(topic, partition = index, snapshot = ?walked_from, elapsed_ms = started.elapsed().as_secs_f64() * 1e3, "producer state loaded");
        let replica = replica.map(|(id, config)| {
            Mutex::new(ReplicaState {
                machine: strata_replication::Partition::new(id, config, Offset::ZERO),
                needs_truncation: false,
                retry_at: None,
            })
        });
        let (hw, _) = tokio::sync::watch::channel(HwView {
            leader: replica.is_none(),
            epoch: LeaderEpoch(0),
            hw: Offset::ZERO,
        });
        Ok(Partition {
            topic: topic.to_string(),
            index,
            log,
            producers: Mutex::new(producers),
            replica,
            hw,
            corrupt_from: Mutex::new(None),
            fetch_watchers: Mutex::new(Vec::new()),
            failed: std::sync::atomic::AtomicBool::new(false),
            snapshots: Mutex::default(),
        })
    }

    /// Writes a snapshot of the producer state (and the aborted-transaction index of each
    /// sealed segment that lacks one) if a segment has rolled since the last one, or always
    /// with `force` (a clean shutdown): a later open then walks only what came after it.
    pub fn save_producer_snapshot(&self, force: bool) {
        // Held throughout, so a truncation cannot come between the copy and the files.
        let mut written = lock(&self.snapshots);
        let tail = self.log.segment_base_offsets().last().copied();
        if !force && written.tail == tail {
            return;
        }
        let (state, end) = {
            let producers = lock(&self.producers);
            (producers.clone(), self.log.log_end_offset())
        };
        match producer_snapshot::save(&self.log, &state, end, &mut written) {
            Ok(()) => {}
            Err(e) => {
                tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "writing a producer-state snapshot")
            }
        }
    }

    /// Marks this replica failed; `true` only the first time (until it is refilled), so the
    /// controller hears of it once.
    pub fn mark_failed(&self) -> bool {
        !self.failed.swap(true, std::sync::atomic::Ordering::SeqCst)
    }

    /// Records that the batch at `offset` failed its check on this replica's disk. `true` the
    /// first time (or for an earlier offset than known): then it must be reported.
    pub fn report_corruption(&self, offset: Offset) -> bool {
        let mut c = lock(&self.corrupt_from);
        if c.is_some_and(|known| known <= offset) {
            return false;
        }
        *c = Some(offset);
        true
    }

    /// The first corrupt batch found on this replica, if any.
    pub fn corrupt_from(&self) -> Option<Offset> {
        *lock(&self.corrupt_from)
    }

    /// The end of what this replica holds safely: the recovery point under `flush=always`
    /// (a crash cannot take it back), the written offset otherwise.
    pub fn local_end(&self) -> Offset {
        match self.log.flush_policy() {
            FlushPolicy::Always => self.log.recovery_point(),
            _ => self.log.written_offset(),
        }
    }

    /// The high watermark consumers may read below. Standalone, it is [`Partition::local_end`];
    /// in a cluster, the replication state machine's (the minimum over the ISR).
    pub fn high_watermark(&self) -> Offset {
        match &self.replica {
            Some(r) => lock(r).machine.high_watermark(),
            None => self.local_end(),
        }
    }

    /// The idempotent producers this partition knows (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        self.producers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .active()
    }

    /// Whether this broker may serve clients for the partition (always, standalone).
    pub fn is_leader(&self) -> bool {
        self.replica
            .as_ref()
            .is_none_or(|r| lock(r).machine.is_leader())
    }

    /// The current leader epoch (0 standalone).
    pub fn leader_epoch(&self) -> LeaderEpoch {
        self.replica
            .as_ref()
            .map_or(LeaderEpoch(0), |r| lock(r).machine.leader_epoch())
    }

    /// Changes `min.insync.replicas` of a cluster replica (a topic or dynamic broker config
    /// changed); standalone there is nothing to change.
    pub fn set_min_insync_replicas(&self, n: usize) {
        if let Some(r) = &self.replica {
            lock(r).machine.set_min_insync_replicas(n);
        }
    }

    /// Whether this is a cluster replica.
    pub fn is_replica(&self) -> bool {
        self.replica.is_some()
    }

    /// Whether this replica follows a leader (cluster mode).
    pub fn is_follower(&self) -> bool {
        self.replica
            .as_ref()
            .is_some_and(|r| matches!(lock(r).machine.role(), Role::Follower(_)))
    }

    /// As leader: in-sync followers whose log reaches `offset` (KIP-392 read replicas).
    pub fn read_replicas(&self, offset: Offset) -> Vec<(BrokerId, Offset)> {
        self.replica
            .as_ref()
            .map_or_else(Vec::new, |r| lock(r).machine.read_replicas(offset))
    }

    /// Runs `f` on the replication state (cluster mode), then publishes the high watermark.
    pub fn with_replica<T>(&self, f: impl FnOnce(&mut ReplicaState) -> T) -> Option<T> {
        let r = self.replica.as_ref()?;
        let mut g = lock(r);
        let out = f(&mut g);
        let view = HwView {
            leader: g.machine.is_leader(),
            epoch: g.machine.leader_epoch(),
            hw: g.machine.high_watermark(),
        };
        drop(g);
        let moved = self.hw.send_if_modified(|v| {
            let changed = *v != view;
            *v = view;
            changed
        });
        if moved {
            // Consumers read below the high watermark: a move may be what they wait for.
            self.wake_fetches();
        }
        Some(out)
    }

    /// Registers a long-polling fetch on this partition: `notify` gets a permit at the next
    /// [`Partition::wake_fetches`] (even if the fetch is not waiting yet, so no wake-up is
    /// lost between building a response and waiting). One wake-up per registration.
    pub fn watch_fetch(&self, notify: &std::sync::Arc<tokio::sync::Notify>) {
        let mut w = self
            .fetch_watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // A fetch re-registers after every wake-up; on the partitions that did not wake it,
        // it is still there.
        if w.iter()
            .any(|n| std::ptr::eq(n.as_ptr(), std::sync::Arc::as_ptr(notify)))
        {
            return;
        }
        if w.len() >= FETCH_WATCHERS_MAX {
            w.retain(|n| n.strong_count() > 0);
        }
        w.push(std::sync::Arc::downgrade(notify));
    }

    /// Wakes the fetches waiting on this partition: it has new data or a new high watermark.
    pub fn wake_fetches(&self) {
        let watchers = std::mem::take(
            &mut *self
                .fetch_watchers
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for n in watchers.iter().filter_map(std::sync::Weak::upgrade) {
            n.notify_one();
        }
    }

    /// The leader's own log progressed (a batch became durable): the high watermark may move,
    /// and the fetches waiting for it are woken (in a cluster by `with_replica` when it moves;
    /// standalone the high watermark is this progress itself).
    pub fn on_local_progress(&self) {
        let end = self.local_end();
        if self
            .with_replica(|r| r.machine.on_leader_append(end))
            .is_none()
        {
            self.wake_fetches();
        }
    }

    /// A follower fetched from `fetch_offset` in `epoch`: returns an ISR change to send to the
    /// controller, if the fetch calls for one.
    pub fn on_follower_fetch(
        &self,
        follower: BrokerId,
        epoch: LeaderEpoch,
        fetch_offset: Offset,
        now_ms: u64,
    ) -> Result<Option<AlterIsr>, ErrorCode> {
        let end = self.local_end();
        self.with_replica(|r| {
            r.machine
                .on_fetch(follower, epoch, fetch_offset, end, now_ms)
                .map(|ready| ready.alter_isr)
                .map_err(|e| replication_code(&e))
        })
        .unwrap_or(Err(ErrorCode::NotLeaderOrFollower))
    }

    /// Periodic leader work: followers lagging too long are proposed out of the ISR.
    pub fn tick(&self, now_ms: u64) -> Option<AlterIsr> {
        let end = self.local_end();
        self.with_replica(|r| r.machine.tick(now_ms, end).alter_isr)
            .flatten()
    }

    /// Applies the controller's view of the partition (from the metadata image). Returns
    /// `true` if this replica became a follower of a new leader or epoch.
    pub fn apply_assignment(
        &self,
        leader: Option<BrokerId>,
        epoch: LeaderEpoch,
        replicas: &[BrokerId],
        isr: &[BrokerId],
        now_ms: u64,
    ) -> bool {
        let leo = self.log.log_end_offset();
        let end = self.local_end();
        self.with_replica(|r| {
            let m = &mut r.machine;
            let me = m.id();
            let isr: BTreeSet<BrokerId> = isr.iter().copied().collect();
            match leader {
                Some(l) if l == me => {
                    if !m.is_leader() || m.leader_epoch() < epoch {
                        if epoch >= m.leader_epoch() && isr.contains(&me) {
                            m.become_leader(epoch, replicas.to_vec(), isr, leo, now_ms);
                            m.on_leader_append(end);
                            tracing::debug!(topic = %self.topic, partition = self.index, epoch = epoch.0, "leading");
                        }
                    } else if m.leader_epoch() == epoch && m.replicas() != replicas {
                        // A reassignment added or removed replicas within this epoch.
                        m.update_replicas(replicas.to_vec(), isr, end, now_ms);
                    } else if m.leader_epoch() == epoch && *m.isr() != isr {
                        m.on_isr_changed(epoch, isr, end);
                    }
                    false
                }
                Some(l) => {
                    let changed = m.role() != &Role::Follower(l) || m.leader_epoch() < epoch;
                    if changed && epoch >= m.leader_epoch() {
                        m.become_follower(epoch, l);
                        r.needs_truncation = true;
                        r.retry_at = None;
                        tracing::debug!(topic = %self.topic, partition = self.index, epoch = epoch.0, leader = l.0, "following");
                        return true;
                    }
                    false
                }
                None => {
                    if m.role() != &Role::Offline {
                        m.become_offline();
                    }
                    false
                }
            }
        })
        .unwrap_or(false)
    }

    /// Waits until the high watermark reaches `next_offset` in `epoch` (acks=all), failing
    /// with NOT_LEADER_OR_FOLLOWER if leadership moves, or REQUEST_TIMED_OUT at `deadline`.
    pub async fn wait_replicated(
        &self,
        next_offset: Offset,
        epoch: LeaderEpoch,
        deadline: tokio::time::Instant,
    ) -> Result<(), (ErrorCode, String)> {
        if self.replica.is_none() {
            return Ok(());
        }
        let mut rx = self.hw.subscribe();
        let waited = tokio::time::timeout_at(
            deadline,
            rx.wait_for(|v| !v.leader || v.epoch != epoch || v.hw >= next_offset),
        )
        .await;
        match waited {
            Err(_) => Err((
                ErrorCode::RequestTimedOut,
                "the in-sync replicas did not confirm the batch within timeout_ms".into(),
            )),
            // The batch is in the log here and may survive on the new leader: the answer
            // must say "maybe" (librdkafka takes NOT_LEADER_OR_FOLLOWER for "not written",
            // and a producer without idempotence then reports a stored record as failed).
            Ok(Err(_)) => Err((
                ErrorCode::RequestTimedOut,
                "partition closed after the batch was appended".into(),
            )),
            Ok(Ok(v)) if v.leader && v.epoch == epoch => Ok(()),
            Ok(Ok(_)) => Err((
                ErrorCode::RequestTimedOut,
                "leadership moved after the batch was appended; it may or may not survive".into(),
            )),
        }
    }

    /// Appends client batches after the leadership and idempotent producer checks. With
    /// `acks_all`, the ISR must have at least `min.insync.replicas` members. Returns the
    /// outcome and the leader epoch the batches were stamped with.
    pub fn append(
        &self,
        records: Bytes,
        acks_all: bool,
    ) -> Result<(AppendOutcome, LeaderEpoch), (ErrorCode, String)> {
        // Only the producer fields are needed here; `Log::append` validates every batch (CRC
        // included) once, before anything is written.
        let headers = batch::frame(&records, usize::MAX)
            .map_err(|e| (ErrorCode::CorruptMessage, e.to_string()))?;
        // Markers are written by the transaction coordinator (`Partition::append_marker`),
        // never by a producer.
        if headers.iter().any(|(_, h)| h.is_control()) {
            return Err((
                ErrorCode::InvalidRecord,
                "control batches (transaction markers) cannot be produced".into(),
            ));
        }
        let idempotent: Vec<_> = headers
            .iter()
            .map(|(_, h)| h)
            .filter(|h| h.producer_id >= 0 && h.base_sequence >= 0)
            .collect();
        if headers
            .iter()
            .any(|(_, h)| h.is_transactional() && h.base_sequence < 0)
        {
            return Err((
                ErrorCode::InvalidRecord,
                "a transactional batch carries a producer id and sequence".into(),
            ));
        }
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = match &self.replica {
            None => LeaderEpoch(0),
            Some(r) => {
                let g = lock(r);
                let checked = if acks_all {
                    g.machine.check_acks_all()
                } else if g.machine.is_leader() {
                    Ok(())
                } else {
                    Err(ReplicationError::NotLeader)
                };
                checked.map_err(|e| (replication_code(&e), e.to_string()))?;
                g.machine.leader_epoch()
            }
        };
        // A log whose write failed refuses everything, before any sequence verdict: once a
        // batch of a producer failed here, the producer's next batch would otherwise be answered
        // OUT_OF_ORDER_SEQUENCE_NUMBER, which librdkafka takes for "the earlier batches were
        // lost" and answers by renumbering every unacknowledged record under a new epoch,
        // duplicating those that were written (seen in a chaos run with a full disk).
        if self.log.is_offline() {
            return Err((
                ErrorCode::KafkaStorageError,
                "a write to this replica's log failed; it is offline until the broker restarts"
                    .into(),
            ));
        }
        if let Some(h) = idempotent.first() {
            if headers.len() != 1 {
                return Err((
                    ErrorCode::InvalidRequest,
                    "an idempotent produce carries one batch per partition".into(),
                ));
            }
            let last = h.base_sequence.wrapping_add(h.last_offset_delta);
            match producers.check(h.producer_id, h.producer_epoch, h.base_sequence, last) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate { base, next } => {
                    return Ok((AppendOutcome::Duplicate { base, next }, epoch));
                }
                SequenceCheck::Reject(code) => {
                    return Err((code, format!("sequence {} rejected", h.base_sequence)));
                }
            }
        }
        let info = self.write(records, epoch)?;
        if let Some(h) = idempotent.first() {
            let last = h.base_sequence.wrapping_add(h.last_offset_delta);
            producers.record(
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                last,
                info.first_offset,
                h.max_timestamp,
            );
            if h.is_transactional() {
                producers.record_transactional(h.producer_id, info.first_offset);
            }
        }
        Ok((AppendOutcome::Appended(info), epoch))
    }

    /// Appends a batch a coordinator built (the group coordinator's records in
    /// `__consumer_offsets`, the transaction coordinator's in `__transaction_state`) with
    /// acks=all's ISR check and no sequence check: a transactional one (a TxnOffsetCommit)
    /// opens its producer's transaction here, which the producer's marker ends.
    pub fn append_as_coordinator(
        &self,
        records: Bytes,
    ) -> Result<(AppendInfo, LeaderEpoch), (ErrorCode, String)> {
        let headers = batch::frame(&records, usize::MAX)
            .map_err(|e| (ErrorCode::CorruptMessage, e.to_string()))?;
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = match &self.replica {
            None => LeaderEpoch(0),
            Some(r) => {
                let g = lock(r);
                g.machine
                    .check_acks_all()
                    .map_err(|e| (replication_code(&e), e.to_string()))?;
                g.machine.leader_epoch()
            }
        };
        if self.log.is_offline() {
            return Err((
                ErrorCode::KafkaStorageError,
                "a write to this replica's log failed".into(),
            ));
        }
        let info = self.write(records, epoch)?;
        let mut offset = info.first_offset;
        for (_, h) in &headers {
            if h.is_transactional() && !h.is_control() && h.producer_id >= 0 {
                producers.record_transactional(h.producer_id, offset);
            }
            offset = offset.plus(i64::from(h.last_offset_delta) + 1);
        }
        Ok((info, epoch))
    }

    /// Writes the marker that ends `producer_id`'s transaction here (WriteTxnMarkers), as
    /// leader. Refused with INVALID_PRODUCER_EPOCH if the partition knows a newer epoch of the
    /// producer. Returns the append (to wait on, like an acks=all produce) and its epoch.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
    ) -> Result<(AppendInfo, LeaderEpoch), (ErrorCode, String)> {
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let epoch = match &self.replica {
            None => LeaderEpoch(0),
            Some(r) => {
                let g = lock(r);
                if !g.machine.is_leader() {
                    return Err((
                        ErrorCode::NotLeaderOrFollower,
                        "not the partition's leader".into(),
                    ));
                }
                g.machine.leader_epoch()
            }
        };
        if self.log.is_offline() {
            return Err((
                ErrorCode::KafkaStorageError,
                "a write to this replica's log failed".into(),
            ));
        }
        producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)
            .map_err(|code| {
                let why = if code == ErrorCode::TransactionCoordinatorFenced {
                    "a newer transaction coordinator wrote a marker here"
                } else {
                    "the producer has a newer epoch here"
                };
                (code, why.to_string())
            })?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let bytes = control.marker(producer_id, producer_epoch, coordinator_epoch, now);
        let info = self.write(Bytes::from(bytes), epoch)?;
        producers.record_marker(
            producer_id,
            producer_epoch,
            control,
            coordinator_epoch,
            info.first_offset,
        );
        Ok((info, epoch))
    }

    /// The last stable offset: below it every transaction has ended (read_committed consumers
    /// read up to here). The high watermark, or the first offset of the oldest open
    /// transaction if lower.
    pub fn last_stable_offset(&self) -> Offset {
        let hw = self.high_watermark();
        lock(&self.producers)
            .first_unstable_offset()
            .map_or(hw, |first| first.min(hw))
    }

    /// The aborted transactions whose records overlap `[from, to)` (read_committed fetches).
    pub fn aborted_transactions(&self, from: Offset, to: Offset) -> Vec<AbortedTxn> {
        let mut producers = lock(&self.producers);
        producers.forget_aborted_before(self.log.log_start_offset());
        producers.aborted_between(from, to)
    }

    /// Whether `producer_id` has a transaction open in this partition.
    pub fn in_transaction(&self, producer_id: i64) -> bool {
        lock(&self.producers).in_transaction(producer_id)
    }

    /// Appends batches as leader in `epoch`. Called from async tasks: an append that would
    /// wait on the disk (backpressure, a roll) is done where waiting does not stall the
    /// runtime's worker.
    fn write(&self, records: Bytes, epoch: LeaderEpoch) -> Result<AppendInfo, (ErrorCode, String)> {
        match self.log.try_append(records, epoch) {
            Ok(TryAppend::Appended(info)) => Ok(info),
            Ok(TryAppend::WouldWait(records)) => {
                crate::blocking::run(|| self.log.append(records, epoch))
            }
            Err(e) => Err(e),
        }
        .map_err(|e| (ErrorCode::from(&e), e.to_string()))
    }

    /// Appends batches fetched from the leader (follower side), keeping their offsets and
    /// epochs; the producer state follows them so this replica can lead later.
    pub fn append_as_follower(&self, records: Bytes) -> Result<AppendInfo, (ErrorCode, String)> {
        let headers = batch::frame(&records, usize::MAX)
            .map_err(|e| (ErrorCode::CorruptMessage, e.to_string()))?;
        let all = records.clone();
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let info = match self.log.try_append_as_follower(records) {
            Ok(TryAppend::Appended(info)) => Ok(info),
            Ok(TryAppend::WouldWait(records)) => {
                crate::blocking::run(|| self.log.append_as_follower(records))
            }
            Err(e) => Err(e),
        }
        .map_err(|e| (ErrorCode::from(&e), e.to_string()))?;
        for (pos, h) in &headers {
            let control = h
                .is_control()
                .then(|| all.get(*pos..*pos + h.size()))
                .flatten();
            producers.record_batch(h, control);
        }
        Ok(info)
    }

    /// Empties the log and restarts it at `offset` (a follower behind its leader's log start),
    /// forgetting the producer state with the records.
    pub fn restart_at(&self, offset: Offset) -> strata_engine::Result<Offset> {
        let mut written = lock(&self.snapshots);
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        self.forget_snapshots_from(&mut written, Offset(-1));
        let end = self.log.truncate_fully_and_start_at(offset)?;
        *producers = ProducerStates::default();
        Ok(end)
    }

    /// Removes the producer snapshots and indexes a truncation to `offset` makes wrong (with
    /// the snapshot lock held).
    fn forget_snapshots_from(&self, written: &mut producer_snapshot::Written, offset: Offset) {
        if let Err(e) = producer_snapshot::forget_from(&self.log, offset, written) {
            // Left in place they could describe records the truncation removes.
            tracing::error!(topic = %self.topic, partition = self.index, error = %e, "removing producer-state snapshots before a truncation");
        }
    }

    /// Truncates the log (follower diverging from its leader) and rebuilds the producer state.
    /// A replica with a corrupt batch is cut back to that batch as well, which clears it.
    pub fn truncate_to(&self, offset: Offset) -> strata_engine::Result<Offset> {
        let mut written = lock(&self.snapshots);
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        let corrupt = lock(&self.corrupt_from).take();
        if let Some(c) = corrupt {
            tracing::warn!(topic = %self.topic, partition = self.index, from = c.0, "cutting the replica back to its first corrupt batch, to refill it from the leader");
        }
        let offset = corrupt.map_or(offset, |c| c.min(offset));
        self.forget_snapshots_from(&mut written, offset);
        let end = self.log.truncate_to(offset)?;
        if corrupt.is_some() {
            self.failed
                .store(false, std::sync::atomic::Ordering::SeqCst);
        }
        *producers = producer_snapshot::load(&self.log)?.0;
        self.with_replica(|r| r.machine.on_truncated(end));
        Ok(end)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A topic on this broker.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Whether it is internal (`__consumer_offsets`).
    pub internal: bool,
    /// Its partitions on this broker, by index (all of them standalone; the ones this broker
    /// holds a replica of in a cluster).
    pub partitions: RwLock<BTreeMap<i32, Arc<Partition>>>,
    /// Topic-level config overrides, by Kafka name.
    pub overrides: RwLock<BTreeMap<String, String>>,
    /// The effective log config.
    pub config: RwLock<LogConfig>,
}

impl Topic {
    /// The partition with this index.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let ps = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        ps.get(&index).cloned()
    }

    /// The partitions on this broker.
    pub fn local_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Number of partitions on this broker.
    pub fn partition_count(&self) -> usize {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Whether `name` is a legal topic name (Kafka's rules).
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An idempotent batch of one record from producer 7, epoch 0, at `seq`.
    fn idempotent_batch(seq: i32) -> Bytes {
        let mut b = batch::build(
            Offset(0),
            1_700_000_000_000,
            &[(None, Some(b"v".as_slice()))],
        );
        batch::stamp_producer(&mut b, 7, 0, seq);
        Bytes::from(b)
    }

    /// After a failed write, every later batch of a producer gets KAFKA_STORAGE_ERROR (retry
    /// elsewhere), never a sequence verdict that would make the client renumber its records.
    #[test]
    fn an_offline_log_refuses_batches_before_checking_sequences() {
        use strata_engine::io::sim::SimStorage;
        let sim = SimStorage::new();
        let pipeline = strata_engine::CommitPipeline::start(
            std::sync::Arc::new(sim.clone()),
            Default::default(),
        )
        .unwrap();
        let log = Log::open("/sim/t-0", LogConfig::default(), &pipeline.handle()).unwrap();
        let p = Partition::new("t", 0, log, None).unwrap();
        let append = |seq| match p.append(idempotent_batch(seq), false) {
            Ok((AppendOutcome::Appended(info), _)) => info
                .completion
                .wait_durable()
                .map_err(|_| ErrorCode::RequestTimedOut),
            Ok((AppendOutcome::Duplicate { .. }, _)) => Ok(()),
            Err((code, _)) => Err(code),
        };
        assert_eq!(append(0), Ok(()));
        sim.set_fail_writes(true);
        // Handed to the log, then its write fails.
        assert!(append(1).is_err());
        assert!(p.log.is_offline());
        for seq in 2..5 {
            assert_eq!(append(seq), Err(ErrorCode::KafkaStorageError), "seq {seq}");
        }
    }

    /// A long-polling fetch is woken by the partitions it watches and by no other: a wake of
    /// partition 1 leaves a fetch on partition 0 asleep, a wake of partition 0 reaches it even
    /// when it comes before the fetch waits (a permit), and a fetch that has ended leaves only
    /// a dead entry, swept once the list is long.
    #[test]
    fn fetches_are_woken_by_their_own_partitions() {
        use std::sync::Arc;
        use strata_engine::io::sim::SimStorage;
        use tokio::sync::Notify;
        let sim = SimStorage::new();
        let pipeline =
            strata_engine::CommitPipeline::start(Arc::new(sim.clone()), Default::default())
                .unwrap();
        let open = |i: i32| {
            let log = Log::open(
                format!("/sim/t-{i}"),
                LogConfig::default(),
                &pipeline.handle(),
            )
            .unwrap();
            Partition::new("t", i, log, None).unwrap()
        };
        let (p0, p1) = (open(0), open(1));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let woken = |n: &Arc<Notify>| {
            rt.block_on(async {
                tokio::time::timeout(std::time::Duration::from_millis(50), n.notified())
                    .await
                    .is_ok()
            })
        };
        let fetch = Arc::new(Notify::new());
        p0.watch_fetch(&fetch);
        p1.wake_fetches();
        assert!(
            !woken(&fetch),
            "another partition's append does not wake it"
        );
        p0.wake_fetches();
        assert!(woken(&fetch), "its own partition's append wakes it");
        p0.wake_fetches();
        assert!(!woken(&fetch), "one wake-up per registration");
        // A fetch registers again after each wake-up: once per partition, however often.
        p0.watch_fetch(&fetch);
        p0.watch_fetch(&fetch);
        assert_eq!(p0.fetch_watchers.lock().unwrap().len(), 1);
        // Standalone, a batch becoming durable is the high watermark moving: the produce path's
        // `on_local_progress` wakes the fetch.
        let records = batch::build(
            Offset(0),
            1_700_000_000_000,
            &[(None, Some(b"v".as_slice()))],
        );
        let Ok((AppendOutcome::Appended(info), _)) = p0.append(Bytes::from(records), false) else {
            panic!("appended")
        };
        info.completion.wait_durable().unwrap();
        assert!(!woken(&fetch), "not before the progress is reported");
        p0.on_local_progress();
        assert!(woken(&fetch), "a durable append wakes the fetch");
        for _ in 0..(FETCH_WATCHERS_MAX * 2) {
            let ended = Arc::new(Notify::new());
            p1.watch_fetch(&ended);
        }
        assert!(
            p1.fetch_watchers.lock().unwrap().len() <= FETCH_WATCHERS_MAX + 1,
            "ended fetches are swept"
        );
    }

    /// Open transactions hold the last stable offset at their first offset; markers end
    /// them, an abort is listed for the fetches whose range it overlaps, a marker of an older
    /// epoch is refused, and retention forgets aborts below the log start.
    #[test]
    fn transactions_move_the_first_unstable_offset_and_list_aborts() {
        let mut st = ProducerStates::default();
        st.record(7, 0, 0, 0, Offset(10), 0);
        st.record_transactional(7, Offset(10));
        st.record(8, 0, 0, 0, Offset(11), 0);
        st.record_transactional(8, Offset(11));
        st.record_transactional(7, Offset(12));
        assert_eq!(st.first_unstable_offset(), Some(Offset(10)));
        assert!(st.in_transaction(7) && st.in_transaction(8));
        st.record_marker(7, 0, ControlType::Abort, 0, Offset(13));
        assert_eq!(st.first_unstable_offset(), Some(Offset(11)));
        st.record_marker(8, 0, ControlType::Commit, 0, Offset(14));
        assert_eq!(st.first_unstable_offset(), None);
        let abort = AbortedTxn {
            producer_id: 7,
            first_offset: Offset(10),
            last_offset: Offset(13),
        };
        assert_eq!(st.aborted_between(Offset(0), Offset(11)), vec![abort]);
        assert_eq!(st.aborted_between(Offset(13), Offset(20)), vec![abort]);
        assert!(st.aborted_between(Offset(14), Offset(20)).is_empty());
        assert!(st.aborted_between(Offset(0), Offset(10)).is_empty());
        // A fenced producer's coordinator wrote epoch 1: epoch 0's marker is stale.
        st.record_marker(7, 1, ControlType::Abort, 3, Offset(15));
        assert_eq!(
            st.check_marker(7, 0, 3),
            Err(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(st.check_marker(7, 1, 3), Ok(()));
        assert_eq!(
            st.check_marker(7, 1, 2),
            Err(ErrorCode::TransactionCoordinatorFenced),
            "a marker of an older coordinator is a zombie's"
        );
        assert_eq!(
            st.check(7, 0, 1, 1),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch),
            "the fenced epoch's batches are refused"
        );
        st.forget_aborted_before(Offset(14));
        assert!(st.aborted_between(Offset(0), Offset(20)).is_empty());
    }

    /// The state survives a reopen: rebuilt from the log's batches, control batches included
    /// (their type read from the marker's key).
    #[test]
    fn transaction_state_is_rebuilt_from_the_log() {
        use strata_engine::io::sim::SimStorage;
        let sim = SimStorage::new();
        let pipeline = strata_engine::CommitPipeline::start(
            std::sync::Arc::new(sim.clone()),
            Default::default(),
        )
        .unwrap();
        let txn = |pid: i64, seq: i32| {
            let mut b = batch::build(
                Offset(0),
                1_700_000_000_000,
                &[(None, Some(b"v".as_slice()))],
            );
            batch::stamp_producer(&mut b, pid, 0, seq);
            batch::stamp_transactional(&mut b, false);
            Bytes::from(b)
        };
        {
            let log = Log::open("/sim/t-0", LogConfig::default(), &pipeline.handle()).unwrap();
            let p = Partition::new("t", 0, log, None).unwrap();
            for (pid, seq) in [(1, 0), (2, 0), (1, 1)] {
                let Ok((AppendOutcome::Appended(info), _)) = p.append(txn(pid, seq), false) else {
                    panic!("appended")
                };
                info.completion.wait_durable().unwrap();
            }
            let (info, _) = p.append_marker(1, 0, ControlType::Abort, 5).unwrap();
            info.completion.wait_durable().unwrap();
            p.on_local_progress();
            assert_eq!(p.last_stable_offset(), Offset(1), "producer 2 still open");
            p.log.close().unwrap();
        }
        let log = Log::open("/sim/t-0", LogConfig::default(), &pipeline.handle()).unwrap();
        let p = Partition::new("t", 0, log, None).unwrap();
        p.on_local_progress();
        assert_eq!(p.last_stable_offset(), Offset(1));
        assert!(p.in_transaction(2) && !p.in_transaction(1));
        assert_eq!(
            p.aborted_transactions(Offset(0), Offset(4)),
            vec![AbortedTxn {
                producer_id: 1,
                first_offset: Offset(0),
                last_offset: Offset(3),
            }]
        );
        let active = p.active_producers();
        assert_eq!(active[0].current_txn_start_offset, None);
        assert_eq!(active[1].current_txn_start_offset, Some(Offset(1)));
    }

    /// A partition opens (and truncates) from its producer-state snapshot and the sealed
    /// segments' aborted-transaction indexes, walking only what follows the snapshot, into the
    /// very state a walk of the whole log gives; a snapshot past a truncation, a torn snapshot
    /// or a missing index is never believed (the whole log is walked instead).
    #[test]
    fn producer_state_from_a_snapshot_equals_a_full_walk() {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = strata_engine::CommitPipeline::start(
            Arc::new(strata_engine::io::std_fs::StdStorage::new()),
            Default::default(),
        )
        .unwrap();
        // A segment of a few batches, so a few dozen batches make many segments.
        let config = LogConfig {
            segment_bytes: 400,
            ..LogConfig::default()
        };
        let path = dir.path().join("t-0");
        let open = || {
            let log = Log::open(&path, config.clone(), &pipeline.handle()).unwrap();
            Partition::new("t", 0, log, None).unwrap()
        };
        let batch = |pid: i64, seq: i32, transactional: bool| {
            let mut b = batch::build(
                Offset(0),
                1_700_000_000_000,
                &[(None, Some(b"v".as_slice()))],
            );
            batch::stamp_producer(&mut b, pid, 0, seq);
            if transactional {
                batch::stamp_transactional(&mut b, false);
            }
            Bytes::from(b)
        };
        let mut seqs: HashMap<i64, i32> = HashMap::new();
        // Rounds of: transactions of producers 1-3 (every other one aborted), an idempotent
        // producer 9; producer 3's last transaction stays open.
        let write = |p: &Partition, rounds: i32, seqs: &mut HashMap<i64, i32>| {
            for round in 0..rounds {
                for pid in 1..=3i64 {
                    for _ in 0..2 {
                        let seq = seqs.entry(pid).or_default();
                        let r = p.append(batch(pid, *seq, true), false);
                        let Ok((AppendOutcome::Appended(info), _)) = r else {
                            panic!("appended: {r:?}")
                        };
                        *seq += 1;
                        info.completion.wait_durable().unwrap();
                    }
                    if pid != 3 || round + 1 < rounds {
                        let control = if (round + pid as i32) % 2 == 0 {
                            ControlType::Abort
                        } else {
                            ControlType::Commit
                        };
                        let (info, _) = p.append_marker(pid, 0, control, 1).unwrap();
                        info.completion.wait_durable().unwrap();
                    }
                }
                let seq = seqs.entry(9).or_default();
                let Ok((AppendOutcome::Appended(info), _)) = p.append(batch(9, *seq, false), false)
                else {
                    panic!("appended")
                };
                *seq += 1;
                info.completion.wait_durable().unwrap();
            }
        };
        let p = open();
        write(&p, 6, &mut seqs);
        assert!(
            p.log.segment_count() > 5,
            "{} segments",
            p.log.segment_count()
        );
        p.save_producer_snapshot(false);
        let snapshot_at = p.log.log_end_offset();
        write(&p, 3, &mut seqs);
        let full = ProducerStates::rebuild(&p.log).unwrap();
        assert!(!full.aborted.is_empty() && !full.open.is_empty());
        let (loaded, from) = producer_snapshot::load(&p.log).unwrap();
        assert_eq!(from, Some(snapshot_at), "walked from the snapshot");
        assert_eq!(loaded, full);
        assert_eq!(*lock(&p.producers), full, "the live state too");

        // Reopened after a clean shutdown's snapshot: nothing to walk.
        p.save_producer_snapshot(true);
        let end = p.log.log_end_offset();
        p.log.close().unwrap();
        drop(p);
        let p = open();
        assert_eq!(*lock(&p.producers), full);
        assert_eq!(producer_snapshot::load(&p.log).unwrap().1, Some(end));

        // A truncation below both snapshots: they go, and the state is the walk's again.
        let cut = Offset(snapshot_at.0 - 5);
        p.truncate_to(cut).unwrap();
        let full = ProducerStates::rebuild(&p.log).unwrap();
        assert_eq!(*lock(&p.producers), full);
        assert_eq!(producer_snapshot::load(&p.log).unwrap().1, None);
        // Writing on after it, each producer from its last sequence the log still has.
        let mut seqs: HashMap<i64, i32> = p
            .active_producers()
            .iter()
            .map(|a| (a.producer_id, a.last_sequence + 1))
            .collect();
        write(&p, 2, &mut seqs);
        p.save_producer_snapshot(false);
        let full = ProducerStates::rebuild(&p.log).unwrap();
        let (loaded, from) = producer_snapshot::load(&p.log).unwrap();
        assert!(from.is_some());
        assert_eq!(loaded, full);

        // A torn snapshot, then a missing index: the whole log is walked.
        let files = |suffix: &str| {
            let mut v: Vec<_> = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == suffix))
                .collect();
            v.sort();
            v
        };
        let newest = files("producers").pop().unwrap();
        let mut bytes = std::fs::read(&newest).unwrap();
        let last = bytes.len() - 2;
        bytes[last] ^= 0x20;
        std::fs::write(&newest, bytes).unwrap();
        let (loaded, from) = producer_snapshot::load(&p.log).unwrap();
        assert_ne!(
            from,
            Some(p.log.log_end_offset()),
            "the torn one is not used"
        );
        assert_eq!(loaded, full);
        std::fs::remove_file(&newest).unwrap();
        for index in files("txnindex") {
            std::fs::remove_file(index).unwrap();
        }
        let (loaded, from) = producer_snapshot::load(&p.log).unwrap();
        assert_eq!(from, None);
        assert_eq!(loaded, full);
    }

    #[test]
    fn sequence_checks_follow_kafka() {
        let mut st = ProducerStates::default();
        assert_eq!(st.check(7, 0, 0, 4), SequenceCheck::Append);
        st.record(7, 0, 0, 4, Offset(100), 0);
        assert_eq!(
            st.check(7, 0, 0, 4),
            SequenceCheck::Duplicate {
                base: Offset(100),
                next: Offset(105)
            }
        );
        assert_eq!(st.check(7, 0, 5, 9), SequenceCheck::Append);
        assert_eq!(
            st.check(7, 0, 7, 9),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            st.check(7, 0, 2, 3),
            SequenceCheck::Reject(ErrorCode::DuplicateSequenceNumber)
        );
        assert_eq!(st.check(7, 1, 0, 0), SequenceCheck::Append);
        st.record(7, 1, 0, 0, Offset(200), 0);
        assert_eq!(
            st.check(7, 0, 5, 9),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            st.check(8, 0, 3, 3),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
    }
}
