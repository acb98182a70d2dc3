//! The broker's open-file limit. Every partition holds one descriptor per segment (its `.log`;
//! index files are memory-mapped without one, and partition locks are covered by the data
//! directory's), so the common default soft limit (1,024) stops a broker at about 1,000
//! single-segment partitions. As Kafka's and Redpanda's
//! operators are told to, and as the Go runtime and Seastar do by themselves, the broker raises
//! its own limit at start: the soft limit to the hard one, and the hard one too when the
//! process may (root, `CAP_SYS_RESOURCE`), up to the kernel's `fs.nr_open`.

/// The limit asked for when the process may raise its hard limit: enough descriptors for
/// 100,000 single-segment partitions.
const WANTED: u64 = 1 << 20;

/// Raises `RLIMIT_NOFILE` as far as allowed; returns the (soft, hard) limits now in force.
pub fn raise_limit() -> std::io::Result<(u64, u64)> {
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut current) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(current.rlim_max);
    let target = WANTED.min(nr_open).max(current.rlim_max);
    let attempts = [
        libc::rlimit {
            rlim_cur: target,
            rlim_max: target,
        },
        libc::rlimit {
            rlim_cur: current.rlim_max,
            rlim_max: current.rlim_max,
        },
    ];
    for wanted in attempts {
        if wanted.rlim_cur <= current.rlim_cur {
            continue;
        }
        // SAFETY: setrlimit reads the struct we own; a refusal (EPERM) changes nothing.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            return Ok((wanted.rlim_cur, wanted.rlim_max));
        }
    }
    Ok((current.rlim_cur, current.rlim_max))
}

#[cfg(test)]
mod tests {
    /// The limit never goes down, and the soft limit reaches at least the hard limit the
    /// process started with.
    #[test]
    fn the_limit_rises_to_at_least_the_hard_limit() {
        let mut before = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        assert_eq!(
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut before) },
            0
        );
        let (soft, hard) = super::raise_limit().expect("getrlimit works");
        assert!(soft >= before.rlim_max && hard >= before.rlim_max);
        assert_eq!(soft, hard);
    }
}
