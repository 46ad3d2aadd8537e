//! The two forms SCENARIOS.md §2 says must parse exactly as written, and the grammar decisions around
//! them (precedence, line joining, statement ends), checked as AST shapes.

use canary_dsl::ast::{Cond, CondKind, HeaderTest, Policy, Span, StickyKind, Stmt, StmtKind};
use canary_dsl::{line_col, parse, parse_and_check};

/// A compact, readable rendering of a statement, e.g. `split(android: 50.00% v2)`.
fn shape(stmt: &Stmt) -> String {
    match &stmt.kind {
        StmtKind::Let { name, cond } => format!("let {} = {}", name.text, cond_shape(cond)),
        StmtKind::Default { subset } => format!("default {}", subset.text),
        StmtKind::Route { cond, subset } => format!("{} -> {}", cond_shape(cond), subset.text),
        StmtKind::Split { cond, split } => {
            let shares: Vec<String> = split
                .shares
                .iter()
                .map(|s| format!("{}.{:02}% {}", s.basis_points / 100, s.basis_points % 100, s.subset.text))
                .collect();
            let by = match &split.by {
                Some(by) if by.kind == StickyKind::Cookie => format!(" by cookie {}", by.name.text),
                Some(by) => format!(" by header {}", by.name.text),
                None => String::new(),
            };
            let cond = cond.as_ref().map(|c| format!("{}: ", cond_shape(c))).unwrap_or_default();
            format!("{cond}{}{by}", shares.join(", "))
        }
        StmtKind::Mirror(m) => format!("mirror {} to {}", m.basis_points, m.subset.text),
        StmtKind::Settings { path } => format!("settings {:?}", path.text),
        StmtKind::Service(svc) => {
            let body: Vec<String> = svc.stmts.iter().map(shape).collect();
            let tcp = if svc.is_tcp() { " tcp" } else { "" };
            format!("service {}{tcp} {{ {} }}", svc.name.text, body.join("; "))
        }
    }
}

fn cond_shape(cond: &Cond) -> String {
    let list = |cs: &[Cond]| cs.iter().map(cond_shape).collect::<Vec<_>>().join(", ");
    match &cond.kind {
        CondKind::Header { name, test } => match test {
            HeaderTest::Eq(v) => format!("header({} = {:?})", name.text, v.text),
            HeaderTest::Ne(v) => format!("header({} != {:?})", name.text, v.text),
            HeaderTest::Regex(v) => format!("header({} ~ {:?})", name.text, v.text),
            HeaderTest::In(vs, _) => {
                format!("header({} in {:?})", name.text, vs.iter().map(|v| &v.text).collect::<Vec<_>>())
            }
            HeaderTest::Present => format!("header({} present)", name.text),
            HeaderTest::Absent => format!("header({} absent)", name.text),
        },
        CondKind::Cookie { name, value } => format!("cookie({}={})", name.text, value.text),
        CondKind::Query { name, value } => format!("query({}={})", name.text, value.text),
        CondKind::Source { label, value } => format!("source({}={})", label.text, value.text),
        CondKind::Path(p) => format!("path({})", p.text),
        CondKind::Method(m) => format!("method({})", m.text),
        CondKind::Host(h) => format!("host({})", h.text),
        CondKind::Family(f) => f.name().to_string(),
        CondKind::Ref(name) => format!("${}", name.text),
        CondKind::And(cs) => format!("and({})", list(cs)),
        CondKind::Or(cs) => format!("or({})", list(cs)),
        CondKind::Not(c) => format!("not({})", cond_shape(c)),
    }
}

fn shapes(policy: &Policy) -> Vec<String> {
    policy.stmts.iter().map(shape).collect()
}

fn parsed(source: &str) -> Policy {
    match parse_and_check(source) {
        Ok((policy, _)) => policy,
        Err(diags) => panic!("{}", canary_dsl::render(&diags, source, "test.canary", false)),
    }
}

#[test]
fn the_design_card_one_liner() {
    let source = "android: 50% v2; cookie user=tester -> v2";
    let policy = parsed(source);
    assert_eq!(shapes(&policy), ["android: 50.00% v2", "cookie(user=tester) -> v2"]);
    assert_eq!(policy.stmts[0].span, Span::new(0, 15));
    assert_eq!(policy.stmts[1].span, Span::new(17, 41));
}

#[test]
fn the_combined_syntax_example() {
    let source = r#"# a syntax example that combines forms; each scenario above uses its own policy
service frontend {
  cookie user=tester -> v2
  android: 50% v2
  default v1
}
service forecast {
  source version=v2 -> v2
  header user-agent ~ "Chrome" -> v2
  50% v2
  default v1
}
service tcp-echo tcp {
  20% v2
  default v1
}
"#;
    let policy = parsed(source);
    assert_eq!(
        shapes(&policy),
        [
            "service frontend { cookie(user=tester) -> v2; android: 50.00% v2; default v1 }",
            "service forecast { source(version=v2) -> v2; header(user-agent ~ \"Chrome\") -> v2; 50.00% v2; default v1 }",
            "service tcp-echo tcp { 20.00% v2; default v1 }",
        ]
    );
    // Rules are numbered by the line of their first token.
    let StmtKind::Service(forecast) = &policy.stmts[1].kind else { panic!("a service") };
    let lines: Vec<usize> = forecast.stmts.iter().map(|s| line_col(source, s.span.start).line).collect();
    assert_eq!(lines, [8, 9, 10, 11]);
}

#[test]
fn not_binds_tighter_than_and_which_binds_tighter_than_or() {
    let policy = parsed("not android and ios or chrome and not not edge -> v2");
    assert_eq!(shapes(&policy), ["or(and(not(android), ios), and(chrome, edge)) -> v2"]);
    let policy = parsed("not (android or ios) -> v2");
    assert_eq!(shapes(&policy), ["not(or(android, ios)) -> v2"]);
}

#[test]
fn newlines_inside_brackets_continue_the_statement() {
    let source = "(android # phones\n   or ios) and header accept in [\n  \"a\",\n  \"b\",\n] -> v2\ndefault v1\n";
    assert_eq!(
        shapes(&parsed(source)),
        ["and(or(android, ios), header(accept in [\"a\", \"b\"])) -> v2", "default v1"]
    );
}

#[test]
fn statements_end_at_semicolons_newlines_and_closing_braces() {
    let source = "service a { android -> v2; default v1 }\r\n\n;;default v1 # trailing\n";
    assert_eq!(shapes(&parsed(source)), ["service a { android -> v2; default v1 }", "default v1"]);
}

#[test]
fn values_may_be_bare_or_quoted_and_header_names_are_lowercased() {
    let source = r#"let q = query "utm source"="a b" and source app.kubernetes.io/version=v2
header X-Env = beta and header "X-Quote" != "say \"hi\" \\ \d" and q -> v2
cookie user=tester->v2
method get or host "Example.com" or path "/api": 12.5% v2, 0.01% v3 by header X-User
50% v2 by cookie session
"#;
    assert_eq!(
        shapes(&parsed(source)),
        [
            "let q = and(query(utm source=a b), source(app.kubernetes.io/version=v2))",
            r#"and(header(x-env = "beta"), header(x-quote != "say \"hi\" \\ \\d"), $q) -> v2"#,
            "cookie(user=tester) -> v2",
            "or(method(get), host(Example.com), path(/api)): 12.50% v2, 0.01% v3 by header x-user",
            "50.00% v2 by cookie session",
        ]
    );
}

#[test]
fn spans_point_at_the_tokens() {
    let source = "service a {\n  header User-Agent ~ \"Chrome\" -> v2\n}\n";
    let policy = parsed(source);
    let StmtKind::Service(svc) = &policy.stmts[0].kind else { panic!("a service") };
    assert_eq!(svc.name.span, Span::new(8, 9));
    assert_eq!(svc.open_brace, Span::new(10, 11));
    let StmtKind::Route { cond, subset } = &svc.stmts[0].kind else { panic!("a route") };
    assert_eq!(&source[cond.span.start..cond.span.end], "header User-Agent ~ \"Chrome\"");
    assert_eq!(&source[subset.span.start..subset.span.end], "v2");
    let CondKind::Header { name, test: HeaderTest::Regex(re) } = &cond.kind else { panic!("a header regex") };
    assert_eq!((name.text.as_str(), &source[name.span.start..name.span.end]), ("user-agent", "User-Agent"));
    assert_eq!(&source[re.span.start..re.span.end], "\"Chrome\"");
}

#[test]
fn empty_and_comment_only_files_are_empty_policies() {
    for source in ["", "\n\n", "# nothing yet\n", "  ;  \n\t# x"] {
        assert_eq!(parse(source).map(|p| p.stmts.len()), Ok(0), "{source:?}");
    }
}
