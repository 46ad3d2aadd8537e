//! Wasm instructions the filter module executes per HTTP request, for the policies `make bench-envoy`
//! measures in Envoy (same request, same `settings.service`), counted with wasmtime fuel.
//!
//! Time under a JIT on a shared machine moves by ±10 % from run to run; this count does not move at all,
//! so it shows exactly what a change to the module's own code buys (or costs). What the proxy spends on the
//! host calls is not in it: `make bench-envoy BENCH_ARGS=--instructions` counts that side, in Envoy.
//!
//! `cargo bench -p canary-tests --bench filter_instructions` (needs `scripts/build-filter.sh` first).

use canary_tests::host::{compile, Proxy, Settings};

/// The Envoy benchmark's request (bench/envoy_bench.py): an Android Chrome user with the tester cookie and
/// a forged subset header.
const REQUEST: &[(&str, &str)] = &[
    (":authority", "frontend.weather.svc.cluster.local:8080"),
    (":path", "/?city=Paris"),
    (":method", "GET"),
    (
        "user-agent",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
    ),
    ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("accept-language", "en-GB,en;q=0.9"),
    ("cookie", "session=9f2c4e1ab7d34c0e; theme=dark; user=tester; _ga=GA1.2.1234567890.1700000000"),
    ("x-request-id", "4f1c2a9e-7d3b-4c55-9a0e-2b6f8d1e3c47"),
    ("x-canary-subset", "v2"),
];

/// (name in the Envoy benchmark, policy file, `settings.service`)
const POLICIES: &[(&str, &str, &str)] = &[
    ("canary-default", "bench/policies/default.canary", "frontend"),
    ("canary-s3", "examples/s3-chrome.canary", "forecast"),
    ("canary-s4", "examples/s4-android-split.canary", "frontend"),
    ("canary-s5", "examples/s5-tester-chain.canary", "frontend"),
    ("canary-r100", "bench/policies/r100.canary", "frontend"),
];

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace");
    let n = 1_000;
    println!("| policy | wasm instructions/request |");
    println!("|---|---:|");
    for (name, file, service) in POLICIES {
        let source = std::fs::read_to_string(root.join(file)).expect("policy file");
        let settings = Settings { service: Some(service.to_string()), ..Settings::default() };
        let mut proxy = Proxy::http(compile(&source, settings))
            .record_calls(false)
            .start()
            .expect("filter module loads: run scripts/build-filter.sh first");
        // The first requests define counters and fill lazily built state; count the steady state.
        for _ in 0..100 {
            proxy.request(REQUEST).expect("no trap");
        }
        let before = proxy.wasm_instructions();
        for _ in 0..n {
            proxy.request(REQUEST).expect("no trap");
        }
        let per_request = (proxy.wasm_instructions() - before) as f64 / n as f64;
        println!("| {name} | {per_request:.0} |");
    }
}
