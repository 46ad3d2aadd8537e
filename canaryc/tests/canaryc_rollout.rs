//! `canaryc rollout` as a user runs it: bad plans exit 2 with `PLAN:LINE:COL: error:`, and `status`, `pause`,
//! `resume` and `abort` act on a saved state — `abort` through the real push path (`canaryc manifest --kind
//! ecds -o FILE` in-process), checked against the manifest `canaryc manifest` itself writes for the 0 % policy.
//! (A whole run needs live metrics: the weather-mesh end-to-end test covers it.)

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use canary_rollout::counts::Counts;
use canary_rollout::plan::Plan;
use canary_rollout::state::{Phase, State, StateFile, VERSION};
use canary_rollout::stepper::Stepper;

const POLICY: &str =
    "# forecast, rolled out to v2\nservice forecast {\n  10% v2 by cookie user   # the canary\n  default v1\n}\n";

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

struct Rollout {
    dir: tempfile::TempDir,
    plan: PathBuf,
    ecds: PathBuf,
}

impl Rollout {
    fn new(plan_body: &str) -> Rollout {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("forecast.canary"), POLICY).unwrap();
        let ecds = dir.path().join("forecast-ecds.yaml");
        let plan = dir.path().join("forecast.yaml");
        std::fs::write(&plan, plan_body.replace("ECDS", &ecds.display().to_string())).unwrap();
        Rollout { dir, plan, ecds }
    }

    fn plan_arg(&self) -> &str {
        self.plan.to_str().unwrap()
    }

    fn policy(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("forecast.canary")).unwrap()
    }

    /// A rollout on its first step (10 %), as a controller leaves it between readings.
    fn started(&self) -> Plan {
        let plan = Plan::load(&self.plan).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
        let state = State {
            version: VERSION,
            plan_digest: plan.digest.clone(),
            service: "forecast".into(),
            phase: Phase::Running,
            paused: false,
            abort_requested: false,
            step_index: 0,
            percent: 10.0,
            stepper: Stepper::new(plan.steps.clone(), plan.judge, now - 90.0),
            held: Counts::default(),
            totals: Counts::default(),
            last_counts: None,
            evidence: Vec::new(),
            started_at: now - 90.0,
            step_started_at: now - 90.0,
            updated_at: now,
            regressed: None,
        };
        StateFile::new(&plan.state).save(&state).unwrap();
        plan
    }

    fn state(&self, plan: &Plan) -> State {
        StateFile::new(&plan.state).load().unwrap().unwrap()
    }
}

const PLAN: &str = "\
policy: forecast.canary
service: forecast
rule: 3
steps: [10, 50, 100]
min_time: 1m
interval: 1s
metrics:
  envoy: { admin: [127.0.0.1:1], baseline: forecast-v1, canary: forecast-v2 }
push:
  - manifest: [--kind, ecds, --service, forecast, --wasm, /var/lib/canary/canary_filter.wasm, -o, ECDS]
";

fn relative(err: &str, dir: &Path) -> String {
    err.replace(&format!("{}/", dir.display()), "")
}

#[test]
fn bad_plans_exit_2_with_plan_line_col() {
    let cases = [
        ("min_time: 1m", "min_time: 1 minute", "forecast.yaml:5:11: error: `min_time`: `minute` is not a unit of time"),
        ("rule: 3", "rule: 4", "forecast.yaml:3:7: error: line 4 is `default v1`, not a split"),
        ("[10, 50, 100]", "[10, 50]", "forecast.yaml:4:13: error: the last step is 50, but a rollout ends at 100"),
        (
            "interval: 1s",
            "intervall: 1s",
            "forecast.yaml:6:1: error: unknown key `intervall` in the plan; did you mean `interval`?",
        ),
        ("policy: forecast.canary", "policy: gone.canary", "forecast.yaml:1:9: error: cannot read the policy"),
        (
            "service: forecast\n",
            "service: forecast\ncanary: v3\n",
            "forecast.yaml:3:9: error: the split on line 3 has no subset `v3`",
        ),
    ];
    for (from, to, want) in cases {
        let r = Rollout::new(&PLAN.replace(from, to));
        for args in [vec![r.plan_arg()], vec!["status", r.plan_arg()], vec![r.plan_arg(), "--dry-run"]] {
            let out = canaryc(&["rollout"].into_iter().chain(args.iter().copied()).collect::<Vec<_>>());
            let err = relative(&text(&out.stderr), r.dir.path());
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(err.starts_with(want), "{from} → {to}\n want: {want}\n  got: {err}");
            assert!(out.stdout.is_empty());
        }
    }
}

#[test]
fn status_pause_resume_on_a_saved_state() {
    let r = Rollout::new(PLAN);
    let out = canaryc(&["rollout", "status", r.plan_arg()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("no rollout of"), "{}", text(&out.stderr));

    let plan = r.started();
    let out = canaryc(&["rollout", "status", r.plan_arg()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    assert!(status.starts_with("forecast: running (rule 3 of "), "{status}");
    assert!(status.contains("step 1/3 [10% → 50% → 100%], canary 10%, elapsed 1m30s"), "{status}");

    let out = canaryc(&["rollout", "pause", r.plan_arg()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("paused at 10%"));
    assert!(r.state(&plan).paused);
    assert!(text(&canaryc(&["rollout", "status", r.plan_arg()]).stdout).starts_with("forecast: paused"));

    let out = canaryc(&["rollout", "resume", r.plan_arg()]);
    assert_eq!(out.status.code(), Some(0));
    assert!(!r.state(&plan).paused);
    assert_eq!(r.policy(), POLICY, "pause and resume never touch the policy");
}

#[test]
fn abort_pushes_zero_percent_once_to_the_ecds_file() {
    let r = Rollout::new(PLAN);
    let plan = r.started();
    let out = canaryc(&["rollout", "abort", r.plan_arg(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let events: Vec<serde_json::Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let names: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(names, ["aborted", "diff", "push"], "{events:?}");
    assert_eq!(events[2]["percent"], 0.0);

    // Only the percentage changed, and the ECDS file is what `canaryc manifest` writes for that policy.
    assert_eq!(r.policy(), POLICY.replace("10% v2", "0% v2"));
    let expected = r.dir.path().join("expected.yaml");
    let policy = r.dir.path().join("forecast.canary");
    let manifest = canaryc(&[
        "manifest",
        policy.to_str().unwrap(),
        "--kind",
        "ecds",
        "--service",
        "forecast",
        "--wasm",
        "/var/lib/canary/canary_filter.wasm",
        "-o",
        expected.to_str().unwrap(),
    ]);
    assert_eq!(manifest.status.code(), Some(0), "{}", text(&manifest.stderr));
    assert_eq!(std::fs::read_to_string(&r.ecds).unwrap(), std::fs::read_to_string(&expected).unwrap());
    assert_eq!(r.state(&plan).phase, Phase::Aborted);

    // Finished: abort again and run again only report it (exit 1), status says so, pause is refused.
    std::fs::remove_file(&r.ecds).unwrap();
    let again = canaryc(&["rollout", "abort", r.plan_arg()]);
    assert_eq!(again.status.code(), Some(1));
    let run = canaryc(&["rollout", r.plan_arg()]);
    assert_eq!(run.status.code(), Some(1), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "this rollout has already finished: aborted\n");
    assert!(!r.ecds.exists(), "nothing is pushed twice");
    assert!(text(&canaryc(&["rollout", "status", r.plan_arg()]).stdout).starts_with("forecast: aborted"));
    let pause = canaryc(&["rollout", "pause", r.plan_arg()]);
    assert_eq!(pause.status.code(), Some(2));
    assert!(text(&pause.stderr).contains("already finished (aborted)"));
}

#[test]
fn a_push_command_gets_the_manifest_on_stdin_and_its_failure_is_reported() {
    let ok = PLAN.replace(
        "  - manifest: [--kind, ecds, --service, forecast, --wasm, /var/lib/canary/canary_filter.wasm, -o, ECDS]\n",
        "  - manifest: [--kind, ecds, --service, forecast, --wasm, /w.wasm]\n    command: [sh, -c, \"cat > ECDS\"]\n",
    );
    let r = Rollout::new(&ok);
    r.started();
    let out = canaryc(&["rollout", "abort", r.plan_arg()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let piped = std::fs::read_to_string(&r.ecds).unwrap();
    assert!(piped.contains("canary-forecast"), "{piped}");

    let failing = ok.replace("cat > ECDS", "echo nope >&2; exit 3");
    let r = Rollout::new(&failing);
    let plan = r.started();
    let out = canaryc(&["rollout", "abort", r.plan_arg()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("push 1 of 1 failed") && err.contains("exit status: 3") && err.contains("nope"), "{err}");
    assert!(matches!(r.state(&plan).phase, Phase::Pushing { target, done: 0, .. } if target == 0.0));
}
