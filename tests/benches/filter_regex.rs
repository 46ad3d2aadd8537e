//! What a `~` with regex operators costs the filter module, per HTTP request: wasm instructions (wasmtime fuel,
//! exact) on the benchmark's Android Chrome user agent, and time on 60 KiB hostile user agents (Envoy's
//! default header limit) — near-misses that keep a search busy to the last byte. ARCHITECTURE.md ("The `~`
//! engine") has the figures for the lazy DFA and for regex-lite, the engine before it; `CANARY_WASM=PATH`
//! runs this against another module build.
//!
//! `cargo bench -p canary-tests --bench filter_regex` (needs `scripts/build-filter.sh` first).

use std::time::Instant;

use canary_tests::host::{compile, Proxy, Settings};

const UA: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36";

/// (name, condition): S3 with the regexes operators write, the families that compile to regexes, and a pattern
/// whose DFA outgrows its cache (the engine's worst case: a state built for nearly every byte).
const CONDITIONS: &[(&str, &str)] = &[
    ("chrome version", r#"header user-agent ~ "Chrome/1[0-9]{2}""#),
    ("anchored", r#"header user-agent ~ "^Mozilla/5\\.0 \\(Linux; Android [0-9]+""#),
    ("chrome family", "chrome"),
    ("safari family", "safari"),
    ("word class", r#"header user-agent ~ "[a-z]{3}[0-9]{2}\\b""#),
    ("DFA thrash", r#"header user-agent ~ "[a-q][^u-z]{13}x""#),
];

/// 60 KiB user agents that never match the conditions above, each built to keep one engine busy.
fn hostile() -> Vec<(&'static str, Vec<u8>)> {
    let len = 60 * 1024;
    let cycle = |unit: &[u8]| unit.iter().copied().cycle().take(len).collect::<Vec<u8>>();
    let mut lcg = 0x2545_f491_u32;
    let noise = (0..len)
        .map(|_| {
            lcg = lcg.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            b'a' + (lcg >> 24) as u8 % 20
        })
        .collect();
    vec![
        ("near-miss 'Chrome/9'", cycle(b"Chrome/9")),
        ("letters a-t", noise),
        ("Chrome/ Version/ Mobile", cycle(b"Chrome/ Version/ Mobile ")),
    ]
}

fn proxy(condition: &str) -> Proxy {
    let source = format!("service forecast {{\n  {condition} -> v2\n  default v1\n}}\n");
    let settings = Settings { service: Some("forecast".into()), ..Settings::default() };
    Proxy::http(compile(&source, settings))
        .record_calls(false)
        .start()
        .expect("filter module loads: run scripts/build-filter.sh first")
}

fn main() {
    let module = std::env::var("CANARY_WASM").unwrap_or_else(|_| "build/canary_filter.wasm".into());
    println!("module: {module}");
    println!("| condition | wasm instr./request (benchmark UA) | 60 KiB value | wasm instr. | µs/request |");
    println!("|---|---:|---|---:|---:|");
    for (name, condition) in CONDITIONS {
        let mut proxy = proxy(condition);
        let request = [(":authority", "forecast"), (":path", "/"), (":method", "GET"), ("user-agent", UA)];
        for _ in 0..100 {
            proxy.request(&request).expect("no trap");
        }
        let before = proxy.wasm_instructions();
        let n = 1_000;
        for _ in 0..n {
            proxy.request(&request).expect("no trap");
        }
        let typical = (proxy.wasm_instructions() - before) as f64 / n as f64;
        for (value_name, value) in hostile() {
            let headers: [(&str, &[u8]); 3] =
                [(":authority", b"forecast"), (":method", b"GET"), ("user-agent", value.as_slice())];
            let outcome = proxy.request_bytes(&headers).expect("no trap");
            let subset = outcome.headers.iter().find(|(k, _)| k == "x-canary-subset").map(|(_, v)| v.as_slice());
            assert_eq!(subset, Some(&b"v1"[..]), "{name} must not match {value_name}");
            let before = proxy.wasm_instructions();
            let runs = 20;
            let start = Instant::now();
            for _ in 0..runs {
                proxy.request_bytes(&headers).expect("no trap");
            }
            let micros = start.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
            let instructions = (proxy.wasm_instructions() - before) as f64 / f64::from(runs);
            println!("| {name} | {typical:.0} | {value_name} | {instructions:.0} | {micros:.1} |");
        }
    }
}
