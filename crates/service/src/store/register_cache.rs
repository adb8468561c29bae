//! The change register held in memory beside the database: loaded once, kept current by each write of this
//! process (incrementally, with the write's own notices), and reloaded whole only when another connection (a CLI
//! process) has committed to the file. Readers off the owner thread see the last committed register.

use std::sync::{PoisonError, RwLock, RwLockWriteGuard};

use rusqlite::Connection;
use stormwatch_core::changes::{ChangeNotice, ChangeRegister};

use super::StoreError;

#[derive(Default)]
pub(super) struct Cached {
    /// SQLite's `data_version` when the register was last read from the file; `None` before the first load.
    version: Option<i64>,
    pub(super) register: ChangeRegister,
}

/// Shared by every clone of a `Store`; written only on the owner thread, read anywhere.
#[derive(Default)]
pub struct RegisterCache {
    inner: RwLock<Cached>,
}

/// The undo record of one write: each id's notice before it (`None`: it was new), to put back if the write's
/// transaction does not commit.
pub(super) type Undo = Vec<(String, Option<ChangeNotice>)>;

impl RegisterCache {
    /// On the owner thread: the register for a write, first re-read from `db` with `read` if another connection
    /// committed since it was read. Readers wait while the guard is held.
    pub(super) fn current(
        &self,
        db: &mut Connection,
        read: fn(&Connection) -> Result<ChangeRegister, StoreError>,
    ) -> Result<RwLockWriteGuard<'_, Cached>, StoreError> {
        let version = super::schema::data_version(db)?;
        let mut cached = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if cached.version != Some(version) {
            cached.register = read(db)?;
            cached.version = Some(version);
            tracing::debug!(
                changes = cached.register.len(),
                "change register read from the store"
            );
        }
        Ok(cached)
    }

    pub(super) fn version(&self) -> Option<i64> {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .version
    }

    /// Runs `read` on the register as last committed (it may lag a CLI write until the next store operation
    /// that checks). The owner thread's writes wait meanwhile: keep `read` short or call it off the async workers.
    pub fn with<T>(&self, read: impl FnOnce(&ChangeRegister) -> T) -> T {
        let cached = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        read(&cached.register)
    }
}

impl Cached {
    pub(super) fn version(&self) -> Option<i64> {
        self.version
    }

    /// Adds or replaces `notice`, remembering what it replaced in `undo`.
    pub(super) fn apply(&mut self, notice: ChangeNotice, undo: &mut Undo) {
        let id = notice.id.clone();
        let previous = self.register.upsert(notice);
        undo.push((id, previous));
    }

    /// Puts back what `undo` recorded, newest first: the write it belongs to was rolled back.
    pub(super) fn revert(&mut self, undo: Undo) {
        for (id, previous) in undo.into_iter().rev() {
            match previous {
                Some(notice) => {
                    self.register.upsert(notice);
                }
                None => {
                    self.register.remove(&id);
                }
            }
        }
    }
}
