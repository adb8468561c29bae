//! The pending -> open -> resolved state machine of one (User, kind), with hysteresis so one storm is one incident.

/// When a tracker opens and resolves.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LifecycleConfig {
    /// Seconds an anomaly must persist (counting from the first bad second) before it opens.
    pub open_after_s: u32,
    /// Seconds of normal readings a pending anomaly survives (noise in the middle of a real step).
    pub pending_gap_s: u32,
    /// Seconds of calm readings before an open incident resolves.
    pub resolve_after_s: u32,
}

/// Where a tracker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Phase {
    #[default]
    Idle,
    Pending {
        since: i64,
        last_bad: i64,
    },
    Open {
        since: i64,
        calm_since: Option<i64>,
    },
}

/// What changed in this second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transition {
    Started {
        since: i64,
    },
    Cancelled,
    Opened {
        pending_since: i64,
    },
    /// Resolved at `at`: the first second of the calm run that ended it.
    Resolved {
        at: i64,
    },
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tracker {
    pub phase: Phase,
}

impl Tracker {
    /// Feeds one closed second. `bad`: the anomaly condition holds; `calm`: the stricter all-clear holds;
    /// `may_open`: extra conditions for opening (e.g. a minimum depth).
    pub fn step(
        &mut self,
        config: &LifecycleConfig,
        second: i64,
        bad: bool,
        calm: bool,
        may_open: bool,
    ) -> Option<Transition> {
        match self.phase {
            Phase::Idle if bad => {
                self.phase = Phase::Pending {
                    since: second,
                    last_bad: second,
                };
                Some(Transition::Started { since: second })
            }
            Phase::Idle => None,
            Phase::Pending { since, last_bad } => {
                let last_bad = if bad { second } else { last_bad };
                if second - last_bad > i64::from(config.pending_gap_s) {
                    self.phase = Phase::Idle;
                    return Some(Transition::Cancelled);
                }
                self.phase = Phase::Pending { since, last_bad };
                if bad && may_open && second - since + 1 >= i64::from(config.open_after_s) {
                    self.phase = Phase::Open {
                        since: second,
                        calm_since: None,
                    };
                    return Some(Transition::Opened {
                        pending_since: since,
                    });
                }
                None
            }
            Phase::Open { since, calm_since } => {
                let calm_since = match (calm && !bad, calm_since) {
                    (false, _) => None,
                    (true, None) => Some(second),
                    (true, Some(start)) => Some(start),
                };
                if let Some(start) = calm_since
                    && second - start + 1 >= i64::from(config.resolve_after_s)
                {
                    self.phase = Phase::Idle;
                    return Some(Transition::Resolved { at: start });
                }
                self.phase = Phase::Open { since, calm_since };
                None
            }
        }
    }

    pub fn is_active(&self) -> bool {
        self.phase != Phase::Idle
    }

    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: LifecycleConfig = LifecycleConfig {
        open_after_s: 5,
        pending_gap_s: 2,
        resolve_after_s: 4,
    };

    fn run(readings: &str) -> Vec<(i64, Transition)> {
        let mut tracker = Tracker::default();
        readings
            .chars()
            .enumerate()
            .filter_map(|(second, c)| {
                let (bad, calm) = match c {
                    'B' => (true, false),
                    '.' => (false, true),
                    _ => (false, false),
                };
                tracker
                    .step(&CONFIG, second as i64, bad, calm, true)
                    .map(|t| (second as i64, t))
            })
            .collect()
    }

    #[test]
    fn short_blip_is_cancelled_without_opening() {
        assert_eq!(
            run("..BBB....."),
            vec![
                (2, Transition::Started { since: 2 }),
                (7, Transition::Cancelled)
            ]
        );
    }

    #[test]
    fn sustained_anomaly_opens_once_and_resolves_after_calm() {
        let transitions = run("..BB.BBBB~~B......");
        assert_eq!(
            transitions,
            vec![
                (2, Transition::Started { since: 2 }),
                (6, Transition::Opened { pending_since: 2 }),
                (15, Transition::Resolved { at: 12 }),
            ]
        );
    }

    #[test]
    fn flapping_inside_an_open_incident_does_not_resolve_it() {
        let transitions = run("BBBBB..B..B..B.....");
        assert_eq!(
            transitions
                .iter()
                .filter(|(_, t)| matches!(t, Transition::Opened { .. }))
                .count(),
            1
        );
        assert_eq!(
            transitions.last(),
            Some(&(17, Transition::Resolved { at: 14 }))
        );
    }
}
