//! The rollout loop (`canaryc rollout PLAN`): every `interval`, read the metrics source, hand the events
//! since the previous reading to the [`Stepper`], and carry out its decision — push the next step, promote
//! (100 %), or roll back (0 %, exit 1). State is saved after every transition (see [`crate::state`] for
//! what survives a crash). A failed read is a note and a retry at the next interval, never a verdict.
//!
//! **Pause.** A paused rollout keeps judging but never advances. The stepper has no pause of its own, so
//! each reading is first observed by a copy of it: a `Wait` or `Rollback` is accepted (a regression still
//! rolls back while paused); an `Advance`/`Promote` is discarded and its events are *held* (saved in the
//! state) and handed over again with the next reading, so the judge sees every event exactly once, and
//! the step passes at the first reading after `resume`.

use crate::clock::Clock;
use crate::counts::Counts;
use crate::events::{Event, Output, Snapshot};
use crate::metrics::MetricsSource;
use crate::ops::PolicyOps;
use crate::plan::Plan;
use crate::state::{Finish, Phase, State, StateFile, VERSION};
use crate::stepper::{Decision, Stepper};
use crate::transition::Pusher;

/// How a rollout ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Promoted,
    RolledBack,
    Aborted,
}

impl Outcome {
    /// The CLI's exit code: 0 promoted, 1 rolled back or aborted.
    pub fn exit_code(self) -> i32 {
        match self {
            Outcome::Promoted => 0,
            Outcome::RolledBack | Outcome::Aborted => 1,
        }
    }

    /// The outcome a finished state records.
    pub fn of(state: &State) -> Option<Outcome> {
        match state.phase {
            Phase::Promoted => Some(Outcome::Promoted),
            Phase::RolledBack => Some(Outcome::RolledBack),
            Phase::Aborted => Some(Outcome::Aborted),
            _ => None,
        }
    }
}

/// One rollout run.
pub struct Controller<'a> {
    pub plan: &'a Plan,
    pub ops: &'a dyn PolicyOps,
    pub source: &'a mut dyn MetricsSource,
    pub clock: &'a mut dyn Clock,
    pub out: &'a mut dyn Output,
    /// Judge and print what would be pushed; never write the policy, push or write the state file (a saved
    /// state, if any, is the starting point, read only).
    pub dry_run: bool,
}

impl Controller<'_> {
    /// Runs the rollout to its end (or reports the end of one that finished before).
    pub fn run(&mut self) -> Result<Outcome, String> {
        let file = StateFile::new(&self.plan.state);
        let _run_lock = if self.dry_run {
            None
        } else {
            let lock = file.try_run_lock()?.ok_or_else(|| {
                format!("another `canaryc rollout` is running this plan (it holds {}.run.lock)", file.path.display())
            })?;
            Some(lock)
        };
        let loaded = file.load()?;
        if let Some(state) = &loaded {
            if state.plan_digest != self.plan.digest {
                return Err(format!(
                    "{}: the rollout in progress was started with another version of {}; finish it with that plan, \
                     or move the state file away to start over",
                    file.path.display(),
                    self.plan.file.display()
                ));
            }
            if let Some(outcome) = Outcome::of(state) {
                self.out.emit(&Event::Finished { state: state.shown() });
                return Ok(outcome);
            }
        }
        let resumed = loaded.is_some();
        let now = self.clock.now();
        let mut state = loaded.unwrap_or_else(|| self.fresh(now));
        self.start(&state, resumed);
        let file = (!self.dry_run).then_some(&file);
        if !resumed {
            let first = self.plan.steps.steps.first().copied().unwrap_or(100.0);
            self.pusher(file).push_percent(&mut state, first, Finish::Running, now)?;
        } else {
            self.pusher(file).complete(&mut state, now)?;
        }
        self.show(&state, now, Counts::default(), Vec::new());
        let mut last = self.read_baseline();
        state.last_counts = last;
        loop {
            if let Some(outcome) = Outcome::of(&state) {
                return Ok(outcome);
            }
            self.clock.sleep(self.plan.interval_secs);
            if let Some(file) = file {
                if let Some(disk) = file.load()? {
                    state.paused = disk.paused;
                    state.abort_requested = disk.abort_requested;
                }
            }
            let now = self.clock.now();
            if state.abort_requested {
                self.out.emit(&Event::Aborted);
                self.pusher(file).push_percent(&mut state, 0.0, Finish::Aborted, now)?;
                self.show(&state, now, Counts::default(), Vec::new());
                continue;
            }
            let reading = match self.source.read() {
                Ok(r) => r,
                Err(e) => {
                    self.note(format!("metrics unavailable, retrying in {}s: {e}", self.plan.interval_secs));
                    continue;
                }
            };
            for n in &reading.notes {
                self.note(n.clone());
            }
            let Some(previous) = last.replace(reading.counts) else {
                self.note("first reading: counting from here".to_string());
                continue;
            };
            let delta = reading.counts.since(&previous);
            state.last_counts = Some(reading.counts);
            state.totals.add(&delta);
            let decision = self.observe(&mut state, now, &delta);
            let transition = decision != Decision::Wait;
            let mut snap = self.snapshot(&state, now, delta, reading.notes);
            if transition {
                snap.progress = None; // the step is over: its progress would describe the next one
            }
            self.out.emit(&Event::Reading(snap));
            match decision {
                Decision::Wait => {
                    state.updated_at = now;
                    self.pusher(file).save(&mut state)?;
                }
                Decision::Advance { from, to } => {
                    self.out.emit(&Event::Step { from, to });
                    self.pusher(file).push_percent(&mut state, to, Finish::Running, now)?;
                }
                Decision::Promote => {
                    self.out.emit(&Event::Promoted);
                    if state.percent == 100.0 {
                        // The stepper advanced to 100 % before (pushed then): promotion only records it.
                        state.phase = Phase::Promoted;
                        self.pusher(file).save(&mut state)?;
                    } else {
                        self.pusher(file).push_percent(&mut state, 100.0, Finish::Promoted, now)?;
                    }
                }
                Decision::Rollback { metric } => {
                    let ev = state.evidence.iter().find(|e| e.metric == metric);
                    let (e_value, threshold) = ev.map_or((f64::NAN, f64::NAN), |e| (e.e_value, e.threshold));
                    self.out.emit(&Event::Rollback { metric, e_value, threshold });
                    state.regressed = Some(metric);
                    self.pusher(file).push_percent(&mut state, 0.0, Finish::RolledBack, now)?;
                }
            }
            if transition {
                self.show(&state, now, delta, Vec::new());
            }
        }
    }

    /// The stepper's verdict on `delta`, honouring a pause (see the module comment).
    fn observe(&mut self, state: &mut State, now: f64, delta: &Counts) -> Decision {
        let mut pending = state.held;
        pending.add(delta);
        let mut trial = state.stepper.clone();
        let decision = trial.observe(now, &pending);
        state.evidence = trial.evidence();
        let held = state.paused && matches!(decision, Decision::Advance { .. } | Decision::Promote);
        if held {
            state.held = pending;
            self.note(format!(
                "paused: step {} passed, holding at {}% until `resume`",
                state.step_index + 1,
                state.percent
            ));
            return Decision::Wait;
        }
        state.stepper = trial;
        state.held = Counts::default();
        decision
    }

    fn fresh(&self, now: f64) -> State {
        State {
            version: VERSION,
            plan_digest: self.plan.digest.clone(),
            service: self.plan.target.service.clone(),
            phase: Phase::Running,
            paused: false,
            abort_requested: false,
            step_index: 0,
            percent: current_percent(self.plan).unwrap_or(0.0),
            stepper: Stepper::new(self.plan.steps.clone(), self.plan.judge, now),
            held: Counts::default(),
            totals: Counts::default(),
            last_counts: None,
            evidence: Vec::new(),
            started_at: now,
            step_started_at: now,
            updated_at: now,
            regressed: None,
        }
    }

    fn start(&mut self, state: &State, resumed: bool) {
        let policy = self.plan.policy.display().to_string();
        self.out.emit(&Event::Start {
            service: self.plan.target.service.clone(),
            policy: policy.clone(),
            step: state.step_index + 1,
            percent: state.percent,
            resumed,
            dry_run: self.dry_run,
        });
        let text = std::fs::read_to_string(&self.plan.policy).unwrap_or_default();
        let t = &self.plan.target;
        if let Ok(site) = crate::edit::locate(&text, &policy, t.line, &t.service, Some(&t.canary)) {
            if let Some(w) = site.sticky_warning(&policy) {
                self.note(w);
            }
        }
    }

    /// The reading the first interval's delta is taken against; `None` if the source is down (the next
    /// successful reading becomes the baseline).
    fn read_baseline(&mut self) -> Option<Counts> {
        match self.source.read() {
            Ok(r) => {
                for n in &r.notes {
                    self.note(n.clone());
                }
                Some(r.counts)
            }
            Err(e) => {
                self.note(format!("metrics unavailable, retrying in {}s: {e}", self.plan.interval_secs));
                None
            }
        }
    }

    fn pusher<'b>(&'b mut self, file: Option<&'b StateFile>) -> Pusher<'b> {
        Pusher { plan: self.plan, ops: self.ops, out: &mut *self.out, file }
    }

    fn note(&mut self, message: String) {
        self.out.emit(&Event::Note { message });
    }

    fn snapshot(&self, state: &State, now: f64, delta: Counts, notes: Vec<String>) -> Snapshot {
        let progress = matches!(state.phase, Phase::Running).then(|| state.stepper.progress(now));
        Snapshot {
            service: state.service.clone(),
            state: state.shown(),
            step_index: state.step_index,
            steps: self.plan.steps.steps.len(),
            percent: state.percent,
            progress,
            totals: state.totals,
            delta,
            interval_secs: self.plan.interval_secs,
            evidence: state.evidence.clone(),
            notes,
            elapsed_secs: (now - state.started_at).max(0.0),
        }
    }

    fn show(&mut self, state: &State, now: f64, delta: Counts, notes: Vec<String>) {
        let snap = self.snapshot(state, now, delta, notes);
        self.out.snapshot(&snap);
    }
}

/// The canary's share in the policy now (before the first step), in percent.
fn current_percent(plan: &Plan) -> Option<f64> {
    let text = std::fs::read_to_string(&plan.policy).ok()?;
    let file = plan.policy.display().to_string();
    let t = &plan.target;
    let site = crate::edit::locate(&text, &file, t.line, &t.service, Some(&t.canary)).ok()?;
    Some(f64::from(site.canary_basis_points()) / 100.0)
}

/// What a snapshot of a saved state says (for `status` and the exposition before the first reading).
pub fn snapshot_of(plan: &Plan, state: &State, now: f64) -> Snapshot {
    Snapshot {
        service: state.service.clone(),
        state: state.shown(),
        step_index: state.step_index,
        steps: plan.steps.steps.len(),
        percent: state.percent,
        progress: None,
        totals: state.totals,
        delta: Counts::default(),
        interval_secs: plan.interval_secs,
        evidence: state.evidence.clone(),
        notes: Vec::new(),
        elapsed_secs: (now - state.started_at).max(0.0),
    }
}
