//! The real filter module under wasmtime, per HTTP request: context create → `on_request_headers` →
//! done, with realistic headers and the seed policy (S4-like: Android 50% v2, cookie
//! `user=tester` → v2, default v1). Host-call recording is off so the figure is the module plus the
//! ABI crossings, not the test host's bookkeeping. The test host meters fuel (for `filter_instructions`),
//! so the figure includes wasmtime's fuel checks; compare it only with runs made the same way.
//!
//! `cargo bench -p canary-tests --bench filter_wasmtime` (needs `scripts/build-filter.sh` first).
//! Prints a plain µs-per-request figure first, then criterion's statistics.

use std::hint::black_box;
use std::time::Instant;

use canary_tests::host::{compile, Proxy, Settings};
use criterion::{criterion_group, criterion_main, Criterion};

const SEED: &str = "\
service frontend {
  android: 50% v2
  cookie user=tester -> v2
  default v1
}
";

const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";
const MACOS: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15";

/// A mix: an Android user (split), a macOS tester (cookie rule), a macOS regular user (default).
fn requests() -> Vec<Vec<(&'static str, &'static str)>> {
    let common = [
        (":method", "GET"),
        (":path", "/?city=Paris"),
        (":scheme", "http"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-GB,en;q=0.9"),
        ("x-request-id", "4f1c2a9e-7d3b-4c55-9a0e-2b6f8d1e3c47"),
    ];
    let mut out = Vec::new();
    for (ua, cookie) in
        [(ANDROID, "theme=dark"), (MACOS, "theme=dark; user=tester"), (MACOS, "theme=light; user=alice")]
    {
        let mut headers = vec![(":authority", "frontend.weather.svc.cluster.local:8080")];
        headers.extend(common);
        headers.push(("user-agent", ua));
        headers.push(("cookie", cookie));
        out.push(headers);
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut proxy = Proxy::http(compile(SEED, Settings::default()))
        .record_calls(false)
        .start()
        .expect("filter module loads: run scripts/build-filter.sh first");
    let requests = requests();

    // A plain figure first: best of five rounds, since the machine is shared and noise only adds time.
    let n = 10_000;
    for request in requests.iter().cycle().take(1_000) {
        proxy.request(request).expect("no trap");
    }
    let per_request = (0..5)
        .map(|_| {
            let start = Instant::now();
            for request in requests.iter().cycle().take(n) {
                black_box(proxy.request(request).expect("no trap"));
            }
            start.elapsed().as_secs_f64() * 1e6 / n as f64
        })
        .fold(f64::INFINITY, f64::min);
    println!(
        "filter_wasmtime: {per_request:.2} µs per request (S4-like seed policy, best of 5 × {n} requests, wasmtime)"
    );

    let mut i = 0;
    c.bench_function("filter_wasmtime/request", |b| {
        b.iter(|| {
            i += 1;
            black_box(proxy.request(&requests[i % requests.len()]).expect("no trap"))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
