//! The time index: entries of (max timestamp so far: i64, offset relative to the segment's base
//! offset: u32), big-endian, 12 bytes each. An entry is added with an offset index entry when the
//! batch's max timestamp exceeds every earlier one, so timestamps in the index only grow.

use std::io;
use std::sync::Arc;

use super::{IndexFile, be_i64, be_u32};
use crate::io::{Storage, StorageFile};
use crate::offset::Offset;

/// Bytes per time index entry.
pub const ENTRY_BYTES: usize = 12;
const _: () = assert!(ENTRY_BYTES == 12);

/// One entry: records up to `timestamp` lie at or after `offset`... more precisely, the batch at
/// `offset` is the first whose max timestamp reached `timestamp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampOffset {
    /// A batch max timestamp.
    pub timestamp: i64,
    /// Base offset of that batch.
    pub offset: Offset,
}

/// The sparse time index of one segment.
#[derive(Debug)]
pub struct TimeIndex {
    base_offset: Offset,
    inner: IndexFile<ENTRY_BYTES>,
}

impl TimeIndex {
    /// Opens the index file, keeping at most `keep_entries` stored entries.
    pub fn open(
        storage: &Arc<dyn Storage>,
        file: Arc<dyn StorageFile>,
        base_offset: Offset,
        max_bytes: usize,
        keep_entries: usize,
    ) -> io::Result<TimeIndex> {
        Ok(TimeIndex {
            base_offset,
            inner: IndexFile::open(storage, file, max_bytes, keep_entries)?,
        })
    }

    fn decode(&self, e: &[u8]) -> TimestampOffset {
        TimestampOffset {
            timestamp: be_i64(e, 0),
            offset: self.base_offset.plus(i64::from(be_u32(e, 8))),
        }
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.inner.len() == 0
    }

    /// Whether no more entries fit.
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<TimestampOffset> {
        let n = self.inner.len();
        n.checked_sub(1)
            .and_then(|i| self.inner.entry(i))
            .map(|e| self.decode(e))
    }

    /// Adds an entry if `timestamp` is larger than the last one's.
    pub fn maybe_append(&mut self, timestamp: i64, offset: Offset) -> bool {
        if let Some(last) = self.last()
            && (timestamp <= last.timestamp || offset <= last.offset)
        {
            return true;
        }
        let rel = offset.0 - self.base_offset.0;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&rel),
            "relative offset overflow"
        );
        let mut e = [0u8; ENTRY_BYTES];
        e[..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..].copy_from_slice(&(rel as u32).to_be_bytes());
        self.inner.push(&e)
    }

    /// The last entry with timestamp < `timestamp`: batches before its offset cannot hold a
    /// record with a timestamp >= `timestamp`... so scanning may start there.
    pub fn lookup(&self, timestamp: i64) -> TimestampOffset {
        self.inner
            .floor(timestamp.saturating_sub(1), |e| be_i64(e, 0))
            .and_then(|i| self.inner.entry(i))
            .map(|e| self.decode(e))
            .unwrap_or(TimestampOffset {
                timestamp: i64::MIN,
                offset: self.base_offset,
            })
    }

    /// Removes every entry at or after `offset`.
    pub fn truncate_to(&mut self, offset: Offset) {
        let keep = self
            .entries()
            .iter()
            .take_while(|e| e.offset < offset)
            .count();
        self.inner.truncate_entries(keep);
    }

    /// All entries, in order.
    pub fn entries(&self) -> Vec<TimestampOffset> {
        (0..self.inner.len())
            .filter_map(|i| self.inner.entry(i))
            .map(|e| self.decode(e))
            .collect()
    }

    /// Checks increasing timestamps and offsets below `next_offset`.
    pub fn is_sane(&self, next_offset: Offset) -> bool {
        let es = self.entries();
        es.iter()
            .zip(es.iter().skip(1))
            .all(|(a, b)| a.timestamp < b.timestamp && a.offset < b.offset)
            && es
                .iter()
                .all(|e| e.offset < next_offset.max(self.base_offset.plus(1)))
    }

    /// Makes the entries durable.
    pub fn flush(&self) -> io::Result<()> {
        self.inner.flush()
    }

    /// Trims the file to its entries.
    pub fn trim(&mut self) -> io::Result<()> {
        self.inner.trim()
    }

    /// Makes room for `max_bytes` of entries again.
    pub fn grow(&mut self, max_bytes: usize) -> io::Result<()> {
        self.inner.grow(max_bytes)
    }

    /// Makes the entries part of the file without waiting for the disk.
    pub fn publish(&self) -> io::Result<()> {
        self.inner.publish()
    }

    /// The index file's path.
    pub fn path(&self) -> &std::path::Path {
        self.inner.path()
    }
}
