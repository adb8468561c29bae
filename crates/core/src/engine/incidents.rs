//! The incident book: anomalies becoming incidents, many Users grouped into one common cause, peaks and evidence
//! kept up to date, and rendering into report records.

use super::detect::backlog::DeliveryState;
use super::user::{UserKey, UserState, Users};
use super::window::Flow;
use crate::incident::{Affected, Correlation, IncidentFacts, IncidentKind, StormNear, Verdict};
use crate::report::{Evidence, IncidentRecord};
use crate::telemetry::{AlertCode, Srv};

/// An anomaly of one (User, kind), from its first bad second until it resolves or is cancelled.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Anomaly {
    pub onset_second: i64,
    /// The second the anomaly went on watch (its first pending second; a flapping series' first episode).
    #[serde(default)]
    pub watched_second: i64,
    pub baseline: f64,
    pub peak_level: f64,
    pub peak_depth: u64,
    pub peak_age_s: u64,
    pub failed: u64,
    /// Messages delivered since the anomaly began.
    #[serde(default)]
    pub delivered: u64,
    pub failures_at_start: [u64; 6],
    pub last_delivery: Option<i64>,
    /// The incident it belongs to, once open.
    pub incident: Option<usize>,
}

impl Anomaly {
    pub fn start(
        user: &UserState,
        kind: IncidentKind,
        onset_second: i64,
        watched_second: i64,
    ) -> Anomaly {
        let reading = user.readings[kind as usize];
        Anomaly {
            onset_second,
            watched_second,
            baseline: reading.baseline,
            peak_level: reading.level,
            peak_depth: user.depth(),
            peak_age_s: user.view.backlog_age_s,
            failed: 0,
            delivered: 0,
            failures_at_start: user.failure_reasons,
            last_delivery: user.last_delivery_second.filter(|&s| s < onset_second),
            incident: None,
        }
    }

    /// Folds in the second just closed.
    pub fn observe(&mut self, user: &UserState, kind: IncidentKind) {
        self.peak_level = self.peak_level.max(user.readings[kind as usize].level);
        self.peak_depth = self.peak_depth.max(user.depth());
        self.peak_age_s = self.peak_age_s.max(user.view.backlog_age_s);
        self.failed += user.view.now.get(Flow::Failed);
        self.delivered += user.view.now.get(Flow::Delivered);
    }

    pub fn ratio(&self) -> f64 {
        self.peak_level
            / self
                .baseline
                .max(crate::engine::detect::reject::SHARE_FLOOR)
    }
}

/// One incident: a single User's, or a common cause spanning many Users (`*`). Its members are [`UserKey`]s in
/// the engine; a snapshot names them by their place in the snapshot's User list (`U = usize`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Incident<U = UserKey> {
    pub id: String,
    pub affected: Affected,
    pub kind: IncidentKind,
    pub onset_second: i64,
    pub detected_second: i64,
    /// When its first member went on watch (see [`Anomaly::watched_second`]).
    #[serde(default)]
    pub watched_second: Option<i64>,
    pub resolved_second: Option<i64>,
    /// The member Users (one for a single-User incident).
    pub members: Vec<U>,
    /// Members whose own anomaly has not resolved yet.
    pub open_members: usize,
    pub peak_depth: u64,
    pub depth_at_detection: u64,
    pub peak_level: f64,
    pub baseline: f64,
    pub peak_age_s: u64,
    pub failed: u64,
    pub delivery_state: Option<DeliveryState>,
    pub last_delivery: Option<i64>,
    pub failure_reason: Option<crate::telemetry::FailureReason>,
    /// Failed deliveries by reason and deliveries of the members since their anomalies began, as they joined:
    /// what `failure_reason` is judged from.
    #[serde(default)]
    pub failures: [u64; 6],
    #[serde(default)]
    pub delivered: u64,
    pub srvs: Vec<Srv>,
    pub alert_code: Option<AlertCode>,
    pub concurrent_users: u32,
    /// Set when this single-User incident was folded into a common-cause incident.
    pub merged_into: Option<usize>,
    pub correlation: Option<Correlation>,
    /// The peak ratio the correlation was last worked out with: a peak that grows past a change's declared impact
    /// turns its verdict, live as at the end of a replay (which correlates every incident again).
    #[serde(default)]
    pub correlated_ratio: f64,
}

impl<U> Incident<U> {
    pub fn is_open(&self) -> bool {
        self.resolved_second.is_none() && self.merged_into.is_none()
    }

    pub fn ratio(&self) -> f64 {
        self.peak_level
            / self
                .baseline
                .max(crate::engine::detect::reject::SHARE_FLOOR)
    }

    /// The same incident with its members named by `name` (keys to snapshot places and back); `None` when a
    /// member has no name.
    pub fn rename_members<V>(&self, name: &mut impl FnMut(&U) -> Option<V>) -> Option<Incident<V>> {
        Some(Incident {
            id: self.id.clone(),
            affected: self.affected,
            kind: self.kind,
            onset_second: self.onset_second,
            detected_second: self.detected_second,
            watched_second: self.watched_second,
            resolved_second: self.resolved_second,
            members: self.members.iter().map(&mut *name).collect::<Option<_>>()?,
            open_members: self.open_members,
            peak_depth: self.peak_depth,
            depth_at_detection: self.depth_at_detection,
            peak_level: self.peak_level,
            baseline: self.baseline,
            peak_age_s: self.peak_age_s,
            failed: self.failed,
            delivery_state: self.delivery_state,
            last_delivery: self.last_delivery,
            failure_reason: self.failure_reason,
            failures: self.failures,
            delivered: self.delivered,
            srvs: self.srvs.clone(),
            alert_code: self.alert_code,
            concurrent_users: self.concurrent_users,
            merged_into: self.merged_into,
            correlation: self.correlation.clone(),
            correlated_ratio: self.correlated_ratio,
        })
    }
}

impl Incident {
    /// The members' IDs. A member stays in the table while an incident names it (eviction checks), so every key
    /// resolves; one that did not would be left out rather than name another User.
    fn member_ids(&self, users: &Users) -> impl Iterator<Item = crate::telemetry::Eui64> {
        self.members
            .iter()
            .filter_map(|&m| users.get(m).map(|state| state.id))
    }

    pub fn facts(&self, users: &Users) -> IncidentFacts {
        IncidentFacts {
            affected: self.affected,
            users: self.member_ids(users).collect(),
            kind: self.kind,
            onset_ms: self.onset_second * 1000,
            concurrent_users: self.concurrent_users,
            peak_ratio: self.ratio(),
            srvs: self.srvs.clone(),
            failure_reason: self.failure_reason,
            alert_code: self.alert_code,
            delivering: self.delivery_state == Some(DeliveryState::Warn),
            storms: Vec::new(),
        }
    }

    pub fn record(&self, users: &Users) -> IncidentRecord {
        let correlation = self.correlation.clone().unwrap_or(Correlation {
            suspects: Vec::new(),
            verdict: Verdict::UnregisteredChangeSuspected,
        });
        let backlog = self.kind == IncidentKind::Backlog;
        IncidentRecord {
            id: self.id.clone(),
            user: match self.affected {
                Affected::User(user) => user.to_string(),
                Affected::Network => "*".to_owned(),
            },
            kind: self.kind,
            onset: self.onset_second * 1000,
            detected: self.detected_second * 1000,
            resolved: self.resolved_second.map(|s| s * 1000),
            peak_depth: self.peak_depth,
            verdict: correlation.verdict,
            suspects: correlation.suspects,
            peak_rate: round2(self.peak_level),
            baseline_rate: round2(self.baseline),
            peak_ratio: round2(self.ratio()),
            users: match self.affected {
                Affected::Network => self.member_ids(users).map(|id| id.to_string()).collect(),
                Affected::User(_) => Vec::new(),
            },
            evidence: Evidence {
                delivery_state: self.delivery_state.map(|s| s.as_str().to_owned()),
                failed_deliveries: self.failed,
                failure_reason: self.failure_reason.map(|r| r.as_str().to_owned()),
                last_delivery: self.last_delivery.map(|s| s * 1000),
                peak_backlog_age_s: backlog.then_some(self.peak_age_s),
                srvs: self.srvs.iter().map(Srv::to_string).collect(),
                alert_code: self.alert_code.map(|a| a.to_string()),
                depth_at_detection: self.depth_at_detection,
                concurrent_users: self.concurrent_users,
                // The end of the closed second, as `detected` is.
                watched: self.watched_second.map(|s| (s + 1) * 1000),
            },
        }
    }
}

/// Rounds to 2 decimals so reports are stable and readable.
pub fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Every incident the engine still holds, addressed by a global index that never changes (the ID's number comes
/// from `incident_numbers`, not from it). Resolved incidents can be pruned from the front once persisted, so a long-running service stays bounded;
/// the open ones are listed so per-second work does not scan history.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct IncidentBook<U = UserKey> {
    /// Global index of `list[0]`.
    base: usize,
    list: std::collections::VecDeque<Incident<U>>,
    open: Vec<usize>,
}

impl<U> IncidentBook<U> {
    /// The same book with every incident's members named by `name` (see [`Incident::rename_members`]).
    pub fn rename_members<V>(
        &self,
        mut name: impl FnMut(&U) -> Option<V>,
    ) -> Option<IncidentBook<V>> {
        Some(IncidentBook {
            base: self.base,
            list: self
                .list
                .iter()
                .map(|incident| incident.rename_members(&mut name))
                .collect::<Option<_>>()?,
            open: self.open.clone(),
        })
    }
}

impl IncidentBook {
    /// The global index the next incident will get.
    pub fn next_index(&self) -> usize {
        self.base + self.list.len()
    }

    pub fn push(&mut self, incident: Incident) -> usize {
        let index = self.next_index();
        self.list.push_back(incident);
        self.open.push(index);
        index
    }

    pub fn get(&self, index: usize) -> Option<&Incident> {
        index.checked_sub(self.base).and_then(|i| self.list.get(i))
    }

    pub fn get_mut(&mut self, index: usize) -> Option<&mut Incident> {
        index
            .checked_sub(self.base)
            .and_then(|i| self.list.get_mut(i))
    }

    /// Marks an incident as no longer open (resolved or merged).
    pub fn closed(&mut self, index: usize) {
        self.open.retain(|&i| i != index);
    }

    /// Global indices of every incident still held.
    pub fn indices(&self) -> std::ops::Range<usize> {
        self.base..self.next_index()
    }

    pub fn open_indices(&self) -> &[usize] {
        &self.open
    }

    /// The correlator's facts for incident `index`, with other Users' request storms near a backlog's onset (the
    /// shared-capacity path). Only at correlation time, never per event.
    pub fn facts_with_storms(
        &self,
        index: usize,
        users: &Users,
        horizon_s: i64,
    ) -> Option<IncidentFacts> {
        let incident = self.get(index)?;
        let mut facts = incident.facts(users);
        if incident.kind == IncidentKind::Backlog {
            facts.storms = self
                .iter()
                .filter(|other| other.kind == IncidentKind::RequestStorm)
                .filter(|other| (other.onset_second - incident.onset_second).abs() <= horizon_s)
                .filter_map(|other| match other.affected {
                    Affected::User(user) => Some(StormNear {
                        user,
                        onset_ms: other.onset_second * 1000,
                    }),
                    Affected::Network => None,
                })
                .collect();
        }
        Some(facts)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Incident> {
        self.list.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Incident> {
        self.list.iter_mut()
    }

    /// True if an incident still held names User `user` (open or resolved, until pruned).
    pub fn names_user(&self, user: UserKey) -> bool {
        self.list.iter().any(|i| i.members.contains(&user))
    }

    /// Drops the oldest incidents that closed before `second`, stopping at the first one still open or recent.
    pub fn prune_closed_before(&mut self, second: i64) -> usize {
        let mut pruned = 0;
        while let Some(front) = self.list.front()
            && !front.is_open()
            && front.resolved_second.unwrap_or(front.detected_second) < second
        {
            self.list.pop_front();
            self.base += 1;
            pruned += 1;
        }
        pruned
    }
}

impl std::ops::Index<usize> for IncidentBook {
    type Output = Incident;
    fn index(&self, index: usize) -> &Incident {
        &self.list[index - self.base]
    }
}

impl std::ops::IndexMut<usize> for IncidentBook {
    fn index_mut(&mut self, index: usize) -> &mut Incident {
        &mut self.list[index - self.base]
    }
}
