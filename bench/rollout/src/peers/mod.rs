//! Flagger, Argo Rollouts and Kayenta's judges as the bench runs them: each peer's documented defaults and the
//! decision rules of its source, as a `canary_rollout::sim::SimJudge` fed one simulated second at a time.
//! None is sticky: Istio weights draw per request.
//!
//! Every module cites the lines it follows; `promql` holds the Prometheus semantics the Flagger and Argo
//! queries depend on, `window` the range-selector view of the ticks.

pub mod argo;
pub mod flagger;
pub mod kayenta;
pub mod promql;
pub mod window;

use canary_rollout::sim::SimJudge;

pub use argo::{ArgoQuery, ArgoRollouts, ArgoSettings};
pub use flagger::{Flagger, FlaggerSettings};
pub use kayenta::{Kayenta, KayentaSettings};

/// Fresh peers for one run, in the bench's order: Flagger (threshold 1), Flagger (threshold 5), Argo Rollouts
/// with the documented Prometheus AnalysisTemplate, Kayenta's NetflixACAJudge. `steps` is the canary percent
/// schedule (e.g. `[1, 5, 20, 50, 100]`).
pub fn judges(steps: &[f64]) -> Vec<Box<dyn SimJudge + Send>> {
    vec![
        Box::new(Flagger::new(FlaggerSettings::new(steps, 1))),
        Box::new(Flagger::new(FlaggerSettings::new(steps, 5))),
        Box::new(ArgoRollouts::new(ArgoSettings::new(steps))),
        Box::new(Kayenta::new(KayentaSettings::new(steps))),
    ]
}

/// The usable part of a percent schedule: finite weights in (0, 100], each above the one before (the peers'
/// CRDs expect increasing steps; Flagger's `nextStepWeight` walks them in order). Nothing usable → `[100]`.
pub fn sanitize_steps(steps: &[f64]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::with_capacity(steps.len());
    for &w in steps {
        if w.is_finite() && w > 0.0 && w <= 100.0 && out.last().is_none_or(|&last| w > last) {
            out.push(w);
        }
    }
    if out.is_empty() {
        out.push(100.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_sanitized() {
        assert_eq!(sanitize_steps(&[1.0, 5.0, 20.0, 50.0, 100.0]), vec![1.0, 5.0, 20.0, 50.0, 100.0]);
        assert_eq!(sanitize_steps(&[5.0, f64::NAN, 1.0, 0.0, 150.0, 20.0]), vec![5.0, 20.0]);
        assert_eq!(sanitize_steps(&[]), vec![100.0]);
    }

    #[test]
    fn judges_in_order() {
        let names: Vec<String> = judges(&[1.0, 5.0, 100.0]).iter().map(|j| j.name()).collect();
        assert_eq!(
            names,
            [
                "Flagger (threshold 1)",
                "Flagger (threshold 5)",
                "Argo Rollouts (AnalysisTemplate)",
                "Kayenta (NetflixACAJudge)"
            ]
        );
        assert!(judges(&[1.0]).iter().all(|j| !j.sticky() && j.initial_weight() == 1.0));
    }
}
