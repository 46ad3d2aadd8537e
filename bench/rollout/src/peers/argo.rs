//! Argo Rollouts: canary steps `setWeight: S` + `pause: {duration: D}` with the documented Prometheus
//! `AnalysisTemplate` running as background analysis for the whole rollout.
//!
//! **Template** (argoproj/argo-rollouts `docs/analysis/prometheus.md` and `docs/features/analysis.md`,
//! "Background Analysis"): `interval: 5m`, `successCondition: result[0] >= 0.95`, `failureLimit: 3`, query
//! `sum(irate(istio_requests_total{…,response_code!~"5.*"}[5m])) / sum(irate(istio_requests_total{…}[5m]))`.
//! `irate` uses only the last two samples inside the 5m range, so a measurement sees the requests between
//! the last two scrapes: with the 15 s `scrape_interval` of Istio's Prometheus add-on (istio/istio
//! `samples/addons/prometheus.yaml`) that is the last 15 s, not 5 minutes. [`ArgoQuery::Rate`] gives the
//! 5-minute `rate` variant.
//!
//! **Measurement outcome** (`metricproviders/prometheus/prometheus.go`, `processResponse`;
//! `utils/evaluate/evaluate.go`, `EvaluateResult`): a NaN ratio (no canary request between the samples) makes
//! `result[0] >= 0.95` false and, with only a `successCondition`, `failCondition = !successCondition`:
//! Failed. An empty vector (the canary series has fewer than two samples in the range, or no non-5xx series
//! exists yet) makes `result[0]` an evaluation error: phase Error.
//!
//! **Run assessment** (`analysis/analysis.go`): the first measurement is taken when the run starts
//! (`generateMetricTasks`, no `initialDelay`), later ones `interval` after the previous one finished, or
//! `DefaultErrorRetryInterval` (10 s) after an Error (`calculateNextReconcileTime`); Failed counts are
//! cumulative and Error counts consecutive (reset by any other outcome, `runMeasurements`);
//! `assessMetricFailureInconclusiveOrError`: Failed when `failed > failureLimit` (so the 4th failure with
//! `failureLimit: 3`; the prose in `docs/features/analysis.md` says "three such measurements", the code
//! needs four), Error when `consecutiveError > consecutiveErrorLimit` (default 4, `utils/defaults`). A
//! Failed or Error background run aborts the rollout (`rollout/analysis.go`, `reconcileBackgroundAnalysisRun`
//! → `AddAbort`), which sets the canary weight back to 0. When all steps complete the rollout is promoted
//! and the run is terminated (a terminating run is Successful).
//!
//! **Pause D.** 10 minutes per step, as in the documented background-analysis example
//! (`docs/features/analysis.md`: `setWeight` then `pause: {duration: 10m}`): two 5-minute measurements per
//! step. Steps at 100 % are the promotion itself and get no pause.

use std::collections::VecDeque;

use canary_rollout::sim::{Action, SimJudge, Tick};

use super::window::{ArmTotals, Window};

/// How the template's query turns the canary's counters into `result[0]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ArgoQuery {
    /// The documented `irate(…[range_s])`: the last two scrapes (every `scrape_s`) inside the range.
    Irate { scrape_s: u64, range_s: u64 },
    /// `rate(…[range_s])`: the ratio of the increases over the whole range.
    Rate { range_s: u64 },
}

/// A Rollout's canary steps and its background `AnalysisTemplate`.
#[derive(Clone, Debug, PartialEq)]
pub struct ArgoSettings {
    /// `setWeight` values, percent, increasing; each < 100 is followed by `pause: {duration: pause_s}`.
    pub steps: Vec<f64>,
    pub pause_s: u64,
    /// The metric's `interval`.
    pub interval_s: u64,
    /// `successCondition: result[0] >= min_success_ratio`.
    pub min_success_ratio: f64,
    pub failure_limit: u32,
    pub consecutive_error_limit: u32,
    /// `DefaultErrorRetryInterval`.
    pub error_retry_s: u64,
    pub query: ArgoQuery,
}

impl ArgoSettings {
    /// The documented example: interval 5m, `result[0] >= 0.95`, failureLimit 3, the `irate(…[5m])` query on
    /// 15 s scrapes, 10-minute pauses.
    pub fn new(steps: &[f64]) -> Self {
        ArgoSettings {
            steps: steps.to_vec(),
            pause_s: 600,
            interval_s: 300,
            min_success_ratio: 0.95,
            failure_limit: 3,
            consecutive_error_limit: 4,
            error_retry_s: 10,
            query: ArgoQuery::Irate { scrape_s: 15, range_s: 300 },
        }
    }
}

/// One measurement's phase (`v1alpha1.AnalysisPhase`, the three a successCondition-only metric can give).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measurement {
    Successful,
    Failed,
    Error,
}

/// The canary's Prometheus view: cumulative counters, the scrape samples still inside the range, and the last
/// `range_s` seconds for the `rate` variant.
#[derive(Clone, Debug)]
struct CanarySeries {
    cumulative: ArmTotals,
    /// (scrape time, all requests, non-5xx requests) for samples where the total series exists.
    samples: VecDeque<(u64, u64, u64)>,
    recent: Window,
}

/// Argo Rollouts' judge under simulation.
#[derive(Clone, Debug)]
pub struct ArgoRollouts {
    settings: ArgoSettings,
    /// Weights that get a pause (< 100).
    steps: Vec<f64>,
    step: usize,
    now_s: u64,
    started: bool,
    next_measurement_s: u64,
    failed: u32,
    consecutive_errors: u32,
    series: CanarySeries,
    done: bool,
}

impl ArgoRollouts {
    pub fn new(settings: ArgoSettings) -> Self {
        let steps: Vec<f64> = super::sanitize_steps(&settings.steps).into_iter().filter(|&w| w < 100.0).collect();
        let range_s = match settings.query {
            ArgoQuery::Irate { range_s, .. } | ArgoQuery::Rate { range_s } => range_s,
        };
        let settings = ArgoSettings {
            interval_s: settings.interval_s.max(1),
            error_retry_s: settings.error_retry_s.max(1),
            query: match settings.query {
                ArgoQuery::Irate { scrape_s, range_s } => ArgoQuery::Irate { scrape_s: scrape_s.max(1), range_s },
                rate => rate,
            },
            ..settings
        };
        let series =
            CanarySeries { cumulative: ArmTotals::default(), samples: VecDeque::new(), recent: Window::new(range_s) };
        ArgoRollouts {
            settings,
            steps,
            step: 0,
            now_s: 0,
            started: false,
            next_measurement_s: 0,
            failed: 0,
            consecutive_errors: 0,
            series,
            done: false,
        }
    }

    /// (failed measurements, consecutive errors) so far.
    pub fn counts(&self) -> (u32, u32) {
        (self.failed, self.consecutive_errors)
    }

    /// `result` of the template's query now: `None` for an empty vector, else the (possibly NaN) ratio.
    fn query(&self) -> Option<f64> {
        let s = &self.series;
        // No non-5xx request ever: the numerator has no series, `sum()` of nothing is empty, so is the ratio.
        if s.cumulative.good() == 0 {
            return None;
        }
        match self.settings.query {
            ArgoQuery::Irate { .. } => {
                let n = s.samples.len();
                if n < 2 {
                    return None;
                }
                let (_, all1, good1) = s.samples[n - 2];
                let (_, all2, good2) = s.samples[n - 1];
                Some(super::promql::ratio(good2.saturating_sub(good1), all2.saturating_sub(all1)))
            }
            ArgoQuery::Rate { .. } => {
                if s.cumulative.requests == 0 {
                    return None;
                }
                Some(s.recent.totals().success_ratio())
            }
        }
    }

    /// Takes one measurement now.
    pub fn measure(&self) -> Measurement {
        match self.query() {
            None => Measurement::Error,
            // NaN >= 0.95 is false, so NaN is Failed, like any ratio below the bound.
            Some(r) if r >= self.settings.min_success_ratio => Measurement::Successful,
            Some(_) => Measurement::Failed,
        }
    }

    /// Records a measurement taken at `now_s`, schedules the next, and says whether the run is now Failed or
    /// Errored.
    fn record(&mut self, m: Measurement, now_s: u64) -> bool {
        match m {
            Measurement::Successful => self.consecutive_errors = 0,
            Measurement::Failed => {
                self.failed = self.failed.saturating_add(1);
                self.consecutive_errors = 0;
            }
            Measurement::Error => self.consecutive_errors = self.consecutive_errors.saturating_add(1),
        }
        let wait = if m == Measurement::Error { self.settings.error_retry_s } else { self.settings.interval_s };
        self.next_measurement_s = now_s.saturating_add(wait);
        self.failed > self.settings.failure_limit || self.consecutive_errors > self.settings.consecutive_error_limit
    }

    fn observe(&mut self, tick: &Tick) {
        let s = &mut self.series;
        s.cumulative.add(&tick.canary);
        s.recent.push(&tick.canary);
        if let ArgoQuery::Irate { scrape_s, range_s } = self.settings.query {
            // The series appears at the first scrape after the canary's first request.
            if self.now_s.is_multiple_of(scrape_s) && s.cumulative.requests > 0 {
                s.samples.push_back((self.now_s, s.cumulative.requests, s.cumulative.good()));
            }
            // A range selector is left-open: samples at or before now − range are out.
            while s.samples.front().is_some_and(|&(at, _, _)| at.saturating_add(range_s) <= self.now_s) {
                s.samples.pop_front();
            }
        }
    }

    fn abort(&mut self) -> Action {
        self.done = true;
        Action::Rollback
    }
}

impl SimJudge for ArgoRollouts {
    fn name(&self) -> String {
        "Argo Rollouts (AnalysisTemplate)".to_string()
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
            self.done = true;
            return Action::Promote;
        }
        if !self.started {
            // The run's first measurement happens when it is created, at t = 0, before any canary request.
            self.started = true;
            if self.record(self.measure(), 0) {
                return self.abort();
            }
        }
        self.now_s += 1;
        self.observe(tick);
        if self.now_s >= self.next_measurement_s && self.record(self.measure(), self.now_s) {
            return self.abort();
        }
        let step_end = (self.step as u64 + 1).saturating_mul(self.settings.pause_s);
        if self.now_s >= step_end {
            self.step += 1;
            return match self.steps.get(self.step) {
                Some(&w) => Action::SetWeight(w),
                None => {
                    self.done = true;
                    Action::Promote
                }
            };
        }
        Action::Hold
    }
}
