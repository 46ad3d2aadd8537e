//! Faults a stand-in injects on demand, so a rollout can be shown a bad canary: a share of requests answered
//! 500 (drawn per request) and extra latency on every request. Set at start (`--fail-percent`,
//! `--extra-latency-ms`) and changed at run time by `POST /_control?fail_percent=P&extra_latency_ms=MS`, sent
//! to the instance itself (not through Envoy), so a canary that starts good can turn bad mid-rollout.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Shares are kept in basis points: `--fail-percent 0.5` must mean 0.5 %, and integers make the draw exact.
const BASIS_POINTS: u32 = 10_000;
/// A latency far beyond Envoy's 15 s route timeout is a typo, not a fault worth modelling.
const MAX_LATENCY_MS: u32 = 60_000;

/// The fault settings of one instance, shared by all its connection threads.
#[derive(Debug)]
pub struct Faults {
    fail_bp: AtomicU32,
    extra_latency_ms: AtomicU32,
    /// Requests drawn so far: the draw hashes (seed, n), so concurrent threads never share a generator state.
    draws: AtomicU64,
    seed: u64,
}

impl Default for Faults {
    /// No faults; the draws are seeded from the clock and the pid, so two instances fail different requests.
    fn default() -> Self {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        Faults::with_seed(nanos ^ (u64::from(std::process::id()) << 32))
    }
}

impl Faults {
    /// No faults, with a fixed seed (unit tests replay the same draws).
    pub fn with_seed(seed: u64) -> Self {
        Faults { fail_bp: AtomicU32::new(0), extra_latency_ms: AtomicU32::new(0), draws: AtomicU64::new(0), seed }
    }

    /// Sets the share of requests answered 500, in percent (0–100, fractions allowed).
    pub fn set_fail_percent(&self, percent: f64) -> Result<(), String> {
        if !(0.0..=100.0).contains(&percent) {
            return Err(format!("fail percent {percent} is not in 0..=100"));
        }
        self.fail_bp.store((percent * f64::from(BASIS_POINTS) / 100.0).round() as u32, Ordering::Relaxed);
        Ok(())
    }

    /// Sets the latency added before every answer.
    pub fn set_extra_latency_ms(&self, ms: u32) -> Result<(), String> {
        if ms > MAX_LATENCY_MS {
            return Err(format!("extra latency {ms} ms is over {MAX_LATENCY_MS} ms"));
        }
        self.extra_latency_ms.store(ms, Ordering::Relaxed);
        Ok(())
    }

    pub fn fail_percent(&self) -> f64 {
        f64::from(self.fail_bp.load(Ordering::Relaxed)) * 100.0 / f64::from(BASIS_POINTS)
    }

    pub fn extra_latency(&self) -> Duration {
        Duration::from_millis(u64::from(self.extra_latency_ms.load(Ordering::Relaxed)))
    }

    /// Draws for one request: whether it is answered 500.
    pub fn draw_failure(&self) -> bool {
        let bp = self.fail_bp.load(Ordering::Relaxed);
        if bp == 0 {
            return false;
        }
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        (splitmix64(self.seed.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))) % u64::from(BASIS_POINTS))
            < u64::from(bp)
    }

    /// The current settings as the control path reports them: `fail_percent=5 extra_latency_ms=50`.
    pub fn describe(&self) -> String {
        format!("fail_percent={} extra_latency_ms={}", self.fail_percent(), self.extra_latency().as_millis())
    }

    /// Applies a control query (`fail_percent=5&extra_latency_ms=50`; either may be absent). All or nothing:
    /// a bad value changes no setting.
    pub fn apply_query(&self, query: &str) -> Result<(), String> {
        let (mut fail, mut latency) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not KEY=VALUE"))?;
            match key {
                "fail_percent" => fail = Some(parse_percent(value)?),
                "extra_latency_ms" => latency = Some(parse_ms(value)?),
                _ => return Err(format!("unknown control `{key}` (fail_percent, extra_latency_ms)")),
            }
        }
        // Validate both before storing either.
        let probe = Faults::with_seed(0);
        if let Some(p) = fail {
            probe.set_fail_percent(p)?;
        }
        if let Some(ms) = latency {
            probe.set_extra_latency_ms(ms)?;
        }
        if let Some(p) = fail {
            self.set_fail_percent(p)?;
        }
        if let Some(ms) = latency {
            self.set_extra_latency_ms(ms)?;
        }
        Ok(())
    }
}

/// Parses a percentage flag or control value (`5`, `0.5`).
pub fn parse_percent(value: &str) -> Result<f64, String> {
    let p: f64 = value.parse().map_err(|_| format!("bad percent `{value}`"))?;
    if !(0.0..=100.0).contains(&p) {
        return Err(format!("percent `{value}` is not in 0..=100"));
    }
    Ok(p)
}

/// Parses a millisecond flag or control value.
pub fn parse_ms(value: &str) -> Result<u32, String> {
    let ms: u32 = value.parse().map_err(|_| format!("bad milliseconds `{value}`"))?;
    if ms > MAX_LATENCY_MS {
        return Err(format!("{ms} ms is over {MAX_LATENCY_MS} ms"));
    }
    Ok(ms)
}

/// SplitMix64's output function: a bijective mix whose outputs are uniform enough for a failure draw.
fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 5 % of 20,000 draws: mean 1,000, σ = √(20000·0.05·0.95) ≈ 30.8; 5σ bounds are 846..=1154, which a
    /// correct draw leaves about once in 1.7 million runs and a wrong share (4 % or 6 %: 800 or 1,200) fails.
    #[test]
    fn fail_share_is_drawn_per_request() {
        let faults = Faults::with_seed(42);
        faults.set_fail_percent(5.0).unwrap();
        let failed = (0..20_000).filter(|_| faults.draw_failure()).count();
        assert!((846..=1154).contains(&failed), "{failed} of 20000 failed at 5 %");
        // Not one block of failures: the first and second halves both fail (each ~500, 5σ ≈ 109).
        let halves: Vec<usize> = (0..2).map(|_| (0..10_000).filter(|_| faults.draw_failure()).count()).collect();
        assert!(halves.iter().all(|h| (391..=609).contains(h)), "{halves:?}");
    }

    #[test]
    fn zero_and_hundred_are_exact() {
        let faults = Faults::with_seed(7);
        assert!((0..5_000).all(|_| !faults.draw_failure()));
        faults.set_fail_percent(100.0).unwrap();
        assert!((0..5_000).all(|_| faults.draw_failure()));
        faults.set_fail_percent(0.5).unwrap();
        assert_eq!(faults.fail_percent(), 0.5);
    }

    #[test]
    fn control_queries_apply_all_or_nothing() {
        let faults = Faults::with_seed(1);
        faults.apply_query("fail_percent=5&extra_latency_ms=50").unwrap();
        assert_eq!(faults.describe(), "fail_percent=5 extra_latency_ms=50");
        faults.apply_query("extra_latency_ms=0").unwrap();
        assert_eq!(faults.describe(), "fail_percent=5 extra_latency_ms=0");
        for bad in ["fail_percent=101", "fail_percent=2&extra_latency_ms=x", "nope=1", "fail_percent", "x=1&y"] {
            assert!(faults.apply_query(bad).is_err(), "{bad}");
        }
        assert_eq!(faults.describe(), "fail_percent=5 extra_latency_ms=0", "a refused query changes nothing");
        assert!(faults.set_extra_latency_ms(MAX_LATENCY_MS + 1).is_err());
        assert!(faults.set_fail_percent(-1.0).is_err() && faults.set_fail_percent(f64::NAN).is_err());
    }
}
