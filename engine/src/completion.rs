//! Completions of appends: a caller can wait for "written" (in the page cache, readable) and
//! for "durable" (covered by an fdatasync) separately, blocking or as a `Future`.
//!
//! Invariant: the state only moves forward (pending -> written -> durable) or to failed, and
//! every waiter is woken on each move.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::error::LogError;

#[derive(Debug, Default)]
struct State {
    written: bool,
    durable: bool,
    failure: Option<(PathBuf, io::ErrorKind, String)>,
    wakers: Vec<Waker>,
}

#[derive(Debug, Default)]
pub(crate) struct CompletionInner {
    state: Mutex<State>,
    cond: Condvar,
}

impl CompletionInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wake(&self, mut st: MutexGuard<'_, State>) {
        let wakers = std::mem::take(&mut st.wakers);
        drop(st);
        self.cond.notify_all();
        for w in wakers {
            w.wake();
        }
    }

    pub fn mark_written(&self) {
        let mut st = self.lock();
        st.written = true;
        self.wake(st);
    }

    pub fn mark_durable(&self) {
        let mut st = self.lock();
        st.written = true;
        st.durable = true;
        self.wake(st);
    }

    pub fn fail(&self, path: PathBuf, error: &io::Error) {
        let mut st = self.lock();
        if st.failure.is_none() && !st.durable {
            st.failure = Some((path, error.kind(), error.to_string()));
        }
        self.wake(st);
    }
}

fn failure_error(f: &(PathBuf, io::ErrorKind, String)) -> LogError {
    LogError::Io {
        path: f.0.clone(),
        source: io::Error::new(f.1, f.2.clone()),
    }
}

/// What an append waits on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Written to the file (readable, in the page cache).
    Written,
    /// Made durable by fdatasync.
    Durable,
}

/// A handle to wait for one append (or a flush) to reach a [`Stage`].
#[derive(Clone, Debug)]
pub struct Completion {
    inner: Arc<CompletionInner>,
}

impl Completion {
    pub(crate) fn new() -> (Completion, Arc<CompletionInner>) {
        let inner = Arc::new(CompletionInner::default());
        (
            Completion {
                inner: inner.clone(),
            },
            inner,
        )
    }

    /// A completion that is already durable (nothing to wait for).
    pub fn done() -> Completion {
        let (c, inner) = Completion::new();
        inner.mark_durable();
        c
    }

    fn reached(st: &State, stage: Stage) -> Option<Result<(), LogError>> {
        let ok = match stage {
            Stage::Written => st.written,
            Stage::Durable => st.durable,
        };
        if ok {
            return Some(Ok(()));
        }
        st.failure.as_ref().map(|f| Err(failure_error(f)))
    }

    /// Whether the stage is reached (`None` while pending, `Some(Err)` on failure).
    pub fn poll_stage(&self, stage: Stage) -> Option<Result<(), LogError>> {
        Completion::reached(&self.inner.lock(), stage)
    }

    /// Blocks until the stage is reached or the write failed.
    pub fn wait(&self, stage: Stage) -> Result<(), LogError> {
        let mut st = self.inner.lock();
        loop {
            if let Some(r) = Completion::reached(&st, stage) {
                return r;
            }
            st = self.inner.cond.wait(st).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Blocks until written.
    pub fn wait_written(&self) -> Result<(), LogError> {
        self.wait(Stage::Written)
    }

    /// Blocks until durable. Under `flush=os` an append becomes durable only when something
    /// syncs its log ([`crate::Log::flush`], a segment roll, or [`crate::Log::close`]).
    pub fn wait_durable(&self) -> Result<(), LogError> {
        self.wait(Stage::Durable)
    }

    /// A future that resolves when the stage is reached.
    pub fn until(&self, stage: Stage) -> StageFuture {
        StageFuture {
            inner: self.inner.clone(),
            stage,
        }
    }
}

/// Future returned by [`Completion::until`].
#[derive(Debug)]
pub struct StageFuture {
    inner: Arc<CompletionInner>,
    stage: Stage,
}

impl Future for StageFuture {
    type Output = Result<(), LogError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut st = self.inner.lock();
        if let Some(r) = Completion::reached(&st, self.stage) {
            return Poll::Ready(r);
        }
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}
