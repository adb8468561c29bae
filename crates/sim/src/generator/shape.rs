//! The daily shape of traffic: smooth multipliers (a weekday's mean 1) for requests, scheduled reads and alerts.
//! Weekends wake later and install little, so their requests run lower; reads and alerts keep the weekday shape.

/// Minutes in a day: the shapes are tabulated per minute and interpolated.
const MINUTES: usize = 1440;

/// Each flow's multiplier against its daily mean, by time of day (UTC).
pub(crate) struct DailyShape {
    requests: Vec<f64>,
    /// Saturday's and Sunday's requests, against the weekday's mean.
    weekend_requests: Vec<f64>,
    scheduled: Vec<f64>,
    alerts: Vec<f64>,
}

/// The three multipliers at one moment.
#[derive(Copy, Clone, Debug)]
pub(crate) struct ShapeAt {
    pub requests: f64,
    pub scheduled: f64,
    pub alerts: f64,
}

/// 0 before `start`, 1 from `start + ramp_in` to `end`, 0 after `end + ramp_out`, smoothstep edges (hours).
fn window(hour: f64, start: f64, ramp_in: f64, end: f64, ramp_out: f64) -> f64 {
    let smooth = |x: f64| {
        let x = x.clamp(0.0, 1.0);
        x * x * (3.0 - 2.0 * x)
    };
    if hour < start + ramp_in {
        smooth((hour - start) / ramp_in)
    } else if hour <= end {
        1.0
    } else {
        1.0 - smooth((hour - end) / ramp_out)
    }
}

fn requests(hour: f64) -> f64 {
    // Prepayment top-ups follow the waking day, installs the working day, and a second top-up wave the evening.
    0.25 + 0.45 * window(hour, 6.0, 2.5, 21.5, 2.0)
        + 0.35 * window(hour, 8.0, 1.0, 17.0, 1.0)
        + 0.15 * window(hour, 16.5, 1.0, 20.5, 1.5)
}

fn weekend_requests(hour: f64) -> f64 {
    // The same night as a weekday (the two meet at midnight), a later waking day, few installs.
    0.25 + 0.40 * window(hour, 7.5, 2.5, 22.0, 2.0)
        + 0.05 * window(hour, 9.0, 1.0, 16.0, 1.0)
        + 0.15 * window(hour, 16.5, 1.0, 20.5, 1.5)
}

fn scheduled(hour: f64) -> f64 {
    // DCC-scheduled reads: ramp in over 30 minutes from 00:15 (the engine's baselines need >= 10), out by 05:00.
    0.02 + window(hour, 0.25, 0.5, 4.0, 1.0)
}

fn alerts(hour: f64) -> f64 {
    0.7 + 0.3 * window(hour, 7.0, 2.0, 21.0, 2.0)
}

fn tabulate(curve: fn(f64) -> f64) -> Vec<f64> {
    tabulate_against(curve, curve)
}

/// `curve` per minute, divided by the daily mean of `norm`.
fn tabulate_against(curve: fn(f64) -> f64, norm: fn(f64) -> f64) -> Vec<f64> {
    let mean = (0..MINUTES).map(|m| norm(m as f64 / 60.0)).sum::<f64>() / MINUTES as f64;
    (0..=MINUTES)
        .map(|m| curve(m as f64 / 60.0) / mean)
        .collect()
}

/// Saturday or Sunday, in UTC: 1970-01-01 was a Thursday.
fn weekend(second: i64) -> bool {
    matches!(second.div_euclid(86_400).rem_euclid(7), 2 | 3)
}

impl DailyShape {
    pub fn new() -> DailyShape {
        DailyShape {
            requests: tabulate(requests),
            weekend_requests: tabulate_against(weekend_requests, requests),
            scheduled: tabulate(scheduled),
            alerts: tabulate(alerts),
        }
    }

    /// The multipliers at `second` (Unix seconds).
    pub fn at(&self, second: i64) -> ShapeAt {
        let in_day = second.rem_euclid(86_400) as f64 / 60.0;
        let index = in_day as usize;
        let frac = in_day - index as f64;
        let lerp = |table: &[f64]| table[index] + (table[index + 1] - table[index]) * frac;
        let requests = if weekend(second) {
            &self.weekend_requests
        } else {
            &self.requests
        };
        ShapeAt {
            requests: lerp(requests),
            scheduled: lerp(&self.scheduled),
            alerts: lerp(&self.alerts),
        }
    }

    /// The largest value each multiplier takes in a day.
    pub fn peaks(&self) -> ShapeAt {
        let max = |table: &[f64]| table.iter().copied().fold(0.0, f64::max);
        ShapeAt {
            requests: max(&self.requests),
            scheduled: max(&self.scheduled),
            alerts: max(&self.alerts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_average_one_and_change_slowly() {
        let shape = DailyShape::new();
        let day = 1_773_100_800i64;
        let mut sums = (0.0, 0.0, 0.0);
        let mut previous = shape.at(day - 1);
        for s in 0..86_400 {
            let now = shape.at(day + s);
            sums.0 += now.requests;
            sums.1 += now.scheduled;
            sums.2 += now.alerts;
            // No flow may move by more than ~1 % of its peak within a second: the daily shape never looks like a storm.
            assert!((now.requests - previous.requests).abs() < 0.01, "{s}");
            assert!(
                (now.scheduled - previous.scheduled).abs() < 0.01 * shape.peaks().scheduled,
                "{s}"
            );
            previous = now;
        }
        for sum in [sums.0, sums.1, sums.2] {
            assert!((sum / 86_400.0 - 1.0).abs() < 0.01, "{sum}");
        }
        // The scheduled-read peak is after midnight.
        assert!(shape.at(day + 2 * 3600).scheduled > 3.0);
        assert!(shape.at(day + 12 * 3600).scheduled < 0.2);
    }

    #[test]
    fn weekends_wake_later_and_run_lower_and_meet_the_weekdays_at_midnight() {
        let shape = DailyShape::new();
        // 2026-03-14 is a Saturday, 2026-03-16 a Monday.
        let (saturday, monday) = (1_773_446_400i64, 1_773_619_200i64);
        assert!(weekend(saturday) && weekend(saturday + 86_399 + 86_400));
        assert!(!weekend(monday) && !weekend(saturday - 1));
        let mean = |day: i64| {
            (0..1_440)
                .map(|m| shape.at(day + m * 60).requests)
                .sum::<f64>()
                / 1_440.0
        };
        assert!(
            mean(saturday) < 0.9 * mean(monday),
            "{} {}",
            mean(saturday),
            mean(monday)
        );
        assert!(shape.at(saturday + 8 * 3600).requests < shape.at(monday + 8 * 3600).requests);
        let (before, after) = (shape.at(saturday - 1).requests, shape.at(saturday).requests);
        assert!((before - after).abs() < 0.01, "{before} {after}");
    }
}
