//! Evaluator and compiler speed. Goals (issue 2): ≤ 100 ns/request for the seed policy, ≤ 5 µs/request
//! for a generated 1,000-rule policy, ≤ 200 ms to compile 10,000 rules. Figures are printed by criterion.

use std::hint::black_box;
use std::time::Duration;

use canary_eval::{Policy, SimpleRequest, SlotRequest};
use criterion::{criterion_group, criterion_main, Criterion};
use rand::rngs::SmallRng;
use rand::SeedableRng;

const ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
const MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15";

fn compile(source: &str) -> Policy {
    let compiled = canary_compiler::compile(source, "bench.canary").unwrap_or_else(|_| panic!("bench policy compiles"));
    Policy::new(&compiled.config).expect("compiled config is valid")
}

/// A policy of the kinds of rules operators accumulate: per-user pins (header and cookie), app-version
/// user agents, path prefixes and combined conditions with sticky splits. `grouped` keeps each kind
/// together, as people write them; otherwise the kinds are interleaved rule by rule (the worst ordering,
/// since only runs of exact matches become lookup tables).
fn generated(rules: usize, grouped: bool) -> String {
    let kind = |i: usize| if grouped { i * 10 / rules } else { i % 10 };
    let mut s = String::from("service api {\n");
    for i in 0..rules {
        let line = match kind(i) {
            0..=4 => format!("  header x-user-id = \"user-{i}\" -> v2\n"),
            5..=6 => format!("  cookie user=u{i} -> v2\n"),
            7 => format!("  header user-agent ~ \"MyApp/{i}\\\\.\" -> v2\n"),
            8 => format!("  path \"/api/v{i}/\" -> v2\n"),
            _ => format!("  method POST and query beta=b{i}: 10% v2 by header x-user-id\n"),
        };
        s.push_str(&line);
    }
    s.push_str("  default v1\n}\n");
    s
}

fn seed(c: &mut Criterion) {
    let policy = compile(include_str!("../../examples/weather.canary"));
    let frontend = policy.service_or_global("frontend");
    let mut rng = SmallRng::seed_from_u64(1);
    let requests = [
        ("android", SimpleRequest::new().host("frontend").path("/").header("user-agent", ANDROID)),
        ("tester", SimpleRequest::new().host("frontend").path("/").cookie("session", "x").cookie("user", "tester")),
        ("mac", SimpleRequest::new().host("frontend").path("/").header("user-agent", MAC)),
    ];
    for (name, req) in &requests {
        let req = SlotRequest::new(policy.attrs(), req);
        c.bench_function(&format!("seed policy/{name}"), |b| {
            b.iter(|| black_box(policy.decide(frontend, black_box(&req), &mut rng)))
        });
    }
}

fn thousand(c: &mut Criterion) {
    for (label, grouped) in [("grouped", true), ("interleaved", false)] {
        let policy = compile(&generated(1000, grouped));
        let api = policy.service_or_global("api");
        let mut rng = SmallRng::seed_from_u64(1);
        let request = |method: &str| {
            SimpleRequest::new()
                .method(method)
                .path("/web/index.html")
                .query("beta", "b999")
                .header("user-agent", MAC)
                .header("x-user-id", "nobody")
                .cookie("user", "nobody")
        };
        // Rule 1000 (the last) is `method POST and query beta=b999` in both orderings.
        let (miss, late) = (request("GET"), request("POST"));
        for (name, req) in [("no match", &miss), ("late match", &late)] {
            let req = SlotRequest::new(policy.attrs(), req);
            c.bench_function(&format!("1000-rule policy {label}/{name}"), |b| {
                b.iter(|| black_box(policy.decide(api, black_box(&req), &mut rng)))
            });
        }
    }
}

fn compile_time(c: &mut Criterion) {
    let source = generated(10_000, true);
    let mut group = c.benchmark_group("compile");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    group.bench_function("10000 rules", |b| b.iter(|| black_box(compile(black_box(&source)))));
    group.finish();
}

criterion_group!(benches, seed, thousand, compile_time);
criterion_main!(benches);
