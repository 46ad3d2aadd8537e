//! `canaryc rollout` in real Envoys (`canary_mesh::rollout`): two frontend sidecars whose forecast policy comes
//! from one watched ECDS file, forecast v1 and v2 stand-ins, load from thousands of users.

use std::time::Duration;

use anyhow::Result;
use canary_tests::mesh::rollout::{canaryc_in_process, Faults, HarnessOptions, RolloutHarness, POLICY};
use canary_tests::mesh::{Launcher, MeshOptions};

fn options(canary: Faults) -> Result<HarnessOptions> {
    let mesh = MeshOptions::locate(Launcher::new(env!("CARGO_BIN_EXE_weather-service"), &[]))?;
    Ok(HarnessOptions { canary, ..HarnessOptions::new(mesh) })
}

/// Pushes the rule at `percent` the way the rollout does: rewrite the policy file, `canaryc manifest … -o`.
fn push_percent(h: &RolloutHarness, percent: u32) -> Result<()> {
    let text = POLICY.replace("1% v2", &format!("{percent}% v2"));
    std::fs::write(h.policy_path(), text)?;
    let mut args = vec!["manifest".to_string(), h.policy_path().display().to_string()];
    args.extend(h.push_args());
    assert_eq!(canaryc_in_process(&args), 0, "canaryc manifest {args:?}");
    Ok(())
}

/// The harness itself, without the controller: pushes by hand (1 → 20 → 0 %) and the figures it measures.
/// Stickiness and the policy in force are checked answer by answer, so this fails if a proxy served a push
/// late, wrongly or not at all.
#[test]
fn harness_measures_hand_pushes() -> Result<()> {
    let mut h = RolloutHarness::start(options(Faults { fail_percent: 5.0, extra_latency_ms: 0 })?)?;
    std::thread::sleep(Duration::from_secs(2));
    push_percent(&h, 20)?;
    std::thread::sleep(Duration::from_secs(3));
    push_percent(&h, 0)?;
    let report = h.finish(Duration::from_secs(2))?;
    println!("{}", report.render());
    assert_eq!(report.pushes.len(), 3, "{}", report.render());
    assert_eq!(report.rollback, Some(2));
    assert!(report.users_on_v2 > 0 && report.bad_answers > 0, "{}", report.render());
    assert_eq!(report.users_moved_back, 0);
    assert_eq!(report.contradictions, 0);
    assert_eq!(report.v2_after_rollback, 0);
    assert!(report.detect_to_rollback().is_some());
    Ok(())
}
