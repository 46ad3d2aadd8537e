//! The events the judge counts, per arm: every metric it judges is a count of events (requests, errors,
//! requests slower than a latency bound), so sources, the simulator and the judge share these two types.

use serde::{Deserialize, Serialize};

/// Events of one arm (baseline or canary): cumulative since a source started, or the delta of one interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmCounts {
    /// Requests answered (any status).
    pub requests: u64,
    /// Requests answered with a 5xx status.
    pub errors: u64,
    /// Requests slower than the plan's latency bound (0 when the plan judges no latency).
    pub slow: u64,
}

/// Both arms at one reading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub baseline: ArmCounts,
    pub canary: ArmCounts,
}

impl ArmCounts {
    /// `self - earlier`, saturating at 0 per field (a source already corrects counter resets; this only
    /// guards the arithmetic).
    pub fn since(&self, earlier: &ArmCounts) -> ArmCounts {
        ArmCounts {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            slow: self.slow.saturating_sub(earlier.slow),
        }
    }

    pub fn add(&mut self, other: &ArmCounts) {
        self.requests = self.requests.saturating_add(other.requests);
        self.errors = self.errors.saturating_add(other.errors);
        self.slow = self.slow.saturating_add(other.slow);
    }
}

impl Counts {
    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts { baseline: self.baseline.since(&earlier.baseline), canary: self.canary.since(&earlier.canary) }
    }

    pub fn add(&mut self, other: &Counts) {
        self.baseline.add(&other.baseline);
        self.canary.add(&other.canary);
    }
}
