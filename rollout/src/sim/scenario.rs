//! What a simulated rollout faces: the traffic, the baseline's behaviour and how the canary differs.

use serde::{Deserialize, Serialize};

pub use super::latency::LatencyEffect;

/// How the canary's error rate differs from the baseline's.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum ErrorEffect {
    /// `q_c = factor · q_b` (1 = an A/A run).
    Ratio(f64),
    /// `q_c = q_b + points / 100`.
    PlusPoints(f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Mean requests per second over both arms (before the diurnal swing).
    pub rate: f64,
    /// The baseline's 5xx rate (0.001 = 0.1 %).
    pub baseline_errors: f64,
    pub canary_errors: ErrorEffect,
    pub canary_latency: LatencyEffect,
    /// Second from which the canary behaves as above (before it, like the baseline).
    pub regression_start: u64,
    /// Seconds after which an undecided rollout is stopped and reported undecided.
    pub horizon: u64,
}

impl Default for Scenario {
    /// An A/A run at 100 req/s with 0.1 % errors, four hours at most.
    fn default() -> Self {
        Scenario {
            rate: 100.0,
            baseline_errors: 0.001,
            canary_errors: ErrorEffect::Ratio(1.0),
            canary_latency: LatencyEffect::Same,
            regression_start: 0,
            horizon: 4 * 3600,
        }
    }
}

/// A rate clamped into [0, 1] (NaN → 0).
pub(crate) fn probability(p: f64) -> f64 {
    if p > 0.0 {
        p.min(1.0)
    } else {
        0.0
    }
}

impl Scenario {
    /// The canary's error rate once the regression started.
    pub fn canary_error_rate(&self) -> f64 {
        let q = probability(self.baseline_errors);
        match self.canary_errors {
            ErrorEffect::Ratio(f) => probability(q * f),
            ErrorEffect::PlusPoints(p) => probability(q + p / 100.0),
        }
    }

    /// Whether the canary is worse than the baseline at all (a run that rolls back is then right to).
    pub fn is_regression(&self) -> bool {
        let errors_worse = self.canary_error_rate() > probability(self.baseline_errors);
        let latency_worse = match self.canary_latency {
            LatencyEffect::Same => false,
            LatencyEffect::MedianFactor(f) => f > 1.0,
            LatencyEffect::Tail { share, factor } => share > 0.0 && factor > 1.0,
        };
        errors_worse || latency_worse
    }

    /// Whether the canary is bad at second `t`.
    pub fn bad_at(&self, t: u64) -> bool {
        self.is_regression() && t >= self.regression_start
    }
}
