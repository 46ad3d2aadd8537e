//! The Gateway API form in real Envoy 1.40, through Envoy Gateway's translation: for each policy,
//! `canaryc manifest --kind gateway-api --backend native` (the library it calls) writes the HTTPRoute, an oracle
//! of Envoy Gateway v1.9.0 (`canary_tests::envoy_gateway`: its match translation and its precedence sort)
//! turns it into Envoy routes, and one Envoy runs them while another runs the canary filter, both in front of
//! the same stand-in subsets. The same requests go to both: a deterministic decision must be identical in both
//! and the evaluator's; a decision drawn per request must be one the evaluator can make, and a split's shares
//! are checked within 5σ binomial bounds.
//!
//! Policies: the lab's scenarios, hand-written ones around the precedence rules, and a generated corpus
//! (`CANARY_GATEWAY_SEED`, `CANARY_GATEWAY_CASES`) inside what an HTTPRoute can say (header `=`/`in`/literal
//! `~`/`present`, `path`, `method`, `and`/`or`; routes and per-request splits), of which those the lowering
//! accepts are run (the refused ones are counted by reason: mostly the precedence check).
//!
//! Needs `scripts/setup-envoy.sh` and `scripts/build-filter.sh` to have run.

use canary_tests::bootstrap::virtual_host_routes;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};
use canary_backends::manifest::envoy::{cluster_name, envoy_bootstrap, EnvoyOptions};
use canary_backends::manifest::gateway_api::{self, lower, GatewayApiOptions, Implementation, Parent, Ranking};
use canary_eval::Policy;
use canary_tests::envoy_gateway;
use canary_tests::mesh::agents::{ANDROID, CHROME, FIREFOX};
use canary_tests::mesh::backends::{both, case, compile, possible, upstreams, Case, Pair, Req};
use canary_tests::mesh::chain::binomial_bounds;
use canary_tests::mesh::envoy::{find_envoy, find_wasm, free_port, spawn, wait_ready};
use canary_tests::mesh::procs::Procs;
use proptest::prelude::*;
use serde_json::Value;

#[path = "support/seeded.rs"]
mod seeded;
use seeded::{draw, env_or, runner};

const DEFAULT_SEED: u64 = 20_261_207;
const DEFAULT_CASES: usize = 16;
const MAX_DRAWS_PER_CASE: usize = 30;
const RANDOM_REQUESTS: usize = 120;
/// Requests per split check.
const SPLIT_N: usize = 2_000;

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// The HTTPRoute Envoy Gateway would get for `case`'s service, or the refusals.
fn http_route(case: &Case) -> Result<Result<Value, String>> {
    let compiled = compile(&case.source, &case.label);
    let lowered = match lower::lower_service(
        &compiled.config,
        &compiled.spans,
        &case.service,
        case.protocol,
        Ranking::EnvoyGateway,
        Some(&case.default_subset),
    ) {
        Ok(l) => l,
        Err(refusals) => return Ok(Err(refusals.iter().map(|r| r.reason.clone()).collect::<Vec<_>>().join("; "))),
    };
    let opts = GatewayApiOptions {
        namespace: "weather".into(),
        parent: Parent::Gateway { namespace: None, name: "weather-gateway".into() },
        implementation: Implementation::EnvoyGateway,
        ports: vec![(case.service.clone(), 8000)],
        subsets: vec![case.default_subset.clone()],
        hostnames: Vec::new(),
        route_settings: BTreeMap::new(),
    };
    let services = [(case.service.clone(), case.protocol)];
    let native = BTreeMap::from([(case.service.clone(), lowered)]);
    let manifest = gateway_api::gateway_api_manifest(&case.config, &opts, &services, &native, None, &case.label)
        .map_err(anyhow::Error::msg)?;
    let route = canary_yaml::documents(&manifest.yaml)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .into_iter()
        .map(|d| serde_json::to_value(d).expect("JSON"))
        .find(|d| d["kind"] == "HTTPRoute")
        .context("the HTTPRoute")?;
    Ok(Ok(route))
}

/// The filter Envoy and an Envoy running the HTTPRoute as Envoy Gateway translates it; `Err(reason)` when the
/// lowering refuses the policy.
fn start_gateway_pair(case: &Case) -> Result<Result<Pair, String>> {
    let route = match http_route(case)? {
        Ok(route) => route,
        Err(reason) => return Ok(Err(reason)),
    };
    let (envoy, wasm) = (find_envoy()?, find_wasm()?);
    let options = |native: bool| -> Result<EnvoyOptions> {
        let mut o = EnvoyOptions::new(&case.service, free_port()?, free_port()?, &wasm);
        o.clusters = upstreams().http.clone();
        o.default_subset = Some(case.default_subset.clone());
        o.protocol = Some(case.protocol);
        o.native = native.then(|| case.native.clone());
        Ok(o)
    };
    let (filter, gateway) = (options(false)?, options(true)?);
    // backendRef `SERVICE-SUBSET` → the subset's cluster.
    let prefix = format!("{}-", case.service);
    let cluster =
        |backend: &str| cluster_name(&case.config, &case.service, backend.strip_prefix(&prefix).unwrap_or(backend));
    let routes = envoy_gateway::http_routes(&route["spec"], &cluster)?;
    let yaml = envoy_bootstrap(&case.config, &gateway).map_err(anyhow::Error::msg)?;
    let mut bootstrap: Value =
        serde_json::to_value(canary_yaml::from_str::<canary_yaml::Value>(&yaml).map_err(|e| anyhow::anyhow!("{e}"))?)?;
    *virtual_host_routes(&mut bootstrap).context("the bootstrap's route table")? = Value::Array(routes);
    let mut procs = Procs::new("gateway-api")?;
    spawn(&mut procs, &envoy, "filter", &envoy_bootstrap(&case.config, &filter).map_err(anyhow::Error::msg)?)?;
    spawn(&mut procs, &envoy, "gateway", &serde_json::to_string(&bootstrap)?)?;
    for (name, admin) in [("filter", filter.admin), ("gateway", gateway.admin)] {
        wait_ready(&mut procs, name, admin).with_context(|| case.describe())?;
    }
    Ok(Ok(Pair { filter: filter.listen, native: gateway.listen, _procs: procs }))
}

#[derive(Default)]
struct Tally {
    deterministic: usize,
    random: usize,
    failures: String,
}

/// Sends `reqs` to both Envoys; disagreements go to `tally.failures`.
fn compare(case: &Case, pair: &Pair, reqs: &[Req], tally: &mut Tally) {
    let policy = Policy::new(&case.config).expect("a compiled policy loads");
    let answers = ok(both(pair, reqs));
    let mut bad = Vec::new();
    for (req, (filter, gateway)) in reqs.iter().zip(&answers) {
        let may = possible(&policy, case, req);
        let fine = if may.len() == 1 {
            tally.deterministic += 1;
            filter == gateway && may.contains(filter)
        } else {
            tally.random += 1;
            may.contains(filter) && may.contains(gateway)
        };
        if !fine {
            bad.push(format!("  {req}\n    filter: {filter}   gateway: {gateway}   evaluator: {may:?}"));
        }
    }
    if !bad.is_empty() {
        let shown = bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n");
        let _ =
            writeln!(tally.failures, "{} of {} disagree:\n{shown}\n^^^ {}\n", bad.len(), reqs.len(), case.describe());
    }
}

// ----- requests --------------------------------------------------------------------------------------------

const HEADERS: [&str; 2] = ["x-env", "x-tier"];
const VALUES: [&str; 5] = ["a", "ab", "b", "A", ""];
const HEADER_VALUES: [&str; 10] = ["", "a", "ab", "b", "A", "AB", "ba", "xab", "abc", "a "];
const AGENTS: [&str; 6] = [CHROME, FIREFOX, ANDROID, "", "Chrome", "xAndroidx"];
const PATHS: [&str; 10] = ["/", "/api", "/api/x", "/apix", "/a", "/API", "/b/api", "/api?q=1", "/?x=/api", "//api"];
const METHODS: [&str; 3] = ["GET", "POST", "PUT"];

fn base() -> Req {
    Req::get("/")
}

fn systematic() -> Vec<Req> {
    let mut out = vec![base()];
    for name in HEADERS {
        out.extend(HEADER_VALUES.iter().map(|v| base().header(name, v)));
    }
    out.extend(AGENTS.iter().map(|ua| base().header("user-agent", ua)));
    out.extend(PATHS.iter().map(|p| Req::get(p)));
    out.extend(METHODS.iter().map(|m| Req { method: m, ..base() }));
    out
}

fn request() -> impl Strategy<Value = Req> {
    let maybe = |values: Vec<&'static str>| prop::option::weighted(0.6, prop::sample::select(values));
    (
        (prop::sample::select(PATHS.to_vec()), prop::sample::select(METHODS.to_vec())),
        (maybe(HEADER_VALUES.to_vec()), maybe(HEADER_VALUES.to_vec()), maybe(AGENTS.to_vec())),
        any::<bool>(),
    )
        .prop_map(|((path, method), (env, tier, ua), upper)| {
            let mut r = Req { method, ..Req::get(path) };
            for (name, upper_name, value) in
                [("x-env", "X-Env", env), ("x-tier", "X-TIER", tier), ("user-agent", "User-Agent", ua)]
            {
                if let Some(v) = value {
                    r = r.header(if upper { upper_name } else { name }, v);
                }
            }
            r
        })
}

// ----- generated policies ----------------------------------------------------------------------------------

fn atom() -> impl Strategy<Value = String> {
    let name = || prop::sample::select(HEADERS.to_vec());
    let value = || prop::sample::select(VALUES.to_vec());
    prop_oneof![
        4 => (name(), value()).prop_map(|(n, v)| format!("header {n} = \"{v}\"")),
        1 => (name(), value(), value()).prop_map(|(n, a, b)| format!("header {n} in [\"{a}\", \"{b}\"]")),
        2 => prop::sample::select(vec![
            "header user-agent ~ \"Chrome\"",
            "header user-agent ~ \"Android|Firefox\"",
            "header x-env ~ \"b\"",
            "header x-tier ~ \"a|ba\"",
        ])
        .prop_map(str::to_string),
        1 => name().prop_map(|n| format!("header {n} present")),
        2 => prop::sample::select(vec!["/api", "/", "/a", "/api/"]).prop_map(|p| format!("path \"{p}\"")),
        2 => prop::sample::select(vec!["GET", "POST"]).prop_map(|m| format!("method {m}")),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    atom().prop_recursive(2, 4, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a} or {b})")),
        ]
    })
}

fn statement() -> impl Strategy<Value = String> {
    let subset = || prop::sample::select(vec!["v1", "v2", "v3"]);
    let share = || prop::sample::select(vec![10u32, 25, 30, 50]);
    prop_oneof![
        5 => (condition(), subset()).prop_map(|(c, s)| format!("{c} -> {s}")),
        2 => (condition(), share(), subset()).prop_map(|(c, p, s)| format!("{c}: {p}% {s}")),
    ]
}

/// (policy text, the proxy's default subset).
fn policy() -> impl Strategy<Value = (String, &'static str)> {
    (
        prop::collection::vec(statement(), 0..2),
        prop::collection::vec(statement(), 1..4),
        prop::option::of(prop::sample::select(vec!["v1", "v2"])),
        prop::sample::select(vec!["v1", "v3"]),
    )
        .prop_map(|(top, own, default, proxy_default)| {
            let mut s = String::from("# generated\n");
            for stmt in top {
                let _ = writeln!(s, "{stmt}");
            }
            s += "service forecast {\n";
            for stmt in own {
                let _ = writeln!(s, "  {stmt}");
            }
            if let Some(d) = default {
                let _ = writeln!(s, "  default {d}");
            }
            s += "}\n";
            (s, proxy_default)
        })
}

// ----- the tests -------------------------------------------------------------------------------------------

/// Hand-written policies that have a Gateway API form for Envoy Gateway, around its precedence: a later rule
/// with more headers but disjoint values, the same action, a method counted as a header, regex paths.
const POLICIES: &[(&str, &str)] = &[
    ("s3", "service forecast {\n  header user-agent ~ \"Chrome\" -> v2\n  default v1\n}\n"),
    ("s2-50", "service forecast {\n  50% v2\n  default v1\n}\n"),
    (
        "disjoint",
        "service forecast {\n  header x-env = \"a\" -> v2\n  header x-env = \"b\" and header x-tier = \"a\" -> v3\n  \
         header x-env in [\"ab\", \"b\"] -> v2\n  default v1\n}\n",
    ),
    (
        "paths",
        "service forecast {\n  path \"/api/\" and method POST -> v3\n  path \"/api\" -> v2\n  header x-env present -> v3\n  \
         default v1\n}\n",
    ),
    (
        "method-as-header",
        "service forecast {\n  header x-env = \"a\" and header x-tier = \"b\" -> v2\n  method GET -> v3\n  default v1\n}\n",
    ),
    ("no-default", "service forecast {\n  path \"/a\": 30% v3\n  header x-tier ~ \"b\" -> v2\n}\n"),
];

#[test]
fn gateway_api_routes_decide_like_the_filter_in_real_envoy() {
    let started = Instant::now();
    let seed: u64 = env_or("CANARY_GATEWAY_SEED", DEFAULT_SEED);
    let cases: usize = env_or("CANARY_GATEWAY_CASES", DEFAULT_CASES);
    let mut runner = runner(seed);
    let (policy_strategy, random_requests) = (policy(), prop::collection::vec(request(), RANDOM_REQUESTS));
    let fixed = systematic();
    let mut tally = Tally::default();
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    let mut run_case = |case: &Case, reqs: &[Req], tally: &mut Tally| -> bool {
        match ok(start_gateway_pair(case)) {
            Ok(pair) => {
                compare(case, &pair, reqs, tally);
                true
            }
            Err(reason) => {
                let short: String = reason.chars().take(60).collect();
                *refusals.entry(short).or_default() += 1;
                false
            }
        }
    };
    for (name, source) in POLICIES {
        let case = case(name, source, "forecast", None, "v1").expect("the hand-written policies lower for Envoy");
        assert!(run_case(&case, &fixed, &mut tally), "{name} must have a Gateway API form");
    }
    let (mut accepted, mut draws) = (0, 0);
    while accepted < cases {
        draws += 1;
        assert!(draws <= cases * MAX_DRAWS_PER_CASE, "seed {seed}: {draws} draws for {accepted} accepted policies");
        let (source, default) = draw(&mut runner, &policy_strategy);
        let label = format!("generated #{draws} (CANARY_GATEWAY_SEED={seed})");
        let case = match case(&label, &source, "forecast", None, default) {
            Ok(case) => case,
            Err(reason) => panic!("{label}: every generated form lowers for Envoy: {reason}\n{source}"),
        };
        let mut reqs = fixed.clone();
        reqs.extend(draw(&mut runner, &random_requests));
        if run_case(&case, &reqs, &mut tally) {
            accepted += 1;
        }
    }
    println!(
        "seed {seed}: {} hand-written + {accepted} generated policies run ({draws} drawn; refused by the lowering: \
         {refusals:?}), {} deterministic answers compared, {} drawn at random, {:.1}s",
        POLICIES.len(),
        tally.deterministic,
        tally.random,
        started.elapsed().as_secs_f64()
    );
    assert!(tally.deterministic > 1_000, "too few deterministic answers compared");
    assert!(tally.failures.is_empty(), "seed {seed}: the Gateway API form disagrees:\n{}", tally.failures);
}

/// The weighted backendRefs split as the policy says: `path "/a": 30% v3` (remainder to v1) draws v3 for
/// 30% of SPLIT_N requests within 5σ, in the Gateway Envoy and in the filter.
#[test]
fn a_split_keeps_its_shares_within_five_sigma() {
    let source = "service forecast {\n  path \"/a\": 30% v3\n  default v1\n}\n";
    let case = case("split", source, "forecast", None, "v1").expect("lowers");
    let pair = ok(start_gateway_pair(&case)).expect("a Gateway API form");
    let reqs: Vec<Req> = (0..SPLIT_N).map(|_| Req::get("/a/x")).collect();
    let answers = ok(both(&pair, &reqs));
    let (lo, hi) = binomial_bounds(SPLIT_N, 0.3, 5.0);
    for (who, pick) in [("filter", 0), ("gateway", 1)] {
        let v3 = answers.iter().filter(|a| if pick == 0 { a.0 == "v3" } else { a.1 == "v3" }).count();
        let others = answers.iter().filter(|a| {
            let s = if pick == 0 { &a.0 } else { &a.1 };
            s != "v3" && s != "v1"
        });
        assert_eq!(others.count(), 0, "{who}: only v1 and v3");
        assert!((lo..=hi).contains(&v3), "{who}: {v3} of {SPLIT_N} to v3, expected {lo}..={hi} (30% within 5σ)");
    }
}

/// The precedence check is what keeps the routes exact: the policy it refuses, written out anyway in policy
/// order, decides differently in Envoy once Envoy Gateway's sort has reordered it.
#[test]
fn a_reordering_the_check_refuses_would_change_decisions() {
    let source =
        "service forecast {\n  header x-env = \"a\" -> v2\n  header x-env = \"a\" and header x-tier = \"b\" -> v3\n  \
                  default v1\n}\n";
    let case = case("reordered", source, "forecast", None, "v1").expect("lowers for Envoy");
    let refused = ok(http_route(&case)).expect_err("the lowering refuses it");
    assert!(refused.contains("line 2"), "{refused}");
    // The same rules as an HTTPRoute, in the policy's order.
    let spec = serde_json::json!({ "rules": [
        { "matches": [{ "headers": [{ "type": "Exact", "name": "x-env", "value": "a" }] }],
          "backendRefs": [{ "name": "forecast-v2", "port": 8000 }] },
        { "matches": [{ "headers": [{ "type": "Exact", "name": "x-env", "value": "a" },
                                     { "type": "Exact", "name": "x-tier", "value": "b" }] }],
          "backendRefs": [{ "name": "forecast-v3", "port": 8000 }] },
        { "backendRefs": [{ "name": "forecast-v1", "port": 8000 }] }
    ]});
    let routes = ok(envoy_gateway::http_routes(&spec, &|b| b.to_string()));
    assert_eq!(routes[0]["route"]["cluster"], "forecast-v3", "Envoy Gateway tries the two-header match first");
    let policy = Policy::new(&case.config).unwrap();
    let req = base().header("x-env", "a").header("x-tier", "b");
    assert_eq!(possible(&policy, &case, &req).into_iter().collect::<Vec<_>>(), ["v2"], "the policy says v2");
}
