//! Incident grouping: which incident a User's anomaly opens or joins (a network-wide one, by the share of active
//! Users or an improbable coincidence of onsets; the User's own; a common cause already open), and the upkeep of
//! open incidents (members joining and resolving, peaks, correlation with the change register).

use super::detect::backlog::DeliveryState;
use super::incidents::{Anomaly, Incident};
use super::lifecycle::Transition;
use super::user::UserKey;
use super::window::Flow;
use super::{Engine, IncidentUpdate, detect};
use crate::changes::correlate;
use crate::incident::{Affected, IncidentKind};

/// Seconds after a backlog's onset in which deliveries may still be of messages queued before it.
const DELIVERY_SETTLE_S: i64 = 5;

/// An open incident is correlated again once its peak ratio has grown by this fraction since it last was: the
/// verdict weighs the peak against a change's declared impact. Growth in steps bounds the work (about 230
/// correlations for a tenfold rise).
const RECORRELATE_GROWTH: f64 = 0.01;

impl Engine {
    pub(super) fn on_transition(
        &mut self,
        user: UserKey,
        kind: IncidentKind,
        second: i64,
        transition: Transition,
    ) {
        let slot = kind as usize;
        match transition {
            Transition::Started { since } => {
                let onset = self.users[user].onset(kind, since);
                self.anomalies[user][slot] =
                    Some(Anomaly::start(&self.users[user], kind, onset, since));
            }
            Transition::Cancelled => self.anomalies[user][slot] = None,
            Transition::Opened { pending_since } => {
                // A flapping series opens dated from its first episode, before this episode's own onset.
                if let Some(anomaly) = self.anomalies[user][slot].as_mut()
                    && pending_since < anomaly.onset_second
                {
                    let back = match kind {
                        IncidentKind::Backlog => self.config.detectors.backlog.min_age_s as i64,
                        _ => 0,
                    };
                    anomaly.onset_second = pending_since - back;
                    anomaly.watched_second = anomaly.watched_second.min(pending_since);
                }
                self.open(user, kind, second)
            }
            Transition::Resolved { at } => {
                if let Some(anomaly) = self.anomalies[user][slot].take()
                    && let Some(incident) = anomaly.incident
                {
                    self.resolve_member(incident, at);
                }
            }
        }
    }

    /// Users with an anomaly of `kind` whose onset is within the grouping window of `onset`.
    fn concurrent(&self, kind: IncidentKind, onset: i64) -> Vec<UserKey> {
        let window = self.config.network.onset_window_s;
        self.users
            .keys()
            .filter(|&u| {
                self.anomalies[u][kind as usize]
                    .as_ref()
                    .is_some_and(|a| (a.onset_second - onset).abs() <= window)
            })
            .collect()
    }

    /// The Users of `concurrent` whose onsets fall within the coincidence window of `onset`.
    fn coincident(&self, kind: IncidentKind, onset: i64, concurrent: &[UserKey]) -> Vec<UserKey> {
        let window = self.config.network.coincidence_window_s;
        concurrent
            .iter()
            .copied()
            .filter(|&u| {
                self.anomalies[u][kind as usize]
                    .as_ref()
                    .is_some_and(|a| (a.onset_second - onset).abs() <= window)
            })
            .collect()
    }

    fn active_users(&self, second: i64) -> usize {
        let since = second - self.config.network.active_window_s;
        self.users
            .values()
            .filter(|u| u.last_event_second >= since)
            .count()
    }

    fn open(&mut self, user: UserKey, kind: IncidentKind, second: i64) {
        let Some(onset) = self.anomalies[user][kind as usize]
            .as_ref()
            .map(|a| a.onset_second)
        else {
            return;
        };
        let network = &self.config.network;
        if let Some(common) = self.network_open[kind as usize]
            && (self.incidents[common].onset_second - network.onset_window_s
                ..=self.incidents[common].onset_second + network.join_window_s)
                .contains(&onset)
        {
            self.join(common, user, kind);
            return;
        }
        let concurrent = self.concurrent(kind, onset);
        let active = self.active_users(second);
        let by_share = concurrent.len() >= network.min_users
            && concurrent.len() as f64 >= network.min_share * active as f64;
        let coincident = if by_share {
            Vec::new()
        } else {
            self.coincident(kind, onset, &concurrent)
        };
        let improbable = coincident.len() >= network.min_users
            && network.coincidence_probability(active.max(coincident.len()), coincident.len())
                <= network.max_coincidence_probability;
        if !(by_share || improbable) {
            let incident = self.new_incident(
                Affected::User(self.users[user].id),
                kind,
                second,
                onset,
                concurrent.len(),
            );
            self.join(incident, user, kind);
            return;
        }
        let concurrent = if by_share { concurrent } else { coincident };
        let mut onsets: Vec<i64> = concurrent
            .iter()
            .filter_map(|&u| {
                self.anomalies[u][kind as usize]
                    .as_ref()
                    .map(|a| a.onset_second)
            })
            .collect();
        onsets.sort_unstable();
        let median = onsets[onsets.len() / 2];
        let common = self.new_incident(Affected::Network, kind, second, median, concurrent.len());
        self.incidents[common].onset_second = median;
        self.network_open[kind as usize] = Some(common);
        // Users already open on their own with the same onset are folded in; pending ones join as they open.
        for &member in &concurrent {
            if let Some(own) = self.anomalies[member][kind as usize]
                .as_ref()
                .and_then(|a| a.incident)
            {
                self.incidents[own].merged_into = Some(common);
                self.incidents.closed(own);
                self.updates.push(IncidentUpdate::Merged(own, common));
                self.join(common, member, kind);
            }
        }
        self.join(common, user, kind);
    }

    fn new_incident(
        &mut self,
        affected: Affected,
        kind: IncidentKind,
        second: i64,
        onset: i64,
        concurrent: usize,
    ) -> usize {
        let index = self.incidents.next_index();
        let id = if self.config.stable_ids {
            stable_id(affected, kind, onset)
        } else {
            format!("INC-{:06}", self.numbers.take())
        };
        self.incidents.push(Incident {
            id,
            affected,
            kind,
            onset_second: second,
            detected_second: second + 1,
            watched_second: None,
            resolved_second: None,
            members: Vec::new(),
            open_members: 0,
            peak_depth: 0,
            depth_at_detection: 0,
            peak_level: 0.0,
            baseline: 0.0,
            peak_age_s: 0,
            failed: 0,
            delivery_state: None,
            last_delivery: None,
            failure_reason: None,
            failures: [0; 6],
            delivered: 0,
            srvs: Vec::new(),
            alert_code: None,
            concurrent_users: concurrent.max(1) as u32,
            merged_into: None,
            correlation: None,
            correlated_ratio: 0.0,
        });
        self.updates.push(IncidentUpdate::Opened(index));
        index
    }

    fn join(&mut self, incident: usize, user: UserKey, kind: IncidentKind) {
        let Some(anomaly) = self.anomalies[user][kind as usize].as_mut() else {
            return;
        };
        if anomaly.incident == Some(incident) {
            return;
        }
        anomaly.incident = Some(incident);
        let state = &self.users[user];
        let target = &mut self.incidents[incident];
        target.members.push(user);
        target.open_members += 1;
        target.depth_at_detection += state.depth();
        if target.members.len() == 1 && target.affected != Affected::Network {
            target.onset_second = anomaly.onset_second;
        }
        target.baseline += anomaly.baseline;
        target.watched_second = Some(
            target
                .watched_second
                .map_or(anomaly.watched_second, |w| w.min(anomaly.watched_second)),
        );
        target.last_delivery = target.last_delivery.max(anomaly.last_delivery);
        if kind == IncidentKind::Backlog {
            // Judged over the seconds since the onset, less a few in which messages queued just before it may still
            // have been delivered: an outage opening a minute after its onset must not count the last deliveries
            // before it as "some still succeed".
            let since_onset = state.view.second - anomaly.onset_second - DELIVERY_SETTLE_S;
            let seconds = since_onset.clamp(10, 60);
            let delivered = state.recent_sum(Flow::Delivered, seconds);
            let failed = state.recent_sum(Flow::Failed, seconds);
            target
                .delivery_state
                .get_or_insert(DeliveryState::judge(delivered, failed));
            // The failure reason is evidence only when failures are a real share of the attempts of every member
            // so far: a stray timeout beside deliveries that merely slowed (shared capacity) is not the mechanism.
            let failures = state.failures_since(&anomaly.failures_at_start);
            for (total, count) in target.failures.iter_mut().zip(failures) {
                *total += count;
            }
            target.delivered += anomaly.delivered;
            target.failure_reason = detect::backlog::failing_reason(
                &target.failures,
                target.delivered,
                self.config.detectors.backlog.failing_share,
            );
        }
        if target.srvs.is_empty()
            && matches!(kind, IncidentKind::RequestStorm | IncidentKind::RejectStorm)
        {
            target.srvs = state.request_srvs.top().into_iter().take(3).collect();
        }
        if kind == IncidentKind::AlertStorm {
            target.alert_code = target
                .alert_code
                .or(state.alert_codes.top().first().copied());
        }
        self.correlate_one(incident);
        if kind == IncidentKind::RequestStorm {
            // A storm may explain backlogs already open elsewhere (shared capacity): judge them again.
            for position in 0..self.incidents.open_indices().len() {
                let open = self.incidents.open_indices()[position];
                if self.incidents[open].kind == IncidentKind::Backlog {
                    self.correlate_one(open);
                }
            }
        }
    }

    fn correlate_one(&mut self, incident: usize) {
        let horizon_s = self.config.correlator.storm_horizon_s;
        if let Some(facts) = self
            .incidents
            .facts_with_storms(incident, &self.users, horizon_s)
        {
            let correlation = correlate(&self.config.correlator, &facts, &self.changes);
            let record = &mut self.incidents[incident];
            record.correlation = Some(correlation);
            record.correlated_ratio = facts.peak_ratio;
        }
    }

    fn resolve_member(&mut self, incident: usize, at: i64) {
        let target = self
            .incidents
            .get(incident)
            .and_then(|i| i.merged_into)
            .unwrap_or(incident);
        let record = &mut self.incidents[target];
        record.open_members = record.open_members.saturating_sub(1);
        if record.open_members == 0 {
            record.resolved_second = Some(at.max(record.detected_second));
            if let Some(open) = self.network_open.iter_mut().find(|o| **o == Some(target)) {
                *open = None;
            }
            // Its figures are final: the verdict is judged on them, as a replay judges it at the end.
            self.correlate_one(target);
            self.incidents.closed(target);
            self.updates.push(IncidentUpdate::Resolved(target));
        }
    }

    /// Peaks of open incidents: single-User ones from their anomaly, common-cause ones summed over members.
    pub(super) fn track_network_peaks(&mut self) {
        for position in 0..self.incidents.open_indices().len() {
            let index = self.incidents.open_indices()[position];
            let Some(incident) = self.incidents.get_mut(index) else {
                continue;
            };
            let kind = incident.kind as usize;
            let (mut depth, mut level, mut age, mut failed) = (0, 0.0, 0, 0);
            for &member in &incident.members {
                if let Some(anomaly) = &self.anomalies[member][kind] {
                    depth += self.users[member].depth();
                    level += self.users[member].readings[kind].level;
                    age = age.max(anomaly.peak_age_s);
                    failed += anomaly.failed;
                }
            }
            incident.peak_depth = incident.peak_depth.max(depth);
            incident.peak_age_s = incident.peak_age_s.max(age);
            incident.failed = incident.failed.max(failed);
            if incident.kind == IncidentKind::RejectStorm {
                // Shares do not add up across Users: keep the worst.
                level = incident
                    .members
                    .iter()
                    .map(|&m| self.users[m].readings[kind].level)
                    .fold(0.0, f64::max);
            }
            incident.peak_level = incident.peak_level.max(level);
        }
        for position in 0..self.incidents.open_indices().len() {
            let index = self.incidents.open_indices()[position];
            if self.incidents.get(index).is_some_and(|incident| {
                incident.correlation.is_some()
                    && incident.ratio() > incident.correlated_ratio * (1.0 + RECORRELATE_GROWTH)
            }) {
                self.correlate_one(index);
            }
        }
    }

    /// Re-runs correlation for every incident (at the end of input, or when the change register changed).
    pub fn correlate_all(&mut self) {
        for index in self.incidents.indices() {
            self.correlate_one(index);
        }
    }
}

/// `INC-backlog-90B3D51F30010007-1773133500`: kind, User (or `NET`) and onset second. The onset is a function
/// of the User's own events, so any engine that has seen enough of them derives the same name.
fn stable_id(affected: Affected, kind: IncidentKind, onset_second: i64) -> String {
    let who = match affected {
        Affected::User(user) => format!("{:016X}", user.0),
        Affected::Network => "NET".to_owned(),
    };
    format!("INC-{}-{who}-{onset_second}", kind.as_str())
}
