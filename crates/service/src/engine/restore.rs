//! The engine at start: restored from the stored snapshot, or empty. A snapshot that cannot be used is said in
//! the log and in `/readyz` (until an operator acknowledges it), never passed over with an empty engine alone.

use stormwatch_core::changes::ChangeRegister;
use stormwatch_core::engine::{Engine, EngineConfig};

use crate::health::Health;

/// `snapshot`: the engine's bytes from the stored snapshot (without the journal's wrapping), if one was stored.
pub fn restore_or_start(
    snapshot: Option<&[u8]>,
    config: EngineConfig,
    register: ChangeRegister,
    health: &Health,
) -> Engine {
    let Some(bytes) = snapshot else {
        return Engine::new(config, register);
    };
    match Engine::restore(bytes, config.clone(), register.clone()) {
        Ok(engine) => {
            tracing::info!(
                users = engine.user_count(),
                "engine state restored from the last snapshot"
            );
            engine
        }
        Err(error) => {
            tracing::error!(
                %error,
                "the last engine snapshot cannot be used; starting with empty windows, not ready until acknowledged"
            );
            health.snapshot_lost(error.to_string());
            Engine::new(config, register)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Check;

    #[test]
    fn an_unreadable_snapshot_starts_empty_and_is_reported_until_acknowledged() {
        let health = Health::new(std::time::Duration::from_secs(60));
        health.engine_started();
        let engine = restore_or_start(
            Some(b"{\"version\":1,\"users\":[tor"),
            EngineConfig::default(),
            ChangeRegister::default(),
            &health,
        );
        assert_eq!(engine.user_count(), 0);
        let problems = health.problems();
        assert_eq!(problems[0].0, Check::SnapshotLost, "{problems:?}");
        assert!(problems[0].1.contains("unreadable"), "{problems:?}");
    }

    #[test]
    fn a_good_snapshot_or_none_leaves_the_service_ready() {
        let health = Health::new(std::time::Duration::from_secs(60));
        health.engine_started();
        let bytes = Engine::new(EngineConfig::default(), ChangeRegister::default())
            .snapshot()
            .unwrap();
        for snapshot in [Some(bytes.as_slice()), None] {
            restore_or_start(
                snapshot,
                EngineConfig::default(),
                ChangeRegister::default(),
                &health,
            );
        }
        assert!(health.problems().is_empty());
    }
}
