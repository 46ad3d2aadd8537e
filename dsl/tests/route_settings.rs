//! The route settings statements (README "Route settings"): `mirror P% to SUBSET`, `settings "FILE"` and a
//! rule's `with PROFILE` parse into the AST, are checked at their tokens and keep their layout under `fmt`.

use canary_dsl::ast::StmtKind;
use canary_dsl::{line_col, parse_and_check};

fn errors(src: &str) -> Vec<(usize, usize, String)> {
    match parse_and_check(src) {
        Ok(_) => Vec::new(),
        Err(diags) => diags
            .iter()
            .map(|d| {
                let at = line_col(src, d.span.start);
                (at.line, at.col, d.message.clone())
            })
            .collect(),
    }
}

#[test]
fn statements_parse() {
    let src = "settings \"r.yaml\"\nmirror 5% to v3\nservice r {\n  mirror 12.5% to v3\n  header x = \"1\" -> v2 with slow\n  android: 50% v2 by cookie u with fast\n  default v1\n}\n";
    let (policy, warnings) = parse_and_check(src).expect("valid");
    assert!(warnings.is_empty());
    assert!(matches!(&policy.stmts[0].kind, StmtKind::Settings { path } if path.text == "r.yaml"));
    assert!(matches!(&policy.stmts[1].kind, StmtKind::Mirror(m) if m.basis_points == 500 && m.subset.text == "v3"));
    let StmtKind::Service(svc) = &policy.stmts[2].kind else { panic!("a service") };
    assert!(matches!(&svc.stmts[0].kind, StmtKind::Mirror(m) if m.basis_points == 1250));
    assert_eq!(svc.stmts[1].profile.as_ref().map(|p| p.text.as_str()), Some("slow"));
    assert_eq!(svc.stmts[2].profile.as_ref().map(|p| p.text.as_str()), Some("fast"));
    assert_eq!(svc.stmts[3].profile, None);
}

#[test]
fn mistakes_are_reported_at_their_tokens() {
    let cases: [(&str, (usize, usize), &str); 7] = [
        ("service t tcp {\n  mirror 5% to v2\n  default v1\n}\n", (2, 3), "tcp service `t` cannot mirror"),
        ("service a {\n  mirror 5% to v2\n  mirror 6% to v3\n}\n", (3, 3), "more than one `mirror`"),
        ("service a {\n  mirror 0% to v2\n}\n", (2, 10), "a mirror of 0% copies nothing"),
        ("service a {\n  mirror 101% to v2\n}\n", (2, 10), "over 100%"),
        ("service a {\n  settings \"x\"\n}\n", (2, 3), "`settings` inside service `a`"),
        ("settings \"x\"\nsettings \"y\"\n", (2, 1), "more than one `settings` file"),
        ("service t tcp {\n  20% v2 with slow\n  default v1\n}\n", (2, 15), "cannot select a settings profile"),
    ];
    for (src, at, want) in cases {
        let errs = errors(src);
        assert!(
            errs.iter().any(|(l, c, m)| (*l, *c) == at && m.contains(want)),
            "{src:?}: wanted {want:?} at {at:?}, got {errs:?}"
        );
    }
    let errs = errors("service a {\n  mirror 5% v2\n}\n");
    assert!(errs[0].2.contains("expected `to`"), "{errs:?}");
    // The new keywords are reserved: a `let` cannot take their names.
    assert!(!errors("let mirror = android\n").is_empty());
}

#[test]
fn fmt_lays_them_out_and_is_idempotent() {
    let src = "settings   \"r.yaml\"\nservice r {\n mirror  10%  to  v3\n header x = \"1\" ->   v2   with  slow\n default v1\n}\n";
    let once = canary_dsl::fmt::format(src).expect("formats");
    assert_eq!(
        once,
        "settings \"r.yaml\"\nservice r {\n  mirror 10% to v3\n  header x = \"1\" -> v2 with slow\n  default v1\n}\n"
    );
    assert_eq!(canary_dsl::fmt::format(&once).expect("formats"), once);
}
