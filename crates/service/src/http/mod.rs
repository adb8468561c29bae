//! The HTTP listener: router, shared state, health, metrics, telemetry ingest and the malformed and User views.
//! Handlers never touch the engine or the database directly: they read the engine's published state, message the
//! engine thread, and send jobs to the store's writer or readers.

pub mod api_error;
pub mod auth;
pub mod calendar_feed;
pub mod changes_api;
pub mod console;
pub mod coordination;
pub mod directory_api;
pub mod gate;
pub mod health_api;
pub mod incidents_api;
pub mod outcomes_api;
pub mod page;
pub mod query;
pub mod schedule_api;
pub mod server;
pub mod state;
pub mod timed_io;
pub mod users_api;

use std::io::Read;
use std::sync::Arc;
use std::time::Instant;

use crate::http::query::ApiQuery;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Extension, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::engine::{BatchOutcome, EngineInput, SourceKind};
use crate::http::api_error::ApiError;
use crate::http::auth::{confined_to, may_see_user, principal, require_ingest, require_ops};
use crate::http::page::Paging;
use crate::http::state::{AppState, ask};
use stormwatch_core::telemetry::Eui64;
use stormwatch_core::telemetry::batch::parse_chunk;
use stormwatch_core::telemetry::framing::LineFramer;

/// What a compressed telemetry body may decode to when no limit was configured (`http_max_decompressed_mib`).
const DEFAULT_MAX_DECOMPRESSED: u64 = 256 << 20;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/events", post(post_events))
        .route("/api/v1/malformed", get(list_malformed))
        .route("/api/v1/users", get(list_users))
        .route("/api/v1/sources", get(list_sources))
        .route("/api/v1/users/{id}", get(get_user))
        .merge(crate::http::changes_api::routes())
        .merge(crate::http::directory_api::routes())
        .merge(crate::http::health_api::routes())
        .merge(crate::http::schedule_api::routes())
        .merge(crate::http::outcomes_api::routes())
        .merge(crate::http::incidents_api::routes())
        .merge(crate::http::console::routes())
        // The request gate (`gate`) holds every body to its route's and token role's limit as it streams.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// 200 when ready; otherwise 503 with one line per failing check. Either way a last line shows the engine's
/// write queue when it holds anything or ever held up the engine (its backpressure). Reads only atomics: never
/// waits on the store or the engine thread.
async fn readyz(State(state): State<AppState>) -> Response {
    let problems = state.health.problems();
    let queue = state
        .health
        .store_queue_line()
        .map(|line| line + "\n")
        .unwrap_or_default();
    if problems.is_empty() {
        let note = state
            .health
            .journal_note()
            .map(|note| format!("journal: {note}\n"))
            .unwrap_or_default();
        return (StatusCode::OK, format!("ready\n{note}{queue}")).into_response();
    }
    let text: String = problems
        .iter()
        .map(|(check, why)| format!("{}: {why}\n", check.label()))
        .collect();
    (StatusCode::SERVICE_UNAVAILABLE, text + &queue).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        state.metrics.render()
            + &crate::metrics::user_series::render()
            + &state.names.info_metric(),
    )
        .into_response()
}

/// How a telemetry body is encoded (`Content-Encoding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Zstd,
}

impl Encoding {
    /// `None` for an encoding the service cannot read (415), or a list of several.
    fn of(headers: &HeaderMap) -> Option<Encoding> {
        let Some(value) = headers.get(axum::http::header::CONTENT_ENCODING) else {
            return Some(Encoding::Identity);
        };
        match value.to_str().ok()?.trim().to_ascii_lowercase().as_str() {
            "" | "identity" => Some(Encoding::Identity),
            "gzip" | "x-gzip" => Some(Encoding::Gzip),
            "zstd" => Some(Encoding::Zstd),
            _ => None,
        }
    }

    /// The decoded body, cut at `limit` bytes (the check before ingest has refused a body longer than that).
    fn reader(self, body: Bytes, limit: u64) -> std::io::Result<Box<dyn Read + Send>> {
        let raw = std::io::Cursor::new(body);
        Ok(match self {
            Encoding::Identity => Box::new(raw),
            Encoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(raw).take(limit)),
            Encoding::Zstd => Box::new(zstd::stream::read::Decoder::new(raw)?.take(limit)),
        })
    }
}

/// Reads the whole decoded body once, keeping nothing, so that a body that breaks part-way (a truncated gzip
/// stream, a bad zstd frame) or decodes past `limit` bytes (a compression bomb) is refused before a single line
/// of it reaches the engine. Decoding stops at the limit, so a bomb costs at most that much work.
fn check_decodes(encoding: Encoding, body: &Bytes, limit: u64) -> Result<(), ApiError> {
    if encoding == Encoding::Identity {
        return Ok(());
    }
    let mut reader = encoding
        .reader(body.clone(), limit.saturating_add(1))
        .map_err(|e| ApiError::invalid(format!("body unreadable: {e}")))?;
    let decoded = std::io::copy(&mut reader, &mut std::io::sink()).map_err(|e| {
        ApiError::invalid(format!("body unreadable: {e}; nothing of it was ingested"))
    })?;
    if decoded > limit {
        return Err(ApiError::TooLarge(format!(
            "request body over {} decompressed (http_max_decompressed_mib); nothing of it was ingested",
            gate::size(limit)
        )));
    }
    Ok(())
}

/// `POST /api/v1/events`: an NDJSON body (plain, `Content-Encoding: gzip` or `zstd`; another encoding is 415).
/// All or nothing: a body that cannot be decoded to its end ingests nothing. Answers how many lines were
/// accepted and how many were malformed.
async fn post_events(
    State(state): State<AppState>,
    decode_limit: Option<Extension<gate::DecodeLimit>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<BatchOutcome>, ApiError> {
    // Set by the request gate; without it (a router served some other way) the configured default.
    let limit = decode_limit.map_or(DEFAULT_MAX_DECOMPRESSED, |Extension(limit)| limit.0);
    let who = principal(&state.store, &headers).await?;
    require_ingest(&who)?;
    let encoding = Encoding::of(&headers).ok_or_else(|| {
        ApiError::UnsupportedEncoding(
            headers
                .get(axum::http::header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(not text)")
                .to_owned(),
        )
    })?;
    let source: Arc<str> = Arc::from(format!("http:{}", who.name));
    let engine = state.engine.clone();
    let replies = tokio::task::spawn_blocking(move || -> Result<Vec<_>, ApiError> {
        // Decoding twice costs CPU, but keeps memory bounded by the compressed body (a gzip bomb is never held
        // decoded) while still ingesting nothing of a body that turns out broken.
        check_decodes(encoding, &body, limit)?;
        let reader = encoding
            .reader(body, limit)
            .map_err(|e| ApiError::invalid(format!("body unreadable: {e}")))?;
        let mut framer = LineFramer::new(reader);
        let mut replies = Vec::new();
        loop {
            let chunk = framer.next_chunk().map_err(|e| {
                ApiError::invalid(format!(
                    "body unreadable near line {}: {e}",
                    framer.next_line()
                ))
            })?;
            let Some(chunk) = chunk else { break };
            let (reply, answer) = tokio::sync::oneshot::channel();
            let parsed = parse_chunk(0, chunk);
            let batch = EngineInput::Batch {
                source: source.clone(),
                kind: SourceKind::Http,
                parsed,
                received: Instant::now(),
                reply: Some(reply),
            };
            engine.send(batch).map_err(|_| ApiError::EngineGone)?;
            replies.push(answer);
        }
        Ok(replies)
    })
    .await
    .map_err(|_| ApiError::EngineGone)??;
    let mut total = BatchOutcome::default();
    for answer in replies {
        let outcome = answer.await.map_err(|_| ApiError::EngineGone)?;
        total.accepted += outcome.accepted;
        total.malformed += outcome.malformed;
        total.refused += outcome.refused;
    }
    Ok(Json(total))
}

/// `GET /api/v1/malformed`: the totals, and a page of the most recent malformed and refused lines (newest
/// first; the log keeps the last `RECENT_MALFORMED` of each).
async fn list_malformed(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Response, ApiError> {
    let page = paging.page(
        crate::http::page::DEFAULT_LIMIT,
        crate::ingest::malformed::RECENT_MALFORMED,
    )?;
    require_ops(&principal(&state.store, &headers).await?)?;
    let upto = page.offset.saturating_add(page.rows());
    let (total, recent, refused_total, refused) = ask(&state, move |_, log| {
        (
            log.total,
            log.recent(upto),
            log.refused_total,
            log.recent_refused(upto),
        )
    })
    .await?;
    // One cursor pages both lists; the next page exists while either has more.
    let (next_recent, recent) = page.cut(recent);
    let (next_refused, refused) = page.cut(refused);
    let next = if next_recent.is_empty() {
        next_refused
    } else {
        next_recent
    };
    Ok((
        next,
        Json(serde_json::json!({
            "total": total,
            "recent": recent,
            "refused": { "total": refused_total, "recent": refused },
        })),
    )
        .into_response())
}

/// `GET /api/v1/users`: from the engine's published state (as of its last tick), never waiting on the engine.
async fn list_users(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiQuery(paging): ApiQuery<Paging>,
) -> Result<Response, ApiError> {
    let page = paging.standard()?;
    let who = principal(&state.store, &headers).await?;
    let only = confined_to(&who)?;
    let view = state.published.load();
    let (next, users) = page.cut(
        view.users
            .iter()
            .filter(|u| only.is_none_or(|o| Eui64::parse(&u.user) == Some(o))),
    );
    Ok((next, Json(users)).into_response())
}

/// `GET /api/v1/sources`: each event-time source (connection, stream, HTTP sender, file, topic) with the event
/// time it has reached, how far it trails the newest, whether the watermark waits for it, and its exporter clocks
/// running at an offset. Operators only: it names every sender.
async fn list_sources(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    require_ops(&who)?;
    Ok(Json(state.published.sources().as_ref().clone()).into_response())
}

/// `GET /api/v1/users/{id}`: from the engine's published state, like the list.
async fn get_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let who = principal(&state.store, &headers).await?;
    let user = Eui64::parse(&id)
        .ok_or_else(|| ApiError::field("id", format!("`{id}` is not an EUI-64")))?;
    may_see_user(&who, &id)?;
    let view = state.published.load();
    if let Some(found) = view.user(user) {
        return Ok(Json(found).into_response());
    }
    match view.evicted(user) {
        Some(evicted) => Err(ApiError::NotFound(users_api::evicted_message(
            user, evicted,
        ))),
        None => Err(ApiError::NotFound(format!(
            "no telemetry seen for User {user}"
        ))),
    }
}
