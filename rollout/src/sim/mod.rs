//! The traffic simulator: identical event streams for our judge and the peers' rules (`make bench-rollout`)
//! and the A/A runs that test the judge's guarantee (`tests/judge_*.rs`).
//!
//! One-second ticks of aggregated draws (`traffic`): total requests Poisson around a diurnal swing, split
//! between the arms, errors Binomial, latency a multinomial over Istio's buckets (`latency`), distinct users
//! by occupancy. Our judge routes a fixed population of users sticky through the evaluator (`population`);
//! the peers' rules (`sticky() == false`) get an independent draw per request, as Istio's weights do.
//! `Tick`, `ArmTick`, `Action`, `SimJudge` and `LATENCY_BOUNDS_MS` are the fixed interface the peers
//! implement.

mod latency;
mod ours;
mod population;
mod run;
mod scenario;
mod traffic;

pub use latency::{distribution as latency_distribution, slower_than, LatencyEffect, MEDIAN_MS, SIGMA};
pub use ours::{slow_requests, OurJudge};
pub use population::{basis_points, population_size, user_id, Cohort, Population};
pub use run::{Outcome, Simulator, Verdict};
pub use scenario::{ErrorEffect, Scenario};

/// Upper bounds (ms) of Istio's `istio_request_duration_milliseconds` buckets; a tick's `latency` has one
/// more entry, for `+Inf`.
pub const LATENCY_BOUNDS_MS: [f64; 19] = [
    1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0, 60000.0, 300000.0,
    600000.0, 1800000.0, 3600000.0,
];

/// One arm's events in one simulated second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArmTick {
    pub requests: u64,
    pub errors: u64,
    /// Requests per latency bucket (not cumulative): `latency[i]` ≤ `LATENCY_BOUNDS_MS[i]`, the last `+Inf`.
    pub latency: [u64; 20],
    /// Users this arm served for the first time in this second.
    pub new_users: u64,
}

/// One simulated second.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tick {
    /// Seconds since the rollout started (the first tick is 0).
    pub t: u64,
    pub baseline: ArmTick,
    pub canary: ArmTick,
}

/// A judge's instruction to the simulated router after a tick.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Action {
    Hold,
    /// Route this percentage of traffic to the canary from the next second on.
    SetWeight(f64),
    /// Done: the canary takes 100 %.
    Promote,
    /// Done: the canary takes 0 %.
    Rollback,
}

/// A judge under simulation: ours (through `Stepper`) or a peer's rule.
pub trait SimJudge {
    fn name(&self) -> String;
    /// The canary percentage at t = 0.
    fn initial_weight(&self) -> f64;
    /// Whether routing is sticky per user (ours) or a fresh draw per request (Istio weights: the peers).
    fn sticky(&self) -> bool;
    fn on_tick(&mut self, tick: &Tick) -> Action;
}
