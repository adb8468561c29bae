//! Where a slow rise in queue depth began: a "flat, then rising" (hinge) fit to the recent depth history.
//!
//! The oldest-message age dates a backlog well when nothing is delivered (age = time since deliveries stopped),
//! but not a leak: when a few percent of messages are never acknowledged, the first-in-first-out age reads only
//! depth / inflow, a fraction of the time since the leak began. The depth's own trend knows better: it was flat
//! before the leak and has risen steadily since.

/// A trend's onset replaces the oldest message's age only when it is at least this much earlier.
pub const LEAK_MARGIN_S: i64 = 15;

/// The fitted rise must be at least this many times the residual scatter.
const MIN_RISE_SIGMAS: f64 = 4.0;

/// Fewest seconds on each side of a hinge for the fit to count.
const MIN_SIDE: usize = 10;

/// The index `k` into `depths` (one per second) that best fits `depth = b` before `k` and `b + m (t - k)` from
/// it on, with `m > 0`, by least squares; `None` when no rise fits. Cold path (once when a backlog goes on
/// watch): O(n) with running sums.
pub fn hinge(depths: &[u64]) -> Option<usize> {
    let n = depths.len() as f64;
    if depths.len() < 3 * MIN_SIDE {
        return None;
    }
    let (sy, syy) = depths.iter().fold((0.0, 0.0), |(s, q), &y| {
        let y = y as f64;
        (s + y, q + y * y)
    });
    // Sums over t >= k, from the end backwards.
    let (mut rn, mut rt, mut rtt, mut ry, mut rty) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut best: Option<(f64, usize, f64)> = None;
    for (k, &y) in depths.iter().enumerate().rev() {
        let (t, y) = (k as f64, y as f64);
        rn += 1.0;
        rt += t;
        rtt += t * t;
        ry += y;
        rty += t * y;
        if rn < MIN_SIDE as f64 || k < MIN_SIDE {
            continue;
        }
        // Regressors 1 and x = max(0, t - k).
        let sx = rt - t * rn;
        let sxx = rtt - 2.0 * t * rt + t * t * rn;
        let sxy = rty - t * ry;
        let det = n * sxx - sx * sx;
        if det <= f64::EPSILON {
            continue;
        }
        let b = (sxx * sy - sx * sxy) / det;
        let m = (n * sxy - sx * sy) / det;
        if m <= 0.0 {
            continue;
        }
        let sse = syy - (b * sy + m * sxy);
        if best.is_none_or(|(e, _, _)| sse < e) {
            best = Some((sse, k, m));
        }
    }
    // A rise lost in the noise is no rise: the fitted climb must stand well clear of the residual scatter.
    best.filter(|&(sse, k, m)| {
        let scatter = (sse.max(0.0) / n).sqrt();
        m * (n - 1.0 - k as f64) >= MIN_RISE_SIGMAS * scatter.max(1.0)
    })
    .map(|(_, k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_noisy_rise_is_dated_where_it_began() {
        // Flat around 4 for 200 s, then +0.2 per second with the same noise.
        let depths: Vec<u64> = (0..500u64)
            .map(|t| 4 + (t * 7919 % 5) + if t >= 200 { (t - 200) / 5 } else { 0 })
            .collect();
        let k = hinge(&depths).unwrap();
        assert!((185..=215).contains(&k), "hinge at {k}");
    }

    #[test]
    fn a_few_seconds_of_noise_at_the_end_are_no_rise() {
        let mut depths: Vec<u64> = (0..500u64).map(|t| 20 + (t * 7919 % 9)).collect();
        depths.extend([30, 31]);
        assert_eq!(hinge(&depths), None);
    }

    #[test]
    fn flat_or_falling_depth_has_no_rise() {
        let flat: Vec<u64> = (0..300u64).map(|t| 10 + t % 3).collect();
        let hinge_flat = hinge(&flat);
        // Noise may fit a tiny slope anywhere; what matters is that a falling queue gives none.
        let falling: Vec<u64> = (0..300u64).map(|t| 1_000 - t * 3).collect();
        assert_eq!(hinge(&falling), None, "flat gave {hinge_flat:?}");
        assert_eq!(hinge(&[1, 2, 3]), None);
    }
}
