//! State saved and restored: journal replay at start, snapshots (and the journal restart and log checkpoints they
//! allow), and the rebuild from empty after a rebalance.

use std::time::Instant;

use super::{EngineLoop, wall_ms};
use crate::engine::journal::{self, Entry, Finding, wrap_snapshot};
use stormwatch_core::engine::{Engine, SourceId};
use stormwatch_core::telemetry::batch::parse_chunk;
use stormwatch_core::telemetry::framing::Chunk;

impl EngineLoop {
    /// Applies the journal found at start, quietly: what it opens or resolves is stored, but nobody is paged
    /// again about what was already raised before the crash.
    pub(super) fn replay_journal(&mut self) {
        let finding = self.journal_finding.take();
        if let (Some(finding), Some(journal)) = (&finding, &self.journal) {
            journal::report(journal.path(), finding);
            // A journal newer than a snapshot that could not be read is that same loss, which `snapshot_lost`
            // holds on /readyz until acknowledged: it is noted there, not failed twice.
            let same_loss = matches!(finding, journal::Finding::Newer { .. })
                && self.health.failing(crate::health::Check::SnapshotLost);
            self.health
                .journal_found(finding.describe(), finding.loses_data() && !same_loss);
        }
        // Sources numbered before the restart (in the snapshot or the journal) keep their numbers to themselves.
        self.sources.continue_after(&self.engine);
        let entries = std::mem::take(&mut self.to_replay);
        if entries.is_empty() {
            return;
        }
        let (mut batches, mut events) = (0u64, 0u64);
        let quiet = std::mem::replace(&mut self.quiet, true);
        self.engine.set_now_bound(Some(wall_ms()));
        for entry in &entries {
            let lines = match entry {
                Entry::Batch(lines) => Some((SourceId::DEFAULT, lines)),
                Entry::SourcedBatch { source, lines } => Some((SourceId(*source), lines)),
                Entry::Stream {
                    name,
                    through,
                    lines,
                } => {
                    self.streams.set_position(name, *through);
                    Some((self.sources.stream_id(name), lines))
                }
                Entry::Advance(_) => None,
            };
            if let Some((source, lines)) = lines {
                let parsed = parse_chunk(
                    0,
                    Chunk::Lines {
                        first_line: 1,
                        data: lines.clone(),
                    },
                );
                for event in &parsed.events {
                    events += u64::from(self.engine.ingest_from(source, event).is_ok());
                }
                batches += 1;
            }
            match entry {
                Entry::Batch(_) | Entry::SourcedBatch { .. } | Entry::Stream { .. } => {}
                Entry::Advance(to_ms) => self.engine.advance_to(*to_ms),
            }
            self.handle_updates();
        }
        self.quiet = quiet;
        self.engine.sources_disconnected();
        self.sources.continue_after(&self.engine);
        // Refusals of replayed lines were kept as malformed when they first arrived.
        self.engine.drain_settled().for_each(drop);
        self.last_event_wall = self.engine.max_ts().map(|_| wall_ms());
        if finding.as_ref().is_some_and(Finding::loses_data) {
            tracing::warn!(
                batches,
                events,
                "journal replayed as far as it could be read: the engine is missing what the damage held"
            );
        } else {
            tracing::info!(
                batches,
                events,
                "journal replayed: the engine is where it was when the service stopped"
            );
        }
    }

    pub(super) fn rebuild(&mut self) {
        let config = self.engine.config().clone();
        let changes = self.engine.changes().clone();
        // The directory is configuration, not state: a rebuilt engine that forgot it let every made-up User in.
        let directory = self.engine.directory().cloned();
        let numbers = self.engine.incident_numbers().clone();
        self.engine = Engine::new(config, changes);
        self.engine.set_directory(directory);
        // Numbers already handed out stay handed out.
        self.engine.set_incident_numbers(numbers);
        // Tokens start again with the new engine; its predecessor's held lines belong to the previous owner.
        self.held.clear();
        self.publisher.forget_users();
        self.written.clear();
        self.charts.clear();
        self.positions.clear();
        self.last_event_wall = None;
        // The new engine has moved no event time yet: a gap it reaches again (the log's end, as before the
        // rebalance) must close its open seconds again.
        self.idle_advanced_to = i64::MIN;
        self.evicted_logged = 0;
        self.quiet = true;
        tracing::info!("engine state cleared for a rebuild from the log");
    }

    pub(super) fn snapshot(&mut self) {
        self.save_snapshot(true);
    }

    /// `settles_journal`: a saved snapshot ends the readiness failure of a damaged journal found at start.
    pub(super) fn save_snapshot(&mut self, settles_journal: bool) {
        self.last_snapshot = Instant::now();
        match self.engine.snapshot() {
            Ok(bytes) => {
                let next = self.journal.as_ref().map(|j| j.generation() + 1);
                let bytes = match next {
                    Some(generation) => {
                        wrap_snapshot(generation, &self.streams.positions(), &bytes)
                    }
                    None => bytes,
                };
                // Saving is synchronous: once it returns, the snapshot holds every batch before the positions.
                let saved = self.persistence.save_snapshot(bytes);
                self.health.snapshot_saved(saved);
                if saved && let (Some(journal), Some(generation)) = (&mut self.journal, next) {
                    match journal.restart(generation) {
                        Ok(()) if settles_journal => self.health.journal_settled(),
                        Ok(()) => {}
                        Err(error) => {
                            // Later batches would go to the old generation, which the next start drops as
                            // older than the snapshot: readiness fails until a snapshot restarts it.
                            self.health.snapshot_saved(false);
                            tracing::error!(%error, "cannot restart the journal after a snapshot")
                        }
                    }
                }
                if saved
                    && let Some(checkpoints) = &self.checkpoints
                    && !self.positions.is_empty()
                {
                    let _ = checkpoints.send(self.positions.clone());
                }
            }
            Err(error) => {
                self.health.snapshot_saved(false);
                tracing::error!(%error, "engine snapshot failed");
            }
        }
    }
}
