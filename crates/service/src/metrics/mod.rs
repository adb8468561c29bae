//! Prometheus metrics: names, the recorder, and the per-tick publication of engine gauges (the per-User series
//! are `user_series.rs`). Nothing here runs per event; handles are registered once and cached.

pub mod user_series;

use std::collections::HashMap;

use metrics::{Counter, Gauge, counter, gauge};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use stormwatch_core::engine::Engine;
use stormwatch_core::incident::IncidentKind;
use stormwatch_core::report::IncidentRecord;

pub use crate::metrics::user_series::{
    BACKLOG_AGE, CLOCK_OFFSET, DELIVERING, DEPTH, FLOW_BASELINE, FLOW_RATE, FLOW_RATIO, WATCH,
};

pub const LINES: &str = "stormwatch_ingest_lines_total";
pub const MALFORMED: &str = "stormwatch_ingest_malformed_total";
pub const REFUSED: &str = "stormwatch_ingest_refused_total";
pub const LATE: &str = "stormwatch_ingest_late_total";
pub const EVENTS: &str = "stormwatch_ingest_events_total";
pub const OPEN_INCIDENTS: &str = "stormwatch_open_incidents";
pub const INCIDENTS: &str = "stormwatch_incidents_total";
pub const LAG: &str = "stormwatch_engine_lag_seconds";
pub const WATERMARK: &str = "stormwatch_watermark_timestamp_seconds";
pub const LATENCY: &str = "stormwatch_ingest_latency_seconds";
pub const USERS: &str = "stormwatch_users";
pub const USERS_EVICTED: &str = "stormwatch_users_evicted_total";
pub const OUT_OF_RANGE: &str = "stormwatch_ingest_out_of_range_total";
pub const HELD: &str = "stormwatch_ingest_held_lines";
pub const SOURCE_BEHIND: &str = "stormwatch_source_behind_seconds";
pub const SOURCE_WAITED_FOR: &str = "stormwatch_source_waited_for";
pub const SOURCE_CLOCK_OFFSETS: &str = "stormwatch_source_clock_offsets";
pub const SOURCE_LATE: &str = "stormwatch_source_late_lines_total";
pub const BUILD_INFO: &str = "stormwatch_build_info";
pub const REPLAY_MODE: &str = "stormwatch_replay_mode";
pub const CONNECTIONS: &str = "stormwatch_connections";
pub const CONNECTIONS_REFUSED: &str = "stormwatch_connections_refused_total";
pub const AUTH_FAILURES: &str = "stormwatch_auth_failures_total";
pub const QUARANTINE_WRITE_ERRORS: &str = "stormwatch_quarantine_write_errors_total";
pub const JOURNAL_WRITE_ERRORS: &str = "stormwatch_journal_write_errors_total";
pub const JOURNAL_DAMAGE: &str = "stormwatch_journal_damage_total";
pub const SUPERSEDED: &str = "stormwatch_ingest_superseded_lines_total";
pub const JOURNAL_LOST_FRAMES: &str = "stormwatch_journal_lost_batches_total";
pub const HEALTH_CHECK: &str = "stormwatch_health_check";
pub const ENGINE_TICK_AGE: &str = "stormwatch_engine_tick_age_seconds";
pub const STORE_QUEUE_DEPTH: &str = "stormwatch_store_queue_depth";
pub const STORE_QUEUE_OLDEST_AGE: &str = "stormwatch_store_queue_oldest_seconds";
pub const STORE_QUEUE_COALESCED: &str = "stormwatch_store_queue_coalesced_total";
pub const STORE_ENGINE_WAITS: &str = "stormwatch_store_engine_waits_total";
pub const STORE_ENGINE_WAIT_SECONDS: &str = "stormwatch_store_engine_waited_seconds";

/// Publishes `replay_mode` (the setting), which the shipped rules read to tell an ended replay from a blind service.
pub fn replay_mode(on: bool) {
    gauge!(REPLAY_MODE).set(if on { 1.0 } else { 0.0 });
}

/// Installs the global recorder; `/metrics` renders through the returned handle.
pub fn install() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new().install_recorder()?;
    describe();
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(LINES, "Valid telemetry lines ingested, by source");
    describe_counter!(
        MALFORMED,
        "Malformed telemetry lines quarantined, by source"
    );
    describe_counter!(
        REFUSED,
        "Valid lines the engine refused (quarantined, not malformed), by source and reason: unknown_user (not in \
         the User directory), user_table_full, out_of_range (event time far ahead of the network's; listed with the \
         malformed lines)"
    );
    describe_counter!(
        EVENTS,
        "Lines the engine has counted, on time or late (kept across restarts by the snapshot and journal): once no \
         line is held, every line accepted and not refused"
    );
    describe_counter!(
        LATE,
        "Lines that arrived after the allowed lateness (still applied to queue depth)"
    );
    describe_gauge!(
        SOURCE_BEHIND,
        Unit::Seconds,
        "How far an event-time source (connection, stream, HTTP sender, file, topic) trails the newest one"
    );
    describe_gauge!(
        SOURCE_WAITED_FOR,
        "1 while the watermark waits for the source; 0 once it is idle or too far behind (its lines are then late)"
    );
    describe_counter!(
        SOURCE_LATE,
        "Lines of an event-time source counted late (arrived after their seconds had closed), since the service \
         started"
    );
    describe_gauge!(
        SOURCE_CLOCK_OFFSETS,
        "Exporter clocks of the source (User and requests, queue or depth lines) running at a recognised offset"
    );
    describe_gauge!(CONNECTIONS, "Open connections, by listener (http, tcp)");
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections refused or closed early, by listener and reason (cap, peer_cap, unauthenticated_evicted, auth, \
         tls, idle, accept_error)"
    );
    describe_counter!(
        AUTH_FAILURES,
        "Failed authentications, by listener (http, tcp) and reason (missing, malformed, unknown, wrong_role)"
    );
    describe_counter!(
        QUARANTINE_WRITE_ERRORS,
        "Failed writes to the quarantine file (the lines stay counted and listed in memory)"
    );
    describe_counter!(
        JOURNAL_WRITE_ERRORS,
        "Failed writes to the engine journal (a crash would then lose what was applied since the last snapshot)"
    );
    describe_counter!(
        JOURNAL_DAMAGE,
        "Damage found in the engine journal at start, by kind (torn_tail, corrupt, missing, unreadable, newer_than_snapshot)"
    );
    describe_counter!(
        SUPERSEDED,
        "Lines of an acknowledged TCP stream refused because a newer connection took the stream over (the sender resends them from the position it was given)"
    );
    describe_counter!(
        JOURNAL_LOST_FRAMES,
        "Journal batches known lost to damage in the middle of the journal (gaps in its sequence numbers)"
    );
    describe_gauge!(
        HEALTH_CHECK,
        "1 while a readiness check passes, 0 while it fails (check: restoring, engine_tick, snapshot, store, \
         store_queue)"
    );
    describe_gauge!(
        ENGINE_TICK_AGE,
        Unit::Seconds,
        "Time since the engine thread last finished its once-a-second tick"
    );
    describe_gauge!(
        STORE_QUEUE_DEPTH,
        "The engine's writes (distinct incidents and charts, a snapshot) waiting for the store's writer"
    );
    describe_gauge!(
        STORE_QUEUE_OLDEST_AGE,
        Unit::Seconds,
        "How long the oldest write waiting for the store's writer has waited (0 when none waits)"
    );
    describe_counter!(
        STORE_QUEUE_COALESCED,
        "Engine writes replaced by a newer version of the same incident or chart before the writer took them"
    );
    describe_counter!(
        STORE_ENGINE_WAITS,
        "Times the engine thread waited on the store: for its snapshot to be written, or for room in a full queue"
    );
    describe_gauge!(
        STORE_ENGINE_WAIT_SECONDS,
        Unit::Seconds,
        "Time the engine thread has spent waiting on the store in all"
    );
    describe_gauge!(OPEN_INCIDENTS, "Open incidents by user, kind and verdict");
    describe_counter!(INCIDENTS, "Incidents opened, by kind");
    describe_gauge!(
        LAG,
        Unit::Seconds,
        "Wall clock minus the event-time watermark"
    );
    describe_gauge!(
        WATERMARK,
        Unit::Seconds,
        "Event time up to which seconds are closed"
    );
    describe_gauge!(
        LATENCY,
        Unit::Seconds,
        "Ingest-to-window latency quantiles (received to applied)"
    );
    describe_gauge!(USERS, "Users tracked");
    describe_counter!(
        USERS_EVICTED,
        "Users evicted from memory after evict_idle_after_s of event time without a line (their per-User series \
         leave /metrics)"
    );
    describe_counter!(
        OUT_OF_RANGE,
        "Lines refused because their event time was far ahead of network event time (also counted as malformed)"
    );
    describe_gauge!(
        HELD,
        "Lines held while their event time is in doubt (a skewed clock being recognised, or a far-future line)"
    );
    describe_gauge!(BUILD_INFO, "Build information");
    describe_gauge!(
        REPLAY_MODE,
        "1 when the feed is recorded history (serve --replay-mode): a finished feed has ended, it is not blind"
    );
}

/// Publishes engine state as gauges, once per tick.
#[derive(Default)]
pub struct Publisher {
    /// The per-User samples' spare buffer (see [`user_series::publish`]).
    samples: Vec<user_series::Sample>,
    open: HashMap<(String, IncidentKind, &'static str), Gauge>,
    lines: HashMap<&'static str, (Counter, Counter)>,
    /// Event-time sources shown at the last tick.
    sources: Vec<String>,
}

impl Publisher {
    /// Counts a batch (once per batch, not per event).
    pub fn count_batch(&mut self, source: &'static str, lines: u64, malformed: u64) {
        let (valid, bad) = self.lines.entry(source).or_insert_with(|| {
            (
                counter!(LINES, "source" => source),
                counter!(MALFORMED, "source" => source),
            )
        });
        valid.increment(lines);
        bad.increment(malformed);
    }

    /// Lines refused from a connection that lost its acknowledged stream to a newer one (rare: reconnects).
    pub fn count_superseded(lines: u64) {
        counter!(SUPERSEDED).increment(lines);
    }

    /// Refusals are rare (a flood of made-up Users at worst): plain macros, no cached handles.
    pub fn count_refused(
        source: &'static str,
        unknown_user: u64,
        out_of_range: u64,
        table_full: u64,
    ) {
        counter!(REFUSED, "source" => source, "reason" => "unknown_user").increment(unknown_user);
        counter!(REFUSED, "source" => source, "reason" => "out_of_range").increment(out_of_range);
        counter!(REFUSED, "source" => source, "reason" => "user_table_full").increment(table_full);
    }

    /// Once a tick: per event-time source, how far it trails the newest, whether the watermark waits for it, and
    /// how many of its exporter clocks run at an offset. A source forgotten since the last tick reads 0 and 0.
    pub fn sources(&mut self, rows: &[crate::engine::sources::SourceRow]) {
        let names: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.source.as_str()).collect();
        for gone in self.sources.iter().filter(|s| !names.contains(s.as_str())) {
            gauge!(SOURCE_BEHIND, "source" => gone.clone()).set(0.0);
            gauge!(SOURCE_WAITED_FOR, "source" => gone.clone()).set(0.0);
        }
        self.sources = names.iter().map(|n| n.to_string()).collect();
        for row in rows {
            gauge!(SOURCE_BEHIND, "source" => row.source.clone()).set(row.behind_s);
            gauge!(SOURCE_WAITED_FOR, "source" => row.source.clone())
                .set(f64::from(u8::from(row.waited_for)));
            gauge!(SOURCE_CLOCK_OFFSETS, "source" => row.source.clone())
                .set(row.offsets.len() as f64);
            counter!(SOURCE_LATE, "source" => row.source.clone()).absolute(row.late_lines);
        }
    }

    pub fn tick(
        &mut self,
        engine: &Engine,
        open: &[IncidentRecord],
        lag_s: f64,
        latency: [(&'static str, f64); 3],
    ) {
        user_series::publish(engine, &mut self.samples);
        for gauge in self.open.values() {
            gauge.set(0.0);
        }
        for incident in open {
            let key = (
                incident.user.clone(),
                incident.kind,
                incident.verdict.as_str(),
            );
            let gauge = self.open.entry(key).or_insert_with(|| {
                gauge!(OPEN_INCIDENTS, "user" => incident.user.clone(), "kind" => incident.kind.as_str(), "verdict" => incident.verdict.as_str())
            });
            gauge.increment(1.0);
        }
        let stats = engine.stats();
        counter!(LATE).absolute(stats.late);
        counter!(EVENTS).absolute(stats.events);
        counter!(OUT_OF_RANGE).absolute(engine.out_of_range());
        gauge!(HELD).set(engine.held_lines() as f64);
        gauge!(USERS).set(engine.user_count() as f64);
        counter!(USERS_EVICTED).absolute(engine.evicted_total());
        gauge!(LAG).set(lag_s);
        if let Some(watermark) = engine.watermark_ms() {
            gauge!(WATERMARK).set(watermark as f64 / 1000.0);
        }
        for (quantile, seconds) in latency {
            gauge!(LATENCY, "quantile" => quantile).set(seconds);
        }
    }

    /// The engine was rebuilt with other Users (a Kafka rebalance): the old Users' series go at once.
    pub fn forget_users(&mut self) {
        user_series::clear();
    }

    pub fn incident_opened(kind: IncidentKind) {
        counter!(INCIDENTS, "kind" => kind.as_str()).increment(1);
    }
}
