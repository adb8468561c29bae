//! Watermark alignment: a source running too far ahead of the engine's watermark waits before it hands the engine
//! more, so a sender flushing flat out cannot outrun the slowest active one by more than the engine can hold
//! (Flink's watermark alignment). The engine thread says which sources are ahead; connection tasks wait on it.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Milliseconds of event time a source may run ahead of the slowest source the watermark waits for before it waits.
pub const ALIGN_AHEAD_MS: i64 = 30_000;
/// How long a waiting source sleeps between looks.
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// Wall time every sender waits after the first connection opens on an idle listener, so that senders starting
/// together are all known to the engine before any of them hands it event time. A sender alone for even 5-15 ms
/// (senders never connect at quite the same moment) handed over minutes of event time, closed those seconds, and
/// the others' first minutes were late (Kafka Streams waits for all its partitions in the same way with
/// `max.task.idle.ms`). Once any connection is open, a new one joins at the first second still open instead.
pub const JOIN_WINDOW: Duration = Duration::from_secs(1);

/// Until when senders wait for others to join (see [`JOIN_WINDOW`]).
static JOIN_UNTIL: Mutex<Option<Instant>> = Mutex::new(None);

/// The sources now ahead, by name. Written by the engine thread once per batch, read by connection tasks once per
/// batch: never per line.
static AHEAD: LazyLock<RwLock<HashSet<Arc<str>>>> = LazyLock::new(RwLock::default);

/// Engine thread: source `name` is (or is no longer) too far ahead.
pub fn set_ahead(name: &Arc<str>, ahead: bool) {
    let known = is_ahead(name);
    if known == ahead {
        return;
    }
    if let Ok(mut set) = AHEAD.write() {
        if ahead {
            set.insert(name.clone());
        } else {
            set.remove(name);
        }
    }
}

/// The sources the engine thread last said were ahead.
pub fn ahead() -> Vec<Arc<str>> {
    AHEAD
        .read()
        .map(|set| set.iter().cloned().collect())
        .unwrap_or_default()
}

pub fn is_ahead(name: &str) -> bool {
    AHEAD.read().is_ok_and(|set| set.contains(name))
}

/// Accept loop: a connection opened while no other was open; senders wait [`JOIN_WINDOW`] for the others.
pub fn open_join_window() {
    if let Ok(mut until) = JOIN_UNTIL.lock() {
        *until = Some(Instant::now() + JOIN_WINDOW);
    }
}

/// Connection task: waits while senders are still joining, then while its source is ahead of the others (the
/// slowest active source catches up, or goes idle and stops being waited for).
pub async fn wait_turn(name: &str) {
    let now = Instant::now();
    let joining = JOIN_UNTIL
        .lock()
        .ok()
        .and_then(|until| *until)
        .filter(|until| *until > now);
    if let Some(until) = joining {
        tokio::time::sleep_until(until.into()).await;
    }
    while is_ahead(name) {
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
