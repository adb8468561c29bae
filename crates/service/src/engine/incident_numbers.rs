//! Incident numbers for the engine thread: blocks reserved in the store ahead of need, so the engine never waits
//! on the store to name an incident, and a number once handed out is never handed out again, across restarts
//! and lost snapshots alike (the store starts every block past the last one reserved and every stored ID).
//!
//! The numbering state travels in the engine snapshot, so that replaying the journal after a crash names the
//! incidents it reopens as they were named before; only numbers past every stored incident are new.

use stormwatch_core::engine::Engine;
use stormwatch_core::engine::incident_numbers::IncidentNumbers;

use crate::log_limit::LogLimit;
use crate::store::incident_numbers::PendingNumbers;
use crate::store::{Store, StoreError};

/// Numbers reserved at a time. A restart after a lost snapshot skips what was left of the last block, so IDs
/// may jump by up to this much then; never backwards.
pub const BLOCK: u64 = 256;
/// The next block is asked for once fewer than this many are left: a storm that opens more incidents than this
/// between two ticks (one second) runs past its reservation rather than wait (see `IncidentNumbers::take`).
const LOW_WATER: u64 = BLOCK / 2;

pub struct NumberSupply {
    store: Store,
    pending: Option<PendingNumbers>,
    errors: LogLimit,
}

impl NumberSupply {
    /// Before the engine thread starts (blocking). `snapshot_lost`: the engine could not restore its snapshot,
    /// so the numbers the journal's incidents had are unknown: it numbers from a fresh block, past everything
    /// reserved or stored. Otherwise the engine keeps the snapshot's numbering (or counts from 1 when it starts
    /// empty) until [`NumberSupply::settle`], so the journal replays with the names it had.
    pub fn start(
        store: Store,
        engine: &mut Engine,
        snapshot_lost: bool,
    ) -> Result<NumberSupply, StoreError> {
        if snapshot_lost {
            let block = store.reserve_incident_numbers(0, BLOCK)?;
            tracing::info!(
                from = block.start,
                "the snapshot is lost: incidents are numbered from a fresh block"
            );
            engine.set_incident_numbers(IncidentNumbers::reserved(block));
        }
        Ok(NumberSupply {
            store,
            pending: None,
            errors: LogLimit::new(std::time::Duration::from_secs(60)),
        })
    }

    /// After the journal replay, before the engine serves (once; reads the store, never waits on its writer): from
    /// here on only reserved numbers, past every stored incident (a journal lost after the snapshot leaves stored
    /// incidents the engine never numbered). `true` when the numbering changed: take a snapshot then, so a crash
    /// replays with this numbering. A store that fails here is
    /// retried every tick by [`NumberSupply::top_up`].
    pub fn settle(&mut self, engine: &mut Engine) -> bool {
        let past_stored = match self.store.incident_number_past_stored() {
            Ok(past) => past,
            Err(error) => {
                self.failed(&error);
                return false;
            }
        };
        let before = engine.incident_numbers().clone();
        let mut numbers = before.clone();
        numbers.skip_to(past_stored);
        if !numbers.is_reserved() {
            // An empty reservation: the first block is asked for by the next `top_up`, and incidents opened before
            // it arrives run past it as an overdraft the block then starts after. The engine never waits on a
            // store whose writer is slow (or busy with a long import) to start serving.
            numbers = IncidentNumbers::reserved(numbers.next()..numbers.next());
        }
        tracing::debug!(
            next = numbers.next(),
            left = numbers.left(),
            "incident numbers settled"
        );
        let changed = numbers != before;
        engine.set_incident_numbers(numbers);
        changed
    }

    /// Once a tick on the engine thread: hands over a block that has arrived, and asks for the next one when the
    /// engine runs low. Never waits.
    pub fn top_up(&mut self, engine: &mut Engine) {
        if let Some(pending) = &mut self.pending {
            match pending.try_recv() {
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => return,
                Ok(Ok(block)) => {
                    tracing::debug!(
                        from = block.start,
                        to = block.end,
                        "incident numbers reserved"
                    );
                    engine.add_incident_numbers(block);
                }
                Ok(Err(error)) => self.failed(&error),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    self.failed(&StoreError::Closed)
                }
            }
            self.pending = None;
        }
        let numbers = engine.incident_numbers();
        if !numbers.is_reserved() || numbers.left() < LOW_WATER {
            // From the engine's next number: after an overdraft, the block must start past what it handed out.
            match self
                .store
                .reserve_incident_numbers_later(numbers.next(), BLOCK)
            {
                Ok(pending) => self.pending = Some(pending),
                Err(error) => self.failed(&error),
            }
        }
    }

    fn failed(&mut self, error: &StoreError) {
        if let Some(suppressed) = self.errors.allow() {
            tracing::error!(%error, suppressed, "cannot reserve incident numbers; retrying next second");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::changes::ChangeRegister;
    use stormwatch_core::engine::EngineConfig;

    fn engine() -> Engine {
        Engine::new(EngineConfig::default(), ChangeRegister::default())
    }

    fn wait_for_block(supply: &mut NumberSupply, engine: &mut Engine, at_least: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while engine.incident_numbers().left() < at_least {
            assert!(std::time::Instant::now() < deadline, "no block arrived");
            std::thread::sleep(std::time::Duration::from_millis(10));
            supply.top_up(engine);
        }
    }

    #[test]
    fn a_lost_snapshot_numbers_past_everything_reserved_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut first = engine();
        let mut supply = NumberSupply::start(store.clone(), &mut first, false).unwrap();
        supply.settle(&mut first);
        wait_for_block(&mut supply, &mut first, BLOCK);
        assert_eq!(first.incident_numbers().next(), 1);
        assert!(first.incident_numbers().is_reserved());
        // The snapshot is lost: a fresh engine would count from 1 again.
        let mut second = engine();
        NumberSupply::start(store, &mut second, true).unwrap();
        assert_eq!(second.incident_numbers().next(), BLOCK + 1);
    }

    #[test]
    fn settling_skips_numbers_already_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut engine = engine();
        let mut supply = NumberSupply::start(store.clone(), &mut engine, false).unwrap();
        supply.settle(&mut engine);
        let record = crate::store::tests::record("INC-000009", "90-B3-D5-1F-30-01-00-07", 0, None);
        store.save_incident(record, None).unwrap();
        // As after a restart whose journal was lost: the snapshot says 1, the store holds 9.
        supply.settle(&mut engine);
        assert_eq!(engine.incident_numbers().next(), 10);
    }

    #[test]
    fn the_next_block_is_asked_for_when_low_and_arrives_without_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut engine = engine();
        let mut supply = NumberSupply::start(store, &mut engine, false).unwrap();
        supply.settle(&mut engine);
        wait_for_block(&mut supply, &mut engine, BLOCK);
        supply.top_up(&mut engine);
        assert!(supply.pending.is_none(), "a full block needs no other");
        let mut numbers = engine.incident_numbers().clone();
        for _ in 0..BLOCK - LOW_WATER + 1 {
            numbers.take();
        }
        engine.set_incident_numbers(numbers);
        wait_for_block(&mut supply, &mut engine, BLOCK);
        let mut numbers = engine.incident_numbers().clone();
        let taken: Vec<u64> = (0..BLOCK).map(|_| numbers.take()).collect();
        assert!(taken.windows(2).all(|w| w[1] == w[0] + 1), "{taken:?}");
        assert_eq!(numbers.overdrawn(), 0);
    }

    #[test]
    fn after_an_overdraft_the_next_block_starts_past_what_was_handed_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut engine = engine();
        let mut supply = NumberSupply::start(store, &mut engine, false).unwrap();
        supply.settle(&mut engine);
        wait_for_block(&mut supply, &mut engine, BLOCK);
        let mut numbers = engine.incident_numbers().clone();
        let last = (0..BLOCK + 10).map(|_| numbers.take()).last().unwrap();
        assert_eq!(numbers.overdrawn(), 10);
        engine.set_incident_numbers(numbers);
        wait_for_block(&mut supply, &mut engine, 1);
        let mut numbers = engine.incident_numbers().clone();
        assert_eq!(numbers.take(), last + 1);
    }

    #[test]
    fn settling_asks_for_the_first_block_without_waiting_and_never_reuses_what_ran_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // The first block is still being written (a slow disk) when the engine starts naming incidents.
        store.set_fault_slow_writes(std::time::Duration::from_millis(300));
        let mut engine = engine();
        let mut supply = NumberSupply::start(store, &mut engine, false).unwrap();
        supply.settle(&mut engine);
        assert!(engine.incident_numbers().is_reserved());
        assert_eq!(engine.incident_numbers().left(), 0, "nothing reserved yet");
        supply.top_up(&mut engine);
        let mut numbers = engine.incident_numbers().clone();
        let ahead: Vec<u64> = (0..3).map(|_| numbers.take()).collect();
        assert_eq!(ahead, [1, 2, 3]);
        engine.set_incident_numbers(numbers);
        wait_for_block(&mut supply, &mut engine, 1);
        let mut numbers = engine.incident_numbers().clone();
        assert_eq!(
            numbers.take(),
            4,
            "the block starts past the numbers handed out before it"
        );
    }
}
