//! `canaryc fmt`: the examples are already in canonical layout; `--check`, in-place and stdin modes; a
//! policy that does not parse is left alone; and, over generated policies in arbitrary layouts, formatting
//! never changes what the policy decides (the compiled config, line numbers aside), keeps every comment,
//! and is idempotent.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use canary_compiler::compile;
use canary_dsl::fmt::{comments, format};
use proptest::prelude::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn canaryc(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_canaryc"))
        .current_dir(root())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("canaryc runs");
    child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("canaryc ends")
}

fn tmp(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("canaryc-fmt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let file = dir.join(name);
    std::fs::write(&file, text).expect("write");
    file.display().to_string()
}

#[test]
fn every_example_is_formatted() {
    let mut args = vec!["fmt".to_string(), "--check".to_string()];
    for entry in std::fs::read_dir(root().join("examples")).expect("examples") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "canary") {
            args.push(format!("examples/{}", path.file_name().expect("name").to_string_lossy()));
        }
    }
    assert!(args.len() > 8, "{args:?}");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = canaryc(&args, "");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_names_the_files_it_would_change_and_changes_nothing() {
    let messy = "service forecast{\n    50%v2\ndefault v1}\n";
    let bad = tmp("check-messy.canary", messy);
    let good = tmp("check-good.canary", "default v1\n");
    let out = canaryc(&["fmt", "--check", &good, &bad], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("would reformat {bad}\n"));
    assert_eq!(std::fs::read_to_string(&bad).expect("read"), messy);
}

#[test]
fn rewrites_in_place_and_formats_stdin() {
    let file = tmp("in-place.canary", "service forecast{\n    50%v2 # half\n\n\n\ndefault v1}\n");
    let out = canaryc(&["fmt", &file], "");
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
    let want = "service forecast {\n  50% v2 # half\n\n  default v1\n}\n";
    assert_eq!(std::fs::read_to_string(&file).expect("read"), want);
    let out = canaryc(&["fmt", "-"], "android :  50% v2 ;cookie user = tester->v2");
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "android: 50% v2; cookie user=tester -> v2\n");
    let out = canaryc(&["fmt", "--check", "-"], "default  v1\n");
    assert_eq!(
        (out.status.code(), String::from_utf8_lossy(&out.stdout).as_ref()),
        (Some(1), "would reformat <stdin>\n")
    );
}

#[cfg(unix)]
#[test]
fn rewrites_through_a_symlink_keeping_the_mode_and_leaving_no_temporary() {
    use std::os::unix::fs::PermissionsExt;
    let file = tmp("linked.canary", "default  v1\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let link = format!("{file}.link.canary");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&file, &link).expect("symlink");
    let out = canaryc(&["fmt", &link], "");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), "default v1\n");
    assert!(std::fs::symlink_metadata(&link).expect("link").file_type().is_symlink(), "the link stays a link");
    assert_eq!(std::fs::metadata(&file).expect("mode").permissions().mode() & 0o777, 0o600);
    let dir = std::path::Path::new(&file).parent().expect("dir");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_policy_that_does_not_parse_is_left_untouched() {
    let text = "service a {\n  android => v2\n}\n";
    let file = tmp("broken.canary", text);
    let out = canaryc(&["fmt", &file], "");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("{file}:2:11: error: expected `->` or `:` after a condition")), "{stderr}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), text);
}

// ----- generated policies in arbitrary layouts -----------------------------------------------------------

/// Tokens a separator may be left out next to (they cannot merge with a neighbour).
const PUNCT: [&str; 10] = ["(", ")", "[", "]", ",", ":", "=", "!=", "~", "->"];

fn atom() -> impl Strategy<Value = Vec<String>> {
    let name = prop::sample::select(vec!["x-env", "User-Agent", "accept"]);
    let value = prop::sample::select(vec!["beta", "\"a b\"", "\"#not-a-comment\"", "v-1.2_x"]);
    let t = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    prop_oneof![
        (name.clone(), value.clone()).prop_map(move |(n, v)| t(&["header", n, "=", v])),
        (name.clone(), value.clone()).prop_map(move |(n, v)| t(&["header", n, "!=", v])),
        name.clone().prop_map(move |n| t(&["header", n, "~", "\"^(a|b)+\""])),
        (name.clone(), value.clone(), value.clone())
            .prop_map(move |(n, a, b)| t(&["header", n, "in", "[", a, ",", b, "]"])),
        name.clone().prop_map(move |n| t(&["header", n, "present"])),
        name.prop_map(move |n| t(&["header", n, "absent"])),
        value.clone().prop_map(move |v| t(&["cookie", "user", "=", v])),
        value.prop_map(move |v| t(&["query", "q", "=", v])),
        Just(t(&["path", "\"/api/v1\""])),
        Just(t(&["method", "POST"])),
        Just(t(&["source", "version", "=", "v2"])),
        Just(t(&["shared"])),
        prop::sample::select(vec!["android", "ios", "chrome", "mobile"]).prop_map(move |f| t(&[f])),
    ]
}

fn condition() -> impl Strategy<Value = Vec<String>> {
    atom().prop_recursive(3, 12, 3, |inner| {
        let join = |parts: Vec<Vec<String>>| parts.into_iter().flatten().collect::<Vec<String>>();
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(move |(a, b)| join(vec![a, vec!["and".into()], b])),
            (inner.clone(), inner.clone()).prop_map(move |(a, b)| join(vec![
                vec!["(".into()],
                a,
                vec!["or".into()],
                b,
                vec![")".into()]
            ])),
            inner.prop_map(move |a| join(vec![vec!["not".into()], a])),
        ]
    })
}

fn statement() -> impl Strategy<Value = Vec<String>> {
    let subset = prop::sample::select(vec!["v1", "v2", "canary"]);
    let share =
        (0u32..=5000, subset.clone()).prop_map(|(bp, s)| vec![format!("{}.{:02}%", bp / 100, bp % 100), s.into()]);
    let by = prop::sample::select(vec![vec![], vec!["by", "cookie", "user"], vec!["by", "header", "X-User"]]);
    prop_oneof![
        (condition(), subset).prop_map(|(mut c, s)| {
            c.extend(["->".to_string(), s.to_string()]);
            c
        }),
        (prop::option::of(condition()), share.clone(), share, by).prop_map(|(c, a, b, by)| {
            let mut t = c.map(|mut c| {
                c.push(":".into());
                c
            });
            let t = t.get_or_insert_with(Vec::new);
            t.extend(a);
            t.push(",".into());
            t.extend(b);
            t.extend(by.into_iter().map(String::from));
            t.clone()
        }),
    ]
}

/// A layout choice for one gap: index into the separator lists below.
fn gaps() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 64)
}

/// Renders tokens with separators drawn from `gaps`: tight or loose spacing, and inside brackets also
/// newlines and comments (implicit line joining).
fn render(tokens: &[String], gaps: &[u8], k: &mut usize) -> String {
    let mut out = String::new();
    let mut depth = 0usize;
    for (i, tok) in tokens.iter().enumerate() {
        if i > 0 {
            let g = gaps[*k % gaps.len()];
            *k += 1;
            let tight_ok = PUNCT.contains(&tokens[i - 1].as_str()) || PUNCT.contains(&tok.as_str());
            let sep = match (g % 6, depth > 0) {
                (0, _) if tight_ok => "",
                (1, _) => "   ",
                (2, _) => "\t",
                (3, true) => "\n    ",
                (4, true) => " # inside\n  ",
                _ => " ",
            };
            out.push_str(sep);
        }
        match tok.as_str() {
            "(" | "[" => depth += 1,
            ")" | "]" => depth = depth.saturating_sub(1),
            _ => {}
        }
        out.push_str(tok);
    }
    out
}

/// What ends a statement, drawn from `g`.
fn end(g: u8) -> &'static str {
    match g % 7 {
        0 => "; ",
        1 => "\n\n\n",
        2 => " # trailing\n",
        3 => "\n# own line\n",
        4 => ";\n",
        5 => "   \n  \n",
        _ => "\n",
    }
}

fn policy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(statement(), 0..4),
        prop::collection::vec(prop::collection::vec(statement(), 0..4), 0..3),
        prop::option::of(prop::sample::select(vec!["v1", "v2"])),
        gaps(),
    )
        .prop_map(|(top, services, default, gaps)| {
            let mut k = 0;
            let next = |k: &mut usize| {
                *k += 1;
                gaps[*k % gaps.len()]
            };
            let mut s = String::from("#   generated\nlet shared = header x-shared present\n");
            for stmt in &top {
                s.push_str(&render(stmt, &gaps, &mut k));
                s.push_str(end(next(&mut k)));
            }
            for (i, body) in services.iter().enumerate() {
                s.push_str(&format!("service svc-{i} {{{}", if next(&mut k) % 2 == 0 { " " } else { "\n" }));
                for stmt in body {
                    s.push_str(&"  ".repeat((next(&mut k) % 3) as usize));
                    s.push_str(&render(stmt, &gaps, &mut k));
                    s.push_str(end(next(&mut k)));
                }
                if let Some(d) = default {
                    s.push_str(&format!("default {d}"));
                }
                s.push_str(if next(&mut k) % 2 == 0 { "}" } else { "\n}" });
                s.push_str(end(next(&mut k)));
            }
            s.push_str("service echo tcp {\n  source version=v2 -> v2\n  20% v2\n  default v1\n}\n");
            s
        })
}

/// The compiled config with every rule line set to 0: what the policy decides, wherever its rules are.
fn decisions(source: &str) -> canary_eval::Config {
    let mut config = compile(source, "gen.canary")
        .unwrap_or_else(|d| panic!("{source}\n{}", canary_compiler::render(&d, source, "gen.canary", false)))
        .config;
    for set in std::iter::once(&mut config.global).chain(config.services.iter_mut().map(|s| &mut s.rules)) {
        for rule in &mut set.rules {
            rule.line = 0;
        }
    }
    config
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn formatting_keeps_decisions_and_comments_and_is_idempotent(source in policy()) {
        let formatted = format(&source).unwrap_or_else(|d| panic!("{source}\n{}", d[0].message));
        prop_assert_eq!(decisions(&formatted), decisions(&source), "{}\n--- formatted:\n{}", source, formatted);
        let texts = |s: &str| {
            let mut c: Vec<String> = comments(s).into_iter().map(|c| c.text).collect();
            c.sort();
            c
        };
        prop_assert_eq!(texts(&formatted), texts(&source));
        let again = format(&formatted).expect("formatted output parses");
        prop_assert_eq!(again, formatted);
    }
}
