//! Hover: what a keyword means, what a user-agent family matches (its patterns, straight from
//! [`canary_compiler::families`], the table the compiler lowers them with), what a `let` stands for, and for any other
//! place in a rule the rule's share of traffic ([`super::traffic`]).

use canary_dsl::ast::{CondKind, Policy, Span, Stmt, StmtKind};
use canary_eval::config::{Cond, Test};

use super::document::Document;
use super::{lexical, symbols, traffic};
use canary_compiler::families;

/// Markdown, and the source it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoverText {
    pub markdown: String,
    pub span: Span,
}

/// What each keyword does (SCENARIOS.md §2, README "The policy language").
pub const KEYWORDS: &[(&str, &str)] = &[
    ("service", "`service NAME { … }` — rules for one service: the `:authority` host (or its first label), or the filter's `service` setting. Rules outside any block apply to every service, before its own."),
    ("tcp", "`service NAME tcp { … }` — a TCP service: only unconditional splits, `source` conditions and `default`; a connection is the unit of the split."),
    ("let", "`let NAME = COND` — names a condition; use `NAME` wherever a condition goes. Visible in its whole scope (the file, or its service block)."),
    ("default", "`default SUBSET` — what a request gets when no rule decides (and the remainder of a split). Without one, the filter decides nothing and removes any incoming subset header."),
    ("and", "`A and B` — both conditions hold. `not` binds tightest, then `and`, then `or`."),
    ("or", "`A or B` — either condition holds. `not` binds tightest, then `and`, then `or`."),
    ("not", "`not A` — the condition does not hold. `not header x = \"1\"` also holds when `x` is absent."),
    ("header", "`header NAME = \"v\"` / `!= \"v\"` / `~ \"regex\"` / `in [\"a\", \"b\"]` / `present` / `absent` — tests a request header (names are case-insensitive). An absent header never matches `=`, `~` or `in`, and `!=` on an absent header is false."),
    ("cookie", "`cookie NAME=VALUE` — the `cookie` header has that cookie, parsed as Envoy's cookie matcher parses it (not a regex); names are case-sensitive. Also `by cookie NAME`: a sticky split keyed on the cookie."),
    ("query", "`query NAME=VALUE` — the query string has that parameter; names and values are compared percent-decoded, `+` is a space."),
    ("path", "`path \"/prefix\"` — the path (without the query) starts with the prefix."),
    ("method", "`method GET` — the request method (exact)."),
    ("host", "`host \"name\"` — `:authority` without the port, case-insensitive."),
    ("source", "`source LABEL=VALUE` — the **calling workload's own** label, which the Envoy running the filter reads from its node metadata `LABELS`."),
    ("by", "`… by cookie NAME` / `… by header NAME` — a sticky split: the same key lands in the same bucket on every request and every proxy (`xxh64(key) % 10000`, as Envoy's hash policy). A request without the key is drawn at random."),
    ("in", "`header NAME in [\"a\", \"b\"]` — the header's value is one of the list."),
    ("present", "`header NAME present` — the header is sent (any value)."),
    ("absent", "`header NAME absent` — the header is not sent."),
    ("mirror", "`mirror P% to SUBSET` — copies that share of the service's requests (whatever subset they are routed to) to SUBSET, fire-and-forget: the caller's answer still comes from the routed subset. In a service block, or at the top level for every HTTP service without its own. Native routes carry it (Envoy `request_mirror_policies`, Istio `mirror`); the filter's decision is unchanged."),
    ("to", "`mirror P% to SUBSET` — the subset the mirrored copies go to."),
    ("settings", "`settings \"FILE\"` — the route settings file (timeouts, retries, rewrites, header edits, CORS, per service and in named profiles, in Istio's HTTPRoute field names), relative to this policy; `canaryc manifest` writes them into the routes (README \"Route settings\")."),
    ("with", "`… -> SUBSET with PROFILE` — this rule's route takes the named profile of the settings file (its fields replace the service's one by one)."),
];

pub fn hover(doc: &Document, offset: usize) -> Option<HoverText> {
    let policy = doc.policy.as_ref();
    if let Some(found) = policy.and_then(|p| family_at(p, offset)) {
        return Some(found);
    }
    if let Some(symbol) = policy.and_then(|p| symbols::at(p, offset)) {
        let policy = policy?;
        let cond = let_condition(&policy.stmts, symbol.definition)?;
        let span = [symbol.definition].into_iter().chain(symbol.uses.iter().copied()).find(|s| touches(s, offset))?;
        let uses = symbol.uses.len();
        let markdown = format!(
            "```canary\nlet {} = {}\n```\nused {uses} time{}",
            symbol.name,
            &doc.text[cond.start..cond.end],
            if uses == 1 { "" } else { "s" }
        );
        return Some(HoverText { markdown, span });
    }
    if let Some(word) = lexical::word_at(&doc.text, offset) {
        let text = &doc.text[word.start..word.end];
        if let Some((_, doc)) = KEYWORDS.iter().find(|(k, _)| *k == text) {
            return Some(HoverText { markdown: doc.to_string(), span: word });
        }
        if families::family(text).is_some() && doc.policy.is_none() {
            // The text does not parse, so the tree cannot confirm it is a condition; the word is enough.
            return family_text(text, word);
        }
    }
    let (compiled, evaluator) = doc.compiled.as_ref()?;
    if lexical::place(&doc.text, offset) == lexical::Place::Comment {
        return None;
    }
    let traffic = traffic::at(compiled, evaluator, offset)?;
    Some(match traffic {
        Ok(t) => {
            let default = default_of(compiled, &t.service);
            HoverText { markdown: traffic::describe(&t, default), span: t.span }
        }
        Err(why) => {
            let span = lexical::word_at(&doc.text, offset).unwrap_or(Span::new(offset, offset));
            HoverText { markdown: format!("**Traffic through this rule**: {why}."), span }
        }
    })
}

fn touches(span: &Span, offset: usize) -> bool {
    span.start <= offset && offset <= span.end
}

/// The default a service's requests fall back to.
fn default_of<'c>(compiled: &'c canary_compiler::Compiled, service: &str) -> Option<&'c str> {
    let config = &compiled.config;
    let own = config.services.iter().find(|s| s.name == service).and_then(|s| s.rules.default.as_deref());
    own.or(config.global.default.as_deref())
}

/// The condition of the `let` whose name is at `name`.
fn let_condition(stmts: &[Stmt], name: Span) -> Option<Span> {
    stmts.iter().find_map(|stmt| match &stmt.kind {
        StmtKind::Let { name: n, cond } if n.span == name => Some(cond.span),
        StmtKind::Service(svc) => let_condition(&svc.stmts, name),
        _ => None,
    })
}

/// A family condition under the cursor, found in the tree (so `android` as a subset name is not one).
fn family_at(policy: &Policy, offset: usize) -> Option<HoverText> {
    fn in_cond(cond: &canary_dsl::ast::Cond, offset: usize) -> Option<HoverText> {
        if !touches(&cond.span, offset) {
            return None;
        }
        match &cond.kind {
            CondKind::Family(f) => family_text(f.name(), cond.span),
            CondKind::And(cs) | CondKind::Or(cs) => cs.iter().find_map(|c| in_cond(c, offset)),
            CondKind::Not(c) => in_cond(c, offset),
            _ => None,
        }
    }
    fn in_stmts(stmts: &[Stmt], offset: usize) -> Option<HoverText> {
        stmts.iter().filter(|s| touches(&s.span, offset)).find_map(|stmt| match &stmt.kind {
            StmtKind::Let { cond, .. } | StmtKind::Route { cond, .. } => in_cond(cond, offset),
            StmtKind::Split { cond, .. } => cond.as_ref().and_then(|c| in_cond(c, offset)),
            StmtKind::Service(svc) => in_stmts(&svc.stmts, offset),
            StmtKind::Default { .. } | StmtKind::Mirror(_) | StmtKind::Settings { .. } => None,
        })
    }
    in_stmts(&policy.stmts, offset)
}

fn family_text(name: &str, span: Span) -> Option<HoverText> {
    let (_, description) = families::FAMILIES.iter().find(|(n, _)| *n == name)?;
    let cond = families::family(name)?;
    let markdown = format!(
        "**`{name}`** — a user-agent family: the `{}` header {description}.\n\nThe compiler lowers it to:\n```\n{}\n```",
        families::HEADER,
        render(&cond)
    );
    Some(HoverText { markdown, span })
}

/// A compiled condition in the policy language's words (regexes between slashes, unescaped).
fn render(cond: &Cond) -> String {
    let group = |c: &Cond| match c {
        Cond::All(_) | Cond::Any(_) => format!("({})", render(c)),
        _ => render(c),
    };
    match cond {
        Cond::Header { name, test } => match test {
            Test::Eq(v) => format!("header {name} = {v:?}"),
            Test::Ne(v) => format!("header {name} != {v:?}"),
            Test::Regex(r) => format!("header {name} ~ /{r}/"),
            Test::In(vs) => format!("header {name} in {vs:?}"),
            Test::Present => format!("header {name} present"),
            Test::Absent => format!("header {name} absent"),
        },
        Cond::Cookie { name, value } => format!("cookie {name}={value}"),
        Cond::Query { name, value } => format!("query {name}={value}"),
        Cond::PathPrefix(p) => format!("path {p:?}"),
        Cond::Method(m) => format!("method {m}"),
        Cond::Host(h) => format!("host {h:?}"),
        Cond::Source { label, value } => format!("source {label}={value}"),
        Cond::All(cs) => cs.iter().map(group).collect::<Vec<_>>().join("\n  and "),
        Cond::Any(cs) => cs.iter().map(group).collect::<Vec<_>>().join("\n  or "),
        Cond::Not(c) => format!("not {}", group(c)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hover_at(src: &str, needle: &str, delta: usize) -> Option<HoverText> {
        let doc = Document::new(src.into());
        hover(&doc, src.find(needle).unwrap() + delta)
    }

    #[test]
    fn every_keyword_has_a_text() {
        for k in canary_dsl::KEYWORDS.iter().filter(|k| families::family(k).is_none()) {
            assert!(KEYWORDS.iter().any(|(w, _)| w == k), "no hover text for `{k}`");
        }
    }

    #[test]
    fn families_show_their_patterns() {
        let src = "service frontend {\n  not android: 50% v2\n  default v1\n}\n";
        let h = hover_at(src, "android", 3).expect("hover on the family");
        assert_eq!(h.span, Span::new(src.find("android").unwrap(), src.find("android").unwrap() + 7));
        assert!(
            h.markdown.contains("header user-agent ~ /Android|android|Adr |Silk/|OculusBrowser|JUC/"),
            "{}",
            h.markdown
        );
        assert!(h.markdown.contains("not `Windows Phone`"), "{}", h.markdown);
        // A subset that happens to be called like a family is not one.
        let src = "default android\n";
        assert!(hover_at(src, "android", 1).is_none());
    }

    #[test]
    fn keywords_but_not_in_strings_or_comments() {
        let src = "cookie user=tester -> v2 # cookie\nheader x = \"cookie\" -> v3\n";
        let h = hover_at(src, "cookie", 2).unwrap();
        assert!(h.markdown.starts_with("`cookie NAME=VALUE`"));
        assert!(hover_at(src, "# cookie", 4).is_none());
        let h = hover_at(src, "\"cookie", 3).expect("a value inside a rule: the rule's traffic");
        assert!(h.markdown.starts_with("**Traffic through this rule**"), "{}", h.markdown);
    }

    #[test]
    fn a_let_shows_its_condition() {
        let src = "let beta = cookie b=1 or header x present\nbeta -> v2\n";
        let h = hover_at(src, "beta ->", 2).unwrap();
        assert_eq!(h.markdown, "```canary\nlet beta = cookie b=1 or header x present\n```\nused 1 time");
        assert_eq!(h.span, Span::new(42, 46));
    }

    #[test]
    fn a_rule_shows_its_traffic() {
        let src = "service forecast {\n  header user-agent ~ \"Chrome\" -> v2\n  default v1\n}\n";
        let h = hover_at(src, "v2", 1).unwrap();
        assert!(h.markdown.contains("`--header 'user-agent: Mozilla/5.0 (Linux; Android 14"), "{}", h.markdown);
        assert!(h.markdown.contains("for service `forecast`"), "{}", h.markdown);
        assert!(h.markdown.contains("this rule decides 100.0%: `v2` 100.0%"), "{}", h.markdown);
    }
}
