//! The anytime-valid judge: is the canary worse than the baseline it runs beside, by more than the plan
//! tolerates? One e-process per judged metric (`eprocess`: the test, its proof sketch, its assumptions),
//! fed interval deltas, so the controller may look as often as it likes without inflating the false-rollback
//! rate.
//!
//! **Two metrics, Bonferroni.** Errors and (when the plan judges it) latency each get `α/2` (threshold `2/α`);
//! errors alone get all of `α`. Splitting α rather than averaging the two e-processes keeps a rollback's
//! reason exact: the named metric's own null is rejected at level `α/2` even when the other metric really
//! is worse, and the operator sees one e-value per metric against its own threshold. The cost is a factor 2
//! on one threshold (ln 2 ≈ 0.7 nats of evidence, a few events).
//!
//! **The mirror test, for promotion.** Each metric also has a second e-process fed the same deltas: the
//! evidence that the canary is *within* its tolerance (`eprocess`, "The mirror test"). The judge always
//! keeps it; the stepper uses it only under `promote: evidence` ([`Judge::within_tolerance`]). There β is
//! *not* split over the metrics: promotion needs every metric's within-evidence ≥ 1/β, so a canary worse
//! than the tolerance on metric `m` is promoted only if `m`'s own process crosses 1/β, which has probability
//! ≤ β (an intersection–union test: rejecting a union of nulls needs each rejected at level β, no Bonferroni).

mod eprocess;

pub use eprocess::{log_factor, null_parameters, KAPPAS, WITHIN_KAPPAS};

use serde::{Deserialize, Serialize};

use crate::counts::Counts;
use eprocess::EProcess;

/// The null hypothesis a metric is tested against: canary rate ≤ `ratio` × baseline rate + `points` / 100.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Absolute tolerance in percentage points (0.5 = "no more than +0.5 points").
    pub points: f64,
    /// Relative tolerance (≥ 1; 1 = no relative slack).
    pub ratio: f64,
}

impl Default for Tolerance {
    /// No slack: any canary worse than its baseline is a regression (the test still needs evidence).
    fn default() -> Self {
        Tolerance { points: 0.0, ratio: 1.0 }
    }
}

impl Tolerance {
    /// `points` in [0, 100] and `ratio` ≥ 1 (finite): anything else has no sensible reading.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.points.is_finite() && (0.0..=100.0).contains(&self.points)) {
            return Err(format!("tolerance points must be between 0 and 100, got {}", self.points));
        }
        if !(self.ratio.is_finite() && self.ratio >= 1.0) {
            return Err(format!("tolerance ratio must be at least 1, got {}", self.ratio));
        }
        Ok(())
    }
}

/// Latency judged as "slower than `bound_ms`" (a bucket bound of the proxies' latency histogram).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyCheck {
    pub bound_ms: f64,
    pub tolerance: Tolerance,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgeSettings {
    /// Significance: the probability of ever rolling back a canary that is no worse (default 0.01).
    pub alpha: f64,
    pub errors: Tolerance,
    pub latency: Option<LatencyCheck>,
}

impl Default for JudgeSettings {
    /// α = 0.01 (one false rollback in a hundred good releases at most), errors with no tolerance, latency
    /// not judged (it needs a bound that only the operator knows).
    fn default() -> Self {
        JudgeSettings { alpha: 0.01, errors: Tolerance::default(), latency: None }
    }
}

impl JudgeSettings {
    /// α in (0, 1), tolerances valid, a latency bound positive and finite.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(format!("alpha must be between 0 and 1 (exclusive), got {}", self.alpha));
        }
        self.errors.validate().map_err(|e| format!("errors: {e}"))?;
        if let Some(latency) = &self.latency {
            if !(latency.bound_ms.is_finite() && latency.bound_ms > 0.0) {
                return Err(format!("latency bound must be a positive number of ms, got {}", latency.bound_ms));
            }
            latency.tolerance.validate().map_err(|e| format!("latency: {e}"))?;
        }
        Ok(())
    }

    /// 1/α per metric after the Bonferroni split (module doc). An α that is not in (0, 1] never rolls back
    /// (`f64::MAX`, which JSON can carry, unlike ∞); `validate` refuses it first.
    pub fn threshold(&self) -> f64 {
        let metrics = if self.latency.is_some() { 2.0 } else { 1.0 };
        if self.alpha > 0.0 && self.alpha.is_finite() {
            (metrics / self.alpha.min(1.0)).min(f64::MAX)
        } else {
            f64::MAX
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Errors,
    Latency,
}

/// What the judge knows about one metric now.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub metric: Metric,
    /// The e-process's value: the evidence that the canary is worse than the tolerance allows.
    pub e_value: f64,
    /// 1/α: crossing it rolls back.
    pub threshold: f64,
    pub baseline_events: u64,
    pub baseline_requests: u64,
    pub canary_events: u64,
    pub canary_requests: u64,
    /// The mirror e-process's value: the evidence that the canary is *within* the tolerance. Present only
    /// when the rollout promotes on evidence (absent in older states and in `promote: time` output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_e_value: Option<f64>,
    /// 1/β: the within-evidence a step needs to pass under `promote: evidence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_threshold: Option<f64>,
}

/// The judge's whole state (serialisable: the rollout's state file carries it across restarts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judge {
    settings: JudgeSettings,
    errors: EProcess,
    latency: EProcess,
    /// The mirror tests (evidence that each metric is within its tolerance); a state saved before they
    /// existed starts them fresh, which only delays an evidence-gated promotion.
    #[serde(default = "EProcess::within")]
    errors_within: EProcess,
    #[serde(default = "EProcess::within")]
    latency_within: EProcess,
    /// The first metric whose e-value reached its threshold: latched, since Ville's inequality bounds the
    /// probability of *ever* crossing (a later fall does not undo the evidence).
    crossed: Option<Metric>,
}

impl Judge {
    pub fn new(settings: JudgeSettings) -> Judge {
        Judge {
            settings,
            errors: EProcess::default(),
            latency: EProcess::default(),
            errors_within: EProcess::within(),
            latency_within: EProcess::within(),
            crossed: None,
        }
    }

    pub fn settings(&self) -> &JudgeSettings {
        &self.settings
    }

    /// One interval's new events (deltas since the previous reading); the arms' traffic shares in the
    /// interval are taken from their request counts.
    pub fn observe(&mut self, delta: &Counts) {
        let (c, b) = (&delta.canary, &delta.baseline);
        let (r, d) = null_parameters(self.settings.errors.ratio, self.settings.errors.points);
        self.errors.observe(&KAPPAS, r, d, c.requests, b.requests, c.errors, b.errors);
        self.errors_within.observe(&WITHIN_KAPPAS, r, d, c.requests, b.requests, c.errors, b.errors);
        if let Some(latency) = &self.settings.latency {
            let (r, d) = null_parameters(latency.tolerance.ratio, latency.tolerance.points);
            self.latency.observe(&KAPPAS, r, d, c.requests, b.requests, c.slow, b.slow);
            self.latency_within.observe(&WITHIN_KAPPAS, r, d, c.requests, b.requests, c.slow, b.slow);
        }
        if self.crossed.is_none() {
            let log_threshold = self.log_threshold();
            // Errors first when both cross in one reading: the more common and more serious regression.
            if self.errors.log_value() >= log_threshold {
                self.crossed = Some(Metric::Errors);
            } else if self.settings.latency.is_some() && self.latency.log_value() >= log_threshold {
                self.crossed = Some(Metric::Latency);
            }
        }
    }

    /// `ln(1/α_metric)`, or +∞ for an α outside (0, 1] (never roll back: `threshold` reports `f64::MAX`).
    fn log_threshold(&self) -> f64 {
        if self.settings.alpha > 0.0 && self.settings.alpha.is_finite() {
            self.settings.threshold().ln()
        } else {
            f64::INFINITY
        }
    }

    /// The first metric whose evidence crossed 1/α, if any.
    pub fn regressed(&self) -> Option<Metric> {
        self.crossed
    }

    /// Whether every judged metric's within-evidence is now at least `1/beta` (module doc: no split over
    /// metrics). The current value, not a latch: a canary that degrades as its share grows pulls the
    /// evidence back down and its next step waits; Ville's bound covers every look, so this is still ≤ β.
    /// A β outside (0, 1) never passes.
    pub fn within_tolerance(&self, beta: f64) -> bool {
        if !(beta > 0.0 && beta < 1.0) {
            return false;
        }
        let log_threshold = -beta.ln();
        let errors = self.errors_within.log_value() >= log_threshold;
        let latency = self.settings.latency.is_none() || self.latency_within.log_value() >= log_threshold;
        errors && latency
    }

    /// Each judged metric's evidence; the within-evidence only if `beta` is given (`promote: evidence`).
    pub fn evidence_with(&self, beta: Option<f64>) -> Vec<Evidence> {
        let mut all = self.evidence();
        if let Some(beta) = beta {
            let threshold = if beta > 0.0 && beta < 1.0 { (1.0 / beta).min(f64::MAX) } else { f64::MAX };
            for e in &mut all {
                let within = match e.metric {
                    Metric::Errors => &self.errors_within,
                    Metric::Latency => &self.latency_within,
                };
                e.within_e_value = Some(within.value());
                e.within_threshold = Some(threshold);
            }
        }
        all
    }

    /// Each judged metric's evidence that the canary is worse (no within-evidence: `evidence_with`).
    pub fn evidence(&self) -> Vec<Evidence> {
        let threshold = self.settings.threshold();
        let one = |metric: Metric, e: &EProcess| Evidence {
            metric,
            e_value: e.value(),
            threshold,
            baseline_events: e.baseline_events,
            baseline_requests: e.baseline_requests,
            canary_events: e.canary_events,
            canary_requests: e.canary_requests,
            within_e_value: None,
            within_threshold: None,
        };
        let mut all = vec![one(Metric::Errors, &self.errors)];
        if self.settings.latency.is_some() {
            all.push(one(Metric::Latency, &self.latency));
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::ArmCounts;

    fn interval(n_c: u64, a: u64, n_b: u64, b: u64) -> Counts {
        Counts {
            canary: ArmCounts { requests: n_c, errors: a, slow: 0 },
            baseline: ArmCounts { requests: n_b, errors: b, slow: 0 },
        }
    }

    #[test]
    fn defaults_are_documented_values() {
        let s = JudgeSettings::default();
        assert_eq!(s.alpha, 0.01);
        assert_eq!(s.errors, Tolerance { points: 0.0, ratio: 1.0 });
        assert!(s.latency.is_none());
        assert_eq!(s.threshold(), 100.0);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn latency_halves_alpha() {
        let s = JudgeSettings {
            latency: Some(LatencyCheck { bound_ms: 250.0, tolerance: Tolerance::default() }),
            ..JudgeSettings::default()
        };
        assert_eq!(s.threshold(), 200.0);
        assert_eq!(Judge::new(s).evidence().len(), 2);
    }

    #[test]
    fn validate_refuses_nonsense() {
        let bad = [
            JudgeSettings { alpha: f64::NAN, ..JudgeSettings::default() },
            JudgeSettings { alpha: 1.0, ..JudgeSettings::default() },
            JudgeSettings { errors: Tolerance { points: -1.0, ratio: 1.0 }, ..JudgeSettings::default() },
            JudgeSettings { errors: Tolerance { points: 0.0, ratio: 0.9 }, ..JudgeSettings::default() },
            JudgeSettings {
                latency: Some(LatencyCheck { bound_ms: f64::NAN, tolerance: Tolerance::default() }),
                ..JudgeSettings::default()
            },
        ];
        for s in bad {
            assert!(s.validate().is_err(), "{s:?}");
            // Never panics, and an unusable α never rolls back.
            let mut j = Judge::new(s);
            j.observe(&interval(100, 50, 100, 0));
        }
        let mut never = Judge::new(JudgeSettings { alpha: f64::NAN, ..JudgeSettings::default() });
        for _ in 0..100 {
            never.observe(&interval(100, 50, 100, 0));
        }
        assert_eq!(never.regressed(), None);
    }

    #[test]
    fn crossing_latches_and_names_the_metric() {
        let mut j = Judge::new(JudgeSettings::default());
        j.observe(&interval(100, 0, 100, 0));
        assert_eq!(j.regressed(), None);
        for _ in 0..10 {
            j.observe(&interval(100, 10, 100, 0));
        }
        assert_eq!(j.regressed(), Some(Metric::Errors));
        let e = j.evidence()[0];
        assert!(e.e_value >= e.threshold);
        assert_eq!((e.canary_events, e.canary_requests, e.baseline_requests), (100, 1100, 1100));
        // Good news afterwards lowers the e-value but not the verdict.
        for _ in 0..200 {
            j.observe(&interval(100, 0, 100, 10));
        }
        assert!(j.evidence()[0].e_value < 100.0);
        assert_eq!(j.regressed(), Some(Metric::Errors));
    }

    #[test]
    fn latency_regression_is_named() {
        let s = JudgeSettings {
            latency: Some(LatencyCheck { bound_ms: 250.0, tolerance: Tolerance::default() }),
            ..JudgeSettings::default()
        };
        let mut j = Judge::new(s);
        for _ in 0..10 {
            j.observe(&Counts {
                canary: ArmCounts { requests: 100, errors: 0, slow: 10 },
                baseline: ArmCounts { requests: 100, errors: 0, slow: 0 },
            });
        }
        assert_eq!(j.regressed(), Some(Metric::Latency));
    }

    #[test]
    fn tolerance_absorbs_a_small_excess() {
        // Canary 1.5 % vs baseline 1 %: a regression with no tolerance, within "+1 point".
        let strict = JudgeSettings::default();
        let lenient = JudgeSettings { errors: Tolerance { points: 1.0, ratio: 1.0 }, ..strict };
        let (mut a, mut b) = (Judge::new(strict), Judge::new(lenient));
        for _ in 0..200 {
            let d = interval(1000, 15, 1000, 10);
            a.observe(&d);
            b.observe(&d);
        }
        assert_eq!(a.regressed(), Some(Metric::Errors));
        assert_eq!(b.regressed(), None);
        assert!(b.evidence()[0].e_value < 1e-6);
    }

    #[test]
    fn within_tolerance_needs_every_metric() {
        let s = JudgeSettings {
            errors: Tolerance { points: 0.0, ratio: 1.5 },
            latency: Some(LatencyCheck { bound_ms: 250.0, tolerance: Tolerance { points: 0.0, ratio: 1.5 } }),
            ..JudgeSettings::default()
        };
        let mut j = Judge::new(s);
        assert!(!j.within_tolerance(0.05));
        // Errors equal (well within ratio 1.5), latency 3× worse: errors' within-evidence grows, latency's not.
        for _ in 0..100 {
            j.observe(&Counts {
                canary: ArmCounts { requests: 500, errors: 5, slow: 15 },
                baseline: ArmCounts { requests: 500, errors: 5, slow: 5 },
            });
        }
        let e = j.evidence_with(Some(0.05));
        assert!(e[0].within_e_value.unwrap() > 20.0, "{e:?}");
        assert!(e[1].within_e_value.unwrap() < 1.0, "{e:?}");
        assert_eq!(e[0].within_threshold, Some(20.0));
        assert!(!j.within_tolerance(0.05));
        // Errors alone judged: the same data pass; an unusable β never does.
        let mut errors_only = Judge::new(JudgeSettings { latency: None, ..s });
        for _ in 0..100 {
            errors_only.observe(&interval(500, 5, 500, 5));
        }
        assert!(errors_only.within_tolerance(0.05));
        assert!(!errors_only.within_tolerance(f64::NAN) && !errors_only.within_tolerance(1.0));
        // Without β the within fields stay out of the evidence (and of its JSON).
        assert_eq!(errors_only.evidence()[0].within_e_value, None);
        assert!(!serde_json::to_string(&errors_only.evidence()).unwrap().contains("within"));
    }

    #[test]
    fn state_without_within_processes_loads() {
        let mut j = Judge::new(JudgeSettings::default());
        j.observe(&interval(100, 3, 900, 4));
        let mut value = serde_json::to_value(&j).unwrap();
        let map = value.as_object_mut().unwrap();
        assert!(map.remove("errors_within").is_some() && map.remove("latency_within").is_some());
        let back: Judge = serde_json::from_value(value).unwrap();
        assert_eq!(back.evidence_with(Some(0.05))[0].within_e_value, Some(1.0));
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut j = Judge::new(JudgeSettings::default());
        j.observe(&interval(100, 3, 900, 4));
        let text = serde_json::to_string(&j).unwrap();
        let back: Judge = serde_json::from_str(&text).unwrap();
        // serde_json (without `float_roundtrip`, which the filter does not want) may parse 1 ulp off.
        let (x, y) = (back.evidence()[0], j.evidence()[0]);
        assert!((x.e_value - y.e_value).abs() <= 1e-12 * y.e_value, "{x:?} vs {y:?}");
        assert_eq!((back.settings, back.crossed), (j.settings, j.crossed));
    }
}
