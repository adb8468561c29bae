//! The thread that owns the SQLite connection: it runs submitted jobs one at a time, in order, and stops when the
//! last `Store` handle is dropped.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::JoinHandle;

use crossbeam::channel::{Sender, unbounded};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::StoreError;

/// Work for the owner thread. A closure rather than a request enum: each operation is then one plain function of
/// the connection, and the handle's blocking and async methods share a single path.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Shared by every clone of a `Store`; its drop closes the channel and waits for queued jobs to finish.
pub(super) struct Owner {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Owner {
    pub(super) fn spawn(mut db: Connection, label: String) -> Result<Owner, StoreError> {
        // Unbounded: a bounded channel would block an async caller's worker thread when full, and the callers'
        // own concurrency (CLI: one; service: its request limit) already bounds the queue.
        let (jobs, queue) = unbounded::<Job>();
        let thread = std::thread::Builder::new()
            .name("stormwatch-store".into())
            .spawn(move || {
                for job in queue {
                    // A panicking job drops its reply (the caller sees `Closed`) and rolls back its transaction;
                    // the connection is still good, so the store keeps serving the others.
                    if catch_unwind(AssertUnwindSafe(|| job(&mut db))).is_err() {
                        tracing::error!(store = %label, "a store operation panicked; its changes were rolled back");
                    }
                }
                tracing::debug!(store = %label, "store closed");
            })
            .map_err(StoreError::Thread)?;
        Ok(Owner {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Queues `op`; its result arrives on the returned receiver (await it, or `blocking_recv` outside a runtime).
    pub(super) fn submit<T, F>(
        &self,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, receiver) = oneshot::channel();
        let job: Job = Box::new(move |db| {
            // The caller may have gone (a dropped future); the work is done and committed all the same.
            let _ = reply.send(op(db));
        });
        let jobs = self.jobs.as_ref().ok_or(StoreError::Closed)?;
        jobs.send(job).map_err(|_| StoreError::Closed)?;
        Ok(receiver)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store's owner thread panicked");
        }
    }
}
