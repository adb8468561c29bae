//! Watermark alignment: a source running too far ahead of the engine's watermark waits before it hands the engine
//! more, so a sender flushing flat out cannot outrun the slowest active one by more than the engine can hold
//! (Flink's watermark alignment). The engine thread says which sources are ahead; connection tasks wait on it.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, RwLock};
use std::time::Duration;

/// Milliseconds of event time a source may run ahead of the slowest source the watermark waits for before it waits.
pub const ALIGN_AHEAD_MS: i64 = 30_000;
/// How long a waiting source sleeps between looks.
const LOOK_EVERY: Duration = Duration::from_millis(5);

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

/// Connection task: waits while its source is ahead of the others (the slowest active source catches up, or
/// goes idle and stops being waited for).
pub async fn wait_turn(name: &str) {
    while is_ahead(name) {
        tokio::time::sleep(LOOK_EVERY).await;
    }
}
