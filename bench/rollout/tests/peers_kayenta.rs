//! Kayenta's NetflixACAJudge on generated ticks (spinnaker/kayenta `MannWhitneyClassifier.scala`,
//! `WeightedSumScorer.scala`; spinnaker/orca `RunCanaryIntervalsStage.kt`, `MonitorKayentaCanaryTask.kt`,
//! `AggregateCanaryResultsTask.kt`). The traffic is drawn from a seeded generator, so every run sees the same
//! ticks.

use canary_rollout::sim::{Action, ArmTick, SimJudge, Tick};
use canary_rollout_bench::peers::kayenta::classify::{Classifier, Direction, Label};
use canary_rollout_bench::peers::{Kayenta, KayentaSettings};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// One arm's second: `n` requests, each a 5xx with probability `p_err`, latency bucket (25, 50] with
/// probability 0.7, (50, 100] 0.25, else (100, 250]; `slow` moves every request one bucket up.
fn arm(rng: &mut SmallRng, n: u64, p_err: f64, slow: bool) -> ArmTick {
    let mut tick = ArmTick { requests: n, ..ArmTick::default() };
    for _ in 0..n {
        if rng.random::<f64>() < p_err {
            tick.errors += 1;
        }
        let u = rng.random::<f64>();
        let bucket = if u < 0.7 {
            5
        } else if u < 0.95 {
            6
        } else {
            7
        };
        tick.latency[bucket + usize::from(slow)] += 1;
    }
    tick
}

struct Traffic {
    rng: SmallRng,
    canary_err: f64,
    canary_slow: bool,
    canary_rps: u64,
}

impl Traffic {
    fn new(seed: u64) -> Self {
        Traffic { rng: SmallRng::seed_from_u64(seed), canary_err: 0.01, canary_slow: false, canary_rps: 20 }
    }

    fn tick(&mut self, t: u64) -> Tick {
        let baseline = arm(&mut self.rng, 20, 0.01, false);
        let canary = arm(&mut self.rng, self.canary_rps, self.canary_err, self.canary_slow);
        Tick { t, baseline, canary }
    }
}

fn run(judge: &mut Kayenta, traffic: &mut Traffic, seconds: u64) -> Vec<(u64, Action)> {
    (0..seconds)
        .filter_map(|t| {
            let a = judge.on_tick(&traffic.tick(t));
            (a != Action::Hold).then_some((t, a))
        })
        .collect()
}

#[test]
fn identical_distributions_pass_every_step() {
    let mut k = Kayenta::new(KayentaSettings::new(&[1.0, 5.0, 100.0]));
    assert_eq!(k.initial_weight(), 1.0);
    let actions = run(&mut k, &mut Traffic::new(1), 7300);
    // One 1-hour analysis per step below 100 %: 60 points per metric and arm.
    assert_eq!(actions, vec![(3599, Action::SetWeight(5.0)), (7199, Action::Promote)]);
}

#[test]
fn a_higher_error_ratio_is_high_and_rolls_back() {
    let mut k = Kayenta::new(KayentaSettings::new(&[1.0, 5.0, 100.0]));
    let mut traffic = Traffic::new(2);
    traffic.canary_err = 0.05;
    let actions = run(&mut k, &mut traffic, 3600);
    assert_eq!(actions, vec![(3599, Action::Rollback)]);
    // Error ratio High, latency Pass: 1 of 2 metrics pass, 50 ≤ marginal 75.
    assert_eq!(k.scores(), &[50.0]);
}

#[test]
fn slower_canary_is_high_on_latency() {
    let mut k = Kayenta::new(KayentaSettings::new(&[1.0, 100.0]));
    let mut traffic = Traffic::new(3);
    traffic.canary_slow = true;
    assert_eq!(run(&mut k, &mut traffic, 3600), vec![(3599, Action::Rollback)]);
    assert_eq!(k.scores(), &[50.0]);
}

#[test]
fn no_canary_traffic_is_nodata_and_fails() {
    let mut k = Kayenta::new(KayentaSettings::new(&[1.0, 100.0]));
    let mut traffic = Traffic::new(4);
    traffic.canary_rps = 0;
    assert_eq!(run(&mut k, &mut traffic, 3600), vec![(3599, Action::Rollback)]);
    assert_eq!(k.scores(), &[0.0], "both metrics NODATA: ≥ 50 % NODATA scores 0");
}

#[test]
fn shorter_intervals_fail_early_and_need_pass_only_at_the_end() {
    let mut s = KayentaSettings::new(&[1.0, 100.0]);
    s.interval_min = 15;
    let mut k = Kayenta::new(s);
    let mut traffic = Traffic::new(5);
    traffic.canary_err = 0.05;
    // The first 15-minute run already scores 50 ≤ 75: the stage fails there.
    assert_eq!(run(&mut k, &mut traffic, 3600), vec![(899, Action::Rollback)]);
}

#[test]
fn classifier_on_samples() {
    let c = Classifier::default();
    let mut rng = SmallRng::seed_from_u64(9);
    // 60 points of the same distribution vs the same shifted by +50 %: High for `increase`.
    let base: Vec<f64> = (0..60).map(|_| 100.0 + 20.0 * rng.random::<f64>()).collect();
    let same: Vec<f64> = (0..60).map(|_| 100.0 + 20.0 * rng.random::<f64>()).collect();
    let shifted: Vec<f64> = same.iter().map(|v| v * 1.5).collect();
    assert_eq!(c.classify(&base, &same, Direction::Increase, &mut rng), Label::Pass);
    assert_eq!(c.classify(&base, &shifted, Direction::Increase, &mut rng), Label::High);
    assert_eq!(c.classify(&shifted, &base, Direction::Increase, &mut rng), Label::Pass);
    assert_eq!(c.classify(&shifted, &base, Direction::Either, &mut rng), Label::Low);
    // allowedIncrease 2.0: a 1.5× mean ratio is not enough for High.
    let lenient = Classifier { allowed_increase: 2.0, ..c };
    assert_eq!(lenient.classify(&base, &shifted, Direction::Increase, &mut rng), Label::Pass);
}

/// Cross-check against the definition behind R's asymptotic `wilcox.test` interval, independent of the rank
/// code: without ties, U(μ) = #{xᵢ − yⱼ > μ} over the N = n·m pairwise differences d, so the estimate (statistic
/// 0) is the jump between d₍N/2₎ and d₍N/2+1₎ (the Hodges–Lehmann median), and the lower bound is where
/// U − N/2 − ½ stops exceeding z·σ: d₍N−k+1₎ with k = ⌊N/2 + ½ + z·σ⌋ + 1. Kayenta's Brent tolerance is 1e-4.
#[test]
fn interval_matches_sorted_pairwise_differences() {
    use canary_rollout_bench::peers::kayenta::mann_whitney::shift_interval;
    let mut rng = SmallRng::seed_from_u64(11);
    let y: Vec<f64> = (0..50).map(|_| 100.0 * rng.random::<f64>()).collect();
    let x: Vec<f64> = (0..40).map(|_| 100.0 * rng.random::<f64>() + 15.0).collect();
    let mut d: Vec<f64> = x.iter().flat_map(|xi| y.iter().map(move |yj| xi - yj)).collect();
    d.sort_by(f64::total_cmp);
    let n = d.len(); // 2000
    let r = shift_interval(&x, &y, 0.98).expect("no ties");
    let tol = 2e-4;
    assert!(r.estimate >= d[n / 2 - 1] - tol && r.estimate <= d[n / 2] + tol, "{r:?} vs {} {}", d[n / 2 - 1], d[n / 2]);
    // z(0.99) = 2.3263478740408408; σ = √(40·50·91/12).
    let sigma = (40.0 * 50.0 * 91.0 / 12.0f64).sqrt();
    let k = ((n as f64) / 2.0 + 0.5 + 2.3263478740408408 * sigma).floor() as usize + 1;
    let lower = d[n - k]; // d₍N−k+1₎, 1-based
    assert!((r.lower - lower).abs() <= tol, "lower {} vs d = {lower}", r.lower);
    let upper = d[k - 1]; // symmetric: d₍k₎
    assert!((r.upper - upper).abs() <= tol, "upper {} vs d = {upper}", r.upper);
}
