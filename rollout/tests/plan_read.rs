//! Rollout plans: a good plan maps onto the judge's, the stepper's and the sources' settings; every mistake is
//! `PLAN:LINE:COL: error: REASON` at the key or value concerned.

use std::path::Path;

use canary_rollout::judge::{LatencyCheck, Tolerance};
use canary_rollout::metrics::PrometheusFlavor;
use canary_rollout::plan::{MetricsPlan, Plan};
use canary_rollout::stepper::Promote;

const POLICY: &str = "service forecast {\n  chrome -> v2\n  5% v2, 0% v3 by cookie user\n  default v1\n}\nservice frontend {\n  50% v2\n  default v1\n}\n";

const GOOD: &str = r#"policy: forecast.canary
service: forecast
rule: 3
canary: v2
steps: [1, 5, 20.5, 100]
min_time: 2m
min_requests: 300
interval: 10s
judge:
  alpha: 0.05
  errors: { tolerance: 0.5, ratio: 1.2 }
  latency: { slower_than: 250ms, tolerance: 1 }
metrics:
  envoy: { admin: [127.0.0.1:9901, 127.0.0.1:9902], baseline: forecast-v1, canary: forecast-v2 }
push:
  - manifest: [--kind, ecds, --service, forecast, -o, /tmp/f.yaml]
  - manifest: [--kind, istio-routes]
    command: [kubectl, apply, -f, "-"]
metrics_listen: 127.0.0.1:9464
"#;

fn plan(text: &str) -> Result<Plan, String> {
    plan_with(text, POLICY)
}

fn plan_with(text: &str, policy: &str) -> Result<Plan, String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("forecast.canary"), policy).unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, text).unwrap();
    Plan::load(&path).map_err(|e| e.to_string().replace(&format!("{}/", dir.path().display()), ""))
}

/// The error for `GOOD` (or, for a `from` only the policy holds, `POLICY`) with `from` replaced by `to`.
fn error(from: &str, to: &str) -> String {
    if GOOD.contains(from) {
        return plan_with(&GOOD.replace(from, to), POLICY).unwrap_err();
    }
    assert!(POLICY.contains(from), "{from}");
    plan_with(GOOD, &POLICY.replace(from, to)).unwrap_err()
}

#[test]
fn a_good_plan_maps_to_the_settings() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("forecast.canary"), POLICY).unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, GOOD).unwrap();
    let p = Plan::load(&path).unwrap();
    assert_eq!(p.policy, dir.path().join("forecast.canary"));
    assert_eq!((p.target.line, p.target.service.as_str(), p.target.canary.as_str()), (3, "forecast", "v2"));
    assert_eq!(p.baseline, "v1");
    assert_eq!(p.steps.steps, vec![1.0, 5.0, 20.5, 100.0]);
    assert_eq!((p.steps.min_secs, p.steps.min_requests, p.interval_secs), (120.0, 300, 10.0));
    assert_eq!(p.judge.alpha, 0.05);
    assert_eq!(p.steps.promote, Promote::Time);
    assert_eq!(p.judge.errors, Tolerance { points: 0.5, ratio: 1.2 });
    assert_eq!(
        p.judge.latency,
        Some(LatencyCheck { bound_ms: 250.0, tolerance: Tolerance { points: 1.0, ratio: 1.0 } })
    );
    let MetricsPlan::Envoy(envoy) = &p.metrics else { panic!("{:?}", p.metrics) };
    assert_eq!(envoy.admins, vec!["127.0.0.1:9901", "127.0.0.1:9902"]);
    assert_eq!((envoy.baseline_cluster.as_str(), envoy.canary_cluster.as_str()), ("forecast-v1", "forecast-v2"));
    assert_eq!(envoy.latency_bound_ms, Some(250.0));
    assert_eq!(p.push.len(), 2);
    assert_eq!(p.push[0].manifest[5], "/tmp/f.yaml");
    assert_eq!(
        p.push[1].command.as_deref(),
        Some(&["kubectl".to_string(), "apply".into(), "-f".into(), "-".into()][..])
    );
    assert_eq!(p.state, dir.path().join("p.state.json"));
    assert_eq!(p.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
    assert_eq!(p.digest.len(), 64);
}

#[test]
fn prometheus_sources() {
    let base = "policy: forecast.canary\nservice: frontend\nrule: 7\nsteps: [50, 100]\n";
    let istio = format!("{base}metrics:\n  prometheus:\n    url: http://p:9090\n    istio: {{ service: frontend, namespace: weather, baseline: v1, canary: v2 }}\n");
    let p = plan(&istio).unwrap();
    let MetricsPlan::Prometheus(prom) = &p.metrics else { panic!() };
    assert_eq!(prom.url, "http://p:9090");
    assert_eq!(
        prom.flavor,
        PrometheusFlavor::Istio {
            service: "frontend".into(),
            namespace: Some("weather".into()),
            baseline_version: "v1".into(),
            canary_version: "v2".into(),
            reporter: "source".into()
        }
    );
    assert_eq!(p.target.canary, "v2", "the split's only subset is the canary by default");
    let envoy = format!("{base}metrics: {{ prometheus: {{ url: http://p, envoy: {{ baseline: a, canary: b }} }} }}\n");
    let MetricsPlan::Prometheus(prom) = plan(&envoy).unwrap().metrics else { panic!() };
    assert_eq!(prom.flavor, PrometheusFlavor::Envoy { baseline_cluster: "a".into(), canary_cluster: "b".into() });
    let both = format!(
        "{base}metrics: {{ prometheus: {{ url: http://p, envoy: {{ baseline: a, canary: b }}, istio: {{}} }} }}\n"
    );
    assert!(plan(&both).unwrap_err().contains("takes only one of envoy, istio"));
}

#[test]
fn every_mistake_names_its_position() {
    let cases: &[(&str, &str, &str)] = &[
        ("min_time: 2m", "min_tme: 2m", "p.yaml:6:1: error: unknown key `min_tme` in the plan; did you mean `min_time`?"),
        ("min_time: 2m", "min_time: 2", "p.yaml:6:11: error: `min_time`: `2` has no unit: write e.g. `2s` (units: ms, s, m, h)"),
        ("interval: 10s", "interval: 10 days", "p.yaml:8:11: error: `interval`: `days` is not a unit of time (units: ms, s, m, h)"),
        ("[1, 5, 20.5, 100]", "[1, 20.5, 5, 100]", "p.yaml:5:18: error: steps must ascend: 5 comes after 20.5"),
        ("[1, 5, 20.5, 100]", "[1, 5, 20.5, 90]", "p.yaml:5:21: error: the last step is 90, but a rollout ends at 100 (promotion)"),
        ("0% v3", "5% v3", "p.yaml:5:21: error: 100% for the canary and the split's other shares (5%) add up to over 100%"),
        ("[1, 5, 20.5, 100]", "[1, 5.125, 100]", "p.yaml:5:12: error: step 5.125% has more than two decimals (the language splits in steps of 0.01%)"),
        ("[1, 5, 20.5, 100]", "[0, 100]", "p.yaml:5:9: error: a step must be above 0% (0% is where a rollback goes)"),
        ("[1, 5, 20.5, 100]", "many", "p.yaml:5:8: error: `steps` must be a list, not a single value"),
        ("policy: forecast.canary", "policy: missing.canary", "p.yaml:1:9: error: cannot read the policy"),
        ("rule: 3", "rule: 2", "p.yaml:3:7: error: line 2 is `chrome -> v2`, not a split (`[COND:] N% SUBSET`)"),
        ("rule: 3", "rule: 4", "p.yaml:3:7: error: line 4 is `default v1`, not a split (`[COND:] N% SUBSET`)"),
        ("rule: 3", "rule: 7", "p.yaml:3:7: error: line 7 is a rule of service `frontend`, not of `forecast`"),
        ("rule: 3", "rule: three", "p.yaml:3:7: error: `rule` (the line of the split in the policy) must be a whole number ≥ 0, not `three`"),
        ("canary: v2", "canary: v4", "p.yaml:4:9: error: the split on line 3 has no subset `v4` (it splits to v2, v3)"),
        ("canary: v2", "canary: v1", "p.yaml:4:9: error: the split on line 3 has no subset `v1`"),
        ("canary: v2\n", "", "p.yaml:3:7: error: the split on line 3 has several subsets (v2, v3): say which one is the canary with `canary: NAME`"),
        ("service: forecast", "service: weather", "p.yaml:2:10: error: the policy has no `service weather { … }` block"),
        ("  alpha: 0.05", "  alpha: 5", "p.yaml:10:10: error: `alpha` is a probability between 0 and 1 (exclusive), not 5"),
        ("ratio: 1.2", "ratio: 0.8", "p.yaml:11:36: error: `ratio` must be at least 1 (1.2 = 20% worse allowed), not 0.8"),
        ("slower_than: 250ms, ", "", "p.yaml:12:14: error: `judge.latency` is missing `slower_than` (e.g. `slower_than: 250ms`)"),
        ("  envoy: { admin:", "  envoy: { admins:", "p.yaml:14:12: error: unknown key `admins` in `metrics.envoy`; did you mean `admin`?"),
        ("baseline: forecast-v1, ", "", "p.yaml:14:12: error: `metrics.envoy` is missing `baseline` (e.g. `baseline: forecast-v1`)"),
        ("  - manifest: [--kind, istio-routes]", "  - manifst: [--kind, istio-routes]", "p.yaml:17:5: error: unknown key `manifst` in a `push` entry; did you mean `manifest`?"),
        (r#"command: [kubectl, apply, -f, "-"]"#, "command: []", r#"p.yaml:18:14: error: `command` is empty (e.g. [kubectl, apply, -f, "-"])"#),
        ("\"-\"]", "-]", "p.yaml:18:35: error: invalid YAML: plain scalar cannot start with '-' followed by ,[]{} (a lone `-` in a `[…]` list must be quoted: `\"-\"`)"),
        ("metrics_listen: 127.0.0.1:9464", "metrics_listen: localhost", "p.yaml:19:17: error: `metrics_listen`: `localhost` is not HOST:PORT (e.g. 127.0.0.1:9464)"),
        ("    command: [kubectl, apply, -f, \"-\"]\n", "", "p.yaml:17:15: error: this push sends the manifest nowhere: add `-o FILE` to `manifest`"),
        ("min_requests: 300", "min_requests: 300\nmin_requests: 3", "p.yaml:8:1: error: `min_requests` is given twice (first on line 7)"),
        ("  latency: { slower_than: 250ms, tolerance: 1 }", "  latency: 3", "p.yaml:12:12: error: `judge.latency` must be a mapping (`key: value` lines), not a single value"),
        ("rule: 3", "rule: 9", "p.yaml:3:7: error: no rule starts on line 9 (the splits of `forecast` are on line(s) 3)"),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .map(|(from, to, want)| (from, to, want, error(from, to)))
        .filter(|(_, _, want, got)| !got.starts_with(**want))
        .map(|(from, to, want, got)| format!("{from:?} → {to:?}\n want: {want}\n  got: {got}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn promote_on_evidence() {
    let with = |judge: &str| plan(&GOOD.replace("  alpha: 0.05\n", &format!("  alpha: 0.05\n{judge}")));
    assert_eq!(with("  promote: evidence\n").unwrap().steps.promote, Promote::Evidence { beta: 0.05 });
    assert_eq!(with("  promote: evidence\n  beta: 0.01\n").unwrap().steps.promote, Promote::Evidence { beta: 0.01 });
    assert_eq!(with("  promote: time\n").unwrap().steps.promote, Promote::Time);
    let cases = [
        ("  promote: proof\n", "p.yaml:11:12: error: `promote` is `time` (the default) or `evidence`, not `proof`"),
        (
            "  beta: 0.05\n",
            "p.yaml:11:9: error: `beta` is the risk of promoting a bad canary under `promote: evidence`",
        ),
        (
            "  promote: evidence\n  beta: 1\n",
            "p.yaml:12:9: error: `beta` is a probability between 0 and 1 (exclusive), not 1",
        ),
    ];
    for (judge, want) in cases {
        let got = with(judge).unwrap_err();
        assert!(got.starts_with(want), "{judge:?}\n want: {want}\n  got: {got}");
    }
    // No tolerance on a judged metric: refused at `promote`, saying which metric and why.
    let strict = GOOD.replace("  alpha: 0.05\n", "  alpha: 0.05\n  promote: evidence\n");
    let errors = plan(&strict.replace("{ tolerance: 0.5, ratio: 1.2 }", "{}")).unwrap_err();
    assert!(errors.starts_with("p.yaml:11:12: error: `promote: evidence` needs a tolerance on errors"), "{errors}");
    assert!(errors.contains("can never be shown within it"), "{errors}");
    let latency = plan(&strict.replace("slower_than: 250ms, tolerance: 1", "slower_than: 250ms")).unwrap_err();
    assert!(latency.starts_with("p.yaml:11:12: error: `promote: evidence` needs a tolerance on latency"), "{latency}");
}

#[test]
fn required_keys_and_the_policy_compiling() {
    let missing = plan("policy: forecast.canary\nservice: forecast\nrule: 3\ncanary: v2\n").unwrap_err();
    assert_eq!(missing, "p.yaml:1:1: error: the plan is missing `steps` (e.g. `steps: [1, 5, 20, 50, 100]`)");
    assert_eq!(
        plan("").unwrap_err(),
        "p.yaml:1:1: error: the plan is empty (it needs at least `policy`, `service`, `rule`, `steps` and `metrics`)"
    );
    assert!(plan("- a\n").unwrap_err().starts_with("p.yaml:1:1: error: a plan is a mapping"));

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.canary"), "service forecast {\n  50% v2 v3\n}\n").unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, "policy: bad.canary\nservice: forecast\nrule: 2\nsteps: [100]\n").unwrap();
    let e = Plan::load(&path).unwrap_err().to_string();
    assert!(e.contains("p.yaml:1:9: error: the policy does not compile:\n") && e.contains("bad.canary:2:"), "{e}");
    assert!(Plan::load(Path::new("/nonexistent/p.yaml")).unwrap_err().to_string().contains("cannot read the plan"));
}
