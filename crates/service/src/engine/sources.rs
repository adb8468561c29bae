//! Which sender is which event-time source: each TCP connection, acknowledged stream, HTTP sender, followed file
//! and Kafka topic is numbered for the engine's clock (which keeps a frontier per source and waits for the
//! slowest active one), shown with its name, and warned about when it falls too far behind to be waited for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use stormwatch_core::engine::{Engine, SourceId};

/// The source name of acknowledged stream `stream`.
pub fn stream_name(stream: &str) -> String {
    format!("stream:{stream}")
}

/// A name unused this long is forgotten (its number is not reused).
const FORGET_AFTER: Duration = Duration::from_secs(3_600);
/// One warning per source per this long while it stays behind.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// One source as `GET /api/v1/sources` and the metrics show it.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SourceRow {
    pub source: String,
    /// Event time (ms) the source has reached.
    pub event_time_ms: Option<i64>,
    /// Seconds its event time trails the newest source's.
    pub behind_s: f64,
    /// Seconds the watermark waits for its slowest exporter clock.
    pub lag_s: f64,
    /// The watermark waits for it (false once idle, or too far behind: its lines are then late).
    pub waited_for: bool,
    /// Its lines counted late since the service started (arrived after their seconds had closed).
    pub late_lines: u64,
    /// Its exporter clocks running at an offset.
    pub offsets: Vec<OffsetRow>,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct OffsetRow {
    pub user: String,
    /// `requests`, `queue` or `depth`: which of the User's lines this clock stamps.
    pub lines: &'static str,
    pub offset_s: f64,
}

/// Connections that opened, told to the engine thread beside its bounded queue rather than through it. A sender
/// registered through the queue waited behind the batches of senders already flushing (their parser threads keep
/// it full): 8 to 20 ms when measured, in which a flushing sender handed over minutes of event time
/// and closed the seconds the new sender's first lines belonged to. The engine thread takes these before every
/// input it handles, so a connection's registration always precedes its first batch (and its close).
#[derive(Default)]
pub struct Openings {
    pending: AtomicBool,
    names: Mutex<Vec<Arc<str>>>,
}

impl Openings {
    /// Connection task (or the accept loop): source `name` opened.
    pub fn opened(&self, name: Arc<str>) {
        if let Ok(mut names) = self.names.lock() {
            names.push(name);
            self.pending.store(true, Ordering::Release);
        }
    }

    /// Engine thread: the sources opened since the last call (none, without taking the lock, almost always).
    pub fn take(&self) -> Vec<Arc<str>> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        self.names
            .lock()
            .map(|mut names| std::mem::take(&mut *names))
            .unwrap_or_default()
    }
}

#[derive(Default)]
pub struct SourceNames {
    ids: HashMap<Arc<str>, (SourceId, Instant)>,
    names: HashMap<SourceId, Arc<str>>,
    next: u32,
    warned: HashMap<SourceId, Warned>,
}

/// The last warning about a source: when, and its late lines then.
struct Warned {
    at: Option<Instant>,
    late_lines: u64,
}

impl SourceNames {
    /// The number of source `name`, given on its first batch.
    pub fn id(&mut self, name: &Arc<str>) -> SourceId {
        let now = Instant::now();
        if let Some((id, used)) = self.ids.get_mut(name) {
            *used = now;
            return *id;
        }
        self.next = self.next.max(1);
        let id = SourceId(self.next);
        self.next += 1;
        self.ids.insert(name.clone(), (id, now));
        self.names.insert(id, name.clone());
        id
    }

    /// The number of source `name`, if it sent a batch.
    pub fn known(&self, name: &str) -> Option<SourceId> {
        self.ids.get(name).map(|(id, _)| *id)
    }

    /// The number of an acknowledged stream: the stream, not the connection that carries it, is the exporter.
    pub fn stream_id(&mut self, stream: &str) -> SourceId {
        self.id(&Arc::from(stream_name(stream)))
    }

    /// After a batch from `name` (and at every tick): which sources run so far ahead of the slowest source the
    /// watermark waits for that their senders should wait ([`crate::pace`]). The slowest is never told to wait, so
    /// waiting cannot lock everyone up. Only the batch's source and those already waiting are looked at.
    pub fn pace(&mut self, engine: &Engine, name: Option<&Arc<str>>) {
        let views = engine.sources();
        let Some(slowest) = views
            .iter()
            .filter(|v| v.active)
            .filter_map(|v| v.frontier_ms)
            .min()
        else {
            return;
        };
        let ahead = |id: SourceId| {
            views
                .iter()
                .find(|v| v.source == id)
                .and_then(|v| v.frontier_ms)
                .is_some_and(|f| f - slowest > crate::pace::ALIGN_AHEAD_MS)
        };
        for waiting in crate::pace::ahead() {
            let ahead = self.ids.get(&waiting).is_some_and(|(id, _)| ahead(*id));
            crate::pace::set_ahead(&waiting, ahead);
        }
        if let Some(name) = name
            && let Some((id, _)) = self.ids.get(name)
        {
            crate::pace::set_ahead(name, ahead(*id));
        }
    }

    /// New numbers start after every number the engine already knows (from a snapshot or the journal).
    pub fn continue_after(&mut self, engine: &Engine) {
        let known = engine
            .sources()
            .iter()
            .map(|s| s.source.0)
            .max()
            .unwrap_or(0);
        self.next = self.next.max(known + 1);
    }

    /// Once a tick: every source the engine has, with its name, and a warning (at most one a minute each) for a
    /// source let go as too far behind, or whose lines were counted late since the last one. Only those: a closed
    /// or idle connection is not waited for either, and warning about every sender that finished (as before) hid
    /// the one whose lines were late.
    pub fn rows(&mut self, engine: &Engine) -> Vec<SourceRow> {
        let now = Instant::now();
        self.ids
            .retain(|_, (_, used)| now.duration_since(*used) < FORGET_AFTER);
        let live: Vec<SourceId> = self.ids.values().map(|(id, _)| *id).collect();
        self.names.retain(|id, _| live.contains(id));
        let offsets = engine.stamp_offsets();
        let views = engine.sources();
        self.warned
            .retain(|id, _| views.iter().any(|v| v.source == *id));
        let mut rows = Vec::new();
        for view in views {
            let name = match self.names.get(&view.source) {
                Some(name) => name.to_string(),
                None if view.source == SourceId::DEFAULT => "journal".to_owned(),
                None => format!("source {}", view.source.0),
            };
            let warned = self.warned.entry(view.source).or_insert(Warned {
                at: None,
                late_lines: 0,
            });
            let late_lines = view.late_lines.saturating_sub(warned.late_lines);
            let due = warned
                .at
                .is_none_or(|at| now.duration_since(at) >= WARN_EVERY);
            if due && (view.too_far_behind || late_lines > 0) {
                warned.at = Some(now);
                warned.late_lines = view.late_lines;
                if view.too_far_behind {
                    tracing::warn!(
                        source = %name,
                        behind_s = view.behind_ms / 1000,
                        late_lines,
                        "a telemetry source is too far behind the others to be waited for: its lines count as \
                         late where their seconds have closed (an exporter flushing a backlog, or a clock stepped \
                         back)"
                    );
                } else {
                    tracing::warn!(
                        source = %name,
                        behind_s = view.behind_ms / 1000,
                        late_lines,
                        "a telemetry source is too far behind: lines of it arrived after their seconds had closed \
                         and count as late (a sender that connected after the others had passed its time, a \
                         backfill, or an exporter behind by more than the allowed lateness)"
                    );
                }
            }
            rows.push(SourceRow {
                source: name,
                event_time_ms: view.frontier_ms,
                behind_s: view.behind_ms as f64 / 1000.0,
                lag_s: view.lag_ms as f64 / 1000.0,
                waited_for: view.active,
                late_lines: view.late_lines,
                offsets: offsets
                    .iter()
                    .filter(|o| o.source == view.source)
                    .map(|o| OffsetRow {
                        user: o.user.to_string(),
                        lines: o.stamper.as_str(),
                        offset_s: o.offset_ms as f64 / 1000.0,
                    })
                    .collect(),
            });
        }
        rows
    }
}
