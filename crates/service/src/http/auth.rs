//! Bearer-token authentication and the access rules: `ops` may do everything, a `user` token only its own
//! User's changes and incidents, an `ingest` token only posts telemetry, and a `calendar` key only reads the
//! schedule's calendar feed (it is refused everywhere else, whether in a header or not).

use axum::http::HeaderMap;

use crate::http::api_error::ApiError;
use crate::http::state::AppState;
use crate::store::{Principal, Role, Store};
use stormwatch_core::changes::ChangeOwner;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// The caller, from the `Authorization: Bearer ...` header. A calendar key is refused here: it is made to sit in
/// a calendar client's subscription URL, so it must open nothing but the feed.
pub async fn principal(store: &Store, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let who = any_principal(store, headers).await?;
    if who.role == Role::Calendar {
        return Err(ApiError::Forbidden(format!(
            "`{}` is a calendar key: it reads /api/v1/schedule.ics and nothing else",
            who.name
        )));
    }
    Ok(who)
}

/// The caller from the header, whatever its role (the calendar feed's check).
pub async fn any_principal(store: &Store, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let secret = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    store
        .authenticate_async(secret.to_owned())
        .await?
        .ok_or(ApiError::Unauthorized)
}

pub fn require_ops(who: &Principal) -> Result<(), ApiError> {
    match who.role {
        Role::Ops => Ok(()),
        _ => Err(ApiError::Forbidden(format!(
            "token `{}` ({}) may not do this; an ops token is needed",
            who.name, who.role
        ))),
    }
}

pub fn require_ingest(who: &Principal) -> Result<(), ApiError> {
    match who.role {
        Role::Ops | Role::Ingest => Ok(()),
        Role::User | Role::Calendar => Err(ApiError::Forbidden(format!(
            "token `{}` ({}) may not post telemetry; an ingest token is needed",
            who.name, who.role
        ))),
    }
}

/// The User a caller is confined to: `None` for ops (sees all); an error for ingest tokens.
pub fn confined_to(who: &Principal) -> Result<Option<Eui64>, ApiError> {
    match (who.role, who.user) {
        (Role::Ops, _) => Ok(None),
        (Role::User, Some(user)) => Ok(Some(user)),
        _ => Err(ApiError::Forbidden(format!(
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
