//! The TCP telemetry listener, async on tokio: a cap on connections, a cap per peer address and a smaller pool
//! for connections not authenticated yet (`admission`), an idle timeout, optional TLS (with client
//! certificates when a CA is set), and (beyond loopback, or when configured) an ingest-token handshake before
//! any line is read. A connection task only reads: the socket's bytes go straight into a block, which goes out up
//! to its last newline (`blocks.rs`) to the connection's parser thread over a bounded async channel
//! (`parsers.rs`). Parsing happens there, and the parser thread waits on the engine's bounded queue; when the
//! parser's channel is full the task waits (without blocking a worker) and stops reading, so TCP pushes back on
//! the sender.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics::{counter, gauge};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use crate::admission::{Admission, AdmissionLimits, Ticket};
use crate::engine::EngineInput;
use crate::engine::sources::Openings;
use crate::http::auth::{AuthFailure, record_failure};
use crate::ingest::ack;
use crate::ingest::blocks::Blocks;
use crate::ingest::feed::Feed;
use crate::ingest::parsers::{Lane, Parsers, Work};
use crate::metrics::{CONNECTIONS, CONNECTIONS_REFUSED};
use crate::store::{Role, Store};

/// Bytes asked of the socket per read once lines flow, and so the most a block holds (beyond a line still
/// arriving): large enough to amortise the channels under load; a read hands out whatever whole lines it brought
/// at once, so a slow sender's lines do not wait for a block to fill.
const READ_BYTES: usize = 256 * 1024;
/// The first reads ask for this much: a connection that stays idle (up to the cap of them) costs a few KiB,
/// not a block; reads grow to `READ_BYTES` at the first one that fills its room.
const FIRST_READ_BYTES: usize = 8 * 1024;
/// The handshake line is `AUTH <token>`; anything longer is not one.
const MAX_AUTH_LINE: usize = 512;

/// The listener's limits and authentication (from the service's configuration).
#[derive(Clone)]
pub struct TcpSettings {
    pub max_connections: usize,
    /// Per peer address, and for connections that have not authenticated yet (see `admission`).
    pub admission: AdmissionLimits,
    /// A connection that sends nothing for this long is closed (its last partial line is taken as ended).
    pub idle_timeout: Duration,
    /// When set, the first line must be `AUTH <token>` with an `ingest` or `ops` API token from this store.
    pub auth: Option<Store>,
    /// Time allowed for the handshake line, and for the TLS handshake.
    pub auth_timeout: Duration,
    /// When set, the port speaks only TLS: a client that does not complete the handshake (plain text, no or
    /// wrong client certificate) is counted and closed before any line is read.
    pub tls: Option<TlsAcceptor>,
    /// Where connections register as event-time sources the moment they are known (see `Openings`).
    pub openings: Arc<Openings>,
}

/// Accepts connections for as long as the runtime runs. Connections over the cap are closed at once (plain ones
/// told why), so a flood of idle sockets costs neither threads nor memory.
pub async fn serve(listener: TcpListener, settings: TcpSettings, parsers: Parsers) {
    let slots = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let admission = Admission::new("tcp", settings.admission);
    let settings = Arc::new(settings);
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                counter!(CONNECTIONS_REFUSED, "listener" => "tcp", "reason" => "accept_error")
                    .increment(1);
                tracing::warn!(%error, "accepting an ingest connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ticket = match admission.admit(peer.ip()) {
            Ok(ticket) => {
                // With neither a token nor TLS asked for (loopback), there is nothing to prove.
                if settings.auth.is_none() && settings.tls.is_none() {
                    ticket.authenticated();
                }
                ticket
            }
            Err(refusal) => {
                tracing::debug!(%peer, %refusal, "ingest connection refused");
                let tls = settings.tls.is_some();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(1),
                        refuse(&mut stream, tls, "too many connections from your address"),
                    )
                    .await;
                });
                continue;
            }
        };
        let listener_idle = slots.available_permits() == settings.max_connections.max(1);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            counter!(CONNECTIONS_REFUSED, "listener" => "tcp", "reason" => "cap").increment(1);
            tracing::debug!(%peer, cap = settings.max_connections, "ingest connection refused: at the cap");
            let tls = settings.tls.is_some();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    refuse(&mut stream, tls, "too many connections"),
                )
                .await;
            });
            continue;
        };
        if settings.auth.is_none() && settings.tls.is_none() {
            // Known now, before its task first runs: senders connecting together are registered together, not
            // after one task has handed the engine minutes of event time while another waited for a worker.
            settings.openings.opened(source_name(peer, None));
        }
        if listener_idle {
            crate::pace::open_join_window();
        }
        let (settings, lane) = (settings.clone(), parsers.lane());
        tokio::spawn(async move {
            let _slot = slot;
            gauge!(CONNECTIONS, "listener" => "tcp").increment(1.0);
            let served = async {
                match &settings.tls {
                    None => connection(stream, peer, &settings, &lane, &ticket).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(settings.auth_timeout, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(tls)) => connection(tls, peer, &settings, &lane, &ticket).await,
                            Ok(Err(error)) => {
                                counter!(CONNECTIONS_REFUSED, "listener" => "tcp", "reason" => "tls")
                                .increment(1);
                                tracing::warn!(%peer, %error, "ingest connection refused: TLS handshake failed");
                            }
                            Err(_) => {
                                counter!(CONNECTIONS_REFUSED, "listener" => "tcp", "reason" => "tls")
                                .increment(1);
                                tracing::warn!(%peer, "ingest connection refused: no TLS handshake in time");
                            }
                        }
                    }
                }
            };
            tokio::select! {
                () = served => {}
                () = ticket.evicted() => {
                    tracing::debug!(%peer, "unauthenticated ingest connection closed for a newer one");
                }
            }
            gauge!(CONNECTIONS, "listener" => "tcp").decrement(1.0);
        });
    }
}

/// Ends a connection over the cap. A plain client is told why; a TLS client gets nothing: plain text on a TLS
/// port reads as a corrupt record, and answering inside TLS would cost a full handshake for every connection a
/// flood opens. Either way the close is a FIN, not a reset: what the client already sent (its `ClientHello`, its
/// first lines) is read and dropped first, so a reset cannot destroy the reason before the client reads it.
async fn refuse(stream: &mut TcpStream, tls: bool, why: &str) {
    if !tls {
        let _ = stream.write_all(format!("ERR {why}\n").as_bytes()).await;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    settings: &TcpSettings,
    lane: &Lane,
    ticket: &Ticket,
) {
    let mut feed = Feed::default();
    let mut source = source_name(peer, None);
    if let Some(store) = &settings.auth {
        match handshake(&mut stream, store, settings.auth_timeout, &mut feed).await {
            Ok(name) => {
                ticket.authenticated();
                source = source_name(peer, Some(&name));
                let _ = stream.write_all(b"OK\n").await;
            }
            Err((failure, why)) => {
                if let Some(failure) = failure {
                    record_failure("tcp", failure, Some(peer.ip()));
                }
                counter!(CONNECTIONS_REFUSED, "listener" => "tcp", "reason" => "auth").increment(1);
                tracing::warn!(%peer, why, "ingest connection refused");
                let _ = tokio::time::timeout(
                    Duration::from_secs(1),
                    stream.write_all(format!("ERR {why}\n").as_bytes()),
                )
                .await;
                return;
            }
        }
    } else {
        // No token asked for: a TLS client certificate (checked in the handshake) or loopback is the trust.
        ticket.authenticated();
    }
    tracing::info!(%peer, "ingest connection opened");
    if settings.auth.is_some() || settings.tls.is_some() {
        // Known to the engine before its first batch, which may come after other senders' first minutes (a plain
        // connection registered when it was accepted).
        settings.openings.opened(source.clone());
    }
    let mut read_bytes = FIRST_READ_BYTES;
    if feed.bytes.is_empty() {
        // A whole block of memory only once lines flow: a connection that stays idle never gets one.
        read_into(
            &mut stream,
            &mut read_bytes,
            &mut feed,
            peer,
            settings,
            None,
        )
        .await;
    }
    let mut acked = match ack::negotiate(&mut stream, &mut feed, settings.idle_timeout, lane).await
    {
        Ok(acked) => acked,
        Err(why) => {
            let _ = lane
                .send(Work::Forward(EngineInput::SourceClosed(source.clone())))
                .await;
            tracing::warn!(%peer, why, "acknowledged ingest refused");
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                stream.write_all(format!("ERR {why}\n").as_bytes()),
            )
            .await;
            return;
        }
    };
    if acked.is_some() {
        // The stream, not this connection, is the source of its lines.
        let _ = lane
            .send(Work::Forward(EngineInput::SourceClosed(source.clone())))
            .await;
    }
    // The name watermark alignment knows this connection's lines by (the stream's, on an acknowledged one).
    let paced = acked
        .as_ref()
        .map_or_else(|| source.clone(), ack::Acked::source);
    let (rest, eof) = feed.into_rest();
    let mut blocks = Blocks::new(rest);
    blocks.eof = eof;
    let ended = loop {
        match blocks.next_chunk(|| lane.block(read_bytes)) {
            Some(chunk) => {
                // Before the wait for a turn and for room in the lane: both count as ingest latency.
                let received = Instant::now();
                let mark = acked
                    .as_ref()
                    .map(|acked| acked.mark(blocks.next_line() - 1));
                crate::pace::wait_turn(&paced).await;
                let work = Work::Lines {
                    source: source.clone(),
                    chunk,
                    received,
                    mark,
                };
                if !lane.send(work).await {
                    break "the engine stopped";
                }
            }
            None if blocks.eof => break "closed",
            None => {
                let acks = acked.as_mut().map(|acked| &mut acked.acks);
                read_into(
                    &mut stream,
                    &mut read_bytes,
                    &mut blocks,
                    peer,
                    settings,
                    acks,
                )
                .await;
            }
        }
    };
    if let Some(acked) = &mut acked
        && ended == "closed"
    {
        // The sender has said all it will: it hears the last `ACK` before the connection closes.
        let last = acked.mark(blocks.next_line() - 1).through;
        acked.finish(&mut stream, last, settings.idle_timeout).await;
    }
    if acked.is_none() {
        // An acknowledged stream outlives its connection (the sender reconnects to resume it); a plain connection
        // is a source of its own, and the watermark need not wait for it any longer. Through the lane: after the
        // connection's last batch.
        let _ = lane
            .send(Work::Forward(EngineInput::SourceClosed(source.clone())))
            .await;
    }
    // A clean end for TLS clients (close_notify) and a FIN for plain ones, rather than a bare drop.
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
    tracing::info!(%peer, lines = blocks.next_line() - 1, ended, "ingest connection closed");
}

/// A connection's event-time source name: its peer, and the name of its token when it sent one.
fn source_name(peer: SocketAddr, token: Option<&str>) -> Arc<str> {
    match token {
        None => Arc::from(format!("tcp:{peer}")),
        Some(token) => Arc::from(format!("tcp:{peer}:{token}")),
    }
}

/// One read from the socket into `feed`, waiting at most the idle timeout; the end of the stream, a failed read
/// and an idle connection all end the feed. On an acknowledged connection, an `ACK <n>` that becomes due while
/// waiting is written at once (and the read is tried again by the caller).
async fn read_into<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    read_bytes: &mut usize,
    feed: &mut impl Room,
    peer: SocketAddr,
    settings: &TcpSettings,
    acks: Option<&mut tokio::sync::watch::Receiver<u64>>,
) {
    // Straight into the free room of the feed or block (not zeroed first, and no copy from a read buffer).
    let room = feed.room(*read_bytes);
    let read = match acks {
        None => tokio::time::timeout(settings.idle_timeout, stream.read_buf(feed.bytes())).await,
        Some(acks) => {
            let woke = tokio::time::timeout(settings.idle_timeout, async {
                tokio::select! {
                    read = stream.read_buf(feed.bytes()) => Some(read),
                    Ok(()) = acks.changed() => None,
                }
            })
            .await;
            match woke {
                Ok(Some(read)) => Ok(read),
                Ok(None) => {
                    let through = *acks.borrow_and_update();
                    if ack::write_ack(stream, through).await.is_err() {
                        feed.ended();
                    }
                    return;
                }
                Err(elapsed) => Err(elapsed),
            }
        }
    };
    match read {
        Ok(Ok(0)) => feed.ended(),
        Ok(Ok(n)) => {
            if n >= room {
                *read_bytes = READ_BYTES;
            }
        }
        Ok(Err(error)) => {
            tracing::warn!(%peer, %error, "ingest connection read failed");
            feed.ended();
        }
        Err(_) => {
            counter!(CONNECTIONS_REFUSED, "listener" => "tcp", "reason" => "idle").increment(1);
            tracing::info!(%peer, idle_s = settings.idle_timeout.as_secs(), "ingest connection idle: closing it");
            feed.ended();
        }
    }
}

/// Where a read goes: the handshake's `Feed`, then the connection's `Blocks`.
trait Room {
    /// Makes room for a read of `want` bytes; returns the room.
    fn room(&mut self, want: usize) -> usize;
    fn bytes(&mut self) -> &mut Vec<u8>;
    fn ended(&mut self);
}

impl Room for Feed {
    fn room(&mut self, want: usize) -> usize {
        Feed::room(self, want)
    }
    fn bytes(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
    fn ended(&mut self) {
        self.eof = true;
    }
}

impl Room for Blocks {
    fn room(&mut self, want: usize) -> usize {
        Blocks::room(self, want)
    }
    fn bytes(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
    fn ended(&mut self) {
        self.eof = true;
    }
}

/// Reads `AUTH <token>` and checks the token; returns the token's name. Bytes after the line are the first
/// telemetry and go to `feed`. A refusal says why, and which failed authentication it counts as (none when
/// the store could not be asked).
async fn handshake<S: AsyncRead + Unpin>(
    stream: &mut S,
    store: &Store,
    timeout: Duration,
    feed: &mut Feed,
) -> Result<String, (Option<AuthFailure>, &'static str)> {
    let missing = |why| (Some(AuthFailure::Missing), why);
    let malformed = (
        Some(AuthFailure::Malformed),
        "first line is not `AUTH <token>`",
    );
    let mut line = Vec::with_capacity(128);
    let mut byte = [0u8; 256];
    let read_line = async {
        loop {
            let n = stream
                .read(&mut byte)
                .await
                .map_err(|_| missing("read failed"))?;
            if n == 0 {
                return Err(missing("closed before the AUTH line"));
            }
            line.extend_from_slice(&byte[..n]);
            if let Some(end) = line.iter().position(|&b| b == b'\n') {
                feed.push(&line[end + 1..]);
                line.truncate(end);
                return Ok(());
            }
            if line.len() > MAX_AUTH_LINE {
                return Err(malformed);
            }
        }
    };
    tokio::time::timeout(timeout, read_line)
        .await
        .map_err(|_| missing("no AUTH line in time"))??;
    let secret = std::str::from_utf8(&line)
        .ok()
        .and_then(|text| text.trim_end_matches('\r').strip_prefix("AUTH "))
        .map(str::trim)
        .filter(|secret| !secret.is_empty())
        .ok_or(malformed)?;
    match store.authenticate_async(secret.to_owned()).await {
        Ok(Some(who)) if matches!(who.role, Role::Ingest | Role::Ops) => Ok(who.name),
        Ok(Some(_)) => Err((
            Some(AuthFailure::WrongRole),
            "token may not send telemetry (needs ingest or ops)",
        )),
        Ok(None) => Err((Some(AuthFailure::Unknown), "unknown or revoked token")),
        Err(_) => Err((None, "cannot check the token now")),
    }
}

#[cfg(test)]
#[path = "tcp_tests.rs"]
mod tests;
