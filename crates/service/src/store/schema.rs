//! Opening the SQLite file (WAL, busy timeout) and the schema's migrations, tracked by `PRAGMA user_version`.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::StoreError;

/// Schema steps, oldest first: step `n` (1-based) takes the file from `user_version` `n - 1` to `n`.
/// Append only; a released step is never edited, since files already past it would not see the change.
const MIGRATIONS: &[&str] = &[
    // 1: change register with its audit trail, tokens, incidents, engine snapshot.
    r#"
    CREATE TABLE changes (
        id          TEXT PRIMARY KEY NOT NULL,
        owner       TEXT NOT NULL,
        category    TEXT NOT NULL,
        start_ms    INTEGER NOT NULL,
        end_ms      INTEGER NOT NULL,
        status      TEXT NOT NULL,
        notice      TEXT NOT NULL,
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL,
        CONSTRAINT "end" CHECK (end_ms >= start_ms)
    );
    CREATE INDEX changes_by_owner ON changes (owner, start_ms);
    CREATE INDEX changes_by_window ON changes (start_ms, end_ms);

    CREATE TABLE change_audit (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        change_id      TEXT NOT NULL,
        action         TEXT NOT NULL,
        actor          TEXT NOT NULL,
        at_ms          INTEGER NOT NULL,
        before_status  TEXT,
        after_status   TEXT,
        detail         TEXT NOT NULL
    );
    CREATE INDEX change_audit_by_change ON change_audit (change_id, seq);

    CREATE TABLE tokens (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        user        TEXT,
        hash        TEXT NOT NULL UNIQUE,
        created_ms  INTEGER NOT NULL,
        revoked_ms  INTEGER,
        CONSTRAINT "user" CHECK ((role = 'user') = (user IS NOT NULL))
    );
    -- A revoked token's name may be given to a new one.
    CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_ms IS NULL;

    CREATE TABLE incidents (
        id          TEXT PRIMARY KEY NOT NULL,
        user        TEXT NOT NULL,
        kind        TEXT NOT NULL,
        verdict     TEXT NOT NULL,
        onset       INTEGER NOT NULL,
        detected    INTEGER NOT NULL,
        resolved    INTEGER,
        record      TEXT NOT NULL,
        extra       TEXT,
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    CREATE INDEX incidents_by_onset ON incidents (onset);
    CREATE INDEX incidents_open ON incidents (onset) WHERE resolved IS NULL;
    -- Every User an incident touches: its own, or each User of a `*` incident, so a User sees both.
    CREATE TABLE incident_users (
        incident_id  TEXT NOT NULL,
        user         TEXT NOT NULL,
        PRIMARY KEY (user, incident_id)
    ) WITHOUT ROWID;

    CREATE TABLE snapshot (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        saved_ms  INTEGER NOT NULL,
        data      BLOB NOT NULL
    );
    "#,
    // 2: the triage console. Operator actions on incidents (acknowledge, note, a suspect confirmed or rejected)
    // are only ever appended, so the table is its own audit trail; the current state is folded from it. The
    // incident's state transitions are kept as the store saw them, since the incident row holds only the latest.
    r#"
    CREATE TABLE incident_actions (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id  TEXT NOT NULL,
        action       TEXT NOT NULL,
        actor        TEXT NOT NULL,
        at_ms        INTEGER NOT NULL,
        change_id    TEXT,
        judgement    TEXT,
        text         TEXT NOT NULL,
        CONSTRAINT "change" CHECK ((action = 'suspect') = (change_id IS NOT NULL AND judgement IS NOT NULL))
    );
    CREATE INDEX incident_actions_by_incident ON incident_actions (incident_id, seq);

    CREATE TABLE incident_history (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        incident_id  TEXT NOT NULL,
        at_ms        INTEGER NOT NULL,
        event_ms     INTEGER,
        state        TEXT NOT NULL,
        detail       TEXT NOT NULL
    );
    CREATE INDEX incident_history_by_incident ON incident_history (incident_id, seq);
    -- Incidents stored before this step get the transitions their row still shows, at the times it was written.
    INSERT INTO incident_history (incident_id, at_ms, event_ms, state, detail)
        SELECT id, created_ms, detected, 'opened', 'opened (recorded before the timeline was kept)'
        FROM incidents ORDER BY created_ms, id;
    INSERT INTO incident_history (incident_id, at_ms, event_ms, state, detail)
        SELECT id, updated_ms, resolved, 'resolved', 'resolved (recorded before the timeline was kept)'
        FROM incidents WHERE resolved IS NOT NULL ORDER BY updated_ms, id;
    "#,
    // 3: one row the service rewrites every few seconds, so that a read-only, full or vanished data directory
    // shows as a failed write (503 from /readyz) rather than as silence until the next snapshot.
    r#"
    CREATE TABLE write_probe (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        probed_ms  INTEGER NOT NULL
    );
    "#,
    // 4: each incident's chart for its whole life (bounded JSON, see incident_series.rs), so it outlives the
    // engine's few minutes of per-second windows and a restart.
    r#"
    CREATE TABLE incident_series (
        incident_id  TEXT PRIMARY KEY NOT NULL,
        series       TEXT NOT NULL,
        updated_ms   INTEGER NOT NULL
    );
    "#,
    // 5: change coordination. Each change keeps the warnings it raised when it was last registered (JSON; NULL
    // for changes registered before this step, which never had any recorded). Tokens gain the `calendar` role, a
    // read-only key for the schedule's calendar feed, bound to a User or not: SQLite cannot alter a CHECK, so the
    // table is rebuilt with the same ids (the AUTOINCREMENT sequence follows the rename).
    r#"
    ALTER TABLE changes ADD COLUMN warnings TEXT;

    CREATE TABLE tokens_v5 (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        name        TEXT NOT NULL,
        role        TEXT NOT NULL,
        user        TEXT,
        hash        TEXT NOT NULL UNIQUE,
        created_ms  INTEGER NOT NULL,
        revoked_ms  INTEGER,
        CONSTRAINT "user" CHECK (role IN ('user', 'calendar') OR user IS NULL),
        CONSTRAINT "bound" CHECK (role <> 'user' OR user IS NOT NULL)
    );
    INSERT INTO tokens_v5 (id, name, role, user, hash, created_ms, revoked_ms)
        SELECT id, name, role, user, hash, created_ms, revoked_ms FROM tokens ORDER BY id;
    DROP TABLE tokens;
    ALTER TABLE tokens_v5 RENAME TO tokens;
    CREATE UNIQUE INDEX tokens_active_name ON tokens (name) WHERE revoked_ms IS NULL;
    "#,
    // 6: the User directory's API edits over the directory file (a NULL name hides a file entry), audited.
    r#"
    CREATE TABLE user_directory (
        user        TEXT PRIMARY KEY NOT NULL,
        name        TEXT,
        role        TEXT,
        updated_ms  INTEGER NOT NULL
    );
    CREATE TABLE user_directory_audit (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        user    TEXT NOT NULL,
        action  TEXT NOT NULL,
        actor   TEXT NOT NULL,
        at_ms   INTEGER NOT NULL,
        detail  TEXT NOT NULL
    );
    CREATE INDEX user_directory_audit_by_user ON user_directory_audit (user, seq);
    "#,
    // 7: incident numbers reserved here rather than counted in the engine snapshot, so a lost snapshot cannot hand
    // one out again; `reserved_until` is the first number never reserved, past every stored `INC-nnnnnn`.
    r#"
    CREATE TABLE incident_sequence (
        id              INTEGER PRIMARY KEY CHECK (id = 1),
        reserved_until  INTEGER NOT NULL
    );
    INSERT INTO incident_sequence (id, reserved_until)
        SELECT 1, COALESCE(MAX(CAST(substr(id, 5) AS INTEGER)), 0) + 1 FROM incidents
        WHERE id GLOB 'INC-[0-9]*' AND substr(id, 5) NOT GLOB '*[^0-9]*';
    -- A snapshot found unreadable at start, until an operator acknowledges it (a restart does not).
    CREATE TABLE snapshot_loss (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        reason  TEXT NOT NULL,
        at_ms   INTEGER NOT NULL
    );
    "#,
    // 8: the event time the service has reached (its watermark), so the command line judges outcomes and the
    // schedule as of the data the service holds, as the API does.
    r#"
    CREATE TABLE event_clock (
        id           INTEGER PRIMARY KEY CHECK (id = 1),
        event_ms     INTEGER NOT NULL,
        recorded_ms  INTEGER NOT NULL
    );
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long an empty file may take to become a database: another process may have just created it.
const EMPTY_FILE_PATIENCE: Duration = Duration::from_secs(2);

/// Refuses an existing file of 0 bytes: SQLite would silently treat it as a new, empty store, and the tokens,
/// changes and incidents it should hold would be gone without a word. A file another process is creating at
/// this moment grows within `EMPTY_FILE_PATIENCE`.
fn refuse_empty_file(path: &Path) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + EMPTY_FILE_PATIENCE;
    loop {
        match std::fs::metadata(path) {
            Ok(meta) if meta.len() == 0 => {}
            _ => return Ok(()),
        }
        if std::time::Instant::now() >= deadline {
            return Err(StoreError::NotAStore {
                path: path.to_owned(),
                reason: "the file is empty (0 bytes), so it holds no tokens, changes or incidents; restore it \
                         from a backup, or delete it to start an empty store"
                    .into(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Refuses an SQLite file that some other program made: it has tables but no Stormwatch schema version.
fn refuse_foreign_database(db: &Connection, path: &Path) -> Result<(), StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        cause: source,
    };
    // One statement reads both from one snapshot: read apart, another process's first migration could commit
    // between them, and its fresh tables would look like a stranger's.
    let (version, objects): (i64, i64) = db
        .query_row(
            "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .map_err(open_error)?;
    if version == 0 && objects > 0 {
        return Err(StoreError::NotAStore {
            path: path.to_owned(),
            reason: format!(
                "it is an SQLite database with {objects} tables or indexes but no Stormwatch schema version, \
                 so another program's; point --data-dir elsewhere"
            ),
        });
    }
    Ok(())
}

/// Rewrites the probe row: fails when the file cannot take a write (read-only, disk full).
pub(super) fn probe_write(db: &mut Connection) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO write_probe (id, probed_ms) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET probed_ms = excluded.probed_ms",
        [super::now_ms()],
    )?;
    Ok(())
}

/// How long opening keeps retrying the switch to WAL while another process holds the file.
const WAL_SWITCH_PATIENCE: Duration = Duration::from_secs(5);

/// Puts the file in WAL mode and returns the mode it ended in. The switch needs the file to itself, and SQLite
/// answers "database is locked" at once, without the busy handler, when another process opening the same new
/// file holds a read lock; so a busy answer is retried for `WAL_SWITCH_PATIENCE`.
fn switch_to_wal(db: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + WAL_SWITCH_PATIENCE;
    loop {
        match db.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)) {
            Err(rusqlite::Error::SqliteFailure(failure, _))
                if failure.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            outcome => return outcome,
        }
    }
}

/// Opens (creating it when `create`) and migrates the file at `path`.
pub(super) fn open(path: &Path, create: bool) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.to_owned(),
        cause: source,
    };
    refuse_empty_file(path)?;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let mut db = Connection::open_with_flags(path, flags).map_err(open_error)?;
    // Another process (a CLI beside the service, or one creating this file) may hold the lock for a moment.
    db.busy_timeout(Duration::from_secs(5))
        .map_err(open_error)?;
    refuse_foreign_database(&db, path)?;
    let mode = switch_to_wal(&db).map_err(open_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(path = %path.display(), mode, "SQLite refused WAL mode; continuing in this mode");
    }
    // NORMAL in WAL mode loses at most the last commits on power loss, never consistency.
    db.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_error)?;
    // Take the write lock when a transaction begins: a deferred one that reads and then writes fails at once,
    // without waiting, if another process committed in between.
    db.set_transaction_behavior(TransactionBehavior::Immediate);
    migrate(&mut db, path)?;
    Ok(db)
}

pub(super) fn data_version(db: &mut Connection) -> Result<i64, StoreError> {
    Ok(db.pragma_query_value(None, "data_version", |row| row.get(0))?)
}

/// One step per transaction, each re-reading the version under the write lock, so two processes opening an old
/// file at once apply each step once. One log line says what was done: a new store, or the steps from an old one.
fn migrate(db: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let mut first = None;
    loop {
        let failed = |version, source| StoreError::Migrate {
            path: path.to_owned(),
            version,
            cause: source,
        };
        let tx = db.transaction().map_err(|source| failed(0, source))?;
        let found: i64 = tx
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|source| failed(0, source))?;
        let step = usize::try_from(found)
            .ok()
            .filter(|_| found <= SCHEMA_VERSION)
            .ok_or_else(|| StoreError::TooNew {
                path: path.to_owned(),
                found,
                known: SCHEMA_VERSION,
            })?;
        let Some(sql) = MIGRATIONS.get(step) else {
            log_migrated(path, first, found);
            return Ok(());
        };
        let version = found + 1;
        tx.execute_batch(sql)
            .map_err(|source| failed(version, source))?;
        // user_version lives in the file header, so it commits or rolls back with the step.
        tx.pragma_update(None, "user_version", version)
            .map_err(|source| failed(version, source))?;
        tx.commit().map_err(|source| failed(version, source))?;
        first.get_or_insert(found);
    }
}

fn log_migrated(path: &Path, from: Option<i64>, to: i64) {
    match from {
        None => {}
        Some(0) => tracing::info!(path = %path.display(), version = to, "store created"),
        Some(from) => {
            tracing::info!(path = %path.display(), from, to, "store schema migrated")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_version(db: &Connection) -> i64 {
        db.pragma_query_value(None, "user_version", |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn migrations_run_once_and_reopening_is_a_no_op() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = open(&path, true).unwrap();
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        let mode: String = db
            .pragma_query_value(None, "journal_mode", |row| row.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        db.execute("INSERT INTO snapshot VALUES (1, 0, x'00')", [])
            .unwrap();
        drop(db);
        let db = open(&path, false).unwrap();
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        let rows: i64 = db
            .query_row("SELECT count(*) FROM snapshot", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1, "reopening must not re-run a migration");
    }

    #[test]
    fn a_newer_schema_is_refused_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = open(&path, true).unwrap();
        db.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(db);
        let error = open(&path, false).unwrap_err();
        assert!(matches!(error, StoreError::TooNew { .. }), "{error:?}");
        assert!(error.to_string().contains("s.db"), "{error}");
    }

    #[test]
    fn processes_opening_a_new_file_at_once_migrate_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let openers: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || open(&path, true).map(|_| ()))
            })
            .collect();
        for opener in openers {
            opener.join().unwrap().unwrap();
        }
        assert_eq!(user_version(&open(&path, false).unwrap()), SCHEMA_VERSION);
    }

    #[test]
    fn the_console_step_keeps_stored_incidents_and_backfills_their_timeline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = Connection::open(&path).unwrap();
        db.execute_batch(MIGRATIONS[0]).unwrap();
        db.pragma_update(None, "user_version", 1).unwrap();
        db.execute(
            "INSERT INTO incidents (id, user, kind, verdict, onset, detected, resolved, record, created_ms, updated_ms)
             VALUES ('INC-1', 'U', 'backlog', 'v', 10, 20, 30, '{}', 1000, 2000)",
            [],
        )
        .unwrap();
        drop(db);
        let db = open(&path, false).unwrap();
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        let mut statement = db
            .prepare("SELECT state, at_ms, event_ms FROM incident_history ORDER BY seq")
            .unwrap();
        let rows: Vec<(String, i64, Option<i64>)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("opened".to_owned(), 1000, Some(20)),
                ("resolved".to_owned(), 2000, Some(30))
            ]
        );
    }

    #[test]
    fn the_coordination_step_keeps_changes_and_tokens_and_ids_keep_growing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        let db = Connection::open(&path).unwrap();
        for step in &MIGRATIONS[..4] {
            db.execute_batch(step).unwrap();
        }
        db.pragma_update(None, "user_version", 4).unwrap();
        db.execute_batch(
            "INSERT INTO changes (id, owner, category, start_ms, end_ms, status, notice, created_ms, updated_ms)
                 VALUES ('CHG-1', 'DCC', 'network', 0, 10, 'planned', '{}', 1, 1);
             INSERT INTO tokens (name, role, user, hash, created_ms) VALUES ('a', 'ops', NULL, 'h1', 1);
             INSERT INTO tokens (name, role, user, hash, created_ms, revoked_ms)
                 VALUES ('b', 'user', '90-B3-D5-1F-30-01-00-07', 'h2', 1, 5);",
        )
        .unwrap();
        drop(db);
        let db = open(&path, false).unwrap();
        assert_eq!(user_version(&db), SCHEMA_VERSION);
        let warnings: Option<String> = db
            .query_row(
                "SELECT warnings FROM changes WHERE id = 'CHG-1'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(warnings, None, "not recorded before the step");
        let tokens: Vec<(i64, String, Option<i64>)> = db
            .prepare("SELECT id, name, revoked_ms FROM tokens ORDER BY id")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tokens,
            [(1, "a".to_owned(), None), (2, "b".to_owned(), Some(5))]
        );
        db.execute(
            "INSERT INTO tokens (name, role, user, hash, created_ms) VALUES ('c', 'calendar', NULL, 'h3', 1)",
            [],
        )
        .unwrap();
        assert_eq!(
            db.last_insert_rowid(),
            3,
            "a new id never reuses an old one"
        );
        // The constraints still hold: a `user` token needs its User, an ops token may not have one.
        for bad in [
            "INSERT INTO tokens (name, role, user, hash, created_ms) VALUES ('d', 'user', NULL, 'h4', 1)",
            "INSERT INTO tokens (name, role, user, hash, created_ms) VALUES ('e', 'ops', 'U', 'h5', 1)",
            "INSERT INTO tokens (name, role, user, hash, created_ms) VALUES ('a', 'ops', NULL, 'h6', 1)",
        ] {
            assert!(db.execute(bad, []).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_file_or_another_programs_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let error = open(&empty, true).unwrap_err();
        assert!(matches!(error, StoreError::NotAStore { .. }), "{error:?}");
        assert!(error.to_string().contains("0 bytes"), "{error}");
        assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0, "left as found");

        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE accounts (id INTEGER)")
            .unwrap();
        let error = open(&foreign, true).unwrap_err();
        assert!(error.to_string().contains("another program"), "{error}");

        let text = dir.path().join("text.db");
        std::fs::write(
            &text,
            b"this is not a database at all, just some text to fill a page",
        )
        .unwrap();
        let error = open(&text, true).unwrap_err();
        assert!(error.to_string().contains("text.db"), "{error}");
    }

    #[test]
    fn opening_without_create_refuses_a_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let error = open(&dir.path().join("absent.db"), false).unwrap_err();
        assert!(error.to_string().contains("absent.db"), "{error}");
    }
}
