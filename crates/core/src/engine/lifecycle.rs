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
    /// A flapping condition: this many pending episodes in a row (the current one included), each starting
    /// within `flap_gap_s` of the previous one's end and together bad for `open_after_s`, open one incident dated
    /// from the first, though none lasted long enough alone. 0 turns it off.
    #[serde(default)]
    pub flap_episodes: u32,
    #[serde(default)]
    pub flap_gap_s: u32,
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
        /// Opened from a flapping series: calm must outlast the gap between flaps before it resolves.
        #[serde(default)]
        flapping: bool,
    },
}

/// The recent series of pending episodes that were cancelled before opening.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Flaps {
    /// First bad second of the series' first episode.
    pub since: i64,
    /// Last bad second of the latest episode.
    pub last_end: i64,
    pub episodes: u32,
    /// Bad seconds over the series (first to last bad second of each episode).
    pub bad_s: i64,
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
    #[serde(default)]
    pub flaps: Flaps,
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
                    self.note_episode(config, since, last_bad);
                    return Some(Transition::Cancelled);
                }
                self.phase = Phase::Pending { since, last_bad };
                if !(bad && may_open) {
                    return None;
                }
                let alone = second - since + 1 >= i64::from(config.open_after_s);
                let flapping = !alone && self.flapping(config, since, second);
                if alone || flapping {
                    let pending_since = if flapping { self.flaps.since } else { since };
                    self.phase = Phase::Open {
                        since: second,
                        calm_since: None,
                        flapping,
                    };
                    self.flaps = Flaps::default();
                    return Some(Transition::Opened { pending_since });
                }
                None
            }
            Phase::Open {
                since,
                calm_since,
                flapping,
            } => {
                let calm_since = match (calm && !bad, calm_since) {
                    (false, _) => None,
                    (true, None) => Some(second),
                    (true, Some(start)) => Some(start),
                };
                let resolve_after = if flapping {
                    config.resolve_after_s.max(config.flap_gap_s)
                } else {
                    config.resolve_after_s
                };
                if let Some(start) = calm_since
                    && second - start + 1 >= i64::from(resolve_after)
                {
                    self.phase = Phase::Idle;
                    return Some(Transition::Resolved { at: start });
                }
                self.phase = Phase::Open {
                    since,
                    calm_since,
                    flapping,
                };
                None
            }
        }
    }

    /// A pending episode from `since` to `last_bad` was cancelled: it joins the flapping series or starts one.
    fn note_episode(&mut self, config: &LifecycleConfig, since: i64, last_bad: i64) {
        if config.flap_episodes == 0 {
            return;
        }
        let length = last_bad - since + 1;
        let joins =
            self.flaps.episodes > 0 && since - self.flaps.last_end <= i64::from(config.flap_gap_s);
        self.flaps = if joins {
            Flaps {
                last_end: last_bad,
                episodes: self.flaps.episodes + 1,
                bad_s: self.flaps.bad_s + length,
                ..self.flaps
            }
        } else {
            Flaps {
                since,
                last_end: last_bad,
                episodes: 1,
                bad_s: length,
            }
        };
    }

    /// The episode pending since `since`, bad at `second`, completes a flapping series.
    fn flapping(&self, config: &LifecycleConfig, since: i64, second: i64) -> bool {
        config.flap_episodes > 0
            && self.flaps.episodes + 1 >= config.flap_episodes
            && since - self.flaps.last_end <= i64::from(config.flap_gap_s)
            && self.flaps.bad_s + (second - since + 1) >= i64::from(config.open_after_s)
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
        flap_episodes: 0,
        flap_gap_s: 0,
    };

    const FLAPPY: LifecycleConfig = LifecycleConfig {
        open_after_s: 6,
        pending_gap_s: 1,
        resolve_after_s: 3,
        flap_episodes: 3,
        flap_gap_s: 5,
    };

    fn run_with(config: &LifecycleConfig, readings: &str) -> Vec<(i64, Transition)> {
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
                    .step(config, second as i64, bad, calm, true)
                    .map(|t| (second as i64, t))
            })
            .collect()
    }

    #[test]
    fn repeated_short_episodes_open_one_incident_dated_from_the_first() {
        // Three 3-second episodes, 4 s apart: none opens alone (6 s needed), the series does.
        let transitions = run_with(&FLAPPY, "BBB....BBB....BBB....BBB..........");
        let opened: Vec<_> = transitions
            .iter()
            .filter(|(_, t)| matches!(t, Transition::Opened { .. }))
            .collect();
        assert_eq!(opened, vec![&(15, Transition::Opened { pending_since: 0 })]);
        // Calm between flaps (4 s) outlasts resolve_after (3 s) but not the flap gap (5 s): still one incident.
        assert_eq!(
            transitions
                .iter()
                .filter(|(_, t)| matches!(t, Transition::Resolved { .. }))
                .count(),
            1
        );
    }

    #[test]
    fn short_episodes_far_apart_never_open() {
        let transitions = run_with(&FLAPPY, "BBB........BBB........BBB........BBB....");
        assert!(
            !transitions
                .iter()
                .any(|(_, t)| matches!(t, Transition::Opened { .. })),
            "{transitions:?}"
        );
    }

    fn run(readings: &str) -> Vec<(i64, Transition)> {
        let mut tracker = Tracker::default();
        readings
            .chars()
            .enumerate()
            .filter_map(|(second, c)| {
                // 'b': bad, but not deep enough to open yet.
                let (bad, calm) = match c {
                    'B' | 'b' => (true, false),
                    '.' => (false, true),
                    _ => (false, false),
                };
                tracker
                    .step(&CONFIG, second as i64, bad, calm, c != 'b')
                    .map(|t| (second as i64, t))
            })
            .collect()
    }

    #[test]
    fn opens_once_bad_long_enough_and_allowed_to() {
        let opened = |readings: &str| {
            run(readings)
                .into_iter()
                .find(|(_, t)| matches!(t, Transition::Opened { .. }))
                .map(|(s, _)| s)
        };
        assert_eq!(opened("BBBBBBB"), Some(4));
        // Bad long enough, but not deep enough until the seventh second.
        assert_eq!(opened("bbbbbbBB"), Some(6));
        assert_eq!(opened("BBBB...."), None);
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
