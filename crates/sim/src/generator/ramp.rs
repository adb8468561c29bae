//! The `ramp` recipe: after a registered application rollout, a supplier's requests climb steadily to 8-10x over
//! ten minutes instead of stepping up, slowly enough that a baseline that simply follows traffic would follow it.

use rand::Rng;

use super::GenError;
use super::builder::{Builder, MINUTE};
use super::plan::{Effect, Slot};
use stormwatch_core::changes::{Category, ChangeStatus};
use stormwatch_core::incident::{IncidentKind, Verdict};

impl Builder<'_> {
    /// The truth's onset is the start of the climb, not the moment it crossed any threshold.
    pub(super) fn ramp(&mut self, at: i64) -> Result<Slot, GenError> {
        let user = self.pick("ramp (a supplier with >= 3 requests/s)", |p| {
            p.is_supplier() && p.requests >= 3.0
        })?;
        let ramp_s = 10 * MINUTE;
        let length = ramp_s + self.rng.random_range(8..=12) * MINUTE;
        let peak = self.rng.random_range(8.0..10.0);
        self.plan.effects.push(Effect::Ramp {
            user,
            from: at,
            until: at + length,
            peak,
            ramp_s,
            srv: "4.1.1",
        });
        let share = self.users[user].reject_share;
        self.cover_surge(user, at, at + length, |p, s, t| {
            p.requests * s.at(t).requests * peak * (1.0 - share)
        });
        let (start, end) = self.window_around(at, 2..10, 60..120);
        let id = self.notice(
            Some(user),
            "Smart meter reading scheduler rollout",
            Category::Application,
            (start, end),
            Some(ChangeStatus::InProgress),
            &["4.1.1"],
        );
        self.incident(
            Some(user),
            IncidentKind::RequestStorm,
            at,
            Verdict::RegisteredChange,
            Some(id),
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 15 * MINUTE,
        })
    }
}
