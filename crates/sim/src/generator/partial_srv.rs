//! The `partial_srv` recipe: after a registered endpoint change, the User's endpoint refuses one SRV family, a
//! minority of its traffic, while everything else is delivered.

use rand::Rng;

use super::GenError;
use super::builder::{Builder, MINUTE};
use super::plan::{Effect, Slot};
use stormwatch_core::changes::Category;
use stormwatch_core::telemetry::FailureReason;

impl Builder<'_> {
    /// 15-30 % of the User's messages (one family) fail with HTTP 4xx on every attempt for 25 minutes; the rest
    /// keeps being delivered, so the delivery state is WARN, never STOP.
    pub(super) fn partial_srv(&mut self, at: i64) -> Result<Slot, GenError> {
        let shape = self.shape;
        let user = self.pick("partial_srv (>= 3 inbound msg/s)", |p| {
            !p.per_message && p.inbound_at(shape, at) >= 3.0
        })?;
        let length = 25 * MINUTE;
        let share = self.rng.random_range(0.15..0.3);
        self.plan.effects.push(Effect::Leak {
            user,
            from: at,
            until: at + length,
            share,
            reasons: Some(&[FailureReason::Http4xx]),
        });
        self.registered_backlog(
            user,
            at,
            (
                "Endpoint routing change for meter reading responses",
                Category::Network,
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
