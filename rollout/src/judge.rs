//! The anytime-valid judge. INTERFACE SKELETON: the judge work item replaces the bodies (and this line).

use serde::{Deserialize, Serialize};

use crate::counts::Counts;

/// The null hypothesis a metric is tested against: canary rate ≤ `ratio` × baseline rate + `points` / 100.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tolerance {
    /// Absolute tolerance in percentage points (0.5 = "no more than +0.5 points").
    pub points: f64,
    /// Relative tolerance (≥ 1; 1 = no relative slack).
    pub ratio: f64,
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
}

/// The judge's whole state (serialisable: the rollout's state file carries it across restarts).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Judge {
    settings: JudgeSettings,
}

impl Judge {
    pub fn new(settings: JudgeSettings) -> Judge {
        Judge { settings }
    }

    pub fn settings(&self) -> &JudgeSettings {
        &self.settings
    }

    /// One interval's new events (deltas since the previous reading); the arms' traffic shares in the
    /// interval are taken from their request counts.
    pub fn observe(&mut self, _delta: &Counts) {
        unimplemented!("judge work item")
    }

    /// The first metric whose evidence crossed 1/α, if any.
    pub fn regressed(&self) -> Option<Metric> {
        unimplemented!("judge work item")
    }

    pub fn evidence(&self) -> Vec<Evidence> {
        unimplemented!("judge work item")
    }
}
