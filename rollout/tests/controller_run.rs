//! The controller in simulated time with a scripted metrics source and a push-counting `PolicyOps`: what it
//! pushes (by the canary percentage in the pushed policy), how often, and how it ends — promotion, rollback,
//! pause, abort, and a kill in the middle of a push followed by a restart. These run the real `Stepper` and
//! judge: a canary no worse than the baseline (0 errors in both arms) must be promoted, one with half its
//! requests failing must be rolled back.

mod controller_support;

use canary_rollout::clock::ManualClock;
use canary_rollout::control;
use canary_rollout::controller::{Controller, Outcome};
use canary_rollout::events::{Event, Recorded};
use canary_rollout::state::{Phase, StateFile};
use controller_support::{Ops, Scratch, Script};

fn run(s: &Scratch, ops: &Ops, source: &mut Script, dry_run: bool) -> (Result<Outcome, String>, Recorded) {
    let mut clock = ManualClock { now: 1_000_000.0 };
    let mut out = Recorded::default();
    let result = Controller { plan: &s.plan, ops, source, clock: &mut clock, out: &mut out, dry_run }.run();
    (result, out)
}

fn state(s: &Scratch) -> canary_rollout::state::State {
    StateFile::new(&s.state_path()).load().unwrap().unwrap()
}

#[test]
fn a_healthy_canary_is_promoted_with_one_push_per_step() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    let ops = Ops::new();
    let (result, out) = run(&s, &ops, &mut Script::new(0, 0), false);
    assert_eq!(result, Ok(Outcome::Promoted));
    assert_eq!(ops.percents(), vec![10.0, 50.0, 100.0]);
    assert_eq!(s.policy_percent(), 100.0);
    // Only the percentage token changed.
    assert_eq!(s.policy_text(), controller_support::POLICY.replace("10% v2", "100% v2"));
    assert!(out.events.iter().any(|e| matches!(e, Event::Step { from, to } if *from == 10.0 && *to == 50.0)));
    assert!(out.events.iter().any(|e| matches!(e, Event::Promoted)));
    assert!(out.events.iter().any(|e| matches!(e, Event::Diff { .. })));
    assert_eq!(state(&s).phase, Phase::Promoted);

    // Run again: it says so, pushes nothing, and exits as it ended.
    let (again, out) = run(&s, &ops, &mut Script::new(0, 0), false);
    assert_eq!(again, Ok(Outcome::Promoted));
    assert_eq!(ops.percents().len(), 3);
    assert!(matches!(out.events.as_slice(), [Event::Finished { .. }]));
}

#[test]
fn a_failing_canary_is_rolled_back_with_one_push_of_zero() {
    let s = Scratch::new("[10, 50, 100]", "1h", "");
    let ops = Ops::new();
    let (result, out) = run(&s, &ops, &mut Script::new(0, 250), false);
    assert_eq!(result, Ok(Outcome::RolledBack));
    assert_eq!(ops.percents(), vec![10.0, 0.0]);
    assert_eq!(s.policy_percent(), 0.0);
    assert!(out.events.iter().any(|e| matches!(e, Event::Rollback { .. })));
    let st = state(&s);
    assert_eq!(st.phase, Phase::RolledBack);
    assert!(st.regressed.is_some());
    assert_eq!(run(&s, &ops, &mut Script::new(0, 0), false).0, Ok(Outcome::RolledBack));
    assert_eq!(ops.percents().len(), 2);
}

#[test]
fn a_paused_rollout_never_advances_and_advances_after_resume() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    let ops = Ops::new();
    let pushes_while_paused = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let (plan_pause, plan_resume) = (s.plan.clone(), s.plan.clone());
    let (seen, pushes) = (pushes_while_paused.clone(), ops.pushes.clone());
    let mut source = Script::new(0, 0)
        .at(1, move || {
            control::set_paused(&plan_pause, true).unwrap();
        })
        .at(60, move || {
            // 5 minutes in, far past min_time and min_requests: still on the first step.
            *seen.borrow_mut() = pushes.borrow().iter().map(|(p, _)| *p).collect::<Vec<f64>>();
            control::set_paused(&plan_resume, false).unwrap();
        });
    let (result, _) = run(&s, &ops, &mut source, false);
    assert_eq!(*pushes_while_paused.borrow(), vec![10.0]);
    assert_eq!(result, Ok(Outcome::Promoted));
    assert_eq!(ops.percents(), vec![10.0, 50.0, 100.0]);
}

#[test]
fn a_paused_rollout_still_rolls_back() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    let ops = Ops::new();
    let plan = s.plan.clone();
    let mut source = Script::new(0, 250).at(1, move || {
        control::set_paused(&plan, true).unwrap();
    });
    let (result, _) = run(&s, &ops, &mut source, false);
    assert_eq!(result, Ok(Outcome::RolledBack));
    assert_eq!(ops.percents(), vec![10.0, 0.0]);
}

#[test]
fn abort_while_running_pushes_zero_once_and_exits_aborted() {
    let s = Scratch::new("[10, 50, 100]", "1h", "");
    let ops = Ops::new();
    let path = s.state_path();
    let mut source = Script::new(0, 0).at(3, move || {
        StateFile::new(&path).update(|st| st.abort_requested = true).unwrap();
    });
    let (result, out) = run(&s, &ops, &mut source, false);
    assert_eq!(result, Ok(Outcome::Aborted));
    assert_eq!(ops.percents(), vec![10.0, 0.0]);
    assert_eq!(s.policy_percent(), 0.0);
    assert!(out.events.iter().any(|e| matches!(e, Event::Aborted)));
    assert_eq!(state(&s).phase, Phase::Aborted);
}

#[test]
fn killed_mid_push_the_step_is_pushed_once_after_restart() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    // Push 2 (the step to 50%) dies: the state says `pushing` 50%, the policy already holds 50%.
    let first = Ops::failing_on(2);
    let (result, _) = run(&s, &first, &mut Script::new(0, 0), false);
    assert!(result.unwrap_err().contains("run the same command again"));
    assert_eq!(first.percents(), vec![10.0]);
    assert!(matches!(state(&s).phase, Phase::Pushing { target, done: 0, .. } if target == 50.0));
    assert_eq!(s.policy_percent(), 50.0);

    let second = Ops::new();
    let (result, out) = run(&s, &second, &mut Script::new(0, 0), false);
    assert_eq!(result, Ok(Outcome::Promoted));
    assert_eq!(second.percents(), vec![50.0, 100.0], "50% pushed exactly once after the restart");
    assert!(matches!(out.events.first(), Some(Event::Start { resumed: true, .. })));
}

#[test]
fn a_restart_runs_only_the_push_entries_not_yet_done() {
    let push = "push:\n  - manifest: [--kind, ecds, -o, a.yaml]\n  - manifest: [--kind, istio-routes]\n    command: [kubectl, apply, -f, \"-\"]\n";
    let s = Scratch::new("[10, 50, 100]", "10s", push);
    // Calls 1-2 push 10%; call 3 pushes 50% to the first entry; call 4 (the second entry) dies.
    let first = Ops::failing_on(4);
    assert!(run(&s, &first, &mut Script::new(0, 0), false).0.is_err());
    assert_eq!(first.percents(), vec![10.0, 10.0, 50.0]);
    assert!(matches!(state(&s).phase, Phase::Pushing { done: 1, .. }));

    let second = Ops::new();
    assert_eq!(run(&s, &second, &mut Script::new(0, 0), false).0, Ok(Outcome::Promoted));
    let entries: Vec<(f64, String)> =
        second.pushes.borrow().iter().map(|(p, args)| (*p, args.get(3).cloned().unwrap_or_default())).collect();
    assert_eq!(entries.first(), Some(&(50.0, String::new())), "only the istio-routes entry is re-run for 50%");
    assert_eq!(second.percents(), vec![50.0, 100.0, 100.0]);
}

#[test]
fn abort_without_a_running_controller_pushes_zero_once() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    let first = Ops::failing_on(2);
    assert!(run(&s, &first, &mut Script::new(0, 0), false).0.is_err());

    let ops = Ops::new();
    let mut out = Recorded::default();
    let mut clock = ManualClock { now: 2_000_000.0 };
    assert_eq!(control::abort(&s.plan, &ops, &mut out, &mut clock, 10.0), Ok(Outcome::Aborted));
    assert_eq!(ops.percents(), vec![0.0]);
    assert_eq!(state(&s).phase, Phase::Aborted);
    // The controller, run again, reports the abort and pushes nothing.
    assert_eq!(run(&s, &ops, &mut Script::new(0, 0), false).0, Ok(Outcome::Aborted));
    assert_eq!(ops.percents(), vec![0.0]);
    assert!(control::status(&s.plan, 2_000_100.0).unwrap().starts_with("forecast: aborted"));
}

#[test]
fn a_failed_read_is_retried_not_judged() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    let ops = Ops::new();
    let mut source = Script::new(0, 0);
    source.failing = vec![2, 3, 4];
    let (result, out) = run(&s, &ops, &mut source, false);
    assert_eq!(result, Ok(Outcome::Promoted));
    let notes =
        out.events.iter().filter(|e| matches!(e, Event::Note { message } if message.contains("retrying"))).count();
    assert_eq!(notes, 3);
}

#[test]
fn dry_run_writes_and_pushes_nothing() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    let ops = Ops::new();
    let (result, out) = run(&s, &ops, &mut Script::new(0, 0), true);
    assert_eq!(result, Ok(Outcome::Promoted));
    assert!(ops.percents().is_empty());
    assert_eq!(s.policy_text(), controller_support::POLICY);
    assert!(!s.state_path().exists());
    let would: Vec<f64> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Push { percent, dry_run: true, .. } => Some(*percent),
            _ => None,
        })
        .collect();
    assert_eq!(would, vec![10.0, 50.0, 100.0]);
}

#[test]
fn a_second_controller_on_the_same_state_is_refused() {
    let s = Scratch::new("[10, 50, 100]", "10s", "");
    let _held = StateFile::new(&s.state_path()).try_run_lock().unwrap().unwrap();
    let (result, _) = run(&s, &Ops::new(), &mut Script::new(0, 0), false);
    assert!(result.unwrap_err().contains("another `canaryc rollout` is running this plan"));
}

#[test]
fn promote_evidence_waits_for_the_within_evidence_and_reports_it() {
    let mut s = Scratch::new("[10, 50, 100]", "10s", "");
    let text = std::fs::read_to_string(&s.plan.file).unwrap();
    let evidence =
        text.replace("errors: { tolerance: 0.5 } }", "errors: { tolerance: 0.5 }, promote: evidence, beta: 0.05 }");
    assert_ne!(text, evidence);
    std::fs::write(&s.plan.file, evidence).unwrap();
    s.plan = canary_rollout::plan::Plan::load(&s.plan.file).unwrap();
    let ops = Ops::new();
    // No errors in either arm: under +0.5 points each reading's 500 clean canary requests are evidence that
    // the canary is within the tolerance (~1.8 nats per reading for κ = 0.1), but 1/β = 20 takes 3 readings.
    let (result, out) = run(&s, &ops, &mut Script::new(0, 0), false);
    assert_eq!(result, Ok(Outcome::Promoted));
    assert_eq!(ops.percents(), vec![10.0, 50.0, 100.0]);
    let readings: Vec<_> = out
        .events
        .iter()
        .filter_map(|e| match e {
            Event::Reading(snap) => Some(snap),
            _ => None,
        })
        .collect();
    assert!(!readings.is_empty());
    assert!(readings
        .iter()
        .all(|r| r.evidence.iter().all(|e| e.within_e_value.is_some() && e.within_threshold == Some(20.0))));
    // Some reading had the step's time and requests but not yet the evidence: the step waited for it.
    let waited = readings.iter().any(|r| {
        r.progress.is_some_and(|p| p.elapsed_secs >= p.min_secs && p.canary_requests >= p.min_requests)
            && r.evidence[0].within_e_value.is_some_and(|w| w < 20.0)
    });
    assert!(waited, "{readings:#?}");
}
