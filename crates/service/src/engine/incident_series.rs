//! An incident's chart for its whole life, kept by the engine thread and persisted with the incident: per second
//! around onset and detection, then per 10 s for the first hour, then per minute (the oldest minutes dropped
//! past a day), so memory and the stored JSON stay bounded however long the incident runs.

use serde::{Deserialize, Serialize};

use stormwatch_core::engine::window::{Flow, SecondCounts};

/// Per-second points from this long before the onset...
pub const BEFORE_ONSET_S: i64 = 120;
/// ...to this long after detection...
pub const FINE_AFTER_DETECTION_S: i64 = 300;
/// ...but never more than this many per-second points (an onset estimated long before detection).
pub const MAX_FINE_POINTS: i64 = 1_800;
/// Per-10-second points up to this long after detection, then per-minute points.
pub const TEN_S_UNTIL_S: i64 = 3_600;
/// At most this many per-minute points (a day); the oldest go first.
pub const MAX_MINUTE_POINTS: usize = 1_440;
/// A `*` incident charts at most this many of its Users.
pub const MAX_USERS: usize = 10;

/// One point of a User's chart: `step_s` seconds from `ts` (ms), flows summed and the deepest queue in them.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct SeriesPoint {
    pub ts: i64,
    #[serde(default = "one")]
    pub step_s: u32,
    /// Seconds actually in the point: fewer than `step_s` at a tier's edge and while it fills.
    #[serde(default = "one")]
    pub seconds: u32,
    pub depth: u64,
    pub requests: u64,
    pub rejected: u64,
    pub queued_responses: u64,
    pub queued_alerts: u64,
    pub delivered: u64,
    pub delivery_failed: u64,
    pub expired: u64,
}

fn one() -> u32 {
    1
}

impl SeriesPoint {
    pub fn of_second(second: i64, counts: &SecondCounts) -> SeriesPoint {
        SeriesPoint {
            ts: second * 1000,
            step_s: 1,
            seconds: 1,
            depth: counts.depth_end,
            requests: counts.get(Flow::Requests),
            rejected: counts.get(Flow::Rejected),
            queued_responses: counts.get(Flow::QueuedResponses),
            queued_alerts: counts.get(Flow::QueuedAlerts),
            delivered: counts.get(Flow::Delivered),
            delivery_failed: counts.get(Flow::Failed),
            expired: counts.get(Flow::Expired),
        }
    }

    fn absorb(&mut self, other: &SeriesPoint) {
        self.seconds += other.seconds;
        self.depth = self.depth.max(other.depth);
        self.requests += other.requests;
        self.rejected += other.rejected;
        self.queued_responses += other.queued_responses;
        self.queued_alerts += other.queued_alerts;
        self.delivered += other.delivered;
        self.delivery_failed += other.delivery_failed;
        self.expired += other.expired;
    }
}

/// One User's chart within an incident.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct UserSeries {
    pub user: String,
    /// Whole points, oldest first; the point still filling is last once it is complete.
    pub points: Vec<SeriesPoint>,
    /// The point still filling (part of a 10 s or 60 s step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filling: Option<SeriesPoint>,
    /// The next second to add.
    pub next_second: i64,
}

/// An incident's charts, one per User (at most [`MAX_USERS`]).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct IncidentSeries {
    pub onset_s: i64,
    pub detected_s: i64,
    pub users: Vec<UserSeries>,
}

impl IncidentSeries {
    pub fn new(onset_ms: i64, detected_ms: i64) -> IncidentSeries {
        IncidentSeries {
            onset_s: onset_ms.div_euclid(1000),
            detected_s: detected_ms.div_euclid(1000),
            users: Vec::new(),
        }
    }

    /// The first second charted.
    pub fn first_second(&self) -> i64 {
        self.onset_s - BEFORE_ONSET_S
    }

    /// The chart of `user`, started (from the first second) if it is new and there is room.
    pub fn user_mut(&mut self, user: &str) -> Option<&mut UserSeries> {
        let found = self.users.iter().position(|u| u.user == user);
        let index = match found {
            Some(index) => index,
            None if self.users.len() < MAX_USERS => {
                self.users.push(UserSeries {
                    user: user.to_owned(),
                    points: Vec::new(),
                    filling: None,
                    next_second: self.first_second(),
                });
                self.users.len() - 1
            }
            None => return None,
        };
        self.users.get_mut(index)
    }

    /// Seconds per point at `second`.
    pub fn step_at(&self, second: i64) -> i64 {
        let fine_end =
            (self.detected_s + FINE_AFTER_DETECTION_S).min(self.first_second() + MAX_FINE_POINTS);
        if second < fine_end {
            1
        } else if second < self.detected_s + TEN_S_UNTIL_S {
            10
        } else {
            60
        }
    }

    /// Adds `point` (one second) to `user`'s chart. Seconds must come in order; one already added is ignored.
    pub fn push(&mut self, user: usize, point: SeriesPoint) {
        let second = point.ts.div_euclid(1000);
        let step = self.step_at(second);
        let Some(series) = self.users.get_mut(user) else {
            return;
        };
        if second < series.next_second {
            return;
        }
        series.next_second = second + 1;
        let continues = series
            .filling
            .as_ref()
            .is_some_and(|f| i64::from(f.step_s) == step && second < bucket_end(f));
        if continues {
            if let Some(filling) = &mut series.filling {
                filling.absorb(&point);
            }
        } else {
            // A coarser tier's first point starts where the finer one ended, not on its own boundary before it.
            let previous = series.filling.as_ref().or(series.points.last());
            let start = (second.div_euclid(step) * step).max(previous.map_or(i64::MIN, bucket_end));
            if let Some(done) = series.filling.take() {
                series.points.push(done);
                if step == 60 {
                    drop_oldest_minutes(&mut series.points);
                }
            }
            series.filling = Some(SeriesPoint {
                ts: start * 1000,
                step_s: step as u32,
                ..point
            });
        }
        if step == 1
            && let Some(done) = series.filling.take()
        {
            series.points.push(done);
        }
    }

    /// Each User's points as the API serves them, the one still filling included.
    pub fn charts(&self) -> Vec<(String, Vec<SeriesPoint>)> {
        self.users
            .iter()
            .map(|u| {
                let mut points = u.points.clone();
                points.extend(u.filling.clone());
                (u.user.clone(), points)
            })
            .collect()
    }
}

/// The second after the step-aligned bucket a point falls in (a partial point at a tier's edge ends there too).
fn bucket_end(point: &SeriesPoint) -> i64 {
    let step = i64::from(point.step_s.max(1));
    point.ts.div_euclid(1000).div_euclid(step) * step + step
}

/// Keeps at most [`MAX_MINUTE_POINTS`] per-minute points; the seconds around onset and detection always stay.
fn drop_oldest_minutes(points: &mut Vec<SeriesPoint>) {
    let minutes = points.iter().rev().take_while(|p| p.step_s == 60).count();
    if minutes > MAX_MINUTE_POINTS {
        let first_minute = points.len() - minutes;
        points.drain(first_minute..first_minute + (minutes - MAX_MINUTE_POINTS));
    }
}

#[cfg(test)]
#[path = "incident_series_tests.rs"]
mod tests;
