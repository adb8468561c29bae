//! What every HTTP request passes before a handler sees it: a request with a body is authenticated from its
//! headers alone (an unauthenticated or unauthorised one is answered without a byte of its body read), its body
//! is held to the limit of its route and token role and to the body timeout while it streams (413 and 408), and
//! a connection counts as authenticated from its first request that carried a valid token.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};

use crate::admission::Ticket;
use crate::http::api_error::ApiError;
use crate::http::auth::{self, AuthFailure};
use crate::store::{Role, Store};

/// The route whose bodies are telemetry, with their own (larger) limit.
pub const EVENTS_ROUTE: &str = "/api/v1/events";
/// Largest body of any other route for an `ops` token (a bulk registration of 10,000 notices fits).
pub const OPS_API_BODY_BYTES: u64 = 32 << 20;
/// Largest body of any other route for a `user` token.
pub const USER_API_BODY_BYTES: u64 = 16 << 20;
/// Largest body of any other route for `ingest` and `calendar` tokens, which may post nothing there but are
/// answered by the route (403) rather than here.
pub const OTHER_API_BODY_BYTES: u64 = 64 << 10;

/// The request limits (from the service's configuration).
#[derive(Clone, Copy, Debug)]
pub struct RequestLimits {
    /// A request's whole body must arrive within this (408 otherwise).
    pub body_timeout: Duration,
    /// Largest telemetry body as sent (`POST /api/v1/events`), for `ingest` and `ops` tokens.
    pub max_events_body: u64,
    /// Largest telemetry body once decompressed (gzip, zstd).
    pub max_decompressed: u64,
}

/// What a handler may decode a compressed body to, in bytes (a request extension the gate sets).
#[derive(Clone, Copy, Debug)]
pub struct DecodeLimit(pub u64);

#[derive(Clone)]
pub struct Gate {
    pub store: Store,
    pub limits: RequestLimits,
}

/// Largest body `role` may send to `path`; `None` when the role may not post there at all.
pub fn body_limit(path: &str, role: Role, limits: &RequestLimits) -> Option<u64> {
    match (path == EVENTS_ROUTE, role) {
        (true, Role::Ops | Role::Ingest) => Some(limits.max_events_body),
        (true, Role::User | Role::Calendar) => None,
        (false, Role::Ops) => Some(OPS_API_BODY_BYTES),
        (false, Role::User) => Some(USER_API_BODY_BYTES),
        (false, Role::Ingest | Role::Calendar) => Some(OTHER_API_BODY_BYTES),
    }
}

pub async fn gate(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    let ticket = request.extensions().get::<Arc<Ticket>>().cloned();
    let peer = ticket.as_ref().map(|t| t.peer());
    let has_body = !request.body().is_end_stream() && request.body().size_hint().upper() != Some(0);
    let unproven = ticket.as_ref().is_some_and(|t| !t.is_authenticated());
    let offers_token = request.headers().contains_key(header::AUTHORIZATION);
    // A token on a connection not yet trusted is checked here too: that is how the connection earns its trust.
    let needs_check = has_body || (unproven && offers_token);
    if !needs_check {
        return next.run(request).await;
    }
    let found = auth::lookup(&gate.store, request.headers()).await;
    let who = match found {
        Ok(Ok(who)) => {
            if let Some(ticket) = &ticket {
                ticket.authenticated();
            }
            who
        }
        // Without a body the handler decides: the route may need no token, and it counts its own refusals.
        _ if !has_body => return next.run(request).await,
        Ok(Err(failure)) => {
            auth::record_failure("http", failure, peer);
            return closing(ApiError::Unauthorized.into_response());
        }
        Err(error) => return closing(error.into_response()),
    };
    let path = request.uri().path().to_owned();
    let Some(limit) = body_limit(&path, who.role, &gate.limits) else {
        auth::record_failure("http", AuthFailure::WrongRole, peer);
        return closing(
            ApiError::Forbidden(format!(
                "token `{}` ({}) may not post telemetry; an ingest token is needed",
                who.name, who.role
            ))
            .into_response(),
        );
    };
    if request.body().size_hint().lower() > limit {
        return closing(too_large(limit, "as sent"));
    }
    let verdict = Arc::new(AtomicU8::new(FLOWING));
    let body = std::mem::take(request.body_mut());
    *request.body_mut() = Body::new(GuardedBody {
        inner: body,
        left: limit,
        deadline: Box::pin(tokio::time::sleep(gate.limits.body_timeout)),
        verdict: verdict.clone(),
    });
    request
        .extensions_mut()
        .insert(DecodeLimit(gate.limits.max_decompressed));
    let response = next.run(request).await;
    // The extractor that met the guard's error answers a generic 400: say what happened instead.
    match verdict.load(Ordering::Acquire) {
        TOO_LARGE => closing(too_large(limit, "as sent")),
        TIMED_OUT => closing(
            (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {} s\n",
                    gate.limits.body_timeout.as_secs()
                ),
            )
                .into_response(),
        ),
        _ => response,
    }
}

/// The 413 for a body over `limit` bytes (`how`: as sent, or decompressed).
pub fn too_large(limit: u64, how: &str) -> Response {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {} {how}\n", size(limit)),
    )
        .into_response()
}

/// `64 MiB`, `64 KiB` or bytes.
pub fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// Asks hyper to close the connection after this answer: the rest of an unread body must not be taken as the
/// next request, and reading it would be the work the answer refuses.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

const FLOWING: u8 = 0;
const TOO_LARGE: u8 = 1;
const TIMED_OUT: u8 = 2;

#[derive(Debug, thiserror::Error)]
enum BodyRefused {
    #[error("request body over its limit")]
    TooLarge,
    #[error("request body not received in time")]
    TimedOut,
}

/// A request body that fails as soon as it passes its limit or its deadline, whoever reads it.
struct GuardedBody {
    inner: Body,
    left: u64,
    deadline: Pin<Box<tokio::time::Sleep>>,
    verdict: Arc<AtomicU8>,
}

impl GuardedBody {
    fn refuse(
        &self,
        verdict: u8,
        error: BodyRefused,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::BoxError>>> {
        self.verdict.store(verdict, Ordering::Release);
        Poll::Ready(Some(Err(error.into())))
    }
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return self.refuse(TIMED_OUT, BodyRefused::TimedOut);
        }
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match frame {
            Some(Ok(frame)) => {
                let length = frame.data_ref().map_or(0, |data| data.len() as u64);
                if length > self.left {
                    return self.refuse(TOO_LARGE, BodyRefused::TooLarge);
                }
                self.left -= length;
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => Poll::Ready(Some(Err(error.into()))),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn limits() -> RequestLimits {
        RequestLimits {
            body_timeout: Duration::from_secs(5),
            max_events_body: 1 << 20,
            max_decompressed: 4 << 20,
        }
    }

    #[test]
    fn telemetry_bodies_are_for_ingest_and_ops_tokens_only() {
        let limits = limits();
        assert_eq!(
            body_limit(EVENTS_ROUTE, Role::Ingest, &limits),
            Some(1 << 20)
        );
        assert_eq!(body_limit(EVENTS_ROUTE, Role::User, &limits), None);
        assert_eq!(
            body_limit("/api/v1/changes", Role::User, &limits),
            Some(USER_API_BODY_BYTES)
        );
        assert_eq!(size(64 << 20), "64 MiB");
        assert_eq!(size(1_000), "1000 bytes");
    }

    #[tokio::test]
    async fn a_body_past_its_limit_fails_while_it_streams() {
        let verdict = Arc::new(AtomicU8::new(FLOWING));
        let guarded = GuardedBody {
            inner: Body::from(vec![0u8; 100]),
            left: 10,
            deadline: Box::pin(tokio::time::sleep(Duration::from_secs(5))),
            verdict: verdict.clone(),
        };
        assert!(guarded.collect().await.is_err());
        assert_eq!(verdict.load(Ordering::Acquire), TOO_LARGE);
    }
}
