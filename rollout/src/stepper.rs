//! The pure step machine shared by the controller (real time, real metrics) and the simulator (simulated
//! seconds). INTERFACE SKELETON: the judge work item replaces the bodies (and this line).

use serde::{Deserialize, Serialize};

use crate::counts::Counts;
use crate::judge::{Judge, JudgeSettings, Metric};

/// The plan's step schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSettings {
    /// Canary percentages, strictly ascending, each in (0, 100], the last 100 (promotion).
    pub steps: Vec<f64>,
    /// Minimum time on each step before it may pass, seconds.
    pub min_secs: f64,
    /// Minimum canary requests on each step before it may pass.
    pub min_requests: u64,
}

/// What the controller must do after a reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// Stay on this step (not enough time or canary requests yet, or simply no verdict).
    Wait,
    /// The step passed: push `to` percent (already the stepper's current weight).
    Advance { from: f64, to: f64 },
    /// The last judged step passed: push 100 % and stop (exit 0).
    Promote,
    /// The evidence against the canary crossed 1/α: push 0 % and stop (exit 1).
    Rollback { metric: Metric },
}

/// Progress of the current step, for the live view.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    pub index: usize,
    pub weight: f64,
    pub elapsed_secs: f64,
    pub min_secs: f64,
    pub canary_requests: u64,
    pub min_requests: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stepper {
    settings: StepSettings,
    judge: Judge,
}

impl Stepper {
    /// Starts on `steps[0]` at time `now` (seconds, on whatever clock the caller keeps).
    pub fn new(settings: StepSettings, judge: JudgeSettings, _now: f64) -> Stepper {
        Stepper { settings, judge: Judge::new(judge) }
    }

    /// The canary percentage in force.
    pub fn weight(&self) -> f64 {
        unimplemented!("judge work item")
    }

    pub fn step_index(&self) -> usize {
        unimplemented!("judge work item")
    }

    pub fn judge(&self) -> &Judge {
        &self.judge
    }

    pub fn progress(&self, _now: f64) -> StepProgress {
        unimplemented!("judge work item")
    }

    /// One reading: the events since the previous one, at time `now`.
    pub fn observe(&mut self, _now: f64, _delta: &Counts) -> Decision {
        unimplemented!("judge work item")
    }
}
