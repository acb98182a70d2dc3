//! Work that waits on the disk rather than the CPU (opening or closing thousands of logs, each
//! a few fsyncs), spread over more threads than there are cores so that the disk sees many
//! requests at once. Used at start, on CreateTopics and at shutdown; never on a request path.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Threads at most. A virtio or NVMe disk serves this many fsyncs in flight well; more only
/// adds threads.
pub const THREADS_MAX: usize = 16;

/// Runs `f(0..n)` on up to [`THREADS_MAX`] scoped threads and returns the results in index
/// order, or the error of the lowest failed index (work already started finishes; no new work
/// starts after a failure).
pub fn map<T, E>(n: usize, f: impl Fn(usize) -> Result<T, E> + Sync) -> Result<Vec<T>, E>
where
    T: Send,
    E: Send,
{
    let threads = n.min(THREADS_MAX);
    if threads <= 1 {
        return (0..n).map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results: Mutex<Vec<(usize, Result<T, E>)>> = Mutex::new(Vec::with_capacity(n));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let r = f(i);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((i, r));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    /// Results come back in index order; an error is reported and stops new work.
    #[test]
    fn results_in_order_and_errors_reported() {
        let squares = super::map(100, |i| Ok::<usize, ()>(i * i)).expect("no error");
        assert_eq!(squares, (0..100).map(|i| i * i).collect::<Vec<_>>());
        let r = super::map(100, |i| if i == 37 { Err(i) } else { Ok(i) });
        assert_eq!(r, Err(37));
        assert_eq!(super::map(0, Ok::<usize, ()>), Ok(vec![]));
    }
}
