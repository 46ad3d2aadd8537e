//! Argo Rollouts' background analysis on hand-made ticks (argoproj/argo-rollouts `analysis/analysis.go`,
//! `utils/evaluate/evaluate.go`, `docs/analysis/prometheus.md`).

mod support;

use canary_rollout::sim::{Action, SimJudge, Tick};
use canary_rollout_bench::peers::argo::Measurement;
use canary_rollout_bench::peers::{ArgoQuery, ArgoRollouts, ArgoSettings};
use support::run;

/// A second of canary traffic, every request in the 50 ms bucket.
fn canary(t: u64, requests: u64, errors: u64) -> Tick {
    support::canary(t, requests, errors, 5)
}

#[test]
fn healthy_canary_pauses_ten_minutes_per_step_then_promotes() {
    let mut a = ArgoRollouts::new(ArgoSettings::new(&[1.0, 5.0, 100.0]));
    assert_eq!(a.initial_weight(), 1.0);
    let actions = run(&mut a, (0..1300).map(|t| canary(t, 10, 0)));
    assert_eq!(actions, vec![(599, Action::SetWeight(5.0)), (1199, Action::Promote)]);
    // Measurements at 0, 10, 20 had no two scrapes yet (Error ×3); from 30 s on they succeed.
    assert_eq!(a.counts(), (0, 0));
}

#[test]
fn the_fourth_failed_measurement_aborts() {
    let mut a = ArgoRollouts::new(ArgoSettings::new(&[1.0, 5.0, 20.0, 100.0]));
    // Half the canary's requests fail: 0.5 < 0.95 at every measurement that has data.
    let actions = run(&mut a, (0..2000).map(|t| canary(t, 10, 5)));
    // Errors at 0, 10, 20 s (fewer than two scrapes), then Failed at 30, 330, 630 and 930 s: failed 4 > 3.
    assert_eq!(actions, vec![(599, Action::SetWeight(5.0)), (929, Action::Rollback)]);
    assert_eq!(a.counts(), (4, 0));
}

#[test]
fn three_failures_are_tolerated() {
    let mut a = ArgoRollouts::new(ArgoSettings::new(&[1.0, 5.0, 100.0]));
    // Failing until 700 s (measurements at 30, 330, 630 s fail), healthy after (930 s succeeds).
    let actions = run(&mut a, (0..1300).map(|t| if t < 700 { canary(t, 10, 5) } else { canary(t, 10, 0) }));
    assert_eq!(actions, vec![(599, Action::SetWeight(5.0)), (1199, Action::Promote)]);
    assert_eq!(a.counts(), (3, 0));
}

#[test]
fn nan_is_a_failed_measurement() {
    let mut a = ArgoRollouts::new(ArgoSettings::new(&[1.0, 100.0]));
    // Traffic for 40 s (the 30 s measurement succeeds), then none: irate over the last two scrapes is 0/0.
    for t in 0..40 {
        assert_eq!(a.on_tick(&canary(t, 10, 0)), Action::Hold);
    }
    for t in 40..330 {
        assert_eq!(a.on_tick(&canary(t, 0, 0)), Action::Hold);
    }
    assert_eq!(a.measure(), Measurement::Failed);
    assert_eq!(a.counts(), (1, 0), "the measurement at 330 s saw NaN");
}

#[test]
fn an_all_5xx_canary_errors_out_after_five_consecutive_errors() {
    let mut a = ArgoRollouts::new(ArgoSettings::new(&[1.0, 100.0]));
    // No non-5xx series: `result` is an empty vector and `result[0]` an evaluation error, retried every 10 s;
    // errors at 0, 10, 20, 30, 40 s: 5 > consecutiveErrorLimit 4.
    let actions = run(&mut a, (0..100).map(|t| canary(t, 10, 10)));
    assert_eq!(actions, vec![(39, Action::Rollback)]);
    assert_eq!(a.counts(), (0, 5));
}

#[test]
fn irate_sees_the_last_scrape_interval_and_rate_the_whole_range() {
    // 10 req/s; from 100 s to 249 s half of them fail. Nothing fails in the last 15 s before 330 s.
    let ticks = || (0..340).map(|t| canary(t, 10, if (100..250).contains(&t) { 5 } else { 0 }));
    let mut irate = ArgoRollouts::new(ArgoSettings::new(&[1.0, 100.0]));
    run(&mut irate, ticks());
    // Measurements: 0, 10, 20 s Error (fewer than two scrapes), 30 s and 330 s Successful.
    assert_eq!(irate.counts(), (0, 0));

    let mut s = ArgoSettings::new(&[1.0, 100.0]);
    s.query = ArgoQuery::Rate { range_s: 300 };
    let mut rate = ArgoRollouts::new(s);
    run(&mut rate, ticks());
    // Measurements: 0 s Error (no series), 10 s Successful, 310 s over (10, 310]: 750 of 3 000 failed → 0.75.
    assert_eq!(rate.counts(), (1, 0));
    assert_eq!(rate.measure(), Measurement::Failed);
}
