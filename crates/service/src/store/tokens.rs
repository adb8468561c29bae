//! API tokens: roles, random secrets of which only the SHA-256 hash is kept, authentication and revocation.

use std::fmt;

use rand::TryRngCore;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::{StoreError, now_ms};
use stormwatch_core::telemetry::Eui64;

/// What a token may do.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug)]
pub enum Role {
    /// Everything.
    Ops,
    /// Bound to one User: registers and sees only that User's changes and incidents.
    User,
    /// Posts telemetry.
    Ingest,
    /// A calendar feed key: reads `/api/v1/schedule.ics` and nothing else, so it may ride in a subscription URL.
    /// Bound to a User it sees that User's changes and the DCC's; unbound, every change.
    Calendar,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Ops, Role::User, Role::Ingest, Role::Calendar];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ops => "ops",
            Role::User => "user",
            Role::Ingest => "ingest",
            Role::Calendar => "calendar",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord, Serialize)]
pub struct TokenId(pub i64);

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who a request comes from, once its token is authenticated.
#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct Principal {
    pub token_id: TokenId,
    pub name: String,
    pub role: Role,
    /// The User a `user` token is bound to; `None` for the other roles.
    pub user: Option<Eui64>,
}

/// A token as listed: never its secret, which is not stored.
#[derive(Clone, Eq, PartialEq, Debug, Serialize)]
pub struct TokenInfo {
    pub id: TokenId,
    pub name: String,
    pub role: Role,
    pub user: Option<Eui64>,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
}

/// Secrets start with this, so a leaked one is recognisable to people and secret scanners.
pub const SECRET_PREFIX: &str = "sw_";

pub(super) fn add(
    db: &mut Connection,
    name: &str,
    role: Role,
    user: Option<Eui64>,
) -> Result<(TokenId, String), StoreError> {
    check_name(name)?;
    match (role, user) {
        (Role::User, None) => {
            return Err(constraint(
                "user",
                "a `user` token must be bound to a User: give its EUI-64",
            ));
        }
        (Role::Ops | Role::Ingest, Some(_)) => {
            return Err(constraint(
                "user",
                format!("only `user` tokens and `calendar` keys are bound to a User, not `{role}`"),
            ));
        }
        _ => {}
    }
    let secret = new_secret()?;
    let tx = db.transaction()?;
    let taken: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM tokens WHERE name = ?1 AND revoked_ms IS NULL)",
        [name],
        |row| row.get(0),
    )?;
    if taken {
        return Err(constraint(
            "name",
            format!("an active token is already named `{name}`"),
        ));
    }
    tx.execute(
        "INSERT INTO tokens (name, role, user, hash, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            name,
            role.as_str(),
            user.map(|u| u.to_string()),
            hash(&secret),
            now_ms()
        ],
    )?;
    let id = TokenId(tx.last_insert_rowid());
    tx.commit()?;
    tracing::info!(token = %id, name, role = %role, "token added");
    Ok((id, secret))
}

pub(super) fn list(db: &mut Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut statement =
        db.prepare("SELECT id, name, role, user, created_ms, revoked_ms FROM tokens ORDER BY id")?;
    let rows = statement.query_map([], raw_token)?;
    rows.map(|row| read_token(row?)).collect()
}

/// By id when `id_or_name` is a number (names never are), else the active token of that name.
pub(super) fn revoke(db: &mut Connection, id_or_name: &str) -> Result<TokenInfo, StoreError> {
    let tx = db.transaction()?;
    let select = "SELECT id, name, role, user, created_ms, revoked_ms FROM tokens";
    let found = match id_or_name.parse::<i64>() {
        Ok(id) => tx.query_row(&format!("{select} WHERE id = ?1"), [id], raw_token),
        Err(_) => tx.query_row(
            &format!("{select} WHERE name = ?1 AND revoked_ms IS NULL"),
            [id_or_name],
            raw_token,
        ),
    };
    let mut token = found
        .optional()?
        .map(read_token)
        .transpose()?
        .ok_or_else(|| StoreError::NotFound {
            what: "active token",
            id: id_or_name.to_owned(),
        })?;
    if token.revoked_ms.is_some() {
        return Err(StoreError::NotFound {
            what: "active token (already revoked)",
            id: id_or_name.to_owned(),
        });
    }
    let now = now_ms();
    tx.execute(
        "UPDATE tokens SET revoked_ms = ?2 WHERE id = ?1",
        params![token.id.0, now],
    )?;
    tx.commit()?;
    token.revoked_ms = Some(now);
    tracing::info!(token = %token.id, name = token.name, "token revoked");
    Ok(token)
}

/// The active token whose secret this is. The lookup is by hash, so timing reveals nothing about stored secrets.
pub(super) fn authenticate(
    db: &mut Connection,
    secret: &str,
) -> Result<Option<Principal>, StoreError> {
    let found = db
        .query_row(
            "SELECT id, name, role, user, created_ms, revoked_ms FROM tokens
             WHERE hash = ?1 AND revoked_ms IS NULL",
            [hash(secret)],
            raw_token,
        )
        .optional()?;
    let Some(token) = found.map(read_token).transpose()? else {
        return Ok(None);
    };
    Ok(Some(Principal {
        token_id: token.id,
        name: token.name,
        role: token.role,
        user: token.user,
    }))
}

pub(super) fn has_active(db: &mut Connection) -> Result<bool, StoreError> {
    Ok(db.query_row(
        "SELECT EXISTS (SELECT 1 FROM tokens WHERE revoked_ms IS NULL)",
        [],
        |row| row.get(0),
    )?)
}

fn check_name(name: &str) -> Result<(), StoreError> {
    if name.trim().is_empty() || name.trim() != name {
        return Err(constraint(
            "name",
            "must be non-empty, without leading or trailing spaces",
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err(constraint(
            "name",
            "must not be all digits, or it could be mistaken for a token id",
        ));
    }
    if name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(constraint(
            "name",
            "must be at most 64 characters, without control characters",
        ));
    }
    Ok(())
}

fn constraint(field: &str, reason: impl Into<String>) -> StoreError {
    StoreError::Constraint {
        field: field.into(),
        reason: reason.into(),
    }
}

/// 32 bytes from the operating system's generator, as hex: 256 bits, beyond guessing.
fn new_secret() -> Result<String, StoreError> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| StoreError::Random(error.to_string()))?;
    Ok(format!("{SECRET_PREFIX}{}", hex(&bytes)))
}

fn hash(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut text, byte| {
            let _ = write!(text, "{byte:02x}");
            text
        })
}

type RawToken = (i64, String, String, Option<String>, i64, Option<i64>);

fn raw_token(row: &Row<'_>) -> rusqlite::Result<RawToken> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
    ))
}

fn read_token(
    (id, name, role, user, created_ms, revoked_ms): RawToken,
) -> Result<TokenInfo, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        what: "token",
        id: id.to_string(),
        reason,
    };
    let role = Role::parse(&role).ok_or_else(|| corrupt(format!("unknown role `{role}`")))?;
    let user = match user {
        None => None,
        Some(text) => {
            Some(Eui64::parse(&text).ok_or_else(|| corrupt(format!("bad user `{text}`")))?)
        }
    };
    Ok(TokenInfo {
        id: TokenId(id),
        name,
        role,
        user,
        created_ms,
        revoked_ms,
    })
}

#[cfg(test)]
#[path = "tokens_tests.rs"]
mod tests;
