//! Log compaction (`cleanup.policy=compact`): keep only the last record of each key.
//!
//! A pass builds a map from key to the offset of its latest record over the whole log, then
//! rewrites each inactive segment without the records that a later one supersedes, and swaps the
//! rewritten file in with an atomic rename. Batches keep their base offset and last offset delta
//! (so offsets never change and gaps appear instead); a batch left with no record is dropped.
//!
//! Limits (documented, deliberate): records of compressed batches are neither removed nor used
//! to supersede older records (the batch is kept whole; compaction only ever keeps more than it
//! must), tombstones are kept, and the active segment is never rewritten.
//!
//! Invariant: for every key, the record with the highest offset survives; no record's offset
//! changes; every rewritten batch passes validation.

use std::collections::HashMap;

use crate::batch::{self, HEADER_BYTES};
use crate::error::{LogError, Result};
use crate::log::{CompactionAccess, Log};
use crate::offset::Offset;
use crate::recovery;
use crate::segment::{self, LogSegment};

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

fn read_batches(seg: &LogSegment) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
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
                reason: "short read during compaction".into(),
            });
        }
        pos += h.size() as u64;
        out.push(bytes);
    }
    Ok(out)
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

fn compact_segments(acc: &mut CompactionAccess<'_>) -> Result<CompactionStats> {
    let mut stats = CompactionStats::default();
    if !acc.config.cleanup_policy.compacts() || acc.segments.len() < 2 {
        return Ok(stats);
    }
    // 1. Latest offset of every key, over the whole log.
    let mut latest: HashMap<Vec<u8>, Offset> = HashMap::new();
    for seg in acc.segments.values() {
        for bytes in read_batches(seg)? {
            let Ok(h) = batch::parse_header(&bytes, 0) else {
                continue;
            };
            if let Some(records) = batch::records(&bytes) {
                for r in records {
                    if let Some(k) = r.key {
                        latest.insert(k.to_vec(), h.base_offset.plus(i64::from(r.offset_delta)));
                    }
                }
            }
        }
    }
    // 2. Rewrite every inactive segment.
    let all: Vec<Offset> = acc.segments.keys().copied().collect();
    let Some((_active, inactive)) = all.split_last() else {
        return Ok(stats);
    };
    for base in inactive {
        let Some(seg) = acc.segments.get(base) else {
            continue;
        };
        let old_size = seg.size();
        let mut out = Vec::with_capacity(old_size as usize);
        let mut removed = 0u64;
        for bytes in read_batches(seg)? {
            let keep = |off: Offset, key: Option<&[u8]>| {
                key.is_none_or(|k| latest.get(k).is_none_or(|l| *l == off))
            };
            match filter_batch(&bytes, keep) {
                Some((b, r)) => {
                    removed += r;
                    out.extend_from_slice(&b);
                }
                None => {
                    removed += batch::records(&bytes).map_or(0, |r| r.len() as u64);
                }
            }
        }
        if removed == 0 {
            continue;
        }
        let log_path = seg.path().to_path_buf();
        let cleaned = acc.dir.join(format!(
            "{}.cleaned",
            segment::file_name(*base, segment::LOG_SUFFIX)
        ));
        let f = acc
            .storage
            .open(&cleaned, true)
            .map_err(|e| LogError::io(&cleaned, e))?;
        f.set_len(0).map_err(|e| LogError::io(&cleaned, e))?;
        f.write_at(&out, 0).map_err(|e| LogError::io(&cleaned, e))?;
        f.sync_data().map_err(|e| LogError::io(&cleaned, e))?;
        drop(f);
        // Swap: the rename is atomic; indexes are rebuilt from the new file.
        let old = acc.segments.remove(base);
        drop(old);
        acc.storage
            .rename(&cleaned, &log_path)
            .map_err(|e| LogError::io(&log_path, e))?;
        for suffix in [segment::INDEX_SUFFIX, segment::TIME_INDEX_SUFFIX] {
            let p = acc.dir.join(segment::file_name(*base, suffix));
            if acc.storage.exists(&p) {
                acc.storage.remove(&p).map_err(|e| LogError::io(&p, e))?;
            }
        }
        acc.storage
            .sync_dir(acc.dir)
            .map_err(|e| LogError::io(acc.dir, e))?;
        let mut seg = LogSegment::open(
            acc.storage,
            acc.dir,
            *base,
            recovery::limits(acc.config),
            Some((0, 0)),
        )?;
        let scan = seg.recover_from(0, *base)?;
        if let Some(inv) = scan.invalid {
            return Err(LogError::Corruption {
                segment: log_path,
                position: inv.position,
                reason: format!("compacted segment does not validate: {}", inv.reason),
            });
        }
        seg.trim_indexes()?;
        stats.segments_rewritten += 1;
        stats.records_removed += removed;
        stats.bytes_before += old_size;
        stats.bytes_after += seg.size();
        acc.segments.insert(*base, seg);
    }
    Ok(stats)
}

impl Log {
    /// Runs one compaction pass if the log's `cleanup.policy` is `compact`. Appends wait while
    /// it runs.
    pub fn compact(&self) -> Result<CompactionStats> {
        self.with_segments(compact_segments)
    }
}
