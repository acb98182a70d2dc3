//! The commit pipeline: one thread per data directory that writes the appends of every
//! partition of that directory and makes them durable in rounds (group commit).
//!
//! The writer thread runs in rounds: a round takes everything queued (up to
//! [`PipelineConfig::round_requests_max`] requests and [`PipelineConfig::round_bytes_max`]
//! bytes), coalesces the requests for each file into one vectored write and submits them through
//! [`Storage::write_and_sync`] (writes only). The logs then due for durability go to a syncer
//! thread, which makes the union of their dirty files durable once (fdatasyncs in flight
//! together, or one `syncfs` per file system when many files are dirty) and releases their
//! waiters. While a sync is on the disk the writer keeps writing, and everything that becomes
//! due meanwhile shares the next sync round: the busier the disk, the more batches each round
//! covers.
//!
//! A third thread, the checkpointer, writes the recovery-point checkpoints that logs prepare on
//! their append path (see `Log`), so that neither the append path nor the log's lock waits on
//! the disk for them.
//!
//! Which logs are synced in a round depends on their [`FlushPolicy`]: `Always` logs in every
//! round they were written in; `Interval` logs once their oldest unsynced write is older than the
//! interval; `Os` logs only when asked ([`crate::Log::flush`], roll, close).
//!
//! Invariants:
//! - requests of one log are written in the order they were queued, and a log's `written`
//!   offset only covers batches whose bytes are complete in the file;
//! - a log's recovery point (`durable`) only covers batches written *and* fdatasync'ed;
//! - a failed write fails that round's waiters and marks the logs failed (they must be
//!   reopened, which recovers them); a failed fdatasync is fatal: the syncer panics (and the
//!   waiters are failed), because the page cache state after a failed fsync is unknown and only
//!   recovery can tell what survived.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::checkpoint::PartitionCheckpoint;
use crate::completion::{Completion, CompletionInner};
use crate::error::{LogError, Result};
use crate::io::{Backend, RoundError, Storage, StorageFile, WriteOp};
use crate::offset::Offset;

/// When a log's appends are made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FlushPolicy {
    /// fdatasync in the round that writes the batch; appends are durable when acknowledged.
    #[default]
    Always,
    /// fdatasync once the oldest unsynced write is this many milliseconds old.
    Interval(u64),
    /// Never fdatasync on the append path; the page cache decides (Kafka's default).
    Os,
}

/// Limits of the commit pipeline.
#[derive(Clone, Debug)]
pub struct PipelineConfig {
    /// Requests waiting in the queue before appends block. Default: 65536. Minimum: 1.
    pub queue_requests_max: usize,
    /// Bytes of appends queued but not yet written before appends block (backpressure that
    /// also keeps append buffers recycled while they are warm). Default: 32 MiB. Minimum: 1.
    pub queue_bytes_max: usize,
    /// Requests written in one round. Default: 4096. Minimum: 1.
    pub round_requests_max: usize,
    /// Bytes written in one round. Default: 64 MiB. Minimum: 1.
    pub round_bytes_max: usize,
    /// Dirty files from which a sync round makes them durable with one `syncfs` per file
    /// system instead of one fdatasync per file; 0: never. Default: 4. Measured on ext4 over a
    /// virtio disk (`strata-bench sync`): syncfs is ahead from 2 dirty files (0.19 ms against
    /// 0.21 ms for two fdatasyncs in flight), with 4 files 0.19-0.23 ms against 0.30-0.37 ms,
    /// with 64 files 0.9 ms against 2.5-2.8 ms, with 1,000 files 11 ms against 24-39 ms, always
    /// one device flush instead of up to one per file. Its cost: it also writes back whatever
    /// else is dirty on the file system (logs under `flush=os`, other programs), so the default
    /// leaves the smallest rounds to fdatasync, and a disk shared with heavy unsynced writers
    /// may want a higher value.
    pub syncfs_files_min: usize,
}

impl Default for PipelineConfig {
    fn default() -> PipelineConfig {
        PipelineConfig {
            queue_requests_max: 65536,
            queue_bytes_max: 32 << 20,
            round_requests_max: 4096,
            round_bytes_max: 64 << 20,
            syncfs_files_min: 4,
        }
    }
}

/// Counters of a pipeline, for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct PipelineStats {
    /// Rounds run.
    pub rounds: AtomicU64,
    /// Files made durable: one per fdatasync, or per file covered by a `syncfs`.
    pub fsyncs: AtomicU64,
    /// Sync rounds: each makes every file due at once durable, with fdatasyncs in flight
    /// together or one `syncfs` per file system.
    pub sync_rounds: AtomicU64,
    /// Sync rounds that used `syncfs` (many dirty files).
    pub syncfs_rounds: AtomicU64,
    /// Append requests written.
    pub requests_written: AtomicU64,
    /// Record batches written.
    pub batches_written: AtomicU64,
    /// Record batches made durable by an fdatasync.
    pub batches_synced: AtomicU64,
    /// Bytes written.
    pub bytes_written: AtomicU64,
}

impl PipelineStats {
    /// Batches made durable per fdatasync so far.
    pub fn batches_per_fsync(&self) -> f64 {
        let f = self.fsyncs.load(Ordering::Relaxed);
        if f == 0 {
            0.0
        } else {
            self.batches_synced.load(Ordering::Relaxed) as f64 / f as f64
        }
    }
}

/// Per-log progress shared between a log and the pipeline.
#[derive(Debug)]
pub(crate) struct LogProgress {
    pub id: u64,
    /// Every batch below this offset is completely written.
    pub written: AtomicI64,
    /// Every batch below this offset is durable: the recovery point.
    pub durable: AtomicI64,
    /// Set when a write failed; the log refuses appends until reopened.
    pub failed: AtomicBool,
    pub policy: Mutex<FlushPolicy>,
    /// Held while a checkpoint file is written, by the checkpointer thread and by the log's
    /// own checkpointing operations (taken before the log's lock). Lock order:
    /// `checkpoint_lock` before the log's lock.
    pub checkpoint_lock: Mutex<()>,
    /// Bumped by every checkpoint the log writes itself and every change of its segments
    /// (truncation, retention, compaction, close, delete): a checkpoint prepared in an earlier
    /// generation is stale and the checkpointer drops it.
    pub checkpoint_generation: AtomicU64,
}

impl LogProgress {
    pub fn new(id: u64, end: Offset, policy: FlushPolicy) -> LogProgress {
        LogProgress {
            id,
            written: AtomicI64::new(end.0),
            durable: AtomicI64::new(end.0),
            failed: AtomicBool::new(false),
            policy: Mutex::new(policy),
            checkpoint_lock: Mutex::new(()),
            checkpoint_generation: AtomicU64::new(0),
        }
    }

    pub fn policy(&self) -> FlushPolicy {
        *self.policy.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) struct WriteRequest {
    pub file: Arc<dyn StorageFile>,
    pub position: u64,
    /// The bytes, in order: one buffer, or (a zero-copy append of shared request bytes) each
    /// batch's stamped header prefix and the client's bytes after it.
    pub data: Vec<Bytes>,
    /// Total bytes of `data`.
    pub len: usize,
    pub batches: u32,
    pub end_offset: Offset,
    pub progress: Arc<LogProgress>,
    pub completion: Arc<CompletionInner>,
    /// The directory to fsync with this write's file, before it counts as durable: the file
    /// is a segment created by a roll on the append path, whose directory entry the roll left
    /// to the pipeline (so that the append path does not wait for a directory fsync).
    pub sync_dir: Option<PathBuf>,
}

/// A recovery-point checkpoint prepared under a log's lock on the append path, written by the
/// pipeline's checkpointer thread so that the append path never waits on the disk for it.
#[derive(Debug)]
pub(crate) struct CheckpointJob {
    pub progress: Arc<LogProgress>,
    pub dir: PathBuf,
    pub checkpoint: PartitionCheckpoint,
    /// Index files whose entries the checkpoint names: fdatasync'ed first (that also writes
    /// back what their memory maps dirtied).
    pub index_files: Vec<PathBuf>,
    /// `progress.checkpoint_generation` when prepared.
    pub generation: u64,
}

/// Why [`CheckpointJob::write`] failed.
#[derive(Debug)]
pub(crate) enum CheckpointWriteError {
    /// An index file the checkpoint names could not be made durable (it may be gone: the
    /// segment was deleted).
    Index(PathBuf, std::io::Error),
    /// The checkpoint file itself.
    Checkpoint(LogError),
}

impl CheckpointWriteError {
    /// As the log's error.
    pub(crate) fn into_log_error(self) -> LogError {
        match self {
            CheckpointWriteError::Index(path, e) => LogError::io(&path, e),
            CheckpointWriteError::Checkpoint(e) => e,
        }
    }
}

impl CheckpointJob {
    /// Writes the checkpoint: fdatasyncs the index files it names (their entries must be
    /// durable before the checkpoint names them), then the checkpoint file. No log lock is
    /// needed; the caller holds the log's checkpoint lock, so no truncation, retention or
    /// compaction changes the segments it names meanwhile.
    pub(crate) fn write(&self, storage: &dyn Storage) -> std::result::Result<(), CheckpointWriteError> {
        for path in &self.index_files {
            storage
                .open(path, false)
                .and_then(|f| f.sync_data())
                .map_err(|e| CheckpointWriteError::Index(path.clone(), e))?;
        }
        self.checkpoint
            .write(storage, &self.dir)
            .map_err(CheckpointWriteError::Checkpoint)
    }
}

pub(crate) enum Command {
    Write(WriteRequest),
    /// Make everything queued so far for this log durable.
    Flush(Arc<LogProgress>, Arc<CompletionInner>),
    /// Completes once everything queued before it is written (not necessarily durable).
    Barrier(Arc<CompletionInner>),
    Shutdown,
}

/// What the pipeline remembers of a log between rounds.
#[derive(Default)]
struct LogState {
    progress: Option<Arc<LogProgress>>,
    dirty: Vec<Arc<dyn StorageFile>>,
    /// Directories whose new entries must be durable with the dirty files.
    dirty_dirs: Vec<PathBuf>,
    unsynced_end: i64,
    unsynced_batches: u64,
    unsynced_since: Option<Instant>,
    waiters: Vec<Arc<CompletionInner>>,
}

impl LogState {
    fn mark_dirty(&mut self, file: &Arc<dyn StorageFile>) {
        if !self.dirty.iter().any(|f| Arc::ptr_eq(f, file)) {
            self.dirty.push(file.clone());
        }
    }
}

/// Write requests and bytes queued in the pipeline, and a condition to wait for room. Appends
/// reserve room ([`PipelineHandle::reserve`]) before they take their log's lock, so that an
/// append waiting for room never holds a lock that readers need.
#[derive(Debug, Default)]
struct QueuedBytes {
    /// (bytes, write requests) queued.
    queued: Mutex<(usize, usize)>,
    room: std::sync::Condvar,
    max: usize,
    max_requests: usize,
}

impl QueuedBytes {
    fn acquire(&self, n: usize) {
        let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        // A request larger than the budget still goes through once the queue is empty.
        while q.1 > 0 && (q.0 + n > self.max || q.1 + 1 > self.max_requests) {
            q = self.room.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        q.0 += n;
        q.1 += 1;
    }

    /// Takes room for a request of `n` bytes if there is some now.
    fn try_acquire(&self, n: usize) -> bool {
        let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        if q.1 > 0 && (q.0 + n > self.max || q.1 + 1 > self.max_requests) {
            return false;
        }
        q.0 += n;
        q.1 += 1;
        true
    }

    /// Frees the room of `requests` written requests of `n` bytes in all.
    fn release(&self, n: usize, requests: usize) {
        let mut q = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        q.0 = q.0.saturating_sub(n);
        q.1 = q.1.saturating_sub(requests);
        drop(q);
        self.room.notify_all();
    }
}

/// Room for one write request in the pipeline's queue, reserved before the log's lock is
/// taken; handed over with the request ([`PipelineHandle::send_write`]), or given back when
/// dropped unused (an append that failed after reserving).
#[derive(Debug)]
pub(crate) struct QueueRoom {
    queued: Arc<QueuedBytes>,
    len: usize,
    used: bool,
}

impl Drop for QueueRoom {
    fn drop(&mut self) {
        if !self.used {
            self.queued.release(self.len, 1);
        }
    }
}

/// The cheap, cloneable side of a pipeline that logs hold.
#[derive(Clone, Debug)]
pub struct PipelineHandle {
    queued: Arc<QueuedBytes>,
    tx: Sender<Command>,
    checkpoints: Sender<Option<CheckpointJob>>,
    stats: Arc<PipelineStats>,
    storage: Arc<dyn Storage>,
    next_log_id: Arc<AtomicU64>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Write(w) => write!(f, "Write({:?}@{})", w.file.path(), w.position),
            Command::Flush(p, _) => write!(f, "Flush({})", p.id),
            Command::Barrier(_) => f.write_str("Barrier"),
            Command::Shutdown => f.write_str("Shutdown"),
        }
    }
}

impl PipelineHandle {
    /// The storage backend of this pipeline's data directory.
    #[cfg_attr(feature = "simulation", visibility::make(pub))]
    pub(crate) fn storage(&self) -> &Arc<dyn Storage> {
        &self.storage
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.stats
    }

    pub(crate) fn new_log_id(&self) -> u64 {
        self.next_log_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Queues a command other than a write (writes go through [`PipelineHandle::reserve`] and
    /// [`PipelineHandle::send_write`]). Never waits.
    pub(crate) fn send(&self, cmd: Command) -> Result<()> {
        assert!(
            !matches!(cmd, Command::Write(_)),
            "writes are queued in reserved room"
        );
        self.tx.send(cmd).map_err(|_| LogError::Closed)
    }

    /// Reserves room for a write request of `len` bytes, waiting while the queue is full
    /// (backpressure). Called before the log's lock is taken.
    pub(crate) fn reserve(&self, len: usize) -> QueueRoom {
        self.queued.acquire(len);
        QueueRoom {
            queued: self.queued.clone(),
            len,
            used: false,
        }
    }

    /// Reserves room for a write request of `len` bytes if there is some now.
    pub(crate) fn try_reserve(&self, len: usize) -> Option<QueueRoom> {
        self.queued.try_acquire(len).then(|| QueueRoom {
            queued: self.queued.clone(),
            len,
            used: false,
        })
    }

    /// Queues a write request in the room reserved for it. Never waits (the command channel
    /// is unbounded; the room was the bound).
    pub(crate) fn send_write(&self, w: WriteRequest, mut room: QueueRoom) -> Result<()> {
        assert_eq!(room.len, w.len, "a write goes in the room reserved for its length");
        room.used = true;
        if self.tx.send(Command::Write(w)).is_err() {
            self.queued.release(room.len, 1);
            return Err(LogError::Closed);
        }
        Ok(())
    }

    /// Hands a prepared checkpoint to the checkpointer thread. Never blocks; a checkpoint that
    /// cannot be queued is dropped (the next one covers more).
    pub(crate) fn checkpoint_later(&self, job: CheckpointJob) {
        if self.checkpoints.try_send(Some(job)).is_err() {
            tracing::debug!("checkpoint queue full or closed; a later checkpoint covers it");
        }
    }

    /// Asks for everything queued so far for a log to be made durable.
    pub(crate) fn flush(&self, progress: &Arc<LogProgress>) -> Result<Completion> {
        let (c, inner) = Completion::new();
        self.send(Command::Flush(progress.clone(), inner))?;
        Ok(c)
    }

    /// Waits until everything queued so far (by any log) is written.
    pub fn barrier(&self) -> Result<()> {
        let (c, inner) = Completion::new();
        self.send(Command::Barrier(inner))?;
        c.wait_written()
    }
}

/// The commit pipeline of one data directory. Dropping it finishes the queued work and stops
/// the thread.
#[derive(Debug)]
pub struct CommitPipeline {
    handle: PipelineHandle,
    thread: Option<JoinHandle<()>>,
    checkpointer: Option<JoinHandle<()>>,
}

impl CommitPipeline {
    /// Starts a pipeline on the real disk. `backend` picks the write path:
    /// [`Backend::Auto`] uses io_uring where the kernel allows it and the portable
    /// `pwritev` + `fdatasync` path otherwise (logging why). One pipeline is meant to serve
    /// every log on one disk: its rounds write and fdatasync the appends of all of them
    /// together, which is what makes durable appends cheap. Open logs with
    /// [`CommitPipeline::handle`].
    pub fn open(backend: Backend, config: PipelineConfig) -> io::Result<CommitPipeline> {
        CommitPipeline::start(crate::io::open_backend(backend)?, config)
    }

    /// The storage backend's name: `io_uring`, `std` (portable) or `sim`.
    pub fn backend_name(&self) -> &'static str {
        self.handle.storage.name()
    }

    /// Starts the pipeline thread for `storage` (the simulated disk, say).
    #[cfg_attr(feature = "simulation", visibility::make(pub))]
    pub(crate) fn start(storage: Arc<dyn Storage>, config: PipelineConfig) -> io::Result<CommitPipeline> {
        assert!(
            config.queue_requests_max >= 1
                && config.round_requests_max >= 1
                && config.round_bytes_max >= 1
        );
        // Unbounded: appends wait for room in `QueuedBytes` (before taking their log's lock),
        // not on the channel.
        let (tx, rx) = crossbeam_channel::unbounded();
        let stats = Arc::new(PipelineStats::default());
        let queued = Arc::new(QueuedBytes {
            max: config.queue_bytes_max,
            max_requests: config.queue_requests_max,
            ..QueuedBytes::default()
        });
        let (sync_tx, sync_rx) = crossbeam_channel::unbounded();
        let (checkpoints, checkpoint_rx) = crossbeam_channel::bounded(CHECKPOINT_QUEUE_MAX);
        let checkpointer = {
            let storage = storage.clone();
            std::thread::Builder::new()
                .name("strata-checkpoint".into())
                .spawn(move || run_checkpointer(storage, checkpoint_rx))?
        };
        let syncer = {
            let storage = storage.clone();
            let stats = stats.clone();
            let syncfs_files_min = config.syncfs_files_min;
            std::thread::Builder::new()
                .name(format!("strata-sync-{}", storage.name()))
                .spawn(move || run_syncer(storage, sync_rx, stats, syncfs_files_min))?
        };
        let worker = Worker {
            syncer: sync_tx,
            queued: queued.clone(),
            storage: storage.clone(),
            rx,
            config,
            stats: stats.clone(),
            logs: HashMap::new(),
        };
        let thread = std::thread::Builder::new()
            .name(format!("strata-commit-{}", storage.name()))
            .spawn(move || {
                worker.run();
                // The worker dropped its sender: the syncer finishes the queued jobs and exits.
                let _ = syncer.join();
            })?;
        Ok(CommitPipeline {
            handle: PipelineHandle {
                queued,
                tx,
                checkpoints,
                stats,
                storage,
                next_log_id: Arc::new(AtomicU64::new(1)),
            },
            thread: Some(thread),
            checkpointer: Some(checkpointer),
        })
    }

    /// A handle for opening logs on this pipeline.
    pub fn handle(&self) -> PipelineHandle {
        self.handle.clone()
    }

    /// The pipeline's counters.
    pub fn stats(&self) -> &Arc<PipelineStats> {
        &self.handle.stats
    }

    /// Finishes the queued work and stops the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.handle.tx.send(Command::Shutdown);
        if let Some(t) = self.thread.take() {
            // A panic in the pipeline (failed fsync) has already been reported by the thread.
            let _ = t.join();
        }
        if let Some(t) = self.checkpointer.take() {
            // It writes what was queued before this, then stops (open logs may still hold
            // senders; what they queue later is dropped).
            let _ = self.handle.checkpoints.send(None);
            let _ = t.join();
        }
    }
}

impl Drop for CommitPipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Worker {
    syncer: Sender<SyncJob>,
    queued: Arc<QueuedBytes>,
    storage: Arc<dyn Storage>,
    rx: Receiver<Command>,
    config: PipelineConfig,
    stats: Arc<PipelineStats>,
    logs: HashMap<u64, LogState>,
}

impl Worker {
    fn next_deadline(&self) -> Option<Instant> {
        self.logs
            .values()
            .filter_map(|s| {
                let since = s.unsynced_since?;
                match s.progress.as_ref()?.policy() {
                    FlushPolicy::Interval(ms) => Some(since + Duration::from_millis(ms)),
                    _ => None,
                }
            })
            .min()
    }

    fn run(mut self) {
        let mut shutting_down = false;
        while !shutting_down {
            let first = match self.next_deadline() {
                Some(deadline) => {
                    let wait = deadline.saturating_duration_since(Instant::now());
                    match self.rx.recv_timeout(wait) {
                        Ok(c) => Some(c),
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
                None => match self.rx.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return,
                },
            };
            let mut commands: Vec<Command> = first.into_iter().collect();
            let mut bytes = 0usize;
            while commands.len() < self.config.round_requests_max
                && bytes < self.config.round_bytes_max
            {
                match self.rx.try_recv() {
                    Ok(c) => {
                        if let Command::Write(w) = &c {
                            bytes += w.len;
                        }
                        commands.push(c);
                    }
                    Err(_) => break,
                }
            }
            if commands.iter().any(|c| matches!(c, Command::Shutdown)) {
                shutting_down = true;
            }
            self.round(commands);
        }
        // Drain whatever was queued after the shutdown command.
        let rest: Vec<Command> = self.rx.try_iter().collect();
        if !rest.is_empty() {
            self.round(rest);
        }
    }

    fn round(&mut self, commands: Vec<Command>) {
        let now = Instant::now();
        let mut writes: Vec<WriteRequest> = Vec::new();
        let mut flush_requested: Vec<(Arc<LogProgress>, Arc<CompletionInner>)> = Vec::new();
        let mut barriers: Vec<Arc<CompletionInner>> = Vec::new();
        for c in commands {
            match c {
                Command::Write(w) => writes.push(w),
                Command::Flush(p, done) => flush_requested.push((p, done)),
                Command::Barrier(done) => barriers.push(done),
                Command::Shutdown => {}
            }
        }

        // Coalesce consecutive writes to the same file at contiguous positions.
        let mut ops: Vec<WriteOp<'_>> = Vec::new();
        let mut op_end = 0u64; // end position of the last op, kept to avoid re-summing its buffers
        for w in &writes {
            if let Some(last) = ops.last_mut()
                && std::ptr::addr_eq(Arc::as_ptr(&w.file), last.file as *const dyn StorageFile)
                && op_end == w.position
            {
                last.bufs.extend(w.data.iter().map(|b| &b[..]));
                op_end += w.len as u64;
                continue;
            }
            ops.push(WriteOp {
                file: w.file.as_ref(),
                position: w.position,
                bufs: w.data.iter().map(|b| &b[..]).collect(),
            });
            op_end = w.position + w.len as u64;
        }
        let result = if ops.is_empty() {
            Ok(())
        } else {
            self.storage.write_and_sync(&ops, &[])
        };
        drop(ops);
        self.stats.rounds.fetch_add(1, Ordering::Relaxed);
        self.queued
            .release(writes.iter().map(|w| w.len).sum(), writes.len());

        if let Err(e) = result {
            let e = match e {
                RoundError::Write(e) | RoundError::Sync(e) => e,
            };
            tracing::error!(error = %e, "write to the log failed; affected logs go offline until reopened");
            let path: PathBuf = writes
                .first()
                .map(|w| w.file.path().to_path_buf())
                .unwrap_or_default();
            for w in &writes {
                w.progress.failed.store(true, Ordering::SeqCst);
                w.completion.fail(w.file.path().to_path_buf(), &e);
                if let Some(st) = self.logs.get_mut(&w.progress.id) {
                    for waiter in st.waiters.drain(..) {
                        waiter.fail(path.clone(), &e);
                    }
                }
            }
            for (_, done) in flush_requested {
                done.fail(path.clone(), &e);
            }
            for b in barriers {
                b.mark_written();
            }
            return;
        }

        // The round's bytes are in the files: publish "written" and remember what is unsynced.
        let mut batches = 0u64;
        let mut bytes = 0u64;
        for w in writes {
            batches += u64::from(w.batches);
            bytes += w.len as u64;
            w.progress
                .written
                .fetch_max(w.end_offset.0, Ordering::SeqCst);
            w.completion.mark_written();
            let st = self.logs.entry(w.progress.id).or_default();
            st.progress.get_or_insert_with(|| w.progress.clone());
            st.mark_dirty(&w.file);
            if let Some(dir) = w.sync_dir
                && !st.dirty_dirs.contains(&dir)
            {
                st.dirty_dirs.push(dir);
            }
            st.unsynced_end = st.unsynced_end.max(w.end_offset.0);
            st.unsynced_batches += u64::from(w.batches);
            st.unsynced_since.get_or_insert(now);
            // Keep the completion for the durable wake-up only if someone still holds it.
            if Arc::strong_count(&w.completion) > 1 {
                st.waiters.push(w.completion);
            }
        }
        self.stats.requests_written.fetch_add(0, Ordering::Relaxed);
        self.stats
            .batches_written
            .fetch_add(batches, Ordering::Relaxed);
        self.stats.bytes_written.fetch_add(bytes, Ordering::Relaxed);
        for b in barriers {
            b.mark_written();
        }

        // Hand the logs due for durability to the syncer. Their files are synced there while this
        // thread goes on writing the next rounds.
        for (p, _) in &flush_requested {
            self.logs
                .entry(p.id)
                .or_default()
                .progress
                .get_or_insert_with(|| p.clone());
        }
        let mut job = SyncJob::default();
        for (id, st) in self.logs.iter_mut() {
            let Some(progress) = st.progress.clone() else {
                continue;
            };
            let asked = flush_requested.iter().any(|(p, _)| p.id == *id);
            let due = match progress.policy() {
                FlushPolicy::Always => !st.dirty.is_empty(),
                FlushPolicy::Interval(ms) => st
                    .unsynced_since
                    .is_some_and(|t| now.duration_since(t) >= Duration::from_millis(ms)),
                FlushPolicy::Os => false,
            };
            if !(asked || due) {
                continue;
            }
            let end = st.unsynced_end.max(progress.written.load(Ordering::SeqCst));
            job.files.append(&mut st.dirty);
            job.dirs.append(&mut st.dirty_dirs);
            job.logs.push((progress, end, st.unsynced_batches));
            job.waiters.append(&mut st.waiters);
            st.unsynced_batches = 0;
            st.unsynced_since = None;
        }
        job.waiters
            .extend(flush_requested.into_iter().map(|(_, done)| done));
        if (!job.logs.is_empty() || !job.waiters.is_empty())
            && let Err(crossbeam_channel::SendError(job)) = self.syncer.send(job)
        {
            // The syncer is gone only if it panicked on a failed fsync; nothing is durable.
            for w in job.waiters {
                w.fail(
                    PathBuf::new(),
                    &std::io::Error::other("the commit pipeline's syncer stopped"),
                );
            }
        }
        // Forget logs with nothing pending so closed logs do not accumulate.
        self.logs
            .retain(|_, st| {
                !st.dirty.is_empty() || !st.dirty_dirs.is_empty() || !st.waiters.is_empty()
            });
    }
}

/// Logs handed from the writer to the syncer: files to fdatasync, then the offsets that become
/// durable and the completions to release.
#[derive(Default)]
struct SyncJob {
    files: Vec<Arc<dyn StorageFile>>,
    /// Directories to fsync with the files (new segments' entries).
    dirs: Vec<PathBuf>,
    logs: Vec<(Arc<LogProgress>, i64, u64)>,
    waiters: Vec<Arc<CompletionInner>>,
}

/// The syncer thread: takes every queued job, syncs the union of their files once (one
/// fdatasync per file, all in flight together, or one `syncfs` per file system once there are
/// `syncfs_files_min` of them), then publishes the recovery points and releases the waiters.
/// While it is in fdatasync the writer keeps writing, and the jobs that queue up meanwhile
/// share the next sync round.
fn run_syncer(
    storage: Arc<dyn Storage>,
    rx: Receiver<SyncJob>,
    stats: Arc<PipelineStats>,
    syncfs_files_min: usize,
) {
    let record_synced = std::env::var_os(RECORD_SYNCED_ENV).is_some();
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let mut files: Vec<Arc<dyn StorageFile>> = Vec::new();
        let mut dirs: Vec<PathBuf> = Vec::new();
        for j in &mut jobs {
            for f in j.files.drain(..) {
                if !files.iter().any(|g| Arc::ptr_eq(g, &f)) {
                    files.push(f);
                }
            }
            for d in j.dirs.drain(..) {
                if !dirs.contains(&d) {
                    dirs.push(d);
                }
            }
        }
        if !files.is_empty() || !dirs.is_empty() {
            let refs: Vec<&dyn StorageFile> = files.iter().map(|f| f.as_ref()).collect();
            // Every byte written before the fdatasync starts is durable when it returns.
            let lengths: Vec<Option<u64>> = if record_synced {
                files.iter().map(|f| f.len().ok()).collect()
            } else {
                Vec::new()
            };
            let by_filesystem = syncfs_files_min > 0 && refs.len() >= syncfs_files_min;
            let synced = if by_filesystem {
                storage.sync_filesystems(&refs)
            } else {
                storage.write_and_sync(&[], &refs)
            };
            // New segments' directory entries (one fsync per directory, once per roll; a
            // syncfs would cover them, a backend's fallback for it might not).
            let synced = synced.and_then(|()| {
                dirs.iter().try_for_each(|d| {
                    storage.sync_dir(d).map_err(|e| {
                        RoundError::Sync(std::io::Error::new(e.kind(), format!("{d:?}: {e}")))
                    })
                })
            });
            if let Err(e) = synced {
                // The kernel may have dropped dirty pages after reporting the error; retrying
                // could report success for data that is gone. Stop here; recovery at restart
                // decides what survived.
                panic!(
                    "fdatasync failed: {e}; stopping so that recovery can decide what is durable"
                );
            }
            stats.fsyncs.fetch_add(refs.len() as u64, Ordering::Relaxed);
            stats.sync_rounds.fetch_add(1, Ordering::Relaxed);
            if by_filesystem {
                stats.syncfs_rounds.fetch_add(1, Ordering::Relaxed);
            }
            for (f, len) in files.iter().zip(lengths) {
                record_synced_length(f.path(), len);
            }
        }
        for j in jobs {
            for (progress, end, batches) in j.logs {
                progress.durable.fetch_max(end, Ordering::SeqCst);
                stats.batches_synced.fetch_add(batches, Ordering::Relaxed);
            }
            for w in j.waiters {
                w.mark_durable();
            }
        }
    }
}

/// Checkpoints queued for the checkpointer at most; more are dropped (later ones cover them).
const CHECKPOINT_QUEUE_MAX: usize = 4096;

/// The checkpointer thread: writes the recovery-point checkpoints logs prepared on their append
/// path, off that path and off their locks, until it receives `None` (the pipeline stops). A
/// job whose log has since checkpointed by itself or changed its segments (a newer generation)
/// is dropped; so is one whose index files are gone
/// (the segment was deleted). Failures are logged: a missing checkpoint only makes the next
/// recovery scan more.
fn run_checkpointer(storage: Arc<dyn Storage>, rx: Receiver<Option<CheckpointJob>>) {
    while let Ok(Some(job)) = rx.recv() {
        let _held = job
            .progress
            .checkpoint_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if job.progress.checkpoint_generation.load(Ordering::SeqCst) != job.generation {
            continue;
        }
        match job.write(storage.as_ref()) {
            Ok(()) => {}
            Err(CheckpointWriteError::Index(path, e)) => {
                tracing::debug!(path = ?path, error = %e, "index of a checkpoint unavailable; skipped");
            }
            Err(CheckpointWriteError::Checkpoint(e)) => {
                tracing::warn!(dir = ?job.dir, error = %e, "writing a recovery-point checkpoint");
            }
        }
    }
}

/// Fault injection for crash tests of whole processes (`strata-chaos`): when this variable is
/// set, after every fdatasync the length each segment file had before it is written beside the
/// file (`<file>.synced`; not synced itself, so it survives a SIGKILL but not a power loss).
/// A test can then drop exactly the unsynced tail after a SIGKILL, as a power loss would.
pub const RECORD_SYNCED_ENV: &str = "STRATA_FAULT_RECORD_SYNCED";

fn record_synced_length(path: &std::path::Path, len: Option<u64>) {
    let (Some(len), Some(name)) = (len, path.file_name()) else {
        return;
    };
    if path.extension().is_none_or(|e| e != "log") {
        return;
    }
    let mut side = name.to_os_string();
    side.push(".synced");
    let _ = std::fs::write(path.with_file_name(side), len.to_string());
}
