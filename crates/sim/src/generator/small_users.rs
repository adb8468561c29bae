//! The `small_users` recipe: a User sending about one message a second loses its endpoint after a registered
//! change. Small Users must be caught too, without their noise paging anyone.

use super::GenError;
use super::builder::{Builder, MINUTE};
use super::plan::{Effect, Slot};
use stormwatch_core::changes::Category;
use stormwatch_core::telemetry::FailureReason;

impl Builder<'_> {
    /// Shrinks one User to about 1 inbound message a second for the whole run, then refuses its deliveries for
    /// 20 minutes from `at`.
    pub(super) fn small_users(&mut self, at: i64) -> Result<Slot, GenError> {
        let shape = self.shape;
        let user = self.pick("small_users (any User with inbound traffic)", |p| {
            p.inbound_at(shape, at) > 0.0
        })?;
        let profile = &mut self.users[user];
        let scale = (1.0 / profile.inbound_at(shape, at)).min(1.0);
        profile.requests *= scale;
        profile.scheduled *= scale;
        profile.device_alerts *= scale;
        profile.dcc_alerts *= scale;
        let length = 20 * MINUTE;
        self.plan.effects.push(Effect::Outage {
            user,
            from: at,
            until: at + length,
            stop_at_depth: None,
            reasons: &[FailureReason::Refused],
        });
        self.registered_backlog(
            user,
            at,
            ("Endpoint URL migration", Category::Network),
            (1..6, 20..40),
            at + length,
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 10 * MINUTE,
        })
    }
}
