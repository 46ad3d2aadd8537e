//! The simulator's own promises: same seed, same traffic for every judge; outcomes accounted as documented;
//! the sticky-routing check can fail (lowering a weight moves users back).

use canary_rollout::sim::{Action, ErrorEffect, Scenario, SimJudge, Simulator, Tick, Verdict};

/// Holds a fixed weight, records every tick, and acts at `act_at` (if any).
struct Scripted {
    weight: f64,
    sticky: bool,
    script: Vec<(u64, Action)>,
    seen: Vec<Tick>,
}

impl Scripted {
    fn new(weight: f64, sticky: bool, script: Vec<(u64, Action)>) -> Scripted {
        Scripted { weight, sticky, script, seen: Vec::new() }
    }
}

impl SimJudge for Scripted {
    fn name(&self) -> String {
        "scripted".into()
    }
    fn initial_weight(&self) -> f64 {
        self.weight
    }
    fn sticky(&self) -> bool {
        self.sticky
    }
    fn on_tick(&mut self, tick: &Tick) -> Action {
        self.seen.push(tick.clone());
        self.script.iter().find(|(t, _)| *t == tick.t).map_or(Action::Hold, |(_, a)| *a)
    }
}

fn scenario() -> Scenario {
    Scenario { rate: 100.0, baseline_errors: 0.01, horizon: 600, ..Scenario::default() }
}

#[test]
fn same_seed_same_traffic_for_every_judge() {
    let sim = Simulator::new(scenario());
    let mut a = Scripted::new(10.0, false, vec![]);
    let mut b = Scripted::new(10.0, false, vec![]);
    let mut c = Scripted::new(50.0, true, vec![(100, Action::SetWeight(100.0))]);
    sim.run(&mut a, 42).unwrap();
    sim.run(&mut b, 42).unwrap();
    sim.run(&mut c, 42).unwrap();
    assert_eq!(a.seen, b.seen);
    // Another judge, other weights: the same total requests every second.
    let totals = |j: &Scripted| j.seen.iter().map(|t| t.canary.requests + t.baseline.requests).collect::<Vec<_>>();
    assert_eq!(totals(&a), totals(&c));
    // And another seed differs.
    let mut d = Scripted::new(10.0, false, vec![]);
    sim.run(&mut d, 43).unwrap();
    assert_ne!(totals(&a), totals(&d));
}

#[test]
fn traffic_matches_the_scenario() {
    // 600 s at ~100 req/s with a ±50 % diurnal swing: a few tens of thousands of requests; 10 % to the canary
    // (non-sticky), 1 % of each arm erroring. Bounds are 5σ of the binomial draws given the totals.
    let sim = Simulator::new(scenario());
    let mut j = Scripted::new(10.0, false, vec![]);
    let out = sim.run(&mut j, 7).unwrap();
    assert_eq!(out.verdict, Verdict::Undecided);
    let total: u64 = j.seen.iter().map(|t| t.canary.requests + t.baseline.requests).sum();
    let canary: u64 = j.seen.iter().map(|t| t.canary.requests).sum();
    let errors: u64 = j.seen.iter().map(|t| t.baseline.errors).sum();
    let baseline = total - canary;
    let (n, c) = (total as f64, canary as f64);
    assert!((25_000.0..=155_000.0).contains(&n), "{total}");
    assert!((c - 0.1 * n).abs() <= 5.0 * (n * 0.09).sqrt(), "{canary} of {total}");
    assert!((errors as f64 - 0.01 * baseline as f64).abs() <= 5.0 * (baseline as f64 * 0.0099).sqrt());
    for t in &j.seen {
        assert_eq!(t.canary.latency.iter().sum::<u64>(), t.canary.requests);
    }
    assert_eq!(out.canary_requests, canary);
    assert_eq!(out.bad_requests, 0, "an A/A run has no bad requests");
}

#[test]
fn a_promoted_bad_canary_is_charged_to_the_horizon() {
    let bad = Scenario { canary_errors: ErrorEffect::Ratio(3.0), ..scenario() };
    let sim = Simulator::new(bad);
    let mut j = Scripted::new(10.0, true, vec![(99, Action::Promote)]);
    let out = sim.run(&mut j, 1).unwrap();
    assert_eq!((out.verdict, out.secs), (Verdict::Promoted, 100));
    assert_eq!(out.bad_requests, out.canary_requests);
    // 500 more seconds at ~50–150 req/s, all of it the canary's.
    let after = out.bad_requests_to_horizon - out.bad_requests;
    assert!((25_000..=75_000).contains(&after), "{after}");
    let mut r = Scripted::new(10.0, true, vec![(99, Action::Rollback)]);
    let rolled = sim.run(&mut r, 1).unwrap();
    assert_eq!(rolled.bad_requests_to_horizon, rolled.bad_requests);
}

#[test]
fn lowering_a_sticky_weight_is_seen_moving_users_back() {
    let sim = Simulator::new(scenario());
    let mut up = Scripted::new(5.0, true, vec![(10, Action::SetWeight(20.0)), (20, Action::SetWeight(50.0))]);
    assert_eq!(sim.run(&mut up, 3).unwrap().moved_back_users, Some(0));
    let mut down = Scripted::new(50.0, true, vec![(10, Action::SetWeight(20.0))]);
    let moved = sim.run(&mut down, 3).unwrap().moved_back_users.unwrap_or(0);
    // About 30 % of the 20,000 users.
    assert!((5000..=7000).contains(&moved), "{moved}");
    let mut peer = Scripted::new(50.0, false, vec![(10, Action::SetWeight(20.0))]);
    assert_eq!(sim.run(&mut peer, 3).unwrap().moved_back_users, None);
}
