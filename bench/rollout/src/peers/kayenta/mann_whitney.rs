//! Kayenta's Mann-Whitney confidence interval and location estimate (spinnaker/kayenta
//! `kayenta-mannwhitney/src/main/scala/com/netflix/kayenta/mannwhitney/MannWhitney.scala`).
//!
//! Kayenta does not call a library's U test: `MannWhitney.calculateConfidenceInterval` is a port of R's
//! `wilcox.test(x, y, conf.int = TRUE, exact = FALSE, correct = TRUE)`: the interval ends and the estimate are
//! the shifts μ at which the continuity-corrected, tie-corrected normal statistic of the rank-sum test of
//! `x − μ` against `y` equals ±z(α/2) and 0, found with a Brent root finder. From Apache Commons Math it takes
//! the ranking (`NaturalRanking(NaNStrategy.MAXIMAL, TiesStrategy.AVERAGE)`) and the normal quantile
//! (`NormalDistribution(0,1).inverseCumulativeProbability`); we take the same two primitives from `statrs`
//! (`Data::ranks(RankTieBreaker::Average)`, `Normal::inverse_cdf`). The Brent solver is Kayenta's own
//! (`kayenta-mannwhitney/src/main/java/com/netflix/kayenta/mannwhitney/BrentSolver.java`, R's `zeroin` with
//! tolerance 1e-4), ported below so the roots match Kayenta's, coarse absolute tolerance included.
//!
//! No crates.io crate computes this interval: `hypors::mann_whitney::u_test` (0.4) returns a p-value only
//! (its `confidence_interval` is `(NaN, NaN)`) and the classifier never uses a p-value.

use statrs::distribution::{ContinuousCDF, Normal};
use statrs::statistics::{Data, OrderStatistics, RankTieBreaker};

/// `MannWhitneyResult(confidenceInterval, estimate)`: the interval for the shift x − y and its estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShiftInterval {
    pub lower: f64,
    pub upper: f64,
    pub estimate: f64,
}

/// Why no interval: Kayenta throws in both cases and the judge labels the metric `Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MwError {
    /// "cannot compute confidence interval when all observations are tied" (`wilcoxonDiff`).
    AllTied,
    /// Empty or non-finite input, or a confidence level outside (0, 1).
    BadInput,
}

/// `MannWhitney.wilcoxonDiff(mu, quantile, x, y)`: the corrected normal statistic of the rank sum of x − μ
/// among all observations, minus `quantile`.
pub fn wilcoxon_diff(mu: f64, quantile: f64, x: &[f64], y: &[f64]) -> Result<f64, MwError> {
    let x_len = x.len() as f64;
    let y_len = y.len() as f64;
    let combined: Vec<f64> = x.iter().map(|v| v - mu).chain(y.iter().copied()).collect();
    if combined.iter().any(|v| !v.is_finite()) {
        // statrs's ranking unwraps partial_cmp; Kayenta never gets here with NaN (removed upstream).
        return Err(MwError::BadInput);
    }
    let ranks = Data::new(combined).ranks(RankTieBreaker::Average);
    // ntiesCi = dr.groupBy(identity): tied observations share one average rank.
    let mut sorted = ranks.clone();
    sorted.sort_by(f64::total_cmp);
    let mut tie_term = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[i] {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        tie_term += t.powi(3) - t;
        i = j + 1;
    }
    let rank_sum_x: f64 = ranks[..x.len()].iter().sum();
    let dz = rank_sum_x - x_len * (x_len + 1.0) / 2.0 - x_len * y_len / 2.0;
    // Scala's Double.signum: −1, 0 or 1 (NaN → 0 by the explicit guard).
    let signum = if dz > 0.0 {
        1.0
    } else if dz < 0.0 {
        -1.0
    } else {
        0.0
    };
    let correction = signum * 0.5;
    let sigma = ((x_len * y_len / 12.0)
        * ((x_len + y_len + 1.0) - tie_term / ((x_len + y_len) * (x_len + y_len - 1.0))))
        .sqrt();
    if sigma == 0.0 || sigma.is_nan() {
        return Err(MwError::AllTied);
    }
    Ok((dz - correction) / sigma - quantile)
}

/// `MannWhitney.mannWhitneyUTest(x, y, confidenceLevel)` → `calculateConfidenceInterval(x, y, level, 0)`.
pub fn shift_interval(x: &[f64], y: &[f64], confidence_level: f64) -> Result<ShiftInterval, MwError> {
    if x.is_empty() || y.is_empty() || !(confidence_level > 0.0 && confidence_level < 1.0) {
        return Err(MwError::BadInput);
    }
    if x.iter().chain(y).any(|v| !v.is_finite()) {
        return Err(MwError::BadInput);
    }
    let alpha = 1.0 - confidence_level;
    let (x_min, x_max) = min_max(x);
    let (y_min, y_max) = min_max(y);
    let mu_min = x_min - y_max;
    let mu_max = x_max - y_min;
    let normal = Normal::new(0.0, 1.0).map_err(|_| MwError::BadInput)?;
    let z_quant = normal.inverse_cdf(alpha / 2.0);
    let find_root = |zq: f64| -> Result<f64, MwError> {
        let f_lower = wilcoxon_diff(mu_min, zq, x, y)?;
        let f_upper = wilcoxon_diff(mu_max, zq, x, y)?;
        if f_lower <= 0.0 {
            Ok(mu_min)
        } else if f_upper >= 0.0 {
            Ok(mu_max)
        } else {
            brent(mu_min, mu_max, f_lower, f_upper, |mu| wilcoxon_diff(mu, zq, x, y))
        }
    };
    let lower = find_root(-z_quant)?;
    let upper = find_root(z_quant)?;
    let f_lower = wilcoxon_diff(mu_min, 0.0, x, y)?;
    let f_upper = wilcoxon_diff(mu_max, 0.0, x, y)?;
    let estimate = brent(mu_min, mu_max, f_lower, f_upper, |mu| wilcoxon_diff(mu, 0.0, x, y))?;
    Ok(ShiftInterval { lower, upper, estimate })
}

fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// Commons Math `Precision.equals(x, 0)`: equal within one ulp, i.e. ±0 or ± the smallest subnormal.
fn is_zero_within_ulp(x: f64) -> bool {
    x.abs() <= f64::from_bits(1)
}

/// Kayenta's `BrentSolver.solve(ax, bx, fa, fb, func)`: R's `zeroin`, at most 1000 iterations, tolerance 1e-4.
fn brent(
    ax: f64,
    bx: f64,
    fa: f64,
    fb: f64,
    mut func: impl FnMut(f64) -> Result<f64, MwError>,
) -> Result<f64, MwError> {
    const MAX_ITERATIONS: usize = 1000;
    const TOLERANCE: f64 = 1e-4;
    const EPSILON: f64 = 2.220446049250313e-16;
    let (mut a, mut b, mut fa, mut fb) = (ax, bx, fa, fb);
    let (mut c, mut fc) = (a, fa);
    if is_zero_within_ulp(fa) {
        return Ok(a);
    }
    if is_zero_within_ulp(fb) {
        return Ok(b);
    }
    for _ in 0..=MAX_ITERATIONS {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * EPSILON * b.abs() + TOLERANCE / 2.0;
        let mut new_step = (c - b) / 2.0;
        if new_step.abs() <= tol_act || is_zero_within_ulp(fb) {
            return Ok(b);
        }
        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                q = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * q * (q - t1) - (b - a) * (t1 - 1.0));
                q = (q - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < (0.75 * cb * q - (tol_act * q).abs() / 2.0) && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }
        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = func(b)?;
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// R: `wilcox.test(x, y, conf.int = TRUE, conf.level = 0.95, exact = FALSE, correct = TRUE)` with
    /// x = 1..10, y = 1..10 + 20: the normal statistic at μ = 0 is (−50 + 0.5)/√175 (no ties: σ² = 10·10·21/12).
    #[test]
    fn statistic_matches_the_closed_form() {
        let x: Vec<f64> = (1..=10).map(f64::from).collect();
        let y: Vec<f64> = (21..=30).map(f64::from).collect();
        let z = wilcoxon_diff(0.0, 0.0, &x, &y).unwrap();
        assert!((z - (-49.5 / 175f64.sqrt())).abs() < 1e-12, "{z}");
        // At μ = −20, x − μ equals y value for value: ten tied pairs with ranks 2k − ½, so the rank sum of x
        // is 105 and dz = 105 − 55 − 50 = 0: no continuity correction, statistic 0.
        let tied = wilcoxon_diff(-20.0, 0.0, &x, &y).unwrap();
        assert!(tied.abs() < 1e-12, "x + 20 == y exactly: dz = 0, {tied}");
        assert_eq!(wilcoxon_diff(0.0, 0.0, &[1.0, 1.0], &[1.0]), Err(MwError::AllTied));
    }

    /// A pure location shift: the estimate is the shift, the interval contains it and excludes 0.
    #[test]
    fn shifted_samples() {
        let y: Vec<f64> = (0..60).map(|i| f64::from(i % 12)).collect();
        let x: Vec<f64> = y.iter().map(|v| v + 5.0).collect();
        let r = shift_interval(&x, &y, 0.98).unwrap();
        assert!((r.estimate - 5.0).abs() < 1e-3, "{r:?}");
        assert!(r.lower > 0.0 && r.lower <= 5.0 && r.upper >= 5.0, "{r:?}");
        let same = shift_interval(&y, &y, 0.98).unwrap();
        assert!(same.lower < 0.0 && same.upper > 0.0 && same.estimate.abs() < 1e-3, "{same:?}");
        assert_eq!(shift_interval(&[], &y, 0.98), Err(MwError::BadInput));
        assert_eq!(shift_interval(&[f64::NAN], &y, 0.98), Err(MwError::BadInput));
        assert_eq!(shift_interval(&x, &y, 1.0), Err(MwError::BadInput));
    }
}
