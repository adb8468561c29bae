//! Fast, deterministic random counts for the simulation: Poisson and binomial draws.

use rand::Rng;
use rand::rngs::StdRng;
use rand_distr::StandardNormal;

/// Above this mean a Poisson count is drawn from its normal approximation (error far below the noise that
/// matters to a detector), below it exactly.
const EXACT_BELOW: f64 = 30.0;

pub(crate) fn poisson(rng: &mut StdRng, mean: f64) -> u64 {
    if mean <= 0.0 || !mean.is_finite() {
        return 0;
    }
    if mean < EXACT_BELOW {
        // Knuth: count uniforms until their product falls below e^-mean.
        let limit = (-mean).exp();
        let mut product = rng.random::<f64>();
        let mut count = 0;
        while product > limit {
            product *= rng.random::<f64>();
            count += 1;
        }
        return count;
    }
    let z: f64 = rng.sample(StandardNormal);
    (mean + mean.sqrt() * z).round().max(0.0) as u64
}

pub(crate) fn binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    if n <= 40 {
        return (0..n).filter(|_| rng.random::<f64>() < p).count() as u64;
    }
    let mean = n as f64 * p;
    let z: f64 = rng.sample(StandardNormal);
    (mean + (mean * (1.0 - p)).sqrt() * z)
        .round()
        .clamp(0.0, n as f64) as u64
}

/// `value` rounded up or down at random, in proportion to its fraction: the mean is exact.
pub(crate) fn dither(rng: &mut StdRng, value: f64) -> u64 {
    (value + rng.random::<f64>()).floor().max(0.0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn means_are_right() {
        let mut rng = StdRng::seed_from_u64(9);
        for mean in [0.3, 4.0, 29.0, 31.0, 250.0] {
            let n = 20_000;
            let total: u64 = (0..n).map(|_| poisson(&mut rng, mean)).sum();
            let got = total as f64 / n as f64;
            assert!((got - mean).abs() < 0.03 * mean + 0.02, "{mean}: {got}");
        }
        let total: u64 = (0..20_000).map(|_| binomial(&mut rng, 200, 0.25)).sum();
        assert!((total as f64 / 20_000.0 - 50.0).abs() < 0.5);
        let total: u64 = (0..20_000).map(|_| dither(&mut rng, 2.25)).sum();
        assert!((total as f64 / 20_000.0 - 2.25).abs() < 0.03);
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(binomial(&mut rng, 10, 1.0), 10);
    }
}
