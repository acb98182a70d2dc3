//! The offset index: entries of (offset relative to the segment's base offset: u32, position of
//! the batch in the `.log` file: u32), both big-endian, 8 bytes each, one every
//! `index.interval.bytes` of log. A lookup returns the last entry at or before an offset; the
//! reader then scans batch headers forward from that position.

use std::io;
use std::sync::Arc;

use super::{IndexFile, be_u32};
use crate::io::{Storage, StorageFile};
use crate::offset::Offset;

/// Bytes per offset index entry.
pub const ENTRY_BYTES: usize = 8;
const _: () = assert!(ENTRY_BYTES == 8);

/// One entry: the batch starting at `offset` lies at byte `position` of the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetPosition {
    /// Absolute offset (a batch's base offset).
    pub offset: Offset,
    /// Byte position in the segment file.
    pub position: u32,
}

/// The sparse offset index of one segment.
#[derive(Debug)]
pub struct OffsetIndex {
    base_offset: Offset,
    inner: IndexFile<ENTRY_BYTES>,
}

impl OffsetIndex {
    /// Opens the index file, keeping at most `keep_entries` stored entries.
    pub fn open(
        storage: &Arc<dyn Storage>,
        file: Arc<dyn StorageFile>,
        base_offset: Offset,
        max_bytes: usize,
        keep_entries: usize,
    ) -> io::Result<OffsetIndex> {
        Ok(OffsetIndex {
            base_offset,
            inner: IndexFile::open(storage, file, max_bytes, keep_entries)?,
        })
    }

    fn decode(&self, e: &[u8]) -> OffsetPosition {
        OffsetPosition {
            offset: self.base_offset.plus(i64::from(be_u32(e, 0))),
            position: be_u32(e, 4),
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

    /// Whether no more entries fit (the segment must roll).
    pub fn is_full(&self) -> bool {
        self.inner.is_full()
    }

    /// The last entry, if any.
    pub fn last(&self) -> Option<OffsetPosition> {
        let n = self.inner.len();
        n.checked_sub(1)
            .and_then(|i| self.inner.entry(i))
            .map(|e| self.decode(e))
    }

    /// Adds an entry. Entries must increase in offset and position.
    pub fn append(&mut self, offset: Offset, position: u32) -> bool {
        let rel = offset.0 - self.base_offset.0;
        assert!(
            (0..=i64::from(u32::MAX)).contains(&rel),
            "offset {offset} not representable relative to base {}",
            self.base_offset
        );
        if let Some(last) = self.last() {
            assert!(
                last.offset < offset && last.position < position,
                "offset index entries must increase"
            );
        }
        let mut e = [0u8; ENTRY_BYTES];
        e[..4].copy_from_slice(&(rel as u32).to_be_bytes());
        e[4..].copy_from_slice(&position.to_be_bytes());
        self.inner.push(&e)
    }

    /// The last entry with offset <= `offset`, or the segment start.
    pub fn lookup(&self, offset: Offset) -> OffsetPosition {
        let rel = offset.0 - self.base_offset.0;
        self.inner
            .floor(rel, |e| i64::from(be_u32(e, 0)))
            .and_then(|i| self.inner.entry(i))
            .map(|e| self.decode(e))
            .unwrap_or(OffsetPosition {
                offset: self.base_offset,
                position: 0,
            })
    }

    /// The last entry with position <= `position`, or the segment start.
    pub fn lookup_by_position(&self, position: u32) -> OffsetPosition {
        self.inner
            .floor(i64::from(position), |e| i64::from(be_u32(e, 4)))
            .and_then(|i| self.inner.entry(i))
            .map(|e| self.decode(e))
            .unwrap_or(OffsetPosition {
                offset: self.base_offset,
                position: 0,
            })
    }

    /// Removes every entry at or after `offset`.
    pub fn truncate_to(&mut self, offset: Offset) {
        let rel = offset.0 - self.base_offset.0;
        let keep = self
            .inner
            .floor(rel - 1, |e| i64::from(be_u32(e, 0)))
            .map_or(0, |i| i + 1);
        self.inner.truncate_entries(keep);
    }

    /// Removes every entry at or after byte `position`.
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self
            .inner
            .floor(i64::from(position) - 1, |e| i64::from(be_u32(e, 4)))
            .map_or(0, |i| i + 1);
        self.inner.truncate_entries(keep);
    }

    /// All entries, in order.
    pub fn entries(&self) -> Vec<OffsetPosition> {
        (0..self.inner.len())
            .filter_map(|i| self.inner.entry(i))
            .map(|e| self.decode(e))
            .collect()
    }

    /// Checks the index against the segment: increasing entries, positions inside the file,
    /// offsets below `next_offset`. A failing index is rebuilt from the log.
    pub fn is_sane(&self, log_bytes: u64, next_offset: Offset) -> bool {
        let mut prev: Option<OffsetPosition> = None;
        for e in self.entries() {
            if u64::from(e.position) >= log_bytes.max(1)
                || e.offset >= next_offset.max(self.base_offset.plus(1))
            {
                return false;
            }
            if let Some(p) = prev
                && (p.offset >= e.offset || p.position >= e.position)
            {
                return false;
            }
            prev = Some(e);
        }
        true
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
