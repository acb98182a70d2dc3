//! Topics and partitions as this broker holds them: each partition owns its `Log` and the
//! idempotent-producer state of that log.
//!
//! Invariant: a partition's appends and its producer-sequence checks happen under one lock
//! (`Partition::append`), so a retried batch is checked against the state that includes every
//! batch appended before it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, RwLock};

use bytes::BytesMut;
use strata_engine::{AppendInfo, FlushPolicy, LeaderEpoch, Log, LogConfig, Offset, batch};
use uuid::Uuid;

use crate::error_code::ErrorCode;

/// How many recent batches per producer are remembered for duplicate detection (Kafka: 5, the
/// most in-flight requests an idempotent producer may have).
pub const PRODUCER_BATCHES_MAX: usize = 5;

/// One remembered batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ProducerBatch {
    first_seq: i32,
    last_seq: i32,
    base_offset: Offset,
}

/// What a partition knows of one idempotent producer.
#[derive(Clone, Debug, Default)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<ProducerBatch>,
}

/// Outcome of the sequence check of one batch.
#[derive(Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Append it.
    Append,
    /// Already appended at this base offset: acknowledge without appending.
    Duplicate(Offset),
    /// Refuse with this code.
    Reject(ErrorCode),
}

/// Per-partition idempotent producer state, rebuilt from the log at startup.
#[derive(Debug, Default)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
}

impl ProducerStates {
    /// Checks a batch from producer `pid` with `epoch` and sequences `first..=last`.
    pub fn check(&self, pid: i64, epoch: i16, first: i32, last: i32) -> SequenceCheck {
        let Some(entry) = self.producers.get(&pid) else {
            // A producer this partition has not seen: its first batch must start at 0.
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        };
        if epoch < entry.epoch {
            return SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch);
        }
        if epoch > entry.epoch {
            return if first == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
            };
        }
        if let Some(b) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first && b.last_seq == last)
        {
            return SequenceCheck::Duplicate(b.base_offset);
        }
        let expected = entry
            .batches
            .back()
            .map_or(0, |b| b.last_seq.wrapping_add(1));
        if first == expected {
            SequenceCheck::Append
        } else if entry
            .batches
            .iter()
            .any(|b| first <= b.last_seq && first >= b.first_seq)
        {
            SequenceCheck::Reject(ErrorCode::DuplicateSequenceNumber)
        } else {
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        }
    }

    /// Records an appended batch.
    pub fn record(&mut self, pid: i64, epoch: i16, first: i32, last: i32, base_offset: Offset) {
        let entry = self.producers.entry(pid).or_default();
        if epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.batches.push_back(ProducerBatch {
            first_seq: first,
            last_seq: last,
            base_offset,
        });
        while entry.batches.len() > PRODUCER_BATCHES_MAX {
            entry.batches.pop_front();
        }
    }

    /// Rebuilds the state by walking every batch header of the log.
    pub fn rebuild(log: &Log) -> strata_engine::Result<ProducerStates> {
        let mut st = ProducerStates::default();
        log.for_each_batch_header(|h| {
            if h.producer_id >= 0 && h.base_sequence >= 0 {
                st.record(
                    h.producer_id,
                    h.producer_epoch,
                    h.base_sequence,
                    h.base_sequence.wrapping_add(h.last_offset_delta),
                    h.base_offset,
                );
            }
        })?;
        Ok(st)
    }
}

/// Result of a partition append.
#[derive(Debug)]
pub enum AppendOutcome {
    /// Appended; wait on the completion.
    Appended(AppendInfo),
    /// A retried duplicate of a batch already in the log at this base offset.
    Duplicate(Offset),
}

/// One partition of a topic on this broker.
#[derive(Debug)]
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub index: i32,
    /// The log.
    pub log: Log,
    producers: Mutex<ProducerStates>,
}

impl Partition {
    /// Wraps an opened log, rebuilding producer state from it.
    pub fn new(topic: &str, index: i32, log: Log) -> strata_engine::Result<Partition> {
        let producers = ProducerStates::rebuild(&log)?;
        Ok(Partition {
            topic: topic.to_string(),
            index,
            log,
            producers: Mutex::new(producers),
        })
    }

    /// The high watermark consumers may read below. On a single broker it is the recovery
    /// point under `flush=always` (consumers never see a record that a crash could take back)
    /// and the written offset otherwise.
    pub fn high_watermark(&self) -> Offset {
        match self.log.flush_policy() {
            FlushPolicy::Always => self.log.recovery_point(),
            _ => self.log.written_offset(),
        }
    }

    /// Appends client batches after the idempotent producer checks.
    pub fn append(&self, records: BytesMut) -> Result<AppendOutcome, (ErrorCode, String)> {
        // Only the producer fields are needed here; `Log::append` validates every batch (CRC
        // included) once, before anything is written.
        let headers = batch::frame(&records, usize::MAX)
            .map_err(|e| (ErrorCode::CorruptMessage, e.to_string()))?;
        let idempotent: Vec<_> = headers
            .iter()
            .map(|(_, h)| h)
            .filter(|h| h.producer_id >= 0 && h.base_sequence >= 0)
            .collect();
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = idempotent.first() {
            if headers.len() != 1 {
                return Err((
                    ErrorCode::InvalidRequest,
                    "an idempotent produce carries one batch per partition".into(),
                ));
            }
            let last = h.base_sequence.wrapping_add(h.last_offset_delta);
            match producers.check(h.producer_id, h.producer_epoch, h.base_sequence, last) {
                SequenceCheck::Append => {}
                SequenceCheck::Duplicate(o) => return Ok(AppendOutcome::Duplicate(o)),
                SequenceCheck::Reject(code) => {
                    return Err((code, format!("sequence {} rejected", h.base_sequence)));
                }
            }
        }
        let info = self
            .log
            .append(records, LeaderEpoch(0))
            .map_err(|e| (ErrorCode::from(&e), e.to_string()))?;
        if let Some(h) = idempotent.first() {
            let last = h.base_sequence.wrapping_add(h.last_offset_delta);
            producers.record(
                h.producer_id,
                h.producer_epoch,
                h.base_sequence,
                last,
                info.first_offset,
            );
        }
        Ok(AppendOutcome::Appended(info))
    }
}

/// A topic on this broker.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: Uuid,
    /// Whether it is internal (`__consumer_offsets`).
    pub internal: bool,
    /// Its partitions, by index.
    pub partitions: RwLock<Vec<Arc<Partition>>>,
    /// Topic-level config overrides, by Kafka name.
    pub overrides: RwLock<std::collections::BTreeMap<String, String>>,
    /// The effective log config.
    pub config: RwLock<LogConfig>,
}

impl Topic {
    /// The partition with this index.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        let ps = self.partitions.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(index).ok().and_then(|i| ps.get(i).cloned())
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> usize {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

/// Whether `name` is a legal topic name (Kafka's rules).
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_checks_follow_kafka() {
        let mut st = ProducerStates::default();
        assert_eq!(st.check(7, 0, 0, 4), SequenceCheck::Append);
        st.record(7, 0, 0, 4, Offset(100));
        assert_eq!(st.check(7, 0, 0, 4), SequenceCheck::Duplicate(Offset(100)));
        assert_eq!(st.check(7, 0, 5, 9), SequenceCheck::Append);
        assert_eq!(
            st.check(7, 0, 7, 9),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
        assert_eq!(
            st.check(7, 0, 2, 3),
            SequenceCheck::Reject(ErrorCode::DuplicateSequenceNumber)
        );
        assert_eq!(st.check(7, 1, 0, 0), SequenceCheck::Append);
        st.record(7, 1, 0, 0, Offset(200));
        assert_eq!(
            st.check(7, 0, 5, 9),
            SequenceCheck::Reject(ErrorCode::InvalidProducerEpoch)
        );
        assert_eq!(
            st.check(8, 0, 3, 3),
            SequenceCheck::Reject(ErrorCode::OutOfOrderSequenceNumber)
        );
    }
}
