//! Work that may wait on the disk, run from async code without stalling the other tasks of the
//! same runtime worker.
//!
//! Appends (a segment roll creates files; a full commit pipeline pushes back) and fetch reads
//! (batch headers and a first check of the bytes read from the disk) are synchronous calls into
//! the engine. On the broker's multi-threaded runtime they run through
//! [`tokio::task::block_in_place`]: the worker hands its queued tasks to another thread first, so
//! other connections are served while the call waits. Elsewhere (a current-thread runtime in
//! tests, or no runtime) the call runs inline.

use tokio::runtime::{Handle, RuntimeFlavor};

/// Runs `f`, which may block on the disk, off the async scheduler's hot path (see the module
/// docs).
pub fn run<T>(f: impl FnOnce() -> T) -> T {
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}
