//! Fitting the correlator's weights on a training sweep: a coordinate search over the weights that decide between
//! suspects, judged first by how many incidents come out attributed right, then by how clearly (the margin of the
//! right answer over the next best and over the fit threshold). Pure: the caller replays and scores.

use stormwatch_core::changes::CorrelatorConfig;

use crate::evaluate::RunScore;

/// One incident's margin counts up to this much: a fit should make every call clear, not a few calls very clear.
pub const MARGIN_CAP: f64 = 0.25;

/// Each weight is tried at these multiples of its current value, within its bounds.
pub const STEPS: [f64; 4] = [0.6, 0.8, 1.25, 1.5];

/// A weight the fit may move, and the bounds that keep it meaningful.
pub struct Weight {
    pub name: &'static str,
    get: fn(&CorrelatorConfig) -> f64,
    set: fn(&mut CorrelatorConfig, f64),
    min: f64,
    max: f64,
    /// Values are rounded to this, so the fitted table reads like a hand-set one.
    grain: f64,
}

impl Weight {
    pub fn get(&self, config: &CorrelatorConfig) -> f64 {
        (self.get)(config)
    }

    pub fn set(&self, config: &mut CorrelatorConfig, value: f64) {
        (self.set)(config, value);
    }

    /// The values to try next to `current`, inside the bounds, without `current` itself.
    pub fn candidates(&self, current: f64) -> Vec<f64> {
        let mut values: Vec<f64> = Vec::new();
        for step in STEPS {
            let value =
                ((current * step / self.grain).round() * self.grain).clamp(self.min, self.max);
            if (value - current).abs() > self.grain / 2.0
                && values.iter().all(|v| (v - value).abs() > self.grain / 2.0)
            {
                values.push(value);
            }
        }
        values
    }
}

macro_rules! share {
    ($($field:ident).+) => {
        share!($($field).+, max 1.0)
    };
    ($($field:ident).+, max $max:expr) => {
        Weight {
            name: stringify!($($field).+),
            get: |c| c.$($field).+,
            set: |c, v| c.$($field).+ = v,
            min: 0.05,
            max: $max,
            grain: 0.01,
        }
    };
}

macro_rules! seconds {
    ($field:ident, $min:expr, $max:expr) => {
        Weight {
            name: stringify!($field),
            get: |c| c.$field as f64,
            set: |c, v| c.$field = v.round() as i64,
            min: $min,
            max: $max,
            grain: 60.0,
        }
    };
}

/// The weights that rank suspects. The fit threshold, the display limits and the category table's own rows stay as
/// set: the threshold is what margins are measured against, and the rows encode what each category can break.
/// Some bounds keep an order the generator cannot teach, because its scenarios never put the two side by side: a
/// path through another User's devices is less direct than the User's own change (1.0), and a notice still marked
/// planned is less sure than one in progress or completed (1.0).
pub fn weights() -> Vec<Weight> {
    vec![
        share!(relation.dcc_local),
        share!(relation.device_path, max 0.9),
        share!(relation.among_users_hit),
        share!(relation.shared_capacity, max 0.95),
        share!(status.planned, max 0.95),
        share!(status.rolled_back),
        share!(status.cancelled),
        share!(srvs.not_compared),
        share!(srvs.disjoint),
        share!(users_at_once.dcc_few_users),
        Weight {
            name: "users_at_once.per_user",
            get: |c| c.users_at_once.per_user,
            set: |c, v| c.users_at_once.per_user = v,
            min: 0.01,
            max: 0.5,
            grain: 0.01,
        },
        share!(category_fit.mismatched_failure),
        share!(category_fit.application_partial_delivery),
        share!(category_fit.alone_lift),
        seconds!(before_window_half_life_s, 60.0, 7_200.0),
        seconds!(after_window_half_life_s, 300.0, 14_400.0),
    ]
}

/// How well one set of weights did on a sweep.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FitScore {
    /// Found incidents, and those with the right verdict and top suspect.
    pub found: usize,
    pub attributed: usize,
    /// Found incidents whose truth names a change, and those whose top suspect is it (HR@1).
    pub named: usize,
    pub top_hits: usize,
    /// Sum over found incidents of each one's margin, capped at `MARGIN_CAP`: for a named change, how far its
    /// score clears both the next suspect and the fit threshold; otherwise how far the top suspect stays below the
    /// threshold.
    pub margin: f64,
}

impl FitScore {
    pub fn of(runs: &[RunScore], fit_threshold: f64) -> FitScore {
        let mut score = FitScore::default();
        for found in runs.iter().flat_map(|run| &run.matches) {
            score.found += 1;
            score.attributed += usize::from(found.attributed);
            if let Some(hit) = found.top_right {
                score.named += 1;
                score.top_hits += usize::from(hit);
            }
            let margin = match found.right_score {
                Some(right) => (right - found.best_other_score).min(right - fit_threshold),
                None => fit_threshold - found.best_other_score,
            };
            score.margin += margin.clamp(-1.0, MARGIN_CAP);
        }
        score
    }

    /// More attributed, or as many and a clearer margin.
    pub fn beats(&self, other: &FitScore) -> bool {
        self.attributed > other.attributed
            || (self.attributed == other.attributed && self.margin > other.margin + 1e-9)
    }

    pub fn mean_margin(&self) -> f64 {
        if self.found == 0 {
            0.0
        } else {
            self.margin / self.found as f64
        }
    }

    pub fn summary(&self) -> String {
        let hr = if self.named == 0 {
            "n/a".to_owned()
        } else {
            format!(
                "{}/{} = {:.3}",
                self.top_hits,
                self.named,
                self.top_hits as f64 / self.named as f64
            )
        };
        format!(
            "{}/{} attributed, HR@1 {hr}, mean margin {:.3}",
            self.attributed,
            self.found,
            self.mean_margin()
        )
    }
}

/// One weight moved by the search.
#[derive(Clone, Debug, PartialEq)]
pub struct FitStep {
    pub weight: &'static str,
    pub from: f64,
    pub to: f64,
    pub score: FitScore,
}

/// The search's result.
#[derive(Clone, Debug)]
pub struct Fitted {
    pub config: CorrelatorConfig,
    pub start: FitScore,
    pub score: FitScore,
    pub steps: Vec<FitStep>,
    /// Weight sets judged, the start included.
    pub judged: usize,
}

/// Coordinate search from `start`: each weight in turn takes the candidate value that beats the best so far (the
/// current value wins ties, so weights move only on evidence), for up to `passes` passes or until a pass moves
/// nothing. `judge` replays the training runs with a config and scores them; `on_judged` hears each result.
pub fn fit<E>(
    start: &CorrelatorConfig,
    passes: usize,
    mut judge: impl FnMut(&CorrelatorConfig) -> Result<FitScore, E>,
    mut on_judged: impl FnMut(&str, f64, &FitScore),
) -> Result<Fitted, E> {
    let weights = weights();
    let mut config = start.clone();
    let first = judge(&config)?;
    let mut best = first;
    let mut steps = Vec::new();
    let mut judged = 1;
    for _ in 0..passes {
        let mut moved = false;
        for weight in &weights {
            let current = weight.get(&config);
            let mut chosen = None;
            for value in weight.candidates(current) {
                let mut trial = config.clone();
                weight.set(&mut trial, value);
                let score = judge(&trial)?;
                judged += 1;
                on_judged(weight.name, value, &score);
                if score.beats(&best) {
                    best = score;
                    chosen = Some(value);
                }
            }
            if let Some(value) = chosen {
                weight.set(&mut config, value);
                steps.push(FitStep {
                    weight: weight.name,
                    from: current,
                    to: value,
                    score: best,
                });
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    Ok(Fitted {
        config,
        start: first,
        score: best,
        steps,
        judged,
    })
}

/// The weights that differ from `base`, as TOML lines for the `[engine.correlator]` table.
pub fn changed_weights_toml(fitted: &CorrelatorConfig, base: &CorrelatorConfig) -> String {
    let mut text = String::from("[engine.correlator]\n");
    for weight in weights() {
        let (to, from) = (weight.get(fitted), weight.get(base));
        if (to - from).abs() > f64::EPSILON {
            if weight.grain >= 1.0 {
                text += &format!("{} = {}\n", weight.name, to.round() as i64);
            } else {
                text += &format!("{} = {to}\n", weight.name);
            }
        }
    }
    text
}

#[cfg(test)]
#[path = "fit_tests.rs"]
mod tests;
