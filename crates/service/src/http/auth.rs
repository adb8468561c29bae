//! Bearer-token authentication and the access rules: `ops` may do everything, a `user` token only its own
//! User's changes and incidents, an `ingest` token only posts telemetry, and a `calendar` key only reads the
//! schedule's calendar feed (it is refused everywhere else, whether in a header or not). Failed authentication,
//! on the HTTP and the TCP telemetry port, is counted by reason and logged at a rate limit, never with the secret.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::HeaderMap;
use metrics::counter;

use crate::http::api_error::ApiError;
use crate::http::state::AppState;
use crate::log_limit::LogLimit;
use crate::metrics::AUTH_FAILURES;
use crate::store::{Principal, Role, Store};
use stormwatch_core::changes::ChangeOwner;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// Why a caller was not let in: the `reason` label of `stormwatch_auth_failures_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthFailure {
    /// No credentials at all (no `Authorization` header; no `AUTH` line in time).
    Missing,
    /// Credentials in the wrong form (another scheme than `Bearer`, an empty token, a first line not `AUTH`).
    Malformed,
    /// A token the store does not know, or one that was revoked.
    Unknown,
    /// A valid token whose role may not do this.
    WrongRole,
}

impl AuthFailure {
    pub fn label(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::Unknown => "unknown",
            AuthFailure::WrongRole => "wrong_role",
        }
    }
}

/// One log line per interval for all failed authentications: a flood of bad tokens must not flood the log.
static FAILURE_LOG: Mutex<LogLimit> = Mutex::new(LogLimit::new(Duration::from_secs(10)));

/// Counts a failed authentication on `listener` (`http` or `tcp`) and logs it at a rate limit. `peer` is known
/// to the listeners, not to the handlers.
pub fn record_failure(listener: &'static str, reason: AuthFailure, peer: Option<IpAddr>) {
    counter!(AUTH_FAILURES, "listener" => listener, "reason" => reason.label()).increment(1);
    let allowed = FAILURE_LOG
        .lock()
        .map(|mut limit| limit.allow())
        .unwrap_or(None);
    if let Some(suppressed) = allowed {
        tracing::warn!(
            listener,
            reason = reason.label(),
            peer = peer.map(|p| p.to_string()),
            suppressed,
            "authentication failed (further failures within 10 s are only counted, in \
             stormwatch_auth_failures_total)"
        );
    }
}

/// The secret of an `Authorization: Bearer <token>` header. The scheme is case-insensitive (RFC 7235).
pub fn bearer(headers: &HeaderMap) -> Result<&str, AuthFailure> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(AuthFailure::Missing)?;
    let text = value.to_str().map_err(|_| AuthFailure::Malformed)?.trim();
    let (scheme, secret) = text.split_once(' ').ok_or(AuthFailure::Malformed)?;
    let secret = secret.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || secret.is_empty() {
        return Err(AuthFailure::Malformed);
    }
    Ok(secret)
}

/// The principal of a request's bearer token, or why there is none (a store that cannot answer is an error,
/// not a failed authentication).
pub async fn lookup(
    store: &Store,
    headers: &HeaderMap,
) -> Result<Result<Principal, AuthFailure>, ApiError> {
    let secret = match bearer(headers) {
        Ok(secret) => secret.to_owned(),
        Err(failure) => return Ok(Err(failure)),
    };
    Ok(store
        .authenticate_async(secret)
        .await?
        .ok_or(AuthFailure::Unknown))
}

/// The caller, from the `Authorization: Bearer ...` header. A calendar key is refused here: it is made to sit in
/// a calendar client's subscription URL, so it must open nothing but the feed.
pub async fn principal(store: &Store, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let who = any_principal(store, headers).await?;
    if who.role == Role::Calendar {
        record_failure("http", AuthFailure::WrongRole, None);
        return Err(ApiError::Forbidden(format!(
            "`{}` is a calendar key: it reads /api/v1/schedule.ics and nothing else",
            who.name
        )));
    }
    Ok(who)
}

/// The caller from the header, whatever its role (the calendar feed's check).
pub async fn any_principal(store: &Store, headers: &HeaderMap) -> Result<Principal, ApiError> {
    lookup(store, headers).await?.map_err(|failure| {
        record_failure("http", failure, None);
        ApiError::Unauthorized
    })
}

pub fn require_ops(who: &Principal) -> Result<(), ApiError> {
    match who.role {
        Role::Ops => Ok(()),
        _ => Err(wrong_role(format!(
            "token `{}` ({}) may not do this; an ops token is needed",
            who.name, who.role
        ))),
    }
}

pub fn require_ingest(who: &Principal) -> Result<(), ApiError> {
    match who.role {
        Role::Ops | Role::Ingest => Ok(()),
        Role::User | Role::Calendar => Err(wrong_role(format!(
            "token `{}` ({}) may not post telemetry; an ingest token is needed",
            who.name, who.role
        ))),
    }
}

/// A 403 for a token whose role may not do this, counted as a failed authentication.
fn wrong_role(message: String) -> ApiError {
    record_failure("http", AuthFailure::WrongRole, None);
    ApiError::Forbidden(message)
}

/// The User a caller is confined to: `None` for ops (sees all); an error for ingest tokens.
pub fn confined_to(who: &Principal) -> Result<Option<Eui64>, ApiError> {
    match (who.role, who.user) {
        (Role::Ops, _) => Ok(None),
        (Role::User, Some(user)) => Ok(Some(user)),
        _ => Err(wrong_role(format!(
            "token `{}` ({}) cannot read changes, incidents or Users",
            who.name, who.role
        ))),
    }
}

/// May the caller register a notice naming `owner`? The owner is the caller's own input, so the 403 may repeat it.
pub fn may_register_for(who: &Principal, owner: &ChangeOwner) -> Result<(), ApiError> {
    match confined_to(who)? {
        None => Ok(()),
        Some(user) if *owner == ChangeOwner::User(user) => Ok(()),
        Some(user) => Err(ApiError::Forbidden(format!(
            "token `{}` is bound to User {user}, not {owner}",
            who.name
        ))),
    }
}

/// May the caller see or change the stored change `id`, owned by `owner`? The 403 names only the id the caller
/// gave: the owner of someone else's change is not theirs to learn.
pub fn may_touch_stored(who: &Principal, id: &str, owner: &ChangeOwner) -> Result<(), ApiError> {
    match confined_to(who)? {
        None => Ok(()),
        Some(user) if *owner == ChangeOwner::User(user) => Ok(()),
        Some(_) => Err(ApiError::Forbidden(format!(
            "token `{}` may not touch change `{id}`: it belongs to another owner",
            who.name
        ))),
    }
}

/// May the caller see User `target` (or an incident of it)?
pub fn may_see_user(who: &Principal, target: &str) -> Result<(), ApiError> {
    match confined_to(who)? {
        None => Ok(()),
        Some(user) if Eui64::parse(target) == Some(user) => Ok(()),
        Some(user) => Err(ApiError::Forbidden(format!(
            "token `{}` is bound to User {user}, not {target}",
            who.name
        ))),
    }
}

/// The `user` filter of a list request: ops may ask for any User (or none, meaning all); a User token is held to
/// its own User, and asking for another is a 403. `parse` reads the query parameter (`expected` says what it
/// must be, for the 400); `own` turns the token's User into the filter's type.
pub fn list_scope<T: PartialEq + std::fmt::Display>(
    who: &Principal,
    asked: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
    expected: &str,
    own: impl Fn(Eui64) -> T,
) -> Result<Option<T>, ApiError> {
    let asked = asked
        .map(|text| {
            parse(text)
                .ok_or_else(|| ApiError::field("user", format!("`{text}` is not {expected}")))
        })
        .transpose()?;
    match (confined_to(who)?, asked) {
        (None, asked) => Ok(asked),
        (Some(user), None) => Ok(Some(own(user))),
        (Some(user), Some(asked)) if own(user) == asked => Ok(Some(asked)),
        (Some(user), Some(asked)) => Err(ApiError::Forbidden(format!(
            "token `{}` is bound to User {user}, not {asked}",
            who.name
        ))),
    }
}

/// Whether a caller confined to one User may see this incident: its own, or a `*` incident listing it.
pub fn may_see_incident(who: &Principal, record: &IncidentRecord) -> Result<(), ApiError> {
    let Some(own) = confined_to(who)? else {
        return Ok(());
    };
    let listed = std::iter::once(&record.user)
        .chain(&record.users)
        .any(|user| Eui64::parse(user) == Some(own));
    if listed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "token `{}` is bound to User {own}; incident {} is not about it",
            who.name, record.id
        )))
    }
}

/// The incident, if the caller may see it.
pub async fn visible_incident(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<IncidentRecord, ApiError> {
    let stored = state
        .store
        .get_incident_async(id.to_owned())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no incident `{id}`")))?;
    may_see_incident(who, &stored.record)?;
    Ok(stored.record)
}
