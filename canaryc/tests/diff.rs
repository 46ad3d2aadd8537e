//! `canaryc diff` against simulation: for generated pairs of policies, every request of a small universe
//! is sent many times (fresh sticky keys, the same random draw for both policies), and the share that
//! changes subset must be what the diff predicts for the region holding that request, within 5σ of the
//! binomial. Every reported region must hold an example request that the evaluator decides by the reported
//! rules and that really moves when the move is fixed or sticky. Then the CLI's forms and exit codes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};

use canary_compiler::diff::{self, Move};
use canary_compiler::policy_text;
use canary_compiler::request::RequestSpec;
use canary_eval::config::Config;
use canary_eval::{Policy, SimpleRequest};
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

fn compile(source: &str) -> Config {
    match canary_compiler::compile(source, "gen.canary") {
        Ok(c) => c.config,
        Err(d) => panic!("{source}\n{}", canary_compiler::render(&d, source, "gen.canary", false)),
    }
}

/// Whether `spec` (a request to service `s`) is in the region `when` (`None`: everywhere), asked of the
/// evaluator through the policy text the diff printed.
fn inside(when: &Option<String>, spec: &RequestSpec) -> bool {
    let Some(when) = when else { return true };
    let config = compile(&format!("{when} -> hit\n"));
    let policy = Policy::new(&config).expect("loads");
    policy.decide(policy.fallback(), &spec.build("s"), &mut SmallRng::seed_from_u64(0)).rule.is_some()
}

fn subset(policy: &Policy, req: &SimpleRequest, seed: u64) -> String {
    let d = policy.decide(policy.service_or_global("s"), req, &mut SmallRng::seed_from_u64(seed));
    d.subset.map_or("none".to_string(), |s| policy.subset_name(s).to_string())
}

fn name(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "none".into())
}

/// The universe: every combination of these attribute values (36 requests).
fn universe() -> Vec<RequestSpec> {
    let mut out = Vec::new();
    for cookie in [None, Some("a"), Some("b")] {
        for header in [None, Some("1"), Some("2")] {
            for method in ["GET", "POST"] {
                for path in ["/", "/api/x"] {
                    out.push(RequestSpec {
                        method: Some(method.into()),
                        path: Some(path.into()),
                        cookies: cookie.map(|c| ("c".to_string(), c.to_string())).into_iter().collect(),
                        headers: header.map(|h| ("h".to_string(), h.to_string())).into_iter().collect(),
                        ..RequestSpec::default()
                    });
                }
            }
        }
    }
    out
}

/// Sends `spec` `n` times to both policies, each time with fresh sticky keys and one random draw shared by
/// both; counts who changes subset.
fn simulate(
    old: &Policy,
    new: &Policy,
    spec: &RequestSpec,
    n: u32,
    rng: &mut SmallRng,
) -> BTreeMap<(String, String), u32> {
    let mut moved = BTreeMap::new();
    for _ in 0..n {
        let mut with_keys = spec.clone();
        with_keys.cookies.push(("uid".into(), format!("u{}", rng.next_u64())));
        with_keys.headers.push(("x-uid".into(), format!("h{}", rng.next_u64())));
        let req = with_keys.build("s");
        let seed = rng.next_u64();
        let (from, to) = (subset(old, &req, seed), subset(new, &req, seed));
        if from != to {
            *moved.entry((from, to)).or_insert(0) += 1;
        }
    }
    moved
}

fn check_pair(old_src: &str, new_src: &str, seed: u64) -> Result<(), TestCaseError> {
    let (old_cfg, new_cfg) = (compile(old_src), compile(new_src));
    let (old, new) = (Policy::new(&old_cfg).expect("loads"), Policy::new(&new_cfg).expect("loads"));
    let report = diff::diff(&old_cfg, &new_cfg, Some("s")).map_err(TestCaseError::fail)?;
    let moves: &[Move] = &report[0].moves;
    let when: Vec<Option<String>> = moves.iter().map(|m| m.when.as_ref().map(policy_text::cond)).collect();

    // Every region holds its example, decided by the reported rules; fixed and sticky moves really move.
    for (m, when) in moves.iter().zip(&when) {
        let example = m.example.as_ref().ok_or_else(|| TestCaseError::fail(format!("no example for {m:?}")))?;
        prop_assert!(inside(when, example), "example {:?} outside {:?}", example.args(), when);
        let req = example.build("s");
        let line = |p: &Policy| {
            p.decide(p.service_or_global("s"), &req, &mut SmallRng::seed_from_u64(0)).rule.map(|r| p.rule_line(r))
        };
        prop_assert_eq!((line(&old), line(&new)), (m.old_line, m.new_line), "rules deciding {:?}", example.args());
        if m.by.is_some() || m.percent == 100.0 {
            prop_assert_eq!(
                (subset(&old, &req, 0), subset(&new, &req, 0)),
                (name(&m.from), name(&m.to)),
                "{:?}",
                example.args()
            );
        }
    }

    let mut rng = SmallRng::seed_from_u64(seed);
    const N: u32 = 400;
    for spec in universe() {
        // The regions partition request space: the request is in at most one region that moves.
        let holding: Vec<usize> = (0..moves.len()).filter(|&i| inside(&when[i], &spec)).collect();
        let mut predicted: BTreeMap<(String, String), f64> = BTreeMap::new();
        for &i in &holding {
            let m = &moves[i];
            prop_assert_eq!((m.old_line, m.new_line), (moves[holding[0]].old_line, moves[holding[0]].new_line));
            *predicted.entry((name(&m.from), name(&m.to))).or_insert(0.0) += m.percent / 100.0;
        }
        let observed = simulate(&old, &new, &spec, N, &mut rng);
        let pairs: Vec<&(String, String)> = predicted.keys().chain(observed.keys()).collect();
        for pair in pairs {
            let p = predicted.get(pair).copied().unwrap_or(0.0).min(1.0);
            let seen = f64::from(observed.get(pair).copied().unwrap_or(0));
            let (mean, sd) = (f64::from(N) * p, (f64::from(N) * p * (1.0 - p)).sqrt());
            prop_assert!(
                (seen - mean).abs() <= 5.0 * sd + 0.5,
                "{:?} for {:?}: predicted {:.2}%, simulated {seen} of {N}\nold:\n{old_src}new:\n{new_src}diff:\n{}",
                pair,
                spec.args(),
                p * 100.0,
                diff::text(&report)
            );
        }
    }
    Ok(())
}

fn cond() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        Just("cookie c=a".to_string()),
        Just("cookie c=b".to_string()),
        Just("header h = \"1\"".to_string()),
        Just("header h present".to_string()),
        Just("method POST".to_string()),
        Just("path \"/api\"".to_string()),
    ];
    atom.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("not ({c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) or ({b})")),
        ]
    })
}

fn action() -> impl Strategy<Value = (bool, String)> {
    let subset = prop_oneof![Just("v1"), Just("v2"), Just("v3")];
    let by = prop_oneof![Just(""), Just(" by cookie uid"), Just(" by header x-uid")];
    let weight = prop_oneof![Just(0u32), Just(2000), Just(5000), Just(10_000), 1u32..10_000];
    prop_oneof![
        subset.clone().prop_map(|s| (false, format!("-> {s}"))),
        (weight.clone(), weight, subset.clone(), subset, by).prop_map(|(a, b, s, t, by)| {
            let (a, b) = (a.min(10_000), b.min(10_000 - a.min(10_000)));
            let pct = |w: u32| format!("{}.{:02}%", w / 100, w % 100);
            let second = if b > 0 && s != t { format!(", {} {t}", pct(b)) } else { String::new() };
            (true, format!("{} {s}{second}{by}", pct(a)))
        }),
    ]
}

fn policy() -> impl Strategy<Value = String> {
    let rule = (proptest::option::of(cond()), action()).prop_map(|(when, (split, then))| match (when, split) {
        (Some(c), false) => format!("  {c} {then}\n"),
        (Some(c), true) => format!("  {c}: {then}\n"),
        (None, true) => format!("  {then}\n"),
        (None, false) => format!("  cookie c=a {then}\n"),
    });
    (proptest::collection::vec(rule, 0..4), prop_oneof![Just("  default v1\n"), Just("")])
        .prop_map(|(rules, default)| format!("service s {{\n{}{default}}}\n", rules.concat()))
}

/// Small edits of a policy as well as unrelated ones: most real diffs change one rule.
fn pair() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        (policy(), policy()),
        (policy(), action(), any::<proptest::sample::Index>()).prop_map(|(old, (split, then), at)| {
            let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
            let rules: Vec<usize> = (1..lines.len() - 1).filter(|&i| !lines[i].contains("default")).collect();
            if rules.is_empty() {
                return (old.clone(), old);
            }
            let i = rules[at.index(rules.len())];
            let cond = lines[i].trim().split([':', '-']).next().unwrap_or("").trim().to_string();
            let cond =
                if cond.is_empty() || cond.ends_with('%') || cond.contains('%') { "cookie c=b".into() } else { cond };
            lines[i] = if split { format!("  {cond}: {then}") } else { format!("  {cond} {then}") };
            (old, lines.join("\n") + "\n")
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn predicted_moves_match_simulation((old, new) in pair(), seed in any::<u64>()) {
        check_pair(&old, &new, seed)?;
    }
}

#[test]
fn hand_picked_pairs_match_simulation() {
    let cases = [
        // The brief's two: a sticky 20% → 50% moves 30% of users one way; a plain 50% → 100% half the requests.
        (
            "service s {\n  20% v2 by cookie uid\n  default v1\n}\n",
            "service s {\n  50% v2 by cookie uid\n  default v1\n}\n",
        ),
        ("service s {\n  50% v2\n  default v1\n}\n", "service s {\n  100% v2\n  default v1\n}\n"),
        // A changed condition, an added rule before a split, a split on another key, no default.
        ("service s {\n  cookie c=a -> v2\n  default v1\n}\n", "service s {\n  cookie c=b -> v2\n  default v1\n}\n"),
        (
            "service s {\n  30% v2 by cookie uid\n  default v1\n}\n",
            "service s {\n  method POST -> v3\n  30% v2 by cookie uid\n  default v1\n}\n",
        ),
        ("service s {\n  50% v2 by cookie uid\n  default v1\n}\n", "service s {\n  50% v2 by header x-uid\n}\n"),
        (
            "service s {\n  not cookie c=a and header h present: 25% v2, 25% v3\n  default v1\n}\n",
            "service s {\n  header h present: 25% v3, 25% v2\n  default v1\n}\n",
        ),
    ];
    for (i, (old, new)) in cases.iter().enumerate() {
        check_pair(old, new, i as u64).unwrap_or_else(|e| panic!("case {i}: {e}"));
    }
}

#[test]
fn identical_policies_move_nothing_and_edits_are_located() {
    let weather = std::fs::read_to_string(example("weather.canary")).expect("readable");
    let config = compile(&weather);
    let report = diff::diff(&config, &config, None).expect("diffs");
    assert!(report.iter().all(|d| d.moves.is_empty()), "{}", diff::text(&report));
    assert_eq!(diff::text(&report), "no moves: both policies give every request the same subset\n");

    let old = compile("service web {\n  cookie user=tester -> v2\n  20% v2 by cookie uid\n  default v1\n}\n");
    let new = compile("service web {\n  cookie user=tester -> v2\n  50% v2 by cookie uid\n  default v1\n}\n");
    let report = diff::diff(&old, &new, None).expect("diffs");
    let m = &report[0].moves;
    assert_eq!(m.len(), 1, "{}", diff::text(&report));
    assert_eq!((m[0].from.as_deref(), m[0].to.as_deref(), m[0].percent), (Some("v1"), Some("v2"), 30.0));
    assert_eq!(m[0].when.as_ref().map(policy_text::cond).as_deref(), Some("not cookie user=tester"));
    let args = m[0].example.as_ref().expect("an example").args();
    assert_eq!(args[0], "--cookie");
    assert!(args[1].starts_with("uid="), "{args:?}");
}

// ---- the CLI -------------------------------------------------------------------------------------------

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples").join(name)
}

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

fn path(name: &str) -> String {
    example(name).display().to_string()
}

#[test]
fn s2_step_two_moves_half_of_forecast() {
    let out = canaryc(&["diff", &path("s2-forecast-50.canary"), &path("s2-forecast-100.canary"), "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({"services": {"forecast": [{
            "from": "v1", "to": "v2", "percent": 50.0, "by": null, "when": null, "example": [],
            "old_rule": 3, "new_rule": 3
        }]}})
    );
    let text = canaryc(&["diff", &path("s2-forecast-50.canary"), &path("s2-forecast-100.canary")]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.starts_with("forecast\n  v1 → v2  50% of requests\n"), "{text}");
}

#[test]
fn examples_are_eval_flags_that_move() {
    let dir = std::env::temp_dir().join(format!("canaryc-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let (old, new) = (dir.join("old.canary"), dir.join("new.canary"));
    std::fs::write(&old, "service web {\n  android: 10% v2 by cookie uid\n  default v1\n}\n").expect("write");
    std::fs::write(
        &new,
        "service web {\n  android: 40% v2 by cookie uid\n  cookie user=tester -> v2\n  default v1\n}\n",
    )
    .expect("write");
    let (old, new) = (old.display().to_string(), new.display().to_string());
    let out = canaryc(&["diff", &old, &new, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let moves = json["services"]["web"].as_array().expect("moves");
    assert_eq!(moves.len(), 2, "{json}");
    for m in moves {
        let args: Vec<&str> = m["example"].as_array().expect("example").iter().filter_map(|a| a.as_str()).collect();
        let eval = |file: &str| {
            let mut all = vec!["eval", file];
            all.extend(&args);
            String::from_utf8_lossy(&canaryc(&all).stdout).trim().to_string()
        };
        assert_eq!(
            (eval(&old), eval(&new)),
            (m["from"].as_str().unwrap().to_string(), m["to"].as_str().unwrap().to_string()),
            "{m}"
        );
    }
    assert_eq!(moves[0]["when"], "android");
    assert_eq!(moves[0]["percent"], 30.0);
    assert_eq!(moves[0]["by"], "cookie uid");
    assert_eq!(moves[1]["when"], "cookie user=tester and not android");
    assert_eq!(moves[1]["percent"], 100.0);

    // --exit-code: 1 when something moves, 0 when nothing does, 2 for a broken policy.
    assert_eq!(canaryc(&["diff", &old, &new, "--exit-code"]).status.code(), Some(1));
    assert_eq!(canaryc(&["diff", &old, &old, "--exit-code"]).status.code(), Some(0));
    assert_eq!(canaryc(&["diff", &old, &new]).status.code(), Some(0));
    let broken = dir.join("broken.canary");
    std::fs::write(&broken, "service web {\n  50% v2 v3\n}\n").expect("write");
    let out = canaryc(&["diff", &old, &broken.display().to_string(), "--exit-code"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("broken.canary:2:"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
