//! The HTTP connection loop: hyper HTTP/1 connections with a total connection cap, a cap per peer address and a
//! smaller pool for connections that have not authenticated yet (`admission`), a header-read timeout (which
//! also closes idle keep-alive connections), a response-write timeout (`timed_io`) and, through the request gate
//! (`gate`), authentication before any body and a body timeout and limits. `axum::serve` sets none of these.
//! Slow, silent or never-reading clients are cut off; on shutdown, open connections are told to finish and close.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics::{counter, gauge};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::admission::{Admission, AdmissionLimits};
use crate::http::gate::{Gate, RequestLimits};
use crate::http::timed_io::WriteTimeout;
use crate::metrics::{CONNECTIONS, CONNECTIONS_REFUSED};
use crate::store::Store;

/// Requests a connection may make before it has carried a valid token; the answer to the last says
/// `Connection: close` (a monitor reconnects; an authenticated client is not held to this).
pub const UNAUTHENTICATED_REQUESTS_PER_CONNECTION: u32 = 100;

/// The HTTP listener's limits (from the service's configuration).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Connections served at once; more wait in the listen backlog until one closes.
    pub max_connections: usize,
    /// Per peer address, and for connections with no valid token yet (see `admission`).
    pub admission: AdmissionLimits,
    /// A request's headers, and the next request on a kept-alive connection, must arrive within this.
    pub header_timeout: Duration,
    /// A response write that makes no progress for this long (a client that does not read) closes the
    /// connection.
    pub write_timeout: Duration,
    /// Body timeout and limits.
    pub requests: RequestLimits,
}

/// Serves `router` on `listener` until `stop` resolves; then lets open connections finish their request for at
/// most `grace` and drops the rest.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    store: Store,
    limits: HttpLimits,
    stop: impl Future<Output = ()>,
    grace: Duration,
) {
    let gate = Gate {
        store,
        limits: limits.requests,
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        gate,
        crate::http::gate::gate,
    ));
    let admission = Admission::new("http", limits.admission);
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
        let ticket = match admission.admit(peer.ip()) {
            Ok(ticket) => Arc::new(ticket),
            Err(refusal) => {
                tracing::debug!(%peer, %refusal, "HTTP connection refused");
                refuse(&stream, &refusal.to_string());
                continue;
            }
        };
        let router = router.clone();
        let for_requests = ticket.clone();
        let served = Arc::new(AtomicU32::new(0));
        // Each request learns its connection's ticket: the gate marks the connection authenticated.
        let service = tower::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(for_requests.clone());
            let ticket = for_requests.clone();
            let served = served.clone();
            let router = router.clone();
            async move {
                let mut response = router.oneshot(request.map(axum::body::Body::new)).await?;
                // Pipelining turns one unauthenticated connection into thousands of answers rendered before
                // the write timeout can notice the client reads none: its requests are bounded instead.
                let count = served.fetch_add(1, Ordering::Relaxed) + 1;
                if count >= UNAUTHENTICATED_REQUESTS_PER_CONNECTION && !ticket.is_authenticated() {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        });
        let io = TokioIo::new(WriteTimeout::new(stream, limits.write_timeout));
        let connection = builder.serve_connection(io, TowerToHyperService::new(service));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _slot = slot;
            gauge!(CONNECTIONS, "listener" => "http").increment(1.0);
            tokio::select! {
                ended = connection => if let Err(error) = ended {
                    tracing::debug!(%peer, %error, "HTTP connection ended with an error");
                },
                () = ticket.evicted() => {
                    tracing::debug!(%peer, "unauthenticated HTTP connection closed for a newer one");
                }
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

/// Tells a client over its peer cap why, if the socket takes the few bytes at once, and closes the connection.
fn refuse(stream: &TcpStream, why: &str) {
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Type: text/plain\r\n\
         Content-Length: {}\r\n\r\n{why}\n",
        why.len() + 1
    );
    let _ = stream.try_write(answer.as_bytes());
}
