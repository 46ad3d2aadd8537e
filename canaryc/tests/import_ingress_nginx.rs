//! `canaryc import` of ingress-nginx canary Ingresses: one test per semantic rule of the annotations as
//! ingress-nginx controller-v1.15.1 applies them (`rootfs/etc/nginx/lua/balancer.lua`,
//! `route_to_alternative_balancer`): header always/never/value/pattern, cookie always/never, weight and
//! weight-total, their precedence (header > cookie > weight), and the refusals (a canary without its main
//! Ingress, session affinity, an annotation not carried, a pattern canary cannot run). Each imported policy is
//! compiled and asked with the evaluator what nginx would answer; splits are counted within 5σ.

use canary_eval::{Policy, SimpleRequest};
use canary_import::{import, Input, Severity};
use rand::SeedableRng;

const MAIN: &str = "apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: forecast
  namespace: weather
spec:
  ingressClassName: nginx
  rules:
  - host: forecast.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: forecast-v1
            port:
              number: 8000
";

fn canary(annotations: &[(&str, &str)]) -> String {
    let mut s = String::from(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: forecast-canary\n  namespace: weather\n  \
         annotations:\n    nginx.ingress.kubernetes.io/canary: \"true\"\n",
    );
    for (k, v) in annotations {
        s += &format!("    nginx.ingress.kubernetes.io/{k}: {v:?}\n");
    }
    s += "spec:\n  ingressClassName: nginx\n  rules:\n  - host: forecast.example.com\n    http:\n      paths:\n      - path: /\n        \
          pathType: Prefix\n        backend:\n          service:\n            name: forecast-v2\n            port:\n              number: 8000\n";
    s
}

/// The imported policy, compiled.
fn imported(annotations: &[(&str, &str)]) -> Policy {
    let text = format!("{MAIN}---\n{}", canary(annotations));
    let out = import(&[Input { name: "ingress.yaml", text: &text }]);
    let errors: Vec<String> = out.errors().map(|m| m.to_string()).collect();
    assert!(errors.is_empty(), "{annotations:?}: {errors:?}");
    let policy = out.policy.expect("a policy");
    let compiled = canary_compiler::compile(&policy, "imported.canary").expect("the printed policy compiles");
    Policy::new(&compiled.config).expect("loads")
}

/// Errors of importing `text`, as `path: text`.
fn errors(text: &str) -> Vec<String> {
    let out = import(&[Input { name: "ingress.yaml", text }]);
    assert!(out.policy.is_none() || out.errors().next().is_none());
    out.messages.iter().filter(|m| m.severity == Severity::Error).map(|m| format!("{}: {}", m.path, m.text)).collect()
}

/// The subset for one request (deterministic rules: asked 200 times, one answer).
fn subset(policy: &Policy, req: &SimpleRequest) -> String {
    let service = policy.service_or_global("forecast");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..200 {
        let d = policy.decide(service, req, &mut rng);
        seen.insert(d.subset.map_or("none".to_string(), |s| policy.subset_name(s).to_string()));
    }
    assert_eq!(seen.len(), 1, "{req:?} is decided at random: {seen:?}");
    seen.into_iter().next().unwrap()
}

/// Share of `n` requests routed to v2, with the 5σ bounds of `p`.
fn share_within_5_sigma(policy: &Policy, req: &SimpleRequest, p: f64) {
    let n = 20_000usize;
    let service = policy.service_or_global("forecast");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(11);
    let v2 = (0..n)
        .filter(|_| policy.decide(service, req, &mut rng).subset.is_some_and(|s| policy.subset_name(s) == "v2"))
        .count();
    let sigma = (n as f64 * p * (1.0 - p)).sqrt();
    let (lo, hi) = (n as f64 * p - 5.0 * sigma, n as f64 * p + 5.0 * sigma);
    assert!((lo..=hi).contains(&(v2 as f64)), "{v2} of {n} to v2, expected {p} within 5σ ({lo:.0}..{hi:.0})");
}

fn req() -> SimpleRequest {
    SimpleRequest::new().header(":authority", "forecast.example.com").header(":path", "/")
}

#[test]
fn header_always_routes_to_the_canary_and_never_to_stable_skipping_the_rest() {
    let p = imported(&[("canary-by-header", "X-Canary"), ("canary-by-cookie", "canary"), ("canary-weight", "100")]);
    assert_eq!(subset(&p, &req().header("x-canary", "always")), "v2");
    // `never` is stable even though the cookie says always and the weight is 100.
    assert_eq!(subset(&p, &req().header("x-canary", "never").cookie("canary", "always")), "v1");
    // Any other value falls through: to the cookie, then the weight (100: canary).
    assert_eq!(subset(&p, &req().header("x-canary", "maybe").cookie("canary", "never")), "v1");
    assert_eq!(subset(&p, &req().header("x-canary", "maybe")), "v2");
}

#[test]
fn header_value_replaces_always_and_never() {
    let p = imported(&[("canary-by-header", "x-canary"), ("canary-by-header-value", "blue")]);
    assert_eq!(subset(&p, &req().header("x-canary", "blue")), "v2");
    assert_eq!(subset(&p, &req().header("x-canary", "always")), "v1", "always is not checked once a value is set");
    assert_eq!(subset(&p, &req().header("x-canary", "bluer")), "v1", "exact, not a prefix");
    assert_eq!(subset(&p, &req()), "v1");
}

#[test]
fn header_pattern_is_an_unanchored_search_and_value_wins_over_it() {
    let p = imported(&[("canary-by-header", "user-agent"), ("canary-by-header-pattern", "Chrome|Android")]);
    assert_eq!(subset(&p, &req().header("user-agent", "Mozilla/5.0 Chrome/120")), "v2");
    assert_eq!(subset(&p, &req().header("user-agent", "Mozilla/5.0 Firefox/120")), "v1");
    let both = imported(&[
        ("canary-by-header", "x-canary"),
        ("canary-by-header-value", "blue"),
        ("canary-by-header-pattern", "gr.*"),
    ]);
    assert_eq!(subset(&both, &req().header("x-canary", "green")), "v1", "the pattern is ignored when a value is set");
    assert_eq!(subset(&both, &req().header("x-canary", "blue")), "v2");
}

#[test]
fn cookie_always_and_never() {
    let p = imported(&[("canary-by-cookie", "canary"), ("canary-weight", "100")]);
    assert_eq!(subset(&p, &req().cookie("canary", "always")), "v2");
    assert_eq!(subset(&p, &req().cookie("canary", "never")), "v1", "never beats the weight");
    assert_eq!(subset(&p, &req().cookie("canary", "yes")), "v2", "other values fall through to the weight");
}

#[test]
fn weight_and_weight_total_split_per_request() {
    share_within_5_sigma(&imported(&[("canary-weight", "20")]), &req(), 0.20);
    share_within_5_sigma(&imported(&[("canary-weight", "250"), ("canary-weight-total", "1000")]), &req(), 0.25);
    // A total of 100 or less counts as 100 (balancer.lua line 269): 30 of 50 is 30%, not 60%.
    share_within_5_sigma(&imported(&[("canary-weight", "30"), ("canary-weight-total", "50")]), &req(), 0.30);
    assert_eq!(subset(&imported(&[("canary-weight", "0")]), &req()), "v1");
    assert_eq!(subset(&imported(&[("canary-weight", "100")]), &req()), "v2");
}

#[test]
fn precedence_is_header_then_cookie_then_weight() {
    let p = imported(&[("canary-by-header", "x-canary"), ("canary-by-cookie", "canary"), ("canary-weight", "0")]);
    assert_eq!(subset(&p, &req().header("x-canary", "always").cookie("canary", "never")), "v2", "header first");
    assert_eq!(subset(&p, &req().header("x-canary", "other").cookie("canary", "always")), "v2", "then cookie");
    assert_eq!(subset(&p, &req().cookie("canary", "other")), "v1", "then weight (0)");
}

#[test]
fn what_cannot_be_carried_is_an_error_naming_its_yaml_path() {
    // A canary without its main Ingress names it.
    let alone = errors(&canary(&[("canary-weight", "10")]));
    assert!(alone.iter().any(|e| e.contains("forecast-canary") && e.contains("no main Ingress")), "{alone:?}");
    for (annotation, why) in [
        (("affinity", "cookie"), "session affinity"),
        (("session-cookie-name", "route"), "session affinity"),
        (("rewrite-target", "/"), "not carried"),
        (("canary-by-header-pattern", "(?<=a)b"), "not a regex canary can run"),
        (("canary-weight", "ten"), "integer"),
        (("canary-by-cookie", "x canary!"), "refuses"),
    ] {
        let text = format!("{MAIN}---\n{}", canary(&[("canary-by-header", "x-canary"), annotation]));
        let errs = errors(&text);
        let path = format!("metadata.annotations[\"nginx.ingress.kubernetes.io/{}\"]", annotation.0);
        assert!(errs.iter().any(|e| e.contains(why) && e.contains(&path)), "{annotation:?}: {errs:?}");
    }
    // Affinity on the main Ingress overrides the canary too.
    let main = MAIN.replace(
        "  namespace: weather\n",
        "  namespace: weather\n  annotations:\n    nginx.ingress.kubernetes.io/affinity: cookie\n",
    );
    assert!(errors(&format!("{main}---\n{}", canary(&[]))).iter().any(|e| e.contains("session affinity")));
    // A canary on a sub-path is not a whole service.
    let sub = canary(&[]).replace("- path: /\n", "- path: /api\n");
    assert!(errors(&format!("{MAIN}---\n{sub}")).iter().any(|e| e.contains("path \"/api\"")));
}
