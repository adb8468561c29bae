//! One `serve` per data directory: an exclusive lock (`flock`, through `std::fs::File::try_lock`) on
//! `stormwatch.lock` in it, taken before anything else there is touched and held for the process's life. The
//! file records the holder's PID so that a second process can say who holds it. The kernel drops the lock when
//! the holder exits, kill -9 included, so a stale file never blocks a restart. CLI commands that write the store
//! (`changes add`, `tokens add`, ...) do not take it: SQLite's own locking orders their writes with the service's.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "stormwatch.lock";

/// How long a refused process waits for the holder to write its PID (it locks first, then writes).
const PID_PATIENCE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "data directory {} is in use by another `stormwatch serve` (PID {pid}, holding {}); stop that one first, or give this one its own --data-dir",
        dir.display(),
        file.display()
    )]
    Held {
        dir: PathBuf,
        file: PathBuf,
        /// The holder's PID as its lock file says it, or `unknown` if it has not written it.
        pid: String,
    },
    #[error("cannot create data directory {}: {cause}", dir.display())]
    CreateDir { dir: PathBuf, cause: std::io::Error },
    #[error("data directory {} cannot be written (read-only or full?): cannot open its lock file {}: {cause}", dir.display(), file.display())]
    Open {
        dir: PathBuf,
        file: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot lock {}: {cause}", file.display())]
    Lock {
        file: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot record this process's PID in {}: {cause}", file.display())]
    WritePid {
        file: PathBuf,
        cause: std::io::Error,
    },
}

/// Held for as long as the process owns the data directory; dropping it (or exiting) releases the lock. The file
/// stays: removing it would let a third process lock a new file while a second still waits on the old one.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it for this process, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        std::fs::create_dir_all(dir).map_err(|cause| LockError::CreateDir {
            dir: dir.to_owned(),
            cause,
        })?;
        let path = dir.join(LOCK_FILE);
        // Not truncated on open: until the lock is ours, the PID in it is the holder's.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|cause| LockError::Open {
                dir: dir.to_owned(),
                file: path.clone(),
                cause,
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    pid: holder_pid(&mut file),
                    file: path,
                });
            }
            Err(TryLockError::Error(cause)) => return Err(LockError::Lock { file: path, cause }),
        }
        let pid = std::process::id();
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)).map(drop))
            .and_then(|()| writeln!(file, "{pid}"))
            .map_err(|cause| LockError::WritePid {
                file: path.clone(),
                cause,
            })?;
        tracing::debug!(path = %path.display(), pid, "data directory locked");
        Ok(DataDirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The PID the holder wrote, waiting briefly for a holder that has locked but not yet written.
fn holder_pid(file: &mut File) -> String {
    let deadline = Instant::now() + PID_PATIENCE;
    loop {
        let mut text = String::new();
        let read = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text));
        let pid = text.trim();
        if read.is_ok() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) {
            return pid.to_owned();
        }
        if Instant::now() >= deadline {
            return "unknown".to_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let held = DataDirLock::acquire(&data).unwrap();
        let written = std::fs::read_to_string(held.path()).unwrap();
        assert_eq!(written.trim(), std::process::id().to_string());
        // flock locks belong to the open file, so a second open in this process is refused like another process.
        let error = DataDirLock::acquire(&data).unwrap_err();
        assert!(matches!(error, LockError::Held { .. }), "{error:?}");
        let message = error.to_string();
        assert!(
            message.contains(&format!("PID {}", std::process::id())),
            "{message}"
        );
        drop(held);
        let again = DataDirLock::acquire(&data).unwrap();
        assert_eq!(
            std::fs::read_to_string(again.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn a_stale_pid_from_an_exited_holder_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(LOCK_FILE), "4000000000\n").unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(lock.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }
}
