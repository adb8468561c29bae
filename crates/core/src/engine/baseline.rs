//! Adaptive, robust per-flow baselines: an EWMA that follows the daily shape but is not dragged up by a storm.

/// What a baseline learns from, and how fast.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaselineConfig {
    /// EWMA time constant in seconds: long enough to ignore a storm's first minutes, short enough to follow the
    /// daily shape (scheduled reads after midnight, the waking day).
    pub time_constant_s: f64,
    /// Seconds of plain averaging before the baseline is trusted.
    pub warmup_s: u32,
    /// A sample above `clip_factor` x mean (or mean + `clip_floor`) is clipped before it is learned, so a single
    /// burst cannot inflate the baseline.
    pub clip_factor: f64,
    pub clip_floor: f64,
    /// A User not heard at all (no line of any kind) for longer than this learns nothing until it is heard again:
    /// its exporter or the network to it has stopped, and missing data is unknown, not zero traffic. Learned as
    /// zeros, a silence of 15 minutes would drag the baseline down until the User's normal traffic, on its return,
    /// paged as a storm. 0 learns through every silence.
    pub pause_after_silence_s: u32,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            time_constant_s: 600.0,
            warmup_s: 300,
            clip_factor: 3.0,
            clip_floor: 5.0,
            pause_after_silence_s: 60,
        }
    }
}

/// A per-second rate baseline.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    mean: f64,
    seen: u32,
}

impl Baseline {
    pub fn learn(&mut self, sample: f64, config: &BaselineConfig) {
        self.learn_slower(sample, config, 1.0);
    }

    /// Learns with the time constant multiplied by `slowdown` (>= 1) once warm.
    pub fn learn_slower(&mut self, sample: f64, config: &BaselineConfig, slowdown: f64) {
        if self.seen < config.warmup_s {
            self.seen += 1;
            self.mean += (sample - self.mean) / f64::from(self.seen);
            return;
        }
        let ceiling = (self.mean * config.clip_factor).max(self.mean + config.clip_floor);
        let alpha = 1.0 / (config.time_constant_s * slowdown);
        self.mean += alpha * (sample.min(ceiling) - self.mean);
    }

    pub fn is_warm(&self, config: &BaselineConfig) -> bool {
        self.seen >= config.warmup_s
    }

    /// Mean rate per second.
    pub fn rate(&self) -> f64 {
        self.mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_then_follows_slow_change_but_not_a_burst() {
        let config = BaselineConfig::default();
        let mut baseline = Baseline::default();
        for _ in 0..config.warmup_s {
            baseline.learn(100.0, &config);
        }
        assert!(baseline.is_warm(&config));
        assert!((baseline.rate() - 100.0).abs() < 1e-9);
        for _ in 0..60 {
            baseline.learn(5_000.0, &config);
        }
        assert!(
            baseline.rate() < 150.0,
            "a one-minute burst is mostly clipped: {}",
            baseline.rate()
        );
        let mut slow = Baseline::default();
        for second in 0..7_200 {
            slow.learn(100.0 + f64::from(second) / 36.0, &config);
        }
        assert!(
            (slow.rate() - 300.0).abs() < 30.0,
            "follows a 3x ramp over 2 h: {}",
            slow.rate()
        );
    }
}
