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
//!
//! # The mirror test: evidence that the canary is *within* the tolerance (`promote: evidence`)
//! The null is now, per interval, `H0′: q_c ≥ r·q_b + δ` (the canary at least as bad as the tolerance
//! allows), and rejecting it is evidence for promotion. The factor is the same `F_κ`, the same `θ0`, `θ̂`
//! and `v = n_b·δ/r`, with alternatives `κ < 1` ([`WITHIN_KAPPAS`]: the canary's share of the events
//! *smaller* than the boundary's). `log_factor` computes it unchanged. Now `x = θ̂/θ0 ≤ 1` and
//! `y = (1−θ̂)/(1−θ0) ≥ 1`.
//! 1. The mgf step holds for any `x, y > 0`: `E[x^a y^b] ≤ exp(n_c q_c (x−1) + n_b q_b (y−1))`.
//! 2. Now `x − 1 ≤ 0`, so the exponent is largest at the *smallest* `q_c` H0′ allows: replace `q_c` by
//!    `r q_b + δ` (an upper bound on the exponent). The `q_b` terms cancel exactly as before (that step
//!    never used the sign of `x − 1`).
//! 3. What remains is `n_c δ (x−1) + v ln y ≤ n_c δ (x−1) + v (y−1)` (`ln y ≤ y − 1` holds for every
//!    `y > 0`) `= (θ̂−θ0)·(n_c δ/θ0 − v/(1−θ0)) = 0` for the same `v`.
//!
//! So under H0′ `E[F_κ | past] ≤ 1` for `κ < 1` too, the mixture over [`WITHIN_KAPPAS`] is a test
//! supermartingale, and by Ville `P(sup_t W_t ≥ 1/β) ≤ β`: passing a step only while `W_t ≥ 1/β` promotes
//! *any* step of a canary worse than the tolerance with probability ≤ β over the whole rollout, however
//! often it is looked at. (If `r·q_b + δ > 1` H0′ is empty: nothing to guarantee.)
//!
//! Here the virtual events work *for* the canary (`y^v ≥ 1`): an absolute tolerance is evidence that grows
//! with canary requests served without many events. With no tolerance at all (`δ = 0`, `r = 1`) an equal
//! canary sits exactly on H0′'s boundary and its expected log-evidence per interval is negative, so it can
//! never be shown within: the plan refuses `promote: evidence` without a tolerance. The test is slow where
//! events are rare: with `δ = 0` each event carries about `KL(θ ‖ θ0)` nats, which is tiny when the canary's
//! share is 1 % (`θ ≈ 1 %` vs `θ0 ≈ 1.25 %` for `r = 1.25`: ~2.5·10⁻⁴ nats per event), so a first step at
//! 1 % needs some 20,000 events before `W_t` reaches 20.

use serde::{Deserialize, Serialize};

/// The alternatives' odds multipliers κ, weighted equally: from "25 % more events than the tolerance
/// allows" to "a hundred times more" (a broken canary), so one mixture is quick for both.
pub const KAPPAS: [f64; 8] = [1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 100.0];

/// The mirror test's alternatives (module doc, "The mirror test"): from "the canary's share of events 20 %
/// below the boundary's" (an A/A canary under a ratio-1.25 tolerance) to "a tenth of it" (an absolute
/// tolerance that the canary's few events leave mostly unused).
pub const WITHIN_KAPPAS: [f64; 6] = [0.8, 0.67, 0.5, 0.33, 0.2, 0.1];

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
    /// The rollback test's process (one component per entry of [`KAPPAS`]).
    fn default() -> Self {
        EProcess::with_components(KAPPAS.len())
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
    /// A fresh process (every component's product 1) for a grid of `components` alternatives.
    pub fn with_components(components: usize) -> EProcess {
        EProcess {
            log_products: vec![0.0; components],
            canary_events: 0,
            canary_requests: 0,
            baseline_events: 0,
            baseline_requests: 0,
        }
    }

    /// The mirror test's fresh process (one component per entry of [`WITHIN_KAPPAS`]); also what a state
    /// file written before `promote: evidence` existed loads as.
    pub fn within() -> EProcess {
        EProcess::with_components(WITHIN_KAPPAS.len())
    }

    /// Multiplies in one interval's factors, component `i` for alternative `kappas[i]` ([`KAPPAS`] for the
    /// rollback test, [`WITHIN_KAPPAS`] for the mirror test). A state whose component count differs from the
    /// grid's (edited by hand) uses the components both have.
    // One interval's four counts and the null's two parameters are the test's inputs; a struct for them
    // would be built and taken apart at the one call site.
    #[allow(clippy::too_many_arguments)]
    pub fn observe(&mut self, kappas: &[f64], r: f64, delta: f64, n_c: u64, n_b: u64, a: u64, b: u64) {
        self.canary_requests = self.canary_requests.saturating_add(n_c);
        self.baseline_requests = self.baseline_requests.saturating_add(n_b);
        self.canary_events = self.canary_events.saturating_add(a);
        self.baseline_events = self.baseline_events.saturating_add(b);
        for (log_product, &kappa) in self.log_products.iter_mut().zip(kappas.iter()) {
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
            bad.observe(&KAPPAS, 1.0, 0.0, 100, 100, 5, 0);
            good.observe(&KAPPAS, 1.0, 0.0, 100, 100, 0, 5);
        }
        assert!(bad.value() > 1e6, "{}", bad.value());
        assert!(good.value() < 1.0, "{}", good.value());
        assert_eq!(bad.canary_events, 100);
        assert_eq!(good.baseline_requests, 2000);
    }

    /// The mirror test reads the same data the other way: canary events lower, baseline events and an
    /// absolute tolerance raise the evidence that the canary is within the tolerance.
    #[test]
    fn within_evidence_grows_for_a_good_canary_only() {
        let (mut good, mut bad, mut quiet) = (EProcess::within(), EProcess::within(), EProcess::within());
        for _ in 0..50 {
            // Ratio 1.5: a canary at half the baseline's rate is well within, one at 3× is not.
            good.observe(&WITHIN_KAPPAS, 1.5, 0.0, 100, 100, 1, 2);
            bad.observe(&WITHIN_KAPPAS, 1.5, 0.0, 100, 100, 6, 2);
            // +1 point and no events at all: 5,000 canary requests without an error.
            quiet.observe(&WITHIN_KAPPAS, 1.0, 0.01, 100, 100, 0, 0);
        }
        assert!(good.value() > 100.0, "{}", good.value());
        assert!(bad.value() < 1e-3, "{}", bad.value());
        assert!(quiet.value() > 100.0, "{}", quiet.value());
        // No tolerance and no events: no evidence either way.
        let mut none = EProcess::within();
        none.observe(&WITHIN_KAPPAS, 1.0, 0.0, 100, 100, 0, 0);
        assert_eq!(none.value(), 1.0);
    }

    #[test]
    fn hostile_counts_stay_finite() {
        let mut e = EProcess::default();
        e.observe(&KAPPAS, f64::NAN, f64::NAN, u64::MAX, u64::MAX, u64::MAX, 0);
        e.observe(&KAPPAS, 1.0, 0.0, 1, u64::MAX, u64::MAX, u64::MAX);
        assert!(e.log_value().is_finite());
        let (r, d) = null_parameters(f64::NAN, f64::NAN);
        assert_eq!((r, d), (1.0, 0.0));
        assert_eq!(null_parameters(0.5, -3.0), (1.0, 0.0));
        assert_eq!(null_parameters(f64::INFINITY, 500.0), (MAX_RATIO, 1.0));
    }
}
