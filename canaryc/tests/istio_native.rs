//! `canaryc manifest --backend native|auto` for the Istio kinds: which services get native VirtualService routes
//! and which keep the filter (and why), the routes' shape for the lab's scenarios, the plugins left for the
//! services that need the filter, and the refusals as `FILE:LINE:COL` diagnostics. That the routes decide like
//! the policy is checked by importing them back (`tests/import_roundtrip.rs`) and, through Istio's translation,
//! in real Envoy (`tests/tests/envoy_native.rs`).

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{json, Value};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn policy(name: &str) -> String {
    workspace().join("examples").join(format!("{name}.canary")).display().to_string()
}

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

const MESH: &[&str] = &[
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
const MODULE: &str = "file:///var/local/lib/wasm-filters/canary_filter.wasm";

/// Runs `canaryc manifest FILE --kind KIND --backend BACKEND MESH… EXTRA…`: (exit code, documents, stderr).
fn run(file: &str, kind: &str, backend: &str, extra: &[&str]) -> (i32, Vec<Value>, String) {
    let mut args = vec!["manifest", file, "--kind", kind, "--backend", backend];
    args.extend_from_slice(extra);
    let out = canaryc(&args);
    let docs = canary_yaml::documents(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_default()
        .into_iter()
        .map(|v| serde_json::to_value(v).expect("JSON-compatible"))
        .filter(|d| !d.is_null())
        .collect();
    (out.status.code().unwrap_or(-1), docs, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {docs:#?}"))
}

fn dest(host: &str, subset: &str) -> Value {
    json!({ "host": format!("{host}.weather.svc.cluster.local"), "subset": subset })
}

#[test]
fn the_lab_scenarios_become_the_labs_virtual_services() {
    let (code, docs, stderr) = run(&policy("s2-forecast-50"), "istio-routes", "native", MESH);
    assert_eq!(code, 0, "{stderr}");
    let forecast = &find(&docs, "VirtualService", "forecast")["spec"]["http"];
    assert_eq!(
        forecast,
        &json!([
            {"name": "rule-3", "route": [
                {"destination": dest("forecast", "v2"), "weight": 50},
                {"destination": dest("forecast", "v1"), "weight": 50}]},
            {"name": "default", "route": [{"destination": dest("forecast", "v1")}]}
        ])
    );

    let (code, docs, stderr) = run(&policy("s3-chrome"), "istio-routes", "native", MESH);
    assert_eq!(code, 0, "{stderr}");
    let forecast = &find(&docs, "VirtualService", "forecast")["spec"]["http"][0];
    assert_eq!(forecast["match"], json!([{"headers": {"user-agent": {"regex": ".*Chrome.*"}}}]));

    // S5: forecast's rule is the caller's label, which Istio matches as sourceLabels.
    let (code, docs, stderr) = run(&policy("s5-tester-chain"), "istio-routes", "auto", MESH);
    assert_eq!(code, 0, "{stderr}");
    let forecast = &find(&docs, "VirtualService", "forecast")["spec"]["http"][0];
    assert_eq!(forecast["match"], json!([{"sourceLabels": {"version": "v2"}}]));
    assert_eq!(forecast["route"], json!([{"destination": dest("forecast", "v2")}]));

    // S6: weights per connection on the service port.
    let tcp = ["--namespace", "weather", "--port", "tcp-echo=9000", "--subsets", "v1,v2"];
    let (code, docs, stderr) = run(&policy("s6-tcp-split"), "istio-routes", "native", &tcp);
    assert_eq!(code, 0, "{stderr}");
    let echo = &find(&docs, "VirtualService", "tcp-echo")["spec"]["tcp"];
    let at = |subset: &str| json!({"host": "tcp-echo.weather.svc.cluster.local", "subset": subset, "port": {"number": 9000}});
    assert_eq!(
        echo,
        &json!([{"match": [{"port": 9000}], "route": [
            {"destination": at("v2"), "weight": 20}, {"destination": at("v1"), "weight": 80}]}])
    );
}

#[test]
fn auto_says_which_backend_each_service_got_and_why() {
    let (code, docs, stderr) = run(&policy("s5-tester-chain"), "istio-routes", "auto", MESH);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.starts_with("warning")).collect();
    assert_eq!(lines.len(), 3, "one line per service:\n{stderr}");
    assert!(lines.iter().any(|l| l.starts_with("forecast: native VirtualService routes")), "{stderr}");
    let frontend = lines.iter().find(|l| l.starts_with("frontend: filter")).expect("frontend keeps the filter");
    assert!(frontend.contains("s5-tester-chain.canary:5:3") && frontend.contains("no cookie matcher"), "{frontend}");
    // frontend still routes on the filter's header; its gateway VirtualService too.
    for name in ["frontend", "frontend-gateway"] {
        let http = &find(&docs, "VirtualService", name)["spec"]["http"];
        assert_eq!(http[0]["match"][0]["headers"]["x-canary-subset"]["exact"], "v1", "{name}");
    }

    // The plugins: only for the service that needs the filter (the gateway's, since frontend is the edge;
    // the namespace's, since the sidecars call frontend too).
    let module = [MESH, &["--wasm-url", MODULE]].concat();
    let (code, docs, stderr) = run(&policy("s5-tester-chain"), "wasmplugin", "auto", &module);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(docs.len(), 2, "{docs:#?}");
    // S3 lowers everywhere: no plugin at all, and the operator is told.
    let (code, docs, stderr) = run(&policy("s3-chrome"), "wasmplugin", "auto", &module);
    assert_eq!(code, 0, "{stderr}");
    assert!(docs.is_empty(), "{docs:#?}");
    assert!(stderr.contains("no wasmplugin is needed"), "{stderr}");
}

#[test]
fn ports_narrow_the_plugin_to_the_services_that_need_it() {
    let mut args = [MESH, &["--wasm-url", MODULE, "--port", "frontend=80", "--port", "forecast=8080"]].concat();
    args.extend(["--port", "recommendation=9080"]);
    let (code, docs, stderr) = run(&policy("s5-tester-chain"), "envoyfilter", "auto", &args);
    assert_eq!(code, 0, "{stderr}");
    let sidecars = find(&docs, "EnvoyFilter", "canary");
    let text = sidecars.to_string();
    assert!(text.contains("\"portNumber\":80") && !text.contains("8080") && !text.contains("9080"), "{sidecars:#}");
}

#[test]
fn refusals_are_diagnostics_and_nothing_is_approximated() {
    let (code, docs, stderr) = run(&policy("s5-tester-chain"), "istio-routes", "native", MESH);
    assert_eq!(code, 1);
    assert!(docs.is_empty());
    assert!(stderr.contains("s5-tester-chain.canary:5:3") && stderr.contains("no cookie matcher"), "{stderr}");

    let dir = std::env::temp_dir().join(format!("canary-istio-native-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        path.display().to_string()
    };
    let refused = [
        ("sticky.canary", "service forecast {\n  20% v2 by cookie uid\n  default v1\n}\n", "per request"),
        ("notsource.canary", "service forecast {\n  not source version=v2 -> v2\n  default v1\n}\n", "cannot negate"),
        ("query.canary", "service forecast {\n  query beta=1 -> v2\n  default v1\n}\n", "percent-decoding"),
        (
            "twice.canary",
            "service forecast {\n  header x ~ \"a\" and header x ~ \"b\" -> v2\n  default v1\n}\n",
            "two in `headers.x`",
        ),
    ];
    for (name, text, reason) in refused {
        let file = write(name, text);
        let (code, _, stderr) = run(&file, "istio-routes", "native", MESH);
        assert_eq!(code, 1, "{name}: {stderr}");
        assert!(stderr.contains(&format!("{name}:2:3")) && stderr.contains(reason), "{name}: {stderr}");
    }
    let (code, _, stderr) =
        run(&policy("s3-chrome"), "wasmplugin", "native", &[MESH, &["--wasm-url", MODULE]].concat());
    assert_eq!(code, 1);
    assert!(stderr.contains("--kind istio-routes --backend native"), "{stderr}");

    // Shares that are not whole percents keep their 0.01% steps, with a note on the Istio release.
    let fine = write("fine.canary", "service forecast {\n  12.5% v2\n  default v1\n}\n");
    let (code, docs, stderr) = run(&fine, "istio-routes", "native", MESH);
    assert_eq!(code, 0, "{stderr}");
    let route = &find(&docs, "VirtualService", "forecast")["spec"]["http"][0]["route"];
    assert_eq!((route[0]["weight"].as_u64(), route[1]["weight"].as_u64()), (Some(1250), Some(8750)));
    assert!(stderr.contains("Istio accepts that from 1.15"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
