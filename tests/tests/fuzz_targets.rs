//! Property-based fuzzing on stable Rust through the real wasm module under wasmtime, plus the replay of the
//! regression corpus in `tests/corpus/` through it. The libFuzzer targets (`fuzz/`, `make fuzz`) reach far more
//! inputs but drive the filter's engine natively; `checks/tests/corpus.rs` replays the corpus through their
//! oracles. Both stay: only these reach the module itself.
//!
//! - `fuzz_policy_parser`: token soups and arbitrary bytes into `canary_compiler::compile`. Never a panic; every
//!   diagnostic inside the input; whatever compiles loads in the evaluator AND in the filter.
//! - `fuzz_config_loader`: mutated configuration JSON into `Policy::from_json` and into the filter (through the
//!   wasmtime host's `configure`), which decodes with serde_json through that same function. Never a panic or a
//!   trap; both accept or both refuse; a refusal is one `canary: refusing configuration: …` line giving the
//!   evaluator's reason, whose line lies inside the input.
//! - `fuzz_evaluator`: random policies (routes only, so decisions do not depend on a random draw) and arbitrary
//!   requests (header bytes, repeated and forged headers, cookies, queries, paths, node labels). The filter under
//!   wasmtime decides exactly what `Policy::decide` decides.
//!
//! Budget: `PROPTEST_CASES` cases per target (default 48, so `make test` stays quick), or, when
//! `CANARY_FUZZ_SECS` is set, as many batches as fit in that many seconds per target. Each target prints the
//! executions it ran. A failure prints the shrunk input: add it under `tests/corpus/` so it is replayed forever.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use canary_checks::corpus::files as corpus;
use canary_eval::{Policy, SimpleRequest};
use canary_tests::host::{LogLevel, Proxy};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use serde_json::Value;

// ---------------------------------------------------------------------------------------------------------------
// The harness: a budget, a count, a report.

fn fuzz<S: Strategy>(name: &str, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S::Value: std::fmt::Debug,
{
    let seconds = std::env::var("CANARY_FUZZ_SECS").ok().and_then(|s| s.parse::<f64>().ok());
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(48);
    let executions = AtomicU64::new(0);
    let start = Instant::now();
    loop {
        let batch = if seconds.is_some() { 500 } else { cases };
        let config = Config { cases: batch, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new(config);
        let result = runner.run(&strategy, |value| {
            executions.fetch_add(1, Relaxed);
            test(value)
        });
        if let Err(e) = result {
            panic!("fuzz {name}: {e}\n(add the input above to tests/corpus/ as a regression case)");
        }
        match seconds {
            Some(s) if start.elapsed() < Duration::from_secs_f64(s) => continue,
            _ => break,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = executions.load(Relaxed);
    println!("fuzz {name}: {n} executions in {elapsed:.1}s ({:.0}/s)", n as f64 / elapsed);
}

// ---------------------------------------------------------------------------------------------------------------
// Checks shared by the fuzz targets and the corpus replay.

/// Compiles `source`: no panic, diagnostics inside the input; a compiled policy loads in the evaluator and in
/// the filter. Returns the config JSON when it compiled.
fn check_policy(source: &str) -> Result<Option<String>, TestCaseError> {
    let diags = match canary_compiler::compile(source, "fuzz.canary") {
        Ok(compiled) => {
            let json = canary_compiler::config_json(&compiled.config);
            if let Err(e) = Policy::from_json(json.as_bytes()) {
                return Err(TestCaseError::fail(format!("compiled JSON refused by the evaluator: {e}\n{json}")));
            }
            let proxy = Proxy::http(&json).configure().map_err(|e| TestCaseError::fail(format!("{e:#}")))?;
            if let Err(refused) = proxy {
                return Err(TestCaseError::fail(format!("compiled JSON refused by the filter: {refused}\n{json}")));
            }
            check_positions(source, &compiled.warnings)?;
            return Ok(Some(json));
        }
        Err(diags) => diags,
    };
    prop_assert!(!diags.is_empty() && diags[0].is_error(), "a failure starts with an error: {diags:?}");
    prop_assert!(!diags.iter().any(|d| d.message.contains("internal error")), "{diags:?}");
    check_positions(source, &diags)?;
    Ok(None)
}

fn check_positions(source: &str, diags: &[canary_compiler::Diagnostic]) -> Result<(), TestCaseError> {
    let lines: Vec<&str> = source.split('\n').collect();
    for d in diags {
        prop_assert!(d.span.start <= d.span.end && d.span.end <= source.len(), "span outside the input: {d:?}");
        prop_assert!(source.is_char_boundary(d.span.start) && source.is_char_boundary(d.span.end), "{d:?}");
        let pos = d.position(source);
        prop_assert!(pos.line >= 1 && pos.line <= lines.len(), "line {} of {}: {d:?}", pos.line, lines.len());
        prop_assert!(pos.col >= 1 && pos.col <= lines[pos.line - 1].chars().count() + 1, "col {}: {d:?}", pos.col);
    }
    let text = canary_compiler::render(diags, source, "fuzz.canary", false);
    if let Some(first) = diags.first() {
        prop_assert!(text.starts_with(&format!("fuzz.canary:{}: ", first.position(source))), "{text}");
    }
    Ok(())
}

/// Loads `json` in the evaluator and in the filter: neither panics nor traps, they agree, and a refusal is one
/// error line whose positions are inside the input.
fn check_config(json: &[u8]) -> Result<(), TestCaseError> {
    let reference = Policy::from_json(json);
    let filter = Proxy::http(json).configure().map_err(|e| TestCaseError::fail(format!("trap: {e:#}")))?;
    let shown = String::from_utf8_lossy(json);
    match (&reference, filter) {
        (Ok(_), Ok(_)) => Ok(()),
        (Err(e), Err(refused)) => {
            let errors: Vec<&str> =
                refused.logs.iter().filter(|l| l.level == LogLevel::Error).map(|l| l.message.as_str()).collect();
            prop_assert_eq!(errors.len(), 1, "one error line: {}", refused);
            let reason = errors[0].strip_prefix("canary: refusing configuration: ");
            prop_assert_eq!(reason, Some(e.0.as_str()), "the filter refuses for the evaluator's reason");
            let lines = json.split(|&b| b == b'\n').count();
            if let Some(line) = e.0.split(" at line ").nth(1).and_then(|r| r.split(' ').next()) {
                let line: usize = line.parse().unwrap_or(0);
                prop_assert!(line >= 1 && line <= lines, "evaluator: line {line} of {lines}: {e}");
            }
            Ok(())
        }
        (Ok(_), Err(refused)) => Err(TestCaseError::fail(format!("only the filter refused {shown:?}: {refused}"))),
        (Err(e), Ok(_)) => Err(TestCaseError::fail(format!("only the evaluator refused {shown:?}: {e}"))),
    }
}

/// One request as the fuzzer and the corpus describe it.
#[derive(Debug, Clone)]
struct Req {
    /// (lowercase name, raw value), in order, repeats kept.
    headers: Vec<(String, Vec<u8>)>,
    /// The proxy's node label `version`, if any.
    version: Option<String>,
}

/// Runs `requests` through the filter (one proxy per node label) and through `Policy::decide`; the subset header
/// the filter leaves must be exactly the reference's decision.
fn check_decisions(config_json: &str, requests: &[Req]) -> Result<(), TestCaseError> {
    let policy = Policy::from_json(config_json.as_bytes()).map_err(|e| TestCaseError::fail(e.0))?;
    let header = policy.subset_header().to_string();
    let mut proxies: Vec<(Option<String>, Proxy)> = Vec::new();
    for req in requests {
        let at = match proxies.iter().position(|(v, _)| *v == req.version) {
            Some(i) => i,
            None => {
                let mut builder = Proxy::http(config_json).record_calls(false);
                if let Some(v) = &req.version {
                    builder = builder.node_label("version", v);
                }
                proxies.push((req.version.clone(), builder.start().map_err(|e| TestCaseError::fail(e.to_string()))?));
                proxies.len() - 1
            }
        };
        // Envoy hands a filter each pseudo-header once (HTTP/2 forbids repeats; HTTP/1's Host becomes one
        // `:authority`): a generated repeat keeps its first value for both sides, as the checks crate's host does.
        let mut seen_pseudo: Vec<&str> = Vec::new();
        let req_headers: Vec<(String, Vec<u8>)> = req
            .headers
            .iter()
            .filter(|(k, _)| {
                if !k.starts_with(':') {
                    return true;
                }
                let first = !seen_pseudo.contains(&k.as_str());
                seen_pseudo.push(k.as_str());
                first
            })
            .cloned()
            .collect();
        let headers: Vec<(&str, &[u8])> = req_headers.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        let out = proxies[at].1.request_bytes(&headers).map_err(|e| TestCaseError::fail(format!("{e:#}")))?;

        // The reference: the evaluator reads every value of a repeated header, as the filter must.
        let mut simple = SimpleRequest::new();
        simple.headers = req_headers.clone();
        if let Some(v) = &req.version {
            simple = simple.source("version", v);
        }
        let authority = simple.headers.iter().find(|(n, _)| n == ":authority").map(|(_, v)| v.clone());
        let service = policy.service_for_authority(authority.as_deref().unwrap_or_default());
        let decision = policy.decide(service, &simple, &mut SmallRng::seed_from_u64(7));
        let want = decision.subset.map(|s| policy.subset_name(s).as_bytes().to_vec());
        let got: Vec<&[u8]> = out.header_values(&header);
        let shown: Vec<(&str, String)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(&v[..v.len().min(120)]).into_owned()))
            .collect();
        match &want {
            Some(w) => prop_assert_eq!(got, vec![w.as_slice()], "request {:?} label {:?}", shown, req.version),
            None => prop_assert!(got.is_empty(), "no decision, yet {got:?}; request {shown:?}"),
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------------------------
// Generators.

/// Tokens besides the keywords: names, values, percentages and punctuation.
const EXTRA_TOKENS: &[&str] = &[
    "user-agent",
    "x",
    ":path",
    "user",
    "tester",
    "version",
    "v1",
    "v2",
    "frontend",
    "GET",
    "50%",
    "0.01%",
    "100%",
    "101%",
    "12.345%",
    "->",
    ":",
    ",",
    "%",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ";",
    "\n",
    "\n",
    "=",
    "!=",
    "~",
    "\"",
    "\"Chrome\"",
    "\"(\"",
    "\"/a\"",
    "\"\"",
    "\"a\\\"b\"",
    "# c",
    "é",
    "\t",
    "\r\n",
    "\u{2028}",
    "\0",
    "\"\\u{0}\"",
    "x-canary-subset",
];

/// The language's keywords (from the parser itself) and the extra tokens above.
fn tokens() -> Vec<&'static str> {
    canary_dsl::KEYWORDS.iter().chain(EXTRA_TOKENS).copied().collect()
}

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(tokens()), any::<bool>()), 0..50).prop_map(|tokens| {
        tokens.into_iter().fold(String::new(), |mut s, (t, space)| {
            s.push_str(t);
            if space {
                s.push(' ');
            }
            s
        })
    })
}

fn policy_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => token_soup(),
        1 => prop::collection::vec(any::<u8>(), 0..200).prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

/// Conditions over a small vocabulary, so that generated requests hit them often.
fn condition() -> impl Strategy<Value = String> {
    let value = prop::sample::select(vec!["beta", "tester", "\"a b\"", "\"\"", "\"é\""]);
    let atom = prop_oneof![
        value.clone().prop_map(|v| format!("header x-env = {v}")),
        value.clone().prop_map(|v| format!("header x-env != {v}")),
        Just("header user-agent ~ \"Android.*Mobile\"".to_string()),
        Just("header x-env ~ \"^be\"".to_string()),
        value.clone().prop_map(|v| format!("header x-env in [{v}, \"z\"]")),
        Just("header x-env present".to_string()),
        Just("header x-env absent".to_string()),
        value.clone().prop_map(|v| format!("cookie user={v}")),
        value.prop_map(|v| format!("query q={v}")),
        Just("path \"/api\"".to_string()),
        Just("method POST".to_string()),
        Just("host \"frontend\"".to_string()),
        Just("source version=v2".to_string()),
        prop::sample::select(vec!["android", "ios", "chrome", "firefox", "safari", "edge", "mobile"])
            .prop_map(str::to_string),
    ];
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

/// A policy whose decisions never depend on a random draw: routes, 100% splits and defaults.
fn deterministic_policy() -> impl Strategy<Value = String> {
    let subset = prop::sample::select(vec!["v1", "v2", "v3"]);
    let statement = prop_oneof![
        4 => (condition(), subset.clone()).prop_map(|(c, s)| format!("{c} -> {s}")),
        1 => (condition(), subset.clone()).prop_map(|(c, s)| format!("{c}: 100% {s}")),
    ];
    (
        prop::collection::vec(statement.clone(), 0..3),
        prop::collection::vec(statement, 0..6),
        prop::option::of(subset.clone()),
        prop::option::of(subset),
    )
        .prop_map(|(top, frontend, global_default, default)| {
            let mut s = String::new();
            for stmt in top {
                s += &format!("{stmt}\n");
            }
            if let Some(d) = global_default {
                s += &format!("default {d}\n");
            }
            s += "service frontend {\n";
            for stmt in frontend {
                s += &format!("  {stmt}\n");
            }
            if let Some(d) = default {
                s += &format!("  default {d}\n");
            }
            s + "}\n"
        })
}

/// Values from the libFuzzer differential's pool (`canary_checks::differential::VALUES`), random bytes, or one
/// of its units repeated.
fn header_value() -> impl Strategy<Value = Vec<u8>> {
    use canary_checks::differential::{UNITS, VALUES};
    prop_oneof![
        4 => prop::sample::select(VALUES).prop_map(<[u8]>::to_vec),
        2 => prop::collection::vec(any::<u8>(), 0..40),
        1 => (prop::sample::select(UNITS), 1usize..400)
            .prop_map(|(unit, n)| unit.repeat(n)),
    ]
}

fn request() -> impl Strategy<Value = Req> {
    let name = prop::sample::select(vec![
        ":authority",
        ":path",
        ":method",
        "user-agent",
        "cookie",
        "x-env",
        "x-canary-subset",
        "X-Canary-Subset",
        "accept",
    ]);
    (prop::collection::vec((name, header_value()), 0..8), prop::option::of(prop::sample::select(vec!["v1", "v2", ""])))
        .prop_map(|(headers, version)| Req {
            headers: headers.into_iter().map(|(n, v)| (n.to_ascii_lowercase(), v)).collect(),
            version: version.map(str::to_string),
        })
}

/// Valid configurations to mutate: every example policy compiled, plus settings.
fn seed_configs() -> Vec<String> {
    let mut seeds: Vec<String> = std::fs::read_dir(workspace().join("examples"))
        .expect("examples/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "canary"))
        .filter_map(|p| canary_compiler::compile(&std::fs::read_to_string(p).ok()?, "x").ok())
        .map(|c| serde_json::to_string(&c.config).expect("serializes"))
        .collect();
    seeds.sort();
    seeds.push(
        [
            r#"{"version":1,"settings":{"service":"a","header":"x-v","trust_incoming":true,"#,
            r#""cluster":"{service}|{subset}"},"global":{"default":"v1"}}"#,
        ]
        .concat(),
    );
    seeds
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "\\uDC00",
    "\\\"",
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1e9",
    "4294967296",
    "1.5",
    "\"version\"",
    "\"rules\"",
    "\"default\"",
    "\"when\"",
    "\"then\"",
    "\"route\"",
    "\"split\"",
    "\"regex\"",
    "\"(\"",
    "\"weight\"",
    "\"settings\"",
    "\"header\"",
    "\"x\"",
    " ",
    "\n",
    "\u{e9}",
    "\u{feff}",
];

/// A seed with a few byte-level mutations: replace, insert a JSON token, delete a range, truncate.
fn mutated_config(seeds: Vec<String>) -> impl Strategy<Value = Vec<u8>> {
    let mutation = (0u8..4, any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>());
    (prop::sample::select(seeds), prop::collection::vec(mutation, 0..4)).prop_map(|(seed, mutations)| {
        let mut bytes = seed.into_bytes();
        for (kind, at, other, byte) in mutations {
            let at = at.index(bytes.len() + 1);
            match kind {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => {
                    let token = JSON_TOKENS[other.index(JSON_TOKENS.len())].as_bytes();
                    bytes.splice(at..at, token.iter().copied());
                }
                2 => {
                    let end = (at + other.index(12)).min(bytes.len());
                    bytes.drain(at..end);
                }
                _ => bytes.truncate(at),
            }
        }
        bytes
    })
}

// ---------------------------------------------------------------------------------------------------------------
// The targets.

#[test]
fn fuzz_policy_parser() {
    fuzz("policy_parser", policy_text(), |source| check_policy(&source).map(drop));
}

#[test]
fn fuzz_config_loader() {
    fuzz("config_loader", mutated_config(seed_configs()), |json| check_config(&json));
}

#[test]
fn fuzz_evaluator() {
    let strategy = (deterministic_policy(), prop::collection::vec(request(), 1..10));
    fuzz("evaluator", strategy, |(source, requests)| {
        let config = canary_compiler::compile(&source, "gen.canary")
            .map(|c| canary_compiler::config_json(&c.config))
            .map_err(|d| TestCaseError::fail(canary_compiler::render(&d, &source, "gen.canary", false)))?;
        check_decisions(&config, &requests)
    });
}

// ---------------------------------------------------------------------------------------------------------------
// The regression corpus.

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// A request value in the corpus: a string, `{"hex": "ff00"}`, `{"repeat": VALUE, "times": 10000}`, or
/// `{"concat": [VALUE, …]}`.
fn corpus_value(value: &Value) -> Vec<u8> {
    match value {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(o) if o.contains_key("concat") => {
            o["concat"].as_array().expect("concat is a list").iter().flat_map(corpus_value).collect()
        }
        Value::Object(o) if o.contains_key("hex") => {
            let hex = o["hex"].as_str().expect("hex is a string");
            (0..hex.len()).step_by(2).map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digits")).collect()
        }
        Value::Object(o) => {
            let unit = corpus_value(&o["repeat"]);
            unit.repeat(o["times"].as_u64().expect("times is a number") as usize)
        }
        other => panic!("unsupported corpus value {other}"),
    }
}

#[test]
fn corpus_replay() {
    let mut replayed = 0;
    for path in corpus("policies", "canary") {
        let source = std::fs::read_to_string(&path).expect("policy file");
        check_policy(&source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        replayed += 1;
    }
    for path in corpus("configs", "json") {
        let json = std::fs::read(&path).expect("config file");
        check_config(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        replayed += 1;
    }
    // {"policy": "<canary source>", "requests": [{"version": "v2", "headers": [["cookie", VALUE], …]}, …]}
    for path in corpus("requests", "json") {
        let case: Value = serde_json::from_slice(&std::fs::read(&path).expect("request file")).expect("JSON");
        let source = case["policy"].as_str().expect("policy");
        let config = check_policy(source).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let config = config.unwrap_or_else(|| panic!("{}: the policy does not compile", path.display()));
        let requests: Vec<Req> = case["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .map(|r| Req {
                headers: r["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .map(|h| (h[0].as_str().expect("name").to_ascii_lowercase(), corpus_value(&h[1])))
                    .collect(),
                version: r.get("version").and_then(Value::as_str).map(str::to_string),
            })
            .collect();
        check_decisions(&config, &requests).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        replayed += 1;
    }
    println!("corpus: {replayed} inputs replayed");
    assert!(replayed >= 10, "the corpus went missing: {replayed} inputs");
}
