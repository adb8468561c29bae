//! The threads that own the SQLite connections: the writer runs submitted jobs one at a time, in order (the
//! engine's writes first: they have a lane of their own); the readers (read-only connections, which WAL lets read
//! beside the writer) share one queue of reads. Each stops when the last `Store` handle is dropped.

use std::os::unix::fs::MetadataExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam::channel::{Receiver, Sender, unbounded};
use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use super::StoreError;

/// Work for the owner thread. A closure rather than a request enum: each operation is then one plain function of
/// the connection, and the handle's blocking and async methods share a single path.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Shared by every clone of a `Store`; its drop closes the channel and waits for queued jobs to finish.
pub(super) struct Owner {
    jobs: Option<Sender<Job>>,
    /// Taken before any job waiting in `jobs`: the engine's writes, which its snapshot waits for, do not queue
    /// behind a backlog of API writes and probes (only behind the job in progress, and one more that the writer
    /// thread's own gap between two batches lets in).
    urgent: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    file: Arc<FileIdentity>,
    /// Fault injection for tests: each job first sleeps this many milliseconds (0: never). Never set in normal
    /// operation.
    slow_ms: Arc<AtomicU64>,
}

/// The database file as opened (device and inode). If the path later names no file, or another one (the data
/// directory was deleted or replaced), the open connection would go on writing into an unlinked file whose
/// contents vanish at exit: every operation is refused instead.
pub(super) struct FileIdentity {
    path: PathBuf,
    dev_ino: Option<(u64, u64)>,
}

impl FileIdentity {
    pub(super) fn of(path: PathBuf) -> FileIdentity {
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
    /// The writer: one connection, so jobs run one at a time in arrival order.
    pub(super) fn spawn(db: Connection, path: PathBuf) -> Result<Owner, StoreError> {
        let file = Arc::new(FileIdentity::of(path));
        Owner::spawn_threads(vec![db], file, "stormwatch-store")
    }

    /// `count` readers on read-only connections to the file `file` names, sharing one queue: a read never waits
    /// behind a write, and up to `count` reads run at once.
    pub(super) fn spawn_readers(
        file: Arc<FileIdentity>,
        count: usize,
    ) -> Result<Owner, StoreError> {
        let connections = (0..count.max(1))
            .map(|_| open_reader(&file.path))
            .collect::<Result<Vec<_>, _>>()?;
        Owner::spawn_threads(connections, file, "stormwatch-store-read")
    }

    pub(super) fn file(&self) -> Arc<FileIdentity> {
        self.file.clone()
    }

    /// Every job on this owner first sleeps `delay` (fault injection for tests of a slow disk).
    pub(super) fn set_fault_delay(&self, delay: Duration) {
        let ms = delay.as_millis().min(u128::from(u64::MAX)) as u64;
        self.slow_ms.store(ms, Ordering::Relaxed);
    }

    fn spawn_threads(
        connections: Vec<Connection>,
        file: Arc<FileIdentity>,
        name: &str,
    ) -> Result<Owner, StoreError> {
        let label = file.path.display().to_string();
        // Unbounded: a bounded channel would block an async caller's worker thread when full, and the callers'
        // own concurrency (CLI: one; service: its request limit; engine: its coalescing write queue) already
        // bounds the queue.
        let (jobs, queue) = unbounded::<Job>();
        let (urgent, urgent_queue) = unbounded::<Job>();
        let slow_ms = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::with_capacity(connections.len());
        for mut db in connections {
            let (queue, urgent_queue) = (queue.clone(), urgent_queue.clone());
            let (label, slow_ms) = (label.clone(), slow_ms.clone());
            let thread = std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    while let Some(job) = next_job(&urgent_queue, &queue) {
                        let delay = slow_ms.load(Ordering::Relaxed);
                        if delay > 0 {
                            std::thread::sleep(Duration::from_millis(delay));
                        }
                        // A panicking job drops its reply (the caller sees `Closed`) and rolls back its
                        // transaction; the connection is still good, so the store keeps serving the others.
                        if catch_unwind(AssertUnwindSafe(|| job(&mut db))).is_err() {
                            tracing::error!(store = %label, "a store operation panicked; its changes were rolled back");
                        }
                    }
                    tracing::debug!(store = %label, "store connection closed");
                })
                .map_err(StoreError::Thread)?;
            threads.push(thread);
        }
        Ok(Owner {
            jobs: Some(jobs),
            urgent: Some(urgent),
            threads,
            file,
            slow_ms,
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
        self.queue(self.jobs.as_ref(), op)
    }

    /// [`Owner::submit`] ahead of every job not submitted this way.
    pub(super) fn submit_urgent<T, F>(
        &self,
        op: F,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.queue(self.urgent.as_ref(), op)
    }

    fn queue<T, F>(
        &self,
        lane: Option<&Sender<Job>>,
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
        let lane = lane.ok_or(StoreError::Closed)?;
        lane.send(job).map_err(|_| StoreError::Closed)?;
        Ok(receiver)
    }
}

/// The next job, an urgent one first; `None` once both lanes are closed and empty.
fn next_job(urgent: &Receiver<Job>, normal: &Receiver<Job>) -> Option<Job> {
    if let Ok(job) = urgent.try_recv() {
        return Some(job);
    }
    // A closed lane is ready at once with an error: then only the other one can still yield a job.
    crossbeam::channel::select! {
        recv(urgent) -> job => job.ok().or_else(|| normal.recv().ok()),
        recv(normal) -> job => job.ok().or_else(|| urgent.recv().ok()),
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.jobs.take();
        self.urgent.take();
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a store connection's thread panicked");
            }
        }
    }
}

/// A read-only connection to a file the writer has already opened and migrated (and put in WAL mode).
fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        cause: source,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let db = Connection::open_with_flags(path, flags).map_err(open_error)?;
    // A checkpoint or another process's migration may hold a lock for a moment.
    db.busy_timeout(Duration::from_secs(5))
        .map_err(open_error)?;
    Ok(db)
}
