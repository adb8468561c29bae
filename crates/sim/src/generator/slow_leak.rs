//! The `slow_leak` recipe: after a registered receive-handler upgrade, a few percent of one User's messages are
//! never acknowledged, so its queue grows slowly for an hour until the fix releases them.

use rand::Rng;

use super::GenError;
use super::builder::{Builder, MINUTE};
use super::plan::{Effect, Slot};
use stormwatch_core::changes::Category;

impl Builder<'_> {
    /// No failures and no outage: only the depth and the oldest message's age creep up. The truth's onset is the
    /// upgrade's first leaked message; the engine must date it back there, not to when the age crossed its limit.
    pub(super) fn slow_leak(&mut self, at: i64) -> Result<Slot, GenError> {
        let shape = self.shape;
        let user = self.pick("slow_leak (>= 4 inbound msg/s)", |p| {
            !p.per_message && p.inbound_at(shape, at) >= 4.0
        })?;
        let length = 60 * MINUTE;
        let share = self.rng.random_range(0.03..0.05);
        self.plan.effects.push(Effect::Leak {
            user,
            from: at,
            until: at + length,
            share,
            reasons: None,
        });
        self.registered_backlog(
            user,
            at,
            (
                "Inbound message receive handler upgrade",
                Category::Application,
            ),
            (1..6, 20..40),
            at + length,
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 10 * MINUTE,
        })
    }
}
