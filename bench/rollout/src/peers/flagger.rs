//! Flagger's canary loop with its built-in Istio checks, as fluxcd/flagger runs it.
//!
//! **Loop** (`pkg/controller/scheduler.go`, `advanceCanary`, once per `analysis.interval`): first, if
//! `FailedChecks >= threshold` the canary is rolled back (`rollback`), *before* any new analysis, so the
//! rollback lands one interval after the failing check that reached the threshold; otherwise `runAnalysis`
//! runs the metric checks; a failure does `SetStatusFailedChecks(FailedChecks+1)` and returns (the weight
//! stays); a pass calls `runCanary`, which raises the weight to the next of `stepWeights`
//! (`nextStepWeight`) while `canaryWeight < maxWeight`, and promotes once the weight is at `maxWeight`
//! (`maxWeight` = min(100, last of `stepWeights`)). So promotion needs one more passing check at the last
//! step. `FailedChecks` is never reset by a pass: only a new revision (`hasCanaryRevisionChanged`) or a new
//! run (`checkCanaryStatus`) syncs it back to 0.
//!
//! **Timing.** The first scheduler tick of a new revision sets the weight from 0 to `stepWeights[0]` without
//! analysis (`canaryWeight == 0 && Iterations == 0` runs only the pre-rollout hooks); t = 0 here is that
//! moment, so `initial_weight` is the first step and every check sees a full interval at the current weight.
//!
//! **Checks** (`pkg/controller/scheduler_metrics.go`, `runBuiltinMetricChecks`; queries in
//! `pkg/metrics/observers/istio.go`, `istioQueries`): canary workload only, over the metric interval (`1m`):
//! `request-success-rate` = non-5xx / all × 100, failing when `Threshold > val`; `request-duration` = p99 by
//! `histogram_quantile`, converted with `time.Duration(int64(value)) * time.Millisecond` (truncated to whole
//! ms, `GetRequestDuration`) and failing when `val > Threshold ms`. A NaN or empty result is
//! `ErrNoValuesFound` (`pkg/metrics/providers/prometheus.go`, `RunQuery`): the check fails ("Halt
//! advancement no values found"). Thresholds are the documented examples (`docs/gitbook/usage/metrics.md`):
//! success rate ≥ 99 %, p99 ≤ 500 ms; defaults from `pkg/apis/flagger/v1beta1/canary.go` (interval 60 s,
//! metric interval `1m`, threshold 1).

use canary_rollout::sim::{Action, SimJudge, Tick};

use super::window::Window;

/// A Flagger `Canary` analysis spec, reduced to what the built-in checks read.
#[derive(Clone, Debug, PartialEq)]
pub struct FlaggerSettings {
    /// `analysis.stepWeights` (percent, increasing).
    pub step_weights: Vec<f64>,
    /// `analysis.threshold`: failed checks before rollback.
    pub threshold: u32,
    /// `analysis.interval` in seconds (Flagger's default 60 s, minimum 10 s).
    pub interval_s: u64,
    /// The metrics' `interval` (the PromQL range), seconds (default `1m`).
    pub metric_interval_s: u64,
    /// `request-success-rate` `thresholdRange.min`, percent.
    pub min_success_rate: f64,
    /// `request-duration` `thresholdRange.max`, milliseconds.
    pub max_duration_ms: f64,
}

impl FlaggerSettings {
    /// The documented defaults with `threshold` failed checks and `steps` as `stepWeights`.
    pub fn new(steps: &[f64], threshold: u32) -> Self {
        FlaggerSettings {
            step_weights: steps.to_vec(),
            threshold,
            interval_s: 60,
            metric_interval_s: 60,
            min_success_rate: 99.0,
            max_duration_ms: 500.0,
        }
    }
}

/// Flagger's judge under simulation.
#[derive(Clone, Debug)]
pub struct Flagger {
    settings: FlaggerSettings,
    steps: Vec<f64>,
    step: usize,
    failed_checks: u32,
    elapsed_s: u64,
    canary: Window,
    done: bool,
}

impl Flagger {
    pub fn new(settings: FlaggerSettings) -> Self {
        let steps = super::sanitize_steps(&settings.step_weights);
        // Flagger refuses an interval under 10 s (`GetAnalysisInterval`); a threshold of 0 would roll back
        // at the first interval, which no Canary spec means: treat it as 1, the default.
        let settings = FlaggerSettings {
            interval_s: settings.interval_s.max(10),
            threshold: settings.threshold.max(1),
            ..settings
        };
        let canary = Window::new(settings.metric_interval_s);
        Flagger { settings, steps, step: 0, failed_checks: 0, elapsed_s: 0, canary, done: false }
    }

    /// Failed checks so far (cumulative over the run, as `Status.FailedChecks`).
    pub fn failed_checks(&self) -> u32 {
        self.failed_checks
    }

    /// Both built-in checks on the canary's last metric interval; `false` on the first that fails.
    pub fn checks_pass(&self) -> bool {
        let w = self.canary.totals();
        let success_rate = w.success_ratio() * 100.0;
        // NaN → ErrNoValuesFound → fail; `Threshold > val` → fail (so NaN-free equality passes).
        if success_rate.is_nan() || self.settings.min_success_rate > success_rate {
            return false;
        }
        let p99 = w.latency_quantile(0.99);
        if p99.is_nan() {
            return false;
        }
        // `time.Duration(int64(value))` and `time.Duration(metric.Threshold)` both truncate toward zero before
        // the `val > Threshold ms` comparison.
        p99.trunc() <= self.settings.max_duration_ms.trunc()
    }

    /// One `advanceCanary` pass at the end of an interval.
    fn advance(&mut self) -> Action {
        if self.failed_checks >= self.settings.threshold {
            self.done = true;
            return Action::Rollback;
        }
        if !self.checks_pass() {
            self.failed_checks = self.failed_checks.saturating_add(1);
            return Action::Hold;
        }
        if self.step + 1 < self.steps.len() {
            self.step += 1;
            Action::SetWeight(self.steps[self.step])
        } else {
            self.done = true;
            Action::Promote
        }
    }
}

impl SimJudge for Flagger {
    fn name(&self) -> String {
        format!("Flagger (threshold {})", self.settings.threshold)
    }

    fn initial_weight(&self) -> f64 {
        self.steps[0]
    }

    fn sticky(&self) -> bool {
        false
    }

    fn on_tick(&mut self, tick: &Tick) -> Action {
        if self.done {
            return Action::Hold;
        }
        self.canary.push(&tick.canary);
        self.elapsed_s += 1;
        if self.elapsed_s.is_multiple_of(self.settings.interval_s) {
            self.advance()
        } else {
            Action::Hold
        }
    }
}
