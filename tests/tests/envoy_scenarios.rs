//! Scenarios S1–S6 of SCENARIOS.md in real Envoy 1.40: the real filter module, policies compiled from
//! `examples/*.canary`, the weather mesh on loopback. Needs `scripts/setup-envoy.sh` and
//! `scripts/build-filter.sh` to have run (each test fails with that advice otherwise).
//!
//! Weights are checked against 5-sigma binomial bounds over ≥ 2,000 draws; exact rules must hold for every
//! request.

use std::thread;

use canary_tests::mesh::agents::{ANDROID, CHROME, FIREFOX, MACOS};
use canary_tests::mesh::chain::{binomial_bounds, tally, Chain};
use canary_tests::mesh::load::{http_many, tcp_many, HttpRequest};
use canary_tests::mesh::{policy, Launcher, Mesh, MeshOptions};

/// Draws per weighted split.
const SPLIT_N: usize = 2_000;
/// Requests per exact rule.
const EXACT_N: usize = 300;

fn ok<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// A mesh running `examples/<name>.canary`; the services are started from the `weather-service` binary Cargo
/// built.
fn mesh(name: &str) -> Mesh {
    let opts = ok(MeshOptions::locate(Launcher::new(env!("CARGO_BIN_EXE_weather-service"), &[])));
    ok(Mesh::start(&ok(policy::example(name)), opts))
}

/// Sends `request` `n` times through the ingress; every answer must be a 200 with a full chain.
fn chains(mesh: &Mesh, request: &HttpRequest, n: usize) -> Vec<Chain> {
    chains_via(mesh.ingress(), request, n)
}

fn chains_via(addr: std::net::SocketAddr, request: &HttpRequest, n: usize) -> Vec<Chain> {
    let responses = ok(http_many(addr, request, n));
    let bad: Vec<_> = responses.iter().filter(|r| r.status != 200).take(3).collect();
    assert!(bad.is_empty(), "{request:?}: non-200 answers, e.g. {bad:?}");
    responses.iter().map(|r| Chain::parse(&r.body)).collect()
}

fn ua(agent: &str) -> HttpRequest {
    HttpRequest::get("/").header("user-agent", agent)
}

/// Every chain is exactly `expected` (e.g. `frontend=v1 → forecast=v1`).
fn assert_all(chains: &[Chain], expected: &str, what: &str) {
    let seen = tally(chains.iter().map(Chain::to_string));
    assert!(seen.len() == 1 && seen.contains_key(expected), "{what}: expected only `{expected}`, saw {seen:?}");
}

fn assert_binomial(count: usize, n: usize, p: f64, what: &str) {
    let (lo, hi) = binomial_bounds(n, p, 5.0);
    assert!((lo..=hi).contains(&count), "{what}: {count} of {n}, expected {lo}..={hi} for p={p}");
}

#[test]
fn s1_all_traffic_reaches_v1() {
    let mesh = mesh("s1-all-v1");
    let v1 = "frontend=v1 → forecast=v1";
    assert_all(&chains(&mesh, &HttpRequest::get("/"), EXACT_N), v1, "plain");
    assert_all(&chains(&mesh, &ua(CHROME).header("cookie", "user=tester"), EXACT_N), v1, "chrome tester");
    assert_all(&chains(&mesh, &ua(ANDROID), EXACT_N), v1, "android");
    let echoes = tally(ok(tcp_many(mesh.tcp(), EXACT_N)).iter().map(|l| l.split(' ').next().unwrap_or("").to_string()));
    assert_eq!(echoes.into_iter().collect::<Vec<_>>(), vec![("one".to_string(), EXACT_N)]);
}

#[test]
fn forged_subset_header_never_reaches_v2() {
    let mesh = mesh("s1-all-v1");
    let forged = HttpRequest::get("/").header("x-canary-subset", "v2");
    assert_all(&chains(&mesh, &forged, EXACT_N), "frontend=v1 → forecast=v1", "forged at the ingress");
    // A workload forging the header towards its own sidecar gets the policy's answer too.
    let sidecar = mesh.sidecar("frontend", "v2").expect("frontend v2 calls forecast through a sidecar");
    let direct = chains_via(sidecar, &forged.clone().header("host", "forecast"), EXACT_N);
    assert!(
        direct.iter().all(|c| c.forecast.as_deref() == Some("v1")),
        "{:?}",
        tally(direct.iter().map(|c| c.to_string()))
    );
}

#[test]
fn s2_forecast_half_then_all_to_v2() {
    let mut mesh = mesh("s2-forecast-50");
    let half = chains(&mesh, &HttpRequest::get("/"), SPLIT_N);
    assert!(
        half.iter().all(|c| c.frontend.as_deref() == Some("v1")),
        "{:?}",
        tally(half.iter().map(|c| c.to_string()))
    );
    assert!(half.iter().all(|c| c.has_recommendations() == (c.forecast.as_deref() == Some("v2"))));
    assert_binomial(half.iter().filter(|c| c.has_recommendations()).count(), SPLIT_N, 0.5, "recommendations at 50%");

    ok(mesh.apply(&ok(policy::example("s2-forecast-100"))));
    let all = chains(&mesh, &HttpRequest::get("/"), EXACT_N);
    assert_all(&all, "frontend=v1 → forecast=v2 → recommendation=v1", "at 100%");
}

#[test]
fn s3_chrome_sees_recommendations_firefox_never() {
    let mesh = mesh("s3-chrome");
    assert_all(&chains(&mesh, &ua(CHROME), EXACT_N), "frontend=v1 → forecast=v2 → recommendation=v1", "chrome");
    assert_all(&chains(&mesh, &ua(FIREFOX), EXACT_N), "frontend=v1 → forecast=v1", "firefox");
    assert_all(&chains(&mesh, &HttpRequest::get("/"), EXACT_N), "frontend=v1 → forecast=v1", "no user-agent");
}

#[test]
fn s4_android_split_half_macos_always_green() {
    let mesh = mesh("s4-android-split");
    let android = chains(&mesh, &ua(ANDROID), SPLIT_N);
    let blue = android.iter().filter(|c| c.frontend.as_deref() == Some("v2")).count();
    assert!(android.iter().all(|c| c.forecast.as_deref() == Some("v1")), "forecast must stay v1");
    assert_binomial(blue, SPLIT_N, 0.5, "android on frontend v2");
    assert_all(&chains(&mesh, &ua(MACOS), EXACT_N), "frontend=v1 → forecast=v1", "macos");
}

#[test]
fn s5_tester_chain_is_whole_and_never_mixed() {
    let mesh = mesh("s5-tester-chain");
    let tester = HttpRequest::get("/").header("cookie", "theme=dark; user=tester").header("user-agent", CHROME);
    let others = HttpRequest::get("/").header("cookie", "user=testers; team=tester").header("user-agent", CHROME);
    // Both kinds at once, so the sidecars see them interleaved.
    let (t, o) = thread::scope(|s| {
        let t = s.spawn(|| chains(&mesh, &tester, 1_000));
        let o = s.spawn(|| chains(&mesh, &others, 1_000));
        (t.join().expect("tester load"), o.join().expect("other load"))
    });
    let mixed = t.iter().chain(&o).filter(|c| c.is_mixed()).count();
    assert_eq!(mixed, 0, "mixed chains: {:?}", tally(t.iter().chain(&o).map(|c| c.to_string())));
    assert_all(&t, "frontend=v2 → forecast=v2 → recommendation=v1", "tester");
    assert_all(&o, "frontend=v1 → forecast=v1", "not a tester");
}

#[test]
fn s6_tcp_connections_split_80_20() {
    let mesh = mesh("s6-tcp-split");
    let answers = ok(tcp_many(mesh.tcp(), SPLIT_N));
    let two = answers.iter().filter(|a| a.starts_with("two hello")).count();
    let one = answers.iter().filter(|a| a.starts_with("one hello")).count();
    assert_eq!(one + two, SPLIT_N, "unexpected answers: {:?}", tally(answers.iter().cloned()).keys().take(5));
    assert_binomial(two, SPLIT_N, 0.2, "connections to tcp-echo v2");
}

#[test]
fn broken_policy_is_refused_while_the_good_one_serves() {
    let mut mesh = mesh("s1-all-v1");
    let good = ok(policy::example("s1-all-v1"));
    let mut bad_version = good.clone();
    bad_version.version = 2;
    let bad_regex: canary_eval::Config = serde_json::from_str(
        r#"{"version":1,"services":[{"name":"frontend","rules":[
            {"line":1,"when":{"header":{"name":"user-agent","test":{"regex":"(unclosed"}}},"then":{"route":"v2"}}]}]}"#,
    )
    .expect("well-formed JSON, invalid regex");
    for (name, config) in [("bad-version", bad_version), ("bad-regex", bad_regex)] {
        let started = mesh.start_extra_ingress(name, &config);
        assert!(started.is_err(), "{name}: Envoy accepted a broken policy");
        let log = mesh.log(name);
        let line = log.lines().find(|l| l.contains("canary: refusing configuration:"));
        assert!(line.is_some(), "{name}: no refusal line in the log:\n{log}");
        println!("{name}: {}", line.unwrap_or_default());
        assert!(!mesh.running(name), "{name}: Envoy still running with a refused policy");
    }
    assert_all(&chains(&mesh, &HttpRequest::get("/"), 100), "frontend=v1 → forecast=v1", "the good mesh");
}
