//! The engine at start: restored from the stored snapshot, or empty. A snapshot that cannot be used is said in
//! the log and in `/readyz`, and recorded in the store so that a restart does not forget it, until an operator
//! acknowledges it; it is never passed over with an empty engine alone.

use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::{Engine, EngineConfig};

use crate::health::Health;
use crate::store::Store;

pub struct Restored {
    pub engine: Engine,
    /// The stored snapshot could not be used: the engine starts empty.
    pub snapshot_lost: bool,
}

/// `snapshot`: the engine's bytes from the stored snapshot (without the journal's wrapping), if one was stored.
pub fn restore_or_start(
    snapshot: Option<&[u8]>,
    config: EngineConfig,
    register: ChangeRegister,
    health: &Health,
    store: &Store,
) -> Restored {
    let restored = match snapshot
        .map(|bytes| Engine::restore(bytes, config.clone(), register.clone()))
    {
        None => Ok(Engine::new(config, register)),
        Some(Ok(engine)) => {
            tracing::info!(
                users = engine.user_count(),
                "engine state restored from the last snapshot"
            );
            Ok(engine)
        }
        Some(Err(error)) => {
            tracing::error!(
                %error,
                "the last engine snapshot cannot be used; starting with empty windows, not ready until acknowledged"
            );
            if let Err(failed) = store.record_snapshot_loss(error.to_string()) {
                tracing::error!(error = %failed, "cannot record the lost snapshot in the store");
            }
            Err(Engine::new(config, register))
        }
    };
    match store.snapshot_loss() {
        Ok(Some((reason, at_ms))) => {
            let found = stormwatch_core::rfc3339::format_ms(at_ms).unwrap_or_default();
            health.snapshot_lost_in_store(format!("{reason} (found at start, {found})"));
        }
        Ok(None) => {}
        Err(error) => {
            tracing::error!(%error, "cannot read whether a lost snapshot awaits acknowledgement")
        }
    }
    match restored {
        Ok(engine) => Restored {
            engine,
            snapshot_lost: false,
        },
        Err(engine) => {
            // Said even if the store could not record it.
            if !health.failing(crate::health::Check::SnapshotLost) {
                health.snapshot_lost("engine snapshot is unreadable".to_owned());
            }
            Restored {
                engine,
                snapshot_lost: true,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Check;

    fn start(snapshot: Option<&[u8]>, health: &Health, store: &Store) -> Restored {
        restore_or_start(
            snapshot,
            EngineConfig::default(),
            ChangeRegister::default(),
            health,
            store,
        )
    }

    #[test]
    fn an_unreadable_snapshot_is_reported_until_acknowledged_even_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let health = Health::new(std::time::Duration::from_secs(60));
        health.engine_started();
        let restored = start(Some(b"{\"version\":1,\"users\":[tor"), &health, &store);
        assert!(restored.snapshot_lost);
        assert_eq!(restored.engine.user_count(), 0);
        let problems = health.problems();
        assert_eq!(problems[0].0, Check::SnapshotLost, "{problems:?}");
        assert!(problems[0].1.contains("unreadable"), "{problems:?}");
        // Restarted with a good snapshot (saved since) but nobody acknowledged: still not ready.
        let health = Health::new(std::time::Duration::from_secs(60));
        health.engine_started();
        let good = Engine::new(EngineConfig::default(), ChangeRegister::default())
            .snapshot()
            .unwrap();
        assert!(!start(Some(&good), &health, &store).snapshot_lost);
        assert_eq!(health.problems()[0].0, Check::SnapshotLost);
        store.acknowledge_snapshot_loss().unwrap();
        let health = Health::new(std::time::Duration::from_secs(60));
        health.engine_started();
        start(Some(&good), &health, &store);
        assert!(health.problems().is_empty());
    }

    #[test]
    fn a_good_snapshot_or_none_leaves_the_service_ready() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let health = Health::new(std::time::Duration::from_secs(60));
        health.engine_started();
        let bytes = Engine::new(EngineConfig::default(), ChangeRegister::default())
            .snapshot()
            .unwrap();
        for snapshot in [Some(bytes.as_slice()), None] {
            assert!(!start(snapshot, &health, &store).snapshot_lost);
        }
        assert!(health.problems().is_empty());
    }
}
