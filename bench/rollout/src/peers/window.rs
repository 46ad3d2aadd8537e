//! Event totals of one arm, and a sliding window of the last N simulated seconds: what a PromQL range
//! selector `[N s]` sees of the simulator's ticks (see `promql` for why plain sums stand in for `rate`).

use std::collections::VecDeque;

use canary_rollout::sim::ArmTick;

use super::promql;

/// Requests, 5xx and latency-bucket counts of one arm over some span of seconds.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ArmTotals {
    pub requests: u64,
    pub errors: u64,
    pub latency: [u64; 20],
}

impl ArmTotals {
    pub fn add(&mut self, tick: &ArmTick) {
        self.requests = self.requests.saturating_add(tick.requests);
        self.errors = self.errors.saturating_add(tick.errors);
        for (sum, n) in self.latency.iter_mut().zip(tick.latency.iter()) {
            *sum = sum.saturating_add(*n);
        }
    }

    fn sub(&mut self, tick: &ArmTick) {
        self.requests = self.requests.saturating_sub(tick.requests);
        self.errors = self.errors.saturating_sub(tick.errors);
        for (sum, n) in self.latency.iter_mut().zip(tick.latency.iter()) {
            *sum = sum.saturating_sub(*n);
        }
    }

    /// Non-5xx requests (`response_code!~"5.*"`); errors beyond requests (inconsistent input) count as none.
    pub fn good(&self) -> u64 {
        self.requests.saturating_sub(self.errors)
    }

    /// non-5xx / all: NaN without requests.
    pub fn success_ratio(&self) -> f64 {
        promql::ratio(self.good(), self.requests)
    }

    /// 5xx / all: NaN without requests.
    pub fn error_ratio(&self) -> f64 {
        promql::ratio(self.errors.min(self.requests), self.requests)
    }

    /// `histogram_quantile(q, …)` of this span's latency buckets (ms); NaN without observations.
    pub fn latency_quantile(&self, q: f64) -> f64 {
        promql::istio_latency_quantile(q, &self.latency)
    }
}

/// The last `len` seconds of one arm (a range selector `[len s]` evaluated at the end of the latest tick).
#[derive(Clone, Debug)]
pub struct Window {
    len: usize,
    ticks: VecDeque<ArmTick>,
    totals: ArmTotals,
}

impl Window {
    /// A window of `len_s` seconds (at least one).
    pub fn new(len_s: u64) -> Self {
        let len = usize::try_from(len_s.max(1)).unwrap_or(usize::MAX);
        Window { len, ticks: VecDeque::new(), totals: ArmTotals::default() }
    }

    pub fn push(&mut self, tick: &ArmTick) {
        self.ticks.push_back(tick.clone());
        self.totals.add(tick);
        while self.ticks.len() > self.len {
            if let Some(old) = self.ticks.pop_front() {
                self.totals.sub(&old);
            }
        }
    }

    pub fn totals(&self) -> &ArmTotals {
        &self.totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_the_last_seconds_only() {
        let mut w = Window::new(3);
        for i in 1..=5u64 {
            w.push(&ArmTick { requests: i, errors: 1, ..ArmTick::default() });
        }
        assert_eq!(w.totals().requests, 3 + 4 + 5);
        assert_eq!(w.totals().errors, 3);
        assert_eq!(w.totals().good(), 9);
        let empty = ArmTotals::default();
        assert!(empty.success_ratio().is_nan() && empty.error_ratio().is_nan());
        let odd = ArmTotals { requests: 2, errors: 5, ..ArmTotals::default() };
        assert_eq!((odd.good(), odd.error_ratio()), (0, 1.0));
    }
}
