//! Shared drift: both arms' error rate jumps when the canary's share jumps (an incident in a shared
//! dependency just as the rollout advances). Pooled over time the canary looks several times worse — a
//! Simpson's paradox that fools any test comparing cumulative rates — yet in every interval the arms are
//! equal, and the judge, which only uses each interval's split, must keep its false-rollback bound.

use canary_rollout::counts::{ArmCounts, Counts};
use canary_rollout::judge::{Judge, JudgeSettings};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Binomial, Distribution};

fn draw(rng: &mut SmallRng, n: u64, p: f64) -> u64 {
    Binomial::new(n, p).map_or(0, |d| d.sample(rng))
}

#[test]
fn drift_shared_by_both_arms_is_not_a_regression() {
    let mut rng = SmallRng::seed_from_u64(2205_14762);
    let (mut rollbacks, mut pooled) = (0, [0u64; 4]);
    const RUNS: usize = 500;
    for _ in 0..RUNS {
        let mut judge = Judge::new(JudgeSettings::default());
        for interval in 0..200 {
            // Calm at 1 % canary share, then an incident (5 % errors for both) while the canary has 50 %.
            let (share, rate) = if (interval / 20) % 2 == 0 { (0.01, 0.001) } else { (0.5, 0.05) };
            let total = 1000;
            let canary = draw(&mut rng, total, share);
            let baseline = total - canary;
            let (a, b) = (draw(&mut rng, canary, rate), draw(&mut rng, baseline, rate));
            for (slot, v) in pooled.iter_mut().zip([canary, a, baseline, b]) {
                *slot += v;
            }
            judge.observe(&Counts {
                canary: ArmCounts { requests: canary, errors: a, slow: 0 },
                baseline: ArmCounts { requests: baseline, errors: b, slow: 0 },
            });
        }
        if judge.regressed().is_some() {
            rollbacks += 1;
        }
    }
    let [n_c, a, n_b, b] = pooled.map(|v| v as f64);
    let (canary_rate, baseline_rate) = (a / n_c, b / n_b);
    eprintln!("pooled canary {canary_rate:.4} vs baseline {baseline_rate:.4}; {rollbacks} of {RUNS} rolled back");
    // The scenario is adversarial: pooled, the canary's rate is ~ (0.01·0.001 + 0.5·0.05)/0.51 ≈ 4.9 % against
    // the baseline's ~ (0.99·0.001 + 0.5·0.05)/1.49 ≈ 1.7 %.
    assert!(canary_rate > 2.5 * baseline_rate);
    // Under rate α = 0.01, P(X ≥ 13 of 500) = 0.19 % (exact binomial tail).
    assert!(rollbacks <= 12, "{rollbacks} of {RUNS}");
}
