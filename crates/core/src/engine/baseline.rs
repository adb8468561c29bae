//! The model of a User's normal traffic in one flow: the rate it expects each second, and how much traffic
//! varies around it, so that an anomaly means "improbable for this User now", for a User at a message a minute
//! and one at 200 a second alike.
//!
//! - **Expected rate** = a local level x the time of day's factor. The level is an exponentially weighted mean of
//!   the short windows' counts (time constant `time_constant_s`; one update per window), learned robustly: a
//!   window moves it by at most `max_step_sigmas` standard deviations of that window's count (a Huber step), so a storm, or a ramp
//!   faster than normal life ever rises, cannot drag normal up with it, while the waking day is followed: the
//!   level may grow by about e^(k x sd/mean) per time constant, 1.15x for a User at 200 a second (the waking day
//!   needs 1.07x), 8x in half an hour needs far more.
//! - **Time of day and day of week**: each half hour of a weekday and of a weekend day (London time) keeps the
//!   mean rate it had on the days learned (exponentially weighted over about a week). Once every half hour of
//!   the day type has been seen on at least one day, the level is learned deseasonalised and the expected rate
//!   follows the day's shape; before that the factor is 1 and the level alone follows the shape (with a lag).
//!   Seconds that are not learned (on watch or open, or the User silent: missing data) do not count, and a half
//!   hour learned for under half its seconds is not taken: the profile is robust to incidents and gaps.
//! - **Variability**: counts are negative binomial, variance = m + phi m^2 (the same phi for a second's count and
//!   a window's when the extra variability is a slowly varying multiple of the rate), phi estimated from the
//!   windows' squared residuals around a one-minute mean (pooled moments, clipped at 4 deviations): around the slow level a ramp
//!   the level lags behind would pass for variability and widen the very tolerance that should catch it. A floor: traffic always varies at least
//!   `min_relative_sd` of its rate beyond Poisson noise (the variance floor), so a User whose traffic was
//!   perfectly steady for an hour is not paged for its first ordinary wobble.
//!
//! Cold start: nothing is judged before `warmup_s` seconds of the User's own traffic (the level is then a plain
//! mean); the day's shape is known only after a day; see [`ModelState`].

use super::detect::{SHORT_WINDOW_S, learns_now};
use crate::changes::Clock;

/// Half hours in a day, and the two day types (weekday, weekend).
pub const PROFILE_BINS: usize = 48;
const DAY_TYPES: usize = 2;
const BIN_S: i64 = 1_800;

/// A squared residual beyond this many standard deviations is clipped before the dispersion learns it.
const CLIP_SIGMAS: f64 = 4.0;

/// Seconds: the time constant of the mean the dispersion's residuals are taken around.
const FAST_S: f64 = 60.0;

/// The days a half hour's mean is averaged over (exponentially).
const PROFILE_DAYS: f32 = 7.0;

/// What a model learns from, and how fast.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// Seconds: time constant of the local level, long enough to ignore a storm's first minutes, short enough to
    /// follow the daily shape before the profile knows it.
    pub time_constant_s: f64,
    /// Seconds of a User's own traffic before its model judges anything (the cold start): the level is a plain
    /// mean until then.
    pub warmup_s: u32,
    /// Standard deviations: a second's count moves the level by at most this many of its own standard deviations.
    pub max_step_sigmas: f64,
    /// Relative standard deviation: the variance floor. Traffic varies at least this much of its expected rate
    /// beyond Poisson noise (variance >= m + (min_relative_sd x m)^2).
    pub min_relative_sd: f64,
    /// Seconds: a User not heard at all (no line of any kind) for longer than this learns nothing until it is
    /// heard again: its exporter or the network to it has stopped, and missing data is unknown, not zero traffic.
    /// Learned as zeros, a silence of 15 minutes would drag the level down until the User's normal traffic, on its
    /// return, paged as a storm. 0 learns through every silence.
    pub pause_after_silence_s: u32,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            time_constant_s: 600.0,
            warmup_s: 300,
            max_step_sigmas: 1.0,
            min_relative_sd: 0.1,
            pause_after_silence_s: 60,
        }
    }
}

/// What the model of a flow can say yet (shown in the Users API).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelState {
    /// Fewer than `warmup_s` seconds learned: no anomaly of this flow is judged.
    Cold,
    /// Judged against the local level: the day's shape is not known yet (under a day of the day type learned),
    /// so a rise as steep as the waking day is followed, not flagged, and the expected rate lags the shape.
    Level,
    /// The day's shape is learned: the expected rate follows the time of day and day of week.
    Daily,
}

/// Mean rate per half hour of a weekday and of a weekend day, learned over days.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Profile {
    /// Per (day type, half hour): the mean rate per second, and the days it has learned (at most 255).
    rates: Vec<f32>,
    days: Vec<u8>,
    /// The half hour being recorded (half hours since the epoch, London time): counts and seconds learned in it.
    bin: i64,
    sum: f64,
    seconds: u32,
    /// The UTC half hour `local_bin` was worked out for (its first second; the clock is read once per half
    /// hour), and the days known and factor worked out for `local_bin` (both change only when a half hour begins
    /// or is learned). Derived: not kept in snapshots.
    #[serde(skip)]
    utc_from: i64,
    #[serde(skip)]
    local_bin: i64,
    #[serde(skip)]
    cached: Option<(u8, f64)>,
}

impl Profile {
    fn new() -> Profile {
        Profile {
            rates: vec![0.0; PROFILE_BINS * DAY_TYPES],
            days: vec![0; PROFILE_BINS * DAY_TYPES],
            bin: i64::MIN,
            ..Profile::default()
        }
    }

    /// The London half hour of `second` (cached per UTC half hour: the offset changes only on the hour).
    fn local_bin(&mut self, second: i64) -> i64 {
        // One comparison on the hot path: the clock and the profile are read again only in a new half hour.
        if !(self.utc_from..self.utc_from + BIN_S).contains(&second) || self.cached.is_none() {
            let offset_s = Clock::EuropeLondon.offset_ms(second * 1000) / 1000;
            self.utc_from = second.div_euclid(BIN_S) * BIN_S;
            self.local_bin = (second + offset_s).div_euclid(BIN_S);
            self.cached = Some(self.work_out(self.local_bin));
        }
        self.local_bin
    }

    /// Index into `rates` of a London half hour: day type (Saturday and Sunday are weekend days; 1970-01-01 was a
    /// Thursday) and half hour of the day.
    fn index(local_bin: i64) -> usize {
        let day = local_bin.div_euclid(PROFILE_BINS as i64);
        let weekend = matches!(day.rem_euclid(7), 2 | 3);
        usize::from(weekend) * PROFILE_BINS + local_bin.rem_euclid(PROFILE_BINS as i64) as usize
    }

    /// Records `seconds` learned seconds ending with `second` that counted `count` in all; a half hour that ends
    /// with at least half its seconds learned updates its mean.
    fn record(&mut self, second: i64, count: f64, seconds: u32) {
        let bin = self.local_bin(second);
        if bin != self.bin {
            self.close_bin();
            self.bin = bin;
        }
        self.sum += count;
        self.seconds += seconds;
    }

    fn close_bin(&mut self) {
        if self.bin != i64::MIN && i64::from(self.seconds) * 2 >= BIN_S {
            let index = Self::index(self.bin);
            let rate = (self.sum / f64::from(self.seconds)) as f32;
            let days = &mut self.days[index];
            let weight = 1.0 / (f32::from(*days) + 1.0).min(PROFILE_DAYS);
            self.rates[index] += weight * (rate - self.rates[index]);
            *days = days.saturating_add(1);
            self.cached = None;
        }
        self.sum = 0.0;
        self.seconds = 0;
    }

    /// The days every half hour of `local_bin`'s day type has learned at least, and the time of day's factor:
    /// its half hour's mean over the day type's mean once the whole day type is known, 1 before.
    fn work_out(&self, local_bin: i64) -> (u8, f64) {
        let index = Self::index(local_bin);
        let start = index / PROFILE_BINS * PROFILE_BINS;
        let days = self.days[start..start + PROFILE_BINS]
            .iter()
            .copied()
            .min()
            .unwrap_or(0);
        if days == 0 {
            return (0, 1.0);
        }
        let day = &self.rates[start..start + PROFILE_BINS];
        let mean = day.iter().map(|&r| f64::from(r)).sum::<f64>() / PROFILE_BINS as f64;
        if mean <= f64::EPSILON {
            return (days, 1.0);
        }
        // A half hour that never saw traffic still expects a little: a User may start its day early.
        (days, (f64::from(self.rates[index]) / mean).max(0.05))
    }

    /// The days known and the factor at `second` (see [`Profile::work_out`]).
    fn at(&mut self, second: i64) -> (u8, f64) {
        self.local_bin(second);
        match self.cached {
            Some(known) => known,
            None => {
                let known = self.work_out(self.local_bin);
                self.cached = Some(known);
                known
            }
        }
    }

    fn factor(&mut self, second: i64) -> f64 {
        self.at(second).1
    }

    fn days_known(&mut self, second: i64) -> u8 {
        self.at(second).0
    }
}

/// The model of one flow of one User: see the module's documentation.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateModel {
    /// Deseasonalised level (per second).
    level: f64,
    seen: u32,
    /// Pooled moments for the dispersion, per second: a one-minute mean of the counts (per window), and the means
    /// of the squared residual around it, of the expected rate and of its square.
    #[serde(default)]
    fast: f64,
    resid_sq: f64,
    /// The window in progress: its seconds' clipped squared residuals, how many, and whether all were learnable.
    #[serde(default)]
    window_sq: f64,
    #[serde(default)]
    window_seconds: u32,
    #[serde(default)]
    window_spoilt: bool,
    mean_m: f64,
    mean_m2: f64,
    /// The dispersion as of the last second learned (see [`RateModel::dispersion`]), kept so the tests read it
    /// without a division.
    #[serde(default)]
    phi: f64,
    profile: Profile,
}

impl Default for RateModel {
    fn default() -> Self {
        RateModel {
            level: 0.0,
            seen: 0,
            fast: 0.0,
            resid_sq: 0.0,
            window_sq: 0.0,
            window_seconds: 0,
            window_spoilt: false,
            mean_m: 0.0,
            mean_m2: 0.0,
            phi: 0.0,
            profile: Profile::new(),
        }
    }
}

impl RateModel {
    /// Takes one closed second: its `count`, and `window`, the short window's count ending with it. `learning`:
    /// the User was heard and nothing of this flow is on watch. The level and the profile learn once per window
    /// (at seconds that are multiples of `SHORT_WINDOW_S`, from windows whose every second was learnable: the
    /// windows do not overlap, and the engine does a tenth of the work); the dispersion gathers every second,
    /// since the tests judge single seconds.
    #[inline]
    pub fn observe(
        &mut self,
        count: f64,
        window: f64,
        second: i64,
        learning: bool,
        config: &BaselineConfig,
    ) {
        let mean = self.fast * (SHORT_WINDOW_S as f64).recip();
        let resid = count - mean;
        let variance = mean + self.dispersion_floored(config) * mean * mean;
        self.window_sq += (resid * resid).min(CLIP_SIGMAS * CLIP_SIGMAS * variance.max(1e-6));
        self.window_seconds += 1;
        self.window_spoilt |= !learning;
        if learns_now(second) {
            if !self.window_spoilt {
                self.learn(window, second, config);
            }
            self.window_sq = 0.0;
            self.window_seconds = 0;
            self.window_spoilt = false;
        }
    }

    /// Learns the short window ending with `second`, which counted `window` in all.
    fn learn(&mut self, window: f64, second: i64, config: &BaselineConfig) {
        const SPAN: f64 = SHORT_WINDOW_S as f64;
        let factor = self.profile.factor(second);
        let per_factor = if factor == 1.0 { 1.0 } else { factor.recip() };
        let expected = self.level * factor;
        self.profile.record(second, window, SHORT_WINDOW_S as u32);
        let phi = self.dispersion_floored(config);
        self.seen = self.seen.saturating_add(SHORT_WINDOW_S as u32);
        let windows = f64::from(self.seen) / SPAN;
        let warm = self.seen >= config.warmup_s;
        let alpha = if warm {
            SPAN / config.time_constant_s.max(SPAN)
        } else {
            windows.recip()
        };
        // The dispersion, per second: squared residuals around a one-minute mean (of windows).
        if self.window_seconds > 0 {
            // A window whose seconds stray four times as far as expected, on average, is an outlier itself (a
            // burst): it counts as four times.
            // The residuals were taken around the local mean, so its Poisson part is the local mean's, not the
            // level's: while traffic climbs above the level (a ramp the level lags behind), the level's would
            // leave the climb's own Poisson noise in the estimate, phi would grow, and with it the Huber step
            // that lets the level follow the ramp.
            let local = if self.fast > 0.0 {
                self.fast / SPAN
            } else {
                expected
            };
            let variance = local + phi * local * local;
            let squared = (self.window_sq / f64::from(self.window_seconds))
                .min(CLIP_SIGMAS * variance.max(1e-6));
            self.resid_sq += alpha * (squared - self.resid_sq);
            self.mean_m += alpha * (local - self.mean_m);
            self.mean_m2 += alpha * (local * local - self.mean_m2);
            self.phi = self.estimate_dispersion();
        }
        self.fast += (window - self.fast) * windows.min(FAST_S / SPAN).recip();
        let target = window * per_factor / SPAN;
        if !warm {
            self.level += (target - self.level) * alpha;
            return;
        }
        // The Huber step, in the deseasonalised scale per second, against the window count's deviation.
        let window_expected = expected * SPAN;
        let window_sd = (window_expected + phi * window_expected * window_expected).sqrt();
        let limit = config.max_step_sigmas * window_sd * (per_factor / SPAN);
        let step = (target - self.level).clamp(-limit, limit);
        self.level = (self.level + alpha * step).max(0.0);
    }

    fn estimate_dispersion(&self) -> f64 {
        if self.mean_m2 <= f64::EPSILON {
            return 0.0;
        }
        ((self.resid_sq - self.mean_m) / self.mean_m2).max(0.0)
    }

    /// The negative-binomial dispersion phi learned (variance = m + phi m^2), without the floor.
    pub fn dispersion(&self) -> f64 {
        self.phi
    }

    /// The dispersion the tests use: the learned one, or the floor's if that is larger.
    pub fn dispersion_floored(&self, config: &BaselineConfig) -> f64 {
        self.dispersion()
            .max(config.min_relative_sd * config.min_relative_sd)
    }

    /// Standard deviation of a second's count when `expected` is expected.
    pub fn sd(&self, expected: f64, config: &BaselineConfig) -> f64 {
        let m = expected.max(0.0);
        (m + self.dispersion_floored(config) * m * m)
            .sqrt()
            .max(1e-3)
    }

    /// The rate per second expected at `second`.
    pub fn expected(&mut self, second: i64) -> f64 {
        self.level * self.profile.factor(second)
    }

    /// The local level (per second, deseasonalised): what the model expects at a time of day of mean traffic.
    pub fn level(&self) -> f64 {
        self.level
    }

    pub fn is_warm(&self, config: &BaselineConfig) -> bool {
        self.seen >= config.warmup_s
    }

    /// What the model can say at `second`: cold, level only, or with the day's shape.
    pub fn state(&mut self, second: i64, config: &BaselineConfig) -> ModelState {
        let days = self.profile.days_known(second);
        Self::state_of(self.is_warm(config), days)
    }

    /// As [`RateModel::state`], without touching the caches (for readers off the engine's path: the API).
    pub fn state_at(&self, second: i64, config: &BaselineConfig) -> ModelState {
        let offset_s = Clock::EuropeLondon.offset_ms(second * 1000) / 1000;
        let days = self
            .profile
            .work_out((second + offset_s).div_euclid(BIN_S))
            .0;
        Self::state_of(self.is_warm(config), days)
    }

    fn state_of(warm: bool, days: u8) -> ModelState {
        if !warm {
            ModelState::Cold
        } else if days == 0 {
            ModelState::Level
        } else {
            ModelState::Daily
        }
    }

    /// Seconds learned.
    pub fn seconds_learned(&self) -> u32 {
        self.seen
    }
}

#[cfg(test)]
#[path = "baseline_tests.rs"]
mod tests;
