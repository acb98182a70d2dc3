//! `Log`: one partition's ordered segments on one disk. Append, read, truncate, roll, retain,
//! checkpoint, close.
//!
//! Concurrency: a `Log` is `Send + Sync`. Appends take the log's mutex briefly (validation and
//! CRC checks happen before it is taken) and never wait on the disk under it: the bytes are
//! written by the commit pipeline, and a due recovery-point checkpoint is prepared in memory and
//! written by the pipeline's checkpointer thread. Reads take the mutex to locate the segment,
//! consult its index and read the few batch headers between the index entry and the offset
//! (page-cache reads); the record bytes are sent later from the file without it. Operations that
//! change segments (roll, truncation, retention, compaction, close) do their file work under it,
//! and those that write a checkpoint take the checkpoint lock first.
//!
//! Invariants:
//! - `log_start_offset <= log_end_offset`; segments are ordered by base offset and the active
//!   (last) segment is the only one that grows;
//! - offsets are assigned densely for client appends: each batch's base offset is the previous
//!   batch's last offset + 1;
//! - `recovery_point <= written <= log_end_offset`: reads never see bytes the pipeline has not
//!   finished writing, and the recovery point only covers fdatasync'ed batches;
//! - a truncation or a segment deletion never races a pending write of the same bytes: the log
//!   drains its queued writes first.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};

use crate::batch::{self, BatchHeader, Origin};
use crate::checkpoint::PartitionCheckpoint;
use crate::completion::Completion;
use crate::config::LogConfig;
use crate::error::{BatchError, LogError, Result};
use crate::flush::{FlushPolicy, LogProgress, PipelineHandle, WriteRequest};
use crate::io::{DirLock, MmapView, Storage, StorageFile};
use crate::leader_epoch::LeaderEpochCache;
use crate::offset::{LeaderEpoch, Offset};
use crate::record::{RecordReader, StoredRecord};
use crate::recovery::{self, CLEAN_SHUTDOWN_FILE, RecoveryMode, RecoveryReport};
use crate::segment::LogSegment;

/// What an append assigned, and how to wait for it.
#[derive(Debug, Clone)]
pub struct AppendInfo {
    /// Offset of the first record appended.
    pub first_offset: Offset,
    /// Offset of the last record appended.
    pub last_offset: Offset,
    /// Largest record timestamp among the batches.
    pub max_timestamp: i64,
    /// Number of batches appended.
    pub batches: usize,
    /// Bytes appended.
    pub bytes: usize,
    /// Wait for [`crate::Stage::Written`] or [`crate::Stage::Durable`] on it.
    pub completion: Completion,
}

/// Limits of one read.
#[derive(Debug, Clone, Copy)]
pub struct ReadLimits {
    /// Bytes to return at most (whole batches only).
    pub max_bytes: usize,
    /// Do not return batches starting at or after this offset (the high watermark for
    /// consumers). `None`: up to everything written.
    pub max_offset: Option<Offset>,
    /// Return the first batch even if it alone exceeds `max_bytes` (KIP-74).
    pub min_one_batch: bool,
}

impl ReadLimits {
    /// Up to `max_bytes` of whole batches, at least one.
    pub fn bytes(max_bytes: usize) -> ReadLimits {
        ReadLimits {
            max_bytes,
            max_offset: None,
            min_one_batch: true,
        }
    }
}

/// A range of a segment file holding whole record batches, ready to be sent with
/// sendfile/splice from [`FileSlice::raw_fd`], mapped with [`FileSlice::map`], or copied with
/// [`FileSlice::read_to_vec`].
#[derive(Debug, Clone)]
pub struct FileSlice {
    file: Arc<dyn StorageFile>,
    position: u64,
    len: usize,
    first_offset: Offset,
    next_offset: Offset,
    verified: Arc<crate::verification::VerifiedBytes>,
}

/// What [`FileSlice::verify`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// Every batch was read and checked.
    Checked,
    /// The bytes were checked by an earlier read and have not changed since (the file is
    /// unchanged and the range still in the page cache): not read again.
    Trusted,
}

impl FileSlice {
    /// The file's descriptor (`None` on the simulated disk).
    pub fn raw_fd(&self) -> Option<std::os::fd::RawFd> {
        self.file.raw_fd()
    }

    /// The file.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// Byte position of the first batch in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the slice is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Base offset of the first batch.
    pub fn first_offset(&self) -> Offset {
        self.first_offset
    }

    /// Offset after the last batch.
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// Checks every batch of the slice against its length framing and CRC-32C: bytes that
    /// changed on the disk since they were written and validated. `Err` names the first bad
    /// batch: its base offset as the slice's framing gives it (the slice's first offset if the
    /// framing itself is broken) and its byte position in the file.
    ///
    /// Bytes an earlier read checked are not checked again while the file is unchanged and
    /// they are still in the page cache ([`Verification::Trusted`]; see the `verification`
    /// module for what that covers).
    pub fn verify(&self) -> std::result::Result<Verification, (Offset, u64)> {
        use crate::verification::Lookup;
        let stamp = match self.verified.lookup(self.raw_fd(), self.position, self.len) {
            Lookup::Trusted => return Ok(Verification::Trusted),
            Lookup::Check(stamp) => stamp,
        };
        self.check()?;
        self.verified.checked(self.position, self.len, stamp);
        Ok(Verification::Checked)
    }

    /// Reads and checks every batch of the slice (see [`FileSlice::verify`]).
    fn check(&self) -> std::result::Result<(), (Offset, u64)> {
        let owned;
        let map = self.map().ok().flatten();
        let bytes: &[u8] = match &map {
            Some(m) => m.bytes(),
            None => {
                owned = self
                    .read_to_vec()
                    .map_err(|_| (self.first_offset, self.position))?;
                &owned
            }
        };
        let framed = crate::batch::frame(bytes, usize::MAX)
            .map_err(|_| (self.first_offset, self.position))?;
        let mut covered = 0usize;
        // Offsets are outside the CRC: they must run from the slice's first offset, rising,
        // below its end (compaction may leave gaps between batches).
        let mut next = self.first_offset;
        for (pos, h) in framed {
            let at = (h.base_offset, self.position + pos as u64);
            let one = bytes.get(pos..pos + h.size()).ok_or(at)?;
            let offsets_fit = if pos == 0 {
                h.base_offset == self.first_offset
            } else {
                h.base_offset >= next
            } && h.last_offset() < self.next_offset;
            if crate::batch::compute_crc(one) != h.crc
                || pos != covered
                || h.magic != 2
                || !offsets_fit
            {
                return Err(if pos == 0 {
                    (self.first_offset, at.1)
                } else {
                    (next, at.1)
                });
            }
            covered = pos + h.size();
            next = h.next_offset();
        }
        if covered != bytes.len() {
            return Err((self.first_offset, self.position + covered as u64));
        }
        Ok(())
    }

    /// A read-only memory map of the slice's bytes (`None` on the simulated disk). The map
    /// starts at a page boundary; [`MappedSlice::bytes`] gives exactly the slice.
    pub fn map(&self) -> std::io::Result<Option<MappedSlice>> {
        let page = 4096u64;
        let start = self.position - self.position % page;
        let skip = (self.position - start) as usize;
        Ok(self
            .file
            .map(start, skip + self.len)?
            .map(|map| MappedSlice {
                map,
                skip,
                len: self.len,
            }))
    }

    /// Copies the bytes out (for tests, tools, and backends without a descriptor).
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; self.len];
        let n = self.file.read_at(&mut buf, self.position)?;
        buf.truncate(n);
        Ok(buf)
    }
}

/// A memory-mapped view of a [`FileSlice`].
#[derive(Debug)]
pub struct MappedSlice {
    map: MmapView,
    skip: usize,
    len: usize,
}

impl MappedSlice {
    /// The slice's bytes, in place.
    pub fn bytes(&self) -> &[u8] {
        self.map.get(self.skip..self.skip + self.len).unwrap_or(&[])
    }
}

/// What [`Log::try_append`] did.
#[derive(Debug)]
pub enum TryAppend {
    /// Appended, as [`Log::append`] would have.
    Appended(AppendInfo),
    /// Nothing appended: it would have waited on the disk. The records, untouched.
    WouldWait(Bytes),
}

impl TryAppend {
    /// The append's info; `append_inner` only answers `WouldWait` when asked not to wait.
    fn expect_appended(self) -> AppendInfo {
        match self {
            TryAppend::Appended(info) => info,
            TryAppend::WouldWait(_) => unreachable!("an append that may wait does not give up"),
        }
    }
}

/// Result of a read.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// The batches, or `None` if there is nothing to return at this offset yet.
    pub slice: Option<FileSlice>,
    /// The log start offset when the read was made.
    pub log_start_offset: Offset,
    /// The log end offset when the read was made.
    pub log_end_offset: Offset,
}

/// Counts of a retention or compaction pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanupStats {
    /// Segments removed.
    pub segments_deleted: usize,
    /// Bytes removed.
    pub bytes_deleted: u64,
}

/// The index entries of one segment, as [`Log::segment_indexes`] reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentIndexes {
    /// The segment's base offset.
    pub base_offset: Offset,
    /// Its offset index entries.
    pub offsets: Vec<crate::index::offset_index::OffsetPosition>,
    /// Its time index entries.
    pub timestamps: Vec<crate::index::time_index::TimestampOffset>,
}

/// Batch boundaries remembered for the recovery-point checkpoint (see `LogInner::boundaries`).
const BOUNDARIES_MAX: usize = 1024;

#[derive(Debug)]
struct LogInner {
    config: LogConfig,
    segments: BTreeMap<Offset, LogSegment>,
    log_start_offset: Offset,
    log_end_offset: Offset,
    epochs: LeaderEpochCache,
    checkpoint_recovery_point: Offset,
    /// (segment base, byte position) of `checkpoint_recovery_point`, when known: lets an append
    /// tell without reading the disk that no checkpoint is due.
    checkpoint_position: Option<(Offset, u64)>,
    /// Batch boundaries of recent appends, oldest first: (offset, segment base, byte position)
    /// of where each append ended (and where a segment began), so that the position of the
    /// recovery point is known without reading the disk. At most [`BOUNDARIES_MAX`]; cleared
    /// when a truncation gives offsets other positions.
    boundaries: std::collections::VecDeque<(Offset, Offset, u64)>,
    /// The last recovery point whose (segment base, byte position) had to be read from the
    /// disk (not among `boundaries`), so that it is not read again while it does not move.
    durable_position: Option<(Offset, Offset, u64)>,
    /// Counts the changes to existing segments (truncation, deletion, a compaction's swap; not
    /// a roll, which only adds one): a compaction pass that read the segments without the lock
    /// swaps its result in only if this has not moved since.
    structure_generation: u64,
    /// The active segment was created by a roll that left its directory entry unsynced: the
    /// next write to it carries the directory to the pipeline to fsync.
    entry_unsynced: bool,
    closed: bool,
}

/// One partition's log. See the module docs.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    pipeline: PipelineHandle,
    progress: Arc<LogProgress>,
    inner: Mutex<LogInner>,
    report: RecoveryReport,
    /// The directory's lock, held from open until close (or drop): one owner per directory.
    dir_lock: Mutex<Option<DirLock>>,
    /// Held by a compaction pass from its plan to its swap: one pass per log at a time.
    cleaner: Mutex<()>,
}

impl LogInner {
    fn active(&self) -> &LogSegment {
        // Invariant: a log always has at least one segment.
        self.segments
            .values()
            .next_back()
            .expect("a log has at least one segment")
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log has at least one segment")
    }

    fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it if the last shutdown was not
    /// clean. Writes go through `pipeline`, which also decides the storage backend.
    pub fn open(
        dir: impl AsRef<Path>,
        config: LogConfig,
        pipeline: &PipelineHandle,
    ) -> Result<Log> {
        Log::open_with_mode(dir, config, pipeline, RecoveryMode::Strict)
    }

    /// Like [`Log::open`] with an explicit [`RecoveryMode`].
    pub fn open_with_mode(
        dir: impl AsRef<Path>,
        config: LogConfig,
        pipeline: &PipelineHandle,
        mode: RecoveryMode,
    ) -> Result<Log> {
        let storage = pipeline.storage().clone();
        Log::open_locked(dir.as_ref(), config, pipeline, mode, |dir| {
            storage.lock_dir(dir)
        })
    }

    /// Like [`Log::open_with_mode`] for a log directory inside a directory the caller holds
    /// locked (`parent`, from [`crate::io::lock_dir`]; a broker's data directory): the log's
    /// lock is covered by the parent's ([`DirLock::cover`]) and costs no file descriptor, which
    /// matters with thousands of logs. One owner per directory still holds: this process's
    /// other opens of `dir` are refused by the parent's set, other processes by the parent's
    /// lock.
    #[cfg(feature = "internals")]
    pub fn open_under(
        parent: &DirLock,
        dir: impl AsRef<Path>,
        config: LogConfig,
        pipeline: &PipelineHandle,
        mode: RecoveryMode,
    ) -> Result<Log> {
        let storage = pipeline.storage().clone();
        Log::open_locked(dir.as_ref(), config, pipeline, mode, |dir| {
            storage
                .create_dir_all(dir)
                .map_err(|source| crate::io::LockError::Io {
                    dir: dir.to_path_buf(),
                    source,
                })?;
            parent.cover(dir)
        })
    }

    fn open_locked(
        dir: &Path,
        config: LogConfig,
        pipeline: &PipelineHandle,
        mode: RecoveryMode,
        lock: impl FnOnce(&Path) -> std::result::Result<DirLock, crate::io::LockError>,
    ) -> Result<Log> {
        let dir = dir.to_path_buf();
        config.validate().map_err(|reason| LogError::Malformed {
            path: dir.clone(),
            reason,
        })?;
        let storage = pipeline.storage().clone();
        // Lock before recovery reads or cuts anything: a second owner changes nothing.
        let dir_lock = lock(&dir).map_err(LogError::from_lock)?;
        let rec = recovery::recover(&storage, &dir, &config, mode)?;
        tracing::debug!(dir = ?dir, report = ?rec.report, leo = %rec.log_end_offset, "log opened");
        let progress = Arc::new(LogProgress::new(
            pipeline.new_log_id(),
            rec.log_end_offset,
            config.flush,
        ));
        // The log end offset is the end of the active segment.
        let checkpoint_position = rec
            .segments
            .iter()
            .next_back()
            .map(|(base, seg)| (*base, seg.size()));
        Ok(Log {
            dir,
            storage,
            pipeline: pipeline.clone(),
            progress,
            inner: Mutex::new(LogInner {
                config,
                segments: rec.segments,
                log_start_offset: rec.log_start_offset,
                log_end_offset: rec.log_end_offset,
                epochs: rec.epochs,
                checkpoint_recovery_point: rec.log_end_offset,
                checkpoint_position,
                boundaries: std::collections::VecDeque::new(),
                durable_position: None,
                structure_generation: 0,
                entry_unsynced: false,
                closed: false,
            }),
            report: rec.report,
            dir_lock: Mutex::new(Some(dir_lock)),
            cleaner: Mutex::new(()),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, LogInner>> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.closed {
            return Err(LogError::Closed);
        }
        if self.progress.failed.load(Ordering::SeqCst) {
            return Err(LogError::io(
                &self.dir,
                std::io::Error::other("a write to this log failed; reopen it to recover"),
            ));
        }
        Ok(g)
    }

    /// The checkpoint lock, then the log's lock: for every operation that writes a checkpoint
    /// itself or changes segments (so that no checkpoint prepared before it is written after
    /// it).
    fn lock_structure(&self) -> Result<(MutexGuard<'_, ()>, MutexGuard<'_, LogInner>)> {
        let checkpoint = self
            .progress
            .checkpoint_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Ok((checkpoint, self.lock()?))
    }

    /// The lock a compaction pass holds from start to end.
    pub(crate) fn cleaner_lock(&self) -> MutexGuard<'_, ()> {
        self.cleaner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a write to this log failed: it refuses appends and reads until reopened, which
    /// recovers it.
    pub fn is_offline(&self) -> bool {
        self.progress.failed.load(Ordering::SeqCst)
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What recovery did when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> Offset {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log_end_offset
    }

    /// The first offset still in the log.
    pub fn log_start_offset(&self) -> Offset {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log_start_offset
    }

    /// Everything below this offset is written to the file (readable).
    pub fn written_offset(&self) -> Offset {
        Offset(self.progress.written.load(Ordering::SeqCst))
    }

    /// The recovery point: everything below it is durable (fdatasync'ed).
    pub fn recovery_point(&self) -> Offset {
        Offset(self.progress.durable.load(Ordering::SeqCst))
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .size_bytes()
    }

    /// Number of segments.
    pub fn segment_count(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .segments
            .len()
    }

    /// Base offsets of the segments, in order.
    pub fn segment_base_offsets(&self) -> Vec<Offset> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .segments
            .keys()
            .copied()
            .collect()
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .config
            .clone()
    }

    /// Replaces the configuration (topic config changes). Applies to later appends.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate().map_err(|reason| LogError::Malformed {
            path: self.dir.clone(),
            reason,
        })?;
        let mut g = self.lock()?;
        *self
            .progress
            .policy
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = config.flush;
        g.config = config;
        Ok(())
    }

    /// A copy of the leader epoch cache.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn leader_epochs(&self) -> LeaderEpochCache {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .epochs
            .clone()
    }

    /// OffsetForLeaderEpoch: the largest epoch <= `epoch` and its end offset.
    pub fn end_offset_for_epoch(&self, epoch: LeaderEpoch) -> Option<(LeaderEpoch, Offset)> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.epochs.end_offset_for(epoch, g.log_end_offset)
    }

    /// Appends client batches: validates them, assigns offsets from the log end offset, stamps
    /// `leader_epoch` into each, and queues the write. Nothing is written if any batch is
    /// invalid. The returned [`AppendInfo::completion`] tells when the batches are written and
    /// when they are durable.
    ///
    /// The record bytes are not copied: bytes this call owns alone (a `BytesMut`, a `Vec`) are
    /// stamped in place; bytes shared with others (a slice of a whole request's buffer) are
    /// written as they arrived, each batch's few stamped header bytes ahead of them in a
    /// separate buffer.
    ///
    /// It may wait on the disk: for room in the commit pipeline's queue (backpressure), for a
    /// segment roll's files, for a leader epoch checkpoint. From async code, try
    /// [`Log::try_append`] first.
    pub fn append(&self, records: impl Into<Bytes>, leader_epoch: LeaderEpoch) -> Result<AppendInfo> {
        self.append_inner(records.into(), Origin::Client, leader_epoch, true)
            .map(TryAppend::expect_appended)
    }

    /// [`Log::append`] if it can be done without waiting on the disk: there is room in the
    /// commit pipeline's queue, no segment roll is due and no new leader epoch is to be saved.
    /// Otherwise nothing happens and the records come back ([`TryAppend::WouldWait`]) for the
    /// caller to append with [`Log::append`] where waiting is fine (a blocking thread).
    pub fn try_append(&self, records: impl Into<Bytes>, leader_epoch: LeaderEpoch) -> Result<TryAppend> {
        self.append_inner(records.into(), Origin::Client, leader_epoch, false)
    }

    /// Appends batches copied from a leader, keeping their offsets and leader epochs. Their base
    /// offsets must not go below the log end offset. The bytes are written as they are.
    pub fn append_as_follower(&self, records: impl Into<Bytes>) -> Result<AppendInfo> {
        self.append_inner(records.into(), Origin::Replication, LeaderEpoch::UNKNOWN, true)
            .map(TryAppend::expect_appended)
    }

    /// [`Log::append_as_follower`] if it can be done without waiting on the disk (see
    /// [`Log::try_append`]).
    pub fn try_append_as_follower(&self, records: impl Into<Bytes>) -> Result<TryAppend> {
        self.append_inner(records.into(), Origin::Replication, LeaderEpoch::UNKNOWN, false)
    }

    fn append_inner(
        &self,
        records: Bytes,
        origin: Origin,
        leader_epoch: LeaderEpoch,
        may_wait: bool,
    ) -> Result<TryAppend> {
        // CRCs are checked before the lock is taken: appends to one log validate in parallel.
        let mut headers = match batch::validate_all(&records, origin, usize::MAX) {
            Ok(h) => h,
            Err(e) => return Err(LogError::InvalidBatch(e)),
        };
        let total = records.len();
        // Room in the pipeline's queue is reserved before the lock: an append waiting for it
        // (backpressure) does not keep reads and other appends of this log waiting.
        let room = if may_wait {
            self.pipeline.reserve(total)
        } else {
            match self.pipeline.try_reserve(total) {
                Some(room) => room,
                None => return Ok(TryAppend::WouldWait(records)),
            }
        };
        let mut g = self.lock()?;
        let max_message_bytes = g.config.max_message_bytes;
        if let Some((_, h)) = headers.iter().find(|(_, h)| h.size() > max_message_bytes) {
            return Err(LogError::BatchTooLarge {
                size: h.size(),
                limit: max_message_bytes,
            });
        }
        let leo = g.log_end_offset;

        // Assign offsets and epochs (to the headers; the bytes are stamped below).
        match origin {
            Origin::Client => {
                let mut next = leo;
                for (_, h) in headers.iter_mut() {
                    h.base_offset = next;
                    h.partition_leader_epoch = leader_epoch;
                    next = h.next_offset();
                }
            }
            Origin::Replication => {
                let mut expected = leo;
                for (_, h) in &headers {
                    if h.base_offset < expected {
                        return Err(LogError::InvalidBatch(BatchError::NonMonotonic {
                            base_offset: h.base_offset,
                            expected,
                        }));
                    }
                    expected = h.next_offset();
                }
            }
        }
        let first = headers
            .first()
            .map(|(_, h)| *h)
            .ok_or(LogError::InvalidBatch(BatchError::Empty))?;
        let last = headers
            .last()
            .map(|(_, h)| *h)
            .ok_or(LogError::InvalidBatch(BatchError::Empty))?;
        let max_timestamp = headers
            .iter()
            .map(|(_, h)| h.max_timestamp)
            .max()
            .unwrap_or(-1);
        let new_epoch = headers.iter().any(|(_, h)| {
            let e = h.partition_leader_epoch;
            e.0 >= 0 && g.epochs.latest_epoch().is_none_or(|l| l < e)
        });
        if !may_wait && (new_epoch || Log::roll_due(&g, &last, total as u64, max_timestamp)) {
            return Ok(TryAppend::WouldWait(records));
        }
        let data = match origin {
            Origin::Client => stamped(records, &headers, leader_epoch)?,
            Origin::Replication => vec![records],
        };
        assert_eq!(
            data.iter().map(Bytes::len).sum::<usize>(),
            total,
            "stamping keeps every byte"
        );

        self.maybe_roll(&mut g, &first, &last, total as u64, max_timestamp)?;

        // Leader epochs: a batch with a new epoch starts that epoch.
        let mut epochs_changed = false;
        for (_, h) in &headers {
            let e = h.partition_leader_epoch;
            if e.0 >= 0 && g.epochs.latest_epoch().is_none_or(|l| l < e) {
                epochs_changed |= g.epochs.assign(e, h.base_offset);
            }
        }
        if epochs_changed {
            g.epochs.save(self.storage.as_ref(), &self.dir)?;
        }

        let segment = g.active_mut();
        let position = segment.size();
        segment.record_append(position, &headers);
        let file = segment.file().clone();
        let segment_base = segment.base_offset();
        if position == 0 {
            g.boundaries
                .push_back((first.base_offset, segment_base, position));
        }
        g.boundaries
            .push_back((last.next_offset(), segment_base, position + total as u64));
        while g.boundaries.len() > BOUNDARIES_MAX {
            g.boundaries.pop_front();
        }
        // Offsets only grow: the appended batches start at or after the old log end offset.
        assert!(
            first.base_offset >= leo && last.next_offset() > leo,
            "append moves the log end offset forward"
        );
        g.log_end_offset = last.next_offset();

        let (completion, inner) = Completion::new();
        let sync_dir = std::mem::take(&mut g.entry_unsynced).then(|| self.dir.clone());
        let request = WriteRequest {
            file,
            position,
            data,
            len: total,
            batches: headers.len() as u32,
            end_offset: last.next_offset(),
            progress: self.progress.clone(),
            completion: inner,
            sync_dir,
        };
        // Sent under the lock so that the pipeline sees this log's writes in position order.
        self.pipeline.send_write(request, room)?;
        self.maybe_checkpoint(&mut g)?;
        self.debug_assert_progress(&g);
        drop(g);
        Ok(TryAppend::Appended(AppendInfo {
            first_offset: first.base_offset,
            last_offset: last.last_offset(),
            max_timestamp,
            batches: headers.len(),
            bytes: total,
            completion,
        }))
    }

    /// Whether appending `bytes` (ending with `last`, newest timestamp `max_timestamp`) rolls
    /// a new segment first.
    fn roll_due(g: &LogInner, last: &BatchHeader, bytes: u64, max_timestamp: i64) -> bool {
        let active = g.active();
        if active.size() == 0 {
            return false;
        }
        let too_big = active.size() + bytes > g.config.segment_bytes;
        let too_old = active
            .rolling_timestamp()
            .is_some_and(|t| max_timestamp.saturating_sub(t) > g.config.segment_ms);
        let offset_overflow = last.last_offset().0 - active.base_offset().0 > i64::from(u32::MAX);
        too_big || too_old || offset_overflow || active.indexes_full()
    }

    fn maybe_roll(
        &self,
        g: &mut LogInner,
        first: &BatchHeader,
        last: &BatchHeader,
        bytes: u64,
        max_timestamp: i64,
    ) -> Result<()> {
        if Log::roll_due(g, last, bytes, max_timestamp) {
            // The new segment's directory entry is made durable by the pipeline with its first
            // write (the one this append makes), not here on the append path.
            self.roll_locked(g, first.base_offset, false)?;
            g.entry_unsynced = true;
        }
        Ok(())
    }

    /// Rolls a new active segment at `new_base`. `sync_entry`: fsync the directory now;
    /// otherwise the caller makes the first write to the new segment carry the directory to
    /// the pipeline (`LogInner::entry_unsynced`).
    fn roll_locked(&self, g: &mut LogInner, new_base: Offset, sync_entry: bool) -> Result<()> {
        let new_base = new_base.max(g.log_end_offset);
        if g.active().size() == 0 {
            return Ok(());
        }
        g.active_mut().trim_indexes()?;
        let limits = recovery::limits(&g.config);
        let seg = if sync_entry {
            LogSegment::create(&self.storage, &self.dir, new_base, limits)?
        } else {
            LogSegment::create_entry_unsynced(&self.storage, &self.dir, new_base, limits)?
        };
        g.segments.insert(new_base, seg);
        // The rolled segment's tail is made durable by the pipeline (in order, after its queued
        // writes), whatever the flush policy, as Kafka flushes a segment when it rolls.
        let _ = self.pipeline.flush(&self.progress)?;
        tracing::debug!(dir = ?self.dir, base = %new_base, "rolled a new segment");
        Ok(())
    }

    /// Rolls a new active segment now (if the active one is not empty).
    pub fn roll(&self) -> Result<()> {
        let mut g = self.lock()?;
        let leo = g.log_end_offset;
        self.roll_locked(&mut g, leo, true)
    }

    /// Writes the recovery point checkpoint if enough has become durable since the last one.
    fn maybe_checkpoint(&self, g: &mut LogInner) -> Result<()> {
        let durable = self.recovery_point();
        if durable <= g.checkpoint_recovery_point {
            return Ok(());
        }
        // Only checkpoint when the recovery point has moved past the threshold since the last
        // checkpoint, or left its segment. Appends ask this every time, so the common answer
        // ("not yet") must not touch the disk: the active segment's size bounds how far the
        // recovery point can be, and the recovery point's own position is looked up (reading
        // batch headers) only when that bound is past the threshold and the point moved.
        let threshold = g.config.recovery_checkpoint_bytes;
        let (active_base, active_size) = (g.active().base_offset(), g.active().size());
        let cp_in_active = g.checkpoint_recovery_point >= active_base;
        if cp_in_active {
            let cp_pos = match g.checkpoint_position {
                Some((base, pos)) if base == active_base => pos,
                _ => match self.position_of(g, g.checkpoint_recovery_point)? {
                    Some((pos, base)) => {
                        g.checkpoint_position = Some((base, pos));
                        pos
                    }
                    None => return Ok(()),
                },
            };
            if active_size.saturating_sub(cp_pos) < threshold {
                return Ok(());
            }
            while g.boundaries.front().is_some_and(|(o, _, _)| *o < durable) {
                g.boundaries.pop_front();
            }
            let known = Log::boundary(g, durable).map(|(_, pos)| pos);
            let pos = match (known, g.durable_position) {
                (Some(pos), _) => pos,
                (None, Some((offset, base, pos))) if offset == durable && base == active_base => {
                    pos
                }
                _ => match self.position_of(g, durable)? {
                    Some((pos, base)) => {
                        g.durable_position = Some((durable, base, pos));
                        pos
                    }
                    None => return Ok(()),
                },
            };
            if pos.saturating_sub(cp_pos) < threshold {
                return Ok(());
            }
        }
        self.checkpoint_later(g, durable)
    }

    /// (segment base, position) of `offset` if it is a boundary of a recent append in the
    /// active segment (the only one whose positions nothing rewrites: compaction rewrites
    /// closed segments, truncation clears the boundaries).
    fn boundary(g: &LogInner, offset: Offset) -> Option<(Offset, u64)> {
        let active = g.active().base_offset();
        let i = g.boundaries.partition_point(|(o, _, _)| *o < offset);
        g.boundaries
            .iter()
            .skip(i)
            .take_while(|(o, _, _)| *o == offset)
            .find(|(_, base, _)| *base == active)
            .map(|(_, base, pos)| (*base, *pos))
    }

    /// (segment base, position) of the batch boundary at `offset` (`offset` at a segment end maps
    /// to the end of that segment).
    fn position_of(&self, g: &LogInner, offset: Offset) -> Result<Option<(u64, Offset)>> {
        let Some((base, seg)) = g.segments.range(..=offset).next_back() else {
            return Ok(None);
        };
        if offset >= seg.next_offset() {
            return Ok(Some((seg.size(), *base)));
        }
        Ok(seg
            .find_batch(offset, Offset(i64::MAX))?
            .and_then(|(pos, h)| (h.base_offset == offset).then_some((pos, *base))))
    }

    /// Writes the checkpoint of `recovery_point` now, under the log's lock (on close, where
    /// nothing else waits). The caller holds the checkpoint lock ([`Log::lock_structure`]).
    fn write_checkpoint(&self, g: &mut LogInner, recovery_point: Offset) -> Result<()> {
        let job = self.checkpoint_job(g, recovery_point)?;
        self.write_checkpoint_job(job)
    }

    /// Prepares the checkpoint of `recovery_point` for the caller to write with
    /// [`Log::write_checkpoint_job`] once it has dropped the log's lock (no disk I/O here). The
    /// caller holds the checkpoint lock ([`Log::lock_structure`]) until the job is written: no
    /// truncation, retention or compaction changes the segment it names meanwhile, and a
    /// checkpoint prepared earlier for the checkpointer is stale from here on.
    fn checkpoint_job(
        &self,
        g: &mut LogInner,
        recovery_point: Offset,
    ) -> Result<Option<crate::flush::CheckpointJob>> {
        let generation = self
            .progress
            .checkpoint_generation
            .fetch_add(1, Ordering::SeqCst)
            + 1;
        let Some((checkpoint, seg_base)) = self.prepare_checkpoint(g, recovery_point)? else {
            return Ok(None);
        };
        let index_files = Log::publish_indexes_of(g, seg_base)?;
        self.note_checkpoint(g, &checkpoint);
        Ok(Some(crate::flush::CheckpointJob {
            progress: self.progress.clone(),
            dir: self.dir.clone(),
            checkpoint,
            index_files,
            generation,
        }))
    }

    /// Writes a checkpoint prepared by [`Log::checkpoint_job`] (index files fdatasync'ed, then
    /// the checkpoint file).
    fn write_checkpoint_job(&self, job: Option<crate::flush::CheckpointJob>) -> Result<()> {
        match job {
            Some(job) => job
                .write(self.storage.as_ref())
                .map_err(crate::flush::CheckpointWriteError::into_log_error),
            None => Ok(()),
        }
    }

    /// Publishes the index entries of the segment at `seg_base` to their files (no disk I/O)
    /// and returns those files' paths, for a checkpoint's writer to fdatasync before the
    /// checkpoint names the entries.
    fn publish_indexes_of(g: &LogInner, seg_base: Offset) -> Result<Vec<PathBuf>> {
        let mut index_files = Vec::new();
        if let Some(seg) = g.segments.get(&seg_base) {
            seg.publish_indexes()?;
            index_files.push(seg.offset_index().path().to_path_buf());
            index_files.push(seg.time_index().path().to_path_buf());
        }
        Ok(index_files)
    }

    /// Prepares the checkpoint of `recovery_point` (due on the append path) and hands it to the
    /// pipeline's checkpointer, which writes it off this path and off the log's lock. Counted
    /// as written from here on: the next one is due a threshold further.
    fn checkpoint_later(&self, g: &mut LogInner, recovery_point: Offset) -> Result<()> {
        let generation = self.progress.checkpoint_generation.load(Ordering::SeqCst);
        let Some((checkpoint, seg_base)) = self.prepare_checkpoint(g, recovery_point)? else {
            return Ok(());
        };
        // No disk I/O here: the checkpointer's fdatasync of the index files makes these
        // entries durable before its checkpoint names them.
        let index_files = Log::publish_indexes_of(g, seg_base)?;
        self.note_checkpoint(g, &checkpoint);
        self.pipeline.checkpoint_later(crate::flush::CheckpointJob {
            progress: self.progress.clone(),
            dir: self.dir.clone(),
            checkpoint,
            index_files,
            generation,
        });
        Ok(())
    }

    fn note_checkpoint(&self, g: &mut LogInner, checkpoint: &PartitionCheckpoint) {
        g.checkpoint_recovery_point = checkpoint.recovery_point;
        g.checkpoint_position = Some((checkpoint.segment_base, checkpoint.position));
        // Truncation and compaction, which checkpoint, can give an offset another position.
        g.durable_position = None;
    }

    /// The checkpoint of `recovery_point` (clamped to the log end offset) and the base of the
    /// segment it names, from memory (reading batch headers only when the position is not a
    /// boundary of a recent append); `None` for a log without segments.
    fn prepare_checkpoint(
        &self,
        g: &LogInner,
        recovery_point: Offset,
    ) -> Result<Option<(PartitionCheckpoint, Offset)>> {
        let recovery_point = recovery_point.min(g.log_end_offset);
        let Some((base, seg)) = g
            .segments
            .range(..=recovery_point)
            .next_back()
            .map(|(b, s)| (*b, s))
        else {
            return Ok(None);
        };
        // A boundary is in the active segment, which is `seg` whenever one is found.
        let (position, seg_base) = if let Some((b, pos)) = Log::boundary(g, recovery_point) {
            // A recent append ended here: its position is known, even if the batch after it
            // is still on its way to the file.
            (pos, b)
        } else if recovery_point >= seg.next_offset() {
            (seg.size(), base)
        } else {
            match seg.find_batch(recovery_point, Offset(i64::MAX))? {
                Some((pos, h)) if h.base_offset == recovery_point => (pos, base),
                // Not at a batch boundary (a gap left by compaction): use the segment start.
                _ => (0, base),
            }
        };
        let recovery_point = if position == 0 {
            seg_base.min(recovery_point)
        } else {
            recovery_point
        };
        let index_entries = seg
            .offset_index()
            .entries()
            .iter()
            .filter(|e| u64::from(e.position) < position.max(1))
            .count();
        let time_index_entries = seg
            .time_index()
            .entries()
            .iter()
            .filter(|e| e.offset < recovery_point)
            .count();
        let checkpoint = PartitionCheckpoint {
            recovery_point,
            segment_base: seg_base,
            position,
            index_entries: if position == 0 { 0 } else { index_entries },
            time_index_entries: if position == 0 { 0 } else { time_index_entries },
            log_start_offset: g.log_start_offset,
        };
        Ok(Some((checkpoint, seg_base)))
    }

    /// Asks for everything appended so far to be made durable, without waiting: the returned
    /// completion is durable once it is. For a caller that must not confirm a batch already in
    /// the log (an idempotent producer's retry) before that batch is durable.
    pub fn flush_async(&self) -> Result<Completion> {
        let _g = self.lock()?;
        self.pipeline.flush(&self.progress)
    }

    /// Makes everything appended so far durable and checkpoints the recovery point.
    pub fn flush(&self) -> Result<()> {
        let c = {
            let _g = self.lock()?;
            self.pipeline.flush(&self.progress)?
        };
        c.wait_durable()?;
        let (_checkpoint, mut g) = self.lock_structure()?;
        let rp = self.recovery_point();
        let job = self.checkpoint_job(&mut g, rp)?;
        drop(g);
        self.write_checkpoint_job(job)
    }

    /// Reads whole batches starting with the one that holds `offset`. Returns an empty result
    /// at the log end offset (or at `limits.max_offset`), and [`LogError::OffsetOutOfRange`]
    /// outside `[log_start_offset, log_end_offset]`.
    ///
    /// The log's lock is held only to find the segment and its index entries; the batch
    /// headers are read after it is dropped (appends do not wait for a read's disk access).
    pub fn read(&self, offset: Offset, limits: ReadLimits) -> Result<ReadResult> {
        let max_bytes = limits.max_bytes as u64;
        let (start, end, limit, mut cursor) = {
            let g = self.lock()?;
            let (start, end) = (g.log_start_offset, g.log_end_offset);
            if offset < start || offset > end {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start_offset: start,
                    log_end_offset: end,
                });
            }
            let written = self.written_offset();
            let limit = limits.max_offset.map_or(written, |m| m.min(written));
            // The segment holding `offset` (or the first after it if compaction left a gap).
            let seg = g
                .segments
                .range(..=offset)
                .next_back()
                .or_else(|| g.segments.range(offset..).next())
                .map(|(_, seg)| ReadCursor::of(seg, offset, max_bytes, &g.config));
            (start, end, limit, seg.filter(|_| offset < limit))
        };
        while let Some(c) = cursor {
            if c.base >= limit {
                break;
            }
            c.view
                .verified()
                .before_walk(c.view.file().raw_fd(), u64::from(c.start.position), c.walk);
            if let Some((pos, first)) = c.view.find_batch(c.start, offset, limit)? {
                if first.size() as u64 > max_bytes && !limits.min_one_batch {
                    break;
                }
                let (end_pos, next) =
                    c.view
                        .extend_batches(pos, &first, max_bytes, limit, c.jump)?;
                return Ok(ReadResult {
                    slice: Some(FileSlice {
                        file: c.view.file().clone(),
                        position: pos,
                        len: (end_pos - pos) as usize,
                        first_offset: first.base_offset,
                        next_offset: next,
                        verified: c.view.verified().clone(),
                    }),
                    log_start_offset: start,
                    log_end_offset: end,
                });
            }
            // Nothing at or after `offset` in this segment below the limit (compaction emptied
            // its tail): on to the next one.
            let g = self.lock()?;
            cursor = g
                .segments
                .range((std::ops::Bound::Excluded(c.base), std::ops::Bound::Unbounded))
                .next()
                .map(|(_, seg)| ReadCursor::of(seg, offset, max_bytes, &g.config));
        }
        Ok(ReadResult {
            slice: None,
            log_start_offset: start,
            log_end_offset: end,
        })
    }

    /// Reads records from `offset` on, decoded: up to `limits` of whole batches, decompressed,
    /// without the records before `offset` that share its batch and without transaction
    /// control batches. Empty only when nothing is readable at or after `offset` yet (the
    /// log end offset, or `limits.max_offset`); continue from the last record's offset + 1.
    /// Bytes that do not decode are reported as [`LogError::Corruption`].
    pub fn read_records(&self, offset: Offset, limits: ReadLimits) -> Result<Vec<StoredRecord>> {
        let mut from = offset;
        loop {
            let Some(slice) = self.read(from, limits)?.slice else {
                return Ok(Vec::new());
            };
            let path = slice.file.path();
            let bytes = slice.read_to_vec().map_err(|e| LogError::io(path, e))?;
            let records = RecordReader::new(bytes, from)
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| LogError::Corruption {
                    segment: path.to_path_buf(),
                    position: slice.position,
                    reason: e.to_string(),
                })?;
            // Compaction or control batches can leave whole batches without a record to
            // return; read on rather than answer "nothing" before the end.
            if !records.is_empty() {
                return Ok(records);
            }
            debug_assert!(slice.next_offset > from, "a read moves forward");
            from = slice.next_offset;
        }
    }

    /// The first offset whose record timestamp is >= `timestamp` (ListOffsets by time), with
    /// that record's timestamp; `None` if every record is older.
    ///
    /// The segments to search and where to start in each come from memory under the log's
    /// lock; their headers are read after it is dropped.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(Offset, i64)>> {
        let (candidates, from, written) = {
            let g = self.lock()?;
            let candidates: Vec<_> = g
                .segments
                .values()
                .filter_map(|seg| {
                    seg.timestamp_search_start(timestamp, g.log_start_offset)
                        .map(|start| (seg.view(), start))
                })
                .collect();
            (candidates, g.log_start_offset, self.written_offset())
        };
        for (view, start) in candidates {
            if let Some((off, ts)) = view.find_offset_by_timestamp(start, timestamp, from)?
                && off < written
            {
                return Ok(Some((off, ts)));
            }
        }
        Ok(None)
    }

    /// Removes everything at and after `offset` (a follower diverging from its leader). If
    /// `offset` falls inside a batch, that whole batch goes. Returns the new log end offset.
    pub fn truncate_to(&self, offset: Offset) -> Result<Offset> {
        let (_checkpoint, mut g) = self.lock_structure()?;
        if offset >= g.log_end_offset {
            return Ok(g.log_end_offset);
        }
        // Drain and sync this log's queued writes so no pending write or stale pipeline state
        // refers to the bytes being cut.
        self.pipeline.flush(&self.progress)?.wait_durable()?;
        let first_base = *g.segments.keys().next().ok_or(LogError::Closed)?;
        if offset <= first_base {
            // Everything goes: start afresh at `offset`.
            self.replace_all_segments(&mut g, offset)?;
        } else {
            g.structure_generation += 1;
            let later: Vec<Offset> = g.segments.range(offset..).map(|(b, _)| *b).collect();
            for b in later {
                if let Some(s) = g.segments.remove(&b) {
                    s.delete(self.storage.as_ref())?;
                }
            }
            self.storage
                .sync_dir(&self.dir)
                .map_err(|e| LogError::io(&self.dir, e))?;
            let seg = g.active_mut();
            let new_end = seg.truncate_to(offset)?;
            seg.grow_indexes()?;
            g.log_end_offset = new_end;
            g.log_start_offset = g.log_start_offset.min(new_end);
        }
        let end = g.log_end_offset;
        g.boundaries.clear();
        self.progress.written.store(end.0, Ordering::SeqCst);
        self.progress.durable.store(end.0, Ordering::SeqCst);
        if g.epochs.truncate_from_end(end) {
            g.epochs.save(self.storage.as_ref(), &self.dir)?;
        }
        let job = self.checkpoint_job(&mut g, end)?;
        self.debug_assert_progress(&g);
        drop(g);
        self.write_checkpoint_job(job)?;
        Ok(end)
    }

    /// Discards the whole log and starts it empty at `offset`, which may lie beyond the log
    /// end offset: a follower whose leader no longer holds the records it would fetch next
    /// (they fell out of the leader's retention) starts over at the leader's log start.
    /// Returns the new log end offset (`offset`).
    pub fn truncate_fully_and_start_at(&self, offset: Offset) -> Result<Offset> {
        let (_checkpoint, mut g) = self.lock_structure()?;
        self.pipeline.flush(&self.progress)?.wait_durable()?;
        self.replace_all_segments(&mut g, offset)?;
        g.boundaries.clear();
        self.progress.written.store(offset.0, Ordering::SeqCst);
        self.progress.durable.store(offset.0, Ordering::SeqCst);
        if g.epochs.truncate_from_end(Offset::ZERO) {
            g.epochs.save(self.storage.as_ref(), &self.dir)?;
        }
        let job = self.checkpoint_job(&mut g, offset)?;
        self.debug_assert_progress(&g);
        drop(g);
        self.write_checkpoint_job(job)?;
        Ok(offset)
    }

    /// `recovery_point <= written <= log_end_offset`, checked under the log's lock (the log end
    /// offset cannot move meanwhile; the pipeline only raises the other two, durable after
    /// written). Debug builds and the model tests check it after every append and truncation.
    fn debug_assert_progress(&self, g: &LogInner) {
        if cfg!(debug_assertions) {
            let durable = self.progress.durable.load(Ordering::SeqCst);
            let written = self.progress.written.load(Ordering::SeqCst);
            assert!(
                durable <= written && written <= g.log_end_offset.0,
                "recovery point {durable} <= written {written} <= log end offset {}",
                g.log_end_offset
            );
        }
    }

    /// Deletes every segment and creates one empty segment at `offset`, the new log start and
    /// end. The caller has drained the pipeline and updates progress, epochs and checkpoint.
    fn replace_all_segments(&self, g: &mut LogInner, offset: Offset) -> Result<()> {
        g.structure_generation += 1;
        let limits = recovery::limits(&g.config);
        let all: Vec<Offset> = g.segments.keys().copied().collect();
        for b in all {
            if let Some(s) = g.segments.remove(&b) {
                s.delete(self.storage.as_ref())?;
            }
        }
        let seg = LogSegment::create(&self.storage, &self.dir, offset, limits)?;
        g.segments.insert(offset, seg);
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))?;
        g.log_start_offset = offset;
        g.log_end_offset = offset;
        Ok(())
    }

    /// Moves the log start offset forward to `offset` (DeleteRecords) and removes segments that
    /// lie wholly before it. `offset` may not pass the log end offset.
    pub fn delete_records_before(&self, offset: Offset) -> Result<Offset> {
        let (_checkpoint, mut g) = self.lock_structure()?;
        if offset > g.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: g.log_start_offset,
                log_end_offset: g.log_end_offset,
            });
        }
        if offset <= g.log_start_offset {
            return Ok(g.log_start_offset);
        }
        g.log_start_offset = offset;
        let (_, doomed) = self.delete_segments_before_start(&mut g)?;
        if g.epochs.truncate_from_start(offset) {
            g.epochs.save(self.storage.as_ref(), &self.dir)?;
        }
        let rp = Log::checkpointable(&g);
        let job = self.checkpoint_job(&mut g, rp)?;
        let start = g.log_start_offset;
        drop(g);
        self.remove_segments(doomed)?;
        self.write_checkpoint_job(job)?;
        Ok(start)
    }

    /// Removes the files of segments already taken out of the log (retention, DeleteRecords),
    /// after the log's lock is dropped: appends and reads do not wait for the unlinks and the
    /// directory fsync. The caller holds the checkpoint lock. A read that took a slice of one
    /// of them before still sends it (its descriptor keeps the file).
    fn remove_segments(&self, doomed: Vec<LogSegment>) -> Result<()> {
        if doomed.is_empty() {
            return Ok(());
        }
        for seg in doomed {
            seg.delete(self.storage.as_ref())?;
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))
    }

    /// Takes out of the log the segments whose every offset is below the log start offset, for
    /// the caller to remove with [`Log::remove_segments`] after dropping the log's lock. The
    /// active segment is replaced by an empty one when the start passes its end.
    fn delete_segments_before_start(
        &self,
        g: &mut LogInner,
    ) -> Result<(CleanupStats, Vec<LogSegment>)> {
        let mut doomed = Vec::new();
        let mut stats = CleanupStats::default();
        let start = g.log_start_offset;
        loop {
            let mut it = g.segments.iter();
            let Some((&base, seg)) = it.next() else { break };
            let next_base = it.next().map(|(b, _)| *b);
            let whole_below = match next_base {
                Some(nb) => nb <= start,
                None => seg.next_offset() <= start && seg.size() > 0 && start >= g.log_end_offset,
            };
            if !whole_below {
                break;
            }
            if next_base.is_none() {
                // The active segment goes: roll first so the log keeps a segment.
                self.roll_locked(g, start, true)?;
            }
            if let Some(s) = g.segments.remove(&base) {
                stats.segments_deleted += 1;
                stats.bytes_deleted += s.size();
                doomed.push(s);
            }
        }
        if !doomed.is_empty() {
            g.structure_generation += 1;
        }
        Ok((stats, doomed))
    }

    /// Applies `retention.ms` (against `now_ms`) and `retention.bytes`: deletes the oldest
    /// inactive segments past either limit and moves the log start offset. The active segment
    /// is never deleted.
    pub fn apply_retention(&self, now_ms: i64) -> Result<CleanupStats> {
        let (_checkpoint, mut g) = self.lock_structure()?;
        if !g.config.cleanup_policy.deletes() {
            return Ok(CleanupStats::default());
        }
        let mut stats = CleanupStats::default();
        let mut doomed = Vec::new();
        let retention_ms = g.config.retention_ms;
        let retention_bytes = g.config.retention_bytes;
        loop {
            if g.segments.len() <= 1 {
                break;
            }
            let total = g.size_bytes();
            let Some((&base, seg)) = g.segments.iter().next() else {
                break;
            };
            let expired = retention_ms >= 0
                && seg.max_timestamp() != i64::MIN
                && now_ms.saturating_sub(seg.max_timestamp()) > retention_ms;
            let oversized =
                retention_bytes >= 0 && total.saturating_sub(seg.size()) >= retention_bytes as u64;
            if !(expired || oversized) {
                break;
            }
            if let Some(s) = g.segments.remove(&base) {
                stats.segments_deleted += 1;
                stats.bytes_deleted += s.size();
                doomed.push(s);
            }
            let new_first = *g.segments.keys().next().ok_or(LogError::Closed)?;
            g.log_start_offset = g.log_start_offset.max(new_first);
        }
        if doomed.is_empty() {
            return Ok(stats);
        }
        g.structure_generation += 1;
        let start = g.log_start_offset;
        if g.epochs.truncate_from_start(start) {
            g.epochs.save(self.storage.as_ref(), &self.dir)?;
        }
        let rp = Log::checkpointable(&g);
        let job = self.checkpoint_job(&mut g, rp)?;
        drop(g);
        // The files go after the lock is dropped; the checkpoint names a segment that stays.
        self.remove_segments(doomed)?;
        self.write_checkpoint_job(job)?;
        Ok(stats)
    }

    /// A recovery point that is known durable and lies in a segment that still exists: the
    /// last checkpointed one, or the start of the first segment if that was deleted.
    fn checkpointable(g: &LogInner) -> Offset {
        let first_base = g.segments.keys().next().copied().unwrap_or(Offset::ZERO);
        g.checkpoint_recovery_point.max(first_base)
    }

    /// What a compaction pass reads: taken under the log's lock, with everything appended so
    /// far made durable (waited for outside the lock), so that the pass reads the segments
    /// without any lock. `None` unless the log compacts and has an inactive segment.
    pub(crate) fn compaction_plan(&self) -> Result<Option<CompactionPlan>> {
        let (plan, durable) = {
            let (_checkpoint, g) = self.lock_structure()?;
            if !g.config.cleanup_policy.compacts() || g.segments.len() < 2 {
                return Ok(None);
            }
            let segments = g
                .segments
                .values()
                .map(|seg| SegmentSnapshot {
                    base: seg.base_offset(),
                    file: seg.file().clone(),
                    size: seg.size(),
                })
                .collect();
            let plan = CompactionPlan {
                storage: self.storage.clone(),
                dir: self.dir.clone(),
                config: g.config.clone(),
                segments,
                structure_generation: g.structure_generation,
            };
            (plan, self.pipeline.flush(&self.progress)?)
        };
        durable.wait_durable()?;
        Ok(Some(plan))
    }

    /// Swaps rewritten segments in, if no truncation, deletion or other swap changed the
    /// segments since `plan` was taken (otherwise the rewritten files are removed and `false`
    /// returned). The files are renamed into place under the checkpoint lock only (which keeps
    /// truncation, retention, deletion and checkpoints out; appends and reads use the segments'
    /// open descriptors, not their paths); the log's lock is taken just to put the new segments
    /// in the map.
    pub(crate) fn swap_compacted(&self, plan: &CompactionPlan, cleaned: &[Offset]) -> Result<bool> {
        let (_checkpoint, g) = self.lock_structure()?;
        if g.structure_generation != plan.structure_generation {
            drop(g);
            for base in cleaned {
                let (log, index, time) = LogSegment::cleaned_paths(&self.dir, *base);
                for p in [log, index, time] {
                    let _ = self.storage.remove(&p);
                }
            }
            return Ok(false);
        }
        for base in cleaned {
            // Invariant: the segments a plan rewrites are inactive, and inactive segments change
            // only with the structure generation (which cannot move while the checkpoint lock is
            // held: every change of it takes that lock).
            assert!(
                g.segments.contains_key(base) && g.active().base_offset() > *base,
                "a rewritten segment is still an inactive segment of the log"
            );
        }
        let limits = recovery::limits(&g.config);
        drop(g);
        // The old indexes go first: a crash before the renames leaves the old logs without
        // indexes (recovery walks them), never new indexes beside an old log or old beside a
        // new one.
        for base in cleaned {
            let (_, index_path, time_path) = LogSegment::paths(&self.dir, *base);
            for p in [&index_path, &time_path] {
                if self.storage.exists(p) {
                    self.storage.remove(p).map_err(|e| LogError::io(p, e))?;
                }
            }
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))?;
        for base in cleaned {
            let finals = LogSegment::paths(&self.dir, *base);
            let cleaned = LogSegment::cleaned_paths(&self.dir, *base);
            for (from, to) in [
                (&cleaned.0, &finals.0),
                (&cleaned.1, &finals.1),
                (&cleaned.2, &finals.2),
            ] {
                self.storage
                    .rename(from, to)
                    .map_err(|e| LogError::io(to, e))?;
            }
        }
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))?;
        let mut fresh = Vec::with_capacity(cleaned.len());
        for base in cleaned {
            let mut seg = LogSegment::open(&self.storage, &self.dir, *base, limits, None)?;
            seg.load_end()?;
            // Opening maps the indexes at their full size; an inactive segment keeps only its
            // entries.
            seg.trim_indexes()?;
            fresh.push(seg);
        }
        let mut g = self.lock()?;
        for seg in fresh {
            g.segments.insert(seg.base_offset(), seg);
        }
        // Rewritten segments hold their batches at other positions.
        g.structure_generation += 1;
        g.boundaries.clear();
        g.durable_position = None;
        let rp = Log::checkpointable(&g);
        let job = self.checkpoint_job(&mut g, rp)?;
        drop(g);
        self.write_checkpoint_job(job)?;
        Ok(true)
    }

    /// Closes the log cleanly: makes everything durable, trims the active segment's indexes,
    /// checkpoints, and leaves the clean shutdown marker so the next open skips recovery.
    pub fn close(&self) -> Result<()> {
        self.flush()?;
        let (_checkpoint, mut g) = self.lock_structure()?;
        g.active_mut().trim_indexes()?;
        let end = g.log_end_offset;
        self.write_checkpoint(&mut g, end)?;
        let marker = self.dir.join(CLEAN_SHUTDOWN_FILE);
        let f = self
            .storage
            .open(&marker, true)
            .map_err(|e| LogError::io(&marker, e))?;
        f.sync_data().map_err(|e| LogError::io(&marker, e))?;
        self.storage
            .sync_dir(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e))?;
        g.closed = true;
        // Closed and clean: another owner may open the directory now.
        let released = self.release_dir_lock();
        assert!(released, "an open log holds its directory's lock");
        Ok(())
    }

    /// Drops the directory lock; whether it was still held.
    fn release_dir_lock(&self) -> bool {
        self.dir_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .is_some()
    }

    /// Closes the log and removes its directory (DeleteTopics).
    pub fn delete(self) -> Result<()> {
        {
            let (_checkpoint, mut g) = self.lock_structure()?;
            let _ = self.pipeline.flush(&self.progress)?.wait_written();
            // A checkpoint still queued for this log must not land in its removed directory.
            self.progress
                .checkpoint_generation
                .fetch_add(1, Ordering::SeqCst);
            g.closed = true;
            g.segments.clear();
        }
        let removed = self
            .storage
            .remove_dir_all(&self.dir)
            .map_err(|e| LogError::io(&self.dir, e));
        self.release_dir_lock();
        removed
    }

    /// Calls `f` with the header of every batch from the log start, in offset order, reading only
    /// headers, except for control batches (transaction markers, a few dozen bytes each), whose
    /// whole bytes are read and passed too (`None` for every other batch, and for a control
    /// batch over 64 KiB, which no producer writes). For state rebuilt from batch headers at
    /// startup, such as idempotent producer sequences and open transactions. Holds the log's
    /// lock while it walks.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn for_each_batch_header(
        &self,
        f: impl FnMut(&BatchHeader, Option<&[u8]>),
    ) -> Result<()> {
        self.for_each_batch_header_from(Offset::ZERO, f)
    }

    /// [`Self::for_each_batch_header`] for the batches that end at or after `from` only, reading
    /// no segment that ends before it (state rebuilt from a snapshot taken at `from`).
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn for_each_batch_header_from(
        &self,
        from: Offset,
        mut f: impl FnMut(&BatchHeader, Option<&[u8]>),
    ) -> Result<()> {
        const CONTROL_BATCH_MAX: usize = 64 << 10;
        let g = self.lock()?;
        let start = g.log_start_offset.max(from);
        let mut control = Vec::new();
        // The segment holding `start` and those after it.
        let first = g
            .segments
            .range(..=start)
            .next_back()
            .map_or(Offset::ZERO, |(b, _)| *b);
        for seg in g.segments.range(first..).map(|(_, s)| s) {
            // In the first segment, from the batch holding `start` (found with the offset
            // index), not from its beginning.
            let mut pos = if seg.base_offset() == first && start > first {
                match seg.find_batch(start, Offset(i64::MAX))? {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            } else {
                0
            };
            while let Some(h) = seg.read_header(pos)? {
                if h.last_offset() >= start {
                    let bytes = if h.is_control() && h.size() <= CONTROL_BATCH_MAX {
                        control.resize(h.size(), 0);
                        let n = seg
                            .file()
                            .read_at(&mut control, pos)
                            .map_err(|e| LogError::io(seg.path(), e))?;
                        (n == control.len()).then_some(control.as_slice())
                    } else {
                        None
                    };
                    f(&h, bytes);
                }
                pos += h.size() as u64;
            }
        }
        Ok(())
    }

    /// Reads every batch of the log and checks its CRC; reports the first corrupt one. For
    /// operators and tests. A read does not check what it returns: its caller does, with
    /// [`FileSlice::verify`] (the broker checks every slice a Fetch sends).
    pub fn verify(&self) -> Result<u64> {
        let g = self.lock()?;
        let mut batches = 0u64;
        for seg in g.segments.values() {
            let mut pos = 0u64;
            while let Some(h) = seg.read_header(pos)? {
                let mut bytes = vec![0u8; h.size()];
                let n = seg
                    .file()
                    .read_at(&mut bytes, pos)
                    .map_err(|e| LogError::io(seg.path(), e))?;
                if n != bytes.len() {
                    return Err(LogError::Corruption {
                        segment: seg.path().to_path_buf(),
                        position: pos,
                        reason: "short read".into(),
                    });
                }
                if let Err(e) = batch::validate(&bytes, 0, Origin::Replication, usize::MAX) {
                    return Err(LogError::Corruption {
                        segment: seg.path().to_path_buf(),
                        position: pos,
                        reason: e.to_string(),
                    });
                }
                batches += 1;
                pos += h.size() as u64;
            }
        }
        Ok(batches)
    }

    /// The index entries of every segment (base offset, offset index, time index), for
    /// diagnostics and for tests that compare rebuilt indexes with freshly built ones.
    #[cfg_attr(feature = "internals", visibility::make(pub))]
    pub(crate) fn segment_indexes(&self) -> Vec<SegmentIndexes> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.segments
            .values()
            .map(|s| SegmentIndexes {
                base_offset: s.base_offset(),
                offsets: s.offset_index().entries(),
                timestamps: s.time_index().entries(),
            })
            .collect()
    }

    /// The flush policy now in force.
    pub fn flush_policy(&self) -> FlushPolicy {
        self.progress.policy()
    }
}

/// The buffers to write for client batches whose headers (already assigned) say where they
/// start and which base offset each gets: `records` itself, stamped in place, when this append
/// holds it alone; otherwise, without copying the records, each batch's stamped header prefix
/// ([`batch::STAMPED_PREFIX_BYTES`]) followed by the rest of that batch as it arrived.
fn stamped(
    records: Bytes,
    headers: &[(usize, BatchHeader)],
    leader_epoch: LeaderEpoch,
) -> Result<Vec<Bytes>> {
    let truncated = |position: usize, needed: usize| {
        LogError::InvalidBatch(BatchError::Truncated {
            position,
            needed,
            available: 0,
        })
    };
    match records.try_into_mut() {
        Ok(mut owned) => {
            for (pos, h) in headers {
                let slice = owned
                    .get_mut(*pos..*pos + h.size())
                    .ok_or_else(|| truncated(*pos, h.size()))?;
                batch::stamp_base_offset(slice, h.base_offset);
                batch::stamp_leader_epoch(slice, leader_epoch);
            }
            Ok(vec![owned.freeze()])
        }
        Err(shared) => {
            const P: usize = batch::STAMPED_PREFIX_BYTES;
            let mut prefixes = BytesMut::with_capacity(P * headers.len());
            for (pos, h) in headers {
                let prefix = shared
                    .get(*pos..*pos + P)
                    .ok_or_else(|| truncated(*pos, P))?;
                let mut stamped = [0u8; P];
                stamped.copy_from_slice(prefix);
                batch::stamp_prefix(&mut stamped, h.base_offset, leader_epoch);
                prefixes.extend_from_slice(&stamped);
            }
            let prefixes = prefixes.freeze();
            let mut out = Vec::with_capacity(2 * headers.len());
            for (i, (pos, h)) in headers.iter().enumerate() {
                if *pos + h.size() > shared.len() {
                    return Err(truncated(*pos, h.size()));
                }
                out.push(prefixes.slice(i * P..(i + 1) * P));
                out.push(shared.slice(*pos + P..*pos + h.size()));
            }
            Ok(out)
        }
    }
}

/// What compaction may touch, handed out under the log's lock.
/// Where a read walks one segment's headers after dropping the log's lock.
struct ReadCursor {
    base: Offset,
    view: crate::segment::SegmentView,
    start: crate::index::offset_index::OffsetPosition,
    jump: crate::index::offset_index::OffsetPosition,
    /// Bytes from `start` that the walk may read headers in: the distance to the next index
    /// entry (at most an interval and a batch), a first batch larger than the limit, the limit
    /// and one more header.
    walk: u64,
}

impl ReadCursor {
    fn of(seg: &LogSegment, offset: Offset, max_bytes: u64, config: &LogConfig) -> ReadCursor {
        let (start, jump) = seg.read_entries(offset, max_bytes);
        let batch = config.max_message_bytes as u64;
        ReadCursor {
            base: seg.base_offset(),
            view: seg.view(),
            start,
            jump,
            walk: config
                .index_interval_bytes
                .saturating_add(batch.saturating_mul(2))
                .saturating_add(max_bytes)
                .saturating_add(batch::HEADER_BYTES as u64),
        }
    }
}

/// The segments of a log as a compaction pass reads them, without the log's lock (see
/// [`Log::compaction_plan`]).
pub(crate) struct CompactionPlan {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub config: LogConfig,
    /// Every segment, oldest first; the last is the active one (read for keys, never rewritten).
    pub segments: Vec<SegmentSnapshot>,
    structure_generation: u64,
}

/// One segment as a compaction plan saw it: its file and the bytes it held (all durable).
pub(crate) struct SegmentSnapshot {
    pub base: Offset,
    pub file: Arc<dyn StorageFile>,
    pub size: u64,
}
