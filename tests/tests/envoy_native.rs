//! The native backend against the filter, in real Envoy 1.40: for each policy, one Envoy runs the canary filter
//! and one runs the policy lowered to Envoy's own routes (`canary_compiler::native`), both in front of the same
//! stand-in subsets v1, v2, v3 (each answers with its version). The same requests go to both and the subsets
//! that answered must agree — request by request for deterministic decisions, key by key for sticky splits
//! (and against `canary_eval::sticky_bucket`), within 5σ binomial bounds for splits drawn per request.
//!
//! Needs `scripts/setup-envoy.sh` and `scripts/build-filter.sh` to have run. The known divergence (a header
//! sent twice, README "Backends": the filter reads the first value, Envoy all of them) is pinned where it
//! shows: a header matcher, and a sticky split keyed on a header. The pair of Envoys, the raw requests and the
//! evaluator's view are `canary_tests::mesh::backends` (shared with `envoy_native_generated.rs`).

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;
use canary_eval::config::Protocol;
use canary_eval::{sticky_bucket, Policy};
use canary_tests::mesh::agents::{ANDROID, CHROME, FIREFOX};
use canary_tests::mesh::backends::{both, case, compile, possible, start_pair, Case, Req};
use canary_tests::mesh::chain::{binomial_bounds, tally};
use canary_tests::mesh::envoy::workspace_root;
use canary_tests::mesh::load::tcp_many;
use canary_tests::mesh::policy::example_files;

const IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) \
                      Version/17.4 Mobile/15E148 Safari/604.1";
/// The service a proxy serves when an example declares none of its own (it gets the top-level rules).
const UNDECLARED: &str = "recommendation";
/// Draws per backend for a split decided per request or connection.
const SPLIT_N: usize = 2_000;
const TCP_N: usize = 400;
/// Distinct sticky keys compared key by key.
const STICKY_KEYS: usize = 1_200;

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

// ----- the deterministic corpus -----------------------------------------------------------------------

fn corpus() -> Vec<Req> {
    let agents: [Option<&str>; 6] = [Some(CHROME), Some(FIREFOX), Some(ANDROID), Some(IPHONE), None, Some("")];
    let cookies: [Option<&str>; 7] = [
        None,
        Some("user=tester"),
        Some("a=1; user=tester"),
        // The value is taken verbatim up to `;`: `tester ` is not `tester`.
        Some("user=tester ; x=1"),
        Some("user=\"tester\""),
        Some("user=other; user=tester"),
        Some(" user=tester"),
    ];
    let custom: [&[(&str, &str)]; 8] = [
        &[],
        &[("x-env", "")],
        &[("x-env", "a")],
        &[("x-env", "b")],
        &[("x-env", "z")],
        &[("x-env", "A")],
        &[("x-env", "b"), ("x-beta", "1")],
        &[("x-beta", "")],
    ];
    let paths = ["/", "/api/x", "/apix?q=1"];
    let methods = ["GET", "POST"];
    let hosts = ["forecast", "FORECAST:8080", "other"];
    let mut out = Vec::new();
    let mut add = |ua: Option<&str>, cookie: Option<&str>, custom: &[(&str, &str)], i: usize| {
        let mut r = Req::get(paths[i % 3]);
        r.method = methods[(i / 3) % 2];
        r.host = hosts[(i / 6) % 3].into();
        if let Some(ua) = ua {
            r = r.header("user-agent", ua);
        }
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        for (k, v) in custom {
            r = r.header(k, v);
        }
        out.push(r);
    };
    // Every user-agent × cookie × custom header, each with one of the 18 path/method/host combinations in turn.
    let mut i = 0;
    for ua in agents {
        for cookie in cookies {
            for c in custom {
                add(ua, cookie, c, i);
                i += 1;
            }
        }
    }
    // Every path/method/host combination with a few of the others.
    for i in 0..18 {
        for ua in [None, Some(ANDROID)] {
            for cookie in [None, Some("user=tester")] {
                for c in [&custom[0], &custom[4]] {
                    add(ua, cookie, c, i);
                }
            }
        }
    }
    out
}

/// Hand-written policies: (name, source, proxy default subset). Each is run for `forecast` and, when it has
/// top-level rules, for an undeclared service too.
const POLICIES: &[(&str, &str, &str)] = &[
    (
        "headers",
        "service forecast {\n  header x-env = \"a\" -> v2\n  header x-env != \"b\" and header x-beta present -> v3\n  \
         header x-env in [\"z\", \"\"] -> v3\n  header x-beta absent and header x-env present -> v2\n  \
         not header x-env present -> v3\n  default v1\n}\n",
        "v1",
    ),
    (
        "user-agents",
        "service forecast {\n  header user-agent ~ \"Android|Silk/\" -> v2\n  not header user-agent ~ \"iPhone\" and \
         not header user-agent = \"\" -> v3\n  header user-agent ~ \"Chrome\" -> v2\n  default v1\n}\n",
        "v1",
    ),
    (
        "user-agent-absent",
        "service forecast {\n  not header user-agent ~ \"iPhone\" -> v3\n  header user-agent absent -> v2\n  default v1\n}\n",
        "v1",
    ),
    (
        "cookies",
        "service forecast {\n  cookie user=tester and header x-env = \"a\" -> v3\n  cookie user=tester -> v2\n  \
         not cookie user=tester and method POST -> v3\n  default v1\n}\n",
        "v1",
    ),
    (
        "not-cookie",
        "service forecast {\n  not cookie user=tester -> v2\n  cookie user=other -> v3\n}\n",
        "v1",
    ),
    (
        "path-method-host",
        "service forecast {\n  path \"/api\" and method POST -> v3\n  path \"/api\" -> v2\n  host \"forecast\" -> v3\n  \
         method POST -> v2\n  default v1\n}\n",
        "v1",
    ),
    (
        "conditional-split",
        "service forecast {\n  header x-env = \"z\": 30% v2, 20% v3\n  cookie user=tester -> v2\n  default v1\n}\n",
        "v1",
    ),
    (
        "top-level-and-service",
        "cookie user=tester -> v3\nheader x-env = \"z\" -> v1\nservice forecast {\n  header x-env = \"a\" -> v2\n  \
         default v1\n}\ndefault v2\n",
        "v1",
    ),
    ("no-default", "service forecast {\n  header x-env = \"a\" -> v2\n  header x-env = \"b\" -> v1\n  30% v2\n}\n", "v3"),
];

/// Policies with no exact native form: (name, source, the word the refusal must name). They are not run.
const REFUSED: &[(&str, &str, &str)] = &[
    ("query", "service forecast {\n  query q=beta -> v2\n  default v1\n}\n", "`query`"),
    ("chrome-family", "service forecast {\n  chrome: 50% v2\n  default v1\n}\n", "regex"),
    ("unspecialised-source", "service forecast {\n  source version=v2 -> v2\n  default v1\n}\n", "`source`"),
];

/// Every HTTP case: the examples' HTTP services and an undeclared one (`source` ones for version=v1 and v2),
/// then the hand-written policies. Returns the cases and the refusals `(example, service, reasons)`.
fn cases() -> (Vec<Case>, Vec<(String, String, String)>) {
    let examples = ok(example_files());
    let mut sources: Vec<(String, String, &str)> = examples
        .iter()
        .map(|p| {
            let name = p.file_stem().expect("a file name").to_string_lossy().into_owned();
            (name, std::fs::read_to_string(p).expect("readable example"), "v1")
        })
        .collect();
    sources.extend(POLICIES.iter().map(|(n, s, d)| (n.to_string(), s.to_string(), *d)));
    let (mut out, mut refused) = (Vec::new(), Vec::new());
    for (name, source, default) in &sources {
        let config = compile(source, name).config;
        let mut services: Vec<String> =
            config.services.iter().filter(|s| s.protocol == Protocol::Http).map(|s| s.name.clone()).collect();
        if !config.global.rules.is_empty() || config.global.default.is_some() || services.is_empty() {
            services.push(UNDECLARED.to_string());
        }
        for service in services {
            match case(name, source, &service, None, default) {
                Ok(c) => out.push(c),
                // `source` conditions: one proxy per caller version, each specialised by its labels.
                Err(reasons) if reasons.contains("`source`") => {
                    for version in ["v1", "v2"] {
                        match case(name, source, &service, Some(&[("version", version)]), default) {
                            Ok(c) => out.push(c),
                            Err(reasons) => refused.push((name.clone(), service.clone(), reasons)),
                        }
                    }
                }
                Err(reasons) => refused.push((name.clone(), service.clone(), reasons)),
            }
        }
    }
    (out, refused)
}

#[test]
fn every_policy_decides_alike_natively_and_in_the_filter() {
    let started = Instant::now();
    let (cases, refused) = cases();
    // Every example service lowers (their families `android` etc. are literal alternatives); a refusal is a
    // regression of the lowering.
    assert!(refused.is_empty(), "refused: {refused:#?}");
    for (name, source, word) in REFUSED {
        let reasons = case(name, source, "forecast", None, "v1").err();
        println!("refused as expected: {name}: {reasons:?}");
        assert!(reasons.as_ref().is_some_and(|r| r.contains(word)), "{name}: expected a refusal naming {word}");
    }

    let reqs = corpus();
    let mut failures = String::new();
    let (mut compared, mut random) = (0, 0);
    for case in &cases {
        let pair = ok(start_pair(case));
        let policy = Policy::new(&case.config).expect("a compiled policy loads");
        let answers = ok(both(&pair, &reqs));
        let mut bad = 0;
        let seen = tally(answers.iter().map(|a| a.0.as_str()));
        for (req, (filter, native)) in reqs.iter().zip(&answers) {
            let may = possible(&policy, case, req);
            let fine = if may.len() == 1 {
                compared += 1;
                filter == native && may.contains(filter)
            } else {
                random += 1;
                may.contains(filter) && may.contains(native)
            };
            if !fine {
                bad += 1;
                if bad <= 10 {
                    let _ =
                        writeln!(failures, "  {req}\n    filter: {filter}   native: {native}   evaluator: {may:?}",);
                }
            }
        }
        println!(
            "{:>24} / {:<15} {:?}: {} requests, {bad} disagreements, filter answered {seen:?}",
            case.label,
            case.service,
            case.labels,
            reqs.len(),
        );
        if bad > 0 {
            let _ = writeln!(failures, "^^^ {bad} disagreements for {}\n", case.describe());
        }
    }
    println!(
        "{} cases, {compared} deterministic answers compared, {random} drawn at random, {:.1}s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "the backends disagree:\n{failures}");
}

// ----- sticky splits ----------------------------------------------------------------------------------

/// The subset `sticky_bucket` gives a key for `30% v2, 20% v3 … default v1`.
fn by_formula(key: &str) -> &'static str {
    match sticky_bucket(key.as_bytes()) {
        b if b < 3000 => "v2",
        b if b < 5000 => "v3",
        _ => "v1",
    }
}

fn assert_shares(answers: &[String], shares: &[(&str, f64)], what: &str) {
    let seen = tally(answers.iter().map(String::as_str));
    let n = answers.len();
    let known: usize = shares.iter().map(|(s, _)| seen.get(s).copied().unwrap_or(0)).sum();
    assert_eq!(known, n, "{what}: unexpected answers {seen:?}");
    for (subset, p) in shares {
        let count = seen.get(subset).copied().unwrap_or(0);
        let (lo, hi) = binomial_bounds(n, *p, 5.0);
        assert!((lo..=hi).contains(&count), "{what}: {subset} {count} of {n}, expected {lo}..={hi} (p={p}); {seen:?}");
    }
}

fn sticky(key_kind: &str, request: impl Fn(&str) -> Req, empty: Req) {
    let source = format!("service forecast {{\n  30% v2, 20% v3 by {key_kind}\n  default v1\n}}\n");
    let case = case(&format!("sticky by {key_kind}"), &source, "forecast", None, "v1").expect("lowers natively");
    let pair = ok(start_pair(&case));
    // Keys of several shapes: short, numeric, UUID-like, with punctuation.
    let keys: Vec<String> = (0..STICKY_KEYS)
        .map(|i| match i % 4 {
            0 => format!("{i}"),
            1 => format!("user-{i}"),
            2 => format!("{:08x}-{:04x}-4a1b-9c2d-{:012x}", i * 7919, i % 65_536, i * 104_729),
            _ => format!("u{i}.x_{}", i * i),
        })
        .collect();
    let reqs: Vec<Req> = keys.iter().map(|k| request(k)).collect();
    let answers = ok(both(&pair, &reqs));
    let mut bad = Vec::new();
    for ((key, req), (filter, native)) in keys.iter().zip(&reqs).zip(&answers) {
        let formula = by_formula(key);
        if filter != native || filter != formula {
            bad.push(format!("  {req}: filter {filter}, native {native}, sticky_bucket {formula}"));
        }
    }
    assert!(bad.is_empty(), "{}\n{} of {} keys disagree:\n{}", case.describe(), bad.len(), keys.len(), bad.join("\n"));
    let formula: Vec<String> = keys.iter().map(|k| by_formula(k).to_string()).collect();
    println!("sticky by {key_kind}: {} keys agree, {:?}", keys.len(), tally(formula.iter()));

    // No key: both backends draw per request.
    let empties = vec![empty; SPLIT_N];
    let answers = ok(both(&pair, &empties));
    let shares = [("v2", 0.3), ("v3", 0.2), ("v1", 0.5)];
    let (filter, native): (Vec<String>, Vec<String>) = answers.into_iter().unzip();
    assert_shares(&filter, &shares, &format!("filter, {}", empties[0]));
    assert_shares(&native, &shares, &format!("native, {}", empties[0]));
}

#[test]
fn sticky_cookie_split_matches_key_by_key_and_the_formula() {
    sticky(
        "cookie uid",
        |k| Req::get("/").header("cookie", &format!("a=1; uid={k}; b=2")),
        Req::get("/").header("cookie", "uid="),
    );
}

#[test]
fn sticky_header_split_matches_key_by_key_and_the_formula() {
    sticky("header x-user-id", |k| Req::get("/").header("x-user-id", k), Req::get("/"));
}

// ----- splits drawn per request or per connection -----------------------------------------------------

#[test]
fn per_request_splits_keep_their_shares() {
    let cases = [
        ("service forecast {\n  30% v2, 20% v3\n  default v1\n}\n", vec![("v2", 0.3), ("v3", 0.2), ("v1", 0.5)]),
        // No default: the remainder is the proxy's own default route.
        ("service forecast {\n  30% v2\n}\n", vec![("v2", 0.3), ("v3", 0.7)]),
    ];
    for (source, shares) in cases {
        let case = case("split", source, "forecast", None, "v3").expect("lowers natively");
        let pair = ok(start_pair(&case));
        let answers = ok(both(&pair, &vec![Req::get("/"); SPLIT_N]));
        let (filter, native): (Vec<String>, Vec<String>) = answers.into_iter().unzip();
        println!("{}: filter {:?}, native {:?}", source.trim(), tally(filter.iter()), tally(native.iter()));
        assert_shares(&filter, &shares, &format!("filter, {}", case.describe()));
        assert_shares(&native, &shares, &format!("native, {}", case.describe()));
    }
}

#[test]
fn tcp_split_keeps_its_share_natively() {
    let source = std::fs::read_to_string(workspace_root().join("examples/s6-tcp-split.canary")).expect("S6");
    let case = case("s6-tcp-split", &source, "tcp-echo", None, "v1").expect("lowers natively");
    assert_eq!(case.protocol, Protocol::Tcp);
    let pair = ok(start_pair(&case));
    for (backend, addr) in [("filter", pair.filter), ("native", pair.native)] {
        let answers = ok(tcp_many(addr, TCP_N));
        let subsets: Vec<String> = answers
            .iter()
            .map(|a| match a.split(' ').next() {
                Some("one") => "v1".to_string(),
                Some("two") => "v2".to_string(),
                _ => a.clone(),
            })
            .collect();
        println!("tcp-echo via {backend}: {:?}", tally(subsets.iter()));
        assert_shares(&subsets, &[("v1", 0.8), ("v2", 0.2)], &format!("{backend}, {}", case.describe()));
    }
}

// ----- the documented divergence ----------------------------------------------------------------------

/// README "Backends": a header sent twice. The filter reads the first value only (proxy-wasm hands it one
/// value); Envoy 1.40's native header matcher matches if any value does. So `x-env: a` + `x-env: z` is the
/// default in the filter and v2 natively. This test pins the divergence so a change on either side shows.
#[test]
fn a_repeated_header_is_the_documented_divergence() {
    let source = "service forecast {\n  header x-env = \"z\" -> v2\n  default v1\n}\n";
    let case = case("repeated", source, "forecast", None, "v1").expect("lowers natively");
    let pair = ok(start_pair(&case));
    let reqs = [
        Req::get("/").header("x-env", "a").header("x-env", "z"),
        Req::get("/").header("x-env", "z").header("x-env", "a"),
        Req::get("/").header("x-env", "z"),
    ];
    let answers = ok(both(&pair, &reqs));
    for (req, (filter, native)) in reqs.iter().zip(&answers) {
        println!("{req}: filter {filter}, native {native}");
    }
    assert_eq!(answers[0], ("v1".to_string(), "v2".to_string()), "{}: {}", case.describe(), reqs[0]);
    assert_eq!(answers[1], ("v2".to_string(), "v2".to_string()), "{}: {}", case.describe(), reqs[1]);
    assert_eq!(answers[2], ("v2".to_string(), "v2".to_string()), "{}: {}", case.describe(), reqs[2]);
}

/// Sticky keys at the edges, each sent 200 times (a decision drawn at random would show as several subsets).
/// Agreements: an empty header value hashes as `""`; the first of two `uid` cookies counts, in one header or
/// two; quotes around a cookie value are removed. Divergence (the repeated-header one of README "Backends"):
/// with `x-user-id` sent twice, the filter hashes the first value, Envoy's hash policy all values (sorted and
/// chained), so the two answer differently. Pinned with keys where that shows.
#[test]
fn sticky_key_edge_cases() {
    // Keys that land in different subsets, so taking the wrong one would show.
    let keys: Vec<String> = (0..100).map(|i| format!("k{i}")).collect();
    let (first, second) = keys
        .iter()
        .flat_map(|a| keys.iter().map(move |b| (a, b)))
        .find(|(a, b)| by_formula(a) != by_formula(b) && by_formula(a) != by_formula(&format!("\"{a}\"")))
        .expect("keys in different subsets");
    let header = |values: &[&str]| values.iter().fold(Req::get("/"), |r, v| r.header("x-user-id", v));
    let (f, s) = (first.as_str(), second.as_str());
    type Edge = (&'static str, Req, (&'static str, &'static str));
    let edges: Vec<Edge> = vec![
        ("header x-user-id", header(&[""]), (by_formula(""), by_formula(""))),
        ("header x-user-id", header(&["b", "a"]), ("v2", "v1")),
        ("header x-user-id", header(&["a", "b"]), ("v2", "v1")),
        ("cookie uid", Req::get("/").header("cookie", &format!("uid={f}; uid={s}")), (by_formula(f), by_formula(f))),
        (
            "cookie uid",
            Req::get("/").header("cookie", &format!("uid={f}")).header("cookie", &format!("uid={s}")),
            (by_formula(f), by_formula(f)),
        ),
        ("cookie uid", Req::get("/").header("cookie", &format!("uid=\"{f}\"")), (by_formula(f), by_formula(f))),
    ];
    // The pinned divergence needs keys the formula puts in one subset, so the native v1 is not a first-value hash.
    assert_eq!((by_formula("a"), by_formula("b")), ("v2", "v2"));
    for kind in ["header x-user-id", "cookie uid"] {
        let source = format!("service forecast {{\n  30% v2, 20% v3 by {kind}\n  default v1\n}}\n");
        let case = case(&format!("sticky by {kind}"), &source, "forecast", None, "v1").expect("lowers natively");
        let pair = ok(start_pair(&case));
        for (_, req, (want_filter, want_native)) in edges.iter().filter(|e| e.0 == kind) {
            let (filter, native): (Vec<String>, Vec<String>) =
                ok(both(&pair, &vec![req.clone(); 200])).into_iter().unzip();
            let (filter, native) = (tally(filter.iter().map(String::as_str)), tally(native.iter().map(String::as_str)));
            println!("{req}: filter {filter:?}, native {native:?}");
            let only =
                |seen: &std::collections::BTreeMap<&str, usize>, want: &str| seen.len() == 1 && seen.contains_key(want);
            assert!(
                only(&filter, want_filter) && only(&native, want_native),
                "{}\n{req}: filter {filter:?} (want {want_filter}), native {native:?} (want {want_native})",
                case.describe()
            );
        }
    }
}
