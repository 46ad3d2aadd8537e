//! One simulated second's draws, aggregated (a second of 1,000 requests is a handful of Poisson, Binomial
//! and multinomial draws, never a loop over requests).
//!
//! **Common random numbers.** Every quantity of second `t` is drawn from its own generator seeded by
//! `(seed, t, quantity)`, so two judges run on the same seed see the same total traffic every second, and the
//! same draws for everything else as long as their weights agree: differences between judges come from
//! their decisions, not from luck.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Binomial, Distribution, Poisson};

/// The independent streams of one second.
#[derive(Clone, Copy)]
pub(crate) enum Stream {
    Phase,
    Total,
    Split,
    CanaryErrors,
    BaselineErrors,
    CanaryLatency,
    BaselineLatency,
    CanaryUsers,
    BaselineUsers,
    Moved,
}

/// SplitMix64's finaliser: decorrelates nearby seeds (Steele, Lea & Flood, OOPSLA 2014).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

pub(crate) fn rng(seed: u64, t: u64, stream: Stream) -> SmallRng {
    SmallRng::seed_from_u64(mix(mix(mix(seed) ^ t) ^ stream as u64))
}

/// Binomial(n, p) with p clamped into [0, 1] (NaN → 0).
pub(crate) fn binomial(rng: &mut SmallRng, n: u64, p: f64) -> u64 {
    if n == 0 || p.is_nan() || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    match Binomial::new(n, p) {
        Ok(d) => d.sample(rng).min(n),
        Err(_) => 0,
    }
}

/// Poisson(λ) as a count (λ ≤ 0 or NaN → 0).
pub(crate) fn poisson(rng: &mut SmallRng, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    match Poisson::new(lambda) {
        // A Poisson draw is a non-negative whole number in f64; `as` saturates.
        Ok(d) => d.sample(rng) as u64,
        Err(_) => 0,
    }
}

/// `n` requests spread over buckets with probabilities `p` (sequential conditional binomials).
pub(crate) fn multinomial(rng: &mut SmallRng, n: u64, p: &[f64; 20]) -> [u64; 20] {
    let mut out = [0u64; 20];
    let mut left = n;
    let mut mass: f64 = p.iter().sum();
    for (slot, &q) in out.iter_mut().zip(p.iter()) {
        if left == 0 {
            break;
        }
        let k = if mass > 0.0 { binomial(rng, left, q / mass) } else { 0 };
        *slot = k;
        left -= k;
        mass -= q;
    }
    // Rounding can leave a few requests when the last buckets' mass is ~0: they are the slowest.
    if let Some(last) = out.last_mut() {
        *last += left;
    }
    out
}

/// A uniform phase in [0, 2π) for the diurnal swing of one seed.
pub(crate) fn phase(seed: u64) -> f64 {
    rng(seed, 0, Stream::Phase).random::<f64>() * std::f64::consts::TAU
}

/// The mean rate at second `t`: `R·(1 + 0.5·sin(2π t/86400 + φ))`, a day's swing shared by both arms.
pub(crate) fn diurnal(rate: f64, t: u64, phi: f64) -> f64 {
    rate * (1.0 + 0.5 * (std::f64::consts::TAU * (t as f64) / 86_400.0 + phi).sin())
}

/// Users seen for the first time when `m` requests come uniformly from `unseen + seen` users: each unseen
/// user is hit with probability `1 − (1 − 1/size)^m` (the occupancy model; the users' draws are nearly
/// independent for a population much larger than a second's requests).
pub(crate) fn new_users(rng: &mut SmallRng, m: u64, unseen: u64, size: u64) -> u64 {
    if size == 0 || m == 0 {
        return 0;
    }
    let hit = -((m as f64) * (-1.0 / size as f64).ln_1p()).exp_m1();
    binomial(rng, unseen, hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_draws() {
        let a = poisson(&mut rng(7, 100, Stream::Total), 1000.0);
        let b = poisson(&mut rng(7, 100, Stream::Total), 1000.0);
        let c = poisson(&mut rng(8, 100, Stream::Total), 1000.0);
        assert_eq!(a, b);
        // Different seeds differ (P(equal) ≈ 1/(√(2π·1000)) ≈ 1.3 %: seeds 7/8 are fixed, so this is stable).
        assert_ne!(a, c);
    }

    #[test]
    fn multinomial_keeps_every_request() {
        let p = super::super::latency::distribution(super::super::latency::LatencyEffect::Same);
        let mut r = rng(1, 1, Stream::CanaryLatency);
        for n in [0, 1, 17, 1000, 1_000_000] {
            assert_eq!(multinomial(&mut r, n, &p).iter().sum::<u64>(), n);
        }
    }

    #[test]
    fn occupancy_mean() {
        // 1,000 requests over 1,000 users: 1 − (1 − 1/1000)^1000 ≈ 63.2 % seen. Mean of 200 draws has
        // sd ≈ √(1000·0.232)/√200 ≈ 1.08; allow 5σ.
        let mut r = rng(3, 3, Stream::CanaryUsers);
        let mean = (0..200).map(|_| new_users(&mut r, 1000, 1000, 1000) as f64).sum::<f64>() / 200.0;
        assert!((mean - 632.3).abs() < 5.5, "{mean}");
    }
}
