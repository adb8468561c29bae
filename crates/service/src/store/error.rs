//! `StoreError`: every way a store operation fails, each message naming the file, row or field at fault.

use std::io;
use std::path::PathBuf;

/// Each message carries its cause in a `cause` field, which is deliberately not a `source()`: the binary prints
/// the whole chain, and a cause in both printed twice.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {}: {cause}", path.display())]
    CreateDir { path: PathBuf, cause: io::Error },
    #[error("data directory {} cannot be written (read-only or full?): {cause}", path.display())]
    ReadOnlyDir { path: PathBuf, cause: io::Error },
    #[error("no Stormwatch store at {}", path.display())]
    Missing { path: PathBuf },
    #[error("{} is not a Stormwatch store: {reason}", path.display())]
    NotAStore { path: PathBuf, reason: String },
    /// The database file was deleted or replaced under the running service: writes would be lost.
    #[error("the store file {} is gone or was replaced since it was opened; writes would be lost", path.display())]
    Gone { path: PathBuf },
    #[error("cannot open store {}: {cause}", path.display())]
    Open {
        path: PathBuf,
        cause: rusqlite::Error,
    },
    #[error("cannot migrate store {} to schema version {version}: {cause}", path.display())]
    Migrate {
        path: PathBuf,
        version: i64,
        cause: rusqlite::Error,
    },
    #[error(
        "store {} has schema version {found}, which this stormwatch does not know (it knows 0 to {known}): \
         upgrade stormwatch",
        path.display()
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    /// A value the schema or the store's rules refuse; `field` is the column or argument at fault.
    #[error("field `{field}`: {reason}")]
    Constraint { field: String, reason: String },
    /// Element `index` of a registration is not a valid notice (after merging over the stored one); `reason` names
    /// the field.
    #[error("{reason}")]
    Invalid {
        index: usize,
        field: String,
        reason: String,
    },
    /// A confined (User) caller reached for a change of another owner. Names nothing of that owner.
    #[error("change `{id}` belongs to another owner")]
    NotYours { id: String },
    #[error("no {what} `{id}`")]
    NotFound { what: &'static str, id: String },
    /// A row written by this or another version that can no longer be read back.
    #[error("stored {what} `{id}` cannot be read: {reason}")]
    Corrupt {
        what: &'static str,
        id: String,
        reason: String,
    },
    /// An incident ID already names a different incident in the store: it is kept, the new one is not written.
    #[error(
        "incident `{id}` is already stored for another incident ({stored}); refusing to overwrite it with {offered}"
    )]
    IncidentIdTaken {
        id: String,
        stored: String,
        offered: String,
    },
    #[error("cannot encode {what} as JSON: {cause}")]
    Encode {
        what: &'static str,
        cause: serde_json::Error,
    },
    #[error("no randomness available for a token secret: {0}")]
    Random(String),
    #[error("database error: {0}")]
    Sqlite(rusqlite::Error),
    #[error("cannot start the store's owner thread: {0}")]
    Thread(io::Error),
    #[error("the store did not answer: its owner thread has stopped, or the operation panicked")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    /// Constraint failures become [`StoreError::Constraint`] naming the column, since that is what a person fixes.
    fn from(error: rusqlite::Error) -> StoreError {
        match constraint_field(&error) {
            Some((field, reason)) => StoreError::Constraint { field, reason },
            None => StoreError::Sqlite(error),
        }
    }
}

/// SQLite says `UNIQUE constraint failed: tokens.name` or `CHECK constraint failed: end`; the schema names each
/// CHECK constraint after the field it guards, so the last word is always the field.
fn constraint_field(error: &rusqlite::Error) -> Option<(String, String)> {
    let rusqlite::Error::SqliteFailure(failure, message) = error else {
        return None;
    };
    if failure.code != rusqlite::ErrorCode::ConstraintViolation {
        return None;
    }
    let message = message.as_deref().unwrap_or("constraint failed");
    let target = message.rsplit(": ").next().unwrap_or(message);
    let field = target.rsplit('.').next().unwrap_or(target).trim();
    Some((field.to_owned(), message.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constraint_failures_name_the_column() {
        let db = rusqlite::Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE t (name TEXT UNIQUE, lo INT, hi INT, CONSTRAINT hi CHECK (hi >= lo));
             INSERT INTO t VALUES ('a', 1, 2);",
        )
        .unwrap();
        let unique = db
            .execute("INSERT INTO t VALUES ('a', 1, 2)", [])
            .unwrap_err();
        let check = db
            .execute("INSERT INTO t VALUES ('b', 2, 1)", [])
            .unwrap_err();
        for (error, field) in [(unique, "name"), (check, "hi")] {
            match StoreError::from(error) {
                StoreError::Constraint { field: got, .. } => assert_eq!(got, field),
                other => panic!("expected a constraint error, got {other:?}"),
            }
        }
    }
}
