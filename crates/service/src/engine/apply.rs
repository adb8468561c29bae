//! Batches in: journalled, applied to the engine, held lines settled, acknowledged streams attached and acknowledged.

use std::sync::Arc;

use super::{BatchOutcome, EngineLoop, SourceKind, wall_ms};
use crate::engine::journal::Journal;
use crate::engine::streams::Attach;
use crate::metrics::Publisher;
use stormwatch_core::engine::{IngestError, Ingested, Settled, SourceId};
use stormwatch_core::telemetry::batch::{LineCursor, ParsedChunk, malformed};

/// Events between two checks of whether the charts need a catch-up feed within a batch: few enough that even a
/// handful of Users cannot move event time by a whole ring in between.
const CHART_CHECK_EVERY: usize = 256;

impl EngineLoop {
    pub(super) fn apply(
        &mut self,
        source: &Arc<str>,
        kind: SourceKind,
        parsed: &ParsedChunk,
    ) -> BatchOutcome {
        let id = self.sources.id(source);
        // Written before it is applied: a crash in between replays it, which is what applying it would have done.
        if let Some(journal) = &mut self.journal
            && !parsed.events.is_empty()
        {
            journal.sourced_batch(id.0, &parsed.data);
        }
        let outcome = self.apply_journalled(source, id, kind, parsed);
        self.sources.pace(&self.engine, Some(source));
        outcome
    }

    /// A connection opened: its source is known (and waited for) before its first batch.
    pub(super) fn source_opened(&mut self, name: &Arc<str>) {
        let id = self.sources.id(name);
        self.engine.set_now_bound(Some(wall_ms()));
        self.engine.source_opened(id);
        self.sources.pace(&self.engine, None);
    }

    /// A connection closed: the watermark stops waiting for its source, and no sender waits for it any more.
    pub(super) fn source_closed(&mut self, name: &Arc<str>) {
        let Some(id) = self.sources.known(name) else {
            return;
        };
        self.engine.source_closed(id);
        crate::pace::set_ahead(name, false);
        self.sources.pace(&self.engine, None);
        self.settle_held();
        self.handle_updates();
    }

    /// A connection takes over an acknowledged stream. Its position is made durable before it is told, so a
    /// sender never drops lines the service could still lose to a power cut.
    pub(super) fn attach(&mut self, attach: Attach) {
        if let Some(journal) = &mut self.journal {
            journal.sync();
        }
        let attached = self.streams.attach(&attach.name, attach.acks);
        if let Ok(attached) = &attached {
            tracing::info!(stream = %attach.name, position = attached.position, "acknowledged stream attached");
        }
        let _ = attach.reply.send(attached);
    }

    /// Syncs the journal when due, and then tells acknowledged streams what is durable.
    pub(super) fn acknowledge_durable(&mut self) {
        let durable = self.journal.as_mut().is_none_or(Journal::sync_if_due);
        if durable {
            self.streams.acknowledge();
        }
    }

    /// Applies a batch already journalled, from event-time source `id` (named `source`).
    pub(super) fn apply_journalled(
        &mut self,
        source: &Arc<str>,
        id: SourceId,
        kind: SourceKind,
        parsed: &ParsedChunk,
    ) -> BatchOutcome {
        let mut outcome = BatchOutcome {
            accepted: 0,
            malformed: parsed.malformed.len() as u64,
            refused: 0,
        };
        self.engine.set_now_bound(Some(wall_ms()));
        let (mut unknown, mut out_of_range) = (0, 0);
        let mut lines = LineCursor::default();
        for (index, event) in parsed.events.iter().enumerate() {
            if index % CHART_CHECK_EVERY == CHART_CHECK_EVERY - 1 {
                self.catch_up_charts();
            }
            match self.engine.ingest_from(id, event) {
                Ok(Ingested::Taken) => outcome.accepted += 1,
                Ok(Ingested::Held(token)) => {
                    // Counted as accepted; if the engine refuses it later it is kept as malformed then.
                    outcome.accepted += 1;
                    let (line, bytes) = parsed.line_at(index, &mut lines);
                    self.held.insert(token, source, line, bytes);
                }
                Err(refused) => {
                    let (line, bytes) = parsed.line_at(index, &mut lines);
                    let record = malformed(0, line, refused.to_string(), bytes);
                    outcome.refused += 1;
                    match refused {
                        // A line past the network's time is bad input, listed with the malformed ones.
                        IngestError::OutOfRange { .. } => {
                            out_of_range += 1;
                            self.malformed.keep(source, &record);
                        }
                        IngestError::UnknownUser(_) => {
                            unknown += 1;
                            self.malformed.refuse(source, &record);
                        }
                        IngestError::UserTableFull(_) => self.malformed.refuse(source, &record),
                    }
                }
            }
        }
        for bad in &parsed.malformed {
            self.malformed.keep(source, bad);
        }
        self.settle_held();
        if outcome.accepted > 0 {
            self.last_event_wall = Some(wall_ms());
        }
        // Published before the lines are counted or the sender answered: whoever sees them applied sees them in
        // the published state too (when the engine has caught up and publishing is not rationed).
        self.publish_pending = true;
        if self.input_idle {
            self.publish_when_allowed();
        }
        self.publisher
            .count_batch(kind.label(), outcome.accepted, outcome.malformed);
        if outcome.refused > 0 {
            Publisher::count_refused(
                kind.label(),
                unknown,
                out_of_range,
                outcome.refused - unknown - out_of_range,
            );
        }
        self.handle_updates();
        self.catch_up_charts();
        outcome
    }

    /// A batch done with: its memory goes back to whoever reuses it (held lines keep copies of their bytes).
    pub(super) fn give_back(&mut self, parsed: ParsedChunk) {
        if let Some(spent) = &mut self.spent {
            spent(parsed);
        }
    }

    /// Keeps the held lines the engine refused as malformed, and forgets those it placed.
    pub(super) fn settle_held(&mut self) {
        let (held, malformed_log) = (&mut self.held, &mut self.malformed);
        for outcome in self.engine.drain_settled() {
            match outcome {
                Settled::Released(token) => held.release(token),
                Settled::Refused(token, error) => held.refuse(token, |line| {
                    let record = malformed(0, line.line, error.to_string(), line.bytes);
                    malformed_log.keep(line.source.map_or("", |source| source), &record);
                }),
            }
        }
    }
}
