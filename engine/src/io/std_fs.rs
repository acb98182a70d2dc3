//! The portable backend: `pread`/`pwritev`/`fdatasync` on std files. Used where io_uring is not
//! allowed, and as the shared implementation of the plain file operations of the io_uring
//! backend (which only changes how the commit pipeline's rounds are submitted).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{IndexMap, MmapView, RoundError, Storage, StorageFile, WriteOp};

/// A real file on a real filesystem.
#[derive(Debug)]
pub struct RealFile {
    path: PathBuf,
    file: File,
}

impl RealFile {
    pub(crate) fn open(path: &Path, create: bool) -> io::Result<RealFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        Ok(RealFile {
            path: path.to_path_buf(),
            file,
        })
    }
}

impl StorageFile for RealFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        let mut done = 0;
        while let Some(rest) = buf.get_mut(done..).filter(|r| !r.is_empty()) {
            match self.file.read_at(rest, position + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file.write_all_at(buf, position)
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn raw_fd(&self) -> Option<RawFd> {
        Some(self.file.as_raw_fd())
    }

    fn map(&self, position: u64, len: usize) -> io::Result<Option<MmapView>> {
        if len == 0 {
            return Ok(None);
        }
        // SAFETY: the engine only appends to a segment file while readers hold maps of its
        // written prefix; truncation of mapped bytes (truncate_to, retention) is possible, and
        // then reading the map raises SIGBUS. Callers map only ranges below the log end offset
        // they were given and keep maps short-lived, as Kafka's own mmap'd readers do.
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(position)
                .len(len)
                .map(&self.file)?
        };
        Ok(Some(map))
    }
}

/// A memory-mapped index file.
#[derive(Debug)]
pub struct MmapIndex {
    map: memmap2::MmapMut,
}

impl IndexMap for MmapIndex {
    fn bytes(&self) -> &[u8] {
        &self.map
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.map
    }

    fn flush(&self, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        self.map.flush_range(0, len.min(self.map.len()))
    }
}

pub(crate) fn map_real_index(file: &RealFile, len: usize) -> io::Result<Box<dyn IndexMap>> {
    if file.len()? < len as u64 {
        file.set_len(len as u64)?;
    }
    // SAFETY: index files are private to one segment of one open log; the engine never truncates
    // an index file while it is mapped (it unmaps before trimming on roll or close).
    let map = unsafe { memmap2::MmapOptions::new().len(len).map_mut(&file.file)? };
    // An index is written one entry at a time and searched by bisection: no readahead. Without
    // this, the first fault on a preallocated (sparse) index reads around the faulting page by
    // the device's read_ahead_kb (8 MiB on a virtio disk here), zero-filling megabytes of
    // page cache per index: with 1,000 partitions that was 88% of the broker's CPU.
    map.advise(memmap2::Advice::Random)?;
    Ok(Box::new(MmapIndex { map }))
}

fn downcast(file: &Arc<dyn StorageFile>) -> io::Result<RealFile> {
    // Re-open by path: index maps need the concrete file; a second descriptor is harmless.
    RealFile::open(file.path(), false)
}

/// `syncfs(2)` once per file system among `files` (grouped by device): every byte written to
/// them before the call is durable when it returns, with one journal commit and one device
/// flush per file system, however many files are dirty. Since Linux 5.8 it reports writeback
/// errors of the file system, as fdatasync does for a file.
pub(crate) fn syncfs_all(files: &[&dyn StorageFile]) -> io::Result<()> {
    let mut devices: Vec<(u64, RawFd)> = Vec::new();
    for f in files {
        let fd = f
            .raw_fd()
            .ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "file has no descriptor"))?;
        // SAFETY: `stat` is plain data that fstat fills in; `fd` is open for the call.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` belongs to a file kept open by the caller's borrow.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return Err(io::Error::last_os_error());
        }
        if !devices.iter().any(|(d, _)| *d == st.st_dev) {
            devices.push((st.st_dev, fd));
        }
    }
    for (_, fd) in devices {
        // SAFETY: `fd` belongs to a file kept open by the caller's borrow.
        if unsafe { libc::syncfs(fd) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn pwritev_all(fd: RawFd, bufs: &[&[u8]], mut position: u64) -> io::Result<()> {
    let mut iov: Vec<libc::iovec> = bufs
        .iter()
        .filter(|b| !b.is_empty())
        .map(|b| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        })
        .collect();
    let mut start = 0usize;
    while start < iov.len() {
        let count = (iov.len() - start).min(1024);
        // SAFETY: every iovec points into a live borrowed slice for the duration of the call.
        let n = unsafe {
            libc::pwritev(
                fd,
                iov.as_ptr().add(start),
                count as libc::c_int,
                position as libc::off_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut n = n as usize;
        position += n as u64;
        while n > 0
            && let Some(cur) = iov.get_mut(start)
        {
            if n >= cur.iov_len {
                n -= cur.iov_len;
                start += 1;
            } else {
                // SAFETY: advancing within the same buffer.
                cur.iov_base = unsafe { (cur.iov_base as *mut u8).add(n) } as *mut libc::c_void;
                cur.iov_len -= n;
                n = 0;
            }
        }
    }
    Ok(())
}

/// Shared plain-file operations of the real-disk backends.
pub(crate) mod fs_ops {
    use super::*;

    pub fn open(path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(RealFile::open(path, create)?))
    }

    pub fn list_dir(dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    pub fn sync_dir(dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    pub fn map_index(file: &Arc<dyn StorageFile>, len: usize) -> io::Result<Box<dyn IndexMap>> {
        map_real_index(&downcast(file)?, len)
    }
}

/// The portable backend.
#[derive(Debug, Default)]
pub struct StdStorage;

impl StdStorage {
    /// Creates the backend.
    pub fn new() -> StdStorage {
        StdStorage
    }
}

impl Storage for StdStorage {
    fn name(&self) -> &'static str {
        "std"
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
        for w in writes {
            let fd = w.file.raw_fd().ok_or_else(|| {
                RoundError::Write(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "file has no descriptor",
                ))
            })?;
            pwritev_all(fd, &w.bufs, w.position).map_err(RoundError::Write)?;
        }
        for f in syncs {
            f.sync_data().map_err(RoundError::Sync)?;
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
