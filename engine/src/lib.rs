#![doc = include_str!("../README.md")]
#![deny(missing_docs)]
#![deny(private_interfaces, private_bounds, unnameable_types)]
#![deny(clippy::unwrap_used)]
#![deny(clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing))]
// Without `internals`, the helpers only the broker calls (stamping, segment and index
// inspection) have no caller in the crate; with it they are public and never "dead".
#![cfg_attr(not(feature = "internals"), allow(dead_code))]

// The public surface is the re-exports below and, with `simulation`, the `io` module. With the
// `internals` feature (the broker's) every module is public.
macro_rules! modules {
    ($feature:literal: $($name:ident),* $(,)?) => {$(
        #[cfg(feature = $feature)]
        pub mod $name;
        #[cfg(not(feature = $feature))]
        mod $name;
    )*};
}
modules!("internals": batch, checkpoint, compaction, completion, compression, config, error, flush, index, leader_epoch, log, offset, record, recovery, segment, verification);
modules!("simulation": io);

pub use compaction::CompactionStats;
pub use completion::{Completion, Stage, StageFuture};
pub use compression::{CodecError, Compression};
pub use config::{CleanupPolicy, LogConfig};
pub use error::{BatchError, LogError, Result};
pub use flush::{CommitPipeline, FlushPolicy, PipelineConfig, PipelineHandle, PipelineStats};
pub use io::Backend;
pub use log::{
    AppendInfo, CleanupStats, FileSlice, Log, MappedSlice, ReadLimits, ReadResult, TryAppend,
    Verification,
};
pub use offset::{LeaderEpoch, Offset};
pub use record::{BatchBuilder, Header, Record, RecordError, RecordReader, StoredRecord};
pub use recovery::{RecoveryMode, RecoveryReport};
