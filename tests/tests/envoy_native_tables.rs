//! Big tables as matcher trees, in real Envoy 1.40 (`canary_backends::native::tables`): three Envoys per policy
//! — the canary filter, the native routes with tables as matcher trees, the same routes as a plain route list —
//! in front of the same stand-in subsets, and the evaluator. Every deterministic decision must be the same in
//! all four, request by request; a sticky split behind a table key by key (and against the bucket formula).
//!
//! The policies mix tables of 1, 2, 7, 300 and 10,000 entries (exact values of a header, `in` lists, keys
//! repeated across rules, `path` prefixes that shadow one another) with rules that are not tables before,
//! between and after them, and the requests hit every key plus what a lookup could get wrong: the header
//! missing, empty, sent twice (joined with `,` by Envoy's matcher input), a value with a comma, other case,
//! extended paths. Trees are forced from one entry on (`min_entries: 1`) so the small tables are trees too.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::Result;
use canary_backends::native::tables::{Segment, TableKind};
use canary_backends::native::{lower_service, EnvoyVersion, NativeService, TableForm, Target};
use canary_compiler::RuleSpans;
use canary_eval::config::Protocol;
use canary_eval::{sticky_bucket, Policy, BUCKETS};
use canary_tests::mesh::backends::{case, possible, start_envoys, subset, Case, FixedBucket, Req};
use canary_tests::mesh::procs::Procs;
use canary_weather::http::Client;

fn ok<T>(result: Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// Lowers `case`'s service again with `tables` (spans only place refusals, and there are none here).
fn lowered(case: &Case, tables: TableForm) -> NativeService {
    let target = Target { tables, ..Target::envoy(EnvoyVersion::LATEST) };
    lower_service(&case.config, &RuleSpans::default(), &case.service, Protocol::Http, &target)
        .unwrap_or_else(|r| panic!("{r:?}"))
}

const TREES: TableForm = TableForm::Tree { min_entries: 1 };

/// The three Envoys of a case: filter, trees, list.
struct Three {
    addrs: Vec<SocketAddr>,
    _procs: Procs,
}

fn start(case: &Case, tree: &NativeService, list: &NativeService) -> Three {
    assert!(!tree.layout.is_list(), "the tree form must use trees: {:?}", tree.layout.segments);
    assert!(list.layout.is_list());
    let mut procs = ok(Procs::new("tables"));
    let addrs = ok(start_envoys(
        &mut procs,
        case,
        &[("filter", None), ("tree", Some(tree.clone())), ("list", Some(list.clone()))],
    ));
    Three { addrs, _procs: procs }
}

/// Each Envoy's answers, in request order (the three in parallel, one connection each).
fn answers(three: &Three, reqs: &[Req]) -> Vec<[String; 3]> {
    let per: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = three
            .addrs
            .iter()
            .map(|addr| {
                s.spawn(move || {
                    let mut client = Client::new(*addr);
                    reqs.iter().map(|r| ok(subset(&mut client, r))).collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });
    (0..reqs.len()).map(|i| [per[0][i].clone(), per[1][i].clone(), per[2][i].clone()]).collect()
}

/// The evaluator's decision when it does not depend on the draw (checked at both ends of the bucket range),
/// else every answer it may give.
fn evaluator(policy: &Policy, case: &Case, req: &Req) -> BTreeSet<String> {
    let service = policy.service_or_global(&case.service);
    let simple = req.simple(&case.labels);
    let at = |b: u32| {
        let d = policy.decide(service, &simple, &mut FixedBucket(b));
        d.subset.map_or(case.default_subset.clone(), |s| policy.subset_name(s).to_string())
    };
    let (low, high) = (at(0), at(BUCKETS - 1));
    if low == high {
        return BTreeSet::from([low]);
    }
    possible(policy, case, req)
}

/// Sends `reqs` to the three Envoys and checks them against the evaluator; returns how many were deterministic.
fn check(case: &Case, three: &Three, reqs: &[Req]) -> usize {
    let policy = Policy::new(&case.config).expect("a compiled policy loads");
    let started = Instant::now();
    let got = answers(three, reqs);
    let mut failures = String::new();
    let (mut deterministic, mut bad) = (0, 0);
    for (req, [filter, tree, list]) in reqs.iter().zip(&got) {
        let may = evaluator(&policy, case, req);
        let fine = if may.len() == 1 {
            deterministic += 1;
            may.contains(filter) && filter == tree && tree == list
        } else {
            [filter, tree, list].iter().all(|a| may.contains(*a))
        };
        if !fine {
            bad += 1;
            if bad <= 10 {
                let _ = writeln!(failures, "  {req}\n    filter {filter}  tree {tree}  list {list}  evaluator {may:?}");
            }
        }
    }
    println!(
        "{}: {} requests ({deterministic} deterministic), {bad} disagreements, {:.1} s",
        case.label,
        reqs.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(bad == 0, "{bad} disagreements:\n{failures}");
    deterministic
}

fn tenant(i: usize) -> String {
    format!("tenant-{i:05}")
}

/// Tables of 1, 2, 7 entries (with a key repeated across rules), a `path` prefix table with shadowed prefixes
/// and a 300-entry table of `=` and `in` rules, with predicate rules between them and a list after.
fn mixed_policy() -> String {
    let mut p = String::from(
        "service forecast {\n\
         \x20 header x-env = \"a\" -> v3\n\
         \x20 header x-beta = \"1\" and header x-env != \"z\" -> v2\n\
         \x20 header x-one = \"solo\" -> v2\n\
         \x20 header x-env absent and header x-beta = \"2\" -> v3\n\
         \x20 header x-two in [\"p\", \"q\"] -> v3\n\
         \x20 header x-ua ~ \"bot\" or not header x-gamma != \"3\" and header x-delta present -> v3\n\
         \x20 path \"/api\" -> v2\n\
         \x20 path \"/api/v1\" -> v3\n\
         \x20 path \"/b\" -> v3\n\
         \x20 path \"/static/\" -> v2\n\
         \x20 path \"/st\" -> v3\n\
         \x20 path \"/api\" -> v1\n\
         \x20 header x-region in [\"eu-1\", \"eu-2\", \"us-1\"] -> v2\n\
         \x20 header x-region = \"eu-2\" -> v3\n\
         \x20 header x-region in [\"us-2\", \"ap-1\", \"\", \"a,b\"] -> v3\n\
         \x20 header x-env = \"\" -> v2\n",
    );
    for i in 0..300 {
        let subset = if i % 3 == 0 { "v3" } else { "v2" };
        match i % 10 {
            // an `in` list of this key and a later one (which keeps this rule: first match)
            7 => {
                let _ = writeln!(p, "  header x-tenant in [\"{}\", \"{}\"] -> {subset}", tenant(i), tenant(i + 1));
            }
            // the key again: a later rule never decides it
            8 => {
                let _ = writeln!(p, "  header x-tenant = \"{}\" -> v1", tenant(i - 1));
            }
            _ => {
                let _ = writeln!(p, "  header x-tenant = \"{}\" -> {subset}", tenant(i));
            }
        }
    }
    p.push_str("  header x-tenant present and header x-env = \"b\" -> v3\n  default v1\n}\n");
    p
}

fn mixed_requests() -> Vec<Req> {
    let mut reqs = Vec::new();
    // every tenant key, plain, then behind requests the earlier rules take or leave
    for i in 0..301 {
        reqs.push(Req::get("/").header("x-tenant", &tenant(i)));
    }
    for i in (0..300).step_by(37) {
        let t = tenant(i);
        let base = || Req::get("/x").header("x-tenant", &t);
        reqs.extend([
            base().header("x-env", "a"),
            base().header("x-env", "z").header("x-beta", "1"),
            base().header("x-env", "y").header("x-beta", "1"),
            base().header("x-beta", "2"),
            base().header("x-env", "").header("x-beta", "2"),
            base().header("x-one", "solo"),
            base().header("x-one", "Solo"),
            base().header("x-two", "q"),
            base().header("x-ua", "a-bot-1"),
            base().header("x-delta", ""),
            base().header("x-delta", "1").header("x-gamma", "3"),
            base().header("x-delta", "1").header("x-gamma", "4"),
            base().header("x-delta", "1").header("x-gamma", ""),
            base().header("x-env", ""),
            base().header("x-env", "b"),
            base().header("x-region", "us-1"),
            // sent twice: the guard's list form
            base().header("x-tenant", "other"),
            Req::get("/").header("x-tenant", "other").header("x-tenant", &t),
            base().header("x-tenant", &t),
            base().header("x-one", "x").header("x-one", "solo"),
            base().header("x-env", "q").header("x-env", "a"),
            base().header("x-region", "zz").header("x-region", "eu-2"),
        ]);
    }
    // missing, empty, a comma, case, surrounding whitespace
    for value in ["", "a,b", "TENANT-00001", " tenant-00001", "tenant-00001,tenant-00002", "tenant-0000"] {
        reqs.push(Req::get("/").header("x-tenant", value));
        reqs.push(Req::get("/").header("x-tenant", value).header("x-env", "b"));
    }
    reqs.push(Req::get("/"));
    reqs.push(Req::get("/").header("x-env", "b"));
    for region in ["eu-1", "eu-2", "us-1", "us-2", "ap-1", "ap-2", "", "a,b", "a", "EU-1"] {
        reqs.push(Req::get("/").header("x-region", region));
        reqs.push(Req::get("/").header("x-region", region).header("x-tenant", &tenant(4)));
    }
    reqs.push(Req::get("/").header("x-region", "a").header("x-region", "b"));
    for path in [
        "/api",
        "/api/v1",
        "/api/v1/x",
        "/api/v2",
        "/apix",
        "/b",
        "/bx",
        "/static/",
        "/static/a",
        "/static",
        "/st",
        "/stx",
        "/a",
        "/API",
        "/api?x=1",
        "/b?q",
        "/",
    ] {
        reqs.push(Req::get(path));
        reqs.push(Req::get(path).header("x-tenant", &tenant(2)));
        reqs.push(Req::get(path).header("x-two", "p"));
    }
    reqs
}

#[test]
fn mixed_tables_decide_alike_as_trees_lists_filter_and_evaluator() {
    let c = ok(case("mixed-tables", &mixed_policy(), "forecast", None, "v1").map_err(anyhow::Error::msg));
    let tree = lowered(&c, TREES);
    let shape: Vec<(&str, usize)> = tree.layout.segments.iter().map(|s| (s.kind_name(), s.entries())).collect();
    assert_eq!(
        shape,
        vec![
            ("exact-table", 1),
            ("predicates", 1),
            ("exact-table", 1),
            ("predicates", 1),
            ("exact-table", 2),
            ("predicates", 3),
            ("prefix-table", 4),
            ("exact-table", 7),
            ("exact-table", 1),
            ("exact-table", 300),
            ("list", 1),
        ],
        "{:?}",
        tree.layout
    );
    let three = start(&c, &tree, &lowered(&c, TableForm::List));
    let reqs = mixed_requests();
    assert_eq!(check(&c, &three, &reqs), reqs.len(), "no split here: every decision is deterministic");
}

#[test]
fn a_ten_thousand_entry_table_between_other_rules_decides_key_by_key() {
    let mut p = String::from("service forecast {\n  header x-env = \"a\" -> v3\n");
    for i in 0..10_000 {
        let _ = writeln!(p, "  header x-tenant = \"{}\" -> {}", tenant(i), if i % 2 == 0 { "v2" } else { "v3" });
    }
    p.push_str("  header x-env = \"b\" -> v2\n  default v1\n}\n");
    let c = ok(case("tenants-10000", &p, "forecast", None, "v1").map_err(anyhow::Error::msg));
    // The default form (trees from the crossover on) for this one.
    let tree = lowered(&c, TableForm::DEFAULT);
    let tables: Vec<_> = tree.layout.tables().collect();
    assert_eq!((tables.len(), tables[0].entries.len(), tables[0].kind), (1, 10_000, TableKind::Exact));
    assert!(matches!(tree.layout.segments.last(), Some(Segment::List { alternatives: 1, .. })));
    let three = start(&c, &tree, &lowered(&c, TableForm::List));
    let mut reqs: Vec<Req> = (0..10_000).step_by(3).map(|i| Req::get("/").header("x-tenant", &tenant(i))).collect();
    reqs.extend([
        Req::get("/").header("x-tenant", &tenant(9_999)),
        Req::get("/").header("x-tenant", &tenant(10_000)).header("x-env", "b"),
        Req::get("/").header("x-tenant", &tenant(5)).header("x-env", "a"),
        Req::get("/").header("x-tenant", &tenant(5)).header("x-tenant", &tenant(6)),
        Req::get("/").header("x-tenant", "").header("x-env", "b"),
        Req::get("/").header("x-env", "b"),
        Req::get("/"),
    ]);
    check(&c, &three, &reqs);
}

/// The subset `sticky_bucket` gives a key for `30% v2, 20% v3 … default v1`.
fn by_formula(key: &str) -> &'static str {
    match sticky_bucket(key.as_bytes()) {
        b if b < 3000 => "v2",
        b if b < 5000 => "v3",
        _ => "v1",
    }
}

#[test]
fn a_sticky_split_in_a_table_matches_key_by_key_and_the_formula() {
    let mut p = String::from("service forecast {\n");
    for i in 0..50 {
        let _ = writeln!(p, "  header x-tenant = \"{}\" -> v2", tenant(i));
    }
    p.push_str("  header x-tenant in [\"sticky\", \"also-sticky\"]: 30% v2, 20% v3 by header x-user\n");
    p.push_str("  header x-tenant = \"after\" -> v3\n  default v1\n}\n");
    let c = ok(case("sticky-in-table", &p, "forecast", None, "v1").map_err(anyhow::Error::msg));
    let tree = lowered(&c, TableForm::DEFAULT);
    assert_eq!(tree.layout.tables().map(|t| t.entries.len()).collect::<Vec<_>>(), vec![53]);
    let three = start(&c, &tree, &lowered(&c, TableForm::List));
    let keys: Vec<String> = (0..1_200).map(|i| format!("user-{i}")).collect();
    let reqs: Vec<Req> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Req::get("/").header("x-tenant", if i % 2 == 0 { "sticky" } else { "also-sticky" }).header("x-user", k)
        })
        .collect();
    let got = answers(&three, &reqs);
    let mut bad = Vec::new();
    for (key, [filter, tree, list]) in keys.iter().zip(&got) {
        let want = by_formula(key);
        if filter != want || tree != want || list != want {
            bad.push(format!("{key}: formula {want}, filter {filter}, tree {tree}, list {list}"));
        }
    }
    assert!(bad.is_empty(), "{} keys differ:\n{}", bad.len(), bad[..bad.len().min(10)].join("\n"));
    let seen: BTreeSet<&str> = got.iter().map(|a| a[1].as_str()).collect();
    assert_eq!(seen, BTreeSet::from(["v1", "v2", "v3"]), "every arm of the split is reached");
    // and the plain keys, the missing key (a draw per request: any arm), the rule after the split
    let mut others: Vec<Req> = (0..51).map(|i| Req::get("/").header("x-tenant", &tenant(i))).collect();
    others.push(Req::get("/").header("x-tenant", "after"));
    others.push(Req::get("/").header("x-tenant", "sticky"));
    others.push(Req::get("/").header("x-tenant", "sticky").header("x-user", "a").header("x-user", "b"));
    check(&c, &three, &others);
}
