//! Per-log configuration, with Kafka's topic-level names and defaults.

use crate::flush::FlushPolicy;

/// What happens to old segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Delete segments past `retention.ms` / `retention.bytes`.
    #[default]
    Delete,
    /// Keep the last record of each key (`cleanup.policy=compact`).
    Compact,
    /// Both (`cleanup.policy=compact,delete`): compacted, and segments past retention deleted.
    CompactAndDelete,
}

impl CleanupPolicy {
    /// Whether segments past `retention.ms` / `retention.bytes` are deleted.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactAndDelete)
    }

    /// Whether the log is compacted (the last record of each key kept).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactAndDelete)
    }
}

/// Configuration of one log. Field comments give Kafka's property name, the default and bounds.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `segment.bytes`: roll when the active segment would exceed this. Default: 1 GiB.
    /// Minimum: 14 (one batch header); at most 2 GiB - 1 (positions are u32).
    pub segment_bytes: u64,
    /// `segment.ms`: roll when the newest batch's max timestamp is this much later than the
    /// segment's first batch's. Default: 7 days.
    pub segment_ms: i64,
    /// `index.interval.bytes`: bytes of log between offset index entries. Default: 4096.
    pub index_interval_bytes: u64,
    /// `segment.index.bytes`: preallocated size of each index file. Default: 10 MiB.
    /// Minimum: 12.
    pub segment_index_bytes: usize,
    /// `retention.bytes`: delete old segments while the log is larger. Default: -1 (none).
    pub retention_bytes: i64,
    /// `retention.ms`: delete segments whose newest record is older. Default: 7 days; -1: none.
    pub retention_ms: i64,
    /// `max.message.bytes`: largest batch accepted. Default: 1048588.
    pub max_message_bytes: usize,
    /// `flush` policy (Strata's; Kafka uses `flush.messages`/`flush.ms`). Default: `Always`.
    pub flush: FlushPolicy,
    /// `cleanup.policy`. Default: `Delete`.
    pub cleanup_policy: CleanupPolicy,
    /// How often (by bytes made durable) the recovery point is checkpointed, which bounds the
    /// tail that recovery scans after a crash. Default: 16 MiB.
    pub recovery_checkpoint_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            retention_bytes: -1,
            retention_ms: 7 * 24 * 3600 * 1000,
            max_message_bytes: 1_048_588,
            flush: FlushPolicy::Always,
            cleanup_policy: CleanupPolicy::Delete,
            recovery_checkpoint_bytes: 16 << 20,
        }
    }
}

impl LogConfig {
    /// Checks the bounds documented on each field.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 14 || self.segment_bytes > u64::from(i32::MAX as u32) {
            return Err(format!(
                "segment.bytes {} outside [14, 2147483647]",
                self.segment_bytes
            ));
        }
        if self.segment_index_bytes < 12 {
            return Err(format!(
                "segment.index.bytes {} below 12",
                self.segment_index_bytes
            ));
        }
        if self.segment_ms <= 0 {
            return Err(format!("segment.ms {} must be positive", self.segment_ms));
        }
        if self.max_message_bytes < crate::batch::HEADER_BYTES {
            return Err(format!(
                "max.message.bytes {} below a batch header",
                self.max_message_bytes
            ));
        }
        if let FlushPolicy::Interval(0) = self.flush {
            return Err("flush interval must be at least 1 ms".into());
        }
        Ok(())
    }
}
