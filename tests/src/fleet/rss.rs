//! Resident memory of the fleet's Envoys (`VmRSS` in `/proc/PID/status`), sampled on a schedule, and the
//! least-squares slope a soak reports: a leak shows as a steady climb, a healthy proxy as a flat line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// `VmRSS` of `pid` in KiB, `None` if the process is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Every pid's RSS now (0 for a process that is gone, which the caller reports).
pub fn snapshot(pids: &[Option<u32>]) -> Vec<u64> {
    pids.iter().map(|p| p.and_then(rss_kib).unwrap_or(0)).collect()
}

/// The least-squares slope of `(seconds, KiB)` samples, in KiB per minute (0 with fewer than two times).
pub fn slope_kib_per_min(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let (mx, my) = (samples.iter().map(|s| s.0).sum::<f64>() / n, samples.iter().map(|s| s.1).sum::<f64>() / n);
    let sxx: f64 = samples.iter().map(|s| (s.0 - mx).powi(2)).sum();
    let sxy: f64 = samples.iter().map(|s| (s.0 - mx) * (s.1 - my)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx * 60.0
    }
}

/// Samples every pid's RSS every `every` on a thread until stopped: rows of (seconds since `epoch`, KiB per
/// proxy).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<(f64, Vec<u64>)>>,
}

impl Sampler {
    pub fn start(pids: Vec<Option<u32>>, every: Duration, epoch: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut rows = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                if Instant::now() >= next {
                    rows.push((epoch.elapsed().as_secs_f64(), snapshot(&pids)));
                    next += every;
                }
                thread::sleep(Duration::from_millis(50));
            }
            rows
        });
        Sampler { stop, handle }
    }

    pub fn stop(self) -> Vec<(f64, Vec<u64>)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_of_a_line_and_of_noise() {
        let line: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i) * 10.0, 1000.0 + f64::from(i) * 5.0)).collect();
        assert!((slope_kib_per_min(&line) - 30.0).abs() < 1e-9, "5 KiB per 10 s is 30 KiB/min");
        let flat: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i), if i % 2 == 0 { 10.0 } else { 12.0 })).collect();
        assert!(slope_kib_per_min(&flat).abs() < 15.0);
        assert_eq!(slope_kib_per_min(&[(1.0, 5.0)]), 0.0);
        assert!(rss_kib(std::process::id()).is_some_and(|k| k > 0));
    }
}
