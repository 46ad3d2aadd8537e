//! `canaryc rollout status|pause|resume|abort PLAN`: acting on a rollout's saved state, whether or not its
//! controller is running. Pause and resume only set a flag the controller reads each interval. Abort sets
//! the split to 0 % with one push: itself when no controller runs, else by asking the running controller
//! (which holds the run lock, so the policy has one writer) and waiting for it to report `aborted`.

use crate::clock::Clock;
use crate::controller::{snapshot_of, Outcome};
use crate::events::{Event, Output};
use crate::ops::PolicyOps;
use crate::plan::Plan;
use crate::state::{Finish, Phase, Shown, State, StateFile};
use crate::transition::Pusher;

fn file_of(plan: &Plan) -> StateFile {
    StateFile::new(&plan.state)
}

fn started(plan: &Plan) -> Result<State, String> {
    let file = file_of(plan);
    let state = file.load()?.ok_or_else(|| {
        format!("no rollout of {} has started (no state file {})", plan.file.display(), file.path.display())
    })?;
    if state.plan_digest != plan.digest {
        return Err(format!("{}: belongs to another version of {}", file.path.display(), plan.file.display()));
    }
    Ok(state)
}

/// How the rollout ended, if it has (running a finished rollout again only reports this; no metrics needed).
pub fn outcome(plan: &Plan) -> Result<Option<(Outcome, Shown)>, String> {
    let Some(state) = file_of(plan).load()? else { return Ok(None) };
    if state.plan_digest != plan.digest {
        return Ok(None); // the controller refuses it with the full explanation
    }
    Ok(Outcome::of(&state).map(|o| (o, state.shown())))
}

/// `status`: the saved state, rendered.
pub fn status(plan: &Plan, now: f64) -> Result<String, String> {
    let state = started(plan)?;
    Ok(crate::view::status(plan, &state, &snapshot_of(plan, &state, now)))
}

/// `pause` (`true`) or `resume` (`false`); returns what to tell the operator.
pub fn set_paused(plan: &Plan, paused: bool) -> Result<String, String> {
    let state = started(plan)?;
    if state.finished() {
        return Err(format!("the rollout has already finished ({})", state.shown().name()));
    }
    file_of(plan).update(|s| s.paused = paused)?;
    Ok(if paused {
        format!(
            "paused at {}%: the rollout keeps judging (a regression still rolls back) but will not advance",
            state.percent
        )
    } else {
        format!("resumed at {}%", state.percent)
    })
}

/// `abort`: the canary to 0 % with one push; the rollout ends `aborted`. Waits for a running controller
/// to do it for at most `wait_secs`.
pub fn abort(
    plan: &Plan,
    ops: &dyn PolicyOps,
    out: &mut dyn Output,
    clock: &mut dyn Clock,
    wait_secs: f64,
) -> Result<Outcome, String> {
    let state = started(plan)?;
    let file = file_of(plan);
    if let Some(outcome) = Outcome::of(&state) {
        out.emit(&Event::Finished { state: state.shown() });
        return Ok(outcome);
    }
    let Some(_run_lock) = file.try_run_lock()? else {
        file.update(|s| s.abort_requested = true)?;
        out.emit(&Event::Note { message: "a controller is running this rollout: asked it to abort".into() });
        let deadline = clock.now() + wait_secs;
        while clock.now() < deadline {
            clock.sleep(0.2);
            if let Some(s) = file.load()? {
                if s.phase == Phase::Aborted {
                    out.emit(&Event::Aborted);
                    return Ok(Outcome::Aborted);
                }
            }
        }
        return Err(format!(
            "the running controller has not aborted within {wait_secs}s; it will at its next interval (the request is \
             saved in {})",
            file.path.display()
        ));
    };
    let mut state = state;
    out.emit(&Event::Aborted);
    let now = clock.now();
    Pusher { plan, ops, out, file: Some(&file) }.push_percent(&mut state, 0.0, Finish::Aborted, now)?;
    Ok(Outcome::Aborted)
}
