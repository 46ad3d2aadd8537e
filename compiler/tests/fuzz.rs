//! The compiler never panics, whatever it is fed, and every diagnostic points inside the input.
//!
//! Three generators: arbitrary bytes (lossy UTF-8), "token soups" made of the language's own words and
//! punctuation (which get much deeper into the grammar than random bytes do), and well-formed policies
//! (which must compile, load in the evaluator, and serialise deterministically). Plus a few hand-made
//! adversarial inputs aimed at recursion and quadratic behaviour.

use canary_compiler::{compile, config_json, render};
use proptest::prelude::*;

/// Compiles and renders; asserts every diagnostic's position exists in `source`.
fn exercise(source: &str) {
    let diags = match compile(source, "fuzz.canary") {
        Ok(compiled) => compiled.warnings,
        Err(diags) => {
            assert!(!diags.is_empty(), "an error result carries at least one diagnostic");
            assert!(diags[0].is_error(), "the first diagnostic of a failure is an error");
            diags
        }
    };
    let lines: Vec<&str> = source.split('\n').collect();
    for d in &diags {
        let pos = d.position(source);
        assert!(pos.line >= 1 && pos.line <= lines.len(), "line {} outside 1..={} for {:?}", pos.line, lines.len(), d);
        let width = lines[pos.line - 1].chars().count();
        assert!(pos.col >= 1 && pos.col <= width + 1, "col {} outside 1..={} for {:?}", pos.col, width + 1, d);
        assert!(d.span.start <= d.span.end && d.span.end <= source.len(), "span {:?} outside the input", d.span);
    }
    let text = render(&diags, source, "fuzz.canary", false);
    if let Some(first) = diags.first() {
        assert!(text.starts_with(&format!("fuzz.canary:{}: ", first.position(source))), "{text}");
    }
    // `canaryc fmt` neither panics nor loses a parse: its output formats to itself.
    if let Ok(formatted) = canary_dsl::fmt::format(source) {
        assert_eq!(canary_dsl::fmt::format(&formatted).as_ref(), Ok(&formatted), "{source:?}");
    }
}

/// Tokens besides the keywords: misspellings, names, values, percentages and punctuation.
const EXTRA_TOKENS: &[&str] = &[
    "andriod",
    "headr",
    "x",
    "user-agent",
    "X-Env",
    ":path",
    "user",
    "tester",
    "version",
    "v1",
    "v2",
    "tcp-echo",
    "GET",
    "app.kubernetes.io/version",
    "50",
    "50%",
    "0.01%",
    "12.345%",
    "100%",
    "101%",
    "60%",
    "99999999999%",
    "->",
    "=>",
    "→",
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
    "\n",
    "=",
    "==",
    "!=",
    "~",
    "\"",
    "\"Chrome\"",
    "\"(\"",
    "\"/api\"",
    "\"\"",
    "\"a\\\"b\"",
    "\"\\\\\"",
    "# comment",
    "é",
    "\t",
    "\r\n",
    "\r",
    "\u{2028}",
    "\0",
];

/// The language's keywords (from the parser itself) and the extra tokens above.
fn tokens() -> Vec<&'static str> {
    canary_dsl::KEYWORDS.iter().chain(EXTRA_TOKENS).copied().collect()
}

fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(tokens()), prop::bool::ANY), 0..60).prop_map(|tokens| {
        tokens.into_iter().fold(String::new(), |mut s, (t, space)| {
            s.push_str(t);
            if space {
                s.push(' ');
            }
            s
        })
    })
}

fn atom() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec!["x-env", "User-Agent", "accept", ":authority"]);
    let value = prop::sample::select(vec!["beta", "\"a b\"", "\"é\"", "v-1.2_x"]);
    prop_oneof![
        (name.clone(), value.clone()).prop_map(|(n, v)| format!("header {n} = {v}")),
        (name.clone(), value.clone()).prop_map(|(n, v)| format!("header {n} != {v}")),
        name.clone().prop_map(|n| format!("header {n} ~ \"^(a|b)+\\d\"")),
        (name.clone(), value.clone()).prop_map(|(n, v)| format!("header {n} in [{v}, \"z\"]")),
        name.clone().prop_map(|n| format!("header {n} present")),
        name.prop_map(|n| format!("header {n} absent")),
        value.clone().prop_map(|v| format!("cookie user={v}")),
        value.prop_map(|v| format!("query q={v}")),
        Just("path \"/api/v1\"".to_string()),
        Just("method post".to_string()),
        Just("host \"Example.COM\"".to_string()),
        Just("source version=v2".to_string()),
        prop::sample::select(vec!["android", "ios", "chrome", "firefox", "safari", "edge", "mobile"])
            .prop_map(str::to_string),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    atom().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} and {b}")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a} or {b})")),
            inner.clone().prop_map(|a| format!("not {a}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("(\n  {a}\n  or {b}\n)")),
        ]
    })
}

fn statement() -> impl Strategy<Value = String> {
    let subset = prop::sample::select(vec!["v1", "v2", "canary", "v2.1"]);
    let share = (0u32..=5000, subset.clone()).prop_map(|(bp, s)| format!("{}.{:02}% {s}", bp / 100, bp % 100));
    let by = prop::sample::select(vec!["", " by cookie user", " by header X-User"]);
    prop_oneof![
        (condition(), subset).prop_map(|(c, s)| format!("{c} -> {s}")),
        (prop::option::of(condition()), share.clone(), share, by).prop_map(|(c, a, b, by)| match c {
            Some(c) => format!("{c}: {a}, {b}{by}"),
            None => format!("{a}, {b}{by}"),
        }),
    ]
}

fn policy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(statement(), 0..4),
        prop::collection::vec(prop::collection::vec(statement(), 0..4), 0..3),
        prop::option::of(prop::sample::select(vec!["v1", "v2"])),
    )
        .prop_map(|(top, services, default)| {
            let mut s = String::from("# generated\nlet shared = header x-shared present\nshared -> v1\n");
            for stmt in top {
                s.push_str(&stmt);
                s.push('\n');
            }
            for (i, body) in services.into_iter().enumerate() {
                s.push_str(&format!("service svc-{i} {{\n"));
                for stmt in body {
                    s.push_str(&format!("  {stmt}\n"));
                }
                if let Some(d) = default {
                    s.push_str(&format!("  default {d}\n"));
                }
                s.push_str("}\n");
            }
            s.push_str("service echo tcp {\n  source version=v2 -> v2\n  20% v2\n  default v1\n}\n");
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        exercise(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn token_soups_never_panic(source in token_soup()) {
        exercise(&source);
    }

    #[test]
    fn well_formed_policies_compile_deterministically(source in policy()) {
        let compiled = compile(&source, "gen.canary")
            .unwrap_or_else(|d| panic!("{}\n{}", source, render(&d, &source, "gen.canary", false)));
        prop_assert!(canary_eval::Policy::new(&compiled.config).is_ok());
        let json = config_json(&compiled.config);
        let again = compile(&source, "gen.canary").map(|c| config_json(&c.config)).unwrap_or_default();
        prop_assert_eq!(&json, &again);
        let parsed: canary_eval::Config = serde_json::from_str(&json).expect("own JSON parses");
        prop_assert_eq!(parsed, compiled.config);
    }
}

#[test]
fn adversarial_nesting_and_repetition_are_refused_or_handled() {
    let long_chain = format!("{} -> v2\n", vec!["android"; 20_000].join(" and "));
    let not_run = format!("{}android -> v2\n", "not ".repeat(50_000));
    let let_chain = {
        let mut s = String::from("let l0 = android\n");
        for i in 1..5_000 {
            s.push_str(&format!("let l{i} = not l{}\n", i - 1));
        }
        s.push_str("l4999 -> v2\n");
        s
    };
    let let_cycle = (0..2_000).map(|i| format!("let c{i} = c{}\n", (i + 1) % 2_000)).collect::<String>() + "c0 -> v2\n";
    for source in [
        "(".repeat(100_000),
        "[".repeat(100_000),
        "{".repeat(100_000),
        "}".repeat(100_000),
        "\"".repeat(100_000),
        long_chain,
        not_run,
        let_chain,
        let_cycle,
        "service a {\n".repeat(2_000) + &"}\n".repeat(2_000),
        "50% v2\n".repeat(20_000),
    ] {
        exercise(&source);
    }
}
