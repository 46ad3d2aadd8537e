//! The rollout's metric sources against real Envoys and a real Prometheus: two caller proxies (the filter
//! routes `x-canary` requests to `frontend-v2`, the rest to `frontend-v1`) in front of a stand-in that answers
//! the status and delay a request's path asks for. Known traffic goes through them; the Envoy admin source must
//! count it exactly, the Prometheus source (plain Envoy series) must agree once scraped, a restarted proxy is
//! neither double-counted nor subtracted, a killed proxy keeps its last counts with a note, and a read with
//! every proxy down fails. Istio cannot run here, so a second scrape job renames the same Envoy series into
//! Istio's standard names and labels (Prometheus `metric_relabel_configs`): the Istio flavour's queries then
//! run, with real counts, against the same real server.

use std::io::BufReader;
use std::net::{SocketAddr, TcpListener};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use canary_backends::manifest::envoy::{envoy_bootstrap, EnvoyOptions};
use canary_rollout::counts::{ArmCounts, Counts};
use canary_rollout::metrics::prometheus::arm_queries;
use canary_rollout::metrics::{
    from_envoy_admin, from_prometheus, Arm, EnvoyAdminConfig, MetricsSource, PrometheusConfig, PrometheusFlavor,
    Reading,
};
use canary_tests::mesh::backends::compile;
use canary_tests::mesh::envoy::{find_envoy, find_wasm, free_port, spawn, wait_ready};
use canary_tests::mesh::procs::Procs;
use canary_tests::mesh::prometheus::Prometheus;
use canary_weather::http::{self, Client};

const POLICY: &str = "service frontend {\n  header x-canary present -> v2\n  default v1\n}\n";
const BASELINE: &str = "frontend-v1";
const CANARY: &str = "frontend-v2";
/// A histogram bucket bound (ms); the stand-in's slow answers take 300 ms.
const BOUND_MS: f64 = 250.0;
/// A second scrape of the same proxies whose series carry Istio's names: per-code request counts
/// (`cluster.C.upstream_rq_<code>`, charged with `upstream_rq_completed`) become `istio_requests_total{
/// response_code}`, the latency histogram `istio_request_duration_milliseconds_*`, and cluster `frontend-vN`
/// becomes `destination_service_name="frontend", destination_version="vN"`, reported by the caller (`source`).
fn istio_job(targets: &[SocketAddr]) -> String {
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        r#"  - job_name: istio-names
    metrics_path: /stats/prometheus
    static_configs:
      - targets: [{}]
    metric_relabel_configs:
      - source_labels: [__name__, envoy_cluster_name]
        regex: 'envoy_cluster_upstream_rq(|_time_bucket|_time_count);frontend-v[0-9]+'
        action: keep
      - source_labels: [envoy_cluster_name]
        regex: '(.+)-(v[0-9]+)'
        target_label: destination_service_name
        replacement: '$1'
      - source_labels: [envoy_cluster_name]
        regex: '(.+)-(v[0-9]+)'
        target_label: destination_version
        replacement: '$2'
      - target_label: reporter
        replacement: source
      - source_labels: [envoy_response_code]
        regex: '(.+)'
        target_label: response_code
      - source_labels: [__name__]
        regex: 'envoy_cluster_upstream_rq'
        target_label: __name__
        replacement: istio_requests_total
      - source_labels: [__name__]
        regex: 'envoy_cluster_upstream_rq_time_(bucket|count)'
        target_label: __name__
        replacement: 'istio_request_duration_milliseconds_$1'
      - regex: 'envoy_cluster_name|envoy_response_code'
        action: labeldrop
"#,
        targets.join(", ")
    )
}

/// Envoy merges histograms into its admin view at each 5 s stats flush, Prometheus scrapes every second.
const SETTLE: Duration = Duration::from_secs(20);

fn ok<T, E: std::fmt::Display>(result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// The upstream of both subsets: `GET /status/CODE[/slow]` answers CODE, after 300 ms with `/slow`.
fn stand_in() -> SocketAddr {
    let listener = ok(TcpListener::bind("127.0.0.1:0"));
    let addr = ok(listener.local_addr());
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || {
                let Ok(mut writer) = stream.try_clone() else { return };
                let mut reader = BufReader::new(stream);
                while let Ok(Some(request)) = http::read_request(&mut reader) {
                    let mut parts = request.path.trim_start_matches('/').split('/');
                    let status = parts.nth(1).and_then(|s| s.parse().ok()).unwrap_or(200);
                    if parts.next() == Some("slow") {
                        thread::sleep(Duration::from_millis(300));
                    }
                    if http::write_response(&mut writer, status, "stand-in").is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One caller proxy running the filter; restartable on the same ports.
struct Proxy {
    name: &'static str,
    listen: SocketAddr,
    admin: SocketAddr,
    yaml: String,
}

fn proxy(procs: &mut Procs, name: &'static str, upstream: SocketAddr) -> Proxy {
    let mut o = EnvoyOptions::new("frontend", ok(free_port()), ok(free_port()), ok(find_wasm()));
    o.clusters = vec![("v1".to_string(), upstream), ("v2".to_string(), upstream)];
    o.default_subset = Some("v1".into());
    let yaml = ok(envoy_bootstrap(&compile(POLICY, "rollout.canary").config, &o));
    let p = Proxy { name, listen: o.listen, admin: o.admin, yaml };
    boot(procs, &p);
    p
}

fn boot(procs: &mut Procs, p: &Proxy) {
    ok(spawn(procs, &ok(find_envoy()), p.name, &p.yaml));
    ok(wait_ready(procs, p.name, p.admin));
}

/// Sends `n` requests to one arm, the first `errors` answered 500 and the next `slow` delayed past the bound.
fn send(p: &Proxy, canary: bool, n: usize, errors: usize, slow: usize) {
    let mut client = Client::new(p.listen);
    let headers: &[(&str, &str)] = if canary { &[("x-canary", "1")] } else { &[] };
    for i in 0..n {
        let path = match i {
            i if i < errors => "/status/500".to_string(),
            i if i < errors + slow => "/status/200/slow".to_string(),
            _ => format!("/status/200/{i}"),
        };
        let answer = ok(client.get(&path, headers));
        assert_eq!(answer.status, if i < errors { 500 } else { 200 }, "{} {path}", p.name);
    }
}

fn arm(requests: u64, errors: u64, slow: u64) -> ArmCounts {
    ArmCounts { requests, errors, slow }
}

/// Reads until the counts are `want` (counters are live, histograms trail by a flush, Prometheus by a scrape);
/// the last reading, and the notes of every reading on the way.
fn read_until(source: &mut dyn MetricsSource, want: Counts, what: &str) -> (Reading, Vec<String>) {
    let deadline = Instant::now() + SETTLE;
    let mut notes = Vec::new();
    loop {
        let reading = source.read().unwrap_or_else(|e| panic!("{what}: {e}"));
        notes.extend(reading.notes.iter().cloned());
        if reading.counts == want {
            return (reading, notes);
        }
        if Instant::now() > deadline {
            panic!("{what}: counts {:?}, want {want:?}; notes {:?}", reading.counts, reading.notes);
        }
        thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn admin_and_prometheus_sources_count_real_envoy_traffic_across_restarts_and_outages() {
    let started = Instant::now();
    let upstream = stand_in();
    let mut procs = ok(Procs::new("rollout-metrics"));
    let (a, b) = (proxy(&mut procs, "caller-a", upstream), proxy(&mut procs, "caller-b", upstream));
    let prometheus = ok(Prometheus::start_with(&[a.admin, b.admin], &istio_job(&[a.admin, b.admin])));

    // Traffic before the sources exist is not theirs to count.
    send(&a, false, 20, 2, 0);
    let before = SystemTime::now();
    ok(prometheus.wait_scraped(a.admin, before, SETTLE));
    ok(prometheus.wait_scraped(b.admin, before, SETTLE));
    let admins = [a.admin.to_string(), b.admin.to_string()];
    let mut admin_cfg = EnvoyAdminConfig::new(&[&admins[0], &admins[1]], BASELINE, CANARY);
    admin_cfg.latency_bound_ms = Some(BOUND_MS);
    let mut admin = ok(from_envoy_admin(admin_cfg));
    let mut prom = ok(from_prometheus(PrometheusConfig {
        url: prometheus.url(),
        flavor: PrometheusFlavor::Envoy { baseline_cluster: BASELINE.into(), canary_cluster: CANARY.into() },
        latency_bound_ms: Some(BOUND_MS),
    }));
    let istio_flavor = |namespace: Option<&str>| PrometheusFlavor::Istio {
        service: "frontend".into(),
        namespace: namespace.map(str::to_string),
        baseline_version: "v1".into(),
        canary_version: "v2".into(),
        reporter: "source".into(),
    };
    let mut istio = ok(from_prometheus(PrometheusConfig {
        url: prometheus.url(),
        flavor: istio_flavor(None),
        latency_bound_ms: Some(BOUND_MS),
    }));
    // Every PromQL text the sources can send (the bounds query only explains a bad bound) parses and runs.
    let envoy_flavor = PrometheusFlavor::Envoy { baseline_cluster: BASELINE.into(), canary_cluster: CANARY.into() };
    for flavor in [envoy_flavor, istio_flavor(None), istio_flavor(Some("weather"))] {
        for arm in Arm::BOTH {
            let q = arm_queries(&flavor, arm, Some(3_600_000.0));
            let latency = q.latency.expect("a bound was given");
            for promql in [q.requests, q.errors, latency.all, latency.within, latency.bounds] {
                let (status, answer) = ok(prometheus.query(&promql));
                assert_eq!((status, answer["status"].as_str()), (200, Some("success")), "`{promql}`: {answer}");
            }
        }
    }
    assert_eq!(ok(admin.read()), Reading::default(), "the first reading is the baseline");
    assert_eq!(ok(prom.read()).counts, Counts::default(), "the first reading is the baseline");
    assert_eq!(ok(istio.read()).counts, Counts::default(), "the first reading is the baseline");

    // 300 baseline requests (5 errors), 100 canary (15 errors, 4 slow), over both proxies.
    send(&a, false, 200, 0, 0);
    send(&b, false, 100, 5, 0);
    send(&a, true, 60, 10, 0);
    send(&b, true, 40, 5, 4);
    let want = Counts { baseline: arm(300, 5, 0), canary: arm(100, 15, 4) };
    for (source, what) in
        [(&mut admin, "admin source"), (&mut prom, "Prometheus source"), (&mut istio, "Istio's names")]
    {
        let (_, notes) = read_until(source.as_mut(), want, what);
        assert!(notes.is_empty(), "{what}: {notes:?}");
    }
    println!("all three sources counted {want:?} after {:?}", started.elapsed());

    // Caller B restarts: its counters start from 0. What it counted before stays; what it counts now adds.
    procs.stop(|n| n == b.name);
    boot(&mut procs, &b);
    send(&b, false, 30, 0, 0);
    send(&b, true, 10, 2, 0);
    let want = Counts { baseline: arm(330, 5, 0), canary: arm(110, 17, 4) };
    let (_, notes) = read_until(admin.as_mut(), want, "admin source after a restart");
    let restart_note = format!("{}: counters reset (the proxy restarted)", b.admin);
    assert!(notes.iter().any(|n| n.starts_with(&restart_note)), "{notes:?}");
    for (source, what) in [(&mut prom, "Prometheus source"), (&mut istio, "Prometheus source, Istio's names")] {
        let (_, notes) = read_until(source.as_mut(), want, &format!("{what} after a restart"));
        assert!(notes.iter().any(|n| n.contains("series reset (a proxy restarted)")), "{what}: {notes:?}");
    }
    println!("restart counted once after {:?}", started.elapsed());

    // Caller A dies: its last counts are kept, with a note.
    procs.stop(|n| n == a.name);
    let reading = ok(admin.read());
    assert_eq!(reading.counts, want, "a missing proxy's counts are kept");
    let note = format!("{}: unreachable (connection refused); its last counts are kept", a.admin);
    assert_eq!(reading.notes, [note]);

    // Every proxy down: nothing to judge on.
    procs.stop(|n| n == b.name);
    let err = admin.read().expect_err("no proxy answered");
    assert!(err.starts_with("no Envoy admin endpoint answered:") && err.contains("connection refused"), "{err}");
    // Prometheus still answers, its series go stale: the counts stay, noted.
    let gone_after = Instant::now() + SETTLE;
    let reading = loop {
        let reading = ok(prom.read());
        if !reading.notes.is_empty() || Instant::now() > gone_after {
            break reading;
        }
        thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(reading.counts, want);
    assert!(reading.notes.iter().any(|n| n.contains("no longer reported")), "{:?}", reading.notes);

    // Prometheus gone: an error, not zeros.
    let url = prometheus.url();
    drop(prometheus);
    let err = prom.read().expect_err("Prometheus is down");
    assert!(err.contains(&url) && err.contains("unreachable"), "{err}");
    println!("done in {:?}", started.elapsed());
}
