//! A clearly bad canary is rolled back, almost always and within minutes, and never moves a user back.

use canary_rollout::judge::{JudgeSettings, LatencyCheck, Tolerance};
use canary_rollout::sim::{ErrorEffect, LatencyEffect, OurJudge, Scenario, Simulator, Verdict};
use canary_rollout::stepper::{Promote, StepSettings};

fn plan() -> StepSettings {
    StepSettings { steps: vec![1.0, 5.0, 20.0, 50.0, 100.0], min_secs: 60.0, min_requests: 100, promote: Promote::Time }
}

fn judge() -> JudgeSettings {
    JudgeSettings {
        latency: Some(LatencyCheck { bound_ms: 250.0, tolerance: Tolerance::default() }),
        ..JudgeSettings::default()
    }
}

/// Rolls back ≥ 99 % of 200 runs (≤ 2 misses; if the true miss rate were 0.1 %, P(≥ 3 misses) = 0.11 %)
/// with the median rollback within `max_median_secs`.
fn assert_caught(name: &str, scenario: Scenario, max_median_secs: u64) {
    let sim = Simulator::new(scenario);
    let mut times = Vec::new();
    for seed in 0..200 {
        let mut ours = OurJudge::new(plan(), judge(), 10);
        let out = sim.run(&mut ours, seed).unwrap();
        assert_eq!(out.moved_back_users, Some(0));
        if out.verdict == Verdict::RolledBack {
            times.push(out.secs);
        }
    }
    times.sort_unstable();
    let median = times.get(times.len() / 2).copied().unwrap_or(u64::MAX);
    eprintln!("{name}: {} of 200 rolled back, median {median} s", times.len());
    assert!(times.len() >= 198, "{name}: only {} of 200 rolled back", times.len());
    assert!(median <= max_median_secs, "{name}: median {median} s");
}

#[test]
fn five_times_the_errors() {
    let s =
        Scenario { rate: 100.0, baseline_errors: 0.01, canary_errors: ErrorEffect::Ratio(5.0), ..Scenario::default() };
    assert_caught("×5 errors", s, 240);
}

#[test]
fn five_more_points_of_errors() {
    let s = Scenario {
        rate: 100.0,
        baseline_errors: 0.001,
        canary_errors: ErrorEffect::PlusPoints(5.0),
        ..Scenario::default()
    };
    assert_caught("+5 points", s, 240);
}

#[test]
fn tail_only_latency() {
    let s = Scenario {
        rate: 100.0,
        canary_latency: LatencyEffect::Tail { share: 0.02, factor: 5.0 },
        ..Scenario::default()
    };
    assert_caught("tail latency", s, 300);
}
