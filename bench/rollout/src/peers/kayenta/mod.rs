//! Kayenta's NetflixACAJudge driving a stepped canary: at each weight a real-time canary analysis compares the
//! canary's per-minute points with the concurrent baseline's.
//!
//! **Metrics** (one group, none critical, direction `increase`): the error ratio 5xx / all per 60-s point and
//! the per-point p99 latency `histogram_quantile(0.99, sum(rate(istio_request_duration_milliseconds_bucket
//! [1m])) by (le))`, each arm on its own; Kayenta's Prometheus provider runs any such PromQL per step
//! (`kayenta-prometheus/…/PrometheusCanaryMetricSetQueryConfig.java`, `customInlineTemplate`). These are the
//! two signals Flagger's built-in checks read, so the bench compares judges, not metrics. Points are
//! `step: 60` as in the Kayenta example of argoproj/argo-rollouts `docs/analysis/kayenta.md`. Direction is
//! `increase` for both because a lower error ratio or a faster canary is no regression; with Kayenta's default
//! `either` (`NetflixACAJudge.classifyMetric`) an improvement scores `Low` and fails the canary like a
//! regression. A minute without requests gives NaN points, removed by the default `nanStrategy`.
//!
//! **Cadence** (spinnaker/orca `orca-kayenta/…/pipeline/RunCanaryIntervalsStage.kt`, `beforeStages` and
//! `buildRequestScopes`): a run every `canaryAnalysisInterval` over the data from the analysis start to now
//! (no `lookback`); `MonitorKayentaCanaryTask` fails the stage when a run scores ≤ `marginal`;
//! `AggregateCanaryResultsTask` fails it when the last run scores ≤ `marginal` or < `pass`. Per step we run
//! one analysis of lifetime 1 h with one 1-h interval, no warm-up: 60 points per metric and arm, above the
//! 50 that spinnaker.io's canary best practices ask for ("Run the canary for enough time"), and the 1-hour
//! run those practices start from (they suggest 3 runs of 1 h; one per step keeps a 4-step rollout at 4 h).
//! Thresholds pass 95 / marginal 75 as in Kayenta's sample canary configs (spinnaker/spinnaker
//! `json-formats.md`; argo-rollouts' Kayenta example uses pass 90): with two metrics the score is 0, 50 or
//! 100, so either pass threshold decides alike. A failed stage rolls back; the last step's success
//! promotes. A step at 100 % has no baseline traffic to compare with, so it is the promotion itself.
//!
//! **Baseline.** Kayenta wants a baseline deployment of the canary's size; the simulator's baseline arm is
//! the primary taking the rest of the traffic. Both metrics are ratios or quantiles per point, so the arms'
//! sizes change the points' noise, not their location.

pub mod classify;
pub mod mann_whitney;

use canary_rollout::sim::{Action, SimJudge, Tick};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use self::classify::{score, Classifier, Direction, Label};
use super::window::ArmTotals;

/// A stepped Kayenta canary: the weights, each step's real-time analysis, and the judge's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct KayentaSettings {
    /// Canary weights, percent, increasing; each < 100 gets its own canary analysis.
    pub steps: Vec<f64>,
    /// The scopes' `step`: seconds per point.
    pub step_s: u64,
    /// `lifetimeDuration` of each step's analysis, minutes.
    pub lifetime_min: u64,
    /// `canaryAnalysisIntervalMins`.
    pub interval_min: u64,
    /// `scoreThresholds.pass` and `.marginal`.
    pub pass: f64,
    pub marginal: f64,
    pub classifier: Classifier,
    /// Seed for the Gaussian noise Kayenta adds to constant series.
    pub seed: u64,
}

impl KayentaSettings {
    pub fn new(steps: &[f64]) -> Self {
        KayentaSettings {
            steps: steps.to_vec(),
            step_s: 60,
            lifetime_min: 60,
            interval_min: 60,
            pass: 95.0,
            marginal: 75.0,
            classifier: Classifier::default(),
            seed: 0x006b_6179_656e_7461,
        }
    }
}

/// Per-point series of one arm since the step's analysis started.
#[derive(Clone, Debug, Default)]
struct ArmPoints {
    current: ArmTotals,
    error_ratio: Vec<f64>,
    p99_ms: Vec<f64>,
}

impl ArmPoints {
    fn close_point(&mut self) {
        self.error_ratio.push(self.current.error_ratio());
        self.p99_ms.push(self.current.latency_quantile(0.99));
        self.current = ArmTotals::default();
    }
}

/// Kayenta's judge under simulation.
#[derive(Clone, Debug)]
pub struct Kayenta {
    settings: KayentaSettings,
    steps: Vec<f64>,
    step: usize,
    elapsed_s: u64,
    canary: ArmPoints,
    baseline: ArmPoints,
    scores: Vec<f64>,
    rng: SmallRng,
    done: bool,
}

impl Kayenta {
    pub fn new(settings: KayentaSettings) -> Self {
        let steps = super::sanitize_steps(&settings.steps).into_iter().filter(|&w| w < 100.0).collect();
        let lifetime_min = settings.lifetime_min.max(1);
        // RunCanaryIntervalsStage: an interval of 0 or longer than the lifetime is the lifetime.
        let interval_min = if settings.interval_min == 0 || settings.interval_min > lifetime_min {
            lifetime_min
        } else {
            settings.interval_min
        };
        let mut classifier = settings.classifier;
        if !(classifier.conf_level > 0.0 && classifier.conf_level < 1.0) {
            classifier.conf_level = 0.98;
        }
        let settings =
            KayentaSettings { step_s: settings.step_s.max(1), lifetime_min, interval_min, classifier, ..settings };
        let rng = SmallRng::seed_from_u64(settings.seed);
        Kayenta {
            settings,
            steps,
            step: 0,
            elapsed_s: 0,
            canary: ArmPoints::default(),
            baseline: ArmPoints::default(),
            scores: Vec::new(),
            rng,
            done: false,
        }
    }

    /// Scores of the current step's runs so far.
    pub fn scores(&self) -> &[f64] {
        &self.scores
    }

    /// One canary run over the step's points so far: the NetflixACAJudge summary score.
    pub fn judge(&mut self) -> f64 {
        let c = self.settings.classifier;
        let labels: [Label; 2] = [
            c.classify(&self.baseline.error_ratio, &self.canary.error_ratio, Direction::Increase, &mut self.rng),
            c.classify(&self.baseline.p99_ms, &self.canary.p99_ms, Direction::Increase, &mut self.rng),
        ];
        score(&labels)
    }

    fn finish(&mut self, action: Action) -> Action {
        self.done = true;
        action
    }

    fn next_step(&mut self) -> Action {
        self.step += 1;
        self.elapsed_s = 0;
        self.canary = ArmPoints::default();
        self.baseline = ArmPoints::default();
        self.scores.clear();
        match self.steps.get(self.step) {
            Some(&w) => Action::SetWeight(w),
            None => self.finish(Action::Promote),
        }
    }
}

impl SimJudge for Kayenta {
    fn name(&self) -> String {
        "Kayenta (NetflixACAJudge)".to_string()
    }

    fn initial_weight(&self) -> f64 {
        self.steps.first().copied().unwrap_or(100.0)
    }

    fn sticky(&self) -> bool {
        false
    }

    fn on_tick(&mut self, tick: &Tick) -> Action {
        if self.done {
            return Action::Hold;
        }
        if self.steps.is_empty() {
            return self.finish(Action::Promote);
        }
        self.elapsed_s += 1;
        self.canary.current.add(&tick.canary);
        self.baseline.current.add(&tick.baseline);
        if self.elapsed_s.is_multiple_of(self.settings.step_s) {
            self.canary.close_point();
            self.baseline.close_point();
        }
        let interval_s = self.settings.interval_min.saturating_mul(60);
        if !self.elapsed_s.is_multiple_of(interval_s) {
            return Action::Hold;
        }
        let run = self.elapsed_s / interval_s;
        let s = self.judge();
        self.scores.push(s);
        if s <= self.settings.marginal {
            return self.finish(Action::Rollback);
        }
        let runs = self.settings.lifetime_min / self.settings.interval_min;
        if run < runs {
            return Action::Hold;
        }
        if s < self.settings.pass {
            return self.finish(Action::Rollback);
        }
        self.next_step()
    }
}
