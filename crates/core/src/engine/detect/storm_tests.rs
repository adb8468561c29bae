use super::*;
use crate::engine::detect::SHORT_WINDOW_S;

/// 2026-03-10 00:00 UTC.
const T0: i64 = 1_773_100_800;
const EVIDENCE_NATS: f64 = 13.8;

/// Feeds per-second request counts and returns the readings, with a true sliding window, learning only while
/// nothing is bad (as the engine does while nothing is on watch).
fn feed(detector: &mut RateStormDetector, counts: &[u64]) -> Vec<Reading> {
    let config = RateStormConfig::default();
    let baselines = BaselineConfig {
        warmup_s: 60,
        ..BaselineConfig::default()
    };
    let mut readings = Vec::new();
    for (second, &count) in counts.iter().enumerate() {
        let mut view = UserSecond {
            second: T0 + second as i64,
            ..UserSecond::default()
        };
        view.now.flows[Flow::Requests as usize] = count;
        let start = (second + 1).saturating_sub(SHORT_WINDOW_S as usize);
        view.short[Flow::Requests as usize] = counts[start..=second].iter().sum();
        let learning = !readings.last().is_some_and(|r: &Reading| r.bad);
        readings.push(detector.observe(&view, learning, &config, &baselines, EVIDENCE_NATS));
    }
    readings
}

/// Poisson-like counts of `mean(second)` a second, from a fixed seed.
fn counts(seconds: usize, seed: u64, mean: impl Fn(usize) -> f64) -> Vec<u64> {
    let mut state = seed;
    let mut uniform = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..seconds)
        .map(|s| {
            let m = mean(s);
            if m > 30.0 {
                let z: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
                return (m + m.sqrt() * z).round().max(0.0) as u64;
            }
            let limit = (-m).exp();
            let (mut product, mut n) = (uniform(), 0);
            while product > limit {
                product *= uniform();
                n += 1;
            }
            n
        })
        .collect()
}

/// A fresh request-storm detector fed `series` is never bad.
fn assert_never_bad(series: &[u64]) {
    let readings = feed(&mut RateStormDetector::requests(), series);
    let bad = readings.iter().position(|r| r.bad);
    assert_eq!(bad, None, "bad at second {bad:?}");
}

#[test]
fn steady_traffic_is_never_bad() {
    assert_never_bad(&counts(3_600, 1, |_| 100.0));
}

#[test]
fn tenfold_step_is_bad_within_seconds_dated_at_its_first_second_and_normal_holds() {
    let mut series = counts(900, 2, |_| 100.0);
    series.extend(counts(60, 3, |_| 1_000.0));
    let mut detector = RateStormDetector::requests();
    let readings = feed(&mut detector, &series);
    let first_bad = readings.iter().position(|r| r.bad).unwrap();
    assert!(
        (900..903).contains(&first_bad),
        "first bad second {first_bad}"
    );
    assert!(readings[first_bad..].iter().all(|r| r.bad));
    assert_eq!(detector.change_point(), Some(T0 + 900));
    assert!(detector.model().level() < 110.0);
}

#[test]
fn small_user_noise_and_batch_jobs_stay_under_the_excess_floor() {
    // A User at 0.06 a second that sends 100 requests in one minute every hour.
    let series = counts(3 * 3_600, 4, |s| {
        if s % 3_600 < 60 && s > 600 { 1.7 } else { 0.06 }
    });
    assert_never_bad(&series);
}

#[test]
fn bursts_of_three_times_for_thirty_seconds_are_normal_life() {
    let series = counts(3_600, 5, |s| {
        if s > 900 && s % 240 < 30 {
            300.0
        } else {
            100.0
        }
    });
    assert_never_bad(&series);
}

#[test]
fn the_waking_day_is_followed_but_a_ramp_to_eight_times_in_ten_minutes_is_caught() {
    // Triples over three hours, as the morning does.
    let morning = counts(4 * 3_600, 6, |s| {
        20.0 * (1.0 + 2.0 * (s as f64 / 10_800.0).min(1.0))
    });
    assert_never_bad(&morning);
    // x1 to x8 in ten minutes at 10 a second: the model's level is outrun and the storm is caught.
    let ramp = counts(3_600, 7, |s| {
        10.0 * (1.0 + 7.0 * (s.saturating_sub(1_200) as f64 / 600.0).min(1.0))
    });
    let mut detector = RateStormDetector::requests();
    let readings = feed(&mut detector, &ramp);
    let first_bad = readings
        .iter()
        .position(|r| r.bad)
        .expect("the ramp is caught");
    assert!(
        (1_200..1_900).contains(&first_bad),
        "first bad second {first_bad}"
    );
}

/// Issue 22's ramp, x1 to x8 over 30 minutes, by the User's size: caught at 10, 50 and 200 a second, before the
/// ramp tops out. The model's level may grow by about e^(sd/mean of a window) per time constant (e^0.14 at 10 a
/// second), so the ramp outruns it past the test's indifference ratio ((rho - 1) / ln rho = 3.9). At 10 a second
/// it was missed while the dispersion learned the ramp's own Poisson noise as variability (the residuals were
/// taken around the local mean, the Poisson part subtracted at the lagging level): phi rose from 0.01 to 0.16 and
/// widened the level's step.
#[test]
fn issue_22s_half_hour_ramp_is_caught_from_small_users_up() {
    let caught = |rate: f64| {
        let ramp = counts(5_400, 8, |s| {
            rate * (1.0 + 7.0 * (s.saturating_sub(1_200) as f64 / 1_800.0).min(1.0))
        });
        feed(&mut RateStormDetector::requests(), &ramp)
            .iter()
            .position(|r| r.bad)
    };
    for rate in [10.0, 50.0, 200.0] {
        let first_bad = caught(rate);
        assert!(
            first_bad.is_some_and(|s| (1_200..3_000).contains(&s)),
            "{rate}/s: first bad second {first_bad:?}"
        );
    }
}
