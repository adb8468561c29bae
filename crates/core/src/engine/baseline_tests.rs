use super::*;

/// 2026-03-10 00:00 UTC, a Tuesday in London winter time.
const TUESDAY: i64 = 1_773_100_800;

/// Feeds `counts` (one a second) from `start` as the engine does, with the short window's count ending with each.
fn learn_all(model: &mut RateModel, counts: &[f64], start: i64, config: &BaselineConfig) {
    let span = crate::engine::detect::SHORT_WINDOW_S as usize;
    for (i, &count) in counts.iter().enumerate() {
        let window = counts[(i + 1).saturating_sub(span)..=i].iter().sum();
        model.observe(count, window, start + i as i64, true, config);
    }
}

/// A deterministic stream of uniforms in [0, 1).
struct Uniforms(u64);

impl Uniforms {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A Poisson count of mean `mean` (Knuth's method; small means only).
    fn poisson(&mut self, mean: f64) -> f64 {
        if mean > 30.0 {
            // Normal approximation by the sum of twelve uniforms.
            let z: f64 = (0..12).map(|_| self.next()).sum::<f64>() - 6.0;
            return (mean + mean.sqrt() * z).round().max(0.0);
        }
        let limit = (-mean).exp();
        let (mut product, mut count) = (self.next(), 0.0);
        while product > limit {
            product *= self.next();
            count += 1.0;
        }
        count
    }
}

#[test]
fn warms_up_then_follows_slow_change_but_not_a_burst() {
    let config = BaselineConfig::default();
    let mut model = RateModel::default();
    let mut draw = Uniforms(1);
    let mut counts: Vec<f64> = (0..1_200).map(|_| draw.poisson(100.0)).collect();
    learn_all(&mut model, &counts, TUESDAY, &config);
    assert!(model.is_warm(&config));
    assert!((model.level() - 100.0).abs() < 5.0, "{}", model.level());
    counts.extend(std::iter::repeat_n(5_000.0, 60));
    let mut burst = model.clone();
    learn_all(&mut burst, &counts[1_200..], TUESDAY + 1_200, &config);
    assert!(
        burst.level() < 110.0,
        "a one-minute burst barely moves normal: {}",
        burst.level()
    );
    // Triples over two hours, as the waking day does: followed.
    let mut slow = RateModel::default();
    let rising: Vec<f64> = (0..7_200)
        .map(|s| draw.poisson(100.0 + f64::from(s) / 36.0))
        .collect();
    learn_all(&mut slow, &rising, TUESDAY, &config);
    assert!((slow.level() - 300.0).abs() < 30.0, "{}", slow.level());
}

#[test]
fn a_ramp_steeper_than_normal_life_is_not_followed() {
    // x8 over 30 minutes from 10 a second: the level may rise only a deviation of the short window per time
    // constant (sd/mean 0.14 here: about e^0.14 per 10 minutes, more as it grows), far from 8x.
    let config = BaselineConfig::default();
    let mut model = RateModel::default();
    let mut draw = Uniforms(2);
    let counts: Vec<f64> = (0..3_600)
        .map(|s| {
            let progress = (f64::from(s) - 1_800.0).max(0.0) / 1_800.0;
            draw.poisson(10.0 * (1.0 + 7.0 * progress))
        })
        .collect();
    learn_all(&mut model, &counts, TUESDAY, &config);
    let expected = model.expected(TUESDAY + 3_600);
    assert!(
        80.0 / expected > 3.0,
        "at the top of the ramp the model expects {expected}"
    );
}

#[test]
fn a_small_users_level_is_its_mean_not_its_median() {
    // One message a quarter minute: most seconds count 0, and a clip on single seconds would learn ~0.
    let config = BaselineConfig::default();
    let mut model = RateModel::default();
    let mut draw = Uniforms(5);
    let counts: Vec<f64> = (0..14_400).map(|_| draw.poisson(0.066)).collect();
    learn_all(&mut model, &counts, TUESDAY, &config);
    assert!(
        (model.level() / 0.066 - 1.0).abs() < 0.35,
        "{}",
        model.level()
    );
}

#[test]
fn poisson_traffic_keeps_the_floor_and_wobbly_traffic_learns_its_dispersion() {
    let config = BaselineConfig::default();
    let mut draw = Uniforms(3);
    let mut steady = RateModel::default();
    let counts: Vec<f64> = (0..3_600).map(|_| draw.poisson(50.0)).collect();
    learn_all(&mut steady, &counts, TUESDAY, &config);
    assert!(steady.dispersion() < 0.005, "{}", steady.dispersion());
    let floor = config.min_relative_sd * config.min_relative_sd;
    assert!((steady.dispersion_floored(&config) - floor).abs() < 1e-12);
    // The same mean, varying +-30 % from minute to minute.
    let mut wobbly = RateModel::default();
    let mut factor = 1.0;
    let counts: Vec<f64> = (0..7_200)
        .map(|s| {
            if s % 60 == 0 {
                factor = 0.7 + 0.6 * draw.next();
            }
            draw.poisson(50.0 * factor)
        })
        .collect();
    learn_all(&mut wobbly, &counts, TUESDAY, &config);
    let phi = wobbly.dispersion();
    // Around a one-minute mean, part of a minute-to-minute swing is followed: phi comes out under the true 0.03.
    assert!((0.005..0.04).contains(&phi), "phi {phi}");
}

/// Twice as much traffic from 08:00 to 20:00 London time as at night.
fn daily(second: i64) -> f64 {
    let hour = (second.rem_euclid(86_400)) / 3_600;
    if (8..20).contains(&hour) { 40.0 } else { 20.0 }
}

#[test]
fn the_days_shape_is_learned_after_a_day_and_the_weekend_apart() {
    let config = BaselineConfig::default();
    let mut model = RateModel::default();
    let mut draw = Uniforms(4);
    assert_eq!(model.state(TUESDAY, &config), ModelState::Cold);
    let day: Vec<f64> = (0..86_400).map(|s| draw.poisson(daily(s))).collect();
    learn_all(&mut model, &day, TUESDAY, &config);
    assert_eq!(
        model.state(TUESDAY + 86_400 - 1, &config),
        ModelState::Level
    );
    // Wednesday's first window closes Tuesday's last half hour: every half hour is known.
    let wednesday = TUESDAY + 86_400;
    let morning: Vec<f64> = (0..3 * 3_600).map(|s| draw.poisson(daily(s))).collect();
    learn_all(&mut model, &morning, wednesday, &config);
    assert_eq!(model.state(wednesday, &config), ModelState::Daily);
    let (night, noon) = (
        model.expected(wednesday + 3 * 3_600),
        model.expected(wednesday + 12 * 3_600),
    );
    assert!(
        (noon / night - 2.0).abs() < 0.2,
        "night {night}, noon {noon}"
    );
    assert!((night - 20.0).abs() < 2.0, "{night}");
    // Saturday has not been seen: the weekend is judged by the level alone.
    let saturday = TUESDAY + 4 * 86_400;
    assert_eq!(model.state(saturday, &config), ModelState::Level);
}

#[test]
fn a_half_hour_learned_for_under_half_its_seconds_teaches_the_profile_nothing() {
    let mut profile = Profile::new();
    for s in 0..800 {
        profile.record(TUESDAY + s, 5.0, 1);
    }
    // The next half hour begins: the first had 800 of its 1,800 seconds.
    profile.record(TUESDAY + 1_800, 5.0, 1);
    assert!(profile.days.iter().all(|&d| d == 0));
    for s in 1_801..3_600 {
        profile.record(TUESDAY + s, 5.0, 1);
    }
    profile.record(TUESDAY + 3_600, 5.0, 1);
    assert_eq!(profile.days[Profile::index(TUESDAY / BIN_S)], 0);
    let second_half_hour = Profile::index((TUESDAY + 1_800) / BIN_S);
    assert_eq!(profile.days[second_half_hour], 1);
    assert!((profile.rates[second_half_hour] - 5.0).abs() < 1e-6);
}
