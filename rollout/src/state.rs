//! The rollout's state file: JSON, replaced atomically after every transition, so a controller killed at
//! any point and run again continues where it was.
//!
//! **Pushes across a crash.** Before a step is pushed the state says `pushing` with the target percent, the
//! digest of the policy text to push and how many `push` entries are done; each finished entry bumps
//! `done`, and `running` is written after the last. A restarted controller in `pushing` rewrites the policy
//! only if the file on disk does not already hold the target text, and runs only the entries not yet
//! recorded as done. So an entry that completed is never run again; the one entry that was in flight when
//! the process died is run again (at least once, never lost). For `-o FILE` pushes (ECDS, RDS) that repeat
//! writes the same bytes, which Envoy ignores; a `command` is run twice in that case, which is harmless for
//! declarative commands (`kubectl apply`) and is not guaranteed to be for anything else.
//!
//! **Counts across a restart.** A metrics source's counts are cumulative since *that source* was created,
//! so a restarted controller's new source cannot continue an old reading. The first reading after a start
//! is taken as the new baseline and the events of the gap are not judged: evidence is lost for the gap,
//! never counted twice. `last_counts` is kept for `status` and for the record, not reused.
//!
//! **Who writes.** The controller holds `STATE.run.lock` while it runs (one controller per state file);
//! every read-modify-write of the state, by the controller or by `pause`/`resume`/`abort`, happens under
//! `STATE.lock`, and the controller takes `paused`/`abort_requested` from the file rather than from memory,
//! so an operator's flag is never overwritten.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::counts::Counts;
use crate::judge::{Evidence, Metric};
use crate::stepper::Stepper;
use canary_durable::{write_atomic, Lock};

/// The state file's format version.
pub const VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// SHA-256 of the plan's text this state belongs to.
    pub plan_digest: String,
    /// The plan's service (the `rollout` label of the exposition).
    pub service: String,
    pub phase: Phase,
    /// Set by `canaryc rollout pause`: keep judging, never advance.
    #[serde(default)]
    pub paused: bool,
    /// Set by `canaryc rollout abort` while a controller runs: it pushes 0 % and stops.
    #[serde(default)]
    pub abort_requested: bool,
    /// Index into the plan's steps of the percentage in force.
    pub step_index: usize,
    /// The canary percentage in force (the last one pushed).
    pub percent: f64,
    pub stepper: Stepper,
    /// Events read while paused whose observation would have advanced: they are handed to the stepper once
    /// it may advance again, so none are dropped (see the controller).
    #[serde(default)]
    pub held: Counts,
    /// Events judged since the rollout began, per arm.
    #[serde(default)]
    pub totals: Counts,
    /// The source's last cumulative reading in this process (not reused after a restart: see above).
    #[serde(default)]
    pub last_counts: Option<Counts>,
    /// The judge's evidence at the last reading.
    #[serde(default)]
    pub evidence: Vec<Evidence>,
    /// Unix seconds.
    pub started_at: f64,
    pub step_started_at: f64,
    pub updated_at: f64,
    /// The metric that rolled the canary back, once it did.
    #[serde(default)]
    pub regressed: Option<Metric>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Phase {
    /// A push of `target` percent is under way.
    Pushing {
        target: f64,
        /// SHA-256 of the policy text being pushed.
        digest: String,
        /// How many of the plan's `push` entries have completed.
        done: usize,
        /// Where the rollout is once this push completes.
        then: Finish,
    },
    Running,
    Promoted,
    RolledBack,
    Aborted,
}

/// The phase a push leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    Running,
    Promoted,
    RolledBack,
    Aborted,
}

impl Finish {
    pub fn phase(self) -> Phase {
        match self {
            Finish::Running => Phase::Running,
            Finish::Promoted => Phase::Promoted,
            Finish::RolledBack => Phase::RolledBack,
            Finish::Aborted => Phase::Aborted,
        }
    }
}

/// The name a state goes by in `status` and the exposition's `canary_rollout_state{state}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shown {
    Running,
    Paused,
    Promoted,
    RolledBack,
    Aborted,
}

impl Shown {
    pub const ALL: [Shown; 5] = [Shown::Running, Shown::Paused, Shown::Promoted, Shown::RolledBack, Shown::Aborted];

    pub fn name(self) -> &'static str {
        match self {
            Shown::Running => "running",
            Shown::Paused => "paused",
            Shown::Promoted => "promoted",
            Shown::RolledBack => "rolled_back",
            Shown::Aborted => "aborted",
        }
    }
}

impl State {
    /// Finished: promoted, rolled back or aborted (running it again only reports the outcome).
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Promoted | Phase::RolledBack | Phase::Aborted)
    }

    pub fn shown(&self) -> Shown {
        match &self.phase {
            Phase::Promoted => Shown::Promoted,
            Phase::RolledBack => Shown::RolledBack,
            Phase::Aborted => Shown::Aborted,
            Phase::Pushing { then: Finish::Promoted, .. } => Shown::Promoted,
            Phase::Pushing { then: Finish::RolledBack, .. } => Shown::RolledBack,
            Phase::Pushing { then: Finish::Aborted, .. } => Shown::Aborted,
            _ if self.paused => Shown::Paused,
            _ => Shown::Running,
        }
    }
}

/// The state file of a plan and its two locks.
#[derive(Clone, Debug)]
pub struct StateFile {
    pub path: PathBuf,
}

impl StateFile {
    pub fn new(path: &Path) -> StateFile {
        StateFile { path: path.to_path_buf() }
    }

    fn sibling(&self, suffix: &str) -> PathBuf {
        let mut name = self.path.file_name().map_or_else(Default::default, ToOwned::to_owned);
        name.push(suffix);
        self.path.with_file_name(name)
    }

    /// The lock a running controller holds for its whole run; `None` when another controller holds it.
    pub fn try_run_lock(&self) -> Result<Option<Lock>, String> {
        let path = self.sibling(".run.lock");
        Lock::try_acquire(&path).map_err(|e| format!("{}: cannot lock: {e}", path.display()))
    }

    /// The short lock around every read-modify-write.
    pub fn write_lock(&self) -> Result<Lock, String> {
        let path = self.sibling(".lock");
        Lock::acquire(&path).map_err(|e| format!("{}: cannot lock: {e}", path.display()))
    }

    /// The state, or `None` when the rollout has not started.
    pub fn load(&self) -> Result<Option<State>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: cannot read the rollout state: {e}", self.path.display())),
        };
        let state: State = serde_json::from_str(&text).map_err(|e| {
            format!("{}: not a rollout state file ({e}); move it away to start over", self.path.display())
        })?;
        if state.version != VERSION {
            return Err(format!(
                "{}: state format {} (this canaryc writes {VERSION}); finish the rollout with the canaryc that began it",
                self.path.display(),
                state.version
            ));
        }
        Ok(Some(state))
    }

    /// Writes `state` atomically (callers hold [`StateFile::write_lock`] when others may write too).
    pub fn save(&self, state: &State) -> Result<(), String> {
        let mut json = serde_json::to_string_pretty(state).map_err(|e| format!("cannot encode the state: {e}"))?;
        json.push('\n');
        write_atomic(&self.path, json.as_bytes()).map_err(|e| format!("{}: cannot write: {e}", self.path.display()))
    }

    /// Applies `change` to the state on disk under the write lock; `Ok(None)` when there is no state.
    pub fn update(&self, change: impl FnOnce(&mut State)) -> Result<Option<State>, String> {
        let _lock = self.write_lock()?;
        let Some(mut state) = self.load()? else { return Ok(None) };
        change(&mut state);
        self.save(&state)?;
        Ok(Some(state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::{JudgeSettings, Tolerance};
    use crate::stepper::{Promote, StepSettings};

    fn state() -> State {
        let steps =
            StepSettings { steps: vec![10.0, 100.0], min_secs: 60.0, min_requests: 100, promote: Promote::Time };
        let judge = JudgeSettings { alpha: 0.01, errors: Tolerance { points: 0.5, ratio: 1.0 }, latency: None };
        State {
            version: VERSION,
            plan_digest: "d".into(),
            service: "forecast".into(),
            phase: Phase::Pushing { target: 10.0, digest: "p".into(), done: 1, then: Finish::Running },
            paused: false,
            abort_requested: false,
            step_index: 0,
            percent: 0.0,
            stepper: Stepper::new(steps, judge, 5.0),
            held: Counts::default(),
            totals: Counts::default(),
            last_counts: None,
            evidence: Vec::new(),
            started_at: 5.0,
            step_started_at: 5.0,
            updated_at: 5.0,
            regressed: None,
        }
    }

    #[test]
    fn round_trips_and_names_the_pushing_phase() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("s.json"));
        assert_eq!(file.load(), Ok(None));
        file.save(&state()).unwrap();
        assert_eq!(file.load().unwrap(), Some(state()));
        let json = std::fs::read_to_string(&file.path).unwrap();
        assert!(json.contains(r#""name": "pushing""#) && json.contains(r#""then": "running""#), "{json}");
    }

    #[test]
    fn update_keeps_everything_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("s.json"));
        assert_eq!(file.update(|s| s.paused = true), Ok(None));
        file.save(&state()).unwrap();
        let updated = file.update(|s| s.paused = true).unwrap().unwrap();
        assert_eq!(updated, State { paused: true, ..state() });
        assert_eq!(file.load().unwrap(), Some(updated));
    }

    #[test]
    fn refuses_other_formats() {
        let dir = tempfile::tempdir().unwrap();
        let file = StateFile::new(&dir.path().join("s.json"));
        std::fs::write(&file.path, "{}").unwrap();
        assert!(file.load().unwrap_err().contains("not a rollout state file"));
        file.save(&State { version: 99, ..state() }).unwrap();
        assert!(file.load().unwrap_err().contains("state format 99"));
    }

    #[test]
    fn shown_states() {
        let mut s = state();
        assert_eq!(s.shown(), Shown::Running);
        s.phase = Phase::Pushing { target: 0.0, digest: String::new(), done: 0, then: Finish::RolledBack };
        assert_eq!(s.shown(), Shown::RolledBack);
        s.phase = Phase::Running;
        s.paused = true;
        assert_eq!(s.shown(), Shown::Paused);
        s.phase = Phase::Aborted;
        assert_eq!(s.shown(), Shown::Aborted);
        assert!(s.finished());
    }
}
