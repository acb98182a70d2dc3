//! Log compaction (`cleanup.policy=compact`): keep only the last record of each key.
//!
//! A pass builds a map from key to the offset of its latest record over the whole log, then
//! rewrites each inactive segment without the records that a later one supersedes (as a sealed
//! segment with its indexes, under `.cleaned` names), and swaps the rewritten files in with
//! atomic renames. Reading and rewriting take no lock: appends and fetches go on; only the swap
//! takes the log's lock. Batches keep their base offset and last offset delta
//! (so offsets never change and gaps appear instead); a batch left with no record is dropped.
//!
//! Limits (documented, deliberate): records of compressed batches are neither removed nor used
//! to supersede older records (the batch is kept whole; compaction only ever keeps more than it
//! must), tombstones are kept, and the active segment is never rewritten. Transactional batches
//! and control batches (markers) are kept whole and supersede nothing, for the same reason:
//! which of their records count is decided by a marker the engine does not interpret.
//!
//! Invariant: for every key, the record with the highest offset survives; no record's offset
//! changes; every rewritten batch passes validation.

use std::collections::HashMap;

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::log::{CompactionPlan, Log, SegmentSnapshot};
use crate::offset::Offset;
use crate::recovery;
use crate::segment::LogSegment;

/// Counts of a compaction pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Segments rewritten.
    pub segments_rewritten: usize,
    /// Records removed.
    pub records_removed: u64,
    /// Bytes before and after, over the rewritten segments.
    pub bytes_before: u64,
    /// Bytes after.
    pub bytes_after: u64,
}

/// A segment's bytes and the (position, header) of each of its batches.
type Batches = (Vec<u8>, Vec<(usize, BatchHeader)>);

/// Every batch of a segment as the plan saw it (`size` bytes, all durable).
fn read_batches(seg: &SegmentSnapshot) -> Result<Batches> {
    let path = seg.file.path().to_path_buf();
    let len = usize::try_from(seg.size).map_err(|_| LogError::Corruption {
        segment: path.clone(),
        position: 0,
        reason: "segment larger than memory".into(),
    })?;
    let mut bytes = vec![0u8; len];
    let mut read = 0usize;
    while let Some(rest) = bytes.get_mut(read..).filter(|r| !r.is_empty()) {
        let n = seg
            .file
            .read_at(rest, read as u64)
            .map_err(|e| LogError::io(&path, e))?;
        if n == 0 {
            return Err(LogError::Corruption {
                segment: path,
                position: read as u64,
                reason: "short read during compaction".into(),
            });
        }
        read += n;
    }
    if bytes.is_empty() {
        // A segment an earlier pass emptied.
        return Ok((bytes, Vec::new()));
    }
    let headers = batch::frame(&bytes, usize::MAX).map_err(|e| LogError::Corruption {
        segment: path,
        position: 0,
        reason: e.to_string(),
    })?;
    Ok((bytes, headers))
}

/// Rewrites one batch keeping only the records `keep` accepts. `None` if no record is left.
fn filter_batch(
    bytes: &[u8],
    keep: impl Fn(Offset, Option<&[u8]>) -> bool,
) -> Option<(Vec<u8>, u64)> {
    let header = batch::parse_header(bytes, 0).ok()?;
    let Some(records) = batch::records(bytes) else {
        return Some((bytes.to_vec(), 0));
    };
    let kept: Vec<_> = records
        .iter()
        .filter(|r| keep(header.base_offset.plus(i64::from(r.offset_delta)), r.key))
        .collect();
    let removed = (records.len() - kept.len()) as u64;
    if kept.is_empty() {
        return None;
    }
    if removed == 0 {
        return Some((bytes.to_vec(), 0));
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(bytes.get(..HEADER_BYTES)?);
    for r in &kept {
        out.extend_from_slice(r.raw);
    }
    batch::set_records_count(&mut out, kept.len() as i32);
    let length = (out.len() - batch::LOG_OVERHEAD) as i32;
    batch::set_batch_length(&mut out, length);
    batch::restamp_crc(&mut out);
    debug_assert!(batch::validate(&out, 0, batch::Origin::Replication, usize::MAX).is_ok());
    Some((out, removed))
}

/// One rewritten segment, sealed under its `.cleaned` names, waiting to be swapped in.
struct Rewritten {
    base: Offset,
    removed: u64,
    bytes_before: u64,
    bytes_after: u64,
}

/// The pass itself, without any lock: reads the plan's segments and writes the rewritten ones
/// beside them.
fn rewrite(plan: &CompactionPlan) -> Result<Vec<Rewritten>> {
    // 1. Latest offset of every key, over the whole log as the plan saw it.
    let mut latest: HashMap<Vec<u8>, Offset> = HashMap::new();
    for seg in &plan.segments {
        let (bytes, headers) = read_batches(seg)?;
        for (pos, h) in headers {
            let Some(one) = bytes.get(pos..pos + h.size()) else {
                continue;
            };
            // Transactional batches (their records and the markers that end them) are kept
            // whole and set no key's latest record: whether a record of an open or aborted
            // transaction supersedes an earlier one is decided by its marker, which the engine
            // does not interpret, so compaction never drops a record in favour of one.
            if h.is_transactional() {
                continue;
            }
            if let Some(records) = batch::records(one) {
                for r in records {
                    if let Some(k) = r.key {
                        latest.insert(k.to_vec(), h.base_offset.plus(i64::from(r.offset_delta)));
                    }
                }
            }
        }
    }
    // 2. Rewrite every inactive segment that loses a record.
    let Some((_active, inactive)) = plan.segments.split_last() else {
        return Ok(Vec::new());
    };
    let limits = recovery::limits(&plan.config);
    let mut out = Vec::new();
    for seg in inactive {
        let (bytes, headers) = read_batches(seg)?;
        let mut kept = Vec::with_capacity(bytes.len());
        let mut removed = 0u64;
        for (pos, h) in headers {
            let Some(one) = bytes.get(pos..pos + h.size()) else {
                continue;
            };
            if h.is_transactional() {
                kept.extend_from_slice(one);
                continue;
            }
            let keep = |off: Offset, key: Option<&[u8]>| {
                key.is_none_or(|k| latest.get(k).is_none_or(|l| *l == off))
            };
            match filter_batch(one, keep) {
                Some((b, r)) => {
                    removed += r;
                    kept.extend_from_slice(&b);
                }
                None => {
                    removed += batch::records(one).map_or(0, |r| r.len() as u64);
                }
            }
        }
        if removed == 0 {
            continue;
        }
        let mut cleaned = LogSegment::create_cleaned(&plan.storage, &plan.dir, seg.base, limits)?;
        cleaned.write_batches(&kept)?;
        cleaned.seal(plan.storage.as_ref())?;
        out.push(Rewritten {
            base: seg.base,
            removed,
            bytes_before: seg.size,
            bytes_after: cleaned.size(),
        });
    }
    Ok(out)
}

impl Log {
    /// Runs one compaction pass if the log's `cleanup.policy` is `compact`. The pass reads and
    /// rewrites without the log's lock (appends and reads go on); only the swap of the
    /// rewritten segments takes it. One pass per log at a time. A pass that a truncation or
    /// retention overtook is dropped (zero counts) and done again by the next.
    pub fn compact(&self) -> Result<CompactionStats> {
        self.compact_inner(|| {})
    }

    /// [`Log::compact`], calling `between` after the pass has read and rewritten the segments
    /// and before it swaps them in: tests run appends, reads and truncations there (none
    /// waits for the pass; a truncation or deletion makes it drop its result).
    #[cfg(feature = "internals")]
    pub fn compact_with(&self, between: impl FnOnce()) -> Result<CompactionStats> {
        self.compact_inner(between)
    }

    fn compact_inner(&self, between: impl FnOnce()) -> Result<CompactionStats> {
        let _one_pass = self.cleaner_lock();
        let Some(plan) = self.compaction_plan()? else {
            return Ok(CompactionStats::default());
        };
        let rewritten = match rewrite(&plan) {
            Ok(r) => r,
            Err(e) => {
                for seg in &plan.segments {
                    let (log, index, time) = LogSegment::cleaned_paths(&plan.dir, seg.base);
                    for p in [log, index, time] {
                        let _ = plan.storage.remove(&p);
                    }
                }
                return Err(e);
            }
        };
        between();
        let bases: Vec<Offset> = rewritten.iter().map(|r| r.base).collect();
        let mut stats = CompactionStats::default();
        if bases.is_empty() || !self.swap_compacted(&plan, &bases)? {
            return Ok(stats);
        }
        for r in &rewritten {
            stats.segments_rewritten += 1;
            stats.records_removed += r.removed;
            stats.bytes_before += r.bytes_before;
            stats.bytes_after += r.bytes_after;
        }
        Ok(stats)
    }
}
