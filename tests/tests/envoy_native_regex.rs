//! Differential fuzz of `~` regexes: RE2 in real Envoy 1.40, running the native routes `canary-backends` writes
//! for `header x-v ~ "P"` (and `not …`), against `canary_eval`'s decision for the same policy.
//!
//! proptest draws patterns from a grammar covering the dialect's operators (literals, `.`, classes and negated
//! classes, `\d \w \s \D \W \S`, `\b \B ^ $ (?m:^)`, `(?i)`, non-ASCII literals and `\xHH` bytes, greedy and lazy
//! repetitions with counts, alternation, groups) and values from an alphabet that keeps matches frequent
//! (ASCII letters of both cases, digits, punctuation, UTF-8 `é`, the invalid bytes 0x80 and 0xFF), plus a 9 KB
//! value per pattern. Every pattern the lowering accepts goes into one Envoy (one route pair per pattern,
//! selected by an `x-case` header, answering with a direct response), under the runtime cap canaryc's bootstraps
//! set (`re2.max_program_size.error_level: 1000`), so Envoy refusing a lowered program fails the test too. Each
//! request's answer must equal the evaluator's; the patterns refused are counted by reason and must stay few.
//!
//! `CANARY_REGEX_SEED` (default [`DEFAULT_SEED`], what `make test` runs) and `CANARY_REGEX_CASES` (default
//! [`DEFAULT_CASES`]) vary the run; a failure prints the seed and the pattern. Needs Envoy
//! (`scripts/setup-envoy.sh`); no filter module.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use canary_backends::manifest::envoy_routes::http_routes;
use canary_backends::native::{lower_service, EnvoyVersion, Target};
use canary_compiler::policy_text::quote;
use canary_eval::config::Protocol;
use canary_eval::{Policy, SimpleRequest};
use canary_tests::bootstrap::direct_routes;
use canary_tests::mesh::envoy::{find_envoy, free_port, spawn, wait_ready};
use canary_tests::mesh::procs::Procs;
use canary_tests::reload::http_exchange;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::{json, Value};

#[path = "support/seeded.rs"]
mod seeded;
use seeded::{draw, env_or, runner};

/// The run `make test` does: fixed, so a failure there replays anywhere.
const DEFAULT_SEED: u64 = 20_261_207;
/// Patterns per run (all in one Envoy; ~20 requests each).
const DEFAULT_CASES: usize = 300;
/// Generated values per pattern, besides the absent header and the 9 KB value.
const VALUES_PER_CASE: usize = 16;

/// One piece of a pattern: (pattern text, whether it may take a repetition operator after it).
fn atom() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a",
        "b",
        "A",
        "0",
        "1",
        "/",
        "\\.",
        " ",
        "é",
        "\\xff",
        "\\x80",
        ".",
        "[a-b]",
        "[^a]",
        "[0-9]",
        "[^/]",
        "[\\x80-\\xff]",
        "[aé]",
        "\\d",
        "\\w",
        "\\s",
        "\\D",
        "\\W",
        "\\S",
        "(?i:a)",
        "(?i:é)",
        "[[:alpha:]]",
    ])
    .prop_map(str::to_string)
}

fn assertion() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["^", "$", "\\b", "\\B", "(?m:^)", "(?m:$)", "\\A", "\\z"]).prop_map(str::to_string)
}

fn repetition() -> impl Strategy<Value = String> {
    let op = prop_oneof![
        3 => prop::sample::select(vec!["*", "+", "?"]).prop_map(str::to_string),
        1 => (0u32..4).prop_map(|n| format!("{{{n}}}")),
        1 => (0u32..3, 1u32..5).prop_map(|(m, k)| format!("{{{m},{}}}", m + k)),
        1 => (0u32..3).prop_map(|m| format!("{{{m},}}")),
        // Counts large enough to approach RE2's program-size cap (and sometimes pass canary's bound on it).
        1 => (20u32..120).prop_map(|n| format!("{{{n}}}")),
    ];
    (op, prop::bool::weighted(0.25)).prop_map(|(op, lazy)| if lazy { format!("{op}?") } else { op })
}

fn pattern() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![4 => atom(), 1 => assertion()];
    let expr = leaf.prop_recursive(3, 12, 4, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.concat()),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("(?:{a}|{b})")),
            2 => (inner.clone(), repetition()).prop_map(|(a, r)| format!("(?:{a}){r}")),
            1 => inner.prop_map(|a| format!("({a})")),
        ]
    });
    (prop::bool::weighted(0.15), expr).prop_map(|(fold, e)| if fold { format!("(?i){e}") } else { e })
}

/// A header value as sent: pieces of the alphabet (at most 12).
fn value() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop::sample::select(vec![
        &b"a"[..],
        b"b",
        b"A",
        b"B",
        b"0",
        b"1",
        b"/",
        b".",
        b" ",
        "é".as_bytes(),
        "É".as_bytes(),
        b"\xff",
        b"\x80",
        b"ab",
        b"_",
        b"-",
    ]);
    prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
}

/// The value the evaluator sees: Envoy's HTTP/1 codec trims the optional whitespace around a field value.
fn as_envoy_reads(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|b| !b" \t".contains(b)).unwrap_or(v.len());
    let end = v.iter().rposition(|b| !b" \t".contains(b)).map_or(start, |i| i + 1);
    &v[start..end]
}

struct Case {
    pattern: String,
    negated: bool,
    policy: Policy,
    routes: Vec<Value>,
    values: Vec<Option<Vec<u8>>>,
}

/// The policy for one pattern, compiled, loaded and lowered; `Err` with the refusal when it has no native form.
fn lowered(pattern: &str, negated: bool) -> Result<Result<(Policy, Vec<Value>), String>> {
    let cond = format!("header x-v ~ {}", quote(pattern));
    let cond = if negated { format!("not {cond}") } else { cond };
    let source = format!("service s {{\n  {cond} -> v2\n  default v1\n}}\n");
    let Ok(compiled) = canary_compiler::compile(&source, "fuzz.canary") else {
        return Ok(Err("the compiler refuses it".into()));
    };
    let policy = Policy::new(&compiled.config).map_err(|e| anyhow::anyhow!("{source}: {e}"))?;
    let target = Target::envoy(EnvoyVersion::LATEST);
    match lower_service(&compiled.config, &compiled.spans, "s", Protocol::Http, &target) {
        Ok(service) => Ok(Ok((policy, http_routes(&service, &|s| s.unwrap_or("none").to_string())))),
        Err(refusals) => Ok(Err(refusals.first().map_or(String::new(), |r| r.reason.clone()))),
    }
}

/// The reason's kind, for the tally (the text before the first `:` after the pattern).
fn reason_kind(reason: &str) -> String {
    let tail = reason.split_once("has no RE2 form: ").map_or(reason, |(_, t)| t);
    tail.split(['(', ',']).next().unwrap_or(tail).trim().to_string()
}

/// Every case's routes, selected by `x-case`, each answering with the subset its cluster names.
fn bootstrap(listen: SocketAddr, admin: SocketAddr, cases: &[Case]) -> String {
    let mut routes = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let selector = json!({ "name": "x-case", "string_match": { "exact": i.to_string() } });
        for route in &case.routes {
            let mut m = route["match"].clone();
            match m.get_mut("headers").and_then(Value::as_array_mut) {
                Some(headers) => headers.push(selector.clone()),
                None => m["headers"] = json!([selector.clone()]),
            }
            let subset = route["route"]["cluster"].as_str().unwrap_or("none");
            routes
                .push(json!({ "match": m, "direct_response": { "status": 200, "body": { "inline_string": subset } } }));
        }
    }
    // What `canaryc manifest` writes whenever a native route uses a regex (backends/src/manifest/envoy.rs).
    let runtime = json!({ "layered_runtime": { "layers": [{
        "name": "canary", "static_layer": { "re2.max_program_size.error_level": 1000 },
    }] } });
    direct_routes("regex", listen, admin, routes, runtime)
}

/// One request on a fresh connection; the direct response's body.
fn send(listen: SocketAddr, case: usize, value: Option<&[u8]>) -> Result<String> {
    let mut raw = format!("GET / HTTP/1.1\r\nhost: s\r\nx-case: {case}\r\n").into_bytes();
    if let Some(v) = value {
        raw.extend_from_slice(b"x-v: ");
        raw.extend_from_slice(v);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"connection: close\r\n\r\n");
    let (status, body) = http_exchange(listen, &raw)?;
    if status != 200 {
        bail!("Envoy answered {status}: {body:?}");
    }
    Ok(body.trim().to_string())
}

fn decide(policy: &Policy, value: Option<&[u8]>) -> String {
    let mut req = SimpleRequest::new();
    if let Some(v) = value {
        req = req.header("x-v", as_envoy_reads(v));
    }
    let d = policy.decide(policy.service_or_global("s"), &req, &mut SmallRng::seed_from_u64(1));
    d.subset.map_or("none".into(), |s| policy.subset_name(s).to_string())
}

#[test]
fn lowered_regexes_decide_in_envoy_as_the_evaluator_does() -> Result<()> {
    let seed = env_or("CANARY_REGEX_SEED", DEFAULT_SEED);
    let wanted = env_or("CANARY_REGEX_CASES", DEFAULT_CASES);
    let started = Instant::now();
    let mut runner = runner(seed);
    let (patterns, values) = (pattern(), value());
    let mut cases = Vec::new();
    let mut refused: BTreeMap<String, usize> = BTreeMap::new();
    let mut drawn = 0;
    while cases.len() < wanted {
        drawn += 1;
        let pattern = draw(&mut runner, &patterns);
        let negated = draw(&mut runner, &prop::bool::weighted(0.3));
        match lowered(&pattern, negated)? {
            Ok((policy, routes)) => {
                let mut vs: Vec<Option<Vec<u8>>> =
                    (0..VALUES_PER_CASE).map(|_| Some(draw(&mut runner, &values))).collect();
                vs.push(None);
                vs.push(Some([vec![b'a'; 9_000], b"b/1\xff".to_vec()].concat()));
                cases.push(Case { pattern, negated, policy, routes, values: vs });
            }
            Err(reason) => *refused.entry(reason_kind(&reason)).or_default() += 1,
        }
        assert!(drawn < wanted * 3, "the grammar should mostly lower; refused so far: {refused:#?}");
    }
    let envoy = find_envoy()?;
    let (listen, admin) = (free_port()?, free_port()?);
    let mut procs = Procs::new("native-regex")?;
    spawn(&mut procs, &envoy, "envoy", &bootstrap(listen, admin, &cases))?;
    wait_ready(&mut procs, "envoy", admin)
        .with_context(|| format!("Envoy refused the lowered regexes (seed {seed}):\n{}", procs.tail("envoy")))?;
    let (mut agreed, mut matched) = (0, 0);
    let mut mismatches = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        for v in &case.values {
            let envoy_says = send(listen, i, v.as_deref())?;
            let ours = decide(&case.policy, v.as_deref());
            matched += usize::from(ours == "v2");
            if envoy_says == ours {
                agreed += 1;
            } else {
                let shown = v.as_deref().map(|v| format!("{:?}", String::from_utf8_lossy(&v[..v.len().min(60)])));
                mismatches.push(format!(
                    "{}~ {:?} on {}: Envoy {envoy_says}, canary {ours}; RE2 {}",
                    if case.negated { "not " } else { "" },
                    case.pattern,
                    shown.unwrap_or_else(|| "(absent)".into()),
                    case.routes.first().map_or(String::new(), |r| r["match"]["headers"].to_string()),
                ));
            }
        }
    }
    println!(
        "seed {seed}: {} patterns lowered of {drawn} drawn, {agreed} decisions agree ({matched} to v2) in {:.1} s; \
         refused: {refused:#?}",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(mismatches.is_empty(), "seed {seed}: {} decisions differ:\n{}", mismatches.len(), mismatches.join("\n"));
    // Both answers must be common, or agreeing proves little.
    let total: usize = cases.iter().map(|c| c.values.len()).sum();
    assert!(matched * 10 > total && matched * 10 < total * 9, "{matched} of {total} went to v2");
    Ok(())
}
