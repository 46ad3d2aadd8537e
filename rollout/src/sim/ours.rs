//! Our judge under simulation: the controller's `Stepper`, read every `interval` seconds as the controller
//! reads its metric source, routing sticky users through the evaluator.

use crate::counts::{ArmCounts, Counts};
use crate::judge::JudgeSettings;
use crate::stepper::{Decision, StepSettings, Stepper};

use super::{Action, ArmTick, SimJudge, Tick, LATENCY_BOUNDS_MS};

pub struct OurJudge {
    stepper: Stepper,
    /// Seconds between readings (the controller's poll interval).
    interval: u64,
    /// Events since the last reading.
    pending: Counts,
    /// What the bench calls this configuration.
    label: String,
}

impl OurJudge {
    /// A rollout starting at t = 0; `interval` of 0 is read as 1 second.
    pub fn new(steps: StepSettings, judge: JudgeSettings, interval: u64) -> OurJudge {
        OurJudge {
            stepper: Stepper::new(steps, judge, 0.0),
            interval: interval.max(1),
            pending: Counts::default(),
            label: "ours (e-process)".into(),
        }
    }

    /// The same judge under another name (a bench comparing several of our configurations).
    pub fn named(mut self, label: &str) -> OurJudge {
        self.label = label.to_string();
        self
    }

    pub fn stepper(&self) -> &Stepper {
        &self.stepper
    }
}

/// Requests slower than `bound_ms`, from histogram buckets: those in buckets whose lower edge is at least
/// the bound, i.e. total minus the `le = bound` cumulative count, as a source computes it from Envoy's or
/// Istio's histogram (exact when the bound is a bucket bound, as the plan requires).
pub fn slow_requests(latency: &[u64; 20], bound_ms: f64) -> u64 {
    latency.iter().skip(1).zip(LATENCY_BOUNDS_MS.iter()).filter(|(_, &lower)| lower >= bound_ms).map(|(n, _)| *n).sum()
}

fn arm_counts(arm: &ArmTick, bound_ms: Option<f64>) -> ArmCounts {
    ArmCounts {
        requests: arm.requests,
        errors: arm.errors,
        slow: bound_ms.map_or(0, |b| slow_requests(&arm.latency, b)),
    }
}

impl SimJudge for OurJudge {
    fn name(&self) -> String {
        self.label.clone()
    }

    fn initial_weight(&self) -> f64 {
        self.stepper.weight()
    }

    fn sticky(&self) -> bool {
        true
    }

    fn on_tick(&mut self, tick: &Tick) -> Action {
        let bound = self.stepper.judge().settings().latency.map(|l| l.bound_ms);
        self.pending
            .add(&Counts { canary: arm_counts(&tick.canary, bound), baseline: arm_counts(&tick.baseline, bound) });
        let now = tick.t.saturating_add(1);
        if !now.is_multiple_of(self.interval) {
            return Action::Hold;
        }
        let delta = std::mem::take(&mut self.pending);
        match self.stepper.observe(now as f64, &delta) {
            Decision::Wait => Action::Hold,
            Decision::Advance { to, .. } => Action::SetWeight(to),
            Decision::Promote => Action::Promote,
            Decision::Rollback { .. } => Action::Rollback,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_counts_buckets_above_the_bound() {
        let mut latency = [0u64; 20];
        latency[7] = 5; // (100, 250]: not slower than 250
        latency[8] = 3; // (250, 500]
        latency[19] = 1; // +Inf
        assert_eq!(slow_requests(&latency, 250.0), 4);
        assert_eq!(slow_requests(&latency, 100.0), 9);
    }
}
