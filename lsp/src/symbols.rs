//! `let` names: where each is defined and used, for go to definition, references and rename.
//!
//! Resolution is the language's own ([`canary_dsl::scope::Scope`]): the file is one scope, each service
//! block another nested in it, and a name is visible in its whole scope. A use that resolves to nothing
//! (a typo the checker reports) belongs to no symbol.

use canary_dsl::ast::{Cond, CondKind, Policy, Span, Stmt, StmtKind};
use canary_dsl::scope::Scope;

/// One `let` and every use of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LetSymbol {
    pub name: String,
    /// The name in `let NAME = …`.
    pub definition: Span,
    pub uses: Vec<Span>,
}

/// Every `let` of the policy, in source order.
pub fn lets(policy: &Policy) -> Vec<LetSymbol> {
    let file = Scope::new(&policy.stmts, None);
    let mut symbols: Vec<LetSymbol> = Vec::new();
    collect(&policy.stmts, &file, &mut symbols);
    for stmt in &policy.stmts {
        if let StmtKind::Service(svc) = &stmt.kind {
            let scope = Scope::new(&svc.stmts, Some(&file));
            collect(&svc.stmts, &scope, &mut symbols);
        }
    }
    symbols.sort_by_key(|s| s.definition.start);
    symbols
}

/// The `let` whose definition or use is at `offset` (a cursor just after a name counts).
pub fn at(policy: &Policy, offset: usize) -> Option<LetSymbol> {
    let touches = |span: &Span| span.start <= offset && offset <= span.end;
    lets(policy).into_iter().find(|s| touches(&s.definition) || s.uses.iter().any(touches))
}

/// The definitions in `scope`'s own statements, then the uses in them (which may resolve outward).
fn collect(stmts: &[Stmt], scope: &Scope<'_>, symbols: &mut Vec<LetSymbol>) {
    for (name, _) in scope.own() {
        if !symbols.iter().any(|s| s.definition == name.span) {
            symbols.push(LetSymbol { name: name.text.clone(), definition: name.span, uses: Vec::new() });
        }
    }
    for stmt in stmts {
        let cond = match &stmt.kind {
            StmtKind::Let { cond, .. } | StmtKind::Route { cond, .. } => Some(cond),
            StmtKind::Split { cond, .. } => cond.as_ref(),
            StmtKind::Default { .. } | StmtKind::Service(_) | StmtKind::Mirror(_) | StmtKind::Settings { .. } => None,
        };
        if let Some(cond) = cond {
            uses(cond, scope, symbols);
        }
    }
}

fn uses(cond: &Cond, scope: &Scope<'_>, symbols: &mut Vec<LetSymbol>) {
    match &cond.kind {
        CondKind::Ref(name) => {
            let Some(def) = scope.definition(&name.text) else { return };
            // Scopes are collected outer first, so the definition is already a symbol.
            if let Some(symbol) = symbols.iter_mut().find(|s| s.definition == def.name.span) {
                symbol.uses.push(name.span);
            }
        }
        CondKind::And(cs) | CondKind::Or(cs) => cs.iter().for_each(|c| uses(c, scope, symbols)),
        CondKind::Not(c) => uses(c, scope, symbols),
        _ => {}
    }
}

/// Why `new` cannot replace `symbol`'s name in `policy`, if it cannot: it must be a name the grammar
/// accepts for a `let`, not a keyword, and not a name some `let` already has (in any scope: an inner
/// `let` would shadow or be shadowed, silently changing what a condition means).
pub fn rename_refusal(policy: &Policy, symbol: &LetSymbol, new: &str) -> Option<String> {
    let mut chars = new.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && !new.ends_with('-');
    if !valid {
        return Some(format!(
            "`{new}` is not a valid `let` name (a letter, then letters, digits, `_`, `.` or `-`, not ending in `-`)"
        ));
    }
    if canary_dsl::KEYWORDS.contains(&new) {
        return Some(format!("`{new}` is a keyword"));
    }
    if new != symbol.name && lets(policy).iter().any(|s| s.name == new) {
        return Some(format!("a `let {new}` already exists"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at(src: &str, span: Span) -> &str {
        &src[span.start..span.end]
    }

    const SRC: &str = "let beta = cookie b=1\nlet both = beta and android\nservice s {\n  let beta = ios\n  beta -> v3\n  both -> v2\n}\nbeta -> v2\n";

    #[test]
    fn uses_resolve_to_the_innermost_definition() {
        let policy = canary_dsl::parse(SRC).unwrap();
        let all = lets(&policy);
        let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["beta", "both", "beta"]);
        let outer = &all[0];
        let lines: Vec<usize> = outer.uses.iter().map(|u| SRC[..u.start].matches('\n').count() + 1).collect();
        // Line 2 (inside `both`, which resolves at file level) and line 8; not line 5 (the service's own beta).
        assert_eq!(lines, [2, 8]);
        assert!(outer.uses.iter().all(|&u| text_at(SRC, u) == "beta"));
        let inner = &all[2];
        assert_eq!(inner.uses.len(), 1);
        assert_eq!(SRC[..inner.uses[0].start].matches('\n').count() + 1, 5);
    }

    #[test]
    fn finds_the_symbol_under_the_cursor() {
        let policy = canary_dsl::parse(SRC).unwrap();
        let use_in_service = SRC.find("  beta -> v3").unwrap() + 2;
        let symbol = at(&policy, use_in_service + 4).expect("cursor right after the name");
        assert_eq!(SRC[..symbol.definition.start].matches('\n').count() + 1, 4);
        assert!(at(&policy, SRC.find("cookie").unwrap()).is_none());
    }

    #[test]
    fn refuses_names_that_would_change_meaning_or_not_parse() {
        let policy = canary_dsl::parse(SRC).unwrap();
        let beta = &lets(&policy)[0];
        assert!(rename_refusal(&policy, beta, "gamma").is_none());
        assert!(rename_refusal(&policy, beta, "beta").is_none());
        assert!(rename_refusal(&policy, beta, "both").unwrap().contains("already exists"));
        assert!(rename_refusal(&policy, beta, "android").unwrap().contains("keyword"));
        for bad in ["", "9a", "a b", "a-", "é", "a->b"] {
            assert!(rename_refusal(&policy, beta, bad).unwrap().contains("not a valid"), "{bad:?}");
        }
    }
}
