//! The Raft log of the metadata quorum on `raft-engine`, behind raft-rs's `Storage` trait.
//!
//! One raft-engine region holds the entries; the hard state, conf state and the last snapshot
//! (metadata image bytes plus index and term) are kept as messages of the same region and
//! written in the same synced batch as the entries they go with. A snapshot compacts the log
//! below it, which keeps the log bounded.
//!
//! Invariant: `first_index() == snapshot index + 1` whenever the log holds no entry at or below
//! the snapshot index (compaction follows every snapshot).

use std::path::Path;
use std::sync::RwLock;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};
use raft_engine::{Command, Config, Engine, LogBatch, MessageExt};

/// The raft-engine region of the metadata log.
const GROUP: u64 = 1;
const HARD_STATE: &[u8] = b"hard_state";
const CONF_STATE: &[u8] = b"conf_state";
const SNAPSHOT: &[u8] = b"snapshot";

#[derive(Clone)]
struct EntryExt;

impl MessageExt for EntryExt {
    type Entry = Entry;

    fn index(e: &Entry) -> u64 {
        e.index
    }
}

#[derive(Default)]
struct Meta {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
}

/// The metadata quorum's Raft log on disk.
pub struct RaftLogStorage {
    engine: Engine,
    meta: RwLock<Meta>,
}

impl std::fmt::Debug for RaftLogStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RaftLogStorage")
    }
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> raft::Error {
    raft::Error::Store(StorageError::Other(Box::new(e)))
}

impl RaftLogStorage {
    /// Opens (creating) the log in `dir`.
    pub fn open(dir: &Path) -> raft::Result<RaftLogStorage> {
        let config = Config {
            dir: dir.to_string_lossy().into_owned(),
            ..Config::default()
        };
        let engine = Engine::open(config).map_err(other)?;
        let hard_state = engine
            .get_message::<HardState>(GROUP, HARD_STATE)
            .map_err(other)?
            .unwrap_or_default();
        let conf_state = engine
            .get_message::<ConfState>(GROUP, CONF_STATE)
            .map_err(other)?
            .unwrap_or_default();
        let snapshot = engine
            .get_message::<Snapshot>(GROUP, SNAPSHOT)
            .map_err(other)?
            .unwrap_or_default();
        Ok(RaftLogStorage {
            engine,
            meta: RwLock::new(Meta {
                hard_state,
                conf_state,
                snapshot,
            }),
        })
    }

    fn meta(&self) -> std::sync::RwLockReadGuard<'_, Meta> {
        self.meta.read().unwrap_or_else(|p| p.into_inner())
    }

    fn meta_mut(&self) -> std::sync::RwLockWriteGuard<'_, Meta> {
        self.meta.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the log was never initialised with a membership.
    pub fn is_empty(&self) -> bool {
        self.meta().conf_state.voters.is_empty()
    }

    /// Sets the initial membership of a new quorum.
    pub fn bootstrap(&self, voters: &[u64]) -> raft::Result<()> {
        let cs = ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        };
        let mut batch = LogBatch::default();
        batch
            .put_message(GROUP, CONF_STATE.to_vec(), &cs)
            .map_err(other)?;
        self.engine.write(&mut batch, true).map_err(other)?;
        self.meta_mut().conf_state = cs;
        Ok(())
    }

    /// The last snapshot (empty if none).
    pub fn last_snapshot(&self) -> Snapshot {
        self.meta().snapshot.clone()
    }

    /// Persists new entries and the hard state in one synced write (before messages that depend
    /// on them are sent).
    pub fn persist(&self, entries: &[Entry], hard_state: Option<&HardState>) -> raft::Result<()> {
        let mut batch = LogBatch::default();
        if !entries.is_empty() {
            batch
                .add_entries::<EntryExt>(GROUP, entries)
                .map_err(other)?;
        }
        if let Some(hs) = hard_state {
            batch
                .put_message(GROUP, HARD_STATE.to_vec(), hs)
                .map_err(other)?;
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.engine.write(&mut batch, true).map_err(other)?;
        if let Some(hs) = hard_state {
            self.meta_mut().hard_state = hs.clone();
        }
        Ok(())
    }

    /// Records the commit index (from a light ready).
    pub fn set_commit(&self, commit: u64) -> raft::Result<()> {
        let mut hs = self.meta().hard_state.clone();
        hs.commit = commit;
        self.persist(&[], Some(&hs))
    }

    /// Installs a snapshot received from the leader (or made locally) and drops the log below it.
    pub fn apply_snapshot(&self, snapshot: &Snapshot) -> raft::Result<()> {
        let md = snapshot.get_metadata();
        let mut batch = LogBatch::default();
        batch
            .put_message(GROUP, SNAPSHOT.to_vec(), snapshot)
            .map_err(other)?;
        batch
            .put_message(GROUP, CONF_STATE.to_vec(), md.get_conf_state())
            .map_err(other)?;
        let mut hs = self.meta().hard_state.clone();
        hs.commit = hs.commit.max(md.index);
        hs.term = hs.term.max(md.term);
        batch
            .put_message(GROUP, HARD_STATE.to_vec(), &hs)
            .map_err(other)?;
        batch.add_command(
            GROUP,
            Command::Compact {
                index: md.index + 1,
            },
        );
        self.engine.write(&mut batch, true).map_err(other)?;
        let mut m = self.meta_mut();
        m.snapshot = snapshot.clone();
        m.conf_state = md.get_conf_state().clone();
        m.hard_state = hs;
        Ok(())
    }

    /// Makes a snapshot of the applied state at `index` and compacts the log below it.
    pub fn snapshot_at(&self, index: u64, data: Vec<u8>) -> raft::Result<()> {
        let term = raft::Storage::term(self, index)?;
        let mut s = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let md = s.mut_metadata();
        md.index = index;
        md.term = term;
        md.set_conf_state(self.meta().conf_state.clone());
        let mut batch = LogBatch::default();
        batch
            .put_message(GROUP, SNAPSHOT.to_vec(), &s)
            .map_err(other)?;
        self.engine.write(&mut batch, true).map_err(other)?;
        self.engine.compact_to(GROUP, index + 1);
        self.meta_mut().snapshot = s;
        Ok(())
    }

    /// Entries currently in the log (for tests and metrics).
    pub fn entry_count(&self) -> u64 {
        let first = raft::Storage::first_index(self).unwrap_or(1);
        let last = raft::Storage::last_index(self).unwrap_or(0);
        (last + 1).saturating_sub(first)
    }
}

impl raft::Storage for RaftLogStorage {
    fn initial_state(&self) -> raft::Result<RaftState> {
        let m = self.meta();
        Ok(RaftState::new(m.hard_state.clone(), m.conf_state.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.first_index()? {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index()? + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let mut out = Vec::with_capacity((high - low) as usize);
        let max = max_size.into().map(|m| m as usize);
        self.engine
            .fetch_entries_to::<EntryExt>(GROUP, low, high, max, &mut out)
            .map_err(other)?;
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.meta().snapshot.get_metadata().clone();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < self.first_index()? {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index()? {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        match self
            .engine
            .get_entry::<EntryExt>(GROUP, idx)
            .map_err(other)?
        {
            Some(e) => Ok(e.term),
            None => Err(raft::Error::Store(StorageError::Unavailable)),
        }
    }

    fn first_index(&self) -> raft::Result<u64> {
        let snap_index = self.meta().snapshot.get_metadata().index;
        Ok(self
            .engine
            .first_index(GROUP)
            .map_or(snap_index + 1, |f| f.max(snap_index + 1)))
    }

    fn last_index(&self) -> raft::Result<u64> {
        let snap_index = self.meta().snapshot.get_metadata().index;
        Ok(self
            .engine
            .last_index(GROUP)
            .map_or(snap_index, |l| l.max(snap_index)))
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        let s = self.meta().snapshot.clone();
        if s.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(s)
    }
}
