//! `strata-bench sync`: what it costs to make one round of small appends to many files durable,
//! for each way the commit pipeline could do it, on the disk under `--dir`.
//!
//! Each round writes `--bytes-per-file` to the end of each of `--files` files (as a round of
//! the commit pipeline does for that many dirty partitions), then makes the round durable by
//! one of these methods:
//!
//! - `writes-only`: no sync at all, the floor every method pays for its writes;
//! - `fdatasync-serial`: one `fdatasync` per file, one after another (the portable backend);
//! - `fdatasync-uring`: one `FSYNC(DATASYNC)` SQE per file, all submitted at once (the io_uring
//!   backend), with io_uring's default io-wq worker limit;
//! - `fdatasync-uring-wq`: the same with the bounded io-wq workers raised to 64;
//! - `prealloc-uring`: the same on files whose blocks were written (zeros) and synced up
//!   front, so a round overwrites allocated blocks and fdatasync journals no size change;
//! - `syncfs`: one `syncfs` of the file system per round (every dirty file of the file system
//!   is written back, one journal commit, one device flush);
//! - `journal`: the round's bytes also appended to one journal file, and only that file is
//!   synced (the files themselves are left to the page cache, as a per-disk journal would).
//!
//! For each it prints rounds per second, the ratio to the same method with one file, and the
//! device's flush requests per round read from `/sys/dev/block/M:m/stat` (the kernel counts
//! REQ_PREFLUSH requests there), which is what bounds a virtio disk: an fdatasync that must
//! commit the journal costs a journal write plus flushes; one that needs none costs a flush.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};

type BoxError = Box<dyn std::error::Error>;

/// Options of `strata-bench sync`.
#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Directory to benchmark in (default: a new temporary directory under ./bench-results).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Numbers of files (dirty partitions per round) to measure, comma-separated.
    #[arg(long, default_value = "1,100,1000", value_delimiter = ',')]
    files: Vec<usize>,
    /// Bytes appended to each file per round.
    #[arg(long, default_value_t = 4096)]
    bytes_per_file: usize,
    /// Seconds per (method, file count).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Methods to measure, comma-separated (default: all).
    #[arg(long, value_delimiter = ',')]
    methods: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    WritesOnly,
    Serial,
    Uring,
    UringWq,
    Prealloc,
    Syncfs,
    Journal,
}

impl Method {
    const ALL: [Method; 7] = [
        Method::WritesOnly,
        Method::Serial,
        Method::Uring,
        Method::UringWq,
        Method::Prealloc,
        Method::Syncfs,
        Method::Journal,
    ];

    fn name(self) -> &'static str {
        match self {
            Method::WritesOnly => "writes-only",
            Method::Serial => "fdatasync-serial",
            Method::Uring => "fdatasync-uring",
            Method::UringWq => "fdatasync-uring-wq",
            Method::Prealloc => "prealloc-uring",
            Method::Syncfs => "syncfs",
            Method::Journal => "journal",
        }
    }
}

/// Flush requests the block device has completed so far (`None` where the kernel does not
/// report them).
pub(crate) fn device_flushes(dir: &Path) -> Option<u64> {
    let dev = std::fs::metadata(dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let stat = std::fs::read_to_string(format!("/sys/dev/block/{major}:{minor}/stat")).ok()?;
    // Field 16 (1-based) is "flush requests completed successfully" (Linux 5.5+).
    stat.split_whitespace().nth(15)?.parse().ok()
}

struct Files {
    files: Vec<File>,
    ends: Vec<u64>,
}

impl Files {
    fn create(dir: &Path, n: usize, prealloc_bytes: u64) -> Result<Files, BoxError> {
        let mut files = Vec::with_capacity(n);
        for i in 0..n {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(dir.join(format!("{i:05}.log")))?;
            if prealloc_bytes > 0 {
                let zeros = vec![0u8; 1 << 20];
                let mut at = 0;
                while at < prealloc_bytes {
                    let n = zeros.len().min((prealloc_bytes - at) as usize);
                    f.write_all_at(&zeros[..n], at)?;
                    at += n as u64;
                }
                f.sync_all()?;
            }
            files.push(f);
        }
        Ok(Files {
            ends: vec![0; n],
            files,
        })
    }

    fn write_round(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        for (f, end) in self.files.iter().zip(self.ends.iter_mut()) {
            f.write_all_at(chunk, *end)?;
            *end += chunk.len() as u64;
        }
        Ok(())
    }
}

fn uring_fdatasync_all(ring: &mut IoUring, files: &[File]) -> Result<(), BoxError> {
    for chunk in files.chunks(ring.params().sq_entries() as usize) {
        for f in chunk {
            let sqe = opcode::Fsync::new(types::Fd(f.as_raw_fd()))
                .flags(types::FsyncFlags::DATASYNC)
                .build();
            // SAFETY: the SQE references only a descriptor that outlives the wait below.
            unsafe { ring.submission().push(&sqe) }.map_err(|_| "submission queue full")?;
        }
        ring.submit_and_wait(chunk.len())?;
        let mut done = 0;
        while done < chunk.len() {
            for cqe in ring.completion() {
                if cqe.result() < 0 {
                    return Err(std::io::Error::from_raw_os_error(-cqe.result()).into());
                }
                done += 1;
            }
            if done < chunk.len() {
                ring.submit_and_wait(1)?;
            }
        }
    }
    Ok(())
}

/// Runs one (method, file count) for `seconds`; returns (rounds, elapsed, device flushes).
fn measure(
    dir: &Path,
    method: Method,
    n: usize,
    args: &SyncArgs,
) -> Result<(u64, Duration, Option<u64>), BoxError> {
    let sub = dir.join(format!("{}-{n}", method.name()));
    std::fs::create_dir_all(&sub)?;
    let chunk = vec![b'x'; args.bytes_per_file];
    // Room for the run at up to 20,000 rounds per second, and at most 256 MiB of
    // preallocated files in all (a run with fewer rounds than that stops when the room is used).
    let rounds_max = (args.seconds * 20_000.0) as u64;
    let prealloc = if method == Method::Prealloc {
        (rounds_max * args.bytes_per_file as u64).min((256 << 20) / n.max(1) as u64)
    } else {
        0
    };
    let mut files = Files::create(&sub, n, prealloc)?;
    let journal = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(sub.join("journal"))?;
    let mut journal_end = 0u64;
    let journal_buf = vec![b'j'; args.bytes_per_file * n];
    let mut ring = IoUring::new(256)?;
    if method == Method::UringWq {
        let mut max = [64u32, 64u32];
        ring.submitter().register_iowq_max_workers(&mut max)?;
    }
    let flushes_before = device_flushes(&sub);
    let start = Instant::now();
    let mut rounds = 0u64;
    while start.elapsed().as_secs_f64() < args.seconds && rounds < rounds_max {
        if method == Method::Prealloc
            && files.ends.first().copied().unwrap_or(0) + args.bytes_per_file as u64 > prealloc
        {
            break;
        }
        files.write_round(&chunk)?;
        match method {
            Method::WritesOnly => {}
            Method::Serial => {
                for f in &files.files {
                    f.sync_data()?;
                }
            }
            Method::Uring | Method::UringWq | Method::Prealloc => {
                uring_fdatasync_all(&mut ring, &files.files)?
            }
            Method::Syncfs => {
                let fd = files
                    .files
                    .first()
                    .map(|f| f.as_raw_fd())
                    .ok_or("no files")?;
                // SAFETY: syncfs takes a descriptor we own.
                if unsafe { libc::syncfs(fd) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
            }
            Method::Journal => {
                journal.write_all_at(&journal_buf, journal_end)?;
                journal_end += journal_buf.len() as u64;
                journal.sync_data()?;
            }
        }
        rounds += 1;
    }
    let elapsed = start.elapsed();
    let flushes = match (flushes_before, device_flushes(&sub)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    drop(files);
    std::fs::remove_dir_all(&sub)?;
    Ok((rounds, elapsed, flushes))
}

/// Runs `strata-bench sync`.
pub fn run(args: SyncArgs) -> Result<(), BoxError> {
    let methods: Vec<Method> = if args.methods.is_empty() {
        Method::ALL.to_vec()
    } else {
        args.methods
            .iter()
            .map(|m| {
                Method::ALL
                    .into_iter()
                    .find(|x| x.name() == m)
                    .ok_or_else(|| format!("unknown method {m:?}"))
            })
            .collect::<Result<_, _>>()?
    };
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            std::fs::create_dir_all("bench-results")?;
            tmp = tempfile::tempdir_in("bench-results")?;
            tmp.path().to_path_buf()
        }
    };
    println!(
        "sync options: {} B appended per file per round, {:.1} s each, in {}",
        args.bytes_per_file,
        args.seconds,
        dir.display()
    );
    println!(
        "{:<20} {:>6} {:>12} {:>14} {:>16} {:>18}",
        "method", "files", "rounds/s", "ms/round", "x one file", "device flushes/round"
    );
    for method in methods {
        let mut one_file_rate = None;
        for &n in &args.files {
            let (rounds, elapsed, flushes) = measure(&dir, method, n, &args)?;
            let rate = rounds as f64 / elapsed.as_secs_f64();
            if n == 1 {
                one_file_rate = Some(rate);
            }
            let ratio = one_file_rate.map_or("-".to_string(), |r| format!("{:.3}", rate / r));
            let per_round = flushes.map_or("-".to_string(), |f| {
                format!("{:.2}", f as f64 / rounds.max(1) as f64)
            });
            println!(
                "{:<20} {:>6} {:>12.1} {:>14.3} {:>16} {:>18}",
                method.name(),
                n,
                rate,
                1000.0 / rate.max(1e-9),
                ratio,
                per_round
            );
        }
    }
    Ok(())
}
