#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]
#![deny(clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]

pub mod batch;
pub mod checkpoint;
pub mod compaction;
pub mod completion;
pub mod config;
pub mod error;
pub mod flush;
pub mod index;
pub mod io;
pub mod leader_epoch;
pub mod log;
pub mod offset;
pub mod recovery;
pub mod segment;

pub use compaction::CompactionStats;
pub use completion::{Completion, Stage};
pub use config::{CleanupPolicy, LogConfig};
pub use error::{BatchError, LogError, Result};
pub use flush::{CommitPipeline, FlushPolicy, PipelineConfig, PipelineHandle, PipelineStats};
pub use leader_epoch::LeaderEpochCache;
pub use log::{
    AppendInfo, CleanupStats, FileSlice, Log, MappedSlice, ReadLimits, ReadResult, SegmentIndexes,
};
pub use offset::{LeaderEpoch, Offset};
pub use recovery::{RecoveryMode, RecoveryReport};
