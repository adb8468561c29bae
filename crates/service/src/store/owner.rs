//! The thread that owns the SQLite connection: it runs submitted jobs one at a time, in order, and stops when the
//! last `Store` handle is dropped.

use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::Arc;
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
    file: Arc<FileIdentity>,
}

/// The database file as opened (device and inode). If the path later names no file, or another one (the data
/// directory was deleted or replaced), the open connection would go on writing into an unlinked file whose
/// contents vanish at exit: every operation is refused instead.
struct FileIdentity {
    path: PathBuf,
    dev_ino: Option<(u64, u64)>,
}

impl FileIdentity {
    fn of(path: PathBuf) -> FileIdentity {
        let dev_ino = std::fs::metadata(&path).ok().map(|m| (m.dev(), m.ino()));
        FileIdentity { path, dev_ino }
    }

    fn check(&self) -> Result<(), StoreError> {
        let now = std::fs::metadata(&self.path)
            .ok()
            .map(|m| (m.dev(), m.ino()));
        match (self.dev_ino, now) {
            (Some(opened), Some(now)) if opened != now => Err(self.gone()),
            (Some(_), None) => Err(self.gone()),
            _ => Ok(()),
        }
    }

    fn gone(&self) -> StoreError {
        StoreError::Gone {
            path: self.path.clone(),
        }
    }
}

impl Owner {
    pub(super) fn spawn(mut db: Connection, path: PathBuf) -> Result<Owner, StoreError> {
        let label = path.display().to_string();
        let file = Arc::new(FileIdentity::of(path));
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
            file,
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
        let file = self.file.clone();
        let job: Job = Box::new(move |db| {
            // One stat per operation: cheap next to SQLite, and the only way to notice the file was unlinked.
            let result = file.check().and_then(|()| op(db));
            // The caller may have gone (a dropped future); the work is done and committed all the same.
            let _ = reply.send(result);
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
