//! The parser's recursion is bounded by the text's bracket nesting, which the prescan caps at
//! `MAX_NESTING` before pest runs. That bound is what lets pest run without its per-rule native stack
//! probe (`default-features = false`, ARCHITECTURE.md): these are the deepest texts the checks let
//! through, parsed and checked on a thread with a small stack, in whatever profile the tests build.

use canary_dsl::{parse_and_check, MAX_NESTING};

/// wasm32's default stack (the playground's parser, which never had pest's probe), half of what a spawned
/// thread gets by default. Measured need for the deepest text: 0.5–0.6 MiB in a debug build, 0.1–0.2 MiB
/// in release.
const SMALL_STACK: usize = 1024 * 1024;

/// Parses and checks `source` on a [`SMALL_STACK`] thread: the number of warnings, or the first error's message.
fn on_small_stack(source: String) -> Result<usize, String> {
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || parse_and_check(&source).map(|(_, warnings)| warnings.len()).map_err(|e| e[0].message.clone()))
        .expect("spawn")
        .join()
        .expect("no stack overflow")
}

#[test]
fn deepest_parentheses_parse_on_a_small_stack() {
    let cond = format!("{}android{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert_eq!(on_small_stack(format!("{cond} -> v2\ndefault v1\n")), Ok(0));
    // One level deeper is the prescan's error, before pest sees it.
    let deeper = format!("({cond}) -> v2\n");
    assert!(on_small_stack(deeper).unwrap_err().contains("brackets nest too deeply"));
}

#[test]
fn deepest_braces_and_brackets_reach_pest_and_the_checker() {
    // Nested services are a checker error, but pest parses them all first; inside, a list in brackets.
    let inner = "header x in [\"a\"] -> v2";
    let services = MAX_NESTING - 1;
    let source = format!("{}{inner}{}\n", "service s {\n".repeat(services), "\n}".repeat(services));
    assert_eq!(on_small_stack(source), Err("services cannot be nested".to_string()));
}

#[test]
fn a_let_chain_to_the_depth_limit_checks_on_a_small_stack() {
    // Each `let` names the previous one: the checker's depth and cycle walks recurse through the chain.
    let chain = |lets: usize| {
        let mut source = String::from("let l0 = android\n");
        for i in 1..lets {
            source.push_str(&format!("let l{i} = l{}\n", i - 1));
        }
        source + &format!("l{} -> v2\ndefault v1\n", lets - 1)
    };
    let limit = canary_dsl::MAX_CONDITION_DEPTH;
    // The longest chain the checker accepts, then one `let` more: refused, not recursed into.
    assert_eq!(on_small_stack(chain(limit - 1)), Ok(0));
    assert!(on_small_stack(chain(limit)).unwrap_err().contains("nests too deeply once its `let`s are expanded"));
}
