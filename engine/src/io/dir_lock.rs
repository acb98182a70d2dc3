//! One owner per directory: an exclusive lock on a `LOCK` file inside it.
//!
//! Two owners of one log directory would both assign the same offsets and both report them
//! durable, and one of the two records would be gone after the next open. So every
//! [`crate::Log`] locks its directory for as long as it is open, and an embedder that owns a
//! directory of logs (the broker's data directory) locks that too with [`lock_dir`].
//!
//! On a real filesystem the lock is `flock(LOCK_EX | LOCK_NB)` on `<dir>/LOCK` (through
//! [`std::fs::File::try_lock`]), as raft-engine and Kafka (`.lock`) do. A `flock` belongs to the
//! open file description, so a second open in the *same* process is refused as well as one in
//! another process, and the kernel drops the lock when the holder dies (even by `kill -9`): a
//! stale `LOCK` file never keeps a directory locked. The holder writes its pid into the file so
//! the refusal can name it. The file is left in place when the lock is released.
//!
//! The owner of a directory of logs may hand each log a lock *covered* by its own
//! ([`DirLock::cover`]): no file and no descriptor, only an entry in the parent lock's set, so
//! a broker with 10,000 partitions does not spend 10,000 descriptors on locks. A covered
//! directory is still refused to everyone else: to this process by the set, to other processes
//! because [`lock_dir`] of a directory also fails while its parent directory's `LOCK` is held.
//!
//! Invariant: while a [`DirLock`] for a directory exists, [`lock_dir`] (or
//! [`super::Storage::lock_dir`] of the same disk) on that directory fails with
//! [`LockError::Held`], and so does [`DirLock::cover`] of it by its parent's lock.

use std::fmt;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// Name of the lock file inside a locked directory.
pub const LOCK_FILE: &str = "LOCK";

/// Why a directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another owner holds the directory: another process, or another open in this one.
    #[error("{dir:?} is locked by {}", holder_description(*holder_pid))]
    Held {
        /// The directory.
        dir: PathBuf,
        /// The holder's process id, when the lock file names one.
        holder_pid: Option<u32>,
    },
    /// The lock file could not be created, read or locked.
    #[error("locking {dir:?}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Words for the holder of a lock, for error messages.
pub fn holder_description(pid: Option<u32>) -> String {
    match pid {
        Some(p) if p == std::process::id() => format!("this process (pid {p}), opened twice"),
        Some(p) => format!("another process (pid {p})"),
        None => "another owner".to_string(),
    }
}

/// An exclusive lock on a directory, held until dropped.
pub struct DirLock {
    dir: PathBuf,
    _held: Box<dyn Send + Sync>,
    /// Subdirectories locked under this lock ([`DirLock::cover`]).
    covered: Arc<Mutex<BTreeSet<PathBuf>>>,
}

/// A covered lock's hold: its entry in the parent's set, removed on drop.
struct CoveredHold {
    set: Arc<Mutex<BTreeSet<PathBuf>>>,
    dir: PathBuf,
}

impl Drop for CoveredHold {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.dir);
    }
}

impl fmt::Debug for DirLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirLock").field("dir", &self.dir).finish()
    }
}

impl DirLock {
    /// Wraps a backend's lock guard; dropping `held` must release the lock.
    pub fn new(dir: PathBuf, held: Box<dyn Send + Sync>) -> DirLock {
        DirLock {
            dir,
            _held: held,
            covered: Arc::default(),
        }
    }

    /// Locks `child`, a directory inside this locked one, without a file or a descriptor of
    /// its own: this lock already keeps other processes out of everything inside it. Fails
    /// with [`LockError::Held`] while another covered lock of `child` from this lock exists,
    /// and with [`LockError::Io`] if `child` is not inside this directory.
    pub fn cover(&self, child: &Path) -> Result<DirLock, LockError> {
        if !child.starts_with(&self.dir) || child == self.dir {
            return Err(LockError::Io {
                dir: child.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("not inside the locked directory {:?}", self.dir),
                ),
            });
        }
        let inserted = self
            .covered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(child.to_path_buf());
        if !inserted {
            return Err(LockError::Held {
                dir: child.to_path_buf(),
                holder_pid: Some(std::process::id()),
            });
        }
        let hold = CoveredHold {
            set: self.covered.clone(),
            dir: child.to_path_buf(),
        };
        Ok(DirLock::new(child.to_path_buf(), Box::new(hold)))
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Locks `dir` on the real filesystem (creating it and its `LOCK` file if needed). Fails with
/// [`LockError::Held`] while any other [`DirLock`] of that directory exists, in this process or
/// another.
pub fn lock_dir(dir: &Path) -> Result<DirLock, LockError> {
    let io_err = |source| LockError::Io {
        dir: dir.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io_err)?;
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io_err)?;
    match file.try_lock() {
        Ok(()) => {
            // The owner of the parent directory (a broker's data directory) owns this one too.
            if let Some(parent) = dir.parent()
                && let Some(holder_pid) = held_elsewhere(parent).map_err(io_err)?
            {
                return Err(LockError::Held {
                    dir: parent.to_path_buf(),
                    holder_pid,
                });
            }
            let pid = format!("{}\n", std::process::id());
            file.set_len(0).map_err(io_err)?;
            file.write_all_at(pid.as_bytes(), 0).map_err(io_err)?;
            Ok(DirLock::new(dir.to_path_buf(), Box::new(file)))
        }
        Err(TryLockError::WouldBlock) => Err(LockError::Held {
            dir: dir.to_path_buf(),
            holder_pid: read_pid(file),
        }),
        Err(TryLockError::Error(e)) => Err(io_err(e)),
    }
}

/// Whether `dir`'s `LOCK` is held by someone (another process, or another descriptor of this
/// one): `Some(holder pid if named)`. A directory without a `LOCK` file is not held. Taking the
/// lock to find out releases it at once.
fn held_elsewhere(dir: &Path) -> io::Result<Option<Option<u32>>> {
    let file = match OpenOptions::new().read(true).open(dir.join(LOCK_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(None),
        Err(TryLockError::WouldBlock) => Ok(Some(read_pid(file))),
        Err(TryLockError::Error(e)) => Err(e),
    }
}

/// The pid the holder wrote, if the file holds one (it may be mid-write: then `None`).
fn read_pid(mut file: File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        let first = lock_dir(&dir).unwrap();
        match lock_dir(&dir) {
            Err(LockError::Held { dir: d, holder_pid }) => {
                assert_eq!(d, dir);
                assert_eq!(holder_pid, Some(std::process::id()));
            }
            other => panic!("second lock: {other:?}"),
        }
        drop(first);
        let again = lock_dir(&dir).unwrap();
        assert_eq!(again.dir(), dir);
    }

    /// A covered lock keeps a subdirectory to one owner without a file: a second cover of it
    /// is refused until the first is dropped, and so is a plain lock of it while the parent is
    /// locked (what another process embedding the engine would try).
    #[test]
    fn covered_subdirectories_have_one_owner() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = lock_dir(&tmp.path().join("data")).unwrap();
        let child = tmp.path().join("data").join("topic-0");
        std::fs::create_dir_all(&child).unwrap();
        let first = parent.cover(&child).unwrap();
        assert!(!child.join(LOCK_FILE).exists(), "a covered lock needs no file");
        assert!(matches!(parent.cover(&child), Err(LockError::Held { .. })));
        match lock_dir(&child) {
            Err(LockError::Held { dir, holder_pid }) => {
                assert_eq!(dir, tmp.path().join("data"));
                assert_eq!(holder_pid, Some(std::process::id()));
            }
            other => panic!("plain lock under a locked parent: {other:?}"),
        }
        drop(first);
        let again = parent.cover(&child).unwrap();
        assert_eq!(again.dir(), child);
        assert!(parent.cover(tmp.path()).is_err(), "only inside the locked directory");
        drop(again);
        drop(parent);
        // With the parent free, the subdirectory can be locked on its own.
        lock_dir(&child).unwrap();
    }
}
