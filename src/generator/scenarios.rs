//! The injected situations: for each scenario, which Users it hits, its effects on traffic, the change notices
//! (cause and decoys) and the truth the engine must reproduce.

use rand::Rng;
use rand::rngs::StdRng;

use super::GenError;
use super::format::rfc3339_seconds;
use super::options::Scenario;
use super::plan::{Effect, HICCUP_REASONS, Plan, PlannedIncident, Slot};
use super::population::{Profile, Role};
use super::shape::DailyShape;
use super::truth::{ChangeNotice, Expected, TruthIncident};
use crate::incident::{IncidentKind, TrafficDirection, Verdict};
use crate::telemetry::FailureReason;

/// The backlog of the firewall incident in `contract/domain.md`.
pub(crate) const FIREWALL_TARGET_DEPTH: u64 = 1_500_000;
const MINUTE: i64 = 60;

/// Builds scenarios one at a time into a [`Plan`].
pub(crate) struct Builder<'a> {
    users: &'a mut [Profile],
    shape: &'a DailyShape,
    rng: &'a mut StdRng,
    used: Vec<bool>,
    next_change: u32,
    year: i64,
    start_s: i64,
    pub plan: Plan,
}

impl<'a> Builder<'a> {
    pub fn new(
        users: &'a mut [Profile],
        shape: &'a DailyShape,
        rng: &'a mut StdRng,
        start_s: i64,
        reserve_largest: bool,
    ) -> Builder<'a> {
        let next_change = rng.random_range(10..90);
        let year = super::format::civil_from_days(start_s.div_euclid(86_400)).0;
        let used = vec![false; users.len()];
        let mut builder = Builder {
            users,
            shape,
            rng,
            used,
            next_change,
            year,
            start_s,
            plan: Plan::default(),
        };
        // The firewall backlog needs the biggest supplier: keep the others off it.
        if reserve_largest && let Some(largest) = builder.largest_supplier() {
            builder.used[largest] = true;
        }
        builder
    }

    fn largest_supplier(&self) -> Option<usize> {
        (0..self.users.len())
            .filter(|&i| self.users[i].is_supplier())
            .max_by(|&a, &b| {
                self.users[a]
                    .requests
                    .total_cmp(&self.users[b].requests)
                    .then(b.cmp(&a))
            })
    }

    pub fn finish(mut self, start_s: i64, end_s: i64) -> Plan {
        self.plan.start_s = start_s;
        self.plan.end_s = end_s;
        self.plan
            .changes
            .sort_by(|a, b| (&a.start, &a.id).cmp(&(&b.start, &b.id)));
        self.plan
            .incidents
            .sort_by_key(|i| (i.truth.onset, i.truth.user.clone()));
        self.plan
    }

    /// Plans `scenario` starting at `at`; `budget` is the time left in the input, if fixed.
    pub fn build(
        &mut self,
        scenario: Scenario,
        at: i64,
        budget: Option<i64>,
    ) -> Result<Slot, GenError> {
        match scenario {
            Scenario::FirewallBacklog => self.firewall(at, budget),
            Scenario::CertificateFailure => self.certificate(at),
            Scenario::UnregisteredBacklog => self.unregistered(at),
            Scenario::MdmStorm => self.mdm(at),
            Scenario::FirmwareAlertStorm => self.firmware(at),
            Scenario::RegisteredCampaign => self.campaign(at),
            Scenario::DccMaintenance => self.dcc(at),
            Scenario::Hiccups => self.hiccups(at),
            Scenario::SmallCampaign => self.small_campaign(at),
            // Decoys are added around the other scenarios' incidents once they are all laid out.
            Scenario::Decoys => Ok(Slot {
                anomaly_s: 0,
                recovery_s: 0,
            }),
        }
    }

    /// The first User satisfying `fits` that no scenario has used yet, else the first that fits at all.
    fn pick(&mut self, what: &str, fits: impl Fn(&Profile) -> bool) -> Result<usize, GenError> {
        let candidates: Vec<usize> = (0..self.users.len())
            .filter(|&i| fits(&self.users[i]))
            .collect();
        let chosen = candidates
            .iter()
            .copied()
            .find(|&i| !self.used[i])
            .or_else(|| candidates.first().copied())
            .ok_or_else(|| {
                GenError::Plan(format!("no User fits {what}: raise --users or --scale"))
            })?;
        self.used[chosen] = true;
        Ok(chosen)
    }

    /// Any User other than `not` (deterministic by the scenario RNG).
    fn other_user(&mut self, not: &[usize]) -> usize {
        let others: Vec<usize> = (0..self.users.len()).filter(|i| !not.contains(i)).collect();
        others[self.rng.random_range(0..others.len())]
    }

    fn change_id(&mut self) -> String {
        self.next_change += self.rng.random_range(1..6);
        format!("CHG-{}-{:04}", self.year, self.next_change)
    }

    #[allow(clippy::too_many_arguments)]
    fn notice(
        &mut self,
        owner: Option<usize>,
        title: &str,
        category: &str,
        start: i64,
        end: i64,
        status: Option<&str>,
        srvs: &[&str],
    ) -> String {
        let (id, user) = match owner {
            Some(index) => (self.change_id(), self.users[index].id.to_string()),
            None => {
                self.next_change += 1;
                (
                    format!("DCC-PM-{}-{:02}", self.year, self.next_change % 100),
                    "DCC".to_owned(),
                )
            }
        };
        let contact = match category {
            "network" | "endpoint" => "netops@example.invalid",
            "certificate" => "pki@example.invalid",
            "dcc_maintenance" => "dcc-service-desk@example.invalid",
            _ => "change-manager@example.invalid",
        };
        self.plan.changes.push(ChangeNotice {
            id: id.clone(),
            user,
            title: title.to_owned(),
            category: category.to_owned(),
            start: rfc3339_seconds(start * 1000),
            end: rfc3339_seconds(end * 1000),
            status: status.map(str::to_owned),
            srvs: srvs.iter().map(|s| (*s).to_owned()).collect(),
            expected: None,
            contact: Some(contact.to_owned()),
        });
        id
    }

    fn incident(
        &mut self,
        user: Option<usize>,
        kind: IncidentKind,
        onset: i64,
        verdict: Verdict,
        suspect: Option<String>,
    ) {
        let name = user.map_or_else(|| "*".to_owned(), |u| self.users[u].id.to_string());
        self.plan.incidents.push(PlannedIncident {
            truth: TruthIncident {
                user: name,
                kind,
                onset: onset * 1000,
                verdict,
                top_suspect: suspect,
                min_peak_depth: None,
            },
            peak_watch: None,
        });
    }

    fn watch_last(&mut self, user: usize, from: i64, until: i64) {
        if let Some(last) = self.plan.incidents.last_mut() {
            last.peak_watch = Some((user, from, until));
        }
    }

    /// Raises `user`'s capacity to twice the inbound it will see with `extra` more messages a second (at the
    /// daily-shape multiplier `scale_of` picks), so that a storm never also builds a backlog.
    fn cover_surge(
        &mut self,
        user: usize,
        from: i64,
        until: i64,
        extra: impl Fn(&Profile, &DailyShape, i64) -> f64,
    ) {
        let profile = &self.users[user];
        let peak = (from..until)
            .step_by(60)
            .map(|t| profile.inbound_at(self.shape, t) + extra(profile, self.shape, t))
            .fold(0.0, f64::max);
        let needed = 2.5 * peak;
        if let Some(profile) = self.users.get_mut(user) {
            profile.capacity = profile.capacity.max(needed);
        }
    }

    fn window_around(
        &mut self,
        onset: i64,
        lead_min: std::ops::Range<i64>,
        len_min: std::ops::Range<i64>,
    ) -> (i64, i64) {
        let start = onset - self.rng.random_range(lead_min) * MINUTE;
        let end = start + self.rng.random_range(len_min) * MINUTE;
        (start, end)
    }

    fn status(&mut self) -> Option<&'static str> {
        [Some("in_progress"), Some("completed"), None][self.rng.random_range(0..3)]
    }

    fn firewall(&mut self, at: i64, budget: Option<i64>) -> Result<Slot, GenError> {
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
        let (start, end) = self.window_around(at, 2..10, 60..120);
        let status = self.status();
        let id = self.notice(
            Some(user),
            "Firewall rule migration to new DMZ",
            "network",
            start,
            end,
            status,
            &[],
        );
        self.incident(
            Some(user),
            IncidentKind::Backlog,
            at,
            Verdict::RegisteredChange,
            Some(id),
        );
        self.watch_last(user, at, at + longest + drain);
        Ok(Slot {
            anomaly_s: anomaly,
            recovery_s: drain + 10 * MINUTE,
        })
    }

    /// An endpoint outage of 20-30 minutes on a User with enough inbound traffic to build a clear backlog.
    fn outage(
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

    fn certificate(&mut self, at: i64) -> Result<Slot, GenError> {
        let (user, length) = self.outage(
            "certificate_failure (>= 3 inbound msg/s)",
            at,
            &[FailureReason::Tls],
        )?;
        let (start, end) = self.window_around(at, 1..6, 30..60);
        let status = self.status();
        let id = self.notice(
            Some(user),
            "DCCKI TLS certificate rotation",
            "certificate",
            start,
            end,
            status,
            &[],
        );
        self.incident(
            Some(user),
            IncidentKind::Backlog,
            at,
            Verdict::RegisteredChange,
            Some(id),
        );
        self.watch_last(user, at, at + 2 * length);
        Ok(Slot {
            anomaly_s: length,
            recovery_s: length + 10 * MINUTE,
        })
    }

    fn unregistered(&mut self, at: i64) -> Result<Slot, GenError> {
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

    fn mdm(&mut self, at: i64) -> Result<Slot, GenError> {
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
            "application",
            start,
            end,
            Some("in_progress"),
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

    fn firmware(&mut self, at: i64) -> Result<Slot, GenError> {
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
            "device",
            start,
            end,
            Some("in_progress"),
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

    fn campaign(&mut self, at: i64) -> Result<Slot, GenError> {
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
            "campaign",
            start,
            end,
            Some("in_progress"),
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
    fn small_campaign(&mut self, at: i64) -> Result<Slot, GenError> {
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
            "campaign",
            start,
            at + length + 5 * MINUTE,
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

    fn dcc(&mut self, at: i64) -> Result<Slot, GenError> {
        let length = self.rng.random_range(18..=22) * MINUTE;
        let building = self
            .users
            .iter()
            .filter(|p| p.inbound_at(self.shape, at) * length as f64 >= 300.0)
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
            "dcc_maintenance",
            start,
            end,
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

    fn hiccups(&mut self, at: i64) -> Result<Slot, GenError> {
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

    /// Changes that look related to the incident but must not be blamed: another (uninvolved, if there is one)
    /// User's change of the category that would fit, and the affected User's own change of a category that fits
    /// none of its incidents.
    fn near_decoys(&mut self, incident: usize) {
        let Some(planned) = self.plan.incidents.get(incident) else {
            return;
        };
        let (user, kind, onset) = (
            planned.truth.user.clone(),
            planned.truth.kind,
            planned.truth.onset / 1000,
        );
        let own = self.users.iter().position(|p| p.id.to_string() == user);
        let own_kinds: Vec<IncidentKind> = self
            .plan
            .incidents
            .iter()
            .filter(|i| i.truth.user == user)
            .map(|i| i.truth.kind)
            .collect();
        let fits = match kind {
            IncidentKind::Backlog => "network",
            // Another User's device change would be a real suspect for an alert storm, so not that.
            IncidentKind::RequestStorm | IncidentKind::RejectStorm | IncidentKind::AlertStorm => {
                "application"
            }
        };
        let other = self.uninvolved_user(own.as_slice());
        if own.is_some() {
            let (start, end) = self.decoy_window(onset);
            self.notice(
                Some(other),
                "Proxy replacement at secondary data centre",
                fits,
                start,
                end,
                Some("in_progress"),
                &[],
            );
        }
        let third = self.uninvolved_user(&[own.unwrap_or(other), other]);
        let (start, end) = self.decoy_window(onset - 15 * MINUTE);
        self.notice(
            Some(third),
            "Renew DCCKI client certificates",
            "certificate",
            start,
            end,
            Some("completed"),
            &[],
        );
        let wrong = ["application", "device", "network"]
            .into_iter()
            .find(|category| !own_kinds.iter().any(|k| category_fits(category, *k)))
            .unwrap_or("other");
        if wrong != "other" {
            let (start, end) = self.decoy_window(onset);
            let title = match wrong {
                "application" => "CRM integration release 4.2",
                "device" => "Smart meter configuration wave (tariff display)",
                _ => "Load balancer health-check tuning",
            };
            self.notice(
                Some(own.unwrap_or(other)),
                title,
                wrong,
                start,
                end,
                Some("in_progress"),
                &[],
            );
        }
    }

    /// A window open around `onset` that closes within half an hour of it, so that it cannot reach a later slot.
    fn decoy_window(&mut self, onset: i64) -> (i64, i64) {
        let start = onset - self.rng.random_range(5..30) * MINUTE;
        let end = onset + self.rng.random_range(5..30) * MINUTE;
        (start, end)
    }

    /// A User no scenario uses, other than `not`; any other User when there is none.
    fn uninvolved_user(&mut self, not: &[usize]) -> usize {
        let free: Vec<usize> = (0..self.users.len())
            .filter(|i| !not.contains(i) && !self.used[*i])
            .collect();
        if free.is_empty() {
            self.other_user(not)
        } else {
            free[self.rng.random_range(0..free.len())]
        }
    }

    /// Decoys near every incident when `everywhere`, and near unregistered ones always (that scenario is about
    /// them); without incidents, a few notices for changes that went fine.
    pub fn decoys(&mut self, everywhere: bool, end_s: i64) {
        let mut done: Vec<(String, i64)> = Vec::new();
        for index in 0..self.plan.incidents.len() {
            let truth = &self.plan.incidents[index].truth;
            // A request and a reject storm of one User at one time share their decoys.
            let key = (truth.user.clone(), truth.onset);
            if done.contains(&key) {
                continue;
            }
            if everywhere || truth.verdict == Verdict::UnregisteredChangeSuspected {
                done.push(key);
                self.near_decoys(index);
            }
        }
        if everywhere && self.plan.incidents.is_empty() {
            let span = (end_s - self.start_s).max(3600);
            for (title, category) in [
                ("DNS resolver migration", "network"),
                ("DCCKI certificate renewal", "certificate"),
                ("MDM patch 7.1.3", "application"),
            ] {
                let owner = self.other_user(&[]);
                let start = self.start_s + self.rng.random_range(0..span);
                let end = start + self.rng.random_range(20..60) * MINUTE;
                self.notice(
                    Some(owner),
                    title,
                    category,
                    start,
                    end,
                    Some("completed"),
                    &[],
                );
            }
        }
    }
}

/// The correlation rules of the brief: which change category can explain which incident kind.
fn category_fits(category: &str, kind: IncidentKind) -> bool {
    match category {
        "network" | "certificate" | "endpoint" | "dcc_maintenance" => kind == IncidentKind::Backlog,
        "application" => matches!(kind, IncidentKind::RequestStorm | IncidentKind::RejectStorm),
        "device" => kind == IncidentKind::AlertStorm,
        "campaign" => kind == IncidentKind::RequestStorm,
        _ => true,
    }
}
