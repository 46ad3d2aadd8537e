//! `Policy::explain` is `decide` with a record: the same decision and draws, every rule tried in order, the
//! values the tests saw, and a split's bucket.

// Test helpers may unwrap, index and panic too (clippy.toml allows it only inside `#[test]` functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use canary_eval::explain::{Node, SplitTrace};
use canary_eval::{sticky_bucket, Policy, SimpleRequest, SubsetId};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn policy(json: serde_json::Value) -> Policy {
    Policy::from_json(json.to_string().as_bytes()).expect("valid config")
}

fn rules(rules: serde_json::Value) -> Policy {
    policy(serde_json::json!({"version": 1, "services": [{"name": "web", "rules": rules, "default": "v1"}]}))
}

#[test]
fn a_failed_test_records_the_value_it_saw() {
    let p = rules(serde_json::json!([
        {"line": 2, "when": {"cookie": {"name": "user", "value": "tester"}}, "then": {"route": "v2"}},
        {"line": 3, "when": {"all": [{"method": "POST"}, {"header": {"name": "x", "test": "present"}}]}, "then": {"route": "v3"}},
        {"line": 4, "when": {"not": {"header": {"name": "x", "test": "present"}}}, "then": {"route": "v4"}},
    ]));
    let req = SimpleRequest::new().method("GET").cookie("user", "alice").header("x", "1");
    let e = p.explain(p.service_or_global("web"), &req, &mut SmallRng::seed_from_u64(0));
    let lines: Vec<(u32, bool)> = e.tried.iter().map(|t| (t.line, t.matched)).collect();
    assert_eq!(lines, [(2, false), (3, false), (4, false)]);
    assert_eq!(e.tried[0].when, Some(Node::Test { seen: Some(b"alice".to_vec()), matched: false }));
    // `all` stops at its first failing operand: the header test is never evaluated.
    assert_eq!(
        e.tried[1].when,
        Some(Node::All { operands: vec![Node::Test { seen: Some(b"GET".to_vec()), matched: false }], matched: false })
    );
    let not = Node::Not { operand: Box::new(Node::Test { seen: Some(b"1".to_vec()), matched: true }), matched: false };
    assert_eq!(e.tried[2].when, Some(not));
    assert_eq!((e.decision.rule, e.decision.subset.map(|s| p.subset_name(s))), (None, Some("v1")));
}

#[test]
fn a_sticky_split_records_its_key_bucket_and_ranges() {
    let p = rules(serde_json::json!([
        {"line": 2, "then": {"split": {"to": [{"subset": "v2", "weight": 2000}, {"subset": "v3", "weight": 1000}],
                                        "by": {"cookie": "uid"}}}},
    ]));
    let req = SimpleRequest::new().cookie("uid", "abc123");
    let e = p.explain(p.service_or_global("web"), &req, &mut SmallRng::seed_from_u64(0));
    let Some(SplitTrace { sticky, key, bucket, ranges, subset }) = e.tried[0].split.clone() else { panic!("a split") };
    assert!(sticky);
    assert_eq!(key.as_deref(), Some(&b"abc123"[..]));
    assert_eq!(bucket, sticky_bucket(b"abc123"));
    let id = |name: &str| p.subsets().iter().position(|s| s == name).map(|i| SubsetId(i as u32));
    assert_eq!(ranges, [(0, 2000, id("v2")), (2000, 3000, id("v3")), (3000, 10_000, id("v1"))]);
    assert_eq!(subset, e.decision.subset);
    // Without the key: a per-request draw, reported as such.
    let e = p.explain(p.service_or_global("web"), &SimpleRequest::new(), &mut SmallRng::seed_from_u64(0));
    let s = e.tried[0].split.clone().expect("a split");
    assert!(s.sticky && s.key.is_none());
}

/// A rule of several kinds (indexed or not, with and/or/not, routes and splits).
fn rule(line: u32, kind: u8, n: u8, action: u8) -> serde_json::Value {
    let when = match kind % 7 {
        0 => serde_json::json!({"header": {"name": "x-tenant", "test": {"eq": format!("t{n}")}}}),
        1 => serde_json::json!({"cookie": {"name": "beta", "value": format!("g{n}")}}),
        2 => serde_json::json!({"path_prefix": format!("/p{n}")}),
        3 => serde_json::json!({"header": {"name": "user-agent", "test": {"regex": format!("B{n}/")}}}),
        4 => {
            serde_json::json!({"all": [{"method": "GET"}, {"not": {"cookie": {"name": "beta", "value": format!("g{n}")}}}]})
        }
        5 => {
            serde_json::json!({"any": [{"cookie": {"name": "beta", "value": format!("g{n}")}}, {"path_prefix": format!("/q{n}")}]})
        }
        _ => serde_json::Value::Null,
    };
    let then = match action % 3 {
        0 => serde_json::json!({"route": "v2"}),
        1 => serde_json::json!({"split": {"to": [{"subset": "v2", "weight": 3000}]}}),
        _ => serde_json::json!({"split": {"to": [{"subset": "v3", "weight": 5000}], "by": {"cookie": "uid"}}}),
    };
    if when.is_null() {
        serde_json::json!({"line": line, "then": then})
    } else {
        serde_json::json!({"line": line, "when": when, "then": then})
    }
}

proptest! {
    /// Explaining never changes the answer: the rule, the subset and the random draw are decide's, the
    /// rules tried are every rule before the decider in order, and each recorded verdict is that rule's own.
    #[test]
    fn explain_decides_as_decide(spec in proptest::collection::vec((0u8..7, 0u8..4, 0u8..3), 1..40),
                                 tenant in 0u8..5, beta in 0u8..5, path in 0u8..5, uid in 0u8..3, seed in any::<u64>()) {
        let list: Vec<_> = spec.iter().enumerate().map(|(i, &(k, n, a))| rule(i as u32 + 1, k, n, a)).collect();
        let p = rules(serde_json::Value::Array(list.clone()));
        let mut req = SimpleRequest::new()
            .method("GET")
            .header("x-tenant", format!("t{tenant}"))
            .header("user-agent", format!("Mozilla B{beta}/1.0"))
            .path(&format!("/p{path}/x"))
            .cookie("beta", &format!("g{beta}"));
        if uid > 0 {
            req = req.cookie("uid", &format!("u{uid}"));
        }
        let web = p.service_or_global("web");
        let decided = p.decide(web, &req, &mut SmallRng::seed_from_u64(seed));
        let e = p.explain(web, &req, &mut SmallRng::seed_from_u64(seed));
        prop_assert_eq!(e.decision, decided);
        let lines: Vec<u32> = e.tried.iter().map(|t| t.line).collect();
        let expected: Vec<u32> = (1..=e.tried.len() as u32).collect();
        prop_assert_eq!(lines, expected);
        for (i, t) in e.tried.iter().enumerate() {
            let alone = rules(serde_json::json!([list[i]]));
            let matched = alone.decide(alone.service_or_global("web"), &req, &mut SmallRng::seed_from_u64(0)).rule.is_some();
            prop_assert_eq!(t.matched, matched, "rule {}", t.line);
            prop_assert_eq!(t.when.as_ref().map(Node::matched), list[i].get("when").map(|_| matched));
            prop_assert_eq!(t.matched, i + 1 == e.tried.len() && e.decision.rule.is_some());
        }
    }
}
