//! Moving the canary to a new percentage: rewrite the policy, check it, say who moves, push every entry of
//! the plan, recording progress in the state file so a crash never loses a step nor repeats a finished
//! push (the guarantees are spelt out in [`crate::state`]). Used by the controller (steps, promotion,
//! rollback) and by `canaryc rollout abort`.

use sha2::{Digest, Sha256};

use crate::edit;
use crate::events::{Event, Output};
use crate::ops::PolicyOps;
use crate::plan::{hex, Plan};
use crate::state::{Finish, Phase, State, StateFile};

/// What a transition needs besides the state.
pub struct Pusher<'a> {
    pub plan: &'a Plan,
    pub ops: &'a dyn PolicyOps,
    pub out: &'a mut dyn Output,
    /// `Some`: record in this file (merging the operator's flags); `None`: a dry run, nothing is written.
    pub file: Option<&'a StateFile>,
}

impl Pusher<'_> {
    /// Sets the canary to `target` percent and pushes it; afterwards the state is `then`.
    pub fn push_percent(&mut self, state: &mut State, target: f64, then: Finish, now: f64) -> Result<(), String> {
        let policy = self.plan.policy.display().to_string();
        let old = read(&self.plan.policy)?;
        let new = self.rewrite(&old, target)?;
        let from = state.percent;
        // (Unchanged text: the first step may already be written; it is pushed all the same, so the proxies
        // hold what the state says.)
        if new != old {
            match self.ops.diff_summary(&old, &new, &self.plan.target.service) {
                Ok(summary) => self.out.emit(&Event::Diff { from, to: target, summary }),
                Err(e) => self.out.emit(&Event::Note { message: format!("{policy}: no diff summary: {e}") }),
            }
        }
        if self.file.is_none() {
            for (i, push) in self.plan.push.iter().enumerate() {
                self.out.emit(&push_event(target, i, self.plan, push, true));
            }
            finish(state, target, then, now, self.plan);
            return Ok(());
        }
        state.phase = Phase::Pushing { target, digest: digest(&new), done: 0, then };
        self.save(state)?;
        self.complete(state, now)
    }

    /// Finishes the push a `pushing` state records (after a crash, or right after [`Pusher::push_percent`]).
    pub fn complete(&mut self, state: &mut State, now: f64) -> Result<(), String> {
        let Phase::Pushing { target, digest: want, done, then } = state.phase.clone() else { return Ok(()) };
        let path = &self.plan.policy;
        let text = read(path)?;
        if digest(&text) != want {
            let new = self.rewrite(&text, target)?;
            if digest(&new) != want {
                self.out.emit(&Event::Note {
                    message: format!(
                        "{}: changed since the push began; pushing {target}% of the text on disk",
                        path.display()
                    ),
                });
                state.phase = Phase::Pushing { target, digest: digest(&new), done, then };
                self.save(state)?;
            }
            crate::files::write_atomic(path, new.as_bytes())
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        for (i, push) in self.plan.push.iter().enumerate().skip(done) {
            self.out.emit(&push_event(target, i, self.plan, push, false));
            self.ops.push(path, &push.manifest, push.command.as_deref()).map_err(|e| {
                format!(
                    "push {} of {} failed: {e}\nthe state file records the push as unfinished: run the same \
                     command again to finish it",
                    i + 1,
                    self.plan.push.len()
                )
            })?;
            if let Phase::Pushing { done, .. } = &mut state.phase {
                *done = i + 1;
            }
            self.save(state)?;
        }
        finish(state, target, then, now, self.plan);
        self.save(state)
    }

    /// `text` with the canary at `target` percent, checked by the compiler.
    fn rewrite(&self, text: &str, target: f64) -> Result<String, String> {
        let file = self.plan.policy.display().to_string();
        let bp = edit::basis_points(target)?;
        let new = edit::set_canary(text, &file, &self.plan.target, bp)?;
        self.ops.check(&self.plan.policy, &new).map_err(|e| format!("the policy at {target}% does not check:\n{e}"))?;
        Ok(new)
    }

    /// Saves under the write lock, taking the operator's flags from the file (never overwriting them).
    pub fn save(&self, state: &mut State) -> Result<(), String> {
        let Some(file) = self.file else { return Ok(()) };
        let _lock = file.write_lock()?;
        if let Some(disk) = file.load()? {
            state.paused = disk.paused;
            state.abort_requested = disk.abort_requested;
        }
        file.save(state)
    }
}

fn finish(state: &mut State, target: f64, then: Finish, now: f64, plan: &Plan) {
    if let Some(i) = plan.steps.steps.iter().position(|s| *s == target) {
        state.step_index = i;
    }
    if state.percent != target {
        state.step_started_at = now;
    }
    state.percent = target;
    state.phase = then.phase();
    state.updated_at = now;
}

fn push_event(percent: f64, i: usize, plan: &Plan, push: &crate::plan::Push, dry_run: bool) -> Event {
    Event::Push {
        percent,
        entry: i + 1,
        of: plan.push.len(),
        manifest: push.manifest.clone(),
        command: push.command.clone(),
        dry_run,
    }
}

fn read(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
}

/// SHA-256 of a policy text, hex.
pub fn digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}
