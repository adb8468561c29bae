//! The injected situations, one recipe each: which Users a scenario hits, its effects on traffic, its change
//! notices and the truth the engine must reproduce.

use rand::Rng;

use super::GenError;
use super::builder::{Builder, FIREWALL_TARGET_DEPTH, MINUTE};
use super::plan::{Effect, HICCUP_REASONS, Slot};
use super::population::Role;
use stormwatch_core::changes::{Category, ChangeStatus, Expected};
use stormwatch_core::incident::{IncidentKind, TrafficDirection, Verdict};
use stormwatch_core::telemetry::FailureReason;

impl Builder<'_> {
    pub(super) fn firewall(&mut self, at: i64, budget: Option<i64>) -> Result<Slot, GenError> {
        let user = self.largest_supplier().ok_or_else(|| {
            GenError::Plan("firewall_backlog needs a supplier: raise --users".into())
        })?;
        let profile = &self.users[user];
        let rate = profile.inbound_at(self.shape, at + 3600).max(1.0);
        let estimate = (FIREWALL_TARGET_DEPTH as f64 / rate) as i64;
        let mut longest = (estimate * 3 / 2 + 600).min(6 * 3600);
        if let Some(budget) = budget {
            longest = longest.min(budget - super::plan::DETECT_MARGIN_S);
        }
        if longest < 15 * MINUTE {
            return Err(GenError::Plan(
                "--duration leaves under 15 minutes for firewall_backlog".into(),
            ));
        }
        let drain = (FIREWALL_TARGET_DEPTH as f64 / (profile.capacity - rate).max(1.0)) as i64;
        let anomaly = (estimate * 23 / 20).min(longest);
        let reasons: &'static [FailureReason] = &[FailureReason::Refused, FailureReason::Timeout];
        self.plan.effects.push(Effect::Outage {
            user,
            from: at,
            until: at + longest,
            stop_at_depth: Some(FIREWALL_TARGET_DEPTH),
            reasons,
        });
        self.registered_backlog(
            user,
            at,
            ("Firewall rule migration to new DMZ", Category::Network),
            (2..10, 60..120),
            at + longest + drain,
        );
        Ok(Slot {
            anomaly_s: anomaly,
            recovery_s: drain + 10 * MINUTE,
        })
    }

    /// An endpoint outage of 20-30 minutes on a User with enough inbound traffic to build a clear backlog.
    pub(super) fn outage(
        &mut self,
        what: &str,
        at: i64,
        reasons: &'static [FailureReason],
    ) -> Result<(usize, i64), GenError> {
        let shape = self.shape;
        let user = self.pick(what, |p| p.inbound_at(shape, at) >= 3.0)?;
        let length = self.rng.random_range(20..=30) * MINUTE;
        self.plan.effects.push(Effect::Outage {
            user,
            from: at,
            until: at + length,
            stop_at_depth: None,
            reasons,
        });
        Ok((user, length))
    }

    /// The registered certificate rotation behind `user`'s TLS outage from `at`, the backlog it causes and the slot
    /// it takes: shared by `certificate_failure` and `clock_skew`.
    fn certificate_rotation_caused(&mut self, user: usize, at: i64, length: i64) -> Slot {
        self.registered_backlog(
            user,
            at,
            ("DCCKI TLS certificate rotation", Category::Certificate),
            (1..6, 30..60),
            at + 2 * length,
        );
        Slot {
            anomaly_s: length,
            recovery_s: length + 10 * MINUTE,
        }
    }

    pub(super) fn certificate(&mut self, at: i64) -> Result<Slot, GenError> {
        let (user, length) = self.outage(
            "certificate_failure (>= 3 inbound msg/s)",
            at,
            &[FailureReason::Tls],
        )?;
        Ok(self.certificate_rotation_caused(user, at, length))
    }

    /// Three exporter clocks are off for the whole run: one User's by 35 s fast, one's by ten minutes fast, one's
    /// an hour behind (a backfill). The ten-minutes-fast User then fails TLS after a certificate rotation: the
    /// engine must date its backlog in true time and lose no one's lines as late.
    pub(super) fn clock_skew(&mut self, at: i64) -> Result<Slot, GenError> {
        let (user, length) =
            self.outage("clock_skew (>= 3 inbound msg/s)", at, &[FailureReason::Tls])?;
        let fast = self.pick("clock_skew's 35 s fast clock", |_| true)?;
        let behind = self.pick("clock_skew's backfilling exporter", |_| true)?;
        self.plan
            .skews
            .extend([(user, 600_000), (fast, 35_000), (behind, -3_600_000)]);
        Ok(self.certificate_rotation_caused(user, at, length))
    }

    /// After a registered load-balancer change, an endpoint refuses deliveries for 40 s in every 2 minutes for
    /// 45 minutes. No single outage lasts a minute, yet it is one incident, dated from the first outage.
    pub(super) fn flapping(&mut self, at: i64) -> Result<Slot, GenError> {
        let shape = self.shape;
        let user = self.pick("flapping (>= 3 inbound msg/s)", |p| {
            p.inbound_at(shape, at) >= 3.0
        })?;
        let length = 45 * MINUTE;
        self.plan.effects.push(Effect::Flap {
            user,
            from: at,
            until: at + length,
            down_s: 40,
            period_s: 120,
            reasons: &[FailureReason::Refused],
        });
        self.registered_backlog(
            user,
            at,
            ("Load balancer pool reconfiguration", Category::Network),
            (1..6, 20..40),
            at + length,
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 10 * MINUTE,
        })
    }

    pub(super) fn unregistered(&mut self, at: i64) -> Result<Slot, GenError> {
        let reasons: &'static [FailureReason] = &[FailureReason::Timeout, FailureReason::Http5xx];
        let (user, length) =
            self.outage("unregistered_backlog (>= 3 inbound msg/s)", at, reasons)?;
        // Its decoys (changes near it that cannot explain it) are added once every scenario has its Users.
        self.incident(
            Some(user),
            IncidentKind::Backlog,
            at,
            Verdict::UnregisteredChangeSuspected,
            None,
        );
        self.watch_last(user, at, at + 2 * length);
        Ok(Slot {
            anomaly_s: length,
            recovery_s: length + 10 * MINUTE,
        })
    }

    pub(super) fn mdm(&mut self, at: i64) -> Result<Slot, GenError> {
        let user = self.pick("mdm_storm (a supplier with >= 3 requests/s)", |p| {
            p.is_supplier() && p.requests >= 3.0
        })?;
        let length = self.rng.random_range(12..=20) * MINUTE;
        let factor = self.rng.random_range(8.0..12.0);
        let share = self.rng.random_range(0.45..0.6);
        self.plan.effects.push(Effect::Surge {
            user,
            from: at,
            until: at + length,
            factor,
            reject_share: Some(share),
            srv: "4.1.1",
        });
        self.cover_surge(user, at, at + length, |p, s, t| {
            p.requests * s.at(t).requests * factor * (1.0 - share)
        });
        let (start, end) = self.window_around(at, 5..15, 90..180);
        let id = self.notice(
            Some(user),
            "New meter data management system go-live",
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
            Some(id.clone()),
        );
        self.incident(
            Some(user),
            IncidentKind::RejectStorm,
            at,
            Verdict::RegisteredChange,
            Some(id),
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 15 * MINUTE,
        })
    }

    pub(super) fn firmware(&mut self, at: i64) -> Result<Slot, GenError> {
        let operator = self.pick(
            "firmware_alert_storm (a network operator with >= 1 alert/s)",
            |p| p.role == Role::NetworkOperator && p.device_alerts >= 1.0,
        )?;
        let supplier = self.pick("firmware_alert_storm (a supplier)", |p| p.is_supplier())?;
        let length = self.rng.random_range(12..=20) * MINUTE;
        let factor = self.rng.random_range(12.0..16.0);
        self.plan.effects.push(Effect::Flood {
            user: operator,
            from: at,
            until: at + length,
            factor,
            alert: "AD1",
        });
        // The supplier's own devices also report, but well inside its normal range.
        self.plan.effects.push(Effect::Flood {
            user: supplier,
            from: at,
            until: at + length,
            factor: 0.4,
            alert: "0x8F35",
        });
        self.cover_surge(operator, at, at + length, |p, s, t| {
            p.device_alerts * s.at(t).alerts * factor
        });
        let (start, end) = self.window_around(at, 5..20, 60..180);
        let id = self.notice(
            Some(supplier),
            "Comms hub firmware activation wave 3",
            Category::Device,
            (start, end),
            Some(ChangeStatus::InProgress),
            &["11.3"],
        );
        self.incident(
            Some(operator),
            IncidentKind::AlertStorm,
            at,
            Verdict::RegisteredChange,
            Some(id),
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 15 * MINUTE,
        })
    }

    pub(super) fn campaign(&mut self, at: i64) -> Result<Slot, GenError> {
        let user = self.pick(
            "registered_campaign (a supplier with >= 5 requests/s)",
            |p| p.is_supplier() && p.requests >= 5.0,
        )?;
        let length = 30 * MINUTE;
        // About 5x: clearly a storm against the 4x threshold, clearly within the declared 8x.
        let factor = 5.5;
        let share = self.users[user].reject_share;
        self.plan.effects.push(Effect::Surge {
            user,
            from: at,
            until: at + length,
            factor,
            reject_share: None,
            srv: "1.1.1",
        });
        self.cover_surge(user, at, at + length, |p, s, t| {
            p.requests * s.at(t).requests * factor * (1.0 - share)
        });
        let start = at - self.rng.random_range(2..5) * MINUTE;
        let end = at + length + 10 * MINUTE;
        let id = self.notice(
            Some(user),
            "Bulk tariff update",
            Category::Campaign,
            (start, end),
            Some(ChangeStatus::InProgress),
            &["1.1.1"],
        );
        if let Some(notice) = self.plan.changes.last_mut() {
            notice.expected = Some(Expected {
                direction: TrafficDirection::ToDsp,
                rate_factor: 8.0,
            });
        }
        self.incident(
            Some(user),
            IncidentKind::RequestStorm,
            at,
            Verdict::ExpectedImpact,
            Some(id),
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 15 * MINUTE,
        })
    }

    /// Normal life: a declared campaign that doubles a supplier's requests, well under the 4x storm threshold.
    /// Normal life that looks like a storm for a moment: three suppliers send 3x their requests for 30 s, six
    /// times each, minutes apart, with no notice. Under the storm factor and too short: no incident.
    pub(super) fn bursts(&mut self, at: i64) -> Result<Slot, GenError> {
        // Normal life may touch any User: bursts carry no notice that could explain another scenario's incident,
        // and scenarios never overlap in time, so no User is taken from the others.
        let users: Vec<usize> = (0..self.users.len())
            .filter(|&i| self.users[i].is_supplier() && self.users[i].requests >= 2.0)
            .take(3)
            .collect();
        if users.is_empty() {
            return Err(GenError::Plan(
                "bursts needs a supplier with >= 2 requests/s".into(),
            ));
        }
        let factor = 3.0;
        for (n, &user) in users.iter().enumerate() {
            let share = self.users[user].reject_share;
            for k in 0..6 {
                let from = at + k * 4 * MINUTE + n as i64 * 50 + self.rng.random_range(0..40);
                let until = from + 30;
                self.plan.effects.push(Effect::Surge {
                    user,
                    from,
                    until,
                    factor,
                    reject_share: None,
                    srv: "4.1.1",
                });
                self.cover_surge(user, from, until, |p, s, t| {
                    p.requests * s.at(t).requests * factor * (1.0 - share)
                });
            }
        }
        Ok(Slot {
            anomaly_s: 25 * MINUTE,
            recovery_s: 5 * MINUTE,
        })
    }

    pub(super) fn small_campaign(&mut self, at: i64) -> Result<Slot, GenError> {
        let user = self.pick("small_campaign (a supplier with >= 2 requests/s)", |p| {
            p.is_supplier() && p.requests >= 2.0
        })?;
        let length = 30 * MINUTE;
        let factor = 2.0;
        let share = self.users[user].reject_share;
        self.plan.effects.push(Effect::Surge {
            user,
            from: at,
            until: at + length,
            factor,
            reject_share: None,
            srv: "1.1.1",
        });
        self.cover_surge(user, at, at + length, |p, s, t| {
            p.requests * s.at(t).requests * factor * (1.0 - share)
        });
        let start = at - self.rng.random_range(1..5) * MINUTE;
        let id = self.notice(
            Some(user),
            "Prepayment tariff refresh",
            Category::Campaign,
            (start, at + length + 5 * MINUTE),
            None,
            &["1.1.1"],
        );
        if let Some(notice) = self.plan.changes.iter_mut().find(|c| c.id == id) {
            notice.expected = Some(Expected {
                direction: TrafficDirection::ToDsp,
                rate_factor: 3.0,
            });
        }
        Ok(Slot {
            anomaly_s: length,
            recovery_s: 10 * MINUTE,
        })
    }

    pub(super) fn dcc(&mut self, at: i64) -> Result<Slot, GenError> {
        let length = self.rng.random_range(18..=22) * MINUTE;
        let building = self
            .users
            .iter()
            .filter(|p| !p.per_message && p.inbound_at(self.shape, at) * length as f64 >= 300.0)
            .count();
        if building < 3 || building * 10 < self.users.len() * 4 {
            return Err(GenError::Plan(format!(
                "dcc_maintenance needs at least 3 Users and 40 % of them with traffic enough to queue; only {building} of {}",
                self.users.len()
            )));
        }
        self.plan.effects.push(Effect::Pause {
            from: at,
            until: at + length,
        });
        let (start, end) = self.window_around(at, 5..15, 60..90);
        let id = self.notice(
            None,
            "DSP release R7.2 (Planned Maintenance)",
            Category::DccMaintenance,
            (start, end),
            None,
            &[],
        );
        self.incident(
            None,
            IncidentKind::Backlog,
            at,
            Verdict::DccChange,
            Some(id),
        );
        Ok(Slot {
            anomaly_s: length,
            recovery_s: length + 10 * MINUTE,
        })
    }

    pub(super) fn hiccups(&mut self, at: i64) -> Result<Slot, GenError> {
        let shape = self.shape;
        let candidates: Vec<usize> = (0..self.users.len())
            .filter(|&i| self.users[i].inbound_at(shape, at) >= 2.0)
            .collect();
        if candidates.is_empty() {
            return Err(GenError::Plan(
                "hiccups needs a User with >= 2 inbound msg/s".into(),
            ));
        }
        for n in 0..5 {
            let user = candidates[n % candidates.len()];
            let from = at + n as i64 * 6 * MINUTE + self.rng.random_range(0..120);
            let until = from + self.rng.random_range(15..=45);
            let reasons = HICCUP_REASONS[self.rng.random_range(0..HICCUP_REASONS.len())];
            self.plan.effects.push(Effect::Outage {
                user,
                from,
                until,
                stop_at_depth: None,
                reasons,
            });
        }
        Ok(Slot {
            anomaly_s: 30 * MINUTE,
            recovery_s: 5 * MINUTE,
        })
    }
}
