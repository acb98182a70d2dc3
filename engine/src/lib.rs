//! # strata-engine
//!
//! One partition's log on one disk: a directory of segments (`.log` files of Kafka RecordBatch v2
//! bytes exactly as clients send them, with memory-mapped sparse `.index` and `.timeindex`
//! files), appended through a per-data-directory commit pipeline that batches fdatasyncs (group
//! commit) on io_uring, read as file slices ready for sendfile/splice, and recovered after a
//! crash by scanning only the tail written since the last recovery-point checkpoint.
//!
//! The engine knows nothing of sockets, replicas or Kafka RPCs; it is a library other projects
//! can embed.
//!
//! ```no_run
//! use strata_engine::{batch, CommitPipeline, Log, LogConfig, Offset, LeaderEpoch, ReadLimits};
//! use strata_engine::io::{open_backend, Backend};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let storage = open_backend(Backend::Auto)?;
//! let pipeline = CommitPipeline::start(storage, Default::default())?;
//! let log = Log::open("/tmp/strata-example/topic-0", LogConfig::default(), &pipeline.handle())?;
//! let records = batch::build(Offset(0), 0, &[(Some(b"key"), Some(b"value"))]);
//! let info = log.append(records.as_slice().into(), LeaderEpoch(0))?;
//! info.completion.wait_durable()?; // flush=always: acknowledged after fdatasync
//! let read = log.read(info.first_offset, ReadLimits::bytes(1 << 20))?;
//! assert!(read.slice.is_some());
//! log.close()?;
//! # Ok(()) }
//! ```
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
