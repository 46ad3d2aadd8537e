//! The rules a syntactically valid policy must still follow, each reported at the exact token:
//! names declared twice, unknown or cyclic `let`s, splits over 100%, HTTP conditions in a TCP service,
//! invalid regexes and header names, empty lists and names. Lowering may assume a policy that passed.
//!
//! Also one warning that only the syntax tree can see: a `let` that is never used.

use std::collections::{BTreeMap, BTreeSet};

use canary_eval::RegexError;

use crate::ast::{
    Cond, CondKind, Family, HeaderTest, Name, Policy, Service, Span, Split, StickyKind, Stmt, StmtKind, Text,
};
use crate::diagnostic::Diagnostic;
use crate::scope::Scope;
use crate::suggest::closest;

/// A condition deeper than this once `let`s are expanded is refused, so that lowering, the evaluator and
/// JSON serialisation never recurse without bound.
pub const MAX_CONDITION_DEPTH: usize = 64;

/// Longest service or subset name (a DNS name's limit; the evaluator enforces it too).
pub const MAX_NAME_LEN: usize = 253;

/// Errors and warnings, in source order.
pub fn check(policy: &Policy) -> Vec<Diagnostic> {
    let global = Scope::new(&policy.stmts, None);
    let mut checker = Checker::default();
    checker.scope(&policy.stmts, &global, None);
    let mut services: BTreeMap<&str, Span> = BTreeMap::new();
    for stmt in &policy.stmts {
        let StmtKind::Service(svc) = &stmt.kind else { continue };
        if let Some(first) = services.get(svc.name.text.as_str()) {
            checker.error(
                Diagnostic::error(svc.name.span, format!("service `{}` is declared twice", svc.name.text))
                    .with_label("second declaration")
                    .with_note_at(*first, "first declared here")
                    .with_hint("merge the two blocks into one"),
            );
        } else {
            services.insert(&svc.name.text, svc.name.span);
        }
        checker.name_length(&svc.name, "service");
        let scope = Scope::new(&svc.stmts, Some(&global));
        checker.scope(&svc.stmts, &scope, Some(svc));
    }
    checker.unused_lets(policy);
    let mut diags = checker.diags;
    diags.sort_by_key(|d| (d.span.start, d.severity));
    diags
}

#[derive(Default)]
struct Checker {
    diags: Vec<Diagnostic>,
    /// `let` definitions (by the start of their name) that some condition refers to.
    used: BTreeSet<usize>,
}

impl Checker {
    fn error(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    /// One scope: the file (`service` = None) or a service block.
    fn scope(&mut self, stmts: &[Stmt], scope: &Scope<'_>, service: Option<&Service>) {
        let place = service.map_or("at the top level".to_string(), |s| format!("in service `{}`", s.name.text));
        let mut default: Option<Span> = None;
        let mut mirror: Option<Span> = None;
        let mut settings: Option<Span> = None;
        let mut lets: BTreeMap<&str, Span> = BTreeMap::new();
        for stmt in stmts {
            if let (Some(profile), Some(svc)) = (&stmt.profile, service.filter(|s| s.is_tcp())) {
                self.error(
                    Diagnostic::error(
                        profile.span,
                        format!("tcp service `{}` cannot select a settings profile", svc.name.text),
                    )
                    .with_label("HTTP-only")
                    .with_hint("route settings (timeouts, retries, rewrites, headers, CORS) apply to HTTP routes only"),
                );
            }
            match &stmt.kind {
                StmtKind::Mirror(m) => {
                    if let Some(first) = mirror {
                        self.error(
                            Diagnostic::error(stmt.span, format!("more than one `mirror` {place}"))
                                .with_label("second mirror")
                                .with_note_at(first, "first mirror here")
                                .with_hint("a service mirrors to one subset; keep one `mirror`"),
                        );
                    }
                    mirror.get_or_insert(stmt.span);
                    if m.basis_points == 0 {
                        self.error(
                            Diagnostic::error(m.percent_span, "a mirror of 0% copies nothing")
                                .with_label("must be over 0%")
                                .with_hint("write a share in (0%, 100%], or remove the statement"),
                        );
                    }
                    if let Some(svc) = service.filter(|s| s.is_tcp()) {
                        self.error(
                            Diagnostic::error(stmt.span, format!("tcp service `{}` cannot mirror", svc.name.text))
                                .with_label("HTTP-only")
                                .with_hint("Envoy and Istio mirror HTTP requests only; a connection cannot be copied"),
                        );
                    }
                    self.name_length(&m.subset, "subset");
                }
                StmtKind::Settings { path } => {
                    if let Some(svc) = service {
                        self.error(
                            Diagnostic::error(stmt.span, format!("`settings` inside service `{}`", svc.name.text))
                                .with_label("belongs at the top level")
                                .with_hint("name the file once at the top level; it has a section per service"),
                        );
                    } else if let Some(first) = settings {
                        self.error(
                            Diagnostic::error(stmt.span, "more than one `settings` file")
                                .with_label("second settings file")
                                .with_note_at(first, "first named here")
                                .with_hint("keep one `settings` statement; the file has a section per service"),
                        );
                    }
                    settings.get_or_insert(stmt.span);
                    self.non_empty(path, "settings file name");
                }
                StmtKind::Default { subset } => {
                    if let Some(first) = default {
                        self.error(
                            Diagnostic::error(stmt.span, format!("more than one `default` {place}"))
                                .with_label("second default")
                                .with_note_at(first, "first default here")
                                .with_hint("keep one `default`; it applies to every request no rule decides"),
                        );
                    }
                    default.get_or_insert(stmt.span);
                    self.name_length(subset, "subset");
                }
                StmtKind::Let { name, cond } => {
                    if let Some(first) = lets.get(name.text.as_str()) {
                        self.error(duplicate_let(name, *first));
                    } else if let Some(outer) = scope.parent().and_then(|p| p.definition(&name.text)) {
                        self.error(duplicate_let(name, outer.name.span));
                    }
                    lets.entry(&name.text).or_insert(name.span);
                    self.cond(cond, scope);
                }
                StmtKind::Route { cond, subset } => {
                    self.cond(cond, scope);
                    self.name_length(subset, "subset");
                    self.rule_cond(cond, scope, service);
                }
                StmtKind::Split { cond, split } => {
                    if let Some(cond) = cond {
                        self.cond(cond, scope);
                        self.rule_cond(cond, scope, service);
                    }
                    self.split(split, service);
                }
                StmtKind::Service(inner) => {
                    if let Some(outer) = service {
                        self.error(
                            Diagnostic::error(inner.keyword, "services cannot be nested")
                                .with_label(format!("`{}` starts inside `{}`", inner.name.text, outer.name.text))
                                .with_note_at(outer.open_brace, format!("`{}` starts here", outer.name.text))
                                .with_hint(format!("close `{}` with `}}` before this line", outer.name.text)),
                        );
                    }
                }
            }
        }
        self.cycles(scope);
    }

    /// Checks that apply to a rule's condition as a whole (after `let` expansion).
    fn rule_cond(&mut self, cond: &Cond, scope: &Scope<'_>, service: Option<&Service>) {
        if expanded_depth(cond, scope, 0, &mut Vec::new()) > MAX_CONDITION_DEPTH {
            self.error(
                Diagnostic::error(cond.span, "this condition nests too deeply once its `let`s are expanded")
                    .with_hint(format!("at most {MAX_CONDITION_DEPTH} levels of `and`/`or`/`not`/`let` are allowed")),
            );
        }
        if let Some(svc) = service.filter(|s| s.is_tcp()) {
            self.tcp_cond(cond, scope, svc);
        }
    }

    /// A TCP connection has no headers, cookies or path: only `source` labels can be tested.
    fn tcp_cond(&mut self, cond: &Cond, scope: &Scope<'_>, svc: &Service) {
        let mut leaves = Vec::new();
        collect_leaves(cond, &mut leaves);
        for leaf in leaves {
            let message = |what: &str| format!("tcp service `{}` cannot match {what}", svc.name.text);
            let hint = "a tcp service sees connections, not requests: only `source LABEL=VALUE` conditions, \
                        unconditional splits and `default` apply";
            match &leaf.kind {
                CondKind::Source { .. } => {}
                CondKind::Ref(name) => {
                    let Some(def) = scope.definition(&name.text) else { continue };
                    if let Some(bad) = http_leaf(def.cond, def.scope, 0) {
                        self.error(
                            Diagnostic::error(name.span, message(&format!("`{}`", name.text)))
                                .with_label(format!("`{}` uses `{}`", name.text, bad.kind.keyword()))
                                .with_note_at(bad.span, "an HTTP-only condition")
                                .with_hint(hint),
                        );
                    }
                }
                other => self.error(
                    Diagnostic::error(leaf.span, message(&format!("`{}`", other.keyword())))
                        .with_label("HTTP-only condition")
                        .with_hint(hint),
                ),
            }
        }
    }

    fn split(&mut self, split: &Split, service: Option<&Service>) {
        for share in &split.shares {
            self.name_length(&share.subset, "subset");
        }
        let total = split.total();
        if total > 10_000 {
            self.error(
                Diagnostic::error(split.span, format!("split shares add up to {} (over 100%)", percent(total)))
                    .with_label("these shares")
                    .with_hint("the shares are fractions of the matching traffic; the rest goes to `default`"),
            );
        }
        let Some(by) = &split.by else { return };
        if let Some(svc) = service.filter(|s| s.is_tcp()) {
            self.error(
                Diagnostic::error(
                    by.span,
                    format!("tcp service `{}` cannot split `by` a cookie or header", svc.name.text),
                )
                .with_label("HTTP-only")
                .with_hint("remove the `by` clause: each connection is drawn independently"),
            );
        }
        match by.kind {
            StickyKind::Cookie => self.non_empty(&by.name, "cookie name"),
            StickyKind::Header => self.header_name(&by.name),
        }
    }

    /// Value checks on every atom of a condition (rules and `let` bodies alike).
    fn cond(&mut self, cond: &Cond, scope: &Scope<'_>) {
        match &cond.kind {
            CondKind::Header { name, test } => {
                self.header_name(name);
                match test {
                    HeaderTest::Regex(re) => match canary_eval::compile_regex(&re.text) {
                        Ok(_) => {}
                        Err(RegexError::Invalid(why)) => self.error(
                            Diagnostic::error(re.span, format!("invalid regex: {}", one_line(&why)))
                                .with_label("in this regex")
                                .with_hint("regexes use Rust regex syntax over bytes: ASCII classes, no Unicode, no look-around"),
                        ),
                        Err(too_large) => self.error(
                            Diagnostic::error(re.span, format!("regex too large: {too_large}"))
                                .with_label("in this regex")
                                .with_hint(
                                    "`x{n}` copies x n times and stacked counts multiply; \
                                         bound the repetition, or test a prefix with a shorter regex",
                                ),
                        ),
                    },
                    HeaderTest::In(values, span) if values.is_empty() => self.error(
                        Diagnostic::error(*span, "`in []` needs at least one value")
                            .with_label("empty list")
                            .with_hint("an empty list never matches; list values like `in [\"a\", \"b\"]`"),
                    ),
                    _ => {}
                }
            }
            CondKind::Cookie { name, .. } => self.non_empty(name, "cookie name"),
            CondKind::Query { name, .. } => self.non_empty(name, "query parameter name"),
            CondKind::Source { label, .. } => self.non_empty(label, "source label"),
            CondKind::Method(m) => self.non_empty(m, "method"),
            CondKind::Host(h) => self.non_empty(h, "host"),
            CondKind::Path(p) => {
                if !p.text.starts_with('/') {
                    self.error(
                        Diagnostic::error(p.span, "a path prefix must start with `/`")
                            .with_label("no leading `/`")
                            .with_hint(format!("write `path \"/{}\"`", p.text.escape_debug())),
                    );
                }
            }
            CondKind::Family(_) => {}
            CondKind::Ref(name) => match scope.definition(&name.text) {
                Some(def) => {
                    self.used.insert(def.name.span.start);
                }
                None => self.error(unknown_name(name, scope)),
            },
            CondKind::And(cs) | CondKind::Or(cs) => cs.iter().for_each(|c| self.cond(c, scope)),
            CondKind::Not(c) => self.cond(c, scope),
        }
    }

    fn header_name(&mut self, name: &Text) {
        let bare = name.text.strip_prefix(':').unwrap_or(&name.text);
        if bare.is_empty() {
            self.error(Diagnostic::error(name.span, "empty header name").with_label("no name"));
        } else if !bare.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            self.error(
                Diagnostic::error(name.span, format!("`{}` is not a valid header name", name.text.escape_debug()))
                    .with_label("invalid character")
                    .with_hint("header names are letters, digits and `!#$%&'*+-.^_`|~` (RFC 9110 tokens)"),
            );
        }
    }

    fn non_empty(&mut self, text: &Text, what: &str) {
        if text.text.is_empty() {
            self.error(Diagnostic::error(text.span, format!("empty {what}")).with_label(format!("no {what}")));
        }
    }

    fn name_length(&mut self, name: &Name, what: &str) {
        if name.text.len() > MAX_NAME_LEN {
            self.error(
                Diagnostic::error(name.span, format!("{what} name is longer than {MAX_NAME_LEN} characters"))
                    .with_label("too long"),
            );
        }
    }

    /// `let a = b` / `let b = a`: found with one iterative depth-first search over the scope's own `let`s
    /// (a service's `let`s can refer outward, never the reverse, so cycles stay within one scope).
    fn cycles(&mut self, scope: &Scope<'_>) {
        let lets: Vec<(&Name, &Cond)> = scope.own().collect();
        let index: BTreeMap<&str, usize> = lets.iter().enumerate().map(|(i, (n, _))| (n.text.as_str(), i)).collect();
        let edges: Vec<Vec<(usize, Span)>> = lets
            .iter()
            .map(|(_, cond)| {
                let mut refs = Vec::new();
                collect_refs(cond, &mut refs);
                refs.into_iter().filter_map(|r| index.get(r.text.as_str()).map(|&i| (i, r.span))).collect()
            })
            .collect();
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            OnPath,
            Done,
        }
        let mut mark = vec![Mark::New; lets.len()];
        for root in 0..lets.len() {
            if mark[root] != Mark::New {
                continue;
            }
            mark[root] = Mark::OnPath;
            let mut path: Vec<(usize, usize)> = vec![(root, 0)];
            while let Some(&mut (node, ref mut next)) = path.last_mut() {
                let Some(&(target, at)) = edges[node].get(*next) else {
                    mark[node] = Mark::Done;
                    path.pop();
                    continue;
                };
                *next += 1;
                match mark[target] {
                    Mark::New => {
                        mark[target] = Mark::OnPath;
                        path.push((target, 0));
                    }
                    Mark::OnPath => {
                        let from = path.iter().position(|(n, _)| *n == target).unwrap_or(0);
                        let mut names: Vec<&str> = path[from..].iter().map(|(n, _)| lets[*n].0.text.as_str()).collect();
                        names.push(&lets[target].0.text);
                        self.error(cycle(lets[target].0, at, &names));
                    }
                    Mark::Done => {}
                }
            }
        }
    }

    fn unused_lets(&mut self, policy: &Policy) {
        let mut lets = Vec::new();
        collect_lets(&policy.stmts, &mut lets);
        for name in lets {
            if !self.used.contains(&name.span.start) {
                self.diags.push(
                    Diagnostic::warning(name.span, format!("`let {}` is never used", name.text))
                        .with_label("unused")
                        .with_hint("remove it, or use it as a condition"),
                );
            }
        }
    }
}

fn collect_lets<'a>(stmts: &'a [Stmt], out: &mut Vec<&'a Name>) {
    for stmt in stmts {
        match &stmt.kind {
            StmtKind::Let { name, .. } => out.push(name),
            StmtKind::Service(svc) => collect_lets(&svc.stmts, out),
            _ => {}
        }
    }
}

fn duplicate_let(name: &Name, first: Span) -> Diagnostic {
    Diagnostic::error(name.span, format!("`let {}` is defined twice", name.text))
        .with_label("second definition")
        .with_note_at(first, "first defined here")
        .with_hint("rename one of them")
}

fn cycle(name: &Name, at: Span, path: &[&str]) -> Diagnostic {
    let d = if path.len() <= 2 {
        Diagnostic::error(at, format!("`let {}` refers to itself", name.text)).with_label("refers to itself")
    } else {
        Diagnostic::error(at, format!("`let {}` is defined in terms of itself", name.text))
            .with_label("closes the cycle")
            .with_note(format!("cycle: {}", path.join(" -> ")))
    };
    d.with_note_at(name.span, "defined here").with_hint("a `let` cannot use itself, directly or through other `let`s")
}

fn unknown_name(name: &Name, scope: &Scope<'_>) -> Diagnostic {
    let mut candidates = scope.visible_names();
    candidates.extend(Family::ALL.iter().map(|f| f.name()));
    let hint = match closest(&name.text, candidates) {
        Some(near) => format!("did you mean `{near}`?"),
        None => "a condition is `header`, `cookie`, `query`, `path`, `method`, `host`, `source`, a user-agent \
                 family (`android`, `ios`, `chrome`, `firefox`, `safari`, `edge`, `mobile`) or a name defined \
                 with `let`"
            .to_string(),
    };
    Diagnostic::error(name.span, format!("unknown condition `{}`", name.text))
        .with_label("not a keyword, family or `let` name")
        .with_hint(hint)
}

/// The atoms of a condition (everything but `and`/`or`/`not`), without following `let`s.
fn collect_leaves<'a>(cond: &'a Cond, out: &mut Vec<&'a Cond>) {
    match &cond.kind {
        CondKind::And(cs) | CondKind::Or(cs) => cs.iter().for_each(|c| collect_leaves(c, out)),
        CondKind::Not(c) => collect_leaves(c, out),
        _ => out.push(cond),
    }
}

fn collect_refs<'a>(cond: &'a Cond, out: &mut Vec<&'a Name>) {
    let mut leaves = Vec::new();
    collect_leaves(cond, &mut leaves);
    out.extend(leaves.into_iter().filter_map(|l| match &l.kind {
        CondKind::Ref(name) => Some(name),
        _ => None,
    }));
}

/// The first atom a TCP service cannot evaluate, following `let`s (to a bounded depth: cycles are
/// reported separately).
fn http_leaf<'a>(cond: &'a Cond, scope: &Scope<'a>, depth: usize) -> Option<&'a Cond> {
    if depth > MAX_CONDITION_DEPTH {
        return None;
    }
    let mut leaves = Vec::new();
    collect_leaves(cond, &mut leaves);
    leaves.into_iter().find_map(|leaf| match &leaf.kind {
        CondKind::Source { .. } => None,
        CondKind::Ref(name) => scope.definition(&name.text).and_then(|d| http_leaf(d.cond, d.scope, depth + 1)),
        _ => Some(leaf),
    })
}

/// Depth of the condition tree with `let`s expanded (each `let` counts as a level), counting at most to
/// `MAX_CONDITION_DEPTH + 1`. `expanding` holds the `let`s being expanded: a cycle (reported on its own)
/// counts as depth 0 rather than as "too deep".
fn expanded_depth(cond: &Cond, scope: &Scope<'_>, depth: usize, expanding: &mut Vec<Span>) -> usize {
    if depth > MAX_CONDITION_DEPTH {
        return depth;
    }
    match &cond.kind {
        CondKind::And(cs) | CondKind::Or(cs) => {
            cs.iter().map(|c| expanded_depth(c, scope, depth + 1, expanding)).max().unwrap_or(depth + 1)
        }
        CondKind::Not(c) => expanded_depth(c, scope, depth + 1, expanding),
        CondKind::Ref(name) => match scope.definition(&name.text) {
            Some(def) if expanding.contains(&def.name.span) => 0,
            Some(def) => {
                expanding.push(def.name.span);
                let d = expanded_depth(def.cond, def.scope, depth + 1, expanding);
                expanding.pop();
                d
            }
            None => depth + 1,
        },
        _ => depth + 1,
    }
}

/// `12050` → `120.5%`.
pub fn percent(basis_points: u32) -> String {
    let (whole, cents) = (basis_points / 100, basis_points % 100);
    match cents {
        0 => format!("{whole}%"),
        c if c % 10 == 0 => format!("{whole}.{}%", c / 10),
        c => format!("{whole}.{c:02}%"),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
