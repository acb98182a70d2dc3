//! Test support: a `QuorumNode` driven from a thread of its own.
//!
//! raft-engine caches the last read block in a thread-local keyed by file position only, not by
//! engine, so two engines read from one thread can be served each other's blocks. A process runs
//! one quorum member, so this only matters to tests that put three in one process: each member
//! lives on its own thread and the test calls into it synchronously (which keeps the test's order
//! of events deterministic).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;

use strata_replication::controller::QuorumNode;

type Job = Box<dyn FnOnce(&mut QuorumNode) + Send>;

/// A quorum member on its own thread.
pub struct Member {
    id: u64,
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Member {
    /// Opens member `id` (in its thread) on `dir`.
    pub fn start(id: u64, voters: &'static [u64], dir: PathBuf, snapshot_every: u64) -> Member {
        let (tx, rx) = mpsc::channel::<Job>();
        let thread = std::thread::spawn(move || {
            let mut node =
                QuorumNode::open(id, voters, &dir, snapshot_every).expect("open quorum member");
            for job in rx {
                job(&mut node);
            }
        });
        Member {
            id,
            tx: Some(tx),
            thread: Some(thread),
        }
    }

    /// The member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Runs `f` on the member's thread and returns its result.
    pub fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut QuorumNode) -> R + Send + 'static,
    ) -> R {
        let (rtx, rrx) = mpsc::channel();
        let job: Job = Box::new(move |n| {
            let _ = rtx.send(f(n));
        });
        self.tx
            .as_ref()
            .expect("running")
            .send(job)
            .expect("member thread alive");
        rrx.recv().expect("member thread answered")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
