//! An in-memory simulated disk for tests: it tracks which bytes are durable and can crash.
//!
//! Each file keeps two images: `current` (what reads see, like the page cache) and `durable`
//! (what survives a crash), plus the ordered list of operations since the last sync. A crash
//! ([`SimStorage::crash`]) rebuilds every file from its durable image plus a chosen prefix of its
//! unsynced operations, optionally tearing the last one at a sector boundary, and forgets files
//! whose directory entry was never synced. [`SimStorage::flip_byte`] corrupts stored bytes.
//!
//! Invariant: bytes covered by a completed `sync_data`/`write_and_sync` sync are never lost by a
//! crash; handles opened before a crash fail afterwards (the process that held them is dead).
//!
//! An embedder's crash test (feature `simulation`): what was acknowledged durable survives a
//! power loss, what was only written does not.
//!
//! ```
//! use std::sync::Arc;
//! use strata_engine::io::sim::{CrashMode, SimStorage};
//! use strata_engine::{BatchBuilder, CommitPipeline, FlushPolicy, LeaderEpoch, Log, LogConfig, Record};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let disk = Arc::new(SimStorage::new());
//! let config = LogConfig { flush: FlushPolicy::Os, ..LogConfig::default() };
//! let pipeline = CommitPipeline::start(disk.clone(), Default::default())?;
//! let log = Log::open("/sim/events-0", config.clone(), &pipeline.handle())?;
//! let batch = || BatchBuilder::new().record(Record::new("event")).build();
//! let kept = log.append(batch()?, LeaderEpoch::default())?;
//! log.flush()?; // fdatasync: everything appended so far is durable
//! kept.completion.wait_durable()?;
//! log.append(batch()?, LeaderEpoch::default())?.completion.wait_written()?; // never synced
//! drop((log, pipeline)); // the process dies...
//! disk.crash(CrashMode::DropUnsynced); // ...and the power goes
//!
//! let pipeline = CommitPipeline::start(disk.clone(), Default::default())?;
//! let log = Log::open("/sim/events-0", config, &pipeline.handle())?;
//! assert_eq!(log.log_end_offset().0, 1);
//! # Ok(()) }
//! ```

#![expect(
    clippy::indexing_slicing,
    reason = "the simulated disk indexes its in-memory images at positions it has just bounds-checked"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{DirLock, IndexMap, LockError, MmapView, RoundError, Storage, StorageFile, WriteOp};

#[derive(Debug, Clone)]
enum Op {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct FileData {
    current: Vec<u8>,
    durable: Vec<u8>,
    unsynced: Vec<Op>,
    entry_durable: bool,
}

fn apply(image: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write(pos, bytes) => {
            let pos = *pos as usize;
            if image.len() < pos + bytes.len() {
                image.resize(pos + bytes.len(), 0);
            }
            image[pos..pos + bytes.len()].copy_from_slice(bytes);
        }
        Op::SetLen(len) => image.resize(*len as usize, 0),
    }
}

impl FileData {
    fn record(&mut self, op: Op) {
        apply(&mut self.current, &op);
        self.unsynced.push(op);
    }

    fn sync(&mut self) {
        for op in self.unsynced.drain(..) {
            apply(&mut self.durable, &op);
        }
        debug_assert_eq!(self.durable, self.current);
    }
}

/// How a simulated crash treats bytes that were written but not synced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashMode {
    /// Every unsynced operation is lost.
    DropUnsynced,
    /// Every unsynced operation survives (the OS wrote the page cache back before power loss).
    KeepUnsynced,
    /// A prefix of the unsynced operations survives, chosen by the seed, and the first lost write
    /// is torn: a prefix of it, cut at a multiple of `sector` bytes, survives.
    Torn {
        /// Seed choosing how much survives per file.
        seed: u64,
        /// Sector size the tear is aligned to (512 or 4096).
        sector: usize,
    },
}

#[derive(Debug, Default)]
struct State {
    files: BTreeMap<PathBuf, Arc<Mutex<FileData>>>,
    dirs: BTreeSet<PathBuf>,
    generation: u64,
    fail_writes: bool,
    syncs: u64,
    /// Directories locked by a live [`DirLock`] (held in memory, like a `flock`: a crash of
    /// the disk does not release them, dropping the lock does).
    locks: BTreeSet<PathBuf>,
}

/// The simulated disk. Cloning gives another handle to the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
    /// While true, pipeline rounds with writes wait before writing (a disk that stopped
    /// answering), until released.
    stall: Arc<(Mutex<bool>, std::sync::Condvar)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not hide the disk from the others.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{path:?} not found"))
}

/// A splitmix64 step, to derive per-file choices from one seed without a dependency.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl SimStorage {
    /// A new, empty disk.
    pub fn new() -> SimStorage {
        SimStorage::default()
    }

    /// Simulates power loss: see [`CrashMode`]. Handles opened before the crash stop working.
    pub fn crash(&self, mode: CrashMode) {
        let mut st = lock(&self.state);
        st.generation += 1;
        let mut gone = Vec::new();
        for (i, (path, data)) in st.files.iter().enumerate() {
            let mut d = lock(data);
            if !d.entry_durable {
                gone.push(path.clone());
                continue;
            }
            let mut image = d.durable.clone();
            match mode {
                CrashMode::DropUnsynced => {}
                CrashMode::KeepUnsynced => {
                    for op in &d.unsynced {
                        apply(&mut image, op);
                    }
                }
                CrashMode::Torn { seed, sector } => {
                    let r = mix(seed ^ mix(i as u64));
                    let n = d.unsynced.len();
                    let keep = if n == 0 {
                        0
                    } else {
                        (r % (n as u64 + 1)) as usize
                    };
                    for op in &d.unsynced[..keep] {
                        apply(&mut image, op);
                    }
                    if let Some(Op::Write(pos, bytes)) = d.unsynced.get(keep) {
                        let sectors = bytes.len() / sector.max(1);
                        if sectors > 0 {
                            let cut = (mix(r) % (sectors as u64 + 1)) as usize * sector;
                            apply(&mut image, &Op::Write(*pos, bytes[..cut].to_vec()));
                        }
                    }
                }
            }
            d.current = image.clone();
            d.durable = image;
            d.unsynced.clear();
        }
        for p in gone {
            st.files.remove(&p);
        }
    }

    /// XORs `mask` into the byte at `position` of a file, durably (a bad sector).
    pub fn flip_byte(&self, path: &Path, position: u64, mask: u8) -> io::Result<()> {
        let st = lock(&self.state);
        let data = st.files.get(path).ok_or_else(|| not_found(path))?;
        let mut d = lock(data);
        let p = position as usize;
        if p >= d.current.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "position past end",
            ));
        }
        d.current[p] ^= mask;
        if p < d.durable.len() {
            d.durable[p] ^= mask;
        }
        for op in &mut d.unsynced {
            if let Op::Write(pos, bytes) = op
                && (*pos as usize) <= p
                && p < *pos as usize + bytes.len()
            {
                bytes[p - *pos as usize] ^= mask;
            }
        }
        Ok(())
    }

    /// Makes pipeline rounds that write wait before writing (a disk that stopped answering),
    /// or lets them go on.
    pub fn set_stall_writes(&self, stall: bool) {
        let (m, cv) = &*self.stall;
        *lock(m) = stall;
        cv.notify_all();
    }

    /// Makes every later pipeline write fail with ENOSPC (a full disk), or stops doing so.
    pub fn set_fail_writes(&self, fail: bool) {
        lock(&self.state).fail_writes = fail;
    }

    /// The bytes a file holds now (its page-cache view).
    pub fn contents(&self, path: &Path) -> Option<Vec<u8>> {
        let st = lock(&self.state);
        st.files.get(path).map(|d| lock(d).current.clone())
    }

    /// Replaces a file's contents durably (for tests that plant arbitrary bytes).
    pub fn put_file(&self, path: &Path, bytes: &[u8]) {
        let mut st = lock(&self.state);
        let d = FileData {
            current: bytes.to_vec(),
            durable: bytes.to_vec(),
            unsynced: Vec::new(),
            entry_durable: true,
        };
        if let Some(parent) = path.parent() {
            st.dirs.insert(parent.to_path_buf());
        }
        st.files.insert(path.to_path_buf(), Arc::new(Mutex::new(d)));
    }

    /// Number of data syncs performed so far.
    pub fn sync_count(&self) -> u64 {
        lock(&self.state).syncs
    }
}

/// A file on the simulated disk.
#[derive(Debug)]
pub struct SimFile {
    path: PathBuf,
    data: Arc<Mutex<FileData>>,
    disk: SimStorage,
    generation: u64,
}

impl SimFile {
    fn check(&self) -> io::Result<MutexGuard<'_, FileData>> {
        if lock(&self.disk.state).generation != self.generation {
            return Err(io::Error::other(
                "simulated disk crashed since this file was opened",
            ));
        }
        Ok(lock(&self.data))
    }
}

impl StorageFile for SimFile {
    fn path(&self) -> &Path {
        &self.path
    }

    fn read_at(&self, buf: &mut [u8], position: u64) -> io::Result<usize> {
        let d = self.check()?;
        let p = position as usize;
        if p >= d.current.len() {
            return Ok(0);
        }
        let n = buf.len().min(d.current.len() - p);
        buf[..n].copy_from_slice(&d.current[p..p + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], position: u64) -> io::Result<()> {
        let mut d = self.check()?;
        d.record(Op::Write(position, buf.to_vec()));
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.check()?.current.len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut d = self.check()?;
        d.record(Op::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.check()?.sync();
        lock(&self.disk.state).syncs += 1;
        Ok(())
    }

    fn raw_fd(&self) -> Option<RawFd> {
        None
    }

    fn map(&self, _position: u64, _len: usize) -> io::Result<Option<MmapView>> {
        Ok(None)
    }
}

/// An index "mapping" on the simulated disk: a buffer written through on flush.
#[derive(Debug)]
pub struct SimIndex {
    file: Arc<dyn StorageFile>,
    buf: Vec<u8>,
}

impl IndexMap for SimIndex {
    fn bytes(&self) -> &[u8] {
        &self.buf
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    fn flush(&self, len: usize) -> io::Result<()> {
        self.publish(len)?;
        self.file.sync_data()
    }

    fn publish(&self, len: usize) -> io::Result<()> {
        let len = len.min(self.buf.len());
        self.file.write_at(&self.buf[..len], 0)
    }
}

/// A directory lock of the simulated disk; released on drop.
struct SimDirLock {
    disk: SimStorage,
    dir: PathBuf,
}

impl Drop for SimDirLock {
    fn drop(&mut self) {
        let released = lock(&self.disk.state).locks.remove(&self.dir);
        debug_assert!(released, "a held lock is in the disk's lock set");
    }
}

impl Storage for SimStorage {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn lock_dir(&self, dir: &Path) -> Result<DirLock, LockError> {
        self.create_dir_all(dir).map_err(|source| LockError::Io {
            dir: dir.to_path_buf(),
            source,
        })?;
        if !lock(&self.state).locks.insert(dir.to_path_buf()) {
            return Err(LockError::Held {
                dir: dir.to_path_buf(),
                holder_pid: Some(std::process::id()),
            });
        }
        let held = SimDirLock {
            disk: self.clone(),
            dir: dir.to_path_buf(),
        };
        Ok(DirLock::new(dir.to_path_buf(), Box::new(held)))
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        let mut st = lock(&self.state);
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
        if !st.dirs.contains(&parent) {
            return Err(not_found(&parent));
        }
        let generation = st.generation;
        let data = match st.files.get(path) {
            Some(d) => d.clone(),
            None if create => {
                let d = Arc::new(Mutex::new(FileData::default()));
                st.files.insert(path.to_path_buf(), d.clone());
                d
            }
            None => return Err(not_found(path)),
        };
        Ok(Arc::new(SimFile {
            path: path.to_path_buf(),
            data,
            disk: self.clone(),
            generation,
        }))
    }

    fn exists(&self, path: &Path) -> bool {
        let st = lock(&self.state);
        st.files.contains_key(path) || st.dirs.contains(path)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        lock(&self.state)
            .files
            .remove(path)
            .map(|_| ())
            .ok_or_else(|| not_found(path))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        let d = st.files.remove(from).ok_or_else(|| not_found(from))?;
        st.files.insert(to.to_path_buf(), d);
        Ok(())
    }

    fn list_dir(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let st = lock(&self.state);
        if !st.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let mut out: Vec<PathBuf> = st
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect();
        out.extend(st.dirs.iter().filter(|p| p.parent() == Some(dir)).cloned());
        Ok(out)
    }

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        let mut d = Some(dir);
        while let Some(p) = d {
            st.dirs.insert(p.to_path_buf());
            d = p.parent();
        }
        Ok(())
    }

    fn remove_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.files.retain(|p, _| !p.starts_with(dir));
        st.dirs.retain(|p| !p.starts_with(dir));
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let st = lock(&self.state);
        for (p, d) in &st.files {
            if p.parent() == Some(dir) {
                lock(d).entry_durable = true;
            }
        }
        Ok(())
    }

    fn write_and_sync(
        &self,
        writes: &[WriteOp<'_>],
        syncs: &[&dyn StorageFile],
    ) -> Result<(), RoundError> {
        if !writes.is_empty() {
            let (m, cv) = &*self.stall;
            let mut stalled = lock(m);
            while *stalled {
                stalled = cv.wait(stalled).unwrap_or_else(|p| p.into_inner());
            }
        }
        if !writes.is_empty() && lock(&self.state).fail_writes {
            return Err(RoundError::Write(io::Error::from_raw_os_error(
                libc::ENOSPC,
            )));
        }
        for w in writes {
            let mut pos = w.position;
            for b in &w.bufs {
                w.file.write_at(b, pos).map_err(RoundError::Write)?;
                pos += b.len() as u64;
            }
        }
        for f in syncs {
            f.sync_data().map_err(RoundError::Sync)?;
        }
        Ok(())
    }

    fn map_index(&self, file: &Arc<dyn StorageFile>, len: usize) -> io::Result<Box<dyn IndexMap>> {
        let mut buf = vec![0u8; len];
        let n = file.read_at(&mut buf, 0)?;
        debug_assert!(n <= len);
        if file.len()? < len as u64 {
            file.set_len(len as u64)?;
        }
        Ok(Box::new(SimIndex {
            file: file.clone(),
            buf,
        }))
    }
}
