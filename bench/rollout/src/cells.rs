//! The bench's grid: traffic × baseline error rate × what is wrong with the canary, and our judge's
//! settings, stated once.

use canary_rollout::judge::{JudgeSettings, LatencyCheck, Tolerance};
use canary_rollout::sim::{ErrorEffect, LatencyEffect, Scenario};
use canary_rollout::stepper::{Promote, StepSettings};

pub const RATES: [f64; 4] = [1.0, 10.0, 100.0, 1000.0];
pub const BASELINE_ERRORS: [f64; 2] = [0.001, 0.01];
pub const STEPS: [f64; 5] = [1.0, 5.0, 20.0, 50.0, 100.0];

/// What is wrong with the canary in a cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Effect {
    pub label: &'static str,
    pub errors: ErrorEffect,
    pub latency: LatencyEffect,
}

pub const EFFECTS: [Effect; 8] = [
    Effect { label: "A/A", errors: ErrorEffect::Ratio(1.0), latency: LatencyEffect::Same },
    Effect { label: "errors ×1.5", errors: ErrorEffect::Ratio(1.5), latency: LatencyEffect::Same },
    Effect { label: "errors ×2", errors: ErrorEffect::Ratio(2.0), latency: LatencyEffect::Same },
    Effect { label: "errors ×5", errors: ErrorEffect::Ratio(5.0), latency: LatencyEffect::Same },
    Effect { label: "errors +5 pts", errors: ErrorEffect::PlusPoints(5.0), latency: LatencyEffect::Same },
    Effect { label: "latency +10 %", errors: ErrorEffect::Ratio(1.0), latency: LatencyEffect::MedianFactor(1.10) },
    Effect { label: "latency +25 %", errors: ErrorEffect::Ratio(1.0), latency: LatencyEffect::MedianFactor(1.25) },
    Effect {
        label: "latency tail (2 % ×5)",
        errors: ErrorEffect::Ratio(1.0),
        latency: LatencyEffect::Tail { share: 0.02, factor: 5.0 },
    },
];

/// One cell of the grid.
#[derive(Clone, Copy, Debug)]
pub struct Cell {
    pub rate: f64,
    pub baseline_errors: f64,
    pub effect: Effect,
}

impl Cell {
    pub fn scenario(&self, horizon: u64) -> Scenario {
        Scenario {
            rate: self.rate,
            baseline_errors: self.baseline_errors,
            canary_errors: self.effect.errors,
            canary_latency: self.effect.latency,
            regression_start: 0,
            horizon,
        }
    }

    pub fn is_aa(&self) -> bool {
        !self.scenario(1).is_regression()
    }
}

/// Every cell, rates outermost (cells of one rate share a population and its cohorts).
pub fn grid(rates: &[f64]) -> Vec<Cell> {
    let mut cells = Vec::new();
    for &rate in rates {
        for &baseline_errors in &BASELINE_ERRORS {
            for effect in EFFECTS {
                cells.push(Cell { rate, baseline_errors, effect });
            }
        }
    }
    cells
}

/// Our judge in the bench: the natural strict comparison (no tolerance), α = 0.01 over errors and
/// latency (α/2 each), latency judged as "slower than 250 ms" (an Istio bucket bound, ~0.06 % of the
/// baseline's requests).
pub fn our_judge() -> JudgeSettings {
    JudgeSettings {
        alpha: 0.01,
        errors: Tolerance { points: 0.0, ratio: 1.0 },
        latency: Some(LatencyCheck { bound_ms: 250.0, tolerance: Tolerance { points: 0.0, ratio: 1.0 } }),
    }
}

/// 1/5/20/50/100 %, at least 60 s and 100 canary requests per step.
pub fn our_steps() -> StepSettings {
    StepSettings { steps: STEPS.to_vec(), min_secs: 60.0, min_requests: 100, promote: Promote::Time }
}

/// The same schedule at Argo Rollouts' documented pace (10 minutes per step): the data a step needs to
/// tell a 0.1 % → 0.2 % error rate apart at 100 req/s, which 60-second steps do not gather.
pub fn our_slow_steps() -> StepSettings {
    StepSettings { min_secs: 600.0, ..our_steps() }
}

/// The controller's reading interval, seconds.
pub const INTERVAL_SECS: u64 = 10;

/// β of the evidence-gated configuration: at most 5 % of canaries worse than the tolerance have any step
/// promoted.
pub const EVIDENCE_BETA: f64 = 0.05;

/// The evidence-gated configuration's judge: ratio 1.25 on errors and on latency, α = 0.01 as before.
/// Evidence needs a tolerance (an equal canary can never be shown "no worse at all"); 1.25 is the largest
/// round ratio that keeps every regression of the grid a regression (×1.5 and ×2 errors exceed it; +10 %
/// on the median nearly doubles the share slower than 250 ms, ~0.06 % → ~0.12 %), so a promoted ×2 canary
/// is exactly the failure β bounds. An absolute tolerance would not: +0.1 point is as much as the whole
/// ×2 excess at 0.1 % errors.
pub fn our_evidence_judge() -> JudgeSettings {
    let ratio = Tolerance { points: 0.0, ratio: 1.25 };
    JudgeSettings { alpha: 0.01, errors: ratio, latency: Some(LatencyCheck { bound_ms: 250.0, tolerance: ratio }) }
}

/// The main 60-s schedule, each step also needing every metric's within-evidence ≥ 1/β.
pub fn our_evidence_steps() -> StepSettings {
    StepSettings { promote: Promote::Evidence { beta: EVIDENCE_BETA }, ..our_steps() }
}
