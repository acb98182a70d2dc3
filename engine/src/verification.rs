//! Which bytes of a segment file have been checked (framing, offsets, CRC-32C) by
//! [`FileSlice::verify`](crate::FileSlice::verify), so that the next fetch of the same bytes
//! does not map and check them again.
//!
//! Checked bytes stay trusted while both hold:
//! 1. the file has not changed since they were checked: its change time and size (`fstat`) are
//!    the ones taken before the check, so no write (this process's or another's, through a
//!    descriptor or a shared map) and no truncation touched it since. The active segment's
//!    appends change them too, so its bytes are checked on every read until it is rolled;
//! 2. every page of the range is in the page cache now (`cachestat`, Linux 6.5+): the bytes
//!    come from memory, which held exactly what was checked. A read that finds a page gone
//!    forgets everything the segment had checked, so bytes that come back from the disk are
//!    checked again. A read looks before it walks the batch headers (the walk's own `pread`s
//!    would bring evicted pages back) over every byte the walk may touch, and again before it
//!    sends.
//!
//! Without a descriptor (the simulated disk), on a kernel without `cachestat`, or when `fstat`
//! fails, nothing is trusted: every read is checked, as before this existed.
//!
//! What this does not see: a page evicted and read back by the kernel's readahead (for a
//! neighbouring read) between two reads of a range is resident again at the second read, so a
//! corruption that appeared on the disk meanwhile would be trusted. Clients check CRCs
//! themselves (librdkafka `check.crcs`, the Java client by default), and a restart or a
//! change of the file starts over.

use std::os::fd::RawFd;
use std::sync::Mutex;

/// The identity of a file's contents as `fstat` reports it: any write or truncation changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    ctime_sec: i64,
    ctime_nsec: i64,
    size: u64,
}

impl Stamp {
    /// The file's stamp now; `None` if `fstat` fails.
    fn of(fd: RawFd) -> Option<Stamp> {
        // SAFETY: `stat` is plain data that fstat fills in.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: the caller's file keeps `fd` open for the call.
        if unsafe { libc::fstat(fd, &mut st) } != 0 {
            return None;
        }
        Some(Stamp {
            ctime_sec: st.st_ctime,
            ctime_nsec: st.st_ctime_nsec,
            size: u64::try_from(st.st_size).ok()?,
        })
    }
}

/// `cachestat(2)`: its number in the generic system call table (x86-64 and arm64 alike).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const SYS_CACHESTAT: libc::c_long = 451;

#[repr(C)]
struct CachestatRange {
    off: u64,
    len: u64,
}

#[repr(C)]
#[derive(Default)]
struct Cachestat {
    nr_cache: u64,
    nr_dirty: u64,
    nr_writeback: u64,
    nr_evicted: u64,
    nr_recently_evicted: u64,
}

/// Whether every page of `[position, position + len)` of the file is in the page cache;
/// `None` if the kernel cannot tell.
fn resident(fd: RawFd, position: u64, len: usize) -> Option<bool> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        const PAGE: u64 = 4096;
        let first = position / PAGE;
        let end = position.checked_add(len as u64)?.div_ceil(PAGE);
        let range = CachestatRange {
            off: first * PAGE,
            len: (end - first) * PAGE,
        };
        let mut out = Cachestat::default();
        // SAFETY: both structs match the kernel's layout and live across the call; the caller's
        // file keeps `fd` open.
        let rc = unsafe {
            libc::syscall(
                SYS_CACHESTAT,
                fd,
                &range as *const CachestatRange,
                &mut out as *mut Cachestat,
                0u32,
            )
        };
        if rc != 0 {
            return None;
        }
        Some(out.nr_cache >= end - first)
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = (fd, position, len);
        None
    }
}

/// One checked range of a file and the stamp the file had when the check began.
#[derive(Debug, Clone, Copy)]
struct Checked {
    from: u64,
    to: u64,
    stamp: Stamp,
}

/// What a read should do with a slice (see [`VerifiedBytes::lookup`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Checked before, unchanged, resident: send it as it is.
    Trusted,
    /// Check it; report success with [`VerifiedBytes::checked`] and this stamp (`None`: the
    /// result cannot be remembered).
    Check(Option<Stamp>),
}

/// The checked bytes of one segment file: one contiguous range (sequential readers extend it;
/// a read elsewhere starts a new one).
#[derive(Debug, Default)]
pub(crate) struct VerifiedBytes {
    range: Mutex<Option<Checked>>,
}

impl VerifiedBytes {
    /// Whether `[position, position + len)` of the file behind `fd` may be sent without a check.
    pub(crate) fn lookup(&self, fd: Option<RawFd>, position: u64, len: usize) -> Lookup {
        let Some(fd) = fd else {
            return Lookup::Check(None);
        };
        let stamp = Stamp::of(fd);
        let mut g = self.range.lock().unwrap_or_else(|p| p.into_inner());
        let Some(checked) = *g else {
            return Lookup::Check(stamp);
        };
        if Some(checked.stamp) != stamp {
            // The file changed: nothing checked before is known to hold.
            *g = None;
            return Lookup::Check(stamp);
        }
        let end = position.saturating_add(len as u64);
        if position < checked.from || end > checked.to {
            return Lookup::Check(stamp);
        }
        match resident(fd, position, len) {
            Some(true) => Lookup::Trusted,
            Some(false) => {
                // Pages left the cache: what comes back from the disk is checked again.
                *g = None;
                Lookup::Check(stamp)
            }
            None => Lookup::Check(None),
        }
    }

    /// Called by a read before it walks batch headers in `[position, position + len)` (which
    /// covers every byte the walk may touch): if a checked page there has left the page cache,
    /// forgets what was checked, since the walk itself would read the page back from the disk
    /// and make it look resident to [`VerifiedBytes::lookup`].
    pub(crate) fn before_walk(&self, fd: Option<RawFd>, position: u64, len: u64) {
        let Some(fd) = fd else { return };
        let mut g = self.range.lock().unwrap_or_else(|p| p.into_inner());
        let Some(checked) = *g else { return };
        let from = position.max(checked.from);
        let to = position.saturating_add(len).min(checked.to);
        if from >= to {
            return;
        }
        let len = usize::try_from(to - from).unwrap_or(usize::MAX);
        if resident(fd, from, len) == Some(false) {
            *g = None;
        }
    }

    /// Records that `[position, position + len)` passed its check, which began when the file
    /// had `stamp`.
    pub(crate) fn checked(&self, position: u64, len: usize, stamp: Option<Stamp>) {
        let Some(stamp) = stamp else { return };
        let end = position.saturating_add(len as u64);
        let mut g = self.range.lock().unwrap_or_else(|p| p.into_inner());
        *g = Some(match *g {
            Some(c) if c.stamp == stamp && position <= c.to && end >= c.from => Checked {
                from: c.from.min(position),
                to: c.to.max(end),
                stamp,
            },
            _ => Checked {
                from: position,
                to: end,
                stamp,
            },
        });
    }
}
