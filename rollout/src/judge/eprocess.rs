//! One metric's anytime-valid test: a mixture of likelihood-ratio test supermartingales for "the canary's
//! share of the interval's events is larger than its share of the requests allows".
//!
//! # The test
//! Each reading gives, for one interval, canary requests `n_c`, baseline requests `n_b`, canary events `a`
//! and baseline events `b` (5xx answers, or requests slower than a latency bound). The null hypothesis, per
//! interval, is `q_c ≤ r·q_b + δ` for the arms' event rates `q_c`, `q_b` in that interval, with `r` =
//! `tolerance.ratio` (≥ 1) and `δ` = `tolerance.points / 100`. The rates may differ from one interval to the
//! next (traffic mix, time of day, a shared dependency failing): only how an interval's events split between
//! the arms carries evidence, as in Lindon & Malek's counting-process tests, where events are split across
//! arms by traffic share (Lindon & Malek, "Anytime-Valid Inference for Multinomial Count Data", NeurIPS 2022,
//! arXiv:2011.03567; applied to canary releases in Lindon, Sanden & Shirikian, "Rapid Regression Detection in
//! Software Deployments through Sequential Testing", KDD 2022, arXiv:2205.14762).
//!
//! Under the null at its boundary with `δ = 0`, an event is the canary's with probability
//! `θ0 = r·n_c / (r·n_c + n_b)`. For an alternative odds multiplier `κ > 1` the canary's share is
//! `θ̂ = κ·r·n_c / (κ·r·n_c + n_b)`; `v = n_b·δ/r` virtual baseline events (real-valued, deterministic) absorb
//! the absolute tolerance. The interval's factor for component `κ` is
//!
//! ```text
//! F_κ = (θ̂/θ0)^a · ((1−θ̂)/(1−θ0))^(b+v)
//! ln F_κ = a·ln κ + (a + b + v)·(ln(r·n_c + n_b) − ln(κ·r·n_c + n_b))
//! ```
//!
//! (the second line is the first with `θ̂/θ0 = κ(r n_c + n_b)/(κ r n_c + n_b)` and
//! `(1−θ̂)/(1−θ0) = (r n_c + n_b)/(κ r n_c + n_b)`; it is what we compute, in logs, with no cancellation).
//! An interval with `n_c = 0` or `n_b = 0` has factor 1 (nothing to compare).
//!
//! # Why it is valid (proof sketch, checked term by term)
//! Condition on the request counts. Suppose each request's event is an independent Bernoulli draw, the
//! canary's with rate `q_c`, the baseline's with `q_b`, and `q_c ≤ r·q_b + δ`. Write `x = θ̂/θ0 ≥ 1` and
//! `y = (1−θ̂)/(1−θ0) ≤ 1` (both > 0).
//! 1. Binomial mgf ≤ Poisson mgf: `(1 + q(x−1))^n ≤ e^{n q (x−1)}` for `x > 0` (from `1 + u ≤ e^u`), so
//!    `E[x^a y^b] ≤ exp(n_c q_c (x−1) + n_b q_b (y−1))`. The same holds if the rates vary request by request
//!    within the interval, with `q` their mean over the arm's requests.
//! 2. As `x − 1 ≥ 0`, replace `q_c` by its bound `r q_b + δ`. The `q_b` terms are
//!    `q_b·(n_c r (x−1) + n_b (y−1)) = q_b (θ̂−θ0)·(n_c r/θ0 − n_b/(1−θ0))`, and
//!    `n_c r/θ0 = n_b/(1−θ0) = r n_c + n_b`: they cancel exactly, whatever `q_b` is.
//! 3. What remains with the virtual events is `n_c δ (x−1) + v ln y ≤ n_c δ (x−1) − v (1−y)` (as
//!    `ln y ≤ y − 1`) `= (θ̂−θ0)·(n_c δ/θ0 − v/(1−θ0))`, which is 0 for `v = n_c δ (1−θ0)/θ0 = n_b δ/r`.
//!
//! So `E[F_κ | past] ≤ 1`: each component's running product is a nonnegative supermartingale starting at 1
//! (a test supermartingale), and so is their average `E_t = (1/K) Σ_κ Π F_κ` over the fixed grid [`KAPPAS`]
//! (a mixture over alternatives, as in Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform, nonparametric,
//! nonasymptotic confidence sequences", Ann. Statist. 2021, and the betting view of Waudby-Smith & Ramdas,
//! "Estimating means of bounded random variables by betting", JRSS-B 2024: each component bets a fixed
//! fraction on the canary's share being high). Ville's inequality gives `P(sup_t E_t ≥ 1/α) ≤ α`: rolling back
//! the first time `E_t ≥ 1/α` has false-rollback probability ≤ α however often the judge looks and however
//! long the rollout runs. `tests/judge_aa.rs` checks `E[F_κ] ≤ 1` by Monte Carlo at the boundary and the
//! false-rollback rate on simulated A/A rollouts.
//!
//! # What is assumed (the limits)
//! Requests' outcomes are independent given the interval's rates, and the request counts do not depend on
//! the interval's outcomes (the router splits traffic before it knows the answer). A sticky cohort breaks
//! the first point in one way the test does not model: if errors cluster by *user* (one user's broken
//! account fails every request), the canary's cohort is a sample of users, not of requests, and the variance
//! of `a` exceeds the Binomial's; the guarantee then holds only approximately. Rates that change over time
//! in the same way for both arms (diurnal load, a shared database failing) are allowed: step 2 cancels
//! `q_b` in every interval separately, so only the within-interval split matters. The grid's smallest
//! `κ = 1.25` bounds what the test can detect quickly: a canary only 10 % worse is found slowly, if ever.

use serde::{Deserialize, Serialize};

/// The alternatives' odds multipliers κ, weighted equally: from "25 % more events than the tolerance
/// allows" to "a hundred times more" (a broken canary), so one mixture is quick for both.
pub const KAPPAS: [f64; 8] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0];

/// The largest relative tolerance used: beyond it `r·n_c` could overflow nothing but means "anything goes".
const MAX_RATIO: f64 = 1e12;

/// The running state of one metric's mixture e-process (serialisable with the judge).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EProcess {
    /// `ln Π F_κ` over the intervals so far, one per entry of [`KAPPAS`]: always finite.
    log_products: Vec<f64>,
    pub canary_events: u64,
    pub canary_requests: u64,
    pub baseline_events: u64,
    pub baseline_requests: u64,
}

impl Default for EProcess {
    fn default() -> Self {
        EProcess {
            log_products: vec![0.0; KAPPAS.len()],
            canary_events: 0,
            canary_requests: 0,
            baseline_events: 0,
            baseline_requests: 0,
        }
    }
}

/// The null's parameters `(r, δ)` from a tolerance, made usable whatever the input: NaN or a ratio below 1
/// becomes 1 and NaN or negative points become 0 (the strictest valid reading; `JudgeSettings::validate`
/// refuses such settings before a rollout starts), and both are capped where they already accept anything.
pub fn null_parameters(ratio: f64, points: f64) -> (f64, f64) {
    let r = if ratio >= 1.0 { ratio.min(MAX_RATIO) } else { 1.0 };
    let delta = if points > 0.0 { (points / 100.0).min(1.0) } else { 0.0 };
    (r, delta)
}

/// `ln F_κ` for one interval (module doc). Counts are clamped to `events ≤ requests`, the only outcomes a
/// per-request model has (a racy source could report more); an empty arm gives 0.
pub fn log_factor(kappa: f64, r: f64, delta: f64, n_c: u64, n_b: u64, a: u64, b: u64) -> f64 {
    if n_c == 0 || n_b == 0 {
        return 0.0;
    }
    let (n_c, n_b) = (n_c as f64, n_b as f64);
    let a = (a as f64).min(n_c);
    let b = (b as f64).min(n_b);
    let v = n_b * delta / r;
    let rn = r * n_c;
    let log_y = (rn + n_b).ln() - (kappa * rn + n_b).ln();
    let value = a * kappa.ln() + (a + b + v) * log_y;
    if value.is_finite() {
        value
    } else {
        0.0
    }
}

impl EProcess {
    /// Multiplies in one interval's factors.
    pub fn observe(&mut self, r: f64, delta: f64, n_c: u64, n_b: u64, a: u64, b: u64) {
        self.canary_requests = self.canary_requests.saturating_add(n_c);
        self.baseline_requests = self.baseline_requests.saturating_add(n_b);
        self.canary_events = self.canary_events.saturating_add(a);
        self.baseline_events = self.baseline_events.saturating_add(b);
        for (log_product, &kappa) in self.log_products.iter_mut().zip(KAPPAS.iter()) {
            let next = *log_product + log_factor(kappa, r, delta, n_c, n_b, a, b);
            // Sums of finite terms stay finite unless ~1e308 events were counted; keep the state JSON-safe.
            if next.is_finite() {
                *log_product = next;
            }
        }
    }

    /// `ln E_t`, the mixture's log: log-sum-exp of the components minus `ln K`.
    pub fn log_value(&self) -> f64 {
        let max = self.log_products.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return 0.0;
        }
        let sum: f64 = self.log_products.iter().map(|l| (l - max).exp()).sum();
        let k = self.log_products.len().max(1) as f64;
        max + sum.ln() - k.ln()
    }

    /// `E_t`, saturated at `f64::MAX` so that JSON (which has no ∞) can carry it.
    pub fn value(&self) -> f64 {
        self.log_value().exp().min(f64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log form equals the definition `(θ̂/θ0)^a ((1−θ̂)/(1−θ0))^(b+v)` computed directly.
    #[test]
    fn log_factor_matches_the_definition() {
        for &(kappa, r, delta, n_c, n_b, a, b) in
            &[(2.0, 1.0, 0.0, 10, 90, 3, 5), (1.25, 1.5, 0.01, 40, 60, 0, 2), (30.0, 1.0, 0.05, 7, 3, 2, 0)]
        {
            let (nc, nb) = (n_c as f64, n_b as f64);
            let theta0 = r * nc / (r * nc + nb);
            let theta = kappa * r * nc / (kappa * r * nc + nb);
            let v = nb * delta / r;
            let direct = (theta / theta0).powf(a as f64) * ((1.0 - theta) / (1.0 - theta0)).powf(b as f64 + v);
            let ours = log_factor(kappa, r, delta, n_c, n_b, a, b).exp();
            assert!((direct - ours).abs() <= 1e-12 * direct.max(1.0), "{direct} vs {ours}");
        }
    }

    #[test]
    fn empty_arm_or_no_events_is_neutral_or_favourable() {
        assert_eq!(log_factor(2.0, 1.0, 0.0, 0, 100, 0, 5), 0.0);
        assert_eq!(log_factor(2.0, 1.0, 0.0, 100, 0, 5, 0), 0.0);
        // No events at all: no evidence either way with δ = 0, evidence *for* the canary with δ > 0.
        assert_eq!(log_factor(2.0, 1.0, 0.0, 100, 100, 0, 0), 0.0);
        assert!(log_factor(2.0, 1.0, 0.01, 100, 100, 0, 0) < 0.0);
    }

    #[test]
    fn canary_events_raise_and_baseline_events_lower_the_evidence() {
        let mut bad = EProcess::default();
        let mut good = EProcess::default();
        for _ in 0..20 {
            bad.observe(1.0, 0.0, 100, 100, 5, 0);
            good.observe(1.0, 0.0, 100, 100, 0, 5);
        }
        assert!(bad.value() > 1e6, "{}", bad.value());
        assert!(good.value() < 1.0, "{}", good.value());
        assert_eq!(bad.canary_events, 100);
        assert_eq!(good.baseline_requests, 2000);
    }

    #[test]
    fn hostile_counts_stay_finite() {
        let mut e = EProcess::default();
        e.observe(f64::NAN, f64::NAN, u64::MAX, u64::MAX, u64::MAX, 0);
        e.observe(1.0, 0.0, 1, u64::MAX, u64::MAX, u64::MAX);
        assert!(e.log_value().is_finite());
        let (r, d) = null_parameters(f64::NAN, f64::NAN);
        assert_eq!((r, d), (1.0, 0.0));
        assert_eq!(null_parameters(0.5, -3.0), (1.0, 0.0));
        assert_eq!(null_parameters(f64::INFINITY, 500.0), (MAX_RATIO, 1.0));
    }
}
