//! One test per class of malformed policy: the exact first line users and scripts see
//! (`input.canary:LINE:COL: error: MESSAGE`), and the hint where the fix is guessable.
//!
//! Columns count characters, not bytes (see `arrow_typo_after_multibyte_text`).

use canary_compiler::{compile, render};

const FILE: &str = "input.canary";

/// Compiles `source`, which must fail, and checks the rendered output's first line and (optionally) hint.
fn assert_error(source: &str, first_line: &str, hint: Option<&str>) {
    let diags = match compile(source, FILE) {
        Ok(compiled) => panic!("expected an error, but it compiled to {:?}", compiled.config),
        Err(diags) => diags,
    };
    let text = render(&diags, source, FILE, false);
    assert_eq!(text.lines().next(), Some(first_line), "full output:\n{text}");
    assert!(text.lines().nth(1).is_some_and(|l| l.contains(",-[")), "a caret excerpt follows:\n{text}");
    if let Some(hint) = hint {
        assert!(text.lines().any(|l| l == format!("hint: {hint}")), "expected `hint: {hint}` in:\n{text}");
    }
}

macro_rules! error_class {
    ($name:ident: $source:expr => $first_line:expr) => {
        #[test]
        fn $name() {
            assert_error($source, $first_line, None);
        }
    };
    ($name:ident: $source:expr => $first_line:expr, hint: $hint:expr) => {
        #[test]
        fn $name() {
            assert_error($source, $first_line, Some($hint));
        }
    };
}

// ----- statement structure ---------------------------------------------------------------------------

error_class!(missing_arrow:
    "service a {\n  android v2\n}\n"
    => "input.canary:2:11: error: expected `->` or `:` after a condition, found `v2`");

error_class!(fat_arrow_typo:
    "android => v2\n"
    => "input.canary:1:9: error: expected `->` or `:` after a condition, found `=>`",
    hint: "did you mean `->`?");

error_class!(equals_instead_of_arrow:
    "cookie user=tester = v2\n"
    => "input.canary:1:20: error: expected `->` or `:` after a condition, found `=`",
    hint: "did you mean `->`?");

error_class!(arrow_typo_after_multibyte_text:
    "header x = \"é\" → v2\n"
    => "input.canary:1:16: error: expected `->` or `:` after a condition, found `→`",
    hint: "did you mean `->`?");

error_class!(split_without_colon:
    "android 50% v2\n"
    => "input.canary:1:9: error: expected `->` or `:` after a condition, found `50`",
    hint: "a split needs a `:` after its condition, e.g. `android: 50% v2`");

error_class!(missing_subset_after_arrow:
    "android ->\ndefault v1\n"
    => "input.canary:1:11: error: expected a subset name after `->`, found end of line");

error_class!(missing_subset_after_percentage:
    "50%\n"
    => "input.canary:1:4: error: expected a subset name after the percentage, found end of line");

error_class!(rule_without_condition:
    "default v1\n-> v2\n"
    => "input.canary:2:1: error: expected a rule, `default`, `let` or `service`, found `->`",
    hint: "a rule needs a condition before `->`; for all traffic write `default SUBSET` or `100% SUBSET`");

error_class!(two_statements_on_one_line:
    "android -> v2 chrome -> v3\n"
    => "input.canary:1:15: error: expected the end of the statement, found `chrome`",
    hint: "put each statement on its own line, or separate statements with `;`");

error_class!(colon_without_percentage:
    "android: v2\n"
    => "input.canary:1:10: error: expected a percentage after `:`, found `v2`");

error_class!(default_without_subset:
    "service a {\n  default\n}\n"
    => "input.canary:2:10: error: expected a subset name after `default`, found end of line");

// ----- percentages -----------------------------------------------------------------------------------

error_class!(percentage_without_percent_sign:
    "service a {\n  50 v2\n}\n"
    => "input.canary:2:3: error: expected `%` after `50`, found `v2`",
    hint: "percentages need a `%`, e.g. `50% v2`");

error_class!(percentage_with_three_decimals:
    "android: 12.345% v2\n"
    => "input.canary:1:10: error: `12.345%` has more than two decimals");

error_class!(single_percentage_over_100:
    "101% v2\n"
    => "input.canary:1:1: error: `101%` is over 100%");

error_class!(split_sum_over_100:
    "service a {\n  android: 60% v2, 50.5% v3\n}\n"
    => "input.canary:2:12: error: split shares add up to 110.5% (over 100%)");

error_class!(sticky_without_kind:
    "50% v2 by user\n"
    => "input.canary:1:11: error: expected `cookie` or `header` after `by`, found `user`");

// ----- conditions ------------------------------------------------------------------------------------

error_class!(unknown_condition_keyword:
    "headr user-agent ~ \"Chrome\" -> v2\n"
    => "input.canary:1:1: error: unknown condition keyword `headr`",
    hint: "did you mean `header`?");

error_class!(misspelt_family:
    "andriod: 50% v2\n"
    => "input.canary:1:1: error: unknown condition `andriod`",
    hint: "did you mean `android`?");

error_class!(misspelt_statement_keyword:
    "defualt v1\n"
    => "input.canary:1:1: error: unknown keyword `defualt`",
    hint: "did you mean `default`?");

error_class!(cookie_without_equals:
    "cookie user -> v2\n"
    => "input.canary:1:13: error: expected `=` after the cookie name, found `->`",
    hint: "write `cookie NAME=VALUE`");

error_class!(header_without_test:
    "header x-env -> v2\n"
    => "input.canary:1:14: error: expected `=`, `!=`, `~`, `in`, `present` or `absent` after the header name, found `->`");

error_class!(double_equals:
    "header x-env == \"beta\" -> v2\n"
    => "input.canary:1:15: error: expected a value after `=`, found `=`",
    hint: "use a single `=` to compare");

error_class!(missing_condition_after_and:
    "android and -> v2\n"
    => "input.canary:1:13: error: expected a condition after `and`, found `->`");

error_class!(missing_operator_in_parentheses:
    "(android chrome) -> v2\n"
    => "input.canary:1:10: error: expected `and`, `or` or `)`, found `chrome`");

error_class!(invalid_regex:
    "header user-agent ~ \"Chrome(\" -> v2\n"
    => "input.canary:1:21: error: invalid regex: unclosed group");

error_class!(regex_too_large:
    "header user-agent ~ \"a{1000}{1000}\" -> v2\n"
    => "input.canary:1:21: error: regex too large: it compiles to more than 64 KiB (counted repetitions expand)",
    hint: "`x{n}` copies x n times and stacked counts multiply; bound the repetition, or test a prefix with a shorter regex");

error_class!(empty_in_list:
    "header x-env in [] -> v2\n"
    => "input.canary:1:17: error: `in []` needs at least one value");

error_class!(empty_header_name:
    "header \"\" present -> v2\n"
    => "input.canary:1:8: error: empty header name");

error_class!(invalid_header_name:
    "header \"x env\" present -> v2\n"
    => "input.canary:1:8: error: `x env` is not a valid header name");

error_class!(path_without_slash:
    "path \"api\" -> v2\n"
    => "input.canary:1:6: error: a path prefix must start with `/`",
    hint: "write `path \"/api\"`");

// ----- strings and brackets --------------------------------------------------------------------------

error_class!(unterminated_string:
    "service a {\n  header x-env = \"beta -> v2\n}\n"
    => "input.canary:2:18: error: unterminated string");

error_class!(unclosed_brace:
    "service frontend {\n  android -> v2\n  default v1\n"
    => "input.canary:1:18: error: unclosed `{`",
    hint: "add a `}` after the service's last rule");

error_class!(stray_closing_brace:
    "default v1\n}\n"
    => "input.canary:2:1: error: unexpected `}`");

error_class!(unclosed_parenthesis:
    "(android or ios -> v2\ndefault v1\n"
    => "input.canary:1:1: error: unclosed `(`");

error_class!(brackets_nested_too_deeply:
    &format!("{}android{} -> v2\n", "(".repeat(40), ")".repeat(40))
    => "input.canary:1:33: error: brackets nest too deeply");

// ----- services --------------------------------------------------------------------------------------

error_class!(duplicate_service:
    "service a {\n  default v1\n}\nservice a {\n  default v2\n}\n"
    => "input.canary:4:9: error: service `a` is declared twice");

error_class!(duplicate_default:
    "service a {\n  default v1\n  android -> v2\n  default v2\n}\n"
    => "input.canary:4:3: error: more than one `default` in service `a`");

error_class!(duplicate_top_level_default:
    "default v1; default v2\n"
    => "input.canary:1:13: error: more than one `default` at the top level");

error_class!(quoted_service_name:
    "service \"frontend\" {\n}\n"
    => "input.canary:1:9: error: expected a service name after `service`, found a string",
    hint: "service names are written without quotes");

error_class!(service_without_name:
    "service {\n  default v1\n}\n"
    => "input.canary:1:9: error: expected a service name after `service`, found `{`");

error_class!(service_name_with_slash:
    "service front/end {\n}\n"
    => "input.canary:1:14: error: expected `{` after the service name, found `/`");

error_class!(misspelt_tcp:
    "service echo tpc {\n}\n"
    => "input.canary:1:14: error: expected `{` after the service name, found `tpc`",
    hint: "did you mean `tcp`?");

error_class!(nested_service:
    "service a {\n  service b {\n    default v2\n  }\n}\n"
    => "input.canary:2:3: error: services cannot be nested");

error_class!(tcp_service_with_header_condition:
    "service echo tcp {\n  header x-env = \"beta\" -> v2\n}\n"
    => "input.canary:2:3: error: tcp service `echo` cannot match `header`");

error_class!(tcp_service_with_family:
    "service echo tcp {\n  source version=v2 or android -> v2\n}\n"
    => "input.canary:2:24: error: tcp service `echo` cannot match `android`");

error_class!(tcp_service_with_http_let:
    "let tester = cookie user=tester\nservice echo tcp {\n  tester -> v2\n}\n"
    => "input.canary:3:3: error: tcp service `echo` cannot match `tester`");

error_class!(tcp_service_with_sticky_split:
    "service echo tcp {\n  20% v2 by cookie user\n}\n"
    => "input.canary:2:10: error: tcp service `echo` cannot split `by` a cookie or header");

// ----- let -------------------------------------------------------------------------------------------

error_class!(unknown_let:
    "let tester = cookie user=tester\nservice a {\n  testr -> v2\n}\n"
    => "input.canary:3:3: error: unknown condition `testr`",
    hint: "did you mean `tester`?");

error_class!(duplicate_let:
    "let x = android\nlet x = ios\nx -> v2\n"
    => "input.canary:2:5: error: `let x` is defined twice");

error_class!(let_shadowing_a_file_let:
    "let x = android\nservice a {\n  let x = ios\n  x -> v2\n}\n"
    => "input.canary:3:7: error: `let x` is defined twice");

error_class!(self_referential_let:
    "let x = x and android\nx -> v2\n"
    => "input.canary:1:9: error: `let x` refers to itself");

error_class!(cyclic_lets:
    "let a = b\nlet b = a\na -> v2\n"
    => "input.canary:2:9: error: `let a` is defined in terms of itself");

error_class!(reserved_let_name:
    "let android = header x present\n"
    => "input.canary:1:5: error: expected a name after `let`, found `android`",
    hint: "`android` is a reserved word; choose another name");

error_class!(let_without_equals:
    "let x android\n"
    => "input.canary:1:7: error: expected `=` after the name, found `android`");

#[test]
fn errors_come_in_source_order_and_warnings_are_left_out() {
    let source = "let unused = ios\nservice a {\n  testr -> v2\n  101% v3\n}\n";
    let Err(diags) = compile(source, FILE) else { panic!("must fail") };
    let lines: Vec<String> = diags.iter().map(|d| d.headline(source, FILE)).collect();
    assert_eq!(
        lines,
        ["input.canary:3:3: error: unknown condition `testr`", "input.canary:4:3: error: `101%` is over 100%",]
    );
}
