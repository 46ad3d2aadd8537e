//! The pure step machine shared by the controller (real time, real metrics) and the simulator (simulated
//! seconds): no I/O and no clock of its own (every call says what time it is), so the controller can save
//! it in its crash-safe state file and the simulator can run a thousand rollouts a second.
//!
//! Rules, in order, for each reading: the judge sees the interval first and a rollback wins over anything
//! else (the evidence is valid whenever it is looked at); then the step passes when it has lasted
//! `min_secs` *and* served `min_requests` canary requests. Too few requests is never a failure: the step
//! waits (for ever, if no one calls) rather than judge on nothing.
//!
//! Under `promote: evidence` ([`Promote::Evidence`]) a step also needs the data to show the canary within
//! its tolerance: every judged metric's within-evidence at least 1/β ([`Judge::within_tolerance`]). Time
//! and requests alone promote a canary that no test at level α can tell from a bad one in that little data
//! (BENCHMARKS.md, "Progressive delivery": with 60-s steps most ×2 canaries at 0.1 % errors are promoted);
//! with evidence, promoting *any* step of a canary worse than the tolerance has probability ≤ β. The price
//! is time: the step waits until the evidence is there, possibly for ever for a canary that is neither
//! clearly worse nor clearly within (the controller then runs until an operator decides).

use serde::{Deserialize, Serialize};

use crate::counts::Counts;
use crate::judge::{Evidence, Judge, JudgeSettings, Metric};

/// What, besides minimum time and canary requests, a step needs to pass.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Promote {
    /// Nothing: the absence of evidence against the canary is enough (the default, and what a state file
    /// written before this setting existed means).
    #[default]
    Time,
    /// Evidence that every judged metric is within its tolerance (within-e-value ≥ 1/`beta`): the
    /// probability of ever promoting a step of a canary worse than the tolerance is ≤ `beta`.
    Evidence { beta: f64 },
}

impl Promote {
    /// β, under `Evidence`.
    pub fn beta(&self) -> Option<f64> {
        match self {
            Promote::Time => None,
            Promote::Evidence { beta } => Some(*beta),
        }
    }
}

/// The plan's step schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepSettings {
    /// Canary percentages, strictly ascending, each in (0, 100], the last 100 (promotion).
    pub steps: Vec<f64>,
    /// Minimum time on each step before it may pass, seconds.
    pub min_secs: f64,
    /// Minimum canary requests on each step before it may pass.
    pub min_requests: u64,
    /// What else a step needs to pass (time alone by default).
    #[serde(default)]
    pub promote: Promote,
}

impl StepSettings {
    /// Steps non-empty, finite, strictly ascending in (0, 100], the last exactly 100; `min_secs` finite ≥ 0.
    /// The stepper itself never panics on settings that fail this (it reads a missing step as 100), but a
    /// plan that fails it is refused before a rollout starts.
    pub fn validate(&self) -> Result<(), String> {
        let Some(&last) = self.steps.last() else {
            return Err("a rollout needs at least one step (the last is 100)".into());
        };
        for (i, &w) in self.steps.iter().enumerate() {
            if !(w > 0.0 && w <= 100.0) {
                return Err(format!("step {} is {w}%: each step must be in (0, 100]", i + 1));
            }
        }
        for pair in self.steps.windows(2) {
            if let [a, b] = pair {
                if b <= a {
                    return Err(format!("steps must be strictly ascending: {a}% then {b}%"));
                }
            }
        }
        if last != 100.0 {
            return Err(format!("the last step must be 100% (promotion), got {last}%"));
        }
        if !(self.min_secs.is_finite() && self.min_secs >= 0.0) {
            return Err(format!(
                "minimum time per step must be a non-negative number of seconds, got {}",
                self.min_secs
            ));
        }
        if let Promote::Evidence { beta } = self.promote {
            if !(beta > 0.0 && beta < 1.0) {
                return Err(format!("promotion's beta must be between 0 and 1 (exclusive), got {beta}"));
            }
        }
        Ok(())
    }
}

/// What the controller must do after a reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// Stay on this step (not enough time, canary requests or, under `promote: evidence`, evidence yet).
    Wait,
    /// The step passed: push `to` percent (already the stepper's current weight).
    Advance { from: f64, to: f64 },
    /// The last judged step passed: push 100 % and stop (exit 0).
    Promote,
    /// The evidence against the canary crossed 1/α: push 0 % and stop (exit 1).
    Rollback { metric: Metric },
}

/// Progress of the current step, for the live view.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepProgress {
    pub index: usize,
    pub weight: f64,
    pub elapsed_secs: f64,
    pub min_secs: f64,
    pub canary_requests: u64,
    pub min_requests: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stepper {
    settings: StepSettings,
    judge: Judge,
    /// Index into `settings.steps` of the step in force.
    index: usize,
    /// When the step in force started (the caller's clock).
    step_started: f64,
    /// Canary requests seen on the step in force.
    step_canary_requests: u64,
    /// Promote or Rollback once decided: the stepper is then finished and repeats it.
    done: Option<Decision>,
}

impl Stepper {
    /// Starts on `steps[0]` at time `now` (seconds, on whatever clock the caller keeps).
    pub fn new(settings: StepSettings, judge: JudgeSettings, now: f64) -> Stepper {
        // A clock that is not a number starts at 0: the state must stay JSON (which has no NaN).
        let step_started = if now.is_finite() { now } else { 0.0 };
        Stepper { settings, judge: Judge::new(judge), index: 0, step_started, step_canary_requests: 0, done: None }
    }

    /// The canary percentage in force: 0 after a rollback, 100 after promotion.
    pub fn weight(&self) -> f64 {
        match self.done {
            Some(Decision::Rollback { .. }) => 0.0,
            Some(Decision::Promote) => 100.0,
            _ => self.step_weight(self.index),
        }
    }

    pub fn step_index(&self) -> usize {
        self.index
    }

    pub fn settings(&self) -> &StepSettings {
        &self.settings
    }

    pub fn judge(&self) -> &Judge {
        &self.judge
    }

    /// The judge's evidence, with the within-evidence when the plan promotes on it.
    pub fn evidence(&self) -> Vec<Evidence> {
        self.judge.evidence_with(self.settings.promote.beta())
    }

    /// Promote or Rollback, once decided.
    pub fn finished(&self) -> Option<&Decision> {
        self.done.as_ref()
    }

    pub fn progress(&self, now: f64) -> StepProgress {
        StepProgress {
            index: self.index,
            weight: self.weight(),
            elapsed_secs: self.elapsed(now),
            min_secs: self.settings.min_secs,
            canary_requests: self.step_canary_requests,
            min_requests: self.settings.min_requests,
        }
    }

    /// One reading: the events since the previous one, at time `now`.
    pub fn observe(&mut self, now: f64, delta: &Counts) -> Decision {
        if let Some(done) = &self.done {
            return done.clone();
        }
        self.judge.observe(delta);
        if let Some(metric) = self.judge.regressed() {
            let decision = Decision::Rollback { metric };
            self.done = Some(decision.clone());
            return decision;
        }
        self.step_canary_requests = self.step_canary_requests.saturating_add(delta.canary.requests);
        if !now.is_finite() {
            // No usable time: the evidence counted, the step cannot be timed.
            return Decision::Wait;
        }
        // `!(a >= b)` rather than `a < b`: a NaN minimum time or clock waits instead of passing.
        let waited = self.elapsed(now) >= self.settings.min_secs;
        if !waited || self.step_canary_requests < self.settings.min_requests {
            return Decision::Wait;
        }
        if let Promote::Evidence { beta } = self.settings.promote {
            if !self.judge.within_tolerance(beta) {
                return Decision::Wait;
            }
        }
        let from = self.step_weight(self.index);
        let next = self.index + 1;
        // The last step (100 %) is promotion, never judged itself: reaching it is the end.
        if next + 1 >= self.settings.steps.len() {
            self.done = Some(Decision::Promote);
            return Decision::Promote;
        }
        self.index = next;
        self.step_started = now;
        self.step_canary_requests = 0;
        Decision::Advance { from, to: self.step_weight(next) }
    }

    fn step_weight(&self, index: usize) -> f64 {
        self.settings.steps.get(index).copied().unwrap_or(100.0)
    }

    /// Time on the step in force; 0 if the clock went backwards or is not a number.
    fn elapsed(&self, now: f64) -> f64 {
        let elapsed = now - self.step_started;
        if elapsed > 0.0 {
            elapsed
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counts::ArmCounts;

    fn settings() -> StepSettings {
        StepSettings {
            steps: vec![1.0, 5.0, 20.0, 50.0, 100.0],
            min_secs: 60.0,
            min_requests: 100,
            promote: Promote::Time,
        }
    }

    fn reading(canary: u64, canary_errors: u64, baseline: u64, baseline_errors: u64) -> Counts {
        Counts {
            canary: ArmCounts { requests: canary, errors: canary_errors, slow: 0 },
            baseline: ArmCounts { requests: baseline, errors: baseline_errors, slow: 0 },
        }
    }

    #[test]
    fn starts_on_the_first_step() {
        let s = Stepper::new(settings(), JudgeSettings::default(), 1000.0);
        assert_eq!((s.weight(), s.step_index()), (1.0, 0));
        let p = s.progress(1030.0);
        assert_eq!((p.elapsed_secs, p.canary_requests, p.min_requests, p.min_secs), (30.0, 0, 100, 60.0));
    }

    #[test]
    fn waits_for_time_then_for_requests() {
        let mut s = Stepper::new(settings(), JudgeSettings::default(), 0.0);
        // Enough requests, not enough time.
        assert_eq!(s.observe(30.0, &reading(150, 0, 150, 0)), Decision::Wait);
        // Enough time now, requests counted over the whole step.
        assert_eq!(s.observe(60.0, &reading(0, 0, 10, 0)), Decision::Advance { from: 1.0, to: 5.0 });
        assert_eq!(s.weight(), 5.0);
        // A new step starts its clock and count afresh: lots of time, few requests is Wait, never failure.
        assert_eq!(s.observe(1000.0, &reading(99, 0, 900, 0)), Decision::Wait);
        assert_eq!(s.progress(1000.0).canary_requests, 99);
        assert_eq!(s.observe(1010.0, &reading(1, 0, 9, 0)), Decision::Advance { from: 5.0, to: 20.0 });
    }

    #[test]
    fn promotes_when_the_next_step_is_the_last() {
        let mut s = Stepper::new(settings(), JudgeSettings::default(), 0.0);
        let mut t = 0.0;
        let mut decisions = Vec::new();
        for _ in 0..4 {
            t += 60.0;
            decisions.push(s.observe(t, &reading(100, 0, 100, 0)));
        }
        assert_eq!(decisions.last(), Some(&Decision::Promote));
        assert_eq!(s.weight(), 100.0);
        assert_eq!(s.finished(), Some(&Decision::Promote));
        // Finished: repeats its decision and ignores further evidence.
        assert_eq!(s.observe(t + 60.0, &reading(100, 100, 100, 0)), Decision::Promote);
    }

    #[test]
    fn single_step_plan_promotes() {
        let plan = StepSettings { steps: vec![100.0], min_secs: 0.0, min_requests: 0, promote: Promote::Time };
        let mut s = Stepper::new(plan, JudgeSettings::default(), 0.0);
        assert_eq!(s.observe(0.0, &Counts::default()), Decision::Promote);
    }

    #[test]
    fn rollback_wins_over_a_passing_step() {
        let mut s = Stepper::new(settings(), JudgeSettings::default(), 0.0);
        // Time and requests both suffice, but 50 canary errors against none is decisive.
        let d = s.observe(60.0, &reading(100, 50, 10_000, 0));
        assert_eq!(d, Decision::Rollback { metric: Metric::Errors });
        assert_eq!(s.weight(), 0.0);
        assert_eq!(s.observe(120.0, &reading(100, 0, 100, 0)), d);
    }

    #[test]
    fn clock_going_backwards_or_nan_waits() {
        let mut s = Stepper::new(settings(), JudgeSettings::default(), 100.0);
        assert_eq!(s.observe(50.0, &reading(500, 0, 500, 0)), Decision::Wait);
        assert_eq!(s.observe(f64::NAN, &reading(500, 0, 500, 0)), Decision::Wait);
        let zero = StepSettings { min_secs: 0.0, ..settings() };
        let mut z = Stepper::new(zero, JudgeSettings::default(), f64::NAN);
        assert_eq!(z.observe(f64::NAN, &reading(500, 0, 500, 0)), Decision::Wait);
        assert!(serde_json::from_str::<Stepper>(&serde_json::to_string(&z).unwrap()).is_ok());
        let nan_plan = StepSettings { min_secs: f64::NAN, ..settings() };
        let mut n = Stepper::new(nan_plan, JudgeSettings::default(), 0.0);
        assert_eq!(n.observe(1e9, &reading(500, 0, 500, 0)), Decision::Wait);
    }

    /// Ratio 1.5 on errors, β = 0.05: a step passes once time, requests *and* within-evidence ≥ 20 are in.
    fn evidence_stepper() -> Stepper {
        let judge = JudgeSettings { errors: crate::judge::Tolerance { points: 0.0, ratio: 1.5 }, ..Default::default() };
        Stepper::new(StepSettings { promote: Promote::Evidence { beta: 0.05 }, ..settings() }, judge, 0.0)
    }

    #[test]
    fn evidence_mode_waits_for_evidence_then_passes() {
        let mut s = evidence_stepper();
        // Time and requests suffice but no events yet: no evidence (ratio only), so wait.
        assert_eq!(s.observe(60.0, &reading(200, 0, 200, 0)), Decision::Wait);
        assert_eq!(s.evidence()[0].within_e_value, Some(1.0));
        assert_eq!(s.evidence()[0].within_threshold, Some(20.0));
        // Equal error rates, many events: the canary is shown within ratio 1.5 and the step passes.
        let mut t = 60.0;
        let mut decision = Decision::Wait;
        for _ in 0..50 {
            t += 10.0;
            decision = s.observe(t, &reading(500, 10, 500, 10));
            if decision != Decision::Wait {
                break;
            }
        }
        assert_eq!(decision, Decision::Advance { from: 1.0, to: 5.0 });
        assert!(s.evidence()[0].within_e_value.unwrap() >= 20.0);
        // The same data under `promote: time` passed at the first reading.
        let mut time = Stepper::new(settings(), *s.judge().settings(), 0.0);
        assert_eq!(time.observe(60.0, &reading(200, 0, 200, 0)), Decision::Advance { from: 1.0, to: 5.0 });
        assert_eq!(time.evidence()[0].within_e_value, None);
    }

    #[test]
    fn evidence_mode_still_waits_for_time_and_requests_and_rollback_wins() {
        let mut s = evidence_stepper();
        // Overwhelming within-evidence in 30 s: not enough time yet.
        assert_eq!(s.observe(30.0, &reading(50, 0, 1000, 500)), Decision::Wait);
        assert!(s.judge().within_tolerance(0.05));
        // Enough time, too few canary requests (50 + 40 < 100): wait, never fail.
        assert_eq!(s.observe(60.0, &reading(40, 0, 100, 1)), Decision::Wait);
        assert_eq!(s.observe(70.0, &reading(10, 0, 100, 1)), Decision::Advance { from: 1.0, to: 5.0 });
        // A canary that turns bad loses its within-evidence, waits, and is then rolled back.
        let mut t = 70.0;
        let mut decisions = Vec::new();
        for _ in 0..30 {
            t += 60.0;
            let d = s.observe(t, &reading(1000, 100, 1000, 10));
            decisions.push(d.clone());
            if matches!(d, Decision::Rollback { .. }) {
                break;
            }
        }
        assert_eq!(decisions.last(), Some(&Decision::Rollback { metric: Metric::Errors }));
        assert!(decisions.iter().all(|d| matches!(d, Decision::Wait | Decision::Rollback { .. })), "{decisions:?}");
    }

    #[test]
    fn old_step_settings_load_as_time() {
        let old = r#"{"steps":[1.0,100.0],"min_secs":60.0,"min_requests":100}"#;
        let s: StepSettings = serde_json::from_str(old).unwrap();
        assert_eq!(s.promote, Promote::Time);
        let evidence = StepSettings { promote: Promote::Evidence { beta: 0.05 }, ..s };
        let text = serde_json::to_string(&evidence).unwrap();
        assert!(text.contains(r#""promote":{"evidence":{"beta":0.05}}"#), "{text}");
        assert_eq!(serde_json::from_str::<StepSettings>(&text).unwrap(), evidence);
    }

    #[test]
    fn validation() {
        assert!(settings().validate().is_ok());
        let bad = [
            vec![],
            vec![5.0, 1.0, 100.0],
            vec![1.0, 1.0, 100.0],
            vec![0.0, 100.0],
            vec![1.0, 50.0],
            vec![1.0, f64::NAN, 100.0],
            vec![1.0, 150.0],
        ];
        for steps in bad {
            let plan = StepSettings { steps: steps.clone(), ..settings() };
            assert!(plan.validate().is_err(), "{steps:?}");
            // Invalid plans never panic the machine.
            let mut s = Stepper::new(plan, JudgeSettings::default(), 0.0);
            let _ = s.observe(100.0, &reading(500, 0, 500, 0));
            let _ = s.weight();
        }
        assert!(StepSettings { min_secs: -1.0, ..settings() }.validate().is_err());
        for beta in [0.0, 1.0, f64::NAN, -0.1] {
            let plan = StepSettings { promote: Promote::Evidence { beta }, ..settings() };
            assert!(plan.validate().is_err(), "{beta}");
            // An unusable β never passes a step (and never panics).
            let mut s = Stepper::new(plan, JudgeSettings::default(), 0.0);
            assert_eq!(s.observe(100.0, &reading(500, 0, 500, 0)), Decision::Wait);
        }
        assert!(StepSettings { promote: Promote::Evidence { beta: 0.05 }, ..settings() }.validate().is_ok());
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut s = Stepper::new(settings(), JudgeSettings::default(), 0.0);
        let _ = s.observe(60.0, &reading(100, 1, 100, 2));
        let back: Stepper = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!((back.weight(), back.step_index(), back.progress(70.0)), (s.weight(), 1, s.progress(70.0)));
    }
}
