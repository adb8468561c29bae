//! The engine's state as the engine thread publishes it once a tick, for readers on other threads (the Users API,
//! the console overview, the live tail of an incident's chart): swapped in whole, read without a lock and without
//! a round trip to the engine thread, so these reads answer while the engine is busy.
//!
//! The per-User figures (`UserView`) are computed on the engine thread at the tick, from state only it may touch;
//! the per-second counts are the engine's own lock-free windows (`Arc<UserWindow>`), which readers here read
//! directly: the engine keeps writing them between ticks and a reader sees every second closed so far.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustc_hash::FxHashMap;

use crate::http::users_api::{self, UserView};
use stormwatch_core::engine::Engine;
use stormwatch_core::engine::evict::{Evicted, EvictedUsers};
use stormwatch_core::engine::window::UserWindow;
use stormwatch_core::report::IncidentRecord;
use stormwatch_core::telemetry::Eui64;

/// One tick's state. Empty until the engine's first tick.
#[derive(Default)]
pub struct EngineView {
    /// Event time up to which seconds are closed, as of the tick.
    pub as_of: Option<i64>,
    /// Every tracked User, in the engine's table order.
    pub users: Vec<UserView>,
    /// Open incidents.
    pub open: Vec<IncidentRecord>,
    /// Each tracked User's per-second ring, shared with the engine (its single writer).
    windows: FxHashMap<Eui64, Arc<UserWindow>>,
    /// Users evicted from memory (bounded by the engine), shared between ticks until another leaves.
    evicted: Arc<EvictedUsers>,
}

impl EngineView {
    pub fn user(&self, user: Eui64) -> Option<&UserView> {
        let name = user.to_string();
        self.users.iter().find(|view| view.user == name)
    }

    pub fn window(&self, user: Eui64) -> Option<&Arc<UserWindow>> {
        self.windows.get(&user)
    }

    pub fn evicted(&self, user: Eui64) -> Option<Evicted> {
        self.evicted.get(user)
    }
}

/// The slot the engine thread publishes into and every reader loads from.
#[derive(Default)]
pub struct Published {
    current: ArcSwap<EngineView>,
    /// Event-time sources as of the last tick (`GET /api/v1/sources`).
    sources: ArcSwap<Vec<crate::engine::sources::SourceRow>>,
}

impl Published {
    /// The last published state (a cheap `Arc` clone; never waits).
    pub fn load(&self) -> Arc<EngineView> {
        self.current.load_full()
    }

    pub fn sources(&self) -> Arc<Vec<crate::engine::sources::SourceRow>> {
        self.sources.load_full()
    }

    /// Engine thread only, once a tick.
    pub fn set_sources(&self, rows: Vec<crate::engine::sources::SourceRow>) {
        self.sources.store(Arc::new(rows));
    }

    /// Engine thread only, once a tick: computes and swaps in the state readers see. `open` is the tick's list
    /// of open incidents.
    pub fn publish(&self, engine: &Engine, open: &[IncidentRecord]) {
        let previous = self.current.load();
        // The evicted record changes only when a User leaves: copy it then, not every tick.
        let evicted = if previous.evicted.total() == engine.evicted_users().total() {
            previous.evicted.clone()
        } else {
            Arc::new(engine.evicted_users().clone())
        };
        let windows = engine
            .users()
            .map(|(_, user)| (user.id, user.window.clone()))
            .collect();
        self.current.store(Arc::new(EngineView {
            as_of: engine.watermark_ms(),
            users: users_api::all(engine),
            open: open.to_vec(),
            windows,
            evicted,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stormwatch_core::changes::ChangeRegister;
    use stormwatch_core::engine::EngineConfig;
    use stormwatch_core::telemetry::{Event, EventKind};

    const USER: Eui64 = Eui64(0x90B3_D51F_3001_0007);
    const T0: i64 = 1_773_133_200_000;

    fn request(ts: i64, count: u64) -> Event {
        Event::new(ts, USER, EventKind::Request, count)
    }

    #[test]
    fn readers_see_what_the_engine_published_and_its_windows_move_on_without_a_tick() {
        let mut engine = Engine::new(EngineConfig::default(), ChangeRegister::new());
        let published = Published::default();
        assert!(published.load().users.is_empty(), "empty before a tick");
        for second in 0..20 {
            engine.ingest(&request(T0 + second * 1000, 7)).unwrap();
        }
        engine.advance_to(T0 + 30_000);
        published.publish(&engine, &[]);
        let view = published.load();
        let user = view.user(USER).expect("the User is published");
        assert_eq!(user.user, USER.to_string());
        assert_eq!(view.as_of, engine.watermark_ms());
        let window = view.window(USER).expect("its window is shared").clone();
        assert_eq!(window.read((T0 / 1000) + 3).flows[0], 7);
        // The engine writes on after the tick: a reader of the shared window sees it at once, from another
        // thread, while the published figures stay those of the tick.
        engine.ingest(&request(T0 + 40_000, 5)).unwrap();
        let second = (T0 + 40_000) / 1000;
        let seen = std::thread::spawn(move || window.read(second).flows[0])
            .join()
            .unwrap();
        assert_eq!(seen, 5);
        assert!(
            Arc::ptr_eq(&view, &published.load()),
            "no new view without a tick"
        );
    }
}
