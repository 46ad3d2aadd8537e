//! One simulated rollout: a judge, a scenario, a seed; one-second ticks until the judge promotes or rolls
//! back, or the horizon passes.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::latency::{distribution, LatencyEffect};
use super::population::{basis_points, population_size, Population};
use super::scenario::{probability, Scenario};
use super::traffic::{binomial, diurnal, multinomial, new_users, phase, poisson, rng, Stream};
use super::{Action, ArmTick, SimJudge, Tick};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verdict {
    Promoted,
    RolledBack,
    /// The horizon passed first.
    Undecided,
}

/// What one rollout did.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub verdict: Verdict,
    /// Seconds from the start to the decision (the horizon when undecided).
    pub secs: u64,
    /// Canary requests served before the decision.
    pub canary_requests: u64,
    /// Of those, the ones served while the canary was bad (after `regression_start` of a regression).
    pub bad_requests: u64,
    /// Canary errors among the bad requests.
    pub bad_errors: u64,
    /// Bad requests up to the horizon: `bad_requests`, plus, when a bad canary was promoted, the expected
    /// traffic from the promotion to the horizon (it then serves everything). A judge that promotes a bad
    /// canary is charged for it here, not in `bad_requests`.
    pub bad_requests_to_horizon: u64,
    /// Distinct users the canary served before the decision.
    pub canary_users: u64,
    /// Sticky judges only: users that a weight change moved from the canary back to the baseline before
    /// the decision, counted by the evaluator over the whole population (0 by construction).
    pub moved_back_users: Option<u64>,
}

/// A scenario and its population, shared by every seed and judge of a cell.
pub struct Simulator {
    scenario: Scenario,
    population: Arc<Population>,
    baseline_latency: [f64; 20],
    canary_latency: [f64; 20],
}

impl Simulator {
    pub fn new(scenario: Scenario) -> Simulator {
        let population = Arc::new(Population::new(population_size(scenario.rate)));
        Simulator::with_population(scenario, population)
    }

    /// Shares a population (and its cohorts, computed once per weight) with other scenarios of one rate.
    pub fn with_population(scenario: Scenario, population: Arc<Population>) -> Simulator {
        Simulator {
            scenario,
            population,
            baseline_latency: distribution(LatencyEffect::Same),
            canary_latency: distribution(scenario.canary_latency),
        }
    }

    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    pub fn population(&self) -> &Arc<Population> {
        &self.population
    }

    /// Runs `judge` on the traffic of `seed`. `Err` only if the simulated policy cannot be built.
    pub fn run(&self, judge: &mut dyn SimJudge, seed: u64) -> Result<Outcome, String> {
        let sticky = judge.sticky();
        let pop = self.population.size();
        let phi = phase(seed);
        let mut weight = clamp_weight(judge.initial_weight()).unwrap_or(0.0);
        let mut bp = basis_points(weight);
        let mut cohort = if sticky { self.population.cohort(bp)?.size } else { 0 };
        // Users each arm has served; for a sticky run, `seen_b` counts only users still in the baseline.
        let (mut seen_c, mut seen_b) = (0u64, 0u64);
        let mut out = Outcome {
            verdict: Verdict::Undecided,
            secs: self.scenario.horizon,
            canary_requests: 0,
            bad_requests: 0,
            bad_errors: 0,
            bad_requests_to_horizon: 0,
            canary_users: 0,
            moved_back_users: sticky.then_some(0),
        };
        for t in 0..self.scenario.horizon {
            let bad = self.scenario.bad_at(t);
            let total = poisson(&mut rng(seed, t, Stream::Total), diurnal(self.scenario.rate, t, phi));
            let share = if sticky { cohort as f64 / pop.max(1) as f64 } else { weight / 100.0 };
            let canary_n = binomial(&mut rng(seed, t, Stream::Split), total, share);
            let baseline_n = total - canary_n;
            let q_b = probability(self.scenario.baseline_errors);
            let q_c = if bad { self.scenario.canary_error_rate() } else { q_b };
            let canary_dist = if bad { &self.canary_latency } else { &self.baseline_latency };
            let (c_size, b_size) = if sticky { (cohort, pop - cohort.min(pop)) } else { (pop, pop) };
            let c_new =
                new_users(&mut rng(seed, t, Stream::CanaryUsers), canary_n, c_size - seen_c.min(c_size), c_size);
            let b_new =
                new_users(&mut rng(seed, t, Stream::BaselineUsers), baseline_n, b_size - seen_b.min(b_size), b_size);
            seen_c += c_new;
            seen_b += b_new;
            let tick = Tick {
                t,
                canary: ArmTick {
                    requests: canary_n,
                    errors: binomial(&mut rng(seed, t, Stream::CanaryErrors), canary_n, q_c),
                    latency: multinomial(&mut rng(seed, t, Stream::CanaryLatency), canary_n, canary_dist),
                    new_users: c_new,
                },
                baseline: ArmTick {
                    requests: baseline_n,
                    errors: binomial(&mut rng(seed, t, Stream::BaselineErrors), baseline_n, q_b),
                    latency: multinomial(
                        &mut rng(seed, t, Stream::BaselineLatency),
                        baseline_n,
                        &self.baseline_latency,
                    ),
                    new_users: b_new,
                },
            };
            out.canary_requests += canary_n;
            out.canary_users = seen_c;
            if bad {
                out.bad_requests += canary_n;
                out.bad_errors += tick.canary.errors;
            }
            match judge.on_tick(&tick) {
                Action::Hold => {}
                Action::Promote => {
                    let after: f64 = if self.scenario.is_regression() {
                        (t + 1..self.scenario.horizon).map(|s| diurnal(self.scenario.rate, s, phi)).sum()
                    } else {
                        0.0
                    };
                    let mut out = out.decided(Verdict::Promoted, t + 1);
                    out.bad_requests_to_horizon = out.bad_requests.saturating_add(after.round() as u64);
                    return Ok(out);
                }
                Action::Rollback => return Ok(out.decided(Verdict::RolledBack, t + 1)),
                Action::SetWeight(w) => {
                    let Some(w) = clamp_weight(w) else { continue };
                    let next_bp = basis_points(w);
                    if sticky && next_bp != bp {
                        let moved = self.population.moved_back(bp, next_bp)?;
                        out.moved_back_users = out.moved_back_users.map(|m| m + moved);
                        let next = self.population.cohort(next_bp)?.size;
                        // Users joining the canary leave the baseline; the ones it had seen, in proportion
                        // (a user's bucket does not depend on whether it has visited yet).
                        let joining = next.saturating_sub(cohort);
                        let b_before = pop - cohort.min(pop);
                        let seen_frac = if b_before > 0 { seen_b as f64 / b_before as f64 } else { 0.0 };
                        let seen_leaving = binomial(&mut rng(seed, t, Stream::Moved), joining, seen_frac);
                        seen_b = seen_b.saturating_sub(seen_leaving);
                        // Users lowered back out of the canary (none, for ascending steps) stay counted.
                        cohort = next;
                    }
                    weight = w;
                    bp = next_bp;
                }
            }
        }
        out.bad_requests_to_horizon = out.bad_requests;
        Ok(out)
    }
}

impl Outcome {
    fn decided(mut self, verdict: Verdict, secs: u64) -> Outcome {
        self.verdict = verdict;
        self.secs = secs;
        self.bad_requests_to_horizon = self.bad_requests;
        self
    }
}

/// A weight the router can apply: [0, 100], NaN refused (the judge's instruction is then ignored).
fn clamp_weight(w: f64) -> Option<f64> {
    if w.is_nan() {
        None
    } else {
        Some(w.clamp(0.0, 100.0))
    }
}
