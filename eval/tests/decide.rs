//! Evaluator semantics, on configs written as JSON (the compiler is tested separately).

// Test helpers may unwrap, index and panic too (clippy.toml allows it only inside `#[test]` functions).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use canary_eval::{sticky_bucket_all, Decision, Policy, SimpleRequest};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::SeedableRng;

fn policy(json: serde_json::Value) -> Policy {
    Policy::from_json(json.to_string().as_bytes()).expect("valid config")
}

fn decide(p: &Policy, service: &str, req: &SimpleRequest) -> (Option<String>, Option<u32>) {
    let mut rng = SmallRng::seed_from_u64(7);
    let Decision { subset, rule } = p.decide(p.service_or_global(service), req, &mut rng);
    (subset.map(|s| p.subset_name(s).to_string()), rule.map(|r| p.rule_line(r)))
}

fn header_rule(line: u32, name: &str, test: serde_json::Value, subset: &str) -> serde_json::Value {
    serde_json::json!({"line": line, "when": {"header": {"name": name, "test": test}}, "then": {"route": subset}})
}

#[test]
fn first_matching_rule_decides_then_default() {
    let p = policy(serde_json::json!({"version": 1, "services": [{"name": "forecast", "rules": [
        header_rule(2, "user-agent", serde_json::json!({"regex": "Chrome"}), "v2"),
        header_rule(3, "user-agent", serde_json::json!({"regex": "Chrom"}), "v3"),
    ], "default": "v1"}]}));
    let chrome = SimpleRequest::new().header("User-Agent", "Mozilla/5.0 Chrome/120");
    assert_eq!(decide(&p, "forecast", &chrome), (Some("v2".into()), Some(2)));
    let firefox = SimpleRequest::new().header("user-agent", "Firefox/120");
    assert_eq!(decide(&p, "forecast", &firefox), (Some("v1".into()), None));
    // Another service: no global rules, no default → no decision.
    assert_eq!(decide(&p, "frontend", &chrome), (None, None));
}

#[test]
fn absent_headers_never_match_value_tests() {
    let tests = [
        (serde_json::json!({"eq": "x"}), false),
        (serde_json::json!({"ne": "x"}), false),
        (serde_json::json!({"regex": ".*"}), false),
        (serde_json::json!({"in": ["x", ""]}), false),
        (serde_json::json!("present"), false),
        (serde_json::json!("absent"), true),
    ];
    for (test, matches_absent) in tests {
        let p =
            policy(serde_json::json!({"version": 1, "global": {"rules": [header_rule(1, "x-a", test.clone(), "v2")]}}));
        let got = decide(&p, "any", &SimpleRequest::new()).0.is_some();
        assert_eq!(got, matches_absent, "{test}");
    }
    let ne = policy(
        serde_json::json!({"version": 1, "global": {"rules": [header_rule(1, "x-a", serde_json::json!({"ne": "x"}), "v2")]}}),
    );
    assert_eq!(decide(&ne, "any", &SimpleRequest::new().header("x-a", "y")).0.as_deref(), Some("v2"));
    assert_eq!(decide(&ne, "any", &SimpleRequest::new().header("x-a", "x")).0, None);
}

#[test]
fn global_rules_come_first_and_global_default_fills_in() {
    let p = policy(serde_json::json!({"version": 1,
        "global": {"rules": [{"line": 1, "when": {"cookie": {"name": "user", "value": "tester"}}, "then": {"route": "v2"}}], "default": "v1"},
        "services": [{"name": "frontend", "rules": [{"line": 3, "then": {"route": "v3"}}]}]}));
    let tester = SimpleRequest::new().cookie("user", "tester");
    assert_eq!(decide(&p, "frontend", &tester), (Some("v2".into()), Some(1)));
    assert_eq!(decide(&p, "frontend", &SimpleRequest::new()), (Some("v3".into()), Some(3)));
    assert_eq!(decide(&p, "other", &SimpleRequest::new()), (Some("v1".into()), None));
}

#[test]
fn conditions_on_every_attribute() {
    let rule = |line: u32, when: serde_json::Value| serde_json::json!({"line": line, "when": when, "then": {"route": format!("r{line}")}});
    let p = policy(serde_json::json!({"version": 1, "global": {"rules": [
        rule(1, serde_json::json!({"query": {"name": "beta", "value": "on air"}})),
        rule(2, serde_json::json!({"path_prefix": "/api"})),
        rule(3, serde_json::json!({"method": "POST"})),
        rule(4, serde_json::json!({"host": "forecast.example"})),
        rule(5, serde_json::json!({"source": {"label": "version", "value": "v2"}})),
        rule(6, serde_json::json!({"all": [{"header": {"name": "a", "test": "present"}}, {"not": {"header": {"name": "b", "test": "present"}}}]})),
        rule(7, serde_json::json!({"any": [{"header": {"name": "c", "test": {"in": ["1", "2"]}}}, {"cookie": {"name": "c", "value": "1"}}]})),
    ]}}));
    let line = |req: SimpleRequest| decide(&p, "x", &req).1;
    assert_eq!(line(SimpleRequest::new().path("/x").query("beta", "on+air")), Some(1));
    assert_eq!(line(SimpleRequest::new().path("/x").query("beta", "on%20air")), Some(1));
    assert_eq!(line(SimpleRequest::new().path("/api/v1").query("beta", "off")), Some(2));
    assert_eq!(line(SimpleRequest::new().path("/apix")), Some(2));
    assert_eq!(line(SimpleRequest::new().path("/x?/api")), None);
    assert_eq!(line(SimpleRequest::new().method("POST")), Some(3));
    assert_eq!(line(SimpleRequest::new().host("Forecast.Example:8080")), Some(4));
    assert_eq!(line(SimpleRequest::new().host("forecast.example.org")), None);
    assert_eq!(line(SimpleRequest::new().source("version", "v2")), Some(5));
    assert_eq!(line(SimpleRequest::new().header("a", "")), Some(6));
    assert_eq!(line(SimpleRequest::new().header("a", "").header("b", "")), None);
    assert_eq!(line(SimpleRequest::new().header("c", "2")), Some(7));
    assert_eq!(line(SimpleRequest::new().cookie("c", "1")), Some(7));
    assert_eq!(line(SimpleRequest::new().header("c", "3")), None);
}

#[test]
fn split_remainder_goes_to_default_and_rule_still_decides() {
    let p = policy(serde_json::json!({"version": 1, "services": [{"name": "s", "rules": [
        {"line": 2, "then": {"split": {"to": [{"subset": "v2", "weight": 0}]}}},
    ], "default": "v1"}]}));
    assert_eq!(decide(&p, "s", &SimpleRequest::new()), (Some("v1".into()), Some(2)));
}

#[test]
fn non_utf8_header_values_are_bytes_not_errors() {
    let p = policy(serde_json::json!({"version": 1, "global": {"rules": [
        header_rule(1, "user-agent", serde_json::json!({"regex": "^Mozilla.*Android"}), "v2")]}}));
    let req = SimpleRequest::new().header("user-agent", b"Mozilla\xff\xfe Android".as_slice());
    assert_eq!(decide(&p, "x", &req).0.as_deref(), Some("v2"));
    let req = SimpleRequest::new().header("user-agent", b"\xc3\x28".as_slice());
    assert_eq!(decide(&p, "x", &req).0, None);
}

#[test]
fn bad_configs_are_refused_with_a_place() {
    let cases = [
        (serde_json::json!({"version": 2}), "version 2 is not supported"),
        (
            serde_json::json!({"version": 1, "global": {"rules": [header_rule(4, "ua", serde_json::json!({"regex": "("}), "v2")]}}),
            "global.rules[0] (line 4): invalid regex",
        ),
        (
            serde_json::json!({"version": 1, "global": {"rules": [header_rule(5, "ua", serde_json::json!({"regex": "a{1000}{1000}"}), "v2")]}}),
            "global.rules[0] (line 5): invalid regex \"a{1000}{1000}\": it compiles to more than 64 KiB",
        ),
        (
            serde_json::json!({"version": 1, "global": {"rules": [header_rule(1, "User-Agent", serde_json::json!("present"), "v2")]}}),
            "invalid header name \"User-Agent\"",
        ),
        (
            serde_json::json!({"version": 1, "global": {"rules": [{"line": 1, "then": {"split": {"to": [
            {"subset": "v2", "weight": 6000}, {"subset": "v3", "weight": 5000}]}}}]}}),
            "sum to 110.00% (over 100%)",
        ),
        (serde_json::json!({"version": 1, "services": [{"name": "a"}, {"name": "a"}]}), "declared twice"),
        (
            serde_json::json!({"version": 1, "services": [{"name": "t", "protocol": "tcp", "rules": [
            header_rule(1, "x", serde_json::json!("present"), "v2")]}]}),
            "tcp service can only match `source`",
        ),
        (serde_json::json!({"version": 1, "global": {"default": "v 1"}}), "invalid subset name"),
        (serde_json::json!({"version": 1, "surprise": true}), "unknown field `surprise`"),
        (serde_json::json!({"version": 1, "services": [{"name": "a", "bogus": 1}]}), "unknown field `bogus`"),
        (
            serde_json::json!({"version": 1, "global": {"rules": [{"line": 1, "then": {"route": "v2"}, "x": 1}]}}),
            "unknown field `x`",
        ),
        (serde_json::json!({"version": 1, "settings": {"cluster": "fixed"}}), "must contain {subset}"),
    ];
    for (json, want) in cases {
        let err = Policy::from_json(json.to_string().as_bytes()).expect_err(want);
        assert!(err.0.contains(want), "{err} should contain {want}");
    }
    assert!(Policy::from_json(b"\xff{").is_err());
}

/// Hostile JSON is refused with serde_json's reason and its position, never accepted half-read. These are the
/// cases the filter's former hand-written decoder needed (it now decodes through this same `from_json`).
#[test]
fn hostile_json_is_refused_with_its_position() {
    let cases: &[(&[u8], &str)] = &[
        (b"", "EOF while parsing a value at line 1 column 0"),
        (br#"{"version":1,"version":1}"#, "duplicate field `version` at line 1 column 22"),
        (br#"{"version":1,"services":[{"name":"a","name":"b"}]}"#, "duplicate field `name` at line 1 column 43"),
        // Fields the service reads from its rule set (written flattened) are still checked for duplicates.
        (br#"{"version":1,"services":[{"name":"a","rules":[],"rules":[]}]}"#, "duplicate field `rules`"),
        (br#"{"version":1,"services":[{"name":"a","default":"v1","default":"v2"}]}"#, "duplicate field `default`"),
        (
            br#"{"version":1,"services":[{"name":"a","colour":"red"}]}"#,
            "unknown field `colour`, expected one of `name`, `protocol`, `rules`, `default` at line 1 column 45",
        ),
        // Lone surrogates: a high one not followed by a low one, and a low one alone.
        (br#"{"version":1,"global":{"default":"v\ud800"}}"#, "unexpected end of hex escape at line 1 column 42"),
        (br#"{"version":1,"global":{"default":"v\udc00x"}}"#, "lone leading surrogate in hex escape at line 1 column 41"),
        (br#"{"version":1,"global":{"default":"\x"}}"#, "invalid escape at line 1 column 36"),
        (b"{\"version\":1,\"global\":{\"default\":\"a\x01\"}}", "control character"),
        (b"{\"version\":1,\"global\":{\"default\":\"\xff\"}}", "invalid unicode code point"),
        (b"\xef\xbb\xbf{\"version\":1}", "expected value at line 1 column 1"),
        (br#"{"version":1.0}"#, "invalid type: floating point `1.0`, expected u32"),
        (br#"{"version":-1}"#, "invalid value: integer `-1`, expected u32"),
        (br#"{"version":4294967297}"#, "invalid value: integer `4294967297`, expected u32"),
        (br#"{"version":01}"#, "invalid number"),
        (br#"{"version":1,}"#, "trailing comma"),
        (br#"{"version":1} x"#, "trailing characters at line 1 column 15"),
        (br#"{"version":1,"services":[{"name":"a","protocol":"udp"}]}"#, "unknown variant `udp`"),
        (br#"{"version":1,"global":{"rules":[{"line":1,"then":{"teleport":"v2"}}]}}"#, "unknown variant `teleport`"),
        (
            br#"{"version":1,"global":{"rules":[{"line":1,"when":{"header":{"name":"x","test":{"present":1}}},"then":{"route":"v"}}]}}"#,
            "invalid type: integer `1`, expected unit",
        ),
    ];
    for &(json, want) in cases {
        let err = Policy::from_json(json).expect_err(want);
        assert!(err.0.contains(want), "{:?}: {err} should contain {want}", String::from_utf8_lossy(json));
        assert!(err.0.starts_with("config is not valid canary JSON: "), "{err}");
    }
    // serde_json's nesting limit (128) bounds recursion on hostile input.
    let deep = r#"{"version":1,"global":{"rules":[{"line":1,"when":"#.to_string()
        + &r#"{"not":"#.repeat(200)
        + r#"{"method":"GET"}"#
        + &"}".repeat(200)
        + r#","then":{"route":"v2"}}]}}"#;
    assert!(Policy::from_json(deep.as_bytes()).expect_err("too deep").0.contains("recursion limit exceeded"));
    let shallow =
        deep.replace(&r#"{"not":"#.repeat(200), &r#"{"not":"#.repeat(100)).replace(&"}".repeat(200), &"}".repeat(100));
    assert!(Policy::from_json(shallow.as_bytes()).is_ok(), "100 levels are fine");
}

#[test]
fn repeated_regexes_decide_as_their_own_rules() {
    // 40 distinct regexes (more than the builder keeps for reuse), then each again with another subset: a
    // reused compiled regex must still belong to its own rule, and the repeats past the cache compile anew.
    let rule = |line: u32, i: u32, subset: &str| {
        header_rule(line, "x", serde_json::json!({"regex": format!("^t{i}-[0-9]+$")}), subset)
    };
    let mut rules: Vec<_> = (0..40).map(|i| rule(i + 1, i, "v2")).collect();
    rules.extend((0..40).map(|i| rule(i + 41, i, "v3")));
    rules.insert(40, header_rule(100, "y", serde_json::json!({"regex": "^t0-[0-9]+$"}), "v4"));
    let p = policy(serde_json::json!({"version": 1, "services": [{"name": "s", "rules": rules, "default": "v1"}]}));
    for i in [0, 31, 32, 39] {
        let req = SimpleRequest::new().header("x", format!("t{i}-7"));
        assert_eq!(decide(&p, "s", &req), (Some("v2".into()), Some(i + 1)), "t{i}");
    }
    assert_eq!(decide(&p, "s", &SimpleRequest::new().header("y", "t0-1")), (Some("v4".into()), Some(100)));
    assert_eq!(decide(&p, "s", &SimpleRequest::new().header("x", "t0-x")), (Some("v1".into()), None));
}

/// Tables (runs of exact-match rules) must decide exactly as the plain rule-by-rule scan would.
#[test]
fn tables_preserve_first_match_order() {
    let rules: Vec<_> = (0..20)
        .map(|i| header_rule(i + 1, "x-user", serde_json::json!({"eq": format!("u{}", i % 7)}), &format!("v{i}")))
        .collect();
    let p = policy(serde_json::json!({"version": 1, "global": {"rules": rules}}));
    for u in 0..7 {
        let (subset, line) = decide(&p, "x", &SimpleRequest::new().header("x-user", format!("u{u}")));
        assert_eq!(subset, Some(format!("v{u}")));
        assert_eq!(line, Some(u + 1));
    }
    assert_eq!(decide(&p, "x", &SimpleRequest::new().header("x-user", "u7")), (None, None));
}

fn sticky_policy(weight: u32) -> Policy {
    policy(serde_json::json!({"version": 1, "services": [{"name": "frontend", "rules": [
        {"line": 2, "then": {"split": {"to": [{"subset": "v2", "weight": weight}], "by": {"cookie": "user"}}}}],
        "default": "v1"}]}))
}

proptest! {
    /// Raising a sticky percentage only moves users from the default to the canary, never back.
    #[test]
    fn sticky_raise_only_moves_users_to_canary(keys in proptest::collection::vec("[a-zA-Z0-9_-]{1,24}", 200)) {
        let (low, high) = (sticky_policy(2000), sticky_policy(5000));
        for key in keys {
            let req = SimpleRequest::new().cookie("user", &key);
            let before = decide(&low, "frontend", &req).0;
            let after = decide(&high, "frontend", &req).0;
            prop_assert_eq!(decide(&low, "frontend", &req).0, before.clone(), "sticky decision must be stable");
            if before.as_deref() == Some("v2") {
                prop_assert_eq!(after.as_deref(), Some("v2"), "user {} moved back to v1", key);
            }
        }
    }

    /// Arbitrary header bytes never panic the evaluator.
    #[test]
    fn arbitrary_requests_never_panic(ua in proptest::collection::vec(any::<u8>(), 0..300),
                                      cookie in proptest::collection::vec(any::<u8>(), 0..300),
                                      path in proptest::collection::vec(any::<u8>(), 0..300)) {
        let p = policy(serde_json::json!({"version": 1, "global": {"rules": [
            header_rule(1, "user-agent", serde_json::json!({"regex": "Android [0-9]+"}), "v2"),
            {"line": 2, "when": {"cookie": {"name": "user", "value": "tester"}}, "then": {"route": "v2"}},
            {"line": 3, "when": {"query": {"name": "q", "value": "1"}}, "then": {"route": "v2"}},
            {"line": 4, "then": {"split": {"to": [{"subset": "v2", "weight": 5000}], "by": {"cookie": "user"}}}}]}}));
        let req = SimpleRequest::new().header("user-agent", &ua).header("cookie", &cookie).header(":path", &path);
        let _ = decide(&p, "x", &req);
    }
}

/// 100,000 unsticky draws of a 50% split stay within 5 sigma of half.
#[test]
fn unsticky_split_is_binomial() {
    let p = sticky_policy(5000);
    let mut rng = SmallRng::seed_from_u64(42);
    let n = 100_000u32;
    let req = SimpleRequest::new();
    let v2 = (0..n)
        .filter(|_| {
            p.decide(p.service_or_global("frontend"), &req, &mut rng).subset.map(|s| p.subset_name(s)) == Some("v2")
        })
        .count() as f64;
    let (mean, sd) = (f64::from(n) * 0.5, (f64::from(n) * 0.25).sqrt());
    assert!((v2 - mean).abs() <= 5.0 * sd, "v2 = {v2}, expected {mean} ± {}", 5.0 * sd);
}

proptest! {
    /// Runs of literal-regex rules become one index; it must pick the same rule as trying them in order.
    #[test]
    fn literal_index_matches_rule_order(lits in proptest::collection::vec("[ab./]{1,5}", 4..40),
                                        hay in "[ab./ ]{0,60}") {
        let rules: Vec<_> = lits.iter().enumerate()
            .map(|(i, l)| header_rule(i as u32 + 1, "user-agent", serde_json::json!({"regex": l.replace('.', "\\.")}), "v2"))
            .collect();
        let p = policy(serde_json::json!({"version": 1, "global": {"rules": rules}}));
        let want = lits.iter().position(|l| hay.contains(l.as_str())).map(|i| i as u32 + 1);
        prop_assert_eq!(decide(&p, "x", &SimpleRequest::new().header("user-agent", &hay)).1, want);
    }
}

/// Every `~` searches the whole value, as Envoy's RE2 does with `.*(?:P).*` — a regex (the lazy DFA, linear in
/// the value), a literal (plain search) and a run of literals (the literal index) alike, a megabyte included.
#[test]
fn every_regex_searches_the_whole_value() {
    let far = [b"x".repeat(1 << 20), b"Android Mobile".to_vec()].concat();
    let near = [b"Android Mobile ".to_vec(), b"x".repeat(1 << 20)].concat();
    let literal_run: Vec<_> = (1..=5)
        .map(|i| header_rule(i, "user-agent", serde_json::json!({"regex": format!("Android{i}|Android Mobile")}), "v2"))
        .collect();
    let regex = vec![header_rule(1, "user-agent", serde_json::json!({"regex": "Android.*Mobile"}), "v2")];
    let anchored = vec![header_rule(1, "user-agent", serde_json::json!({"regex": "Mobile$"}), "v2")];
    let literal = vec![header_rule(1, "user-agent", serde_json::json!({"regex": "Android Mobile"}), "v2")];
    for (rules, near_matches) in [(regex, true), (anchored, false), (literal, true), (literal_run, true)] {
        let p = policy(serde_json::json!({"version": 1, "global": {"rules": rules}}));
        let got = decide(&p, "x", &SimpleRequest::new().header("user-agent", &near)).0;
        assert_eq!(got.as_deref(), near_matches.then_some("v2"));
        assert_eq!(decide(&p, "x", &SimpleRequest::new().header("user-agent", &far)).0.as_deref(), Some("v2"));
    }
}

/// One rule of a kind the evaluator indexes (kinds 4 and 5 it does not), for interleaving tests.
fn mixed_rule(line: u32, kind: u8, n: u8) -> serde_json::Value {
    let when = match kind % 7 {
        0 => serde_json::json!({"header": {"name": "x-tenant", "test": {"eq": format!("t{n}")}}}),
        6 => {
            serde_json::json!({"header": {"name": "x-tenant", "test": {"in": [format!("t{n}"), format!("t{}", n + 1)]}}})
        }
        1 => serde_json::json!({"cookie": {"name": "beta", "value": format!("g{n}")}}),
        2 => serde_json::json!({"path_prefix": format!("/p{n}")}),
        3 => serde_json::json!({"header": {"name": "user-agent", "test": {"regex": format!("B{n}/")}}}),
        4 => serde_json::json!({"header": {"name": "x-tenant", "test": {"regex": format!("^t[0-{n}]$")}}}),
        _ => serde_json::json!({"any": [{"cookie": {"name": "beta", "value": format!("g{n}")}},
                                        {"path_prefix": format!("/q{n}")}]}),
    };
    serde_json::json!({"line": line, "when": when, "then": {"route": "v2"}})
}

proptest! {
    /// Whatever the evaluator groups into indexes — runs of one kind, kinds interleaved rule by rule, plain
    /// rules in between — the deciding rule is the first one that matches on its own.
    /// Headers may repeat (`x-tenant`, `user-agent`, `cookie` sent several times), so indexes must take the
    /// earliest rule any value matches.
    #[test]
    fn interleaved_kinds_decide_as_rule_by_rule(rules in proptest::collection::vec((0u8..7, 0u8..4), 1..60),
                                                tenants in proptest::collection::vec(0u8..5, 0..3),
                                                betas in proptest::collection::vec(0u8..5, 0..3),
                                                path in 0u8..5,
                                                uas in proptest::collection::vec(0u8..5, 0..3)) {
        let rules: Vec<_> = rules.iter().enumerate().map(|(i, &(k, n))| mixed_rule(i as u32 + 1, k, n)).collect();
        let mut req = SimpleRequest::new().header(":path", format!("/p{path}/x"));
        for t in &tenants {
            req = req.header("x-tenant", format!("t{t}"));
        }
        for b in &betas {
            req = req.header("cookie", format!("a=1; beta=g{b}"));
        }
        for ua in &uas {
            req = req.header("user-agent", format!("Mozilla B{ua}/1.0"));
        }
        let alone = |rule: &serde_json::Value| {
            let p = policy(serde_json::json!({"version": 1, "global": {"rules": [rule]}}));
            decide(&p, "x", &req).1.is_some()
        };
        let want = rules.iter().position(alone).map(|i| i as u32 + 1);
        let p = policy(serde_json::json!({"version": 1, "global": {"rules": rules}}));
        prop_assert_eq!(decide(&p, "x", &req).1, want);
    }
}

/// Whether a one-rule policy with `test` on `x-h` decides for a request carrying `values` of `x-h`.
fn holds(test: &serde_json::Value, negated: bool, values: &[String]) -> bool {
    let when = serde_json::json!({"header": {"name": "x-h", "test": test}});
    let when = if negated { serde_json::json!({"not": when}) } else { when };
    let p = policy(serde_json::json!({"version": 1, "global": {"rules": [
        {"line": 1, "when": when, "then": {"route": "v2"}}]}}));
    let req = values.iter().fold(SimpleRequest::new(), |r, v| r.header("x-h", v));
    decide(&p, "x", &req).1.is_some()
}

proptest! {
    /// A header sent several times, with Envoy's meaning: a value test holds when any value passes it (`not`
    /// negates that), `present`/`absent` ask whether there is a value, `!=` holds when there is one and none
    /// equals the operand — each defined here from single-valued requests.
    #[test]
    fn repeated_headers_mean_any_value(values in proptest::collection::vec("[abz]{0,2}", 0..4), negated: bool) {
        let one = |test: &serde_json::Value, v: &String| holds(test, false, std::slice::from_ref(v));
        for test in [
            serde_json::json!({"eq": "z"}),
            serde_json::json!({"eq": ""}),
            serde_json::json!({"in": ["a", "bz"]}),
            serde_json::json!({"regex": "z|ab"}),
            serde_json::json!({"regex": "^a+$"}),
        ] {
            let any = values.iter().any(|v| one(&test, v));
            prop_assert_eq!(holds(&test, negated, &values), any != negated, "{} on {:?}", test, values);
        }
        let ne = serde_json::json!({"ne": "z"});
        let want = !values.is_empty() && values.iter().all(|v| v != "z");
        prop_assert_eq!(holds(&ne, negated, &values), want != negated, "ne on {:?}", values);
        prop_assert_eq!(holds(&serde_json::json!("present"), negated, &values), values.is_empty() == negated);
        prop_assert_eq!(holds(&serde_json::json!("absent"), negated, &values), values.is_empty() != negated);
    }

    /// A sticky header sent several times is keyed on all its values, sorted (so in any order), as Envoy's
    /// header hash policy keys it.
    #[test]
    fn sticky_header_hashes_every_value(mut values in proptest::collection::vec("[a-z0-9]{0,6}", 1..4)) {
        let p = policy(serde_json::json!({"version": 1, "services": [{"name": "s", "rules": [
            {"line": 2, "then": {"split": {"to": [{"subset": "v2", "weight": 5000}], "by": {"header": "x-user"}}}}],
            "default": "v1"}]}));
        let bytes: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let want = if sticky_bucket_all(&bytes) < 5000 { "v2" } else { "v1" };
        for _ in 0..2 {
            let req = values.iter().fold(SimpleRequest::new(), |r, v| r.header("x-user", v));
            // Always the formula's subset: a decision drawn at random would differ under another seed.
            for seed in 0..4 {
                let mut rng = SmallRng::seed_from_u64(seed);
                let got = p.decide(p.service_or_global("s"), &req, &mut rng).subset.map(|s| p.subset_name(s));
                prop_assert_eq!(got, Some(want));
            }
            values.reverse();
        }
    }
}

/// Several `cookie` headers read as one joined with `; ` (Envoy's `forEachCookie`): the first cookie of a name
/// wins wherever it is, for conditions and sticky keys alike.
#[test]
fn cookies_are_read_across_cookie_headers() {
    let p = policy(serde_json::json!({"version": 1, "global": {"rules": [
        {"line": 1, "when": {"cookie": {"name": "user", "value": "tester"}}, "then": {"route": "v2"}},
        {"line": 2, "then": {"split": {"to": [{"subset": "v3", "weight": 5000}], "by": {"cookie": "uid"}}}}],
        "default": "v1"}}));
    let two = |a: &str, b: &str| SimpleRequest::new().header("cookie", a).header("cookie", b);
    assert_eq!(decide(&p, "x", &two("a=1", "user=tester")).1, Some(1));
    assert_eq!(decide(&p, "x", &two("user=other", "user=tester")).1, Some(2));
    let sticky = |req: &SimpleRequest| {
        (0..8)
            .map(|seed| {
                let d = p.decide(p.service_or_global("x"), req, &mut SmallRng::seed_from_u64(seed));
                d.subset.map(|s| p.subset_name(s).to_string())
            })
            .collect::<std::collections::BTreeSet<_>>()
    };
    for key in ["k1", "k2", "k3", "k4"] {
        let joined = sticky(&SimpleRequest::new().header("cookie", format!("a=1; uid={key}; uid=zz")));
        assert_eq!(joined.len(), 1, "a sticky key decides alike every time");
        assert_eq!(sticky(&two("a=1", &format!("uid={key}; uid=zz"))), joined);
        assert_eq!(sticky(&two(&format!("uid={key}"), "uid=zz")), joined);
    }
}

/// Ids are plain numbers a caller can make up; one this policy never gave out finds nothing — no decision, no
/// name, no rules — rather than panicking (the crate denies indexing: ARCHITECTURE.md, "What a request costs").
#[test]
fn ids_of_another_policy_find_nothing_and_never_panic() {
    use canary_eval::config::Protocol;
    use canary_eval::{RuleId, ServiceId, SubsetId};
    let p = policy(serde_json::json!({"version": 1, "services": [{"name": "a", "rules": [
        header_rule(1, "x", serde_json::json!("present"), "v2")], "default": "v1"}]}));
    let (service, rule, subset) = (ServiceId(99), RuleId(99), SubsetId(99));
    let req = SimpleRequest::new().header("x", "1");
    let nothing = Decision { subset: None, rule: None };
    assert_eq!(p.decide(service, &req, &mut SmallRng::seed_from_u64(7)), nothing);
    let explained = p.explain(service, &req, &mut SmallRng::seed_from_u64(7));
    assert!(explained.tried.is_empty() && explained.decision == nothing);
    assert_eq!((p.service_name(service), p.subset_name(subset), p.rule_line(rule)), ("", "", 0));
    assert_eq!(
        (p.default_subset(service), p.service_rules(service), p.protocol(service)),
        (None, &[][..], Protocol::Http)
    );
    // The policy's own ids still work.
    let a = p.service("a").expect("declared");
    assert_eq!(decide(&p, "a", &req), (Some("v2".into()), Some(1)));
    assert_eq!(p.service_rules(a).len(), 1);
}
