//! Incident numbers for the engine thread: blocks reserved in the store ahead of need, so the engine never waits
//! on the store to name an incident, and a number once handed out is never handed out again, across restarts
//! and lost snapshots alike (the store starts every block past the last one reserved and every stored ID).

use stormwatch_core::engine::Engine;
use stormwatch_core::engine::incident_numbers::IncidentNumbers;

use crate::log_limit::LogLimit;
use crate::store::incident_numbers::PendingNumbers;
use crate::store::{Store, StoreError};

/// Numbers reserved at a time. A restart skips what was left of the last block, so IDs may jump by up to this
/// much after one; never backwards.
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
    /// Reserves the first block (blocking: this runs before the engine thread starts) and makes `engine` number
    /// its incidents from it, whatever its snapshot counted to.
    pub fn start(store: Store, engine: &mut Engine) -> Result<NumberSupply, StoreError> {
        let first = store.reserve_incident_numbers(0, BLOCK)?;
        tracing::debug!(
            from = first.start,
            to = first.end,
            "incident numbers reserved"
        );
        engine.set_incident_numbers(IncidentNumbers::reserved(first));
        Ok(NumberSupply {
            store,
            pending: None,
            errors: LogLimit::new(std::time::Duration::from_secs(60)),
        })
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
        if numbers.left() < LOW_WATER {
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
    fn a_restarted_engine_numbers_past_everything_reserved_before() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut first = engine();
        NumberSupply::start(store.clone(), &mut first).unwrap();
        assert_eq!(first.incident_numbers().next(), 1);
        // A restart (or a lost snapshot) starts a fresh engine, which would count from 1 again.
        let mut second = engine();
        NumberSupply::start(store, &mut second).unwrap();
        assert_eq!(second.incident_numbers().next(), BLOCK + 1);
    }

    #[test]
    fn the_next_block_is_asked_for_when_low_and_arrives_without_a_wait() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut engine = engine();
        let mut supply = NumberSupply::start(store, &mut engine).unwrap();
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
        let mut supply = NumberSupply::start(store, &mut engine).unwrap();
        let mut numbers = engine.incident_numbers().clone();
        let last = (0..BLOCK + 10).map(|_| numbers.take()).last().unwrap();
        assert_eq!(numbers.overdrawn(), 10);
        engine.set_incident_numbers(numbers);
        wait_for_block(&mut supply, &mut engine, 1);
        let mut numbers = engine.incident_numbers().clone();
        assert_eq!(numbers.take(), last + 1);
    }
}
