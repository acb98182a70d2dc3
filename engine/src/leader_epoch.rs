//! The leader epoch cache: for each leader epoch, the first offset appended in it. Followers
//! use it (through OffsetForLeaderEpoch) to find where their log diverges from a new leader's.
//!
//! Persisted to `leader-epoch-checkpoint` in Kafka's text format (version, count, then one
//! `epoch start_offset` line per entry) atomically on every change.
//!
//! Invariant: entries are strictly increasing in both epoch and start offset.

use std::path::{Path, PathBuf};

use crate::checkpoint::{read_small, write_atomically};
use crate::error::{LogError, Result};
use crate::io::Storage;
use crate::offset::{LeaderEpoch, Offset};

/// File name of the leader epoch checkpoint.
pub const LEADER_EPOCH_FILE: &str = "leader-epoch-checkpoint";

/// One entry: `epoch` started at `start_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: LeaderEpoch,
    /// First offset appended in that epoch.
    pub start_offset: Offset,
}

/// The epoch -> start offset cache of one log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// The entries, oldest first.
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// The latest epoch, if any.
    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`. Returns whether the cache changed. Entries
    /// that conflict (same or later epoch, or same or later start offset) are replaced.
    pub fn assign(&mut self, epoch: LeaderEpoch, start_offset: Offset) -> bool {
        if epoch.0 < 0 {
            return false;
        }
        if let Some(last) = self.entries.last()
            && last.epoch == epoch
            && last.start_offset <= start_offset
        {
            return false;
        }
        self.entries
            .retain(|e| e.epoch < epoch && e.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// The end offset of `epoch` as OffsetForLeaderEpoch answers it: the largest epoch <= the
    /// requested one, with the start offset of the next higher epoch (or `log_end_offset` if
    /// it is the latest). `None` when the requested epoch is older than every entry.
    pub fn end_offset_for(
        &self,
        epoch: LeaderEpoch,
        log_end_offset: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let idx = self.entries.iter().rposition(|e| e.epoch <= epoch)?;
        let found = self.entries.get(idx)?;
        let end = self
            .entries
            .get(idx + 1)
            .map_or(log_end_offset, |next| next.start_offset);
        Some((found.epoch, end))
    }

    /// Drops entries starting at or after `end_offset` (after the log is truncated to it).
    pub fn truncate_from_end(&mut self, end_offset: Offset) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.start_offset < end_offset);
        before != self.entries.len()
    }

    /// Moves the log start to `start_offset`: entries that end before it go, and the one that
    /// spans it starts there now.
    pub fn truncate_from_start(&mut self, start_offset: Offset) -> bool {
        let Some(idx) = self
            .entries
            .iter()
            .rposition(|e| e.start_offset <= start_offset)
        else {
            return false;
        };
        let changed = idx > 0 || self.entries.first().map(|e| e.start_offset) != Some(start_offset);
        self.entries.drain(..idx);
        if let Some(first) = self.entries.first_mut() {
            first.start_offset = start_offset;
        }
        changed
    }

    fn path(dir: &Path) -> PathBuf {
        dir.join(LEADER_EPOCH_FILE)
    }

    /// Loads the cache of a log directory (empty if there is no file).
    pub fn load(storage: &dyn Storage, dir: &Path) -> Result<LeaderEpochCache> {
        let path = LeaderEpochCache::path(dir);
        let Some(text) = read_small(storage, &path)? else {
            return Ok(LeaderEpochCache::default());
        };
        let bad = |reason: &str| LogError::Malformed {
            path: path.clone(),
            reason: reason.to_string(),
        };
        let mut lines = text.lines();
        if lines.next() != Some("0") {
            return Err(bad("unknown version"));
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| bad("missing count"))?;
        let mut cache = LeaderEpochCache::default();
        for _ in 0..count {
            let line = lines
                .next()
                .ok_or_else(|| bad("fewer entries than the count"))?;
            let mut parts = line.split_whitespace();
            let epoch: i32 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad epoch"))?;
            let start: i64 = parts
                .next()
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| bad("bad offset"))?;
            if let Some(last) = cache.entries.last()
                && (last.epoch.0 >= epoch || last.start_offset.0 >= start)
            {
                return Err(bad("entries not increasing"));
            }
            cache.entries.push(EpochEntry {
                epoch: LeaderEpoch(epoch),
                start_offset: Offset(start),
            });
        }
        Ok(cache)
    }

    /// Writes the cache atomically.
    pub fn save(&self, storage: &dyn Storage, dir: &Path) -> Result<()> {
        let mut text = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        write_atomically(storage, dir, LEADER_EPOCH_FILE, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> LeaderEpochCache {
        let mut c = LeaderEpochCache::default();
        for (e, o) in entries {
            c.assign(LeaderEpoch(*e), Offset(*o));
        }
        c
    }

    #[test]
    fn end_offset_for_answers_like_offset_for_leader_epoch() {
        let c = cache(&[(1, 0), (3, 10), (4, 20)]);
        assert_eq!(
            c.end_offset_for(LeaderEpoch(1), Offset(30)),
            Some((LeaderEpoch(1), Offset(10)))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(2), Offset(30)),
            Some((LeaderEpoch(1), Offset(10)))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(4), Offset(30)),
            Some((LeaderEpoch(4), Offset(30)))
        );
        assert_eq!(
            c.end_offset_for(LeaderEpoch(9), Offset(30)),
            Some((LeaderEpoch(4), Offset(30)))
        );
        assert_eq!(c.end_offset_for(LeaderEpoch(0), Offset(30)), None);
    }

    #[test]
    fn truncation_from_both_ends() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 20)]);
        c.truncate_from_end(Offset(15));
        assert_eq!(c.latest_epoch(), Some(LeaderEpoch(3)));
        c.truncate_from_start(Offset(12));
        assert_eq!(
            c.entries(),
            &[EpochEntry {
                epoch: LeaderEpoch(3),
                start_offset: Offset(12)
            }]
        );
    }

    #[test]
    fn a_new_epoch_replaces_conflicting_entries() {
        let mut c = cache(&[(1, 0), (3, 10)]);
        c.assign(LeaderEpoch(5), Offset(8));
        assert_eq!(c.entries().len(), 2);
        assert_eq!(c.latest_epoch(), Some(LeaderEpoch(5)));
    }
}
