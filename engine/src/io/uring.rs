//! The io_uring backend. Plain file operations are shared with the portable backend; what
//! io_uring changes is the commit pipeline's round: all vectored writes of the round are
//! submitted as one batch of `WRITEV` SQEs, then one `FSYNC(DATASYNC)` SQE per dirty file, so a
//! round costs two `io_uring_enter` calls whatever the number of batches and partitions in it.
//!
//! Why the `io-uring` crate and not `tokio-uring`: the engine is driven by dedicated writer and
//! syncer threads, not by an async runtime, so a plain ring owned by each is all that is needed.
//! `tokio-uring` brings a single-threaded runtime with non-`Send` types and is pinned to an older
//! `io-uring`; it also lacks splice/sendfile, which the server wants. (See ARCHITECTURE.md.)

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use io_uring::{IoUring, opcode, types};

use super::std_fs::{fs_ops, pwritev_all, syncfs_all};
use super::{IndexMap, RoundError, Storage, StorageFile, WriteOp};

/// Submission queue depth of the ring.
const RING_ENTRIES: u32 = 256;
/// Largest iovec count of one `WRITEV` (the kernel's `UIO_MAXIOV`).
const IOV_MAX: usize = 1024;

/// The io_uring backend.
#[derive(Debug)]
pub struct UringStorage {
    /// Ring for the writes of a round.
    ring: Mutex<RingCell>,
    /// Ring for fdatasyncs, so that a sync in flight never blocks the next round's writes.
    sync_ring: Mutex<RingCell>,
}

struct RingCell(IoUring);

impl std::fmt::Debug for RingCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IoUring")
    }
}

impl UringStorage {
    /// Sets up a ring and checks that it works with a NOP (io_uring can be present but refused by
    /// `kernel.io_uring_disabled` or a seccomp filter).
    pub fn new() -> io::Result<UringStorage> {
        Ok(UringStorage {
            ring: Mutex::new(RingCell(UringStorage::probe()?)),
            sync_ring: Mutex::new(RingCell(UringStorage::probe()?)),
        })
    }

    fn probe() -> io::Result<IoUring> {
        let mut ring = IoUring::new(RING_ENTRIES)?;
        let nop = opcode::Nop::new().build().user_data(0);
        // SAFETY: a NOP references no memory.
        unsafe {
            ring.submission()
                .push(&nop)
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        ring.submit_and_wait(1)?;
        let cqe = ring
            .completion()
            .next()
            .ok_or_else(|| io::Error::other("io_uring returned no completion for a NOP"))?;
        if cqe.result() < 0 {
            return Err(io::Error::from_raw_os_error(-cqe.result()));
        }
        Ok(ring)
    }
}

/// One submitted SQE's bookkeeping: what to redo synchronously after a short write.
struct Pending<'a> {
    fd: i32,
    position: u64,
    bufs: &'a [&'a [u8]],
    expected: usize,
}

fn skip_bytes<'a>(bufs: &[&'a [u8]], mut n: usize) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    for b in bufs {
        if n >= b.len() {
            n -= b.len();
        } else {
            out.extend(b.get(n..));
            n = 0;
        }
    }
    out
}

/// Submits `entries` and waits for all their completions, at most `RING_ENTRIES` at a time.
/// `on_result(index, result)` sees each completion.
fn run_batch(
    ring: &mut IoUring,
    entries: &[io_uring::squeue::Entry],
    mut on_result: impl FnMut(usize, i32) -> io::Result<()>,
) -> io::Result<()> {
    for (chunk_index, chunk) in entries.chunks(RING_ENTRIES as usize).enumerate() {
        let base = chunk_index * RING_ENTRIES as usize;
        for (i, e) in chunk.iter().enumerate() {
            let e = e.clone().user_data((base + i) as u64);
            // SAFETY: every buffer and iovec array referenced by the entries outlives this call
            // (the caller keeps them borrowed until `run_batch` returns, and `run_batch` waits for
            // every completion of the chunk before returning or moving on).
            unsafe {
                ring.submission()
                    .push(&e)
                    .map_err(|_| io::Error::other("io_uring submission queue full"))?;
            }
        }
        let mut remaining = chunk.len();
        let mut first_error: Option<io::Error> = None;
        while remaining > 0 {
            match ring.submit_and_wait(remaining) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for cqe in ring.completion() {
                remaining -= 1;
                if let Err(e) = on_result(cqe.user_data() as usize, cqe.result()) {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
    }
    Ok(())
}

impl Storage for UringStorage {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        fs_ops::open(path, create)
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        fs_ops::list_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        fs_ops::sync_dir(dir)
    }

    fn write_and_sync(
        &self,
        writes: &[WriteOp<'_>],
        syncs: &[&dyn StorageFile],
    ) -> Result<(), RoundError> {
        if !writes.is_empty() {
            let mut guard = self
                .ring
                .lock()
                .map_err(|_| RoundError::Write(io::Error::other("io_uring ring lock poisoned")))?;
            self.write_phase(&mut guard.0, writes)
                .map_err(RoundError::Write)?;
        }
        if !syncs.is_empty() {
            let mut guard = self
                .sync_ring
                .lock()
                .map_err(|_| RoundError::Sync(io::Error::other("io_uring ring lock poisoned")))?;
            sync_phase(&mut guard.0, syncs).map_err(RoundError::Sync)?;
        }
        Ok(())
    }

    fn sync_filesystems(&self, files: &[&dyn StorageFile]) -> Result<(), RoundError> {
        syncfs_all(files).map_err(RoundError::Sync)
    }

    fn map_index(&self, file: &Arc<dyn StorageFile>, len: usize) -> io::Result<Box<dyn IndexMap>> {
        fs_ops::map_index(file, len)
    }
}

impl UringStorage {
    fn write_phase(&self, ring: &mut IoUring, writes: &[WriteOp<'_>]) -> io::Result<()> {
        // Phase 1: the writes, split into WRITEVs of at most IOV_MAX buffers.
        let mut iovecs: Vec<Vec<libc::iovec>> = Vec::new();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        for w in writes {
            let fd = w.file.raw_fd().ok_or_else(|| {
                io::Error::new(io::ErrorKind::Unsupported, "file has no descriptor")
            })?;
            let mut position = w.position;
            for chunk in w.bufs.chunks(IOV_MAX) {
                let expected: usize = chunk.iter().map(|b| b.len()).sum();
                if expected == 0 {
                    continue;
                }
                iovecs.push(
                    chunk
                        .iter()
                        .map(|b| libc::iovec {
                            iov_base: b.as_ptr() as *mut libc::c_void,
                            iov_len: b.len(),
                        })
                        .collect(),
                );
                pending.push(Pending {
                    fd,
                    position,
                    bufs: chunk,
                    expected,
                });
                position += expected as u64;
            }
        }
        let entries: Vec<_> = pending
            .iter()
            .zip(iovecs.iter())
            .map(|(p, iov)| {
                opcode::Writev::new(types::Fd(p.fd), iov.as_ptr(), iov.len() as u32)
                    .offset(p.position)
                    .build()
            })
            .collect();
        let mut short: Vec<(usize, usize)> = Vec::new();
        run_batch(ring, &entries, |i, res| {
            if res < 0 {
                return Err(io::Error::from_raw_os_error(-res));
            }
            let done = res as usize;
            if let Some(p) = pending.get(i)
                && done < p.expected
            {
                short.push((i, done));
            }
            Ok(())
        })?;
        // A short write (rare: a signal, a nearly full disk) is finished synchronously, which
        // also surfaces ENOSPC as an error.
        for (i, done) in short {
            if let Some(p) = pending.get(i) {
                pwritev_all(p.fd, &skip_bytes(p.bufs, done), p.position + done as u64)?;
            }
        }
        drop(iovecs);
        Ok(())
    }
}

/// Phase 2 of a round: one fdatasync per dirty file, all in flight together.
fn sync_phase(ring: &mut IoUring, syncs: &[&dyn StorageFile]) -> io::Result<()> {
    let mut sync_entries = Vec::with_capacity(syncs.len());
    for f in syncs {
        let fd = f
            .raw_fd()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "file has no descriptor"))?;
        sync_entries.push(
            opcode::Fsync::new(types::Fd(fd))
                .flags(types::FsyncFlags::DATASYNC)
                .build(),
        );
    }
    run_batch(ring, &sync_entries, |_, res| {
        if res < 0 {
            Err(io::Error::from_raw_os_error(-res))
        } else {
            Ok(())
        }
    })
}
