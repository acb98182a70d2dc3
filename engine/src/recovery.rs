//! Opening a log directory: find the segments, decide which ones to trust, scan the rest.
//!
//! - After a clean shutdown (the marker file exists) every segment is trusted: its indexes are
//!   used after a sanity check and only the few batches after the last index entry are walked.
//! - After an unclean shutdown, segments entirely below the checkpointed recovery point are
//!   trusted the same way; the segment holding the recovery point is scanned from the
//!   checkpointed position, and later segments from their start. Scanning checks every batch's
//!   framing, magic, CRC and offset order, and rebuilds the index entries it passes. So recovery
//!   time grows with the tail written since the last checkpoint, not with the log.
//! - An invalid batch with nothing valid after it is a torn tail: the file is cut there and later
//!   segments are removed. An invalid batch followed by a valid one, or any invalid batch in a
//!   trusted segment (found when its indexes fail the sanity check and it is walked), is
//!   corruption: reported as [`LogError::Corruption`] with segment and position (or cut there,
//!   later segments removed, when [`RecoveryMode::TruncateCorruption`] says so).
//! - Indexes that fail the sanity check, or are missing, are rebuilt from the log.
//!
//! Invariant: after recovery every byte of every segment is a valid batch, segments do not
//! overlap, everything up to the log end offset is durable, and the checkpoint says so.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::checkpoint::PartitionCheckpoint;
use crate::config::LogConfig;
use crate::error::{LogError, Result};
use crate::io::Storage;
use crate::leader_epoch::LeaderEpochCache;
use crate::offset::Offset;
use crate::segment::{self, LogSegment, SegmentLimits};

/// Name of the clean shutdown marker file in a log directory.
pub const CLEAN_SHUTDOWN_FILE: &str = ".strata-clean-shutdown";

/// What to do with corruption in the middle of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Report it as [`LogError::Corruption`] and refuse to open. Default.
    #[default]
    Strict,
    /// Truncate the log at the corrupt batch (losing everything after it), as an operator's
    /// explicit choice.
    TruncateCorruption,
}

/// What recovery did, for logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the previous shutdown was clean.
    pub clean_shutdown: bool,
    /// Segments whose batches were scanned.
    pub segments_scanned: usize,
    /// Bytes of batches scanned (CRC checked).
    pub bytes_scanned: u64,
    /// Bytes cut from a torn tail or corruption.
    pub bytes_truncated: u64,
    /// Segments removed after a torn tail or corruption.
    pub segments_removed: usize,
    /// Segments whose indexes failed the sanity check and were rebuilt.
    pub indexes_rebuilt: usize,
}

pub(crate) struct Recovered {
    pub segments: BTreeMap<Offset, LogSegment>,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    pub epochs: LeaderEpochCache,
    pub report: RecoveryReport,
}

pub(crate) fn limits(config: &LogConfig) -> SegmentLimits {
    SegmentLimits {
        index_interval_bytes: config.index_interval_bytes,
        index_bytes_max: config.segment_index_bytes,
    }
}

enum Plan {
    Trusted,
    ScanFrom(u64, Offset, Option<(usize, usize)>),
}

fn is_temporary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".tmp") || n.ends_with(".cleaned") || n.ends_with(".deleted"))
}

/// Opens a segment below the recovery point. Its indexes are used if they pass the sanity
/// check; otherwise the segment is walked to rebuild them, and the walk's outcome is returned:
/// an invalid batch in it is corruption (all of it was durable), whatever follows.
fn open_trusted(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    base: Offset,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<(LogSegment, Option<Scanned>)> {
    let mut seg = LogSegment::open(storage, dir, base, limits(config), None)?;
    let file_len = seg.file().len().map_err(|e| LogError::io(seg.path(), e))?;
    let sane = seg.offset_index().is_sane(file_len, Offset(i64::MAX)) && seg.load_end().is_ok();
    if sane
        && seg.offset_index().is_sane(seg.size(), seg.next_offset())
        && seg.time_index().is_sane(seg.next_offset())
    {
        return Ok((seg, None));
    }
    tracing::warn!(segment = ?seg.path(), "index failed its sanity check; rebuilding it from the log");
    report.indexes_rebuilt += 1;
    drop(seg);
    let mut seg = LogSegment::open(storage, dir, base, limits(config), Some((0, 0)))?;
    let file_len = seg.file().len().map_err(|e| LogError::io(seg.path(), e))?;
    let out = seg.recover_from(0, base)?;
    report.segments_scanned += 1;
    report.bytes_scanned += out.valid_end;
    Ok((seg, Some(Scanned { out, file_len })))
}

/// A segment recovery walked, and what the walk found.
struct Scanned {
    out: segment::ScanOutcome,
    /// The file's length before the walk.
    file_len: u64,
}

pub(crate) fn recover(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    config: &LogConfig,
    mode: RecoveryMode,
) -> Result<Recovered> {
    storage
        .create_dir_all(dir)
        .map_err(|e| LogError::io(dir, e))?;
    let files = storage.list_dir(dir).map_err(|e| LogError::io(dir, e))?;
    let mut bases: Vec<Offset> = Vec::new();
    let mut index_files: Vec<(Offset, PathBuf)> = Vec::new();
    for f in &files {
        if is_temporary(f) {
            storage.remove(f).map_err(|e| LogError::io(f, e))?;
        } else if let Some(b) = segment::parse_file_name(f, segment::LOG_SUFFIX) {
            bases.push(b);
        } else if let Some(b) = segment::parse_file_name(f, segment::INDEX_SUFFIX)
            .or_else(|| segment::parse_file_name(f, segment::TIME_INDEX_SUFFIX))
        {
            index_files.push((b, f.clone()));
        }
    }
    bases.sort();
    for (b, f) in index_files {
        if bases.binary_search(&b).is_err() {
            storage.remove(&f).map_err(|e| LogError::io(&f, e))?;
        }
    }

    let marker = dir.join(CLEAN_SHUTDOWN_FILE);
    let clean = storage.exists(&marker);
    let checkpoint = match PartitionCheckpoint::read(storage.as_ref(), dir) {
        Ok(cp) => cp,
        Err(e) => {
            tracing::warn!(error = %e, "unreadable checkpoint; scanning the whole log");
            None
        }
    };
    let mut report = RecoveryReport {
        clean_shutdown: clean,
        ..RecoveryReport::default()
    };
    let mut epochs = LeaderEpochCache::load(storage.as_ref(), dir)?;

    let mut segments: BTreeMap<Offset, LogSegment> = BTreeMap::new();
    if bases.is_empty() {
        let start = checkpoint.map_or(Offset::ZERO, |c| c.log_start_offset);
        segments.insert(
            start,
            LogSegment::create(storage, dir, start, limits(config))?,
        );
    }
    let mut scanned: Vec<Offset> = Vec::new();
    let mut idx = 0usize;
    while let Some(&base) = bases.get(idx) {
        let plan = if clean {
            Plan::Trusted
        } else {
            match checkpoint {
                None => Plan::ScanFrom(0, base, Some((0, 0))),
                Some(cp) if base < cp.segment_base => Plan::Trusted,
                Some(cp) if base == cp.segment_base => Plan::ScanFrom(
                    cp.position,
                    cp.recovery_point,
                    Some((cp.index_entries, cp.time_index_entries)),
                ),
                Some(_) => Plan::ScanFrom(0, base, Some((0, 0))),
            }
        };
        let trusted = matches!(plan, Plan::Trusted);
        let (mut seg, scan) = match plan {
            Plan::Trusted => open_trusted(storage, dir, base, config, &mut report)?,
            Plan::ScanFrom(position, offset, keep) => {
                let mut seg = LogSegment::open(storage, dir, base, limits(config), keep)?;
                let file_len = seg.file().len().map_err(|e| LogError::io(seg.path(), e))?;
                let kept_sane = position <= file_len
                    && seg.offset_index().is_sane(position.max(1), offset)
                    && seg.time_index().is_sane(offset);
                let (position, offset) = if kept_sane {
                    (position, offset)
                } else {
                    if position > file_len {
                        tracing::warn!(segment = ?seg.path(), position, file_len, "segment is shorter than its checkpointed recovery point");
                    }
                    report.indexes_rebuilt += 1;
                    drop(seg);
                    seg = LogSegment::open(storage, dir, base, limits(config), Some((0, 0)))?;
                    (0, base)
                };
                let out = seg.recover_from(position, offset)?;
                report.segments_scanned += 1;
                report.bytes_scanned += out.valid_end - position;
                scanned.push(base);
                (seg, Some(Scanned { out, file_len }))
            }
        };
        if let Some(Scanned { out, file_len }) = scan
            && let Some(inv) = out.invalid
        {
            // A trusted segment was durable to its end: anything invalid in it is corruption.
            let corruption = inv.valid_batch_follows || trusted;
            if corruption && mode == RecoveryMode::Strict {
                return Err(LogError::Corruption {
                    segment: seg.path().to_path_buf(),
                    position: inv.position,
                    reason: inv.reason,
                });
            }
            tracing::warn!(
                segment = ?seg.path(),
                position = inv.position,
                reason = %inv.reason,
                corruption,
                "truncating the log at an invalid batch"
            );
            report.bytes_truncated += file_len - out.valid_end;
            seg.truncate_at(out.valid_end, out.next_offset)?;
            if !scanned.contains(&base) {
                scanned.push(base);
            }
            // Everything after the cut goes.
            for later in bases.drain(idx + 1..) {
                let s = LogSegment::open(storage, dir, later, limits(config), Some((0, 0)))?;
                report.bytes_truncated += s.file().len().map_err(|e| LogError::io(s.path(), e))?;
                report.segments_removed += 1;
                s.delete(storage.as_ref())?;
            }
        }
        if let Some((_, prev)) = segments.iter().next_back()
            && prev.next_offset() > seg.base_offset()
        {
            return Err(LogError::Corruption {
                segment: seg.path().to_path_buf(),
                position: 0,
                reason: format!(
                    "segment starts at {} but the previous one ends at {}",
                    seg.base_offset(),
                    prev.next_offset()
                ),
            });
        }
        if idx + 1 < bases.len() {
            seg.trim_indexes()?;
        }
        segments.insert(base, seg);
        idx += 1;
    }

    // Whatever survived in the scanned segments may still be only in the page cache (after a
    // process crash): make it durable so the recovery point can cover it.
    for base in &scanned {
        if let Some(seg) = segments.get(base) {
            seg.file()
                .sync_data()
                .map_err(|e| LogError::io(seg.path(), e))?;
        }
    }
    let (active_base, active) = segments.iter_mut().next_back().ok_or(LogError::Closed)?;
    let active_base = *active_base;
    active.grow_indexes()?;
    active.flush_indexes()?;
    let log_end_offset = active.next_offset();
    let active_size = active.size();
    let (index_entries, time_index_entries) =
        (active.offset_index().len(), active.time_index().len());
    let first_base = segments.keys().next().copied().unwrap_or(Offset::ZERO);
    let log_start_offset = checkpoint
        .map_or(first_base, |c| c.log_start_offset.max(first_base))
        .min(log_end_offset);

    let mut epochs_changed = epochs.truncate_from_end(log_end_offset);
    epochs_changed |= epochs.truncate_from_start(log_start_offset);
    if epochs_changed {
        epochs.save(storage.as_ref(), dir)?;
    }
    let recovered = PartitionCheckpoint {
        recovery_point: log_end_offset,
        segment_base: active_base,
        position: active_size,
        index_entries,
        time_index_entries,
        log_start_offset,
    };
    // A clean close left exactly this checkpoint: rewriting it (a file, an fdatasync, a rename
    // and a directory fsync) would only make opening thousands of logs slower.
    if checkpoint != Some(recovered) {
        recovered.write(storage.as_ref(), dir)?;
    }
    if clean {
        storage
            .remove(&marker)
            .map_err(|e| LogError::io(&marker, e))?;
        storage.sync_dir(dir).map_err(|e| LogError::io(dir, e))?;
    }
    Ok(Recovered {
        segments,
        log_start_offset,
        log_end_offset,
        epochs,
        report,
    })
}
