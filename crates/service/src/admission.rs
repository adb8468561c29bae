//! Connection admission for both listeners (HTTP and TCP telemetry): a cap per peer address, and a smaller pool
//! for connections that have not authenticated yet, in which a newcomer closes the oldest.
//!
//! Why closing the oldest rather than refusing the newest: a flood of silent or slow connections would otherwise
//! hold the pool for as long as the timeouts allow, and lock out every client that has yet to authenticate (a
//! sender about to send `AUTH`, a monitor asking `/readyz`). A normal client needs the pool for one round trip;
//! an abuser must open connections faster than that to keep it out. Once a connection has authenticated it
//! leaves the pool and only the per-peer and total caps hold it.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use metrics::counter;
use tokio::sync::Notify;

use crate::metrics::CONNECTIONS_REFUSED;

/// The caps of one listener.
#[derive(Clone, Copy, Debug)]
pub struct AdmissionLimits {
    /// Connections open at once from one peer address.
    pub per_peer: usize,
    /// Connections open at once that have not authenticated yet.
    pub unauthenticated: usize,
}

/// One listener's admission book: shared by its accept loop and its connection tasks.
#[derive(Clone)]
pub struct Admission {
    shared: Arc<Shared>,
}

struct Shared {
    listener: &'static str,
    limits: AdmissionLimits,
    book: Mutex<Book>,
}

#[derive(Default)]
struct Book {
    per_peer: HashMap<IpAddr, usize>,
    /// Connections not yet authenticated, oldest first (keys are admission order).
    unauthenticated: BTreeMap<u64, Arc<Notify>>,
    admitted: u64,
}

/// Why a connection was not admitted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("too many connections from this address (at most {0})")]
    PeerCap(usize),
}

/// A connection's place in the book; leaving it (drop) frees the place.
pub struct Ticket {
    shared: Arc<Shared>,
    peer: IpAddr,
    order: u64,
    authenticated: AtomicBool,
    evict: Arc<Notify>,
}

impl Admission {
    pub fn new(listener: &'static str, limits: AdmissionLimits) -> Admission {
        Admission {
            shared: Arc::new(Shared {
                listener,
                limits: AdmissionLimits {
                    per_peer: limits.per_peer.max(1),
                    unauthenticated: limits.unauthenticated.max(1),
                },
                book: Mutex::new(Book::default()),
            }),
        }
    }

    /// Admits a new connection from `peer` as not yet authenticated, closing the oldest unauthenticated one when
    /// their pool is full; refuses it when its peer is at its cap.
    pub fn admit(&self, peer: IpAddr) -> Result<Ticket, Refusal> {
        let limits = self.shared.limits;
        let mut book = self.shared.lock();
        let open = book.per_peer.entry(peer).or_insert(0);
        if *open >= limits.per_peer {
            drop(book);
            counter!(CONNECTIONS_REFUSED, "listener" => self.shared.listener, "reason" => "peer_cap")
                .increment(1);
            return Err(Refusal::PeerCap(limits.per_peer));
        }
        *open += 1;
        book.admitted += 1;
        let order = book.admitted;
        let evict = Arc::new(Notify::new());
        book.unauthenticated.insert(order, evict.clone());
        let mut evicted = 0u64;
        while book.unauthenticated.len() > limits.unauthenticated {
            if let Some((_, oldest)) = book.unauthenticated.pop_first() {
                // `notify_one` keeps the wake-up even when the connection is not waiting on it yet.
                oldest.notify_one();
                evicted += 1;
            }
        }
        drop(book);
        if evicted > 0 {
            counter!(CONNECTIONS_REFUSED, "listener" => self.shared.listener, "reason" => "unauthenticated_evicted")
                .increment(evicted);
        }
        Ok(Ticket {
            shared: self.shared.clone(),
            peer,
            order,
            authenticated: AtomicBool::new(false),
            evict,
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Book> {
        // The book holds plain counts: one a panicking holder left half-updated is still usable.
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Ticket {
    /// The connection has authenticated: it leaves the unauthenticated pool and can no longer be closed for a
    /// newcomer.
    pub fn authenticated(&self) {
        if !self.authenticated.swap(true, Ordering::AcqRel) {
            self.shared.lock().unauthenticated.remove(&self.order);
        }
    }

    pub fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::Acquire)
    }

    /// Resolves when a newcomer needs this connection's place in the unauthenticated pool: the connection must
    /// then close. Never resolves once the connection has authenticated.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }

    pub fn peer(&self) -> IpAddr {
        self.peer
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut book = self.shared.lock();
        book.unauthenticated.remove(&self.order);
        if let Some(open) = book.per_peer.get_mut(&self.peer) {
            *open = open.saturating_sub(1);
            if *open == 0 {
                book.per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn a_peer_at_its_cap_is_refused_until_one_of_its_connections_closes() {
        let admission = Admission::new(
            "test",
            AdmissionLimits {
                per_peer: 2,
                unauthenticated: 10,
            },
        );
        let first = admission.admit(ip(1)).unwrap();
        let _second = admission.admit(ip(1)).unwrap();
        assert_eq!(admission.admit(ip(1)).err(), Some(Refusal::PeerCap(2)));
        assert!(
            admission.admit(ip(2)).is_ok(),
            "another peer is not held back"
        );
        drop(first);
        assert!(admission.admit(ip(1)).is_ok());
    }

    #[tokio::test]
    async fn a_full_unauthenticated_pool_closes_its_oldest_but_never_an_authenticated_one() {
        let admission = Admission::new(
            "test",
            AdmissionLimits {
                per_peer: 10,
                unauthenticated: 2,
            },
        );
        let trusted = admission.admit(ip(1)).unwrap();
        trusted.authenticated();
        let oldest = admission.admit(ip(1)).unwrap();
        let middle = admission.admit(ip(1)).unwrap();
        let _newest = admission.admit(ip(1)).unwrap();
        let quick = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(quick, oldest.evicted()).await.is_ok(),
            "the oldest unauthenticated connection is told to close"
        );
        assert!(tokio::time::timeout(quick, middle.evicted()).await.is_err());
        assert!(
            tokio::time::timeout(quick, trusted.evicted())
                .await
                .is_err()
        );
        assert!(trusted.is_authenticated());
    }
}
