//! Route settings in real Envoy 1.40 (README "Route settings"): the bootstrap `canaryc manifest --kind envoy
//! --backend native` writes from a policy with `settings "FILE"`, `mirror` and a rule's `with PROFILE`, in
//! front of loopback upstreams written here (each answers with its subset, the path and the header it saw).
//!
//! * a timeout fires: an upstream that sleeps 1.5 s past the 0.5 s timeout answers 504;
//! * a rule's profile replaces it: the same slow request through the rule `with patient` (3 s) answers 200;
//! * retries happen: an upstream failing once (503) then succeeding answers 200, and Envoy's
//!   `cluster.web-v1.upstream_rq_retry` counter moved by one;
//! * a rewrite reaches the upstream (`/hello` arrives as `/v2/hello`), and so does a header edit;
//! * `mirror 10% to v3` copies 10 % of the requests to v3 within 5σ (binomial, N = 2,000), while every caller's
//!   answer still comes from the routed subset;
//! * per-rule mirrors: a rule whose profile has its own `mirror` (50 % to v1) copies its share to v1 within 5σ
//!   (N = 400) and nothing to the service's v3; a rule whose profile says `unset: [mirror]` copies nothing;
//! * CORS: a preflight from the allowed origin is answered by Envoy (`access-control-allow-origin`, `-methods`,
//!   `-max-age`) without reaching the upstream; one from another origin is forwarded
//!   (`forward_not_matching_preflights`) and gets no allow header; a GET from the allowed origin gets it.
//!
//! The same checks run through the Istio form: `--kind istio-routes --backend native`'s VirtualService turned into
//! this sidecar's Envoy routes as istiod would (`canary_tests::istio_pilot`, which follows pilot's `route.go` and
//! `retry.go` for these fields), in place of the Envoy backend's routes.
//!
//! And through the Gateway API form, for the fields it writes (`GATEWAY_SETTINGS`: no retries, rewrite or CORS,
//! which `--kind gateway-api` refuses): the HTTPRoute `--kind gateway-api --backend native` writes, turned into
//! Envoy routes by `canary_tests::envoy_gateway` (Envoy Gateway v1.9.0's translation): the header edit reaches
//! the upstream, the 0.5 s `timeouts.request` answers 504 while the profile's 3 s answers 200, and both mirrors
//! copy their shares within 5σ.
//!
//! Needs `scripts/setup-envoy.sh` (or `ENVOY_BIN`).

use canary_tests::bootstrap::virtual_host_routes;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use canary_tests::istio_pilot;
use canary_tests::mesh::chain::binomial_bounds;
use canary_tests::mesh::envoy::{find_envoy, free_port, spawn, wait_ready};
use canary_tests::mesh::procs::Procs;
use canary_tests::push::canaryc;
use canary_tests::reload::{admin_stat, http_get};
use serde_json::Value;

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// One stand-in subset: what it saw, and how it behaves (by path).
struct Upstream {
    addr: SocketAddr,
    /// Every request's path, in arrival order.
    seen: Arc<Mutex<Vec<String>>>,
}

/// A keep-alive HTTP/1.1 server for GETs: `/…sleep…` answers after 1.5 s, `/…flaky/ID` answers 503 the first
/// time an ID is seen and 200 after, anything else 200. The body is `SUBSET PATH x-test=VALUE`.
fn upstream(subset: &'static str) -> Result<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let flaky: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let log = Arc::clone(&seen);
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (log, flaky) = (Arc::clone(&log), Arc::clone(&flaky));
            thread::spawn(move || serve(stream, subset, &log, &flaky));
        }
    });
    Ok(Upstream { addr, seen })
}

fn serve(stream: TcpStream, subset: &str, log: &Mutex<Vec<String>>, flaky: &Mutex<BTreeSet<String>>) {
    let Ok(mut out) = stream.try_clone() else { return };
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split(' ').nth(1).unwrap_or("").to_string();
        let mut test_header = String::new();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("x-test") {
                    test_header = v.trim().to_string();
                }
            }
        }
        log.lock().unwrap().push(path.clone());
        let mut status = "200 OK";
        if path.contains("sleep") {
            thread::sleep(Duration::from_millis(1500));
        }
        if let Some(id) = path.split("flaky/").nth(1) {
            if flaky.lock().unwrap().insert(id.to_string()) {
                status = "503 Service Unavailable";
            }
        }
        let body = format!("{subset} {path} x-test={test_header}");
        let answer = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}", body.len());
        if out.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

const POLICY: &str = r#"settings "web.routes.yaml"
service web {
  mirror 10% to v3
  header x-patient present -> v2 with patient
  header x-own present -> v2 with own-mirror
  header x-quiet present -> v2 with quiet
  default v1
}
"#;

const SETTINGS: &str = r#"web:
  timeout: 0.5s
  retries: {attempts: 2, retryOn: "5xx"}
  rewrite: {uri: /v2/}
  headers:
    request: {set: {x-test: edited}}
  corsPolicy: {allowOrigins: [{exact: "https://app.example"}], allowMethods: [GET, POST], maxAge: 60s}
  profiles:
    patient: {timeout: 3s}
    own-mirror: {mirror: {subset: v1}, mirrorPercentage: {value: 50}}
    quiet: {unset: [mirror]}
"#;

/// What `--kind gateway-api` writes: timeouts, header edits, mirrors (profiles as in `SETTINGS`).
const GATEWAY_SETTINGS: &str = r#"web:
  timeout: 0.5s
  headers:
    request: {set: {x-test: edited}}
  profiles:
    patient: {timeout: 3s}
    own-mirror: {mirror: {subset: v1}, mirrorPercentage: {value: 50}}
    quiet: {unset: [mirror]}
"#;

#[derive(Clone, Copy, PartialEq)]
enum Form {
    Envoy,
    Istio,
    Gateway,
}

struct Proxy {
    procs: Procs,
    listen: SocketAddr,
    admin: SocketAddr,
    upstreams: BTreeMap<&'static str, Upstream>,
}

fn start(form: Form) -> Result<Proxy> {
    let envoy = find_envoy()?;
    let mut procs = Procs::new("settings")?;
    let dir = procs.dir().to_path_buf();
    std::fs::write(dir.join("web.canary"), POLICY)?;
    std::fs::write(dir.join("web.routes.yaml"), if form == Form::Gateway { GATEWAY_SETTINGS } else { SETTINGS })?;
    let mut upstreams = BTreeMap::new();
    for subset in ["v1", "v2", "v3"] {
        upstreams.insert(subset, upstream(subset)?);
    }
    let (listen, admin) = (free_port()?, free_port()?);
    let bootstrap = dir.join("bootstrap.yaml");
    let policy = dir.join("web.canary");
    let mut args: Vec<String> = vec![
        "manifest".into(),
        path(&policy),
        "--kind".into(),
        "envoy".into(),
        "--backend".into(),
        "native".into(),
        "--service".into(),
        "web".into(),
        "--listen".into(),
        listen.to_string(),
        "--admin".into(),
        admin.to_string(),
        "-o".into(),
        path(&bootstrap),
    ];
    for (subset, u) in &upstreams {
        args.push("--cluster".into());
        args.push(format!("{subset}={}", u.addr));
    }
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    anyhow::ensure!(canaryc(&argv) == 0, "canaryc manifest failed: {argv:?}");
    let mut yaml = std::fs::read_to_string(&bootstrap)?;
    if form == Form::Gateway {
        let routes = dir.join("httproute.yaml");
        let argv = [
            "manifest",
            &path(&policy),
            "--kind",
            "gateway-api",
            "--backend",
            "native",
            "--parent",
            "service",
            "--port",
            "web=80",
            "-o",
            &path(&routes),
        ];
        anyhow::ensure!(canaryc(&argv) == 0, "canaryc manifest failed: {argv:?}");
        let route = canary_yaml::documents(&std::fs::read_to_string(&routes)?)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .map(|d| serde_json::to_value(d).expect("JSON"))
            .find(|d| d["kind"] == "HTTPRoute")
            .context("the HTTPRoute")?;
        // backendRefs name the Service SERVICE-SUBSET, which is this bootstrap's cluster of that subset.
        let routes = canary_tests::envoy_gateway::http_routes(&route["spec"], &|name| name.to_string())?;
        let mut bootstrap: Value = serde_json::to_value(
            canary_yaml::from_str::<canary_yaml::Value>(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?,
        )?;
        *virtual_host_routes(&mut bootstrap).context("the route table")? = Value::Array(routes);
        yaml = serde_json::to_string(&bootstrap)?;
    }
    if form == Form::Istio {
        let routes = dir.join("routes.yaml");
        let argv = ["manifest", &path(&policy), "--kind", "istio-routes", "--backend", "native", "-o", &path(&routes)];
        anyhow::ensure!(canaryc(&argv) == 0, "canaryc manifest failed: {argv:?}");
        let vs = canary_yaml::documents(&std::fs::read_to_string(&routes)?)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .into_iter()
            .map(|d| serde_json::to_value(d).expect("JSON"))
            .find(|d| d["kind"] == "VirtualService")
            .context("the VirtualService")?;
        let routes = istio_pilot::http_routes(&vs["spec"], &[], &|subset| format!("web-{subset}"))?;
        let mut bootstrap: Value = serde_json::to_value(
            canary_yaml::from_str::<canary_yaml::Value>(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?,
        )?;
        *virtual_host_routes(&mut bootstrap).context("the route table")? = Value::Array(routes);
        yaml = serde_json::to_string(&bootstrap)?;
    }
    spawn(&mut procs, &envoy, "envoy", &yaml)?;
    wait_ready(&mut procs, "envoy", admin)?;
    Ok(Proxy { procs, listen, admin, upstreams })
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

impl Proxy {
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
        http_get(self.listen, path, headers)
            .with_context(|| format!("GET {path}; Envoy's log ends with:\n{}", self.procs.tail("envoy")))
    }

    fn seen(&self, subset: &str) -> Vec<String> {
        self.upstreams[subset].seen.lock().unwrap().clone()
    }
}

#[test]
fn settings_take_effect_in_envoy() {
    check(&ok(start(Form::Envoy)), "envoy");
}

#[test]
fn settings_take_effect_through_the_istio_oracle() {
    check(&ok(start(Form::Istio)), "istio");
}

#[test]
fn settings_take_effect_through_the_envoy_gateway_oracle() {
    let proxy = ok(start(Form::Gateway));
    let (status, body) = ok(proxy.get("/hello", &[("x-test", "original")]));
    assert_eq!((status, body.as_str()), (200, "v1 /hello x-test=edited"));
    let started = Instant::now();
    let (status, body) = ok(proxy.get("/sleep", &[]));
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_millis(1400), "answered after {:?}", started.elapsed());
    let (status, body) = ok(proxy.get("/sleep", &[("x-patient", "1")]));
    assert_eq!((status, body.as_str()), (200, "v2 /sleep x-test=edited"));
    mirrors(&proxy, "gateway", "/");
}

/// One raw HTTP/1.1 request (`Connection: close`): the status and the response headers, lowercased names.
fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Result<(u16, Vec<(String, String)>)> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: web\r\nconnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response)?;
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|c| c.parse().ok()).context("a status")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn check_cors(proxy: &Proxy, form: &str) {
    let preflight = |origin: &str, path: &str| {
        let headers = [("origin", origin), ("access-control-request-method", "POST")];
        ok(raw(proxy.listen, "OPTIONS", path, &headers))
    };
    let (answered, headers) = preflight("https://app.example", "/cors/allowed");
    let status = answered;
    assert!(status == 200 || status == 204, "{form}: preflight answered {status}: {headers:?}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("https://app.example"), "{headers:?}");
    assert_eq!(header(&headers, "access-control-allow-methods"), Some("GET,POST"), "{headers:?}");
    assert_eq!(header(&headers, "access-control-max-age"), Some("60"), "{headers:?}");
    assert!(!proxy.seen("v1").iter().any(|p| p.contains("/cors/allowed")), "{form}: a matched preflight is Envoy's");
    let (status, headers) = preflight("https://other.example", "/cors/other");
    assert_eq!(status, 200, "{form}: the other origin's preflight is forwarded: {headers:?}");
    assert_eq!(header(&headers, "access-control-allow-origin"), None, "{headers:?}");
    assert!(proxy.seen("v1").iter().any(|p| p == "/v2/cors/other"), "{form}: the upstream saw it");
    let (status, headers) = ok(raw(proxy.listen, "GET", "/cors/get", &[("origin", "https://app.example")]));
    assert_eq!((status, header(&headers, "access-control-allow-origin")), (200, Some("https://app.example")));
    eprintln!("{form}: cors: the allowed origin's preflight answered {answered} by Envoy, another origin's forwarded");
}

fn check(proxy: &Proxy, form: &str) {
    check_cors(proxy, form);

    // Rewrite and header edit: the upstream sees `/v2/hello` and the set header.
    let (status, body) = ok(proxy.get("/hello", &[("x-test", "original")]));
    assert_eq!((status, body.as_str()), (200, "v1 /v2/hello x-test=edited"));

    // Timeout: 0.5 s for the service's routes; the upstream sleeps 1.5 s.
    let started = Instant::now();
    let (status, body) = ok(proxy.get("/sleep", &[]));
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_millis(1400), "answered after {:?}", started.elapsed());
    // The rule `with patient` carries 3 s instead: the same slow request succeeds, from v2.
    let (status, body) = ok(proxy.get("/sleep", &[("x-patient", "1")]));
    assert_eq!((status, body.as_str()), (200, "v2 /v2/sleep x-test=edited"));

    // Retries: the first attempt gets 503, the retry 200; Envoy counts the retry.
    let before = ok(admin_stat(proxy.admin, "cluster.web-v1.upstream_rq_retry"));
    let (status, body) = ok(proxy.get("/flaky/1", &[]));
    assert_eq!((status, body.as_str()), (200, "v1 /v2/flaky/1 x-test=edited"));
    let after = ok(admin_stat(proxy.admin, "cluster.web-v1.upstream_rq_retry"));
    assert_eq!(after, before + 1, "upstream_rq_retry");
    let flaky = proxy.seen("v1").iter().filter(|p| p.as_str() == "/v2/flaky/1").count();
    assert_eq!(flaky, 2, "the upstream saw the first attempt and the retry");

    mirrors(proxy, form, "/v2/");
}

/// The service's 10 % mirror to v3 and the rules' own (50 % to v1) and unset ones; `seen` is the path prefix the
/// upstreams see (`/v2/` with the rewrite).
fn mirrors(proxy: &Proxy, form: &str, seen: &str) {
    // Mirror: 10 % of the service's requests are copied to v3; every answer comes from the routed v1.
    const N: usize = 2_000;
    let mirrored_before = proxy.seen("v3").len();
    for i in 0..N {
        let (status, body) = ok(proxy.get(&format!("/m/{i}"), &[]));
        assert_eq!(status, 200);
        assert!(body.starts_with("v1 "), "request {i} answered by {body}");
    }
    settle(proxy, "v3");
    let mirrored: Vec<String> = proxy.seen("v3").split_off(mirrored_before);
    assert!(mirrored.iter().all(|p| p.starts_with(&format!("{seen}m/"))), "v3 saw only mirrored (rewritten) requests");
    let (lo, hi) = binomial_bounds(N, 0.10, 5.0);
    assert!((lo..=hi).contains(&mirrored.len()), "mirrored {} of {N}, expected {lo}..={hi}", mirrored.len());
    eprintln!("{form}: mirror: {} of {N} requests copied to v3 (5σ bounds {lo}..={hi})", mirrored.len());

    // Per-rule mirrors: the `own-mirror` rule copies 50 % to v1 and nothing to v3; the `quiet` rule nothing.
    const M: usize = 400;
    for i in 0..M {
        for (header, prefix) in [("x-own", "own"), ("x-quiet", "quiet")] {
            let (status, body) = ok(proxy.get(&format!("/{prefix}/{i}"), &[(header, "1")]));
            assert_eq!((status, body.starts_with("v2 ")), (200, true), "{prefix} {i}: {body}");
        }
    }
    settle(proxy, "v1");
    let copies = |subset: &str, prefix: &str| proxy.seen(subset).iter().filter(|p| p.starts_with(prefix)).count();
    let (lo, hi) = binomial_bounds(M, 0.50, 5.0);
    let own = copies("v1", &format!("{seen}own/"));
    assert!((lo..=hi).contains(&own), "the rule's own mirror copied {own} of {M} to v1, expected {lo}..={hi}");
    assert_eq!(copies("v3", &format!("{seen}own/")), 0, "the rule's own mirror replaces the service's");
    assert_eq!(
        copies("v1", &format!("{seen}quiet/")) + copies("v3", &format!("{seen}quiet/")),
        0,
        "`unset: [mirror]` copies nothing"
    );
    eprintln!("{form}: per-rule mirror: {own} of {M} copied to v1 (5σ bounds {lo}..={hi}); the unset rule: 0");
}

/// Shadow requests are fire-and-forget: waits (at most 10 s) until `subset`'s count stops moving.
fn settle(proxy: &Proxy, subset: &str) {
    let mut last = usize::MAX;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        thread::sleep(Duration::from_millis(300));
        let now = proxy.seen(subset).len();
        if now == last {
            break;
        }
        last = now;
    }
}
