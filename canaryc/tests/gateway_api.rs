//! `canaryc manifest --kind gateway-api`: every document the scenarios produce (native, auto and filter forms,
//! Envoy Gateway and Istio, Gateway and Service parents) is accepted by the Gateway API's schemas as npm
//! `@kubernetes-models/gateway-api` 2.0.0 ships them (Gateway API v1.5; Istio's WasmPlugin by the Istio
//! package), the validation demonstrably rejects broken routes, refusals point at the rule with the reason,
//! and Envoy Gateway's EnvoyExtensionPolicy — for which no package ships a schema — has exactly the fields of
//! its v1.9 Go types (`api/v1alpha1/wasm_types.go`).
//! Agreement with the evaluator in real Envoy: `tests/tests/envoy_gateway_api.rs`.

#[path = "manifest/crd.rs"]
mod crd;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

use crd::Crds;

const SHA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn policy_path(name: &str) -> String {
    workspace().join("examples").join(format!("{name}.canary")).display().to_string()
}

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

fn gateway_api(policy: &str, args: &[&str]) -> Output {
    let path = policy_path(policy);
    let mut all = vec!["manifest", path.as_str(), "--kind", "gateway-api"];
    all.extend_from_slice(args);
    canaryc(&all)
}

fn documents(yaml: &str) -> Vec<Value> {
    assert!(!yaml.contains(": !"), "YAML tags would not survive kubectl:\n{yaml}");
    canary_yaml::documents(yaml)
        .expect("each document is YAML")
        .into_iter()
        .map(|doc| serde_json::to_value(doc).expect("JSON"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The fields of Envoy Gateway v1.9's `EnvoyExtensionPolicy` that we write, as its Go types declare them
/// (`api/v1alpha1/envoyextensionypolicy_types.go`, `wasm_types.go`, `PolicyTargetReferences`): unknown or
/// missing required fields are errors, as the API server's strict validation would make them.
fn extension_policy_errors(doc: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    let only = |v: &Value, allowed: &[&str], at: &str, errors: &mut Vec<String>| {
        for k in keys(v) {
            if !allowed.contains(&k.as_str()) {
                errors.push(format!("{at}: unknown field {k}"));
            }
        }
    };
    if doc["apiVersion"] != "gateway.envoyproxy.io/v1alpha1" {
        errors.push("apiVersion".into());
    }
    let spec = &doc["spec"];
    only(spec, &["targetRef", "targetRefs", "targetSelectors", "wasm", "extProc", "lua"], "spec", &mut errors);
    for t in spec["targetRefs"].as_array().into_iter().flatten() {
        only(t, &["group", "kind", "name", "sectionName"], "targetRefs[]", &mut errors);
        if t["group"] != "gateway.networking.k8s.io"
            || !["Gateway", "HTTPRoute"].contains(&t["kind"].as_str().unwrap_or(""))
        {
            errors.push(format!("targetRefs[]: {t}"));
        }
    }
    let wasm = spec["wasm"].as_array().cloned().unwrap_or_default();
    if wasm.is_empty() || wasm.len() > 16 {
        errors.push("spec.wasm: 1..16 entries".into());
    }
    for w in &wasm {
        only(w, &["name", "rootID", "code", "config", "failOpen", "env"], "wasm[]", &mut errors);
        let code = &w["code"];
        only(code, &["type", "http", "image", "pullPolicy"], "wasm[].code", &mut errors);
        let source = match code["type"].as_str() {
            Some("HTTP") => &code["http"],
            Some("Image") => &code["image"],
            other => {
                errors.push(format!("code.type {other:?}"));
                continue;
            }
        };
        only(source, &["url", "sha256", "tls", "pullSecretRef"], "wasm[].code.source", &mut errors);
        if !source["url"].is_string() {
            errors.push("code source url is required".into());
        }
        if code["type"] == "HTTP" && source["sha256"].as_str().is_none_or(|s| s.len() != 64) {
            errors.push("an HTTP code source needs its sha256".into());
        }
        if !w["config"].is_object() {
            errors.push("config: the policy JSON".into());
        }
    }
    errors
}

/// Every document `args` produce is valid; returns the kinds written.
fn assert_valid(crds: &mut Crds, policy: &str, args: &[&str]) -> Vec<String> {
    let out = gateway_api(policy, args);
    assert!(out.status.success(), "{policy} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    assert!(!docs.is_empty());
    let mut kinds = Vec::new();
    for doc in docs {
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let errors = if kind == "EnvoyExtensionPolicy" { extension_policy_errors(&doc) } else { crds.errors(&doc) };
        assert_eq!(errors, Vec::<String>::new(), "{policy} {args:?}: {kind}\n{doc:#}");
        kinds.push(kind);
    }
    kinds
}

#[test]
fn every_scenario_in_every_form_is_schema_valid() {
    let mut crds = Crds::default();
    let http = ["s1-all-v1", "s2-forecast-50", "s2-forecast-100", "s3-chrome", "s4-android-split", "s5-tester-chain"];
    let ports = ["--port", "frontend=8000", "--port", "forecast=8000", "--port", "recommendation=8000"];
    let mut seen = std::collections::BTreeSet::new();
    for policy in http {
        for (implementation, url) in
            [("envoy-gateway", "https://example.com/canary.wasm"), ("istio", "oci://registry.example.com/canary:0.1")]
        {
            for backend in ["filter", "auto"] {
                let mut mesh = vec!["--parent", "service", "--implementation", implementation, "--backend", backend];
                mesh.extend_from_slice(&ports);
                mesh.extend_from_slice(&["--service", "frontend", "--subsets", "v1,v2", "--wasm-url", url]);
                mesh.extend_from_slice(&["--sha256", SHA]);
                if implementation == "istio" {
                    seen.extend(assert_valid(&mut crds, policy, &mesh));
                }
                let mut edge =
                    vec!["--parent", "gateway/weather-gateway", "--service", "frontend", "--backend", backend];
                edge.extend_from_slice(&["--implementation", implementation, "--edge-host", "weather.example.com"]);
                edge.extend_from_slice(&ports);
                edge.extend_from_slice(&["--subsets", "v1,v2", "--wasm-url", url, "--sha256", SHA]);
                seen.extend(assert_valid(&mut crds, policy, &edge));
            }
        }
    }
    let tcp = ["--parent", "gateway/tcp-echo-gateway", "--port", "tcp-echo=9000", "--backend", "native"];
    seen.extend(assert_valid(&mut crds, "s6-tcp-split", &tcp));
    let kinds: Vec<&str> = seen.iter().map(String::as_str).collect();
    assert_eq!(kinds, ["EnvoyExtensionPolicy", "HTTPRoute", "TCPRoute", "WasmPlugin"]);
}

#[test]
fn the_validation_rejects_broken_routes() {
    let mut crds = Crds::default();
    let out = gateway_api(
        "s3-chrome",
        &["--parent", "gateway/gw", "--port", "forecast=80", "--backend", "native", "--service", "forecast"],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let route = documents(&String::from_utf8(out.stdout).unwrap()).remove(0);
    assert_eq!(crds.errors(&route), Vec::<String>::new());
    // Sets `key` of the object at `parent` (added when absent).
    let edit = |pointer: &str, value: Value| {
        let mut broken = route.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let object = broken.pointer_mut(parent).unwrap_or_else(|| panic!("{parent} in {route:#}"));
        match object {
            Value::Array(items) => items[key.parse::<usize>().unwrap()] = value,
            Value::Object(map) => {
                map.insert(key.to_string(), value);
            }
            _ => panic!("{parent} is not a container"),
        }
        broken
    };
    for (broken, what) in [
        (edit("/spec/rules/0/matches/0/headers/0/type", json!("Contains")), "header match type"),
        (edit("/spec/rules/0/backendRefs/0/weight", json!(1_000_001)), "weight range"),
        (edit("/spec/rules/0/matches/0/headers/0/name", json!(":authority")), "header name pattern"),
        (edit("/spec/rules/0/backendRefs/0", json!({"name": "forecast-v2"})), "Service port"),
        (edit("/spec/rules/0/matches/0/method", json!("FETCH")), "method enum"),
        (edit("/spec/rules/0/matches/0/headers/0/nmae", json!("x")), "unknown field"),
        (edit("/spec/rules/1/name", json!("rule-3")), "unique rule names"),
    ] {
        assert!(!crds.errors(&broken).is_empty(), "{what} must be refused:\n{broken:#}");
    }
    let policy = json!({"apiVersion": "gateway.envoyproxy.io/v1alpha1", "kind": "EnvoyExtensionPolicy",
        "spec": {"targetRefs": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute", "name": "x"}],
                 "wasm": [{"code": {"type": "HTTP", "http": {"url": "https://x/y.wasm"}}, "config": {}}]}});
    assert!(!extension_policy_errors(&policy).is_empty(), "an HTTP module without sha256");
}

#[test]
fn refusals_point_at_the_rule_and_auto_says_which_backend() {
    let native = gateway_api(
        "s5-tester-chain",
        &["--parent", "service", "--port", "frontend=8000", "--port", "forecast=8000", "--backend", "native"],
    );
    assert_eq!(native.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&native.stderr);
    assert!(
        stderr.contains("s5-tester-chain.canary:5:3: error: no exact Gateway API form for service `frontend`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("cookie") && stderr.contains("s5-tester-chain.canary:9:3") && stderr.contains("caller"),
        "{stderr}"
    );
    assert!(native.stdout.is_empty());

    let auto = gateway_api(
        "s5-tester-chain",
        &[
            "--parent",
            "service",
            "--implementation",
            "istio",
            "--port",
            "frontend=8000",
            "--port",
            "forecast=8000",
            "--backend",
            "auto",
            "--wasm-url",
            "oci://registry.example.com/canary:0.1",
            "--sha256",
            SHA,
        ],
    );
    assert!(auto.status.success(), "{}", String::from_utf8_lossy(&auto.stderr));
    let stderr = String::from_utf8_lossy(&auto.stderr);
    assert!(stderr.contains("frontend: filter (") && stderr.contains("forecast: filter ("), "{stderr}");
    let s3 = gateway_api("s3-chrome", &["--parent", "service", "--port", "forecast=8000", "--backend", "auto"]);
    assert!(s3.status.success());
    assert!(String::from_utf8_lossy(&s3.stderr).contains("forecast: native Gateway API routes"));

    // The spec's precedence (Istio) ranks a method above a header: the pair is named.
    let dir = tempdir();
    let path = dir.join("order.canary");
    std::fs::write(&path, "service f {\n  header x = \"a\" -> v2\n  method GET -> v3\n  default v1\n}\n").unwrap();
    let p = path.display().to_string();
    let args = ["manifest", p.as_str(), "--kind", "gateway-api", "--parent", "service", "--port", "f=80"];
    let istio = canaryc(&[&args[..], &["--backend", "native", "--implementation", "istio"]].concat());
    let stderr = String::from_utf8_lossy(&istio.stderr);
    assert_eq!(istio.status.code(), Some(1));
    assert!(
        stderr.contains("order.canary:3:3") && stderr.contains("line 2") && stderr.contains("a method match"),
        "{stderr}"
    );
    // Envoy Gateway counts the method as one header: the same order, accepted (a mesh parent needs Istio,
    // so the Gateway form).
    let gw = ["manifest", p.as_str(), "--kind", "gateway-api", "--parent", "gateway/g", "--port", "f=80"];
    assert!(canaryc(&[&gw[..], &["--backend", "native"]].concat()).status.success());

    // Flags of other kinds are refused, and --parent is required.
    let missing = gateway_api("s3-chrome", &["--port", "forecast=80"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--parent"));
    let wrong = canaryc(&["manifest", &policy_path("s3-chrome"), "--kind", "istio-routes", "--parent", "service"]);
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("--parent does not apply"));
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("canaryc-gateway-api-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Round trip: importing what `--kind gateway-api --backend native` wrote decides like the policy, request by
/// request (deterministic rules) and share by share (splits), for the scenarios and policies around the
/// precedence rules.
#[test]
fn importing_the_routes_decides_like_the_policy() {
    use canary_eval::{Policy, SimpleRequest, BUCKETS};
    let dir = tempdir();
    let policies = [
        ("s3", "service forecast {\n  header user-agent ~ \"Chrome\" -> v2\n  default v1\n}\n"),
        ("s2", "service forecast {\n  50% v2\n  default v1\n}\n"),
        (
            "mixed",
            "service forecast {\n  path \"/api/\" and method POST -> v3\n  path \"/b\" -> v2\n  \
             header x-env = \"a\" -> v2\n  header x-env = \"b\" and header x-tier present: 30% v3\n  default v1\n}\n",
        ),
    ];
    let mut reqs = Vec::new();
    for path in ["/", "/api/x", "/a", "/b"] {
        for method in ["GET", "POST"] {
            for env in [None, Some("a"), Some("b")] {
                for tier in [None, Some("")] {
                    for ua in [None, Some("Mozilla Chrome/1"), Some("Firefox")] {
                        let mut r = SimpleRequest::new().header(":path", path).header(":method", method);
                        for (name, value) in [("x-env", env), ("x-tier", tier), ("user-agent", ua)] {
                            if let Some(v) = value {
                                r = r.header(name, v);
                            }
                        }
                        reqs.push(r);
                    }
                }
            }
        }
    }
    for (name, source) in policies {
        let path = dir.join(format!("{name}.canary"));
        std::fs::write(&path, source).unwrap();
        let p = path.display().to_string();
        let out = canaryc(&[
            "manifest",
            &p,
            "--kind",
            "gateway-api",
            "--backend",
            "native",
            "--parent",
            "gateway/g",
            "--port",
            "forecast=80",
        ]);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let routes = dir.join(format!("{name}.yaml"));
        std::fs::write(&routes, &out.stdout).unwrap();
        let imported = canaryc(&["import", &routes.display().to_string()]);
        assert!(imported.status.success(), "{name}: {}", String::from_utf8_lossy(&imported.stderr));
        let text = String::from_utf8(imported.stdout).unwrap();
        let back = canary_compiler::compile(&text, "imported.canary").expect("compiles");
        let original = canary_compiler::compile(source, "p.canary").unwrap();
        let (a, b) = (Policy::new(&original.config).unwrap(), Policy::new(&back.config).unwrap());
        let (sa, sb) = (a.service_or_global("forecast"), b.service_or_global("forecast"));
        for req in &reqs {
            // Every bucket of the per-request draw: the same subset for each, i.e. the same shares.
            for bucket in (0..BUCKETS).step_by(50) {
                let mut ra = FixedBucket(bucket);
                let mut rb = FixedBucket(bucket);
                let da = a.decide(sa, req, &mut ra).subset.map(|s| a.subset_name(s).to_string());
                let db = b.decide(sb, req, &mut rb).subset.map(|s| b.subset_name(s).to_string());
                // A split's subsets may come in another order; compare the shares instead of bucket by bucket.
                if da != db {
                    let share = |p: &Policy, s, want: &Option<String>| {
                        (0..BUCKETS)
                            .step_by(10)
                            .filter(|&k| {
                                p.decide(s, req, &mut FixedBucket(k)).subset.map(|x| p.subset_name(x).to_string())
                                    == *want
                            })
                            .count()
                    };
                    assert_eq!(share(&a, sa, &da), share(&b, sb, &da), "{name}: {req:?}\n{text}");
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Hands out the 32 random bits that make the evaluator's draw land in `bucket`.
struct FixedBucket(u32);

impl rand::RngCore for FixedBucket {
    fn next_u32(&mut self) -> u32 {
        ((u64::from(self.0) << 32).div_ceil(u64::from(canary_eval::BUCKETS))) as u32
    }
    fn next_u64(&mut self) -> u64 {
        u64::from(self.next_u32())
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        dest.fill(0);
    }
}

/// `examples/gateway-api/` is what its `generate.sh` prints, and every document in it is valid.
#[test]
fn the_gateway_api_examples_are_what_generate_sh_prints() {
    let dir = tempdir().join("examples");
    std::fs::create_dir_all(&dir).unwrap();
    let here = workspace().join("examples/gateway-api");
    let status = Command::new(here.join("generate.sh"))
        .arg(&dir)
        .env("CANARYC", env!("CARGO_BIN_EXE_canaryc"))
        .status()
        .expect("generate.sh runs");
    assert!(status.success());
    let mut crds = Crds::default();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let fresh = std::fs::read_to_string(&path).unwrap();
        let checked_in = std::fs::read_to_string(here.join(&name)).unwrap_or_default();
        assert_eq!(fresh, checked_in, "examples/gateway-api/{name} is stale: run examples/gateway-api/generate.sh");
        for doc in documents(&fresh) {
            let errors =
                if doc["kind"] == "EnvoyExtensionPolicy" { extension_policy_errors(&doc) } else { crds.errors(&doc) };
            assert_eq!(errors, Vec::<String>::new(), "{name}");
        }
    }
}

/// `examples/ingress-nginx/`: each imports, and S2/S3 import into the lab's own policies' rules.
#[test]
fn the_ingress_nginx_examples_import_into_the_lab_policies() {
    let here = workspace().join("examples/ingress-nginx");
    for (file, lab) in [
        ("s2-forecast-50.yaml", Some("s2-forecast-50")),
        ("s3-chrome.yaml", Some("s3-chrome")),
        ("frontend-testers.yaml", None),
    ] {
        let out = canaryc(&["import", &here.join(file).display().to_string()]);
        assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let imported = canary_compiler::compile(&text, file).expect("compiles").config;
        if let Some(lab) = lab {
            let source = std::fs::read_to_string(policy_path(lab)).unwrap();
            let want = canary_compiler::compile(&source, lab).unwrap().config;
            let rules = |c: &canary_eval::Config| {
                let s = c.services.iter().find(|s| s.name == "forecast").expect("forecast");
                let whens: Vec<_> = s.rules.rules.iter().map(|r| (r.when.clone(), r.then.clone())).collect();
                (whens, s.rules.default.clone())
            };
            assert_eq!(rules(&imported), rules(&want), "{file} imports into {lab}'s forecast rules");
        }
    }
}

/// Route settings on an HTTPRoute: timeouts, header edits and mirrors are written per rule (CRD-valid); a field
/// with no Standard Gateway API form is refused naming it, rather than deployed without it.
#[test]
fn route_settings_are_written_or_refused_per_field() {
    let dir = tempdir().join("settings");
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("p.canary");
    let text = "settings \"s.yaml\"\nservice forecast {\n  mirror 10% to v3\n  header x = \"a\" -> v2 with slow\n  default v1\n}\n";
    std::fs::write(&policy, text).unwrap();
    let run = |backend: &str| {
        let path = policy.display().to_string();
        let args = [
            "manifest",
            &path,
            "--kind",
            "gateway-api",
            "--backend",
            backend,
            "--parent",
            "service",
            "--port",
            "forecast=8080",
        ];
        let out = canaryc(&args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Written: a timeout per rule (its profile's on the rule), the header edit and the mirror on every rule.
    let settings = "forecast:\n  timeout: 0.5s\n  headers: {request: {set: {x-a: \"1\"}, remove: [x-b]}}\n  profiles:\n    slow: {timeout: 3s, mirror: {subset: v2}, mirrorPercentage: {value: 50}}\n";
    std::fs::write(dir.join("s.yaml"), settings).unwrap();
    let (ok, stdout, stderr) = run("native");
    assert!(ok, "{stderr}");
    let route: serde_json::Value = canary_yaml::documents(&stdout)
        .unwrap()
        .into_iter()
        .map(|d| serde_json::to_value(d).unwrap())
        .find(|d| d["kind"] == "HTTPRoute")
        .expect("an HTTPRoute");
    assert_eq!(Crds::default().errors(&route), Vec::<String>::new(), "valid against the Gateway API CRD");
    let rules = route["spec"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["timeouts"]["request"], "3s");
    assert_eq!(rules[1]["timeouts"]["request"], "500ms");
    let header = serde_json::json!({ "type": "RequestHeaderModifier", "requestHeaderModifier": {
        "set": [{ "name": "x-a", "value": "1" }], "remove": ["x-b"] } });
    let mirror = |subset: &str, percent: u32| {
        serde_json::json!({ "type": "RequestMirror", "requestMirror": {
        "backendRef": { "name": format!("forecast-{subset}"), "port": 8080 }, "percent": percent } })
    };
    assert_eq!(rules[0]["filters"], serde_json::json!([header, mirror("v2", 50)]));
    assert_eq!(rules[1]["filters"], serde_json::json!([header, mirror("v3", 10)]));
    // Refused, with the reason and the rule: retries (experimental), a mirror share that is no whole percent.
    for (settings, why) in [
        (
            "forecast:\n  retries: {attempts: 2}\n  profiles: {slow: {}}\n",
            "`retries`: the Gateway API's `retry` (GEP-1731) is Experimental",
        ),
        (
            "forecast:\n  profiles: {slow: {mirror: {subset: v2}, mirrorPercentage: {value: 12.5}}}\n",
            "service `forecast`, rule on line 4: a mirror of 12.5%",
        ),
        ("forecast:\n  corsPolicy: {allowMethods: [GET]}\n  profiles: {slow: {}}\n", "`corsPolicy`: not written"),
    ] {
        std::fs::write(dir.join("s.yaml"), settings).unwrap();
        let (ok, stdout, stderr) = run("native");
        assert!(!ok && stdout.is_empty() && stderr.contains(why), "{settings}: {stderr}");
    }
    // The filter form maps subsets, not rules: a profile needs the native form.
    std::fs::write(dir.join("s.yaml"), "forecast:\n  profiles: {slow: {timeout: 1s}}\n").unwrap();
    let (ok, _, stderr) = run("filter");
    assert!(!ok && stderr.contains("--backend native"), "{stderr}");
}
