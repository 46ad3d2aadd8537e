//! `canaryc manifest`: every generated Istio manifest is accepted by the Istio CRD schemas (and the validation
//! demonstrably rejects broken ones), the plugins decide exactly as the policy does for every service they
//! serve, the routes cover every subset the policy can choose, checksums are right, errors are reported as
//! the CLI contract says, and `examples/istio/` is what `generate.sh` prints.
//!
//! `UPDATE_GOLDEN=1` rewrites `examples/istio/` (review the diff).

#[path = "manifest/crd.rs"]
mod crd;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use canary_backends::manifest::istio::{sha256_hex, FAIL_STRATEGY, PHASE, SIDECAR_PRIORITY};
use canary_eval::{Config, Policy, SimpleRequest};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use crd::Crds;

const MODULE: &str = "file:///var/local/lib/wasm-filters/canary_filter.wasm";
const HTTP_SCENARIOS: [&str; 6] =
    ["s1-all-v1", "s2-forecast-50", "s2-forecast-100", "s3-chrome", "s4-android-split", "s5-tester-chain"];
const KINDS: [&str; 3] = ["wasmplugin", "envoyfilter", "istio-routes"];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn policy_path(name: &str) -> String {
    workspace().join("examples").join(format!("{name}.canary")).display().to_string()
}

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

/// `canaryc manifest POLICY --kind KIND ARGS…`, which must succeed; the YAML it prints.
fn manifest(policy: &str, kind: &str, args: &[&str]) -> String {
    let path = policy_path(policy);
    let mut all = vec!["manifest", path.as_str(), "--kind", kind];
    all.extend_from_slice(args);
    let out = canaryc(&all);
    assert!(out.status.success(), "canaryc {all:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The flags `examples/istio/generate.sh` uses for the HTTP scenarios (besides `--wasm-url`).
const HTTP_FLAGS: &[&str] = &[
    "--namespace",
    "weather",
    "--service",
    "frontend",
    "--service",
    "forecast",
    "--service",
    "recommendation",
    "--subsets",
    "v1,v2",
    "--edge",
    "frontend",
    "--gateway",
    "weather-gateway",
];
/// … and for S6.
const TCP_FLAGS: &[&str] = &["--namespace", "weather", "--port", "tcp-echo=9000", "--subsets", "v1,v2"];

fn with_module(url: &'static str, flags: &[&'static str]) -> Vec<&'static str> {
    let mut args = vec!["--wasm-url", url];
    args.extend_from_slice(flags);
    args
}

fn http_args() -> Vec<&'static str> {
    with_module(MODULE, HTTP_FLAGS)
}

fn tcp_args() -> Vec<&'static str> {
    with_module(MODULE, TCP_FLAGS)
}

/// Every (policy, kind, flags) combination the tests generate: the examples' command lines plus variants that
/// exercise the other shapes (ports on HTTP services, remote and OCI modules, gateway options, everything at once).
fn cases() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    let mut cases = Vec::new();
    for kind in KINDS {
        for scenario in HTTP_SCENARIOS {
            cases.push((scenario, kind, http_args()));
        }
        cases.push(("s6-tcp-split", kind, tcp_args()));
        let mut all = http_args();
        all.extend(["--port", "tcp-echo=9000", "--port", "frontend=80", "--port", "forecast=8080"]);
        all.extend(["--port", "recommendation=8080", "--edge-host", "weather.example.com"]);
        all.extend([
            "--gateway-namespace",
            "ingress",
            "--gateway-label",
            "app=weather-gw",
            "--cluster-domain",
            "corp.local",
        ]);
        cases.push(("weather", kind, all));
    }
    let sha = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let mut remote = with_module("https://wasm.tools.svc.cluster.local:8443/canary_filter.wasm", TCP_FLAGS);
    remote.extend(["--sha256", sha]);
    cases.push(("s6-tcp-split", "envoyfilter", remote));
    let mut oci = with_module("oci://ghcr.io/example/canary-filter:0.1.0", HTTP_FLAGS);
    oci.extend(["--sha256", sha]);
    cases.push(("s4-android-split", "wasmplugin", oci));
    cases.push(("oneliner", "istio-routes", vec!["--service", "frontend", "--subsets", "v1,v2"]));
    // Native VirtualServices where exact, plugins only where not (README "Backends").
    let filter_cases = cases.clone();
    for (policy, kind, args) in filter_cases.into_iter().filter(|c| KINDS.contains(&c.1)) {
        cases.push((policy, kind, [args, vec!["--backend", "auto"]].concat()));
    }
    cases
}

/// The documents of a multi-document YAML stream, as JSON (what the API server sees).
fn documents(yaml: &str) -> Vec<Value> {
    assert!(!yaml.contains(": !"), "YAML tags would not survive kubectl:\n{yaml}");
    canary_yaml::documents(yaml)
        .expect("each document is YAML")
        .into_iter()
        .map(|value| serde_json::to_value(value).expect("YAML is JSON-compatible"))
        // A stream of comments only (no plugin needed) has no documents; an empty one is null.
        .filter(|doc| !doc.is_null())
        .collect()
}

fn compile(name: &str) -> Config {
    let path = policy_path(name);
    let source = std::fs::read_to_string(&path).expect("example policy");
    canary_compiler::compile(&source, &path).expect("example compiles").config
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

// ---------------------------------------------------------------------------------------------------------------
// Schema validity

#[test]
fn every_generated_manifest_is_valid_against_the_istio_crds() {
    let mut crds = Crds::default();
    let mut checked = 0;
    for (policy, kind, args) in cases() {
        for doc in documents(&manifest(policy, kind, &args)) {
            let errors = crds.errors(&doc);
            assert!(
                errors.is_empty(),
                "{policy} --kind {kind}: {} {} is invalid: {errors:#?}\n{doc:#}",
                doc["kind"],
                doc["metadata"]["name"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} documents checked");
}

#[test]
fn the_validation_rejects_what_the_api_server_rejects() {
    let mut crds = Crds::default();
    let plugin = documents(&manifest("s5-tester-chain", "wasmplugin", &http_args())).remove(1);
    let filter = documents(&manifest("s6-tcp-split", "envoyfilter", &tcp_args())).remove(0);
    let routes = documents(&manifest("s4-android-split", "istio-routes", &http_args()));
    let (rule, service) =
        (find(&routes, "DestinationRule", "forecast").clone(), find(&routes, "VirtualService", "forecast").clone());
    for valid in [&plugin, &filter, &rule, &service] {
        assert_eq!(crds.errors(valid), Vec::<String>::new(), "the unbroken document must pass");
    }
    // The plugin configuration is free-form (preserve-unknown-fields): anything goes there.
    assert!(crds.errors(&edit(&plugin, "/spec/pluginConfig", json!({"anything": [1, {"x": null}]}))).is_empty());

    let broken = [
        ("misspelt field", rename(&plugin, "/spec", "failStrategy", "failStrateg"), "'failStrateg' was unexpected"),
        ("unknown enum value", edit(&plugin, "/spec/failStrategy", json!("FAIL_SOMETIMES")), "/spec/failStrategy"),
        ("wrong type", edit(&plugin, "/spec/priority", json!("high")), "/spec/priority"),
        // `is not a "int32"` from the npm validators, `maximum of 2147483647` from the CRD files' range.
        ("int32 overflow", edit(&plugin, "/spec/priority", json!(3_000_000_000u64)), "/spec/priority: 3000000000 is"),
        (
            "port out of range",
            edit(&plugin, "/spec/match", json!([{"mode": "CLIENT", "ports": [{"number": 70000}]}])),
            "maximum of 65535",
        ),
        ("traffic mode", edit(&plugin, "/spec/match/0/mode", json!("OUTBOUND")), "/spec/match/0/mode"),
        ("missing url", remove(&plugin, "/spec", "url"), "\"url\" is a required property"),
        ("checksum pattern", edit(&plugin, "/spec/sha256", json!("not-a-digest")), "/spec/sha256"),
        (
            "selector and targetRefs (CEL)",
            edit(&plugin, "/spec/targetRefs", json!([{"kind": "Gateway", "name": "gw"}])),
            "only one of targetRefs or selector",
        ),
        ("wildcard selector (CEL)", edit(&plugin, "/spec/selector/matchLabels/istio", json!("*")), "wildcard"),
        (
            "url scheme (CEL)",
            edit(&plugin, "/spec/url", json!("ftp://example.com/canary.wasm")),
            "url must have schema",
        ),
        ("metadata name", edit(&plugin, "/metadata/name", json!("Canary_Plugin")), "/metadata/name"),
        ("unknown metadata field", edit(&plugin, "/metadata/nmespace", json!("weather")), "'nmespace' was unexpected"),
        (
            "wrong apiVersion",
            edit(&plugin, "/apiVersion", json!("extensions.istio.io/v1beta1")),
            "does not serve version v1beta1",
        ),
        ("unknown top-level field", edit(&plugin, "/specs", json!({})), "'specs' was unexpected"),
        (
            "EnvoyFilter applyTo",
            edit(&filter, "/spec/configPatches/0/applyTo", json!("NETWORK_FILTERS")),
            "/spec/configPatches/0/applyTo",
        ),
        (
            "EnvoyFilter context",
            edit(&filter, "/spec/configPatches/0/match/context", json!("OUTBOUND")),
            "/spec/configPatches/0/match/context",
        ),
        (
            "EnvoyFilter operation",
            edit(&filter, "/spec/configPatches/0/patch/operation", json!("INSERT_AFTERWARDS")),
            "/spec/configPatches/0/patch/operation",
        ),
        (
            "EnvoyFilter misspelt match",
            rename(&filter, "/spec/configPatches/0/match/listener", "portNumber", "port"),
            "'port' was unexpected",
        ),
        (
            "DestinationRule subset without name",
            remove(&rule, "/spec/subsets/0", "name"),
            "\"name\" is a required property",
        ),
        ("DestinationRule host type", edit(&rule, "/spec/host", json!(["forecast"])), "/spec/host"),
        ("VirtualService misspelt route", rename(&service, "/spec/http/0", "route", "rout"), "'rout' was unexpected"),
        (
            "VirtualService destination without host",
            remove(&service, "/spec/http/0/route/0/destination", "host"),
            "\"host\" is a required property",
        ),
        (
            "VirtualService header match type",
            edit(&service, "/spec/http/0/match/0/headers/x-canary-subset/exact", json!(2)),
            "/exact: 2 is not of type",
        ),
    ];
    // Each broken document fails, and for the reason it was broken.
    for (what, doc, reason) in broken {
        let errors = crds.errors(&doc);
        assert!(errors.iter().any(|e| e.contains(reason)), "{what}: expected `{reason}`, got {errors:?}\n{doc:#}");
    }
}

fn edit(doc: &Value, pointer: &str, value: Value) -> Value {
    let mut doc = doc.clone();
    let (parent, key) = pointer.rsplit_once('/').expect("pointer");
    let target =
        if parent.is_empty() { &mut doc } else { doc.pointer_mut(parent).unwrap_or_else(|| panic!("{pointer}")) };
    match target {
        Value::Object(map) => {
            map.insert(key.to_string(), value);
        }
        Value::Array(list) => list[key.parse::<usize>().expect("index")] = value,
        _ => panic!("{pointer}: not a container"),
    }
    doc
}

fn remove(doc: &Value, parent: &str, key: &str) -> Value {
    let mut doc = doc.clone();
    let removed = doc.pointer_mut(parent).and_then(Value::as_object_mut).and_then(|m| m.remove(key));
    assert!(removed.is_some(), "{parent}/{key} absent");
    doc
}

fn rename(doc: &Value, parent: &str, from: &str, to: &str) -> Value {
    let value = doc.pointer(&format!("{parent}/{from}")).unwrap_or_else(|| panic!("{parent}/{from}")).clone();
    edit(&remove(doc, parent, from), &format!("{parent}/{to}"), value)
}

#[test]
fn schema_conversion_handles_openapi_specifics() {
    let schema = crd::convert(&json!({
        "type": "object",
        "properties": {
            "n": { "type": "integer", "format": "int32", "nullable": true, "minimum": 0 },
            "free": { "type": "object", "x-kubernetes-preserve-unknown-fields": true, "properties": { "a": { "type": "string" } } },
            "either": { "x-kubernetes-int-or-string": true },
        },
        "x-kubernetes-validations": [{ "rule": "true" }],
    }));
    assert_eq!(schema["properties"]["n"]["type"], json!(["integer", "null"]));
    assert_eq!(
        (schema["properties"]["n"]["minimum"].clone(), schema["properties"]["n"]["maximum"].clone()),
        (json!(0), json!(i32::MAX))
    );
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["free"].get("additionalProperties").is_none());
    assert!(schema.get("x-kubernetes-validations").is_none());
    let v = jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&schema).expect("compiles");
    assert!(v.is_valid(&json!({ "n": null, "free": { "b": 1 }, "either": "50%" })));
    assert!(v.is_valid(&json!({ "either": 3 })));
    assert!(!v.is_valid(&json!({ "n": -1 })));
    assert!(!v.is_valid(&json!({ "either": true })));
    assert!(!v.is_valid(&json!({ "m": 1 })));
}

// ---------------------------------------------------------------------------------------------------------------
// Semantics: where the filter runs, and that it decides as the policy does

/// A spread of requests touching every condition the example policies use.
fn requests() -> Vec<SimpleRequest> {
    let agents = [
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15",
    ];
    let mut out = Vec::new();
    for agent in agents {
        for cookie in [None, Some("tester"), Some("someone")] {
            for version in [None, Some("v1"), Some("v2")] {
                let mut r = SimpleRequest::new().header("user-agent", agent);
                if let Some(user) = cookie {
                    r = r.cookie("user", user);
                }
                if let Some(v) = version {
                    r = r.source("version", v);
                }
                out.push(r);
            }
        }
    }
    out
}

/// What a plugin with `config` decides for a request to `host` (the filter's service resolution), as
/// (subset, deciding rule line), with a seeded draw for splits.
fn plugin_decides(config: &Config, host: &str, req: &SimpleRequest, seed: u64) -> (Option<String>, Option<u32>) {
    let policy = Policy::new(config).expect("the plugin configuration loads in the evaluator");
    let service = match &config.settings.service {
        Some(name) => policy.service_or_global(name),
        None => policy.service_for_authority(host.as_bytes()),
    };
    let d = policy.decide(service, &req.clone().host(host), &mut SmallRng::seed_from_u64(seed));
    (d.subset.map(|s| policy.subset_name(s).to_string()), d.rule.map(|r| policy.rule_line(r)))
}

/// What the policy says for `service`.
fn policy_decides(config: &Config, service: &str, req: &SimpleRequest, seed: u64) -> (Option<String>, Option<u32>) {
    let policy = Policy::new(config).expect("compiled policy loads");
    let d = policy.decide(policy.service_or_global(service), req, &mut SmallRng::seed_from_u64(seed));
    (d.subset.map(|s| policy.subset_name(s).to_string()), d.rule.map(|r| policy.rule_line(r)))
}

fn plugin_config(doc: &Value) -> Config {
    serde_json::from_value(doc["spec"]["pluginConfig"].clone()).expect("pluginConfig is a canary Config")
}

#[test]
fn every_service_is_served_by_a_plugin_that_decides_as_the_policy() {
    for scenario in HTTP_SCENARIOS {
        let compiled = compile(scenario);
        let docs = documents(&manifest(scenario, "wasmplugin", &http_args()));
        assert_eq!(docs.len(), 2, "{scenario}: the namespace plugin and the gateway plugin");

        // Sidecars: one plugin for the namespace, every workload, outbound, the compiled policy unchanged.
        let sidecars = find(&docs, "WasmPlugin", "canary");
        assert_eq!(sidecars["metadata"]["namespace"], "weather");
        assert!(sidecars["spec"].get("selector").is_none(), "every caller's sidecar needs the filter");
        assert_eq!(sidecars["spec"]["match"], json!([{"mode": "CLIENT"}]));
        assert_eq!(sidecars["spec"]["type"], "HTTP");
        assert_eq!(
            (sidecars["spec"]["phase"].as_str(), sidecars["spec"]["failStrategy"].as_str()),
            (Some(PHASE), Some(FAIL_STRATEGY))
        );
        assert_eq!(sidecars["spec"]["priority"], SIDECAR_PRIORITY);
        assert_eq!(sidecars["spec"]["url"], MODULE);
        let config = plugin_config(sidecars);
        assert_eq!(config, compiled, "{scenario}: the sidecar plugin carries exactly the compiled policy");

        // The ingress gateway: CLIENT mode, selected by label in its own namespace, deciding for the edge.
        let gateway = find(&docs, "WasmPlugin", "canary-weather-frontend");
        assert_eq!(gateway["metadata"]["namespace"], "istio-system");
        assert_eq!(gateway["spec"]["selector"], json!({"matchLabels": {"istio": "ingressgateway"}}));
        assert_eq!(gateway["spec"]["match"], json!([{"mode": "CLIENT"}]));
        let edge = plugin_config(gateway);
        assert_eq!(edge.settings.service.as_deref(), Some("frontend"));

        for (i, req) in requests().iter().enumerate() {
            let seed = i as u64;
            for service in ["frontend", "forecast", "recommendation"] {
                let want = policy_decides(&compiled, service, req, seed);
                for host in
                    [service.to_string(), format!("{service}:8080"), format!("{service}.weather.svc.cluster.local:80")]
                {
                    assert_eq!(plugin_decides(&config, &host, req, seed), want, "{scenario}: sidecar, call to {host}");
                }
            }
            let want = policy_decides(&compiled, "frontend", req, seed);
            assert_eq!(plugin_decides(&edge, "weather.example.com", req, seed), want, "{scenario}: gateway");
        }
    }
}

#[test]
fn s5_chains_are_decided_by_the_callers_own_labels() {
    let docs = documents(&manifest("s5-tester-chain", "wasmplugin", &http_args()));
    let (gateway, sidecars) = (
        plugin_config(find(&docs, "WasmPlugin", "canary-weather-frontend")),
        plugin_config(find(&docs, "WasmPlugin", "canary")),
    );
    let tester = SimpleRequest::new().cookie("user", "tester");
    // The gateway picks frontend by cookie; frontend's own sidecar (labelled with its version) picks forecast.
    for (req, version) in [(tester, "v2"), (SimpleRequest::new(), "v1")] {
        let frontend = plugin_decides(&gateway, "weather.example.com", &req, 0).0.expect("frontend decided");
        assert_eq!(frontend, version);
        let from_frontend = req.clone().source("app", "frontend").source("version", &frontend);
        assert_eq!(plugin_decides(&sidecars, "forecast:8080", &from_frontend, 0).0.as_deref(), Some(version));
    }
}

#[test]
fn tcp_plugins_name_istios_subset_clusters() {
    let docs = documents(&manifest("s6-tcp-split", "wasmplugin", &tcp_args()));
    assert_eq!(docs.len(), 1, "no HTTP service, no edge: only the tcp-echo plugin");
    let plugin = find(&docs, "WasmPlugin", "canary-tcp-echo");
    assert_eq!(plugin["spec"]["type"], "NETWORK");
    assert_eq!(plugin["spec"]["match"], json!([{"mode": "CLIENT", "ports": [{"number": 9000}]}]));
    let config = plugin_config(plugin);
    assert_eq!(config.settings.service.as_deref(), Some("tcp-echo"));
    let policy = Policy::new(&config).expect("loads");
    let service = policy.service("tcp-echo").expect("declared");
    let clusters: Vec<String> =
        (0..policy.subsets().len() as u32).map(|s| policy.cluster_name(service, canary_eval::SubsetId(s))).collect();
    for subset in ["v1", "v2"] {
        assert!(
            clusters.contains(&format!("outbound|9000|{subset}|tcp-echo.weather.svc.cluster.local")),
            "{clusters:?}"
        );
    }
    let mut compiled = compile("s6-tcp-split");
    compiled.settings = config.settings.clone();
    assert_eq!(config, compiled, "the policy itself is unchanged");
}

#[test]
fn http_ports_narrow_the_sidecar_plugin_and_envoyfilter_mirrors_the_placements() {
    let mut args = http_args();
    args.extend(["--port", "frontend=80", "--port", "forecast=8080", "--port", "recommendation=8080"]);
    let docs = documents(&manifest("s3-chrome", "wasmplugin", &args));
    let ports = &find(&docs, "WasmPlugin", "canary")["spec"]["match"][0]["ports"];
    assert_eq!(ports, &json!([{"number": 80}, {"number": 8080}]));

    let filters = documents(&manifest("s3-chrome", "envoyfilter", &args));
    let sidecars = find(&filters, "EnvoyFilter", "canary");
    assert!(sidecars["spec"].get("workloadSelector").is_none());
    let patches = sidecars["spec"]["configPatches"].as_array().expect("patches");
    assert_eq!(patches.len(), 2, "one patch per port");
    for patch in patches {
        assert_eq!(patch["applyTo"], "HTTP_FILTER");
        assert_eq!(patch["match"]["context"], "SIDECAR_OUTBOUND");
        assert_eq!(
            patch["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"],
            "envoy.filters.http.router"
        );
        assert_eq!(patch["patch"]["operation"], "INSERT_BEFORE");
        let config = &patch["patch"]["value"]["typed_config"]["config"];
        assert_eq!(config["fail_open"], true);
        assert_eq!(config["vm_config"]["code"]["local"]["filename"], "/var/local/lib/wasm-filters/canary_filter.wasm");
        let json = config["configuration"]["value"].as_str().expect("StringValue");
        assert_eq!(serde_json::from_str::<Config>(json).expect("the policy JSON"), compile("s3-chrome"));
    }
    let gateway = find(&filters, "EnvoyFilter", "canary-weather-frontend");
    assert_eq!(gateway["metadata"]["namespace"], "istio-system");
    assert_eq!(gateway["spec"]["workloadSelector"]["labels"]["istio"], "ingressgateway");
    assert_eq!(gateway["spec"]["configPatches"][0]["match"]["context"], "GATEWAY");

    let tcp = documents(&manifest("s6-tcp-split", "envoyfilter", &tcp_args()));
    let patch = &find(&tcp, "EnvoyFilter", "canary-tcp-echo")["spec"]["configPatches"][0];
    assert_eq!(
        (patch["applyTo"].as_str(), patch["match"]["listener"]["portNumber"].as_u64()),
        (Some("NETWORK_FILTER"), Some(9000))
    );
    assert_eq!(patch["match"]["listener"]["filterChain"]["filter"]["name"], "envoy.filters.network.tcp_proxy");
    let typed = &patch["patch"]["value"]["typed_config"];
    assert_eq!(typed["@type"], "type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm");
}

/// Subsets the policy can choose for a service, from decisions over many requests (independent of the
/// generator's own walk over the rules) plus the defaults.
fn decided_subsets(config: &Config, service: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for (i, req) in requests().iter().enumerate() {
        for seed in 0..20 {
            seen.extend(policy_decides(config, service, req, seed * 1000 + i as u64).0);
        }
    }
    seen
}

#[test]
fn routes_cover_every_subset_the_policy_chooses() {
    for scenario in HTTP_SCENARIOS.iter().chain(&["s6-tcp-split"]) {
        let compiled = compile(scenario);
        let tcp = *scenario == "s6-tcp-split";
        let docs = documents(&manifest(scenario, "istio-routes", &if tcp { tcp_args() } else { http_args() }));
        let services: &[&str] = if tcp { &["tcp-echo"] } else { &["frontend", "forecast", "recommendation"] };
        for service in services {
            let host = format!("{service}.weather.svc.cluster.local");
            let rule = find(&docs, "DestinationRule", service);
            assert_eq!(rule["spec"]["host"], host.as_str());
            let subsets: BTreeSet<String> = rule["spec"]["subsets"]
                .as_array()
                .expect("subsets")
                .iter()
                .map(|s| {
                    assert_eq!(s["labels"]["version"], s["name"], "subset vN selects version=vN");
                    s["name"].as_str().expect("name").to_string()
                })
                .collect();
            let decided = decided_subsets(&compiled, service);
            assert!(decided.is_subset(&subsets), "{scenario} {service}: {decided:?} ⊄ {subsets:?}");
            assert!(subsets.is_superset(&["v1".to_string(), "v2".to_string()].into()), "--subsets v1,v2 deployed");

            let vs = find(&docs, "VirtualService", service);
            assert_eq!(vs["spec"]["hosts"], json!([host]));
            let default = compiled
                .services
                .iter()
                .find(|s| s.name == *service)
                .and_then(|s| s.rules.default.clone())
                .or(compiled.global.default.clone())
                .expect("the examples have defaults");
            if tcp {
                let route = &vs["spec"]["tcp"][0];
                assert_eq!(route["match"], json!([{"port": 9000}]));
                assert_eq!(
                    route["route"][0]["destination"],
                    json!({"host": host, "subset": default, "port": {"number": 9000}})
                );
                continue;
            }
            check_http_routes(vs, &subsets, &host, &default);
            if *service == "frontend" {
                let public = find(&docs, "VirtualService", "frontend-gateway");
                assert_eq!(
                    (public["spec"]["hosts"].clone(), public["spec"]["gateways"].clone()),
                    (json!(["*"]), json!(["weather-gateway"]))
                );
                check_http_routes(public, &subsets, &host, &default);
            }
        }
    }
}

/// One header route per subset (→ that subset), then the route for undecided requests (→ the default).
fn check_http_routes(vs: &Value, subsets: &BTreeSet<String>, host: &str, default: &str) {
    let routes = vs["spec"]["http"].as_array().expect("http routes");
    assert_eq!(routes.len(), subsets.len() + 1);
    for (route, subset) in routes.iter().zip(subsets) {
        assert_eq!(route["match"], json!([{"headers": {"x-canary-subset": {"exact": subset}}}]));
        assert_eq!(route["route"], json!([{"destination": {"host": host, "subset": subset}}]));
    }
    let last = routes.last().expect("fallback route");
    assert!(last.get("match").is_none(), "the last route catches everything");
    assert_eq!(last["route"][0]["destination"]["subset"], default);
}

#[test]
fn without_a_default_the_first_deployed_subset_takes_undecided_requests() {
    let out = canaryc(&[
        "manifest",
        &policy_path("oneliner"),
        "--kind",
        "istio-routes",
        "--service",
        "frontend",
        "--subsets",
        "v1,v2",
    ]);
    assert!(out.status.success());
    let docs = documents(&String::from_utf8_lossy(&out.stdout));
    let routes = &find(&docs, "VirtualService", "frontend")["spec"]["http"];
    assert_eq!(routes[2]["route"][0]["destination"]["subset"], "v1");
    // Without --subsets the only subset the policy names would be the fallback: said on stderr.
    let out = canaryc(&["manifest", &policy_path("oneliner"), "--kind", "istio-routes", "--service", "frontend"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: the policy gives `frontend` no default"));
}

// ---------------------------------------------------------------------------------------------------------------
// Checksums

#[test]
fn the_checksum_is_the_modules() {
    let dir = std::env::temp_dir().join(format!("canary-manifest-sha-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let module = dir.join("canary_filter.wasm");
    let bytes: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&module, &bytes).expect("write module");
    let want = sha256_hex(&bytes);
    if let Ok(out) = Command::new("sha256sum").arg(&module).output() {
        let line = String::from_utf8_lossy(&out.stdout);
        assert_eq!(line.split_whitespace().next(), Some(want.as_str()), "sha256sum disagrees");
    }
    let url = format!("file://{}", module.display());
    let sha_of = |args: &[&str]| {
        let docs = documents(&manifest("s3-chrome", "wasmplugin", args));
        docs[0]["spec"]["sha256"].as_str().map(String::from)
    };
    // Computed for a file:// URL that exists here, for a bare local path, and from --sha256 PATH.
    assert_eq!(sha_of(&["--service", "frontend", "--wasm-url", &url]).as_deref(), Some(want.as_str()));
    let path = module.display().to_string();
    assert_eq!(sha_of(&["--service", "frontend", "--wasm-url", &path]).as_deref(), Some(want.as_str()));
    let https = ["--service", "frontend", "--wasm-url", "https://example.com/canary_filter.wasm", "--sha256", &path];
    assert_eq!(sha_of(&https).as_deref(), Some(want.as_str()));
    // A digest that contradicts the file is refused.
    let wrong = "f".repeat(64);
    let out = canaryc(&["manifest", &policy_path("s3-chrome"), "--wasm-url", &url, "--sha256", &wrong]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("error: --sha256"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);

    // The real filter, when it has been built.
    let built = workspace().join("build/canary_filter.wasm");
    if let (Ok(bytes), Ok(out)) = (std::fs::read(&built), Command::new("sha256sum").arg(&built).output()) {
        assert_eq!(String::from_utf8_lossy(&out.stdout).split_whitespace().next(), Some(sha256_hex(&bytes).as_str()));
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The CLI contract

fn fails(args: &[&str], message: &str) {
    let out = canaryc(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: printed YAML on error");
    assert!(stderr.contains(message), "{args:?}: expected `{message}` in:\n{stderr}");
}

#[test]
fn errors_exit_1_with_nothing_on_stdout() {
    let s3 = policy_path("s3-chrome");
    let s6 = policy_path("s6-tcp-split");
    fails(&["manifest", &s3], "error: --kind wasmplugin needs --wasm-url URL");
    fails(&["manifest", &s6, "--wasm-url", MODULE], "error: TCP service `tcp-echo` needs --port tcp-echo=PORT");
    fails(&["manifest", &s3, "--wasm-url", MODULE, "--port", "nosuch=80"], "error: --port nosuch=…");
    fails(&["manifest", &s3, "--wasm-url", MODULE, "--listen", "127.0.0.1:1"], "error: --listen does not apply");
    fails(
        &["manifest", &s3, "--kind", "istio-routes", "--edge", "frontend"],
        "error: --edge frontend: name the Gateway",
    );
    fails(&["manifest", &s3, "--kind", "envoyfilter", "--wasm-url", "oci://x/y:1"], "cannot pull OCI images");
    fails(
        &["manifest", &s3, "--kind", "envoyfilter", "--wasm-url", "https://x/y.wasm"],
        "error: Envoy verifies a remote module",
    );
    fails(&["manifest", &s3, "--wasm-url", MODULE, "--namespace", "Weather"], "error: --namespace `Weather`");
    fails(&["manifest", &policy_path("s1-all-v1"), "--wasm-url", MODULE], "error: the policy declares no service");
    fails(
        &["manifest", &s6, "--wasm-url", MODULE, "--port", "tcp-echo=9000", "--edge", "tcp-echo"],
        "TCP service cannot sit behind",
    );

    // A policy error is reported as `canaryc compile` reports it.
    let dir = std::env::temp_dir().join(format!("canary-manifest-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bad = dir.join("bad.canary");
    std::fs::write(&bad, "service forecast {\n  60% v2, 50% v3\n}\n").expect("write");
    let bad = bad.display().to_string();
    let compile_err = String::from_utf8_lossy(&canaryc(&["compile", &bad]).stderr).into_owned();
    assert!(compile_err.contains(&format!("{bad}:2:")), "{compile_err}");
    fails(&["manifest", &bad, "--wasm-url", MODULE], &compile_err);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_envoy_kind_is_the_bootstrap_generator() {
    let wasm = "/tmp/canary_filter.wasm";
    let yaml = manifest(
        "s4-android-split",
        "envoy",
        &[
            "--service",
            "frontend",
            "--listen",
            "127.0.0.1:10000",
            "--cluster",
            "v1=127.0.0.1:8001",
            "--cluster",
            "v2=127.0.0.1:8002",
            "--node-label",
            "version=v2",
            "--wasm",
            wasm,
        ],
    );
    let y: Value = documents(&yaml).remove(0);
    assert_eq!(y["node"]["metadata"]["LABELS"]["version"], "v2");
    assert_eq!(y["admin"]["address"]["socket_address"]["port_value"], 9901);
    let clusters: Vec<&str> = y["static_resources"]["clusters"]
        .as_array()
        .expect("clusters")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(clusters, ["frontend-v1", "frontend-v2"]);
    assert!(yaml.contains(wasm));
    let s4 = policy_path("s4-android-split");
    fails(&["manifest", &s4, "--kind", "envoy", "--listen", "127.0.0.1:1", "--wasm", wasm], "--cluster");
    fails(
        &["manifest", &s4, "--kind", "envoy", "--cluster", "v1=127.0.0.1:1", "--wasm", wasm],
        "error: --kind envoy needs --listen",
    );
    fails(
        &["manifest", &s4, "--kind", "envoy", "--listen", "127.0.0.1:1", "--port", "frontend=80"],
        "error: --port does not apply to envoy",
    );
    fails(
        &["manifest", &s4, "--kind", "envoy", "--listen", "127.0.0.1:1", "--wasm-url", "https://x/c.wasm"],
        "loads the module from a file",
    );
}

// ---------------------------------------------------------------------------------------------------------------
// examples/istio

#[test]
fn examples_istio_are_what_generate_sh_prints() {
    let examples = workspace().join("examples/istio");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let out = if update {
        examples.clone()
    } else {
        std::env::temp_dir().join(format!("canary-istio-examples-{}", std::process::id()))
    };
    let status = Command::new("bash")
        .arg(examples.join("generate.sh"))
        .arg(&out)
        .env("CANARYC", env!("CARGO_BIN_EXE_canaryc"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("bash runs generate.sh");
    assert!(status.success(), "generate.sh failed");
    let generated = yaml_files(&out);
    assert_eq!(generated.len(), 7 * (KINDS.len() + 2), "S1–S6 (S2 twice) × 3 kinds + 2 auto: {generated:?}");
    assert_eq!(generated, yaml_files(&examples), "examples/istio has other files than generate.sh writes");
    if update {
        return;
    }
    let mut crds = Crds::default();
    for file in &generated {
        let want = std::fs::read_to_string(examples.join(file)).expect("checked-in example");
        let got = std::fs::read_to_string(out.join(file)).expect("generated");
        assert!(got == want, "examples/istio/{file} is stale: run `UPDATE_GOLDEN=1 cargo test -p canaryc --test manifest` (or generate.sh)");
        for doc in documents(&want) {
            assert_eq!(crds.errors(&doc), Vec::<String>::new(), "examples/istio/{file}");
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

fn yaml_files(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("dir").flatten() {
        // `lab/` holds the lab's hand-written Istio YAML (tests/import.rs), not generated files.
        if entry.path().is_dir() && entry.file_name() != "lab" {
            for inner in std::fs::read_dir(entry.path()).expect("subdir").flatten() {
                if inner.path().extension().is_some_and(|e| e == "yaml") {
                    files.push(format!(
                        "{}/{}",
                        entry.file_name().to_string_lossy(),
                        inner.file_name().to_string_lossy()
                    ));
                }
            }
        }
    }
    files.sort();
    files
}

// ---------------------------------------------------------------------------------------------------------------
// The EnvoyFilter's Envoy configuration, in Envoy

/// Envoy (`ENVOY_BIN`, else the one `scripts/setup-envoy.sh` installs) and the filter module
/// (`CANARY_FILTER_WASM`, else `build/canary_filter.wasm`), when both are present.
fn envoy_and_module() -> Option<(PathBuf, PathBuf)> {
    let envoy = std::env::var_os("ENVOY_BIN").map(PathBuf::from).or_else(|| {
        let lib = workspace().join(".venv/lib");
        std::fs::read_dir(lib)
            .ok()?
            .flatten()
            .map(|e| e.path().join("site-packages/envoy/_bin/envoy"))
            .find(|p| p.is_file())
    })?;
    let wasm = std::env::var_os("CANARY_FILTER_WASM")
        .map_or_else(|| workspace().join("build/canary_filter.wasm"), PathBuf::from);
    (envoy.is_file() && wasm.is_file()).then_some((envoy, wasm))
}

/// A minimal bootstrap whose only listener runs `filter` (an EnvoyFilter patch value) before the router or
/// tcp_proxy, exactly where the patch inserts it.
fn bootstrap_around(filter: &Value, tcp: bool) -> Value {
    let cluster = "upstream";
    let terminal = if tcp {
        vec![
            filter.clone(),
            json!({
                "name": "envoy.filters.network.tcp_proxy",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                    "stat_prefix": "tcp", "cluster": cluster,
                },
            }),
        ]
    } else {
        vec![json!({
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "http",
                "route_config": { "virtual_hosts": [{ "name": "all", "domains": ["*"],
                    "routes": [{ "match": { "prefix": "/" }, "route": { "cluster": cluster } }] }] },
                "http_filters": [filter.clone(), {
                    "name": "envoy.filters.http.router",
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" },
                }],
            },
        })]
    };
    let address = |port: u16| json!({ "socket_address": { "address": "127.0.0.1", "port_value": port } });
    json!({
        "admin": { "address": address(0) },
        "static_resources": {
            "listeners": [{ "name": "canary", "address": address(10000), "filter_chains": [{ "filters": terminal }] }],
            "clusters": [{ "name": cluster, "type": "STATIC", "connect_timeout": "1s", "load_assignment": {
                "cluster_name": cluster,
                "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": address(1) } }] }] } }],
        },
    })
}

#[test]
fn envoyfilter_patches_are_accepted_by_envoy_and_the_filter() {
    let Some((envoy, wasm)) = envoy_and_module() else {
        eprintln!("skipped: no Envoy or no build/canary_filter.wasm (scripts/setup-envoy.sh, scripts/build-filter.sh)");
        return;
    };
    let dir = std::env::temp_dir().join(format!("canary-envoyfilter-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let mut checked = 0;
    for (policy, args) in [("s5-tester-chain", http_args()), ("s6-tcp-split", tcp_args())] {
        for doc in documents(&manifest(policy, "envoyfilter", &args)) {
            let patch = &doc["spec"]["configPatches"][0];
            let mut filter = patch["patch"]["value"].clone();
            filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] =
                json!(wasm.display().to_string());
            let file = dir.join(format!("{}.json", doc["metadata"]["name"].as_str().expect("name")));
            let bootstrap = bootstrap_around(&filter, patch["applyTo"] == "NETWORK_FILTER");
            std::fs::write(&file, serde_json::to_string_pretty(&bootstrap).expect("json")).expect("write");
            let out = Command::new(&envoy)
                .args(["--mode", "validate", "--disable-hot-restart", "--log-level", "info", "-c"])
                .arg(&file)
                .output()
                .expect("envoy runs");
            let log = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
            assert!(out.status.success(), "{policy}: {}: Envoy refused the patch:\n{log}", doc["metadata"]["name"]);
            assert!(
                log.contains("canary: configured"),
                "{policy}: the filter did not accept its configuration:\n{log}"
            );
            checked += 1;
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(checked, 3, "sidecar, gateway and tcp-echo filters");
}

// ---------------------------------------------------------------------------------------------------------------
// Push forms: --kind ecds|rds and the bootstraps that watch them (real Envoy: tests/tests/envoy_reload.rs)

const PUSH_WASM: &str = "/var/lib/canary/canary_filter.wasm";

fn envoy_flags<'a>(service: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--service", service, "--listen", "127.0.0.1:10000", "--cluster", "v1=127.0.0.1:8001"];
    args.extend(["--cluster", "v2=127.0.0.1:8002", "--wasm", PUSH_WASM]);
    args.extend_from_slice(extra);
    args
}

fn listener_filters(bootstrap: &Value) -> &Value {
    &bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]
}

#[test]
fn the_ecds_resource_is_the_inline_filter_pushed_under_the_name_the_bootstrap_discovers() {
    for (policy, service, tcp) in [("s4-android-split", "frontend", false), ("s6-tcp-split", "tcp-echo", true)] {
        let path = format!("/etc/canary/{service}.yaml");
        let ecds = documents(&manifest(policy, "ecds", &["--service", service, "--wasm", PUSH_WASM])).remove(0);
        let inline = documents(&manifest(policy, "envoy", &envoy_flags(service, &[]))).remove(0);
        let watching = documents(&manifest(policy, "envoy", &envoy_flags(service, &["--ecds-path", &path]))).remove(0);
        let resources = ecds["resources"].as_array().expect("resources");
        assert_eq!(resources.len(), 1, "{policy}");
        let resource = &resources[0];
        assert_eq!(resource["@type"], "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig");
        assert_eq!(resource["name"], format!("canary-{service}"));
        let version = ecds["version_info"].as_str().expect("version_info");
        assert!(version.len() == 16 && version.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");

        // The pushed typed_config is exactly what the inline bootstrap runs.
        let canary_filter = |bootstrap: &Value| match tcp {
            true => listener_filters(bootstrap)[0].clone(),
            false => listener_filters(bootstrap)[0]["typed_config"]["http_filters"][0].clone(),
        };
        let (inline_filter, discovered) = (canary_filter(&inline), canary_filter(&watching));
        assert_eq!(resource["typed_config"], inline_filter["typed_config"], "{policy}");
        // The watching bootstrap discovers it by that name, from that file, watching its directory.
        assert_eq!(discovered["name"], resource["name"]);
        let source = &discovered["config_discovery"]["config_source"];
        assert_eq!(source["path_config_source"]["path"], path.as_str());
        assert_eq!(source["path_config_source"]["watched_directory"]["path"], "/etc/canary");
        assert_eq!(discovered["config_discovery"]["type_urls"][0], resource["typed_config"]["@type"]);
        assert!(
            discovered.get("typed_config").is_none() && discovered["config_discovery"].get("default_config").is_none()
        );
        // Everything else in the bootstrap is unchanged.
        let mut rest = watching.clone();
        rest["static_resources"]["listeners"] = Value::Null;
        let mut inline_rest = inline.clone();
        inline_rest["static_resources"]["listeners"] = Value::Null;
        assert_eq!(rest, inline_rest, "{policy}");
    }
}

#[test]
fn the_rds_resource_is_the_native_route_table_pushed_under_the_name_the_bootstrap_discovers() {
    let path = "/etc/canary/forecast.yaml";
    let rds = documents(&manifest("s3-chrome", "rds", &["--service", "forecast"])).remove(0);
    let inline =
        documents(&manifest("s3-chrome", "envoy", &envoy_flags("forecast", &["--backend", "native"]))).remove(0);
    let watching =
        documents(&manifest("s3-chrome", "envoy", &envoy_flags("forecast", &["--rds-path", path]))).remove(0);
    let resource = &rds["resources"][0];
    assert_eq!(resource["@type"], "type.googleapis.com/envoy.config.route.v3.RouteConfiguration");
    assert_eq!(resource["validate_clusters"], true, "a push naming a cluster the proxy lacks is refused");
    let inline_hcm = &listener_filters(&inline)[0]["typed_config"];
    let mut routes = resource.clone();
    routes.as_object_mut().expect("object").retain(|k, _| k != "@type" && k != "validate_clusters");
    assert_eq!(routes, inline_hcm["route_config"], "the pushed routes are the inline native routes");
    let hcm = &listener_filters(&watching)[0]["typed_config"];
    assert!(hcm.get("route_config").is_none());
    assert_eq!(hcm["rds"]["route_config_name"], resource["name"]);
    assert_eq!(hcm["rds"]["config_source"]["path_config_source"]["path"], path);
    let names: Vec<&str> =
        hcm["http_filters"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
    // Native: the router, behind the CORS filter a pushed route's `corsPolicy` needs (a no-op without one).
    assert_eq!(names, ["envoy.filters.http.cors", "envoy.filters.http.router"]);
    assert!(watching["layered_runtime"].is_object(), "pushed host regexes may need the raised RE2 cap");

    // Without a default, --subsets names the proxy's fallback (its first subset) and bounds the choices.
    let dir = std::env::temp_dir().join(format!("canary-rds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let no_default = dir.join("no-default.canary");
    std::fs::write(&no_default, "service forecast {\n  header x-beta present -> v2\n}\n").expect("write");
    let nd = no_default.display().to_string();
    fails(&["manifest", &nd, "--kind", "rds"], "has no default: name the proxy's subsets with --subsets");
    fails(&["manifest", &nd, "--kind", "rds", "--subsets", "v1,v3"], "subset `v2`, which is not among --subsets v1,v3");
    let out = canaryc(&["manifest", &nd, "--kind", "rds", "--subsets", "v1,v2"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let y = documents(&String::from_utf8_lossy(&out.stdout)).remove(0);
    let routes = &y["resources"][0]["virtual_hosts"][0]["routes"];
    assert_eq!(routes[routes.as_array().expect("routes").len() - 1]["route"]["cluster"], "forecast-v1");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn output_files_are_written_atomically_in_the_format_envoy_parses() {
    let dir = std::env::temp_dir().join(format!("canary-push-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let s4 = policy_path("s4-android-split");
    let stdout = manifest("s4-android-split", "ecds", &["--wasm", PUSH_WASM]);
    let (yaml, json) = (dir.join("frontend.yaml"), dir.join("frontend.json"));
    for out in [&yaml, &json] {
        let o = out.display().to_string();
        let run = canaryc(&["manifest", &s4, "--kind", "ecds", "--wasm", PUSH_WASM, "-o", &o]);
        assert!(run.status.success() && run.stdout.is_empty(), "{}", String::from_utf8_lossy(&run.stderr));
    }
    assert_eq!(std::fs::read_to_string(&yaml).expect("yaml"), stdout, "-o writes what stdout would show");
    let parsed: Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("a .json file is JSON");
    assert_eq!(parsed, documents(&stdout)[0]);
    // Every kind takes -o; a bootstrap too.
    let boot = dir.join("envoy.yaml").display().to_string();
    let mut args = vec!["manifest", s4.as_str(), "--kind", "envoy", "-o", boot.as_str()];
    args.extend(envoy_flags("frontend", &[]));
    assert!(canaryc(&args).status.success());
    let mut names: Vec<String> =
        std::fs::read_dir(&dir).expect("dir").flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["envoy.yaml", "frontend.json", "frontend.yaml"], "no temporary file is left behind");
    // A failed write leaves nothing behind and says where.
    let missing = dir.join("no/such/dir.yaml").display().to_string();
    fails(&["manifest", &s4, "--kind", "ecds", "--wasm", PUSH_WASM, "-o", &missing], "cannot write");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_access_log_setting_travels_in_the_pushed_file_and_only_where_a_filter_runs() {
    let (s4, s3) = (policy_path("s4-android-split"), policy_path("s3-chrome"));
    let pushed = documents(&manifest(
        "s4-android-split",
        "ecds",
        &["--service", "frontend", "--wasm", PUSH_WASM, "--access-log"],
    ))
    .remove(0);
    let inline =
        documents(&manifest("s4-android-split", "envoy", &envoy_flags("frontend", &["--access-log"]))).remove(0);
    let inline_filter = &listener_filters(&inline)[0]["typed_config"]["http_filters"][0];
    assert_eq!(pushed["resources"][0]["typed_config"], inline_filter["typed_config"]);
    let configuration = inline_filter["typed_config"]["config"]["configuration"]["value"].as_str().expect("policy");
    assert!(configuration.contains(r#""access_log":true"#), "{configuration}");
    let hcm = &listener_filters(&inline)[0]["typed_config"];
    assert!(hcm["access_log"][0]["typed_config"]["log_format"].to_string().contains("wasm.canary_decision"));

    fails(
        &["manifest", &s3, "--kind", "rds", "--service", "forecast", "--access-log"],
        "--access-log does not apply to rds",
    );
    let mut native = vec!["manifest", s4.as_str(), "--kind", "envoy", "--backend", "native", "--access-log"];
    native.extend(envoy_flags("frontend", &[]));
    fails(&native, "--access-log logs the filter's decisions, but this service got native routes");
}

#[test]
fn push_forms_refuse_what_they_cannot_push() {
    let (s3, s4, s6) = (policy_path("s3-chrome"), policy_path("s4-android-split"), policy_path("s6-tcp-split"));
    fails(&["manifest", &s6, "--kind", "rds"], "is TCP: its native form is tcp_proxy's weighted clusters");
    let mut args = vec!["manifest", s6.as_str(), "--kind", "envoy", "--rds-path", "/etc/canary/t.yaml"];
    args.extend(envoy_flags("tcp-echo", &[]));
    fails(&args, "no route discovery (RDS)");
    fails(&["manifest", &s4, "--kind", "ecds"], "needs the filter module's path in the proxy: --wasm PATH");
    fails(&["manifest", &s4, "--kind", "ecds", "--wasm", PUSH_WASM, "--backend", "native"], "pushed with --kind rds");
    fails(
        &["manifest", &s4, "--kind", "ecds", "--wasm", PUSH_WASM, "--listen", "127.0.0.1:1"],
        "--listen does not apply to ecds",
    );
    fails(
        &["manifest", &s4, "--kind", "ecds", "--wasm", PUSH_WASM, "--node-label", "a=b"],
        "--node-label does not apply to ecds",
    );
    fails(
        &["manifest", &s3, "--kind", "rds", "--service", "forecast", "--backend", "filter"],
        "--backend filter has none",
    );
    fails(
        &["manifest", &s3, "--kind", "rds", "--service", "forecast", "--wasm", PUSH_WASM],
        "--wasm does not apply to rds",
    );
    let weather = policy_path("weather");
    fails(&["manifest", &weather, "--kind", "ecds", "--wasm", PUSH_WASM], "name the service this proxy serves");
    fails(&["manifest", &s3, "--wasm-url", MODULE, "--ecds-path", "/e/x.yaml"], "--ecds-path does not apply");
    // Envoy 1.36 has no cookie matcher: S5's frontend needs the filter there, which routes cannot carry.
    let s5 = policy_path("s5-tester-chain");
    let old_envoy = ["manifest", s5.as_str(), "--kind", "rds", "--service", "frontend", "--envoy-version", "1.36"];
    fails(&old_envoy, "no exact native form for service `frontend`");
    fails(&[&old_envoy[..], &["--backend", "auto"]].concat(), "needs the filter (above), which routes cannot carry");
    for (extra, message) in [
        (vec!["--ecds-path", "canary/frontend.yaml"], "give an absolute path"),
        (vec!["--ecds-path", "/etc/canary/frontend.pb"], "end the name in .yaml or .json"),
        (vec!["--ecds-path", "/e/a.yaml", "--rds-path", "/e/b.yaml"], "not both"),
        (vec!["--rds-path", "/e/b.yaml", "--backend", "filter"], "--backend filter has none"),
        (vec!["--ecds-path", "/e/a.yaml", "--backend", "native"], "served by native routes"),
    ] {
        let mut args = vec!["manifest", s3.as_str(), "--kind", "envoy"];
        args.extend(envoy_flags("forecast", &extra));
        fails(&args, message);
    }
}

/// `--native-tables` / `--native-tree-min`: a run of table rules is a matcher tree by default from 4 entries
/// on, a list with `list`, below the minimum or before Envoy 1.25; the flags are refused where they mean nothing.
#[test]
fn native_tables_choose_trees_or_lists() {
    let dir = std::env::temp_dir().join(format!("canaryc-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = |n: usize| {
        let rules: String = (0..n).map(|i| format!("  header x-tenant = \"t{i}\" -> v2\n")).collect();
        let path = dir.join(format!("t{n}.canary"));
        std::fs::write(&path, format!("service web {{\n{rules}  default v1\n}}\n")).unwrap();
        path.display().to_string()
    };
    let (four, three) = (policy(4), policy(3));
    let envoy = |path: &str, extra: &[&str]| -> Output {
        let mut args = vec!["manifest", path, "--kind", "envoy", "--backend", "native", "--service", "web"];
        args.extend(["--listen", "127.0.0.1:1", "--cluster", "v1=127.0.0.1:2", "--cluster", "v2=127.0.0.1:3"]);
        args.extend(["--wasm", "/dev/null"]);
        args.extend_from_slice(extra);
        canaryc(&args)
    };
    let host = |out: &Output| -> Value {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let y: Value = canary_yaml::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
        y["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
            ["virtual_hosts"][0]
            .clone()
    };
    let tree = host(&envoy(&four, &[]));
    assert!(tree.get("routes").is_none());
    let map = &tree["matcher"]["on_no_match"]["matcher"]["matcher_tree"]["exact_match_map"]["map"];
    assert_eq!(map.as_object().map(|m| m.len()), Some(4), "{tree}");
    assert_eq!(host(&envoy(&four, &["--native-tables", "list"]))["routes"].as_array().map(Vec::len), Some(5));
    assert_eq!(host(&envoy(&three, &[]))["routes"].as_array().map(Vec::len), Some(4), "below the crossover");
    assert!(host(&envoy(&three, &["--native-tree-min", "3"])).get("matcher").is_some());
    assert!(host(&envoy(&four, &["--envoy-version", "1.24"])).get("routes").is_some(), "no RouteList before 1.25");
    let both = envoy(&four, &["--native-tables", "list", "--native-tree-min", "2"]);
    assert!(!both.status.success() && String::from_utf8_lossy(&both.stderr).contains("--native-tree-min"));
    let istio = canaryc(&["manifest", &four, "--kind", "istio-routes", "--native-tables", "tree"]);
    assert!(!istio.status.success() && String::from_utf8_lossy(&istio.stderr).contains("--native-tables"));
    std::fs::remove_dir_all(&dir).ok();
}
