//! A member of the metadata controller quorum: raft-rs's `RawNode` over the raft-engine log,
//! applying committed `MetadataRecord`s to its `MetadataImage`.
//!
//! Driven like raft-rs's examples: the owner calls `tick` on a timer, `step` with messages from
//! peers, `propose` on the leader, and `handle_ready` after each of those; `handle_ready`
//! persists entries and hard state (synced) before it returns the messages that depend on them,
//! applies committed entries, and snapshots the image every `snapshot_every` applied entries
//! (compacting the log so it stays bounded).
//!
//! One member per process: raft-engine caches the last block it read in a thread-local keyed
//! by file position, not by engine, so two members driven from one thread can be served each
//! other's blocks (its own assertion then fires). Tests that run several members in one process
//! give each its own thread (`replication/tests/support`).

use std::path::Path;

use raft::eraftpb::{EntryType, Message};
use raft::{Config, RawNode, StateRole};

use super::image::MetadataImage;
use super::raft_log::RaftLogStorage;
use super::records::MetadataRecord;

/// Errors of the quorum member.
#[derive(Debug, thiserror::Error)]
pub enum QuorumError {
    /// From raft-rs or its storage.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// Proposals go to the leader.
    #[error("not the controller leader (leader is {0:?})")]
    NotLeader(Option<u64>),
    /// A committed entry or snapshot did not decode.
    #[error("undecodable metadata: {0}")]
    Decode(#[from] serde_json::Error),
}

/// A voter's replication as the active controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoterProgress {
    /// The voter's Raft id.
    pub id: u64,
    /// The highest log index known to be on the voter.
    pub matched: u64,
    /// Whether it answered within the last election timeout.
    pub recent_active: bool,
}

/// The quorum's state as one member sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumStatus {
    /// The active controller, if known.
    pub leader: Option<u64>,
    /// The current term (Kafka's leader epoch of the metadata log).
    pub term: u64,
    /// The committed index (the metadata log's high watermark).
    pub commit: u64,
    /// Every voter's progress, by id; known only to the active controller (empty elsewhere).
    pub voters: Vec<VoterProgress>,
}

/// One controller of the quorum.
pub struct QuorumNode {
    id: u64,
    raw: RawNode<RaftLogStorage>,
    image: MetadataImage,
    applied: u64,
    snapshot_every: u64,
    since_snapshot: u64,
}

impl std::fmt::Debug for QuorumNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumNode")
            .field("id", &self.id)
            .field("applied", &self.applied)
            .finish()
    }
}

impl QuorumNode {
    /// Opens the member `id` of a quorum of `voters`, with its log in `dir`. A new log is
    /// bootstrapped with `voters`; an existing one resumes from its snapshot and log.
    pub fn open(
        id: u64,
        voters: &[u64],
        dir: &Path,
        snapshot_every: u64,
    ) -> Result<QuorumNode, QuorumError> {
        let storage = RaftLogStorage::open(dir)?;
        if storage.is_empty() {
            storage.bootstrap(voters)?;
        }
        let snapshot = storage.last_snapshot();
        let image = MetadataImage::from_snapshot_bytes(&snapshot.data)?;
        let applied = snapshot.get_metadata().index;
        let config = Config {
            id,
            // With the owner's 50 ms tick: heartbeats every 50 ms, elections after 300-600 ms
            // of silence (raft-rs randomizes in [election_tick, 2 * election_tick)).
            election_tick: 6,
            heartbeat_tick: 1,
            applied,
            check_quorum: true,
            pre_vote: true,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            ..Config::default()
        };
        config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&config, storage, &logger)?;
        Ok(QuorumNode {
            id,
            raw,
            image,
            applied,
            snapshot_every: snapshot_every.max(1),
            since_snapshot: 0,
        })
    }

    /// This member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether this member is the active controller.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current Raft term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The active controller, if known.
    pub fn leader_id(&self) -> Option<u64> {
        let l = self.raw.raft.leader_id;
        (l != raft::INVALID_ID).then_some(l)
    }

    /// The quorum as this member sees it: the voters' progress only on the active
    /// controller.
    pub fn status(&self) -> QuorumStatus {
        let mut voters: Vec<VoterProgress> = if self.is_leader() {
            self.raw
                .raft
                .prs()
                .iter()
                .map(|(id, p)| VoterProgress {
                    id: *id,
                    matched: p.matched,
                    recent_active: p.recent_active || *id == self.id,
                })
                .collect()
        } else {
            Vec::new()
        };
        voters.sort_by_key(|v| v.id);
        QuorumStatus {
            leader: self.leader_id(),
            term: self.term(),
            commit: self.raw.raft.raft_log.committed,
            voters,
        }
    }

    /// The metadata as of the last applied record.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Entries in the Raft log now (bounded by snapshots).
    pub fn log_entries(&self) -> u64 {
        self.raw.store().entry_count()
    }

    /// One timer tick (the owner calls it every 100 ms, say).
    pub fn tick(&mut self) {
        self.raw.tick();
    }

    /// A message from a peer.
    pub fn step(&mut self, m: Message) -> Result<(), QuorumError> {
        self.raw.step(m)?;
        Ok(())
    }

    /// Proposes records (one Raft entry, applied atomically). Returns the entry's index: the
    /// records are in the image once [`QuorumNode::applied`] reaches it (while this member stays
    /// leader in the same term).
    pub fn propose(&mut self, records: &[MetadataRecord]) -> Result<u64, QuorumError> {
        if !self.is_leader() {
            return Err(QuorumError::NotLeader(self.leader_id()));
        }
        let data = serde_json::to_vec(records)?;
        self.raw.propose(vec![], data)?;
        Ok(self.last_index())
    }

    /// Index of the last entry in this member's log.
    pub fn last_index(&self) -> u64 {
        self.raw.raft.raft_log.last_index()
    }

    /// The active controller `leader` is known to be gone (its process refuses connections):
    /// this member campaigns at once, without waiting out the election timeout and the
    /// leader's lease (raft-rs's leadership-transfer campaign, which the other voters do not
    /// hold back for the lease). Safety does not rest on the evidence: a vote still needs an
    /// up-to-date log and a majority. Returns whether it campaigned (not if `leader` is no
    /// longer the leader this member knows, or if this member leads).
    pub fn leader_gone(&mut self, leader: u64) -> Result<bool, QuorumError> {
        if self.is_leader() || self.leader_id() != Some(leader) {
            return Ok(false);
        }
        let mut m = Message::default();
        m.set_msg_type(raft::eraftpb::MessageType::MsgTimeoutNow);
        m.from = leader;
        m.to = self.id;
        m.term = self.term();
        self.raw.step(m)?;
        Ok(true)
    }

    /// Campaigns at once (a quorum of one elects itself without waiting for a timeout).
    pub fn campaign(&mut self) -> Result<(), QuorumError> {
        self.raw.campaign()?;
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<raft::eraftpb::Entry>) -> Result<(), QuorumError> {
        for e in entries {
            if e.get_entry_type() == EntryType::EntryNormal && !e.data.is_empty() {
                let records: Vec<MetadataRecord> = serde_json::from_slice(&e.data)?;
                for r in &records {
                    self.image.apply(r);
                }
            }
            self.applied = e.index;
            self.since_snapshot += 1;
        }
        Ok(())
    }

    /// Processes whatever raft-rs has ready: returns the messages to send to peers.
    pub fn handle_ready(&mut self) -> Result<Vec<Message>, QuorumError> {
        let mut out = Vec::new();
        if !self.raw.has_ready() {
            return Ok(out);
        }
        let mut ready = self.raw.ready();
        out.extend(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snap = ready.snapshot().clone();
            self.raw.store().apply_snapshot(&snap)?;
            self.image = MetadataImage::from_snapshot_bytes(&snap.data)?;
            self.applied = snap.get_metadata().index;
            self.since_snapshot = 0;
        }
        let committed = ready.take_committed_entries();
        self.apply_entries(committed)?;
        self.raw.store().persist(ready.entries(), ready.hs())?;
        out.extend(ready.take_persisted_messages());
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.store().set_commit(commit)?;
        }
        out.extend(light.take_messages());
        let committed = light.take_committed_entries();
        self.apply_entries(committed)?;
        self.raw.advance_apply();
        // Snapshots are sent fire-and-forget: report them done so the leader goes back to probing
        // the follower (a lost snapshot is then requested again) instead of waiting forever.
        for m in &out {
            if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                self.raw.report_snapshot(m.to, raft::SnapshotStatus::Finish);
            }
        }
        if self.since_snapshot >= self.snapshot_every && self.applied > 0 {
            let data = self.image.to_snapshot_bytes();
            self.raw.store().snapshot_at(self.applied, data)?;
            self.since_snapshot = 0;
        }
        Ok(out)
    }
}
