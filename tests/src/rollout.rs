//! What the rollout end-to-end tests share beyond `canary_mesh::rollout`: `canaryc rollout` run through the
//! CLI's own entry point while the harness loads and watches the proxies, and the measured report.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::mesh::rollout::{canaryc_in_process, PlanOptions, Report, RolloutHarness};

/// One rollout run against a harness: the plan written, `canaryc rollout PLAN` run to its end while the load
/// goes on, then `linger` more of load, and the measured report.
pub struct Run {
    pub exit: i32,
    pub plan: PathBuf,
    pub report: Report,
    /// Wall time of `canaryc rollout` itself.
    pub rollout: Duration,
}

/// Writes `plan`, runs `canaryc rollout` on it in-process (plain lines on stdout: not a terminal), keeps the
/// load on for `linger`, and measures.
pub fn run_rollout(h: &mut RolloutHarness, plan: &PlanOptions, linger: Duration) -> Result<Run> {
    let path = h.write_plan(plan)?;
    println!("plan {}:\n{}", path.display(), std::fs::read_to_string(&path)?);
    let started = Instant::now();
    let exit = canaryc_in_process(&["rollout".to_string(), path.display().to_string()]);
    let rollout = started.elapsed();
    let mut report = h.finish(linger).context("measuring the run")?;
    if let Some((bound, _)) = plan.latency {
        report = report.with_latency(bound);
    }
    println!("canaryc rollout exited {exit} after {rollout:.1?}\n{}", report.render());
    Ok(Run { exit, plan: path, report, rollout })
}

/// The final state file's text, for a failure message.
pub fn state_of(plan: &Path) -> String {
    let dir = plan.parent().unwrap_or(Path::new("."));
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".rollout.json"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}
