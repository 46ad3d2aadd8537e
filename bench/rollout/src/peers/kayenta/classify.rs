//! NetflixACAJudge's per-metric classification and scoring (spinnaker/kayenta `kayenta-judge/src/main/scala/
//! com/netflix/kayenta/judge/`).
//!
//! Per metric (`NetflixACAJudge.classifyMetric`): NaN handling (`nanStrategy` default `remove`,
//! `classifiers/metric/BaseMetricClassifier.scala`, `NaNStrategy.parse`), outliers kept (`outliers.strategy`
//! default `keep`), then `MannWhitneyClassifier(tolerance = 0.25, confLevel = 0.98, …).classify`:
//! empty canary or baseline → `Nodata` (not critical, `mustHaveData` false); identical sorted data, or a single
//! distinct value overall → `Pass`; otherwise the Mann-Whitney interval of canary − baseline (with Gaussian
//! noise of sd 1e-5 × value added when each side has one distinct value), bounds ±0.25 × |estimate|, and
//! `High` when the direction allows an increase, `lower > 0.25·|estimate|` and the mean ratio canary/baseline
//! (`EffectSizes.meanRatio`, NaN when either mean is 0, and then ignored) is ≥ `allowedIncrease`; `Low`
//! symmetrically; else `Pass`. A thrown exception (all observations tied) is labelled `Error`.
//!
//! Scoring (`scorers/WeightedSumScorer.scala`): group score = Pass / (Pass + High + Low + NodataFailMetric)
//! × 100 (a group with none of these scores 100 in the summary); 0 when a critical metric is not Pass or
//! when ≥ 50 % of the metrics are `Nodata`; summary rounded to 2 decimals (`Precision.round`).

use rand::rngs::SmallRng;
use rand::Rng;
use statrs::distribution::{ContinuousCDF, Normal};

use super::mann_whitney::shift_interval;

/// `MetricClassificationLabel`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Label {
    Pass,
    High,
    Low,
    Nodata,
    NodataFailMetric,
    Error,
}

/// `MetricDirection`: which change counts against the canary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Increase,
    Decrease,
    Either,
}

/// The classifier's settings (`NetflixACAJudge` hard-codes tolerance 0.25 and confLevel 0.98; the effect-size
/// thresholds come from the metric's `effectSize` config, default 1.0 for `meanRatio`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Classifier {
    pub tolerance: f64,
    pub conf_level: f64,
    pub allowed_increase: f64,
    pub allowed_decrease: f64,
}

impl Default for Classifier {
    fn default() -> Self {
        Classifier { tolerance: 0.25, conf_level: 0.98, allowed_increase: 1.0, allowed_decrease: 1.0 }
    }
}

impl Classifier {
    /// `MannWhitneyClassifier.classify(control, experiment, direction, Remove, critical = false,
    /// mustHaveData = false)` after `NetflixACAJudge.handleNaNs` (remove).
    pub fn classify(&self, control: &[f64], experiment: &[f64], direction: Direction, rng: &mut SmallRng) -> Label {
        let control: Vec<f64> = control.iter().copied().filter(|v| !v.is_nan()).collect();
        let experiment: Vec<f64> = experiment.iter().copied().filter(|v| !v.is_nan()).collect();
        if control.is_empty() || experiment.is_empty() {
            return Label::Nodata;
        }
        let (mut c_sorted, mut e_sorted) = (control.clone(), experiment.clone());
        c_sorted.sort_by(f64::total_cmp);
        e_sorted.sort_by(f64::total_cmp);
        if c_sorted == e_sorted {
            return Label::Pass;
        }
        let mut all = [c_sorted, e_sorted].concat();
        all.sort_by(f64::total_cmp);
        all.dedup();
        if all.len() == 1 {
            return Label::Pass;
        }
        self.compare(&control, &experiment, direction, rng)
    }

    /// `MannWhitneyClassifier.compare`.
    fn compare(&self, control: &[f64], experiment: &[f64], direction: Direction, rng: &mut SmallRng) -> Label {
        let add_noise = distinct_count(experiment) == 1 && distinct_count(control) == 1;
        let (experiment, control) = if add_noise {
            (add_gaussian_noise(experiment, rng), add_gaussian_noise(control, rng))
        } else {
            (experiment.to_vec(), control.to_vec())
        };
        let Ok(ci) = shift_interval(&experiment, &control, self.conf_level) else {
            return Label::Error;
        };
        let effect = mean_ratio(&control, &experiment);
        let critical = self.tolerance * ci.estimate.abs();
        let is_high = matches!(direction, Direction::Increase | Direction::Either)
            && ci.lower > critical
            && (effect.is_nan() || effect >= self.allowed_increase);
        let is_low = matches!(direction, Direction::Decrease | Direction::Either)
            && ci.upper < -critical
            && (effect.is_nan() || effect <= self.allowed_decrease);
        if is_high {
            Label::High
        } else if is_low {
            Label::Low
        } else {
            Label::Pass
        }
    }
}

fn distinct_count(v: &[f64]) -> usize {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.dedup();
    s.len()
}

/// `MannWhitneyClassifier.addGaussianNoise`: sd = first distinct value × 1e-5 (`RandomUtils.normal`:
/// `nextGaussian() * stdev + mean`, so a zero value gets no noise). Draws by inverting statrs's normal CDF.
fn add_gaussian_noise(values: &[f64], rng: &mut SmallRng) -> Vec<f64> {
    let scale = values.first().copied().unwrap_or(0.0) * 1e-5;
    let Ok(std_normal) = Normal::new(0.0, 1.0) else { return values.to_vec() };
    values
        .iter()
        .map(|v| {
            let u: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
            v + std_normal.inverse_cdf(u) * scale
        })
        .collect()
}

/// `EffectSizes.meanRatio(control, experiment)`: experiment mean / control mean, NaN when either is 0.
fn mean_ratio(control: &[f64], experiment: &[f64]) -> f64 {
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let (c, e) = (mean(control), mean(experiment));
    if c == 0.0 || e == 0.0 {
        f64::NAN
    } else {
        e / c
    }
}

/// `WeightedSumScorer.score` for one group holding every metric, none critical, then the summary score.
pub fn score(labels: &[Label]) -> f64 {
    if labels.is_empty() {
        return 100.0;
    }
    let count = |l: Label| labels.iter().filter(|&&x| x == l).count();
    let nodata_percent = count(Label::Nodata) as f64 / labels.len() as f64 * 100.0;
    if nodata_percent >= 50.0 {
        return 0.0;
    }
    let pass = count(Label::Pass);
    let total = pass + count(Label::High) + count(Label::Low) + count(Label::NodataFailMetric);
    // One group, weight 100 (no groupWeights: (100 − 0) / 1); a group without counted labels is "noData": 100.
    let group = if total == 0 { 100.0 } else { pass as f64 / total as f64 * 100.0 };
    (group * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn scoring_follows_the_weighted_sum_scorer() {
        use Label::*;
        assert_eq!(score(&[Pass, Pass]), 100.0);
        assert_eq!(score(&[Pass, High]), 50.0);
        assert_eq!(score(&[Pass, Pass, Low]), 66.67);
        assert_eq!(score(&[Nodata, Pass]), 0.0, "50 % NODATA fails the canary");
        assert_eq!(score(&[Nodata, Pass, Pass]), 100.0, "33 % NODATA: the others decide");
        assert_eq!(score(&[Error, Error]), 100.0, "Error labels do not count");
    }

    #[test]
    fn classification_edge_cases() {
        let mut rng = SmallRng::seed_from_u64(7);
        let c = Classifier::default();
        let inc = Direction::Increase;
        assert_eq!(c.classify(&[f64::NAN], &[1.0], inc, &mut rng), Label::Nodata);
        assert_eq!(c.classify(&[1.0, 2.0], &[2.0, 1.0], inc, &mut rng), Label::Pass);
        assert_eq!(c.classify(&[0.0; 5], &[0.0; 3], inc, &mut rng), Label::Pass);
        // One distinct value per side: noise breaks the ties; a doubled value is High, a halved one Pass for
        // `increase` and Low for `either`.
        assert_eq!(c.classify(&[0.01; 60], &[0.02; 60], inc, &mut rng), Label::High);
        assert_eq!(c.classify(&[0.02; 60], &[0.01; 60], inc, &mut rng), Label::Pass);
        assert_eq!(c.classify(&[0.02; 60], &[0.01; 60], Direction::Either, &mut rng), Label::Low);
    }
}
