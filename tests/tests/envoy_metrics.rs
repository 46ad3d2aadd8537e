//! The filter's decisions as an operator sees them, in real Envoy run from the bootstrap `canaryc manifest --kind
//! envoy` writes: `canary_decisions_total{service,rule,subset}` on the admin `/stats/prometheus` page, counting
//! exactly what was sent; every query of the Grafana dashboard (`deploy/grafana/canary.json`) run by a real
//! Prometheus scraping that Envoy (accepted, and returning series where the traffic put some); and, with
//! `--access-log`, every request's deciding rule and subset in the access log.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use canary_backends::manifest::envoy::{envoy_bootstrap, EnvoyOptions};
use canary_rollout::metrics::stats_text::{self, Sample};
use canary_tests::mesh::backends::{compile, upstreams};
use canary_tests::mesh::chain::binomial_bounds;
use canary_tests::mesh::envoy::{find_envoy, find_wasm, free_port, spawn, wait_ready, workspace_root};
use canary_tests::mesh::procs::Procs;
use canary_tests::mesh::prometheus::Prometheus;
use canary_weather::http::Client;
use serde_json::Value;

/// Line 2 routes testers, line 3 splits 30 % of requests with `x-split`, the rest take the default.
const POLICY: &str =
    "service frontend {\n  cookie user=tester -> v2\n  header x-split present: 30% v2\n  default v1\n}\n";
const METRIC: &str = "canary_decisions_total";

fn ok<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

struct Proxy {
    procs: Procs,
    listen: SocketAddr,
    admin: SocketAddr,
}

fn start(label: &str, access_log: bool) -> Proxy {
    let (envoy, wasm) = (ok(find_envoy()), ok(find_wasm()));
    let mut procs = ok(Procs::new(label));
    let config = compile(POLICY, "metrics.canary").config;
    let mut o = EnvoyOptions::new("frontend", ok(free_port()), ok(free_port()), &wasm);
    o.clusters = upstreams().http.clone();
    o.default_subset = Some("v1".into());
    o.access_log = access_log;
    let yaml = envoy_bootstrap(&config, &o).unwrap_or_else(|e| panic!("{e}"));
    ok(spawn(&mut procs, &envoy, "frontend", &yaml));
    ok(wait_ready(&mut procs, "frontend", o.admin));
    Proxy { procs, listen: o.listen, admin: o.admin }
}

/// The kinds of request sent, and the rule each is decided by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Tester,
    Plain,
    Split,
}

impl Kind {
    fn headers(self) -> Vec<(&'static str, &'static str)> {
        match self {
            Kind::Tester => vec![("cookie", "user=tester")],
            Kind::Plain => vec![],
            Kind::Split => vec![("x-split", "1")],
        }
    }
    fn rule(self) -> &'static str {
        match self {
            Kind::Tester => "2",
            Kind::Plain => "default",
            Kind::Split => "3",
        }
    }
}

/// Sends `kinds` in order (path `/r/<index>`); returns the subset that answered each.
fn send(proxy: &Proxy, kinds: &[Kind]) -> Vec<String> {
    let mut client = Client::new(proxy.listen);
    kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| {
            let answer = client.get(&format!("/r/{i}"), &kind.headers()).expect("request through Envoy");
            assert_eq!(answer.status, 200, "{kind:?}: {}", answer.body);
            answer.body.trim().strip_prefix("recommendation=").expect("a stand-in's answer").to_string()
        })
        .collect()
}

fn scrape(admin: SocketAddr) -> (String, Vec<Sample>) {
    let page = Client::new(admin).get("/stats/prometheus", &[]).expect("admin /stats/prometheus");
    assert_eq!(page.status, 200);
    let series = stats_text::parse(&page.body).unwrap_or_else(|e| panic!("{e}"));
    (page.body, series)
}

fn decisions(series: &[Sample]) -> BTreeMap<(String, String, String), f64> {
    let label = |s: &Sample, l: &str| s.labels.get(l).cloned().unwrap_or_default();
    series
        .iter()
        .filter(|s| s.name == METRIC)
        .map(|s| ((label(s, "service"), label(s, "rule"), label(s, "subset")), s.value))
        .collect()
}

#[test]
fn prometheus_counts_decisions_by_service_rule_and_subset_and_the_dashboard_queries_them() {
    let proxy = start("metrics", false);
    let kinds: Vec<Kind> = [(Kind::Tester, 40), (Kind::Plain, 30), (Kind::Split, 400)]
        .iter()
        .flat_map(|&(k, n)| std::iter::repeat_n(k, n))
        .collect();
    let answers = send(&proxy, &kinds);
    let mut answered: BTreeMap<(Kind, &str), usize> = BTreeMap::new();
    for (kind, subset) in kinds.iter().zip(&answers) {
        *answered.entry((*kind, subset.as_str())).or_default() += 1;
    }

    // The filter hands its counts to Envoy on a 1 s tick.
    let deadline = Instant::now() + Duration::from_secs(20);
    let (page, series) = loop {
        let (page, series) = scrape(proxy.admin);
        let total: f64 = decisions(&series).values().sum();
        if total >= kinds.len() as f64 || Instant::now() > deadline {
            break (page, series);
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(page.contains(&format!("# TYPE {METRIC} counter")), "{page}");
    let mut want = BTreeMap::new();
    for ((kind, subset), n) in &answered {
        want.insert(("frontend".to_string(), kind.rule().to_string(), subset.to_string()), *n as f64);
    }
    assert_eq!(decisions(&series), want, "counters vs answers; the page:\n{page}");
    assert_eq!(want.len(), 4, "testers→v2, default→v1, the split both ways: {want:?}");
    let (lo, hi) = binomial_bounds(400, 0.3, 5.0);
    let split_v2 = answered.get(&(Kind::Split, "v2")).copied().unwrap_or(0);
    assert!((lo..=hi).contains(&split_v2), "30 % split: {split_v2} of 400 to v2, expected {lo}..={hi}");
    assert_eq!(answered.get(&(Kind::Tester, "v2")), Some(&40));
    assert_eq!(answered.get(&(Kind::Plain, "v1")), Some(&30));
    // No flat per-outcome names are left for dashboards to trip over.
    assert!(!page.lines().any(|l| l.starts_with("canary_") && !l.starts_with(METRIC)), "{page}");

    dashboard_queries_run_in_prometheus(proxy.admin, kinds.len());
    drop(proxy.procs);
}

/// Grafana's variables as a test substitutes them: one service that has data, every rollout, fixed intervals.
const VARIABLES: [(&str, &str); 5] = [
    ("$service", "frontend"),
    ("$rollout", ".*"),
    ("$__rate_interval", "1m"),
    ("$__range", "5m"),
    ("$__interval", "15s"),
];
/// Panels that read the filter's counters: this test's traffic must show in them. The rest (the rollout's,
/// fed by the controller; undecided requests, of which none are sent) need only be accepted.
const PANELS_WITH_DATA: [&str; 3] =
    ["Subset share per service", "Decisions per rule", "Decisions per rule in the time range"];

fn substitute(query: &str) -> String {
    let mut q = query.to_string();
    for (var, value) in VARIABLES {
        q = q.replace(var, value);
    }
    assert!(!q.contains('$'), "a Grafana variable this test does not know in `{query}`");
    q
}

/// `{{label}}` placeholders of a legend.
fn legend_labels(format: &str) -> Vec<&str> {
    format.split("{{").skip(1).filter_map(|s| s.split_once("}}")).map(|(l, _)| l.trim()).collect()
}

/// Every query of the dashboard, run by a real Prometheus scraping the proxy: accepted (HTTP 200, `success`),
/// series where the traffic made some, and legends naming labels those series carry; variable queries
/// (`label_values(METRIC, LABEL)`) through the label-values API.
fn dashboard_queries_run_in_prometheus(admin: SocketAddr, sent: usize) {
    let prometheus = ok(Prometheus::start(&[admin]));
    // The filter's counts reach Prometheus within a flush and a scrape; rates need two samples.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, answer) = ok(prometheus.query("sum(canary_decisions_total)"));
        let total = answer["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
        if total == Some(sent as f64) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus has {total:?} decisions, {sent} sent:\n{}",
            prometheus.log_tail()
        );
        thread::sleep(Duration::from_millis(200));
    }
    ok(prometheus.wait_scraped(admin, SystemTime::now(), Duration::from_secs(10)));

    let path = workspace_root().join("deploy/grafana/canary.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/canary.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().expect("a title");
        for target in panel["targets"].as_array().expect("targets") {
            let expr = substitute(target["expr"].as_str().expect("a PromQL target"));
            let (status, answer) = ok(prometheus.query(&expr));
            assert_eq!(
                (status, &answer["status"]),
                (200, &Value::from("success")),
                "panel {title:?}: `{expr}`: {answer}"
            );
            let result = answer["data"]["result"].as_array().expect("a result list");
            if PANELS_WITH_DATA.contains(&title) {
                assert!(!result.is_empty(), "panel {title:?}: `{expr}` returned nothing");
            }
            for series in result {
                for label in legend_labels(target["legendFormat"].as_str().unwrap_or("")) {
                    assert!(
                        series["metric"].get(label).is_some(),
                        "panel {title:?}: legend label `{label}` not in {series}"
                    );
                }
            }
            checked += 1;
        }
    }
    for var in dashboard["templating"]["list"].as_array().expect("templating") {
        if var["type"] != "query" {
            continue;
        }
        let query = var["query"]["query"].as_str().expect("a variable query");
        let (selector, label) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|args| args.rsplit_once(','))
            .unwrap_or_else(|| panic!("variable query `{query}` is not label_values(SELECTOR, LABEL)"));
        let (status, answer) = ok(prometheus.api(&format!("label/{}/values", label.trim()), &[("match[]", selector)]));
        assert_eq!((status, &answer["status"]), (200, &Value::from("success")), "variable `{query}`: {answer}");
        if var["name"] == "service" {
            assert_eq!(answer["data"], serde_json::json!(["frontend"]), "variable `{query}`");
        }
        checked += 1;
    }
    assert!(checked >= 12, "checked only {checked} queries");
}

#[test]
fn the_access_log_shows_each_decision() {
    let proxy = start("access-log", true);
    let kinds: Vec<Kind> = (0..60).map(|i| [Kind::Tester, Kind::Plain, Kind::Split][i % 3]).collect();
    let answers = send(&proxy, &kinds);
    let log_path = proxy.procs.dir().join("frontend.log");
    // Envoy flushes stdout access logs on a timer.
    let deadline = Instant::now() + Duration::from_secs(40);
    let lines = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        let lines: Vec<String> =
            log.lines().filter_map(|l| l.find("canary-access ").map(|at| l[at..].to_string())).collect();
        if lines.len() >= kinds.len() || Instant::now() > deadline {
            break lines;
        }
        thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(lines.len(), kinds.len(), "access log lines:\n{}", lines.join("\n"));
    for (i, (kind, subset)) in kinds.iter().zip(&answers).enumerate() {
        let want = format!(
            "canary-access GET /r/{i} 200 frontend-{subset} service=frontend rule={} subset={subset}",
            kind.rule()
        );
        assert!(lines.contains(&want), "{kind:?}: no line `{want}` in:\n{}", lines.join("\n"));
    }
}
