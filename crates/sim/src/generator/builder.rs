//! The plan builder: picks Users for scenarios, numbers and writes change notices, records truth entries, and
//! dispatches each scenario to its recipe (in `scenarios`) and decoys (in `decoys`).

use rand::Rng;
use rand::rngs::StdRng;

use super::GenError;
use super::options::Scenario;
use super::plan::{Plan, PlannedIncident, Slot};
use super::population::Profile;
use super::shape::DailyShape;
use super::truth::TruthIncident;
use stormwatch_core::changes::{Category, ChangeNotice, ChangeOwner, ChangeStatus};
use stormwatch_core::incident::{IncidentKind, Verdict};
use stormwatch_core::telemetry::Srv;

/// The backlog of the firewall incident in `docs/domain.md`.
pub(crate) const FIREWALL_TARGET_DEPTH: u64 = 1_500_000;
pub(crate) const MINUTE: i64 = 60;

/// Builds scenarios one at a time into a [`Plan`].
pub(crate) struct Builder<'a> {
    pub(super) users: &'a mut [Profile],
    pub(super) shape: &'a DailyShape,
    pub(super) rng: &'a mut StdRng,
    pub(super) used: Vec<bool>,
    pub(super) next_change: u32,
    pub(super) year: i64,
    pub(super) start_s: i64,
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

    pub(super) fn largest_supplier(&self) -> Option<usize> {
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
            .sort_by(|a, b| (a.start_ms, &a.id).cmp(&(b.start_ms, &b.id)));
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
            Scenario::ClockSkew => self.clock_skew(at),
            Scenario::Flapping => self.flapping(at),
            Scenario::SlowLeak => self.slow_leak(at),
            Scenario::PartialSrv => self.partial_srv(at),
            Scenario::Ramp => self.ramp(at),
            Scenario::SmallUsers => self.small_users(at),
            Scenario::UnregisteredBacklog => self.unregistered(at),
            Scenario::MdmStorm => self.mdm(at),
            Scenario::FirmwareAlertStorm => self.firmware(at),
            Scenario::RegisteredCampaign => self.campaign(at),
            Scenario::DccMaintenance => self.dcc(at),
            Scenario::Hiccups => self.hiccups(at),
            Scenario::Bursts => self.bursts(at),
            Scenario::SmallCampaign => self.small_campaign(at),
            Scenario::OverranWindow => self.overran_window(at),
            Scenario::ReregisteredNotice => self.reregistered_notice(at),
            Scenario::DeviceDecoys => self.device_decoys(at),
            Scenario::SharedCapacity => self.shared_capacity(at),
            Scenario::DuplicateLines => self.duplicate_lines(at),
            Scenario::LargeNetwork => self.large_network(at),
            // Decoys are added around the other scenarios' incidents once they are all laid out.
            Scenario::Decoys => Ok(Slot {
                anomaly_s: 0,
                recovery_s: 0,
            }),
        }
    }

    /// The first User satisfying `fits` that no scenario has taken yet.
    pub(super) fn pick(
        &mut self,
        what: &str,
        fits: impl Fn(&Profile) -> bool,
    ) -> Result<usize, GenError> {
        // Never a User another scenario has: an earlier scenario's change could then explain a later incident.
        let chosen = (0..self.users.len())
            .find(|&i| !self.used[i] && fits(&self.users[i]))
            .ok_or_else(|| {
                GenError::Plan(format!(
                    "no User left for {what} (each scenario needs Users of its own): raise --users"
                ))
            })?;
        self.used[chosen] = true;
        Ok(chosen)
    }

    /// Any User other than `not` (deterministic by the scenario RNG).
    pub(super) fn other_user(&mut self, not: &[usize]) -> usize {
        let others: Vec<usize> = (0..self.users.len()).filter(|i| !not.contains(i)).collect();
        others[self.rng.random_range(0..others.len())]
    }

    pub(super) fn change_id(&mut self) -> String {
        self.next_change += self.rng.random_range(1..6);
        format!("CHG-{}-{:04}", self.year, self.next_change)
    }

    /// Registers a notice; `window` is (start, end) in Unix seconds. Returns its id.
    pub(super) fn notice(
        &mut self,
        owner: Option<usize>,
        title: &str,
        category: Category,
        window: (i64, i64),
        status: Option<ChangeStatus>,
        srvs: &[&str],
    ) -> String {
        let (start, end) = window;
        let (id, user) = match owner {
            Some(index) => (self.change_id(), ChangeOwner::User(self.users[index].id)),
            None => {
                self.next_change += 1;
                (
                    format!("DCC-PM-{}-{:02}", self.year, self.next_change % 100),
                    ChangeOwner::Dcc,
                )
            }
        };
        let contact = match category {
            Category::Network | Category::Endpoint => "netops@example.invalid",
            Category::Certificate => "pki@example.invalid",
            Category::DccMaintenance => "dcc-service-desk@example.invalid",
            _ => "change-manager@example.invalid",
        };
        self.plan.changes.push(ChangeNotice {
            id: id.clone(),
            owner: user,
            title: title.to_owned(),
            category,
            start_ms: start * 1000,
            end_ms: end * 1000,
            status: status.unwrap_or_default(),
            srvs: srvs.iter().filter_map(|s| Srv::parse(s)).collect(),
            expected: None,
            contact: Some(contact.to_owned()),
        });
        id
    }

    pub(super) fn incident(
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

    pub(super) fn watch_last(&mut self, user: usize, from: i64, until: i64) {
        if let Some(last) = self.plan.incidents.last_mut() {
            last.peak_watch = Some((user, from, until));
        }
    }

    /// Raises `user`'s capacity to twice the inbound it will see with `extra` more messages a second (at the
    /// daily-shape multiplier `scale_of` picks), so that a storm never also builds a backlog.
    pub(super) fn cover_surge(
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

    /// The registered change behind `user`'s backlog from `at`: its window drawn around the onset (`lead_min`
    /// before it, `len_min` long, as [`Builder::window_around`]), a random status, the backlog in the truth with
    /// that change as its cause, and the User watched from `at` until `watched_until`.
    pub(super) fn registered_backlog(
        &mut self,
        user: usize,
        at: i64,
        (title, category): (&str, Category),
        (lead_min, len_min): (std::ops::Range<i64>, std::ops::Range<i64>),
        watched_until: i64,
    ) {
        let window = self.window_around(at, lead_min, len_min);
        let status = self.status();
        let id = self.notice(Some(user), title, category, window, status, &[]);
        self.backlog_caused_by(user, at, id, watched_until);
    }

    /// `user`'s backlog from `at` in the truth, caused by the registered change `id`, and the User watched from
    /// `at` until `watched_until`.
    pub(super) fn backlog_caused_by(
        &mut self,
        user: usize,
        at: i64,
        id: String,
        watched_until: i64,
    ) {
        self.incident(
            Some(user),
            IncidentKind::Backlog,
            at,
            Verdict::RegisteredChange,
            Some(id),
        );
        self.watch_last(user, at, watched_until);
    }

    pub(super) fn window_around(
        &mut self,
        onset: i64,
        lead_min: std::ops::Range<i64>,
        len_min: std::ops::Range<i64>,
    ) -> (i64, i64) {
        let start = onset - self.rng.random_range(lead_min) * MINUTE;
        let end = start + self.rng.random_range(len_min) * MINUTE;
        (start, end)
    }

    pub(super) fn status(&mut self) -> Option<ChangeStatus> {
        [
            Some(ChangeStatus::InProgress),
            Some(ChangeStatus::Completed),
            None,
        ][self.rng.random_range(0..3)]
    }
}
