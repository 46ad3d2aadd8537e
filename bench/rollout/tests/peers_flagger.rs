//! Flagger's decision rules on hand-made ticks (fluxcd/flagger `pkg/controller/scheduler.go` `advanceCanary`,
//! `pkg/controller/scheduler_metrics.go` `runBuiltinMetricChecks`).

mod support;

use canary_rollout::sim::{Action, SimJudge};
use canary_rollout_bench::peers::{Flagger, FlaggerSettings};
use support::{canary, run};

/// `requests` canary requests, `errors` of them 5xx, all with a latency in bucket `bucket` (index 5 = (25, 50]).
#[test]
fn healthy_canary_walks_the_steps_and_promotes_after_a_check_at_the_last() {
    let mut f = Flagger::new(FlaggerSettings::new(&[1.0, 5.0, 100.0], 1));
    assert_eq!(f.initial_weight(), 1.0);
    let actions = run(&mut f, (0..400).map(|t| canary(t, 10, 0, 5)));
    // One interval per step: 5 % at 60 s, 100 % at 120 s, and a passing check at 100 % promotes at 180 s.
    assert_eq!(actions, vec![(59, Action::SetWeight(5.0)), (119, Action::SetWeight(100.0)), (179, Action::Promote)]);
}

#[test]
fn one_error_in_sixty_requests_fails_and_threshold_one_rolls_back_an_interval_later() {
    let mut f = Flagger::new(FlaggerSettings::new(&[1.0, 5.0, 100.0], 1));
    // 1 req/s; second 30 is a 5xx: 59/60 × 100 = 98.33 % < 99 %.
    let ticks = (0..200).map(|t| canary(t, 1, u64::from(t == 30), 5));
    let actions = run(&mut f, ticks);
    // The failing check at 60 s only counts; `FailedChecks >= threshold` is tested at the next interval.
    assert_eq!(actions, vec![(119, Action::Rollback)]);
    assert_eq!(f.failed_checks(), 1);
}

#[test]
fn no_data_fails_the_check() {
    let mut f = Flagger::new(FlaggerSettings::new(&[1.0, 100.0], 1));
    let actions = run(&mut f, (0..120).map(|t| canary(t, 0, 0, 5)));
    assert_eq!(actions, vec![(119, Action::Rollback)]);
}

#[test]
fn threshold_five_needs_five_failures_counted_across_passes() {
    let mut f = Flagger::new(FlaggerSettings::new(&[1.0, 2.0, 3.0, 4.0, 5.0, 100.0], 5));
    // Intervals 1–3 fail, 4 passes (advance to 2 %), 5–6 fail: five failures, rollback at interval 7.
    let bad = |i: u64| matches!(i, 0..=2 | 4..=5);
    let ticks = (0..480).map(|t| if bad(t / 60) { canary(t, 10, 1, 5) } else { canary(t, 10, 0, 5) });
    let actions = run(&mut f, ticks);
    assert_eq!(actions, vec![(239, Action::SetWeight(2.0)), (419, Action::Rollback)]);
    assert_eq!(f.failed_checks(), 5, "a pass does not reset FailedChecks");
}

#[test]
fn p99_over_500_ms_fails_and_is_truncated_to_whole_ms() {
    // 98 of 100 in (25, 50], 2 in (500, 1000]: p99 = 500 + 500 × 1/2 = 750 ms > 500 ms.
    let mut slow = Flagger::new(FlaggerSettings::new(&[1.0, 100.0], 1));
    let ticks = (0..60u64).map(|t| {
        let mut tick = canary(t, 0, 0, 5);
        if t == 0 {
            tick.canary.requests = 100;
            tick.canary.latency[5] = 98;
            tick.canary.latency[9] = 2;
        }
        tick
    });
    assert!(run(&mut slow, ticks).is_empty());
    assert_eq!(slow.failed_checks(), 1);

    // 98 999 in (250, 500], 1 001 in (500, 1000]: rank 99 000 → 500 + 500/1001 = 500.4995 ms, which
    // `time.Duration(int64(value))` truncates to 500 ms: not above 500 ms, the check passes.
    let mut edge = Flagger::new(FlaggerSettings::new(&[1.0, 100.0], 1));
    let ticks = (0..60u64).map(|t| {
        let mut tick = canary(t, 0, 0, 5);
        if t == 0 {
            tick.canary.requests = 100_000;
            tick.canary.latency[8] = 98_999;
            tick.canary.latency[9] = 1_001;
        }
        tick
    });
    assert_eq!(run(&mut edge, ticks), vec![(59, Action::SetWeight(100.0))]);
}

#[test]
fn the_window_is_the_last_minute_only() {
    // Errors in the first minute do not count against the second minute's check.
    let mut f = Flagger::new(FlaggerSettings::new(&[1.0, 5.0, 100.0], 5));
    let ticks = (0..120).map(|t| if t < 60 { canary(t, 10, 5, 5) } else { canary(t, 10, 0, 5) });
    assert_eq!(run(&mut f, ticks), vec![(119, Action::SetWeight(5.0))]);
    assert_eq!(f.failed_checks(), 1);
}
