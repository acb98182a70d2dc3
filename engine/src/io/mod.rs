//! The storage backends: the only door to the disk.
//!
//! Every read, write, fsync, rename and removal the engine makes goes through [`Storage`] and
//! [`StorageFile`]. Three implementations exist:
//!
//! - `UringStorage` ([`Backend::Uring`]): io_uring; the commit pipeline's rounds of writes and fdatasyncs are
//!   submitted as batches of SQEs. Default where the kernel allows it.
//! - `StdStorage` ([`Backend::Std`]): portable `pwritev` + `fdatasync`, chosen automatically (with a log
//!   line saying so) when io_uring is unavailable (`kernel.io_uring_disabled`, seccomp).
//! - [`sim::SimStorage`]: an in-memory disk for tests that tracks which bytes are durable and can
//!   crash (drop unsynced bytes, tear the last write) and flip bits.
//!
//! Invariant: [`Storage::write_and_sync`] returns only after every write of the round is complete
//! and then every listed file's data is durable; a failed fsync is reported and must be treated
//! as fatal by the caller (the page cache state after a failed fsync is unknown).

pub mod sim;
#[cfg(feature = "internals")]
pub mod dir_lock;
#[cfg(not(feature = "internals"))]
pub(crate) mod dir_lock;
#[cfg(feature = "internals")]
pub mod std_fs;
#[cfg(not(feature = "internals"))]
pub(crate) mod std_fs;
#[cfg(feature = "internals")]
pub mod uring;
#[cfg(not(feature = "internals"))]
pub(crate) mod uring;

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A read-only memory map of part of a file, for readers that want the bytes in place.
pub type MmapView = memmap2::Mmap;

/// One open file of a backend.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// The path the file was opened at.
    fn path(&self) -> &Path;
    /// Reads up to `buf.len()` bytes at `position`; returns how many were read (fewer only at
    /// end of file).
    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize>;
    /// Writes all of `buf` at `position` (outside the commit pipeline: checkpoints, compaction).
    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()>;
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Truncates or extends the file.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file's data (and size) durable: fdatasync.
    fn sync_data(&self) -> io::Result<()>;
    /// The OS file descriptor, for sendfile/splice. `None` for simulated files.
    fn raw_fd(&self) -> Option<RawFd>;
    /// A read-only memory map of `[position, position + len)`. `None` for simulated files.
    fn map(&self, position: u64, len: usize) -> io::Result<Option<MmapView>>;
}

/// A writable view of an index file: memory-mapped on real disks, a buffer on the simulated one.
pub trait IndexMap: Send + Sync + fmt::Debug {
    /// The mapped bytes.
    fn bytes(&self) -> &[u8];
    /// The mapped bytes, writable.
    fn bytes_mut(&mut self) -> &mut [u8];
    /// Makes the first `len` bytes durable in the file (msync, or write-through on sim).
    fn flush(&self, len: usize) -> io::Result<()>;
    /// Makes the first `len` bytes part of the file without waiting for the disk, so that an
    /// fdatasync of the file (by another thread, through another descriptor) makes them
    /// durable: nothing to do for a shared memory map, whose pages are the file's page cache
    /// (the default); the simulated disk copies its buffer into the file, unsynced.
    fn publish(&self, _len: usize) -> io::Result<()> {
        Ok(())
    }
}

/// One vectored write of the commit pipeline: `bufs` land contiguously at `position`.
#[derive(Debug)]
pub struct WriteOp<'a> {
    /// The file written.
    pub file: &'a dyn StorageFile,
    /// Byte position of the first buffer.
    pub position: u64,
    /// Buffers written back to back.
    pub bufs: Vec<&'a [u8]>,
}

impl WriteOp<'_> {
    /// Total bytes of the write.
    pub fn len(&self) -> usize {
        self.bufs.iter().map(|b| b.len()).sum()
    }

    /// Whether the write carries no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A storage backend.
pub trait Storage: Send + Sync + fmt::Debug + 'static {
    /// Short name for logs and benchmark output ("io_uring", "std", "sim").
    fn name(&self) -> &'static str;
    /// Opens a file for reading and writing, creating it when `create` is set.
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// Removes a file.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Atomically renames a file (durable after [`Storage::sync_dir`]).
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Lists the files of a directory (full paths, unsorted).
    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Creates a directory and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Makes a directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// One commit-pipeline round: performs all `writes`, then makes the data of every file in
    /// `syncs` durable. Returns after both are complete.
    fn write_and_sync(
        &self,
        writes: &[WriteOp<'_>],
        syncs: &[&dyn StorageFile],
    ) -> Result<(), RoundError>;
    /// Makes the data of every file in `files` durable with one file-system sync per file
    /// system instead of one fdatasync per file: the commit pipeline's choice once a round has
    /// many dirty files (`PipelineConfig::syncfs_files_min`). It also writes back whatever
    /// else is dirty on those file systems. The default syncs each file
    /// ([`Storage::write_and_sync`] with no writes); real disks use `syncfs(2)`.
    fn sync_filesystems(&self, files: &[&dyn StorageFile]) -> Result<(), RoundError> {
        self.write_and_sync(&[], files)
    }
    /// Maps an index file of `len` bytes (the file is extended to `len` first).
    fn map_index(&self, file: &Arc<dyn StorageFile>, len: usize) -> io::Result<Box<dyn IndexMap>>;
    /// Takes the exclusive lock of a directory (creating it if needed), held until the
    /// [`DirLock`] is dropped; [`LockError::Held`] while another holder has it. Real disks use
    /// [`dir_lock::lock_dir`] (`flock` on `<dir>/LOCK`).
    fn lock_dir(&self, dir: &Path) -> Result<DirLock, LockError> {
        dir_lock::lock_dir(dir)
    }
}

#[cfg_attr(not(feature = "internals"), allow(unused_imports))]
pub use dir_lock::{DirLock, LockError, lock_dir};

/// Why a commit-pipeline round failed. The difference matters: a failed write (ENOSPC, EIO)
/// leaves the page cache consistent and can be reported; a failed fsync cannot be retried.
#[derive(Debug, thiserror::Error)]
pub enum RoundError {
    /// A write of the round failed.
    #[error("write failed: {0}")]
    Write(#[source] io::Error),
    /// An fdatasync of the round failed.
    #[error("fdatasync failed: {0}")]
    Sync(#[source] io::Error),
}

/// Which backend to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Backend {
    /// io_uring when the kernel allows it, else the portable one (with a warning).
    #[default]
    Auto,
    /// io_uring, failing if unavailable.
    Uring,
    /// Portable pwrite + fdatasync.
    Std,
}

/// Opens the requested backend. `Auto` probes io_uring and falls back to the portable backend,
/// logging why.
pub fn open_backend(backend: Backend) -> io::Result<Arc<dyn Storage>> {
    match backend {
        Backend::Std => Ok(Arc::new(std_fs::StdStorage::new())),
        Backend::Uring => Ok(Arc::new(uring::UringStorage::new()?)),
        Backend::Auto => match uring::UringStorage::new() {
            Ok(s) => Ok(Arc::new(s)),
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "io_uring is unavailable (kernel.io_uring_disabled or seccomp?); \
                     using the portable pwrite+fdatasync backend"
                );
                Ok(Arc::new(std_fs::StdStorage::new()))
            }
        },
    }
}
