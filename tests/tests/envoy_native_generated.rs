//! Generated policies through both backends in real Envoy 1.40: proptest draws policies inside the native
//! subset (header `=`/`!=`/`in`/literal `~`/`present`/`absent`, cookie equality, `path` prefixes, `method`,
//! `host`, `source`, families, `not`/`and`/`or`; routes, splits sticky or not, 100% splits, top-level and
//! service rules, defaults or none), keeps those `canary_backends::native::lower_service` lowers (the refused
//! ones are counted and redrawn), and runs each through a pair of Envoys — the filter and the native routes
//! (`canary_tests::mesh::backends`, as `envoy_native.rs`). Requests aimed at the generated values (equal,
//! differing, absent, empty, prefixes, case variants; no repeated header lines: README "Backends" documents that
//! divergence) go to both; deterministic decisions, sticky keys included, must be identical and the evaluator's,
//! and a decision drawn at random must be one the evaluator can make.
//!
//! `CANARY_NATIVE_SEED` (default [`DEFAULT_SEED`]) and `CANARY_NATIVE_CASES` (default [`DEFAULT_CASES`]) vary
//! the run; a failure prints the seed, the case number and the policy, so `CANARY_NATIVE_SEED=… cargo test -p
//! canary-tests --test envoy_native_generated` replays it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use canary_eval::Policy;
use canary_tests::mesh::agents::{ANDROID, CHROME, FIREFOX};
use canary_tests::mesh::backends::{both, case, possible, start_pair, Case, Req};
use proptest::prelude::*;

#[path = "support/seeded.rs"]
mod seeded;
use seeded::{draw, env_or, runner};

/// The run `make test` does: fixed, so a failure there replays anywhere.
const DEFAULT_SEED: u64 = 20_261_201;
/// Policies run per test (each costs two Envoy starts, ~1 s on a busy 2-core machine).
const DEFAULT_CASES: usize = 24;
/// Random requests per policy, on top of the systematic ones.
const RANDOM_REQUESTS: usize = 120;
/// Draws allowed per accepted policy before the generator is considered broken (nearly all lower).
const MAX_DRAWS_PER_CASE: usize = 20;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                      Version/17.4 Mobile/15E148 Safari/604.1";
const EDGE: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 \
                    Safari/537.36 Edg/124.0.2478.51";

// ----- policies ------------------------------------------------------------------------------------------

/// The header names conditions test (besides `user-agent`): few, so requests hit them often.
const HEADERS: [&str; 2] = ["x-env", "x-tier"];
/// Values conditions compare with; requests send these and near misses ([`HEADER_VALUES`]).
const VALUES: [&str; 5] = ["a", "ab", "b", "A", ""];
const COOKIE_VALUES: [&str; 3] = ["tester", "t", "T"];

fn atom() -> impl Strategy<Value = String> {
    let name = || prop::sample::select(HEADERS.to_vec());
    let value = || prop::sample::select(VALUES.to_vec());
    prop_oneof![
        3 => (name(), value()).prop_map(|(n, v)| format!("header {n} = \"{v}\"")),
        2 => (name(), value()).prop_map(|(n, v)| format!("header {n} != \"{v}\"")),
        2 => (name(), value(), value()).prop_map(|(n, a, b)| format!("header {n} in [\"{a}\", \"{b}\"]")),
        // Literal patterns only (regex operators are refused), alternatives included.
        2 => prop::sample::select(vec![
            "header user-agent ~ \"Chrome\"",
            "header user-agent ~ \"Android|iPhone\"",
            "header x-env ~ \"b\"",
            "header x-tier ~ \"a|ba\"",
            "header x-env ~ \"A\"",
        ])
        .prop_map(str::to_string),
        1 => name().prop_map(|n| format!("header {n} present")),
        1 => prop::sample::select(vec!["x-env", "x-tier", "user-agent"]).prop_map(|n| format!("header {n} absent")),
        2 => prop::sample::select(COOKIE_VALUES.to_vec()).prop_map(|v| format!("cookie user={v}")),
        1 => prop::sample::select(vec!["/api", "/", "/a"]).prop_map(|p| format!("path \"{p}\"")),
        1 => prop::sample::select(vec!["GET", "POST"]).prop_map(|m| format!("method {m}")),
        1 => prop::sample::select(vec!["forecast", "f.example"]).prop_map(|h| format!("host \"{h}\"")),
        1 => Just("source version=v2".to_string()),
        // Families with a literal form (`chrome`, `firefox`, `safari` use regex operators); `mobile` under a
        // `not` expands past the route limit, so some draws are refused.
        2 => prop::sample::select(vec!["android", "ios", "edge", "mobile"]).prop_map(str::to_string),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 8, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

fn subset() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["v1", "v2", "v3"])
}

/// `P% S[, Q% T] [by KEY]`: shares in multiples of 25 basis points (what `possible` samples), sticky or not.
fn split() -> impl Strategy<Value = String> {
    let two = prop::sample::select(vec![("v2", "v3"), ("v3", "v2"), ("v1", "v2"), ("v2", "v1"), ("v3", "v1")]);
    let share = || prop::sample::select(vec![10u32, 20, 25, 30, 50]);
    let by = prop::sample::select(vec!["", "", " by cookie uid", " by header x-user"]);
    (share(), share(), two, any::<bool>(), by).prop_map(|(p, q, (s, t), pair, by)| {
        let second = if pair { format!(", {}% {t}", q.min(30)) } else { String::new() };
        format!("{p}% {s}{second}{by}")
    })
}

/// A conditional rule (an unconditional split decides every request, so it only comes last: [`spec`]).
fn statement() -> impl Strategy<Value = String> {
    prop_oneof![
        5 => (condition(), subset()).prop_map(|(c, s)| format!("{c} -> {s}")),
        2 => (condition(), split()).prop_map(|(c, s)| format!("{c}: {s}")),
        1 => (condition(), subset()).prop_map(|(c, s)| format!("{c}: 100% {s}")),
    ]
}

/// One generated proxy: the policy text, the service it serves, its `version` label, its default subset.
#[derive(Debug, Clone)]
struct Spec {
    source: String,
    service: &'static str,
    version: &'static str,
    default: &'static str,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::collection::vec(statement(), 0..3),
        prop::option::of(subset()),
        (prop::collection::vec(statement(), 1..5), prop::option::weighted(0.3, split())),
        prop::option::of(subset()),
        // Mostly the declared service; sometimes one the policy does not declare (top-level rules only).
        prop::sample::select(vec!["forecast", "forecast", "forecast", "recommendation"]),
        prop::sample::select(vec!["v1", "v2"]),
        prop::sample::select(vec!["v1", "v3"]),
    )
        .prop_map(|(top, global_default, (own, last_split), default, service, version, proxy_default)| {
            let mut s = String::from("# generated\n");
            for stmt in top {
                let _ = writeln!(s, "{stmt}");
            }
            if let Some(d) = global_default {
                let _ = writeln!(s, "default {d}");
            }
            s += "service forecast {\n";
            for stmt in own.iter().chain(&last_split) {
                let _ = writeln!(s, "  {stmt}");
            }
            if let Some(d) = default {
                let _ = writeln!(s, "  default {d}");
            }
            s += "}\n";
            Spec { source: s, service, version, default: proxy_default }
        })
}

// ----- requests --------------------------------------------------------------------------------------------

/// What requests send in `x-env`/`x-tier`: the policy values, case variants, values they are a prefix or part
/// of, and a trailing blank (which Envoy strips).
const HEADER_VALUES: [&str; 11] = ["", "a", "ab", "b", "A", "AB", "B", "ba", "xab", "abc", "a "];
const AGENTS: [&str; 9] = [CHROME, FIREFOX, ANDROID, IPHONE, EDGE, "", "Chrome", "chrome", "xAndroidx"];
/// One `Cookie` line each (never two lines), around `user=tester` and the sticky `uid`.
const COOKIES: [&str; 14] = [
    "user=tester",
    "user=t",
    "user=T",
    "user=TESTER",
    "user=",
    "user=testerx",
    "User=tester",
    "a=1; user=tester",
    "user=t; user=tester",
    "uid=k1",
    "uid=k2; user=tester",
    "uid=",
    "user=T; uid=k3",
    "uid=\"k4\"",
];
const KEYS: [&str; 8] = ["k1", "k2", "k3", "k4", "k5", "user-17", "0", "9f2c4e1a-7d3b"];
/// Paths around the prefixes `/api`, `/a`, `/`: longer, shorter, other case, with a query, percent-encoded.
const PATHS: [&str; 11] =
    ["/", "/api", "/api/x", "/apix", "/a", "/API", "/b/api", "/api?q=1", "/?x=/api", "/%61pi", "//api"];
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];
const HOSTS: [&str; 7] =
    ["forecast", "FORECAST:8080", "forecast:80", "other-host", "f.example", "F.Example:1", "f.example.com"];

/// The request every systematic variant starts from: `GET /` to `forecast` with no other header.
fn base() -> Req {
    Req::get("/")
}

/// One dimension varied at a time from [`base`]: every value of every field alone.
fn systematic() -> Vec<Req> {
    let mut out = vec![base()];
    for name in HEADERS {
        out.extend(HEADER_VALUES.iter().map(|v| base().header(name, v)));
    }
    out.extend(AGENTS.iter().map(|ua| base().header("user-agent", ua)));
    out.extend(COOKIES.iter().map(|c| base().header("cookie", c)));
    out.extend(KEYS.iter().chain(&[""]).map(|k| base().header("x-user", k)));
    out.extend(PATHS.iter().map(|p| Req::get(p)));
    out.extend(METHODS.iter().map(|m| Req { method: m, ..base() }));
    out.extend(HOSTS.iter().map(|h| Req { host: h.to_string(), ..base() }));
    out
}

/// A request with every field drawn: each header absent or one of its values, names in either case.
fn request() -> impl Strategy<Value = Req> {
    let maybe = |values: Vec<&'static str>| prop::option::weighted(0.6, prop::sample::select(values));
    let cookie = prop_oneof![
        2 => prop::sample::select(COOKIES.to_vec()).prop_map(str::to_string),
        1 => prop::sample::select(KEYS.to_vec()).prop_map(|k| format!("a=1; uid={k}")),
    ];
    (
        (
            prop::sample::select(PATHS.to_vec()),
            prop::sample::select(METHODS.to_vec()),
            prop::sample::select(HOSTS.to_vec()),
        ),
        (maybe(HEADER_VALUES.to_vec()), maybe(HEADER_VALUES.to_vec()), maybe(AGENTS.to_vec())),
        (prop::option::weighted(0.6, cookie), maybe(KEYS.to_vec()), any::<bool>()),
    )
        .prop_map(|((path, method, host), (env, tier, ua), (cookie, user, upper))| {
            let mut r = Req { method, host: host.to_string(), ..Req::get(path) };
            let named = |lower: &str, upper_name: &str| if upper { upper_name.to_string() } else { lower.to_string() };
            for (name, upper_name, value) in [
                ("x-env", "X-Env", env),
                ("x-tier", "X-TIER", tier),
                ("user-agent", "User-Agent", ua),
                ("x-user", "X-User", user),
            ] {
                if let Some(v) = value {
                    r = r.header(&named(name, upper_name), v);
                }
            }
            if let Some(c) = cookie {
                r = r.header(&named("cookie", "Cookie"), &c);
            }
            r
        })
}

// ----- the run -----------------------------------------------------------------------------------------

/// What comparing one case found.
#[derive(Default)]
struct Tally {
    deterministic: usize,
    random: usize,
    failures: String,
}

/// Sends `reqs` to both backends of `case`; a disagreement (or an answer the evaluator cannot give) is written
/// to `tally.failures` with the request and the three answers.
fn compare(case: &Case, reqs: &[Req], tally: &mut Tally) {
    let pair = start_pair(case).unwrap_or_else(|e| panic!("{e:#}"));
    let policy = Policy::new(&case.config).expect("a compiled policy loads");
    let answers = both(&pair, reqs).unwrap_or_else(|e| panic!("{}\n{e:#}", case.describe()));
    let mut bad = Vec::new();
    for (req, (filter, native)) in reqs.iter().zip(&answers) {
        let may = possible(&policy, case, req);
        let fine = if may.len() == 1 {
            tally.deterministic += 1;
            filter == native && may.contains(filter)
        } else {
            tally.random += 1;
            may.contains(filter) && may.contains(native)
        };
        if !fine {
            bad.push(format!("  {req}\n    filter: {filter}   native: {native}   evaluator: {may:?}"));
        }
    }
    if !bad.is_empty() {
        let shown = bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n");
        let _ = writeln!(
            tally.failures,
            "{} of {} requests disagree:\n{shown}\n^^^ {}\n",
            bad.len(),
            reqs.len(),
            case.describe()
        );
    }
}

#[test]
fn generated_policies_decide_alike_natively_and_in_the_filter() {
    let started = Instant::now();
    let seed: u64 = env_or("CANARY_NATIVE_SEED", DEFAULT_SEED);
    let cases: usize = env_or("CANARY_NATIVE_CASES", DEFAULT_CASES);
    let mut runner = runner(seed);
    let (spec, random_requests) = (spec(), prop::collection::vec(request(), RANDOM_REQUESTS));
    let fixed = systematic();
    let mut tally = Tally::default();
    let (mut accepted, mut draws, mut requests) = (0, 0, 0);
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    while accepted < cases {
        draws += 1;
        assert!(draws <= cases * MAX_DRAWS_PER_CASE, "seed {seed}: {draws} draws for {accepted} lowerable policies");
        let spec = draw(&mut runner, &spec);
        let label = format!("generated #{draws} (CANARY_NATIVE_SEED={seed})");
        if let Err(d) = canary_compiler::compile(&spec.source, &label) {
            panic!(
                "{label}: the generator wrote a policy that does not compile:\n{}\n{}",
                spec.source,
                canary_compiler::render(&d, &spec.source, &label, false)
            );
        }
        let labels = [("version", spec.version)];
        let case = match case(&label, &spec.source, spec.service, Some(&labels), spec.default) {
            Ok(case) => case,
            Err(reasons) => {
                // The reason without its line number, so equal reasons count together.
                let reason = reasons.split_once(": ").map_or(reasons.as_str(), |r| r.1).to_string();
                *refusals.entry(reason).or_default() += 1;
                continue;
            }
        };
        accepted += 1;
        let mut reqs = fixed.clone();
        reqs.extend(draw(&mut runner, &random_requests));
        requests += reqs.len();
        let before = tally.failures.len();
        compare(&case, &reqs, &mut tally);
        println!(
            "#{draws:<3} {:<14} version={} default {}: {} routes, {} requests{}",
            case.service,
            spec.version,
            spec.default,
            case.native.routes.iter().map(|r| r.matches.len()).sum::<usize>(),
            reqs.len(),
            if tally.failures.len() > before { "  DISAGREE" } else { "" }
        );
    }
    let refused: usize = refusals.values().sum();
    println!(
        "seed {seed}: {accepted} policies run ({refused} of {draws} drawn refused by the lowering: {refusals:?}), \
         {requests} requests per backend, {} deterministic answers compared, {} drawn at random, {:.1}s",
        tally.deterministic,
        tally.random,
        started.elapsed().as_secs_f64()
    );
    assert!(tally.failures.is_empty(), "seed {seed}: the backends disagree:\n{}", tally.failures);
}
