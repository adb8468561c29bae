//! The HTTP connection loop: hyper HTTP/1 connections with a connection cap, a header-read timeout (which also
//! closes idle keep-alive connections) and a body timeout, instead of `axum::serve`, which sets neither. Slow or
//! idle clients (slowloris) are cut off; on shutdown, open connections are told to finish and close.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics::{counter, gauge};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::{CONNECTIONS, CONNECTIONS_REFUSED};

/// The HTTP listener's limits (from the service's configuration).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// A request's headers, and the next request on a kept-alive connection, must arrive within this.
    pub header_timeout: Duration,
    /// A request's whole body must arrive within this (408 otherwise).
    pub body_timeout: Duration,
    /// Largest body read (413 beyond).
    pub max_body_bytes: usize,
}

/// Serves `router` on `listener` until `stop` resolves; then lets open connections finish their request for at
/// most `grace` and drops the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let router = router.layer(axum::middleware::from_fn(move |request, next| {
        read_body_in_time(request, next, limits)
    }));
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut stop = std::pin::pin!(stop);
    loop {
        // Take a slot before accepting: at the cap, new clients wait in the kernel's backlog rather than
        // holding a task and a socket here.
        let slot = tokio::select! {
            () = &mut stop => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    counter!(CONNECTIONS_REFUSED, "listener" => "http", "reason" => "accept_error").increment(1);
                    tracing::warn!(%error, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            gauge!(CONNECTIONS, "listener" => "http").increment(1.0);
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "HTTP connection ended with an error");
            }
            gauge!(CONNECTIONS, "listener" => "http").decrement(1.0);
        });
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            grace_s = grace.as_secs(),
            "HTTP connections still open after the shutdown grace; closing them"
        );
    }
}

/// Reads the whole request body within the body timeout before any handler sees it: a client trickling its body
/// (or stopping half-way) gets 408 instead of holding a handler for ever.
async fn read_body_in_time(request: Request, next: Next, limits: HttpLimits) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, limits.max_body_bytes);
    let bytes = match tokio::time::timeout(limits.body_timeout, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            return if too_large {
                (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("request body over {} bytes\n", limits.max_body_bytes),
                )
                    .into_response()
            } else {
                (
                    StatusCode::BAD_REQUEST,
                    format!("request body unreadable: {error}\n"),
                )
                    .into_response()
            };
        }
        Err(_) => {
            return (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "request body not received within {} s\n",
                    limits.body_timeout.as_secs()
                ),
            )
                .into_response();
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
