//! Request latency: lognormal (median 50 ms, σ 0.5 in log space; a typical service's shape), and the
//! canary's variants, as probabilities of each of Istio's histogram buckets. A second's requests are then
//! spread over the buckets with one multinomial draw (sequential binomials), never per request.

use super::LATENCY_BOUNDS_MS;

/// The baseline's median, ms.
pub const MEDIAN_MS: f64 = 50.0;
/// The log-space standard deviation: p99 ≈ 160 ms, p99.9 ≈ 235 ms, so a 250 ms bound sees ~0.06 %.
pub const SIGMA: f64 = 0.5;

/// How the canary's latency differs from the baseline's.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum LatencyEffect {
    Same,
    /// Every request slower by this factor (1.10 = +10 % on the median).
    MedianFactor(f64),
    /// `share` of the canary's requests are `factor`× slower (a tail-only regression: e.g. 2 %, 5×).
    Tail {
        share: f64,
        factor: f64,
    },
}

/// `P(X ≤ x)` for a lognormal with this median and σ (erfc form: accurate in both tails).
fn cdf(x: f64, median: f64, sigma: f64) -> f64 {
    if [x, median, sigma].iter().any(|v| v.is_nan() || *v <= 0.0) {
        return if x > 0.0 { 1.0 } else { 0.0 };
    }
    let z = (x.ln() - median.ln()) / (sigma * std::f64::consts::SQRT_2);
    0.5 * libm::erfc(-z)
}

/// Bucket probabilities (20 entries, the last `+Inf`) of a lognormal with this median.
fn buckets(median: f64) -> [f64; 20] {
    let mut p = [0.0; 20];
    let mut below = 0.0;
    for (slot, &bound) in p.iter_mut().zip(LATENCY_BOUNDS_MS.iter()) {
        let c = cdf(bound, median, SIGMA);
        *slot = (c - below).max(0.0);
        below = c;
    }
    p[19] = (1.0 - below).max(0.0);
    p
}

/// The bucket probabilities of the baseline, or of a canary with `effect`.
pub fn distribution(effect: LatencyEffect) -> [f64; 20] {
    match effect {
        LatencyEffect::Same => buckets(MEDIAN_MS),
        LatencyEffect::MedianFactor(f) => buckets(MEDIAN_MS * f),
        LatencyEffect::Tail { share, factor } => {
            let s = if share > 0.0 { share.min(1.0) } else { 0.0 };
            let (fast, slow) = (buckets(MEDIAN_MS), buckets(MEDIAN_MS * factor));
            let mut p = [0.0; 20];
            for ((out, f), s_) in p.iter_mut().zip(fast).zip(slow) {
                *out = (1.0 - s) * f + s * s_;
            }
            p
        }
    }
}

/// The probability of being slower than `bound_ms` when that is a bucket bound (what the judge counts).
pub fn slower_than(p: &[f64; 20], bound_ms: f64) -> f64 {
    p.iter().skip(1).zip(LATENCY_BOUNDS_MS.iter()).filter(|(_, &lower)| lower >= bound_ms).map(|(q, _)| q).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_shape() {
        let p = distribution(LatencyEffect::Same);
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Half the requests at or under the 50 ms bound (the median), by construction.
        assert!((p[..6].iter().sum::<f64>() - 0.5).abs() < 1e-12);
        // Slower than 250 ms: Φ(−ln 5 / 0.5) = Φ(−3.219) ≈ 6.4e-4.
        assert!((slower_than(&p, 250.0) - 6.43e-4).abs() < 1e-5, "{}", slower_than(&p, 250.0));
    }

    #[test]
    fn variants_are_slower() {
        let base = slower_than(&distribution(LatencyEffect::Same), 250.0);
        let plus10 = slower_than(&distribution(LatencyEffect::MedianFactor(1.10)), 250.0);
        let plus25 = slower_than(&distribution(LatencyEffect::MedianFactor(1.25)), 250.0);
        let tail = slower_than(&distribution(LatencyEffect::Tail { share: 0.02, factor: 5.0 }), 250.0);
        assert!(base < plus10 && plus10 < plus25, "{base} {plus10} {plus25}");
        // 2 % of requests with median 250 ms: about half of them above 250 ms, so ≈ 1 % + the rest.
        assert!((tail - (0.98 * base + 0.02 * 0.5)).abs() < 1e-9, "{tail}");
    }
}
