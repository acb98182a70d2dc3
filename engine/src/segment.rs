//! `LogSegment`: one `.log` file of whole record batches plus its offset and time indexes, named
//! by the segment's base offset (20 digits, zero-padded).
//!
//! Invariants:
//! - batches in the file are contiguous, each starts where the previous ends, and their offsets
//!   increase; `next_offset` is the offset after the last batch and `size` the file position
//!   after it (positions beyond `size` are never read);
//! - an offset index entry is added for the first batch after at least `index.interval.bytes`
//!   of log since the previous entry, so a lookup plus a short forward scan finds any offset;
//! - positions fit in u32 and offsets relative to the base fit in u32 (the log rolls before
//!   either would overflow).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::index::offset_index::OffsetPosition;
use crate::index::{OffsetIndex, TimeIndex};
use crate::io::{Storage, StorageFile};
use crate::offset::Offset;
use crate::verification::VerifiedBytes;

/// Suffix of segment data files.
pub const LOG_SUFFIX: &str = "log";
/// Suffix of offset index files.
pub const INDEX_SUFFIX: &str = "index";
/// Suffix of time index files.
pub const TIME_INDEX_SUFFIX: &str = "timeindex";

/// The file name of a segment file: 20-digit base offset plus suffix.
pub fn file_name(base_offset: Offset, suffix: &str) -> String {
    format!("{:020}.{suffix}", base_offset.0)
}

/// Parses a base offset from a segment file name with the given suffix.
pub fn parse_file_name(path: &Path, suffix: &str) -> Option<Offset> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(suffix)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok().map(Offset)
}

/// Sizes a segment needs to know.
#[derive(Clone, Copy, Debug)]
pub struct SegmentLimits {
    /// Bytes of log between offset index entries.
    pub index_interval_bytes: u64,
    /// Preallocated size of each index file.
    pub index_bytes_max: usize,
}

/// Why a scan stopped before the end of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidBatch {
    /// Byte position of the bad batch.
    pub position: u64,
    /// What was wrong.
    pub reason: String,
    /// Whether a valid batch follows the bad one (corruption, not a torn tail).
    pub valid_batch_follows: bool,
}

/// Result of scanning a segment.
#[derive(Clone, Debug)]
pub struct ScanOutcome {
    /// Position after the last valid batch.
    pub valid_end: u64,
    /// Offset after the last valid batch (the scan's start offset if none).
    pub next_offset: Offset,
    /// Batches validated.
    pub batches: u64,
    /// The first invalid batch, if the scan stopped at one.
    pub invalid: Option<InvalidBatch>,
}

/// A segment's file and the size it had when taken: batch headers can be walked on it without
/// the segment or its log's lock. Bytes below the size never change while the segment lives,
/// except by a truncation or compaction swap under the log's lock (a read racing one sees a
/// short file, or the file it started with: its descriptor keeps a replaced file readable).
#[derive(Debug, Clone)]
pub struct SegmentView {
    file: Arc<dyn StorageFile>,
    size: u64,
    verified: Arc<VerifiedBytes>,
}

impl SegmentView {
    /// The file.
    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// Which bytes of the file reads have checked.
    pub(crate) fn verified(&self) -> &Arc<VerifiedBytes> {
        &self.verified
    }

    /// Reads the header of the batch at `position`; `None` at or past the end of the data.
    pub fn read_header(&self, position: u64) -> Result<Option<BatchHeader>> {
        if position + HEADER_BYTES as u64 > self.size {
            return Ok(None);
        }
        let mut buf = [0u8; HEADER_BYTES];
        let n = self
            .file
            .read_at(&mut buf, position)
            .map_err(|e| LogError::io(self.file.path(), e))?;
        if n < HEADER_BYTES {
            return Ok(None);
        }
        match batch::parse_header(&buf, 0) {
            Ok(h) if position + h.size() as u64 <= self.size => Ok(Some(h)),
            Ok(_) | Err(_) => Err(LogError::Corruption {
                segment: self.file.path().to_path_buf(),
                position,
                reason: "unreadable batch header inside the written part of the segment".into(),
            }),
        }
    }

    /// Finds the first batch whose last offset is >= `offset`, scanning forward from the index
    /// entry `start` (at or before it), and not past batches starting at or after `limit`.
    /// Returns its position and header.
    pub fn find_batch(
        &self,
        start: OffsetPosition,
        offset: Offset,
        limit: Offset,
    ) -> Result<Option<(u64, BatchHeader)>> {
        let mut pos = u64::from(start.position);
        while let Some(h) = self.read_header(pos)? {
            if h.base_offset >= limit {
                return Ok(None);
            }
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }

    /// From the batch at `position`, extends over whole batches while the total stays within
    /// `max_bytes` and batches start below `limit`, jumping first to the index entry `jump` if
    /// it lies ahead and within `max_bytes` of `position`. Returns the end position and the
    /// offset after the last batch included. The first batch is always included.
    pub fn extend_batches(
        &self,
        position: u64,
        first: &BatchHeader,
        max_bytes: u64,
        limit: Offset,
        jump: OffsetPosition,
    ) -> Result<(u64, Offset)> {
        let mut end = position + first.size() as u64;
        let mut next = first.next_offset();
        let jump_pos = u64::from(jump.position);
        if jump_pos > end && jump_pos - position <= max_bytes && jump.offset < limit {
            // The batch at the jump position starts at a batch boundary below `limit`, so every
            // batch between `end` and it is whole and below `limit`; the one before it ends there.
            if let Some(h) = self.read_header(jump_pos)?
                && h.base_offset < limit
            {
                end = jump_pos;
                next = h.base_offset;
            }
        }
        while let Some(h) = self.read_header(end)? {
            if h.base_offset < next
                || h.base_offset >= limit
                || end + h.size() as u64 - position > max_bytes
            {
                break;
            }
            end += h.size() as u64;
            next = h.next_offset();
        }
        Ok((end, next))
    }
}

/// One segment of a log.
#[derive(Debug)]
pub struct LogSegment {
    base_offset: Offset,
    log_path: PathBuf,
    log: Arc<dyn StorageFile>,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    size: u64,
    next_offset: Offset,
    bytes_since_index: u64,
    max_timestamp: i64,
    rolling_timestamp: Option<i64>,
    limits: SegmentLimits,
    /// Which bytes of the `.log` file fetches have checked (shared with the slices they read).
    verified: Arc<VerifiedBytes>,
}

impl LogSegment {
    pub(crate) fn paths(dir: &Path, base: Offset) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(file_name(base, LOG_SUFFIX)),
            dir.join(file_name(base, INDEX_SUFFIX)),
            dir.join(file_name(base, TIME_INDEX_SUFFIX)),
        )
    }

    /// Creates a new, empty segment (replacing any files of that name) and makes the directory
    /// entries durable.
    pub fn create(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        base_offset: Offset,
        limits: SegmentLimits,
    ) -> Result<LogSegment> {
        let paths = LogSegment::paths(dir, base_offset);
        LogSegment::create_at(storage, Some(dir), paths, base_offset, limits)
    }

    /// Creates a new, empty segment without waiting for its directory entries to be durable:
    /// the caller has the directory fsynced before anything written to the segment counts as
    /// durable (a roll on the append path leaves it to the commit pipeline).
    pub fn create_entry_unsynced(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        base_offset: Offset,
        limits: SegmentLimits,
    ) -> Result<LogSegment> {
        let paths = LogSegment::paths(dir, base_offset);
        LogSegment::create_at(storage, None, paths, base_offset, limits)
    }

    /// The paths of a segment's three files while a compaction pass builds its rewritten
    /// version beside it: the final names with `.cleaned` appended (recovery removes such
    /// files).
    pub fn cleaned_paths(dir: &Path, base_offset: Offset) -> (PathBuf, PathBuf, PathBuf) {
        let cleaned = |p: PathBuf| {
            let mut name = p.into_os_string();
            name.push(".cleaned");
            PathBuf::from(name)
        };
        let (log, index, time) = LogSegment::paths(dir, base_offset);
        (cleaned(log), cleaned(index), cleaned(time))
    }

    /// Creates a new, empty segment under the `.cleaned` names of [`LogSegment::cleaned_paths`],
    /// for a compaction pass to fill and then rename into place.
    pub fn create_cleaned(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        base_offset: Offset,
        limits: SegmentLimits,
    ) -> Result<LogSegment> {
        let paths = LogSegment::cleaned_paths(dir, base_offset);
        LogSegment::create_at(storage, Some(dir), paths, base_offset, limits)
    }

    /// Creates the three files, then fsyncs `sync_dir` if given.
    fn create_at(
        storage: &Arc<dyn Storage>,
        sync_dir: Option<&Path>,
        paths: (PathBuf, PathBuf, PathBuf),
        base_offset: Offset,
        limits: SegmentLimits,
    ) -> Result<LogSegment> {
        for p in [&paths.0, &paths.1, &paths.2] {
            let f = storage.open(p, true).map_err(|e| LogError::io(p, e))?;
            f.set_len(0).map_err(|e| LogError::io(p, e))?;
        }
        if let Some(dir) = sync_dir {
            storage.sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
        }
        LogSegment::open_at(storage, paths, base_offset, limits, Some((0, 0)))
    }

    /// Opens an existing segment. `keep_index_entries` says how many stored entries of the
    /// offset and time index to keep (`None`: all, subject to a sanity check by the caller). `size` and `next_offset`
    /// are set by [`LogSegment::recover_from`] or [`LogSegment::load_end`] afterwards.
    pub fn open(
        storage: &Arc<dyn Storage>,
        dir: &Path,
        base_offset: Offset,
        limits: SegmentLimits,
        keep_index_entries: Option<(usize, usize)>,
    ) -> Result<LogSegment> {
        let paths = LogSegment::paths(dir, base_offset);
        LogSegment::open_at(storage, paths, base_offset, limits, keep_index_entries)
    }

    fn open_at(
        storage: &Arc<dyn Storage>,
        (log_path, index_path, time_path): (PathBuf, PathBuf, PathBuf),
        base_offset: Offset,
        limits: SegmentLimits,
        keep_index_entries: Option<(usize, usize)>,
    ) -> Result<LogSegment> {
        let log = storage
            .open(&log_path, false)
            .map_err(|e| LogError::io(&log_path, e))?;
        let index_file = storage
            .open(&index_path, true)
            .map_err(|e| LogError::io(&index_path, e))?;
        let time_file = storage
            .open(&time_path, true)
            .map_err(|e| LogError::io(&time_path, e))?;
        let (keep, keep_time) = keep_index_entries.unwrap_or((usize::MAX, usize::MAX));
        let offset_index = OffsetIndex::open(
            storage,
            index_file,
            base_offset,
            limits.index_bytes_max,
            keep,
        )
        .map_err(|e| LogError::io(&index_path, e))?;
        let time_index = TimeIndex::open(
            storage,
            time_file,
            base_offset,
            limits.index_bytes_max,
            keep_time,
        )
        .map_err(|e| LogError::io(&time_path, e))?;
        Ok(LogSegment {
            base_offset,
            log_path,
            log,
            offset_index,
            time_index,
            size: 0,
            next_offset: base_offset,
            bytes_since_index: 0,
            max_timestamp: i64::MIN,
            rolling_timestamp: None,
            limits,
            verified: Arc::default(),
        })
    }

    /// The segment's base offset.
    pub fn base_offset(&self) -> Offset {
        self.base_offset
    }

    /// Offset after the last batch.
    pub fn next_offset(&self) -> Offset {
        self.next_offset
    }

    /// Bytes of batches in the segment.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Largest batch max timestamp seen (`i64::MIN` if none).
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// Timestamp of the first batch, which `segment.ms` rolling is measured from.
    pub fn rolling_timestamp(&self) -> Option<i64> {
        self.rolling_timestamp
    }

    /// The `.log` file.
    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.log
    }

    /// Path of the `.log` file.
    pub fn path(&self) -> &Path {
        &self.log_path
    }

    /// The offset index.
    pub fn offset_index(&self) -> &OffsetIndex {
        &self.offset_index
    }

    /// The time index.
    pub fn time_index(&self) -> &TimeIndex {
        &self.time_index
    }

    /// Whether the indexes have room for another entry.
    pub fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// Records batches placed at `position` (the caller writes the bytes): updates size, next
    /// offset, timestamps and index entries.
    pub fn record_append(&mut self, position: u64, headers: &[(usize, BatchHeader)]) {
        assert_eq!(position, self.size, "appends are contiguous");
        for (rel, h) in headers {
            let pos = position + *rel as u64;
            self.note_batch(pos, h);
        }
    }

    fn note_batch(&mut self, pos: u64, h: &BatchHeader) {
        assert!(
            h.base_offset >= self.next_offset,
            "batch offsets increase within a segment"
        );
        assert!(
            pos + h.size() as u64 <= u64::from(u32::MAX),
            "segment position overflow"
        );
        if self.rolling_timestamp.is_none() {
            self.rolling_timestamp = Some(h.max_timestamp);
        }
        // The time index holds the max timestamp *so far*, so that every batch before an entry
        // has timestamps <= the entry's: a lookup may skip them.
        self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
        if self.bytes_since_index >= self.limits.index_interval_bytes {
            if self
                .offset_index
                .last()
                .is_none_or(|l| l.offset < h.base_offset && u64::from(l.position) < pos)
            {
                let _ = self.offset_index.append(h.base_offset, pos as u32);
            }
            if self.max_timestamp > self.time_index.last().map_or(i64::MIN, |t| t.timestamp) {
                let _ = self
                    .time_index
                    .maybe_append(self.max_timestamp, h.base_offset);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.size() as u64;
        self.size = pos + h.size() as u64;
        self.next_offset = h.next_offset();
    }

    /// What reads need of this segment, to walk its batch headers without it (and without
    /// its log's lock): the file and its size now.
    pub fn view(&self) -> SegmentView {
        SegmentView {
            file: self.log.clone(),
            size: self.size,
            verified: self.verified.clone(),
        }
    }

    /// Reads the header of the batch at `position`; `None` at or past the end of the data.
    pub fn read_header(&self, position: u64) -> Result<Option<BatchHeader>> {
        self.view().read_header(position)
    }

    /// Finds the first batch whose last offset is >= `offset`, scanning forward from the index
    /// entry at or before it, and not past batches starting at or after `limit`. Returns its
    /// position and header.
    pub fn find_batch(&self, offset: Offset, limit: Offset) -> Result<Option<(u64, BatchHeader)>> {
        self.view()
            .find_batch(self.offset_index.lookup(offset), offset, limit)
    }

    /// From the batch at `position`, extends over whole batches while the total stays within
    /// `max_bytes` and batches start below `limit`. Returns the end position and the offset after
    /// the last batch included. The first batch is always included.
    pub fn extend_batches(
        &self,
        position: u64,
        first: &BatchHeader,
        max_bytes: u64,
        limit: Offset,
    ) -> Result<(u64, Offset)> {
        let target = position.saturating_add(max_bytes);
        let jump = self
            .offset_index
            .lookup_by_position(u32::try_from(target.min(u64::from(u32::MAX))).unwrap_or(u32::MAX));
        self.view()
            .extend_batches(position, first, max_bytes, limit, jump)
    }

    /// The index entries a read from `offset` of up to `max_bytes` starts from: the entry at
    /// or before `offset`, and the entry to jump to when extending over whole batches (at or
    /// before the start entry's position plus `max_bytes`, so never past what the read may
    /// return). Taken under the log's lock; the walk happens after, on a [`SegmentView`].
    pub fn read_entries(&self, offset: Offset, max_bytes: u64) -> (OffsetPosition, OffsetPosition) {
        let start = self.offset_index.lookup(offset);
        let target = u64::from(start.position).saturating_add(max_bytes);
        let jump = self
            .offset_index
            .lookup_by_position(u32::try_from(target.min(u64::from(u32::MAX))).unwrap_or(u32::MAX));
        (start, jump)
    }

    /// Sets size and next offset of a segment whose contents are trusted (clean shutdown or
    /// below the recovery point) by walking headers from the last index entry to the end.
    pub fn load_end(&mut self) -> Result<()> {
        let file_len = self
            .log
            .len()
            .map_err(|e| LogError::io(&self.log_path, e))?;
        let start = self
            .offset_index
            .last()
            .map_or(0, |e| u64::from(e.position));
        self.size = file_len;
        self.next_offset = self.base_offset;
        let mut pos = start;
        while let Some(h) = self.read_header(pos)? {
            self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
            self.next_offset = h.next_offset();
            pos += h.size() as u64;
        }
        if pos != file_len {
            return Err(LogError::Corruption {
                segment: self.log_path.clone(),
                position: pos,
                reason: format!(
                    "segment has {} trailing bytes that are not a batch",
                    file_len - pos
                ),
            });
        }
        if let Some(t) = self.time_index.last() {
            self.max_timestamp = self.max_timestamp.max(t.timestamp);
        }
        if self.rolling_timestamp.is_none() {
            self.rolling_timestamp = self.read_header(0)?.map(|h| h.max_timestamp);
        }
        self.bytes_since_index = file_len - start;
        Ok(())
    }

    /// Scans batches from `from_position` (a batch boundary), checking each batch's framing,
    /// magic, CRC and offset order, and re-adding index entries for them. Index entries at or
    /// after `from_position` are dropped first. Stops at the first invalid batch or the end of the
    /// file; `size`/`next_offset` then describe the valid prefix. Does not truncate the file.
    pub fn recover_from(&mut self, from_position: u64, from_offset: Offset) -> Result<ScanOutcome> {
        let file_len = self
            .log
            .len()
            .map_err(|e| LogError::io(&self.log_path, e))?;
        self.offset_index
            .truncate_to_position(u32::try_from(from_position).unwrap_or(u32::MAX));
        self.time_index.truncate_to(from_offset);
        self.size = from_position;
        self.next_offset = from_offset;
        self.bytes_since_index = match self.offset_index.last() {
            Some(e) => from_position - u64::from(e.position),
            None => from_position,
        };
        self.rolling_timestamp = None;
        self.max_timestamp = i64::MIN;
        if from_position == 0 {
            self.bytes_since_index = 0;
        } else {
            self.rolling_timestamp = self.read_header(0)?.map(|h| h.max_timestamp);
            self.max_timestamp = self.time_index.last().map_or(i64::MIN, |t| t.timestamp);
            let mut p = self
                .offset_index
                .last()
                .map_or(0, |e| u64::from(e.position));
            while p < from_position
                && let Some(h) = self.read_header(p)?
            {
                self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
                p += h.size() as u64;
            }
        }
        let file = self.log.clone();
        let path = self.log_path.clone();
        let mut reader = ChunkReader::new(file.as_ref(), &path, file_len);
        let mut pos = from_position;
        let mut batches = 0u64;
        let mut invalid = None;
        while pos < file_len {
            match reader.batch_at(pos)? {
                Ok(bytes) => {
                    match batch::validate(bytes, 0, batch::Origin::Replication, usize::MAX) {
                        Ok(h)
                            if h.base_offset >= self.next_offset
                                && h.base_offset >= self.base_offset
                                && h.last_offset().0 - self.base_offset.0
                                    <= i64::from(u32::MAX) =>
                        {
                            self.note_batch(pos, &h);
                            pos += h.size() as u64;
                            batches += 1;
                        }
                        Ok(h) => {
                            invalid = Some((
                                pos,
                                format!(
                                    "batch base offset {} does not follow {}",
                                    h.base_offset, self.next_offset
                                ),
                                h.size() as u64,
                            ));
                            break;
                        }
                        Err(e) => {
                            let size = batch::parse_header(bytes, 0).map_or(0, |h| h.size() as u64);
                            invalid = Some((pos, e.to_string(), size));
                            break;
                        }
                    }
                }
                Err(reason) => {
                    invalid = Some((pos, reason, 0));
                    break;
                }
            }
        }
        let invalid = match invalid {
            None => None,
            Some((position, reason, size)) => {
                let valid_batch_follows = size > 0
                    && self.valid_batch_at(&mut reader, position + size, self.next_offset)?;
                Some(InvalidBatch {
                    position,
                    reason,
                    valid_batch_follows,
                })
            }
        };
        Ok(ScanOutcome {
            valid_end: self.size,
            next_offset: self.next_offset,
            batches,
            invalid,
        })
    }

    fn valid_batch_at(
        &self,
        reader: &mut ChunkReader<'_>,
        pos: u64,
        after: Offset,
    ) -> Result<bool> {
        if pos >= reader.file_len {
            return Ok(false);
        }
        Ok(match reader.batch_at(pos)? {
            Ok(bytes) => batch::validate(bytes, 0, batch::Origin::Replication, usize::MAX)
                .is_ok_and(|h| h.base_offset >= after),
            Err(_) => false,
        })
    }

    /// Cuts the file (and indexes) at `position`, which must be a batch boundary whose batch
    /// starts at `next_offset`, and makes the new length durable.
    pub fn truncate_at(&mut self, position: u64, next_offset: Offset) -> Result<()> {
        self.log
            .set_len(position)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        self.log
            .sync_data()
            .map_err(|e| LogError::io(&self.log_path, e))?;
        self.offset_index
            .truncate_to_position(u32::try_from(position).unwrap_or(u32::MAX));
        self.offset_index.truncate_to(next_offset);
        self.time_index.truncate_to(next_offset);
        self.size = position;
        self.next_offset = next_offset.max(self.base_offset);
        self.bytes_since_index = match self.offset_index.last() {
            Some(e) => position - u64::from(e.position),
            None => position,
        };
        if position == 0 {
            self.rolling_timestamp = None;
            self.max_timestamp = i64::MIN;
            self.bytes_since_index = 0;
        } else {
            // Recompute the max timestamp from what is left: time index plus a walk of the tail.
            self.max_timestamp = self.time_index.last().map_or(i64::MIN, |t| t.timestamp);
            let mut pos = self
                .offset_index
                .last()
                .map_or(0, |e| u64::from(e.position));
            while let Some(h) = self.read_header(pos)? {
                self.max_timestamp = self.max_timestamp.max(h.max_timestamp);
                pos += h.size() as u64;
            }
        }
        Ok(())
    }

    /// Truncates to the first batch whose last offset is >= `offset`. Returns the new next
    /// offset (the base of that batch, or the old next offset if no batch reaches `offset`).
    pub fn truncate_to(&mut self, offset: Offset) -> Result<Offset> {
        match self.find_batch(offset, Offset(i64::MAX))? {
            None => Ok(self.next_offset),
            Some((pos, h)) => {
                let new_next = if pos == 0 {
                    self.base_offset
                } else {
                    h.base_offset
                };
                self.truncate_at(pos, new_next)?;
                Ok(self.next_offset)
            }
        }
    }

    /// Makes the indexes' entries durable.
    pub fn flush_indexes(&self) -> Result<()> {
        self.offset_index
            .flush()
            .map_err(|e| LogError::io(self.offset_index.path(), e))?;
        self.time_index
            .flush()
            .map_err(|e| LogError::io(self.time_index.path(), e))
    }

    /// Makes the indexes' entries part of their files without waiting for the disk (a
    /// checkpoint written by another thread fdatasyncs them first).
    pub fn publish_indexes(&self) -> Result<()> {
        self.offset_index
            .publish()
            .map_err(|e| LogError::io(self.offset_index.path(), e))?;
        self.time_index
            .publish()
            .map_err(|e| LogError::io(self.time_index.path(), e))
    }

    /// Trims the index files to their entries (the segment is no longer active).
    pub fn trim_indexes(&mut self) -> Result<()> {
        self.offset_index
            .trim()
            .map_err(|e| LogError::io(self.offset_index.path(), e))?;
        self.time_index
            .trim()
            .map_err(|e| LogError::io(self.time_index.path(), e))
    }

    /// Makes room in the indexes again (the segment became active after a truncation).
    pub fn grow_indexes(&mut self) -> Result<()> {
        self.offset_index
            .grow(self.limits.index_bytes_max)
            .map_err(|e| LogError::io(self.offset_index.path(), e))?;
        self.time_index
            .grow(self.limits.index_bytes_max)
            .map_err(|e| LogError::io(self.time_index.path(), e))
    }

    /// Writes whole batches at the end of a segment outside the commit pipeline (a compaction
    /// pass filling its rewritten segment) and records them in the indexes.
    pub fn write_batches(&mut self, bytes: &[u8]) -> Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let headers = batch::frame(bytes, usize::MAX).map_err(|e| LogError::Corruption {
            segment: self.log_path.clone(),
            position: self.size,
            reason: e.to_string(),
        })?;
        self.log
            .write_at(bytes, self.size)
            .map_err(|e| LogError::io(&self.log_path, e))?;
        let position = self.size;
        self.record_append(position, &headers);
        Ok(())
    }

    /// Makes a segment written with [`LogSegment::write_batches`] durable as an inactive
    /// segment: indexes trimmed to their entries, then the log and both index files fdatasync'ed.
    pub fn seal(&mut self, storage: &dyn Storage) -> Result<()> {
        self.trim_indexes()?;
        self.log
            .sync_data()
            .map_err(|e| LogError::io(&self.log_path, e))?;
        for p in [self.offset_index.path(), self.time_index.path()] {
            storage
                .open(p, false)
                .and_then(|f| f.sync_data())
                .map_err(|e| LogError::io(p, e))?;
        }
        Ok(())
    }

    /// Removes the segment's files.
    pub fn delete(self, storage: &dyn Storage) -> Result<()> {
        let idx = self.offset_index.path().to_path_buf();
        let tidx = self.time_index.path().to_path_buf();
        drop(self.offset_index);
        drop(self.time_index);
        for p in [&self.log_path, &idx, &tidx] {
            if storage.exists(p) {
                storage.remove(p).map_err(|e| LogError::io(p, e))?;
            }
        }
        Ok(())
    }

    /// Where a search for the first record with timestamp >= `timestamp` at or after `from`
    /// starts walking in this segment (from its indexes, without reading the file); `None` if
    /// every record of the segment is older.
    pub fn timestamp_search_start(&self, timestamp: i64, from: Offset) -> Option<u64> {
        if self.max_timestamp < timestamp {
            return None;
        }
        let hint = self.time_index.lookup(timestamp).offset.max(from);
        Some(u64::from(self.offset_index.lookup(hint).position))
    }

    /// Offset of the first record with timestamp >= `timestamp` in this segment, if any.
    pub fn find_offset_by_timestamp(
        &self,
        timestamp: i64,
        from: Offset,
    ) -> Result<Option<(Offset, i64)>> {
        match self.timestamp_search_start(timestamp, from) {
            Some(start) => self.view().find_offset_by_timestamp(start, timestamp, from),
            None => Ok(None),
        }
    }
}

impl SegmentView {
    /// Offset and timestamp of the first record with timestamp >= `timestamp` at or after
    /// `from`, walking batch headers from `start` (see [`LogSegment::timestamp_search_start`]).
    pub fn find_offset_by_timestamp(
        &self,
        start: u64,
        timestamp: i64,
        from: Offset,
    ) -> Result<Option<(Offset, i64)>> {
        let mut pos = start;
        while let Some(h) = self.read_header(pos)? {
            if h.max_timestamp >= timestamp && h.last_offset() >= from {
                // Look inside an uncompressed batch for the exact record.
                let mut bytes = vec![0u8; h.size()];
                let n = self
                    .file
                    .read_at(&mut bytes, pos)
                    .map_err(|e| LogError::io(self.file.path(), e))?;
                if n == bytes.len()
                    && let Some(records) = batch::records(&bytes)
                {
                    for r in records {
                        let off = h.base_offset.plus(i64::from(r.offset_delta));
                        let ts = h.base_timestamp.saturating_add(r.timestamp_delta);
                        if ts >= timestamp && off >= from {
                            return Ok(Some((off, ts)));
                        }
                    }
                }
                return Ok(Some((h.base_offset.max(from), h.max_timestamp)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }
}

/// Reads a segment file in large chunks so that scanning costs one read per chunk, not one per
/// batch. `batch_at` returns the bytes of the batch at a position, or why it cannot be framed.
struct ChunkReader<'a> {
    file: &'a dyn StorageFile,
    path: &'a Path,
    file_len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

const CHUNK_BYTES: usize = 4 << 20;

impl<'a> ChunkReader<'a> {
    fn new(file: &'a dyn StorageFile, path: &'a Path, file_len: u64) -> ChunkReader<'a> {
        ChunkReader {
            file,
            path,
            file_len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    fn ensure(&mut self, pos: u64, len: usize) -> Result<bool> {
        if pos + len as u64 > self.file_len {
            return Ok(false);
        }
        let have =
            pos >= self.buf_start && pos + len as u64 <= self.buf_start + self.buf.len() as u64;
        if !have {
            let want = len.max(CHUNK_BYTES).min((self.file_len - pos) as usize);
            self.buf.resize(want, 0);
            let n = self
                .file
                .read_at(&mut self.buf, pos)
                .map_err(|e| LogError::io(self.path, e))?;
            self.buf.truncate(n);
            self.buf_start = pos;
            if n < len {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn batch_at(&mut self, pos: u64) -> Result<std::result::Result<&[u8], String>> {
        if !self.ensure(pos, HEADER_BYTES)? {
            return Ok(Err(format!(
                "{} bytes left, less than a batch header",
                self.file_len - pos
            )));
        }
        let off = (pos - self.buf_start) as usize;
        let header = match batch::parse_header(self.buf.get(off..).unwrap_or(&[]), 0) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let size = header.size();
        if !self.ensure(pos, size)? {
            return Ok(Err(format!(
                "batch of {size} bytes runs past the end of the file"
            )));
        }
        let off = (pos - self.buf_start) as usize;
        Ok(self
            .buf
            .get(off..off + size)
            .ok_or_else(|| format!("batch of {size} bytes runs past the buffer")))
    }
}
