//! The embedded SQLite store (change register with audit, API tokens, incidents with their state history and
//! operators' audited triage, engine snapshot, User directory edits, the event time reached), owned by one
//! thread; `Store` is the cheap, cloneable handle every caller uses.
//!
//! Every operation comes twice: a blocking method for the CLI and tests, and an `_async` twin for async code
//! (HTTP handlers). Both queue the same job. Writes go to the writer thread, which runs them one at a time in
//! arrival order, so writes never contend inside the process; reads (token lookups, lists, the snapshot) go to a
//! small pool of read-only connections that WAL lets read beside the writer, so a read never queues behind a
//! write. No caller ever touches a connection. The blocking methods panic if called on a tokio runtime thread
//! (tokio's `blocking_recv` rule): async code uses the `_async` ones. The engine's own writes reach the writer
//! through the bounded, coalescing `write_queue`.
//!
//! The wall clock (`created_ms`, audit times) is read here, not in the engine, which stays a function of its input.

mod audit;
mod changes;
mod directory;
mod error;
mod event_clock;
mod history;
pub mod incident_numbers;
mod incidents;
mod owner;
mod register_cache;
mod retention;
mod schema;
mod series;
pub mod sink;
mod tokens;
mod triage;
pub mod write_queue;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use audit::{AuditAction, AuditEntry, FieldChange};
pub use changes::{
    CHUNK, ChangeFilter, NoticeCheck, Progress, Registration, StatusChange, StoredChange, Upsert,
    UpsertOutcome, merged,
};
pub use directory::DirectoryAudit;
pub use error::StoreError;
pub use history::HistoryEntry;
pub use incidents::{IncidentFilter, StoredIncident};
pub use register_cache::RegisterCache;
pub use retention::Pruned;
pub use schema::SCHEMA_VERSION;
pub use tokens::{Principal, Role, SECRET_PREFIX, TokenId, TokenInfo};
pub use triage::{
    Judgement, MAX_NOTE_CHARS, Triage, TriageAction, TriageEntry, TriageOutcome, TriageRequest,
};

use stormwatch_core::changes::{
    ChangeNotice, ChangeOwner, ChangeRegister, ChangeStatus, CoordinationConfig,
};
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// The database's file name inside the data directory.
pub const DB_FILE: &str = "stormwatch.db";

/// Read-only connections beside the writer: enough that a slow list does not hold up a token lookup.
const READERS: usize = 4;

/// A handle to the store. Clones share one writer thread and one pool of readers; dropping the last one lets
/// queued jobs finish, closes the database and joins the threads.
#[derive(Clone)]
pub struct Store {
    owner: Arc<owner::Owner>,
    readers: Arc<owner::Owner>,
    path: Arc<PathBuf>,
    /// The change register in memory, current with this process's writes (see `register_cache.rs`).
    register: Arc<RegisterCache>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens `data_dir/stormwatch.db`, creating the directory and the file as needed, and migrates it.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::CreateDir {
            path: data_dir.to_owned(),
            cause: source,
        })?;
        // SQLite needs to create its -wal and -shm files beside the database; say plainly when it cannot.
        let probe = data_dir.join(".stormwatch-write-test");
        std::fs::write(&probe, b"")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|source| StoreError::ReadOnlyDir {
                path: data_dir.to_owned(),
                cause: source,
            })?;
        Store::start(data_dir.join(DB_FILE), true)
    }

    /// Opens a store that must already exist: `path` is its data directory or the database file itself.
    /// For readers such as `replay --changes-db`, where creating an empty store would hide a typo.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        let file = if path.is_dir() {
            path.join(DB_FILE)
        } else {
            path.to_owned()
        };
        if !file.is_file() {
            return Err(StoreError::Missing { path: file });
        }
        Store::start(file, false)
    }

    fn start(file: PathBuf, create: bool) -> Result<Store, StoreError> {
        let mut db = schema::open(&file, create)?;
        let register = Arc::new(RegisterCache::default());
        drop(register.current(&mut db, changes::read_register)?);
        let owner = owner::Owner::spawn(db, file.clone())?;
        let readers = owner::Owner::spawn_readers(owner.file(), READERS)?;
        tracing::debug!(path = %file.display(), "store opened");
        Ok(Store {
            owner: Arc::new(owner),
            readers: Arc::new(readers),
            path: Arc::new(file),
            register,
        })
    }

    /// Fault injection for tests (`serve --fault-slow-store-ms`): every write first waits `delay`, as on a disk
    /// that has stopped keeping up. Reads are not slowed. Never set in normal operation.
    pub fn set_fault_slow_writes(&self, delay: std::time::Duration) {
        self.owner.set_fault_delay(delay);
    }

    /// The engine's queued writes (incidents, then charts, then the snapshot), each in its own transaction, in
    /// one job that the writer runs before any other waiting job; what each came to is in the answer.
    pub fn write_engine_batch(
        &self,
        batch: write_queue::Batch,
    ) -> Result<write_queue::Applied, StoreError> {
        let reply = self
            .owner
            .submit_urgent(move |db| Ok(write_queue::apply(db, batch)))?;
        reply.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The change register as last committed, read in place without a trip to the owner thread. It lags a CLI
    /// write until [`Store::sync_register`] (or any write) notices it. Call from blocking code: a write waits
    /// while `read` runs.
    pub fn with_register<T>(&self, read: impl FnOnce(&ChangeRegister) -> T) -> T {
        self.register.with(read)
    }

    /// [`Store::upsert_changes`] reporting its progress after each chunk of [`CHUNK`] notices written and
    /// judged (on the store's thread: `progress` should only print or count).
    pub fn upsert_changes_with_progress(
        &self,
        notices: Vec<ChangeNotice>,
        actor: String,
        coordination: Arc<CoordinationConfig>,
        progress: Box<dyn Fn(Progress) + Send>,
    ) -> Result<Vec<UpsertOutcome>, StoreError> {
        let cache = self.register.clone();
        let reply = self.owner.submit(move |db| {
            changes::upsert(
                db,
                &cache,
                replacing(notices),
                &actor,
                None,
                &coordination,
                &|_| Ok(()),
                &*progress,
            )
        })?;
        reply.blocking_recv().map_err(|_| StoreError::Closed)?
    }
}

/// Whole notices, each replacing any stored one with its id.
fn replacing(notices: Vec<ChangeNotice>) -> Vec<Registration> {
    notices.into_iter().map(Registration::Replace).collect()
}

/// Milliseconds since the Unix epoch by the wall clock; a clock before 1970 reads as 0.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Appends `LIMIT ? OFFSET ?` for a page of a list query (nothing when `limit` is `None`).
fn page_clause(
    sql: &mut String,
    values: &mut Vec<rusqlite::types::Value>,
    limit: Option<usize>,
    offset: usize,
) {
    if let Some(limit) = limit {
        sql.push_str(" LIMIT ? OFFSET ?");
        values.push(rusqlite::types::Value::Integer(
            i64::try_from(limit).unwrap_or(i64::MAX),
        ));
        values.push(rusqlite::types::Value::Integer(
            i64::try_from(offset).unwrap_or(i64::MAX),
        ));
    }
}

/// Writes each operation as a blocking method and an `_async` twin around one job for the owner thread.
macro_rules! operations {
    (via $via:ident; $(
        $(#[$doc:meta])*
        fn $name:ident / $async_name:ident ($($arg:ident: $ty:ty),*) -> $out:ty = |$db:ident $(, $cache:ident)?| $body:expr;
    )*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                    #[allow(unused_variables)]
                    let register = self.register.clone();
                    let reply = self.$via.submit(move |$db| { $(let $cache: &RegisterCache = &register;)? $body })?;
                    reply.blocking_recv().map_err(|_| StoreError::Closed)?
                }

                #[doc = concat!("[`Store::", stringify!($name), "`] for async callers.")]
                pub async fn $async_name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                    #[allow(unused_variables)]
                    let register = self.register.clone();
                    let reply = self.$via.submit(move |$db| { $(let $cache: &RegisterCache = &register;)? $body })?;
                    reply.await.map_err(|_| StoreError::Closed)?
                }
            )*
        }
    };
}

operations! {
    via owner;
    /// Registers whole notices in one transaction: all are written or, on any error, none. Registering an existing
    /// id replaces it. Returns, in input order, what happened to each; every create or update leaves an audit row.
    /// Each notice written is judged against the register (with the batch in it) under `coordination`'s
    /// settings, and the warnings it raised are stored with it.
    fn upsert_changes / upsert_changes_async(notices: Vec<ChangeNotice>, actor: String, coordination: Arc<CoordinationConfig>) -> Vec<UpsertOutcome>
        = |db, cache| changes::upsert(db, cache, replacing(notices), &actor, None, &coordination, &|_| Ok(()), &|_| ());
    /// [`Store::upsert_changes`] for registrations that may merge over the stored notice, each checked by `check`
    /// once merged (`Invalid`, naming its index and field, and nothing written, when one fails); with `confined`,
    /// `NotYours` if any notice, or any stored notice it would change, belongs to another owner.
    fn register_changes / register_changes_async(registrations: Vec<Registration>, actor: String, confined: Option<ChangeOwner>, coordination: Arc<CoordinationConfig>, check: NoticeCheck) -> Vec<UpsertOutcome>
        = |db, cache| changes::upsert(db, cache, registrations, &actor, confined, &coordination, &*check, &|_| ());
    /// Sets a notice's status (cancelling is `ChangeStatus::Cancelled`), with an audit row unless it already had
    /// that status. `NotFound` when no notice has the id.
    fn set_change_status / set_change_status_async(id: String, status: ChangeStatus, actor: String) -> StatusChange
        = |db, cache| changes::set_status(db, cache, &id, status, &actor, None);
    /// [`Store::set_change_status`] for a caller confined to `owner`: `NotYours` if the stored notice is another's.
    fn set_change_status_confined / set_change_status_confined_async(id: String, status: ChangeStatus, actor: String, owner: ChangeOwner) -> StatusChange
        = |db, cache| changes::set_status(db, cache, &id, status, &actor, Some(owner));
    /// The whole register, for the engine (a copy of the in-memory one, re-read first if another process wrote).
    fn load_register / load_register_async() -> ChangeRegister = |db, cache| changes::load_register(db, cache);
    /// Re-reads the in-memory register if another connection (a CLI process) committed since it was read;
    /// `true` when it did. Cheap otherwise: one pragma.
    fn sync_register / sync_register_async() -> bool = |db, cache| changes::sync_register(db, cache);
    /// Deletes, at most `batch` rows at a time, resolved incidents (with their history, actions and chart) that
    /// resolved before `before_ms` by the wall clock, and change audit rows written before it.
    fn prune / prune_async(before_ms: i64, batch: usize) -> Pruned = |db| retention::prune(db, before_ms, batch);
    /// Creates a token and returns its id and secret. Only the secret's SHA-256 is kept: it cannot be shown again.
    /// `user` is required for `Role::User` and refused for the others.
    fn add_token / add_token_async(name: String, role: Role, user: Option<Eui64>) -> (TokenId, String)
        = |db| tokens::add(db, &name, role, user);
    /// Revokes a token by id (digits) or by the name of an active token.
    fn revoke_token / revoke_token_async(id_or_name: String) -> TokenInfo = |db| tokens::revoke(db, &id_or_name);
    /// Reserves `count` incident numbers, from `floor` or later and past every number reserved or stored before;
    /// returns the block. The engine numbers incidents only from such blocks (see `engine::incident_numbers`).
    fn reserve_incident_numbers / reserve_incident_numbers_async(floor: u64, count: u64) -> std::ops::Range<u64>
        = |db| incident_numbers::reserve(db, floor, count);
    /// Records that the engine snapshot could not be read at start (kept, with the first reason, until
    /// acknowledged: a restart does not clear it).
    fn record_snapshot_loss / record_snapshot_loss_async(reason: String) -> ()
        = |db| incident_numbers::record_snapshot_loss(db, &reason);
    /// Forgets the lost snapshot; `true` if one was recorded.
    fn acknowledge_snapshot_loss / acknowledge_snapshot_loss_async() -> bool
        = |db| incident_numbers::acknowledge_snapshot_loss(db);
    /// Saves an incident by id (replacing an earlier version of the same incident), with optional service JSON
    /// beside it. `IncidentIdTaken`, and nothing written, when the id is stored for a different incident.
    fn save_incident / save_incident_async(record: IncidentRecord, extra: Option<serde_json::Value>) -> Upsert
        = |db| incidents::save(db, &record, extra.as_ref());
    /// Replaces an incident's chart (`IncidentSeries` JSON).
    fn save_series / save_series_async(id: String, series: String) -> () = |db| series::save(db, &id, &series);
    /// Records an operator's acknowledgement, note or suspect judgement on an incident, with `actor` and the wall
    /// clock; a repeated acknowledgement or an unchanged judgement writes nothing. `NotFound` for an unknown
    /// incident or change, `Constraint` (field `text`) for an empty note or an over-long text.
    fn triage_incident / triage_incident_async(id: String, request: TriageRequest, actor: String) -> TriageOutcome
        = |db| triage::apply(db, &id, request, &actor);
    /// A number that changes whenever another connection (say, a CLI process beside the service) commits to the
    /// file, and not for this store's own writes (SQLite's `PRAGMA data_version`). Poll it to know when to reload
    /// the register.
    fn external_writes / external_writes_async() -> i64 = |db| schema::data_version(db);
    /// Rewrites the probe row: fails when the store cannot take a write (read-only or full file system, file
    /// deleted or replaced under the service).
    fn probe_write / probe_write_async() -> () = |db| schema::probe_write(db);
    /// Records a directory edit (`None` deletes) with an audit row; `false` when it changes nothing.
    fn put_directory / put_directory_async(user: Eui64, entry: Option<crate::user_directory::Entry>, before: Option<crate::user_directory::Entry>, actor: String) -> bool
        = |db| directory::put(db, user, entry.as_ref(), before.as_ref(), &actor);
    /// Replaces the engine snapshot atomically.
    fn save_snapshot / save_snapshot_async(data: Vec<u8>) -> () = |db| incidents::save_snapshot(db, &data);
    /// Records the event time the service has reached (ms since the epoch), for the command line's views.
    fn record_event_time / record_event_time_async(event_ms: i64) -> () = |db| event_clock::record(db, event_ms);
}

// Reads: answered by the pool of read-only connections, never queued behind a write.
operations! {
    via readers;
    fn get_change / get_change_async(id: String) -> Option<StoredChange> = |db| changes::get(db, &id);
    fn list_changes / list_changes_async(filter: ChangeFilter) -> Vec<StoredChange>
        = |db| changes::list(db, &filter);
    /// Every write to the notice, oldest first (empty when the id was never registered).
    fn change_audit / change_audit_async(id: String) -> Vec<AuditEntry> = |db| audit::trail(db, &id);
    /// Every token, revoked ones included, by id; never a secret.
    fn list_tokens / list_tokens_async() -> Vec<TokenInfo> = |db| tokens::list(db);
    /// The principal of an active token with this secret; `None` for unknown or revoked secrets.
    fn authenticate / authenticate_async(secret: String) -> Option<Principal>
        = |db| tokens::authenticate(db, &secret);
    /// Whether any token is active (the service refuses non-loopback addresses otherwise).
    fn has_tokens / has_tokens_async() -> bool = |db| tokens::has_active(db);
    /// The lost snapshot not yet acknowledged: its reason and when it was found (ms since the epoch).
    fn snapshot_loss / snapshot_loss_async() -> Option<(String, i64)> = |db| incident_numbers::snapshot_loss(db);
    /// The first incident number past every stored `INC-nnnnnn`.
    fn incident_number_past_stored / incident_number_past_stored_async() -> u64
        = |db| incident_numbers::past_stored(db);
    fn get_incident / get_incident_async(id: String) -> Option<StoredIncident> = |db| incidents::get(db, &id);
    fn get_series / get_series_async(id: String) -> Option<String> = |db| series::get(db, &id);
    fn list_incidents / list_incidents_async(filter: IncidentFilter) -> Vec<StoredIncident>
        = |db| incidents::list(db, &filter);
    /// An incident's triage with every action and state transition; `NotFound` for an unknown incident.
    fn incident_triage / incident_triage_async(id: String) -> Triage = |db| triage::get(db, &id);
    /// The triage of each incident, in the order given and without history (for lists).
    fn incident_triages / incident_triages_async(ids: Vec<String>) -> Vec<Triage> = |db| triage::many(db, &ids);
    /// The User directory's API edits (`None`: deleted), to overlay on the directory file.
    fn directory_edits / directory_edits_async() -> Vec<(Eui64, Option<crate::user_directory::Entry>)>
        = |db| directory::edits(db);
    /// Every directory edit of a User, oldest first.
    fn directory_audit / directory_audit_async(user: Eui64) -> Vec<DirectoryAudit> = |db| directory::audit(db, user);
    fn load_snapshot / load_snapshot_async() -> Option<Vec<u8>> = |db| incidents::load_snapshot(db);
    /// The event time the service last recorded; `None` before it has held any telemetry.
    fn event_time / event_time_async() -> Option<i64> = |db| event_clock::read(db);
}

#[cfg(test)]
#[path = "store_tests.rs"]
pub(crate) mod tests;
