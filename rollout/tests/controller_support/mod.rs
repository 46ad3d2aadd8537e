//! Test doubles for the controller tests: a scripted metrics source (counts per interval, hooks that act as
//! an operator at a given reading), a `PolicyOps` that checks with the real parser and records every push
//! by the canary percentage the pushed policy holds, and a scratch rollout (policy + plan in a temp dir).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use canary_rollout::counts::{ArmCounts, Counts};
use canary_rollout::edit;
use canary_rollout::metrics::{MetricsSource, Reading};
use canary_rollout::ops::PolicyOps;
use canary_rollout::plan::Plan;

pub const POLICY: &str = "# forecast\nservice forecast {\n  source version=v2 -> v2\n  10% v2 by cookie user   # the canary\n  default v1\n}\n";

/// A rollout in a temp dir: the policy above and a plan stepping its line-4 split.
pub struct Scratch {
    /// Kept alive: the directory is deleted when the scratch is dropped.
    _dir: tempfile::TempDir,
    pub plan: Plan,
}

impl Scratch {
    /// `extra`: more plan lines (e.g. `push:` entries); the default pushes one ECDS-like entry.
    pub fn new(steps: &str, min_time: &str, extra: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("forecast.canary"), POLICY).unwrap();
        let push = if extra.contains("push:") {
            String::new()
        } else {
            "push:\n  - manifest: [--kind, ecds, -o, out.yaml]\n".into()
        };
        let plan = format!(
            "policy: forecast.canary\nservice: forecast\nrule: 4\nsteps: {steps}\nmin_time: {min_time}\nmin_requests: 100\n\
             interval: 5s\njudge: {{ alpha: 0.01, errors: {{ tolerance: 0.5 }} }}\n\
             metrics: {{ envoy: {{ admin: [127.0.0.1:9901], baseline: forecast-v1, canary: forecast-v2 }} }}\n{push}{extra}"
        );
        let path = dir.path().join("forecast.yaml");
        std::fs::write(&path, plan).unwrap();
        let plan = Plan::load(&path).unwrap();
        Scratch { _dir: dir, plan }
    }

    pub fn policy_text(&self) -> String {
        std::fs::read_to_string(&self.plan.policy).unwrap()
    }

    /// The canary's percentage in the policy file now.
    pub fn policy_percent(&self) -> f64 {
        percent_in(&self.plan.policy)
    }

    pub fn state_path(&self) -> PathBuf {
        self.plan.state.clone()
    }
}

pub fn percent_in(policy: &Path) -> f64 {
    let text = std::fs::read_to_string(policy).unwrap();
    let site = edit::locate(&text, "p", 4, "forecast", Some("v2")).unwrap();
    f64::from(site.canary_basis_points()) / 100.0
}

/// Every push, as (percent in the pushed policy, manifest args).
pub type Pushes = Rc<RefCell<Vec<(f64, Vec<String>)>>>;

/// `PolicyOps` over the real parser; `fail_on`: the 1-based push call that fails (a process killed mid-push).
pub struct Ops {
    pub pushes: Pushes,
    pub fail_on: Option<usize>,
    pub calls: RefCell<usize>,
}

impl Ops {
    pub fn new() -> Ops {
        Ops { pushes: Rc::default(), fail_on: None, calls: RefCell::new(0) }
    }

    pub fn failing_on(call: usize) -> Ops {
        Ops { fail_on: Some(call), ..Ops::new() }
    }

    pub fn percents(&self) -> Vec<f64> {
        self.pushes.borrow().iter().map(|(p, _)| *p).collect()
    }
}

impl PolicyOps for Ops {
    fn check(&self, path: &Path, text: &str) -> Result<(), String> {
        canary_dsl::parse_and_check(text)
            .map(|_| ())
            .map_err(|d| canary_dsl::render(&d, text, &path.display().to_string(), false))
    }

    fn diff_summary(&self, old: &str, new: &str, _service: &str) -> Result<String, String> {
        Ok(format!("{} bytes → {} bytes", old.len(), new.len()))
    }

    fn push(&self, policy: &Path, manifest_args: &[String], _command: Option<&[String]>) -> Result<(), String> {
        *self.calls.borrow_mut() += 1;
        if Some(*self.calls.borrow()) == self.fail_on {
            return Err("killed".into());
        }
        self.pushes.borrow_mut().push((percent_in(policy), manifest_args.to_vec()));
        Ok(())
    }
}

/// What an operator does at a reading (set a flag in the state file…).
pub type Hook = Box<dyn FnMut()>;

/// Cumulative counts growing by `per_interval` at every read; hooks run at given reads (1-based).
pub struct Script {
    pub per_interval: Counts,
    pub total: Counts,
    pub reads: usize,
    pub hooks: Vec<(usize, Hook)>,
    /// Fail the test (instead of hanging) when the rollout has not ended after this many reads.
    pub max_reads: usize,
    /// Reads (1-based) that fail as an unreachable source does.
    pub failing: Vec<usize>,
}

impl Script {
    /// 1,000 baseline and 500 canary requests per interval, with these error counts.
    pub fn new(baseline_errors: u64, canary_errors: u64) -> Script {
        let arm = |requests, errors| ArmCounts { requests, errors, slow: 0 };
        Script {
            per_interval: Counts { baseline: arm(1000, baseline_errors), canary: arm(500, canary_errors) },
            total: Counts::default(),
            reads: 0,
            hooks: Vec::new(),
            max_reads: 5_000,
            failing: Vec::new(),
        }
    }

    pub fn at(mut self, read: usize, hook: impl FnMut() + 'static) -> Script {
        self.hooks.push((read, Box::new(hook)));
        self
    }
}

impl MetricsSource for Script {
    fn read(&mut self) -> Result<Reading, String> {
        self.reads += 1;
        assert!(self.reads <= self.max_reads, "the rollout did not end within {} readings", self.max_reads);
        for (at, hook) in &mut self.hooks {
            if *at == self.reads {
                hook();
            }
        }
        if self.failing.contains(&self.reads) {
            return Err("connection refused".into());
        }
        self.total.add(&self.per_interval);
        Ok(Reading { counts: self.total, notes: Vec::new() })
    }
}
