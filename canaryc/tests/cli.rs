//! `canaryc` end to end: the output forms and exit codes of SCENARIOS.md §3, and each scenario's answers.

use std::path::PathBuf;
use std::process::{Command, Output};

fn example(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name).display().to_string()
}

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

fn stdout(args: &[&str]) -> String {
    let out = canaryc(args);
    assert!(out.status.success(), "canaryc {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

fn eval(file: &str, args: &[&str]) -> String {
    let path = example(file);
    let mut all = vec!["eval", path.as_str()];
    all.extend_from_slice(args);
    stdout(&all).trim_end().to_string()
}

fn simulate(file: &str, n: u64, args: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let path = example(file);
    let n = n.to_string();
    let mut all = vec!["simulate", path.as_str(), "-n", n.as_str()];
    all.extend_from_slice(args);
    let out = stdout(&all);
    match serde_json::from_str(&out).expect("simulate prints JSON") {
        serde_json::Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

/// |count − n·p| ≤ 5σ for a binomial(n, p).
fn assert_binomial(count: u64, n: u64, p: f64) {
    let (mean, sd) = (n as f64 * p, (n as f64 * p * (1.0 - p)).sqrt());
    assert!((count as f64 - mean).abs() <= 5.0 * sd, "{count} of {n} is not within 5σ of p = {p}");
}

fn count(m: &serde_json::Map<String, serde_json::Value>, k: &str) -> u64 {
    m.get(k).and_then(|v| v.as_u64()).unwrap_or(0)
}

const CHROME: &str = "user-agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
const FIREFOX: &str = "user-agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0";
const ANDROID: &str = "user-agent: Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
const MACOS: &str = "user-agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

#[test]
fn s1_everything_to_v1() {
    for service in ["frontend", "forecast", "recommendation"] {
        assert_eq!(eval("s1-all-v1.canary", &["--service", service, "--header", CHROME]), "v1");
    }
}

#[test]
fn s2_half_then_all_of_forecast() {
    let m = simulate("s2-forecast-50.canary", 100_000, &["--service", "forecast"]);
    assert_binomial(count(&m, "v2"), 100_000, 0.5);
    assert_eq!(count(&m, "v1") + count(&m, "v2"), 100_000);
    assert_eq!(eval("s2-forecast-100.canary", &["--service", "forecast"]), "v2");
    assert_eq!(eval("s2-forecast-100.canary", &["--service", "frontend"]), "v1");
}

#[test]
fn s3_chrome_to_v2() {
    assert_eq!(eval("s3-chrome.canary", &["--service", "forecast", "--header", CHROME]), "v2");
    assert_eq!(eval("s3-chrome.canary", &["--service", "forecast", "--header", FIREFOX]), "v1");
    assert_eq!(eval("s3-chrome.canary", &["--service", "forecast"]), "v1");
}

#[test]
fn s4_android_split_others_v1() {
    assert_eq!(eval("s4-android-split.canary", &["--service", "frontend", "--header", MACOS]), "v1");
    let m = simulate("s4-android-split.canary", 100_000, &["--service", "frontend", "--header", ANDROID]);
    assert_binomial(count(&m, "v2"), 100_000, 0.5);
    let m = simulate("s4-android-split.canary", 10_000, &["--service", "frontend", "--header", MACOS]);
    assert_eq!(count(&m, "v1"), 10_000);
}

#[test]
fn s5_tester_cookie_and_source_labels() {
    let s5 = "s5-tester-chain.canary";
    assert_eq!(eval(s5, &["--service", "frontend", "--cookie", "user=tester"]), "v2");
    assert_eq!(eval(s5, &["--service", "frontend", "--cookie", "user=alice"]), "v1");
    assert_eq!(eval(s5, &["--service", "frontend", "--header", "cookie: a=1; user=tester; b=2"]), "v2");
    assert_eq!(eval(s5, &["--service", "frontend", "--header", "cookie: user=testers"]), "v1");
    assert_eq!(eval(s5, &["--service", "forecast", "--source", "version=v2"]), "v2");
    assert_eq!(eval(s5, &["--service", "forecast", "--source", "version=v1"]), "v1");
    // The cookie alone does not move forecast: only the caller's own label does.
    assert_eq!(eval(s5, &["--service", "forecast", "--cookie", "user=tester"]), "v1");
    let json: serde_json::Value =
        serde_json::from_str(&eval(s5, &["--service", "frontend", "--cookie", "user=tester", "--json"])).expect("json");
    assert_eq!(json, serde_json::json!({"subset": "v2", "rule": 5}));
    let json: serde_json::Value = serde_json::from_str(&eval(s5, &["--service", "frontend", "--json"])).expect("json");
    assert_eq!(json, serde_json::json!({"subset": "v1", "rule": null}));
}

/// `--header` given twice with one name is a header sent twice: every value counts, as in Envoy.
#[test]
fn a_header_given_twice_counts_with_every_value() {
    let s3 = "s3-chrome.canary";
    assert_eq!(eval(s3, &["--service", "forecast", "--header", FIREFOX, "--header", CHROME]), "v2");
    assert_eq!(eval(s3, &["--service", "forecast", "--header", FIREFOX, "--header", FIREFOX]), "v1");
    let s5 = "s5-tester-chain.canary";
    let (a, tester) = ("cookie: a=1", "cookie: user=tester");
    assert_eq!(eval(s5, &["--service", "frontend", "--header", a, "--header", tester]), "v2");
    // The first `user` cookie wins, across `cookie` headers (Envoy's cookie parser).
    assert_eq!(eval(s5, &["--service", "frontend", "--header", "cookie: user=alice", "--header", tester]), "v1");
}

#[test]
fn s6_tcp_connections_80_20() {
    let m = simulate("s6-tcp-split.canary", 100_000, &[]);
    assert_binomial(count(&m, "v2"), 100_000, 0.2);
    assert_eq!(count(&m, "v1") + count(&m, "v2"), 100_000);
}

#[test]
fn one_liner_applies_to_every_service() {
    assert_eq!(eval("oneliner.canary", &["--service", "anything", "--cookie", "user=tester"]), "v2");
    assert_eq!(eval("oneliner.canary", &["--header", MACOS]), "none");
}

#[test]
fn sticky_simulation_uses_distinct_keys() {
    let dir = std::env::temp_dir().join(format!("canaryc-sticky-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("sticky.canary");
    std::fs::write(&file, "service web {\n  50% v2 by cookie user\n  default v1\n}\n").expect("write");
    let path = file.display().to_string();
    let out = stdout(&["simulate", &path, "-n", "20000"]);
    let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_binomial(count(&m, "v2"), 20_000, 0.5);
    // The request's own key is replaced too: simulate means N users unless `--fixed-key`.
    let out = stdout(&["simulate", &path, "-n", "20000", "--cookie", "user=alice"]);
    let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_binomial(count(&m, "v2"), 20_000, 0.5);
    // A fixed key is one user: every request lands on the same side.
    let out = stdout(&["simulate", &path, "-n", "1000", "--cookie", "user=alice", "--fixed-key"]);
    let m: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&out).expect("json");
    assert_eq!(m.len(), 1, "{out}");
}

#[test]
fn compile_prints_json_and_errors_print_nothing_on_stdout() {
    let out = stdout(&["compile", &example("weather.canary")]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("JSON on stdout");
    assert_eq!(json["version"], 1);

    let dir = std::env::temp_dir().join(format!("canaryc-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let bad = dir.join("bad.canary");
    std::fs::write(&bad, "service web {\n  cookie user=tester => v2\n}\n").expect("write");
    let out = canaryc(&["compile", &bad.display().to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("{}:2:", bad.display())), "{stderr}");
    assert!(first.contains(": error: "), "{stderr}");
    assert!(stderr.contains("->"), "hint mentions `->`: {stderr}");

    // -o replaces the file atomically (a watcher never reads half a config); a refused policy leaves it alone.
    let json = dir.join("weather.json");
    std::fs::write(&json, "old").expect("write");
    let written = canaryc(&["compile", &example("weather.canary"), "-o", &json.display().to_string()]);
    assert!(written.status.success() && written.stdout.is_empty(), "{written:?}");
    assert_eq!(std::fs::read_to_string(&json).expect("read"), stdout(&["compile", &example("weather.canary")]));
    let refused = canaryc(&["compile", &bad.display().to_string(), "-o", &json.display().to_string()]);
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&json).expect("read"), stdout(&["compile", &example("weather.canary")]));
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp-")), "{names:?}");
}

#[test]
fn check_warns_with_an_example_request_and_exits_zero() {
    let dir = std::env::temp_dir().join(format!("canaryc-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join("shadow.canary");
    std::fs::write(
        &file,
        "service web {\n  cookie user=tester -> v2\n  cookie user=tester and method GET -> v3\n  default v1\n}\n",
    )
    .expect("write");
    let out = canaryc(&["check", &file.display().to_string()]);
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&format!("{}:3:3: warning: shadowed rule", file.display())), "{stderr}");
    assert!(stderr.contains("--cookie 'user=tester' --method GET"), "{stderr}");
}

#[test]
fn several_services_need_service_flag() {
    let out = canaryc(&["eval", &example("weather.canary")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --service"));
}
