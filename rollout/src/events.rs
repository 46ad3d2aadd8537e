//! What a rollout reports, as values: the controller emits [`Event`]s and [`Snapshot`]s to an [`Output`];
//! the outputs (JSON lines for CI, plain lines, the live terminal view, the `/metrics` exposition) only
//! render them. One event becomes one JSON object with `"event"` naming it (`--json`).

use std::io::Write;

use serde::Serialize;

use crate::counts::Counts;
use crate::judge::{Evidence, Metric};
use crate::state::Shown;
use crate::stepper::StepProgress;

/// Everything the live view and the exposition show, at one moment.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Snapshot {
    /// The plan's service (the exposition's `rollout` label).
    pub service: String,
    pub state: Shown,
    /// 0-based index of the step in force, and how many steps the plan has.
    pub step_index: usize,
    pub steps: usize,
    /// The canary percentage in force.
    pub percent: f64,
    /// The current step's progress toward its minimums (absent before the first reading).
    pub progress: Option<StepProgress>,
    /// Events judged since the rollout began.
    pub totals: Counts,
    /// The last interval's events and its length in seconds (rates).
    pub delta: Counts,
    pub interval_secs: f64,
    pub evidence: Vec<Evidence>,
    /// The source's notes at the last reading.
    pub notes: Vec<String>,
    /// Seconds since the rollout began.
    pub elapsed_secs: f64,
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The controller starts (or resumes) a rollout.
    Start { service: String, policy: String, step: usize, percent: f64, resumed: bool, dry_run: bool },
    /// A reading was judged.
    Reading(Snapshot),
    /// Something to know: a source note, a failed read, a held step, a warning.
    Note { message: String },
    /// `canaryc diff`'s summary of who moves with the next push.
    Diff { from: f64, to: f64, summary: String },
    /// One `push` entry ran (or would have, with `--dry-run`).
    Push { percent: f64, entry: usize, of: usize, manifest: Vec<String>, command: Option<Vec<String>>, dry_run: bool },
    /// The step passed: the canary goes from `from` to `to` percent.
    Step { from: f64, to: f64 },
    /// Every step passed: the canary has 100 %.
    Promoted,
    /// The evidence against the canary crossed 1/α: it goes to 0 %.
    Rollback { metric: Metric, e_value: f64, threshold: f64 },
    /// An operator aborted: the canary goes to 0 %.
    Aborted,
    /// The rollout had already finished; nothing was done.
    Finished { state: Shown },
}

/// Where events go.
pub trait Output {
    fn emit(&mut self, event: &Event);
    /// The state after a reading or a transition (the live view redraws, the exposition updates).
    fn snapshot(&mut self, _snapshot: &Snapshot) {}
}

/// `--json`: one object per event and line, flushed at once (CI logs read it live).
pub struct JsonLines<W: Write> {
    pub out: W,
}

impl<W: Write> Output for JsonLines<W> {
    fn emit(&mut self, event: &Event) {
        if let Ok(line) = serde_json::to_string(event) {
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
        }
    }
}

/// Several outputs at once (the terminal and the exposition).
pub struct Tee<'a> {
    pub outputs: Vec<&'a mut dyn Output>,
}

impl Output for Tee<'_> {
    fn emit(&mut self, event: &Event) {
        for o in &mut self.outputs {
            o.emit(event);
        }
    }

    fn snapshot(&mut self, snapshot: &Snapshot) {
        for o in &mut self.outputs {
            o.snapshot(snapshot);
        }
    }
}

/// Collects everything (tests, and callers that render later).
#[derive(Default, Debug)]
pub struct Recorded {
    pub events: Vec<Event>,
    pub snapshots: Vec<Snapshot>,
}

impl Output for Recorded {
    fn emit(&mut self, event: &Event) {
        self.events.push(event.clone());
    }

    fn snapshot(&mut self, snapshot: &Snapshot) {
        self.snapshots.push(snapshot.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_tagged_json_objects() {
        let mut out = JsonLines { out: Vec::new() };
        out.emit(&Event::Step { from: 1.0, to: 5.0 });
        out.emit(&Event::Rollback { metric: Metric::Errors, e_value: 120.5, threshold: 100.0 });
        out.emit(&Event::Note { message: "proxy 127.0.0.1:9902 unreachable".into() });
        let text = String::from_utf8(out.out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"{"event":"step","from":1.0,"to":5.0}"#);
        assert_eq!(lines[1], r#"{"event":"rollback","metric":"errors","e_value":120.5,"threshold":100.0}"#);
        assert_eq!(lines[2], r#"{"event":"note","message":"proxy 127.0.0.1:9902 unreachable"}"#);
    }
}
