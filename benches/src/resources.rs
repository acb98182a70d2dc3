//! CPU time and resident memory of processes, read from `/proc`: the brokers this tool started
//! and the tool itself (its librdkafka clients share the same two cores).

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// User plus system CPU time, in seconds.
    pub cpu_s: f64,
    /// Resident set size, in bytes.
    pub rss_bytes: u64,
}

/// Reads `/proc/<pid>` (`None` reads this process); `None` when the process is gone.
pub fn read(pid: Option<u32>) -> Option<Usage> {
    let dir = match pid {
        Some(p) => format!("/proc/{p}"),
        None => "/proc/self".to_string(),
    };
    let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are counted from ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12, rss (24) at 21.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    let rss_pages: u64 = fields.get(21)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let (tick, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    Some(Usage {
        cpu_s: (utime + stime) / tick.max(1) as f64,
        rss_bytes: rss_pages * page.max(1) as u64,
    })
}

/// CPU used and peak memory of one process over a measured window. A process restarted
/// inside the window (a failover workload) is charged from its restart.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    pid: Option<u32>,
    start: Usage,
    last: Usage,
    cpu_before_restarts: f64,
    /// Highest resident set size seen.
    pub peak_rss_bytes: u64,
}

impl Tracker {
    /// Starts tracking `pid` (`None`: this process).
    pub fn new(pid: Option<u32>) -> Tracker {
        let start = read(pid).unwrap_or_default();
        Tracker {
            pid,
            start,
            last: start,
            cpu_before_restarts: 0.0,
            peak_rss_bytes: start.rss_bytes,
        }
    }

    /// Takes a reading; `pid` is the process's current id (it changes on a restart).
    pub fn sample(&mut self, pid: Option<u32>) {
        if pid != self.pid {
            self.cpu_before_restarts += self.last.cpu_s - self.start.cpu_s;
            self.pid = pid;
            self.start = Usage::default();
            self.last = Usage::default();
        }
        if let Some(u) = read(pid) {
            self.last = u;
            self.peak_rss_bytes = self.peak_rss_bytes.max(u.rss_bytes);
        }
    }

    /// CPU seconds used since tracking started.
    pub fn cpu_s(&self) -> f64 {
        self.cpu_before_restarts + (self.last.cpu_s - self.start.cpu_s).max(0.0)
    }
}
