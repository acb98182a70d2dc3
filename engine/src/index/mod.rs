//! Sparse indexes of a segment: [`OffsetIndex`] (relative offset -> file position) and
//! [`TimeIndex`] (timestamp -> relative offset).
//!
//! Both are fixed-size entries in a preallocated, memory-mapped file, appended in increasing
//! order and searched by binary search. They are caches of the log: no checksum, flushed when the
//! segment rolls or the recovery point is checkpointed, rebuilt from the log after an unclean
//! shutdown, and rebuilt whenever a sanity check fails. Invariant: entries are strictly
//! increasing in their key and the file holds `entries * ENTRY_BYTES` meaningful bytes.

pub mod offset_index;
pub mod time_index;

pub use offset_index::OffsetIndex;
pub use time_index::TimeIndex;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::io::{IndexMap, Storage, StorageFile};

/// A file of fixed-size entries behind a memory map. The map does not need the file open, so
/// no descriptor is kept: the file is opened again only to trim or grow it (a roll, a close, a
/// truncation). With thousands of partitions that halves the descriptors a broker holds.
#[derive(Debug)]
pub(crate) struct IndexFile<const ENTRY: usize> {
    storage: Arc<dyn Storage>,
    path: PathBuf,
    map: Option<Box<dyn IndexMap>>,
    entries: usize,
    max_entries: usize,
}

impl<const ENTRY: usize> IndexFile<ENTRY> {
    /// Opens (creating if needed) an index file that can hold `max_bytes`, keeping the first
    /// `keep_entries` entries already stored (clamped to what the file holds).
    pub fn open(
        storage: &Arc<dyn Storage>,
        file: Arc<dyn StorageFile>,
        max_bytes: usize,
        keep_entries: usize,
    ) -> io::Result<Self> {
        let stored = usize::try_from(file.len()?).unwrap_or(usize::MAX) / ENTRY;
        let max_entries = (max_bytes / ENTRY).max(stored).max(1);
        let map = storage.map_index(&file, max_entries * ENTRY)?;
        Ok(IndexFile {
            storage: storage.clone(),
            path: file.path().to_path_buf(),
            map: Some(map),
            entries: keep_entries.min(stored),
            max_entries,
        })
    }

    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }

    pub fn entry(&self, i: usize) -> Option<&[u8]> {
        if i >= self.entries {
            return None;
        }
        self.map.as_ref()?.bytes().get(i * ENTRY..(i + 1) * ENTRY)
    }

    pub fn push(&mut self, bytes: &[u8; ENTRY]) -> bool {
        if self.is_full() {
            return false;
        }
        let i = self.entries;
        let Some(map) = self.map.as_mut() else {
            return false;
        };
        let Some(slot) = map.bytes_mut().get_mut(i * ENTRY..(i + 1) * ENTRY) else {
            return false;
        };
        slot.copy_from_slice(bytes);
        self.entries += 1;
        true
    }

    pub fn truncate_entries(&mut self, n: usize) {
        self.entries = self.entries.min(n);
    }

    /// Index of the last entry whose key (decoded by `key`) is <= `target`.
    pub fn floor(&self, target: i64, key: impl Fn(&[u8]) -> i64) -> Option<usize> {
        let (mut lo, mut hi) = (0usize, self.entries);
        // Invariant: entries[..lo] have key <= target, entries[hi..] have key > target.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let k = self.entry(mid).map(&key)?;
            if k <= target {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo.checked_sub(1)
    }

    pub fn flush(&self) -> io::Result<()> {
        match &self.map {
            Some(m) => m.flush(self.entries * ENTRY),
            None => Ok(()),
        }
    }

    /// Makes the entries part of the file without waiting for the disk (see
    /// [`IndexMap::publish`]): an fdatasync of the file then makes them durable.
    pub fn publish(&self) -> io::Result<()> {
        match &self.map {
            Some(m) => m.publish(self.entries * ENTRY),
            None => Ok(()),
        }
    }

    /// Trims the file to its entries and maps exactly those (on roll and on close): the index
    /// of an inactive segment takes no more space than its entries.
    pub fn trim(&mut self) -> io::Result<()> {
        if let Some(map) = self.map.take() {
            map.flush(self.entries * ENTRY)?;
        }
        let len = self.entries * ENTRY;
        let file = self.storage.open(&self.path, false)?;
        file.set_len(len as u64)?;
        file.sync_data()?;
        self.max_entries = self.entries;
        if len > 0 {
            self.map = Some(self.storage.map_index(&file, len)?);
        }
        Ok(())
    }

    /// Re-maps the file with room for `max_bytes` of entries (a segment that becomes active
    /// again after `truncate_to`).
    pub fn grow(&mut self, max_bytes: usize) -> io::Result<()> {
        let max_entries = (max_bytes / ENTRY).max(self.entries).max(1);
        if max_entries <= self.max_entries && self.map.is_some() {
            return Ok(());
        }
        if let Some(map) = self.map.take() {
            map.flush(self.entries * ENTRY)?;
        }
        let file = self.storage.open(&self.path, false)?;
        self.map = Some(self.storage.map_index(&file, max_entries * ENTRY)?);
        self.max_entries = max_entries;
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_be_bytes(a)
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    i64::from_be_bytes(a)
}
