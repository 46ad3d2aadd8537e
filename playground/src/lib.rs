//! canary-playground: the browser playground's bindings to the real compiler and evaluator.
//!
//! The page must show exactly what `canaryc` and the Envoy filter do, so this crate decides nothing: each
//! function turns the page's strings into calls on `canary-compiler` / `canary-eval` and their results
//! into JSON for the page. Results are JSON strings (the page does one `JSON.parse`; no serde-wasm-bindgen),
//! and the request comes in through a small class, so the module carries a JSON writer but no parser.
//!
//! The functions are stateless (each one compiles the source it is given): compiling a policy takes
//! microseconds, and it means the page can never evaluate against a stale policy.

use canary_compiler::analysis;
use canary_compiler::request::Keys;
use canary_dsl::{line_col, Diagnostic};
use canary_eval::config::Protocol;
use canary_eval::{Config, Policy, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// The file name diagnostics are attributed to (the page shows only `LINE:COL`).
const FILE: &str = "policy.canary";

/// The bindings' version, shown in the page footer.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// Compiles `source` as `canaryc compile` and `canaryc check` would. Returns a [`Report`] as JSON.
#[wasm_bindgen]
pub fn compile(source: &str) -> String {
    let report = match canary_compiler::compile(source, FILE) {
        Ok(compiled) => {
            let findings = analysis::analyse(&compiled.config, None);
            let mut warnings = compiled.warnings;
            warnings.extend(canary_compiler::findings_to_diagnostics(&findings, source));
            let services = &compiled.config.services;
            Report {
                ok: true,
                config: Some(canary_compiler::config_json(&compiled.config)),
                errors: Vec::new(),
                warnings: diagnostics(&warnings, source),
                services: services.iter().map(|s| s.name.clone()).collect(),
                tcp: services.iter().filter(|s| s.protocol == Protocol::Tcp).map(|s| s.name.clone()).collect(),
            }
        }
        Err(diags) => {
            let (errors, warnings): (Vec<_>, Vec<_>) = diags.into_iter().partition(Diagnostic::is_error);
            Report {
                ok: false,
                config: None,
                errors: diagnostics(&errors, source),
                warnings: diagnostics(&warnings, source),
                services: Vec::new(),
                tcp: Vec::new(),
            }
        }
    };
    to_json(&report)
}

/// What [`compile`] returns. `warnings` holds the compiler's warnings followed by `canaryc check`'s.
#[derive(Serialize)]
struct Report {
    ok: bool,
    /// The config exactly as `canaryc compile` prints it.
    config: Option<String>,
    errors: Vec<Diag>,
    warnings: Vec<Diag>,
    /// Declared services, and those of them that are TCP services.
    services: Vec<String>,
    tcp: Vec<String>,
}

/// A diagnostic with 1-based character positions for both ends of its span, so the page can underline it.
#[derive(Serialize)]
struct Diag {
    severity: &'static str,
    message: String,
    line: usize,
    col: usize,
    end_line: usize,
    end_col: usize,
    label: Option<String>,
    hint: Option<String>,
    notes: Vec<String>,
}

fn diagnostics(diags: &[Diagnostic], source: &str) -> Vec<Diag> {
    diags
        .iter()
        .map(|d| {
            let (start, end) = (line_col(source, d.span.start), line_col(source, d.span.end));
            Diag {
                severity: d.severity.as_str(),
                message: d.message.clone(),
                line: start.line,
                col: start.col,
                end_line: end.line,
                end_col: end.col,
                label: d.label.clone(),
                hint: d.hint.clone(),
                notes: d.notes.iter().map(|n| n.message.clone()).collect(),
            }
        })
        .collect()
}

/// The request form, filled by the page one field at a time (a class rather than JSON, so the module
/// needs no JSON parser). `service` is a declared service's name, or empty for "any other service"
/// (top-level rules only); unset fields take `canaryc eval`'s defaults.
#[wasm_bindgen]
#[derive(Default)]
pub struct Request {
    service: String,
    spec: canary_compiler::request::RequestSpec,
}

#[wasm_bindgen]
impl Request {
    /// A request to `service` (empty: a service the policy does not declare).
    #[wasm_bindgen(constructor)]
    pub fn new(service: &str) -> Request {
        Request { service: service.to_string(), spec: canary_compiler::request::RequestSpec::default() }
    }

    /// `:method` (default `GET`).
    pub fn method(&mut self, method: &str) {
        self.spec.method = Some(method.to_string());
    }

    /// `:path`, query string included (default `/`).
    pub fn path(&mut self, path: &str) {
        self.spec.path = Some(path.to_string());
    }

    /// `:authority` (default: the service's name, as a mesh client would send it).
    pub fn host(&mut self, host: &str) {
        self.spec.host = Some(host.to_string());
    }

    /// A header; repeated names are kept, as on the wire.
    pub fn header(&mut self, name: &str, value: &str) {
        self.spec.headers.push((name.to_string(), value.to_string()));
    }

    /// A cookie, added to the `cookie` header the evaluator parses (RFC 6265).
    pub fn cookie(&mut self, name: &str, value: &str) {
        self.spec.cookies.push((name.to_string(), value.to_string()));
    }

    /// A query parameter, appended to the path.
    pub fn query(&mut self, name: &str, value: &str) {
        self.spec.queries.push((name.to_string(), value.to_string()));
    }

    /// A label of the calling workload (`source LABEL=VALUE` conditions).
    pub fn source(&mut self, label: &str, value: &str) {
        self.spec.sources.push((label.to_string(), value.to_string()));
    }
}

/// What [`evaluate`] returns: `canaryc eval --json`'s `{"subset", "rule"}`, or `{"error"}`.
#[derive(Serialize, Default)]
struct Decided<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    subset: Option<&'a str>,
    rule: Option<u32>,
}

/// Decides one request as `canaryc eval --json` does; `seed` drives a non-sticky split's draw.
#[wasm_bindgen]
pub fn evaluate(source: &str, request: &Request, seed: u32) -> String {
    match prepare(source, request) {
        Ok((_, policy, service, req)) => {
            let decision = policy.decide(service, &req, &mut SmallRng::seed_from_u64(seed.into()));
            to_json(&Decided {
                error: None,
                subset: decision.subset.map(|s| policy.subset_name(s)),
                rule: decision.rule.map(|r| policy.rule_line(r)),
            })
        }
        Err(error) => to_json(&Decided { error: Some(error), ..Decided::default() }),
    }
}

/// What [`explain`] returns: the decided subset and `canaryc eval --explain`'s text, or `{"error"}`. (The
/// page needs no more; leaving the structured report out keeps its serializer out of the module.)
#[derive(Serialize, Default)]
struct Explained {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    subset: Option<String>,
    /// Exactly what `canaryc eval --explain` prints for this request.
    text: String,
}

/// Decides one request as `canaryc eval --explain` does and explains it; with the `seed` given to
/// [`evaluate`], a non-sticky split draws the same bucket, so the explanation is of the decision shown.
#[wasm_bindgen]
pub fn explain(source: &str, request: &Request, seed: u32) -> String {
    match prepare(source, request) {
        Ok((config, policy, service, req)) => {
            let mut rng = SmallRng::seed_from_u64(seed.into());
            let report = canary_compiler::explain::explain(&config, &policy, service, &req, &mut rng);
            let text = canary_compiler::explain::text(&report);
            to_json(&Explained { error: None, subset: report.subset, text })
        }
        Err(error) => to_json(&Explained { error: Some(error), ..Explained::default() }),
    }
}

/// What [`simulate`] returns: `canaryc simulate`'s counts per subset and the note it prints, or `{"error"}`.
#[derive(Serialize, Default)]
struct Simulated {
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    counts: std::collections::BTreeMap<String, u64>,
    /// What was simulated (users or one fixed key), as `canaryc simulate` says on stderr.
    note: String,
}

/// Decides `n` requests as `canaryc simulate` does: from `n` users (each sticky key generated per
/// request), or with `fixed_key` the request's own keys (`--fixed-key`).
#[wasm_bindgen]
pub fn simulate(source: &str, request: &Request, n: u32, seed: u32, fixed_key: bool) -> String {
    match prepare(source, request) {
        Ok((config, policy, service, req)) => {
            let mut rng = SmallRng::seed_from_u64(seed.into());
            let keys = if fixed_key { Keys::Fixed } else { Keys::Generated };
            let sim = canary_compiler::request::simulate(&policy, &config, service, &req, n.into(), keys, &mut rng);
            to_json(&Simulated { error: None, note: sim.note(), counts: sim.counts })
        }
        Err(error) => to_json(&Simulated { error: Some(error), ..Simulated::default() }),
    }
}

/// Compiles the policy and builds the request; errors are messages for the page.
fn prepare(source: &str, request: &Request) -> Result<(Config, Policy, ServiceId, SimpleRequest), String> {
    let compiled = canary_compiler::compile(source, FILE).map_err(|_| "the policy has errors".to_string())?;
    let policy = Policy::new(&compiled.config).map_err(|e| format!("compiled config refused: {e}"))?;
    let service =
        if request.service.is_empty() { policy.fallback() } else { policy.service_or_global(&request.service) };
    let req = request.spec.build(policy.service_name(service));
    Ok((compiled.config, policy, service, req))
}

/// Serializing these plain structs cannot fail; an empty object keeps the page's `JSON.parse` working.
fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn parse(json: &str) -> Value {
        serde_json::from_str(json).expect("the bindings return JSON")
    }

    #[test]
    fn compile_reports_errors_with_positions() {
        let report = parse(&compile("service frontend {\n  cookie user=tester => v2\n}\n"));
        assert_eq!(report["ok"], false);
        assert_eq!(report["config"], Value::Null);
        let error = &report["errors"][0];
        assert_eq!((error["line"].as_u64(), error["col"].as_u64()), (Some(2), Some(22)));
        assert_eq!(error["severity"], "error");
    }

    #[test]
    fn compile_returns_canaryc_json_and_check_warnings() {
        let source = "service forecast {\n  50% v2\n  header user-agent ~ \"Chrome\" -> v2\n  default v1\n}\n";
        let report = parse(&compile(source));
        assert_eq!(report["ok"], true);
        let compiled = canary_compiler::compile(source, FILE).unwrap();
        assert_eq!(report["config"], canary_compiler::config_json(&compiled.config));
        assert_eq!(report["services"], serde_json::json!(["forecast"]));
        assert!(report["warnings"].as_array().unwrap().iter().any(|w| w["line"] == 3), "{report}");
    }

    #[test]
    fn evaluate_and_simulate_s4() {
        let source = include_str!("../../examples/s4-android-split.canary");
        let mut android = Request::new("frontend");
        android.header("user-agent", "Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/124.0 Mobile Safari/537.36");
        let d = parse(&evaluate(source, &android, 7));
        assert!(d["subset"] == "v1" || d["subset"] == "v2", "{d}");
        assert_eq!(d["rule"], 3);
        let counts = parse(&simulate(source, &android, 10_000, 7, false))["counts"].clone();
        let v2 = counts["v2"].as_u64().unwrap();
        assert_eq!(counts["v1"].as_u64().unwrap() + v2, 10_000);
        assert!(v2.abs_diff(5_000) <= 250, "{counts}");

        let mut mac = Request::new("frontend");
        mac.header("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Version/17.4 Safari/605.1.15");
        assert_eq!(parse(&evaluate(source, &mac, 7)), serde_json::json!({ "subset": "v1", "rule": null }));
    }

    #[test]
    fn a_sticky_key_in_the_request_is_one_user_only_with_a_fixed_key() {
        let source = "service web {\n  10% v2 by cookie uid\n  default v1\n}\n";
        let mut req = Request::new("web");
        req.cookie("uid", "abc123");
        let users = parse(&simulate(source, &req, 10_000, 3, false));
        let v2 = users["counts"]["v2"].as_u64().unwrap();
        assert!(v2.abs_diff(1_000) <= 150, "{users}");
        assert!(users["note"].as_str().unwrap().contains("cookie uid=abc123 is replaced"), "{users}");
        let one = parse(&simulate(source, &req, 1_000, 3, true));
        assert_eq!(one["counts"].as_object().unwrap().len(), 1, "{one}");
        assert!(one["note"].as_str().unwrap().contains("one user"), "{one}");
    }

    #[test]
    fn explain_is_the_clis_text_for_the_decision_evaluate_shows() {
        let source = include_str!("../../examples/s5-tester-chain.canary");
        let mut req = Request::new("frontend");
        req.cookie("user", "alice");
        let e = parse(&explain(source, &req, 1));
        assert_eq!(e["subset"], parse(&evaluate(source, &req, 1))["subset"]);
        let text = e["text"].as_str().unwrap();
        assert!(text.contains("✗ cookie user=tester: cookie user is \"alice\""), "{text}");
        assert!(text.ends_with("decision: v1 (no rule matched: the default)\n"), "{text}");
    }

    #[test]
    fn a_broken_policy_is_an_error_not_a_panic() {
        let d = parse(&evaluate("service {", &Request::new(""), 1));
        assert_eq!(d["error"], "the policy has errors");
    }
}
