//! The simulated Users: a heavy-tailed population of suppliers, network operators and other Users, with each User's
//! mean rates per flow and its endpoint's delivery capacity.

use rand::Rng;
use rand::rngs::StdRng;

use super::shape::DailyShape;
use stormwatch_core::telemetry::Eui64;

/// What kind of DCC User, which decides its traffic mix.
#[derive(Copy, Clone, Eq, PartialEq, Debug)]
pub(crate) enum Role {
    LargeSupplier,
    MediumSupplier,
    SmallSupplier,
    NetworkOperator,
    OtherUser,
}

/// One User's traffic parameters. Rates are daily means in messages per second.
#[derive(Clone, Debug)]
pub(crate) struct Profile {
    pub id: Eui64,
    pub role: Role,
    /// Requests sent (acknowledged and rejected).
    pub requests: f64,
    /// Share of requests the DSP rejects in normal life.
    pub reject_share: f64,
    /// DCC-scheduled read responses (no request of the User's), concentrated after midnight.
    pub scheduled: f64,
    pub device_alerts: f64,
    pub dcc_alerts: f64,
    /// Deliveries per second the User's endpoint can take; at least twice its peak inbound rate.
    pub capacity: f64,
    /// Small Users are exported one line per message, with `srv`, `device` and `req_id`.
    pub per_message: bool,
    /// Millisecond within each second at which this User's aggregated lines are exported.
    pub phase_ms: i64,
}

/// Users with fewer messages a second than this are exported message by message.
const PER_MESSAGE_BELOW: f64 = 4.0;

/// Network operators' weather bursts reach this multiple of their alert rate (see `sim`).
pub(crate) const MAX_BURST: f64 = 2.5;

/// (role, total messages/s at scale 1) for the first Users: the head of the heavy tail.
const HEAD: [(Role, f64); 12] = [
    (Role::LargeSupplier, 250.0),
    (Role::NetworkOperator, 60.0),
    (Role::LargeSupplier, 180.0),
    (Role::MediumSupplier, 25.0),
    (Role::SmallSupplier, 0.6),
    (Role::LargeSupplier, 130.0),
    (Role::NetworkOperator, 45.0),
    (Role::MediumSupplier, 15.0),
    (Role::SmallSupplier, 0.3),
    (Role::LargeSupplier, 100.0),
    (Role::NetworkOperator, 35.0),
    (Role::MediumSupplier, 10.0),
];

/// The tail repeats this pattern; totals are drawn within each role's range.
const TAIL: [Role; 9] = [
    Role::SmallSupplier,
    Role::SmallSupplier,
    Role::MediumSupplier,
    Role::SmallSupplier,
    Role::NetworkOperator,
    Role::SmallSupplier,
    Role::OtherUser,
    Role::MediumSupplier,
    Role::SmallSupplier,
];

fn user_id(role: Role, index: usize) -> Eui64 {
    let prefix: u64 = match role {
        Role::NetworkOperator => 0x4CE1_7300_0000_0000,
        Role::OtherUser => 0x70B3_D5E7_5000_0000,
        _ => 0x90B3_D51F_3001_0000,
    };
    Eui64(prefix | (index as u64 + 1))
}

pub(crate) fn build(
    users: usize,
    scale: f64,
    shape: &DailyShape,
    rng: &mut StdRng,
) -> Vec<Profile> {
    let peaks = shape.peaks();
    (0..users)
        .map(|index| {
            let (role, total) = match HEAD.get(index) {
                Some(&(role, total)) => (role, total * rng.random_range(0.92..1.08)),
                None => {
                    let role = TAIL[(index - HEAD.len()) % TAIL.len()];
                    let total = match role {
                        Role::MediumSupplier => rng.random_range(4.0..12.0),
                        Role::NetworkOperator => rng.random_range(12.0..30.0),
                        Role::OtherUser => rng.random_range(0.1..0.4),
                        _ => rng.random_range(0.1..1.0),
                    };
                    (role, total)
                }
            };
            let total = total * scale;
            // Shares of the User's messages: requests, scheduled responses, device alerts, DCC alerts. Responses to
            // acknowledged requests come on top and make up the rest.
            let (req, sched, alerts, dcc) = match role {
                Role::NetworkOperator => (0.06, 0.0, 0.86, 0.02),
                Role::OtherUser => (0.5, 0.0, 0.0, 0.0),
                _ => (0.30, 0.10, 0.28, 0.02),
            };
            let reject_share = rng.random_range(0.005..0.02);
            let requests = req * total;
            let burst = if role == Role::NetworkOperator {
                MAX_BURST
            } else {
                1.0
            };
            let peak_inbound = requests * peaks.requests
                + sched * total * peaks.scheduled
                + alerts * total * peaks.alerts * burst
                + dcc * total;
            Profile {
                id: user_id(role, index),
                role,
                requests,
                reject_share,
                scheduled: sched * total,
                device_alerts: alerts * total,
                dcc_alerts: dcc * total,
                capacity: (peak_inbound * rng.random_range(2.2..3.0)).max(3.0),
                per_message: total < PER_MESSAGE_BELOW,
                phase_ms: rng.random_range(0..900),
            }
        })
        .collect()
}

impl Profile {
    /// Expected messages a second onto this User's queue at `second` (no incident).
    pub fn inbound_at(&self, shape: &DailyShape, second: i64) -> f64 {
        let at = shape.at(second);
        self.requests * (1.0 - self.reject_share) * at.requests
            + self.scheduled * at.scheduled
            + self.device_alerts * at.alerts
            + self.dcc_alerts
    }

    pub fn is_supplier(&self) -> bool {
        matches!(
            self.role,
            Role::LargeSupplier | Role::MediumSupplier | Role::SmallSupplier
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn default_population_carries_about_a_thousand_messages_a_second() {
        let shape = DailyShape::new();
        let users = build(40, 1.0, &shape, &mut StdRng::seed_from_u64(1));
        let total: f64 = users
            .iter()
            .map(|u| u.requests * 2.0 + u.scheduled + u.device_alerts + u.dcc_alerts)
            .sum();
        assert!((850.0..1150.0).contains(&total), "{total}");
        assert!(users.iter().any(|u| u.per_message));
        assert!(
            users
                .iter()
                .filter(|u| u.role == Role::NetworkOperator)
                .count()
                >= 4
        );
        let mut ids: Vec<_> = users.iter().map(|u| u.id).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 40);
    }

    #[test]
    fn capacity_is_at_least_twice_the_peak_inbound() {
        let shape = DailyShape::new();
        for user in build(60, 5.0, &shape, &mut StdRng::seed_from_u64(3)) {
            for second in (0..86_400).step_by(60) {
                let burst = if user.role == Role::NetworkOperator {
                    MAX_BURST
                } else {
                    1.0
                };
                let extra = user.device_alerts * shape.at(second).alerts * (burst - 1.0);
                let inbound = user.inbound_at(&shape, second) + extra;
                assert!(user.capacity >= 2.0 * inbound, "{user:?} at {second}");
            }
        }
    }
}
