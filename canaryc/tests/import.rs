//! `canaryc import`: the lab's hand-written Istio YAML (`examples/istio/lab/`) is valid Istio, and imports
//! into policies that decide like the scenario policies in `examples/` over a corpus of requests — with the
//! two differences that the lab's own idioms carry pinned and explained; the CLI keeps its contract; no YAML
//! makes the import panic.

#[path = "manifest/crd.rs"]
mod crd;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use canary_eval::config::{Action, Config};
use canary_eval::{cookie_value, Policy, ServiceId, SimpleRequest, BUCKETS};
use canary_import::{import, Input, Severity};
use proptest::prelude::*;
use rand::{RngCore, SeedableRng};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn lab(name: &str) -> PathBuf {
    workspace().join("examples/istio/lab").join(format!("{name}.yaml"))
}

/// Lab file and example policy share a name; the services each scenario involves.
const SCENARIOS: [(&str, &[&str]); 7] = [
    ("s1-all-v1", &["frontend", "forecast", "recommendation"]),
    ("s2-forecast-50", &["frontend", "forecast", "recommendation"]),
    ("s2-forecast-100", &["frontend", "forecast", "recommendation"]),
    ("s3-chrome", &["frontend", "forecast", "recommendation"]),
    ("s4-android-split", &["frontend", "forecast", "recommendation"]),
    ("s5-tester-chain", &["frontend", "forecast", "recommendation"]),
    ("s6-tcp-split", &["tcp-echo"]),
];

fn compile(source: &str, name: &str) -> Config {
    canary_compiler::compile(source, name)
        .unwrap_or_else(|d| panic!("{}", canary_compiler::render(&d, source, name, false)))
        .config
}

/// The lab file imported, as the policy it prints (which must have no error).
fn imported(name: &str) -> String {
    let path = lab(name);
    let text = std::fs::read_to_string(&path).expect("lab file");
    let outcome = import(&[Input { name: &path.display().to_string(), text: &text }]);
    let errors: Vec<String> = outcome.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{name}: {errors:#?}");
    outcome.policy.expect("a policy")
}

fn example(name: &str) -> String {
    std::fs::read_to_string(workspace().join("examples").join(format!("{name}.canary"))).expect("example")
}

// ---------------------------------------------------------------------------------------------------------------
// The lab files are Istio

#[test]
fn lab_files_are_valid_against_the_istio_crds() {
    let mut crds = crd::Crds::default();
    let mut checked = BTreeMap::<String, usize>::new();
    for name in SCENARIOS.iter().map(|(name, _)| *name).chain(["gateway"]) {
        let text = std::fs::read_to_string(lab(name)).expect("lab file");
        for doc in canary_yaml::documents(&text).expect("YAML") {
            let value = serde_json::to_value(doc).expect("JSON");
            let errors = crds.errors(&value);
            assert!(
                errors.is_empty(),
                "{name}: {} {} is invalid: {errors:#?}",
                value["kind"],
                value["metadata"]["name"]
            );
            *checked.entry(value["kind"].as_str().unwrap_or_default().to_string()).or_default() += 1;
        }
    }
    // 6 HTTP scenarios × 3 services, and tcp-echo; the HTTP and the TCP gateway.
    assert_eq!(
        checked,
        BTreeMap::from([("DestinationRule".into(), 19), ("Gateway".into(), 2), ("VirtualService".into(), 19)])
    );
    // The validation is not a rubber stamp: a misspelt field is refused, and so is a listener port out of range.
    let broken = serde_json::json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "x", "namespace": "weather"}, "spec": {"hosts": ["x"], "http": [{"rout": []}]}});
    let errors = crds.errors(&broken);
    assert!(errors.iter().any(|e| e.contains("'rout' was unexpected")), "{errors:#?}");
    let text = std::fs::read_to_string(lab("gateway")).expect("lab file");
    let gateway = canary_yaml::documents(&text).expect("YAML").into_iter().nth(1).expect("the TCP gateway");
    let mut gateway = serde_json::to_value(gateway).expect("JSON");
    gateway["spec"]["servers"][0]["port"]["number"] = serde_json::json!(-1);
    let errors = crds.errors(&gateway);
    assert!(errors.iter().any(|e| e.contains("/spec/servers/0/port/number")), "{errors:#?}");
}

// ---------------------------------------------------------------------------------------------------------------
// The lab files decide like the scenario policies

/// An RNG that always returns `bits` and remembers whether it was asked: a decision that never draws is
/// deterministic, one that does is a split, swept bucket by bucket.
struct Fixed {
    bits: u32,
    used: bool,
}

impl RngCore for Fixed {
    fn next_u32(&mut self) -> u32 {
        self.used = true;
        self.bits
    }
    fn next_u64(&mut self) -> u64 {
        self.used = true;
        u64::from(self.bits)
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        self.used = true;
        dst.fill(0);
    }
}

/// The exact distribution of subsets for a request: buckets (of 10,000) per subset. A split's outcome only
/// depends on its rule (no split here is sticky), so sweeps are cached per rule.
struct Decider {
    policy: Policy,
    sweeps: HashMap<(u32, Option<u32>), BTreeMap<String, u32>>,
}

impl Decider {
    fn new(config: &Config) -> Self {
        for svc in &config.services {
            for rule in &svc.rules.rules {
                if let Action::Split(split) = &rule.then {
                    assert!(split.by.is_none(), "the sweep assumes independent draws");
                }
            }
        }
        Decider { policy: Policy::new(config).expect("loads"), sweeps: HashMap::new() }
    }

    fn service(&self, name: &str) -> ServiceId {
        self.policy.service_or_global(name)
    }

    fn distribution(&mut self, service: ServiceId, req: &SimpleRequest) -> BTreeMap<String, u32> {
        let mut probe = Fixed { bits: 0, used: false };
        let decision = self.policy.decide(service, req, &mut probe);
        let name = |p: &Policy, s: Option<canary_eval::SubsetId>| {
            s.map_or("none".to_string(), |s| p.subset_name(s).to_string())
        };
        if !probe.used {
            return BTreeMap::from([(name(&self.policy, decision.subset), BUCKETS)]);
        }
        let key = (service.0, decision.rule.map(|r| r.0));
        if let Some(sweep) = self.sweeps.get(&key) {
            return sweep.clone();
        }
        let mut sweep = BTreeMap::new();
        for bucket in 0..u64::from(BUCKETS) {
            let bits = ((bucket << 32).div_ceil(u64::from(BUCKETS))) as u32;
            let d = self.policy.decide(service, req, &mut Fixed { bits, used: false });
            *sweep.entry(name(&self.policy, d.subset)).or_default() += 1;
        }
        self.sweeps.insert(key, sweep.clone());
        sweep
    }
}

struct Case {
    what: String,
    user_agent: Option<String>,
    cookie: Option<&'static str>,
    request: SimpleRequest,
}

const COOKIES: [Option<&str>; 13] = [
    None,
    Some("user=tester"),
    Some("a=b; user=tester"),
    Some("a=b;user=tester"),
    Some("user=tester; a=b"),
    Some("user=tester;a=b"),
    Some("user=tester;"),
    Some("user=other"),
    Some("user=other; user=tester"),
    Some("user=other;user=tester"),
    Some("user=testers"),
    Some("xuser=tester"),
    Some("user=\"tester\""),
];
const SOURCES: [&[(&str, &str)]; 4] = [&[], &[("version", "v1")], &[("version", "v2")], &[("app", "frontend")]];

/// The user agents of uap-core's test corpus: the full corpus where `../shared/ua-corpus` sits next to the
/// workspace, else the fixture derived from it (`compiler/tests/fixtures/ua-corpus/`, every OS case and a
/// quarter of the browser cases; `scripts/derive-ua-fixture.py`), with one line on stderr saying so.
fn user_agents() -> Vec<String> {
    let full = workspace().join("../shared/ua-corpus");
    let dir = if full.join("test_os.yaml").is_file() && full.join("test_ua.yaml").is_file() {
        full
    } else {
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            let _ = writeln!(
                std::io::stderr(),
                "import: skipped the full uap-core corpus ({} is absent); the requests carry the fixture's user agents",
                full.display()
            );
        });
        workspace().join("compiler/tests/fixtures/ua-corpus")
    };
    let mut out = Vec::new();
    for file in ["test_os.yaml", "test_ua.yaml"] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: canary_yaml::Value = canary_yaml::from_str(&text).expect("corpus YAML");
        let cases = doc["test_cases"].as_sequence().expect("test_cases");
        out.extend(cases.iter().filter_map(|c| c["user_agent_string"].as_str().map(str::to_string)));
    }
    out
}

/// Every user agent of the corpus, each with one of the cookie/source variants in turn; and every variant
/// with no user agent and with a few.
fn corpus() -> Vec<Case> {
    let uas = user_agents();
    let case = |ua: Option<&String>, cookie: Option<&'static str>, source: &[(&str, &str)]| {
        let mut request = SimpleRequest::new();
        if let Some(ua) = ua {
            request = request.header("user-agent", ua);
        }
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        for (k, v) in source {
            request = request.source(k, v);
        }
        let what = format!("user-agent {ua:?}, cookie {cookie:?}, source {source:?}");
        Case { what, user_agent: ua.cloned(), cookie, request }
    };
    let mut out = Vec::new();
    for (i, ua) in uas.iter().enumerate() {
        out.push(case(Some(ua), COOKIES[i % COOKIES.len()], SOURCES[(i / COOKIES.len()) % SOURCES.len()]));
    }
    for ua in [None].into_iter().chain(uas.iter().take(3).map(Some)) {
        for cookie in COOKIES {
            for source in SOURCES {
                out.push(case(ua, cookie, source));
            }
        }
    }
    out
}

/// Whether the lab's cookie regex `^(.*?;)?(user=tester)(;.*)?$` matches (an RE2 full match, checked in
/// Envoy): some `;`-separated piece of the header is exactly `user=tester`.
fn lab_cookie_regex(cookie: Option<&str>) -> bool {
    cookie.is_some_and(|c| c.split(';').any(|piece| piece == "user=tester"))
}

/// canary's `cookie user=tester`: Envoy's cookie parser (spaces after `;` skipped, first `user` wins).
fn cookie_condition(cookie: Option<&str>) -> bool {
    cookie.and_then(|c| cookie_value(c.as_bytes(), b"user")) == Some(b"tester".as_slice())
}

#[test]
fn lab_files_decide_like_the_scenario_policies() {
    let cases = corpus();
    let android = Policy::new(&compile("service s {\n  android -> v2\n}\n", "android.canary")).expect("loads");
    let is_android = |ua: &Option<String>| {
        let req = ua.as_ref().map_or(SimpleRequest::new(), |ua| SimpleRequest::new().header("user-agent", ua));
        android.decide(android.service_or_global("s"), &req, &mut Fixed { bits: 0, used: false }).subset.is_some()
    };
    let mut figures = Vec::new();
    for (name, services) in SCENARIOS {
        let policy = imported(name);
        let mut lab = Decider::new(&compile(&policy, name));
        let mut ours = Decider::new(&compile(&example(name), name));
        let mut differing = 0;
        let mut compared = 0;
        for service in services {
            let (lab_id, our_id) = (lab.service(service), ours.service(service));
            for case in &cases {
                // A TCP service sees connections: only the caller's labels.
                let request = if *service == "tcp-echo" {
                    let mut r = SimpleRequest::new();
                    r.source = case.request.source.clone();
                    r
                } else {
                    case.request.clone()
                };
                let (a, b) = (lab.distribution(lab_id, &request), ours.distribution(our_id, &request));
                compared += 1;
                // The documented exceptions, each exactly where the lab's idiom and the policy's condition part:
                // S4's `.*Android.*` is not the `android` family (Kindle's `Silk/`, Windows Phone's
                // "Android" mention, …); S5's cookie regex is not a cookie parser (`a=b; user=tester`).
                let exception = match (name, *service) {
                    ("s4-android-split", "frontend") => {
                        case.user_agent.as_ref().is_some_and(|ua| ua.contains("Android"))
                            != is_android(&case.user_agent)
                    }
                    ("s5-tester-chain", "frontend") => lab_cookie_regex(case.cookie) != cookie_condition(case.cookie),
                    _ => false,
                };
                assert_eq!(a != b, exception, "{name} {service}: {}: lab {a:?}, policy {b:?}", case.what);
                differing += usize::from(exception);
            }
        }
        figures.push(format!("{name}: {compared} decisions compared, {differing} documented differences"));
        if name.starts_with("s4") || name.starts_with("s5") {
            assert!(differing > 0, "{name}: the corpus must exercise the documented difference");
        }
    }
    println!("{}", figures.join("\n"));
}

#[test]
fn the_s5_cookie_difference_pinned() {
    let mut lab = Decider::new(&compile(&imported("s5-tester-chain"), "lab"));
    let mut ours = Decider::new(&compile(&example("s5-tester-chain"), "s5"));
    let frontend = (lab.service("frontend"), ours.service("frontend"));
    let v = |s: &str| BTreeMap::from([(s.to_string(), BUCKETS)]);
    for (cookie, by_lab, by_policy) in [
        ("user=tester", "v2", "v2"),
        ("a=b;user=tester", "v2", "v2"),
        ("a=b; user=tester", "v1", "v2"),
        ("user=other; user=tester", "v1", "v1"),
        ("user=other;user=tester", "v2", "v1"),
    ] {
        let req = SimpleRequest::new().header("cookie", cookie);
        assert_eq!(lab.distribution(frontend.0, &req), v(by_lab), "lab, {cookie}");
        assert_eq!(ours.distribution(frontend.1, &req), v(by_policy), "policy, {cookie}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Istio's tcp-echo sample through its gateway

/// The lab's S6 is Istio's `samples/tcp-echo/tcp-echo-20-v2.yaml` (same fields and values) plus its
/// DestinationRule: bound to `tcp-echo-gateway`, matching the gateway's listener port 31400, routing to
/// tcp-echo's port 9000 80/20. The import is the policy for tcp-echo's port 9000, says where it came from,
/// and decides 80/20.
#[test]
fn the_tcp_echo_gateway_sample_imports_and_decides_80_20() {
    let vs = std::fs::read_to_string(lab("s6-tcp-split")).expect("lab file");
    let doc = canary_yaml::documents(&vs).expect("YAML").into_iter().nth(1).expect("the VirtualService");
    // The sample's form, field by field.
    assert_eq!(doc["spec"]["hosts"], canary_yaml::Value::from(vec!["*"]));
    assert_eq!(doc["spec"]["gateways"], canary_yaml::Value::from(vec!["tcp-echo-gateway"]));
    assert_eq!(doc["spec"]["tcp"][0]["match"][0]["port"], canary_yaml::Value::from(31400));
    for (i, (subset, weight)) in [("v1", 80), ("v2", 20)].into_iter().enumerate() {
        let route = &doc["spec"]["tcp"][0]["route"][i];
        assert_eq!(route["destination"]["host"], canary_yaml::Value::from("tcp-echo"));
        assert_eq!(route["destination"]["port"]["number"], canary_yaml::Value::from(9000));
        assert_eq!(route["destination"]["subset"], canary_yaml::Value::from(subset));
        assert_eq!(route["weight"], canary_yaml::Value::from(weight));
    }

    let path = lab("s6-tcp-split").display().to_string();
    let outcome = import(&[Input { name: &path, text: &vs }]);
    let errors: Vec<String> = outcome.errors().map(ToString::to_string).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let notes: Vec<String> = outcome.messages.iter().map(ToString::to_string).collect();
    assert!(
        notes.iter().any(|m| m.contains(
            "spec.tcp[0].match[0].port: note: port 31400 is the listener port of gateway \
             tcp-echo-gateway"
        )),
        "{notes:#?}"
    );
    let policy = outcome.policy.expect("a policy");
    assert_eq!(
        policy,
        format!(
            "# Imported by `canaryc import` from {path}.\n\
             # VirtualService tcp-echo (doc 2 of s6-tcp-split.yaml): subsets v1 (version=v1), v2 (version=v2)\n\
             # tcp-echo port 9000 as routed at gateway tcp-echo-gateway, listener port 31400\n\
             service tcp-echo tcp {{\n  20% v2\n  default v1\n}}\n"
        )
    );

    // 10,000 connections through the evaluator, as the filter draws them: 20% v2 within 5σ.
    let policy = Policy::new(&compile(&policy, "s6.canary")).expect("loads");
    let service = policy.service_or_global("tcp-echo");
    let mut rng = rand::rngs::SmallRng::seed_from_u64(0x5eed);
    let n = 10_000u32;
    let mut v2 = 0u32;
    for _ in 0..n {
        let decision = policy.decide(service, &SimpleRequest::new(), &mut rng);
        match decision.subset.map(|s| policy.subset_name(s)) {
            Some("v2") => v2 += 1,
            Some("v1") => {}
            other => panic!("a connection went to {other:?}"),
        }
    }
    let (p, n) = (0.2, f64::from(n));
    let sigma = (n * p * (1.0 - p)).sqrt();
    assert!(
        (f64::from(v2) - n * p).abs() <= 5.0 * sigma,
        "{v2} of {n} connections to v2, expected 2000 ± {}",
        5.0 * sigma
    );
}

/// The same YAML on the command line: the comment line is in the printed policy, which `canaryc` compiles.
#[test]
fn cli_imports_the_tcp_echo_gateway_form_with_its_origin() {
    let s6 = lab("s6-tcp-split").display().to_string();
    let gateway = workspace().join("examples/istio/lab/gateway.yaml").display().to_string();
    let out = canaryc(&["import", &gateway, &s6], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{gateway}: doc 2 Gateway/tcp-echo-gateway: note: ignored")), "{stderr}");
    let policy = text(&out.stdout);
    assert!(
        policy.contains("\n# tcp-echo port 9000 as routed at gateway tcp-echo-gateway, listener port 31400\nservice tcp-echo tcp {\n"),
        "{policy}"
    );
    let file = scratch("s6.canary");
    std::fs::write(&file, &policy).expect("write");
    let check = canaryc(&["check", &file.display().to_string()], None);
    assert!(check.status.success(), "{}", text(&check.stderr));
}

/// A mesh VirtualService still names one port: its match port is the service's own, so a destination on
/// another port is refused, as before.
#[test]
fn mesh_tcp_routes_with_two_ports_are_still_refused() {
    let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tcp-echo}\nspec:\n  \
                hosts: [tcp-echo]\n  tcp:\n  - match: [{port: 31400}]\n    route:\n    - destination: {host: tcp-echo, \
                port: {number: 9000}, subset: v1}\n";
    let outcome = import(&[Input { name: "mesh.yaml", text: yaml }]);
    let errors: Vec<String> = outcome.errors().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        ["mesh.yaml: doc 1 VirtualService/tcp-echo: spec.tcp[0].route[0].destination.port.number: error: port 9000, but \
          spec.tcp[0].match[0].port names port 31400: a policy decides for one port of a service"]
    );
    assert!(outcome.policy.is_none());
}

// ---------------------------------------------------------------------------------------------------------------
// The CLI

fn canaryc(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_canaryc"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("canaryc runs");
    if let Some(text) = stdin {
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("canaryc finishes")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("canaryc-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir.join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn cli_prints_a_policy_that_check_and_eval_accept() {
    let s3 = lab("s3-chrome").display().to_string();
    let gateway = workspace().join("examples/istio/lab/gateway.yaml").display().to_string();
    let out = canaryc(&["import", &s3, &gateway], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!("{gateway}: doc 1 Gateway/weather-gateway: note: ignored")), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    let policy = text(&out.stdout);
    assert!(policy.starts_with(&format!("# Imported by `canaryc import` from {s3}, {gateway}.\n")), "{policy}");
    let file = scratch("s3.canary");
    std::fs::write(&file, &policy).expect("write");
    let file = file.display().to_string();
    let check = canaryc(&["check", &file], None);
    assert!(check.status.success() && text(&check.stderr).contains("0 warning(s)"), "{}", text(&check.stderr));
    let chrome =
        "user-agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
    let eval = canaryc(&["eval", &file, "--service", "forecast", "--header", chrome], None);
    assert_eq!(text(&eval.stdout), "v2\n");
    let eval = canaryc(&["eval", &file, "--service", "forecast"], None);
    assert_eq!(text(&eval.stdout), "v1\n");
}

#[test]
fn cli_reads_stdin_and_carries_regexes() {
    let s5 = std::fs::read_to_string(lab("s5-tester-chain")).expect("lab");
    let out = canaryc(&["import", "-"], Some(&s5));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("warning: carried as the regex"), "exact since `~` reads the whole value: {stderr}");
    assert!(text(&out.stdout).contains("header cookie ~ \"^(?:(.*?;)?(user=tester)(;.*)?)$\" -> v2"));
}

#[test]
fn cli_errors_name_the_yaml_path_and_print_nothing() {
    let bad = scratch("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: forecast}\nspec:\n  hosts: \
         [forecast]\n  http:\n  - route: [{destination: {host: forecast, subset: v1}}]\n---\napiVersion: \
         networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: frontend}\nspec:\n  hosts: [frontend]\n  \
         http:\n  - match: [{uri: {prefix: /}, queryParams: {user: {exact: tester}}}]\n    route: [{destination: \
         {host: frontend, subset: v2}}]\n  - route: [{destination: {host: frontend, subset: v1}, weight: 1}, \
         {destination: {host: frontend, subset: v2}, weight: 2}]\n",
    )
    .expect("write");
    let bad = bad.display().to_string();
    let out = canaryc(&["import", &bad], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    let stderr = text(&out.stderr);
    for expected in [
        format!("{bad}: doc 2 VirtualService/frontend: spec.http[0].match[0].queryParams: error: Envoy matches query"),
        format!("{bad}: doc 2 VirtualService/frontend: spec.http[1].route: error: v1 gets weight 1 of 3 = 33.3333%"),
    ] {
        assert!(stderr.contains(&expected), "wanted {expected}\n{stderr}");
    }
    let missing = canaryc(&["import", "/nonexistent/vs.yaml"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("/nonexistent/vs.yaml: cannot read"));
    let not_yaml = canaryc(&["import", "-"], Some("a: [\n"));
    assert_eq!(not_yaml.status.code(), Some(1));
    assert!(text(&not_yaml.stderr).starts_with("-: error: not YAML"), "{}", text(&not_yaml.stderr));
}

// ---------------------------------------------------------------------------------------------------------------
// Never a panic

/// Words that reach deep into the import: the schema's own field names, and values of the right shapes.
const WORDS: &[&str] = &[
    "apiVersion",
    "networking.istio.io/v1",
    "kind",
    "VirtualService",
    "DestinationRule",
    "List",
    "items",
    "metadata",
    "name",
    "namespace",
    "spec",
    "hosts",
    "gateways",
    "mesh",
    "http",
    "tcp",
    "tls",
    "match",
    "route",
    "destination",
    "host",
    "subset",
    "weight",
    "port",
    "number",
    "headers",
    "withoutHeaders",
    "uri",
    "method",
    "authority",
    "scheme",
    "exact",
    "prefix",
    "regex",
    "sourceLabels",
    "queryParams",
    "ignoreUriCase",
    "subsets",
    "labels",
    "version",
    "v1",
    "v2",
    "forecast",
    "forecast.weather.svc.cluster.local",
    "*",
    ".*Chrome.*",
    "^(a|b)$",
    "[^;]+",
    "(?i)x",
    "\\pL",
    "",
    "/",
    "/api",
    "GET",
    "exportTo",
    ".",
];

fn word() -> impl Strategy<Value = canary_yaml::Value> {
    prop_oneof![
        proptest::sample::select(WORDS).prop_map(canary_yaml::Value::from),
        any::<i64>().prop_map(canary_yaml::Value::from),
        any::<bool>().prop_map(canary_yaml::Value::from),
        Just(canary_yaml::Value::Null),
        ".{0,12}".prop_map(canary_yaml::Value::from),
    ]
}

/// YAML trees whose keys are mostly the schema's words.
fn tree() -> impl Strategy<Value = canary_yaml::Value> {
    word().prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(canary_yaml::Value::Sequence),
            proptest::collection::vec((proptest::sample::select(WORDS), inner), 0..6).prop_map(|entries| {
                canary_yaml::Value::Mapping(
                    entries.into_iter().map(|(k, v)| (canary_yaml::Value::from(k), v)).collect(),
                )
            }),
        ]
    })
}

fn exercise(text: &str) {
    let outcome = import(&[Input { name: "fuzz.yaml", text }]);
    assert_eq!(outcome.policy.is_some(), outcome.errors().next().is_none(), "a policy exactly when there is no error");
    if let Some(policy) = &outcome.policy {
        canary_compiler::compile(policy, "fuzz.canary").expect("a printed policy compiles");
    }
    for m in &outcome.messages {
        assert!(m.to_string().starts_with("fuzz.yaml: "), "{m}");
        assert!(!m.to_string().contains('\n'), "one line per message: {m}");
        assert!(m.severity != Severity::Error || !m.text.is_empty());
        assert!(!m.text.contains("internal error"), "{m}");
    }
}

fn string_match() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        Just(serde_json::json!({})),
        "[a-c.*|^$()?\\\\]{0,6}".prop_map(|v| serde_json::json!({ "regex": v })),
        "[a-cA/?#]{0,5}".prop_map(|v| serde_json::json!({ "exact": v })),
        "[a-cA/?#]{0,5}".prop_map(|v| serde_json::json!({ "prefix": v })),
    ]
}

/// A match block setting a random few of the fields the import reads.
fn match_block() -> impl Strategy<Value = serde_json::Value> {
    let field = prop_oneof![
        string_match().prop_map(|m| ("headers", serde_json::json!({ "x-a": m }))),
        string_match().prop_map(|m| ("withoutHeaders", serde_json::json!({ "x-a": m }))),
        string_match().prop_map(|m| ("uri", m)),
        string_match().prop_map(|m| ("method", m)),
        string_match().prop_map(|m| ("authority", m)),
        any::<bool>().prop_map(|b| ("ignoreUriCase", serde_json::json!(b))),
        "[a-z]{1,2}".prop_map(|v| ("sourceLabels", serde_json::json!({ "version": v }))),
    ];
    proptest::collection::vec(field, 0..4)
        .prop_map(|fields| serde_json::Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

/// A VirtualService of random routes: match blocks, destinations and weights.
fn virtual_service() -> impl Strategy<Value = String> {
    let destination = (proptest::sample::select(&["v1", "v2", "v3"][..]), 0u32..4);
    let route = (proptest::collection::vec(match_block(), 0..3), proptest::collection::vec(destination, 1..4));
    proptest::collection::vec(route, 1..4).prop_map(|routes| {
        let http: Vec<serde_json::Value> = routes
            .into_iter()
            .map(|(matches, destinations)| {
                let route: Vec<serde_json::Value> = destinations
                    .into_iter()
                    .map(|(subset, weight)| {
                        serde_json::json!({ "destination": { "host": "f", "subset": subset }, "weight": weight })
                    })
                    .collect();
                serde_json::json!({ "match": matches, "route": route })
            })
            .collect();
        let vs = serde_json::json!({ "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": { "name": "f" }, "spec": { "hosts": ["f"], "http": http } });
        canary_yaml::to_string(&vs).expect("yaml")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Random but well-formed VirtualServices: imported or refused, never a panic, and an imported one
    /// always compiles (`exercise`).
    #[test]
    fn random_virtual_services_never_panic(vs in virtual_service()) {
        exercise(&vs);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        exercise(&text);
    }

    #[test]
    fn arbitrary_yaml_trees_never_panic(doc in tree()) {
        exercise(&canary_yaml::to_string(&doc).unwrap_or_default());
    }

    /// A well-formed VirtualService around an arbitrary regex: refused, carried or recognised, never a panic.
    #[test]
    fn arbitrary_regexes_never_panic(re in "[a-c.*+?|()\\[\\]^${}\\\\:;,0-9é-]{0,16}") {
        let doc = canary_yaml::to_string(&serde_json::json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService", "metadata": {"name": "f"},
            "spec": {"hosts": ["f"], "http": [
                {"match": [{"headers": {"x": {"regex": re}}, "uri": {"regex": re}}],
                 "route": [{"destination": {"host": "f", "subset": "v2"}}]},
                {"route": [{"destination": {"host": "f", "subset": "v1"}}]}]}
        })).expect("yaml");
        exercise(&doc);
    }
}

#[test]
fn adversarial_yaml() {
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let anchors = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: &c [*b, *b, *b, *b]\nd: [*c, *c, *c, *c]\n";
    // Nine levels of nine aliases: 9⁹ nodes if expanded.
    let mut bomb = vec!["a0: &a0 [x, x, x, x, x, x, x, x, x]".to_string()];
    for i in 1..10 {
        bomb.push(format!("a{i}: &a{i} [{}]", vec![format!("*a{}", i - 1); 9].join(", ")));
    }
    let bomb = bomb.join("\n");
    // Refused while reading, at the alias that overspends the budget, before anything is expanded (the fastest of
    // a few runs: serde_yaml took 35–60 ms to refuse it).
    let timed = || {
        let start = std::time::Instant::now();
        (import(&[Input { name: "bomb.yaml", text: &bomb }]), start.elapsed())
    };
    let (outcome, _) = timed();
    let elapsed = (0..5).map(|_| timed().1).min().unwrap_or_default();
    let first = outcome.errors().next().map(ToString::to_string).unwrap_or_default();
    assert_eq!(
        first,
        "bomb.yaml: doc 1: a4[0]: error: aliases expand to more than 10000 nodes (alias *a3: 7381 nodes): \
         refused before expanding at line 5 column 10"
    );
    assert!(elapsed < std::time::Duration::from_millis(20), "{elapsed:?}");
    for text in [
        deep.as_str(),
        anchors,
        "--- !tag\nkind: VirtualService\n",
        "kind: VirtualService\nspec: !x {}\n",
        "\u{feff}kind: List\nitems: 3\n",
        "? [a]\n: b\n",
    ] {
        exercise(text);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Round trip: the native Istio backend's VirtualServices, imported back, decide like the policy

/// `canaryc manifest POLICY --kind istio-routes --backend auto` for the weather mesh: the YAML and the services
/// that got native routes (the others route on the filter's header and are not the policy's own form).
fn native_routes(policy: &std::path::Path) -> (String, Vec<String>) {
    let path = policy.display().to_string();
    let mut args = vec!["manifest", path.as_str(), "--kind", "istio-routes", "--backend", "auto"];
    args.extend(["--namespace", "weather", "--subsets", "v1,v2"]);
    args.extend(["--service", "frontend", "--service", "forecast", "--service", "recommendation"]);
    args.extend(["--edge", "frontend", "--gateway", "weather-gateway"]);
    let source = std::fs::read_to_string(policy).expect("policy");
    if source.contains("tcp-echo") {
        args.extend(["--port", "tcp-echo=9000"]);
    }
    let out = canaryc(&args, None);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{path}: {stderr}");
    let native = stderr
        .lines()
        .filter_map(|l| l.split_once(": native VirtualService routes").map(|(s, _)| s.to_string()))
        .collect();
    (text(&out.stdout), native)
}

/// A policy on the forms the Istio backend lowers besides the examples' (`!=`, `in`, presence, `not`, `path`,
/// `method`, `host`, global rules), with requests aimed at its values.
const FORMS: &str = "header x-env = \"canary\" -> v2\n\
service forecast {\n  header x-team != \"a\" and not header x-beta present -> v2\n  \
header x-team in [\"b\", \"c\"] or path \"/beta\" -> v2\n  \
method POST and host \"forecast.example.com\" -> v2\n  \
not header user-agent ~ \"bot\" and header x-team absent -> v1\n  25% v2\n  default v1\n}\n\
service tcp-echo tcp {\n  source version=v2 -> v2\n  30% v2\n  default v1\n}\n";

fn forms_corpus() -> Vec<SimpleRequest> {
    let mut out = Vec::new();
    for env in [None, Some("canary"), Some("Canary")] {
        for team in [None, Some("a"), Some("b"), Some("c"), Some("")] {
            for beta in [None, Some("1")] {
                for (method, path, host) in [
                    ("GET", "/", "forecast"),
                    ("POST", "/beta/x", "FORECAST.example.com:8080"),
                    ("POST", "/", "forecast.example.com"),
                ] {
                    for ua in [None, Some("a bot"), Some("Mozilla")] {
                        let mut r = SimpleRequest::new().method(method).path(path).host(host);
                        for (k, v) in [("x-env", env), ("x-team", team), ("x-beta", beta), ("user-agent", ua)] {
                            if let Some(v) = v {
                                r = r.header(k, v);
                            }
                        }
                        out.push(r);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn istio_native_routes_import_back_to_the_same_decisions() {
    let forms = scratch("forms.canary");
    std::fs::write(&forms, FORMS).expect("write");
    let mut policies: Vec<(PathBuf, Vec<SimpleRequest>)> = SCENARIOS
        .iter()
        .map(|(name, _)| (workspace().join("examples").join(format!("{name}.canary")), Vec::new()))
        .collect();
    policies.push((forms.clone(), forms_corpus()));
    let corpus = corpus();
    let mut figures = Vec::new();
    for (path, extra) in policies {
        let (yaml, native) = native_routes(&path);
        assert!(!native.is_empty(), "{}: no service lowered", path.display());
        let outcome = import(&[Input { name: "native.yaml", text: &yaml }]);
        let errors: Vec<String> = outcome.errors().map(ToString::to_string).collect();
        assert!(errors.is_empty(), "{}: {errors:#?}\n{yaml}", path.display());
        let back = outcome.policy.expect("a policy");
        let source = std::fs::read_to_string(&path).expect("policy");
        let mut original = Decider::new(&compile(&source, "original"));
        let mut imported = Decider::new(&compile(&back, "imported"));
        let requests: Vec<SimpleRequest> = corpus.iter().map(|c| c.request.clone()).chain(extra).collect();
        let mut compared = 0;
        for service in &native {
            let (a, b) = (original.service(service), imported.service(service));
            for req in &requests {
                // What the policy leaves undecided goes to the mesh's fallback, the first of --subsets.
                let undecided = |d: BTreeMap<String, u32>| -> BTreeMap<String, u32> {
                    d.into_iter().fold(BTreeMap::new(), |mut m, (s, n)| {
                        *m.entry(if s == "none" { "v1".to_string() } else { s }).or_default() += n;
                        m
                    })
                };
                let (want, got) = (undecided(original.distribution(a, req)), imported.distribution(b, req));
                assert_eq!(want, got, "{} {service}: {req:?}\nimported:\n{back}", path.display());
                compared += 1;
            }
        }
        figures.push(format!("{}: {native:?}, {compared} decisions", path.display()));
    }
    println!("{}", figures.join("\n"));
    let _ = std::fs::remove_file(&forms);
}
